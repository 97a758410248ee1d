/*
 * lconc.h - what every binding file shares.
 *
 * A conc object in Lua is a full userdata holding one reference to an arena
 * object (conc_ud). Its metatable is registered as "conc.<type name>" in
 * every lua_State (by luaopen_conc), so a copied object can be re-created in
 * any state. Within one state the same arena object is always the same
 * userdata (a weak cache), so objects compare equal and work as table keys.
 */
#ifndef LCONC_H
#define LCONC_H

#include <lauxlib.h>
#include <lua.h>

#include "arena.h"
#include "codec.h"
#include "cc.h"

typedef struct conc_ud {
  cc_obj_t *obj;  /* NULL once closed */
  int32_t pid;    /* the process whose reference this is (see conc_adopt_after_fork) */
  uintptr_t seal; /* (uintptr_t)obj ^ conc_seal_key, set with obj: see conc_self_of2 */
} conc_ud;

/* A random odd word chosen once per process family (luaopen_conc). A
 * userdata of conc_ud's size whose seal matches its obj is one of ours: no
 * other library writes that word, and closing (obj = NULL) breaks the match. */
extern uintptr_t conc_seal_key;
static inline void conc_ud_set(conc_ud *u, cc_obj_t *o) {
  u->obj = o;
  u->seal = o ? (uintptr_t)o ^ conc_seal_key : 0;
}

/* Registers metatable "conc.<type->name>" with __index (the `methods` plus,
 * if `index` is non-NULL, a function consulted first for fields such as
 * t.name; it returns 0 to fall back to the methods), __gc, __close (unless
 * `metamethods` gives one), __eq, __tostring ("conc.lock 'name' (0x..)") and
 * __name; then adds `metamethods` (may be NULL). Leaves the stack unchanged. */
void conc_newtype(lua_State *L, const cc_type_t *type, const luaL_Reg *methods,
                  const luaL_Reg *metamethods, lua_CFunction index);

/* Records how to build the metatable of `type` (normally by calling
 * conc_newtype, then adding to it): states build it on first use, so a new
 * thread pays only for the types it touches. `methods` is passed to
 * `build`. Thread-safe; idempotent. */
typedef void (*conc_build_fn)(lua_State *L, const cc_type_t *type,
                              const luaL_Reg *methods);
void conc_lazytype(const cc_type_t *type, conc_build_fn build, const luaL_Reg *methods);
/* Pushes the metatable of `type` in this state, building it if needed.
 * Returns 0 (pushing nothing) for an unknown type. */
int conc_pushmetatable(lua_State *L, const cc_type_t *type);

/* Pushes the userdata for `o`, creating it (and taking a new reference) if
 * this state has none. The type must have been registered. */
void conc_push(lua_State *L, cc_obj_t *o);
/* Like conc_push, but adopts the caller's reference instead of taking one. */
void conc_push_owned(lua_State *L, cc_obj_t *o);

/* The object at idx if it is a conc object of `type` (any conc type when
 * type is NULL), else raises a standard argument error. */
cc_obj_t *conc_check(lua_State *L, int idx, const cc_type_t *type);
/* The one self check of a method: the object at index 1 if it is a live
 * conc object of type `a` or `b` (pass the same type twice for one), else
 * the standard argument error of conc_check ("conc.lock expected, got
 * table", "object is closed"). The fast path is two Lua API calls (the
 * userdata and its size) and the seal: every method pays it, and a lock
 * pair is two methods (bench/sync_bench.lua). The slow path needs the
 * method's upvalue 1 to be its type's metatable (conc_sync_newtype, the
 * queue's and the shared table's methods). */
cc_obj_t *conc_self_slow(lua_State *L);
static inline cc_obj_t *conc_self_of2(lua_State *L, const cc_type_t *a, const cc_type_t *b) {
  conc_ud *u = lua_touserdata(L, 1);
  if (cc_likely(u != NULL && lua_rawlen(L, 1) == sizeof *u &&
                u->seal == ((uintptr_t)u->obj ^ conc_seal_key))) {
    cc_obj_t *o = u->obj;
    if (cc_likely(o->type == a || o->type == b)) return o;
  }
  return conc_self_slow(L);
}
#define conc_self_of(L, t) conc_self_of2((L), (t), (t))

