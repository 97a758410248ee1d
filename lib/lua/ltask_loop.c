/*
 * ltask_loop.c - a thread's event loop (ltask_int.h, docs/TASKS.md): a
 * libuv loop, a FIFO of ready tasks and a bell; created on first use,
 * closed when the thread ends. A round resumes the ready tasks, then polls
 * libuv, blocking only when nothing is ready.
 */
#include <stdlib.h>

#include "interrupt.h"
#include "ltask_int.h"

_Thread_local conc_loop_t *conc_tl_loop;
#define tl_loop conc_tl_loop

/* ---- the loop ------------------------------------------------------------ */

/* The loop drains its bell every round; a dump that asks wakes it here. */
static void on_async(uv_async_t *a) {
  (void)a;
  if (cc_unlikely(atomic_load(&conc_dump_asking) != 0)) conc_dump_answer();
}

static void notify(void *arg) {
  uv_async_send(arg);
}

static void *helper_main(void *arg) {
  cc_bell_watch(arg);
  return NULL;
}

void conc_start_helper(conc_loop_t *lp) {
  if (!lp->helper_on && pthread_create(&lp->helper, NULL, helper_main, lp->bell) == 0)
    lp->helper_on = 1;
}

/* Closing the loop of a thread that ends (the key's destructor). */
static pthread_key_t loop_key;
static pthread_once_t loop_key_once = PTHREAD_ONCE_INIT;

