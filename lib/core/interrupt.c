/* interrupt.c - the interrupt flag and the interruptible thread. */
#include "interrupt.h"

volatile sig_atomic_t cc_interrupt;
volatile sig_atomic_t cc_interrupt_in_wait;
static _Thread_local int interruptible;

void cc_thread_set_interruptible(int on) {
  interruptible = on;
}

int cc_thread_interruptible(void) {
  return interruptible;
}
