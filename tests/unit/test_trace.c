/* test_trace.c - the trace writer's final file (lib/core/trace.c): flows
 * paired by (queue, position) and an unpaired one dropped, spans still open
 * at the end closed, holds that end out of order still nested, a short
 * uncontended hold left out and counted, a run of quick takes written as
 * one span, and the lock-order checker's
 * warning count. Single-threaded: the file is checked as text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "actor.h"
#include "lockorder.h"
#include "trace.h"

static const cc_type_t queue_type = {.name = "queue"};
static const cc_type_t lock_type = {.name = "lock"};

static char *slurp(const char *path) {
  FILE *f = fopen(path, "r");
  char *s;
  long n;
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  s = calloc(1, (size_t)n + 1);
  assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  return s;
}

static int count(const char *s, const char *what) {
  int n = 0;
  for (const char *p = s; (p = strstr(p, what)) != NULL; p += strlen(what)) n++;
  return n;
}

/* Opens a trace into a fresh temporary file, named in path (a buffer of
 * at least sizeof TRACE_PATH). */
#define TRACE_PATH "/tmp/conclua-test-trace-XXXXXX"
static void open_trace(char *path) {
  char err[256];
  int fd;
  strcpy(path, TRACE_PATH);
  fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  assert_int_equal(cc_arena_init(), 0);
  assert_int_equal(cc_trace_open(path, NULL, err, sizeof err), 0);
}

/* Closes the trace (which must succeed) and returns the final file. */
static char *closed_trace(const char *path) {
  char err[256];
  assert_int_equal(cc_trace_close(err, sizeof err), 0);
  return slurp(path);
}

static int parks;
static cc_obj_t *parked_on;
static void on_park(cc_actor_t *a, cc_obj_t *o) {
  assert_ptr_equal(a, cc_self());
  parks++;
  parked_on = o;
}

/* conc.dump's site recorder sits in the park hook, not the observer: with no
 * trace and no lock-order checker, cc_observer stays NULL (a lock's fast
 * path pays one branch), holds never reach the recorder, and only a wait
 * that parks does (after it is recorded: the recorder reads wait_kind). */
static void test_park_hook_leaves_observer_off(void **state) {
  cc_obj_t *l;
  (void)state;
  assert_int_equal(cc_arena_init(), 0);
  l = cc_obj_new(&lock_type, sizeof(cc_obj_t), "L");
  cc_site_hooks(on_park, NULL);
  assert_null(cc_observer);
  cc_hold(l);
  cc_unhold(l);
  assert_int_equal(parks, 0);
  assert_int_equal(cc_wait_begin(l, CC_WAIT_SEM, cc_now_ns() + 1000000), 0);
  assert_int_equal(parks, 1);
  assert_ptr_equal(parked_on, l);
  assert_int_equal(atomic_load(&cc_self()->wait_kind), CC_WAIT_SEM);
  cc_wait_end(l, 0);
  assert_int_equal(parks, 1);
  cc_site_hooks(NULL, NULL);
  cc_park_hook = NULL;
  cc_obj_unref(l);
}

/* The sum of the numbers after each `key` in s. */
static long long sum_after(const char *s, const char *key) {
  long long sum = 0;
  for (const char *p = s; (p = strstr(p, key)) != NULL; p += strlen(key))
    sum += strtoll(p + strlen(key), NULL, 10);
  return sum;
}

