/* futex.c - Linux futex wait/wake on shared memory. */
#include "futex.h"

#include "env.h"
#include "interrupt.h"

#include <errno.h>
#include <stdlib.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int cc_spin_count = 2000;

__attribute__((constructor)) static void spin_init(void) {
  long v;
  if (sysconf(_SC_NPROCESSORS_ONLN) < 2) cc_spin_count = 0;
  /* a bad value keeps the default here; luaopen_conc refuses it */
  if (cc_env_int("CONCLUA_SPIN", cc_spin_count, &v) == 0) cc_spin_count = (int)v;
}

int cc_futex_wait(_Atomic uint32_t *addr, uint32_t val, cc_deadline_t deadline) {
  struct timespec ts, *tsp = NULL;
  long r;
  int intr = cc_thread_interruptible();
  if (deadline != CC_FOREVER) {
    if (deadline <= cc_now_ns()) return CC_ETIMEOUT;
    ts.tv_sec = deadline / 1000000000;
    ts.tv_nsec = deadline % 1000000000;
    tsp = &ts;
  }
  /* Only the interruptible (main) thread reads the flag, which that thread
   * and its signal handler write: other threads never race on it. The flag
   * is checked after in_wait is set, so a Ctrl-C either finds in_wait set
   * or is seen here, or it interrupts the sleep (EINTR), except in the few
   * instructions between this check and entering the kernel: such a
   * Ctrl-C is seen at the next wake-up, and a second one ends the program. */
  if (intr) {
    cc_interrupt_in_wait = 1;
    if (cc_unlikely(cc_interrupt)) {
      cc_interrupt_in_wait = 0;
      return CC_EINTR;
    }
  }
  /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline. */
  r = syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_BITSET, val, tsp, NULL,
              FUTEX_BITSET_MATCH_ANY);
  if (intr) cc_interrupt_in_wait = 0;
  if (r == -1 && errno == ETIMEDOUT) return CC_ETIMEOUT;
  if (r == -1 && errno == EINTR && intr && cc_interrupt) return CC_EINTR;
  return 0;
}

void cc_futex_wake(_Atomic uint32_t *addr, int n) {
  syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE, n, NULL, NULL, 0);
}
