/*
 * conclua.h - embedding conclua in a host program: the one installed header.
 *
 * conclua gives Lua 5.4 real OS threads, processes, locks, queues and shared
 * tables. A host opens the `conc` module into its own lua_State with
 * conclua_openlibs() (or luaopen_conc()), and the runtime creates a fresh
 * lua_State for every thread it starts: conclua_set_state_hook() lets the
 * host prepare each of those (register its own C bindings) before any code
 * runs in it. The host's own C threads can talk to scripts without Lua
 * through the conc objects below (queues, events, locks).
 *
 * Build against it with `pkg-config --cflags --libs conclua` or, in CMake,
 * `find_package(conclua)` and the target conclua::conclua. docs/EMBEDDING.md
 * walks through it; examples/ holds complete hosts.
 *
 * Conventions used in every contract below:
 * - Errors. Functions that run Lua code (conclua_dofile, conclua_dostring,
 *   conclua_openlibs) return a Lua status (LUA_OK, LUA_ERRRUN, ...), with the
 *   error message on top of the stack; functions on conc objects return
 *   CONCLUA_OK (0) or a negative CONCLUA_E* code. Every function returns
 *   CONCLUA_EINVAL for a NULL state or object, an object of the wrong type,
 *   or a bad argument: bad input never crashes.
 * - Timeouts are seconds as a double: CONCLUA_FOREVER (any negative value)
 *   waits without limit, 0 tries once without blocking.
 * - Blocking. Only the functions marked "blocks" can wait. A wait on the
 *   interruptible thread (see Ctrl-C) ends with CONCLUA_EINTR on Ctrl-C.
 * - Thread-safety. Every function may be called from any thread at any time,
 *   except where its contract says otherwise. A lua_State itself is not
 *   thread-safe: functions that take one must run on the thread that uses
 *   that state.
 */
#ifndef CONCLUA_H
#define CONCLUA_H

