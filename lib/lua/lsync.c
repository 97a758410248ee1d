/*
 * lsync.c - conc.semaphore, conc.event, conc.barrier, conc.atomic.
 * (Locks and conditions are in llock.c; shared helpers in lsync.h.)
 */
#include <stdio.h>
#include <string.h>

#include "atomic.h"
#include "barrier.h"
#include "event.h"
#include "lsync.h"
#include "sem.h"
#include "wait.h"

/* A trailing options table at idx (the older place for them; the name may
 * come first instead, conc_ctor_name): checks its keys and takes its name
 * unless one came first. Returns the table's index, or 0. */
static int trailing_opts(lua_State *L, int idx, int first, const char *const keys[],
                         char *name) {
  const char *s;
  if (lua_isnoneornil(L, idx)) return 0;
  luaL_checktype(L, idx, LUA_TTABLE);
  s = conc_name_arg(L, idx, keys);
  if (s && first == 1) strcpy(name, s); /* conc_name_arg checked its length */
  return idx;
}

/* The first argument that is not an object's own: a leading name or
 * options table, the checks shared by every constructor here. */
#define CTOR_NAME(keys, name) conc_ctor_name(L, 1, keys, name)

/* ---- semaphore ------------------------------------------------------------ */

static int sem_release1(cc_obj_t *o) {
  return cc_sem_release(o, 1);
}

static const conc_sync_ops_t sem_ops = {cc_sem_acquire_w, sem_release1, NULL, "semaphore"};

static int s_acquired(lua_State *L, int rc, cc_wait_t *w) {
  (void)w;
  if (rc == 0 || rc == CC_ETIMEOUT) {
    lua_pushboolean(L, rc == 0);
    return 1;
  }
  return conc_sync_raise(L, rc, "semaphore:acquire");
}

static int s_acquire(lua_State *L) {
  cc_obj_t *o = conc_self_of(L, &cc_sem_type);
  return conc_sync_acquire(L, o, cc_sem_acquire_w, lua_gettop(L) < 2 ? CC_FOREVER : conc_opt_deadline(L, 2),
                      s_acquired);
}

static int s_release(lua_State *L) {
  cc_obj_t *o = conc_self_of(L, &cc_sem_type);
  lua_Integer k = luaL_optinteger(L, 2, 1);
  luaL_argcheck(L, k >= 1, 2, "must be at least 1");
  if (cc_sem_release(o, k > CC_SEM_MAX ? CC_SEM_MAX + 1u : (uint32_t)k) != 0) {
    if (((cc_sem_t *)o)->bounded)
      return luaL_error(L, "semaphore '%s' released too many times", o->name);
    return luaL_error(L, "semaphore '%s': value overflow", o->name);
  }
  return 0;
}

static int s_value(lua_State *L) {
  lua_pushinteger(L, cc_sem_value(conc_self_of(L, &cc_sem_type)));
  return 1;
}

static int s_with(lua_State *L) {
  return conc_sync_with(L, conc_self_of(L, &cc_sem_type), &sem_ops);
}

static int s_hold(lua_State *L) {
  return conc_sync_hold(L, conc_self_of(L, &cc_sem_type), &sem_ops);
}

