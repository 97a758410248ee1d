/*
 * test_pool.c - the pool and Future core (lib/core/pool.c) without Lua.
 *
 * The tests play the binding's parts by hand: they submit Futures, take
 * them as a worker slot would, finish, cancel and fail them. Results are
 * arena blocks holding one 64-bit value; the release hook counts the blocks
 * the pool drops, so a result freed twice or never shows. Racing threads
 * only record what they saw; the main thread asserts after joining them
 * (cmocka's asserts longjmp and are only safe on the test's thread).
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "pool.h"
#include "process.h"

/* ---- helpers -------------------------------------------------------------- */

static _Atomic long released; /* blocks dropped through the release hook */

static void count_release(const void *data, size_t len) {
  (void)data;
  (void)len;
  atomic_fetch_add(&released, 1);
}

/* An arena block holding v (NULL when the arena is full: no assert here,
 * worker threads call it). */
static void *block(uint64_t v) {
  uint64_t *b = cc_alloc(sizeof v);
  if (b) *b = v;
  return b;
}

static uint64_t block_value(const void *b) {
  uint64_t v;
  memcpy(&v, b, sizeof v);
  return v;
}

static cc_fnbox_t *new_fn(void) {
  void *code = block(0xF0);
  cc_fnbox_t *fn;
  assert_non_null(code);
  fn = cc_fnbox_new(code, sizeof(uint64_t));
  assert_non_null(fn);
  return fn;
}

/* A queued Future whose argument block holds v. */
static cc_future_t *submit(cc_pool_t *p, cc_fnbox_t *fn, uint64_t v) {
  void *args = block(v);
  cc_future_t *f;
  assert_non_null(args);
  f = cc_future_new(p, CC_TASK_APPLY, fn, args, sizeof v);
  assert_non_null(f);
  assert_int_equal(cc_pool_submit(p, f), 0);
  return f;
}

/* What a worker does with the arguments of the task it took. */
static uint64_t take_args(cc_future_t *f) {
  void *args = f->args;
  uint64_t v = block_value(args);
  f->args = NULL;
  cc_free(args);
  return v;
}

static cc_future_t *slot_future(cc_pool_t *p, int i) {
  cc_future_t *f = NULL;
  if (p->slot[i].item.len == sizeof f) memcpy(&f, p->slot[i].item.u.bytes, sizeof f);
  return f;
}

static int32_t refs(cc_future_t *f) {
  return atomic_load(&f->h.refs);
}

/* ---- the state machine, one thread ------------------------------------------ */

