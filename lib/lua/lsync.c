/*
 * lsync.c - conc.semaphore, conc.event, conc.barrier, conc.atomic.
 * (Locks and conditions are in llock.c; shared helpers in lsync.h.)
 */
#include <stdio.h>

#include "atomic.h"
#include "barrier.h"
#include "event.h"
#include "lsync.h"
#include "sem.h"
#include "wait.h"

/* Optional name in field `name` of an options table at idx, else the
 * caller's file:line. */
static const char *opt_name(lua_State *L, int idx, char *buf, size_t n) {
  if (lua_istable(L, idx) && lua_getfield(L, idx, "name") != LUA_TNIL) {
    const char *s = luaL_checkstring(L, -1);
    snprintf(buf, n, "%s", s);
    lua_pop(L, 1);
    return buf;
  }
  if (lua_istable(L, idx)) lua_pop(L, 1);
  conc_where(L, buf, n);
  return buf;
}

/* ---- semaphore ------------------------------------------------------------ */

static int sem_release1(cc_obj_t *o) {
  return cc_sem_release(o, 1);
}

static const conc_sync_ops_t sem_ops = {cc_sem_acquire_w, sem_release1};

static int s_acquired(lua_State *L, int rc, cc_wait_t *w) {
  (void)w;
  if (rc == 0 || rc == CC_ETIMEOUT) {
    lua_pushboolean(L, rc == 0);
    return 1;
  }
  return conc_sync_raise(L, rc, "semaphore:acquire");
}

static int s_acquire(lua_State *L) {
  cc_obj_t *o = conc_sync_self(L);
  return conc_sync_acquire(L, o, cc_sem_acquire_w, lua_gettop(L) < 2 ? CC_FOREVER : conc_sync_deadline(L, 2),
                      s_acquired);
}

static int s_release(lua_State *L) {
  cc_obj_t *o = conc_sync_self(L);
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
  lua_pushinteger(L, cc_sem_value(conc_sync_self(L)));
  return 1;
}

static int s_with(lua_State *L) {
  return conc_sync_with(L, conc_sync_self(L), &sem_ops);
}

static int s_hold(lua_State *L) {
  return conc_sync_hold(L, conc_sync_self(L), &sem_ops);
}

/* conc.semaphore([n = 1] [, {bounded=, name=}]) */
static int l_semaphore(lua_State *L) {
  char name[128];
  lua_Integer n = luaL_optinteger(L, 1, 1);
  int bounded = 0;
  cc_obj_t *o;
  luaL_argcheck(L, n >= 0 && n <= CC_SEM_MAX, 1, "must be between 0 and 2^31 - 1");
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "bounded");
    bounded = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  opt_name(L, 2, name, sizeof name);
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
  cc_event_set(conc_sync_self(L));
  return 0;
}

static int e_clear(lua_State *L) {
  cc_event_clear(conc_sync_self(L));
  return 0;
}

static int e_is_set(lua_State *L) {
  lua_pushboolean(L, cc_event_is_set(conc_sync_self(L)));
  return 1;
}

static int e_waited(lua_State *L, int rc, cc_wait_t *w) {
  (void)w;
  if (rc < 0) return conc_sync_raise(L, rc, "event:wait");
  lua_pushboolean(L, rc);
  return 1;
}

static int e_wait(lua_State *L) {
  cc_obj_t *o = conc_sync_self(L);
  return conc_sync_acquire(L, o, cc_event_wait_w, conc_sync_deadline(L, 2), e_waited);
}

static int l_event(lua_State *L) {
  char name[128];
  cc_obj_t *o;
  if (!lua_isnoneornil(L, 1)) {
    snprintf(name, sizeof name, "%s", luaL_checkstring(L, 1));
  } else {
    conc_where(L, name, sizeof name);
  }
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
  cc_obj_t *o = conc_sync_self(L);
  uint32_t index = 0;
  cc_wait_t local, *w = conc_wait_slot(L);
  int rc;
  if (!w) w = &local;
  rc = cc_barrier_wait_w(w, o, conc_sync_deadline(L, 2), &index);
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
  cc_barrier_abort(conc_sync_self(L));
  return 0;
}

static int b_reset(lua_State *L) {
  cc_barrier_reset(conc_sync_self(L));
  return 0;
}

static int b_broken(lua_State *L) {
  lua_pushboolean(L, cc_barrier_broken(conc_sync_self(L)));
  return 1;
}

static int b_parties(lua_State *L) {
  lua_pushinteger(L, ((cc_barrier_t *)conc_sync_self(L))->parties);
  return 1;
}

static int b_n_waiting(lua_State *L) {
  lua_pushinteger(L, cc_barrier_waiting(conc_sync_self(L)));
  return 1;
}

/* conc.barrier(n [, {name=}]) */
static int l_barrier(lua_State *L) {
  char name[128];
  lua_Integer n = luaL_checkinteger(L, 1);
  cc_obj_t *o;
  luaL_argcheck(L, n >= 1 && n <= CC_BARRIER_MAX, 1, "must be between 1 and 65535");
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  opt_name(L, 2, name, sizeof name);
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
  lua_pushinteger(L, cc_atomic_get(conc_sync_self(L)));
  return 1;
}

static int a_set(lua_State *L) {
  cc_obj_t *o = conc_sync_self(L);
  cc_atomic_set(o, luaL_checkinteger(L, 2));
  return 0;
}

static int a_add(lua_State *L) {
  cc_obj_t *o = conc_sync_self(L);
  lua_pushinteger(L, cc_atomic_add(o, luaL_optinteger(L, 2, 1)));
  return 1;
}

static int a_cas(lua_State *L) {
  cc_obj_t *o = conc_sync_self(L);
  lua_Integer expected = luaL_checkinteger(L, 2), desired = luaL_checkinteger(L, 3);
  lua_pushboolean(L, cc_atomic_cas(o, expected, desired));
  return 1;
}

static int a_exchange(lua_State *L) {
  cc_obj_t *o = conc_sync_self(L);
  lua_pushinteger(L, cc_atomic_exchange(o, luaL_checkinteger(L, 2)));
  return 1;
}

static int l_atomic(lua_State *L) {
  char name[128];
  lua_Integer v = luaL_optinteger(L, 1, 0);
  cc_obj_t *o;
  conc_where(L, name, sizeof name);
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

void conc_open_sync(lua_State *L) {
  conc_lazytype(&cc_sem_type, conc_sync_newtype, sem_methods);
  conc_lazytype(&cc_event_type, conc_sync_newtype, event_methods);
  conc_lazytype(&cc_barrier_type, conc_sync_newtype, barrier_methods);
  conc_lazytype(&cc_atomic_type, conc_sync_newtype, atomic_methods);
  luaL_setfuncs(L, funcs, 0);
}
