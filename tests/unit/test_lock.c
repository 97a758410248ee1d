/* test_lock.c - lock and rlock: exclusion under many threads, timeouts,
 * ownership, deadlock detection with real threads, abandoned locks, and the
 * takeover of a lock whose owner process died. Workers record results; only
 * the main thread asserts. */
#include <pthread.h>
#include <sched.h>
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

#include "actor_dead.h"
#include "barrier.h"
#include "futex.h"
#include "lock.h"
#include "thread.h"

#define NTHREADS 8
#define ITERS 50000

/* ---- helpers ------------------------------------------------------------ */

/* Captures what the code under test writes to stderr. */
static int saved_stderr = -1;
static FILE *capture;

static void capture_start(void) {
  fflush(stderr);
  capture = tmpfile();
  saved_stderr = dup(2);
  dup2(fileno(capture), 2);
}

static char *capture_end(void) {
  static char buf[4096];
  size_t n;
  fflush(stderr);
  dup2(saved_stderr, 2);
  close(saved_stderr);
  rewind(capture);
  n = fread(buf, 1, sizeof buf - 1, capture);
  buf[n] = '\0';
  fclose(capture);
  return buf;
}

/* Gives the calling thread a named actor (as conc threads have). */
static cc_actor_t *be(const char *name) {
  cc_actor_t *a = cc_actor_new(name, cc_next_id(), CC_ACTOR_THREAD);
  cc_set_self(a);
  return a;
}

/* Waits (bounded) until `cond` holds; the test fails if it never does. */
#define EVENTUALLY(cond)                                                            \
  do {                                                                              \
    int64_t until_ = cc_now_ns() + 10000000000LL;                                   \
    while (!(cond) && cc_now_ns() < until_) sched_yield();                          \
    assert_true(cond);                                                              \
  } while (0)

/* ---- exclusion ---------------------------------------------------------- */

typedef struct hammer {
  cc_obj_t *lock;
  long counter;       /* plain: only the lock protects it */
  _Atomic int inside; /* must never exceed 1 */
  _Atomic int violations;
  _Atomic int errors;
  _Atomic long timeouts;
  int timed;
} hammer_t;

static void *hammer_main(void *p) {
  hammer_t *h = p;
  for (int i = 0; i < ITERS; i++) {
    int rc = cc_lock_acquire(h->lock, h->timed ? cc_deadline_in(0.0001 * (i % 3)) : CC_FOREVER);
    if (rc == CC_ETIMEOUT) {
      atomic_fetch_add(&h->timeouts, 1);
      i--; /* retry */
      continue;
    }
    if (rc != 0) {
      atomic_fetch_add(&h->errors, 1);
      break;
    }
    if (atomic_fetch_add(&h->inside, 1) != 0) atomic_fetch_add(&h->violations, 1);
    h->counter++;
    atomic_fetch_sub(&h->inside, 1);
    if (cc_lock_release(h->lock) != 0) atomic_fetch_add(&h->errors, 1);
  }
  return NULL;
}

static void run_hammer(int recursive, int timed) {
  hammer_t h = {0};
  pthread_t th[NTHREADS];
  h.lock = cc_lock_new("hammer", recursive);
  h.timed = timed;
  for (int i = 0; i < NTHREADS; i++) pthread_create(&th[i], NULL, hammer_main, &h);
  for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
  assert_int_equal(atomic_load(&h.errors), 0);
  assert_int_equal(atomic_load(&h.violations), 0);
  assert_int_equal(h.counter, (long)NTHREADS * ITERS);
  assert_false(cc_lock_locked(h.lock));
  assert_int_equal(atomic_load(&((cc_lock_t *)h.lock)->word), 0);
  cc_obj_unref(h.lock);
}

static void test_hammer_lock(void **state) {
  (void)state;
  run_hammer(0, 0);
}

static void test_hammer_rlock_timed(void **state) {
  (void)state;
  run_hammer(1, 1);
}

