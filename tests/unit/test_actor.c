/* test_actor.c - wait/hold records and wait-for graph cycle detection,
 * with a fake lock type whose owner is set by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "actor.h"

typedef struct fake_lock {
  cc_obj_t h;
  cc_actor_t *owner;
} fake_lock_t;

static cc_actor_t *fake_owner(cc_obj_t *o) {
  return ((fake_lock_t *)o)->owner;
}
static const cc_type_t fake_type = {.name = "lock", .owner = fake_owner};

static fake_lock_t *mk(const char *name, cc_actor_t *owner) {
  fake_lock_t *l = cc_obj_new(&fake_type, sizeof *l, name);
  l->owner = owner;
  return l;
}

/* Makes actor `a` look as if it were blocked, untimed, on lock `o`. */
static void park(cc_actor_t *a, cc_obj_t *o) {
  atomic_store(&a->waiting_on, o);
  atomic_store(&a->wait_kind, CC_WAIT_LOCK);
  atomic_store(&a->wait_timed, 0);
}

static void test_self_deadlock(void **state) {
  (void)state;
  cc_actor_t *me = cc_self();
  fake_lock_t *l = mk("knife", me);
  assert_int_equal(cc_wait_begin(&l->h, CC_WAIT_LOCK, CC_FOREVER), CC_EDEADLOCK);
  assert_string_equal(cc_deadlock_message(),
                      "deadlock: thread 'main' waits for lock 'knife' held by thread "
                      "'main' (itself)");
  /* Nothing was recorded: the actor is not left waiting. */
  assert_null(atomic_load(&me->waiting_on));
  cc_obj_unref(&l->h);
}

static void test_two_cycle(void **state) {
  (void)state;
  cc_actor_t *me = cc_self();
  cc_actor_t *cook2 = cc_actor_new("cook2", 1002, CC_ACTOR_THREAD);
  fake_lock_t *knife = mk("knife", me), *pot = mk("pot", cook2);
  park(cook2, &knife->h);
  assert_int_equal(cc_wait_begin(&pot->h, CC_WAIT_LOCK, CC_FOREVER), CC_EDEADLOCK);
  assert_string_equal(cc_deadlock_message(),
                      "deadlock: thread 'main' waits for lock 'pot' held by thread "
                      "'cook2', which waits for lock 'knife' held by thread 'main'");
  /* A timed wait is never an error, and a timed waiter is not an edge. */
  assert_int_equal(cc_wait_begin(&pot->h, CC_WAIT_LOCK, cc_deadline_in(1)), 0);
  cc_wait_end(&pot->h, CC_ETIMEOUT);
  atomic_store(&cook2->wait_timed, 1);
  assert_int_equal(cc_wait_begin(&pot->h, CC_WAIT_LOCK, CC_FOREVER), 0);
  cc_wait_end(&pot->h, 0);
  cc_actor_free(cook2);
  cc_obj_unref(&knife->h);
  cc_obj_unref(&pot->h);
}

static void test_three_cycle_and_process(void **state) {
  (void)state;
  cc_actor_t *me = cc_self();
  cc_actor_t *b = cc_actor_new("b", 2, CC_ACTOR_THREAD);
  cc_actor_t *c = cc_actor_new("c", 3, CC_ACTOR_PROCESS);
  fake_lock_t *l1 = mk("L1", b), *l2 = mk("L2", c), *l3 = mk("L3", me);
  park(b, &l2->h);
  park(c, &l3->h);
  assert_int_equal(cc_wait_begin(&l1->h, CC_WAIT_LOCK, CC_FOREVER), CC_EDEADLOCK);
  char want[256];
  snprintf(want, sizeof want,
           "deadlock: thread 'main' waits for lock 'L1' held by thread 'b', which waits "
           "for lock 'L2' held by process 'c' (pid %d), which waits for lock 'L3' held "
           "by thread 'main'",
           (int)c->pid);
  assert_string_equal(cc_deadlock_message(), want);
  /* Break the chain: c no longer waits. */
  atomic_store(&c->wait_kind, 0);
  assert_int_equal(cc_wait_begin(&l1->h, CC_WAIT_LOCK, CC_FOREVER), 0);
  assert_ptr_equal(atomic_load(&me->waiting_on), &l1->h);
  cc_wait_end(&l1->h, 0);
  assert_null(atomic_load(&me->waiting_on));
  cc_actor_free(b);
  cc_actor_free(c);
  cc_obj_unref(&l1->h);
  cc_obj_unref(&l2->h);
  cc_obj_unref(&l3->h);
}

