/*
 * conclua.c - the conclua program: the options of the standard `lua` 5.4
 * interpreter, the `conc` library preloaded, and a final wait for every
 * non-daemon conc thread when the main chunk ends.
 *
 * Shaped like lua.c: everything runs inside one protected call (pmain), and
 * the SIGINT handler only calls conclua_interrupt (a hook, plus the flag
 * that makes conc waits of the main thread return). It uses the public
 * header only, like any host. The REPL lives in repl.c.
 */
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "cli.h"
#include "conclua.h"

#define PROGNAME "conclua"

/* NULL while the REPL runs: interactive errors carry no prefix, as in lua. */
static const char *program = PROGNAME; /* argv[0], as lua.c names itself */
static const char *progname = PROGNAME;

/* ---- messages --------------------------------------------------------- */

void cli_message(const char *pname, const char *msg) {
  if (pname) fprintf(stderr, "%s: ", pname);
  fprintf(stderr, "%s\n", msg);
  fflush(stderr);
}

int cli_report(lua_State *L, int status, const char *pname) {
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    cli_message(pname, msg ? msg : "(error object is not a string)");
    lua_pop(L, 1);
  }
  return status;
}

void cli_print_version(void) {
  /* lua's line as it is (tools match its end), then conclua's own. */
  fputs(LUA_COPYRIGHT "\nconclua " CONCLUA_VERSION "\n", stdout);
  fflush(stdout);
}

static void print_usage(FILE *f, const char *badoption, int needs_arg) {
  if (badoption) {
    fprintf(f, "%s: ", program);
    if (needs_arg)
      fprintf(f, "'%s' needs argument\n", badoption);
    else
      fprintf(f, "unrecognized option '%s'\n", badoption);
  }
  fprintf(f, "usage: %s [options] [script [args]]\n", program);
  fputs("Available options are:\n"
        "  -e stat   execute string 'stat'\n"
        "  -i        enter interactive mode after executing 'script'\n"
        "  -l mod    require library 'mod' into global 'mod'\n"
        "  -l g=mod  require library 'mod' into global 'g'\n"
        "  -v        show version information\n"
        "  -E        ignore environment variables\n"
        "  -W        turn warnings on\n"
        "  --        stop handling options\n"
        "  -         stop handling options and execute stdin\n"
        "conclua options:\n"
        "  -h, --help         show this message\n"
        "  --version          show version information\n"
        "  --trace FILE       write a trace of threads, processes and tasks (Perfetto JSON)\n"
        "  --timeline FILE    write the same trace as one HTML page\n"
        "  --lock-order       warn when two locks are taken in both orders\n"
        "Ctrl-\\ (SIGQUIT) prints conc.dump() to stderr.\n",
        f);
  fflush(f);
}

/* ---- protected calls and SIGINT --------------------------------------- */

/* The state the SIGINT handler interrupts (set before the handler is). */
static lua_State *volatile sig_state;

/* Installed with SA_RESETHAND: a second SIGINT gets the disposition of the
 * default action and ends the process, as in lua. Without SA_RESTART, so a
 * blocked futex wait or read returns EINTR. */
/* Set when a Ctrl-C reached a chunk: the wait at the end then says at once
 * what it waits for, and the next Ctrl-C quits (as Python's second one). */
static volatile sig_atomic_t had_sigint;

static void on_second_sigint(int sig);
static int trace_finisher; /* set once before any SIGINT handler: see below */

/* From a handler whose Ctrl-C may not be seen: with a trace on, the next
 * Ctrl-C writes the trace files, then quits (instead of the default). */
static void arm_second_sigint(void) {
  struct sigaction sa;
  if (!trace_finisher) return;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_second_sigint;
  sa.sa_flags = SA_RESETHAND;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
}

static void on_sigint_in_chunk(int sig) {
  (void)sig;
  had_sigint = 1;
  conclua_interrupt(sig_state);
  arm_second_sigint();
}

