/*
 * queue.h - FIFO queues in the shared arena, and select over several.
 *
 * Any number of producers and consumers, in any threads and forked processes
 * of the family. Items are cc_item_t values (item.h): the queue moves them in
 * and out and never interprets their bytes. Bounded (maxsize > 0) or
 * unbounded (maxsize 0): the ring of item slots grows by doubling as needed
 * (up to maxsize) and shrinks back when a big ring empties.
 *
 * Everything lives in arena memory and uses only cc_mutexes, atomics and
 * futexes, so a queue works between processes exactly as between threads.
 * Producers serialise on one lock and consumers on another, on separate
 * cache lines, so a producer and a consumer do not contend with each other.
 * See docs/QUEUES.md for the layout, the wake policy and the lock order.
 *
 * Blocking calls wait through the one wait primitive (wait.h): a thread
 * spins briefly (the queue's own policy, below cc_spin_count) and parks on
 * a futex word of the queue (CC_WAIT_QUEUE, CC_EINTR on SIGINT); a task
 * uses the cc_queue_*_w forms, which give the fast path at once or
 * CC_WAIT_PARK with a prepared wait (docs/TASKS.md). Wakers use cc_wake, so
 * a parked thread and a suspended task are woken alike. A put or get issues
 * no system call unless the other side is parked.
 */
#ifndef CC_QUEUE_H
#define CC_QUEUE_H

#include <stdatomic.h>
#include <stdint.h>

#include "arena.h"
#include "cc.h"
#include "item.h"
#include "mutex.h"
#include "wait.h"

/* A parked select's registration on one queue. In arena memory: a putter in
 * another process walks the list (under the queue lock). */
typedef struct cc_qwatch {
  struct cc_qwatch *next, *prev;
  _Atomic uint32_t *word;
} cc_qwatch_t;

/* The slots, with their count (a power of two) in the same block. */
typedef struct cc_qring {
  uint32_t cap;
  uint32_t spare[3];
  cc_item_t slot[];
} cc_qring_t;

/* Padding that keeps the producer side, the consumer side and the waiting
 * words on separate cache lines (the arena only aligns to 16 bytes, so
 * padding, not _Alignas). */
#define CC_QPAD(n) char n[64]

typedef struct cc_queue {
  cc_obj_t h;
  uint32_t maxsize; /* 0: unbounded */
  _Atomic uint32_t closed;
  /* Replaced only with both locks held (grow, shrink), by one pointer store,
   * so a process killed while resizing leaves the old ring or the new one. */
  struct cc_qring *ring;
  CC_QPAD(pad0);
  /* Producer side: tail_lock serialises puts. Positions are absolute
   * (64-bit, never wrap); the slot of position p is p & (cap - 1). */
  cc_mutex_t tail_lock;
  _Atomic uint64_t tail; /* items ever put */
  uint64_t head_seen;    /* a recent value of head (tail_lock) */
  cc_qwatch_t *watchers; /* parked selects (tail_lock) */
  CC_QPAD(pad1);
  /* Consumer side: head_lock serialises gets and peeks. */
  cc_mutex_t head_lock;
  _Atomic uint64_t head; /* items ever taken */
  uint64_t tail_seen;    /* a recent value of tail (head_lock) */
  CC_QPAD(pad2);
  /* Waiting: parked counts and futex sequence words. */
  _Atomic uint32_t getters, putters;   /* parked (or about to park) */
  _Atomic uint32_t get_seq, put_seq;   /* bumped when they must look again */
  _Atomic uint32_t get_wake, put_wake; /* a wake is on its way: skip another */
  _Atomic uint32_t get_spin, put_spin; /* one spinner per side at a time */
  _Atomic uint32_t get_miss, put_miss; /* spins in a row that ended parked */
  _Atomic uint32_t joiners, join_seq;
  _Atomic uint64_t done; /* task_done calls: unfinished = tail - done */
} cc_queue_t;

extern const cc_type_t cc_queue_type;

/* A new queue with one reference; maxsize 0 means unbounded. `name` may be
 * NULL. NULL when out of memory. */
cc_queue_t *cc_queue_new(uint32_t maxsize, const char *name);

