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
#include "arena.h" /* cc_arena_handoff, under TSan */
#include "futex.h"
#include "trace.h"
#include "wait.h"

/* The one-attempt put and get are inlined into each caller (the fast path
 * and the wait's poll), so the fast path costs what it did before. */
#define CC_ALWAYS_INLINE inline __attribute__((always_inline))

#define MIN_CAP 8u
#define SHRINK_CAP 1024u /* an empty ring bigger than this goes back to MIN_CAP */
#define MAX_CAP (1u << 31)

typedef struct select_block {
  _Atomic uint32_t word; /* futex: 0 parked, 1 something may have changed */
  uint32_t n;
  uint32_t linked; /* the records are on the queues */
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

const cc_type_t cc_queue_type = {.name = "queue", .destroy = queue_destroy};

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
      cc_wake(w->word, 1);
  }
  return n;
}

static void wake_words(_Atomic uint32_t **words, int n) {
  for (int i = 0; i < n; i++)
    cc_wake(words[i], 1);
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
 * side gets busy again. cc_spin_count == 0 (one CPU) disables spinning.
 * Threads only (a task never spins: what it waits for may be another task
 * of its own loop), before the wait primitive parks, and only when nobody
 * of this side is parked or spinning already. */
static int spin_budget(const side_t *sd) {
  uint32_t miss = atomic_load_explicit(sd->miss, memory_order_relaxed);
  if (miss >= 8 && (miss & 7) != 0) return cc_spin_count / 8;
  return cc_spin_count * 4;
}

static void spin_for(cc_queue_t *q, const side_t *sd) {
  int budget, i;
  if (atomic_load_explicit(sd->nwait, memory_order_relaxed) != 0 ||
      atomic_exchange_explicit(sd->spin, 1, memory_order_acquire) != 0)
    return;
  budget = spin_budget(sd);
  for (i = 0; i < budget && !sd->ready(q); i++)
    cc_cpu_relax();
  if (i < budget)
    atomic_store_explicit(sd->miss, 0, memory_order_relaxed);
  else
    atomic_fetch_add_explicit(sd->miss, 1, memory_order_relaxed);
  atomic_store_explicit(sd->spin, 0, memory_order_release);
}

/* Wakes one parked waiter of a side (thread or task: cc_wake), unless none
 * is parked or a wake is already on its way (the waiter it reaches clears
 * `wake` when it polls again and, leaving work behind, wakes the next one:
 * side_leave). */
static void wake_one(const side_t *sd) {
  if (atomic_load(sd->nwait) != 0 && atomic_exchange(sd->wake, 1) == 0) {
    atomic_fetch_add(sd->seq, 1);
    cc_wake(sd->seq, 1);
  }
}

/* The wait's ops for a side (wait.h). A waiter is counted in nwait from
 * enter to leave. Each poll of a counted waiter first clears `wake` (a
 * waker that saw an earlier waiter's wake pending may have skipped: if its
 * store came before this clear, its item is visible to the test below, all
 * seq_cst; if after, it wakes us), then reads the sequence word, then
 * tests; a change after the read makes the park return at once. */
static void side_poll_begin(cc_wait_t *w, const side_t *sd) {
  if (w->parked) atomic_store(sd->wake, 0);
  w->addr = sd->seq;
  w->val = atomic_load(sd->seq);
}

static void side_enter(const side_t *sd) {
  atomic_fetch_add(sd->nwait, 1);
}

/* Leaving: uncounted; the next event wakes somebody again; a waiter that
 * leaves work behind (an item, room), or leaves without using a wake it
 * may have taken (timeout, Ctrl-C, cancel), passes the turn on. */
static int side_leave(cc_queue_t *q, cc_wait_t *w, const side_t *sd, int rc) {
  if (!w->parked) return rc;
  atomic_fetch_sub(sd->nwait, 1);
  atomic_store(sd->wake, 0);
  if (sd->ready(q) && !atomic_load_explicit(&q->closed, memory_order_relaxed)) wake_one(sd);
  return rc;
}

#define Q(w) ((cc_queue_t *)(w)->obj)
#define ITEM(w) ((cc_item_t *)(w)->arg[0])

/* ---- put / get ------------------------------------------------------------------ */

/* One attempt: 0 (stored; *it is left empty), CC_EFULL, CC_ECLOSED or
 * CC_ENOMEM (the ring could not grow). */
static CC_ALWAYS_INLINE int put_once(cc_queue_t *q, cc_item_t *it) {
  const side_t getters = GETTERS(q);
  _Atomic uint32_t *words[NWAKE];
  uint64_t t, limit = q->maxsize ? q->maxsize : UINT64_MAX;
  int rc, nw = 0;
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
    if (t - q->head_seen >= limit) {
      rc = CC_EFULL;
      goto fail;
    }
    if ((rc = grow(q)) != 0) goto fail; /* ring full, queue not: grow */
  }
#if defined(__SANITIZE_THREAD__)
  /* The slot's last reader may be ordered before us only through another
   * process (a child's put cached the head it saw): arena.c's hand-over. */
  cc_arena_handoff();
#endif
  q->ring->slot[t & (q->ring->cap - 1)] = *it;
  atomic_store(&q->tail, t + 1); /* seq_cst: pairs with a parking getter */
  if (cc_unlikely(q->watchers != NULL)) nw = notify_watchers(q, words);
  cc_mutex_unlock(&q->tail_lock);
  if (cc_unlikely(atomic_load_explicit(&cc_trace_on, memory_order_relaxed)))
    cc_trace_queue(&q->h, 1, t);
  wake_one(&getters);
  if (cc_unlikely(nw)) wake_words(words, nw);
  it->len = 0;
  it->flags = 0;
  it->kind = 0;
  return 0;
fail:
  cc_mutex_unlock(&q->tail_lock);
  return rc;
}

