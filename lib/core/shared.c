/*
 * shared.c - shared tables; see shared.h for the locking protocol and
 * docs/QUEUES.md for the layout.
 *
 * Open addressing with linear probing over a power-of-two slot array; a
 * deleted key leaves a tombstone; the array is rebuilt when live keys plus
 * tombstones pass 3/4 of it (and shrinks when it gets sparse).
 *
 * Kill-safety (docs/PROCESSES.md). A process may be SIGKILLed between any
 * two instructions while it holds the internal mutex; the stores it made
 * stay, in program order, and the next locker takes the mutex over. So
 * every change a reader can see is one final store, made after everything
 * it publishes is written:
 *   - an insert fills a free slot (key, hash, value), then stores ktype;
 *   - an erase stores ktype = tombstone (the value is freed after unlock);
 *   - a replacement is redone from a log: the new value is first copied
 *     into the table's stage, then one store of `pend` (the slot, plus one)
 *     commits it, then the slot's value is overwritten in place and `pend`
 *     cleared. A kill before the commit leaves the old value; after it, the
 *     next locker finishes the copy from the stage before anybody reads;
 *   - a rebuild fills a new array and publishes it (with its size) by one
 *     pointer store.
 * The counters (live, tombs, border) are updated after the publishing
 * store. A locker that takes the mutex over from a dead process (repair())
 * finishes a committed replacement and recounts them from the slots. A kill
 * therefore loses at most the write in progress and leaks at most its
 * blocks (and the replaced value, which the dead process had taken).
 */
#include "shared.h"

#include <stddef.h>
#include <string.h>

#include "lock.h"
#include "wait.h"

#define SLOT_TOMB 0xFFu
#define MIN_CAP 8u
#define MAX_CAP (1u << 30)

/* ---- keys ---------------------------------------------------------------- */

static uint32_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return (uint32_t)x;
}

static uint32_t key_hash(const cc_skey_t *k) {
  uint64_t h;
  switch (k->type) {
  case CC_SK_STR:
    h = 0xcbf29ce484222325ull ^ k->len;
    for (size_t i = 0; i < k->len; i++)
      h = (h ^ (unsigned char)k->u.s[i]) * 0x100000001b3ull;
    return mix64(h);
  case CC_SK_FLOAT:
    memcpy(&h, &k->u.f, 8);
    return mix64(h ^ 0x5555);
  default:
    return mix64((uint64_t)k->u.i + (uint64_t)k->type * 0x9e3779b97f4a7c15ull);
  }
}

static const char *entry_str(const cc_sentry_t *e) {
  return e->klen > CC_SKEY_INLINE ? e->k.p : e->k.s;
}

static int key_eq(const cc_sentry_t *e, uint32_t hash, const cc_skey_t *k) {
  if (e->hash != hash || e->ktype != k->type) return 0;
  switch (k->type) {
  case CC_SK_STR:
    return e->klen == k->len && memcmp(entry_str(e), k->u.s, k->len) == 0;
  case CC_SK_FLOAT:
    return e->k.f == k->u.f;
  default:
    return e->k.i == k->u.i;
  }
}

/* ---- table (internal mutex held) ------------------------------------------- */

static int live_slot(const cc_sentry_t *e) {
  return e->ktype != 0 && e->ktype != SLOT_TOMB;
}

/* Makes a slot visible (ktype) or deleted (SLOT_TOMB) with one store, after
 * every store before it: only the compiler could reorder them (a killed
 * process leaves exactly the stores it executed). */
static void publish(cc_sentry_t *e, uint8_t ktype) {
  atomic_signal_fence(memory_order_seq_cst);
  e->ktype = ktype;
  atomic_signal_fence(memory_order_seq_cst);
}

static cc_sslots_t *slots_new(uint32_t cap) {
  cc_sslots_t *a = cc_calloc(sizeof *a + (size_t)cap * sizeof(cc_sentry_t));
  if (a) a->cap = cap;
  return a;
}