/* ---- ownership, timeouts, recursion ------------------------------------- */

typedef struct probe {
  cc_obj_t *lock;
  int try_rc, timed_rc, release_rc, held_by_me;
  int64_t waited_ns;
} probe_t;

/* Another thread's view of a lock that main holds. */
static void *probe_main(void *p) {
  probe_t *pr = p;
  int64_t t0 = cc_now_ns();
  pr->try_rc = cc_lock_acquire(pr->lock, CC_NOW);
  pr->timed_rc = cc_lock_acquire(pr->lock, cc_deadline_in(0.05));
  pr->waited_ns = cc_now_ns() - t0;
  pr->release_rc = cc_lock_release(pr->lock);
  pr->held_by_me = cc_lock_held_by_me(pr->lock);
  return NULL;
}

static void test_ownership_and_timeouts(void **state) {
  (void)state;
  cc_obj_t *l = cc_lock_new("owned", 0);
  probe_t pr = {.lock = l};
  pthread_t th;
  assert_int_equal(cc_lock_release(l), CC_ENOTOWNER);
  assert_int_equal(cc_lock_acquire(l, CC_NOW), 0);
  assert_true(cc_lock_held_by_me(l));
  assert_ptr_equal(cc_lock_owner(l), cc_self());
  pthread_create(&th, NULL, probe_main, &pr);
  pthread_join(th, NULL);
  assert_int_equal(pr.try_rc, CC_ETIMEOUT);
  assert_int_equal(pr.timed_rc, CC_ETIMEOUT);
  assert_true(pr.waited_ns >= 45000000);
  assert_int_equal(pr.release_rc, CC_ENOTOWNER);
  assert_false(pr.held_by_me);
  /* A timed self-acquire of a plain lock just times out (as Python). */
  assert_int_equal(cc_lock_acquire(l, cc_deadline_in(0.01)), CC_ETIMEOUT);
  assert_int_equal(cc_lock_release(l), 0);
  assert_null(cc_lock_owner(l));
  assert_int_equal(atomic_load(&cc_self()->nheld), 0);
  cc_obj_unref(l);
}

static void test_rlock_depth(void **state) {
  (void)state;
  cc_obj_t *r = cc_lock_new("r", 1);
  cc_actor_t *me = cc_self();
  uint32_t depth = 0;
  assert_true(cc_lock_is_recursive(r));
  for (int i = 0; i < 5; i++) assert_int_equal(cc_lock_acquire(r, CC_FOREVER), 0);
  assert_int_equal(atomic_load(&me->nheld), 1); /* counted once */
  assert_int_equal(cc_lock_release_all(r, &depth), 0);
  assert_int_equal(depth, 5);
  assert_false(cc_lock_locked(r));
  assert_int_equal(atomic_load(&me->nheld), 0);
  assert_int_equal(cc_lock_restore(r, depth), 0);
  for (int i = 0; i < 5; i++) assert_int_equal(cc_lock_release(r), 0);
  assert_int_equal(cc_lock_release(r), CC_ENOTOWNER);
  assert_int_equal(cc_lock_release_all(r, &depth), CC_ENOTOWNER);
  cc_obj_unref(r);
}

/* A lock that every Lua state dropped while it was held stays valid until
 * its holder releases it (the holder's hold record points at it), though
 * the holder keeps no reference: it lingers, marked, and the release frees
 * it. Also through the abandon hook (a thread ending while holding it). */