static void test_non_lock_waits_are_not_edges(void **state) {
  (void)state;
  cc_actor_t *me = cc_self();
  cc_actor_t *b = cc_actor_new("b", 2, CC_ACTOR_THREAD);
  fake_lock_t *l1 = mk("L1", b), *l2 = mk("L2", me);
  atomic_store(&b->waiting_on, &l2->h);
  atomic_store(&b->wait_kind, CC_WAIT_QUEUE);
  assert_int_equal(cc_wait_begin(&l1->h, CC_WAIT_LOCK, CC_FOREVER), 0);
  cc_wait_end(&l1->h, 0);
  cc_actor_free(b);
  cc_obj_unref(&l1->h);
  cc_obj_unref(&l2->h);
}

static void test_holds_tracked_in_order(void **state) {
  (void)state;
  cc_actor_t *me = cc_self();
  fake_lock_t *a = mk("a", NULL), *b = mk("b", NULL), *c = mk("c", NULL);
  int32_t base = atomic_load(&me->nheld);
  cc_hold(&a->h);
  cc_hold(&b->h);
  cc_hold(&c->h);
  assert_int_equal(atomic_load(&me->nheld), base + 3);
  cc_unhold(&b->h);
  assert_int_equal(atomic_load(&me->nheld), base + 2);
  assert_ptr_equal(atomic_load(&me->held[base]), &a->h);
  assert_ptr_equal(atomic_load(&me->held[base + 1]), &c->h);
  cc_unhold(&c->h);
  cc_unhold(&a->h);
  assert_int_equal(atomic_load(&me->nheld), base);
  cc_obj_unref(&a->h);
  cc_obj_unref(&b->h);
  cc_obj_unref(&c->h);
}

static int events;
static void observer(cc_actor_t *a, cc_obj_t *o, int ev, int result) {
  (void)a;
  (void)o;
  (void)result;
  events |= 1 << ev;
}

static void test_observer_sees_every_event(void **state) {
  (void)state;
  fake_lock_t *l = mk("o", NULL);
  events = 0;
  cc_observer = observer;
  cc_wait_begin(&l->h, CC_WAIT_EVENT, CC_FOREVER);
  cc_wait_end(&l->h, 0);
  cc_hold(&l->h);
  cc_unhold(&l->h);
  cc_observer = NULL;
  assert_int_equal(events, 0xF);
  cc_obj_unref(&l->h);
}

static void test_actor_slots_recycled(void **state) {
  (void)state;
  cc_actor_t *a = cc_actor_new("x", 1, CC_ACTOR_THREAD);
  uint32_t idx = a->index;
  assert_ptr_equal(cc_actor_at(idx), a);
  cc_actor_free(a);
  cc_actor_t *b = cc_actor_new("y", 2, CC_ACTOR_THREAD);
  assert_int_equal(b->index, idx);
  assert_string_equal(b->name, "y");
  cc_actor_free(b);
  assert_null(cc_actor_at(cc_actor_count()));
}


/* The table grows past its first chunks (it was a fixed 4096 slots): every
 * actor keeps its address and index while more chunks arrive, and a forked
 * child sees the same table, grows it, and the parent sees that growth. */
static void test_table_grows_and_is_shared_across_fork(void **state) {
  (void)state;
  enum { N = 5000 };
  static cc_actor_t *as[N];
  uint32_t before = cc_actor_count();
  for (int i = 0; i < N; i++) {
    char name[16];
    snprintf(name, sizeof name, "a%d", i);
    as[i] = cc_actor_new(name, i, CC_ACTOR_THREAD);
    assert_non_null(as[i]);
  }
  assert_true(cc_actor_count() >= before + N - CC_ACTORS_PER_CHUNK);
  assert_true(cc_actor_count() > 4096);
  for (int i = 0; i < N; i++) {
    char name[16];
    snprintf(name, sizeof name, "a%d", i);
    assert_ptr_equal(cc_actor_at(as[i]->index), as[i]);
    assert_string_equal(as[i]->name, name);
    for (int j = i + 1; j < N && j < i + 3; j++) assert_int_not_equal(as[i]->index, as[j]->index);
  }
  assert_null(cc_actor_at(cc_actor_count()));

  uint32_t count = cc_actor_count();
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int bad = 0;
    for (int i = 0; i < N; i++) bad |= cc_actor_at(as[i]->index) != as[i];
    /* Grow the table from the child: one more chunk than there is room. */
    for (uint32_t i = 0; i < CC_ACTORS_PER_CHUNK + 1; i++)
      bad |= cc_actor_new("child", -1, CC_ACTOR_THREAD) == NULL;
    _exit(bad ? 1 : 0);
  }
  int st;
  waitpid(pid, &st, 0);
  assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  assert_true(cc_actor_count() > count); /* the child's chunk, in the shared table */
  uint32_t seen = 0;
  for (uint32_t i = 0; i < cc_actor_count(); i++) {
    cc_actor_t *a = cc_actor_at(i);
    assert_non_null(a);
    assert_int_equal(a->index, i);
    if (atomic_load(&a->state) == CC_ACTOR_RUNNING && strcmp(a->name, "child") == 0) {
      seen++;
      cc_actor_free(a);
    }
  }
  assert_int_equal(seen, CC_ACTORS_PER_CHUNK + 1);
  for (int i = 0; i < N; i++) cc_actor_free(as[i]);
}