static void test_final_file(void **state) {
  char path[sizeof TRACE_PATH], err[256], *s;
  cc_obj_t *q, *a, *b;
  (void)state;
  open_trace(path);
  q = cc_obj_new(&queue_type, sizeof(cc_obj_t), "jobs");
  a = cc_obj_new(&lock_type, sizeof(cc_obj_t), "A");
  b = cc_obj_new(&lock_type, sizeof(cc_obj_t), "B<script>");
  assert_int_equal(cc_trace_open(path, NULL, err, sizeof err), CC_EINVAL);
  cc_trace_queue(q, 1, 0);
  cc_trace_queue(q, 1, 1); /* never taken: its flow start is dropped */
  cc_trace_queue(q, 0, 0);
  /* Out of order: A, B held; A released first; B left held at the end. */
  cc_hold(a);
  cc_hold(b);
  cc_sleep_until(cc_now_ns() + 20000); /* longer than a sliver */
  cc_unhold(a);
  /* A sliver: held and released at once, nothing in between. */
  cc_hold(a);
  cc_unhold(a);
  /* A wait that never ends. */
  assert_int_equal(cc_wait_begin(q, CC_WAIT_QUEUE, CC_FOREVER), 0);
  assert_int_equal(cc_trace_close(err, sizeof err), 0);
  cc_wait_end(q, 0);
  cc_unhold(b);
  s = slurp(path);
  assert_non_null(strstr(s, "{\"displayTimeUnit\":\"ms\""));
  assert_int_equal(count(s, "\"ph\":\"s\""), 1);
  assert_int_equal(count(s, "\"ph\":\"f\""), 1);
  assert_int_equal(count(s, "\"name\":\"put queue 'jobs'\""), 2);
  assert_int_equal(count(s, "\"name\":\"get queue 'jobs'\""), 1);
  assert_non_null(strstr(s, "\"name\":\"wait queue 'jobs'\""));
  assert_non_null(strstr(s, "\"closed\":\"at the end of the trace\""));
  /* The sliver is left out and counted, unless it took longer than 5 us
   * (a slow machine, or ThreadSanitizer): then it is a second hold span. */
  assert_int_equal(count(s, "\"name\":\"hold lock 'A'\"") + sum_after(s, "\"short_holds_left_out\":"), 2);
  /* '<' escaped, so the JSON can sit in the timeline page's <script>. */
  assert_null(strstr(s, "<script>"));
  assert_non_null(strstr(s, "B\\u003cscript>"));
  /* B and E balance on every track (here: each span closed). */
  assert_int_equal(count(s, "\"ph\":\"B\""), count(s, "\"ph\":\"E\""));
  assert_int_equal(cc_trace_close(err, sizeof err), 0); /* idempotent */
  free(s);
  unlink(path);
  cc_obj_unref(q);
  cc_obj_unref(a);
  cc_obj_unref(b);
}


/* Quick takes in a row (trace.c's runs): a run of short holds of one lock
 * is written as one span "took lock 'A' N times"; a take of the run still
 * on when the thread records something else (here: it takes B) goes on as
 * a hold span from then; every take is in a run or counted as left out. */
static void test_runs_of_takes(void **state) {
  char path[sizeof TRACE_PATH], *s;
  cc_obj_t *a, *b;
  long long takes;
  (void)state;
  open_trace(path);
  a = cc_obj_new(&lock_type, sizeof(cc_obj_t), "A");
  b = cc_obj_new(&lock_type, sizeof(cc_obj_t), "B");
  for (int i = 0; i < 1000; i++) {
    cc_hold(a);
    cc_unhold(a);
  }
  cc_hold(a);
  cc_hold(b);
  cc_sleep_until(cc_now_ns() + 20000); /* longer than a short hold */
  cc_unhold(b);
  cc_unhold(a);
  s = closed_trace(path);
  assert_true(count(s, "\"name\":\"took lock 'A' ") >= 1);
  assert_int_equal(count(s, "\"cat\":\"takes\""), count(s, "\"name\":\"took lock 'A' "));
  /* Every take of the loop is in a run, left out, or (when it was
   * preempted for over 5 us before a run formed, as on a busy machine or
   * under ThreadSanitizer) a hold span of its own. The last take of A
   * makes two hold spans (B is released first: the lane's spans nest), and
   * is in the run too when the run was on at its take. */
  takes = sum_after(s, "\"takes\":") + sum_after(s, "\"short_holds_left_out\":") +
          count(s, "\"name\":\"hold lock 'A'\"") - 2;
  assert_true(takes == 1000 || takes == 1001);
  assert_true(count(s, "\"name\":\"hold lock 'A'\"") >= 1);
  assert_int_equal(count(s, "\"name\":\"hold lock 'B'\""), 1);
  assert_int_equal(count(s, "\"ph\":\"B\""), count(s, "\"ph\":\"E\""));
  free(s);
  unlink(path);
  cc_obj_unref(a);
  cc_obj_unref(b);
}

/* A process actor whose fork failed is freed in the forker, its pid still
 * the forker's: its end must not name a process (or a lane) under that pid. */