static void close_walk(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void loop_destroy(void *arg) {
  conc_loop_t *lp = arg;
  if (!lp) return;
  conc_dump_wake_detach(&lp->async);
  if (lp->helper_on) {
    cc_bell_stop(lp->bell);
    pthread_join(lp->helper, NULL);
  }
  uv_walk(&lp->uv, close_walk, NULL);
  uv_run(&lp->uv, UV_RUN_DEFAULT);
  uv_loop_close(&lp->uv);
  cc_bell_free(lp->bell);
  free(lp->ready);
  free(lp->free_slots);
  if (tl_loop == lp) tl_loop = NULL;
  free(lp);
}

/* A forked child must not use its parent's loop (its epoll set and
 * handles are the parent's): it starts its own on first use. */
static void forget_loop_after_fork(void) {
  tl_loop = NULL;
  conc_running_task = NULL;
}

static void make_key(void) {
  pthread_key_create(&loop_key, loop_destroy);
  pthread_atfork(NULL, NULL, forget_loop_after_fork);
}

conc_loop_t *conc_loop_get(lua_State *L) {
  conc_loop_t *lp = tl_loop;
  if (cc_likely(lp != NULL)) return lp;
  pthread_once(&loop_key_once, make_key);
  lp = calloc(1, sizeof *lp);
  if (!lp || uv_loop_init(&lp->uv) != 0) {
    free(lp);
    luaL_error(L, "conc: cannot start an event loop");
    return NULL;
  }
  uv_async_init(&lp->uv, &lp->async, on_async);
  uv_unref((uv_handle_t *)&lp->async);
  uv_timer_init(&lp->uv, &lp->intr);
  uv_unref((uv_handle_t *)&lp->intr);
  lp->bell = cc_bell_new(notify, &lp->async);
  if (!lp->bell) {
    uv_close((uv_handle_t *)&lp->async, NULL);
    uv_close((uv_handle_t *)&lp->intr, NULL);
    uv_run(&lp->uv, UV_RUN_DEFAULT);
    uv_loop_close(&lp->uv);
    free(lp);
    luaL_error(L, "conc: %s", cc_strerror(CC_ENOMEM));
    return NULL;
  }
  tl_loop = lp;
  pthread_setspecific(loop_key, lp);
  conc_dump_wake_attach(&lp->async);
  return lp;
}

uv_async_t *conc_loop_wake_here(void) {
  return tl_loop ? &tl_loop->async : NULL;
}

uv_loop_t *conc_loop_uv(conc_loop_t *lp) {
  return &lp->uv;
}

void conc_ready(conc_task_t *t) {
  conc_loop_t *lp = t->loop;
  if (t->state == T_WAIT) lp->nwait--;
  t->state = T_READY;
  lp->ready[(lp->rhead + lp->rcount++) & (lp->rcap - 1)] = t;
}

int conc_ready_reserve(conc_loop_t *lp, uint32_t n) {
  uint32_t cap = lp->rcap ? lp->rcap : 64;
  conc_task_t **r;
  int *slots;
  if (cc_likely(n <= lp->rcap)) return 0;
  while (cap < n) {
    if (cap > INT32_MAX / 2) return CC_ENOMEM;
    cap *= 2;
  }
  if (!(slots = realloc(lp->free_slots, cap * sizeof *slots))) return CC_ENOMEM;
  lp->free_slots = slots;
  if (!(r = malloc(cap * sizeof *r))) return CC_ENOMEM;
  for (uint32_t i = 0; i < lp->rcount; i++) r[i] = lp->ready[(lp->rhead + i) & (lp->rcap - 1)];
  free(lp->ready);
  lp->ready = r;
  lp->rcap = cap;
  lp->rhead = 0;
  return 0;
}

void conc_stop_timer(conc_task_t *t) {
  if (t->timer) uv_timer_stop(t->timer);
}

/* Wakes whatever the bell collected: tasks whose wait was woken. */
static void drain_bell(conc_loop_t *lp) {
  cc_waiter_t *w = cc_bell_take(lp->bell), *next;
  for (; w; w = next) {
    next = w->wnext; /* before cc_waiter_take: a waker may push it again */
    if (cc_waiter_take(w)) {
      conc_task_t *t = w->task;
      conc_stop_timer(t);
      t->why = 0;
      conc_ready(t);
    }
  }
}

static void on_timer(uv_timer_t *tm) {
  conc_task_t *t = tm->data;
  if (t->state == T_SLEEP) {
    t->why = 0;
    conc_ready(t);
  } else if (t->state == T_WAIT) {
    if (cc_waiter_cancel(t->w->waiter)) {
      t->why = (t->w->wait.deadline != CC_FOREVER && cc_now_ns() >= t->w->wait.deadline)
                   ? CC_ETIMEOUT
                   : CC_EAGAIN;
      conc_ready(t);
    }
  } else if (t->state == T_IO) {
    t->why = CC_ETIMEOUT;
    conc_ready(t);
  }
}

void conc_free_timer(uv_handle_t *h) {
  free(h);
}

/* Arms the task's timer for `deadline` (nothing for CC_FOREVER). */
int conc_arm(conc_task_t *t, cc_deadline_t deadline) {
  int64_t ns, now;
  if (deadline == CC_FOREVER) return 0;
  if (!t->timer) {
    t->timer = malloc(sizeof *t->timer);
    if (!t->timer) return CC_ENOMEM;
    uv_timer_init(&t->loop->uv, t->timer);
    t->timer->data = t;
  }
  uv_update_time(&t->loop->uv);
  now = cc_now_ns();
  t->since = now; /* when its sleep (or timed wait) began, for conc.dump */
  ns = deadline - now;
  uv_timer_start(t->timer, on_timer, ns <= 0 ? 0 : (uint64_t)((ns + 999999) / 1000000), 0);
  return 0;
}

/* Resumes the tasks that are ready now; those made ready meanwhile wait
 * for the next round, after libuv has been polled.
 *
 * With many tasks a resume costs its cache misses more than its
 * instructions (docs/TASKS.md, "Switch cost"): the task, its coroutine,
 * its call frames, its function, its stack. So the loop prefetches them
 * ahead, in three steps so that not too many are in flight at once: the
 * task 4 places on; the coroutine, CallInfos and function of the one 2
 * places on (the task's fields arrived meanwhile); the stack of the next.
 * The hints are never read through: a stale one costs a useless prefetch. */
enum { AHEAD_TASK = 4, AHEAD_CORO = 2 };

/* (One function: GCC 12 takes a non-inlined helper that only prefetches
 * for a const function and drops the call.) */
static void run_ready(conc_loop_t *lp) {
  for (uint32_t n = lp->rcount; n > 0; n--) {
    uint32_t mask = lp->rcap - 1; /* a task run below may grow the ring */
    conc_task_t *t = lp->ready[lp->rhead], *u;
    lp->rhead = (lp->rhead + 1) & mask;
    lp->rcount--;
    if (lp->rcount >= AHEAD_TASK) { /* the task: its fields may cross a line */
      const char *p = (const char *)lp->ready[(lp->rhead + AHEAD_TASK - 1) & mask];
      __builtin_prefetch(p);
      __builtin_prefetch(p + 55);
    }
    if (lp->rcount >= AHEAD_CORO) {
      const char *co, *ci;
      u = lp->ready[(lp->rhead + AHEAD_CORO - 1) & mask];
      co = (const char *)u->co;
      ci = u->ci_hint;
      /* The lua_State, and the start of its stack, which lua_newthread
       * allocates right after it (when the allocator keeps them together). */
      for (int i = 0; i < 6; i++) __builtin_prefetch(co + 64 * i);
      __builtin_prefetch(u->fn_hint);
      if (ci) { /* its current CallInfo and the one before (allocated together) */
        __builtin_prefetch(ci - 80);
        __builtin_prefetch(ci - 17);
        __builtin_prefetch(ci);
        __builtin_prefetch(ci + 63);
      }
    }
    if (lp->rcount >= 1 && (u = lp->ready[lp->rhead])->stack_hint) {
      /* its stack around the called function's slot (none before its
       * first run: a prefetch of an unmapped page is not free) */
      const char *s = u->stack_hint;
      __builtin_prefetch(s);
      __builtin_prefetch(s + 64);
    }
    conc_task_resume(lp, t);
  }
}

void conc_on_intr(uv_timer_t *tm) {
  conc_loop_t *lp = tm->data;
  if (cc_interrupt) lp->interrupted = 1;
}

/* One round: ready tasks, then libuv (blocking when nothing is ready). */
void conc_round(conc_loop_t *lp) {
  int block, intr = cc_thread_interruptible();
  drain_bell(lp);
  run_ready(lp);
  drain_bell(lp);
  if (lp->live == 0 || (lp->main && lp->main->state == T_DONE && !lp->main_done_seen)) {
    if (lp->main) lp->main_done_seen = 1;
    return; /* conc.run decides what comes next */
  }
  block = lp->rcount == 0;
  /* Before blocking: the one spin policy (wait.h), when a task waits on a
   * primitive that another thread may release in a moment. */
  if (block && !cc_bell_sleep(lp->bell, lp->nwait ? cc_wait_spin : 0)) {
    drain_bell(lp);
    block = 0;
  }
  if (block) uv_ref((uv_handle_t *)&lp->async);
  if (block && intr) cc_interrupt_in_wait = 1;
  uv_run(&lp->uv, block ? UV_RUN_ONCE : UV_RUN_NOWAIT);
  if (block && intr) cc_interrupt_in_wait = 0;
  if (block) {
    cc_bell_awake(lp->bell);
    uv_unref((uv_handle_t *)&lp->async);
  }
}

