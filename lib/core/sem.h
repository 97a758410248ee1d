/*
 * sem.h - counting semaphores (conc.semaphore), process-shared.
 *
 * The value is a futex word in the arena; acquire decrements it with a CAS
 * (spinning briefly, then parking while it is 0), release adds k and wakes
 * up to k parked acquirers (a futex wake only when somebody is parked).
 * A bounded semaphore refuses a release that would exceed its initial value
 * (Python's BoundedSemaphore). Semaphores have no owner: any thread or
 * process may release, and their waits are not part of deadlock detection.
 */
#ifndef CC_SEM_H
#define CC_SEM_H

#include <stdatomic.h>
#include <stdint.h>

#include "arena.h"
#include "cc.h"

#define CC_SEM_MAX 0x7fffffffu

typedef struct cc_sem {
  cc_obj_t h;
  _Atomic uint32_t value;   /* futex word */
  _Atomic uint32_t waiters; /* parked acquirers */
  int32_t bounded;          /* releases may not exceed `bound` */
  uint32_t bound;           /* the initial value */
} cc_sem_t;

extern const cc_type_t cc_sem_type; /* "semaphore" */

/* A new semaphore holding `value` (<= CC_SEM_MAX), bounded by it when
 * `bounded` is non-zero. NULL when out of shared memory. */
cc_obj_t *cc_sem_new(const char *name, uint32_t value, int bounded);
/* Takes one unit, blocking until `deadline`. 0, CC_ETIMEOUT, CC_EINTR. */
int cc_sem_acquire(cc_obj_t *s, cc_deadline_t deadline);
/* For callers that may be tasks (wait.h): 0 when a unit was taken at once,
 * else CC_WAIT_PARK with *w set up for cc_wait_run. */
struct cc_wait;
int cc_sem_acquire_w(struct cc_wait *w, cc_obj_t *s, cc_deadline_t deadline);
/* Adds k (>= 1) units. 0, or CC_EOVERFLOW (past the bound or CC_SEM_MAX;
 * nothing changed). Never blocks. */
int cc_sem_release(cc_obj_t *s, uint32_t k);
uint32_t cc_sem_value(cc_obj_t *s);

#endif