static void test_dropped_while_held_lingers(void **state) {
  (void)state;
  cc_obj_t *l = cc_lock_new("lost", 0), *r = cc_lock_new("lost-r", 1);
  assert_int_equal(cc_lock_acquire(l, CC_FOREVER), 0);
  cc_obj_unref(l); /* the creator's reference, as a __gc would */
  assert_int_equal(atomic_load(&l->refs), 0);
  assert_int_equal(l->magic, CC_OBJ_MAGIC); /* not freed */
  assert_true(atomic_load(&((cc_lock_t *)l)->word) & CC_LOCK_ORPHAN);
  assert_true(cc_lock_held_by_me(l));
  assert_int_equal(atomic_load(&cc_self()->nheld), 1);
  assert_int_equal(cc_lock_release(l), 0); /* frees it */
  assert_int_equal(l->magic, 0);
  assert_int_equal(atomic_load(&cc_self()->nheld), 0);

  assert_int_equal(cc_lock_acquire(r, CC_FOREVER), 0);
  assert_int_equal(cc_lock_acquire(r, CC_FOREVER), 0);
  cc_obj_unref(r);
  assert_int_equal(r->magic, CC_OBJ_MAGIC);
  assert_int_equal(cc_lock_release(r), 0); /* one level down: still held */
  assert_int_equal(r->magic, CC_OBJ_MAGIC);
  r->type->abandon(r, cc_self()); /* the holder ends */
  assert_int_equal(r->magic, 0);
  assert_int_equal(atomic_load(&cc_self()->nheld), 0);

  /* not held when the last reference goes: freed at once */
  l = cc_lock_new("plain", 0);
  assert_int_equal(cc_lock_acquire(l, CC_FOREVER), 0);
  assert_int_equal(cc_lock_release(l), 0);
  cc_obj_unref(l);
  assert_int_equal(l->magic, 0);
}

/* An actor that dies in the few instructions between winning a lock's word
 * and recording the hold, or between dropping the hold record and letting
 * the word go, still gets the lock released by the reaper's sweep of its
 * holds (cc_hold_intent: the slot one past nheld names the lock), so the
 * lock never stays owned by a reused actor slot. A stale name there (a lock
 * the actor released long ago) is left alone. */
static void test_killed_between_word_and_hold(void **state) {
  (void)state;
  cc_actor_t *me = cc_self();
  cc_obj_t *l = cc_lock_new("window", 0), *other = cc_lock_new("other", 0);
  cc_actor_t *victim = be("victim");
  char *err;

  /* won the word, died before cc_hold */
  assert_int_equal(cc_lock_acquire(l, CC_FOREVER), 0);
  atomic_store(&victim->nheld, 0); /* as if cc_hold never ran */
  cc_set_self(me);
  assert_ptr_equal(cc_lock_owner(l), victim);
  capture_start();
  cc_actor_release_holds(victim, "died");
  err = capture_end();
  assert_non_null(strstr(err, "lock 'window'"));
  assert_null(cc_lock_owner(l));

  /* dropped the hold record, died before the exchange */
  cc_set_self(victim);
  assert_int_equal(cc_lock_acquire(l, CC_FOREVER), 0);
  cc_unhold(l);
  cc_set_self(me);
  assert_ptr_equal(cc_lock_owner(l), victim);
  capture_start();
  cc_actor_release_holds(victim, "died");
  (void)capture_end();
  assert_null(cc_lock_owner(l));

  /* a stale name: released normally, then taken by someone else */
  cc_set_self(victim);
  assert_int_equal(cc_lock_acquire(other, CC_FOREVER), 0);
  assert_int_equal(cc_lock_release(other), 0);
  cc_set_self(me);
  assert_int_equal(cc_lock_acquire(other, CC_FOREVER), 0);
  capture_start();
  cc_actor_release_holds(victim, "died");
  err = capture_end();
  assert_null(strstr(err, "'other'"));
  assert_ptr_equal(cc_lock_owner(other), me); /* still ours */
  assert_int_equal(cc_lock_release(other), 0);

  /* died holding a lock whose every reference went: released and freed */
  cc_set_self(victim);
  assert_int_equal(cc_lock_acquire(l, CC_FOREVER), 0);
  cc_set_self(me);
  cc_obj_unref(l); /* lingers, held by the victim */
  assert_int_equal(l->magic, CC_OBJ_MAGIC);
  capture_start();
  cc_actor_release_holds(victim, "died");
  err = capture_end();
  assert_non_null(strstr(err, "lock 'window'"));
  assert_int_equal(l->magic, 0);

  cc_actor_free(victim);
  cc_obj_unref(other);
}

