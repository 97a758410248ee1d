/*
 * llock.c - conc.lock, conc.rlock, conc.condition, and the helpers every
 * synchronisation binding shares (lsync.h): method dispatch, timeouts,
 * with() and hold() guards.
 */
#include <stdio.h>

#include "cond.h"
#include "lock.h"
#include "wait.h"
#include "lsync.h"

#define GUARD_T "conc.guard"

/* ---- shared helpers ----------------------------------------------------- */

int conc_sync_raise(lua_State *L, int err, const char *what) {
  if (err == CC_EDEADLOCK) {
    lua_pushstring(L, cc_deadlock_message());
    return lua_error(L);
  }
  if (err == CC_ETOOMANY)
    return luaL_error(L, "%s: %s holds %d locks already, the most one thread or task can hold at "
                         "once (release some first)", what, conc_task_of(L) ? "this task" : "this thread",
                      CC_MAX_HELD);
  return conc_raise(L, err, what);
}

int conc_sync_notowner(lua_State *L, cc_obj_t *o, const char *verb) {
  return luaL_error(L, "cannot %s un-acquired %s '%s'", verb, o->type->name, o->name);
}

/* The one guard of with() and hold() (locks, semaphores, conditions,
 * shared tables): the object to release and how; ops == NULL once released.
 * Its user value is the conc userdata, which keeps the object alive. */
typedef struct guard {
  cc_obj_t *obj;
  const conc_sync_ops_t *ops;
  const conc_sync_ops_t *want; /* while acquiring */
} guard_t;

static int guard_close(lua_State *L) {
  guard_t *g = luaL_checkudata(L, 1, GUARD_T);
  const conc_sync_ops_t *ops = g->ops;
  if (ops) {
    int rc;
    g->ops = NULL;
    rc = ops->release(g->obj);
    /* Closing because of an error that already lost the lock (a condition
     * whose re-acquire hit a deadlock): keep that error, not ours. */
    if (rc == CC_ENOTOWNER && !lua_isnoneornil(L, 2)) return 0;
    if (rc == CC_ENOTOWNER) return conc_sync_notowner(L, g->obj, "release");
    if (rc != 0) return conc_sync_raise(L, rc, ops->what);
  }
  return 0;
}

static int guard_tostring(lua_State *L) {
  guard_t *g = luaL_checkudata(L, 1, GUARD_T);
  lua_pushfstring(L, "conc.guard of %s '%s'%s", g->obj->type->name, g->obj->name,
                  g->ops ? "" : " (released)");
  return 1;
}

void conc_guard_metatable(lua_State *L) {
  static const luaL_Reg meta[] = {{"__close", guard_close}, {"__tostring", guard_tostring},
                                  {NULL, NULL}};
  if (luaL_newmetatable(L, GUARD_T)) {
    luaL_setfuncs(L, meta, 0);
    lua_newtable(L);
    lua_pushcfunction(L, guard_close);
    lua_setfield(L, -2, "release");
    conc_methods_strict(L, -1, GUARD_T);
    lua_setfield(L, -2, "__index");
  }
}

/* An inactive guard for the object whose userdata is at index 1. */
static guard_t *push_guard(lua_State *L, cc_obj_t *o) {
  guard_t *g = lua_newuserdatauv(L, sizeof *g, 1);
  g->obj = o;
  g->ops = NULL;
  g->want = NULL;
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_setmetatable(L, -2);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  return g;
}

static int with_done(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return lua_gettop(L) - 2; /* above the guard and self */
}

int conc_sync_acquire(lua_State *L, cc_obj_t *o,
                 int (*acquire_w)(cc_wait_t *, cc_obj_t *, cc_deadline_t),
                 cc_deadline_t deadline, conc_wait_done_fn done) {
  cc_wait_t local, *w = conc_wait_slot(L);
  int rc;
  if (cc_likely(w == NULL)) w = &local;
  rc = acquire_w(w, o, deadline);
  if (cc_unlikely(rc == CC_WAIT_PARK)) return conc_wait(L, w, done);
  return done(L, rc, w);
}

/* with(): the guard is on top of the stack while acquiring. */
static int with_acquired(lua_State *L, int rc, cc_wait_t *w) {
  guard_t *g = lua_touserdata(L, -1);
  int nargs;
  if (g->want->acquire_end) rc = g->want->acquire_end(w, g->obj, rc);
  if (rc != 0) return conc_sync_raise(L, rc, g->want->what);
  g->ops = g->want;
  /* guard, self, fn, args...: the guard's slot releases on return or error,
   * and an error keeps its own traceback. */
  lua_insert(L, 1);
  lua_toclose(L, 1);
  nargs = lua_gettop(L) - 3;
  lua_callk(L, nargs, LUA_MULTRET, 0, with_done);
  return with_done(L, LUA_OK, 0);
}

