/*
 * pipe.h - two-ended message pipes (Python's multiprocessing.Pipe) over the
 * queue core.
 *
 * A pipe is two end objects. A duplex pipe has two unbounded queues, one per
 * direction; each end sends into one and receives from the other. A one-way
 * pipe (duplex = 0) has one queue: end a only receives, end b only sends.
 * An end is an ordinary conc object: every thread and process holding it
 * holds the same end, so closing it closes it for all of them.
 *
 * Closing an end (explicitly, or when the last reference to it goes) closes
 * both of its queues: the other end can still receive what was sent before
 * and then gets CC_ECLOSED; sending to a closed end fails with CC_ECLOSED;
 * what was sent to the closed end and never received is dropped.
 *
 * Every call is safe from any thread of any process of the family. Blocking
 * and wake-ups are the queue's (queue.h): a receive in a task suspends only
 * the task.
 */
#ifndef CC_PIPE_H
#define CC_PIPE_H

#include <stdatomic.h>
#include <stdint.h>

#include "arena.h"
#include "cc.h"
#include "item.h"
#include "queue.h"

typedef struct cc_pipe {
  cc_obj_t h;
  cc_queue_t *in;  /* what this end receives; NULL for a send-only end */
  cc_queue_t *out; /* where this end sends; NULL for a receive-only end */
  _Atomic uint32_t closed;
} cc_pipe_t;

extern const cc_type_t cc_pipe_type; /* "pipe" */

/* Makes the two ends (one reference each, for the caller). `name` names
 * both (may be NULL). Returns 0 or CC_ENOMEM (nothing is left allocated). */
int cc_pipe_new(int duplex, const char *name, cc_pipe_t **a, cc_pipe_t **b);

/* Sends *it. On 0 the pipe owns the item and *it is empty; otherwise the
 * caller still owns it. Never blocks (the queues are unbounded). Returns 0,
 * CC_ECLOSED (this end or the other one is closed: see cc_pipe_closed),
 * CC_EINVAL (a receive-only end) or CC_ENOMEM. */
int cc_pipe_send(cc_pipe_t *e, cc_item_t *it);

/* Receives the next item into *out (the caller clears it). Blocks until an
 * item arrives or the deadline. Returns 0, CC_ETIMEOUT, CC_ECLOSED (the
 * other end is closed and everything it sent was received, or this end is
 * closed), CC_EINVAL (a send-only end) or CC_EINTR. */
int cc_pipe_recv(cc_pipe_t *e, cc_item_t *out, cc_deadline_t deadline);

/* The same for a task (queue.h's cc_queue_get_w): 0 or an error at once,
 * or CC_WAIT_PARK with *w prepared (out must stay valid until it ends). */
int cc_pipe_recv_w(cc_wait_t *w, cc_pipe_t *e, cc_item_t *out, cc_deadline_t deadline);

/* Items waiting to be received by this end (a snapshot). */
uint32_t cc_pipe_pending(cc_pipe_t *e);

/* Closes this end (see above). Idempotent; never blocks for long. */
void cc_pipe_close(cc_pipe_t *e);

/* Non-zero once this end is closed. */
static inline int cc_pipe_closed(cc_pipe_t *e) {
  return atomic_load_explicit(&e->closed, memory_order_acquire) != 0;
}

#endif
