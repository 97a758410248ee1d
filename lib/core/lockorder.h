/*
 * lockorder.h - `conclua --lock-order`: warns when two locks are taken in
 * both orders anywhere in the run, even when the run did not deadlock.
 *
 * Every hold (actor.h's cc_hold, through the observer of trace.h) of a lock
 * while the actor already holds others adds the edges "held -> new" to a
 * graph of this process, with the Lua file:line of both acquisitions. An
 * edge whose reverse is already known is a potential deadlock: it is
 * written to stderr once per pair of locks, naming both locks and the sites
 * of both orders. Costs a mutex per hold while enabled, nothing otherwise.
 */
#ifndef CC_LOCKORDER_H
#define CC_LOCKORDER_H

#include "actor.h"

/* Turns the checker on for this process and the children it forks. */
void cc_lockorder_enable(void);
extern _Atomic int cc_lockorder_on;
/* From the observer: actor a now holds / no longer holds o. */
void cc_lockorder_hold(cc_actor_t *a, cc_obj_t *o);
void cc_lockorder_unhold(cc_actor_t *a, cc_obj_t *o);
/* Pairs of locks seen in both orders so far (for tests). */
int cc_lockorder_warnings(void);

#endif
