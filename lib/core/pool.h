/*
 * pool.h - worker pools and futures (conc.pool); see docs/POOLS.md.
 *
 * A pool is a task queue (a cc_queue_t holding one Future pointer per task)
 * served by n workers, threads or forked processes, that the binding starts
 * and that loop in cc_pool_take / cc_pool_task_done. A Future is a conc
 * object: the task (a shared encoded function, encoded arguments), its state
 * (a futex word) and, once finished, its encoded results or error text.
 * Everything lives in the shared arena, so a Future can be waited for from
 * any thread or process of the family.
 *
 * The thread that created the pool (the owner) learns about finished tasks
 * through one futex counter, `notify`, bumped by every finish and by every
 * worker death: it runs the callbacks and replaces dead workers in its own
 * calls (the binding does that; the core only queues the work).
 *
 * A process worker is watched by a monitor thread in the owner's process:
 * when the worker ends without having been told to, the monitor fails the
 * task the worker was running (naming its pid and how it died) and marks the
 * slot dead, so nothing waits for a dead worker, whatever the owner does.
 *
 * Lifetimes: a Future holds a reference to its pool and to its function; a
 * queued task holds a reference to its Future; a worker owns the reference
 * of the task it took until cc_pool_task_done; a monitor holds references to
 * the pool and the process it watches. The core never calls into Lua.
 */
#ifndef CC_POOL_H
#define CC_POOL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "cc.h"
#include "item.h"
#include "mutex.h"
#include "queue.h"
#include "wait.h"

#define CC_POOL_MAX 1024 /* workers per pool */

/* A function shared by the tasks that call it: encoded once. */
typedef struct cc_fnbox {
  cc_obj_t h;
  void *data; /* arena block: encoded function */
  size_t len;
} cc_fnbox_t;

extern const cc_type_t cc_fnbox_type; /* "poolfn" */

/* A function box adopting the arena block data[0..len) (freed, after the
 * release hook, when the last reference goes). NULL when out of memory (the
 * block is then still the caller's). */
cc_fnbox_t *cc_fnbox_new(void *data, size_t len);

/* Future states; the word is final from CC_F_OK on. FINISHING is the
 * claim of whoever finishes it, held while the result is stored. */
enum cc_future_state {
  CC_F_PENDING = 0,
  CC_F_RUNNING,
  CC_F_FINISHING,
  CC_F_OK,       /* result: encoded results */
  CC_F_ERROR,    /* result: the binding's error block, or a plain text */
  CC_F_CANCELLED /* no result */
};

enum cc_task_kind { CC_TASK_APPLY = 0, CC_TASK_MAP = 1 };

struct cc_pool;

typedef struct cc_future {
  cc_obj_t h;
  _Atomic uint32_t state;   /* futex word: cc_future_state */
  _Atomic uint32_t waiters; /* parked non-owner waiters */
  _Atomic uint32_t cb;      /* 0 no callback, 1 wanted, 2 queued or run */
  int32_t kind;             /* cc_task_kind */
  struct cc_pool *pool;     /* reference */
  cc_fnbox_t *fn;           /* reference */
  void *args;               /* encoded arguments (arena); NULL once taken */
  size_t args_len;
  void *result; /* once final: see the states */
  size_t result_len;
  int32_t runner_pid; /* the process that runs or ran it */
  int32_t died;       /* its worker died: result names the worker */
  struct cc_future *cb_next; /* the pool's callback list */
} cc_future_t;

extern const cc_type_t cc_future_type; /* "future" */

enum cc_slot_state {
  CC_SLOT_EMPTY = 0, /* no worker yet */
  CC_SLOT_LIVE,      /* a worker runs in it */
  CC_SLOT_EXITED,    /* its worker left after the queue closed */
  CC_SLOT_DEAD,      /* its worker died: to be replaced by the owner */
  CC_SLOT_SPAWNING   /* the owner is replacing it */
};

typedef struct cc_pool_slot {
  cc_item_t item;          /* the task the worker took (written by the get) */
  _Atomic uint32_t state;  /* cc_slot_state */
  int32_t pid;             /* process workers: the worker's pid */
} cc_pool_slot_t;

typedef struct cc_pool {
  cc_obj_t h;
  cc_queue_t *tasks;
  int32_t nworkers;
  int32_t processes;
  int32_t owner_pid;
  _Atomic uint32_t closed;     /* no more submits; the queue drains */
  _Atomic uint32_t terminated; /* queued tasks are cancelled */
  _Atomic uint32_t notify;     /* futex word: bumped on each finish and death */
  _Atomic uint32_t owner_waiting; /* the owner's parked waiters */
  _Atomic uint32_t deaths;   /* slots marked dead since the owner last looked */
  _Atomic uint32_t monitors; /* futex word: live monitor threads */
  _Atomic int64_t unfinished; /* submitted tasks not final yet */
  cc_mutex_t cb_lock;
  _Atomic(cc_future_t *) cb_head; /* finished futures with a callback */
  cc_future_t *cb_tail;
  cc_pool_slot_t slot[];
} cc_pool_t;

extern const cc_type_t cc_pool_type; /* "pool" */

/* Drops the object references held by encoded bytes (the binding's codec
 * release); applied to arguments, functions and successful results before
 * they are freed. Set once, before any pool exists. */
void cc_pool_set_release(void (*release)(const void *data, size_t len));
/* The text of a failed worker process's error block (the binding's
 * conc_error_text), for the error of the task it was running. Set once. */
void cc_pool_set_error_text(const char *(*text)(const void *data, size_t len, size_t *tlen));