#ifdef __cplusplus
extern "C" {
#endif

#include <stddef.h>

#include <lua.h>

/* ---- version ------------------------------------------------------------ */

#define CONCLUA_VERSION_MAJOR 0
#define CONCLUA_VERSION_MINOR 1
#define CONCLUA_VERSION_PATCH 0
#define CONCLUA_VERSION "0.1.0"
/* major * 10000 + minor * 100 + patch: compare with conclua_version(). */
#define CONCLUA_VERSION_NUM                                                    \
  (CONCLUA_VERSION_MAJOR * 10000 + CONCLUA_VERSION_MINOR * 100 +              \
   CONCLUA_VERSION_PATCH)

/* Only the names in this header are exported from libconclua.so and conc.so;
 * everything else is built with hidden visibility, and every internal symbol
 * of libconclua.a carries a project prefix (cc_, conc_). */
#if defined(__GNUC__)
#define CONCLUA_API __attribute__((visibility("default")))
#else
#define CONCLUA_API
#endif

/* The version of the library actually linked (CONCLUA_VERSION_NUM when it
 * was built), for a host that checks at run time that it got the library it
 * was compiled against. Never fails, never blocks. */
CONCLUA_API int conclua_version(void);

/* ---- errors ------------------------------------------------------------- */

enum {
  CONCLUA_OK = 0,
  CONCLUA_EINVAL = -1,    /* NULL state or object, wrong object type, bad argument */
  CONCLUA_ETIMEOUT = -2,  /* the timeout passed (or 0 and it would block) */
  CONCLUA_ECLOSED = -3,   /* the queue is closed (and, for a get, drained) */
  CONCLUA_ENOMEM = -4,    /* the shared arena (or malloc) is out of memory */
  CONCLUA_EINTR = -5,     /* Ctrl-C interrupted the wait */
  CONCLUA_EDEADLOCK = -6, /* an untimed lock wait that could never end */
  CONCLUA_ENOTOWNER = -7, /* releasing a lock the calling thread does not hold */
  CONCLUA_ELUA = -8,      /* a Lua error: the message is on top of the stack */
  CONCLUA_ESYS = -9       /* any other failure */
};

/* A short, stable message for a CONCLUA_E* code ("timeout", "closed", ...;
 * "ok" for 0, "unknown error" for anything else). Never NULL; the string
 * is static. */
CONCLUA_API const char *conclua_strerror(int err);

/* Waits without limit (any negative timeout does). */
#define CONCLUA_FOREVER (-1.0)

/* ---- opening conc in a state -------------------------------------------- */

/* The `conc` module opener: `package.preload.conc = luaopen_conc`, or called
 * through luaL_requiref. Returns 1 (the module table). Raises a Lua error
 * (like any lua_CFunction) when the shared arena cannot be mapped, e.g. for
 * a malformed CONCLUA_ARENA_MB. The first state that opens conc is the
 * "opening state": closing it waits for the non-daemon threads and stops
 * the idle workers. */
CONCLUA_API int luaopen_conc(lua_State *L);

/* Opens the standard libraries and `conc` (also as the global `conc`) into
 * L, as the conclua program does. Returns LUA_OK, or CONCLUA_EINVAL when L
 * is NULL. Raises Lua errors like luaL_openlibs (out of memory, the arena
 * cannot be mapped): call it in protected mode, or use conclua_newstate(),
 * which does. Never blocks. */
CONCLUA_API int conclua_openlibs(lua_State *L);

/* Called on every lua_State the runtime creates (one per conc thread, in
 * the thread that creates it), after the standard libraries and `conc` are
 * open and before any user code runs in it; `ud` is passed through. It may
 * raise a Lua error: the message is printed to stderr and the thread fails
 * ("cannot create a Lua state for the thread").
 * The hook is not called on states the host makes itself (call it there
 * too if they need the same bindings). */
typedef void (*conclua_state_hook)(lua_State *L, void *ud);

/* Installs (or, with NULL, removes) the state hook. Not thread-safe: call
 * it before the first conc thread starts, and never change it while
 * threads may be starting. Never blocks. */
CONCLUA_API void conclua_set_state_hook(conclua_state_hook hook, void *ud);

/* A new lua_State prepared like every conc thread's: standard libraries,
 * `conc`, then the state hook, all in protected mode. NULL when out of
 * memory or when preparing it failed (the reason is printed to stderr).
 * The caller closes it with lua_close(). Never blocks. */
CONCLUA_API lua_State *conclua_newstate(void);

/* ---- running code ------------------------------------------------------- */

/* Runs the file at `path` (NULL: stdin) in protected mode with
 * conclua_msghandler. Returns LUA_OK with the chunk's results on the stack,
 * or an error status with the message (and traceback) on top of the stack;
 * CONCLUA_EINVAL (nothing pushed) when L is NULL. Blocks as long as the
 * chunk runs. */
CONCLUA_API int conclua_dofile(lua_State *L, const char *path);

/* Runs the string `chunk` as conclua_dofile runs a file; `chunkname` names
 * it in messages (NULL: the chunk itself, as luaL_loadstring). Returns as
 * conclua_dofile; CONCLUA_EINVAL when L or chunk is NULL. */
CONCLUA_API int conclua_dostring(lua_State *L, const char *chunk, const char *chunkname);

/* The message handler conclua_dofile and the conclua program use (give it
 * to lua_pcall as msgh): like lua.c's, a string error gets a traceback, an
 * object with __tostring becomes that string, anything else is described. */
CONCLUA_API int conclua_msghandler(lua_State *L);

/* Blocks until every non-daemon conc thread this process started has
 * ended, as the conclua program does when its main chunk ends. Call it
 * before lua_close() on the opening state (which would wait too). */
CONCLUA_API void conclua_wait_threads(void);

/* The same wait for at most `seconds` (negative: no limit). CONCLUA_OK when
 * they have all ended, CONCLUA_ETIMEOUT when some still run at the limit,
 * CONCLUA_EINTR when the calling thread is the interruptible one and an
 * interrupt arrived (it is consumed), CONCLUA_EINVAL for a NaN. */
CONCLUA_API int conclua_wait_threads_for(double seconds);

/* ---- Ctrl-C --------------------------------------------------------------
 * One thread per process is interruptible: its blocking conc calls (in Lua
 * or through the C functions below) end with the error "interrupted!"
 * (CONCLUA_EINTR in C) when an interrupt arrives. The conclua program makes
 * its main thread interruptible and calls conclua_interrupt from its SIGINT
 * handler; a host does the same with its own handler. */

/* Makes the calling thread the interruptible one (on != 0), or not (on ==
 * 0). One thread per process: the last call wins. Never blocks. */
CONCLUA_API void conclua_set_interruptible(int on);

/* Async-signal-safe: meant for a SIGINT handler running on the
 * interruptible thread, with L the state that thread runs. The blocking
 * conc call that thread is in, or else the next Lua instruction run in L,
 * raises "interrupted!", once: the error can be caught, and the cleanup
 * code after it runs undisturbed. With L NULL only the blocking conc
 * call is interrupted (running Lua code is not). */
CONCLUA_API void conclua_interrupt(lua_State *L);

/* Drops an interrupt that no call consumed (call it when the protected
 * call it was meant for has returned). L may be NULL (only the pending flag
 * is dropped). Not async-signal-safe; never blocks. */
CONCLUA_API void conclua_interrupt_reset(lua_State *L);

/* ---- conc objects from C -------------------------------------------------
 * A conclua_object is a reference to a conc object (a queue, an event, a
 * lock, ... the same object scripts see). A host gets one from a Lua value
 * (conclua_toobject) or makes one (conclua_queue_new, ...), and hands it to
 * scripts with conclua_pushobject (for instance from the state hook, so
 * that every thread sees it as a global). Each reference the host holds is
 * dropped with conclua_object_unref; the object lives while any state or
 * host holds it. Objects work between threads and forked processes alike.
 *
 * A host thread that waits on or holds conc objects is known to the
 * runtime by a small record (for deadlock reports), kept until the process
 * ends. */
typedef struct conclua_object conclua_object;

/* A new reference to the conc object at stack index idx of L, or NULL when
 * L is NULL or the value is not an open conc object. Never raises, never
 * blocks. */
CONCLUA_API conclua_object *conclua_toobject(lua_State *L, int idx);

/* Pushes o into L as the Lua value scripts use (the same userdata each
 * time within one state). `conc` must be open in L (conclua_openlibs or
 * the runtime's own states). Returns CONCLUA_OK, or CONCLUA_EINVAL (nothing
 * pushed) when L or o is NULL. Raises a Lua memory error as lua_push*
 * functions do. The caller keeps its own reference. */
CONCLUA_API int conclua_pushobject(lua_State *L, conclua_object *o);

/* Takes another reference to o (returns o; NULL for NULL). */
CONCLUA_API conclua_object *conclua_object_ref(conclua_object *o);

/* Drops one reference (NULL is ignored); the last one frees the object.
 * Never blocks. */
CONCLUA_API void conclua_object_unref(conclua_object *o);

/* The object's type name ("queue", "event", "lock", "rlock", ...) and its
 * name (the script's "file:line" or the name given at creation). NULL for
 * NULL. The strings live as long as the object. */
CONCLUA_API const char *conclua_object_type(const conclua_object *o);
CONCLUA_API const char *conclua_object_name(const conclua_object *o);

/* ---- values --------------------------------------------------------------
 * A value taken from a queue. `type` is a Lua type (LUA_TNIL, LUA_TBOOLEAN,
 * LUA_TNUMBER, LUA_TSTRING) for plain values, or CONCLUA_TENCODED for any
 * other value (a table, a function, a conc object, ...), held in conc's
 * encoded form: conclua_value_push decodes it into a state. Fields other
 * than those of its type are zero. Free it with conclua_value_free. */
#define CONCLUA_TENCODED 100

typedef struct conclua_value {
  int type;
  int boolean;        /* LUA_TBOOLEAN: 0 or 1 */
  int isinteger;      /* LUA_TNUMBER: 1 for an integer, 0 for a float */
  lua_Integer integer;
  lua_Number number;  /* LUA_TNUMBER: set for both (integers converted) */
  const char *str;    /* LUA_TSTRING: the bytes, NUL-terminated;
                         CONCLUA_TENCODED: the encoded bytes */
  size_t len;         /* bytes at str (without the NUL) */
  void *internal_;    /* owned storage: do not touch */
} conclua_value;

/* Pushes v into L (a plain value directly; an encoded one decoded, conc
 * objects included). Returns CONCLUA_OK; CONCLUA_EINVAL (nothing pushed)
 * for a NULL L or v or an unknown type; CONCLUA_ELUA when decoding failed
 * (the message is pushed instead of the value). v is unchanged. Never
 * blocks. */
CONCLUA_API int conclua_value_push(lua_State *L, const conclua_value *v);

/* Frees what v holds and leaves it LUA_TNIL. NULL and an already freed (or
 * zeroed) value are ignored. Never blocks. */
CONCLUA_API void conclua_value_free(conclua_value *v);

/* ---- queues (conc.queue) ------------------------------------------------ */

/* A new queue (maxsize 0: unbounded) with one reference for the caller.
 * `name` may be NULL ("host"). NULL when the arena cannot be mapped or is
 * full. Never blocks. */
CONCLUA_API conclua_object *conclua_queue_new(unsigned maxsize, const char *name);

/* Appends a value: a string of len bytes (scripts get a Lua string), an
 * integer, a float, or (put_value) any copyable Lua value at index idx of
 * the host's state L, encoded as a script's put would. Blocks while the
 * queue is full, up to `timeout`. Returns CONCLUA_OK, CONCLUA_ETIMEOUT,
 * CONCLUA_ECLOSED, CONCLUA_ENOMEM, CONCLUA_EINTR, CONCLUA_EINVAL (q NULL or
 * not a queue, s NULL with len > 0, a NaN timeout; for put_value: L NULL,
 * an invalid index, a nil value). put_value returns CONCLUA_ELUA with the
 * message pushed on L when the value cannot be copied (a coroutine, ...). */
CONCLUA_API int conclua_queue_put_string(conclua_object *q, const char *s, size_t len,
                                         double timeout);
CONCLUA_API int conclua_queue_put_integer(conclua_object *q, lua_Integer i, double timeout);
CONCLUA_API int conclua_queue_put_number(conclua_object *q, lua_Number n, double timeout);
CONCLUA_API int conclua_queue_put_value(conclua_object *q, lua_State *L, int idx,
                                        double timeout);

/* Removes the first item into *out (free it with conclua_value_free).
 * Blocks while the queue is empty and open, up to `timeout`. Returns
 * CONCLUA_OK; CONCLUA_ETIMEOUT; CONCLUA_ECLOSED (closed and drained);
 * CONCLUA_EINTR; CONCLUA_ENOMEM (no memory for a long string's copy: the
 * item is lost); CONCLUA_EINVAL (q or out NULL, not a queue). On any error
 * *out is LUA_TNIL. */
CONCLUA_API int conclua_queue_get(conclua_object *q, conclua_value *out, double timeout);

/* Closes the queue, as queue:close() does: later puts fail with
 * CONCLUA_ECLOSED, gets drain what is left. Idempotent. Returns CONCLUA_OK
 * or CONCLUA_EINVAL. Never blocks. */
CONCLUA_API int conclua_queue_close(conclua_object *q);

/* Items in the queue now (a snapshot), or CONCLUA_EINVAL. Never blocks. */
CONCLUA_API long conclua_queue_size(conclua_object *q);

/* ---- events (conc.event) ------------------------------------------------ */

/* A new event, clear, with one reference; NULL when out of memory. */
CONCLUA_API conclua_object *conclua_event_new(const char *name);

/* set wakes every waiter; clear resets the flag. CONCLUA_OK or
 * CONCLUA_EINVAL. Never block. */
CONCLUA_API int conclua_event_set(conclua_object *e);
CONCLUA_API int conclua_event_clear(conclua_object *e);

/* 1 when the flag is set, 0 when not, or CONCLUA_EINVAL. Never blocks. */
CONCLUA_API int conclua_event_is_set(conclua_object *e);

/* Blocks until the event is set (or was set while waiting), up to
 * `timeout`. CONCLUA_OK, CONCLUA_ETIMEOUT, CONCLUA_EINTR or CONCLUA_EINVAL. */
CONCLUA_API int conclua_event_wait(conclua_object *e, double timeout);

/* ---- locks (conc.lock, conc.rlock) -------------------------------------- */

/* A new lock (recursive != 0: an rlock) with one reference; NULL when out
 * of memory. */
CONCLUA_API conclua_object *conclua_lock_new(const char *name, int recursive);

/* Acquires a lock or an rlock for the calling OS thread, blocking up to
 * `timeout`. CONCLUA_OK; CONCLUA_ETIMEOUT; CONCLUA_EDEADLOCK (an untimed
 * wait that would close a cycle of lock waits, a second acquire of a plain
 * lock by its holder included); CONCLUA_EINTR; CONCLUA_EINVAL. A host
 * thread must release what it holds before it ends. */
CONCLUA_API int conclua_lock_acquire(conclua_object *l, double timeout);

/* Releases one level held by the calling thread: CONCLUA_OK,
 * CONCLUA_ENOTOWNER or CONCLUA_EINVAL. Never blocks. */
CONCLUA_API int conclua_lock_release(conclua_object *l);

/* ---- seeing what happens (docs/INSIGHT.md) --------------------------------
 * What the conclua program's --trace, --timeline, --lock-order and Ctrl-\
 * use; a host may call them too. */

/* Starts recording a timeline of every thread, process, pool worker and
 * task of this process family (running, waiting on what, holding which
 * lock; queue puts and gets): json_path (may be NULL) gets Chrome
 * trace-event JSON (opens in Perfetto or chrome://tracing), html_path (may
 * be NULL) one self-contained HTML page that draws it. Both files are
 * created now: CONCLUA_ESYS, with a message in err (n bytes), when one
 * cannot be written; CONCLUA_EINVAL when a trace is already on or both
 * paths are NULL. Call before starting threads; never blocks. */
CONCLUA_API int conclua_trace_start(const char *json_path, const char *html_path, char *err,
                                    size_t n);

/* Writes the files of the trace started by this process and stops it:
 * spans still open (a thread still waiting, a killed process) are closed
 * at their last event. CONCLUA_OK (also when no trace is on, or in a
 * forked child) or CONCLUA_ESYS with a message in err. Safe from atexit;
 * call it after conclua_wait_threads. */
CONCLUA_API int conclua_trace_stop(char *err, size_t n);

/* Turns on the lock-order checker for this process (and children forked
 * later): when two locks are ever taken in both orders, a warning naming
 * both locks and the file:line of both acquisitions goes to stderr, once
 * per pair. Call before starting threads. Never blocks. */
CONCLUA_API void conclua_lock_order(void);

/* What conc.dump() returns, as a malloc'd string the caller frees (NULL
 * when out of memory): every live thread, process and task, its state, what
 * it waits for and since when, what it holds, and its Lua traceback when
 * it can be had safely. Blocks up to about 0.2 s while running threads
 * report. */
CONCLUA_API char *conclua_dump(void);

/* Makes SIGQUIT (Ctrl-\) print conclua_dump() to stderr, and the program
 * go on: SIGQUIT is blocked in the calling thread (so in the threads it
 * starts later) and taken by a thread of its own. CONCLUA_OK or
 * CONCLUA_ESYS. Call from the main thread before starting threads;
 * later calls do nothing. */
CONCLUA_API int conclua_dump_on_sigquit(void);

#ifdef __cplusplus
}
#endif

#endif
