/*
 * queue.c - FIFO queues and select; see queue.h and docs/QUEUES.md.
 *
 * One cc_mutex guards the ring. Waiting is split in two phases: a short spin
 * with the lock dropped (polling `count` / `closed`), then parking on a futex
 * sequence word after registering in `getters` / `putters` under the lock.
 * The other side bumps the word and wakes only when that counter is non-zero,
 * so an exchange between two busy threads costs no system call.
 *
 * Lock order: a queue lock is taken alone, except that it may take the
 * arena's allocator locks (growing or shrinking the ring). Select takes the
 * queue locks one at a time, never two at once. Items are cleared (which can
 * run object destructors) only with no queue lock held.
 */
#include "queue.h"

#include <string.h>

#include "actor.h"
#include "futex.h"

#define MIN_CAP 8u
#define SHRINK_CAP 1024u /* an empty ring bigger than this goes back to MIN_CAP */
#define MAX_CAP (1u << 31)

typedef struct select_block {
  _Atomic uint32_t word; /* futex: 0 parked, 1 something may have changed */
  uint32_t n;
  cc_qwatch_t w[];
} select_block_t;

static void queue_destroy(cc_obj_t *o) {
  cc_queue_t *q = (cc_queue_t *)o;
  uint32_t n = atomic_load(&q->count);
  for (uint32_t i = 0; i < n; i++) cc_item_clear(&q->ring[(q->head + i) & (q->cap - 1)]);
  cc_free(q->ring);
  q->ring = NULL;
}

const cc_type_t cc_queue_type = {"queue", queue_destroy, NULL, NULL};

cc_queue_t *cc_queue_new(uint32_t maxsize, const char *name) {
  cc_queue_t *q = cc_obj_new(&cc_queue_type, sizeof *q, name);
  if (!q) return NULL;
  q->ring = cc_alloc(MIN_CAP * sizeof(cc_item_t));
  if (!q->ring) {
    cc_obj_unref(&q->h);
    return NULL;
  }
  q->cap = MIN_CAP;
  q->maxsize = maxsize;
  cc_mutex_init(&q->lock);
  return q;
}

/* ---- ring (lock held) ---------------------------------------------------- */

/* Moves the items into a ring of `ncap` slots starting at slot 0. */
static int resize(cc_queue_t *q, uint32_t ncap) {
  uint32_t n = atomic_load_explicit(&q->count, memory_order_relaxed);
  uint32_t first = q->cap - q->head; /* slots from head to the ring's end */
  cc_item_t *r = cc_alloc((size_t)ncap * sizeof *r);
  if (!r) return CC_ENOMEM;
  if (n <= first) {
    memcpy(r, q->ring + q->head, n * sizeof *r);
  } else {
    memcpy(r, q->ring + q->head, first * sizeof *r);
    memcpy(r + first, q->ring, (n - first) * sizeof *r);
  }
  cc_free(q->ring);
  q->ring = r;
  q->cap = ncap;
  q->head = 0;
  return 0;
}

static void notify_watchers(cc_queue_t *q) {
  /* Under the queue lock: a select frees its records only after unlinking
   * them under this lock, so the words stay valid. */
  for (cc_qwatch_t *w = q->watchers; w; w = w->next)
    if (atomic_exchange(w->word, 1) == 0) cc_futex_wake(w->word, 1);
}

/* ---- waiting --------------------------------------------------------------- */

typedef struct waiter {
  cc_deadline_t deadline;
  int spun, began, timed_out;
} waiter_t;

static int can_get(cc_queue_t *q) {
  return atomic_load_explicit(&q->count, memory_order_relaxed) != 0 ||
         atomic_load_explicit(&q->closed, memory_order_relaxed);
}

static int can_put(cc_queue_t *q) {
  return atomic_load_explicit(&q->count, memory_order_relaxed) < q->maxsize ||
         atomic_load_explicit(&q->closed, memory_order_relaxed);
}

/* Called with the lock held when the caller cannot proceed. The first call
 * spins with the lock dropped; later ones park on `seq` counted in `*nwait`.
 * Returns with the lock held: 0 (look again), CC_ETIMEOUT (look once more,
 * then give up: w->timed_out is set) or CC_EINTR. */
static int wait_turn(cc_queue_t *q, waiter_t *w, int (*ready)(cc_queue_t *),
                     _Atomic uint32_t *seq, uint32_t *nwait) {
  uint32_t s;
  int rc;
  if (w->deadline == CC_NOW || w->timed_out) return CC_ETIMEOUT;
  if (!w->spun) {
    w->spun = 1;
    cc_mutex_unlock(&q->lock);
    for (int i = 0; i < cc_spin_count && !ready(q); i++) cc_cpu_relax();
    cc_mutex_lock(&q->lock);
    return 0;
  }
  (*nwait)++;
  s = atomic_load_explicit(seq, memory_order_relaxed);
  cc_mutex_unlock(&q->lock);
  if (!w->began) {
    w->began = 1;
    cc_wait_begin(&q->h, CC_WAIT_QUEUE, w->deadline);
  }
  rc = cc_futex_wait(seq, s, w->deadline);
  cc_mutex_lock(&q->lock);
  (*nwait)--;
  if (rc == CC_ETIMEOUT) {
    w->timed_out = 1;
    rc = 0;
  }
  return rc;
}

