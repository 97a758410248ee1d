/*
 * ldump.c - conc.dump() and Ctrl-\ (SIGQUIT): every live thread, process
 * and task, what it waits for and since when, what it holds, and where its
 * Lua code is.
 *
 * Tracebacks are taken without ever reading a lua_State from a thread that
 * is not running it:
 * - a parked actor reports from its site record (trace.h), which it wrote
 *   itself when it parked: the observer's on_park runs on the parking
 *   thread, in the slow path only, and reads that thread's own state;
 * - a running one is asked through a hook (lua_sethook, the one call Lua
 *   allows from elsewhere, as lua.c's SIGINT handler does): at its next
 *   instruction it writes its traceback into its registry entry and the
 *   dumper, which waits a bounded time, prints it;
 * - the caller of conc.dump() reads its own stack;
 * - a thread idle in its event loop (libuv, waiting for timers or I/O)
 *   runs no hook: the dump rings the loop's async handle, and the loop
 *   answers on its own thread (conc_dump_answer) with its line and one
 *   block per task of the loop that no actor shows (tasks get an actor
 *   only when they first block: one that only sleeps, is ready or awaits
 *   has none). The caller's own loop is described the same way, directly;
 * - a task that runs Lua code without yielding keeps its loop from ever
 *   reaching its async callback, and a hook set on the thread's state does
 *   not fire in the task's coroutine (Lua keeps hooks per coroutine): the
 *   dump sets the hook on the coroutine the thread resumed last (`running`
 *   in its registry entry), and the loop answers from inside it.
 * Each OS thread's state is registered when luaopen_conc runs on it (the
 * main state, each conc thread's state) and unregistered when it closes.
 * A task's coroutine is named by conc_dump_running (ltask.c) while it runs.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "conclua.h"
#include "lconc.h"
#include "lockorder.h"
#include "ltask.h"
#include "pid.h"
#include "trace.h"

#define FRAMES 10
#define ANSWER 768
#define LOOP_SHOWN 100 /* tasks of a loop shown in full; the others counted */

typedef struct reg {
  struct reg *next;
  lua_State *L;
  _Atomic uint32_t asked, answered; /* request generations */
  _Atomic int64_t actor;            /* index + 1 of the actor that answered */
  char text[ANSWER];                /* written before `answered` (release) */
  /* Set with the answer, under reg_lock. From its loop (conc_dump_answer):
   * idle 1, the loop's live tasks (-1: no conc.run, an I/O call), their
   * blocks and the actors they cover; from the hook: idle 0. */
  int idle, loop_live;
  char *loop_text;
  int32_t *covered;
  int ncovered;
  uv_async_t *wake; /* its thread's loop's async handle, or NULL */
  /* The task coroutine its thread resumed last, or NULL: the dump sets its
   * hook under reg_lock. Its thread clears it before the coroutine may be
   * collected and, if a dump is asking, takes and drops reg_lock
   * (conc_dump_forget): a dump never hooks a freed one. */
  _Atomic(lua_State *) running;
} reg_t;

_Atomic int conc_dump_asking; /* dumps asking now (ltask.h) */

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static reg_t *regs;
static _Thread_local lua_State *tl_state;   /* this OS thread's state */
static _Thread_local lua_State *tl_running; /* a task's coroutine, while it runs */
static _Thread_local reg_t *tl_reg;         /* tl_state's entry */
static const char reg_key = 'd';

static void reg_free(reg_t *r) {
  free(r->loop_text);
  free(r->covered);
  free(r);
}

/* In a forked child only the forking thread exists: its state stays
 * registered, the others (copies nobody runs) are dropped, and the lock is
 * fresh (another thread may have held it at the fork). */
static void after_fork_child(void) {
  pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
  reg_t **p = &regs;
  reg_lock = fresh;
  atomic_store(&conc_dump_asking, 0); /* a dump of the parent's, not ours */
  tl_running = NULL; /* the child runs its job in the state, not the task */
  while (*p) {
    reg_t *r = *p;
    if (r->L == tl_state) {
      r->wake = NULL; /* the parent's loop: the child makes its own */
      atomic_store(&r->running, NULL);
      p = &r->next;
    } else {
      *p = r->next;
      reg_free(r);
    }
  }
}

