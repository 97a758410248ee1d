/*
 * wait.c - the one wait primitive (see wait.h, docs/TASKS.md).
 *
 * Task waiters are kept in a table of buckets in the arena, hashed by the
 * futex address they wait on (like the kernel's own futex table). A waker
 * first wakes parked threads with FUTEX_WAKE, then, only when some task
 * waits anywhere (one relaxed load after a fence), the records of that
 * address. Ordering: a task registers (count++, insert: seq_cst) and then
 * polls the word; a waker changes the word and then, after a seq_cst fence,
 * reads the count. One of the two sees the other, as with a futex.
 */
#include "wait.h"

#include <pthread.h>
#include "actor.h"
#include "futex.h"
#include "interrupt.h"
#include "mutex.h"

#define NBUCKETS 1024

/* Waiters in the order they registered, so a wake of n reaches the n
 * oldest (as the kernel's futex queue does for threads). */
typedef struct bucket {
  cc_mutex_t lock;
  cc_waiter_t *head, *tail;
} bucket_t;

typedef struct table {
  _Atomic uint32_t ntasks; /* task waiters registered anywhere */
  bucket_t b[NBUCKETS];
} table_t;

/* Allocated from the arena by the first user, and before any fork (the
 * prepare handler), so every process of a family shares one table. */
static _Atomic(table_t *) table;
static pthread_mutex_t table_once = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local cc_bell_t *current_bell;

static table_t *get_table(void) {
  table_t *t = atomic_load_explicit(&table, memory_order_acquire);
  if (cc_likely(t != NULL)) return t;
  pthread_mutex_lock(&table_once);
  t = atomic_load(&table);
  if (!t && cc_arena_init() == 0) {
    t = cc_calloc(sizeof *t);
    atomic_store(&table, t);
  }
  pthread_mutex_unlock(&table_once);
  return t;
}

static void prepare_fork(void) {
  if (!atomic_load(&table) && cc_arena_error() == NULL) get_table();
}

__attribute__((constructor)) static void wait_init(void) {
  pthread_atfork(prepare_fork, NULL, NULL);
}

static bucket_t *bucket_of(table_t *t, _Atomic uint32_t *addr) {
  uintptr_t a = (uintptr_t)addr >> 2;
  return &t->b[(a ^ (a >> 10) ^ (a >> 20)) % NBUCKETS];
}

/* ---- bells -------------------------------------------------------------- */

cc_bell_t *cc_bell_new(void (*notify)(void *), void *arg) {
  cc_bell_t *b = cc_calloc(sizeof *b);
  if (!b) return NULL;
  b->pid = cc_pid;
  b->notify = notify;
  b->notify_arg = arg;
  return b;
}

void cc_bell_free(cc_bell_t *b) {
  if (b) cc_free(b);
}

void cc_bell_set_current(cc_bell_t *b) {
  current_bell = b;
}

static void ring(cc_bell_t *b) {
  if (b == current_bell) return; /* the loop itself: it looks before it polls */
  atomic_thread_fence(memory_order_seq_cst); /* the push, then `sleeping` */
  if (!atomic_load_explicit(&b->sleeping, memory_order_relaxed)) return;
  if (b->pid == cc_pid) {
    b->notify(b->notify_arg);
    return;
  }
  atomic_fetch_add(&b->ring, 1);
  cc_futex_wake(&b->ring, 1);
}

void cc_bell_watch(cc_bell_t *b) {
  for (;;) {
    uint32_t v = atomic_load(&b->ring);
    if (atomic_load(&b->stop)) return;
    cc_futex_wait(&b->ring, v, CC_FOREVER);
    if (atomic_load(&b->stop)) return;
    if (atomic_load(&b->ring) != v) b->notify(b->notify_arg);
  }
}

void cc_bell_stop(cc_bell_t *b) {
  atomic_store(&b->stop, 1);
  atomic_fetch_add(&b->ring, 1);
  cc_futex_wake(&b->ring, INT32_MAX);
}

int cc_bell_sleep(cc_bell_t *b, int spin) {
  for (int i = 0; i < spin; i++) {
    if (atomic_load_explicit(&b->woken, memory_order_relaxed)) return 0;
    cc_cpu_relax();
  }
  atomic_store(&b->sleeping, 1);
  atomic_thread_fence(memory_order_seq_cst); /* `sleeping`, then the list */
  if (atomic_load(&b->woken)) {
    atomic_store(&b->sleeping, 0);
    return 0;
  }
  return 1;
}

void cc_bell_awake(cc_bell_t *b) {
  atomic_store_explicit(&b->sleeping, 0, memory_order_relaxed);
}

