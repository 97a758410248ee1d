/*
 * lock.h - user-visible locks (lock and rlock).
 *
 * CONTRACT (other modules rely on exactly these four calls; the
 * implementation is in lock.c):
 *   cc_lock_new(name, recursive)  -> a lock object with one reference, or NULL
 *   cc_lock_acquire(l, deadline)  -> 0, CC_ETIMEOUT, CC_EDEADLOCK, CC_EINTR
 *   cc_lock_release(l)            -> 0 or CC_ENOTOWNER
 *   cc_lock_held_by_me(l)         -> non-zero when the calling actor owns it
 * Every blocking wait goes through cc_wait_begin/cc_wait_end (actor.h) and
 * every hold is reported with cc_hold/cc_unhold.
 */
#ifndef CC_LOCK_H
#define CC_LOCK_H

#include "arena.h"
#include "cc.h"

cc_obj_t *cc_lock_new(const char *name, int recursive);
int cc_lock_acquire(cc_obj_t *l, cc_deadline_t deadline);
int cc_lock_release(cc_obj_t *l);
int cc_lock_held_by_me(cc_obj_t *l);

#endif
