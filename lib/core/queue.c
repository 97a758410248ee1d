/*
 * queue.c - FIFO queues and select; see queue.h and docs/QUEUES.md.
 *
 * A ring of item slots addressed by absolute positions: `tail` counts items
 * ever put, `head` items ever taken. Producers serialise on tail_lock,
 * consumers on head_lock; each side keeps a cached copy of the other's
 * position and re-reads the real one only when the cache says full / empty,
 * so in steady state a put and a get share nothing but the slot itself.
 *
 * Publication: a producer writes the slot, then stores tail (release); a
 * consumer loads tail (acquire), copies the slot, then stores head
 * (release) before the slot can be reused.
 *
 * Waiting has two phases: a short spin with no lock held, then parking on a
 * futex sequence word after announcing itself in `getters` / `putters`. The
 * announcement and the other side's position store are seq_cst, as are the
 * re-check and the other side's load of the counter (a Dekker pair): either
 * the parking side sees the new position or the other side sees the counter
 * and bumps the word and wakes. So a put or get makes no system call unless
 * somebody is parked.
 *
 * Lock order: tail_lock before head_lock (only resizing takes both), then
 * the arena's allocator locks. Select takes the tail locks one at a time.
 * Items are cleared (which can run object destructors) with no lock held.
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
  uint64_t t = atomic_load(&q->tail);
  for (uint64_t p = atomic_load(&q->head); p < t; p++)
    cc_item_clear(&q->ring->slot[p & (q->ring->cap - 1)]);
  cc_free(q->ring);
  q->ring = NULL;
}

const cc_type_t cc_queue_type = {"queue", queue_destroy, NULL, NULL};

static cc_qring_t *new_ring(uint32_t cap) {
  cc_qring_t *r = cc_alloc(sizeof *r + (size_t)cap * sizeof(cc_item_t));
  if (r) r->cap = cap;
  return r;
}

cc_queue_t *cc_queue_new(uint32_t maxsize, const char *name) {
  cc_queue_t *q = cc_obj_new(&cc_queue_type, sizeof *q, name);
  if (!q) return NULL;
  q->ring = new_ring(MIN_CAP);
  if (!q->ring) {
    cc_obj_unref(&q->h);
    return NULL;
  }
  q->maxsize = maxsize;
  cc_mutex_init(&q->tail_lock);
  cc_mutex_init(&q->head_lock);
  return q;
}

/* ---- ring ------------------------------------------------------------------- */

/* With both locks held: moves the items to a ring of ncap slots. */
static int resize(cc_queue_t *q, uint32_t ncap) {
  uint64_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
  uint64_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
  cc_qring_t *old = q->ring, *r = new_ring(ncap);
  if (!r) return CC_ENOMEM;
  for (uint64_t p = h; p < t; p++)
    r->slot[p & (ncap - 1)] = old->slot[p & (old->cap - 1)];
  q->ring = r;
  cc_free(old);
  return 0;
}

/* With tail_lock held: doubles the ring. */
static int grow(cc_queue_t *q) {
  int rc;
  if (q->ring->cap >= MAX_CAP) return CC_ENOMEM;
  cc_mutex_lock(&q->head_lock);
  rc = resize(q, q->ring->cap * 2);
  cc_mutex_unlock(&q->head_lock);
  return rc;
}

/* With no lock held: gives a big ring back once the queue is empty. */
static void shrink(cc_queue_t *q) {
  cc_mutex_lock(&q->tail_lock);
  cc_mutex_lock(&q->head_lock);
  if (q->ring->cap > SHRINK_CAP && atomic_load(&q->head) == atomic_load(&q->tail))
    resize(q, MIN_CAP); /* keeps the big ring on ENOMEM */
  cc_mutex_unlock(&q->head_lock);
  cc_mutex_unlock(&q->tail_lock);
}

/* With tail_lock held: flags every parked select. The first few words are
 * woken by the caller after unlocking (a select that already left may have
 * freed its word: a wake on arena memory is at worst spurious, and every
 * futex waiter re-checks); the rest are woken here. */
#define NWAKE 4
static int notify_watchers(cc_queue_t *q, _Atomic uint32_t **words) {
  int n = 0;
  for (cc_qwatch_t *w = q->watchers; w; w = w->next) {
    if (atomic_exchange(w->word, 1) != 0) continue;
    if (n < NWAKE)
      words[n++] = w->word;
    else
      cc_futex_wake(w->word, 1);
  }
  return n;
}

static void wake_words(_Atomic uint32_t **words, int n) {
  for (int i = 0; i < n; i++)
    cc_futex_wake(words[i], 1);
}

/* ---- waiting ------------------------------------------------------------------ */

