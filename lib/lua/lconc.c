/*
 * lconc.c - luaopen_conc, the object userdata machinery, and the embedding
 * API of conclua.h.
 */
#include "lconc.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include <lualib.h>

#include "actor.h"
#include "conclua.h"
#include "env.h"
#include "process.h" /* cc_fork_on_child */
#include "thread.h"

uintptr_t conc_seal_key;
static pthread_once_t seal_once = PTHREAD_ONCE_INIT;

/* Any odd word nobody can guess works; the kernel's random bytes when it
 * has them, else addresses and the clock. */
static void make_seal_key(void) {
  uintptr_t k = 0;
  if (getrandom(&k, sizeof k, GRND_NONBLOCK) != (ssize_t)sizeof k)
    k = (uintptr_t)&k ^ ((uintptr_t)cc_now_ns() << 17) ^ (uintptr_t)&seal_once;
  conc_seal_key = k | 1;
}

/* Registry keys (addresses of these statics). */
static const char cache_key = 'c';

/* ---- objects ---------------------------------------------------------- */

static int obj_gc(lua_State *L) {
  conc_ud *u = lua_touserdata(L, 1);
  if (u && u->obj) {
    cc_obj_t *o = u->obj;
    conc_ud_set(u, NULL);
    if (u->pid == cc_pid) cc_obj_unref(o); /* else the parent process's reference */
  }
  return 0;
}

static int obj_eq(lua_State *L) {
  cc_obj_t *a = conc_toobj(L, 1), *b = conc_toobj(L, 2);
  lua_pushboolean(L, a != NULL && a == b);
  return 1;
}

/* State describers (conc_describe): set by the openers, read by tostring. */
static struct {
  const cc_type_t *type;
  conc_state_fn state;
} describers[32];
static _Atomic int ndescribers;

void conc_describe(const cc_type_t *type, conc_state_fn state) {
  static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  int n;
  pthread_mutex_lock(&mu);
  n = atomic_load(&ndescribers);
  for (int i = 0; i < n; i++)
    if (describers[i].type == type) goto out;
  if (n == 32) cc_panic("too many conc state describers");
  describers[n].type = type;
  describers[n].state = state;
  atomic_store(&ndescribers, n + 1); /* published after the entry */
out:
  pthread_mutex_unlock(&mu);
}

static conc_state_fn describer(const cc_type_t *type) {
  int n = atomic_load(&ndescribers);
  for (int i = 0; i < n; i++)
    if (describers[i].type == type) return describers[i].state;
  return NULL;
}

/* "conc.event 'ready' (set)" when the type has a state describer, else
 * "conc.pipe 'p' (0x...)". */
static int obj_tostring(lua_State *L) {
  conc_ud *u = lua_touserdata(L, 1);
  conc_state_fn state;
  if (!u || !u->obj) {
    lua_pushstring(L, "conc object (closed)");
  } else if ((state = describer(u->obj->type)) != NULL) {
    char buf[96];
    buf[0] = '\0';
    state(u->obj, buf, sizeof buf);
    lua_pushfstring(L, "conc.%s '%s' (%s)", u->obj->type->name, u->obj->name, buf);
  } else {
    lua_pushfstring(L, "conc.%s '%s' (%p)", u->obj->type->name, u->obj->name,
                    (void *)u->obj);
  }
  return 1;
}

/* __index: the type's field function first (upvalue 2), then methods
 * (upvalue 1). */
static int obj_index(lua_State *L) {
  if (!lua_isnil(L, lua_upvalueindex(2))) {
    lua_CFunction f = lua_tocfunction(L, lua_upvalueindex(2));
    int top = lua_gettop(L);
    int n = f(L);
    if (n > 0) return n;
    lua_settop(L, top);
  }
  lua_pushvalue(L, 2);
  lua_gettable(L, lua_upvalueindex(1)); /* a miss raises (conc_methods_strict) */
  return 1;
}

/* __newindex of conc objects: "cannot set 'name' on a conc.thread (its
 * fields are read-only)" rather than "attempt to index a conc.thread value". */