static void test_unstarted_process_has_no_lane(void **state) {
  char path[sizeof TRACE_PATH], *s;
  cc_actor_t *p;
  (void)state;
  open_trace(path);
  p = cc_actor_new("never", 4242, CC_ACTOR_PROCESS);
  assert_non_null(p);
  cc_actor_free(p);
  p = cc_actor_new("plain", 4243, CC_ACTOR_THREAD); /* a thread's lane: start to end */
  cc_actor_free(p);
  s = closed_trace(path);
  assert_null(strstr(s, "never"));
  assert_non_null(strstr(s, "\"name\":\"plain\""));
  free(s);
  unlink(path);
}

static void test_unwritable(void **state) {
  char err[256];
  (void)state;
  assert_int_equal(cc_trace_open("/nonexistent-dir/t.json", NULL, err, sizeof err), CC_ESYS);
  assert_non_null(strstr(err, "cannot write trace file '/nonexistent-dir/t.json'"));
}

/* A close that cannot write (a full disk) says so and closes the files:
 * the next trace may open; an existing file is left alone when the trace
 * cannot start; a Lua file is never emptied; one file is not two. */
static void test_bad_paths(void **state) {
  char err[256], path[sizeof TRACE_PATH], *s;
  FILE *f;
  cc_obj_t *l;
  (void)state;
  /* a full disk at the close (the page goes to /dev/full): the JSON file
   * is still written, the error names the page, and a new trace opens */
  strcpy(path, TRACE_PATH);
  {
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
  }
  assert_int_equal(cc_arena_init(), 0);
  assert_int_equal(cc_trace_open(path, "/dev/full", err, sizeof err), 0);
  assert_int_equal(cc_trace_close(err, sizeof err), CC_ESYS);
  assert_non_null(strstr(err, "cannot write trace file '/dev/full'"));
  s = slurp(path);
  assert_non_null(strstr(s, "\"traceEvents\""));
  free(s);
  unlink(path);
  assert_int_equal(cc_trace_open("x.lua.json", "x.lua.json", err, sizeof err), CC_EINVAL);
  assert_non_null(strstr(err, "need two files"));
  f = fopen("/tmp/conclua-test-trace.lua", "w");
  assert_non_null(f);
  fputs("print(1)\n", f);
  fclose(f);
  assert_int_equal(cc_trace_open("/tmp/conclua-test-trace.lua", NULL, err, sizeof err), CC_EINVAL);
  assert_non_null(strstr(err, "will not overwrite the Lua file"));
  s = slurp("/tmp/conclua-test-trace.lua");
  assert_string_equal(s, "print(1)\n");
  free(s);
  unlink("/tmp/conclua-test-trace.lua");
  /* a name that is not UTF-8 is written as U+FFFD: the file parses */
  open_trace(path);
  l = cc_obj_new(&lock_type, sizeof(cc_obj_t), "a\xff\xc3" "b");
  cc_hold(l);
  cc_sleep_until(cc_now_ns() + 20000);
  cc_unhold(l);
  s = closed_trace(path);
  assert_non_null(strstr(s, "a\\ufffd\\ufffdb"));
  assert_null(strchr(s, '\xff'));
  free(s);
  unlink(path);
  cc_obj_unref(l);
}

static void test_lock_order(void **state) {
  cc_obj_t *a = cc_obj_new(&lock_type, sizeof(cc_obj_t), "first");
  cc_obj_t *b = cc_obj_new(&lock_type, sizeof(cc_obj_t), "second");
  (void)state;
  cc_lockorder_enable();
  cc_hold(a);
  cc_hold(b);
  cc_unhold(b);
  cc_unhold(a);
  assert_int_equal(cc_lockorder_warnings(), 0);
  cc_hold(a);
  cc_hold(b);
  cc_unhold(b);
  cc_unhold(a);
  assert_int_equal(cc_lockorder_warnings(), 0); /* the same order again */
  cc_hold(b);
  cc_hold(a);
  cc_unhold(a);
  cc_unhold(b);
  assert_int_equal(cc_lockorder_warnings(), 1);
  cc_hold(b);
  cc_hold(a);
  cc_unhold(a);
  cc_unhold(b);
  assert_int_equal(cc_lockorder_warnings(), 1); /* once per pair */
  cc_obj_unref(a);
  cc_obj_unref(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_park_hook_leaves_observer_off),
      cmocka_unit_test(test_final_file),
      cmocka_unit_test(test_runs_of_takes),
      cmocka_unit_test(test_unstarted_process_has_no_lane),
      cmocka_unit_test(test_unwritable),
      cmocka_unit_test(test_bad_paths),
      cmocka_unit_test(test_lock_order),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
