/*
 * test_shared.c - the shared-table core (lib/core/shared.c) without Lua.
 *
 * Workers only record; the main thread asserts after joining them.
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "actor.h"
#include "item.h"
#include "lock.h"
#include "shared.h"

static cc_skey_t ikey(int64_t i) {
  cc_skey_t k = {CC_SK_INT, 0, {.i = i}};
  return k;
}

static cc_skey_t skey(const char *s) {
  cc_skey_t k = {CC_SK_STR, strlen(s), {.s = s}};
  return k;
}

static int set_i(cc_shared_t *s, cc_skey_t k, int64_t v) {
  cc_item_t it;
  int rc;
  cc_item_make(&it, &v, sizeof v, 1, 0);
  rc = cc_shared_set(s, &k, &it);
  if (rc) cc_item_clear(&it);
  return rc;
}

static int del(cc_shared_t *s, cc_skey_t k) {
  cc_item_t it = {0};
  return cc_shared_set(s, &k, &it);
}

/* The integer value of k, or -1 when absent. */
static int64_t get_i(cc_shared_t *s, cc_skey_t k) {
  cc_item_t it;
  int64_t v = -1;
  if (cc_shared_get(s, &k, &it) != 0) return -2;
  if (it.kind) memcpy(&v, cc_item_data(&it), sizeof v);
  cc_item_clear(&it);
  return v;
}

static int64_t len_of(cc_shared_t *s) {
  int64_t n = -1;
  cc_shared_len(s, &n);
  return n;
}

/* ---- single thread --------------------------------------------------------- */

static void test_key_types(void **state) {
  (void)state;
  cc_shared_t *s = cc_shared_new("keys");
  char longkey[100];
  cc_skey_t kt = {CC_SK_BOOL, 0, {.i = 1}}, kf = {CC_SK_BOOL, 0, {.i = 0}};
  cc_skey_t kd = {CC_SK_FLOAT, 0, {.f = 1.5}}, k1 = ikey(1);
  memset(longkey, 'k', sizeof longkey - 1);
  longkey[sizeof longkey - 1] = '\0';
  assert_non_null(s);
  assert_int_equal(set_i(s, kt, 10), 0);
  assert_int_equal(set_i(s, kf, 11), 0);
  assert_int_equal(set_i(s, kd, 12), 0);
  assert_int_equal(set_i(s, k1, 13), 0);
  assert_int_equal(set_i(s, skey("1"), 14), 0);
  assert_int_equal(set_i(s, skey(longkey), 15), 0);
  assert_int_equal(set_i(s, skey(""), 16), 0);
  assert_int_equal(get_i(s, kt), 10);
  assert_int_equal(get_i(s, kf), 11);
  assert_int_equal(get_i(s, kd), 12);
  assert_int_equal(get_i(s, k1), 13);
  assert_int_equal(get_i(s, skey("1")), 14);
  assert_int_equal(get_i(s, skey(longkey)), 15);
  assert_int_equal(get_i(s, skey("")), 16);
  assert_int_equal(get_i(s, skey("nope")), -1);
  assert_int_equal(set_i(s, skey(longkey), 20), 0); /* overwrite */
  assert_int_equal(get_i(s, skey(longkey)), 20);
  assert_int_equal(del(s, skey(longkey)), 0);
  assert_int_equal(get_i(s, skey(longkey)), -1);
  assert_int_equal(del(s, skey(longkey)), 0); /* deleting an absent key is fine */
  uint32_t n;
  cc_shared_count(s, &n);
  assert_int_equal(n, 6);
  cc_obj_unref(&s->h);
}

static void test_border(void **state) {
  (void)state;
  cc_shared_t *s = cc_shared_new(NULL);
  assert_int_equal(len_of(s), 0);
  for (int64_t i = 100; i >= 2; i--)
    set_i(s, ikey(i), i); /* 1 missing */
  assert_int_equal(len_of(s), 0);
  set_i(s, ikey(1), 1);
  assert_int_equal(len_of(s), 100);
  del(s, ikey(50));
  assert_int_equal(len_of(s), 49);
  set_i(s, ikey(102), 0);
  set_i(s, ikey(50), 0);
  assert_int_equal(len_of(s), 100);
  set_i(s, ikey(101), 0);
  assert_int_equal(len_of(s), 102);
  set_i(s, ikey(0), 0);
  set_i(s, ikey(-1), 0);
  assert_int_equal(len_of(s), 102);
  del(s, ikey(102));
  assert_int_equal(len_of(s), 101);
  cc_obj_unref(&s->h);
}