int conc_sync_with(lua_State *L, cc_obj_t *o, const conc_sync_ops_t *ops) {
  guard_t *g;
  conc_check_callable(L, 2);
  g = push_guard(L, o);
  g->want = ops;
  return conc_sync_acquire(L, o, ops->acquire_w, CC_FOREVER, with_acquired);
}

static int hold_acquired(lua_State *L, int rc, cc_wait_t *w) {
  guard_t *g = lua_touserdata(L, -1);
  if (g->want->acquire_end) rc = g->want->acquire_end(w, g->obj, rc);
  if (rc == CC_ETIMEOUT) return conc_fail(L, rc);
  if (rc != 0) return conc_sync_raise(L, rc, g->want->what);
  g->ops = g->want;
  return 1;
}

int conc_sync_hold(lua_State *L, cc_obj_t *o, const conc_sync_ops_t *ops) {
  cc_deadline_t d = conc_opt_deadline(L, 2);
  guard_t *g = push_guard(L, o);
  g->want = ops;
  return conc_sync_acquire(L, o, ops->acquire_w, d, hold_acquired);
}

void conc_sync_newtype(lua_State *L, const cc_type_t *type, const luaL_Reg *methods) {
  char tname[64];
  conc_newtype(L, type, NULL, NULL, NULL);
  snprintf(tname, sizeof tname, "conc.%s", type->name);
  luaL_getmetatable(L, tname);
  conc_guard_metatable(L);
  lua_newtable(L);
  lua_pushvalue(L, -3);
  lua_pushvalue(L, -3);
  luaL_setfuncs(L, methods, 2);
  conc_methods_strict(L, -1, tname); /* a misspelled method raises, with a suggestion */
  lua_setfield(L, -3, "__index");
  lua_pop(L, 2);
}

/* ---- lock and rlock ------------------------------------------------------ */

static const conc_sync_ops_t lock_ops = {cc_lock_acquire_w, cc_lock_release, NULL, "lock"};

static int lock_result(lua_State *L, int rc) {
  if (cc_likely(rc == 0)) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (rc == CC_ETIMEOUT) {
    lua_pushboolean(L, 0);
    return 1;
  }
  return conc_sync_raise(L, rc, "acquire");
}

static int lock_done(lua_State *L, int rc, cc_wait_t *w) {
  (void)w;
  return lock_result(L, rc);
}

static int l_acquire(lua_State *L) {
  cc_obj_t *o = conc_self_of2(L, &cc_lock_type, &cc_rlock_type);
  return conc_sync_acquire(L, o, cc_lock_acquire_w, lua_gettop(L) < 2 ? CC_FOREVER : conc_opt_deadline(L, 2),
                      lock_done);
}

static int l_release(lua_State *L) {
  cc_obj_t *o = conc_self_of2(L, &cc_lock_type, &cc_rlock_type);
  if (cc_unlikely(cc_lock_release(o) != 0)) return conc_sync_notowner(L, o, "release");
  return 0;
}

static int l_locked(lua_State *L) {
  lua_pushboolean(L, cc_lock_locked(conc_self_of2(L, &cc_lock_type, &cc_rlock_type)));
  return 1;
}

static int l_owned(lua_State *L) {
  lua_pushboolean(L, cc_lock_held_by_me(conc_self_of2(L, &cc_lock_type, &cc_rlock_type)));
  return 1;
}

static int l_with(lua_State *L) {
  return conc_sync_with(L, conc_self_of2(L, &cc_lock_type, &cc_rlock_type), &lock_ops);
}

static int l_hold(lua_State *L) {
  return conc_sync_hold(L, conc_self_of2(L, &cc_lock_type, &cc_rlock_type), &lock_ops);
}

static int new_lock(lua_State *L, int recursive) {
  char name[CC_NAME_MAX];
  cc_obj_t *o;
  if (conc_ctor_name(L, 1, NULL, name) == 1 && !lua_isnoneornil(L, 1))
    return luaL_typeerror(L, 1, "name or options table");
  o = cc_lock_new(name, recursive);
  if (!o && conc_reclaim(L)) o = cc_lock_new(name, recursive);
  if (!o) return luaL_error(L, "conc.%s: %s", recursive ? "rlock" : "lock", cc_strerror(CC_ENOMEM));
  conc_push_owned(L, o);
  return 1;
}

static int l_lock(lua_State *L) {
  return new_lock(L, 0);
}

static int l_rlock(lua_State *L) {
  return new_lock(L, 1);
}

static const luaL_Reg lock_methods[] = {
    {"acquire", l_acquire}, {"release", l_release}, {"locked", l_locked},
    {"owned", l_owned},     {"with", l_with},       {"hold", l_hold},
    {NULL, NULL}};

/* ---- condition ----------------------------------------------------------- */

