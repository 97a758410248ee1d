/*
 * actor.c - actor table, wait/hold records, deadlock detection.
 *
 * Lock order: graph_lock is taken only on the slow path (an untimed wait on a
 * lock-like object) and never while holding another core mutex; nothing is
 * acquired while holding it except reads of lock words and actor fields.
 */
#include "actor.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mutex.h"

static _Thread_local cc_actor_t *self;
static _Thread_local char deadlock_msg[1024];
cc_observer_fn cc_observer;

static _Thread_local int actor_err;

/* With actors_lock held and the free list empty: allocates, numbers and
 * links the next chunk, then publishes it (chunk pointer, then count, both
 * release). A process killed in between leaves at worst a chunk whose slots
 * nobody hands out; the table itself stays consistent. */
static cc_actor_t *grow_locked(cc_globals_t *g) {
  uint32_t n = atomic_load_explicit(&g->nactors, memory_order_relaxed);
  uint32_t c = n / CC_ACTORS_PER_CHUNK;
  cc_actor_t *t;
  if (c >= CC_ACTOR_CHUNKS) {
    actor_err = CC_EAGAIN;
    return NULL;
  }
  if (!(t = cc_calloc(sizeof(cc_actor_t) * CC_ACTORS_PER_CHUNK))) {
    actor_err = CC_ENOMEM;
    return NULL;
  }
  for (uint32_t i = 0; i < CC_ACTORS_PER_CHUNK; i++) {
    t[i].index = n + i;
    t[i].next_free = i + 1 < CC_ACTORS_PER_CHUNK ? &t[i + 1] : NULL;
  }
  atomic_store_explicit(&g->actor_chunks[c], (void *)t, memory_order_release);
  atomic_store_explicit(&g->nactors, n + CC_ACTORS_PER_CHUNK, memory_order_release);
  g->actor_free = &t[0];
  return &t[0];
}

uint32_t cc_actor_count(void) {
  return atomic_load_explicit(&cc_globals()->nactors, memory_order_acquire);
}

cc_actor_t *cc_actor_at(uint32_t index) {
  cc_globals_t *g = cc_globals();
  cc_actor_t *chunk;
  if (index >= atomic_load_explicit(&g->nactors, memory_order_acquire)) return NULL;
  chunk = atomic_load_explicit(&g->actor_chunks[index / CC_ACTORS_PER_CHUNK],
                               memory_order_acquire);
  return &chunk[index % CC_ACTORS_PER_CHUNK];
}

int cc_actor_error(void) {
  return actor_err;
}

cc_actor_t *cc_actor_new(const char *name, int64_t id, int kind) {
  cc_globals_t *g = cc_globals();
  cc_actor_t *a;
  cc_mutex_lock(&g->actors_lock);
  a = g->actor_free;
  if (!a) a = grow_locked(g);
  if (a) g->actor_free = a->next_free;
  cc_mutex_unlock(&g->actors_lock);
  if (!a) return NULL;
  a->next_free = NULL;
  a->id = id;
  a->pid = cc_pid;
  a->kind = kind;
  a->thread = NULL;
  strncpy(a->name, name ? name : "", CC_NAME_MAX - 1);
  a->name[CC_NAME_MAX - 1] = '\0';
  atomic_store(&a->waiting_on, NULL);
  atomic_store(&a->wait_kind, 0);
  atomic_store(&a->nheld, 0);
  atomic_store_explicit(&a->state, CC_ACTOR_RUNNING, memory_order_release);
  return a;
}

void cc_actor_free(cc_actor_t *a) {
  cc_globals_t *g = cc_globals();
  if (!a) return;
  if (self == a) self = NULL;
  atomic_store(&a->state, CC_ACTOR_FREE);
  cc_mutex_lock(&g->actors_lock);
  a->next_free = g->actor_free;
  g->actor_free = a;
  cc_mutex_unlock(&g->actors_lock);
}

static void forget_self_after_fork(void) {
  self = NULL;
}

__attribute__((constructor)) static void actor_atfork(void) {
  pthread_atfork(NULL, NULL, forget_self_after_fork);
}

cc_actor_t *cc_self(void) {
  if (cc_unlikely(!self)) {
    char name[32];
    int64_t id = cc_next_id();
    if (syscall(SYS_gettid) == getpid())
      strcpy(name, "main");
    else
      snprintf(name, sizeof name, "thread-%lld", (long long)id);
    self = cc_actor_new(name, id, CC_ACTOR_THREAD);
    /* Only a thread the runtime did not start gets here (conc threads and
     * processes get their actor before they run, and fail cleanly): the
     * main thread, on its first use of the arena, or a host's thread. */
    if (!self)
      cc_panic("no room for this thread's actor record: %s", cc_strerror(actor_err));
  }
  return self;
}

void cc_set_self(cc_actor_t *a) {
  self = a;
}

void cc_actor_describe(const cc_actor_t *a, char *buf, size_t n) {
  if (a->kind == CC_ACTOR_PROCESS)
    snprintf(buf, n, "process '%s' (pid %d)", a->name, (int)a->pid);
  else
    snprintf(buf, n, "thread '%s'", a->name);
}

static void append(size_t *len, const char *fmt, const char *s1, const char *s2,
                   const char *s3) {
  size_t n = sizeof deadlock_msg;
  if (*len >= n) return;
  int w = snprintf(deadlock_msg + *len, n - *len, fmt, s1, s2, s3);
  if (w > 0) *len += (size_t)w;
}

