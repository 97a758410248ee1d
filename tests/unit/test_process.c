/*
 * test_process.c - forked children through the process core, without Lua:
 * outcomes and exit codes, join timeouts, kill, zombie reaping, and children
 * SIGKILLed while they hold a lock, work inside a queue or hold a shared
 * table (each run many times), parent death, forking while other threads
 * are busy, joins from a process that is not the forker, and the reaper
 * without pidfds.
 *
 * A child never returns into cmocka: it runs its body and ends in
 * cc_process_exit (or dies). Only the test's main thread asserts; every
 * wait has a deadline.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "futex.h"
#include "item.h"
#include "lock.h"
#include "pid.h"
#include "process.h"
#include "queue.h"
#include "shared.h"

#define ROUNDS 30 /* kills per failure test */

/* ThreadSanitizer kills a child that starts threads after a fork from a
 * threaded process unless told otherwise (every child here that forks again
 * starts its reaper thread): main() re-executes the test with
 * die_after_fork=0 in a TSan build. */
#if defined(__SANITIZE_THREAD__)
#define TSAN_BUILD 1
#else
#define TSAN_BUILD 0
#endif
#define SECONDS(s) cc_deadline_in(s)

/* ---- helpers ---------------------------------------------------------------- */

static int saved_stderr = -1;
static FILE *capture;

static void capture_start(void) {
  fflush(stderr);
  capture = tmpfile();
  saved_stderr = dup(2);
  dup2(fileno(capture), 2);
}