/* Conditions polled with no lock held (seq_cst loads: see the top). */
static int can_get(cc_queue_t *q) {
  uint64_t h = atomic_load(&q->head);
  return atomic_load(&q->tail) != h || atomic_load(&q->closed);
}

static int can_put(cc_queue_t *q) {
  uint64_t h = atomic_load(&q->head);
  return atomic_load(&q->tail) - h < q->maxsize || atomic_load(&q->closed);
}

/* One side's waiting words: getters or putters. */
typedef struct side {
  _Atomic uint32_t *nwait, *seq, *wake, *spin, *miss;
  int (*ready)(cc_queue_t *);
} side_t;

#define GETTERS(q)                                                                       \
  {                                                                                      \
    &(q)->getters, &(q)->get_seq, &(q)->get_wake, &(q)->get_spin, &(q)->get_miss,        \
        can_get                                                                          \
  }
#define PUTTERS(q)                                                                       \
  {                                                                                      \
    &(q)->putters, &(q)->put_seq, &(q)->put_wake, &(q)->put_spin, &(q)->put_miss,        \
        can_put                                                                          \
  }

/* Spinning pays when the other side is running and answers within a futex
 * wake-up's latency (tens of microseconds on a loaded VM): then nobody ever
 * parks and a round trip costs well under a microsecond. A side spins up to
 * 4 x cc_spin_count polls; after 8 spins in a row that ended parked it only
 * spins briefly, with a full spin every 8th wait to notice when the other
 * side gets busy again. cc_spin_count == 0 (one CPU) disables spinning. */
static int spin_budget(const side_t *sd) {
  uint32_t miss = atomic_load_explicit(sd->miss, memory_order_relaxed);
  if (miss >= 8 && (miss & 7) != 0) return cc_spin_count / 8;
  return cc_spin_count * 4;
}

static void spin_for(cc_queue_t *q, const side_t *sd) {
  int budget = spin_budget(sd), i;
  for (i = 0; i < budget && !sd->ready(q); i++)
    cc_cpu_relax();
  if (i < budget)
    atomic_store_explicit(sd->miss, 0, memory_order_relaxed);
  else
    atomic_fetch_add_explicit(sd->miss, 1, memory_order_relaxed);
}

/* Wakes one parked waiter of a side, unless none is parked or a wake is
 * already on its way (the waiter it reaches clears `wake` and, if it leaves
 * work behind, wakes the next one: see the callers of wake_one). */
static void wake_one(const side_t *sd) {
  if (atomic_load(sd->nwait) != 0 && atomic_exchange(sd->wake, 1) == 0) {
    atomic_fetch_add(sd->seq, 1);
    cc_futex_wake(sd->seq, 1);
  }
}

typedef struct waiter {
  cc_deadline_t deadline;
  int spun, parked, began, timed_out;
} waiter_t;

/* Called with no lock held when the caller cannot proceed. The first call
 * spins (only if nobody of this side is parked or spinning already); later
 * ones park on the side's sequence word. Returns 0 (look again; after a
 * timeout w->timed_out is set and the next call returns CC_ETIMEOUT) or
 * CC_EINTR. */
