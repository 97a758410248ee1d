/* test_arena.c - the shared allocator and object reference counts. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "arena.h"

static void test_alloc_sizes_and_alignment(void **state) {
  (void)state;
  assert_int_equal(cc_arena_init(), 0);
  for (size_t n = 0; n < 70000; n = n * 2 + 1) {
    char *p = cc_alloc(n);
    assert_non_null(p);
    assert_true(((uintptr_t)p & 15) == 0);
    assert_true(cc_alloc_size(p) >= n);
    assert_true(cc_in_arena(p));
    memset(p, 0xAB, n);
    cc_free(p);
  }
  assert_false(cc_in_arena(&state));
}

static void test_free_reuses_blocks(void **state) {
  (void)state;
  cc_arena_stats_t a, b;
  void *p = cc_alloc(100);
  cc_free(p);
  cc_arena_stats(&a);
  void *q = cc_alloc(100);
  cc_arena_stats(&b);
  assert_ptr_equal(p, q); /* same class, LIFO free list */
  assert_int_equal(a.used, b.used);
  assert_int_equal(b.nblocks, a.nblocks + 1);
  cc_free(q);
}

static void test_calloc_zeroes(void **state) {
  (void)state;
  char *p = cc_alloc(256);
  memset(p, 0xFF, 256);
  cc_free(p);
  char *q = cc_calloc(256);
  for (int i = 0; i < 256; i++) assert_int_equal(q[i], 0);
  cc_free(q);
}

static void test_huge_request_fails_cleanly(void **state) {
  (void)state;
  assert_null(cc_alloc((size_t)1 << 45));
  assert_null(cc_alloc(SIZE_MAX - 8));
}

static int destroyed;
static void count_destroy(cc_obj_t *o) {
  (void)o;
  destroyed++;
}
static const cc_type_t counted = {.name = "counted", .destroy = count_destroy};

static void test_object_refcount(void **state) {
  (void)state;
  destroyed = 0;
  cc_obj_t *o = cc_obj_new(&counted, sizeof(cc_obj_t) + 32, "thing");
  assert_non_null(o);
  assert_string_equal(o->name, "thing");
  assert_true(cc_obj_valid(o));
  assert_false(cc_obj_valid((char *)o + 16));
  int64_t id = o->id;
  cc_obj_t *o2 = cc_obj_new(&counted, sizeof(cc_obj_t), NULL);
  assert_true(o2->id > id);
  cc_obj_ref(o);
  cc_obj_unref(o);
  assert_int_equal(destroyed, 0);
  cc_obj_unref(o);
  assert_int_equal(destroyed, 1);
  cc_obj_unref(o2);
  assert_int_equal(destroyed, 2);
}

static void test_long_name_truncated(void **state) {
  (void)state;
  char name[200];
  memset(name, 'x', sizeof name - 1);
  name[199] = 0;
  cc_obj_t *o = cc_obj_new(&counted, sizeof(cc_obj_t), name);
  assert_int_equal(strlen(o->name), CC_NAME_MAX - 1);
  cc_obj_unref(o);
}

#define NTHREADS 8
#define ROUNDS 20000

static void *hammer(void *arg) {
  uintptr_t seed = (uintptr_t)arg, bad = 0;
  void *keep[16] = {0};
  for (int i = 0; i < ROUNDS; i++) {
    seed = seed * 6364136223846793005u + 1442695040888963407u;
    int slot = (int)((seed >> 33) % 16);
    size_t n = (size_t)((seed >> 40) % 3000);
    if (keep[slot]) {
      unsigned char *p = keep[slot];
      size_t len = cc_alloc_size(p) < 8 ? cc_alloc_size(p) : 8;
      for (size_t j = 0; j < len; j++)
        if (p[j] != (unsigned char)(slot + 1)) bad++;
      cc_free(p);
    }
    keep[slot] = cc_alloc(n + 8);
    if (!keep[slot]) bad++;
    else memset(keep[slot], slot + 1, n + 8);
  }
  for (int s = 0; s < 16; s++) cc_free(keep[s]);
  return (void *)bad;
}