static void test_grow_shrink_snapshot(void **state) {
  (void)state;
  cc_shared_t *s = cc_shared_new(NULL);
  char name[32];
  for (int i = 0; i < 20000; i++) {
    snprintf(name, sizeof name, "key-number-%d", i);
    assert_int_equal(set_i(s, skey(name), i), 0);
  }
  for (int i = 0; i < 20000; i++) {
    snprintf(name, sizeof name, "key-number-%d", i);
    assert_int_equal(get_i(s, skey(name)), i);
  }
  assert_true(s->slots->cap >= 20000);
  for (int i = 0; i < 19990; i++) {
    snprintf(name, sizeof name, "key-number-%d", i);
    del(s, skey(name));
  }
  assert_true(s->slots->cap <= 64);
  set_i(s, ikey(7), 7);
  {
    char buf[512];
    int64_t need = cc_shared_snapshot(s, buf, 4);
    int seen = 0, ints = 0;
    assert_true(need > 4);
    assert_int_equal(cc_shared_snapshot(s, buf, sizeof buf), need);
    for (int64_t off = 0; off < need;) {
      uint32_t len;
      memcpy(&len, buf + off + 1, 4);
      if (buf[off] == CC_SK_INT) {
        int64_t v;
        memcpy(&v, buf + off + 5, 8);
        ints += v == 7;
      } else {
        assert_int_equal(buf[off], CC_SK_STR);
        assert_memory_equal(buf + off + 5, "key-number-199", 14);
      }
      off += 5 + len;
      seen++;
    }
    assert_int_equal(seen, 11);
    assert_int_equal(ints, 1);
  }
  cc_obj_unref(&s->h);
}

static int released;
static void count_release(const void *data, size_t len) {
  (void)data;
  (void)len;
  released++;
}

static void test_release_values(void **state) {
  (void)state;
  cc_shared_t *s = cc_shared_new(NULL);
  cc_skey_t k = skey("obj");
  cc_item_t it, got;
  cc_item_release = count_release;
  released = 0;
  cc_item_make(&it, "ref", 3, 1, CC_ITEM_OBJS);
  assert_int_equal(cc_shared_set(s, &k, &it), 0);
  assert_int_equal(cc_shared_get(s, &k, &got), 0);
  cc_item_make(&it, "ref", 3, 1, CC_ITEM_OBJS);
  assert_int_equal(cc_shared_set(s, &k, &it), 0); /* replaces: the reader's share stays */
  assert_int_equal(released, 0);
  cc_item_clear(&got);
  assert_int_equal(released, 1);
  cc_obj_unref(&s->h);
  assert_int_equal(released, 2);
  cc_item_release = NULL;
}

/* ---- threads -------------------------------------------------------------------- */

#define NT 4
#define INCS 50000

typedef struct worker {
  cc_shared_t *s;
  int id, errors;
  _Atomic(cc_actor_t *) actor;
} worker_t;

static void *inc_held(void *p) {
  worker_t *w = p;
  cc_skey_t k = skey("n");
  for (int i = 0; i < INCS; i++) {
    if (cc_shared_hold(w->s, CC_FOREVER) != 0) {
      w->errors++;
      continue;
    }
    int64_t v = get_i(w->s, k);
    if (set_i(w->s, k, v + 1) != 0) w->errors++;
    if (cc_shared_unhold(w->s) != 0) w->errors++;
  }
  return NULL;
}

static void test_hold_increments(void **state) {
  (void)state;
  cc_shared_t *s = cc_shared_new("counter");
  pthread_t t[NT];
  worker_t w[NT];
  set_i(s, skey("n"), 0);
  for (int i = 0; i < NT; i++) {
    w[i] = (worker_t){s, i, 0, NULL};
    pthread_create(&t[i], NULL, inc_held, &w[i]);
  }
  for (int i = 0; i < NT; i++)
    pthread_join(t[i], NULL);
  for (int i = 0; i < NT; i++)
    assert_int_equal(w[i].errors, 0);
  assert_int_equal(get_i(s, skey("n")), NT * INCS);
  assert_int_equal(atomic_load(&s->held), 0);
  cc_obj_unref(&s->h);
}

