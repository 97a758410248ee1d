/*
 * lsync.h - what the synchronisation bindings (llock.c, lsync.c) share:
 * fast method dispatch, timeouts, guards for with()/hold().
 *
 * Methods of a sync type are registered by conc_sync_newtype() with two
 * upvalues: the type's metatable (the error path of conc_self_of names the
 * type from it) and the guard metatable. The type's __index is the
 * methods table itself, so `l:acquire()` costs no extra C call.
 */
#ifndef LSYNC_H
#define LSYNC_H

#include "lconc.h"
#include "ltask.h"

/* How a guard acquires and releases its object (lock, semaphore, ...). */
typedef struct conc_sync_ops {
  /* The fast path, or CC_WAIT_PARK with *w ready for conc_wait (ltask.h). */
  int (*acquire_w)(cc_wait_t *w, cc_obj_t *o, cc_deadline_t deadline);
  int (*release)(cc_obj_t *o);
  /* Optional: called with the wait's result before the guard takes it
   * (a shared table's hold records its holder); returns the final rc. */
  int (*acquire_end)(cc_wait_t *w, cc_obj_t *o, int rc);
  const char *what; /* for error messages: "lock", "shared table" */
} conc_sync_ops_t;

/* Acquires through ops as a blocking call (a task suspends) and returns
 * done(L, rc, w). */
int conc_sync_acquire(lua_State *L, cc_obj_t *o, int (*acquire_w)(cc_wait_t *, cc_obj_t *, cc_deadline_t),
                 cc_deadline_t deadline, conc_wait_done_fn done);

/* Registers `type` (conc_newtype) with `methods` as described above. */
void conc_sync_newtype(lua_State *L, const cc_type_t *type, const luaL_Reg *methods);

/* Raises for a core error: the deadlock message exactly as
 * cc_deadlock_message() gives it (no position prefix), else conc_raise. */
int conc_sync_raise(lua_State *L, int err, const char *what);

/* x:with(fn, ...) and x:hold([timeout]) for object `o` at index 1; the
 * method's upvalue 2 is the guard metatable (conc_guard_metatable). */
int conc_sync_with(lua_State *L, cc_obj_t *o, const conc_sync_ops_t *ops);
int conc_sync_hold(lua_State *L, cc_obj_t *o, const conc_sync_ops_t *ops);

/* Raises "cannot release un-acquired lock 'name'" and the like. */
/* Pushes the guard metatable, creating it on first use. */
void conc_guard_metatable(lua_State *L);

int conc_sync_notowner(lua_State *L, cc_obj_t *o, const char *verb);

#endif