static char *capture_end(void) {
  static char buf[16384];
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

#define EVENTUALLY(cond)                                                                 \
  do {                                                                                   \
    int64_t until_ = cc_now_ns() + 10000000000LL;                                        \
    while (!(cond) && cc_now_ns() < until_)                                              \
      sched_yield();                                                                     \
    assert_true(cond);                                                                   \
  } while (0)

/* Shared between a test and its children (arena memory). */
typedef struct board {
  _Atomic uint32_t ready; /* a child got where the test waits for it */
  _Atomic uint32_t go;
  _Atomic int32_t pid; /* a grandchild's pid */
  _Atomic(cc_process_t *) proc;
  _Atomic uint64_t count;
  cc_obj_t *lock, *rlock;
  cc_queue_t *queue;
  cc_shared_t *shared;
} board_t;

static board_t *board_new(void) {
  board_t *b = cc_calloc(sizeof *b);
  assert_non_null(b);
  return b;
}

static void signal_ready(board_t *b) {
  atomic_store(&b->ready, 1);
  cc_futex_wake(&b->ready, INT32_MAX);
}

static _Noreturn void park_forever(void) {
  for (;;)
    pause();
}

typedef void (*body_fn)(cc_process_t *p, board_t *b);

/* Forks a child that runs body(p, b), then reports success with no result.
 * The caller owns the returned reference. */
static cc_process_t *spawn(const char *name, body_fn body, board_t *b) {
  cc_process_t *p = cc_process_new(name, 0);
  int pid;
  assert_non_null(p);
  pid = cc_process_fork(p);
  if (pid == 0) {
    body(p, b);
    cc_process_exit(p, CC_T_OK, NULL, 0);
  }
  assert_true(pid > 0);
  assert_int_equal(p->t.pid, pid);
  return p;
}

static int reaped(int pid) {
  return waitpid(pid, NULL, WNOHANG) == -1 && errno == ECHILD;
}

/* ---- the one pid-liveness check (pid.c) ------------------------------------- */

/* Gone or a zombie is dead, everywhere (mutex takeover, lock takeover, a
 * lost child's join used to disagree about zombies). */
static void test_pid_dead(void **state) {
  pid_t pid;
  int status;
  (void)state;
  assert_false(cc_pid_dead(0));
  assert_false(cc_pid_dead(-1));
  assert_false(cc_pid_dead(cc_pid));     /* ourselves */
  assert_false(cc_pid_dead(getppid())); /* alive */
  pid = fork();
  if (pid == 0) _exit(0);
  assert_true(pid > 0);
  /* Not reaped yet: a zombie (until then, alive, but it exits at once). */
  EVENTUALLY(cc_pid_dead(pid));
  assert_int_equal(kill(pid, 0), 0); /* kill() still finds the zombie */
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(cc_pid_dead(pid)); /* gone */
}

/* A reset registered with cc_fork_on_child runs in every forked child,
 * after the core's own resets (cc_pid is the child's by then). */
static int32_t reset_saw_pid;
static void on_child_reset(void) {
  reset_saw_pid = cc_pid;
}

static void body_report_reset(cc_process_t *p, board_t *b) {
  int64_t *r = cc_alloc(sizeof *r);
  (void)b;
  *r = reset_saw_pid == getpid();
  cc_process_exit(p, CC_T_OK, r, sizeof *r);
}

static void test_fork_reset_hook(void **state) {
  cc_process_t *p;
  (void)state;
  p = spawn("reset", body_report_reset, NULL);
  assert_int_equal(cc_process_join(p, SECONDS(10)), 0);
  assert_int_equal(p->t.status, CC_T_OK);
  assert_int_equal(*(int64_t *)p->t.result, 1);
  assert_int_equal(reset_saw_pid, 0); /* never in the parent */
  cc_obj_unref(&p->t.h);
}

/* ---- outcomes ---------------------------------------------------------------- */

static void body_result(cc_process_t *p, board_t *b) {
  int64_t *r = cc_alloc(sizeof *r);
  (void)b;
  *r = 42;
  cc_process_exit(p, CC_T_OK, r, sizeof *r);
}

static void body_error(cc_process_t *p, board_t *b) {
  static const char msg[] = "it broke";
  char *r = cc_alloc(sizeof msg);
  (void)b;
  memcpy(r, msg, sizeof msg);
  cc_process_exit(p, CC_T_ERROR, r, sizeof msg - 1);
}

static void body_exit3(cc_process_t *p, board_t *b) {
  (void)p;
  (void)b;
  _exit(3);
}

static void body_exit0(cc_process_t *p, board_t *b) {
  (void)p;
  (void)b;
  _exit(0);
}

static void test_outcomes(void **state) {
  cc_process_t *p;
  (void)state;
  /* results */
  p = spawn("ok", body_result, NULL);
  assert_string_equal(p->t.h.name, "ok");
  assert_true(p->t.is_process);
  assert_int_equal(cc_process_join(p, SECONDS(10)), 0);
  assert_false(cc_thread_alive(&p->t));
  assert_int_equal(p->how, CC_PROC_REPORTED);
  assert_int_equal(p->t.status, CC_T_OK);
  assert_int_equal(cc_process_exitcode(p), 0);
  assert_int_equal(*(int64_t *)p->t.result, 42);
  assert_true(reaped(p->t.pid));                   /* no zombie left */
  assert_int_equal(cc_process_join(p, CC_NOW), 0); /* joins again */
  assert_int_equal(cc_process_kill(p, SIGTERM), CC_ECLOSED);
  cc_obj_unref(&p->t.h);
  /* an error */
  p = spawn(NULL, body_error, NULL);
  assert_non_null(strstr(p->t.h.name, "process-"));
  assert_int_equal(cc_process_join(p, SECONDS(10)), 0);
  assert_int_equal(p->t.status, CC_T_ERROR);
  assert_int_equal(cc_process_exitcode(p), 1);
  assert_string_equal((char *)p->t.result, "it broke");
  cc_obj_unref(&p->t.h);
  /* exits without reporting */
  p = spawn("exit3", body_exit3, NULL);
  assert_int_equal(cc_process_join(p, SECONDS(10)), 0);
  assert_int_equal(p->how, CC_PROC_EXITED);
  assert_int_equal(p->t.status, CC_T_ERROR);
  assert_int_equal(cc_process_exitcode(p), 3);
  assert_string_equal((char *)p->t.result, "process 'exit3' exited with status 3");
  cc_obj_unref(&p->t.h);
  p = spawn("exit0", body_exit0, NULL);
  assert_int_equal(cc_process_join(p, SECONDS(10)), 0);
  assert_int_equal(p->t.status, CC_T_OK);
  assert_int_equal(cc_process_exitcode(p), 0);
  assert_null(p->t.result);
  cc_obj_unref(&p->t.h);
}

/* ---- join timeouts and kill -------------------------------------------------- */

static void body_park(cc_process_t *p, board_t *b) {
  (void)p;
  signal_ready(b);
  park_forever();
}

static void test_kill_and_timeouts(void **state) {
  board_t *b = board_new();
  cc_process_t *p;
  int64_t t0;
  char buf[32];
  (void)state;
  p = spawn("sleeper", body_park, b);
  EVENTUALLY(atomic_load(&b->ready));
  assert_int_equal(cc_process_join(p, CC_NOW), CC_ETIMEOUT);
  t0 = cc_now_ns();
  assert_int_equal(cc_process_join(p, SECONDS(0.05)), CC_ETIMEOUT);
  assert_true(cc_now_ns() - t0 >= 40000000);
  assert_true(cc_thread_alive(&p->t));
  assert_int_equal(cc_process_kill(p, -1), CC_EINVAL);
  assert_int_equal(cc_process_kill(p, 0), 0); /* a probe */
  assert_int_equal(cc_process_kill(p, SIGTERM), 0);
  assert_int_equal(cc_process_join(p, SECONDS(10)), 0);
  assert_int_equal(cc_process_exitcode(p), -SIGTERM);
  assert_int_equal(p->how, CC_PROC_KILLED);
  assert_int_equal(p->termsig, SIGTERM);
  assert_string_equal((char *)p->t.result,
                      "process 'sleeper' was killed by signal 15 (SIGTERM)");
  assert_true(reaped(p->t.pid));
  assert_int_equal(cc_process_kill(p, SIGKILL), CC_ECLOSED);
  cc_obj_unref(&p->t.h);
  /* signal names */
  assert_string_equal(cc_signal_name(SIGKILL, buf, sizeof buf), "SIGKILL");
  assert_string_equal(cc_signal_name(77, buf, sizeof buf), "signal 77");
  assert_int_equal(cc_signal_number("SIGTERM"), SIGTERM);
  assert_int_equal(cc_signal_number("KILL"), SIGKILL);
  assert_int_equal(cc_signal_number("NOPE"), 0);
  cc_free(b);
}

/* A child nobody joins is reaped all the same. */
static void test_unjoined_reaped(void **state) {
  board_t *b = board_new();
  cc_process_t *p;
  int pid;
  (void)state;
  p = spawn("orphan", body_result, b);
  pid = p->t.pid;
  cc_obj_unref(&p->t.h); /* only the reaper holds it now */
  EVENTUALLY(reaped(pid));
  cc_free(b);
}

/* ---- a child killed at the job-release point (issue 10, item 3) -------------- */

/* A job is an arena block naming its board. Releasing it counts, and, in a
 * child when the board says so, SIGKILLs the child right there: inside the
 * release of the job, the window in which an owner that releases before
 * clearing leaves the job to be released and freed a second time by the
 * reaper. */
#define JOB_MAGIC 0x6a6f62216a6f6221ull

typedef struct job {
  uint64_t magic;
  board_t *b;
} job_t;

static pid_t test_pid;

/* The release hook of every test here (installed once, in main: the
 * reaper may release a payload at any time). */
static void counting_release(const void *data, size_t len) {
  const job_t *job = data;
  if (len != sizeof(job_t) || job->magic != JOB_MAGIC) return; /* a result */
  atomic_fetch_add(&job->b->count, 1);
  if (getpid() != test_pid && atomic_load(&job->b->go)) raise(SIGKILL);
}

/* What conc_run_job does once it has decoded the job. */
static void body_drop_job(cc_process_t *p, board_t *b) {
  (void)b;
  cc_thread_drop_job(&p->t);
}

static void test_killed_releasing_job(void **state) {
  (void)state;
  for (int round = 0; round < 10; round++) {
    board_t *b = board_new();
    job_t *job = cc_alloc(sizeof *job);
    cc_process_t *p = cc_process_new("releaser", 0);
    int kill_it = round % 2 == 0, pid;
    assert_non_null(job);
    assert_non_null(p);
    job->magic = JOB_MAGIC;
    job->b = b;
    atomic_store(&b->go, kill_it);
    p->t.job = job;
    p->t.job_len = sizeof *job;
    pid = cc_process_fork(p);
    if (pid == 0) {
      body_drop_job(p, b);
      cc_process_exit(p, CC_T_OK, NULL, 0);
    }
    assert_true(pid > 0);
    assert_int_equal(cc_process_join(p, SECONDS(10)), 0);
    if (kill_it) {
      assert_int_equal(p->how, CC_PROC_KILLED);
      assert_int_equal(cc_process_exitcode(p), -SIGKILL);
    } else {
      assert_int_equal(cc_process_exitcode(p), 0);
    }
    /* Released once, by the child: the reaper found the pointer cleared. */
    assert_int_equal(atomic_load(&b->count), 1);
    assert_null(p->t.job);
    cc_obj_unref(&p->t.h);
    assert_int_equal(atomic_load(&b->count), 1);
    cc_free(b);
  }
  /* A child killed before it took its job: the reaper releases it, once. */
  {
    board_t *b = board_new();
    job_t *job = cc_alloc(sizeof *job);
    cc_process_t *p = cc_process_new("early", 0);
    job->magic = JOB_MAGIC;
    job->b = b;
    p->t.job = job;
    p->t.job_len = sizeof *job;
    int pid = cc_process_fork(p);
    if (pid == 0) {
      signal_ready(b);
      park_forever();
    }
    EVENTUALLY(atomic_load(&b->ready));
    assert_int_equal(cc_process_kill(p, SIGKILL), 0);
    assert_int_equal(cc_process_join(p, SECONDS(10)), 0);
    assert_int_equal(atomic_load(&b->count), 1);
    assert_null(p->t.job);
    cc_obj_unref(&p->t.h);
    cc_free(b);
  }
}

/* ---- the observed rule for processes (issue 10 item 6, issue 11 item 4) --- */

static _Atomic int reports;
static void count_report(cc_process_t *p) {
  (void)p;
  atomic_fetch_add(&reports, 1);
}

/* Errors only after the joiner has counted itself in. */
static void body_error_when_joined(cc_process_t *p, board_t *b) {
  while (!(atomic_load(&p->t.watch) & CC_WATCH_JOINERS)) sched_yield();
  body_error(p, b);
}

static void *join_process(void *arg) {
  cc_process_t *p = arg;
  intptr_t rc;
  cc_set_self(cc_actor_new("joiner", cc_next_id(), CC_ACTOR_THREAD));
  rc = cc_process_join(p, SECONDS(10));
  cc_actor_free(cc_self());
  return (void *)rc;
}

static void test_error_reported_once(void **state) {
  cc_process_t *p;
  (void)state;
  atomic_store(&reports, 0);
  /* Nobody joins: reported when the child is reaped, once. */
  p = spawn("lonely", body_error, NULL);
  EVENTUALLY(!cc_thread_alive(&p->t));
  assert_int_equal(atomic_load(&reports), 1);
  assert_true(atomic_load(&p->t.watch) & CC_WATCH_PRINTED);
  /* A later join still returns the error, and nothing is printed again. */
  assert_int_equal(cc_process_join(p, CC_NOW), 0);
  assert_int_equal(p->t.status, CC_T_ERROR);
  cc_obj_unref(&p->t.h);
  assert_int_equal(atomic_load(&reports), 1);
  /* A join waits: the join has it, nothing is printed. The join runs on a
   * second thread; the child errors only once it is counted in. */
  for (int round = 0; round < 5; round++) {
    pthread_t th;
    void *rc;
    p = spawn("watched", body_error_when_joined, NULL);
    pthread_create(&th, NULL, join_process, p);
    pthread_join(th, &rc);
    assert_int_equal((int)(intptr_t)rc, 0);
    assert_int_equal(p->t.status, CC_T_ERROR);
    assert_false(atomic_load(&p->t.watch) & CC_WATCH_PRINTED);
    cc_obj_unref(&p->t.h);
  }
  assert_int_equal(atomic_load(&reports), 1);
  /* Killed: no Lua error, nothing printed even with nobody joining. */
  {
    board_t *b = board_new();
    p = spawn("killed", body_park, b);
    EVENTUALLY(atomic_load(&b->ready));
    assert_int_equal(cc_process_kill(p, SIGKILL), 0);
    EVENTUALLY(!cc_thread_alive(&p->t));
    assert_int_equal(atomic_load(&reports), 1);
    cc_obj_unref(&p->t.h);
    cc_free(b);
  }
}

/* ---- killed while holding locks ---------------------------------------------- */

static void body_hold_locks(cc_process_t *p, board_t *b) {
  (void)p;
  cc_lock_acquire(b->lock, CC_FOREVER);
  cc_lock_acquire(b->rlock, CC_FOREVER);
  cc_lock_acquire(b->rlock, CC_FOREVER);
  signal_ready(b);
  park_forever();
}

typedef struct waiter_arg {
  cc_obj_t *lock;
  _Atomic int result;
  _Atomic int64_t waited_ns;
} waiter_arg_t;

static void *lock_waiter(void *arg) {
  waiter_arg_t *w = arg;
  int64_t t0 = cc_now_ns();
  cc_set_self(cc_actor_new("waiter", cc_next_id(), CC_ACTOR_THREAD));
  atomic_store(&w->result, cc_lock_acquire(w->lock, SECONDS(10)));
  atomic_store(&w->waited_ns, cc_now_ns() - t0);
  if (atomic_load(&w->result) == 0) cc_lock_release(w->lock);
  cc_actor_free(cc_self());
  return NULL;
}

static void test_killed_holding_locks(void **state) {
  (void)state;
  for (int round = 0; round < ROUNDS; round++) {
    board_t *b = board_new();
    cc_process_t *p;
    waiter_arg_t w = {0};
    pthread_t th;
    char *err, expect[160];
    b->lock = cc_lock_new("till", 0);
    b->rlock = cc_lock_new("ladle", 1);
    w.lock = b->lock;
    capture_start();
    p = spawn("holder", body_hold_locks, b);
    EVENTUALLY(atomic_load(&b->ready));
    /* Half the rounds have a waiter parked when the child dies: it races
     * the reaper (a CAS decides). */
    if (round % 2) {
      pthread_create(&th, NULL, lock_waiter, &w);
      EVENTUALLY(atomic_load(&((cc_lock_t *)b->lock)->word) & CC_LOCK_WAITERS);
    }
    assert_int_equal(cc_process_kill(p, SIGKILL), 0);
    assert_int_equal(cc_process_join(p, SECONDS(10)), 0);
    if (round % 2) {
      pthread_join(th, NULL);
      assert_int_equal(atomic_load(&w.result), 0);
      assert_true(atomic_load(&w.waited_ns) < 5000000000LL);
    }
    /* Reaping released both at once: no 100 ms takeover poll needed. */
    assert_int_equal(cc_lock_acquire(b->lock, CC_NOW), 0);
    assert_int_equal(cc_lock_acquire(b->rlock, CC_NOW), 0);
    err = capture_end();
    assert_int_equal(cc_process_exitcode(p), -SIGKILL);
    assert_string_equal((char *)p->t.result,
                        "process 'holder' was killed by signal 9 (SIGKILL)");
    snprintf(expect, sizeof expect,
             "process 'holder' (pid %d) died holding rlock 'ladle'", p->t.pid);
    assert_non_null(strstr(err, expect));
    if (round % 2 == 0) {
      snprintf(expect, sizeof expect,
               "process 'holder' (pid %d) died holding lock 'till'", p->t.pid);
      assert_non_null(strstr(err, expect));
    }
    assert_int_equal(cc_lock_release(b->rlock), 0);
    assert_false(cc_lock_locked(b->rlock)); /* one level: the depth was reset */
    assert_int_equal(cc_lock_release(b->lock), 0);
    /* exactly one reference left each: unref destroys them cleanly */
    assert_int_equal(atomic_load(&b->lock->refs), 1);
    assert_int_equal(atomic_load(&b->rlock->refs), 1);
    cc_obj_unref(b->lock);
    cc_obj_unref(b->rlock);
    cc_obj_unref(&p->t.h);
    cc_free(b);
  }
}

/* A child ending normally while holding a lock releases it, with a warning. */
static void body_end_holding(cc_process_t *p, board_t *b) {
  (void)p;
  cc_lock_acquire(b->lock, CC_FOREVER);
}

static void test_ends_holding_lock(void **state) {
  board_t *b = board_new();
  cc_process_t *p;
  char *err, expect[160];
  (void)state;
  b->lock = cc_lock_new("spoon", 0);
  capture_start();
  p = spawn("eater", body_end_holding, b);
  assert_int_equal(cc_process_join(p, SECONDS(10)), 0);
  err = capture_end();
  snprintf(expect, sizeof expect, "process 'eater' (pid %d) ended holding lock 'spoon'",
           p->t.pid);
  assert_non_null(strstr(err, expect));
  assert_int_equal(cc_process_exitcode(p), 0);
  assert_false(cc_lock_locked(b->lock));
  cc_obj_unref(b->lock);
  cc_obj_unref(&p->t.h);
  cc_free(b);
}

/* ---- killed inside queue operations ------------------------------------------- */

/* An item is 24 bytes (boxed) or 16 bytes (inline): n, ~n, n ^ key. */
#define KEY 0x5a5a5a5a5a5a5a5aull

static void make_item(cc_item_t *it, uint64_t n) {
  uint64_t v[3] = {n, ~n, n ^ KEY};
  /* Alternate inline and boxed items, so both kinds get torn (or not). */
  if (n & 1) {
    char big[80];
    memset(big, 0, sizeof big);
    memcpy(big, v, sizeof v);
    assert_int_equal(cc_item_make(it, big, sizeof big, 1, 0), 0);
  } else {
    assert_int_equal(cc_item_make(it, v, sizeof v, 1, 0), 0);
  }
}

static int item_ok(const cc_item_t *it) {
  const uint64_t *v = cc_item_data(it);
  if (it->kind != 1 || (it->len != 24 && it->len != 80)) return 0;
  return v[1] == ~v[0] && v[2] == (v[0] ^ KEY);
}

/* Puts and gets as fast as it can until killed. With b->go set it puts
 * bursts of 3000 items, so that the ring grows and shrinks back. */
static void body_queue_churn(cc_process_t *p, board_t *b) {
  uint64_t n = 1000000;
  int burst = atomic_load(&b->go) ? 3000 : 1;
  (void)p;
  signal_ready(b);
  for (;;) {
    cc_item_t it;
    for (int i = 0; i < burst; i++) {
      make_item(&it, n++);
      if (cc_queue_put(b->queue, &it, CC_FOREVER) != 0) cc_item_clear(&it);
    }
    for (int i = 0; i < burst; i++) {
      if (cc_queue_get(b->queue, &it, SECONDS(1)) == 0) {
        if (!item_ok(&it)) _exit(7);
        cc_item_clear(&it);
      }
    }
    atomic_fetch_add(&b->count, 1);
  }
}

/* How many rounds of operations the child may run before the kill. A forked
 * child runs about 20x slower under ThreadSanitizer. */
#if defined(__SANITIZE_THREAD__)
#define KILL_SPREAD 200
#else
#define KILL_SPREAD 5000
#endif

static void test_killed_in_queue_ops(void **state) {
  (void)state;
  for (int round = 0; round < ROUNDS; round++) {
    board_t *b = board_new();
    cc_process_t *p;
    cc_item_t it;
    uint64_t target;
    int n = 0;
    b->queue = cc_queue_new(round % 2 ? 4 : 0, "churn");
    /* every sixth round in bursts: the ring grows and shrinks under the kill */
    atomic_store(&b->go, round % 6 == 0);
    for (uint64_t i = 0; i < 3; i++) {
      make_item(&it, i);
      assert_int_equal(cc_queue_put(b->queue, &it, SECONDS(1)), 0);
    }
    p = spawn("churner", body_queue_churn, b);
    EVENTUALLY(atomic_load(&b->ready));
    /* Let it run a varying number of operations, then kill it. */
    if (atomic_load(&b->go)) /* count is per burst of 3000 puts and gets */
      target = atomic_load(&b->count) + 1 + (uint64_t)(rand() % 10);
    else
      target = atomic_load(&b->count) + 50 + (uint64_t)(rand() % KILL_SPREAD);
    EVENTUALLY(atomic_load(&b->count) >= target);
    assert_int_equal(cc_process_kill(p, SIGKILL), 0);
    assert_int_equal(cc_process_join(p, SECONDS(10)), 0);
    assert_int_equal(cc_process_exitcode(p), -SIGKILL); /* not 7: no torn item seen */
    /* Whatever is left is whole, and the queue still works both ways. */
    while (cc_queue_get(b->queue, &it, SECONDS(0.5)) == 0) {
      assert_true(item_ok(&it));
      cc_item_clear(&it);
      n++;
    }
    assert_true(n <= (atomic_load(&b->go) ? 3006 : 6));
    make_item(&it, 77);
    assert_int_equal(cc_queue_put(b->queue, &it, SECONDS(2)), 0);
    assert_int_equal(cc_queue_get(b->queue, &it, SECONDS(2)), 0);
    assert_true(item_ok(&it));
    cc_item_clear(&it);
    cc_obj_unref(&b->queue->h);
    cc_obj_unref(&p->t.h);
    cc_free(b);
  }
}

/* A getter parked in another process dies; a getter of ours that parks
 * later must still be woken by the next put (the dead one's wake flag must
 * not stick: a waiter clears it when it registers). */
static void body_parked_get(cc_process_t *p, board_t *b) {
  cc_item_t it;
  (void)p;
  signal_ready(b);
  cc_queue_get(b->queue, &it, CC_FOREVER);
  _exit(9);
}

typedef struct getter_arg {
  cc_queue_t *q;
  _Atomic int rc;
  _Atomic int64_t waited_ns;
} getter_arg_t;

static void *queue_getter(void *arg) {
  getter_arg_t *g = arg;
  cc_item_t it;
  int64_t t0 = cc_now_ns();
  cc_set_self(cc_actor_new("getter", cc_next_id(), CC_ACTOR_THREAD));
  atomic_store(&g->rc, cc_queue_get(g->q, &it, SECONDS(10)));
  atomic_store(&g->waited_ns, cc_now_ns() - t0);
  if (atomic_load(&g->rc) == 0) cc_item_clear(&it);
  cc_actor_free(cc_self());
  return NULL;
}

static void test_dead_parked_getter(void **state) {
  board_t *b = board_new();
  cc_process_t *p;
  getter_arg_t g = {0};
  pthread_t th;
  cc_item_t it;
  (void)state;
  b->queue = cc_queue_new(0, "dead getter");
  p = spawn("getter", body_parked_get, b);
  EVENTUALLY(atomic_load(&b->ready));
  EVENTUALLY(atomic_load(&b->queue->getters) == 1);
  assert_int_equal(cc_process_kill(p, SIGKILL), 0);
  assert_int_equal(cc_process_join(p, SECONDS(10)), 0);
  make_item(&it, 1); /* the wake for the dead getter goes nowhere */
  assert_int_equal(cc_queue_put(b->queue, &it, SECONDS(1)), 0);
  assert_int_equal(cc_queue_get(b->queue, &it, SECONDS(1)), 0);
  cc_item_clear(&it);
  g.q = b->queue;
  pthread_create(&th, NULL, queue_getter, &g);
  EVENTUALLY(atomic_load(&b->queue->getters) >= 2);
  make_item(&it, 2);
  assert_int_equal(cc_queue_put(b->queue, &it, SECONDS(1)), 0);
  pthread_join(th, NULL);
  assert_int_equal(atomic_load(&g.rc), 0);
  assert_true(atomic_load(&g.waited_ns) < 5000000000LL);
  cc_obj_unref(&b->queue->h);
  cc_obj_unref(&p->t.h);
  cc_free(b);
}

/* ---- killed holding a shared table -------------------------------------------- */

static cc_skey_t ikey(int64_t i) {
  cc_skey_t k = {CC_SK_INT, 0, {.i = i}};
  return k;
}

static void body_shared(cc_process_t *p, board_t *b) {
  uint64_t n = 0;
  (void)p;
  if (atomic_load(&b->go)) { /* hold it, then wait to be killed */
    cc_shared_hold(b->shared, CC_FOREVER);
    signal_ready(b);
    park_forever();
  }
  signal_ready(b);
  for (;;) { /* writes (with rehashes) until killed */
    cc_skey_t k = ikey((int64_t)(n % 200));
    cc_item_t it;
    make_item(&it, n);
    if (cc_shared_set(b->shared, &k, &it) != 0) cc_item_clear(&it);
    if (n % 3 == 0) {
      cc_item_t none = {0};
      k = ikey((int64_t)((n * 7) % 200));
      cc_shared_set(b->shared, &k, &none);
    }
    n++;
    atomic_fetch_add(&b->count, 1);
  }
}

/* Killing a writer inside cc_shared_set can leave a slot half-written (an
 * insert publishes the key before the value is whole, so a stale item of an
 * erased entry becomes visible and is freed twice): shared.c does not yet
 * repair the table when cc_mutex_lock reports a dead owner. Until shared.h
 * defines CC_SHARED_KILL_SAFE, only the killed-while-holding rounds run
 * (docs/PROCESSES.md, "Known gaps"). */
#ifdef CC_SHARED_KILL_SAFE
#define WRITER_ROUNDS 1
#else
#define WRITER_ROUNDS 0
#endif

static void test_killed_with_shared(void **state) {
  (void)state;
  for (int round = WRITER_ROUNDS ? 0 : 1; round < ROUNDS;
       round += WRITER_ROUNDS ? 1 : 2) {
    board_t *b = board_new();
    cc_process_t *p;
    cc_skey_t k = ikey(1000);
    cc_item_t it;
    int64_t t0;
    b->shared = cc_shared_new("table");
    atomic_store(&b->go, round % 2); /* odd rounds: killed while holding it */
    capture_start();
    p = spawn("writer", body_shared, b);
    EVENTUALLY(atomic_load(&b->ready));
    if (round % 2 == 0) {
      uint64_t target = atomic_load(&b->count) + 20 + (uint64_t)(rand() % 3000);
      EVENTUALLY(atomic_load(&b->count) >= target);
    }
    assert_int_equal(cc_process_kill(p, SIGKILL), 0);
    assert_int_equal(cc_process_join(p, SECONDS(10)), 0);
    capture_end();
    /* Every single operation completes at once, every value is whole. */
    t0 = cc_now_ns();
    make_item(&it, 5);
    assert_int_equal(cc_shared_set(b->shared, &k, &it), 0);
    for (int64_t i = 0; i < 200; i++) {
      cc_skey_t ki = ikey(i);
      assert_int_equal(cc_shared_get(b->shared, &ki, &it), 0);
      if (it.kind) assert_true(item_ok(&it));
      cc_item_clear(&it);
    }
    assert_int_equal(cc_shared_hold(b->shared, SECONDS(5)), 0);
    assert_int_equal(cc_shared_unhold(b->shared), 0);
    assert_true(cc_now_ns() - t0 < 5000000000LL);
    cc_obj_unref(&b->shared->h);
    cc_obj_unref(&p->t.h);
    cc_free(b);
  }
}

/* ---- parent death ------------------------------------------------------------- */

static void body_grandchild(cc_process_t *p, board_t *b) {
  (void)p;
  (void)b;
  park_forever();
}

static void body_middle(cc_process_t *p, board_t *b) {
  cc_process_t *g = spawn("grandchild", body_grandchild, b);
  (void)p;
  atomic_store(&b->pid, g->t.pid);
  cc_obj_ref(&g->t.h); /* for the test, in the top process */
  atomic_store(&b->proc, g);
  signal_ready(b);
  park_forever();
}

static void test_parent_death(void **state) {
  board_t *b = board_new();
  cc_process_t *m, *g;
  int gpid;
  (void)state;
  m = spawn("middle", body_middle, b);
  EVENTUALLY(atomic_load(&b->ready));
  gpid = atomic_load(&b->pid);
  g = atomic_load(&b->proc);
  assert_true(gpid > 0 && !cc_pid_dead(gpid));
  assert_int_equal(cc_process_kill(m, SIGKILL), 0);
  assert_int_equal(cc_process_join(m, SECONDS(10)), 0);
  EVENTUALLY(cc_pid_dead(gpid)); /* the grandchild did not live on */
  /* We are not its forker: the join notices that nobody can reap it. */
  assert_int_equal(cc_process_join(g, SECONDS(10)), 0);
  assert_int_equal(g->how, CC_PROC_LOST);
  assert_int_equal(cc_process_exitcode(g), -SIGKILL);
  assert_non_null(strstr((char *)g->t.result, "was lost: its parent process"));
  cc_obj_unref(&g->t.h);
  cc_obj_unref(&m->t.h);
  cc_free(b);
}

/* A child joins (and kills) its sibling: not the forker, so it waits on
 * the shared object only. */
static void body_join_sibling(cc_process_t *p, board_t *b) {
  cc_process_t *s = atomic_load(&b->proc);
  (void)p;
  if (cc_process_join(s, CC_NOW) != CC_ETIMEOUT) _exit(4);
  if (cc_process_kill(s, SIGTERM) != 0) _exit(5);
  if (cc_process_join(s, SECONDS(10)) != 0) _exit(6);
  if (cc_process_exitcode(s) != -SIGTERM) _exit(7);
}

static void test_join_from_sibling(void **state) {
  board_t *b = board_new();
  cc_process_t *s, *j;
  (void)state;
  s = spawn("sibling", body_park, b);
  EVENTUALLY(atomic_load(&b->ready));
  atomic_store(&b->proc, s);
  j = spawn("joiner", body_join_sibling, b);
  assert_int_equal(cc_process_join(j, SECONDS(10)), 0);
  assert_int_equal(cc_process_exitcode(j), 0);
  assert_int_equal(cc_process_join(s, SECONDS(10)), 0);
  assert_int_equal(cc_process_exitcode(s), -SIGTERM);
  cc_obj_unref(&j->t.h);
  cc_obj_unref(&s->t.h);
  cc_free(b);
}

/* ---- fork while other threads are busy ------------------------------------------ */

static _Atomic int stop_busy;

/* AddressSanitizer's allocator (GCC 12) takes no lock around fork(): a
 * child can hang in malloc if a busy thread was inside it. glibc's malloc
 * is fork-safe, so only the ASan build leaves malloc out of the loop. */
#if defined(__SANITIZE_ADDRESS__)
#define BUSY_MALLOC(n) NULL
#else
#define BUSY_MALLOC(n) malloc(n)
#endif

static void *busy_main(void *arg) {
  FILE *f = fopen("/dev/null", "w");
  cc_obj_t *l = arg;
  cc_set_self(cc_actor_new("busy", cc_next_id(), CC_ACTOR_THREAD));
  while (!atomic_load(&stop_busy)) {
    void *m = BUSY_MALLOC(100 + (size_t)(rand() % 5000));
    void *a = cc_alloc(64 + (size_t)(rand() % 2000));
    fprintf(f, "busy %p %p\n", m, a);
    fprintf(stderr, "%s", "");
    printf("%s", "");
    cc_lock_acquire(l, CC_FOREVER);
    cc_lock_release(l);
    cc_free(a);
    free(m);
  }
  fclose(f);
  cc_actor_free(cc_self());
  return NULL;
}

static void body_use_everything(cc_process_t *p, board_t *b) {
  void *m = BUSY_MALLOC(1000), *a = cc_alloc(1000);
  (void)p;
  fprintf(stderr, "%s", ""); /* stdio locks are sane in the child */
  printf("%s", "");
  cc_lock_acquire(b->lock, CC_FOREVER);
  cc_lock_release(b->lock);
  free(m);
  cc_free(a);
}

static void test_fork_with_busy_threads(void **state) {
  board_t *b = board_new();
  pthread_t th[2];
  (void)state;
  b->lock = cc_lock_new("busy", 0);
  atomic_store(&stop_busy, 0);
  for (int i = 0; i < 2; i++)
    pthread_create(&th[i], NULL, busy_main, b->lock);
  for (int i = 0; i < 100; i++) {
    cc_process_t *p = spawn("busy child", body_use_everything, b);
    assert_int_equal(cc_process_join(p, SECONDS(10)), 0);
    assert_int_equal(cc_process_exitcode(p), 0);
    cc_obj_unref(&p->t.h);
  }
  atomic_store(&stop_busy, 1);
  for (int i = 0; i < 2; i++)
    pthread_join(th[i], NULL);
  cc_obj_unref(b->lock);
  cc_free(b);
}

/* ---- the reaper without pidfds ---------------------------------------------------- */

static void test_no_pidfd(void **state) {
  pid_t helper;
  int status;
  (void)state;
  /* In a plain child of our own, which reads the variable afresh. */
  helper = fork();
  if (helper == 0) {
    board_t *b = board_new();
    cc_process_t *p;
    int ok;
    setenv("CONCLUA_NO_PIDFD", "1", 1);
    p = cc_process_new("polled", 0);
    if (cc_process_fork(p) == 0) body_result(p, b);
    ok = cc_process_join(p, SECONDS(10)) == 0 && cc_process_exitcode(p) == 0 &&
         *(int64_t *)p->t.result == 42;
    p = cc_process_new("polled2", 0);
    if (cc_process_fork(p) == 0) body_park(p, b);
    ok = ok && cc_process_kill(p, SIGKILL) == 0 && cc_process_join(p, SECONDS(10)) == 0 &&
         cc_process_exitcode(p) == -SIGKILL;
    _exit(ok ? 0 : 1);
  }
  assert_true(helper > 0);
  assert_int_equal(waitpid(helper, &status, 0), helper);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pid_dead),
      cmocka_unit_test(test_fork_reset_hook),
      cmocka_unit_test(test_outcomes),
      cmocka_unit_test(test_kill_and_timeouts),
      cmocka_unit_test(test_unjoined_reaped),
      cmocka_unit_test(test_killed_releasing_job),
      cmocka_unit_test(test_error_reported_once),
      cmocka_unit_test(test_killed_holding_locks),
      cmocka_unit_test(test_ends_holding_lock),
      cmocka_unit_test(test_killed_in_queue_ops),
      cmocka_unit_test(test_dead_parked_getter),
      cmocka_unit_test(test_killed_with_shared),
      cmocka_unit_test(test_parent_death),
      cmocka_unit_test(test_join_from_sibling),
      cmocka_unit_test(test_fork_with_busy_threads),
      cmocka_unit_test(test_no_pidfd),
  };
  const char *opts = getenv("TSAN_OPTIONS");
  (void)argc;
  if (TSAN_BUILD && (!opts || !strstr(opts, "die_after_fork=0"))) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s%sdie_after_fork=0", opts ? opts : "", opts ? ":" : "");
    setenv("TSAN_OPTIONS", buf, 1);
    execv("/proc/self/exe", argv);
  }
  {
    static const cc_thread_hooks_t th = {NULL, NULL, NULL, NULL, counting_release};
    static const cc_process_hooks_t ph = {count_report};
    test_pid = getpid();
    cc_fork_on_child(on_child_reset);
    cc_thread_set_hooks(&th);
    cc_process_set_hooks(&ph);
  }
  cc_self(); /* the main thread is actor 'main' */
  srand((unsigned)getpid());
  return cmocka_run_group_tests(tests, NULL, NULL);
}