static void test_take_run_finish(void **state) {
  (void)state;
  cc_pool_t *p = cc_pool_new(1, 0, "run");
  cc_fnbox_t *fn = new_fn();
  cc_future_t *f, *t;
  uint32_t seen;
  long rel;
  assert_non_null(p);
  assert_null(cc_pool_new(0, 0, "none"));
  assert_null(cc_pool_new(CC_POOL_MAX + 1, 0, "too many"));
  f = submit(p, fn, 41);
  assert_int_equal(cc_future_state(f), CC_F_PENDING);
  assert_int_equal(atomic_load(&p->unfinished), 1);
  assert_int_equal(refs(f), 2); /* ours and the queue's */
  seen = atomic_load(&p->notify);

  /* Taken: RUNNING, the worker owns the queue's reference, the slot names it. */
  cc_pool_slot_live(p, 0);
  t = cc_pool_take(p, 0);
  assert_ptr_equal(t, f);
  assert_int_equal(cc_future_state(f), CC_F_RUNNING);
  assert_ptr_equal(slot_future(p, 0), f);
  assert_int_equal(f->runner_pid, cc_pid);
  assert_int_equal(cc_future_cancel(f), 0); /* too late */
  assert_int_equal(cc_future_wait(f, CC_NOW), CC_ETIMEOUT);
  assert_false(cc_future_done(f));

  /* Whoever claimed it (FINISHING) is its only finisher: the others back
   * off, whatever they bring (here a finisher caught half-way, by hand). */
  rel = atomic_load(&released);
  atomic_store(&f->state, CC_F_FINISHING);
  assert_int_equal(cc_future_finish(f, CC_F_OK, block(1), sizeof(uint64_t)), 0);
  assert_int_equal(cc_future_finish(f, CC_F_ERROR, cc_alloc(8), 8), 0);
  assert_int_equal(cc_future_cancel(f), 0);
  assert_int_equal(atomic_load(&released), rel + 2); /* an error value may hold objects too */
  assert_int_equal(cc_future_state(f), CC_F_FINISHING);
  assert_int_equal(atomic_load(&p->unfinished), 1);
  atomic_store(&f->state, CC_F_RUNNING);

  /* Done: OK with its result, the slot forgets it, the owner is told. */
  rel = atomic_load(&released);
  cc_pool_task_done(p, 0, f, CC_F_OK, block(take_args(f) + 1), sizeof(uint64_t));
  assert_int_equal(cc_future_state(f), CC_F_OK);
  assert_true(cc_future_done(f));
  assert_int_equal(block_value(f->result), 42);
  assert_int_equal(p->slot[0].item.len, 0);
  assert_int_equal(refs(f), 1);
  assert_int_equal(atomic_load(&p->unfinished), 0);
  assert_int_not_equal(atomic_load(&p->notify), seen);
  assert_int_equal(cc_future_wait(f, CC_NOW), 0);
  assert_int_equal(cc_pool_wait_event(p, seen, &f->h, CC_NOW), 0);
  /* A late finisher (a monitor) loses and its result is dropped. */
  assert_int_equal(cc_future_finish(f, CC_F_OK, block(7), sizeof(uint64_t)), 0);
  assert_int_equal(atomic_load(&released), rel + 1);
  assert_int_equal(block_value(f->result), 42);
  assert_int_equal(cc_future_cancel(f), 0);

  /* A reader that is the only one frees the result early (map's chunks). */
  cc_future_drop_result(f);
  assert_null(f->result);
  assert_int_equal(atomic_load(&released), rel + 2);
  assert_int_equal(cc_future_state(f), CC_F_OK);
  cc_future_drop_result(f);
  cc_obj_unref(&f->h); /* nothing left to drop */
  assert_int_equal(atomic_load(&released), rel + 2);
  cc_pool_close(p);
  assert_null(cc_pool_take(p, 0));
  assert_int_equal(atomic_load(&p->slot[0].state), CC_SLOT_EXITED);
  assert_int_equal(cc_pool_submit(p, f = cc_future_new(p, CC_TASK_APPLY, fn, NULL, 0)),
                   CC_ECLOSED);
  assert_int_equal(atomic_load(&p->unfinished), 0);
  assert_int_equal(refs(f), 1);
  cc_obj_unref(&f->h);
  cc_obj_unref(&fn->h);
  cc_obj_unref(&p->h);
}

static void test_names(void **state) {
  (void)state;
  char long_name[80];
  cc_pool_t *p;
  cc_fnbox_t *fn = new_fn();
  cc_future_t *f;
  char want[CC_NAME_MAX];
  memset(long_name, 'x', sizeof long_name - 1);
  long_name[sizeof long_name - 1] = '\0';
  p = cc_pool_new(1, 0, long_name);
  assert_non_null(p);
  f = cc_future_new(p, CC_TASK_APPLY, fn, NULL, 0);
  assert_non_null(f);
  /* What "%.40s#%lld" gives. */
  snprintf(want, sizeof want, "%.40s#%lld", p->h.name, (long long)f->h.id);
  assert_string_equal(f->h.name, want);
  cc_obj_unref(&f->h);
  cc_obj_unref(&p->h);
  p = cc_pool_new(1, 0, "");
  f = cc_future_new(p, CC_TASK_MAP, fn, NULL, 0);
  snprintf(want, sizeof want, "%.40s#%lld", p->h.name, (long long)f->h.id);
  assert_string_equal(f->h.name, want);
  assert_int_equal(f->kind, CC_TASK_MAP);
  cc_obj_unref(&f->h);
  cc_obj_unref(&p->h);
  cc_obj_unref(&fn->h);
}

