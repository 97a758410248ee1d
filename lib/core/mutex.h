/*
 * mutex.h - the core's internal process-shared mutex.
 *
 * A futex mutex that lives in the shared arena and works between threads and
 * forked processes. It is for the runtime's own short critical sections
 * (allocator, registries, queue internals); user-visible locks are in lock.h
 * and go through the instrumentation point. Never held across a call into
 * Lua.
 *
 * The word holds the owner's pid (so a waiter can tell when the owner
 * process died inside the critical section, see cc_mutex_lock) and a
 * waiters bit: 0 free, pid (held, nobody parked), pid | CC_MUTEX_WAITERS
 * (held, somebody may be parked). Owner and state change in one atomic
 * step, so there is no moment at which a killed owner leaves the mutex held
 * without its pid.
 */
#ifndef CC_MUTEX_H
#define CC_MUTEX_H

#include <stdatomic.h>
#include <stdint.h>

#define CC_MUTEX_WAITERS 0x80000000u

typedef struct cc_mutex {
  _Atomic uint32_t word;
} cc_mutex_t;

#define CC_MUTEX_INIT {0}

/* This process's pid, kept current across fork(). */
extern int32_t cc_pid;

void cc_mutex_init(cc_mutex_t *m);
/* Blocks until acquired (spins briefly first). Returns 0, or 1 when the lock
 * was taken over from an owner process that died while holding it (checked
 * every 100 ms of waiting; a zombie counts as dead): the caller must then
 * repair the protected state if it can. */
int cc_mutex_lock(cc_mutex_t *m);
/* 0 on success, CC_EBUSY if held. */
int cc_mutex_trylock(cc_mutex_t *m);
void cc_mutex_unlock(cc_mutex_t *m);

#endif
