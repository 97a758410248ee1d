/*
 * cli.h - what the two halves of the conclua program share: src/conclua.c
 * (options, scripts, signals) and src/repl.c (the read-eval-print loop).
 */
#ifndef CONCLUA_CLI_H
#define CONCLUA_CLI_H

#include <lua.h>

/* Writes "pname: msg\n" to stderr, or only "msg\n" when pname is NULL. */
void cli_message(const char *pname, const char *msg);

/* When status is an error, prints the value on top of the stack with
 * cli_message and pops it. Returns status. */
int cli_report(lua_State *L, int status, const char *pname);

/* Calls the function that sits below its narg arguments on top of the stack,
 * in protected mode with a traceback handler, as lua.c's docall does. While
 * it runs, the first SIGINT makes the running chunk raise "interrupted!" and
 * makes interruptible conc waits of this thread return; a second one ends the
 * process. The previous SIGINT disposition is restored afterwards. */
int cli_docall(lua_State *L, int narg, int nres);

/* Prints the version line to stdout. */
void cli_print_version(void);

/* Runs the read-eval-print loop until end of input (lua.c's doREPL). Errors
 * raised while it runs (memory, a bad _PROMPT) propagate to the caller. */
void cli_repl(lua_State *L);

#endif