static int put_poll(cc_wait_t *w) {
  const side_t putters = PUTTERS(Q(w));
  int rc;
  side_poll_begin(w, &putters);
  rc = put_once(Q(w), ITEM(w));
  return rc == CC_EFULL ? CC_WAIT_PARK : rc;
}

static void put_enter(cc_wait_t *w) {
  const side_t putters = PUTTERS(Q(w));
  side_enter(&putters);
}

static int put_leave(cc_wait_t *w, int rc) {
  const side_t putters = PUTTERS(Q(w));
  return side_leave(Q(w), w, &putters, rc);
}

static const cc_wait_ops_t put_ops = {CC_WAIT_QUEUE, 0, put_poll, put_enter, put_leave};

int cc_queue_put_w(cc_wait_t *w, cc_queue_t *q, cc_item_t *it, cc_deadline_t deadline) {
  int rc = put_once(q, it);
  if (cc_likely(rc != CC_EFULL)) return rc;
  if (deadline == CC_NOW) return CC_ETIMEOUT;
  cc_wait_init(w, &put_ops, &q->h, deadline);
  w->arg[0] = (uintptr_t)it;
  return CC_WAIT_PARK;
}

int cc_queue_put(cc_queue_t *q, cc_item_t *it, cc_deadline_t deadline) {
  cc_wait_t w;
  int rc = put_once(q, it);
  if (cc_likely(rc != CC_EFULL)) return rc;
  if (deadline == CC_NOW) return CC_ETIMEOUT;
  {
    const side_t putters = PUTTERS(q);
    spin_for(q, &putters);
  }
  cc_wait_init(&w, &put_ops, &q->h, deadline);
  w.arg[0] = (uintptr_t)it;
  return cc_wait_run(&w);
}

/* One attempt: 0 (taken into *out), CC_EEMPTY or CC_ECLOSED (closed and
 * drained). */
static CC_ALWAYS_INLINE int get_once(cc_queue_t *q, cc_item_t *out) {
  const side_t putters = PUTTERS(q);
  uint64_t h;
  int empty;
  cc_mutex_lock(&q->head_lock);
  h = atomic_load_explicit(&q->head, memory_order_relaxed);
  if (cc_unlikely(h == q->tail_seen)) {
    q->tail_seen = atomic_load_explicit(&q->tail, memory_order_acquire);
    if (h == q->tail_seen) {
      int rc = CC_EEMPTY;
      if (atomic_load(&q->closed)) {
        /* Every put happened before the close: look once more. */
        q->tail_seen = atomic_load_explicit(&q->tail, memory_order_acquire);
        if (h == q->tail_seen) rc = CC_ECLOSED;
      }
      if (rc != CC_EEMPTY || h == q->tail_seen) {
        cc_mutex_unlock(&q->head_lock);
        return rc;
      }
    }
  }
#if defined(__SANITIZE_THREAD__)
  cc_arena_handoff(); /* as in put_once: the slot's writer, through a child */
#endif
  *out = q->ring->slot[h & (q->ring->cap - 1)];
  empty = h + 1 == q->tail_seen && q->ring->cap > SHRINK_CAP; /* shrink below */
  if (q->maxsize)
    atomic_store(&q->head, h + 1); /* seq_cst: pairs with a parking putter */
  else
    atomic_store_explicit(&q->head, h + 1, memory_order_release);
  cc_mutex_unlock(&q->head_lock);
  if (cc_unlikely(atomic_load_explicit(&cc_trace_on, memory_order_relaxed)))
    cc_trace_queue(&q->h, 0, h);
  if (q->maxsize) wake_one(&putters);
  if (cc_unlikely(empty)) shrink(q);
  return 0;
}

