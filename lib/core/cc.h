/*
 * cc.h - things every core file shares: error codes, deadlines, likely().
 *
 * The core is plain C11 + POSIX; it never includes lua.h. Core functions
 * return 0 (CC_OK) or a negative CC_E* code; cc_strerror() names it.
 */
#ifndef CC_H
#define CC_H

#include <stddef.h>
#include <stdint.h>

#define cc_likely(x) __builtin_expect(!!(x), 1)
#define cc_unlikely(x) __builtin_expect(!!(x), 0)

/* X(name, short message). Short messages are stable: scripts test them. */
#define CC_ERRORS(X)                                                           \
  X(TIMEOUT, "timeout")                                                        \
  X(CLOSED, "closed")                                                          \
  X(NOMEM, "out of shared memory")                                             \
  X(DEADLOCK, "deadlock")                                                      \
  X(NOTOWNER, "not owner")                                                     \
  X(FULL, "full")                                                              \
  X(EMPTY, "empty")                                                            \
  X(INVAL, "invalid argument")                                                 \
  X(OVERFLOW, "overflow")                                                      \
  X(BUSY, "busy")                                                              \
  X(AGAIN, "resource temporarily unavailable")                                \
  X(INTR, "interrupted")                                                       \
  X(CANCELLED, "cancelled")                                                    \
  X(PARKED, "parked")                                                          \
  X(TOOMANY, "too many held")                                                  \
  X(SYS, "system error")

enum {
  CC_OK = 0,
  CC__EBASE = -1000,
#define CC_ENUM(n, s) CC_E##n,
  CC_ERRORS(CC_ENUM)
#undef CC_ENUM
};

/* Short stable message for a CC_E* code (or "ok"). */
const char *cc_strerror(int err);
/* Upper-case code name without the prefix: "TIMEOUT", "CLOSED", ... */
const char *cc_errname(int err);

/* ---- time ---------------------------------------------------------------
 * All waits take an absolute deadline on CLOCK_MONOTONIC in nanoseconds.
 * CC_FOREVER never expires; CC_NOW (0) expires at once. */
typedef int64_t cc_deadline_t;
#define CC_FOREVER INT64_MAX
#define CC_NOW ((cc_deadline_t)0)

int64_t cc_now_ns(void);
/* Deadline `seconds` from now; seconds < 0 means CC_FOREVER (no timeout). */
cc_deadline_t cc_deadline_in(double seconds);
/* Sleeps until `d`; returns early only if it is already passed. */
void cc_sleep_until(cc_deadline_t d);

/* Aborts with a message: for broken invariants only, never for user error. */
_Noreturn void cc_panic(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

#endif