__attribute__((constructor)) static void dump_atfork(void) {
  pthread_atfork(NULL, NULL, after_fork_child);
}

/* `running` is the coroutine its thread resumed last, until the loop lets
 * go of it: a dump may hook one that is suspended now (the hook fires when
 * it next runs, and answers only a dump that still asks), never a freed
 * one. A resume pays one plain store. */
void conc_dump_running(lua_State *co) {
  reg_t *r = tl_reg;
  tl_running = co;
  if (co && r) atomic_store_explicit(&r->running, co, memory_order_release);
}

/* The loop lets go of co. Dekker-style against the dump, which counts
 * itself in conc_dump_asking (seq_cst) before it reads `running` (seq_cst,
 * under reg_lock, which it holds while it hooks): here a seq_cst store of
 * NULL (co was resumed last) or a seq_cst fence (a later resume replaced
 * it, with a plain store), then a load of conc_dump_asking. Either the
 * dump reads `running` after that point (so not co), or this thread sees
 * it asking and waits for reg_lock, under which the dump is done with co
 * when it releases it. */
void conc_dump_forget(lua_State *co) {
  reg_t *r = tl_reg;
  if (!r) return;
  if (atomic_load_explicit(&r->running, memory_order_relaxed) == co)
    atomic_store(&r->running, NULL);
  else
    atomic_thread_fence(memory_order_seq_cst);
  if (atomic_load(&conc_dump_asking) != 0) {
    pthread_mutex_lock(&reg_lock);
    pthread_mutex_unlock(&reg_lock);
  }
}

/* Up to FRAMES Lua frames of L as "\n\tfile:line: in function 'f'", no
 * allocation (lua_getinfo without 'f'/'L' pushes nothing). */
static void frames(lua_State *L, char *buf, size_t n, int level) {
  lua_Debug ar;
  size_t len = strlen(buf);
  int shown = 0;
  while (shown < FRAMES && lua_getstack(L, level++, &ar)) {
    int w;
    if (!lua_getinfo(L, "Sln", &ar)) break;
    if (ar.currentline <= 0) continue; /* C functions */
    if (ar.name)
      w = snprintf(buf + len, n - len, "\n\t%s:%d: in %s '%s'", ar.short_src, ar.currentline,
                   ar.namewhat && *ar.namewhat ? ar.namewhat : "function", ar.name);
    else if (*ar.what == 'm')
      w = snprintf(buf + len, n - len, "\n\t%s:%d: in main chunk", ar.short_src, ar.currentline);
    else
      w = snprintf(buf + len, n - len, "\n\t%s:%d: in function <%s:%d>", ar.short_src,
                   ar.currentline, ar.short_src, ar.linedefined);
    if (w < 0 || (size_t)w >= n - len) break;
    len += (size_t)w;
    shown++;
  }
}

static lua_State *current_state(void) {
  return tl_running ? tl_running : tl_state;
}

static void describe_obj(char *buf, size_t n, const cc_obj_t *o) {
  if (!o)
    snprintf(buf, n, "?");
  else
    snprintf(buf, n, "%s '%.*s'", o->type->name, CC_NAME_MAX - 1, o->name);
}

/* Appends what actor a holds ("lock 'a', lock 'b'") to buf; on a's own
 * thread only (the objects are alive: a holds them). */
static void holds_of(const cc_actor_t *a, char *buf, size_t n) {
  int32_t nheld = atomic_load(&a->nheld);
  char what[CC_NAME_MAX + 32];
  if (nheld > CC_MAX_HELD) nheld = CC_MAX_HELD;
  for (int32_t i = 0; i < nheld; i++) {
    size_t len = strlen(buf);
    describe_obj(what, sizeof what, atomic_load(&a->held[i]));
    snprintf(buf + len, n - len, "%s%s", i ? ", " : "", what);
  }
}

/* What an actor says about itself, run on its own thread (its objects are
 * alive: it waits on them or holds them): "<since>\x1f<waits on>\x1f<holds>
 * \x1f<frames>". since: the wait_since of the wait it describes. */
