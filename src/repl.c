/*
 * repl.c - the read-eval-print loop of conclua.
 *
 * The semantics are lua.c's: a line is first tried as `return <line>;` so that
 * expressions print their values, incomplete chunks ("<eof>" syntax errors)
 * read continuation lines, `=expr` means `return expr`, the prompts come from
 * _PROMPT and _PROMPT2, errors print without the program name.
 *
 * Input goes through GNU readline's callback interface, driven by a poll loop
 * in this (the main) thread, which is the only one that ever calls readline.
 * The loop also watches
 *   - a self-pipe written by the SIGINT and SIGWINCH handlers: Ctrl-C at the
 *     prompt discards the input (also a pending multi-line chunk) and shows a
 *     fresh prompt; a resize is passed on to readline;
 *   - on a terminal, the read end of an output relay: while the prompt is
 *     shown, descriptor 1 (and 2 when it is the same terminal) points into a
 *     pipe, so whatever other threads write (print, io.write, C stdio, child
 *     programs) is drawn above the prompt, which is then redrawn with the
 *     partial input. While a chunk runs the descriptors point at the terminal
 *     again, so programs started from the REPL see a real terminal.
 * While the prompt is shown the terminal is in readline's raw mode (and
 * bracketed paste is on), and readline's own signal handlers are off. So
 * that the program never leaves the terminal that way, term_restore puts
 * back the settings the prompt started from, and the descriptors the relay
 * took: from an atexit handler (os.exit in another thread) and from the
 * handlers of SIGTERM, SIGHUP and SIGQUIT, which then end the process by the
 * signal as before.
 * See docs/CLI.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#include <lauxlib.h>
#include <lua.h>

#include "cli.h"

#define HISTORY_NAME ".conclua_history"
#define HISTORY_MAX 1000
#define PROMPT1 "> "
#define PROMPT2 ">> "
#define EOFMARK "<eof>"
#define RELAY_BATCH 65536 /* bytes drawn before the prompt is redrawn */

/* Outcomes of reading one line. */
enum { LINE_EOF = 0, LINE_OK = 1, LINE_INTR = 2 };
/* loadline outcomes besides Lua status codes. */
enum { NO_INPUT = -1, CANCELLED = -2 };

static struct {
  int relay;          /* the output relay is in use */
  FILE *out;          /* where readline draws */
  int tty_fd;         /* the terminal (a copy of descriptor 1), relay only */
  int err_fd;         /* copy of descriptor 2 when it is relayed too, else -1 */
  int pipe_r, pipe_w; /* the relay pipe */
  int wake_r, wake_w; /* self-pipe written by the signal handlers */
  char *history;      /* history file, NULL when not saving */
  char *line;         /* handed over by the readline callback */
  int got_line;
  char *ahead;        /* keys typed ahead in canonical mode (see typeahead) */
  size_t ahead_len, ahead_pos;
} R = {0, NULL, -1, -1, -1, -1, -1, -1, NULL, NULL, 0, NULL, 0, 0};

static volatile sig_atomic_t got_sigint, got_winch;

/* What term_restore needs, written by the main thread before a prompt and
 * read from a signal handler or atexit, perhaps on another thread: the
 * settings are kept in two slots, and `term_slot` (1 or 2, 0 when no prompt
 * is shown) names the one of the current prompt; it is stored after the
 * slot is filled, so a reader that sees it sees the settings. */
static struct {
  struct termios saved[2]; /* the terminal's settings as the prompt began */
  int saved_ok[2];         /* they could be read (stdin is a terminal) */
  int paste[2];            /* readline turns bracketed paste on */
  int out_fd;              /* where readline draws (R.out's descriptor) */
  int next;                /* the slot the next prompt fills (main thread) */
  int atexit_set;
} T = {.out_fd = -1};
static atomic_int term_slot;

/* The fatal signals whose default action would leave the terminal raw. */
static const int term_signals[] = {SIGTERM, SIGHUP, SIGQUIT};
#define N_TERM_SIGNALS (sizeof term_signals / sizeof term_signals[0])
static int term_handled[N_TERM_SIGNALS]; /* ours is installed (main thread) */

/* ---- signals ---------------------------------------------------------- */

static void on_signal(int sig) {
  int saved = errno;
  char c = 0;
  if (sig == SIGINT)
    got_sigint = 1;
  else
    got_winch = 1;
  if (write(R.wake_w, &c, 1) < 0) {
    /* the pipe is full: a wake-up is pending anyway */
  }
  errno = saved;
}

