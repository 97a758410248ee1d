/*
 * fork.c - the one set of fork handlers: everything that is private to a
 * process and must be repaired around fork() is handled here, in one
 * written order (docs/LOCKING.md, "Fork"). Modules expose a reset function
 * instead of registering handlers of their own, whose relative order would
 * depend on link order.
 *
 * Before fork (in the forking thread), outermost first:
 *   1. stdout, then stderr: locked and flushed, so a child never finds them
 *      locked by a thread it does not have (its first print would hang),
 *      nor inherits output another thread buffered (written twice);
 *   2. the reaper's list lock (reaper.c), so the child finds the list whole.
 * In the parent after fork: the same, released innermost first.
 * In the child after fork:
 *   1. cc_pid (every step below, and any lock taken later, uses it);
 *   2. the calling thread's actor is forgotten (it is the parent's; the
 *      child gets its own in cc_child_setup, or lazily);
 *   3. the worker pool and the non-daemon counters (thread.c): the
 *      parent's workers do not exist here;
 *   4. the reaper's list, fds and lock (reaper.c);
 *   5. stderr, then stdout, unlocked (the forking thread, now the child's
 *      only thread, holds them);
 *   6. the resets registered by the layers above the core (the bindings:
 *      lconc.c's metatable-builder lock), in registration order.
 * Then cc_process_fork goes on with cc_child_setup (child.c).
 */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include "actor.h"
#include "mutex.h"
#include "process_int.h"
#include "thread.h"

static void prepare(void) {
  flockfile(stdout);
  fflush_unlocked(stdout);
  flockfile(stderr);
  fflush_unlocked(stderr);
  cc_reaper_fork_prepare();
}

static void parent(void) {
  cc_reaper_fork_parent();
  funlockfile(stderr);
  funlockfile(stdout);
}

#define MAX_ON_CHILD 4
static void (*on_child[MAX_ON_CHILD])(void);
static int non_child;

void cc_fork_on_child(void (*fn)(void)) {
  if (non_child == MAX_ON_CHILD) cc_panic("too many fork resets");
  on_child[non_child++] = fn;
}

static void child(void) {
  cc_pid = (int32_t)getpid();
  cc_set_self(NULL);
  cc_thread_after_fork();
  cc_reaper_fork_child();
  funlockfile(stderr);
  funlockfile(stdout);
  for (int i = 0; i < non_child; i++) on_child[i]();
}

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void install(void) {
  pthread_atfork(prepare, parent, child);
}

void cc_fork_handlers_install(void) {
  pthread_once(&once, install);
}

/* At load time, so that any fork() of the program (os.execute, a host's)
 * gets them; cc_process_fork calls cc_fork_handlers_install too, which
 * also makes a static link keep this file. */
__attribute__((constructor)) static void fork_handlers(void) {
  cc_fork_handlers_install();
}