static void test_cancel_pending(void **state) {
  (void)state;
  cc_pool_t *p = cc_pool_new(1, 0, "cancel");
  cc_fnbox_t *fn = new_fn();
  cc_future_t *f[3];
  long rel;
  for (int i = 0; i < 3; i++)
    f[i] = submit(p, fn, (uint64_t)i);
  rel = atomic_load(&released);
  assert_int_equal(cc_future_cancel(f[1]), 1);
  assert_int_equal(cc_future_state(f[1]), CC_F_CANCELLED);
  assert_null(f[1]->result);
  assert_int_equal(cc_future_cancel(f[1]), 0);
  assert_int_equal(cc_future_wait(f[1], CC_NOW), 0);
  /* Finishing it now loses, and the result is dropped, once. */
  assert_int_equal(cc_future_finish(f[1], CC_F_OK, block(9), sizeof(uint64_t)), 0);
  assert_int_equal(atomic_load(&released), rel + 1);
  /* An error value that loses is dropped through the release hook too (it
   * may hold object references; the hook leaves a plain text alone). */
  assert_int_equal(cc_future_finish(f[1], CC_F_ERROR, cc_alloc(8), 8), 0);
  assert_int_equal(atomic_load(&released), rel + 2);
  assert_int_equal(atomic_load(&p->unfinished), 2);

  /* The worker skips the cancelled task (and drops the queue's reference). */
  cc_pool_slot_live(p, 0);
  assert_ptr_equal(cc_pool_take(p, 0), f[0]);
  cc_pool_task_done(p, 0, f[0], CC_F_ERROR, NULL, 0);
  assert_int_equal(cc_future_state(f[0]), CC_F_ERROR);
  assert_ptr_equal(cc_pool_take(p, 0), f[2]);
  assert_int_equal(refs(f[1]), 1);
  assert_int_equal(take_args(f[2]), 2);
  cc_pool_task_done(p, 0, f[2], CC_F_OK, NULL, 0);
  assert_int_equal(atomic_load(&p->unfinished), 0);
  for (int i = 0; i < 3; i++)
    cc_obj_unref(&f[i]->h);
  cc_obj_unref(&fn->h);
  cc_obj_unref(&p->h);
}

static void test_terminate(void **state) {
  (void)state;
  cc_pool_t *p = cc_pool_new(2, 0, "terminate");
  cc_fnbox_t *fn = new_fn();
  cc_future_t *f[5];
  for (int i = 0; i < 5; i++)
    f[i] = submit(p, fn, (uint64_t)i);
  cc_pool_slot_live(p, 0);
  cc_pool_slot_live(p, 1);
  assert_ptr_equal(cc_pool_take(p, 0), f[0]); /* running: it finishes */
  cc_pool_terminate(p);
  cc_pool_terminate(p); /* idempotent */
  for (int i = 1; i < 5; i++) {
    assert_int_equal(cc_future_state(f[i]), CC_F_CANCELLED);
    assert_int_equal(refs(f[i]), 1); /* the queue's reference was dropped */
  }
  assert_int_equal(cc_future_state(f[0]), CC_F_RUNNING);
  assert_null(cc_pool_take(p, 1));
  assert_int_equal(atomic_load(&p->slot[1].state), CC_SLOT_EXITED);
  assert_int_equal(atomic_load(&p->unfinished), 1);
  cc_pool_task_done(p, 0, f[0], CC_F_OK, block(1), sizeof(uint64_t));
  assert_int_equal(atomic_load(&p->unfinished), 0);
  assert_int_equal(cc_pool_submit(p, f[0]), CC_ECLOSED);
  assert_int_equal(atomic_load(&p->unfinished), 0);
  {
    /* Refused by the closed pool: cancelled there, the count unchanged. */
    cc_future_t *late = cc_future_new(p, CC_TASK_APPLY, fn, NULL, 0);
    assert_non_null(late);
    assert_int_equal(cc_pool_submit(p, late), CC_ECLOSED);
    assert_int_equal(cc_future_state(late), CC_F_CANCELLED);
    assert_int_equal(atomic_load(&p->unfinished), 0);
    cc_obj_unref(&late->h);
  }
  for (int i = 0; i < 5; i++)
    cc_obj_unref(&f[i]->h);
  cc_obj_unref(&fn->h);
  cc_obj_unref(&p->h);
}