static int read_only(lua_State *L) {
  return luaL_error(L, "cannot set '%s' on a %s (its fields are read-only)",
                    luaL_tolstring(L, 2, NULL), lua_tostring(L, lua_upvalueindex(1)));
}

void conc_newtype(lua_State *L, const cc_type_t *type, const luaL_Reg *methods,
                  const luaL_Reg *metamethods, lua_CFunction index) {
  char tname[64];
  snprintf(tname, sizeof tname, "conc.%s", type->name);
  if (!luaL_newmetatable(L, tname)) {
    lua_pop(L, 1);
    return;
  }
  lua_pushlightuserdata(L, (void *)type);
  lua_setfield(L, -2, "__conctype");
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, type); /* fast type checks */
  lua_newtable(L);
  if (methods) luaL_setfuncs(L, methods, 0);
  conc_methods_strict(L, -1, tname); /* a misspelled method raises, with a suggestion */
  if (index) {
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__methods"); /* where conc_argerror finds a method's name */
    lua_pushcfunction(L, index);
    lua_pushcclosure(L, obj_index, 2);
  } /* else method lookups go straight to the table: no C call per l:m() */
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, obj_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, obj_eq);
  lua_setfield(L, -2, "__eq");
  lua_pushcfunction(L, obj_tostring);
  lua_setfield(L, -2, "__tostring");
  if (metamethods) luaL_setfuncs(L, metamethods, 0);
  if (lua_getfield(L, -1, "__newindex") == LUA_TNIL) { /* fields are read-only */
    lua_pushstring(L, tname);
    lua_pushcclosure(L, read_only, 1);
    lua_setfield(L, -3, "__newindex");
  }
  lua_pop(L, 2);
}

/* ---- lazily built metatables ------------------------------------------
 * Building every type's metatable in every new lua_State would cost most of
 * a thread's start-up; instead each opener records a builder, and a state
 * builds a type's metatable the first time an object of that type is pushed
 * into it. The table is process-global and only grows. */

#define MAX_TYPES 32

static struct {
  const cc_type_t *type;
  conc_build_fn build;
  const luaL_Reg *methods;
} builders[MAX_TYPES];
static int nbuilders;
static pthread_mutex_t builders_mu = PTHREAD_MUTEX_INITIALIZER;

/* Process-private: a fork while another thread held it (a worker opening
 * conc in a fresh state) would leave it locked in the child. The entries
 * are consistent whenever nbuilders is (it is bumped last), so the child
 * only needs a fresh mutex (docs/LOCKING.md, "Fork", step 6). */
static void builders_after_fork(void) {
  pthread_mutex_init(&builders_mu, NULL);
}

__attribute__((constructor)) static void builders_fork_reset(void) {
  cc_fork_on_child(builders_after_fork);
}

void conc_lazytype(const cc_type_t *type, conc_build_fn build, const luaL_Reg *methods) {
  pthread_mutex_lock(&builders_mu);
  for (int i = 0; i < nbuilders; i++)
    if (builders[i].type == type) goto out;
  if (nbuilders == MAX_TYPES) cc_panic("too many conc types");
  builders[nbuilders].type = type;
  builders[nbuilders].build = build;
  builders[nbuilders].methods = methods;
  nbuilders++;
out:
  pthread_mutex_unlock(&builders_mu);
}

int conc_pushmetatable(lua_State *L, const cc_type_t *type) {
  conc_build_fn build = NULL;
  const luaL_Reg *methods = NULL;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, type) == LUA_TTABLE) return 1;
  lua_pop(L, 1);
  pthread_mutex_lock(&builders_mu);
  for (int i = 0; i < nbuilders; i++)
    if (builders[i].type == type) {
      build = builders[i].build;
      methods = builders[i].methods;
    }
  pthread_mutex_unlock(&builders_mu);
  if (!build) return 0;
  build(L, type, methods);
  return lua_rawgetp(L, LUA_REGISTRYINDEX, type) == LUA_TTABLE || (lua_pop(L, 1), 0);
}

