/*
 * interrupt.h - Ctrl-C for blocking waits.
 *
 * One thread per process is "interruptible" (the program's main thread, or
 * the thread that opened conc in a host with a SIGINT handler). A SIGINT
 * handler calls cc_interrupt_raise(); the interruptible thread's blocking
 * waits then return CC_EINTR, once: whoever delivers the interrupt (a wait
 * returning CC_EINTR, or the binding's hook in running Lua code) consumes it
 * with cc_interrupt_take(), so a script that catches it runs its cleanup,
 * waits included, undisturbed.
 *
 * Other threads never read the flag: only the interruptible thread and a
 * signal handler running on it touch it. cc_interrupt_in_wait tells a
 * chaining handler whether that thread is parked in a conc wait right now.
 */
#ifndef CC_INTERRUPT_H
#define CC_INTERRUPT_H

#include <signal.h>

extern volatile sig_atomic_t cc_interrupt;
extern volatile sig_atomic_t cc_interrupt_in_wait;

/* Async-signal-safe: marks an interrupt pending. */
static inline void cc_interrupt_raise(void) {
  cc_interrupt = 1;
}
/* Consumes a pending interrupt: 1 if there was one. */
static inline int cc_interrupt_take(void) {
  int was = cc_interrupt != 0;
  cc_interrupt = 0;
  return was;
}

/* Marks the calling thread as the one SIGINT interrupts (on = 1), or not. */
void cc_thread_set_interruptible(int on);
int cc_thread_interruptible(void);

#endif