/* A new pool of n (1..CC_POOL_MAX) worker slots, one reference, owned by the
 * calling process. NULL when out of memory. */
cc_pool_t *cc_pool_new(int n, int processes, const char *name);

/* A new pending Future (one reference, for the caller) for a task of `kind`
 * calling fn (a reference is taken) with the encoded arguments args (an
 * arena block the Future takes over). NULL when out of memory. */
cc_future_t *cc_future_new(cc_pool_t *p, int kind, cc_fnbox_t *fn, void *args,
                           size_t args_len);

/* Queues f (taking a reference for the queue). 0, CC_ECLOSED (closed pool)
 * or CC_ENOMEM: then f is cancelled here (if it was pending) and the pool's
 * count of unfinished tasks is as before. Never blocks (the queue is
 * unbounded). */
int cc_pool_submit(cc_pool_t *p, cc_future_t *f);

/* For worker `slot`: waits for a task, claims it (PENDING -> RUNNING) and
 * returns it; the worker owns its reference until cc_pool_task_done. Tasks
 * cancelled meanwhile are skipped; after cc_pool_terminate queued tasks are
 * cancelled instead of run. NULL when the queue is closed and drained (the
 * slot is then marked exited). */
cc_future_t *cc_pool_take(cc_pool_t *p, int slot);

/* For worker `slot`: finishes its task with status CC_F_OK or CC_F_ERROR and
 * `result` (an arena block the Future takes over; freed here if the task was
 * already finished by someone else), then drops the worker's reference. */
void cc_pool_task_done(cc_pool_t *p, int slot, cc_future_t *f, int status, void *result,
                       size_t len);

/* Moves f from PENDING or RUNNING to a final state with `result` (taken
 * over). Wakes its waiters and the owner, queues its callback. Returns 1
 * when this call finished f, 0 when it was already final (result is then
 * freed). */
int cc_future_finish(cc_future_t *f, int status, void *result, size_t len);

/* Frees the result of final f now, for a caller that has read it and
 * knows nobody else will (map's chunks, whose Futures it never shows):
 * f then reads as having no results. No-op before f is final. */
void cc_future_drop_result(cc_future_t *f);

/* Cancels f if it has not started: 1 when cancelled now, 0 otherwise. */
int cc_future_cancel(cc_future_t *f);

static inline uint32_t cc_future_state(const cc_future_t *f) {
  return atomic_load_explicit(&((cc_future_t *)f)->state, memory_order_acquire);
}
static inline int cc_future_done(const cc_future_t *f) {
  return cc_future_state(f) >= CC_F_OK;
}

/* Waits until f is final or the deadline: 0, CC_ETIMEOUT or CC_EINTR. For
 * any waiter except the pool's owner (which waits with
 * cc_pool_wait_event). */
int cc_future_wait(cc_future_t *f, cc_deadline_t deadline);

/* The owner's wait: returns once p->notify differs from `seen` (a task
 * finished or a worker died), or at the deadline: 0, CC_ETIMEOUT or
 * CC_EINTR. `on` names what the owner waits for (a future, or the pool).
 * The owner's thread and any number of its tasks may wait at once. */
int cc_pool_wait_event(cc_pool_t *p, uint32_t seen, cc_obj_t *on, cc_deadline_t deadline);

/* The same two waits prepared in *w for a caller that may be a task
 * (wait.h): the result when there is no need to wait, else CC_WAIT_PARK
 * with *w ready for cc_wait_run (or the binding's conc_wait). The binding
 * may use w->arg[2..5]. */
int cc_future_wait_w(cc_wait_t *w, cc_future_t *f, cc_deadline_t deadline);
int cc_pool_wait_event_w(cc_wait_t *w, cc_pool_t *p, uint32_t seen, cc_obj_t *on,
                         cc_deadline_t deadline);

/* Asks for f's callback: returns 1 when f is final or about to be (the
 * caller runs the callback itself, after cc_future_wait: at most a few
 * instructions away), else 0: f will be queued on its pool's callback list
 * before it becomes final. Returns 0 when asked before. */
int cc_future_want_callback(cc_future_t *f);

/* Detaches the pool's list of finished futures with callbacks (each with a
 * reference for the caller, linked by cb_next, oldest first), or NULL. */
cc_future_t *cc_pool_take_callbacks(cc_pool_t *p);

/* Stops accepting tasks; queued ones still run. Idempotent. */
void cc_pool_close(cc_pool_t *p);
/* Closes and cancels every queued task (running ones finish). Never waits. */
void cc_pool_terminate(cc_pool_t *p);

/* A slot whose worker died, claimed for replacement (DEAD -> SPAWNING), or
 * -1. The owner then starts a worker in it, or gives it back with
 * cc_pool_slot_dead. */
int cc_pool_claim_dead(cc_pool_t *p);
void cc_pool_slot_dead(cc_pool_t *p, int slot);

/* cc_pool_slot_live marks a slot live before its worker starts (a worker
 * that finds the queue closed marks it exited at once). cc_pool_watch then
 * starts a monitor thread that joins worker process `proc` (a cc_process_t)
 * of that slot (see the top): 0 or CC_EAGAIN (the slot stays unwatched). */
int cc_pool_watch(cc_pool_t *p, int slot, cc_obj_t *proc);
void cc_pool_slot_live(cc_pool_t *p, int slot);

/* Waits until every monitor thread of p has ended: 0, CC_ETIMEOUT, CC_EINTR. */
int cc_pool_wait_monitors(cc_pool_t *p, cc_deadline_t deadline);

#endif
