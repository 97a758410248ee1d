/* env.c - the CONCLUA_* environment variables (see env.h). */
#include "env.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc.h"

static const struct {
  const char *name;
  long min, max;
  const char *what;
} vars[] = {
    {"CONCLUA_SPIN", 0, 10000000, "spin polls before a wait parks"},
    {"CONCLUA_NO_PIDFD", 0, 1, "1 to watch children without pidfds"},
    {"CONCLUA_DUMP_SITES", 0, 1, "0 to record no wait sites for conc.dump"},
};

static int find(const char *name) {
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
    if (strcmp(vars[i].name, name) == 0) return (int)i;
  return -1;
}

int cc_env_int(const char *name, long def, long *out) {
  const char *s = getenv(name);
  char *end;
  long v;
  int i = find(name);
  *out = def;
  if (!s || !*s) return 0;
  errno = 0;
  v = strtol(s, &end, 10);
  if (i < 0 || errno || *end || end == s || v < vars[i].min || v > vars[i].max) return CC_EINVAL;
  *out = v;
  return 0;
}

const char *cc_env_check(void) {
  static char msg[200];
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
    long v;
    if (cc_env_int(vars[i].name, 0, &v) != 0) {
      snprintf(msg, sizeof msg, "%s must be a whole number from %ld to %ld (%s), not '%s'",
               vars[i].name, vars[i].min, vars[i].max, vars[i].what, getenv(vars[i].name));
      return msg;
    }
  }
  return NULL;
}