/* The object at idx if it is any conc object, else NULL. */
cc_obj_t *conc_toobj(lua_State *L, int idx);

/* The one timeout parser: optional argument at idx in seconds -> deadline
 * (nil/none or true: forever; false or 0: now; negative, NaN or another
 * type: argument error). */
cc_deadline_t conc_opt_deadline(lua_State *L, int idx);

/* tostring shows a type's state when it has a describer: `state` writes
 * "set", "locked", "3 items"... into buf (n bytes; it must not block or
 * take a lock another thread may hold for long). Register at open time. */
typedef void (*conc_state_fn)(cc_obj_t *o, char *buf, size_t n);
void conc_describe(const cc_type_t *type, conc_state_fn state);

/* Raises a Lua error for a core error code (misuse / environment), with a
 * prefix such as "lock:acquire". CC_EDEADLOCK raises cc_deadlock_message();
 * CC_EINTR raises "interrupted!"; CC_EAGAIN (the OS refused a thread or a
 * process) adds the limit it most likely hit (cc_os_limit_hint). */
int conc_raise(lua_State *L, int err, const char *what);
/* Pushes nil, message, CODE and returns 3: for expected outcomes
 * (timeout, closed). */
int conc_fail(lua_State *L, int err);

/* Forking a lua_State (conc.process). The child's copy of L holds copies of
 * the parent's userdata, whose references the parent owns and may drop at
 * any moment after the fork. So, in the parent, right before fork() and with
 * no Lua allocation in between, conc_adopt_prepare takes one reference for
 * the child per conc userdata of L's object cache (conc_adopt_cancel gives
 * them back if the fork fails); in the child, conc_adopt_after_fork makes
 * the same userdata the owners of those references. A userdata that was not
 * in the cache (one waiting for its finalizer) stays the parent's: collected
 * in the child, it drops nothing. */
void conc_adopt_prepare(lua_State *L);
void conc_adopt_cancel(lua_State *L);
void conc_adopt_after_fork(lua_State *L, int32_t parent);

/* "file:line" of the Lua code that called the running C function (the
 * first frame above it with a line: through pcall too), or "?": the
 * default object name, a thread's start site, a lock's site. */
void conc_where(lua_State *L, char *buf, size_t n);

/* The arguments of conc.thread and conc.process: `[name | opts,] fn, ...`
 * with opts = {name=, daemon=}. Checks them and encodes fn and its arguments
 * into `job` (in the arena; raises on an uncopyable value). `name` points
 * into argument 1, which stays on the stack. */
typedef struct conc_spawn {
  const char *name;
  int daemon;
  conc_wbuf_t job;
} conc_spawn_t;
void conc_spawn_args(lua_State *L, conc_spawn_t *s);

/* The body of a thread's or a process's job, for lua_pcall with the
 * cc_thread_t (a Process's embedded one) as a light userdata: decodes the
 * job (then releases and frees it), calls it, encodes the results into the
 * arena and returns that block and its length as two values. */
int conc_run_job(lua_State *L);
/* (The message handler of a job's body is conc_error_handler, codec.h:
 * it keeps the error value; conclua_msghandler in conclua.h is the top
 * level's, as lua.c's.) */

/* ---- the checks every binding shares (lcheck.c) ----
 * conc_suggest: the candidate (NULL-terminated list) nearest to `word`
 * within one or two edits, or NULL. conc_check_options: every key of the
 * options table at idx is one of `keys`, else "bad argument #idx to 'f'
 * (unknown option 'nmae' (did you mean 'name'?))". conc_name_arg: the name
 * every constructor takes the same way, at idx: nil/none (NULL: the default
 * name), a string, or an options table checked against `keys` (NULL: only
 * "name") whose `name` field is the name; a name of CC_NAME_MAX bytes or
 * more raises (names are never cut). The string stays anchored at idx.
 * conc_methods_strict: makes a missing key of the methods table at idx
 * raise "conc.queue has no method or field 'gett' (did you mean 'get'?)";
 * conc_module_strict, a missing name of the module table at idx: "conc has
 * no field 'thred' (did you mean 'thread'?)" (rawget still reads nil). */
