/*
 * process.c - fork, the reaper, and what a dead child leaves behind; see
 * process.h and docs/PROCESSES.md.
 *
 * Process-private state (pthreads and file descriptors do not survive fork):
 * the list of children this process forked and not yet reaped, the reaper
 * thread and its eventfd. reap_mu guards the list; it is a leaf lock (only
 * waitpid, kill and list operations run under it) and it is held across
 * fork() by an atfork prepare handler, so a child always finds the list
 * whole and can drop it. The list nodes and the reaper's poll array come
 * from the arena, not malloc: the reaper never enters malloc, so it cannot
 * hold a malloc lock that a fork would leave locked (glibc guards its own
 * around fork(); some sanitizer runtimes do not).
 *
 * Lifetimes: the forker's caller holds one reference to a Process; the
 * reaper holds another from the fork until the child is reaped and the
 * Process settled. Whoever settles the Process (the reaper, or a joiner in
 * another process whose forker died) does it once: `settled` is a CAS.
 */
#include "process.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "actor.h"
#include "futex.h"
#include "mutex.h"

/* Polling period without pidfds, and for joiners outside the forker. */
#define REAP_POLL_MS 10
#define ORPHAN_POLL_NS 100000000

static cc_process_hooks_t hooks;

void cc_process_set_hooks(const cc_process_hooks_t *h) {
  hooks = *h;
}

/* ---- signal names --------------------------------------------------------- */

