/*
 * event.h - events (conc.event): a flag that threads wait to become set.
 *
 * One futex word: bit 0 is the flag, the bits above count the sets. A wait
 * returns true when the flag is set, or when a set happened while it slept
 * even if the flag was cleared again before it woke (Python semantics: set()
 * wakes every waiter). set() makes a futex wake only when somebody waits.
 */
#ifndef CC_EVENT_H
#define CC_EVENT_H

#include <stdatomic.h>
#include <stdint.h>

#include "arena.h"
#include "cc.h"

typedef struct cc_event_obj {
  cc_obj_t h;
  _Atomic uint32_t word;    /* (sets << 1) | flag */
  _Atomic uint32_t waiters; /* parked waiters */
} cc_event_t;

extern const cc_type_t cc_event_type; /* "event" */

cc_obj_t *cc_event_new(const char *name);
/* Sets the flag and wakes every waiter. Never blocks. */
void cc_event_set(cc_obj_t *e);
void cc_event_clear(cc_obj_t *e);
int cc_event_is_set(cc_obj_t *e);
/* 1 when the event was (or became) set, 0 on timeout, or CC_EINTR. */
int cc_event_wait(cc_obj_t *e, cc_deadline_t deadline);
/* For callers that may be tasks (wait.h): the result at once, or
 * CC_WAIT_PARK with *w set up for cc_wait_run. */
struct cc_wait;
int cc_event_wait_w(struct cc_wait *w, cc_obj_t *e, cc_deadline_t deadline);

#endif