const char *conc_suggest(const char *word, const char *const cands[]);
void conc_check_options(lua_State *L, int idx, const char *const keys[]);
const char *conc_name_arg(lua_State *L, int idx, const char *const keys[]);
void conc_methods_strict(lua_State *L, int idx, const char *tname);
void conc_module_strict(lua_State *L, int idx);
/* luaL_argerror that names the method even when it was called without a
 * name (pcall(q.put, q, nil), or from a helper): the running function is
 * looked up in the methods of argument 1 ("bad argument #2 to 'put'"). */
int conc_argerror(lua_State *L, int arg, const char *msg);
/* The argument error of a wrong self (conc_check's): when argument 1 is
 * no conc object and the running function is a method of `type` called
 * without a colon (q.put(1)), says so: "bad argument #1 to 'put'
 * (conc.queue expected, got number (call it as q:put(...), with a
 * colon))"; else as conc_argerror. */
int conc_self_error(lua_State *L, int idx, const cc_type_t *type, const char *msg);
/* The argument at idx can be called (a function or has __call), else
 * "bad argument #n to 'with' (function expected, got number)". */
void conc_check_callable(lua_State *L, int idx);
/* A constructor's name, one way for all: argument 1 when it is a string,
 * or (if `tables`) an options table whose keys are `keys` (NULL: only
 * "name"). Writes the name, or the caller's file:line, into buf
 * (CC_NAME_MAX bytes) and returns the index of the constructor's own first
 * argument (2 when argument 1 was the name or options, else 1). */
int conc_ctor_name(lua_State *L, int tables, const char *const keys[], char *buf);
/* The error at the top of the stack, raised in another thread or process
 * that failed on a nil global: when that global exists in this (the
 * joining) state, adds to the message that globals are not shared and
 * what to do instead. Leaves anything else alone. */
void conc_hint_global(lua_State *L);

/* Ctrl-C (linterrupt.c). conc_interrupt_consumed: a wait returned CC_EINTR
 * and is raising it: drop the pending interrupt and its hook. In a host's
 * own state with a SIGINT handler installed (stock lua5.4 running a chunk),
 * conc_chain_sigint puts a handler in front of it that interrupts conc
 * waits of the calling thread and passes every other Ctrl-C on. */
void conc_interrupt_consumed(void);
void conc_chain_sigint(lua_State *L);

/* The shared arena and the Lua collector (lmemory.c). conc_gc_account
 * tells L's collector what the calling thread has allocated in the arena
 * since (call it after storing something there for Lua code);
 * conc_reclaim runs a full collection so that dropped objects give their
 * arena memory back: call it once before reporting CC_ENOMEM, and retry if
 * it returns 1. */
void conc_gc_account(lua_State *L);
int conc_reclaim(lua_State *L);

/* Openers of each binding file, called by luaopen_conc: each registers its
 * metatables and sets its functions into the module table at the top of
 * the stack. */
void conc_open_thread(lua_State *L);
void conc_open_sync(lua_State *L);
void conc_open_lock(lua_State *L);
void conc_open_queue(lua_State *L);
void conc_open_shared(lua_State *L);
void conc_open_process(lua_State *L);
void conc_open_pipe(lua_State *L);
/* conc.pool and Futures (lpool.c): after conc_open_thread and
 * conc_open_process, whose functions it takes from the module table. */
void conc_open_pool(lua_State *L);
/* The Future type of conc.pool (lpool_future.c). */
void conc_open_future(lua_State *L);
void conc_open_memory(lua_State *L);
/* conc.run, conc.task, conc.gather, conc.sleep (ltask.c): after
 * conc_open_thread, whose conc.sleep it replaces with one that suspends a
 * task; conc.tcp (ltcp.c). */
void conc_open_task(lua_State *L);
void conc_open_tcp(lua_State *L);
/* Replaces the global print (if it is a C function) with one that writes
 * each whole line in one write(2) (lprint.c). */
void conc_open_print(lua_State *L);
/* conc._encode / conc._decode (lcodec.c): debug entries for tests. */
void conc_open_codec(lua_State *L);
/* conc.dump (ldump.c); registers the state for tracebacks. */
void conc_open_dump(lua_State *L);
/* A task's coroutine while it runs (NULL after): whose Lua line a
 * parking task reports, and which coroutine a dump hooks (ldump.c). */
void conc_dump_running(lua_State *co);
/* Before the loop lets go of a task's coroutine (it may be collected). */
void conc_dump_forget(lua_State *co);

#endif
