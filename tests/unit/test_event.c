/* test_event.c - events: set/clear/is_set, every waiter woken by set, a
 * set+clear pulse still wakes parked waiters, timeouts, and a ping-pong
 * hammer. Workers record results; only the main thread asserts. */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "actor.h"
#include "event.h"

#define EVENTUALLY(cond)                                                            \
  do {                                                                              \
    int64_t until_ = cc_now_ns() + 10000000000LL;                                   \
    while (!(cond) && cc_now_ns() < until_) sched_yield();                          \
    assert_true(cond);                                                              \
  } while (0)

static void test_flag(void **state) {
  (void)state;
  cc_obj_t *e = cc_event_new("e");
  int64_t t0 = cc_now_ns();
  assert_false(cc_event_is_set(e));
  assert_int_equal(cc_event_wait(e, CC_NOW), 0);
  assert_int_equal(cc_event_wait(e, cc_deadline_in(0.02)), 0);
  assert_true(cc_now_ns() - t0 >= 19000000);
  cc_event_set(e);
  cc_event_set(e);
  assert_true(cc_event_is_set(e));
  assert_int_equal(cc_event_wait(e, CC_FOREVER), 1);
  assert_int_equal(cc_event_wait(e, CC_NOW), 1);
  cc_event_clear(e);
  assert_false(cc_event_is_set(e));
  assert_int_equal(cc_event_wait(e, CC_NOW), 0);
  cc_obj_unref(e);
}

#define NGUESTS 6

typedef struct dinner {
  cc_obj_t *e;
  _Atomic int eating, errors;
} dinner_t;

static void *guest(void *p) {
  dinner_t *d = p;
  if (cc_event_wait(d->e, cc_deadline_in(20)) == 1)
    atomic_fetch_add(&d->eating, 1);
  else
    atomic_fetch_add(&d->errors, 1);
  return NULL;
}

static void run_dinner(int pulse) {
  dinner_t d = {.e = cc_event_new("dinner")};
  cc_event_t *ev = (cc_event_t *)d.e;
  pthread_t th[NGUESTS];
  for (int i = 0; i < NGUESTS; i++) pthread_create(&th[i], NULL, guest, &d);
  EVENTUALLY(atomic_load(&ev->waiters) == NGUESTS);
  assert_int_equal(atomic_load(&d.eating), 0);
  cc_event_set(d.e);
  if (pulse) cc_event_clear(d.e);
  for (int i = 0; i < NGUESTS; i++) pthread_join(th[i], NULL);
  assert_int_equal(atomic_load(&d.eating), NGUESTS);
  assert_int_equal(atomic_load(&d.errors), 0);
  assert_int_equal(cc_event_is_set(d.e), !pulse);
  cc_obj_unref(d.e);
}

static void test_set_wakes_all(void **state) {
  (void)state;
  run_dinner(0);
}

static void test_pulse_wakes_parked(void **state) {
  (void)state;
  run_dinner(1);
}

/* Two threads hand a turn back and forth with two events. */
#define ROUNDS 5000

typedef struct pingpong {
  cc_obj_t *ping, *pong;
  _Atomic int errors;
  int turns;
} pingpong_t;

static void *ponger(void *p) {
  pingpong_t *pp = p;
  for (int i = 0; i < ROUNDS; i++) {
    if (cc_event_wait(pp->ping, cc_deadline_in(20)) != 1) atomic_fetch_add(&pp->errors, 1);
    cc_event_clear(pp->ping);
    pp->turns++;
    cc_event_set(pp->pong);
  }
  return NULL;
}

static void test_ping_pong(void **state) {
  (void)state;
  pingpong_t pp = {.ping = cc_event_new("ping"), .pong = cc_event_new("pong")};
  pthread_t th;
  pthread_create(&th, NULL, ponger, &pp);
  for (int i = 0; i < ROUNDS; i++) {
    cc_event_set(pp.ping);
    assert_int_equal(cc_event_wait(pp.pong, cc_deadline_in(20)), 1);
    cc_event_clear(pp.pong);
  }
  pthread_join(th, NULL);
  assert_int_equal(atomic_load(&pp.errors), 0);
  assert_int_equal(pp.turns, ROUNDS);
  cc_obj_unref(pp.ping);
  cc_obj_unref(pp.pong);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_flag),
      cmocka_unit_test(test_set_wakes_all),
      cmocka_unit_test(test_pulse_wakes_parked),
      cmocka_unit_test(test_ping_pong),
  };
  cc_self();
  return cmocka_run_group_tests(tests, NULL, NULL);
}