static void drain_fd(int fd) {
  char buf[64];
  while (read(fd, buf, sizeof buf) > 0) {
  }
}

/* ---- output relay ----------------------------------------------------- */

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return;
    }
    p += w;
    n -= (size_t)w;
  }
}

static int same_terminal(int a, int b) {
  struct stat sa, sb;
  return isatty(a) && isatty(b) && fstat(a, &sa) == 0 && fstat(b, &sb) == 0 &&
         sa.st_rdev == sb.st_rdev;
}

/* Sets the relay up (once). Returns 0, or -1 when it cannot be used. */
static int relay_open(void) {
  int p[2];
  if (R.tty_fd >= 0) return 0;
  if (pipe2(p, O_CLOEXEC) != 0) return -1;
  R.tty_fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
  R.out = R.tty_fd >= 0 ? fdopen(R.tty_fd, "w") : NULL;
  if (R.out == NULL) {
    if (R.tty_fd >= 0) close(R.tty_fd);
    R.tty_fd = -1;
    close(p[0]);
    close(p[1]);
    return -1;
  }
  fcntl(p[0], F_SETFL, O_NONBLOCK);
  R.pipe_r = p[0];
  R.pipe_w = p[1];
  if (same_terminal(STDOUT_FILENO, STDERR_FILENO))
    R.err_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
  /* The pipe stays open until the process ends: a thread still writing
   * into it must never get SIGPIPE. */
  return 0;
}

/* Entering the prompt: output of other threads goes into the pipe. */
static void relay_begin(void) {
  if (!R.relay) return;
  dup2(R.pipe_w, STDOUT_FILENO);
  if (R.err_fd >= 0) dup2(R.pipe_w, STDERR_FILENO);
}

/* Leaving the prompt: back to the terminal, and what is left in the pipe
 * goes out first. */
static void relay_end(void) {
  char buf[4096];
  ssize_t n;
  if (!R.relay) return;
  dup2(R.tty_fd, STDOUT_FILENO);
  if (R.err_fd >= 0) dup2(R.err_fd, STDERR_FILENO);
  while ((n = read(R.pipe_r, buf, sizeof buf)) > 0) write_all(R.tty_fd, buf, (size_t)n);
}

/* Draws what other threads wrote above the prompt, then redraws the prompt
 * with the input typed so far. */
static void relay_show(void) {
  char buf[4096];
  size_t total = 0;
  ssize_t n;
  char last = '\n';
  while (total < RELAY_BATCH && (n = read(R.pipe_r, buf, sizeof buf)) > 0) {
    if (total == 0) {
      rl_clear_visible_line();
      fflush(R.out);
    }
    write_all(R.tty_fd, buf, (size_t)n);
    last = buf[n - 1];
    total += (size_t)n;
  }
  if (total == 0) return;
  if (last != '\n') write_all(R.tty_fd, "\n", 1); /* the prompt starts a line */
  rl_on_new_line();
  rl_redisplay();
}

/* ---- leaving the terminal as it was ----------------------------------- */

/* Undoes what showing the prompt did to the terminal, when the process ends
 * while it is shown: the terminal's settings (readline's raw mode), the
 * bracketed paste mode, and descriptors 1 and 2 (the relay); what other
 * threads wrote into the relay and nobody drew yet is written out. Only
 * async-signal-safe calls: it runs in signal handlers and in atexit, on any
 * thread, while the main thread may still be in the prompt loop. */
static void term_restore(void) {
  static const char paste_off[] = "\x1b[?2004l\r"; /* as readline's deprep */
  char buf[4096];
  size_t total = 0;
  ssize_t n;
  /* not taken: were a signal and os.exit to meet, each restores all before
   * it lets the process end (twice does no harm) */
  int slot = atomic_load(&term_slot);
  if (slot == 0) return; /* no prompt shown */
  slot--;
  if (T.saved_ok[slot]) tcsetattr(STDIN_FILENO, TCSANOW, &T.saved[slot]);
  if (T.paste[slot] && T.out_fd >= 0) write_all(T.out_fd, paste_off, sizeof paste_off - 1);
  if (!R.relay) return;
  dup2(R.tty_fd, STDOUT_FILENO);
  if (R.err_fd >= 0) dup2(R.err_fd, STDERR_FILENO);
  /* bounded: writers still busy after the dup2 are few and brief */
  while (total < RELAY_BATCH && (n = read(R.pipe_r, buf, sizeof buf)) > 0) {
    if (total == 0) write_all(R.tty_fd, "\n", 1); /* below the prompt's line */
    write_all(R.tty_fd, buf, (size_t)n);
    total += (size_t)n;
  }
}

