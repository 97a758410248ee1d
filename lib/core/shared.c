/*
 * shared.c - shared tables; see shared.h for the locking protocol and
 * docs/QUEUES.md for the layout.
 *
 * Open addressing with linear probing over a power-of-two slot array; a
 * deleted key leaves a tombstone; the array is rebuilt when live keys plus
 * tombstones pass 3/4 of it (and shrinks when it gets sparse).
 */
#include "shared.h"

#include <string.h>

#include "lock.h"

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

static void shared_destroy(cc_obj_t *o) {
  cc_shared_t *s = (cc_shared_t *)o;
  for (uint32_t i = 0; i < s->cap; i++) {
    cc_sentry_t *e = &s->slots[i];
    if (e->ktype == 0 || e->ktype == SLOT_TOMB) continue;
    if (e->ktype == CC_SK_STR && e->klen > CC_SKEY_INLINE) cc_free(e->k.p);
    cc_item_clear(&e->val);
  }
  cc_free(s->slots);
  if (s->ulock) cc_obj_unref(s->ulock);
}

const cc_type_t cc_shared_type = {"shared", shared_destroy, NULL, NULL};

cc_shared_t *cc_shared_new(const char *name) {
  cc_shared_t *s = cc_obj_new(&cc_shared_type, sizeof *s, name);
  if (!s) return NULL;
  cc_mutex_init(&s->lock);
  s->slots = cc_calloc(MIN_CAP * sizeof(cc_sentry_t));
  s->ulock = cc_lock_new(name, 1);
  if (!s->slots || !s->ulock) {
    cc_obj_unref(&s->h);
    return NULL;
  }
  s->cap = MIN_CAP;
  return s;
}

/* Slot of key k, or -1. */
static int64_t find(const cc_shared_t *s, uint32_t hash, const cc_skey_t *k) {
  uint32_t mask = s->cap - 1;
  for (uint32_t i = hash & mask;; i = (i + 1) & mask) {
    const cc_sentry_t *e = &s->slots[i];
    if (e->ktype == 0) return -1;
    if (key_eq(e, hash, k)) return i;
  }
}

static int rebuild(cc_shared_t *s, uint32_t ncap) {
  cc_sentry_t *old = s->slots, *n = cc_calloc((size_t)ncap * sizeof *n);
  uint32_t ocap = s->cap;
  if (!n) return CC_ENOMEM;
  for (uint32_t i = 0; i < ocap; i++) {
    uint32_t j;
    if (old[i].ktype == 0 || old[i].ktype == SLOT_TOMB) continue;
    for (j = old[i].hash & (ncap - 1); n[j].ktype != 0; j = (j + 1) & (ncap - 1)) {
    }
    n[j] = old[i];
  }
  s->slots = n;
  s->cap = ncap;
  s->tombs = 0;
  cc_free(old);
  return 0;
}

static int key_present(const cc_shared_t *s, int64_t i) {
  cc_skey_t k = {CC_SK_INT, 0, {.i = i}};
  return find(s, key_hash(&k), &k) >= 0;
}

/* Inserts a key known to be absent. */
static int insert(cc_shared_t *s, uint32_t hash, const cc_skey_t *k, cc_item_t *val) {
  uint32_t mask, i;
  cc_sentry_t *e;
  char *p = NULL;
  if ((uint64_t)(s->live + s->tombs + 1) * 4 > (uint64_t)s->cap * 3) {
    uint32_t ncap = s->cap;
    while ((uint64_t)(s->live + 1) * 2 > ncap && ncap < MAX_CAP)
      ncap *= 2;
    if ((uint64_t)(s->live + 1) * 4 > (uint64_t)ncap * 3) return CC_ENOMEM;
    if (rebuild(s, ncap) != 0) return CC_ENOMEM;
  }
  if (k->type == CC_SK_STR && k->len > CC_SKEY_INLINE) {
    if (k->len > UINT32_MAX || !(p = cc_alloc(k->len))) return CC_ENOMEM;
    memcpy(p, k->u.s, k->len);
  }
  mask = s->cap - 1;
  for (i = hash & mask; s->slots[i].ktype != 0 && s->slots[i].ktype != SLOT_TOMB;
       i = (i + 1) & mask) {
  }
  e = &s->slots[i];
  if (e->ktype == SLOT_TOMB) s->tombs--;
  e->hash = hash;
  e->ktype = (uint8_t)k->type;
  e->klen = 0;
  if (k->type == CC_SK_STR) {
    e->klen = (uint32_t)k->len;
    if (p)
      e->k.p = p;
    else
      memcpy(e->k.s, k->u.s, k->len);
  } else if (k->type == CC_SK_FLOAT) {
    e->k.f = k->u.f;
  } else {
    e->k.i = k->u.i;
  }
  e->val = *val;
  s->live++;
  if (k->type == CC_SK_INT && k->u.i == s->border + 1) {
    s->border++;
    while (s->border < INT64_MAX && key_present(s, s->border + 1))
      s->border++;
  }
  return 0;
}