/* Pushes the weak cache table. */
static void push_cache(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &cache_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_newtable(L);
    lua_pushstring(L, "v");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &cache_key);
  }
}

static void push_obj(lua_State *L, cc_obj_t *o, int owned) {
  conc_ud *u;
  push_cache(L);
  if (lua_rawgetp(L, -1, o) == LUA_TUSERDATA) {
    lua_remove(L, -2);
    if (owned) cc_obj_unref(o); /* the cached userdata already has one */
    return;
  }
  lua_pop(L, 1);
  u = lua_newuserdatauv(L, sizeof *u, 1);
  conc_ud_set(u, NULL);
  if (!conc_pushmetatable(L, o->type)) {
    if (owned) cc_obj_unref(o);
    luaL_error(L, "conc type '%s' is not registered in this state", o->type->name);
  }
  lua_setmetatable(L, -2);
  if (!owned) cc_obj_ref(o);
  conc_ud_set(u, o);
  u->pid = cc_pid;
  lua_pushvalue(L, -1);
  lua_rawsetp(L, -3, o);
  lua_remove(L, -2);
}

/* Calls fn on every conc userdata of L's object cache that holds a
 * reference of process `pid`. Allocates nothing once the cache exists. */
static void each_held_by(lua_State *L, int32_t pid, void (*fn)(conc_ud *u)) {
  push_cache(L);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    conc_ud *u = lua_touserdata(L, -1);
    if (u && u->obj && u->pid == pid) fn(u);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

static void ref_for_child(conc_ud *u) {
  cc_obj_ref(u->obj);
}

static void unref_for_child(conc_ud *u) {
  cc_obj_unref(u->obj);
}

static void adopt(conc_ud *u) {
  u->pid = cc_pid;
}

void conc_adopt_prepare(lua_State *L) {
  push_cache(L); /* made now if ever: nothing allocates after this */
  lua_pop(L, 1);
  each_held_by(L, cc_pid, ref_for_child);
}

void conc_adopt_cancel(lua_State *L) {
  each_held_by(L, cc_pid, unref_for_child);
}

void conc_adopt_after_fork(lua_State *L, int32_t parent) {
  each_held_by(L, parent, adopt);
}

void conc_push(lua_State *L, cc_obj_t *o) {
  push_obj(L, o, 0);
}

/* lua_pcall'd by conc_push_owned: argument 1 is the object. */
static int push_protected(lua_State *L) {
  push_obj(L, lua_touserdata(L, 1), 0);
  return 1;
}

void conc_push_owned(lua_State *L, cc_obj_t *o) {
  int st;
  /* Making the userdata may run out of Lua memory (the userdata itself, the
   * cache, the metatable): do it in protected mode with the userdata taking
   * a reference of its own, and drop the caller's either way, so a failed
   * constructor leaks nothing. */
  lua_pushcfunction(L, push_protected);
  lua_pushlightuserdata(L, o);
  st = lua_pcall(L, 1, 1, 0);
  cc_obj_unref(o);
  if (st != LUA_OK) lua_error(L);
  conc_gc_account(L); /* a new object: what it took from the arena */
}

cc_obj_t *conc_toobj(lua_State *L, int idx) {
  conc_ud *u = lua_touserdata(L, idx);
  cc_obj_t *o = NULL;
  if (!u || !lua_getmetatable(L, idx)) return NULL;
  if (lua_getfield(L, -1, "__conctype") == LUA_TLIGHTUSERDATA) o = u->obj;
  lua_pop(L, 2);
  return o;
}

cc_obj_t *conc_check(lua_State *L, int idx, const cc_type_t *type) {
  conc_ud *u = lua_touserdata(L, idx);
  int ok = 0;
  if (u && lua_getmetatable(L, idx)) {
    if (type) {
      lua_rawgetp(L, LUA_REGISTRYINDEX, type);
      ok = lua_rawequal(L, -1, -2);
      lua_pop(L, 2);
    } else {
      ok = lua_getfield(L, -1, "__conctype") == LUA_TLIGHTUSERDATA;
      lua_pop(L, 2);
    }
  }
  if (!ok) {
    char tname[64];
    snprintf(tname, sizeof tname, "conc.%s", type ? type->name : "object");
    const char *got = luaL_getmetafield(L, idx, "__name") == LUA_TSTRING
                          ? lua_tostring(L, -1) : luaL_typename(L, idx);
    conc_self_error(L, idx, type, lua_pushfstring(L, "%s expected, got %s", tname, got));
  }
  if (!u->obj) conc_argerror(L, idx, "object is closed");
  return u->obj;
}

cc_obj_t *conc_self_slow(lua_State *L) {
  const cc_type_t *t = NULL;
  if (lua_getfield(L, lua_upvalueindex(1), "__conctype") == LUA_TLIGHTUSERDATA)
    t = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return conc_check(L, 1, t);
}

cc_deadline_t conc_opt_deadline(lua_State *L, int idx) {
  double s;
  int isnum;
  switch (lua_type(L, idx)) {
  case LUA_TNONE:
  case LUA_TNIL:
    return CC_FOREVER;
  case LUA_TBOOLEAN: /* Python's blocking=True/False */
    return lua_toboolean(L, idx) ? CC_FOREVER : CC_NOW;
  default:
    s = lua_tonumberx(L, idx, &isnum);
    if (!isnum || lua_type(L, idx) != LUA_TNUMBER)
      conc_argerror(L, idx, lua_pushfstring(L, "timeout expected (seconds or boolean), got %s",
                                            luaL_typename(L, idx)));
    if (!(s >= 0)) conc_argerror(L, idx, "timeout must be a non-negative number");
    if (s == 0) return CC_NOW;
    return cc_deadline_in(s);
  }
}

int conc_raise(lua_State *L, int err, const char *what) {
  if (err == CC_EDEADLOCK) return luaL_error(L, "%s", cc_deadlock_message());
  if (err == CC_EINTR) {
    conc_interrupt_consumed();
    return luaL_error(L, "interrupted!");
  }
  if (err == CC_EAGAIN) { /* the OS refused a thread or a process: say which limit */
    char hint[256];
    return luaL_error(L, "%s: %s (%s)", what, cc_strerror(err),
                      cc_os_limit_hint(hint, sizeof hint));
  }
  return luaL_error(L, "%s: %s", what, cc_strerror(err));
}

int conc_fail(lua_State *L, int err) {
  if (err == CC_EINTR || err == CC_EDEADLOCK) return conc_raise(L, err, "wait");
  lua_pushnil(L);
  lua_pushstring(L, cc_strerror(err));
  lua_pushstring(L, cc_errname(err));
  return 3;
}

void conc_where(lua_State *L, char *buf, size_t n) {
  lua_Debug ar;
  for (int level = 1; lua_getstack(L, level, &ar); level++) {
    if (!lua_getinfo(L, "Sl", &ar)) break;
    if (ar.currentline > 0) { /* not a C function, such as pcall */
      snprintf(buf, n, "%s:%d", ar.short_src, ar.currentline);
      return;
    }
  }
  snprintf(buf, n, "?");
}

/* ---- module ----------------------------------------------------------- */

static const char runtime_state_key = 'r';

/* __gc of a sentinel in a host's state: closing the state that opened conc
 * (stock lua5.4 at exit, or a host) waits for non-daemon threads, as the
 * conclua program and Python do, then stops the idle workers so that none
 * runs while the host tears down (their code stays mapped: the module is
 * linked with -z nodelete). Runtime-made states have no sentinel. */
static int wait_at_close(lua_State *L) {
  (void)L;
  cc_thread_wait_nondaemon();
  cc_thread_stop_workers();
  return 0;
}

int luaopen_conc(lua_State *L) {
  const char *bad_env = cc_env_check();
  if (bad_env) return luaL_error(L, "conc: %s", bad_env);
  if (cc_arena_init() != 0) return luaL_error(L, "conc: %s", cc_arena_error());
  pthread_once(&seal_once, make_seal_key);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &runtime_state_key) == LUA_TNIL) {
    lua_newuserdatauv(L, 0, 0);
    lua_newtable(L);
    lua_pushcfunction(L, wait_at_close);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &runtime_state_key);
    conc_chain_sigint(L);
  }
  lua_pop(L, 1);
  lua_createtable(L, 0, 64); /* the module table, sized once: no rehash per opener */
  conc_open_thread(L);
  conc_open_sync(L);
  conc_open_lock(L);
  conc_open_queue(L);
  conc_open_shared(L);
  conc_open_process(L);
  conc_open_pipe(L);
  conc_open_pool(L);
  conc_open_future(L);
  conc_open_task(L); /* after conc_open_thread: its conc.sleep suspends tasks */
  conc_open_tcp(L);
  conc_open_memory(L);
  conc_open_codec(L);
  conc_open_print(L);
  conc_open_dump(L);
  lua_pushliteral(L, CONCLUA_VERSION);
  lua_setfield(L, -2, "version");
  conc_module_strict(L, -1); /* conc.thred raises, with a suggestion */
  return 1;
}