static void describe_self(const cc_actor_t *a, int parked, const cc_obj_t *waiting, lua_State *L,
                          char *buf, size_t n) {
  size_t len;
  char what[CC_NAME_MAX + 32];
  describe_obj(what, sizeof what, waiting);
  snprintf(buf, n, "%lld\x1f%s\x1f", parked ? (long long)atomic_load(&a->wait_since) : 0LL,
           waiting ? what : "");
  holds_of(a, buf, n);
  len = strlen(buf);
  snprintf(buf + len, n - len, "\x1f");
  if (L) frames(L, buf, n, 0);
}

/* The observer's on_park: the parking thread records where it parks. */
static void on_park(cc_actor_t *a, cc_obj_t *o) {
  char text[CC_SITE_MAX];
  describe_self(a, 1, o, current_state(), text, sizeof text);
  cc_site_set(a, text);
}

/* The lock-order checker's "where": the first Lua frame with a line. */
static void where(char *buf, size_t n) {
  lua_State *L = current_state();
  buf[0] = '\0';
  if (L) conc_where(L, buf, n);
}

/* ---- running threads report through a hook ------------------------------- */

static void answer_here(int idle);

static void report_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  /* Under the lock that a dump sets hooks under: the two lua_sethook calls
   * must not interleave (a hook left set with mask 0 reads as "hooked"
   * for good, and its state would never be asked again). */
  pthread_mutex_lock(&reg_lock);
  lua_sethook(L, NULL, 0, 0);
  pthread_mutex_unlock(&reg_lock);
  if (atomic_load(&conc_dump_asking) == 0) return; /* the dump is gone */
  /* the thread's state, or the task it runs (its loop answers for both);
   * not a coroutine that only inherited the hook when it was made */
  if (L == tl_state || L == tl_running) answer_here(0);
}

static int answered(reg_t *r);

/* Whether every running thread of this process but `me` has answered. The
 * dump needs no more: a parked thread is described by its wait record, and
 * a registered state that runs no Lua (an idle worker's, kept for its next
 * thread) never answers, so waiting for every state would cost each dump
 * the whole 200 ms. */
static int running_answered(const cc_actor_t *me) {
  uint32_t n = cc_actor_count();
  int32_t here = (int32_t)getpid();
  unsigned char *got = calloc(n ? n : 1, 1);
  int all = 1;
  if (!got) return 0;
  pthread_mutex_lock(&reg_lock);
  for (reg_t *r = regs; r; r = r->next) {
    int64_t idx = atomic_load(&r->actor);
    if (idx > 0 && (uint64_t)idx <= n && answered(r)) got[idx - 1] = 1;
  }
  pthread_mutex_unlock(&reg_lock);
  for (uint32_t i = 0; i < n && all; i++) {
    cc_actor_t *a = cc_actor_at(i);
    cc_actor_snap_t sn;
    if (a == me || got[i]) continue;
    if (atomic_load_explicit(&a->state, memory_order_acquire) != CC_ACTOR_RUNNING) continue;
    cc_actor_snapshot(a, &sn); /* a running one's identity, whole */
    if (sn.state == CC_ACTOR_RUNNING && sn.pid == here && sn.kind == CC_ACTOR_THREAD) all = 0;
  }
  free(got);
  return all;
}

/* Asks every registered state but `self` to report; waits up to about
 * 200 ms for the answers of the threads that run Lua code. */
static void ask_running(lua_State *self) {
  const cc_actor_t *me = self ? cc_self() : NULL;
  int pending = 0;
  atomic_fetch_add(&conc_dump_asking, 1);
  pthread_mutex_lock(&reg_lock);
  for (reg_t *r = regs; r; r = r->next) {
    int hooked;
    lua_State *co = atomic_load(&r->running);
    if (self && (r->L == self || co == self)) continue; /* the caller reads its own */
    if (co && !lua_gethook(co)) /* a task that runs: answers from inside it */
      lua_sethook(co, report_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT, 1);
    hooked = lua_gethook(r->L) != NULL;
    if (hooked && !r->wake) continue;
    atomic_fetch_add(&r->asked, 1);
    if (!hooked)
      lua_sethook(r->L, report_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT,
                  1);
    /* A loop idle in libuv runs no hook: it answers when woken. */
    if (r->wake) uv_async_send(r->wake);
    pending++;
  }
  pthread_mutex_unlock(&reg_lock);
  for (int i = 0; pending && i < 200; i++) {
    struct timespec ms = {0, 1000000};
    int left = 0;
    pthread_mutex_lock(&reg_lock);
    for (reg_t *r = regs; r; r = r->next)
      if (r->L != self && atomic_load(&r->asked) != atomic_load(&r->answered)) left++;
    pthread_mutex_unlock(&reg_lock);
    if (!left || running_answered(me)) break;
    nanosleep(&ms, NULL);
  }
  atomic_fetch_sub(&conc_dump_asking, 1);
}