/* os.exit (or exit from C) in another thread while the prompt is shown. */
static void term_atexit(void) {
  int saved = errno;
  term_restore();
  errno = saved;
}

/* SIGTERM, SIGHUP, SIGQUIT while the prompt is shown: the terminal is put
 * back, then the signal ends the process by its default action (the exit
 * status still tells which). */
static void on_fatal_signal(int sig) {
  struct sigaction dfl;
  int saved = errno; /* (the process ends, but a handler keeps errno as it was) */
  term_restore();
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(sig, &dfl, NULL);
  raise(sig); /* blocked in this handler: delivered as it returns */
  errno = saved;
}

/* Showing a prompt: remembers the terminal as it is, and installs the
 * handlers of the fatal signals whose action is the default one (a handler
 * or SIG_IGN set by someone else is left alone). */
static void term_prompt_begin(void) {
  struct sigaction sa, old;
  int slot = T.next;
  const char *paste;
  T.next ^= 1;
  T.saved_ok[slot] = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &T.saved[slot]) == 0;
  paste = rl_variable_value("enable-bracketed-paste");
  T.paste[slot] = T.saved_ok[slot] && paste != NULL && strcmp(paste, "on") == 0;
  atomic_store(&term_slot, slot + 1);
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_fatal_signal;
  sigfillset(&sa.sa_mask); /* one restore at a time on this thread */
  for (size_t i = 0; i < N_TERM_SIGNALS; i++) {
    term_handled[i] = 0;
    if (sigaction(term_signals[i], NULL, &old) != 0 || old.sa_handler != SIG_DFL ||
        (old.sa_flags & SA_SIGINFO))
      continue;
    term_handled[i] = sigaction(term_signals[i], &sa, NULL) == 0;
  }
}

/* The prompt is gone (readline has put the terminal back itself). */
static void term_prompt_end(void) {
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  for (size_t i = 0; i < N_TERM_SIGNALS; i++)
    if (term_handled[i]) sigaction(term_signals[i], &dfl, NULL);
  atomic_store(&term_slot, 0);
}

/* ---- history ---------------------------------------------------------- */

static void history_open(void) {
  const char *home = getenv("HOME");
  size_t n;
  using_history();
  stifle_history(HISTORY_MAX);
  if (!isatty(STDIN_FILENO) || home == NULL || *home == '\0') return;
  n = strlen(home) + sizeof "/" HISTORY_NAME;
  R.history = malloc(n);
  if (R.history == NULL) return;
  snprintf(R.history, n, "%s/%s", home, HISTORY_NAME);
  read_history(R.history);
  history_truncate_file(R.history, HISTORY_MAX);
}

/* Keeps a line in the history, and at once in the file, so that os.exit or
 * a crash does not lose it. */
static void history_add(const char *line) {
  add_history(line);
  if (R.history) {
    int fd = open(R.history, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0) {
      close(fd);
      append_history(1, R.history);
    }
  }
}

static void history_close(void) {
  if (R.history) history_truncate_file(R.history, HISTORY_MAX);
  free(R.history);
  R.history = NULL;
}

/* ---- reading a line --------------------------------------------------- */

static void line_done(char *line) {
  R.line = line;
  R.got_line = 1;
  rl_callback_handler_remove();
}

/* Ctrl-C at the prompt: show it, drop the input. */
static void cancel_line(void) {
  rl_callback_sigcleanup();
  rl_free_line_state();
  rl_point = rl_end;
  rl_redisplay();
  fputs("^C\n", R.out);
  fflush(R.out);
  rl_replace_line("", 1);
  rl_callback_handler_remove();
}

static int prompt_loop(void) {
  struct pollfd fds[3];
  nfds_t nfds = R.relay ? 3 : 2;
  fds[0].fd = STDIN_FILENO;
  fds[1].fd = R.wake_r;
  fds[2].fd = R.pipe_r;
  for (nfds_t i = 0; i < 3; i++) fds[i].events = POLLIN;
  while (!R.got_line) {
    if (R.ahead_pos < R.ahead_len) { /* keys typed ahead: no need to wait */
      rl_callback_read_char();
      continue;
    }
    for (nfds_t i = 0; i < 3; i++) fds[i].revents = 0;
    if (poll(fds, nfds, -1) < 0 && errno != EINTR) {
      rl_callback_handler_remove();
      return LINE_EOF;
    }
    if (fds[1].revents) drain_fd(R.wake_r);
    if (got_sigint) {
      got_sigint = 0;
      cancel_line();
      return LINE_INTR;
    }
    if (got_winch) {
      got_winch = 0;
      rl_resize_terminal();
    }
    if (R.relay && (fds[2].revents & POLLIN)) relay_show();
    if (fds[0].revents & POLLNVAL) {
      rl_callback_handler_remove();
      return LINE_EOF;
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) rl_callback_read_char();
  }
  return R.line ? LINE_OK : LINE_EOF;
}

