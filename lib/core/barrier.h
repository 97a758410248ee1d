/*
 * barrier.h - barriers (conc.barrier), Python's threading.Barrier semantics.
 *
 * n parties call wait(); each blocks until all n have arrived, then all go
 * on and the barrier is ready for the next round. wait() tells each party
 * its arrival index, 0 for the first to arrive up to n - 1 for the last (as
 * Python). A wait that times out (or is interrupted) breaks the barrier:
 * every party waiting, and every later wait until reset(), fails with
 * CC_ECLOSED ("broken", Python's BrokenBarrierError).
 *
 * One futex word: bits 0-15 count the arrivals of the current round, bits
 * 16-30 number the round, bit 31 marks the barrier broken. Arriving is one
 * CAS; the last arrival starts the next round and wakes everybody.
 */
#ifndef CC_BARRIER_H
#define CC_BARRIER_H

#include <stdatomic.h>
#include <stdint.h>

#include "arena.h"
#include "cc.h"

#define CC_BARRIER_MAX 0xffff

typedef struct cc_barrier {
  cc_obj_t h;
  uint32_t parties;
  _Atomic uint32_t word;   /* futex word: arrivals | round << 16 | broken */
  _Atomic uint32_t inside; /* parties inside wait(); futex word for reset */
  _Atomic uint32_t resetters; /* reset() calls waiting for `inside` to drain */
} cc_barrier_t;

extern const cc_type_t cc_barrier_type; /* "barrier" */

/* A barrier for 1 <= parties <= CC_BARRIER_MAX, or NULL. */
cc_obj_t *cc_barrier_new(const char *name, uint32_t parties);
/* Arrives and waits for the round to complete. 0 with *index set,
 * CC_ETIMEOUT or CC_EINTR (this party broke the barrier), CC_ECLOSED (the
 * barrier is or became broken). */
int cc_barrier_wait(cc_obj_t *b, cc_deadline_t deadline, uint32_t *index);
/* For callers that may be tasks (wait.h): arrives (*index set when it
 * did) and returns the result at once, or CC_WAIT_PARK with *w set up for
 * cc_wait_run. */
struct cc_wait;
int cc_barrier_wait_w(struct cc_wait *w, cc_obj_t *b, cc_deadline_t deadline, uint32_t *index);
/* Breaks the barrier: current and later waits fail with CC_ECLOSED. */
void cc_barrier_abort(cc_obj_t *b);
/* Back to a fresh round, not broken. Parties waiting now fail with
 * CC_ECLOSED; reset() returns once they have all left. */
void cc_barrier_reset(cc_obj_t *b);
int cc_barrier_broken(cc_obj_t *b);
/* Parties currently waiting for the round to complete. */
uint32_t cc_barrier_waiting(cc_obj_t *b);

#endif
