/* cc.c - error names, monotonic time, panic. */
#include "cc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static const char *const messages[] = {
#define CC_MSG(n, s) s,
    CC_ERRORS(CC_MSG)
#undef CC_MSG
};
static const char *const names[] = {
#define CC_NAME(n, s) #n,
    CC_ERRORS(CC_NAME)
#undef CC_NAME
};

#define NERRORS (int)(sizeof messages / sizeof messages[0])

const char *cc_strerror(int err) {
  int i = err - CC__EBASE - 1;
  if (err == 0) return "ok";
  return (i >= 0 && i < NERRORS) ? messages[i] : "unknown error";
}

const char *cc_errname(int err) {
  int i = err - CC__EBASE - 1;
  if (err == 0) return "OK";
  return (i >= 0 && i < NERRORS) ? names[i] : "UNKNOWN";
}

int64_t cc_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

cc_deadline_t cc_deadline_in(double seconds) {
  if (seconds < 0 || seconds != seconds) return CC_FOREVER;
  if (seconds > 1e9) return CC_FOREVER; /* ~31 years: forever enough */
  return cc_now_ns() + (int64_t)(seconds * 1e9);
}

void cc_sleep_until(cc_deadline_t d) {
  struct timespec ts;
  if (d == CC_FOREVER) d = cc_now_ns() + (int64_t)1e18;
  ts.tv_sec = d / 1000000000;
  ts.tv_nsec = d % 1000000000;
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
  }
}

void cc_panic(const char *fmt, ...) {
  va_list ap;
  fputs("conclua: internal error: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  abort();
}