static int c_acquire(lua_State *L) {
  cc_obj_t *l = cc_cond_lock(conc_self_of(L, &cc_cond_type));
  return conc_sync_acquire(L, l, cc_lock_acquire_w, conc_opt_deadline(L, 2), lock_done);
}

static int c_release(lua_State *L) {
  cc_obj_t *l = cc_cond_lock(conc_self_of(L, &cc_cond_type));
  if (cc_lock_release(l) != 0) return conc_sync_notowner(L, l, "release");
  return 0;
}

static int c_locked(lua_State *L) {
  lua_pushboolean(L, cc_lock_locked(cc_cond_lock(conc_self_of(L, &cc_cond_type))));
  return 1;
}

static int c_owned(lua_State *L) {
  lua_pushboolean(L, cc_lock_held_by_me(cc_cond_lock(conc_self_of(L, &cc_cond_type))));
  return 1;
}

static int c_with(lua_State *L) {
  return conc_sync_with(L, cc_cond_lock(conc_self_of(L, &cc_cond_type)), &lock_ops);
}

static int c_hold(lua_State *L) {
  return conc_sync_hold(L, cc_cond_lock(conc_self_of(L, &cc_cond_type)), &lock_ops);
}

static int c_lock(lua_State *L) {
  conc_push(L, cc_cond_lock(conc_self_of(L, &cc_cond_type)));
  return 1;
}

/* wait: in a thread cc_cond_wait; in a task its three steps (cond.h), the
 * re-acquire shielded from a cancel, which is raised once the lock is back
 * (so that a guard's release finds it held, as in asyncio). */
static int cond_result(lua_State *L, cc_obj_t *c, int rc) {
  if (rc == 0 || rc == CC_ETIMEOUT) {
    lua_pushboolean(L, rc == 0);
    return 1;
  }
  if (rc == CC_ECANCELLED) return conc_task_raise_cancelled(L);
  if (rc == CC_ENOTOWNER) return conc_sync_notowner(L, cc_cond_lock(c), "wait on");
  return conc_sync_raise(L, rc, "condition:wait");
}

static int cond_relocked(lua_State *L, int rc, cc_wait_t *w) {
  cc_obj_t *c = (cc_obj_t *)w->arg[2];
  if (rc == 0 && conc_cancel_pending(L)) rc = CC_ECANCELLED;
  return cond_result(L, c, cc_cond_wait_end(w, rc));
}

static int cond_notified(lua_State *L, int rc, cc_wait_t *w) {
  rc = cc_cond_relock_w(w, rc);
  if (rc == CC_WAIT_PARK) return conc_wait_ex(L, w, cond_relocked, CONC_WAIT_SHIELD);
  return cond_relocked(L, rc, w);
}

static int cond_wait(lua_State *L, cc_obj_t *c, cc_deadline_t d) {
  cc_wait_t *w = conc_wait_slot(L);
  int rc;
  if (cc_likely(w == NULL)) return cond_result(L, c, cc_cond_wait(c, d));
  rc = cc_cond_wait_w(w, c, d);
  if (rc != CC_WAIT_PARK) return cond_result(L, c, rc);
  return conc_wait_ex(L, w, cond_notified, CONC_WAIT_SEE_CANCEL);
}

static int c_wait(lua_State *L) {
  cc_obj_t *c = conc_self_of(L, &cc_cond_type);
  return cond_wait(L, c, conc_opt_deadline(L, 2));
}

/* Helpers of wait_for (written in Lua below, since pred may suspend too):
 * the deadline of a timeout (after checking the arguments and that the
 * caller holds the lock), whether it passed, and a wait until it. */
static int c_wait_for_start(lua_State *L) {
  cc_obj_t *c = conc_check(L, 1, &cc_cond_type);
  cc_deadline_t d;
  luaL_checkany(L, 2);
  d = conc_opt_deadline(L, 3);
  if (!cc_lock_held_by_me(cc_cond_lock(c))) return conc_sync_notowner(L, cc_cond_lock(c), "wait on");
  lua_pushinteger(L, (lua_Integer)d);
  return 1;
}

static int c_wait_for_expired(lua_State *L) {
  cc_deadline_t d = (cc_deadline_t)luaL_checkinteger(L, 1);
  lua_pushboolean(L, d != CC_FOREVER && cc_now_ns() >= d);
  return 1;
}

static int c_wait_until(lua_State *L) {
  cc_obj_t *c = conc_check(L, 1, &cc_cond_type);
  return cond_wait(L, c, (cc_deadline_t)luaL_checkinteger(L, 2));
}

/* wait_for(pred [, timeout]): Python's loop; returns pred's last result.
 * Its arguments are checked here, so that errors name wait_for and the
 * caller's line (start's own checks would name 'start'). */
