/*
 * thread.c - Thread objects, the live registry, and the idle worker pool.
 *
 * The pool is private to each process (pthreads do not survive fork); its
 * state is reset in a forked child (cc_thread_after_fork, called by
 * fork.c). Lock order: pool_mu and registry_lock are leaves (nothing else
 * is taken while holding either); see docs/LOCKING.md.
 */
#include "thread.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actor_dead.h"
#include "futex.h"
#include "mutex.h"
#include "wait.h"

static cc_thread_hooks_t hooks;

void cc_thread_set_hooks(const cc_thread_hooks_t *h) {
  hooks = *h;
}

/* ---- Thread objects --------------------------------------------------- */

void cc_thread_drop_job(cc_thread_t *t) {
  void *job = t->job;
  size_t len = t->job_len;
  if (!job) return;
  t->job = NULL;
  /* Cleared (and visible to the reaper of a killed child) before anything
   * is released or freed. */
  atomic_thread_fence(memory_order_seq_cst);
  if (hooks.release_payload) hooks.release_payload(job, len);
  cc_free(job);
}

void cc_thread_release_fields(cc_thread_t *t) {
  cc_thread_drop_job(t);
  /* An error value holds object references too (error({q = queue})). */
  if (t->result && hooks.release_payload) hooks.release_payload(t->result, t->result_len);
  cc_free(t->result);
  t->result = NULL;
}

static void thread_destroy(cc_obj_t *o) {
  cc_thread_release_fields((cc_thread_t *)o);
}

void cc_thread_set_error_text(cc_thread_t *t, const char *text) {
  size_t len = strlen(text);
  char *s = cc_alloc(len + 1);
  if (s) memcpy(s, text, len + 1);
  t->result = s;
  t->result_len = s ? len : 0;
  t->status = CC_T_ERROR;
}

const cc_type_t cc_thread_type = {.name = "thread", .destroy = thread_destroy};

/* Default names number threads of this process, as Python's do
 * (thread-1, thread-2...), not every object: the counter is per process
 * (a forked child continues from its parent's count). */
static _Atomic long long unnamed_threads;

cc_thread_t *cc_thread_new(const char *name, int daemon) {
  cc_thread_t *t = cc_obj_new(&cc_thread_type, sizeof *t, name);
  if (!t) return NULL;
  t->tid = t->h.id;
  if (!name || !*name)
    snprintf(t->h.name, CC_NAME_MAX, "thread-%lld", atomic_fetch_add(&unnamed_threads, 1) + 1);
  t->daemon = daemon;
  t->pid = cc_pid;
  return t;
}

int cc_thread_alive(const cc_thread_t *t) {
  return !atomic_load_explicit(&((cc_thread_t *)t)->done, memory_order_acquire);
}

/* ---- registry --------------------------------------------------------- */

void cc_thread_register(cc_thread_t *t) {
  cc_globals_t *g = cc_globals();
  cc_mutex_lock(&g->registry_lock);
  t->reg_prev = NULL;
  t->reg_next = g->registry_head;
  if (t->reg_next) t->reg_next->reg_prev = t;
  g->registry_head = t;
  cc_mutex_unlock(&g->registry_lock);
}

void cc_thread_unregister(cc_thread_t *t) {
  cc_globals_t *g = cc_globals();
  cc_mutex_lock(&g->registry_lock);
  if (t->reg_prev)
    t->reg_prev->reg_next = t->reg_next;
  else if (g->registry_head == t)
    g->registry_head = t->reg_next;
  if (t->reg_next) t->reg_next->reg_prev = t->reg_prev;
  t->reg_prev = t->reg_next = NULL;
  cc_mutex_unlock(&g->registry_lock);
}

void cc_thread_foreach(int (*fn)(cc_thread_t *t, void *ud), void *ud) {
  cc_globals_t *g = cc_globals();
  cc_mutex_lock(&g->registry_lock);
  for (cc_thread_t *t = g->registry_head; t; t = t->reg_next)
    if (fn(t, ud)) break;
  cc_mutex_unlock(&g->registry_lock);
}

/* ---- non-daemon accounting (per process) ------------------------------ */

static _Atomic uint32_t nondaemon_running;

