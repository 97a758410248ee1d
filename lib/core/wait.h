/*
 * wait.h - the one wait primitive: every blocking call of the core goes
 * through cc_wait_run.
 *
 * A blocking call (lock acquire, semaphore acquire, event wait, ...) is a
 * futex word plus a test. The primitive describes the test with a
 * cc_wait_ops_t; cc_wait_run owns everything else, once: the spin budget
 * (one tunable policy, cc_wait_spin), the deadline, the instrumentation
 * (cc_wait_begin/cc_wait_end of actor.h, so deadlock detection and dumps see
 * every wait), EINTR and Ctrl-C (interrupt.h), periodic ticks (a lock polls
 * for a dead owner process) and the final re-check after a timeout.
 *
 * Who waits is either an OS thread, which parks on the futex word as
 * before, or a task of an event loop (w->task != NULL). A task cannot park:
 * cc_wait_run registers its waiter record under the futex word's address
 * and returns CC_EPARKED; the caller returns to its loop, which calls
 * cc_wait_resume when the record is woken, its timer fires (CC_ETIMEOUT, or
 * CC_EAGAIN for a tick) or the task is cancelled (CC_ECANCELLED). Wakers do
 * not need to know who waits: cc_wake() wakes parked threads (futex) and
 * registered tasks (their loop's bell), in any process of the family.
 *
 * The waiter records and bells live in the arena, so a waker in another
 * process reaches them; the task pointer in a record is only meaningful in
 * the loop's own process.
 */
#ifndef CC_WAIT_H
#define CC_WAIT_H

#include <stdatomic.h>
#include <stdint.h>

#include "arena.h"
#include "cc.h"
#include "futex.h"

/* poll's answer "not yet: park on w->addr while it holds w->val". */
#define CC_WAIT_PARK 0x7ffe

struct cc_wait;
struct cc_waiter;

typedef struct cc_wait_ops {
  int kind;      /* CC_WAIT_* of actor.h */
  int spin_div;  /* spin budget = cc_wait_spin / spin_div (0: no spin) */
  /* Tries to finish: returns a result (0, 1, CC_E*) or CC_WAIT_PARK after
   * setting w->addr and w->val. w->parked tells whether the waiter has been
   * entered (counted as a waiter); w->ticked that a tick has passed. */
  int (*poll)(struct cc_wait *w);
  /* Optional: called once before the first park (count the waiter). */
  void (*enter)(struct cc_wait *w);
  /* Optional: called once on every exit of the wait, after the first poll
   * (parked or not), with the result; returns the final result. Undoes
   * enter, passes on a wake it may have consumed, and so on. */
  int (*leave)(struct cc_wait *w, int rc);
} cc_wait_ops_t;

typedef struct cc_wait {
  const cc_wait_ops_t *ops;
  cc_obj_t *obj;           /* what is waited on (instrumentation); may be NULL */
  cc_deadline_t deadline;
  int64_t tick_ns;         /* 0, or how often poll wants to run anyway */
  _Atomic uint32_t *addr;  /* set by poll with CC_WAIT_PARK */
  uint32_t val;
  int parked;              /* entered: counted as a waiter */
  int ticked;              /* a tick passed since the last poll */
  int begun;               /* cc_wait_begin recorded */
  struct cc_waiter *task;  /* NULL: an OS thread waits */
  uintptr_t arg[6];        /* the primitive's own state */
} cc_wait_t;

/* Fills *w for a wait on `o` until `deadline` (an OS thread waits unless
 * the caller then sets w->task). */
static inline void cc_wait_init(cc_wait_t *w, const cc_wait_ops_t *ops, cc_obj_t *o,
                                cc_deadline_t deadline) {
  w->ops = ops;
  w->obj = o;
  w->deadline = deadline;
  w->tick_ns = 0;
  w->addr = NULL;
  w->val = 0;
  w->parked = 0;
  w->ticked = 0;
  w->begun = 0;
  w->task = NULL;
}

/* Runs the wait: polls, spins, parks (thread) and re-checks until poll
 * gives a result, the deadline passes (CC_ETIMEOUT) or the interruptible
 * thread gets Ctrl-C (CC_EINTR). CC_EDEADLOCK from cc_wait_begin for an
 * untimed lock wait that closes a cycle. For a task: may return
 * CC_EPARKED instead of blocking. */