static int finish(cc_queue_t *q, waiter_t *w, int rc) {
  if (w->began) cc_wait_end(&q->h, rc);
  return rc;
}

/* ---- put / get --------------------------------------------------------------- */

int cc_queue_put(cc_queue_t *q, cc_item_t *it, cc_deadline_t deadline) {
  waiter_t w = {deadline, 0, 0, 0};
  uint32_t n;
  int rc, wake;
  cc_mutex_lock(&q->lock);
  for (;;) {
    if (atomic_load_explicit(&q->closed, memory_order_relaxed)) {
      rc = CC_ECLOSED;
      goto fail;
    }
    n = atomic_load_explicit(&q->count, memory_order_relaxed);
    if (q->maxsize == 0 || n < q->maxsize) break;
    rc = wait_turn(q, &w, can_put, &q->put_seq, &q->putters);
    if (rc) goto fail;
  }
  if (n == q->cap) {
    if (q->cap >= MAX_CAP) {
      rc = CC_ENOMEM;
      goto fail;
    }
    if ((rc = resize(q, q->cap * 2)) != 0) goto fail;
  }
  q->ring[(q->head + n) & (q->cap - 1)] = *it;
  atomic_store_explicit(&q->count, n + 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&q->unfinished, 1, memory_order_relaxed);
  wake = q->getters != 0;
  if (wake) atomic_fetch_add_explicit(&q->get_seq, 1, memory_order_relaxed);
  if (cc_unlikely(q->watchers != NULL)) notify_watchers(q);
  cc_mutex_unlock(&q->lock);
  if (wake) cc_futex_wake(&q->get_seq, 1);
  it->len = 0;
  it->flags = 0;
  it->kind = 0;
  return finish(q, &w, 0);
fail:
  cc_mutex_unlock(&q->lock);
  return finish(q, &w, rc);
}

int cc_queue_get(cc_queue_t *q, cc_item_t *out, cc_deadline_t deadline) {
  waiter_t w = {deadline, 0, 0, 0};
  uint32_t n;
  int rc, wake;
  /* Lock-free early out for select's polling and try_get on an empty queue. */
  if (deadline == CC_NOW && !can_get(q)) return CC_ETIMEOUT;
  cc_mutex_lock(&q->lock);
  for (;;) {
    n = atomic_load_explicit(&q->count, memory_order_relaxed);
    if (n) break;
    if (atomic_load_explicit(&q->closed, memory_order_relaxed)) {
      rc = CC_ECLOSED;
      goto fail;
    }
    rc = wait_turn(q, &w, can_get, &q->get_seq, &q->getters);
    if (rc) goto fail;
  }
  *out = q->ring[q->head];
  q->head = (q->head + 1) & (q->cap - 1);
  atomic_store_explicit(&q->count, n - 1, memory_order_relaxed);
  if (n == 1 && q->cap > SHRINK_CAP) resize(q, MIN_CAP); /* keeps the big ring on ENOMEM */
  wake = q->putters != 0;
  if (wake) atomic_fetch_add_explicit(&q->put_seq, 1, memory_order_relaxed);
  cc_mutex_unlock(&q->lock);
  if (wake) cc_futex_wake(&q->put_seq, 1);
  return finish(q, &w, 0);
fail:
  cc_mutex_unlock(&q->lock);
  return finish(q, &w, rc);
}

int cc_queue_peek(cc_queue_t *q, cc_item_t *out) {
  int rc = 0;
  cc_mutex_lock(&q->lock);
  if (atomic_load_explicit(&q->count, memory_order_relaxed))
    cc_item_share(&q->ring[q->head], out);
  else
    rc = atomic_load_explicit(&q->closed, memory_order_relaxed) ? CC_ECLOSED : CC_EEMPTY;
  cc_mutex_unlock(&q->lock);
  return rc;
}

void cc_queue_close(cc_queue_t *q) {
  cc_mutex_lock(&q->lock);
  if (atomic_load_explicit(&q->closed, memory_order_relaxed)) {
    cc_mutex_unlock(&q->lock);
    return;
  }
  atomic_store_explicit(&q->closed, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&q->get_seq, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&q->put_seq, 1, memory_order_relaxed);
  notify_watchers(q);
  cc_mutex_unlock(&q->lock);
  cc_futex_wake(&q->get_seq, INT32_MAX);
  cc_futex_wake(&q->put_seq, INT32_MAX);
}