static void test_self_deadlock(void **state) {
  (void)state;
  cc_obj_t *l = cc_lock_new("knife", 0);
  assert_int_equal(cc_lock_acquire(l, CC_FOREVER), 0);
  assert_int_equal(cc_lock_acquire(l, CC_FOREVER), CC_EDEADLOCK);
  assert_string_equal(cc_deadlock_message(),
                      "deadlock: thread 'main' waits for lock 'knife' held by thread "
                      "'main' (itself)");
  assert_null(atomic_load(&cc_self()->waiting_on));
  assert_int_equal(cc_lock_release(l), 0);
  cc_obj_unref(l);
}

/* ---- deadlock cycles with real threads ------------------------------------ */

typedef struct cook {
  const char *name;
  cc_obj_t *first, *second;
  cc_obj_t *ready; /* barrier: every cook holds its first lock */
  int rc;
  char msg[512];
} cook_t;

static void *cook_main(void *p) {
  cook_t *c = p;
  uint32_t idx;
  cc_actor_t *a = be(c->name);
  cc_lock_acquire(c->first, CC_FOREVER);
  cc_barrier_wait(c->ready, CC_FOREVER, &idx);
  c->rc = cc_lock_acquire(c->second, CC_FOREVER);
  if (c->rc == CC_EDEADLOCK) snprintf(c->msg, sizeof c->msg, "%s", cc_deadlock_message());
  if (c->rc == 0) cc_lock_release(c->second);
  cc_lock_release(c->first);
  cc_set_self(NULL);
  cc_actor_free(a);
  return NULL;
}

static void run_cycle(int n, const char *const *names, const char *const *locks) {
  cc_obj_t *l[4];
  cook_t c[4];
  pthread_t th[4];
  int deadlocks = 0, ok = 0;
  cc_obj_t *ready = cc_barrier_new("ready", (uint32_t)n);
  for (int i = 0; i < n; i++) l[i] = cc_lock_new(locks[i], 0);
  for (int i = 0; i < n; i++) {
    c[i] = (cook_t){.name = names[i], .first = l[i], .second = l[(i + 1) % n], .ready = ready};
    pthread_create(&th[i], NULL, cook_main, &c[i]);
  }
  for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < n; i++) {
    if (c[i].rc == CC_EDEADLOCK) {
      deadlocks++;
      /* The message starts at the detecting thread and walks the cycle. */
      char expect[512];
      size_t len = (size_t)snprintf(expect, sizeof expect, "deadlock: thread '%s'", names[i]);
      for (int k = 0; k < n; k++) {
        int j = (i + k) % n;
        len += (size_t)snprintf(expect + len, sizeof expect - len,
                                "%s lock '%s' held by thread '%s'",
                                k == 0 ? " waits for" : ", which waits for",
                                locks[(j + 1) % n], names[(j + 1) % n]);
      }
      assert_string_equal(c[i].msg, expect);
    } else if (c[i].rc == 0) {
      ok++;
    }
  }
  assert_int_equal(deadlocks, 1);
  assert_int_equal(ok, n - 1);
  for (int i = 0; i < n; i++) {
    assert_false(cc_lock_locked(l[i]));
    cc_obj_unref(l[i]);
  }
  cc_obj_unref(ready);
}

static void test_two_thread_cycle(void **state) {
  (void)state;
  static const char *const names[] = {"cook1", "cook2"};
  static const char *const locks[] = {"knife", "pot"};
  for (int round = 0; round < 20; round++) run_cycle(2, names, locks);
}

static void test_three_thread_cycle(void **state) {
  (void)state;
  static const char *const names[] = {"a", "b", "c"};
  static const char *const locks[] = {"L1", "L2", "L3"};
  for (int round = 0; round < 20; round++) run_cycle(3, names, locks);
}