/* Finishes the replacement a process killed after its commit left (see the
 * top of the file): copies the staged value into its slot. Can be redone. */
static void finish_pending(cc_shared_t *s) {
  uint32_t i = s->pend - 1;
  if (i < s->slots->cap && live_slot(&s->slots->e[i])) s->slots->e[i].val = s->stage;
  atomic_signal_fence(memory_order_seq_cst);
  s->pend = 0;
}

static void shared_destroy(cc_obj_t *o) {
  cc_shared_t *s = (cc_shared_t *)o;
  if (s->slots) {
    if (s->pend) finish_pending(s); /* its writer was killed */
    for (uint32_t i = 0; i < s->slots->cap; i++) {
      cc_sentry_t *e = &s->slots->e[i];
      if (!live_slot(e)) continue;
      if (e->ktype == CC_SK_STR && e->klen > CC_SKEY_INLINE) cc_free(e->k.p);
      cc_item_clear(&e->val);
    }
    cc_free(s->slots);
  }
  if (s->ulock) cc_obj_unref(s->ulock);
}

const cc_type_t cc_shared_type = {.name = "shared", .destroy = shared_destroy};

cc_shared_t *cc_shared_new(const char *name) {
  cc_shared_t *s = cc_obj_new(&cc_shared_type, sizeof *s, name);
  if (!s) return NULL;
  cc_mutex_init(&s->lock);
  s->slots = slots_new(MIN_CAP);
  s->ulock = cc_lock_new(name, 1);
  if (!s->slots || !s->ulock) {
    cc_obj_unref(&s->h);
    return NULL;
  }
  return s;
}

/* Slot of key k (the first in probe order), or -1. */
static int64_t find(const cc_shared_t *s, uint32_t hash, const cc_skey_t *k) {
  const cc_sslots_t *a = s->slots;
  uint32_t mask = a->cap - 1;
  for (uint32_t i = hash & mask;; i = (i + 1) & mask) {
    const cc_sentry_t *e = &a->e[i];
    if (e->ktype == 0) return -1;
    if (key_eq(e, hash, k)) return i;
  }
}

/* The first free (empty or deleted) slot on the probe path of `hash`. */
static uint32_t free_slot(const cc_sslots_t *a, uint32_t hash) {
  uint32_t mask = a->cap - 1, i;
  for (i = hash & mask; live_slot(&a->e[i]); i = (i + 1) & mask) {
  }
  return i;
}

/* Copies the live entries into a new array of ncap slots and publishes it.
 * A process killed before the publishing store leaks the new array; after
 * it, the old one. */
static int rebuild(cc_shared_t *s, uint32_t ncap) {
  cc_sslots_t *old = s->slots, *n = slots_new(ncap);
  if (!n) return CC_ENOMEM;
  for (uint32_t i = 0; i < old->cap; i++) {
    if (!live_slot(&old->e[i])) continue;
    n->e[free_slot(n, old->e[i].hash)] = old->e[i];
  }
  atomic_signal_fence(memory_order_seq_cst);
  s->slots = n;
  atomic_signal_fence(memory_order_seq_cst);
  s->tombs = 0;
  cc_free(old);
  return 0;
}

/* Makes room for one more used slot (live + tombstones stay under 3/4). */
static int reserve(cc_shared_t *s) {
  uint32_t cap = s->slots->cap, ncap = cap;
  if ((uint64_t)(s->live + s->tombs + 1) * 4 <= (uint64_t)cap * 3) return 0;
  while ((uint64_t)(s->live + 1) * 2 > ncap && ncap < MAX_CAP)
    ncap *= 2;
  if ((uint64_t)(s->live + 1) * 4 > (uint64_t)ncap * 3) return CC_ENOMEM;
  return rebuild(s, ncap);
}