/* Input typed while the terminal is in canonical mode (before the first
 * prompt, or while a chunk runs) waits in the terminal as lines; an end of
 * file (Ctrl-D) there is kept as a line end with a NUL byte, which readline,
 * once it has switched the terminal to raw mode, would read as Ctrl-@: the
 * Ctrl-D would be lost and the REPL would not end. So what is ready is read
 * here first, still in canonical mode, where a read of 0 bytes is that end
 * of file, written down as the terminal's end-of-file key; readline then
 * takes all of it as keys (ahead_getc) before it reads the terminal again,
 * and so sees the input as typed. Input not yet ended by Enter is not ready
 * (in canonical mode) and is left where it is. */
static void typeahead(void) {
  struct termios t;
  struct pollfd pfd = {STDIN_FILENO, POLLIN, 0};
  if (R.ahead_pos == R.ahead_len) R.ahead_pos = R.ahead_len = 0;
  if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &t) != 0 || !(t.c_lflag & ICANON))
    return;
  while (poll(&pfd, 1, 0) > 0 && (pfd.revents & POLLIN)) {
    char buf[4096], *grown;
    ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return;
    if (n == 0) { /* the end of file, as the key that typed it */
      buf[0] = t.c_cc[VEOF] != _POSIX_VDISABLE ? (char)t.c_cc[VEOF] : '\4';
      n = 1;
    }
    if (!(grown = realloc(R.ahead, R.ahead_len + (size_t)n))) return;
    R.ahead = grown;
    memcpy(R.ahead + R.ahead_len, buf, (size_t)n);
    R.ahead_len += (size_t)n;
    if (n == 1 && buf[0] == (char)t.c_cc[VEOF]) return; /* what follows it waits */
  }
}

/* readline's input: the keys typed ahead first, then the terminal. */
static int ahead_getc(FILE *in) {
  if (R.ahead_pos < R.ahead_len) return (unsigned char)R.ahead[R.ahead_pos++];
  return rl_getc(in);
}

/* Shows the prompt and reads one line (malloc'ed, into *out). */
static int read_line(const char *prompt, char **out) {
  int st;
  fflush(stdout);
  fflush(stderr);
  typeahead();
  drain_fd(R.wake_r);
  got_sigint = 0;
  if (got_winch) {
    got_winch = 0;
    rl_reset_screen_size();
  }
  R.got_line = 0;
  R.line = NULL;
  term_prompt_begin();
  relay_begin();
  rl_callback_handler_install(prompt, line_done);
  st = prompt_loop();
  relay_end();
  term_prompt_end();
  if (st == LINE_OK) *out = R.line;
  return st;
}

/* ---- lua.c's REPL semantics ------------------------------------------- */

/* Leaves the prompt's value on the stack and returns its text. */
static const char *get_prompt(lua_State *L, int firstline) {
  if (lua_getglobal(L, firstline ? "_PROMPT" : "_PROMPT2") == LUA_TNIL)
    return firstline ? PROMPT1 : PROMPT2;
  {
    const char *p = luaL_tolstring(L, -1, NULL);
    lua_remove(L, -2);
    return p;
  }
}

/* Reads a line and pushes it. Returns a LINE_* value (pushes only LINE_OK). */
static int pushline(lua_State *L, int firstline) {
  char *b = NULL;
  size_t l;
  int st = read_line(get_prompt(L, firstline), &b);
  lua_pop(L, 1); /* the prompt */
  if (st != LINE_OK) return st;
  l = strlen(b);
  if (l > 0 && b[l - 1] == '\n') b[--l] = '\0';
  if (firstline && b[0] == '=') /* 5.2's "=expr" */
    lua_pushfstring(L, "return %s", b + 1);
  else
    lua_pushlstring(L, b, l);
  free(b);
  return LINE_OK;
}

/* Tries the line as "return <line>;". */
static int addreturn(lua_State *L) {
  const char *line = lua_tostring(L, -1);
  const char *retline = lua_pushfstring(L, "return %s;", line);
  int status = luaL_loadbuffer(L, retline, strlen(retline), "=stdin");
  if (status == LUA_OK) {
    lua_remove(L, -2);
    if (line[0] != '\0') history_add(line);
  } else {
    lua_pop(L, 2);
  }
  return status;
}