/* conc.semaphore([name | opts,] [n = 1] [, opts]), opts = {name=, bounded=} */
static int l_semaphore(lua_State *L) {
  static const char *const keys[] = {"name", "bounded", NULL};
  char name[CC_NAME_MAX];
  int first = CTOR_NAME(keys, name), opts;
  lua_Integer n = luaL_optinteger(L, first, 1);
  int bounded = 0;
  cc_obj_t *o;
  luaL_argcheck(L, n >= 0 && n <= CC_SEM_MAX, first, "must be between 0 and 2^31 - 1");
  opts = trailing_opts(L, first + 1, first, keys, name);
  if (!opts && lua_istable(L, 1)) opts = 1;
  if (opts) {
    lua_getfield(L, opts, "bounded");
    bounded = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  o = cc_sem_new(name, (uint32_t)n, bounded);
  if (!o && conc_reclaim(L)) o = cc_sem_new(name, (uint32_t)n, bounded);
  if (!o) return luaL_error(L, "conc.semaphore: %s", cc_strerror(CC_ENOMEM));
  conc_push_owned(L, o);
  return 1;
}

static const luaL_Reg sem_methods[] = {
    {"acquire", s_acquire}, {"release", s_release}, {"value", s_value},
    {"with", s_with},       {"hold", s_hold},       {NULL, NULL}};

/* ---- event ---------------------------------------------------------------- */

static int e_set(lua_State *L) {
  cc_event_set(conc_self_of(L, &cc_event_type));
  return 0;
}

static int e_clear(lua_State *L) {
  cc_event_clear(conc_self_of(L, &cc_event_type));
  return 0;
}

static int e_is_set(lua_State *L) {
  lua_pushboolean(L, cc_event_is_set(conc_self_of(L, &cc_event_type)));
  return 1;
}

static int e_waited(lua_State *L, int rc, cc_wait_t *w) {
  (void)w;
  if (rc < 0) return conc_sync_raise(L, rc, "event:wait");
  lua_pushboolean(L, rc);
  return 1;
}

static int e_wait(lua_State *L) {
  cc_obj_t *o = conc_self_of(L, &cc_event_type);
  return conc_sync_acquire(L, o, cc_event_wait_w, conc_opt_deadline(L, 2), e_waited);
}

/* conc.event([name | {name=}]) */
static int l_event(lua_State *L) {
  char name[CC_NAME_MAX];
  cc_obj_t *o;
  if (CTOR_NAME(NULL, name) == 1 && !lua_isnoneornil(L, 1))
    return luaL_typeerror(L, 1, "name or options table");
  o = cc_event_new(name);
  if (!o && conc_reclaim(L)) o = cc_event_new(name);
  if (!o) return luaL_error(L, "conc.event: %s", cc_strerror(CC_ENOMEM));
  conc_push_owned(L, o);
  return 1;
}

static const luaL_Reg event_methods[] = {
    {"set", e_set}, {"clear", e_clear}, {"is_set", e_is_set}, {"wait", e_wait}, {NULL, NULL}};

/* ---- barrier -------------------------------------------------------------- */

static int b_waited(lua_State *L, int rc, cc_wait_t *w);

static int b_wait(lua_State *L) {
  cc_obj_t *o = conc_self_of(L, &cc_barrier_type);
  uint32_t index = 0;
  cc_wait_t local, *w = conc_wait_slot(L);
  int rc;
  if (!w) w = &local;
  rc = cc_barrier_wait_w(w, o, conc_opt_deadline(L, 2), &index);
  w->obj = o;
  w->arg[3] = index;
  if (rc == CC_WAIT_PARK) return conc_wait(L, w, b_waited);
  return b_waited(L, rc, w);
}

static int b_waited(lua_State *L, int rc, cc_wait_t *w) {
  cc_obj_t *o = w->obj;
  if (rc == 0) {
    lua_pushinteger(L, (lua_Integer)w->arg[3]);
    return 1;
  }
  if (rc == CC_ETIMEOUT) return conc_fail(L, rc);
  if (rc == CC_ECLOSED) return luaL_error(L, "barrier '%s' is broken", o->name);
  return conc_sync_raise(L, rc, "barrier:wait");
}

static int b_abort(lua_State *L) {
  cc_barrier_abort(conc_self_of(L, &cc_barrier_type));
  return 0;
}

static int b_reset(lua_State *L) {
  cc_barrier_reset(conc_self_of(L, &cc_barrier_type));
  return 0;
}

static int b_broken(lua_State *L) {
  lua_pushboolean(L, cc_barrier_broken(conc_self_of(L, &cc_barrier_type)));
  return 1;
}

static int b_parties(lua_State *L) {
  lua_pushinteger(L, ((cc_barrier_t *)conc_self_of(L, &cc_barrier_type))->parties);
  return 1;
}

static int b_n_waiting(lua_State *L) {
  lua_pushinteger(L, cc_barrier_waiting(conc_self_of(L, &cc_barrier_type)));
  return 1;
}

/* conc.barrier([name | {name=},] n [, {name=}]) */
static int l_barrier(lua_State *L) {
  char name[CC_NAME_MAX];
  int first = CTOR_NAME(NULL, name);
  lua_Integer n = luaL_checkinteger(L, first);
  cc_obj_t *o;
  luaL_argcheck(L, n >= 1 && n <= CC_BARRIER_MAX, first, "must be between 1 and 65535");
  trailing_opts(L, first + 1, first, NULL, name);
  o = cc_barrier_new(name, (uint32_t)n);
  if (!o && conc_reclaim(L)) o = cc_barrier_new(name, (uint32_t)n);
  if (!o) return luaL_error(L, "conc.barrier: %s", cc_strerror(CC_ENOMEM));
  conc_push_owned(L, o);
  return 1;
}

static const luaL_Reg barrier_methods[] = {
    {"wait", b_wait},       {"abort", b_abort},     {"reset", b_reset},
    {"broken", b_broken},   {"parties", b_parties}, {"n_waiting", b_n_waiting},
    {NULL, NULL}};

/* ---- atomic --------------------------------------------------------------- */

static int a_get(lua_State *L) {
  lua_pushinteger(L, cc_atomic_get(conc_self_of(L, &cc_atomic_type)));
  return 1;
}

static int a_set(lua_State *L) {
  cc_obj_t *o = conc_self_of(L, &cc_atomic_type);
  cc_atomic_set(o, luaL_checkinteger(L, 2));
  return 0;
}

static int a_add(lua_State *L) {
  cc_obj_t *o = conc_self_of(L, &cc_atomic_type);
  lua_pushinteger(L, cc_atomic_add(o, luaL_optinteger(L, 2, 1)));
  return 1;
}

static int a_cas(lua_State *L) {
  cc_obj_t *o = conc_self_of(L, &cc_atomic_type);
  lua_Integer expected = luaL_checkinteger(L, 2), desired = luaL_checkinteger(L, 3);
  lua_pushboolean(L, cc_atomic_cas(o, expected, desired));
  return 1;
}

static int a_exchange(lua_State *L) {
  cc_obj_t *o = conc_self_of(L, &cc_atomic_type);
  lua_pushinteger(L, cc_atomic_exchange(o, luaL_checkinteger(L, 2)));
  return 1;
}

/* conc.atomic([name | {name=},] [v = 0]) */
static int l_atomic(lua_State *L) {
  char name[CC_NAME_MAX];
  int first = CTOR_NAME(NULL, name);
  lua_Integer v = luaL_optinteger(L, first, 0);
  cc_obj_t *o;
  o = cc_atomic_new(name, v);
  if (!o && conc_reclaim(L)) o = cc_atomic_new(name, v);
  if (!o) return luaL_error(L, "conc.atomic: %s", cc_strerror(CC_ENOMEM));
  conc_push_owned(L, o);
  return 1;
}

static const luaL_Reg atomic_methods[] = {
    {"get", a_get}, {"set", a_set}, {"add", a_add}, {"cas", a_cas}, {"exchange", a_exchange},
    {NULL, NULL}};

static const luaL_Reg funcs[] = {{"semaphore", l_semaphore},
                                 {"event", l_event},
                                 {"barrier", l_barrier},
                                 {"atomic", l_atomic},
                                 {NULL, NULL}};

static void sem_state(cc_obj_t *o, char *buf, size_t n) {
  snprintf(buf, n, "value %u", (unsigned)cc_sem_value(o));
}

static void event_state(cc_obj_t *o, char *buf, size_t n) {
  snprintf(buf, n, "%s", cc_event_is_set(o) ? "set" : "not set");
}

static void barrier_state(cc_obj_t *o, char *buf, size_t n) {
  if (cc_barrier_broken(o))
    snprintf(buf, n, "broken");
  else
    snprintf(buf, n, "%u of %u waiting", (unsigned)cc_barrier_waiting(o),
             (unsigned)((cc_barrier_t *)o)->parties);
}

static void atomic_state(cc_obj_t *o, char *buf, size_t n) {
  snprintf(buf, n, "%lld", (long long)cc_atomic_get(o));
}

void conc_open_sync(lua_State *L) {
  conc_describe(&cc_sem_type, sem_state);
  conc_describe(&cc_event_type, event_state);
  conc_describe(&cc_barrier_type, barrier_state);
  conc_describe(&cc_atomic_type, atomic_state);
  conc_lazytype(&cc_sem_type, conc_sync_newtype, sem_methods);
  conc_lazytype(&cc_event_type, conc_sync_newtype, event_methods);
  conc_lazytype(&cc_barrier_type, conc_sync_newtype, barrier_methods);
  conc_lazytype(&cc_atomic_type, conc_sync_newtype, atomic_methods);
  luaL_setfuncs(L, funcs, 0);
}