static int key_present(const cc_shared_t *s, int64_t i) {
  cc_skey_t k = {CC_SK_INT, 0, {.i = i}};
  return find(s, key_hash(&k), &k) >= 0;
}

/* After keys 1..border+1 may have become present. */
static void extend_border(cc_shared_t *s) {
  while (s->border < INT64_MAX && key_present(s, s->border + 1))
    s->border++;
}

/* Writes the key and value into the free slot `i`, then publishes it. */
static void fill(cc_shared_t *s, uint32_t i, const cc_sentry_t *key, const cc_item_t *val) {
  cc_sentry_t *e = &s->slots->e[i];
  uint8_t was = e->ktype;
  e->hash = key->hash;
  e->klen = key->klen;
  e->k = key->k;
  e->val = *val;
  publish(e, key->ktype);
  if (was == SLOT_TOMB) s->tombs--;
}

/* Inserts a key known to be absent. */
static int insert(cc_shared_t *s, uint32_t hash, const cc_skey_t *k, cc_item_t *val) {
  cc_sentry_t key;
  char *p = NULL;
  if (reserve(s) != 0) return CC_ENOMEM;
  if (k->type == CC_SK_STR && k->len > CC_SKEY_INLINE) {
    if (k->len > UINT32_MAX || !(p = cc_alloc(k->len))) return CC_ENOMEM;
    memcpy(p, k->u.s, k->len);
  }
  memset(&key, 0, sizeof key);
  key.hash = hash;
  key.ktype = (uint8_t)k->type;
  if (k->type == CC_SK_STR) {
    key.klen = (uint32_t)k->len;
    if (p)
      key.k.p = p;
    else
      memcpy(key.k.s, k->u.s, k->len);
  } else if (k->type == CC_SK_FLOAT) {
    key.k.f = k->u.f;
  } else {
    key.k.i = k->u.i;
  }
  fill(s, free_slot(s->slots, hash), &key, val);
  s->live++;
  if (k->type == CC_SK_INT && k->u.i == s->border + 1) extend_border(s);
  return 0;
}

/* Copies the part of an item that counts: the header and the box pointer or
 * the inline bytes (16 bytes for a number, a boolean or a boxed value). */
static void item_put(cc_item_t *dst, const cc_item_t *src) {
  if ((src->flags & CC_ITEM_EXT) || src->len <= 8)
    memcpy(dst, src, offsetof(cc_item_t, u) + 8);
  else
    *dst = *src;
}

/* Replaces the value of the entry at slot i in place, through the stage
 * (see the top of the file); the old value goes to *old. Never fails: the
 * slot stays where it is. */
static void replace(cc_shared_t *s, uint32_t i, const cc_item_t *val, cc_item_t *old) {
  cc_sentry_t *e = &s->slots->e[i];
  item_put(&s->stage, val);
  *old = e->val;
  atomic_signal_fence(memory_order_seq_cst);
  s->pend = i + 1; /* the commit */
  atomic_signal_fence(memory_order_seq_cst);
  item_put(&e->val, val);
  atomic_signal_fence(memory_order_seq_cst);
  s->pend = 0;
}

/* Removes the entry at slot i; its value goes to *old and a long string
 * key's block to *oldkey (both freed by the caller after unlocking). */
static void erase(cc_shared_t *s, uint32_t i, cc_item_t *old, void **oldkey) {
  cc_sentry_t *e = &s->slots->e[i];
  int cut = e->ktype == CC_SK_INT && e->k.i >= 1 && e->k.i <= s->border;
  *old = e->val;
  if (e->ktype == CC_SK_STR && e->klen > CC_SKEY_INLINE) *oldkey = e->k.p;
  publish(e, SLOT_TOMB);
  if (cut) s->border = e->k.i - 1;
  s->tombs++;
  s->live--;
  /* Shrinking never fails the delete: on ENOMEM the big array stays. */
  if (s->slots->cap > 64 && (uint64_t)s->live * 8 < s->slots->cap) rebuild(s, s->slots->cap / 4);
}