int cc_wait_run(cc_wait_t *w);
/* A task's parked wait goes on: why is 0 (woken), CC_ETIMEOUT (deadline),
 * CC_EAGAIN (tick), CC_ECANCELLED. Returns a result or CC_EPARKED again. */
int cc_wait_resume(cc_wait_t *w, int why);

/* Wakes up to n waiters on addr (INT32_MAX: all): parked threads and
 * registered tasks alike (each kind up to n; extra wakes are spurious and
 * every poll re-checks). Never blocks but for a bucket's short lock. */
void cc_wake(_Atomic uint32_t *addr, int n);

/* The spin policy, one tunable: how many times a blocking call polls its
 * word before it parks (divided by the ops' spin_div). It is futex.h's
 * cc_spin_count, which the internal mutex and the queue use too: 2000,
 * 0 on one CPU, CONCLUA_SPIN=<n> in the environment overrides. */
#define cc_wait_spin cc_spin_count

/* Sleeps until the deadline: 0, or CC_EINTR (Ctrl-C on the interruptible
 * thread). Threads only; a task sleeps on its loop's timer. */
int cc_wait_sleep(cc_deadline_t deadline);

/* ---- task waiters and bells (used by the event loop) --------------------
 * A bell is a loop's doorbell, in the arena: a woken waiter record is pushed
 * on the bell's list, then the bell rings: in the loop's own thread nothing
 * more is needed; in its process the loop's notify callback runs (an
 * uv_async_send); from another process the futex word `ring` is bumped and
 * woken, which the loop's helper thread watches (cc_bell_watch). */
typedef struct cc_bell {
  _Atomic uint32_t ring;          /* bumped by wakers of another process */
  _Atomic uint32_t stop;          /* tells the helper thread to end */
  _Atomic(struct cc_waiter *) woken; /* pushed by wakers, taken by the loop */
  _Atomic uint32_t sleeping;      /* the loop is (about to be) blocked in its poll */
  int32_t pid;                    /* the loop's process */
  void (*notify)(void *arg);      /* same process, another thread */
  void *notify_arg;
} cc_bell_t;

enum { CC_WAITER_IDLE = 0, CC_WAITER_PARKED, CC_WAITER_WOKEN };

typedef struct cc_waiter {
  struct cc_waiter *next;         /* in its bucket: under the bucket lock */
  struct cc_waiter *wnext;        /* on the bell's woken list */
  _Atomic uint32_t *addr;         /* registered under this address */
  _Atomic uint32_t state;         /* CC_WAITER_* */
  _Atomic uint32_t queued;        /* on the bell's woken list */
  int32_t linked;
  cc_bell_t *bell;
  void *task;                     /* the loop's own pointer (its process only) */
} cc_waiter_t;

/* A bell for a loop of this process (NULL when out of shared memory) and
 * its end (after the helper has stopped). */
cc_bell_t *cc_bell_new(void (*notify)(void *), void *arg);
void cc_bell_free(cc_bell_t *b);
/* Marks the calling thread as the one running b's loop (NULL: none). */
void cc_bell_set_current(cc_bell_t *b);
/* The helper thread's body: waits for rings from other processes and
 * calls b->notify for each, until cc_bell_stop. */
void cc_bell_watch(cc_bell_t *b);
void cc_bell_stop(cc_bell_t *b);
/* Before the loop blocks in its poll: spins up to `spin` times for a wake,
 * then says it sleeps. Returns 1 when it may block (wakers will ring), 0
 * when a wake arrived (take it instead). cc_bell_awake after the poll.
 * Wakers ring (a syscall) only while the loop sleeps. */
int cc_bell_sleep(cc_bell_t *b, int spin);
void cc_bell_awake(cc_bell_t *b);
/* Takes the waiters woken since the last call (a list through wnext). The
 * loop then calls cc_waiter_take on each: non-zero when the record was
 * still woken (the task's wait goes on with cc_wait_resume(w, 0)), 0 for a
 * stale entry to skip. */
cc_waiter_t *cc_bell_take(cc_bell_t *b);
int cc_waiter_take(cc_waiter_t *t);
/* A waiter record for a task of b's loop (NULL when out of memory). */
cc_waiter_t *cc_waiter_new(cc_bell_t *b, void *task);
void cc_waiter_free(cc_waiter_t *t);
/* The task's timer fired or it was cancelled: non-zero when the record was
 * still parked (now unregistered: resume the wait with the reason), 0 when
 * a wake won (it is on the bell's list: wait for it). */
int cc_waiter_cancel(cc_waiter_t *t);

#endif
