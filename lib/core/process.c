/*
 * process.c - the Process object, fork, a child's exit, join and kill; see
 * process.h and docs/PROCESSES.md. The rest of the module: reaper.c (the
 * reaper thread, process-private), child.c (a new child's setup), fork.c
 * (the fork handlers, in order), actor_dead.c (what a dead child leaves).
 *
 * Lifetimes: the forker's caller holds one reference to a Process; the
 * reaper holds another from the fork until the child is reaped and the
 * Process settled. Whoever settles the Process (the reaper, or a joiner in
 * another process whose forker died) does it once: `settled` is a CAS.
 */
#include "process.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "actor_dead.h"
#include "futex.h"
#include "mutex.h"
#include "pid.h"
#include "process_int.h"
#include "trace.h"

/* How often a joiner outside the forker checks for a lost child. */
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

static void process_destroy(cc_obj_t *o) {
  cc_thread_release_fields(&((cc_process_t *)o)->t);
}

const cc_type_t cc_process_type = {.name = "process", .destroy = process_destroy};

static _Atomic long long unnamed_processes;

cc_process_t *cc_process_new(const char *name, int daemon) {
  cc_process_t *p = cc_obj_new(&cc_process_type, sizeof *p, name);
  if (!p) return NULL;
  p->t.tid = p->t.h.id;
  if (!name || !*name) /* numbered per kind, as threads are (thread.c) */
    snprintf(p->t.h.name, CC_NAME_MAX, "process-%lld", atomic_fetch_add(&unnamed_processes, 1) + 1);
  p->t.daemon = daemon != 0;
  p->t.is_process = 1;
  p->t.pid = 0;
  p->ppid = cc_pid;
  return p;
}

int cc_process_exitcode(const cc_process_t *p) {
  return p->t.exitcode;
}

/* ---- settling ------------------------------------------------------------------ */

int cc_process_settle(cc_process_t *p, int how, int value) {
  uint32_t z = 0;
  int lua_error;
  char text[192], sb[32];
  if (!atomic_compare_exchange_strong(&p->settled, &z, 1)) return 0;
  if (how == CC_PROC_KILLED) {
    p->t.exitcode = -value;
    p->termsig = value;
  } else if (how == CC_PROC_EXITED) {
    p->t.exitcode = value;
  }
  lua_error = atomic_load_explicit(&p->reported, memory_order_acquire);
  if (lua_error) {
    p->how = CC_PROC_REPORTED;
    if (how == CC_PROC_LOST) p->t.exitcode = p->t.status == CC_T_OK ? 0 : 1;
  } else {
    p->how = how;
    p->t.status = CC_T_ERROR;
    text[0] = '\0';
    if (how == CC_PROC_KILLED) {
      snprintf(text, sizeof text, "process '%s' was killed by signal %d (%s)",
               p->t.h.name, value, cc_signal_name(value, sb, sizeof sb));
    } else if (how == CC_PROC_EXITED && value == 0) {
      p->t.status = CC_T_OK; /* os.exit(true) and the like: no results */
    } else if (how == CC_PROC_EXITED) {
      snprintf(text, sizeof text, "process '%s' exited with status %d", p->t.h.name,
               value);
    } else {
      p->t.exitcode = -SIGKILL;
      snprintf(text, sizeof text, "process '%s' was lost: its parent process %d died",
               p->t.h.name, (int)p->ppid);
    }
    if (text[0]) cc_thread_set_error_text(&p->t, text);
  }
  cc_thread_drop_job(&p->t); /* a child killed before it dropped its job */
  cc_actor_free_dead(p->t.actor, p->t.pid);
  cc_actor_finish_orphans(p->t.pid);
  p->t.actor = NULL;
  cc_thread_unregister(&p->t);
  /* Only a Lua error is printed when no join waits: a kill or an exit
   * status loses no traceback. */
  if (cc_thread_decide_report(&p->t, lua_error) && hooks.report_error)
    hooks.report_error(p);
  cc_thread_publish_done(&p->t);
  return 1;
}

/* ---- fork and exit ----------------------------------------------------------- */

int cc_process_fork(cc_process_t *p) {
  cc_actor_t *a;
  void *node;
  pid_t parent = cc_pid, pid;
  int by_main_thread = syscall(SYS_gettid) == parent;
  int rc;
  cc_fork_handlers_install();
  if ((rc = cc_reaper_start()) != 0) return rc;
  if (!(node = cc_reaper_node_new())) return CC_ENOMEM;
  a = cc_actor_new(p->t.h.name, p->t.tid, CC_ACTOR_PROCESS);
  if (!a) {
    cc_reaper_node_free(node);
    return CC_EAGAIN;
  }
  a->thread = &p->t.h;
  p->t.actor = a;
  p->ppid = parent;
  cc_obj_ref(&p->t.h); /* the reaper's reference */
  cc_thread_register(&p->t);
  if (!p->t.daemon) cc_thread_count_nondaemon(1);
  pid = fork(); /* fork.c's handlers run around it */
  if (pid < 0) {
    if (!p->t.daemon) cc_thread_count_nondaemon(-1);
    cc_thread_unregister(&p->t);
    p->t.actor = NULL;
    cc_actor_free(a);
    cc_obj_unref(&p->t.h);
    cc_reaper_node_free(node);
    return CC_EAGAIN;
  }
  if (pid == 0) { /* `node` is the parent's: the arena is shared */
    cc_child_setup(p, a, parent, by_main_thread);
    return 0;
  }
  p->t.pid = pid; /* the child writes its actor's pid itself */
  cc_reaper_add(node, p, pid);
  cc_trace_instant("fork", p->t.h.name); /* on the forker's track */
  return pid;
}

_Noreturn void cc_process_exit(cc_process_t *p, int status, void *result, size_t len) {
  cc_actor_release_holds(cc_self(), "ended");
  p->t.result = result;
  p->t.result_len = len;
  p->t.status = status;
  atomic_store_explicit(&p->reported, 1, memory_order_release);
  cc_thread_wait_nondaemon();
  fflush(stdout);
  fflush(stderr);
  cc_trace_instant("exit", NULL); /* written through: children end with _exit */
  _exit(status == CC_T_OK ? 0 : 1);
}

/* ---- join and kill --------------------------------------------------------------- */

/* Only the forker can reap: if it died, the child died with it (the
 * parent-death signal) and nobody will ever settle p but a joiner. */
static void check_lost(cc_thread_t *t) {
  cc_process_t *p = (cc_process_t *)t;
  if (cc_pid_dead(p->ppid) && cc_pid_dead(p->t.pid)) cc_process_settle(p, CC_PROC_LOST, 0);
}

int cc_process_join_w(struct cc_wait *w, cc_process_t *p, cc_deadline_t deadline) {
  if (p->ppid == cc_pid) return cc_thread_join_w(w, &p->t, deadline, 0, NULL);
  return cc_thread_join_w(w, &p->t, deadline, ORPHAN_POLL_NS, check_lost);
}

int cc_process_join(cc_process_t *p, cc_deadline_t deadline) {
  if (p->ppid == cc_pid) return cc_thread_join(&p->t, deadline);
  return cc_thread_join_poll(&p->t, deadline, ORPHAN_POLL_NS, check_lost);
}

int cc_process_kill(cc_process_t *p, int sig) {
  if (sig < 0 || sig >= NSIG) return CC_EINVAL;
  if (p->ppid == cc_pid) return cc_reaper_kill(p, sig);
  if (atomic_load(&p->t.done) || p->t.pid <= 0) return CC_ECLOSED;
  return kill(p->t.pid, sig) == 0 ? 0 : CC_ECLOSED;
}
