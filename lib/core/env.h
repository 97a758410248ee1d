/*
 * env.h - the CONCLUA_* environment variables: one table of what each may
 * hold, one parser. A bad value is refused with a message that names the
 * variable, the value and what it may be (luaopen_conc raises it), never
 * ignored. CONCLUA_ARENA_MB has its own parser in arena.c (sizes).
 */
#ifndef CC_ENV_H
#define CC_ENV_H

/* The integer value of variable `name` (one of the table in env.c): `def`
 * when unset or empty, else the value when it is a whole number in range.
 * Returns 0, or CC_EINVAL when the value is bad (*out is then `def`). */
int cc_env_int(const char *name, long def, long *out);

/* NULL when every CONCLUA_* variable of the table holds a good value, else
 * a message about the first bad one (a static buffer). */
const char *cc_env_check(void);

#endif