static const struct {
  int sig;
  const char *name;
} signames[] = {
    {SIGHUP, "SIGHUP"},   {SIGINT, "SIGINT"},   {SIGQUIT, "SIGQUIT"},
    {SIGILL, "SIGILL"},   {SIGTRAP, "SIGTRAP"}, {SIGABRT, "SIGABRT"},
    {SIGBUS, "SIGBUS"},   {SIGFPE, "SIGFPE"},   {SIGKILL, "SIGKILL"},
    {SIGUSR1, "SIGUSR1"}, {SIGSEGV, "SIGSEGV"}, {SIGUSR2, "SIGUSR2"},
    {SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"}, {SIGTERM, "SIGTERM"},
    {SIGCHLD, "SIGCHLD"}, {SIGCONT, "SIGCONT"}, {SIGSTOP, "SIGSTOP"},
    {SIGTSTP, "SIGTSTP"}, {SIGTTIN, "SIGTTIN"}, {SIGTTOU, "SIGTTOU"},
    {SIGXCPU, "SIGXCPU"}, {SIGXFSZ, "SIGXFSZ"}, {SIGWINCH, "SIGWINCH"},
    {SIGSYS, "SIGSYS"},
};
#define NSIGNAMES (sizeof signames / sizeof signames[0])

const char *cc_signal_name(int sig, char *buf, size_t n) {
  for (size_t i = 0; i < NSIGNAMES; i++)
    if (signames[i].sig == sig) return signames[i].name;
  snprintf(buf, n, "signal %d", sig);
  return buf;
}

int cc_signal_number(const char *name) {
  if (strncmp(name, "SIG", 3) == 0) name += 3;
  for (size_t i = 0; i < NSIGNAMES; i++)
    if (strcmp(signames[i].name + 3, name) == 0) return signames[i].sig;
  return 0;
}

/* ---- the object ------------------------------------------------------------ */

static void drop_job(cc_process_t *p) {
  void *job = p->t.job;
  if (!job) return;
  p->t.job = NULL;
  atomic_signal_fence(memory_order_seq_cst); /* cleared before anything is freed */
  if (hooks.release_payload) hooks.release_payload(job, p->t.job_len);
  cc_free(job);
}

static void process_destroy(cc_obj_t *o) {
  cc_process_t *p = (cc_process_t *)o;
  if (atomic_load(&p->t.done) && p->t.status == CC_T_ERROR &&
      !atomic_load(&p->t.observed) && hooks.on_unobserved_error)
    hooks.on_unobserved_error(p);
  drop_job(p);
  if (p->t.result && p->t.status == CC_T_OK && hooks.release_payload)
    hooks.release_payload(p->t.result, p->t.result_len);
  cc_free(p->t.result);
}

void cc_process_drop_job(cc_process_t *p) {
  drop_job(p);
}

const cc_type_t cc_process_type = {"process", process_destroy, NULL, NULL};

cc_process_t *cc_process_new(const char *name, int daemon) {
  cc_process_t *p = cc_obj_new(&cc_process_type, sizeof *p, name);
  if (!p) return NULL;
  p->t.tid = p->t.h.id;
  if (!name || !*name)
    snprintf(p->t.h.name, CC_NAME_MAX, "process-%lld", (long long)p->t.tid);
  p->t.daemon = daemon != 0;
  p->t.is_process = 1;
  p->t.pid = 0;
  p->ppid = cc_pid;
  return p;
}

int cc_process_exitcode(const cc_process_t *p) {
  return p->t.exitcode;
}

/* ---- what a dead process leaves behind ------------------------------------- */

static void describe(const cc_actor_t *a, char *buf, size_t n) {
  if (a->kind == CC_ACTOR_PROCESS)
    cc_actor_describe(a, buf, n);
  else
    snprintf(buf, n, "thread '%s' of process %d", a->name, (int)a->pid);
}

/* Releases every lock-like object actor `a` still holds, with a warning
 * each. `a` is either the caller's own actor (a child ending normally) or
 * the actor of a dead process. Works from a snapshot of the hold list: the
 * abandon hook of the caller's own actor edits the live one, and a list
 * torn by a kill may hold duplicates (the owner check skips them). */
static void release_holds(cc_actor_t *a, const char *verb) {
  cc_obj_t *held[CC_MAX_HELD];
  int32_t n = atomic_load(&a->nheld);
  char who[128];
  if (n > CC_MAX_HELD) n = CC_MAX_HELD;
  for (int32_t i = 0; i < n; i++)
    held[i] = atomic_load(&a->held[i]);
  for (int32_t i = n - 1; i >= 0; i--) {
    cc_obj_t *o = held[i];
    if (!cc_obj_valid(o) || !o->type->abandon) continue;
    if (o->type->owner && o->type->owner(o) != a) continue;
    describe(a, who, sizeof who);
    fprintf(stderr, "conclua: warning: %s %s holding %s '%s'; released it\n", who, verb,
            o->type->name, o->name);
    fflush(stderr);
    o->type->abandon(o, a);
  }
  atomic_store(&a->nheld, 0);
}

/* Ends a wait record left by a dead actor, so that deadlock detection does
 * not follow it. */
static void clear_wait(cc_actor_t *a) {
  cc_globals_t *g = cc_globals();
  cc_mutex_lock(&g->graph_lock);
  atomic_store(&a->wait_kind, 0);
  atomic_store(&a->waiting_on, NULL);
  cc_mutex_unlock(&g->graph_lock);
}

/* Stores an error text as a Thread's outcome. */
static void set_text(cc_thread_t *t, const char *text) {
  size_t len = strlen(text);
  char *s = cc_alloc(len + 1);
  if (s) memcpy(s, text, len + 1);
  t->result = s;
  t->result_len = s ? len : 0;
}

/* Threads that ran inside the dead process: nobody will finish them. */
typedef struct orphans {
  cc_thread_t *t[64];
  int n;
  int32_t pid;
} orphans_t;

static int collect_orphan(cc_thread_t *t, void *ud) {
  orphans_t *o = ud;
  if (t->is_process || t->pid != o->pid || atomic_load(&t->done)) return 0;
  cc_obj_ref(&t->h);
  o->t[o->n++] = t;
  return o->n == 64;
}

static void finish_orphan_threads(int32_t pid) {
  orphans_t o;
  char text[160];
  do {
    o.n = 0;
    o.pid = pid;
    cc_thread_foreach(collect_orphan, &o);
    for (int i = 0; i < o.n; i++) {
      cc_thread_t *t = o.t[i];
      cc_thread_unregister(t);
      if (!atomic_load(&t->done)) {
        snprintf(text, sizeof text, "thread '%s' died with its process (pid %d)",
                 t->h.name, (int)pid);
        set_text(t, text);
        t->status = CC_T_ERROR;
        t->actor = NULL;
        atomic_store(&t->observed, 1);
        atomic_store_explicit(&t->done, 1, memory_order_release);
        cc_futex_wake(&t->done, INT32_MAX);
      }
      cc_obj_unref(&t->h);
    }
  } while (o.n == 64);
}

/* Frees the slot of actor `a` of a dead process, releasing its holds first:
 * a freed slot reused by a live thread would otherwise make that thread
 * look like the owner of the dead one's locks. Claiming the slot is a CAS on
 * its state, so two sweepers never free one slot twice. */
static void free_dead_actor(cc_actor_t *a) {
  uint32_t s = atomic_load(&a->state);
  if (s == CC_ACTOR_FREE || s == CC_ACTOR_DONE) return;
  if (!atomic_compare_exchange_strong(&a->state, &s, CC_ACTOR_DONE)) return;
  release_holds(a, "died");
  clear_wait(a);
  cc_actor_free(a);
}

/* Frees the actors of the dead process `pid`: its main one (also found
 * through the Process, in case the child died before writing its pid into
 * it) and those of the threads it ran. An actor's pid is written before its
 * state becomes RUNNING (cc_actor_new), so reading the state first makes
 * the pid safe to read. */
static void free_dead_actors(cc_actor_t *main_actor, int32_t pid) {
  if (main_actor) free_dead_actor(main_actor);
  for (uint32_t i = 0; i < CC_MAX_ACTORS; i++) {
    cc_actor_t *a = cc_actor_at(i);
    uint32_t s = atomic_load(&a->state);
    if (s != CC_ACTOR_FREE && s != CC_ACTOR_DONE && a->pid == pid) free_dead_actor(a);
  }
}

/* Finishes p once: how it ended, its outcome if it never reported one, the
 * dead child's leftovers, then done and a wake for the joiners.
 * how: CC_PROC_EXITED (value: exit status), CC_PROC_KILLED (value: signal),
 * CC_PROC_LOST. Returns 1 when this call settled p. */
static int settle(cc_process_t *p, int how, int value) {
  uint32_t z = 0;
  char text[192], sb[32];
  if (!atomic_compare_exchange_strong(&p->settled, &z, 1)) return 0;
  if (how == CC_PROC_KILLED) {
    p->t.exitcode = -value;
    p->termsig = value;
  } else if (how == CC_PROC_EXITED) {
    p->t.exitcode = value;
  }
  if (atomic_load_explicit(&p->reported, memory_order_acquire)) {
    p->how = CC_PROC_REPORTED;
    if (how == CC_PROC_LOST) p->t.exitcode = p->t.status == CC_T_OK ? 0 : 1;
  } else {
    p->how = how;
    p->t.status = CC_T_ERROR;
    if (how == CC_PROC_KILLED) {
      snprintf(text, sizeof text, "process '%s' was killed by signal %d (%s)",
               p->t.h.name, value, cc_signal_name(value, sb, sizeof sb));
    } else if (how == CC_PROC_EXITED && value == 0) {
      p->t.status = CC_T_OK; /* os.exit(true) and the like: no results */
      text[0] = '\0';
    } else if (how == CC_PROC_EXITED) {
      snprintf(text, sizeof text, "process '%s' exited with status %d", p->t.h.name,
               value);
    } else {
      p->t.exitcode = -SIGKILL;
      snprintf(text, sizeof text, "process '%s' was lost: its parent process %d died",
               p->t.h.name, (int)p->ppid);
    }
    if (text[0]) set_text(&p->t, text);
    /* Not a Lua error: no traceback would be lost, so nothing to print. */
    atomic_store(&p->t.observed, 1);
  }
  drop_job(p); /* a child killed before it decoded its job */
  free_dead_actors(p->t.actor, p->t.pid);
  finish_orphan_threads(p->t.pid);
  p->t.actor = NULL;
  cc_thread_unregister(&p->t);
  atomic_store_explicit(&p->t.done, 1, memory_order_release);
  cc_futex_wake(&p->t.done, INT32_MAX);
  return 1;
}

/* ---- the reaper (process-private) ------------------------------------------- */

typedef struct child {
  cc_process_t *p; /* the reaper's reference */
  pid_t pid;
  int pidfd;   /* -1: found by polling waitpid */
  int wstatus; /* once reaped */
  struct child *next;
} child_t;

static pthread_mutex_t reap_mu = PTHREAD_MUTEX_INITIALIZER;
static child_t *children;
static int nchildren;
static int wake_fd = -1;
static int reaper_running;
static int use_pidfd = -1; /* -1 unknown, 0 no, 1 yes */

/* stdout and stderr are held across fork() too, flushed: a child must not
 * find their locks held by a thread it does not have (its first print
 * would hang), nor inherit output another thread buffered (written twice). */
static void reap_prepare(void) {
  flockfile(stdout);
  fflush_unlocked(stdout);
  flockfile(stderr);
  fflush_unlocked(stderr);
  pthread_mutex_lock(&reap_mu);
}

static void reap_parent(void) {
  pthread_mutex_unlock(&reap_mu);
  funlockfile(stderr);
  funlockfile(stdout);
}

/* In a child: the list (whole, thanks to reap_prepare) belongs to the
 * parent, whose reaper goes on using it (its nodes are in the shared arena)
 * and holds the references: close the fds this process got copies of, and
 * forget the list. */
static void reap_child(void) {
  for (child_t *c = children; c; c = c->next)
    if (c->pidfd >= 0) close(c->pidfd);
  children = NULL;
  nchildren = 0;
  if (wake_fd >= 0) close(wake_fd);
  wake_fd = -1;
  reaper_running = 0;
  use_pidfd = -1; /* read CONCLUA_NO_PIDFD again */
  pthread_mutex_init(&reap_mu, NULL);
  funlockfile(stderr); /* ours: the forking thread is this one */
  funlockfile(stdout);
}

__attribute__((constructor)) static void reap_atfork(void) {
  pthread_atfork(reap_prepare, reap_parent, reap_child);
}

static void wake_reaper(void) {
  uint64_t one = 1;
  if (write(wake_fd, &one, sizeof one) < 0) {
    /* EAGAIN: the counter is already non-zero, the reaper will look */
  }
}

/* A child that ended: unlinked from the list by the reaper. */
static void reaped(child_t *c) {
  cc_process_t *p = c->p;
  int daemon = p->t.daemon;
  if (WIFSIGNALED(c->wstatus))
    settle(p, CC_PROC_KILLED, WTERMSIG(c->wstatus));
  else
    settle(p, CC_PROC_EXITED, WEXITSTATUS(c->wstatus));
  if (c->pidfd >= 0) close(c->pidfd);
  cc_free(c);
  cc_obj_unref(&p->t.h); /* may destroy p (and report an unobserved error) */
  /* Last: the program may end as soon as no non-daemon child is left. */
  if (!daemon) cc_thread_count_nondaemon(-1);
}

/* Waits (WNOHANG) for the children whose pidfd is readable, or for every
 * child when `all` (children without a pidfd, or more than the poll array
 * holds), under reap_mu (so a kill under reap_mu never hits a recycled
 * pid); handles the dead ones after unlocking. */
static void reap_some(const struct pollfd *fds, int nfds, int all) {
  child_t *dead = NULL, **pp;
  int status;
  pthread_mutex_lock(&reap_mu);
  pp = &children;
  while (*pp) {
    child_t *c = *pp;
    int ready = all || c->pidfd < 0;
    for (int i = 1; i < nfds && !ready; i++)
      if (fds[i].fd == c->pidfd && (fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
        ready = 1;
    if (ready && waitpid(c->pid, &status, WNOHANG) == c->pid) {
      *pp = c->next;
      nchildren--;
      c->wstatus = status;
      c->next = dead;
      dead = c;
      continue;
    }
    pp = &c->next;
  }
  pthread_mutex_unlock(&reap_mu);
  while (dead) {
    child_t *next = dead->next;
    reaped(dead);
    dead = next;
  }
}

static void *reaper_main(void *arg) {
  struct pollfd *fds = NULL, one;
  int cap = 0;
  cc_actor_t *me = cc_actor_new("conclua reaper", cc_next_id(), CC_ACTOR_THREAD);
  (void)arg;
  if (me) cc_set_self(me);
  for (;;) {
    int n = 1, all = 0;
    uint64_t count;
    struct pollfd *set = fds;
    pthread_mutex_lock(&reap_mu);
    if (nchildren + 1 > cap) {
      int ncap = (nchildren + 1) * 2;
      struct pollfd *nf = cc_alloc((size_t)ncap * sizeof *nf);
      if (nf) {
        cc_free(fds);
        fds = set = nf;
        cap = ncap;
      }
    }
    if (!set) { /* out of memory: poll the wake fd, waitpid every child */
      set = &one;
      cap = 0;
    }
    set[0].fd = wake_fd;
    set[0].events = POLLIN;
    set[0].revents = 0;
    for (child_t *c = children; c; c = c->next) {
      if (c->pidfd < 0 || n >= cap) {
        all = 1;
        continue;
      }
      set[n].fd = c->pidfd;
      set[n].events = POLLIN;
      set[n].revents = 0;
      n++;
    }
    pthread_mutex_unlock(&reap_mu);
    if (poll(set, (nfds_t)n, all ? REAP_POLL_MS : -1) < 0) continue;
    if ((set[0].revents & POLLIN) && read(wake_fd, &count, sizeof count) < 0) {
      /* EAGAIN: somebody else drained it */
    }
    reap_some(set, n, all);
  }
  return NULL;
}

/* Starts this process's reaper if it is not running. */
static int reaper_start(void) {
  pthread_t th;
  pthread_attr_t attr;
  sigset_t all, old;
  int rc = 0;
  pthread_mutex_lock(&reap_mu);
  if (reaper_running) goto out;
  if (use_pidfd < 0) {
    const char *env = getenv("CONCLUA_NO_PIDFD");
    use_pidfd = !(env && *env && strcmp(env, "0") != 0);
  }
  if (wake_fd < 0) wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd < 0) {
    rc = CC_EAGAIN;
    goto out;
  }
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 << 10);
  sigfillset(&all);
  sigdelset(&all, SIGSEGV);
  sigdelset(&all, SIGBUS);
  sigdelset(&all, SIGFPE);
  sigdelset(&all, SIGILL);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  if (pthread_create(&th, &attr, reaper_main, NULL) != 0)
    rc = CC_EAGAIN;
  else
    reaper_running = 1;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
out:
  pthread_mutex_unlock(&reap_mu);
  return rc;
}

/* Hands the child to the reaper (with the reference taken for it), in the
 * node `c` allocated before the fork. */
static void reaper_add(child_t *c, cc_process_t *p, pid_t pid) {
  c->p = p;
  c->pid = pid;
  c->pidfd = -1;
  if (use_pidfd == 1) {
    long fd = syscall(SYS_pidfd_open, pid, 0);
    if (fd >= 0)
      c->pidfd = (int)fd;
    else if (errno == ENOSYS)
      use_pidfd = 0;
  }
  pthread_mutex_lock(&reap_mu);
  c->next = children;
  children = c;
  nchildren++;
  pthread_mutex_unlock(&reap_mu);
  wake_reaper();
}

/* ---- the child's side ---------------------------------------------------------- */

/* The parent's pid, for the parent-death signal handler. */
static volatile pid_t watched_parent;

/* PR_SET_PDEATHSIG fires when the *thread* that forked ends, not only when
 * its process does: a conc worker thread can end while its child lives on.
 * A child forked by the parent's main thread gets SIGKILL (the main thread
 * ends with its process). A child forked by another thread gets a catchable
 * signal instead, whose handler kills the child only if its parent process
 * is really gone (getppid() changed). */
static void on_parent_signal(int sig) {
  (void)sig;
  if (getppid() != watched_parent) kill(getpid(), SIGKILL);
}

static void watch_parent(pid_t parent, int by_main_thread) {
  int sig = SIGKILL;
  if (!by_main_thread) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_parent_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sig = SIGRTMAX - 1;
    watched_parent = parent;
    sigaction(sig, &sa, NULL);
  }
  prctl(PR_SET_PDEATHSIG, sig);
  /* The parent may have died before prctl: then nothing will ever fire. */
  if (getppid() != parent) kill(getpid(), SIGKILL);
}

