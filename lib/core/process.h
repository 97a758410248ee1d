/*
 * process.h - forked child processes as Thread objects, and their reaping.
 *
 * A Process is a cc_thread_t with is_process = 1 (so the registry, dumps and
 * conc.current() treat it like a thread) plus what only a process has: the
 * forker's pid, how it ended, and a one-shot "settled" flag. It lives in the
 * shared arena, so any process of the family can hold it, join it or kill it.
 *
 * Life of a child, seen from the forker:
 *   cc_process_new()   -> the object (one reference, for the caller)
 *   cc_process_fork()  -> forks; returns the child's pid in the parent and
 *                         0 in the child, which must end in cc_process_exit
 *   (child runs, stores its outcome with cc_process_exit, exits)
 *   the reaper thread  -> waits for the pid, reads the exit status, frees
 *                         what a dead child left (held locks, actor slots),
 *                         prints a Lua error no join waits for, then marks
 *                         the Process done and wakes joiners
 * Files: process.c (this API), reaper.c, child.c, fork.c, actor_dead.c.
 * The reaper is one thread per process that has forked (started on the
 * first fork): it polls a pidfd per child (kernel 5.3+) or, without
 * pidfd_open, polls waitpid every 10 ms. It only ever waits for pids it
 * forked, so io.popen and os.execute keep their own children.
 *
 * A child whose parent process dies is killed (prctl PR_SET_PDEATHSIG with a
 * handler that tells the death of the parent process from the exit of the
 * forking thread). See docs/PROCESSES.md for fork safety and failure modes.
 */
#ifndef CC_PROCESS_H
#define CC_PROCESS_H

#include <stdatomic.h>
#include <stdint.h>

#include "thread.h"

/* How a process ended (cc_process_t.how), valid once done. */
enum cc_process_how {
  CC_PROC_RUNNING = 0,
  CC_PROC_REPORTED, /* the child stored its results or error: status says which */
  CC_PROC_KILLED,   /* killed by a signal before reporting */
  CC_PROC_EXITED,   /* exited (e.g. os.exit) before reporting */
  CC_PROC_LOST      /* its parent died too, nobody could read its status */
};

typedef struct cc_process {
  cc_thread_t t;             /* first: a Process is a Thread (is_process = 1) */
  int32_t ppid;              /* the forker's pid: only it can reap the child */
  int32_t how;               /* cc_process_how, valid once t.done */
  int32_t termsig;           /* CC_PROC_KILLED: the signal */
  _Atomic uint32_t reported; /* the child stored its outcome (status, result) */
  _Atomic uint32_t settled;  /* set once by whoever finishes the object */
} cc_process_t;

extern const cc_type_t cc_process_type; /* "process" */

/* Callback the binding provides (may be NULL): `report_error` prints the
 * Lua error of a child that ended with no join waiting for it (the observed
 * rule of thread.h); it runs on the reaper thread when the child is
 * settled. The job and results are released through the thread module's
 * `release_payload` hook. */
typedef struct cc_process_hooks {
  void (*report_error)(cc_process_t *p);
} cc_process_hooks_t;
void cc_process_set_hooks(const cc_process_hooks_t *hooks);

/* A new Process (one reference, for the caller), not started. Default name
 * "process-<id>" when name is NULL or empty. NULL when out of memory. */
cc_process_t *cc_process_new(const char *name, int daemon);

/* Forks. The job (p->t.job) must be set. In the parent: returns the child's
 * pid (> 0); the reaper holds its own reference to p until the child is
 * reaped; a non-daemon child counts for cc_thread_wait_nondaemon. In the
 * child: returns 0 with the calling thread running as the child's own actor
 * (kind CC_ACTOR_PROCESS) and every signal unblocked; the caller must end
 * with cc_process_exit. stdout and stderr are flushed, and held, across the
 * fork (an atfork handler: any fork() of the program does it). Errors:
 * CC_EAGAIN (fork failed, or no actor slot), CC_ENOMEM. */
int cc_process_fork(cc_process_t *p);

/* In the child, once the job is decoded, cc_thread_drop_job(&p->t) frees
 * it; the reaper drops it for a child that died before. */

/* In the child: releases what the calling actor still holds (with a warning
 * each), stores the outcome (status CC_T_OK or CC_T_ERROR and an arena block
 * the Process takes over), waits for the child's own non-daemon threads and
 * processes, flushes stdout and stderr (only those, as Python's children do:
 * other streams may belong to threads the child does not have) and _exits
 * with 0 (CC_T_OK) or 1. Never returns; never runs atexit handlers. */
_Noreturn void cc_process_exit(cc_process_t *p, int status, void *result, size_t len);

/* Waits until p is done (reaped): 0, CC_ETIMEOUT or CC_EINTR, as
 * cc_thread_join (a waiting join raises the error: the observed rule). Any
 * process may join; a joiner that is not the forker also notices, by
 * polling every 100 ms, a child that can no longer be reaped because its
 * forker died (both dead or zombies: cc_pid_dead). */
int cc_process_join(cc_process_t *p, cc_deadline_t deadline);
/* For callers that may be tasks (wait.h): the result at once, or
 * CC_WAIT_PARK with *w ready to run. */
struct cc_wait;
int cc_process_join_w(struct cc_wait *w, cc_process_t *p, cc_deadline_t deadline);

/* Sends `sig` to the child unless it has already been reaped. Returns 0,
 * CC_ECLOSED (already ended) or CC_EINVAL (bad signal number). */
int cc_process_kill(cc_process_t *p, int sig);

/* The exit code once done: 0 ok, 1 error, N for exit(N), -signal. */
int cc_process_exitcode(const cc_process_t *p);

/* Registers a reset of process-private state that lives above the core (a
 * binding's pthread mutex, say): fork.c runs it in every forked child, after
 * the core's own resets (step 6 in docs/LOCKING.md, "Fork"), in
 * registration order. Call at load time (a constructor), before any thread
 * or fork; at most 4. */
void cc_fork_on_child(void (*fn)(void));

/* "SIGKILL" for 9, and so on ("signal N" when unknown); the buffer is used
 * only for unknown numbers. */
const char *cc_signal_name(int sig, char *buf, size_t n);

/* Signal number for a name such as "SIGKILL" or "KILL"; 0 when unknown. */
int cc_signal_number(const char *name);

#endif