static int get_poll(cc_wait_t *w) {
  const side_t getters = GETTERS(Q(w));
  int rc;
  side_poll_begin(w, &getters);
  rc = get_once(Q(w), ITEM(w));
  return rc == CC_EEMPTY ? CC_WAIT_PARK : rc;
}

static void get_enter(cc_wait_t *w) {
  const side_t getters = GETTERS(Q(w));
  side_enter(&getters);
}

static int get_leave(cc_wait_t *w, int rc) {
  const side_t getters = GETTERS(Q(w));
  return side_leave(Q(w), w, &getters, rc);
}

static const cc_wait_ops_t get_ops = {CC_WAIT_QUEUE, 0, get_poll, get_enter, get_leave};

int cc_queue_get_w(cc_wait_t *w, cc_queue_t *q, cc_item_t *out, cc_deadline_t deadline) {
  int rc;
  if (deadline == CC_NOW && !can_get(q)) return CC_ETIMEOUT;
  rc = get_once(q, out);
  if (cc_likely(rc != CC_EEMPTY)) return rc;
  if (deadline == CC_NOW) return CC_ETIMEOUT;
  cc_wait_init(w, &get_ops, &q->h, deadline);
  w->arg[0] = (uintptr_t)out;
  return CC_WAIT_PARK;
}

int cc_queue_get(cc_queue_t *q, cc_item_t *out, cc_deadline_t deadline) {
  cc_wait_t w;
  int rc;
  /* Lock-free early out for select's polling and try_get on an empty queue. */
  if (deadline == CC_NOW && !can_get(q)) return CC_ETIMEOUT;
  rc = get_once(q, out);
  if (cc_likely(rc != CC_EEMPTY)) return rc;
  if (deadline == CC_NOW) return CC_ETIMEOUT;
  {
    const side_t getters = GETTERS(q);
    spin_for(q, &getters);
  }
  cc_wait_init(&w, &get_ops, &q->h, deadline);
  w.arg[0] = (uintptr_t)out;
  return cc_wait_run(&w);
}

void cc_queue_wait_item(cc_wait_t *w, cc_item_t *it) {
  w->arg[0] = (uintptr_t)it;
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
  cc_wake(&q->get_seq, INT32_MAX);
  cc_wake(&q->put_seq, INT32_MAX);
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
    cc_wake(&q->join_seq, INT32_MAX);
  }
  return 0;
}

static int all_done(cc_queue_t *q) {
  uint64_t d = atomic_load(&q->done);
  return d == atomic_load(&q->tail);
}

/* The join's test (wait.h): joiners++ (enter) then reading done pairs with
 * task_done's done++ then reading joiners (seq_cst). */
static int join_poll(cc_wait_t *w) {
  cc_queue_t *q = Q(w);
  w->addr = &q->join_seq;
  w->val = atomic_load(&q->join_seq);
  return all_done(q) ? 0 : CC_WAIT_PARK;
}

static void join_enter(cc_wait_t *w) {
  atomic_fetch_add(&Q(w)->joiners, 1);
}

static int join_leave(cc_wait_t *w, int rc) {
  if (w->parked) atomic_fetch_sub(&Q(w)->joiners, 1);
  return rc;
}

static const cc_wait_ops_t join_ops = {CC_WAIT_QUEUE, 0, join_poll, join_enter, join_leave};