static void test_callbacks(void **state) {
  (void)state;
  cc_pool_t *p = cc_pool_new(1, 0, "callbacks");
  cc_fnbox_t *fn = new_fn();
  cc_future_t *a = submit(p, fn, 1), *b = submit(p, fn, 2), *c = submit(p, fn, 3), *l;
  assert_null(cc_pool_take_callbacks(p));
  /* Asked before it finishes: queued by the finisher, before it is final. */
  assert_int_equal(cc_future_want_callback(a), 0);
  assert_int_equal(cc_future_want_callback(a), 0); /* asked already */
  assert_int_equal(cc_future_want_callback(b), 0);
  assert_int_equal(cc_future_cancel(b), 1);
  assert_int_equal(cc_future_cancel(a), 1);
  /* Asked after: the caller runs it itself. */
  assert_int_equal(cc_future_cancel(c), 1);
  assert_int_equal(cc_future_want_callback(c), 1);
  l = cc_pool_take_callbacks(p);
  assert_ptr_equal(l, b); /* in the order they finished */
  assert_ptr_equal(l->cb_next, a);
  assert_null(a->cb_next);
  assert_null(cc_pool_take_callbacks(p));
  assert_int_equal(refs(a), 3); /* ours, the queue's, the list's */
  cc_obj_unref(&b->h);
  cc_obj_unref(&a->h);
  cc_pool_close(p);
  assert_null(cc_pool_take(p, 0)); /* drops the queue's references */
  cc_obj_unref(&a->h);
  cc_obj_unref(&b->h);
  cc_obj_unref(&c->h);
  cc_obj_unref(&fn->h);
  cc_obj_unref(&p->h);
}

/* ---- races: each outcome decided once ----------------------------------------- */

#define RACES 2000

typedef struct racer {
  pthread_barrier_t *go;
  cc_future_t *const *f;
  int kind; /* 0 cancel, 1 finish OK, 2 finish ERROR */
  int won[RACES];
} racer_t;

static void *race_main(void *arg) {
  racer_t *r = arg;
  for (int i = 0; i < RACES; i++) {
    pthread_barrier_wait(r->go);
    if (r->kind == 0)
      r->won[i] = cc_future_cancel(r->f[0]);
    else if (r->kind == 1)
      r->won[i] = cc_future_finish(r->f[0], CC_F_OK, block((uint64_t)i), sizeof(uint64_t));
    else
      r->won[i] = cc_future_finish(r->f[0], CC_F_ERROR, cc_alloc(16), 16);
    pthread_barrier_wait(r->go);
  }
  return NULL;
}

