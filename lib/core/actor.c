/*
 * actor.c - actor table, wait/hold records, deadlock detection.
 *
 * Lock order: graph_lock is taken only on the slow path (an untimed wait on a
 * lock-like object) and never while holding another core mutex; nothing is
 * acquired while holding it except reads of lock words and actor fields.
 */
#include "actor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mutex.h"

_Thread_local cc_actor_t *cc_self_tls; /* see cc_self() in actor.h */
static _Thread_local char deadlock_msg[1024];
cc_observer_fn cc_observer;
cc_park_fn cc_park_hook;

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
  if (a) { /* its identity under the lock: cc_actor_snapshot reads it so */
    g->actor_free = a->next_free;
    a->next_free = NULL;
    a->id = id;
    a->pid = cc_pid;
    a->kind = kind;
    strncpy(a->name, name ? name : "", CC_NAME_MAX - 1);
    a->name[CC_NAME_MAX - 1] = '\0';
  }
  cc_mutex_unlock(&g->actors_lock);
  if (!a) return NULL;
  a->thread = NULL;
  atomic_store(&a->waiting_on, NULL);
  atomic_store(&a->wait_kind, 0);
  atomic_store(&a->nheld, 0);
  atomic_store_explicit(&a->state, CC_ACTOR_RUNNING, memory_order_release);
  if (kind != CC_ACTOR_PROCESS) cc_actor_started(a);
  return a;
}

void cc_actor_snapshot(const cc_actor_t *a, cc_actor_snap_t *s) {
  cc_globals_t *g = cc_globals();
  cc_mutex_lock(&g->actors_lock);
  s->state = atomic_load_explicit(&a->state, memory_order_acquire);
  s->pid = a->pid;
  s->kind = a->kind;
  memcpy(s->name, a->name, CC_NAME_MAX);
  cc_mutex_unlock(&g->actors_lock);
}

void cc_actor_started(cc_actor_t *a) {
  if (cc_unlikely(cc_observer != NULL)) cc_observer(a, NULL, CC_EV_START, 0);
}

void cc_actor_free(cc_actor_t *a) {
  cc_globals_t *g = cc_globals();
  if (!a) return;
  if (cc_unlikely(cc_observer != NULL)) cc_observer(a, NULL, CC_EV_END, 0);
  if (cc_self_tls == a) cc_self_tls = NULL;
  atomic_store(&a->state, CC_ACTOR_FREE);
  cc_mutex_lock(&g->actors_lock);
  a->next_free = g->actor_free;
  g->actor_free = a;
  cc_mutex_unlock(&g->actors_lock);
}

cc_actor_t *cc_self_slow(void) {
  char name[32];
  int64_t id = cc_next_id();
  if (syscall(SYS_gettid) == getpid())
    strcpy(name, "main");
  else
    snprintf(name, sizeof name, "thread-%lld", (long long)id);
  cc_self_tls = cc_actor_new(name, id, CC_ACTOR_THREAD);
  /* Only a thread the runtime did not start gets here (conc threads and
   * processes get their actor before they run, and fail cleanly): the
   * main thread, on its first use of the arena, or a host's thread. */
  if (!cc_self_tls)
    cc_panic("no room for this thread's actor record: %s", cc_strerror(actor_err));
  return cc_self_tls;
}

void cc_set_self(cc_actor_t *a) {
  cc_self_tls = a;
}

static void describe_as(int32_t kind, const char *name, int32_t pid, char *buf, size_t n) {
  if (kind == CC_ACTOR_PROCESS)
    snprintf(buf, n, "process '%s' (pid %d)", name, (int)pid);
  else if (kind == CC_ACTOR_TASK)
    snprintf(buf, n, "task '%s'", name);
  else
    snprintf(buf, n, "thread '%s'", name);
}

void cc_actor_describe(const cc_actor_t *a, char *buf, size_t n) {
  describe_as(a->kind, a->name, a->pid, buf, n);
}

