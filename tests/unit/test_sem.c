/* test_sem.c - semaphores: never more than n inside under a hammer, bounded
 * over-release, release(k) wakes k, timeouts. Workers record results; only
 * the main thread asserts. */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "actor.h"
#include "sem.h"

#define EVENTUALLY(cond)                                                            \
  do {                                                                              \
    int64_t until_ = cc_now_ns() + 10000000000LL;                                   \
    while (!(cond) && cc_now_ns() < until_) sched_yield();                          \
    assert_true(cond);                                                              \
  } while (0)

#define NTHREADS 8
#define ITERS 30000
#define ROOM 3

typedef struct room {
  cc_obj_t *sem;
  _Atomic int inside, max_inside, errors;
  _Atomic long entries, timeouts;
} room_t;

static void *visitor(void *p) {
  room_t *r = p;
  for (int i = 0; i < ITERS; i++) {
    int rc = cc_sem_acquire(r->sem, (i % 4 == 0) ? cc_deadline_in(0.0002) : CC_FOREVER);
    int n, m;
    if (rc == CC_ETIMEOUT) {
      atomic_fetch_add(&r->timeouts, 1);
      continue;
    }
    if (rc != 0) {
      atomic_fetch_add(&r->errors, 1);
      continue;
    }
    n = atomic_fetch_add(&r->inside, 1) + 1;
    m = atomic_load(&r->max_inside);
    while (n > m && !atomic_compare_exchange_weak(&r->max_inside, &m, n)) {
    }
    atomic_fetch_add(&r->entries, 1);
    atomic_fetch_sub(&r->inside, 1);
    if (cc_sem_release(r->sem, 1) != 0) atomic_fetch_add(&r->errors, 1);
  }
  return NULL;
}

static void test_room_hammer(void **state) {
  (void)state;
  room_t r = {.sem = cc_sem_new("room", ROOM, 1)};
  pthread_t th[NTHREADS];
  for (int i = 0; i < NTHREADS; i++) pthread_create(&th[i], NULL, visitor, &r);
  for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
  assert_int_equal(atomic_load(&r.errors), 0);
  assert_true(atomic_load(&r.max_inside) <= ROOM);
  assert_true(atomic_load(&r.max_inside) >= 1);
  assert_int_equal(atomic_load(&r.entries) + atomic_load(&r.timeouts), (long)NTHREADS * ITERS);
  assert_int_equal(cc_sem_value(r.sem), ROOM);
  assert_int_equal(atomic_load(&((cc_sem_t *)r.sem)->waiters), 0);
  cc_obj_unref(r.sem);
}

static void test_bounded_and_limits(void **state) {
  (void)state;
  cc_obj_t *b = cc_sem_new("b", 2, 1), *u = cc_sem_new("u", 0, 0);
  cc_obj_t *z = cc_sem_new("zero", 0, 1);
  assert_null(cc_sem_new("too big", CC_SEM_MAX + 1u, 0));
  assert_int_equal(cc_sem_release(z, 1), CC_EOVERFLOW); /* bounded at 0 */
  cc_obj_unref(z);
  assert_int_equal(cc_sem_release(b, 1), CC_EOVERFLOW);
  assert_int_equal(cc_sem_acquire(b, CC_NOW), 0);
  assert_int_equal(cc_sem_release(b, 2), CC_EOVERFLOW);
  assert_int_equal(cc_sem_value(b), 1);
  assert_int_equal(cc_sem_release(b, 1), 0);
  assert_int_equal(cc_sem_value(b), 2);
  /* Unbounded: any amount up to CC_SEM_MAX. */
  assert_int_equal(cc_sem_acquire(u, CC_NOW), CC_ETIMEOUT);
  assert_int_equal(cc_sem_acquire(u, cc_deadline_in(0.01)), CC_ETIMEOUT);
  assert_int_equal(cc_sem_release(u, 5), 0);
  assert_int_equal(cc_sem_release(u, CC_SEM_MAX), CC_EOVERFLOW);
  assert_int_equal(cc_sem_value(u), 5);
  cc_obj_unref(b);
  cc_obj_unref(u);
}

#define NWAIT 5

typedef struct gate {
  cc_obj_t *sem;
  _Atomic int passed, errors;
} gate_t;

static void *gate_waiter(void *p) {
  gate_t *g = p;
  if (cc_sem_acquire(g->sem, cc_deadline_in(20)) != 0)
    atomic_fetch_add(&g->errors, 1);
  else
    atomic_fetch_add(&g->passed, 1);
  return NULL;
}

static void test_release_k_wakes_k(void **state) {
  (void)state;
  gate_t g = {.sem = cc_sem_new("gate", 0, 0)};
  cc_sem_t *s = (cc_sem_t *)g.sem;
  pthread_t th[NWAIT];
  for (int i = 0; i < NWAIT; i++) pthread_create(&th[i], NULL, gate_waiter, &g);
  EVENTUALLY(atomic_load(&s->waiters) == NWAIT);
  assert_int_equal(cc_sem_release(g.sem, 2), 0);
  EVENTUALLY(atomic_load(&g.passed) == 2);
  assert_int_equal(cc_sem_value(g.sem), 0);
  assert_int_equal(cc_sem_release(g.sem, 3), 0);
  for (int i = 0; i < NWAIT; i++) pthread_join(th[i], NULL);
  assert_int_equal(atomic_load(&g.passed), NWAIT);
  assert_int_equal(atomic_load(&g.errors), 0);
  assert_int_equal(cc_sem_value(g.sem), 0);
  cc_obj_unref(g.sem);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bounded_and_limits),
      cmocka_unit_test(test_release_k_wakes_k),
      cmocka_unit_test(test_room_hammer),
  };
  cc_self();
  return cmocka_run_group_tests(tests, NULL, NULL);
}