/* Appends *it. On success (0) the queue owns the item and *it is left empty;
 * otherwise the caller still owns it. Blocks while the queue is full, until
 * `deadline` (CC_NOW: never blocks). Returns 0, CC_ETIMEOUT (CC_EFULL is not
 * used: a full queue with CC_NOW gives CC_ETIMEOUT), CC_ECLOSED, CC_ENOMEM
 * (the ring could not grow) or CC_EINTR. */
int cc_queue_put(cc_queue_t *q, cc_item_t *it, cc_deadline_t deadline);

/* The same for a task (or any caller that runs the wait itself): 0 or an
 * error at once, or CC_WAIT_PARK with *w prepared for cc_wait_run /
 * conc_wait (w keeps `it`: it must stay valid until the wait ends; see
 * cc_queue_wait_item). */
int cc_queue_put_w(cc_wait_t *w, cc_queue_t *q, cc_item_t *it, cc_deadline_t deadline);

/* Removes the first item into *out (the caller then owns it and must
 * cc_item_clear it). Blocks while empty and open, until `deadline`. Returns
 * 0, CC_ETIMEOUT, CC_ECLOSED (closed and drained) or CC_EINTR. */
int cc_queue_get(cc_queue_t *q, cc_item_t *out, cc_deadline_t deadline);

/* The same for a task (see cc_queue_put_w); on 0 the item is in *out,
 * at once or when the wait ends. */
int cc_queue_get_w(cc_wait_t *w, cc_queue_t *q, cc_item_t *out, cc_deadline_t deadline);

/* Moves a prepared put or get wait's item to `it` (which must stay valid
 * until the wait ends): a binding moves a local item into memory that
 * survives its task's suspension. For a put, copy the item there first. */
void cc_queue_wait_item(cc_wait_t *w, cc_item_t *it);

/* Copies a share of the first item into *out without removing it (clear it
 * after use). Returns 0, CC_EMPTY or CC_ECLOSED (closed and drained). Never
 * blocks. */
int cc_queue_peek(cc_queue_t *q, cc_item_t *out);

/* Items in the queue now (a snapshot). Never blocks. */
static inline uint32_t cc_queue_size(cc_queue_t *q) {
  uint64_t h = atomic_load_explicit(&q->head, memory_order_acquire);
  uint64_t t = atomic_load_explicit(&q->tail, memory_order_acquire);
  return t > h ? (uint32_t)(t - h) : 0;
}

/* Closes the queue: later puts fail with CC_ECLOSED, gets drain what is left
 * and then return CC_ECLOSED; every parked putter, getter and select wakes.
 * Idempotent. */
void cc_queue_close(cc_queue_t *q);

/* Marks one item as processed (Python's task_done). CC_EINVAL when called
 * more times than items were put. */
int cc_queue_task_done(cc_queue_t *q);

/* Blocks until every item put has been marked done, or the deadline: 0,
 * CC_ETIMEOUT, CC_EINTR. */
int cc_queue_join(cc_queue_t *q, cc_deadline_t deadline);
int cc_queue_join_w(cc_wait_t *w, cc_queue_t *q, cc_deadline_t deadline);

/* Takes the first item of whichever of qs[0..n) has one, trying them in
 * order from qs[start % n] (callers rotate `start` for fairness). *which is
 * the index taken from. Blocks until an item arrives or the deadline.
 * Returns 0, CC_ETIMEOUT, CC_ECLOSED (every queue closed and drained),
 * CC_ENOMEM (could not allocate its watch records) or CC_EINTR. A queue
 * may appear more than once. */
int cc_queue_select(cc_queue_t *const *qs, int n, unsigned start, cc_item_t *out,
                    int *which, cc_deadline_t deadline);
/* The same for a task: 0 or an error (CC_ENOMEM included) at once, or
 * CC_WAIT_PARK with *w prepared; the wait owns a block that its end frees
 * (run the prepared wait: cc_wait_run / conc_wait). qs, out and which must
 * stay valid until the wait ends. */
int cc_queue_select_w(cc_wait_t *w, cc_queue_t *const *qs, int n, unsigned start,
                      cc_item_t *out, int *which, cc_deadline_t deadline);

#endif