/* A full arena makes cc_actor_new fail cleanly with CC_ENOMEM, and the
 * table grows again once there is room. */
static void test_no_room_for_a_chunk(void **state) {
  (void)state;
  enum { N = 40000 };
  static cc_actor_t *as[N];
  int n = 0, left = -1;
  /* Take free slots until one call makes a chunk; then take the rest of
   * that chunk: the free list is empty. */
  while (left != 0) {
    uint32_t count = cc_actor_count();
    assert_true(n < N);
    as[n] = cc_actor_new("f", n, CC_ACTOR_THREAD);
    assert_non_null(as[n]);
    n++;
    if (left > 0) left--;
    if (left < 0 && cc_actor_count() != count) left = (int)CC_ACTORS_PER_CHUNK - 1;
  }
  cc_arena_fail_in(1);
  cc_actor_t *x = cc_actor_new("g", 0, CC_ACTOR_THREAD);
  cc_arena_fail_in(0);
  assert_null(x);
  assert_int_equal(cc_actor_error(), CC_ENOMEM);
  x = cc_actor_new("h", 0, CC_ACTOR_THREAD);
  assert_non_null(x);
  cc_actor_free(x);
  for (int i = 0; i < n; i++) cc_actor_free(as[i]);
}

/* In a child: applies the limit, starts blocked threads until the OS
 * refuses one, then checks that cc_os_limit_hint names `expect`. Exit 0
 * when it does, 1 when it does not, 2 when no thread was refused, 3 when
 * the setup is impossible here. */
static int block_fd[2];
static void *blocked(void *arg) {
  char c;
  (void)arg;
  while (read(block_fd[0], &c, 1) < 0) {
  }
  return NULL;
}

static int refused_names(int resource, rlim_t value, int as_nobody, const char *expect) {
  char hint[256];
  struct rlimit rl = {value, value};
  pthread_t th;
  if (pipe(block_fd) != 0) return 3;
  if (as_nobody && geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) return 3;
  if (setrlimit(resource, &rl) != 0) return 3;
  for (int i = 0; i < 100000; i++) {
    if (pthread_create(&th, NULL, blocked, NULL) != 0) {
      cc_os_limit_hint(hint, sizeof hint);
      fprintf(stderr, "hint: %s\n", hint);
      return strstr(hint, expect) ? 0 : 1;
    }
  }
  return 2;
}

static int in_child(int resource, rlim_t value, int as_nobody, const char *expect) {
  int st;
  pid_t pid = fork();
  if (pid == 0) _exit(refused_names(resource, value, as_nobody, expect));
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 4;
}

/* The error for a refused thread names the limit hit. */
static void test_os_limit_hint(void **state) {
  (void)state;
  int rc = in_child(RLIMIT_NPROC, 20, 1, "RLIMIT_NPROC");
  if (rc != 3) assert_int_equal(rc, 0);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  /* Room for this program and a few 8 MiB thread stacks. */
  {
    long long vm = 0;
    char line[128];
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
      if (strncmp(line, "VmSize:", 7) == 0) vm = atoll(line + 7);
    if (f) fclose(f);
    assert_int_equal(in_child(RLIMIT_AS, (rlim_t)(vm + 64 * 1024) * 1024, 0, "RLIMIT_AS"), 0);
  }
#endif
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_self_deadlock),
      cmocka_unit_test(test_two_cycle),
      cmocka_unit_test(test_three_cycle_and_process),
      cmocka_unit_test(test_non_lock_waits_are_not_edges),
      cmocka_unit_test(test_holds_tracked_in_order),
      cmocka_unit_test(test_observer_sees_every_event),
      cmocka_unit_test(test_actor_slots_recycled),
      cmocka_unit_test(test_table_grows_and_is_shared_across_fork),
      cmocka_unit_test(test_no_room_for_a_chunk),
      cmocka_unit_test(test_os_limit_hint),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