/* After taking the mutex over from a process that died holding it: finish
 * a committed replacement, then recount. Kill-safe itself: every step can
 * be redone. Out of line: lock_table stays small enough to inline. */
__attribute__((noinline, cold)) static void repair(cc_shared_t *s) {
  cc_sslots_t *a = s->slots;
  uint32_t live = 0, tombs = 0;
  if (s->pend) finish_pending(s);
  for (uint32_t i = 0; i < a->cap; i++) {
    live += live_slot(&a->e[i]);
    tombs += a->e[i].ktype == SLOT_TOMB;
  }
  s->live = live;
  s->tombs = tombs;
  s->border = 0;
  extend_border(s);
  atomic_fetch_add_explicit(&s->repairs, 1, memory_order_relaxed);
}

/* Takes the internal mutex (repairing after a dead holder). */
static void lock_table(cc_shared_t *s) {
  if (cc_unlikely(cc_mutex_lock(&s->lock) != 0)) repair(s);
}

/* ---- the user lock ------------------------------------------------------------ */

/* Starts a single operation: returns 0 with the internal mutex held and
 * *took set when the user rlock was taken for it (see shared.h). */
static int enter(cc_shared_t *s, int *took) {
  int rc;
  *took = 0;
  if (cc_likely(atomic_load_explicit(&s->held, memory_order_relaxed) == 0)) {
    lock_table(s);
    if (cc_likely(atomic_load_explicit(&s->held, memory_order_relaxed) == 0)) return 0;
    if (cc_lock_held_by_me(s->ulock)) return 0;
    cc_mutex_unlock(&s->lock);
  } else if (cc_lock_held_by_me(s->ulock)) {
    lock_table(s);
    return 0;
  }
  rc = cc_lock_acquire(s->ulock, CC_FOREVER);
  if (rc) return rc;
  *took = 1;
  lock_table(s);
  /* We have the rlock, so no live holder exists: a set flag is stale. */
  if (atomic_load_explicit(&s->held, memory_order_relaxed)) {
    atomic_store_explicit(&s->held, 0, memory_order_relaxed);
    s->depth = 0;
  }
  return 0;
}

static void leave(cc_shared_t *s, int took) {
  cc_mutex_unlock(&s->lock);
  if (took) cc_lock_release(s->ulock);
}

/* The hold is the user rlock's acquire (arg[0] is the lock's) and then
 * the start of the section; arg[5] remembers whether the rlock was ours. */
int cc_shared_hold_w(cc_wait_t *w, cc_shared_t *s, cc_deadline_t deadline) {
  w->arg[5] = !cc_lock_held_by_me(s->ulock);
  return cc_lock_acquire_w(w, s->ulock, deadline);
}

int cc_shared_hold_end(cc_wait_t *w, cc_shared_t *s, int rc) {
  if (rc) return rc;
  lock_table(s);
  if (w->arg[5]) s->depth = 0; /* a holder that died may have left a count */
  if (s->depth++ == 0) atomic_store_explicit(&s->held, 1, memory_order_relaxed);
  cc_mutex_unlock(&s->lock);
  return 0;
}

int cc_shared_hold(cc_shared_t *s, cc_deadline_t deadline) {
  cc_wait_t w;
  int rc = cc_shared_hold_w(&w, s, deadline);
  if (rc == CC_WAIT_PARK) rc = cc_wait_run(&w);
  return cc_shared_hold_end(&w, s, rc);
}

int cc_shared_busy(cc_shared_t *s) {
  return atomic_load_explicit(&s->held, memory_order_relaxed) && !cc_lock_held_by_me(s->ulock);
}

int cc_shared_wait_free_w(cc_wait_t *w, cc_shared_t *s) {
  int rc = cc_lock_acquire_w(w, s->ulock, CC_FOREVER);
  return rc == CC_WAIT_PARK ? rc : cc_shared_wait_free_end(s, rc);
}