static void test_finish_cancel_race(void **state) {
  (void)state;
  cc_pool_t *p = cc_pool_new(1, 0, "race");
  cc_fnbox_t *fn = new_fn();
  pthread_barrier_t go;
  pthread_t th[3];
  static racer_t r[3];
  cc_future_t *cur = NULL;
  static int state_of[RACES];
  long rel0 = atomic_load(&released);
  pthread_barrier_init(&go, NULL, 4);
  for (int k = 0; k < 3; k++) {
    r[k].go = &go;
    r[k].f = &cur;
    r[k].kind = k;
    pthread_create(&th[k], NULL, race_main, &r[k]);
  }
  for (int i = 0; i < RACES; i++) {
    cur = submit(p, fn, (uint64_t)i);
    pthread_barrier_wait(&go); /* they race */
    pthread_barrier_wait(&go); /* they are done */
    state_of[i] = (int)cc_future_state(cur);
    if (state_of[i] == CC_F_OK && (!cur->result || block_value(cur->result) != (uint64_t)i))
      state_of[i] = -1;
    cc_obj_unref(&cur->h);
  }
  for (int k = 0; k < 3; k++)
    pthread_join(th[k], NULL);
  pthread_barrier_destroy(&go);
  for (int i = 0; i < RACES; i++) {
    int wins = r[0].won[i] + r[1].won[i] + r[2].won[i];
    assert_int_equal(wins, 1);
    if (r[0].won[i]) assert_int_equal(state_of[i], CC_F_CANCELLED);
    if (r[1].won[i]) assert_int_equal(state_of[i], CC_F_OK);
    if (r[2].won[i]) assert_int_equal(state_of[i], CC_F_ERROR);
  }
  assert_int_equal(atomic_load(&p->unfinished), 0);
  cc_pool_close(p);
  assert_null(cc_pool_take(p, 0)); /* every queued one was final: skipped */
  /* Every OK result and error value was dropped once (the losers' at
   * once, the winners' with their Future), and so was every argument
   * block. */
  assert_int_equal(atomic_load(&released) - rel0, 3 * RACES);
  cc_obj_unref(&fn->h);
  cc_obj_unref(&p->h);
}

/* ---- waits ---------------------------------------------------------------------- */

typedef struct waiter {
  cc_future_t *f;
  cc_pool_t *p;
  uint32_t seen;
  int rc;
  uint32_t state;
} waiter_t;

static void *future_waiter(void *arg) {
  waiter_t *w = arg;
  w->rc = cc_future_wait(w->f, CC_FOREVER);
  w->state = cc_future_state(w->f);
  return NULL;
}

static void *owner_waiter(void *arg) {
  waiter_t *w = arg;
  w->rc = cc_pool_wait_event(w->p, w->seen, &w->p->h, CC_FOREVER);
  w->state = atomic_load(&w->p->notify);
  return NULL;
}

static void test_wait_and_timeout(void **state) {
  (void)state;
  cc_pool_t *p = cc_pool_new(1, 0, "wait");
  cc_fnbox_t *fn = new_fn();
  cc_future_t *f = submit(p, fn, 5);
  waiter_t fw = {f, p, 0, -1, 0}, ow = {f, p, 0, -1, 0};
  pthread_t a, b;
  int64_t t0;
  uint32_t seen = atomic_load(&p->notify);
  assert_int_equal(cc_future_wait(f, CC_NOW), CC_ETIMEOUT);
  t0 = cc_now_ns();
  assert_int_equal(cc_future_wait(f, cc_deadline_in(0.02)), CC_ETIMEOUT);
  assert_true(cc_now_ns() - t0 >= 15000000);
  assert_int_equal(cc_pool_wait_event(p, seen, &p->h, CC_NOW), CC_ETIMEOUT);
  assert_int_equal(cc_pool_wait_event(p, seen, &p->h, cc_deadline_in(0.02)), CC_ETIMEOUT);
  assert_int_equal(atomic_load(&f->waiters), 0);
  assert_int_equal(atomic_load(&p->owner_waiting), 0);

  /* Waiters that park (or not yet: either way they see the finish). */
  ow.seen = seen;
  pthread_create(&a, NULL, future_waiter, &fw);
  pthread_create(&b, NULL, owner_waiter, &ow);
  cc_pool_slot_live(p, 0);
  assert_ptr_equal(cc_pool_take(p, 0), f);
  cc_pool_task_done(p, 0, f, CC_F_OK, block(take_args(f) * 2), sizeof(uint64_t));
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  assert_int_equal(fw.rc, 0);
  assert_int_equal(fw.state, CC_F_OK);
  assert_int_equal(ow.rc, 0);
  assert_int_not_equal(ow.state, seen);
  assert_int_equal(block_value(f->result), 10);
  assert_int_equal(atomic_load(&f->waiters), 0);
  cc_obj_unref(&f->h);
  cc_obj_unref(&fn->h);
  cc_obj_unref(&p->h);
}