/* Many writers of distinct keys and of one shared key, readers checking
 * that every value read is one that was written whole. */
static void *writer(void *p) {
  worker_t *w = p;
  for (int64_t i = 0; i < 20000; i++) {
    char val[100];
    cc_item_t it;
    cc_skey_t k = {CC_SK_STR, 3, {.s = "hot"}};
    if (set_i(w->s, ikey(w->id * 100000 + i + 1000), i) != 0) w->errors++;
    memset(val, 'a' + w->id, sizeof val); /* a boxed value */
    cc_item_make(&it, val, sizeof val, 2, 0);
    if (cc_shared_set(w->s, &k, &it) != 0) w->errors++;
    cc_item_t got;
    if (cc_shared_get(w->s, &k, &got) != 0 || got.len != sizeof val) {
      w->errors++;
    } else {
      const char *d = cc_item_data(&got);
      for (size_t j = 1; j < sizeof val; j++)
        if (d[j] != d[0]) w->errors++;
    }
    cc_item_clear(&got);
  }
  return NULL;
}

static void test_concurrent_single_ops(void **state) {
  (void)state;
  cc_shared_t *s = cc_shared_new(NULL);
  pthread_t t[8];
  worker_t w[8];
  uint32_t n;
  for (int i = 0; i < 8; i++) {
    w[i] = (worker_t){s, i, 0, NULL};
    pthread_create(&t[i], NULL, writer, &w[i]);
  }
  for (int i = 0; i < 8; i++)
    pthread_join(t[i], NULL);
  for (int i = 0; i < 8; i++)
    assert_int_equal(w[i].errors, 0);
  cc_shared_count(s, &n);
  assert_int_equal(n, 8 * 20000 + 1);
  for (int i = 0; i < 8; i++)
    for (int64_t k = 0; k < 20000; k += 997)
      assert_int_equal(get_i(s, ikey(i * 100000 + k + 1000)), k);
  cc_obj_unref(&s->h);
}

static void *blocked_set(void *p) {
  worker_t *w = p;
  atomic_store(&w->actor, cc_self());
  if (set_i(w->s, skey("x"), 2) != 0) w->errors++;
  return NULL;
}

static void test_hold_excludes_others(void **state) {
  (void)state;
  cc_shared_t *s = cc_shared_new("excl");
  pthread_t t;
  worker_t w = {s, 0, 0, NULL};
  cc_actor_t *a = NULL;
  int parked = 0;
  set_i(s, skey("x"), 1);
  assert_int_equal(cc_shared_hold(s, CC_FOREVER), 0);
  assert_int_equal(cc_shared_hold(s, CC_FOREVER), 0); /* reentrant */
  pthread_create(&t, NULL, blocked_set, &w);
  for (int i = 0; i < 10000 && !parked; i++) {
    a = atomic_load(&w.actor);
    parked = a && atomic_load(&a->wait_kind) == CC_WAIT_LOCK &&
             atomic_load(&a->waiting_on) == s->ulock;
    if (!parked) usleep(1000);
  }
  assert_true(parked);
  /* The holder's own single operations go through. */
  assert_int_equal(get_i(s, skey("x")), 1);
  assert_int_equal(set_i(s, skey("y"), 5), 0);
  assert_int_equal(cc_shared_unhold(s), 0);
  assert_int_equal(get_i(s, skey("x")), 1); /* still held once */
  assert_int_equal(cc_shared_unhold(s), 0);
  pthread_join(t, NULL);
  assert_int_equal(w.errors, 0);
  assert_int_equal(get_i(s, skey("x")), 2);
  assert_int_equal(cc_shared_unhold(s), CC_ENOTOWNER);
  cc_obj_unref(&s->h);
}

static void *timed_hold(void *p) {
  worker_t *w = p;
  w->errors = cc_shared_hold(w->s, cc_deadline_in(0.05));
  if (w->errors == 0) cc_shared_unhold(w->s);
  return NULL;
}

