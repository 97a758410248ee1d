/*
 * actor_dead.c - releasing what an ended or dead actor leaves behind; see
 * actor_dead.h. One routine releases the holds of every kind of ending
 * actor (a thread that returns, a child that exits, a child the reaper
 * found dead), so they all warn and release the same way.
 *
 * Lock order: cc_actor_free_dead takes graph_lock alone (after the abandon
 * hooks, which take the objects' own words, have returned); orphans are
 * collected under registry_lock and finished after it is released. See
 * docs/LOCKING.md.
 */
#include "actor_dead.h"

#include <stdio.h>
#include <string.h>

#include "futex.h"
#include "mutex.h"
#include "thread.h"

/* "thread 't'", "process 'p' (pid N)", or, for a thread of another
 * process (a dead child's), "thread 't' of process N". */
static void describe(const cc_actor_t *a, char *buf, size_t n) {
  if (a->kind != CC_ACTOR_PROCESS && a->pid != cc_pid)
    snprintf(buf, n, "thread '%s' of process %d", a->name, (int)a->pid);
  else
    cc_actor_describe(a, buf, n);
}

/* The slot one past nheld may name an object the actor was taking or
 * letting go of when it died (cc_hold_intent): it is released too when
 * its word still names the actor, and skipped otherwise (a stale name). */
void cc_actor_release_holds(cc_actor_t *a, const char *verb) {
  cc_obj_t *held[CC_MAX_HELD];
  int32_t n = atomic_load(&a->nheld);
  char who[160];
  if (n < CC_MAX_HELD)
    n++;
  else
    n = CC_MAX_HELD;
  for (int32_t i = 0; i < n; i++)
    held[i] = atomic_load(&a->held[i]);
  for (int32_t i = n - 1; i >= 0; i--) {
    cc_obj_t *o = held[i];
    if (!o || !cc_obj_valid_held(o) || !o->type->abandon) continue;
    if (o->type->owner && o->type->owner(o) != a) continue;
    describe(a, who, sizeof who);
    fprintf(stderr, "conclua: warning: %s %s holding %s '%s'; released it\n", who, verb,
            o->type->name, o->name);
    fflush(stderr);
    o->type->abandon(o, a);
  }
  atomic_store(&a->nheld, 0);
}

/* Ends a wait record left by a dead actor. */
static void clear_wait(cc_actor_t *a) {
  cc_globals_t *g = cc_globals();
  cc_mutex_lock(&g->graph_lock);
  atomic_store(&a->wait_kind, 0);
  atomic_store(&a->waiting_on, NULL);
  cc_mutex_unlock(&g->graph_lock);
}

/* Holds are released before the slot is freed: a slot reused by a live
 * thread would otherwise make that thread look like the owner of the dead
 * one's locks. */
static void free_dead(cc_actor_t *a) {
  uint32_t s = atomic_load(&a->state);
  if (s == CC_ACTOR_FREE || s == CC_ACTOR_DONE) return;
  if (!atomic_compare_exchange_strong(&a->state, &s, CC_ACTOR_DONE)) return;
  cc_actor_release_holds(a, "died");
  clear_wait(a);
  cc_actor_free(a);
}

/* An actor's pid is written before its state becomes RUNNING
 * (cc_actor_new), so reading the state first makes the pid safe to read.
 * cc_actor_at returns NULL past the end of the table. */
void cc_actor_free_dead(cc_actor_t *main_actor, int32_t pid) {
  cc_actor_t *a;
  if (main_actor) free_dead(main_actor);
  for (uint32_t i = 0; (a = cc_actor_at(i)) != NULL; i++) {
    uint32_t s = atomic_load(&a->state);
    if (s != CC_ACTOR_FREE && s != CC_ACTOR_DONE && a->pid == pid) free_dead(a);
  }
}

/* Threads that ran inside the dead process: nobody else will finish them.
 * Collected in batches under the registry lock (the callback must not
 * block), finished outside it. */
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

void cc_actor_finish_orphans(int32_t pid) {
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
        cc_thread_set_error_text(t, text);
        t->actor = NULL;
        (void)cc_thread_decide_report(t, 0); /* no Lua error: nothing to print */
        cc_thread_publish_done(t);
      }
      cc_obj_unref(&t->h);
    }
  } while (o.n == 64);
}
