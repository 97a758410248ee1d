/* test_atomic.c - conc.atomic cells: add and CAS loops from many threads,
 * wrap-around, exchange. Workers record results; only main asserts. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "atomic.h"

#define NTHREADS 8
#define ITERS 100000

typedef struct cells {
  cc_obj_t *added, *cased;
  _Atomic long cas_failures;
} cells_t;

static void *worker(void *p) {
  cells_t *c = p;
  for (int i = 0; i < ITERS; i++) {
    int64_t v;
    cc_atomic_add(c->added, 3);
    cc_atomic_add(c->added, -2);
    do {
      v = cc_atomic_get(c->cased);
    } while (!cc_atomic_cas(c->cased, v, v + 1) && (atomic_fetch_add(&c->cas_failures, 1), 1));
  }
  return NULL;
}

static void test_many_threads(void **state) {
  (void)state;
  cells_t c = {.added = cc_atomic_new("added", 0), .cased = cc_atomic_new("cased", 10)};
  pthread_t th[NTHREADS];
  for (int i = 0; i < NTHREADS; i++) pthread_create(&th[i], NULL, worker, &c);
  for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
  assert_int_equal(cc_atomic_get(c.added), (int64_t)NTHREADS * ITERS);
  assert_int_equal(cc_atomic_get(c.cased), 10 + (int64_t)NTHREADS * ITERS);
  cc_obj_unref(c.added);
  cc_obj_unref(c.cased);
}

static void test_single(void **state) {
  (void)state;
  cc_obj_t *a = cc_atomic_new("a", 5);
  assert_int_equal(cc_atomic_get(a), 5);
  assert_int_equal(cc_atomic_add(a, 3), 8);
  assert_false(cc_atomic_cas(a, 7, 1));
  assert_true(cc_atomic_cas(a, 8, 1));
  assert_int_equal(cc_atomic_exchange(a, 42), 1);
  cc_atomic_set(a, INT64_MAX);
  assert_int_equal(cc_atomic_add(a, 1), INT64_MIN); /* wraps like Lua integers */
  cc_obj_unref(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_single),
      cmocka_unit_test(test_many_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