static void test_threads_hammer_allocator(void **state) {
  (void)state;
  pthread_t th[NTHREADS];
  cc_arena_stats_t before, after;
  cc_arena_stats(&before);
  for (uintptr_t i = 0; i < NTHREADS; i++)
    assert_int_equal(pthread_create(&th[i], NULL, hammer, (void *)(i + 1)), 0);
  for (int i = 0; i < NTHREADS; i++) {
    void *bad;
    pthread_join(th[i], &bad);
    assert_int_equal((uintptr_t)bad, 0);
  }
  cc_arena_stats(&after);
  assert_int_equal(after.nblocks, before.nblocks);
  assert_int_equal(after.live, before.live);
}

static void test_shared_across_fork(void **state) {
  (void)state;
  int *shared = cc_calloc(sizeof(int) * 4);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* The child allocates and writes; the parent must see both. */
    int *mine = cc_alloc(sizeof(int));
    *mine = 42;
    shared[0] = 7;
    shared[1] = (int)((char *)mine - (char *)shared);
    _exit(0);
  }
  int st;
  waitpid(pid, &st, 0);
  assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  assert_int_equal(shared[0], 7);
  int *child_block = (int *)((char *)shared + shared[1]);
  assert_int_equal(*child_block, 42);
  cc_free(child_block); /* a block from the child is freed by the parent */
  cc_free(shared);
}


/* cc_arena_fail_in(n): exactly the n-th allocation fails, then all work. */
static void test_fault_injection(void **state) {
  (void)state;
  void *p[5];
  cc_arena_fail_in(3);
  for (int i = 0; i < 5; i++) p[i] = cc_alloc(64);
  assert_non_null(p[0]);
  assert_non_null(p[1]);
  assert_null(p[2]);
  assert_non_null(p[3]);
  assert_non_null(p[4]);
  for (int i = 0; i < 5; i++) cc_free(p[i]);
  cc_arena_fail_in(2);
  cc_arena_fail_in(0); /* cancelled */
  p[0] = cc_alloc(64);
  p[1] = cc_alloc(64);
  assert_non_null(p[0]);
  assert_non_null(p[1]);
  cc_free(p[0]);
  cc_free(p[1]);
}

/* The debt a thread owes its Lua collector: what it allocated, taken only
 * once it reaches the caller's threshold. */
static void test_debt_counts_this_threads_allocations(void **state) {
  (void)state;
  cc_arena_take_debt(0);
  void *a = cc_alloc(1000); /* a 1 KiB block */
  assert_int_equal(cc_arena_take_debt(4096), 0);
  void *b = cc_alloc(5000); /* an 8 KiB block */
  size_t d = cc_arena_take_debt(4096);
  assert_int_equal(d, 1024 + 8192);
  assert_int_equal(cc_arena_take_debt(0), 0);
  cc_free(a);
  cc_free(b);
  assert_int_equal(cc_arena_take_debt(0), 0); /* frees are not credit */
}

/* The pressure epoch moves when live memory passes the threshold (64 MiB
 * more than live at first) and once more on request; settling brings the
 * threshold back down to what is live. */
static void test_pressure_epoch(void **state) {
  (void)state;
  enum { N = 40 };
  void *p[N];
  uint32_t e0 = cc_arena_pressure();
  for (int i = 0; i < N; i++) p[i] = cc_alloc(3u << 20); /* 4 MiB blocks: 160 MiB */
  uint32_t e1 = cc_arena_pressure();
  assert_true(e1 != e0);
  for (int i = 0; i < N; i++) cc_free(p[i]);
  cc_arena_pressure_settled();
  cc_arena_pressure_raise();
  assert_int_equal(cc_arena_pressure(), e1 + 1);
  /* Settled low again: 4 MiB more does not open an epoch. */
  cc_arena_pressure_settled();
  void *q = cc_alloc(3u << 20);
  assert_int_equal(cc_arena_pressure(), e1 + 1);
  cc_free(q);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_alloc_sizes_and_alignment),
      cmocka_unit_test(test_free_reuses_blocks),
      cmocka_unit_test(test_calloc_zeroes),
      cmocka_unit_test(test_huge_request_fails_cleanly),
      cmocka_unit_test(test_object_refcount),
      cmocka_unit_test(test_long_name_truncated),
      cmocka_unit_test(test_threads_hammer_allocator),
      cmocka_unit_test(test_shared_across_fork),
      cmocka_unit_test(test_fault_injection),
      cmocka_unit_test(test_debt_counts_this_threads_allocations),
      cmocka_unit_test(test_pressure_epoch),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