/* With the rlock: no live holder exists, so a set flag is stale. */
static void clear_stale(cc_shared_t *s) {
  if (!atomic_load_explicit(&s->held, memory_order_relaxed)) return;
  lock_table(s);
  atomic_store_explicit(&s->held, 0, memory_order_relaxed);
  s->depth = 0;
  cc_mutex_unlock(&s->lock);
}

int cc_shared_wait_free_end(cc_shared_t *s, int rc) {
  if (rc == 0) {
    clear_stale(s);
    cc_lock_release(s->ulock);
  }
  return rc;
}

int cc_shared_unhold(cc_shared_t *s) {
  if (!cc_lock_held_by_me(s->ulock)) return CC_ENOTOWNER;
  lock_table(s);
  if (s->depth > 0 && --s->depth == 0)
    atomic_store_explicit(&s->held, 0, memory_order_relaxed);
  cc_mutex_unlock(&s->lock);
  return cc_lock_release(s->ulock);
}

/* ---- operations ------------------------------------------------------------------ */

int cc_shared_get(cc_shared_t *s, const cc_skey_t *k, cc_item_t *out) {
  uint32_t hash = key_hash(k);
  int64_t i;
  int took;
  int rc = enter(s, &took);
  if (rc) return rc;
  i = find(s, hash, k);
  if (i >= 0) {
    cc_item_share(&s->slots->e[i].val, out);
  } else {
    out->len = 0;
    out->flags = 0;
    out->kind = 0;
  }
  leave(s, took);
  return 0;
}

int cc_shared_set(cc_shared_t *s, const cc_skey_t *k, cc_item_t *val) {
  uint32_t hash = key_hash(k);
  cc_item_t old = {0};
  void *oldkey = NULL;
  int64_t i;
  int took;
  int rc = enter(s, &took);
  if (rc) return rc;
  i = find(s, hash, k);
  if (i >= 0) {
    if (val->kind == 0)
      erase(s, (uint32_t)i, &old, &oldkey);
    else
      replace(s, (uint32_t)i, val, &old);
  } else if (val->kind != 0) {
    rc = insert(s, hash, k, val);
  }
  leave(s, took);
  if (rc) return rc;
  val->kind = 0;
  val->len = 0;
  val->flags = 0;
  cc_item_clear(&old);
  cc_free(oldkey);
  return 0;
}

int cc_shared_len(cc_shared_t *s, int64_t *n) {
  int took;
  int rc = enter(s, &took);
  if (rc) return rc;
  *n = s->border;
  leave(s, took);
  return 0;
}

int cc_shared_count(cc_shared_t *s, uint32_t *n) {
  int took;
  int rc = enter(s, &took);
  if (rc) return rc;
  *n = s->live;
  leave(s, took);
  return 0;
}

int64_t cc_shared_snapshot(cc_shared_t *s, void *buf, size_t cap) {
  size_t need = 0;
  unsigned char *p = buf;
  const cc_sslots_t *a;
  int took;
  int rc = enter(s, &took);
  if (rc) return rc;
  a = s->slots;
  for (uint32_t i = 0; i < a->cap; i++) {
    const cc_sentry_t *e = &a->e[i];
    if (!live_slot(e)) continue;
    need += 5 + (e->ktype == CC_SK_STR ? e->klen : 8);
  }
  if (need <= cap) {
    for (uint32_t i = 0; i < a->cap; i++) {
      const cc_sentry_t *e = &a->e[i];
      uint32_t len = e->ktype == CC_SK_STR ? e->klen : 8;
      if (!live_slot(e)) continue;
      *p++ = e->ktype;
      memcpy(p, &len, 4);
      p += 4;
      memcpy(p, e->ktype == CC_SK_STR ? entry_str(e) : (const char *)&e->k.i, len);
      p += len;
    }
  }
  leave(s, took);
  return (int64_t)need;
}
