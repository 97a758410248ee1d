/*
 * shared.h - shared tables: a hash map in the arena from scalar keys to
 * encoded values (cc_item_t), usable from every thread and process.
 *
 * Keys are booleans, integers, floats (non-integral: the binding turns an
 * integral float into an integer, as Lua does) and binary strings. Values
 * are items (item.h); an empty item means "absent".
 *
 * Atomicity. Every single operation (get, set, length, snapshot) runs under
 * a short internal cc_mutex. For compound updates the table owns a user
 * rlock: cc_shared_hold()/cc_shared_unhold() take it, and while an actor
 * holds it, single operations of OTHER actors wait (they take the rlock
 * too), while the holder's own operations go through (reentrant).
 *
 * The uncontended fast path costs only the internal mutex: the atomic flag
 * `held` is set (under the mutex) by a holder after it has the rlock and
 * cleared (under the mutex) before it releases it. A single operation
 * checks the flag under the mutex: clear means no holder has started its
 * critical section, and since a holder needs the mutex to set the flag, any
 * single operation in flight finishes before the holder's section begins.
 * Set means "take the rlock first" (unless the caller is the holder). A
 * flag left set by a holder that died is noticed and cleared by the next
 * actor that gets the rlock (a live holder would still have it).
 *
 * Kill-safety: every change a reader could see is made by one final store
 * (see shared.c), so a process killed inside an operation leaves the table
 * as it was before or after it; the next actor to take the internal mutex
 * over from the dead process finishes a committed replacement and recounts.
 *
 * Lock order: user rlock, then the internal mutex, then arena allocator
 * locks. The internal mutex is never held while calling out (no Lua, no
 * object destructors: replaced values are cleared after unlocking).
 */
#ifndef CC_SHARED_H
#define CC_SHARED_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "cc.h"
#include "item.h"
#include "mutex.h"

enum { CC_SK_BOOL = 1, CC_SK_INT, CC_SK_FLOAT, CC_SK_STR };

/* A key as the caller passes it (not stored as such). */
typedef struct cc_skey {
  int type;   /* CC_SK_* */
  size_t len; /* strings */
  union {
    int64_t i; /* integers; booleans as 0/1 */
    double f;
    const char *s;
  } u;
} cc_skey_t;

#define CC_SKEY_INLINE 16

/* One slot of the open-addressing table. */
typedef struct cc_sentry {
  uint32_t hash;
  uint8_t ktype; /* 0 empty, CC_SK_*, or SLOT_TOMB */
  uint8_t spare[3];
  uint32_t klen;
  uint32_t spare2;
  union {
    int64_t i;
    double f;
    char *p;                /* string keys longer than CC_SKEY_INLINE */
    char s[CC_SKEY_INLINE]; /* shorter ones */
  } k;
  cc_item_t val;
} cc_sentry_t;

/* The slot array and its size, published together by one pointer store. */
typedef struct cc_sslots {
  uint32_t cap; /* power of two */
  uint32_t spare[3];
  cc_sentry_t e[];
} cc_sslots_t;

typedef struct cc_shared {
  cc_obj_t h;
  /* Read by every operation, written seldom. */
  _Atomic uint32_t held; /* a holder is in its critical section */
  uint32_t depth;        /* the holder's nesting (holder only) */
  cc_obj_t *ulock;       /* the user rlock */
  /* Guarded by lock. live, tombs and border are recounted from the slots
   * when the lock is taken over from a process that died holding it. */
  cc_sslots_t *slots;
  uint32_t live;  /* keys present */
  uint32_t tombs; /* deleted slots */
  int64_t border; /* keys 1..border present, border+1 absent */
  _Atomic uint32_t repairs; /* takeovers from a dead writer (for tests) */
  /* Written by every operation. */
  cc_mutex_t lock;
  /* The replacement in progress (guarded by lock): its new value is copied
   * into `stage` before `pend` (its slot plus one; 0 for none) commits it
   * (see shared.c). */
  uint32_t pend;
  cc_item_t stage;
} cc_shared_t;

/* Writes are kill-safe: a process SIGKILLed at any instruction of an
 * operation loses at most that operation (and may leak a block); see
 * shared.c and docs/PROCESSES.md. Tests enable their killed-writer rounds
 * with this. */
#define CC_SHARED_KILL_SAFE 1

extern const cc_type_t cc_shared_type;

/* A new empty table with one reference; NULL when out of memory. */
cc_shared_t *cc_shared_new(const char *name);

/* Copies a share of the value of `k` into *out (an empty item when absent;
 * clear it after use). Returns 0, or what waiting for a holder can give:
 * CC_EDEADLOCK, CC_EINTR. */
int cc_shared_get(cc_shared_t *s, const cc_skey_t *k, cc_item_t *out);

/* Sets `k` to *val (an empty item deletes it). On 0 the table owns the item
 * and *val is empty; otherwise the caller still owns it. Returns 0,
 * CC_ENOMEM, CC_EDEADLOCK, CC_EINTR. */
int cc_shared_set(cc_shared_t *s, const cc_skey_t *k, cc_item_t *val);

/* Border of the array part 1..n (Lua's #). */
int cc_shared_len(cc_shared_t *s, int64_t *n);

/* Number of keys present. */
int cc_shared_count(cc_shared_t *s, uint32_t *n);

/* Writes the keys present now into buf as records
 *   [type: 1 byte][len: 4 bytes, host order][payload]
 * where the payload is the string's bytes or 8 bytes (int64/double).
 * Returns the bytes needed: when that is more than cap, nothing is written
 * and the caller retries with a bigger buffer. A negative value is an error
 * (CC_EDEADLOCK, CC_EINTR). */
int64_t cc_shared_snapshot(cc_shared_t *s, void *buf, size_t cap);

/* Takes the user rlock (reentrant) and starts exclusive access. Returns 0,
 * CC_ETIMEOUT, CC_EDEADLOCK, CC_EINTR. */
int cc_shared_hold(cc_shared_t *s, cc_deadline_t deadline);
/* Ends one level of cc_shared_hold: 0 or CC_ENOTOWNER. */
int cc_shared_unhold(cc_shared_t *s);

/* For callers that may be tasks (wait.h): cc_shared_hold is
 * cc_shared_hold_w (the result at once, or CC_WAIT_PARK with *w ready to
 * run), then cc_shared_hold_end with that result (0 when held). */
struct cc_wait;
int cc_shared_hold_w(struct cc_wait *w, cc_shared_t *s, cc_deadline_t deadline);
int cc_shared_hold_end(struct cc_wait *w, cc_shared_t *s, int rc);
/* Non-zero when another actor holds the table now: a single operation
 * would wait for it. A task waits first with cc_shared_wait_free_w (the
 * result, or CC_WAIT_PARK: run *w, then cc_shared_wait_free_end), which
 * takes the user rlock and lets it go, and then tries again. */
int cc_shared_busy(cc_shared_t *s);
int cc_shared_wait_free_w(struct cc_wait *w, cc_shared_t *s);
int cc_shared_wait_free_end(cc_shared_t *s, int rc);

#endif