static void child_setup(cc_process_t *p, cc_actor_t *a, pid_t parent,
                        int by_main_thread) {
  sigset_t none;
  watch_parent(parent, by_main_thread);
  a->pid = cc_pid;
  p->t.pid = cc_pid;
  cc_set_self(a);
  /* A child forked by a thread that Ctrl-C does not interrupt (a worker)
   * inherits a SIGINT handler meant for the parent's main thread: give it
   * the default action instead, so that Ctrl-C ends it. */
  if (!cc_thread_interruptible()) signal(SIGINT, SIG_DFL);
  sigemptyset(&none);
  pthread_sigmask(SIG_SETMASK, &none, NULL);
}

int cc_process_fork(cc_process_t *p) {
  cc_actor_t *a;
  child_t *c;
  pid_t parent = cc_pid, pid;
  int by_main_thread = syscall(SYS_gettid) == parent;
  int rc = reaper_start();
  if (rc != 0) return rc;
  if (!(c = cc_alloc(sizeof *c))) return CC_ENOMEM;
  a = cc_actor_new(p->t.h.name, p->t.tid, CC_ACTOR_PROCESS);
  if (!a) {
    cc_free(c);
    return CC_EAGAIN;
  }
  a->thread = &p->t.h;
  p->t.actor = a;
  p->ppid = parent;
  cc_obj_ref(&p->t.h); /* the reaper's reference */
  cc_thread_register(&p->t);
  if (!p->t.daemon) cc_thread_count_nondaemon(1);
  pid = fork(); /* reap_prepare flushes stdout and stderr */
  if (pid < 0) {
    if (!p->t.daemon) cc_thread_count_nondaemon(-1);
    cc_thread_unregister(&p->t);
    p->t.actor = NULL;
    cc_actor_free(a);
    cc_obj_unref(&p->t.h);
    cc_free(c);
    return CC_EAGAIN;
  }
  if (pid == 0) { /* `c` is the parent's: the arena is shared */
    child_setup(p, a, parent, by_main_thread);
    return 0;
  }
  p->t.pid = pid; /* the child writes its actor's pid itself */
  reaper_add(c, p, pid);
  return pid;
}

