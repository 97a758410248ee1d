/* test_cond.c - conditions: ownership errors, exact notify(n), notify_all,
 * timeouts, rlock depth restored, a producer/consumer hammer, and waiters
 * whose process was SIGKILLed while parked. Workers
 * record results; only the main thread asserts. */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cond.h"
#include "lock.h"

#define EVENTUALLY(cond)                                                            \
  do {                                                                              \
    int64_t until_ = cc_now_ns() + 10000000000LL;                                   \
    while (!(cond) && cc_now_ns() < until_) sched_yield();                          \
    assert_true(cond);                                                              \
  } while (0)

static void test_needs_the_lock(void **state) {
  (void)state;
  cc_obj_t *c = cc_cond_new("c", NULL);
  assert_int_equal(cc_obj_valid(cc_cond_lock(c)), 1);
  assert_true(cc_lock_is_recursive(cc_cond_lock(c)));
  assert_int_equal(cc_cond_wait(c, CC_FOREVER), CC_ENOTOWNER);
  assert_int_equal(cc_cond_notify(c, 1, NULL), CC_ENOTOWNER);
  assert_int_equal(cc_cond_notify(c, -1, NULL), CC_ENOTOWNER);
  cc_obj_unref(c);
}

static void test_timeout_keeps_rlock_depth(void **state) {
  (void)state;
  cc_obj_t *r = cc_lock_new("r", 1);
  cc_obj_t *c = cc_cond_new("c", r);
  int64_t t0;
  cc_obj_unref(r); /* the condition keeps its own reference */
  for (int i = 0; i < 3; i++) assert_int_equal(cc_lock_acquire(r, CC_FOREVER), 0);
  t0 = cc_now_ns();
  assert_int_equal(cc_cond_wait(c, cc_deadline_in(0.02)), CC_ETIMEOUT);
  assert_true(cc_now_ns() - t0 >= 19000000);
  assert_int_equal(cc_cond_wait(c, CC_NOW), CC_ETIMEOUT);
  assert_int_equal(cc_cond_waiting(c), 0);
  for (int i = 0; i < 3; i++) assert_int_equal(cc_lock_release(r), 0);
  assert_int_equal(cc_lock_release(r), CC_ENOTOWNER);
  cc_obj_unref(c);
}

/* ---- exact notify ---------------------------------------------------------- */

#define NWAITERS 6

typedef struct waiters {
  cc_obj_t *cond;
  _Atomic int woken, errors;
} waiters_t;

static void *waiter_main(void *p) {
  waiters_t *w = p;
  cc_obj_t *l = cc_cond_lock(w->cond);
  cc_lock_acquire(l, CC_FOREVER);
  if (cc_cond_wait(w->cond, cc_deadline_in(20)) != 0) atomic_fetch_add(&w->errors, 1);
  if (!cc_lock_held_by_me(l)) atomic_fetch_add(&w->errors, 1);
  atomic_fetch_add(&w->woken, 1);
  cc_lock_release(l);
  return NULL;
}

static int waiting(cc_obj_t *c) {
  int n;
  cc_lock_acquire(cc_cond_lock(c), CC_FOREVER);
  n = cc_cond_waiting(c);
  cc_lock_release(cc_cond_lock(c));
  return n;
}

static void test_notify_is_exact(void **state) {
  (void)state;
  cc_obj_t *plain = cc_lock_new("plain", 0);
  waiters_t w = {.cond = cc_cond_new("c", plain)};
  cc_obj_t *l = plain;
  pthread_t th[NWAITERS];
  int woken;
  cc_obj_unref(plain);
  for (int i = 0; i < NWAITERS; i++) pthread_create(&th[i], NULL, waiter_main, &w);
  EVENTUALLY(waiting(w.cond) == NWAITERS);
  cc_lock_acquire(l, CC_FOREVER);
  assert_int_equal(cc_cond_notify(w.cond, 1, &woken), 0);
  assert_int_equal(woken, 1);
  assert_int_equal(cc_cond_waiting(w.cond), NWAITERS - 1);
  cc_lock_release(l);
  EVENTUALLY(atomic_load(&w.woken) == 1);
  cc_lock_acquire(l, CC_FOREVER);
  assert_int_equal(cc_cond_notify(w.cond, 2, &woken), 0);
  assert_int_equal(woken, 2);
  assert_int_equal(cc_cond_waiting(w.cond), NWAITERS - 3);
  cc_lock_release(l);
  EVENTUALLY(atomic_load(&w.woken) == 3);
  cc_lock_acquire(l, CC_FOREVER);
  assert_int_equal(cc_cond_notify(w.cond, -1, &woken), 0);
  assert_int_equal(woken, NWAITERS - 3);
  assert_int_equal(cc_cond_notify(w.cond, 5, &woken), 0);
  assert_int_equal(woken, 0);
  cc_lock_release(l);
  for (int i = 0; i < NWAITERS; i++) pthread_join(th[i], NULL);
  assert_int_equal(atomic_load(&w.woken), NWAITERS);
  assert_int_equal(atomic_load(&w.errors), 0);
  cc_obj_unref(w.cond);
}

/* ---- producer / consumer --------------------------------------------------- */

#define NPROD 3
#define NCONS 3
#define PER_PRODUCER 20000
#define CAPACITY 8

typedef struct buffer {
  cc_obj_t *lock, *not_empty, *not_full;
  int items, max_items;
  long produced, consumed;
  _Atomic int errors;
} buffer_t;

static void *producer(void *p) {
  buffer_t *b = p;
  for (int i = 0; i < PER_PRODUCER; i++) {
    cc_lock_acquire(b->lock, CC_FOREVER);
    while (b->items == CAPACITY)
      if (cc_cond_wait(b->not_full, CC_FOREVER) != 0) atomic_fetch_add(&b->errors, 1);
    b->items++;
    b->produced++;
    if (b->items > b->max_items) b->max_items = b->items;
    cc_cond_notify(b->not_empty, 1, NULL);
    cc_lock_release(b->lock);
  }
  return NULL;
}

