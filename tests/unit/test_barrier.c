/* test_barrier.c - barriers: rounds with distinct arrival indexes and no
 * early leaver, more threads than parties, a timeout that breaks the
 * barrier for everybody, abort and reset. Workers record; main asserts. */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "actor.h"
#include "barrier.h"

#define EVENTUALLY(cond)                                                            \
  do {                                                                              \
    int64_t until_ = cc_now_ns() + 10000000000LL;                                   \
    while (!(cond) && cc_now_ns() < until_) sched_yield();                          \
    assert_true(cond);                                                              \
  } while (0)

#define PARTIES 5
#define ROUNDS 2000

typedef struct race {
  cc_obj_t *b;
  _Atomic int arrived[ROUNDS];
  _Atomic uint32_t seen[ROUNDS]; /* bitmask of arrival indexes per round */
  _Atomic int early, errors;
} race_t;

static void *runner(void *p) {
  race_t *r = p;
  for (int i = 0; i < ROUNDS; i++) {
    uint32_t idx = 99;
    atomic_fetch_add(&r->arrived[i], 1);
    if (cc_barrier_wait(r->b, cc_deadline_in(20), &idx) != 0 || idx >= PARTIES) {
      atomic_fetch_add(&r->errors, 1);
      return NULL;
    }
    /* Nobody leaves a round before everybody arrived in it. */
    if (atomic_load(&r->arrived[i]) != PARTIES) atomic_fetch_add(&r->early, 1);
    atomic_fetch_or(&r->seen[i], 1u << idx);
  }
  return NULL;
}

static void test_rounds(void **state) {
  (void)state;
  static race_t r;
  pthread_t th[PARTIES];
  r.b = cc_barrier_new("race", PARTIES);
  for (int i = 0; i < PARTIES; i++) pthread_create(&th[i], NULL, runner, &r);
  for (int i = 0; i < PARTIES; i++) pthread_join(th[i], NULL);
  assert_int_equal(atomic_load(&r.errors), 0);
  assert_int_equal(atomic_load(&r.early), 0);
  for (int i = 0; i < ROUNDS; i++) assert_int_equal(atomic_load(&r.seen[i]), (1u << PARTIES) - 1);
  assert_int_equal(cc_barrier_waiting(r.b), 0);
  assert_false(cc_barrier_broken(r.b));
  cc_obj_unref(r.b);
}

#define CROWD 6
#define CROWD_WAITS 20000

/* More threads than parties: rounds keep completing until main aborts the
 * barrier; every completed round had exactly one index 0 and one index 1. */
typedef struct crowd {
  cc_obj_t *b;
  _Atomic long by_index[2];
  _Atomic int errors;
} crowd_t;

static void *crowd_main(void *p) {
  crowd_t *c = p;
  uint32_t idx;
  for (;;) {
    int rc = cc_barrier_wait(c->b, cc_deadline_in(20), &idx);
    if (rc == CC_ECLOSED) return NULL;
    if (rc != 0 || idx > 1) {
      atomic_fetch_add(&c->errors, 1);
      return NULL;
    }
    atomic_fetch_add(&c->by_index[idx], 1);
  }
}

static void test_more_threads_than_parties(void **state) {
  (void)state;
  static crowd_t c;
  pthread_t th[CROWD];
  c.b = cc_barrier_new("pairs", 2);
  for (int i = 0; i < CROWD; i++) pthread_create(&th[i], NULL, crowd_main, &c);
  EVENTUALLY(atomic_load(&c.by_index[1]) >= CROWD_WAITS);
  cc_barrier_abort(c.b);
  for (int i = 0; i < CROWD; i++) pthread_join(th[i], NULL);
  assert_int_equal(atomic_load(&c.errors), 0);
  assert_int_equal(atomic_load(&c.by_index[0]), atomic_load(&c.by_index[1]));
  cc_obj_unref(c.b);
}

typedef struct party {
  cc_obj_t *b;
  double timeout; /* < 0: none */
  int rc;
} party_t;

static void *party_main(void *p) {
  party_t *pt = p;
  uint32_t idx;
  pt->rc = cc_barrier_wait(pt->b, pt->timeout < 0 ? CC_FOREVER : cc_deadline_in(pt->timeout),
                           &idx);
  return NULL;
}

static void test_timeout_breaks(void **state) {
  (void)state;
  cc_obj_t *b = cc_barrier_new("three", 3);
  party_t patient = {b, -1, 1}, hasty = {b, 0.05, 1};
  pthread_t t1, t2;
  uint32_t idx;
  pthread_create(&t1, NULL, party_main, &patient);
  EVENTUALLY(cc_barrier_waiting(b) == 1);
  pthread_create(&t2, NULL, party_main, &hasty);
  pthread_join(t2, NULL);
  pthread_join(t1, NULL);
  assert_int_equal(hasty.rc, CC_ETIMEOUT);
  assert_int_equal(patient.rc, CC_ECLOSED);
  assert_true(cc_barrier_broken(b));
  assert_int_equal(cc_barrier_wait(b, CC_FOREVER, &idx), CC_ECLOSED);
  cc_barrier_reset(b);
  assert_false(cc_barrier_broken(b));
  assert_int_equal(cc_barrier_waiting(b), 0);
  cc_obj_unref(b);
}

static void test_abort_and_reset(void **state) {
  (void)state;
  cc_obj_t *b = cc_barrier_new("two", 2);
  party_t p1 = {b, -1, 1}, p2 = {b, -1, 1};
  pthread_t t1, t2;
  uint32_t idx = 7;
  assert_null(cc_barrier_new("none", 0));
  pthread_create(&t1, NULL, party_main, &p1);
  EVENTUALLY(cc_barrier_waiting(b) == 1);
  cc_barrier_reset(b); /* the waiting party is told the barrier broke */
  pthread_join(t1, NULL);
  assert_int_equal(p1.rc, CC_ECLOSED);
  assert_false(cc_barrier_broken(b));
  /* Usable again after the reset. */
  p1.rc = p2.rc = 1;
  pthread_create(&t1, NULL, party_main, &p1);
  pthread_create(&t2, NULL, party_main, &p2);
  pthread_join(t1, NULL);
  pthread_join(t2, NULL);
  assert_int_equal(p1.rc, 0);
  assert_int_equal(p2.rc, 0);
  pthread_create(&t1, NULL, party_main, &p1);
  EVENTUALLY(cc_barrier_waiting(b) == 1);
  cc_barrier_abort(b);
  pthread_join(t1, NULL);
  assert_int_equal(p1.rc, CC_ECLOSED);
  assert_int_equal(cc_barrier_wait(b, CC_NOW, &idx), CC_ECLOSED);
  cc_obj_unref(b);
  /* One party: never waits. */
  b = cc_barrier_new("one", 1);
  assert_int_equal(cc_barrier_wait(b, CC_NOW, &idx), 0);
  assert_int_equal(idx, 0);
  cc_obj_unref(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rounds),
      cmocka_unit_test(test_more_threads_than_parties),
      cmocka_unit_test(test_timeout_breaks),
      cmocka_unit_test(test_abort_and_reset),
  };
  cc_self();
  return cmocka_run_group_tests(tests, NULL, NULL);
}