_Noreturn void cc_process_exit(cc_process_t *p, int status, void *result, size_t len) {
  cc_actor_t *a = cc_self();
  release_holds(a, "ended");
  p->t.result = result;
  p->t.result_len = len;
  p->t.status = status;
  atomic_store_explicit(&p->reported, 1, memory_order_release);
  cc_thread_wait_nondaemon();
  fflush(stdout);
  fflush(stderr);
  _exit(status == CC_T_OK ? 0 : 1);
}

/* ---- join and kill ----------------------------------------------------------------- */

static int pid_gone(int32_t pid) {
  return pid > 0 && kill(pid, 0) == -1 && errno == ESRCH;
}

int cc_process_join(cc_process_t *p, cc_deadline_t deadline) {
  int rc = 0, forker = p->ppid == cc_pid;
  for (int i = 0; i < cc_spin_count / 4; i++) {
    if (atomic_load_explicit(&p->t.done, memory_order_acquire)) return 0;
    cc_cpu_relax();
  }
  if (atomic_load_explicit(&p->t.done, memory_order_acquire)) return 0;
  if (deadline == CC_NOW) return CC_ETIMEOUT;
  cc_wait_begin(&p->t.h, CC_WAIT_JOIN, deadline);
  while (!atomic_load_explicit(&p->t.done, memory_order_acquire)) {
    cc_deadline_t until = deadline;
    if (!forker && cc_now_ns() + ORPHAN_POLL_NS < deadline)
      until = cc_now_ns() + ORPHAN_POLL_NS;
    rc = cc_futex_wait(&p->t.done, 0, until);
    if (rc == CC_EINTR) break;
    if (rc == CC_ETIMEOUT) {
      if (until == deadline) break;
      /* Only the forker can reap: if it died, the child died with it (the
       * parent-death signal) and nobody will ever settle p but us. */
      if (pid_gone(p->ppid) && pid_gone(p->t.pid)) settle(p, CC_PROC_LOST, 0);
    }
    rc = 0;
  }
  if (rc == CC_ETIMEOUT && atomic_load_explicit(&p->t.done, memory_order_acquire)) rc = 0;
  cc_wait_end(&p->t.h, rc);
  return rc;
}

int cc_process_kill(cc_process_t *p, int sig) {
  int rc = CC_ECLOSED;
  if (sig < 0 || sig >= NSIG) return CC_EINVAL;
  if (p->ppid == cc_pid) {
    /* Under reap_mu the child, if still listed, is not reaped yet: its pid
     * cannot have been given to another process. */
    pthread_mutex_lock(&reap_mu);
    for (child_t *c = children; c; c = c->next) {
      if (c->p != p) continue;
      rc = kill(c->pid, sig) == 0 ? 0 : CC_ECLOSED;
      break;
    }
    pthread_mutex_unlock(&reap_mu);
    return rc;
  }
  if (atomic_load(&p->t.done) || p->t.pid <= 0) return CC_ECLOSED;
  return kill(p->t.pid, sig) == 0 ? 0 : CC_ECLOSED;
}