int cli_docall(lua_State *L, int narg, int nres) {
  struct sigaction sa, old;
  int status, base = lua_gettop(L) - narg;
  lua_pushcfunction(L, conclua_msghandler);
  lua_insert(L, base);
  sig_state = L;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigint_in_chunk;
  sa.sa_flags = SA_RESETHAND;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old);
  status = lua_pcall(L, narg, nres, base);
  sigaction(SIGINT, &old, NULL);
  /* An interrupt that arrived as the chunk ended must not reach the next. */
  conclua_interrupt_reset(L);
  lua_remove(L, base);
  return status;
}

static void finish_trace(void);

/* A Ctrl-C while waiting at the end ends the wait (the flag makes the
 * interruptible main thread's wait return). Installed with SA_RESETHAND for
 * the last wait, so that one more Ctrl-C kills at once if the first is not
 * seen. */
static void on_sigint_at_end(int sig) {
  (void)sig;
  conclua_interrupt(NULL);
  arm_second_sigint();
}

/* How long the end waits quietly before it says what it waits for. */
#define QUIET_WAIT_S 3.0

/* At the end the program waits for every non-daemon thread. When they have
 * not all ended after QUIET_WAIT_S, or at the first Ctrl-C (at once, if a
 * Ctrl-C already ended the script), it prints what it waits for
 * (conclua_dump: each thread, what it is blocked in, where); from then on a
 * Ctrl-C ends the program. */
static void wait_for_threads(void) {
  struct sigaction sa;
  int rc;
  memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  sa.sa_handler = on_sigint_at_end; /* no SA_RESTART: the wait sees EINTR */
  sigaction(SIGINT, &sa, NULL);
  rc = conclua_wait_threads_for(had_sigint ? 0 : QUIET_WAIT_S);
  if (rc != CONCLUA_OK) {
    char *dump;
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &sa, NULL);
    dump = conclua_dump();
    fprintf(stderr, "%s: the script has ended; waiting for its threads (Ctrl-C %sto quit):\n%s",
            program, rc == CONCLUA_EINTR || had_sigint ? "again " : "",
            dump ? dump : "(no memory for the list)\n");
    fflush(stderr);
    free(dump);
    if (conclua_wait_threads_for(-1) == CONCLUA_EINTR) {
      /* quit as a Ctrl-C does, with the trace files written first */
      cli_message(program, "interrupted while waiting for threads");
      finish_trace();
      signal(SIGINT, SIG_DFL);
      raise(SIGINT);
    }
  }
  signal(SIGINT, SIG_DFL);
}

/* ---- chunks ----------------------------------------------------------- */

static int dochunk(lua_State *L, int status) {
  if (status == LUA_OK) status = cli_docall(L, 0, 0);
  return cli_report(L, status, progname);
}

static int dofile(lua_State *L, const char *name) {
  return dochunk(L, luaL_loadfile(L, name));
}

static int dostring(lua_State *L, const char *s, const char *name) {
  return dochunk(L, luaL_loadbuffer(L, s, strlen(s), name));
}

/* -l mod or -l g=mod: g = require(mod) (g defaults to mod). */
static int dolibrary(lua_State *L, const char *spec) {
  const char *eq = strchr(spec, '=');
  int status;
  lua_getglobal(L, "require");
  lua_pushstring(L, eq ? eq + 1 : spec);
  status = cli_docall(L, 1, 1);
  if (status == LUA_OK) {
    lua_pushlstring(L, spec, eq ? (size_t)(eq - spec) : strlen(spec));
    lua_insert(L, -2);
    lua_setglobal(L, lua_tostring(L, -2));
    lua_pop(L, 1);
  }
  return cli_report(L, status, progname);
}