/* ---- embedding -------------------------------------------------------- */

static conclua_state_hook state_hook;
static void *state_hook_ud;

void conclua_set_state_hook(conclua_state_hook hook, void *ud) {
  state_hook = hook;
  state_hook_ud = ud;
}

int conclua_openlibs(lua_State *L) {
  if (!L) return CONCLUA_EINVAL;
  luaL_openlibs(L);
  luaL_requiref(L, "conc", luaopen_conc, 1);
  lua_pop(L, 1);
  return LUA_OK;
}

/* In protected mode, all of it: out of memory anywhere here (the registry
 * flag's store included) is an error conclua_newstate reports, not a
 * panic that aborts the program. */
static int prepare_state(lua_State *L) {
  lua_pushboolean(L, 1); /* a runtime state: luaopen_conc reads this */
  lua_rawsetp(L, LUA_REGISTRYINDEX, &runtime_state_key);
  conclua_openlibs(L);
  if (state_hook) state_hook(L, state_hook_ud);
  return 0;
}

lua_State *conclua_newstate(void) {
  lua_State *L = luaL_newstate();
  if (!L) return NULL;
  lua_pushcfunction(L, prepare_state);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
    fprintf(stderr, "conclua: cannot prepare a new state: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return NULL;
  }
  return L;
}