static void *consumer(void *p) {
  buffer_t *b = p;
  for (int i = 0; i < PER_PRODUCER * NPROD / NCONS; i++) {
    cc_lock_acquire(b->lock, CC_FOREVER);
    /* Timed waits too, to exercise timeouts racing notifications. */
    while (b->items == 0) {
      int rc = cc_cond_wait(b->not_empty, (i & 1) ? cc_deadline_in(0.0005) : CC_FOREVER);
      if (rc != 0 && rc != CC_ETIMEOUT) atomic_fetch_add(&b->errors, 1);
    }
    b->items--;
    b->consumed++;
    cc_cond_notify(b->not_full, 1, NULL);
    cc_lock_release(b->lock);
  }
  return NULL;
}

static void test_producer_consumer(void **state) {
  (void)state;
  buffer_t b = {0};
  pthread_t th[NPROD + NCONS];
  b.lock = cc_lock_new("buffer", 0);
  b.not_empty = cc_cond_new("not_empty", b.lock);
  b.not_full = cc_cond_new("not_full", b.lock);
  for (int i = 0; i < NPROD; i++) pthread_create(&th[i], NULL, producer, &b);
  for (int i = 0; i < NCONS; i++) pthread_create(&th[NPROD + i], NULL, consumer, &b);
  for (int i = 0; i < NPROD + NCONS; i++) pthread_join(th[i], NULL);
  assert_int_equal(atomic_load(&b.errors), 0);
  assert_int_equal(b.produced, (long)NPROD * PER_PRODUCER);
  assert_int_equal(b.consumed, b.produced);
  assert_int_equal(b.items, 0);
  assert_true(b.max_items <= CAPACITY);
  assert_false(cc_lock_locked(b.lock));
  cc_lock_acquire(b.lock, CC_FOREVER);
  assert_int_equal(cc_cond_waiting(b.not_empty), 0);
  assert_int_equal(cc_cond_waiting(b.not_full), 0);
  cc_lock_release(b.lock);
  cc_obj_unref(b.not_empty);
  cc_obj_unref(b.not_full);
  cc_obj_unref(b.lock);
}


/* ---- a waiter process killed while parked ------------------------------------ */

typedef struct live {
  cc_obj_t *cond;
  int rc;
} live_t;

static void *live_waiter(void *p) {
  live_t *w = p;
  cc_lock_acquire(cc_cond_lock(w->cond), CC_FOREVER);
  w->rc = cc_cond_wait(w->cond, cc_deadline_in(5));
  cc_lock_release(cc_cond_lock(w->cond));
  return NULL;
}

/* Forks a process that parks on c until killed; returns once it waits. */
static pid_t fork_waiter(cc_obj_t *c, int before) {
  pid_t pid = fork();
  if (pid == 0) {
    cc_lock_acquire(cc_cond_lock(c), CC_FOREVER);
    cc_cond_wait(c, CC_FOREVER);
    _exit(0);
  }
  assert_true(pid > 0);
  EVENTUALLY(waiting(c) == before + 1);
  return pid;
}

/* Dead waiters queued before a live one: notify(1) skips them (whether
 * the dead process was reaped already or is still a zombie), and
 * notify_all does not count them. */
static void test_dead_waiter_skipped(void **state) {
  (void)state;
  cc_obj_t *c = cc_cond_new("c", NULL);
  live_t w = {c, -1};
  pthread_t th;
  siginfo_t info;
  int woken, status;
  pid_t reaped = fork_waiter(c, 0), zombie = fork_waiter(c, 1);
  pthread_create(&th, NULL, live_waiter, &w);
  EVENTUALLY(waiting(c) == 3);
  kill(reaped, SIGKILL);
  kill(zombie, SIGKILL);
  assert_int_equal(waitpid(reaped, &status, 0), reaped);
  assert_int_equal(waitid(P_PID, (id_t)zombie, &info, WEXITED | WNOWAIT), 0);
  cc_lock_acquire(cc_cond_lock(c), CC_FOREVER);
  assert_int_equal(cc_cond_notify(c, 1, &woken), 0);
  cc_lock_release(cc_cond_lock(c));
  pthread_join(th, NULL);
  assert_int_equal(w.rc, 0); /* the live waiter got it (it timed out before) */
  assert_int_equal(woken, 1);
  assert_int_equal(waiting(c), 0);
  /* notify_all counts live waiters only. */
  reaped = fork_waiter(c, 0);
  w.rc = -1;
  pthread_create(&th, NULL, live_waiter, &w);
  EVENTUALLY(waiting(c) == 2);
  kill(reaped, SIGKILL);
  assert_int_equal(waitpid(reaped, &status, 0), reaped);
  EVENTUALLY(waiting(c) == 1);
  cc_lock_acquire(cc_cond_lock(c), CC_FOREVER);
  assert_int_equal(cc_cond_notify(c, -1, &woken), 0);
  cc_lock_release(cc_cond_lock(c));
  pthread_join(th, NULL);
  assert_int_equal(w.rc, 0);
  assert_int_equal(woken, 1);
  assert_int_equal(waitpid(zombie, &status, 0), zombie);
  cc_obj_unref(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_needs_the_lock),
      cmocka_unit_test(test_timeout_keeps_rlock_depth),
      cmocka_unit_test(test_notify_is_exact),
      cmocka_unit_test(test_producer_consumer),
      cmocka_unit_test(test_dead_waiter_skipped),
  };
  cc_self();
  return cmocka_run_group_tests(tests, NULL, NULL);
}