static void test_hold_timeout(void **state) {
  (void)state;
  cc_shared_t *s = cc_shared_new(NULL);
  pthread_t t;
  worker_t w = {s, 0, 1, NULL};
  /* Another actor's hold with a deadline times out while we hold... */
  assert_int_equal(cc_shared_hold(s, CC_FOREVER), 0);
  pthread_create(&t, NULL, timed_hold, &w);
  pthread_join(t, NULL);
  assert_int_equal(w.errors, CC_ETIMEOUT);
  assert_int_equal(atomic_load(&s->held), 1);
  assert_int_equal(cc_shared_unhold(s), 0);
  /* ...and succeeds when nobody does. */
  pthread_create(&t, NULL, timed_hold, &w);
  pthread_join(t, NULL);
  assert_int_equal(w.errors, 0);
  assert_int_equal(atomic_load(&s->held), 0);
  cc_obj_unref(&s->h);
}

/* A holder process that dies: the next actor takes the rlock over and
 * clears the stale flag. */
static void test_dead_holder_process(void **state) {
  (void)state;
  cc_shared_t *s = cc_shared_new("orphan");
  int status;
  pid_t pid;
  set_i(s, skey("x"), 1);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (cc_shared_hold(s, CC_FOREVER) != 0) _exit(3);
    set_i(s, skey("x"), 42);
    _exit(0); /* dies holding it */
  }
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_int_equal(WEXITSTATUS(status), 0);
  assert_int_equal(atomic_load(&s->held), 1);
  assert_int_equal(get_i(s, skey("x")), 42);
  assert_int_equal(atomic_load(&s->held), 0);
  assert_int_equal(set_i(s, skey("x"), 43), 0);
  assert_int_equal(cc_shared_hold(s, cc_deadline_in(5)), 0);
  assert_int_equal(cc_shared_unhold(s), 0);
  cc_obj_unref(&s->h);
}


/* ---- a writer process killed at random moments ----------------------------------
 *
 * The child runs a deterministic sequence of sets and deletes (long string
 * keys and integer keys, boxed and inline values, bursts that grow and
 * shrink the slot array) and publishes how many have returned; the parent
 * SIGKILLs it at a random moment, replays the same sequence into a model
 * and checks that the table is the model with at most the operation in
 * progress lost or done: every other key exact, every value whole, the
 * count and # exact. The table lives on across rounds, as does the
 * allocator, which the parent also exercises between rounds. */

#define KKEYS 96 /* keys 0..47 are integers 1..48, 48..95 long strings */
#define KILL_ROUNDS_DEFAULT 150

typedef struct kboard {
  _Atomic uint64_t done; /* operations that returned */
  uint64_t seed;
} kboard_t;

static uint64_t kop_rand(uint64_t seed, uint64_t n) {
  uint64_t x = seed ^ (n * 0x9e3779b97f4a7c15ull);
  x ^= x >> 31;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 29;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 32);
}

/* Operation n of a run: key index, and the value length (0: delete). Runs
 * alternate between filling (mostly sets) and draining (mostly deletes). */
static void kop(uint64_t seed, uint64_t n, int *key, uint32_t *vlen) {
  uint64_t r = kop_rand(seed, n);
  int filling = (n / 400) % 2 == 0;
  *key = (int)(r % KKEYS);
  r >>= 8;
  if ((r % 10) < (filling ? 8u : 2u))
    *vlen = (r >> 8) % 4 == 0 ? 8 + (uint32_t)((r >> 12) % 40) /* inline */
                              : 100 + (uint32_t)((r >> 12) % 300);
  else
    *vlen = 0;
}

static cc_skey_t kkey(int i, char *buf) {
  if (i < KKEYS / 2) return ikey(i + 1);
  snprintf(buf, 64, "a-long-string-key-number-%d-of-the-kill-test", i);
  return skey(buf);
}

/* Value bytes: [key][op][fill...], the fill byte derived from op. */
static void kval_fill(unsigned char *v, uint32_t len, int key, uint64_t op) {
  uint32_t k = (uint32_t)key, o = (uint32_t)op;
  memcpy(v, &k, 4);
  memcpy(v + 4, &o, 4);
  memset(v + 8, (int)(o * 31 % 251), len - 8); /* cheap: the child should spend
                                                   its time inside the table */
}

static _Noreturn void kill_child(cc_shared_t *s, kboard_t *b) {
  unsigned char v[512];
  char kb[64];
  for (uint64_t n = 0;; n++) {
    int key;
    uint32_t len;
    cc_item_t it = {0};
    cc_skey_t k;
    kop(b->seed, n, &key, &len);
    k = kkey(key, kb);
    if (len) {
      kval_fill(v, len, key, n);
      if (cc_item_make(&it, v, len, 1, 0) != 0) _exit(3);
    }
    if (cc_shared_set(s, &k, &it) != 0) _exit(4);
    atomic_store(&b->done, n + 1);
  }
}