/* Removes the entry at slot i; its value goes to *old and a long string
 * key's block to *oldkey (both freed by the caller after unlocking). */
static void erase(cc_shared_t *s, uint32_t i, cc_item_t *old, void **oldkey) {
  cc_sentry_t *e = &s->slots[i];
  *old = e->val;
  if (e->ktype == CC_SK_STR && e->klen > CC_SKEY_INLINE) *oldkey = e->k.p;
  if (e->ktype == CC_SK_INT && e->k.i >= 1 && e->k.i <= s->border) s->border = e->k.i - 1;
  e->ktype = SLOT_TOMB;
  s->tombs++;
  s->live--;
  /* Shrinking never fails the delete: on ENOMEM the big array stays. */
  if (s->cap > 64 && (uint64_t)s->live * 8 < s->cap) rebuild(s, s->cap / 4);
}

/* ---- the user lock ------------------------------------------------------------ */

/* Starts a single operation: returns 0 with the internal mutex held and
 * *took set when the user rlock was taken for it (see shared.h). */
static int enter(cc_shared_t *s, int *took) {
  int rc;
  *took = 0;
  if (cc_likely(atomic_load_explicit(&s->held, memory_order_relaxed) == 0)) {
    cc_mutex_lock(&s->lock);
    if (cc_likely(atomic_load_explicit(&s->held, memory_order_relaxed) == 0)) return 0;
    if (cc_lock_held_by_me(s->ulock)) return 0;
    cc_mutex_unlock(&s->lock);
  } else if (cc_lock_held_by_me(s->ulock)) {
    cc_mutex_lock(&s->lock);
    return 0;
  }
  rc = cc_lock_acquire(s->ulock, CC_FOREVER);
  if (rc) return rc;
  *took = 1;
  cc_mutex_lock(&s->lock);
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

int cc_shared_hold(cc_shared_t *s, cc_deadline_t deadline) {
  int fresh = !cc_lock_held_by_me(s->ulock);
  int rc = cc_lock_acquire(s->ulock, deadline);
  if (rc) return rc;
  cc_mutex_lock(&s->lock);
  if (fresh) s->depth = 0; /* a holder that died may have left a count */
  if (s->depth++ == 0) atomic_store_explicit(&s->held, 1, memory_order_relaxed);
  cc_mutex_unlock(&s->lock);
  return 0;
}

int cc_shared_unhold(cc_shared_t *s) {
  if (!cc_lock_held_by_me(s->ulock)) return CC_ENOTOWNER;
  cc_mutex_lock(&s->lock);
  if (s->depth > 0 && --s->depth == 0)
    atomic_store_explicit(&s->held, 0, memory_order_relaxed);
  cc_mutex_unlock(&s->lock);
  return cc_lock_release(s->ulock);
}

/* ---- operations ------------------------------------------------------------------ */

int cc_shared_get(cc_shared_t *s, const cc_skey_t *k, cc_item_t *out) {
  uint32_t hash = key_hash(k);
  int64_t i;
  int took, rc = enter(s, &took);
  if (rc) return rc;
  i = find(s, hash, k);
  if (i >= 0) {
    cc_item_share(&s->slots[i].val, out);
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
  int took, rc = enter(s, &took);
  if (rc) return rc;
  i = find(s, hash, k);
  if (i >= 0) {
    if (val->kind == 0) {
      erase(s, (uint32_t)i, &old, &oldkey);
    } else {
      old = s->slots[i].val;
      s->slots[i].val = *val;
    }
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
  int took, rc = enter(s, &took);
  if (rc) return rc;
  *n = s->border;
  leave(s, took);
  return 0;
}

int cc_shared_count(cc_shared_t *s, uint32_t *n) {
  int took, rc = enter(s, &took);
  if (rc) return rc;
  *n = s->live;
  leave(s, took);
  return 0;
}

int64_t cc_shared_snapshot(cc_shared_t *s, void *buf, size_t cap) {
  size_t need = 0;
  unsigned char *p = buf;
  int took, rc = enter(s, &took);
  if (rc) return rc;
  for (uint32_t i = 0; i < s->cap; i++) {
    const cc_sentry_t *e = &s->slots[i];
    if (e->ktype == 0 || e->ktype == SLOT_TOMB) continue;
    need += 5 + (e->ktype == CC_SK_STR ? e->klen : 8);
  }
  if (need <= cap) {
    for (uint32_t i = 0; i < s->cap; i++) {
      const cc_sentry_t *e = &s->slots[i];
      uint32_t len = e->ktype == CC_SK_STR ? e->klen : 8;
      if (e->ktype == 0 || e->ktype == SLOT_TOMB) continue;
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