/* The top level's message handler (as lua.c's): a string error gets the
 * traceback; an object with __tostring becomes that string; anything else
 * says what it is. A job's body (thread, process, pool task) uses
 * conc_error_handler (codec.h), which keeps the error value. */
int conclua_msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* Runs the chunk a luaL_load* call left on the stack (status st) as
 * conclua_dofile documents. */
static int run_chunk(lua_State *L, int st) {
  int base;
  if (st != LUA_OK) return st;
  base = lua_gettop(L);
  lua_pushcfunction(L, conclua_msghandler);
  lua_insert(L, base);
  st = lua_pcall(L, 0, LUA_MULTRET, base);
  lua_remove(L, base);
  return st;
}

int conclua_dofile(lua_State *L, const char *path) {
  return L ? run_chunk(L, luaL_loadfile(L, path)) : CONCLUA_EINVAL;
}

int conclua_dostring(lua_State *L, const char *chunk, const char *chunkname) {
  if (!L || !chunk) return CONCLUA_EINVAL;
  return run_chunk(L, luaL_loadbuffer(L, chunk, strlen(chunk), chunkname ? chunkname : chunk));
}

void conclua_wait_threads(void) {
  cc_thread_wait_nondaemon();
}

int conclua_wait_threads_for(double seconds) {
  int rc;
  if (seconds != seconds) return CONCLUA_EINVAL;
  rc = cc_thread_wait_nondaemon_until(seconds < 0 ? CC_FOREVER : cc_deadline_in(seconds));
  if (rc == CC_EINTR) conc_interrupt_consumed();
  return rc == 0 ? CONCLUA_OK : rc == CC_ETIMEOUT ? CONCLUA_ETIMEOUT : CONCLUA_EINTR;
}