static int answered(reg_t *r) {
  uint32_t gen = atomic_load_explicit(&r->answered, memory_order_acquire);
  return gen && gen == atomic_load(&r->asked);
}

/* The answer of the state that reported for actor index idx, if any; from
 * its loop: *loop_live and a copy of its tasks' blocks (*loop_text). */
static int answer_of(uint32_t idx, char *buf, size_t n, int *idle, int *loop_live,
                     char **loop_text) {
  int found = 0;
  pthread_mutex_lock(&reg_lock);
  for (reg_t *r = regs; r && !found; r = r->next) {
    if (answered(r) && atomic_load(&r->actor) == (int64_t)idx + 1) {
      snprintf(buf, n, "%s", r->text);
      *idle = r->idle;
      *loop_live = r->loop_live;
      *loop_text = r->loop_live >= 0 && r->loop_text ? strdup(r->loop_text) : NULL;
      found = 1;
    }
  }
  pthread_mutex_unlock(&reg_lock);
  return found;
}

/* ---- the text -------------------------------------------------------------- */

typedef struct out {
  char *s;
  size_t len, cap;
} out_t;

static void put(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out_t *o, const char *fmt, ...) {
  va_list ap;
  int w;
  for (;;) {
    size_t room = o->cap - o->len;
    va_start(ap, fmt);
    w = o->s ? vsnprintf(o->s + o->len, room, fmt, ap) : -1;
    va_end(ap);
    if (w >= 0 && (size_t)w < room) {
      o->len += (size_t)w;
      return;
    }
    {
      size_t cap = o->cap ? o->cap * 2 : 4096;
      char *g;
      while (w >= 0 && cap < o->len + (size_t)w + 1) cap *= 2;
      if (!(g = realloc(o->s, cap))) return;
      o->s = g;
      o->cap = cap;
    }
  }
}

static const char *wait_kind(int k) {
  static const char *names[] = {"?", "lock", "condition", "semaphore", "event", "barrier",
                                "queue", "join", "sleep", "pipe", "other"};
  return k >= 0 && k <= CC_WAIT_OTHER ? names[k] : "?";
}

/* ---- a loop's tasks, described on the loop's own thread --------------------- */

typedef struct loop_rep {
  out_t o;
  int32_t *covered; /* actors (of tasks) the blocks show */
  int ncovered, capcovered, shown, more;
  int thread_actor; /* set by conc_loop_view before the first task */
  char thread[CC_NAME_MAX];
} loop_rep_t;

static void cover(loop_rep_t *r, int32_t idx) {
  if (r->ncovered == r->capcovered) {
    int cap = r->capcovered ? r->capcovered * 2 : 16;
    int32_t *g = realloc(r->covered, (size_t)cap * sizeof *g);
    if (!g) return;
    r->covered = g;
    r->capcovered = cap;
  }
  r->covered[r->ncovered++] = idx;
}

