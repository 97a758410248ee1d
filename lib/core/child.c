/*
 * child.c - a new child's setup right after fork(): the parent-death
 * signal, its own actor, its signals. See docs/PROCESSES.md ("A child whose
 * parent dies"). The per-process state every forked child resets (pid, the
 * pool, the reaper's list) is reset earlier, by the fork handler (fork.c).
 */
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "mutex.h"
#include "process_int.h"

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

void cc_child_setup(cc_process_t *p, cc_actor_t *a, int32_t parent, int by_main_thread) {
  sigset_t none;
  watch_parent(parent, by_main_thread);
  a->pid = cc_pid;
  p->t.pid = cc_pid;
  cc_set_self(a);
  cc_actor_started(a); /* its lane begins under its own pid */
  /* A child forked by a thread that Ctrl-C does not interrupt (a worker)
   * inherits a SIGINT handler meant for the parent's main thread: give it
   * the default action instead, so that Ctrl-C ends it. */
  if (!cc_thread_interruptible()) signal(SIGINT, SIG_DFL);
  sigemptyset(&none);
  pthread_sigmask(SIG_SETMASK, &none, NULL);
}