void cc_thread_wait_nondaemon(void) {
  while (cc_thread_wait_nondaemon_until(CC_FOREVER) != 0) {
  }
}

/* The wait goes through cc_wait_run like every other: the caller's actor
 * waits (kind join, on no object), so the trace shows the end of a script
 * as a wait and conc.dump as "waiting (join)"; Ctrl-C (EINTR on the
 * interruptible thread) and the deadline work as in any wait. */
static int nondaemon_poll(cc_wait_t *w) {
  uint32_t n = atomic_load(&nondaemon_running);
  if (n == 0) return 0;
  w->addr = &nondaemon_running;
  w->val = n;
  return CC_WAIT_PARK;
}

/* Ended by an interrupt as the last thread ended: they are all done. */
static int nondaemon_leave(cc_wait_t *w, int rc) {
  (void)w;
  return rc == CC_EINTR && atomic_load(&nondaemon_running) == 0 ? 0 : rc;
}

static const cc_wait_ops_t nondaemon_ops = {CC_WAIT_JOIN, 0, nondaemon_poll, NULL,
                                            nondaemon_leave};

int cc_thread_wait_nondaemon_until(cc_deadline_t deadline) {
  cc_wait_t w;
  cc_wait_init(&w, &nondaemon_ops, NULL, deadline);
  return cc_wait_run(&w);
}

void cc_thread_count_nondaemon(int delta) {
  if (delta > 0)
    atomic_fetch_add(&nondaemon_running, (uint32_t)delta);
  else if (delta < 0 && atomic_fetch_sub(&nondaemon_running, (uint32_t)-delta) == (uint32_t)-delta)
    cc_futex_wake(&nondaemon_running, INT32_MAX);
}

/* ---- worker pool ------------------------------------------------------ */

typedef struct worker {
  _Atomic uint32_t go; /* futex word: 1 when job is set */
  cc_thread_t *job;
  void *ctx;
  struct worker *next;
} worker_t;

#define MAX_IDLE 16
#define PREWARM 2

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static worker_t *idle_head;
static int nidle;
static int prewarmed;
static int stopping; /* under pool_mu: cc_thread_stop_workers is running */
/* Futex word: worker pthreads that are not running a daemon job (idle,
 * preparing, or running a non-daemon job). cc_thread_stop_workers waits for
 * it to reach 0. */
static _Atomic uint32_t nworkers;

void cc_thread_after_fork(void) {
  pthread_mutex_init(&pool_mu, NULL);
  idle_head = NULL;
  nidle = 0;
  prewarmed = 0;
  stopping = 0;
  atomic_store(&nworkers, 0);
  atomic_store(&nondaemon_running, 0);
}

static void workers_add(int delta) {
  if (delta > 0)
    atomic_fetch_add(&nworkers, 1);
  else if (atomic_fetch_sub(&nworkers, 1) == 1)
    cc_futex_wake(&nworkers, INT32_MAX);
}

/* ---- the observed rule (thread.h) -------------------------------------- */

int cc_thread_decide_report(cc_thread_t *t, int printable) {
  uint32_t old = atomic_fetch_or(&t->watch, CC_WATCH_DECIDED);
  /* Decided already: a thread of a killed process that got this far, now
   * finished by the reaper (actor_dead.c). The first decision stands. */
  if (old & CC_WATCH_DECIDED) return 0;
  if (!printable || t->status != CC_T_ERROR || (old & CC_WATCH_JOINERS)) return 0;
  atomic_fetch_or(&t->watch, CC_WATCH_PRINTED);
  return 1;
}

void cc_thread_publish_done(cc_thread_t *t) {
  atomic_store_explicit(&t->done, 1, memory_order_release);
  cc_wake(&t->done, INT32_MAX);
}

void cc_thread_finish(cc_thread_t *t, int status, void *result, size_t len) {
  cc_actor_t *a = t->actor;
  if (a) cc_actor_release_holds(a, "ended");
  t->result = result;
  t->result_len = len;
  t->status = status;
  t->actor = NULL;
  cc_actor_free(a);
  cc_thread_unregister(t);
  if (cc_thread_decide_report(t, 1) && hooks.report_error) hooks.report_error(t);
  cc_thread_publish_done(t);
}