cc_waiter_t *cc_bell_take(cc_bell_t *b) {
  cc_waiter_t *w, *fifo = NULL;
  if (atomic_load_explicit(&b->woken, memory_order_relaxed) == NULL) return NULL;
  w = atomic_exchange(&b->woken, NULL);
  /* The list is pushed newest first: hand it out in the order of wakes. */
  while (w) {
    cc_waiter_t *next = w->wnext;
    w->wnext = fifo;
    fifo = w;
    w = next;
  }
  return fifo;
}

static void push_woken(cc_waiter_t *t) {
  cc_bell_t *b = t->bell;
  cc_waiter_t *h;
  uint32_t no = 0;
  if (!atomic_compare_exchange_strong(&t->queued, &no, 1)) return;
  h = atomic_load(&b->woken);
  do {
    t->wnext = h;
  } while (!atomic_compare_exchange_weak(&b->woken, &h, t));
  ring(b);
}

/* ---- waiter records ------------------------------------------------------ */

cc_waiter_t *cc_waiter_new(cc_bell_t *b, void *task) {
  cc_waiter_t *t;
  if (!get_table()) return NULL;
  t = cc_calloc(sizeof *t);
  if (!t) return NULL;
  t->bell = b;
  t->task = task;
  return t;
}

/* With the bucket lock held. */
static void unlink_locked(table_t *tb, bucket_t *bk, cc_waiter_t *t) {
  cc_waiter_t **p, *prev = NULL;
  if (!t->linked) return;
  for (p = &bk->head; *p; prev = *p, p = &(*p)->next)
    if (*p == t) {
      *p = t->next;
      if (bk->tail == t) bk->tail = prev;
      break;
    }
  t->next = NULL;
  t->linked = 0;
  atomic_fetch_sub(&tb->ntasks, 1);
}

/* Unregisters t whatever its state; returns the state it had. */
static uint32_t unregister(cc_waiter_t *t) {
  table_t *tb = get_table();
  bucket_t *bk;
  uint32_t s;
  if (!t->addr) return atomic_load(&t->state);
  bk = bucket_of(tb, t->addr);
  cc_mutex_lock(&bk->lock);
  unlink_locked(tb, bk, t);
  s = atomic_exchange(&t->state, CC_WAITER_IDLE);
  cc_mutex_unlock(&bk->lock);
  return s;
}

void cc_waiter_free(cc_waiter_t *t) {
  if (!t) return;
  unregister(t);
  /* Still on the bell's list: the loop frees its bell's list first (it
   * takes it before freeing records), see ltask.c. */
  cc_free(t);
}

static int register_at(cc_waiter_t *t, _Atomic uint32_t *addr) {
  table_t *tb = get_table();
  bucket_t *bk;
  if (t->linked && t->addr == addr) {
    atomic_store(&t->state, CC_WAITER_PARKED);
    atomic_thread_fence(memory_order_seq_cst);
    return 0;
  }
  if (t->linked) unregister(t);
  bk = bucket_of(tb, addr);
  cc_mutex_lock(&bk->lock);
  t->addr = addr;
  t->next = NULL;
  if (bk->tail)
    bk->tail->next = t;
  else
    bk->head = t;
  bk->tail = t;
  t->linked = 1;
  atomic_store(&t->state, CC_WAITER_PARKED);
  atomic_fetch_add(&tb->ntasks, 1);
  cc_mutex_unlock(&bk->lock);
  atomic_thread_fence(memory_order_seq_cst);
  return 0;
}

int cc_waiter_take(cc_waiter_t *t) {
  table_t *tb = get_table();
  bucket_t *bk;
  uint32_t s = CC_WAITER_WOKEN;
  int won;
  atomic_store(&t->queued, 0);
  if (!t->addr) return 0;
  bk = bucket_of(tb, t->addr);
  cc_mutex_lock(&bk->lock);
  won = atomic_compare_exchange_strong(&t->state, &s, CC_WAITER_IDLE);
  if (won) unlink_locked(tb, bk, t);
  cc_mutex_unlock(&bk->lock);
  return won;
}

int cc_waiter_cancel(cc_waiter_t *t) {
  table_t *tb = get_table();
  bucket_t *bk;
  uint32_t s = CC_WAITER_PARKED;
  int won;
  if (!t->addr) return 1;
  bk = bucket_of(tb, t->addr);
  cc_mutex_lock(&bk->lock);
  won = atomic_compare_exchange_strong(&t->state, &s, CC_WAITER_IDLE);
  if (won) unlink_locked(tb, bk, t);
  cc_mutex_unlock(&bk->lock);
  return won;
}

