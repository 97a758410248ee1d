/* mutex.c - internal process-shared futex mutex with dead-owner takeover. */
#include "mutex.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "cc.h"
#include "futex.h"

/* getpid() is a system call in current glibc: keep it in a variable that a
 * fork handler refreshes. */
int32_t cc_pid;

static void refresh_pid(void) {
  cc_pid = (int32_t)getpid();
}

__attribute__((constructor)) static void pid_init(void) {
  refresh_pid();
  pthread_atfork(NULL, NULL, refresh_pid);
}

#define my_pid() cc_pid

void cc_mutex_init(cc_mutex_t *m) {
  atomic_store(&m->word, 0);
  atomic_store(&m->owner_pid, 0);
}

int cc_mutex_trylock(cc_mutex_t *m) {
  uint32_t z = 0;
  if (atomic_compare_exchange_strong_explicit(&m->word, &z, 1, memory_order_acquire,
                                              memory_order_relaxed)) {
    atomic_store_explicit(&m->owner_pid, my_pid(), memory_order_relaxed);
    return 0;
  }
  return CC_EBUSY;
}

/* True when the recorded owner process no longer exists. */
static int owner_dead(cc_mutex_t *m) {
  int32_t pid = atomic_load_explicit(&m->owner_pid, memory_order_relaxed);
  return pid > 0 && pid != cc_pid && kill(pid, 0) == -1 && errno == ESRCH;
}

int cc_mutex_lock(cc_mutex_t *m) {
  uint32_t c = 0;
  int i;
  if (atomic_compare_exchange_strong_explicit(&m->word, &c, 1, memory_order_acquire,
                                              memory_order_relaxed))
    goto owned;
  for (i = 0; i < cc_spin_count; i++) {
    cc_cpu_relax();
    c = 0;
    if (atomic_load_explicit(&m->word, memory_order_relaxed) == 0 &&
        atomic_compare_exchange_weak_explicit(&m->word, &c, 1, memory_order_acquire,
                                              memory_order_relaxed))
      goto owned;
  }
  if (c != 2) c = atomic_exchange_explicit(&m->word, 2, memory_order_acquire);
  while (c != 0) {
    /* Wake up now and then to notice an owner process that died. */
    if (cc_futex_wait(&m->word, 2, cc_now_ns() + 100000000) == CC_ETIMEOUT &&
        owner_dead(m)) {
      int32_t dead = atomic_load(&m->owner_pid);
      if (atomic_compare_exchange_strong(&m->owner_pid, &dead, cc_pid)) {
        atomic_store_explicit(&m->word, 2, memory_order_release);
        atomic_thread_fence(memory_order_acquire);
        return 1;
      }
    }
    c = atomic_exchange_explicit(&m->word, 2, memory_order_acquire);
  }
owned:
  atomic_store_explicit(&m->owner_pid, my_pid(), memory_order_relaxed);
  return 0;
}

void cc_mutex_unlock(cc_mutex_t *m) {
  atomic_store_explicit(&m->owner_pid, 0, memory_order_relaxed);
  if (atomic_exchange_explicit(&m->word, 0, memory_order_release) == 2)
    cc_futex_wake(&m->word, 1);
}
