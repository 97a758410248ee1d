/*
 * pid.h - whether another process of the family is dead.
 */
#ifndef CC_PID_H
#define CC_PID_H

#include <stdint.h>

/* True when process `pid` will never run again: it is gone, or a zombie
 * (or dead) that nobody reaped yet. A zombie counts as dead everywhere: it
 * releases no lock and reaps no child, and the reaper that would reap it
 * may itself be the one asking (waiting for a mutex the zombie held).
 * False for pid <= 0, for this process, and when the answer cannot be read.
 * Fork-safe: no malloc, no FILE streams (the reaper calls it
 * through cc_mutex_lock). */
int cc_pid_dead(int32_t pid);

#endif