/* A syntax error at the end of the input: more lines may complete it. Pops
 * the message when so. */
static int incomplete(lua_State *L, int status) {
  if (status == LUA_ERRSYNTAX) {
    size_t lmsg, lmark = sizeof EOFMARK - 1;
    const char *msg = lua_tolstring(L, -1, &lmsg);
    if (lmsg >= lmark && strcmp(msg + lmsg - lmark, EOFMARK) == 0) {
      lua_pop(L, 1);
      return 1;
    }
  }
  return 0;
}

/* Compiles the chunk at index 1, adding continuation lines while it is
 * incomplete. */
static int multiline(lua_State *L) {
  for (;;) {
    size_t len;
    const char *line = lua_tolstring(L, 1, &len);
    int status = luaL_loadbuffer(L, line, len, "=stdin");
    int st;
    if (!incomplete(L, status)) {
      history_add(line);
      return status;
    }
    st = pushline(L, 0);
    if (st == LINE_INTR) return CANCELLED;
    if (st == LINE_EOF) { /* report the syntax error itself (lua prints "(null)") */
      history_add(line);
      return luaL_loadbuffer(L, line, len, "=stdin");
    }
    lua_pushliteral(L, "\n");
    lua_insert(L, -2);
    lua_concat(L, 3);
  }
}

/* Reads and compiles one chunk: the function (or an error message) is left
 * alone on the stack. */
static int loadline(lua_State *L) {
  int status;
  lua_settop(L, 0);
  status = pushline(L, 1);
  if (status == LINE_EOF) return NO_INPUT;
  if (status == LINE_INTR) return CANCELLED;
  if ((status = addreturn(L)) != LUA_OK) status = multiline(L);
  if (status == CANCELLED) return CANCELLED;
  lua_remove(L, 1);
  return status;
}

/* Prints the values on the stack with the global print. */
static void l_print(lua_State *L) {
  int n = lua_gettop(L);
  if (n > 0) {
    luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
    lua_getglobal(L, "print");
    lua_insert(L, 1);
    if (lua_pcall(L, n, 0, 0) != LUA_OK)
      cli_message(NULL, lua_pushfstring(L, "error calling 'print' (%s)", lua_tostring(L, -1)));
  }
}

static void repl_loop(lua_State *L) {
  int status;
  while ((status = loadline(L)) != NO_INPUT) {
    if (status == CANCELLED) continue;
    if (status == LUA_OK) status = cli_docall(L, 0, LUA_MULTRET);
    if (status == LUA_OK)
      l_print(L);
    else
      cli_report(L, status, NULL);
  }
  lua_settop(L, 0);
  fputs("\n", stdout);
  fflush(stdout);
}

/* ---- setup ------------------------------------------------------------ */

static int repl_open(void) {
  int p[2];
  if (R.wake_r < 0) {
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) return -1;
    R.wake_r = p[0];
    R.wake_w = p[1];
  }
  R.relay = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO) && relay_open() == 0;
  if (!R.relay) R.out = stdout;
  rl_readline_name = "conclua";
  rl_catch_signals = 0;      /* the handlers here drive Ctrl-C */
  rl_catch_sigwinch = 0;
  rl_change_environment = 0; /* setenv would race with other threads */
  rl_instream = stdin;
  rl_getc_function = ahead_getc;
  rl_outstream = R.out;
  /* now rather than at the first prompt: readline's variables (bracketed
   * paste, from the inputrc and the terminal type) are known before it */
  rl_initialize();
  T.out_fd = fileno(R.out);
  if (!T.atexit_set) T.atexit_set = atexit(term_atexit) == 0;
  history_open();
  return 0;
}

void cli_repl(lua_State *L) {
  struct sigaction sa, old_int, old_winch;
  if (repl_open() != 0) luaL_error(L, "cannot start the REPL: %s", strerror(errno));
  memset(&sa, 0, sizeof sa);
  /* poll is never restarted, so the prompt loop sees every signal; other
   * calls are (a resize during a chunk must not fail its io.read). */
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGWINCH, &sa, &old_winch);
  /* In the caller's frame, not a protected call of its own: tracebacks then
   * end exactly as lua's do. An error escaping from here (a failing
   * _PROMPT's __tostring, memory) skips the restores below, which is
   * harmless: the caller resets SIGINT before waiting for threads. */
  repl_loop(L);
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGWINCH, &old_winch, NULL);
  history_close();
}