static void each_task(void *ud, const conc_task_view_t *v) {
  loop_rep_t *r = ud;
  char fr[CC_SITE_MAX];
  int64_t now = cc_now_ns();
  if (!r->thread[0] && r->thread_actor >= 0)
    snprintf(r->thread, sizeof r->thread, "%s", cc_actor_at((uint32_t)r->thread_actor)->name);
  if (v->actor >= 0) {
    /* Its actor shows a wait (or a sleep) in its own words; otherwise the
     * actor says "running", which it is not: the block here replaces it. */
    if (strcmp(v->state, "waiting") == 0 || strcmp(v->state, "sleeping") == 0) return;
    cover(r, v->actor);
  }
  if (r->shown == LOOP_SHOWN) {
    r->more++;
    return;
  }
  r->shown++;
  put(&r->o, "task 'task-%lld' (pid %d, in thread '%s'%s): %s", (long long)v->id, (int)getpid(),
      r->thread, v->is_main ? ", conc.run's task" : "", v->state);
  if (strcmp(v->state, "running") == 0)
    put(&r->o, " (its loop runs nothing else until it yields or waits)");
  if (v->awaited) put(&r->o, " task-%lld (conc.gather or task:await)", (long long)v->awaited);
  if (v->since && now > v->since) put(&r->o, " for %.3f s", (double)(now - v->since) / 1e9);
  if (v->left_ms >= 0) put(&r->o, ", %.3f s left", (double)v->left_ms / 1e3);
  fr[0] = '\0';
  if (v->actor >= 0) { /* a task of this thread: what it holds is alive */
    holds_of(cc_actor_at((uint32_t)v->actor), fr, sizeof fr);
    if (fr[0]) put(&r->o, "\n  holds: %s", fr);
    fr[0] = '\0';
  }
  frames(v->co, fr, sizeof fr, 0);
  if (fr[0])
    put(&r->o, "\n  stack traceback:%s\n", fr);
  else
    put(&r->o, "\n  (no Lua traceback: %s)\n",
        strcmp(v->state, "running") == 0 ? "it runs a task" : "it has not started");
}

/* This thread's loop (run by conc.run): its live tasks, or -1. */
static int loop_report(loop_rep_t *r, int with_running) {
  int live;
  memset(r, 0, sizeof *r);
  r->thread_actor = -1;
  live = conc_loop_view(each_task, r, &r->thread_actor, with_running);
  if (r->more) put(&r->o, "  ... and %d more tasks\n", r->more);
  return live;
}

/* The answer of this thread, when it may run a loop: its own line, and one
 * block per task of its loop. From the loop's async callback (idle: no Lua
 * code runs, so this thread's state and its tasks' coroutines are all
 * suspended and may be read) or from the hook inside a running task (the
 * task's stack is read from its own hook). The loop's thread actor answers:
 * a task's actor, the current one then, is covered by its block. */
static void answer_here(int idle) {
  lua_State *L = tl_state;
  reg_t *r = tl_reg;
  uint32_t gen;
  loop_rep_t rep;
  char text[ANSWER];
  cc_actor_t *a;
  int live;
  if (!L || !r) return;
  gen = atomic_load(&r->asked);
  if (gen == atomic_load(&r->answered)) return;
  live = loop_report(&rep, !idle);
  a = live >= 0 && rep.thread_actor >= 0 ? cc_actor_at((uint32_t)rep.thread_actor) : cc_self();
  describe_self(a, 0, NULL, L, text, sizeof text);
  pthread_mutex_lock(&reg_lock);
  if (lua_gethook(L) == report_hook) lua_sethook(L, NULL, 0, 0); /* answered here */
  if (atomic_load(&r->asked) == gen) {
    memcpy(r->text, text, sizeof text);
    free(r->loop_text);
    free(r->covered);
    r->idle = idle;
    r->loop_live = live;
    r->loop_text = rep.o.s;
    r->covered = rep.covered;
    r->ncovered = rep.ncovered;
    rep.o.s = NULL;
    rep.covered = NULL;
    atomic_store(&r->actor, (int64_t)a->index + 1);
    atomic_store_explicit(&r->answered, gen, memory_order_release);
  }
  pthread_mutex_unlock(&reg_lock);
  free(rep.o.s);
  free(rep.covered);
}

/* The loop's answer (ltask_loop.c's on_async, while a dump asks). */
void conc_dump_answer(void) {
  answer_here(1);
}

void conc_dump_wake_attach(uv_async_t *w) {
  pthread_mutex_lock(&reg_lock);
  for (reg_t *r = regs; r; r = r->next)
    if (r->L == tl_state) r->wake = w;
  pthread_mutex_unlock(&reg_lock);
}