int cc_queue_join_w(cc_wait_t *w, cc_queue_t *q, cc_deadline_t deadline) {
  if (all_done(q)) return 0;
  if (deadline == CC_NOW) return CC_ETIMEOUT;
  cc_wait_init(w, &join_ops, &q->h, deadline);
  return CC_WAIT_PARK;
}

int cc_queue_join(cc_queue_t *q, cc_deadline_t deadline) {
  cc_wait_t w;
  for (int i = 0; i < cc_spin_count / 4; i++) {
    if (all_done(q)) return 0;
    cc_cpu_relax();
  }
  if (cc_queue_join_w(&w, q, deadline) != CC_WAIT_PARK) return all_done(q) ? 0 : CC_ETIMEOUT;
  return cc_wait_run(&w);
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

/* The select's test (wait.h): arg[0] is its block (allocated up front, so
 * running out of memory is reported before waiting), arg[1..4] the queues,
 * their count, `start`, `out` and arg[5] `which`. Each poll takes its
 * records off the queues, tries them all, and when nothing is there links
 * them again with the word cleared (watch_all flags it when an item
 * arrived in between: the park then returns at once). */
#define SEL_BLOCK(w) ((select_block_t *)(w)->arg[0])
#define SEL_QS(w) ((cc_queue_t *const *)(w)->arg[1])
#define SEL_START(w) ((unsigned)(w)->arg[2])
#define SEL_OUT(w) ((cc_item_t *)(w)->arg[3])
#define SEL_WHICH(w) ((int *)(w)->arg[5])

static int select_poll(cc_wait_t *w) {
  select_block_t *sb = SEL_BLOCK(w);
  int n = (int)sb->n, rc;
  if (sb->linked) {
    watch_all(SEL_QS(w), n, sb, 0);
    sb->linked = 0;
  }
  rc = try_all(SEL_QS(w), n, SEL_START(w), SEL_OUT(w), SEL_WHICH(w));
  if (rc != CC_EEMPTY) return rc;
  atomic_store(&sb->word, 0);
  watch_all(SEL_QS(w), n, sb, 1);
  sb->linked = 1;
  w->addr = &sb->word;
  w->val = 0;
  return CC_WAIT_PARK;
}

static int select_leave(cc_wait_t *w, int rc) {
  select_block_t *sb = SEL_BLOCK(w);
  if (sb->linked) watch_all(SEL_QS(w), (int)sb->n, sb, 0);
  cc_free(sb);
  w->arg[0] = 0;
  return rc;
}

static const cc_wait_ops_t select_ops = {CC_WAIT_QUEUE, 0, select_poll, NULL, select_leave};

int cc_queue_select_w(cc_wait_t *w, cc_queue_t *const *qs, int n, unsigned start,
                      cc_item_t *out, int *which, cc_deadline_t deadline) {
  select_block_t *sb;
  int rc;
  if (n <= 0) return CC_EINVAL;
  rc = try_all(qs, n, start, out, which);
  if (rc != CC_EEMPTY) return rc;
  if (deadline == CC_NOW) return CC_ETIMEOUT;
  sb = cc_alloc(sizeof *sb + (size_t)n * sizeof(cc_qwatch_t));
  if (!sb) return CC_ENOMEM;
  sb->n = (uint32_t)n;
  sb->linked = 0;
  cc_wait_init(w, &select_ops, &qs[0]->h, deadline);
  w->arg[0] = (uintptr_t)sb;
  w->arg[1] = (uintptr_t)qs;
  w->arg[2] = start;
  w->arg[3] = (uintptr_t)out;
  w->arg[5] = (uintptr_t)which;
  return CC_WAIT_PARK;
}

int cc_queue_select(cc_queue_t *const *qs, int n, unsigned start, cc_item_t *out,
                    int *which, cc_deadline_t deadline) {
  cc_wait_t w;
  int rc;
  if (n <= 0) return CC_EINVAL;
  rc = try_all(qs, n, start, out, which);
  if (rc != CC_EEMPTY || deadline == CC_NOW) return rc == CC_EEMPTY ? CC_ETIMEOUT : rc;
  for (int i = 0; i < 2 * cc_spin_count && !any_ready(qs, n); i++)
    cc_cpu_relax();
  rc = cc_queue_select_w(&w, qs, n, start, out, which, deadline);
  if (rc != CC_WAIT_PARK) return rc;
  return cc_wait_run(&w);
}