static int wait_turn(cc_queue_t *q, waiter_t *w, const side_t *sd) {
  uint32_t s;
  int rc = 0;
  if (w->deadline == CC_NOW || w->timed_out) return CC_ETIMEOUT;
  if (!w->spun) {
    w->spun = 1;
    if (atomic_load_explicit(sd->nwait, memory_order_relaxed) == 0 &&
        atomic_exchange_explicit(sd->spin, 1, memory_order_acquire) == 0) {
      spin_for(q, sd);
      atomic_store_explicit(sd->spin, 0, memory_order_release);
      return 0;
    }
  }
  w->parked = 1;
  atomic_fetch_add(sd->nwait, 1);
  /* A waker that saw an earlier registration may have set `wake` after that
   * waiter cleared it: clear it again now that we are counted. If a waker
   * set it before this store, its item is visible to the check below (all
   * seq_cst); if after, it wakes us. */
  atomic_store(sd->wake, 0);
  s = atomic_load(sd->seq);
  if (!sd->ready(q)) {
    if (!w->began) {
      w->began = 1;
      cc_wait_begin(&q->h, CC_WAIT_QUEUE, w->deadline);
    }
    rc = cc_futex_wait(sd->seq, s, w->deadline);
  }
  atomic_fetch_sub(sd->nwait, 1);
  atomic_store(sd->wake, 0); /* the next event wakes somebody again */
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

/* ---- put / get ------------------------------------------------------------------ */

int cc_queue_put(cc_queue_t *q, cc_item_t *it, cc_deadline_t deadline) {
  waiter_t w = {deadline, 0, 0, 0, 0};
  const side_t getters = GETTERS(q), putters = PUTTERS(q);
  _Atomic uint32_t *words[NWAKE];
  uint64_t t, limit = q->maxsize ? q->maxsize : UINT64_MAX;
  int rc, nw = 0, room = 0;
  cc_mutex_lock(&q->tail_lock);
  for (;;) {
    if (cc_unlikely(atomic_load_explicit(&q->closed, memory_order_relaxed))) {
      rc = CC_ECLOSED;
      goto fail;
    }
    t = atomic_load_explicit(&q->tail, memory_order_relaxed);
    if (cc_likely(t - q->head_seen < q->ring->cap && t - q->head_seen < limit)) break;
    q->head_seen = atomic_load(&q->head);
    if (t - q->head_seen < q->ring->cap && t - q->head_seen < limit) break;
    if (t - q->head_seen < limit) { /* ring full, queue not: grow */
      if ((rc = grow(q)) != 0) goto fail;
      continue;
    }
    cc_mutex_unlock(&q->tail_lock);
    rc = wait_turn(q, &w, &putters);
    cc_mutex_lock(&q->tail_lock);
    if (rc) goto fail;
  }
  q->ring->slot[t & (q->ring->cap - 1)] = *it;
  atomic_store(&q->tail, t + 1); /* seq_cst: pairs with a parking getter */
  if (cc_unlikely(q->watchers != NULL)) nw = notify_watchers(q, words);
  /* A putter that parked passes the turn on while there is room left. */
  if (cc_unlikely(w.parked)) room = t + 1 - atomic_load(&q->head) < limit;
  cc_mutex_unlock(&q->tail_lock);
  wake_one(&getters);
  if (cc_unlikely(nw)) wake_words(words, nw);
  if (cc_unlikely(room)) wake_one(&putters);
  it->len = 0;
  it->flags = 0;
  it->kind = 0;
  return finish(q, &w, 0);
fail:
  cc_mutex_unlock(&q->tail_lock);
  if (rc == CC_EINTR) wake_one(&putters); /* do not swallow a wake */
  return finish(q, &w, rc);
}

int cc_queue_get(cc_queue_t *q, cc_item_t *out, cc_deadline_t deadline) {
  waiter_t w = {deadline, 0, 0, 0, 0};
  const side_t getters = GETTERS(q), putters = PUTTERS(q);
  uint64_t h;
  int rc, empty, more = 0;
  /* Lock-free early out for select's polling and try_get on an empty queue. */
  if (deadline == CC_NOW && !can_get(q)) return CC_ETIMEOUT;
  cc_mutex_lock(&q->head_lock);
  for (;;) {
    h = atomic_load_explicit(&q->head, memory_order_relaxed);
    if (cc_likely(h != q->tail_seen)) break;
    q->tail_seen = atomic_load_explicit(&q->tail, memory_order_acquire);
    if (h != q->tail_seen) break;
    if (atomic_load(&q->closed)) {
      /* Every put happened before the close: look once more. */
      q->tail_seen = atomic_load_explicit(&q->tail, memory_order_acquire);
      if (h != q->tail_seen) break;
      rc = CC_ECLOSED;
      goto fail;
    }
    cc_mutex_unlock(&q->head_lock);
    rc = wait_turn(q, &w, &getters);
    cc_mutex_lock(&q->head_lock);
    if (rc) goto fail;
  }
  *out = q->ring->slot[h & (q->ring->cap - 1)];
  empty = h + 1 == q->tail_seen && q->ring->cap > SHRINK_CAP; /* shrink below */
  if (q->maxsize)
    atomic_store(&q->head, h + 1); /* seq_cst: pairs with a parking putter */
  else
    atomic_store_explicit(&q->head, h + 1, memory_order_release);
  /* A getter that parked passes the turn on while items are left. */
  if (cc_unlikely(w.parked)) more = atomic_load(&q->tail) != h + 1;
  cc_mutex_unlock(&q->head_lock);
  if (q->maxsize) wake_one(&putters);
  if (cc_unlikely(more)) wake_one(&getters);
  if (cc_unlikely(empty)) shrink(q);
  return finish(q, &w, 0);
fail:
  cc_mutex_unlock(&q->head_lock);
  if (rc == CC_EINTR) wake_one(&getters); /* do not swallow a wake */
  return finish(q, &w, rc);
}

int cc_queue_peek(cc_queue_t *q, cc_item_t *out) {
  int rc = 0;
  uint64_t h;
  cc_mutex_lock(&q->head_lock);
  h = atomic_load_explicit(&q->head, memory_order_relaxed);
  q->tail_seen = atomic_load_explicit(&q->tail, memory_order_acquire);
  if (h == q->tail_seen && atomic_load(&q->closed))
    q->tail_seen = atomic_load_explicit(&q->tail, memory_order_acquire);
  if (h != q->tail_seen)
    cc_item_share(&q->ring->slot[h & (q->ring->cap - 1)], out);
  else
    rc = atomic_load(&q->closed) ? CC_ECLOSED : CC_EEMPTY;
  cc_mutex_unlock(&q->head_lock);
  return rc;
}

void cc_queue_close(cc_queue_t *q) {
  _Atomic uint32_t *words[NWAKE];
  int nw;
  cc_mutex_lock(&q->tail_lock);
  if (atomic_load_explicit(&q->closed, memory_order_relaxed)) {
    cc_mutex_unlock(&q->tail_lock);
    return;
  }
  atomic_store(&q->closed, 1);
  nw = notify_watchers(q, words);
  cc_mutex_unlock(&q->tail_lock);
  wake_words(words, nw);
  atomic_fetch_add(&q->get_seq, 1);
  atomic_fetch_add(&q->put_seq, 1);
  cc_futex_wake(&q->get_seq, INT32_MAX);
  cc_futex_wake(&q->put_seq, INT32_MAX);
}

/* ---- task_done / join ---------------------------------------------------------- */

int cc_queue_task_done(cc_queue_t *q) {
  uint64_t d = atomic_load(&q->done);
  do {
    if (d >= atomic_load(&q->tail)) return CC_EINVAL;
  } while (!atomic_compare_exchange_weak(&q->done, &d, d + 1));
  /* seq_cst: either join sees done == tail or we see its announcement. */
  if (d + 1 == atomic_load(&q->tail) && atomic_load(&q->joiners) != 0) {
    atomic_fetch_add(&q->join_seq, 1);
    cc_futex_wake(&q->join_seq, INT32_MAX);
  }
  return 0;
}

static int all_done(cc_queue_t *q) {
  uint64_t d = atomic_load(&q->done);
  return d == atomic_load(&q->tail);
}

int cc_queue_join(cc_queue_t *q, cc_deadline_t deadline) {
  int rc = 0;
  for (int i = 0; i < cc_spin_count / 4; i++) {
    if (all_done(q)) return 0;
    cc_cpu_relax();
  }
  if (all_done(q)) return 0;
  if (deadline == CC_NOW) return CC_ETIMEOUT;
  cc_wait_begin(&q->h, CC_WAIT_QUEUE, deadline);
  atomic_fetch_add(&q->joiners, 1);
  for (;;) {
    uint32_t s = atomic_load(&q->join_seq);
    if (all_done(q)) {
      rc = 0;
      break;
    }
    if (rc == CC_ETIMEOUT || rc == CC_EINTR) break;
    rc = cc_futex_wait(&q->join_seq, s, deadline);
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

/* Links (or unlinks) the select's record on every queue. When linking,
 * flags the word if a queue already has an item or if every queue is closed
 * and drained (tail is exact under tail_lock and head only grows, so this
 * errs on the side of "look again"). A closed, drained queue alone does not
 * flag: it can never give an item, and its close already happened. */
static void watch_all(cc_queue_t *const *qs, int n, select_block_t *sb, int link) {
  int nclosed = 0, ready = 0;
  for (int i = 0; i < n; i++) {
    cc_queue_t *q = qs[i];
    cc_qwatch_t *w = &sb->w[i];
    cc_mutex_lock(&q->tail_lock);
    if (link) {
      uint64_t h = atomic_load(&q->head);
      w->word = &sb->word;
      w->prev = NULL;
      w->next = q->watchers;
      if (q->watchers) q->watchers->prev = w;
      q->watchers = w;
      if (atomic_load(&q->tail) != h)
        ready = 1;
      else if (atomic_load(&q->closed))
        nclosed++;
    } else {
      if (w->prev)
        w->prev->next = w->next;
      else
        q->watchers = w->next;
      if (w->next) w->next->prev = w->prev;
    }
    cc_mutex_unlock(&q->tail_lock);
  }
  if (link && (ready || nclosed == n)) atomic_store(&sb->word, 1);
}

int cc_queue_select(cc_queue_t *const *qs, int n, unsigned start, cc_item_t *out,
                    int *which, cc_deadline_t deadline) {
  select_block_t *sb;
  int rc, wrc = 0;
  if (n <= 0) return CC_EINVAL;
  rc = try_all(qs, n, start, out, which);
  if (rc != CC_EEMPTY) return rc;
  if (deadline == CC_NOW) return CC_ETIMEOUT;
  for (int i = 0; i < 2 * cc_spin_count && !any_ready(qs, n); i++)
    cc_cpu_relax();
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
    if (deadline != CC_FOREVER && cc_now_ns() >= deadline) {
      rc = CC_ETIMEOUT;
      break;
    }
  }
  cc_wait_end(&qs[0]->h, rc);
  cc_free(sb);
  return rc;
}
