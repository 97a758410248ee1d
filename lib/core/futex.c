/* futex.c - Linux futex wait/wake on shared memory. */
#include "futex.h"

#include "thread.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int cc_spin_count = 2000;

__attribute__((constructor)) static void spin_init(void) {
  if (sysconf(_SC_NPROCESSORS_ONLN) < 2) cc_spin_count = 0;
}

int cc_futex_wait(_Atomic uint32_t *addr, uint32_t val, cc_deadline_t deadline) {
  struct timespec ts, *tsp = NULL;
  long r;
  /* A Ctrl-C that arrived before the sleep would otherwise be missed. */
  /* Only the interruptible (main) thread reads the flag, which that thread
   * and its signal handler write: other threads never race on it. */
  if (cc_thread_interruptible() && cc_unlikely(cc_interrupt)) return CC_EINTR;
  if (deadline != CC_FOREVER) {
    if (deadline <= cc_now_ns()) return CC_ETIMEOUT;
    ts.tv_sec = deadline / 1000000000;
    ts.tv_nsec = deadline % 1000000000;
    tsp = &ts;
  }
  /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline. */
  r = syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_BITSET, val, tsp, NULL,
              FUTEX_BITSET_MATCH_ANY);
  if (r == -1 && errno == ETIMEDOUT) return CC_ETIMEOUT;
  if (r == -1 && errno == EINTR && cc_thread_interruptible() && cc_interrupt)
    return CC_EINTR;
  return 0;
}

void cc_futex_wake(_Atomic uint32_t *addr, int n) {
  syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE, n, NULL, NULL, 0);
}