void cc_wake(_Atomic uint32_t *addr, int n) {
  table_t *tb;
  bucket_t *bk;
  int woke = 0;
  cc_futex_wake(addr, n);
  atomic_thread_fence(memory_order_seq_cst);
  tb = atomic_load_explicit(&table, memory_order_acquire);
  if (cc_likely(!tb || atomic_load_explicit(&tb->ntasks, memory_order_relaxed) == 0)) return;
  bk = bucket_of(tb, addr);
  cc_mutex_lock(&bk->lock);
  for (cc_waiter_t *t = bk->head; t && woke < n; t = t->next) {
    uint32_t s = CC_WAITER_PARKED;
    if (t->addr != addr) continue;
    if (atomic_compare_exchange_strong(&t->state, &s, CC_WAITER_WOKEN)) {
      push_woken(t);
      woke++;
    }
  }
  cc_mutex_unlock(&bk->lock);
}

/* ---- the wait ------------------------------------------------------------ */

/* The one exit: the primitive's leave, then the instrumentation. */
static int finish(cc_wait_t *w, int rc) {
  if (w->task && w->task->linked) unregister(w->task);
  if (w->ops->leave) rc = w->ops->leave(w, rc);
  if (w->begun) cc_wait_end(w->obj, rc);
  w->begun = 0;
  return rc;
}

/* Parks (thread) or registers (task) until poll gives a result. */
static int park_loop(cc_wait_t *w) {
  for (;;) {
    int rc = w->ops->poll(w), r;
    cc_deadline_t until;
    w->ticked = 0;
    if (rc != CC_WAIT_PARK) return finish(w, rc);
    if (w->task) {
      register_at(w->task, w->addr);
      /* A change between the poll and the registration is seen here. */
      rc = w->ops->poll(w);
      if (rc != CC_WAIT_PARK) return finish(w, rc);
      if (w->task->addr != w->addr) continue; /* poll moved to another word */
      return CC_EPARKED;
    }
    until = w->deadline;
    if (w->tick_ns) {
      cc_deadline_t tick = cc_now_ns() + w->tick_ns;
      if (tick < until) until = tick;
    }
    r = cc_futex_wait(w->addr, w->val, until);
    if (r == CC_EINTR) return finish(w, CC_EINTR);
    if (r == CC_ETIMEOUT) {
      if (w->deadline != CC_FOREVER && cc_now_ns() >= w->deadline) {
        /* The final re-check: whatever happened by the deadline counts. */
        rc = w->ops->poll(w);
        return finish(w, rc == CC_WAIT_PARK ? CC_ETIMEOUT : rc);
      }
      w->ticked = 1;
    }
  }
}

int cc_wait_run(cc_wait_t *w) {
  int rc = w->ops->poll(w), spin;
  if (rc != CC_WAIT_PARK) return w->ops->leave ? w->ops->leave(w, rc) : rc;
  if (w->deadline == CC_NOW || (w->deadline != CC_FOREVER && cc_now_ns() >= w->deadline))
    return w->ops->leave ? w->ops->leave(w, CC_ETIMEOUT) : CC_ETIMEOUT;
  /* A task never spins: what it waits for may be another task of its
   * own loop, which cannot run meanwhile. */
  spin = w->ops->spin_div && !w->task ? cc_wait_spin / w->ops->spin_div : 0;
  for (int i = 0; i < spin; i++) {
    cc_cpu_relax();
    if (atomic_load_explicit(w->addr, memory_order_relaxed) != w->val) {
      rc = w->ops->poll(w);
      if (rc != CC_WAIT_PARK) return w->ops->leave ? w->ops->leave(w, rc) : rc;
    }
  }
  rc = cc_wait_begin(w->obj, w->ops->kind, w->deadline);
  if (rc != 0) return w->ops->leave ? w->ops->leave(w, rc) : rc;
  w->begun = 1;
  if (w->ops->enter) w->ops->enter(w);
  w->parked = 1;
  return park_loop(w);
}

int cc_wait_resume(cc_wait_t *w, int why) {
  int rc;
  if (why == CC_ECANCELLED) return finish(w, CC_ECANCELLED);
  if (why == CC_ETIMEOUT) {
    if (w->task->linked) unregister(w->task);
    rc = w->ops->poll(w);
    return finish(w, rc == CC_WAIT_PARK ? CC_ETIMEOUT : rc);
  }
  if (why == CC_EAGAIN) w->ticked = 1;
  return park_loop(w);
}

int cc_wait_sleep(cc_deadline_t deadline) {
  _Atomic uint32_t word = 0;
  int rc = 0;
  cc_wait_begin(NULL, CC_WAIT_SLEEP, deadline);
  while (cc_now_ns() < deadline) {
    rc = cc_futex_wait(&word, 0, deadline);
    if (rc == CC_EINTR) break;
    rc = 0;
  }
  cc_wait_end(NULL, rc);
  return rc;
}