/* Pushes arg[1..#arg] (the table as it is now: -e code may change it). */
static int pushargs(lua_State *L) {
  int i, n;
  if (lua_getglobal(L, "arg") != LUA_TTABLE) luaL_error(L, "'arg' is not a table");
  n = (int)luaL_len(L, -1);
  luaL_checkstack(L, n + 3, "too many arguments to script");
  for (i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
  lua_remove(L, -i);
  return n;
}

static int handle_script(lua_State *L, char **argv) {
  const char *fname = argv[0];
  int status;
  if (strcmp(fname, "-") == 0 && strcmp(argv[-1], "--") != 0) fname = NULL; /* stdin */
  status = luaL_loadfile(L, fname);
  if (status == LUA_OK) {
    int n = pushargs(L);
    status = cli_docall(L, n, LUA_MULTRET);
  }
  return cli_report(L, status, progname);
}

/* LUA_INIT_5_4, else LUA_INIT: "@file" runs the file, anything else is code. */
static int handle_luainit(lua_State *L) {
  const char *name = "=LUA_INIT_" LUA_VERSION_MAJOR "_" LUA_VERSION_MINOR;
  const char *init = getenv(name + 1);
  if (init == NULL) {
    name = "=LUA_INIT";
    init = getenv(name + 1);
  }
  if (init == NULL) return LUA_OK;
  if (init[0] == '@') return dofile(L, init + 1);
  return dostring(L, init, name);
}

/* Runs -e, -l and -W in command-line order, up to (not including) argv[n]. */
static int runargs(lua_State *L, char **argv, int n) {
  for (int i = 1; i < n; i++) {
    int option = argv[i][1];
    switch (option) {
    case 'e':
    case 'l': {
      const char *extra = argv[i] + 2;
      int status;
      if (*extra == '\0') extra = argv[++i];
      status = option == 'e' ? dostring(L, extra, "=(command line)") : dolibrary(L, extra);
      if (status != LUA_OK) return 0;
      break;
    }
    case 'W':
      lua_warning(L, "@on", 0);
      break;
    case '-': /* a long option: skip its separate argument */
      if ((strcmp(argv[i], "--trace") == 0 || strcmp(argv[i], "--timeline") == 0) &&
          i + 1 < n)
        i++;
      break;
    }
  }
  return 1;
}

/* arg[0] is the script (or the program when there is none), the arguments
 * after it are positive, the interpreter and its options negative. */
static void create_arg_table(lua_State *L, char **argv, int argc, int script) {
  int narg = argc - (script + 1);
  lua_createtable(L, narg > 0 ? narg : 0, script + 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

/* With -E, conc threads' states ignore LUA_PATH and LUA_CPATH too: they get
 * the main state's environment-free paths. */
static char *noenv_path, *noenv_cpath;

static void noenv_state_hook(lua_State *L, void *ud) {
  (void)ud;
  if (lua_getglobal(L, "package") == LUA_TTABLE) {
    lua_pushstring(L, noenv_path);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, noenv_cpath);
    lua_setfield(L, -2, "cpath");
  }
  lua_pop(L, 1);
}

static char *package_field(lua_State *L, const char *field) {
  const char *s;
  char *copy;
  lua_getglobal(L, "package");
  lua_getfield(L, -1, field);
  s = lua_tostring(L, -1);
  copy = strdup(s ? s : "");
  lua_pop(L, 2);
  if (copy == NULL) luaL_error(L, "not enough memory");
  return copy;
}

/* ---- --trace, --timeline, --lock-order, Ctrl-\\ ---------------------------- */

static int tracing;

/* Writes the trace files (once): at the normal end, and from atexit when
 * the script calls os.exit. */
static int trace_failed; /* the files could not be written: exit status 1 */

static void close_trace(void) {
  char err[512];
  if (conclua_trace_stop(err, sizeof err) != CONCLUA_OK) {
    cli_message(program, err);
    trace_failed = 1;
  }
}

/* Once, from whichever thread comes first; a second caller waits until the
 * files are written (the program must not exit under the finisher). */
static pthread_once_t trace_closed = PTHREAD_ONCE_INIT;
static void finish_trace(void) {
  if (tracing) pthread_once(&trace_closed, close_trace);
}

/* A second Ctrl-C while the chunk runs or the end waits for threads (the
 * first one not seen yet: the main thread is in C code that does not
 * return, such as a string.find that backtracks for ever) used to kill at
 * once and leave the trace files empty. With a trace on, the first one's
 * handler installs this one: it wakes the finisher thread (sem_post is
 * async-signal-safe), which writes the files while the script's threads
 * may still record (the trace's close is made for that), then ends the
 * program as the Ctrl-C would have. A third Ctrl-C kills at once. */
static sem_t finisher_go;

static void on_second_sigint(int sig) {
  (void)sig;
  sem_post(&finisher_go);
}

static void *finisher(void *arg) {
  static const char msg[] = PROGNAME ": interrupted again: writing the trace files, then "
                            "quitting (Ctrl-C once more quits at once)\n";
  (void)arg;
  while (sem_wait(&finisher_go) != 0) {
  }
  if (write(2, msg, sizeof msg - 1) < 0) {
  }
  finish_trace();
  signal(SIGINT, SIG_DFL);
  kill(getpid(), SIGINT);
  return NULL;
}

/* All signals blocked in it: Ctrl-C must reach the main thread. */
static void start_finisher(void) {
  pthread_t th;
  pthread_attr_t at;
  sigset_t all, old;
  if (sem_init(&finisher_go, 0, 0) != 0) return;
  pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  if (pthread_create(&th, &at, finisher, NULL) == 0) trace_finisher = 1;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&at);
}

/* Before the script: the trace files are created now, so a path that
 * cannot be written is an error before anything runs. */
static int start_insight(const cli_opts *o) {
  conclua_dump_on_sigquit();
  if (o->lock_order) conclua_lock_order();
  if (o->trace_file || o->timeline_file) {
    char err[512];
    if (conclua_trace_start(o->trace_file, o->timeline_file, err, sizeof err) != CONCLUA_OK) {
      cli_message(program, err);
      return 0;
    }
    tracing = 1;
    atexit(finish_trace);
    start_finisher();
  }
  return 1;
}

/* Everything, in protected mode. Returns true on success. */
static int pmain(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = lua_touserdata(L, 2);
  cli_opts opts = {NULL, NULL, 0};
  int script, optlim, args;
  luaL_checkversion(L);
  args = cli_parse_args(argv, &script, &opts);
  optlim = script > 0 ? script : argc;
  if (args & HAS_ERROR) {
    print_usage(stderr, argv[script], args & NEEDS_ARG);
    return 0;
  }
  if (args & HAS_VERSION) {
    cli_print_version();
    lua_pushboolean(L, 1);
    return 1;
  }
  if (args & HAS_HELP) {
    print_usage(stdout, NULL, 0);
    lua_pushboolean(L, 1);
    return 1;
  }
  if (!start_insight(&opts)) return 0;
  if (args & HAS_V) cli_print_version();
  if (args & HAS_NOENV) {
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
  }
  conclua_openlibs(L);
  if (args & HAS_NOENV) {
    noenv_path = package_field(L, "path");
    noenv_cpath = package_field(L, "cpath");
    conclua_set_state_hook(noenv_state_hook, NULL);
  }
  create_arg_table(L, argv, argc, script);
  lua_gc(L, LUA_GCRESTART);
  lua_gc(L, LUA_GCGEN, 0, 0);
  if (!(args & HAS_NOENV) && handle_luainit(L) != LUA_OK) return 0;
  if (!runargs(L, argv, optlim)) return 0;
  if (script > 0 && handle_script(L, argv + script) != LUA_OK) return 0;
  if (args & HAS_I) {
    progname = NULL;
    cli_repl(L);
    progname = program;
  } else if (script < 1 && !(args & (HAS_E | HAS_V))) {
    if (isatty(STDIN_FILENO)) {
      cli_print_version();
      progname = NULL;
      cli_repl(L);
      progname = program;
    } else if (dofile(L, NULL) != LUA_OK) {
      return 0; /* lua 5.4 exits with 0 here; an error must not look like success */
    }
  }
  lua_pushboolean(L, 1);
  return 1;
}

int main(int argc, char **argv) {
  lua_State *L;
  int status, result;
  if (argv[0] && argv[0][0]) program = progname = argv[0];
  L = luaL_newstate();
  if (L == NULL) {
    cli_message(program, "cannot create state: not enough memory");
    return EXIT_FAILURE;
  }
  conclua_set_interruptible(1);
  lua_gc(L, LUA_GCSTOP); /* no collection while the state is being built */
  lua_pushcfunction(L, pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  status = lua_pcall(L, 2, 1, 0);
  result = lua_toboolean(L, -1);
  cli_report(L, status, progname);
  progname = program;
  wait_for_threads();
  finish_trace();
  lua_close(L);
  /* noenv_path and noenv_cpath stay: an idle worker may still be preparing
   * a state for a daemon thread. */
  return (result && status == LUA_OK && !trace_failed) ? EXIT_SUCCESS : EXIT_FAILURE;
}