/* ---- a thread that ends holding a lock ------------------------------------ */

static cc_obj_t *abandoned;

static void hold_and_end(void *ctx, cc_thread_t *t) {
  cc_lock_t *l = (cc_lock_t *)abandoned;
  (void)ctx;
  cc_lock_acquire(abandoned, CC_FOREVER);
  cc_lock_acquire(abandoned, CC_FOREVER); /* an rlock: two levels */
  /* End only once main is parked on the lock. */
  while (!(atomic_load(&l->word) & CC_LOCK_WAITERS)) sched_yield();
  cc_thread_finish(t, CC_T_OK, NULL, 0);
}

static void test_abandoned_lock(void **state) {
  (void)state;
  static const cc_thread_hooks_t hooks = {.run = hold_and_end};
  cc_thread_t *t;
  char *err;
  cc_thread_set_hooks(&hooks);
  abandoned = cc_lock_new("ladle", 1);
  t = cc_thread_new("cook3", 0);
  capture_start();
  assert_int_equal(cc_thread_start(t), 0);
  EVENTUALLY(cc_lock_locked(abandoned));
  assert_int_equal(cc_lock_acquire(abandoned, cc_deadline_in(10)), 0);
  assert_int_equal(cc_thread_join(t, cc_deadline_in(10)), 0);
  err = capture_end();
  assert_non_null(strstr(err, "warning: thread 'cook3' ended holding rlock 'ladle'; released it"));
  assert_true(cc_lock_held_by_me(abandoned));
  assert_int_equal(cc_lock_release(abandoned), 0);
  assert_false(cc_lock_locked(abandoned));
  cc_obj_unref(&t->h);
  cc_obj_unref(abandoned);
}

/* ---- a process that dies holding a lock ----------------------------------- */

static void run_dead_owner(int reap_first) {
  cc_obj_t *l = cc_lock_new("till", 0);
  pid_t pid = fork();
  char *err, expect[160];
  int status;
  if (pid == 0) {
    cc_lock_acquire(l, CC_FOREVER);
    _exit(cc_lock_held_by_me(l) ? 0 : 3);
  }
  assert_true(pid > 0);
  if (reap_first) {
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(WEXITSTATUS(status), 0);
  } else {
    EVENTUALLY(cc_lock_locked(l)); /* the child holds it, then becomes a zombie */
  }
  capture_start();
  assert_int_equal(cc_lock_acquire(l, cc_deadline_in(10)), 0);
  err = capture_end();
  snprintf(expect, sizeof expect, "warning: lock 'till' was held by process %d, which died;",
           (int)pid);
  assert_non_null(strstr(err, expect));
  assert_int_equal(atomic_load(&((cc_lock_t *)l)->takeovers), 1);
  assert_true(cc_lock_held_by_me(l));
  assert_int_equal(cc_lock_release(l), 0);
  if (!reap_first) assert_int_equal(waitpid(pid, &status, 0), pid);
  cc_obj_unref(l);
}

static void test_dead_process_owner(void **state) {
  (void)state;
  run_dead_owner(1);
}

static void test_zombie_process_owner(void **state) {
  (void)state;
  run_dead_owner(0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ownership_and_timeouts),
      cmocka_unit_test(test_rlock_depth),
      cmocka_unit_test(test_self_deadlock),
      cmocka_unit_test(test_dropped_while_held_lingers),
      cmocka_unit_test(test_killed_between_word_and_hold),
      cmocka_unit_test(test_hammer_lock),
      cmocka_unit_test(test_hammer_rlock_timed),
      cmocka_unit_test(test_two_thread_cycle),
      cmocka_unit_test(test_three_thread_cycle),
      cmocka_unit_test(test_abandoned_lock),
      cmocka_unit_test(test_dead_process_owner),
      cmocka_unit_test(test_zombie_process_owner),
  };
  cc_self(); /* the main thread is actor 'main' */
  return cmocka_run_group_tests(tests, NULL, NULL);
}
