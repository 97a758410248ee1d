/* mutex.c - internal process-shared futex mutex with dead-owner takeover. */
#include "mutex.h"

#include <unistd.h>

#include "arena.h" /* cc_arena_handoff_release */
#include "cc.h"
#include "futex.h"
#include "pid.h"

#define WAITERS CC_MUTEX_WAITERS
#define POLL_NS 100000000 /* how often a parked waiter checks its owner */

/* getpid() is a system call in current glibc: keep it in a variable that
 * the fork handler refreshes first thing in a child (fork.c). A waiter
 * treats a zombie owner as dead (cc_pid_dead): the reaper of a dead child
 * may itself be waiting here. */
int32_t cc_pid;

__attribute__((constructor)) static void pid_init(void) {
  cc_pid = (int32_t)getpid();
}

void cc_mutex_init(cc_mutex_t *m) {
  atomic_store(&m->word, 0);
}

static inline int cas(cc_mutex_t *m, uint32_t expect, uint32_t val) {
  return atomic_compare_exchange_strong_explicit(&m->word, &expect, val, memory_order_acquire,
                                                 memory_order_relaxed);
}

int cc_mutex_trylock(cc_mutex_t *m) {
  return cas(m, 0, (uint32_t)cc_pid) ? 0 : CC_EBUSY;
}

int cc_mutex_lock(cc_mutex_t *m) {
  uint32_t me = (uint32_t)cc_pid, c;
  if (cas(m, 0, me)) return 0;
  for (int i = 0; i < cc_spin_count; i++) {
    cc_cpu_relax();
    if (atomic_load_explicit(&m->word, memory_order_relaxed) == 0 && cas(m, 0, me)) return 0;
  }
  for (;;) {
    c = atomic_load_explicit(&m->word, memory_order_relaxed);
    if (c == 0) {
      /* We cannot know whether others are parked: keep the bit. */
      if (cas(m, 0, me | WAITERS)) return 0;
      continue;
    }
    if (!(c & WAITERS)) {
      if (!cas(m, c, c | WAITERS)) continue;
      c |= WAITERS;
    }
    if (cc_futex_wait(&m->word, c, cc_now_ns() + POLL_NS) == CC_ETIMEOUT &&
        cc_pid_dead((int32_t)(c & ~WAITERS)) && cas(m, c, me | WAITERS))
      return 1;
  }
}

void cc_mutex_unlock(cc_mutex_t *m) {
#if defined(__SANITIZE_THREAD__)
  cc_arena_handoff_release(); /* see arena.c: TSan cannot see other processes */
#endif
  if (atomic_exchange_explicit(&m->word, 0, memory_order_release) & WAITERS)
    cc_futex_wake(&m->word, 1);
}