void cc_actor_snap_describe(const cc_actor_snap_t *s, char *buf, size_t n) {
  describe_as(s->kind, s->name, s->pid, buf, n);
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
      if (cc_unlikely(cc_observer != NULL)) cc_observer(a, o, CC_EV_DEADLOCK, CC_EDEADLOCK);
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
  if (cc_park_hook) cc_park_hook(a, o);
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

void cc_unhold_slow(cc_actor_t *a, cc_obj_t *o) {
  int32_t n = atomic_load_explicit(&a->nheld, memory_order_relaxed);
  int32_t top = n < CC_MAX_HELD ? n : CC_MAX_HELD;
  for (int32_t i = top - 1; i >= 0; i--) {
    if (atomic_load_explicit(&a->held[i], memory_order_relaxed) == o) {
      /* Keep order: later holds shift down. */
      for (int32_t j = i; j + 1 < top; j++)
        atomic_store_explicit(&a->held[j], atomic_load_explicit(&a->held[j + 1],
                              memory_order_relaxed), memory_order_relaxed);
      atomic_store_explicit(&a->held[top - 1], o, memory_order_relaxed); /* see cc_hold_intent */
      break;
    }
  }
  if (n > 0) atomic_store_explicit(&a->nheld, n - 1, memory_order_release);
  if (cc_unlikely(cc_observer != NULL)) cc_observer(a, o, CC_EV_UNHOLD, 0);
}

/* ---- OS limits ---------------------------------------------------------- */

/* The first number after `key` in file `path` (or -1). */
static long long read_number(const char *path, const char *key) {
  char line[256];
  long long v = -1;
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  while (fgets(line, sizeof line, f)) {
    char *p = key ? strstr(line, key) : line;
    if (p) {
      p += key ? strlen(key) : 0;
      if (strncmp(p, "max", 3) == 0) break; /* cgroup "max": unlimited */
      v = strtoll(p, NULL, 10);
      break;
    }
  }
  fclose(f);
  return v;
}

/* Tasks (threads) in the whole system: the 4th field of /proc/loadavg is
 * "running/total". */
static long long system_tasks(void) {
  FILE *f = fopen("/proc/loadavg", "r");
  long long total = -1;
  if (f) {
    if (fscanf(f, "%*s %*s %*s %*d/%lld", &total) != 1) total = -1;
    fclose(f);
  }
  return total;
}

static long long count_lines(const char *path) {
  FILE *f = fopen(path, "r");
  long long n = 0;
  int c;
  if (!f) return -1;
  while ((c = getc(f)) != EOF)
    if (c == '\n') n++;
  fclose(f);
  return n;
}

const char *cc_os_limit_hint(char *buf, size_t n) {
  struct rlimit rl;
  long long threads = read_number("/proc/self/status", "Threads:");
  long long tasks = system_tasks(), v, cur;
  /* Per user: binds unless the process may exceed it (root). */
  if (getrlimit(RLIMIT_NPROC, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && geteuid() != 0) {
    snprintf(buf, n,
             "RLIMIT_NPROC (ulimit -u) is %llu threads+processes for this user; "
             "this process runs %lld threads",
             (unsigned long long)rl.rlim_cur, threads);
    return buf;
  }
  if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    long long vm = read_number("/proc/self/status", "VmSize:");
    snprintf(buf, n, "RLIMIT_AS (ulimit -v) is %llu MiB, %lld MiB in use",
             (unsigned long long)(rl.rlim_cur >> 20), vm >= 0 ? vm >> 10 : -1);
    return buf;
  }
  v = read_number("/sys/fs/cgroup/pids.max", NULL);
  cur = read_number("/sys/fs/cgroup/pids.current", NULL);
  if (v > 0 && cur >= 0 && cur + 16 >= v) {
    snprintf(buf, n, "the cgroup's pids.max is %lld, %lld in use", v, cur);
    return buf;
  }
  v = read_number("/proc/sys/kernel/threads-max", NULL);
  if (v > 0 && tasks >= 0 && tasks + 16 >= v) {
    snprintf(buf, n, "kernel.threads-max is %lld, %lld in use", v, tasks);
    return buf;
  }
  v = read_number("/proc/sys/kernel/pid_max", NULL);
  if (v > 0 && tasks >= 0 && tasks + 300 >= v) {
    snprintf(buf, n, "kernel.pid_max is %lld, %lld tasks in use", v, tasks);
    return buf;
  }
  v = read_number("/proc/sys/vm/max_map_count", NULL);
  cur = count_lines("/proc/self/maps");
  if (v > 0 && cur >= 0 && cur + 16 >= v) {
    snprintf(buf, n, "vm.max_map_count is %lld, this process has %lld mappings", v, cur);
    return buf;
  }
  snprintf(buf, n, "no limit reached: the system is out of memory (this process runs %lld threads)",
           threads);
  return buf;
}