static const char wait_for_src[] =
    "local start, expired, wait_until = ...\n"
    "local function bad(n, what, got)\n"
    "  error(('bad argument #%d to \\'wait_for\\' (%s expected, got %s)'):format(n, what, got), 3)\n"
    "end\n"
    "return function(self, pred, timeout)\n"
    "  local mt = type(pred) ~= 'function' and getmetatable(pred)\n"
    "  if mt ~= false and not (type(mt) == 'table' and mt.__call) then\n"
    "    bad(1, 'function', pred == nil and 'no value' or type(pred))\n"
    "  end\n"
    "  local tt = type(timeout)\n"
    "  if timeout ~= nil and tt ~= 'boolean' and not (tt == 'number' and timeout >= 0) then\n"
    "    bad(2, 'non-negative timeout (seconds or boolean)', tt)\n"
    "  end\n"
    "  local d = start(self, pred, timeout)\n"
    "  while true do\n"
    "    local r = pred()\n"
    "    if r or expired(d) then return r end\n"
    "    if not wait_until(self, d) then return (pred()) end\n"
    "  end\n"
    "end\n";

static int c_notify(lua_State *L) {
  cc_obj_t *c = conc_self_of(L, &cc_cond_type);
  lua_Integer n = luaL_optinteger(L, 2, 1);
  luaL_argcheck(L, n >= 0, 2, "must be non-negative");
  if (cc_cond_notify(c, n > INT32_MAX ? INT32_MAX : (int)n, NULL) != 0)
    return conc_sync_notowner(L, cc_cond_lock(c), "notify on");
  return 0;
}

static int c_notify_all(lua_State *L) {
  cc_obj_t *c = conc_self_of(L, &cc_cond_type);
  if (cc_cond_notify(c, -1, NULL) != 0) return conc_sync_notowner(L, cc_cond_lock(c), "notify on");
  return 0;
}

/* conc.condition([name | {name=}] [, lock]) */
static int l_condition(lua_State *L) {
  char where[CC_NAME_MAX];
  cc_obj_t *lock = NULL, *c;
  int first = conc_ctor_name(L, 1, NULL, where);
  if (!lua_isnoneornil(L, first)) {
    lock = conc_toobj(L, first);
    if (!lock || (lock->type != &cc_lock_type && lock->type != &cc_rlock_type))
      return luaL_typeerror(L, first, "conc.lock or conc.rlock");
  }
  c = cc_cond_new(where, lock);
  if (!c && conc_reclaim(L)) c = cc_cond_new(where, lock);
  if (!c) return luaL_error(L, "conc.condition: %s", cc_strerror(CC_ENOMEM));
  conc_push_owned(L, c);
  return 1;
}

static const luaL_Reg cond_methods[] = {
    {"acquire", c_acquire}, {"release", c_release},   {"locked", c_locked},
    {"owned", c_owned},     {"with", c_with},         {"hold", c_hold},
    {"lock", c_lock},       {"wait", c_wait},
    {"notify", c_notify},   {"notify_all", c_notify_all}, {NULL, NULL}};

static const luaL_Reg funcs[] = {
    {"lock", l_lock}, {"rlock", l_rlock}, {"condition", l_condition}, {NULL, NULL}};

/* The condition's type: the sync methods plus wait_for. */
static void new_cond_type(lua_State *L, const cc_type_t *type, const luaL_Reg *methods) {
  conc_sync_newtype(L, type, methods);
  luaL_getmetatable(L, "conc.condition");
  lua_getfield(L, -1, "__index");
  if (luaL_loadbuffer(L, wait_for_src, sizeof wait_for_src - 1, "=condition:wait_for") != LUA_OK)
    lua_error(L);
  lua_pushcfunction(L, c_wait_for_start);
  lua_pushcfunction(L, c_wait_for_expired);
  lua_pushcfunction(L, c_wait_until);
  lua_call(L, 3, 1);
  lua_setfield(L, -2, "wait_for");
  lua_pop(L, 2);
}

static void lock_state(cc_obj_t *o, char *buf, size_t n) {
  snprintf(buf, n, "%s", cc_lock_locked(o) ? "locked" : "unlocked");
}

static void cond_state(cc_obj_t *o, char *buf, size_t n) {
  snprintf(buf, n, "lock %s", cc_lock_locked(cc_cond_lock(o)) ? "locked" : "unlocked");
}

void conc_open_lock(lua_State *L) {
  conc_describe(&cc_lock_type, lock_state);
  conc_describe(&cc_rlock_type, lock_state);
  conc_describe(&cc_cond_type, cond_state);
  conc_lazytype(&cc_lock_type, conc_sync_newtype, lock_methods);
  conc_lazytype(&cc_rlock_type, conc_sync_newtype, lock_methods);
  conc_lazytype(&cc_cond_type, new_cond_type, cond_methods);
  luaL_setfuncs(L, funcs, 0);
}