static void run_job(worker_t *w, cc_thread_t *t) {
  int daemon = t->daemon;
  /* A daemon job may outlive cc_thread_stop_workers: it does not count. */
  if (daemon) workers_add(-1);
  cc_set_self(t->actor);
  hooks.run(w->ctx, t);
  if (!atomic_load(&t->done)) cc_panic("thread job ended without finishing");
  cc_set_self(NULL);
  cc_obj_unref(&t->h);
  if (daemon) workers_add(1);
  if (!daemon && atomic_fetch_sub(&nondaemon_running, 1) == 1)
    cc_futex_wake(&nondaemon_running, INT32_MAX);
}

static int pool_stopping(void) {
  int s;
  pthread_mutex_lock(&pool_mu);
  s = stopping;
  pthread_mutex_unlock(&pool_mu);
  return s;
}

/* Parks w among the idle workers, or returns 0 when the pool is full or
 * stopping (the worker then ends). */
static int park_idle(worker_t *w) {
  pthread_mutex_lock(&pool_mu);
  if (nidle >= MAX_IDLE || stopping) {
    pthread_mutex_unlock(&pool_mu);
    return 0;
  }
  w->next = idle_head;
  idle_head = w;
  nidle++;
  pthread_mutex_unlock(&pool_mu);
  return 1;
}

static void *worker_main(void *arg) {
  worker_t *w = arg;
  for (;;) {
    cc_thread_t *t = w->job;
    if (t) {
      w->job = NULL;
      if (!w->ctx && hooks.prepare) w->ctx = hooks.prepare();
      run_job(w, t);
      if (hooks.discard) hooks.discard(w->ctx);
      w->ctx = NULL;
    }
    if (pool_stopping()) break;
    w->ctx = hooks.prepare ? hooks.prepare() : NULL;
    atomic_store_explicit(&w->go, 0, memory_order_relaxed);
    if (!park_idle(w)) break;
    /* Park until a spawner hands over a job (or cc_thread_stop_workers
     * wakes it with none). No spinning here, nor in join: on two CPUs a
     * spinning idle worker or joiner takes the CPU that the running job and
     * the next fresh state need (measured: 86 us per spawn+join with
     * spinning, 31 us without). */
    while (!atomic_load_explicit(&w->go, memory_order_acquire))
      cc_futex_wait(&w->go, 0, CC_FOREVER);
    if (!w->job) break;
  }
  if (hooks.discard && w->ctx) hooks.discard(w->ctx);
  free(w);
  workers_add(-1);
  return NULL;
}

void cc_thread_stop_workers(void) {
  worker_t *list;
  uint32_t n;
  pthread_mutex_lock(&pool_mu);
  stopping = 1;
  list = idle_head;
  idle_head = NULL;
  nidle = 0;
  pthread_mutex_unlock(&pool_mu);
  while (list) {
    worker_t *w = list;
    list = w->next;
    w->job = NULL;
    atomic_store_explicit(&w->go, 1, memory_order_release);
    cc_futex_wake(&w->go, 1); /* w may be freed from here on */
  }
  while ((n = atomic_load(&nworkers)) != 0) cc_futex_wait(&nworkers, n, CC_FOREVER);
  pthread_mutex_lock(&pool_mu);
  stopping = 0;
  prewarmed = 0;
  pthread_mutex_unlock(&pool_mu);
}

int cc_thread_spawn_detached(void *(*fn)(void *), void *arg, size_t stack) {
  pthread_t th;
  pthread_attr_t attr;
  sigset_t all, old;
  int rc;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, stack);
  sigfillset(&all);
  sigdelset(&all, SIGSEGV);
  sigdelset(&all, SIGBUS);
  sigdelset(&all, SIGFPE);
  sigdelset(&all, SIGILL);
  pthread_sigmask(SIG_SETMASK, &all, &old); /* the new thread inherits the mask */
  rc = pthread_create(&th, &attr, fn, arg);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  return rc == 0 ? 0 : CC_EAGAIN;
}

/* Starts a worker; `job` may be NULL (prewarm). */
static int spawn_worker(cc_thread_t *job) {
  worker_t *w = calloc(1, sizeof *w);
  if (!w) return CC_ENOMEM;
  w->job = job;
  workers_add(1);
  if (cc_thread_spawn_detached(worker_main, w, 1 << 20) != 0) {
    workers_add(-1);
    free(w);
    return CC_EAGAIN;
  }
  return 0;
}