/* ---- task_done / join ------------------------------------------------------ */

int cc_queue_task_done(cc_queue_t *q) {
  uint32_t u = atomic_load(&q->unfinished);
  do {
    if (u == 0) return CC_EINVAL;
  } while (!atomic_compare_exchange_weak(&q->unfinished, &u, u - 1));
  /* seq_cst on both sides: either join sees 0 or we see its registration. */
  if (u == 1 && atomic_load(&q->joiners) != 0) cc_futex_wake(&q->unfinished, INT32_MAX);
  return 0;
}

int cc_queue_join(cc_queue_t *q, cc_deadline_t deadline) {
  int rc = 0;
  uint32_t u;
  for (int i = 0; i < cc_spin_count / 4; i++) {
    if (atomic_load_explicit(&q->unfinished, memory_order_acquire) == 0) return 0;
    cc_cpu_relax();
  }
  if (atomic_load(&q->unfinished) == 0) return 0;
  if (deadline == CC_NOW) return CC_ETIMEOUT;
  atomic_fetch_add(&q->joiners, 1);
  cc_wait_begin(&q->h, CC_WAIT_QUEUE, deadline);
  while ((u = atomic_load(&q->unfinished)) != 0) {
    rc = cc_futex_wait(&q->unfinished, u, deadline);
    if (rc == CC_ETIMEOUT) {
      if (atomic_load(&q->unfinished) == 0) rc = 0;
      break;
    }
    if (rc) break;
  }
  atomic_fetch_sub(&q->joiners, 1);
  cc_wait_end(&q->h, rc);
  return rc;
}

/* ---- select ------------------------------------------------------------------ */

/* One pass over the queues from `start`: 0 (item taken), CC_ECLOSED (all
 * closed and drained) or CC_EEMPTY. */
static int try_all(cc_queue_t *const *qs, int n, unsigned start, cc_item_t *out,
                   int *which) {
  int nclosed = 0;
  for (int k = 0; k < n; k++) {
    int i = (int)((start + (unsigned)k) % (unsigned)n);
    int rc = cc_queue_get(qs[i], out, CC_NOW);
    if (rc == 0) {
      *which = i;
      return 0;
    }
    if (rc == CC_ECLOSED) nclosed++;
  }
  return nclosed == n ? CC_ECLOSED : CC_EEMPTY;
}

static int any_ready(cc_queue_t *const *qs, int n) {
  for (int i = 0; i < n; i++)
    if (can_get(qs[i])) return 1;
  return 0;
}

/* Links (or unlinks) the select's record on every queue; when linking,
 * flags the word if a queue already has something. */
static void watch_all(cc_queue_t *const *qs, int n, select_block_t *sb, int link) {
  for (int i = 0; i < n; i++) {
    cc_queue_t *q = qs[i];
    cc_qwatch_t *w = &sb->w[i];
    cc_mutex_lock(&q->lock);
    if (link) {
      w->word = &sb->word;
      w->prev = NULL;
      w->next = q->watchers;
      if (q->watchers) q->watchers->prev = w;
      q->watchers = w;
      if (can_get(q)) atomic_store(&sb->word, 1);
    } else {
      if (w->prev)
        w->prev->next = w->next;
      else
        q->watchers = w->next;
      if (w->next) w->next->prev = w->prev;
    }
    cc_mutex_unlock(&q->lock);
  }
}

int cc_queue_select(cc_queue_t *const *qs, int n, unsigned start, cc_item_t *out,
                    int *which, cc_deadline_t deadline) {
  select_block_t *sb;
  int rc, wrc = 0;
  if (n <= 0) return CC_EINVAL;
  rc = try_all(qs, n, start, out, which);
  if (rc != CC_EEMPTY) return rc;
  if (deadline == CC_NOW) return CC_ETIMEOUT;
  for (int i = 0; i < cc_spin_count && !any_ready(qs, n); i++) cc_cpu_relax();
  rc = try_all(qs, n, start, out, which);
  if (rc != CC_EEMPTY) return rc;
  sb = cc_alloc(sizeof *sb + (size_t)n * sizeof(cc_qwatch_t));
  if (!sb) return CC_ENOMEM;
  sb->n = (uint32_t)n;
  cc_wait_begin(&qs[0]->h, CC_WAIT_QUEUE, deadline);
  for (;;) {
    atomic_store(&sb->word, 0);
    watch_all(qs, n, sb, 1);
    if (atomic_load(&sb->word) == 0) wrc = cc_futex_wait(&sb->word, 0, deadline);
    watch_all(qs, n, sb, 0);
    rc = try_all(qs, n, start, out, which);
    if (rc != CC_EEMPTY) break;
    if (wrc == CC_ETIMEOUT || wrc == CC_EINTR) {
      rc = wrc;
      break;
    }
  }
  cc_wait_end(&qs[0]->h, rc);
  cc_free(sb);
  return rc;
}
