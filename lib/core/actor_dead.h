/*
 * actor_dead.h - what an actor leaves behind when it ends or dies: the
 * lock-like objects it still holds, its wait record, its slot, and the
 * Thread objects of a dead process. Used by thread.c (a thread that ends),
 * process.c (a child that ends) and the reaper (a child that died).
 */
#ifndef CC_ACTOR_DEAD_H
#define CC_ACTOR_DEAD_H

#include <stdint.h>

#include "actor.h"

/* Releases every lock-like object `a` still holds through its type's
 * abandon hook, with a warning on stderr each ("conclua: warning: <who>
 * <verb> holding lock 'l'; released it"), then empties the hold list.
 * `a` is the caller's own actor (a thread or child ending normally, verb
 * "ended") or the actor of a dead process (verb "died"). Works from a
 * snapshot of the list: the abandon hook of the caller's own actor edits
 * the live one, and a list torn by a kill may hold duplicates or stale
 * entries (the validity and owner checks skip them). Never allocates. */
void cc_actor_release_holds(cc_actor_t *a, const char *verb);

/* Frees the actors of the dead process `pid`: `main_actor` (may be NULL;
 * found through the Process in case the child died before writing its pid
 * into it) and every actor whose pid is `pid`. Each is claimed once (a CAS
 * on its state), its holds released ("died"), its wait record cleared (so
 * deadlock detection does not follow it), its slot freed. */
void cc_actor_free_dead(cc_actor_t *main_actor, int32_t pid);

/* Finishes the Thread objects of threads that ran inside the dead process
 * `pid` (their joins raise "thread 't' died with its process (pid N)").
 * Nothing is printed for them: no Lua error was lost. */
void cc_actor_finish_orphans(int32_t pid);

#endif
