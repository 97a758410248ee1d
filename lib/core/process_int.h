/*
 * process_int.h - what the files of the process module share (not for
 * other modules): process.c (the object, fork, exit, join, kill), reaper.c
 * (the reaper thread and its list), child.c (a new child's setup) and
 * fork.c (the fork handlers).
 */
#ifndef CC_PROCESS_INT_H
#define CC_PROCESS_INT_H

#include <stdint.h>

#include "process.h"

/* ---- process.c ---- */

/* Finishes p once (a CAS on p->settled): how it ended, its outcome if it
 * never reported one, the dead child's leftovers (job, actors, orphan
 * threads), the observed rule, then done and a wake for the joiners.
 * how: CC_PROC_EXITED (value: exit status), CC_PROC_KILLED (value: signal),
 * CC_PROC_LOST. Returns 1 when this call settled p. */
int cc_process_settle(cc_process_t *p, int how, int value);

/* ---- reaper.c (process-private state) ---- */

/* Starts this process's reaper thread if it is not running: 0 or
 * CC_EAGAIN. */
int cc_reaper_start(void);
/* A list node for the next child, allocated before the fork (the reaper
 * never allocates with malloc; nodes live in the arena). NULL when out of
 * memory. */
void *cc_reaper_node_new(void);
void cc_reaper_node_free(void *node);
/* Hands child `pid` to the reaper in `node`, with the reference the caller
 * took for it. */
void cc_reaper_add(void *node, cc_process_t *p, int32_t pid);
/* Sends `sig` to p if it is still on this process's list (not reaped, so
 * its pid cannot have been recycled): 0, or CC_ECLOSED. */
int cc_reaper_kill(cc_process_t *p, int sig);
/* Fork handlers (called by fork.c): the list's lock is held across fork()
 * so a child finds the list whole; the child then forgets the list (the
 * parent's reaper keeps it) and closes its copies of the fds. */
void cc_reaper_fork_prepare(void);
void cc_reaper_fork_parent(void);
void cc_reaper_fork_child(void);

/* ---- fork.c ---- */

/* Registers the fork handlers (once; also done at load time). */
void cc_fork_handlers_install(void);

/* ---- child.c ---- */

/* In a new child, right after fork(): the parent-death signal, the actor
 * `a` as the calling thread's own, pids, SIGINT and the signal mask. */
void cc_child_setup(cc_process_t *p, cc_actor_t *a, int32_t parent, int by_main_thread);

#endif
