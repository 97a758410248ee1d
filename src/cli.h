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

/* ---- options (options.c) ---- */
enum {
  HAS_ERROR = 1,  /* bad option: print the usage */
  HAS_I = 2,      /* -i */
  HAS_V = 4,      /* -v (also implied by -i) */
  HAS_E = 8,      /* -e */
  HAS_NOENV = 16, /* -E */
  HAS_HELP = 32,  /* --help, -h */
  HAS_VERSION = 128, /* --version */
  NEEDS_ARG = 64  /* with HAS_ERROR: the option lacks its argument */
};

/* The conclua-only options (parsed; the program refuses them until they are
 * built). */
typedef struct cli_opts {
  const char *trace_file;
  const char *timeline_file;
  int lock_order;
} cli_opts;

/* Scans argv (NULL-terminated; argv[0] is the program) as lua does.
 * Returns HAS_* flags; *first becomes the index of the script (0 when there
 * is none) or, with HAS_ERROR, of the offending option. Strings in `o` point
 * into argv. Pure: no output, no allocation. */
int cli_parse_args(char **argv, int *first, cli_opts *o);

/* Prints the version lines to stdout. */
void cli_print_version(void);

/* Runs the read-eval-print loop until end of input (lua.c's doREPL). Errors
 * raised while it runs (memory, a bad _PROMPT) propagate to the caller. */
void cli_repl(lua_State *L);

#endif
