/*
 * futex.h - the one place the core sleeps and wakes.
 *
 * The futex words live in the shared arena (MAP_SHARED), so these are the
 * process-shared (non-PRIVATE) futex operations: a wake in one process
 * reaches a waiter in another.
 */
#ifndef CC_FUTEX_H
#define CC_FUTEX_H

#include <stdatomic.h>
#include <stdint.h>

#include "cc.h"

/* Sleeps while *addr == val, until woken or `deadline` passes.
 * Returns 0 when woken (or the value differed: callers re-check),
 * CC_ETIMEOUT when the deadline passed, CC_EINTR when the calling thread is
 * the interruptible one and SIGINT arrived (see thread.h): callers must
 * end their wait and pass CC_EINTR up. Spurious returns are allowed. */
int cc_futex_wait(_Atomic uint32_t *addr, uint32_t val, cc_deadline_t deadline);

/* Wakes up to n sleepers on addr (INT32_MAX: all). */
void cc_futex_wake(_Atomic uint32_t *addr, int n);

/* A short pause for spin loops. */
static inline void cc_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* How many times spin loops poll before parking in the kernel. A futex
 * wake on a virtual machine costs tens of microseconds, so a brief spin pays
 * for itself when the other side is about to act. 0 on one CPU. */
extern int cc_spin_count;

#endif