void conc_dump_wake_detach(uv_async_t *w) {
  pthread_mutex_lock(&reg_lock);
  for (reg_t *r = regs; r; r = r->next)
    if (r->wake == w) r->wake = NULL;
  pthread_mutex_unlock(&reg_lock);
}

/* Whether actor idx is a task that a loop's answer (or own) describes. */
static int covered_by(const loop_rep_t *own, uint32_t idx) {
  int found = 0;
  for (int i = 0; own && i < own->ncovered; i++)
    if (own->covered[i] == (int32_t)idx) return 1;
  pthread_mutex_lock(&reg_lock);
  for (reg_t *r = regs; r && !found; r = r->next)
    if (r->loop_live >= 0 && answered(r))
      for (int i = 0; i < r->ncovered && !found; i++) found = r->covered[i] == (int32_t)idx;
  pthread_mutex_unlock(&reg_lock);
  return found;
}

/* The dump as a malloc'd string (NULL when out of memory). self: the
 * calling thread's state (its own stack is read directly), or NULL. */
static char *dump_text(lua_State *self) {
  out_t o = {NULL, 0, 0};
  uint32_t n = cc_actor_count();
  int32_t here = (int32_t)getpid();
  cc_actor_t *me = self ? cc_self() : NULL;
  /* a C caller (conclua_dump: the program's end, a host) that has an actor */
  const cc_actor_t *c_caller = self ? NULL : cc_self_tls;
  char buf[CC_SITE_MAX + ANSWER], who[128];
  loop_rep_t own; /* the caller's loop, if it runs in one */
  int own_live = self ? loop_report(&own, 0) : -1, own_shown = 0;
  ask_running(self);
  put(&o, "conc.dump (pid %d):\n", (int)here);
  for (uint32_t i = 0; i < n; i++) {
    cc_actor_t *a = cc_actor_at(i);
    uint32_t st = atomic_load_explicit(&a->state, memory_order_acquire);
    int32_t nheld = atomic_load(&a->nheld), pid;
    int64_t since = 0, now;
    char *said = NULL, *on = NULL, *holds = NULL, *frames_ = NULL, *loop_text = NULL;
    int idle = 0, loop_live = -1;
    cc_actor_snap_t sn; /* its identity, whole: a slot may be reused as we look */
    if (st != CC_ACTOR_RUNNING && st != CC_ACTOR_WAITING) continue;
    cc_actor_snapshot(a, &sn);
    st = sn.state;
    if (st != CC_ACTOR_RUNNING && st != CC_ACTOR_WAITING) continue;
    if (sn.kind == CC_ACTOR_RUNTIME) continue; /* the runtime's own (the reaper) */
    pid = sn.pid;
    if (pid != here && cc_pid_dead(pid)) continue;
    /* A task that a loop describes (it is not running, whatever its actor
     * says); the thread of the caller's loop, if the caller is its task. */
    if (st == CC_ACTOR_RUNNING && a != me && covered_by(own_live >= 0 ? &own : NULL, i))
      continue;
    if (own_live >= 0 && a != me && (int)i == own.thread_actor && st == CC_ACTOR_RUNNING) {
      cc_actor_snap_describe(&sn, who, sizeof who);
      put(&o, "%s (pid %d): running its event loop (%d task%s)\n  (its Lua code runs in its "
              "tasks)\n", who, (int)pid, own_live, own_live == 1 ? "" : "s");
      continue;
    }
    /* What the actor said about itself: now (the caller), when it parked,
     * or through the hook. Only its own words name objects. */
    buf[0] = '\0';
    if (a == me) {
      describe_self(a, 0, NULL, NULL, buf, sizeof buf);
      frames(self, buf, sizeof buf, 1);
    } else if (st == CC_ACTOR_WAITING) {
      since = atomic_load(&a->wait_since);
      for (int tries = 0; tries < 50; tries++) { /* it may be writing it now */
        cc_site_get(a, buf, sizeof buf);
        if (buf[0] && strtoll(buf, NULL, 10) == since) break;
        buf[0] = '\0';
        if (atomic_load(&a->state) != CC_ACTOR_WAITING) break;
        sched_yield();
      }
    } else {
      answer_of(a->index, buf, sizeof buf, &idle, &loop_live, &loop_text);
    }
    if (buf[0] && (on = strchr(buf, '\x1f')) && (holds = strchr(on + 1, '\x1f')) &&
        (frames_ = strchr(holds + 1, '\x1f'))) {
      *on++ = *holds++ = *frames_++ = '\0';
      said = buf;
    }
    cc_actor_snap_describe(&sn, who, sizeof who);
    put(&o, "%s", who);
    if (sn.kind != CC_ACTOR_PROCESS) put(&o, " (pid %d)", (int)pid);
    if (st == CC_ACTOR_WAITING) {
      int k = atomic_load(&a->wait_kind);
      now = cc_now_ns();
      put(&o, ": waiting (%s) on %s for %.3f s%s\n", wait_kind(k),
          said && *on ? on : wait_kind(k), since && now > since ? (double)(now - since) / 1e9 : 0.0,
          atomic_load(&a->wait_timed) ? ", with a timeout" : "");
    } else if (idle && loop_live >= 0) {
      put(&o, ": waiting in its event loop (%d task%s)\n", loop_live, loop_live == 1 ? "" : "s");
    } else if (idle) {
      put(&o, ": waiting in its event loop (an I/O call)\n");
    } else if (loop_live >= 0) {
      put(&o, ": running a task in its event loop (%d task%s)\n", loop_live,
          loop_live == 1 ? "" : "s");
    } else if (a == c_caller) {
      put(&o, ": running C code: it asked for this report\n");
    } else {
      put(&o, ": running\n");
    }
    if (said && *holds)
      put(&o, "  holds: %s\n", holds);
    else if (nheld > 0)
      put(&o, "  holds: %d lock%s\n", (int)nheld, nheld > 1 ? "s" : "");
    if (said && *frames_)
      put(&o, "  stack traceback:%s\n", frames_);
    else if (pid != here) /* parked: its record; running: no hook reaches it */
      put(&o, "  (no Lua traceback: %s in process %d)\n",
          st == CC_ACTOR_WAITING ? "it parked outside Lua code" : "it runs", (int)pid);
    else if (a != c_caller)
      put(&o, "  (no Lua traceback: %s)\n",
          st == CC_ACTOR_WAITING ? "it parked outside Lua code" : "it is not running Lua code now");
    if (loop_text) put(&o, "%s", loop_text);
    free(loop_text);
    if (a == me && own_live >= 0 && own.o.s) {
      put(&o, "%s", own.o.s);
      own_shown = 1;
    }
  }
  if (own_live >= 0 && own.o.s && !own_shown) put(&o, "%s", own.o.s);
  if (own_live >= 0) {
    free(own.o.s);
    free(own.covered);
  }
  return o.s;
}