/* ---- worker threads ------------------------------------------------------------- */

typedef struct worker {
  cc_pool_t *p;
  int slot;
  long ran;
} worker_t;

/* A worker's loop: each task's result is its argument squared. */
static void *worker_main(void *arg) {
  worker_t *w = arg;
  cc_future_t *f;
  while ((f = cc_pool_take(w->p, w->slot)) != NULL) {
    uint64_t v = take_args(f);
    w->ran++;
    cc_pool_task_done(w->p, w->slot, f, CC_F_OK, block(v * v), sizeof(uint64_t));
  }
  return NULL;
}

static void test_thread_workers(void **state) {
  (void)state;
  enum { W = 4, N = 20000 };
  cc_pool_t *p = cc_pool_new(W, 0, "threads");
  cc_fnbox_t *fn = new_fn();
  static cc_future_t *f[N];
  worker_t w[W];
  pthread_t th[W];
  long ran = 0, cancelled = 0;
  int bad = 0;
  for (int i = 0; i < W; i++) {
    w[i] = (worker_t){p, i, 0};
    cc_pool_slot_live(p, i);
    pthread_create(&th[i], NULL, worker_main, &w[i]);
  }
  for (int i = 0; i < N; i++) {
    f[i] = submit(p, fn, (uint64_t)i);
    if (i % 7 == 3) cancelled += cc_future_cancel(f[i]); /* those never run */
  }
  for (int i = 0; i < N; i++) {
    uint32_t st;
    if (cc_future_wait(f[i], CC_FOREVER) != 0) bad++;
    st = cc_future_state(f[i]);
    if (st == CC_F_OK ? !f[i]->result || block_value(f[i]->result) != (uint64_t)i * i
                      : st != CC_F_CANCELLED)
      bad++;
  }
  cc_pool_close(p);
  for (int i = 0; i < W; i++) {
    pthread_join(th[i], NULL);
    ran += w[i].ran;
    assert_int_equal(atomic_load(&p->slot[i].state), CC_SLOT_EXITED);
  }
  assert_int_equal(bad, 0);
  assert_int_equal(ran + cancelled, N);
  assert_int_equal(atomic_load(&p->unfinished), 0);
  for (int i = 0; i < N; i++) {
    assert_int_equal(refs(f[i]), 1);
    cc_obj_unref(&f[i]->h);
  }
  cc_obj_unref(&fn->h);
  cc_obj_unref(&p->h);
}

/* ---- a worker process that dies: the slot hand-over ------------------------------ */

enum { DIE_AT_ONCE, TAKE_AND_DIE, SERVE };

/* Forks a worker process for slot 0 that leaves at once (a death: the
 * queue is open), takes one task and dies by SIGKILL, or serves tasks
 * until the queue is closed and drained, then leaves. */
static cc_process_t *fork_worker(cc_pool_t *p, int how) {
  cc_process_t *w = cc_process_new("pool worker", 1);
  int pid;
  assert_non_null(w);
  cc_pool_slot_live(p, 0);
  pid = cc_process_fork(w);
  if (pid == 0) {
    cc_future_t *f;
    if (how == TAKE_AND_DIE) {
      cc_pool_take(p, 0);
      raise(SIGKILL);
    }
    while (how == SERVE && (f = cc_pool_take(p, 0)) != NULL) {
      uint64_t v = take_args(f);
      cc_pool_task_done(p, 0, f, CC_F_OK, block(v * v), sizeof(uint64_t));
    }
    cc_process_exit(w, CC_T_OK, NULL, 0);
  }
  assert_true(pid > 0);
  assert_int_equal(cc_pool_watch(p, 0, &w->t.h), 0);
  assert_int_equal(p->slot[0].pid, pid);
  return w;
}