/* The model: for each key, the op that set it (UINT64_MAX: absent) and
 * the value length. */
typedef struct kmodel {
  uint64_t op[KKEYS];
  uint32_t len[KKEYS];
} kmodel_t;

/* Checks key i against (op, len) of the model; returns 0 when equal,
 * 1 when different, -1 when the stored value is not a whole value. */
static int kcheck(cc_shared_t *s, int i, uint64_t op, uint32_t len, uint64_t *gotop,
                  uint32_t *gotlen) {
  char kb[64];
  cc_skey_t k = kkey(i, kb);
  cc_item_t it;
  int rc = 0;
  *gotop = UINT64_MAX;
  *gotlen = 0;
  if (cc_shared_get(s, &k, &it) != 0) return -1;
  if (it.kind) {
    unsigned char want[512];
    uint32_t o;
    const unsigned char *d = cc_item_data(&it);
    if (it.kind != 1 || it.len < 8 || it.len > sizeof want) {
      cc_item_clear(&it);
      return -1;
    }
    memcpy(&o, d + 4, 4);
    kval_fill(want, it.len, i, o);
    if (memcmp(want, d, it.len) != 0) rc = -1;
    *gotop = o;
    *gotlen = it.len;
  }
  cc_item_clear(&it);
  if (rc) return rc;
  if (op == UINT64_MAX) return *gotop != UINT64_MAX;
  return !(*gotop == (uint32_t)op && *gotlen == len);
}

static void test_killed_while_writing(void **state) {
  (void)state;
  cc_shared_t *s = cc_shared_new("killed");
  kboard_t *b = cc_calloc(sizeof *b);
  kmodel_t m;
  int rounds = KILL_ROUNDS_DEFAULT, lost = 0, took_over = 0, committed = 0;
  const char *env = getenv("CONCLUA_KILL_ROUNDS");
  if (env && atoi(env) > 0) rounds = atoi(env);
  assert_non_null(s);
  assert_non_null(b);
  for (int i = 0; i < KKEYS; i++)
    m.op[i] = UINT64_MAX;
  srand(12345);
  for (int round = 0; round < rounds; round++) {
    uint64_t target = 1 + (uint64_t)(rand() % 4000), done, t0;
    int status, key, present = 0;
    uint32_t len, n;
    int64_t border, want_border = 0;
    pid_t pid;
    atomic_store(&b->done, 0);
    b->seed = (uint64_t)round * 7919 + 17;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) kill_child(s, b);
    while (atomic_load(&b->done) < target && waitpid(pid, &status, WNOHANG) == 0)
      sched_yield();
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status)); /* it did not die of its own */
    committed += s->pend != 0; /* killed inside a replacement, after its commit */
    done = atomic_load(&b->done);
    for (uint64_t n2 = 0; n2 < done; n2++) {
      kop(b->seed, n2, &key, &len);
      m.op[key] = len ? n2 : UINT64_MAX;
      m.len[key] = len;
    }
    /* Operation `done` was in progress: either outcome is fine. */
    t0 = (uint64_t)cc_now_ns();
    kop(b->seed, done, &key, &len);
    for (int i = 0; i < KKEYS; i++) {
      uint64_t gop;
      uint32_t glen;
      int rc = kcheck(s, i, m.op[i], m.len[i], &gop, &glen);
      if (i == key && rc > 0) { /* did the write in progress happen? */
        uint64_t aop = len ? done : UINT64_MAX;
        if (kcheck(s, i, aop, len, &gop, &glen) == 0) {
          m.op[i] = aop;
          m.len[i] = len;
          rc = 0;
        }
      } else if (i == key && rc == 0 && (len || m.op[i] != UINT64_MAX)) {
        lost++;
      }
      if (rc != 0)
        fail_msg("round %d: key %d holds op %lld len %u, model op %lld len %u (rc %d)",
                 round, i, (long long)(gop == UINT64_MAX ? -1 : (int64_t)gop), glen,
                 (long long)(m.op[i] == UINT64_MAX ? -1 : (int64_t)m.op[i]), m.len[i], rc);
    }
    if ((uint64_t)cc_now_ns() - t0 > 50000000) took_over++;
    for (int i = 0; i < KKEYS; i++)
      present += m.op[i] != UINT64_MAX;
    while (want_border < KKEYS / 2 && m.op[want_border] != UINT64_MAX)
      want_border++;
    assert_int_equal(cc_shared_count(s, &n), 0);
    assert_int_equal(cc_shared_len(s, &border), 0);
    if (n != (uint32_t)present || border != want_border)
      fail_msg("round %d: %u keys and # %lld, the model has %d and %lld", round, n,
               (long long)border, present, (long long)want_border);
    /* The allocator still works for everybody else. */
    for (int j = 0; j < 64; j++) {
      void *p = cc_alloc((size_t)16 << (j % 12));
      assert_non_null(p);
      memset(p, j, 16);
      cc_free(p);
    }
  }
  print_message("%d rounds: %d killed before the operation in progress showed, %d "
                "inside the table's mutex (repaired: %u; %d after a replacement's commit)\n",
                rounds, lost, took_over, atomic_load(&s->repairs), committed);
  cc_obj_unref(&s->h);
  cc_free(b);
}