static int dump(lua_State *L) {
  char *s = dump_text(L);
  if (!s) return luaL_error(L, "not enough memory");
  lua_pushstring(L, s);
  free(s);
  return 1;
}

/* ---- registration -------------------------------------------------------- */

static int unregister(lua_State *L) {
  reg_t **p;
  lua_State *mainL;
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  mainL = lua_tothread(L, -1);
  lua_pop(L, 1);
  pthread_mutex_lock(&reg_lock);
  for (p = &regs; *p; p = &(*p)->next)
    if ((*p)->L == mainL) {
      reg_t *r = *p;
      *p = r->next;
      if (tl_reg == r) tl_reg = NULL;
      reg_free(r);
      break;
    }
  pthread_mutex_unlock(&reg_lock);
  if (tl_state == mainL) tl_state = NULL;
  return 0;
}

void conc_open_dump(lua_State *L) {
  lua_State *mainL;
  /* CONCLUA_DUMP_SITES=0: parks record nothing (dumps then show no
   * traceback for a parked thread): the baseline of bench/trace_bench.lua,
   * no observer at all. */
  {
    const char *env = getenv("CONCLUA_DUMP_SITES");
    cc_site_hooks(env && strcmp(env, "0") == 0 ? NULL : on_park, where);
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  mainL = lua_tothread(L, -1);
  lua_pop(L, 1);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &reg_key) == LUA_TNIL) {
    reg_t *r = calloc(1, sizeof *r);
    lua_newuserdatauv(L, 0, 0);
    lua_newtable(L);
    lua_pushcfunction(L, unregister);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &reg_key);
    if (r) {
      r->L = mainL;
      r->loop_live = -1;
      pthread_mutex_lock(&reg_lock);
      r->next = regs;
      regs = r;
      pthread_mutex_unlock(&reg_lock);
    }
  }
  lua_pop(L, 1);
  tl_state = mainL;
  pthread_mutex_lock(&reg_lock);
  for (tl_reg = regs; tl_reg && tl_reg->L != mainL; tl_reg = tl_reg->next) {
  }
  if (tl_reg && !tl_reg->wake) tl_reg->wake = conc_loop_wake_here();
  pthread_mutex_unlock(&reg_lock);
  /* The process's main thread shows in dumps from the start (other
   * threads get their actor when the runtime starts them). */
  if (syscall(SYS_gettid) == getpid()) cc_self();
  lua_pushcfunction(L, dump);
  lua_setfield(L, -2, "dump");
}