static void test_worker_process_dies(void **state) {
  (void)state;
  cc_pool_t *p = cc_pool_new(1, 1, "procs");
  cc_fnbox_t *fn = new_fn();
  cc_future_t *f = submit(p, fn, 3), *g = submit(p, fn, 4);
  cc_process_t *w = fork_worker(p, TAKE_AND_DIE);
  char want[128];
  int pid = w->t.pid;
  /* The monitor fails the task the dead worker had taken into its slot. */
  assert_int_equal(cc_future_wait(f, cc_deadline_in(60)), 0); /* not a hang */
  assert_int_equal(cc_future_state(f), CC_F_ERROR);
  assert_int_equal(f->died, 1);
  assert_int_equal(f->runner_pid, pid);
  snprintf(want, sizeof want,
           "pool 'procs': worker process %d was killed by signal 9 (SIGKILL) while "
           "running this task", pid);
  assert_string_equal((const char *)f->result, want);
  assert_int_equal(cc_pool_wait_monitors(p, cc_deadline_in(60)), 0);
  assert_int_equal(atomic_load(&p->slot[0].state), CC_SLOT_DEAD);
  assert_int_equal(p->slot[0].item.len, 0);
  assert_int_equal(refs(f), 1); /* the dead worker's reference was dropped */
  /* The queued task is untouched, for the replacement. */
  assert_int_equal(cc_future_state(g), CC_F_PENDING);
  assert_int_equal(cc_pool_claim_dead(p), 0);
  assert_int_equal(atomic_load(&p->slot[0].state), CC_SLOT_SPAWNING);
  assert_int_equal(cc_pool_claim_dead(p), -1);
  cc_obj_unref(&w->t.h);

  /* A replacement that leaves while the queue is open died too; it took
   * nothing, so g is still queued. */
  w = fork_worker(p, DIE_AT_ONCE);
  assert_int_equal(cc_process_join(w, cc_deadline_in(60)), 0);
  assert_int_equal(cc_pool_wait_monitors(p, cc_deadline_in(60)), 0);
  cc_obj_unref(&w->t.h);
  assert_int_equal(atomic_load(&p->slot[0].state), CC_SLOT_DEAD);
  assert_int_equal(cc_future_state(g), CC_F_PENDING);
  assert_int_equal(cc_pool_claim_dead(p), 0);

  /* With the queue closed, a worker drains it and leaves: no death. */
  cc_pool_close(p);
  w = fork_worker(p, SERVE);
  assert_int_equal(cc_process_join(w, cc_deadline_in(60)), 0);
  assert_int_equal(cc_pool_wait_monitors(p, cc_deadline_in(60)), 0);
  cc_obj_unref(&w->t.h);
  assert_int_equal(cc_future_state(g), CC_F_OK);
  assert_int_equal(block_value(g->result), 16);
  assert_int_equal(atomic_load(&p->slot[0].state), CC_SLOT_EXITED);
  assert_int_equal(cc_pool_claim_dead(p), -1);
  assert_int_equal(atomic_load(&p->unfinished), 0);
  cc_obj_unref(&f->h);
  cc_obj_unref(&g->h);
  cc_obj_unref(&fn->h);
  cc_obj_unref(&p->h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_take_run_finish),  cmocka_unit_test(test_names),
      cmocka_unit_test(test_cancel_pending),   cmocka_unit_test(test_terminate),
      cmocka_unit_test(test_callbacks),        cmocka_unit_test(test_finish_cancel_race),
      cmocka_unit_test(test_wait_and_timeout), cmocka_unit_test(test_thread_workers),
      cmocka_unit_test(test_worker_process_dies),
  };
  if (cc_arena_init() != 0) return 1;
  cc_pool_set_release(count_release);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