/* A writer killed at the two sides of a replacement's commit (shared.c),
 * built by hand: the child takes the internal mutex, stages a boxed value
 * over an inline one and dies holding the mutex, either before the commit
 * or after it with the slot torn (the new header, flagged as boxed, over
 * the old inline bytes: read as it is, a wild box pointer). The next locker
 * must show the old value (no commit) or finish the new one (commit); so
 * must a table destroyed before anybody locked it again. */
static void die_mid_replace(cc_shared_t *s, int commit) {
  unsigned char big[100];
  cc_item_t it;
  cc_sentry_t *e = NULL;
  memset(big, 0x5a, sizeof big);
  if (cc_mutex_lock(&s->lock) != 0) _exit(2);
  for (uint32_t i = 0; i < s->slots->cap; i++)
    if (s->slots->e[i].ktype == CC_SK_INT) e = &s->slots->e[i];
  if (!e || cc_item_make(&it, big, sizeof big, 1, 0) != 0) _exit(3);
  s->stage = it;
  if (commit) {
    s->pend = (uint32_t)(e - s->slots->e) + 1;
    memcpy(&e->val, &it, offsetof(cc_item_t, u)); /* torn: header only */
  }
  _exit(0);
}

static void test_killed_mid_replace(void **state) {
  (void)state;
  for (int round = 0; round < 4; round++) {
    int commit = round & 1, destroy = round >> 1, status;
    cc_shared_t *s = cc_shared_new("torn");
    uint32_t repairs;
    pid_t pid;
    assert_non_null(s);
    assert_int_equal(set_i(s, ikey(7), 1234), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) die_mid_replace(s, commit);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (!destroy) {
      cc_item_t it;
      cc_skey_t k = ikey(7);
      repairs = atomic_load(&s->repairs);
      assert_int_equal(cc_shared_get(s, &k, &it), 0);
      assert_int_equal(atomic_load(&s->repairs), repairs + 1);
      if (commit) {
        unsigned char want[100];
        memset(want, 0x5a, sizeof want);
        assert_int_equal(it.len, sizeof want);
        assert_memory_equal(cc_item_data(&it), want, sizeof want);
      } else {
        int64_t v;
        assert_int_equal(it.len, sizeof v);
        memcpy(&v, cc_item_data(&it), sizeof v);
        assert_int_equal(v, 1234);
      }
      cc_item_clear(&it);
      assert_int_equal(s->pend, 0);
    }
    cc_obj_unref(&s->h); /* clears the value the slot holds, once */
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_key_types),
      cmocka_unit_test(test_border),
      cmocka_unit_test(test_grow_shrink_snapshot),
      cmocka_unit_test(test_release_values),
      cmocka_unit_test(test_hold_increments),
      cmocka_unit_test(test_concurrent_single_ops),
      cmocka_unit_test(test_hold_excludes_others),
      cmocka_unit_test(test_hold_timeout),
      cmocka_unit_test(test_dead_holder_process),
      cmocka_unit_test(test_killed_while_writing),
      cmocka_unit_test(test_killed_mid_replace),
  };
  if (cc_arena_init() != 0) return 1;
  return cmocka_run_group_tests(tests, NULL, NULL);
}