int cc_thread_start(cc_thread_t *t) {
  worker_t *w;
  int rc, warm = 0;
  cc_actor_t *a = cc_actor_new(t->h.name, t->tid, CC_ACTOR_THREAD);
  if (!a) return CC_EAGAIN;
  a->thread = &t->h;
  t->actor = a;
  t->pid = cc_pid;
  cc_obj_ref(&t->h); /* the worker's reference */
  cc_thread_register(t);
  if (!t->daemon) atomic_fetch_add(&nondaemon_running, 1);
  pthread_mutex_lock(&pool_mu);
  w = idle_head;
  if (w) {
    idle_head = w->next;
    nidle--;
  }
  if (!prewarmed) {
    prewarmed = 1;
    warm = PREWARM;
  }
  pthread_mutex_unlock(&pool_mu);
  if (w) {
    w->job = t;
    atomic_store_explicit(&w->go, 1, memory_order_release);
    cc_futex_wake(&w->go, 1);
    rc = 0;
  } else {
    rc = spawn_worker(t);
  }
  while (warm-- > 0) spawn_worker(NULL);
  if (rc != 0) {
    cc_thread_unregister(t);
    if (!t->daemon) atomic_fetch_sub(&nondaemon_running, 1);
    t->actor = NULL;
    cc_actor_free(a);
    cc_obj_unref(&t->h);
  }
  return rc;
}

/* The one join wait, for threads and processes. The join counts itself in
 * `watch` before it first looks at `done` and out when it leaves. If the
 * finisher decided while it was counted, the outcome is this join's to
 * raise whatever ended the wait (a timeout, an interrupt): it waits for
 * `done`, which the finisher publishes right after deciding. */
#define JT(w) ((cc_thread_t *)(w)->arg[0])

static int join_poll(cc_wait_t *w) {
  cc_thread_t *t = JT(w);
  if (atomic_load_explicit(&t->done, memory_order_acquire)) return 0;
  if (w->ticked && w->arg[1]) {
    ((void (*)(cc_thread_t *))w->arg[1])(t);
    if (atomic_load_explicit(&t->done, memory_order_acquire)) return 0;
  }
  w->addr = &t->done;
  w->val = 0;
  return CC_WAIT_PARK;
}

static void join_enter(cc_wait_t *w) {
  atomic_fetch_add(&JT(w)->watch, 1);
}

static int join_leave(cc_wait_t *w, int rc) {
  cc_thread_t *t = JT(w);
  uint32_t was;
  if (!w->parked) return rc;
  was = atomic_fetch_sub(&t->watch, 1);
  if (rc != 0 && (was & CC_WATCH_DECIDED)) {
    /* Published right after the decision: a short wait, even for a task. */
    while (!atomic_load_explicit(&t->done, memory_order_acquire))
      cc_futex_wait(&t->done, 0, CC_FOREVER);
    rc = 0;
  }
  return rc;
}

static const cc_wait_ops_t join_ops = {CC_WAIT_JOIN, 0, join_poll, join_enter, join_leave};

int cc_thread_join_w(cc_wait_t *w, cc_thread_t *t, cc_deadline_t deadline, int64_t slice_ns,
                     void (*poll)(cc_thread_t *t)) {
  if (atomic_load_explicit(&t->done, memory_order_acquire)) return 0;
  if (deadline == CC_NOW) return CC_ETIMEOUT;
  cc_wait_init(w, &join_ops, &t->h, deadline);
  w->tick_ns = poll ? slice_ns : 0;
  w->arg[0] = (uintptr_t)t;
  w->arg[1] = (uintptr_t)poll;
  return CC_WAIT_PARK;
}

int cc_thread_join_poll(cc_thread_t *t, cc_deadline_t deadline, int64_t slice_ns,
                        void (*poll)(cc_thread_t *t)) {
  cc_wait_t w;
  int rc = cc_thread_join_w(&w, t, deadline, slice_ns, poll);
  return rc == CC_WAIT_PARK ? cc_wait_run(&w) : rc;
}

int cc_thread_join(cc_thread_t *t, cc_deadline_t deadline) {
  return cc_thread_join_poll(t, deadline, 0, NULL);
}