/* Walks the wait-for graph from `o`, with graph_lock held. Returns 1 and
 * writes the message when the chain of owners leads back to `me`. */
static int closes_cycle(cc_actor_t *me, cc_obj_t *o) {
  cc_obj_t *chain_obj[64];
  cc_actor_t *chain_owner[64];
  int n = 0;
  cc_obj_t *cur = o;
  while (cur && n < 64) {
    cc_actor_t *owner = cur->type->owner ? cur->type->owner(cur) : NULL;
    if (!owner) return 0;
    chain_obj[n] = cur;
    chain_owner[n] = owner;
    n++;
    if (owner == me) break;
    if (atomic_load(&owner->wait_kind) != CC_WAIT_LOCK ||
        atomic_load(&owner->wait_timed))
      return 0;
    cur = atomic_load(&owner->waiting_on);
  }
  if (n == 0 || chain_owner[n - 1] != me) return 0;
  {
    size_t len = 0;
    char who[96], whom[96];
    cc_actor_describe(me, who, sizeof who);
    append(&len, "deadlock: %s%s%s", who, "", "");
    for (int i = 0; i < n; i++) {
      cc_actor_describe(chain_owner[i], whom, sizeof whom);
      append(&len, "%s %s '%s'", i == 0 ? " waits for" : ", which waits for",
             chain_obj[i]->type->name, chain_obj[i]->name);
      append(&len, " held by %s%s%s", whom, chain_owner[i] == me && n == 1 ? " (itself)" : "", "");
    }
  }
  return 1;
}

const char *cc_deadlock_message(void) {
  return deadlock_msg;
}

int cc_wait_begin(cc_obj_t *o, int kind, cc_deadline_t deadline) {
  cc_actor_t *a = cc_self();
  int timed = deadline != CC_FOREVER;
  if (kind == CC_WAIT_LOCK && !timed) {
    cc_globals_t *g = cc_globals();
    cc_mutex_lock(&g->graph_lock);
    if (closes_cycle(a, o)) {
      cc_mutex_unlock(&g->graph_lock);
      return CC_EDEADLOCK;
    }
    atomic_store(&a->wait_timed, 0);
    atomic_store(&a->wait_since, cc_now_ns());
    atomic_store(&a->waiting_on, o);
    atomic_store(&a->wait_kind, kind);
    atomic_store(&a->state, CC_ACTOR_WAITING);
    cc_mutex_unlock(&g->graph_lock);
  } else {
    atomic_store_explicit(&a->wait_timed, timed, memory_order_relaxed);
    atomic_store_explicit(&a->wait_since, cc_now_ns(), memory_order_relaxed);
    atomic_store_explicit(&a->waiting_on, o, memory_order_relaxed);
    atomic_store_explicit(&a->wait_kind, kind, memory_order_release);
    atomic_store_explicit(&a->state, CC_ACTOR_WAITING, memory_order_relaxed);
  }
  if (cc_unlikely(cc_observer != NULL)) cc_observer(a, o, CC_EV_WAIT_BEGIN, 0);
  return 0;
}

void cc_wait_end(cc_obj_t *o, int result) {
  cc_actor_t *a = cc_self();
  if (atomic_load_explicit(&a->wait_kind, memory_order_relaxed) == CC_WAIT_LOCK &&
      !atomic_load_explicit(&a->wait_timed, memory_order_relaxed)) {
    cc_globals_t *g = cc_globals();
    cc_mutex_lock(&g->graph_lock);
    atomic_store(&a->wait_kind, 0);
    atomic_store(&a->waiting_on, NULL);
    atomic_store(&a->state, CC_ACTOR_RUNNING);
    cc_mutex_unlock(&g->graph_lock);
  } else {
    atomic_store_explicit(&a->wait_kind, 0, memory_order_relaxed);
    atomic_store_explicit(&a->waiting_on, NULL, memory_order_relaxed);
    atomic_store_explicit(&a->state, CC_ACTOR_RUNNING, memory_order_relaxed);
  }
  if (cc_unlikely(cc_observer != NULL)) cc_observer(a, o, CC_EV_WAIT_END, result);
}

void cc_hold(cc_obj_t *o) {
  cc_actor_t *a = cc_self();
  int32_t n = atomic_load_explicit(&a->nheld, memory_order_relaxed);
  if (n < CC_MAX_HELD) atomic_store_explicit(&a->held[n], o, memory_order_relaxed);
  atomic_store_explicit(&a->nheld, n + 1, memory_order_release);
  if (cc_unlikely(cc_observer != NULL)) cc_observer(a, o, CC_EV_HOLD, 0);
}

void cc_unhold(cc_obj_t *o) {
  cc_actor_t *a = cc_self();
  int32_t n = atomic_load_explicit(&a->nheld, memory_order_relaxed);
  int32_t top = n < CC_MAX_HELD ? n : CC_MAX_HELD;
  for (int32_t i = top - 1; i >= 0; i--) {
    if (atomic_load_explicit(&a->held[i], memory_order_relaxed) == o) {
      /* Keep order: later holds shift down. */
      for (int32_t j = i; j + 1 < top; j++)
        atomic_store_explicit(&a->held[j], atomic_load_explicit(&a->held[j + 1],
                              memory_order_relaxed), memory_order_relaxed);
      break;
    }
  }
  if (n > 0) atomic_store_explicit(&a->nheld, n - 1, memory_order_release);
  if (cc_unlikely(cc_observer != NULL)) cc_observer(a, o, CC_EV_UNHOLD, 0);
}