/* ---- the C API: conclua_dump and Ctrl-\ ------------------------------------ */

char *conclua_dump(void) {
  return dump_text(NULL);
}

/* SIGQUIT is blocked in the calling thread, so in every thread started
 * after it, and taken by one thread of its own with sigwait: the dump never
 * runs in a signal handler, and no thread is interrupted. The handler that
 * is installed as well does nothing: it only keeps a forked child (whose
 * mask cc_child_setup clears) from dumping core on Ctrl-\\. */
static pthread_once_t quit_once = PTHREAD_ONCE_INIT;
static int quit_rc = CONCLUA_ESYS;

static void on_sigquit(int sig) {
  (void)sig;
}

static void *quit_thread(void *arg) {
  sigset_t *set = arg;
  for (;;) {
    int sig;
    char *s;
    if (sigwait(set, &sig) != 0) continue;
    s = dump_text(NULL);
    if (s) {
      fputs(s, stderr);
      fflush(stderr);
      free(s);
    }
  }
  return NULL;
}

static void install_quit(void) {
  static sigset_t quit;
  sigset_t all, old;
  struct sigaction sa;
  pthread_t th;
  pthread_attr_t at;
  /* The arena first: the thread then sees it mapped (thread creation
   * orders the two). */
  if (cc_arena_init() != 0) return;
  sigemptyset(&quit);
  sigaddset(&quit, SIGQUIT);
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigquit;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (pthread_sigmask(SIG_BLOCK, &quit, NULL) != 0) return;
  sigaction(SIGQUIT, &sa, NULL);
  pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  /* The thread takes no other signal: Ctrl-C must reach the main thread,
   * whose wait it interrupts. */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  if (pthread_create(&th, &at, quit_thread, &quit) == 0) quit_rc = CONCLUA_OK;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&at);
}

int conclua_dump_on_sigquit(void) {
  pthread_once(&quit_once, install_quit);
  return quit_rc;
}

/* ---- the C API: traces and the lock-order checker -------------------------- */

int conclua_trace_start(const char *json_path, const char *html_path, char *err, size_t n) {
  char buf[512];
  int rc;
  if (!json_path && !html_path) return CONCLUA_EINVAL;
  if (cc_arena_init() != 0) {
    if (err && n) snprintf(err, n, "%s", cc_arena_error());
    return CONCLUA_ESYS;
  }
  rc = cc_trace_open(json_path, html_path, buf, sizeof buf);
  if (rc != 0 && err && n) snprintf(err, n, "%s", buf);
  return rc == 0 ? CONCLUA_OK : rc == CC_EINVAL ? CONCLUA_EINVAL : CONCLUA_ESYS;
}

int conclua_trace_stop(char *err, size_t n) {
  char buf[512];
  int rc = cc_trace_close(buf, sizeof buf);
  if (rc != 0 && err && n) snprintf(err, n, "%s", buf);
  return rc == 0 ? CONCLUA_OK : CONCLUA_ESYS;
}

void conclua_lock_order(void) {
  if (cc_arena_init() == 0) cc_lockorder_enable();
}
