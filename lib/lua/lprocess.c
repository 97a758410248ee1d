/*
 * lprocess.c - conc.process, conc.pid, conc.ppid (the core is
 * lib/core/process.c; docs/PROCESSES.md).
 *
 * conc.process forks. The child runs fn(...) in its own copy of the calling
 * lua_State (its globals are the parent's at fork time), with the function
 * and arguments copied through the codec as for a thread, and never returns
 * to the parent's code: it stores its results or error in the arena and
 * _exits. The parent gets a Process object at once.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "codec.h"
#include "lconc.h"
#include "ltask.h"
#include "process.h"
#include "trace.h"

#define PROCESS_T (&cc_process_type)

static cc_process_t *checkp(lua_State *L, int idx) {
  return (cc_process_t *)conc_check(L, idx, PROCESS_T);
}

/* ---- the child ------------------------------------------------------------ */

/* Flushes L's default output file (io.output()) when it is not stdout: the
 * core flushes stdout and stderr itself. Allocates nothing. */
static void flush_default_output(lua_State *L) {
  luaL_Stream *s;
  lua_getfield(L, LUA_REGISTRYINDEX, "_IO_output");
  s = luaL_testudata(L, -1, LUA_FILEHANDLE);
  if (s && s->closef && s->f && s->f != stdout) fflush(s->f);
  lua_pop(L, 1);
}

/* os.exit in a child: C's exit() would run the parent's atexit handlers
 * (and a sanitizer's leak check over the parent's memory) in the child.
 * Flushes stdio and _exits instead, without reporting: the parent's join
 * sees the exit status. The state is not closed (the `close` argument is
 * ignored): it is the parent's copy. */
static int child_os_exit(lua_State *L) {
  int code;
  if (lua_isboolean(L, 1))
    code = lua_toboolean(L, 1) ? EXIT_SUCCESS : EXIT_FAILURE;
  else
    code = (int)luaL_optinteger(L, 1, EXIT_SUCCESS);
  flush_default_output(L);
  fflush(stdout);
  fflush(stderr);
  cc_trace_instant("exit", NULL);
  _exit(code);
}

static void replace_os_exit(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, "os") == LUA_TTABLE) {
    lua_pushcfunction(L, child_os_exit);
    lua_setfield(L, -2, "exit");
  }
  lua_pop(L, 2);
}

/* Runs in the child, on the C stack of the parent's conc.process call. The
 * job runs on the state's main coroutine, as a thread's job does
 * (coroutine.running() says it is the main one; a top-level yield is
 * "outside a coroutine"), even when conc.process was called inside a
 * coroutine: that one never resumes here, so calling into the main
 * coroutine, whose innermost frame is the C function that resumed it, is
 * a plain nested call. The traceback stops where the job starts
 * (conc_error_handler), not in the parent's frames below it. */
static _Noreturn void run_child(lua_State *L, cc_process_t *p) {
  size_t len = 0;
  lua_State *M;
  int rc;
  conc_adopt_after_fork(L, p->ppid);
  lua_settop(L, 0);
  replace_os_exit(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  M = lua_tothread(L, -1);
  lua_pop(L, 1); /* the registry keeps it */
  lua_pushcfunction(M, conc_error_handler);
  lua_pushcfunction(M, conc_run_job);
  lua_pushlightuserdata(M, &p->t);
  rc = lua_pcall(M, 1, 2, lua_gettop(M) - 2);
  flush_default_output(M);
  if (rc == LUA_OK) {
    void *data = lua_touserdata(M, -2);
    len = (size_t)lua_tointeger(M, -1);
    cc_process_exit(p, CC_T_OK, data, len);
  } else {
    void *err = conc_error_store(M, -1, &len); /* the error value, whatever its type */
    cc_process_exit(p, CC_T_ERROR, err, len);
  }
}

/* ---- hooks ----------------------------------------------------------------- */

/* A Lua error of a child that no join was waiting for when it was reaped
 * (the observed rule, thread.h); runs on the reaper thread. */
static void report_error(cc_process_t *p) {
  size_t tl;
  const char *tx = conc_error_text(p->t.result, p->t.result_len, &tl); /* no malloc */
  fprintf(stderr,
          "conclua: error in process '%s' (pid %d, started at %s), not joined:\n%.*s\n",
          p->t.h.name, (int)p->t.pid, p->t.spawn_site, (int)tl, tx);
  fflush(stderr);
}

static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;
static void install_hooks(void) {
  static const cc_process_hooks_t h = {report_error};
  cc_process_set_hooks(&h);
}

/* ---- Lua API ------------------------------------------------------------------ */

static int l_process(lua_State *L) {
  int pid;
  conc_spawn_t s;
  cc_process_t *p;
  conc_spawn_args(L, &s);
  p = cc_process_new(s.name, s.daemon);
  if (!p) {
    conc_wbuf_free(&s.job);
    return luaL_error(L, "conc.process: %s", cc_strerror(CC_ENOMEM));
  }
  conc_where(L, p->t.spawn_site, sizeof p->t.spawn_site);
  p->t.job = conc_wbuf_take(&s.job, &p->t.job_len);
  flush_default_output(L);
  conc_adopt_prepare(L); /* no Lua allocation from here to the fork */
  pid = cc_process_fork(p);
  if (pid == 0) run_child(L, p);
  if (pid < 0) {
    conc_adopt_cancel(L);
    cc_obj_unref(&p->t.h); /* frees the job */
    return conc_raise(L, pid, "conc.process: cannot fork"); /* names the limit */
  }
  conc_push_owned(L, &p->t.h);
  return 1;
}

static int joined(lua_State *L, int rc, cc_wait_t *w);

/* p:join([timeout]): a blocking call (ltask.h): a task suspends. */
static int l_join(lua_State *L) {
  cc_process_t *p = checkp(L, 1);
  cc_deadline_t d = conc_opt_deadline(L, 2);
  cc_wait_t local, *w;
  int rc;
  if (cc_self()->thread == &p->t.h)
    return luaL_error(L, "cannot join the current process");
  w = conc_wait_slot(L);
  if (!w) w = &local;
  rc = cc_process_join_w(w, p, d);
  if (rc == CC_WAIT_PARK) return conc_wait(L, w, joined);
  return joined(L, rc, w);
}

static int joined(lua_State *L, int rc, cc_wait_t *w) {
  cc_process_t *p = checkp(L, 1);
  (void)w;
  if (rc == CC_ETIMEOUT) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (rc != 0) return conc_raise(L, rc, "join");
  if (p->t.status == CC_T_ERROR) {
    /* The child's own error is named here; the core's texts (killed, exit
     * status) already name the process. */
    if (p->how == CC_PROC_REPORTED)
      conc_error_push(L, p->t.result, p->t.result_len, "process", p->t.h.name);
    else
      conc_error_push(L, p->t.result, p->t.result_len, NULL, NULL);
    conc_hint_global(L);
    return lua_error(L);
  }
  lua_pushboolean(L, 1);
  if (!p->t.result) return 1;
  return 1 + conc_decode(L, p->t.result, p->t.result_len);
}

static int l_alive(lua_State *L) {
  lua_pushboolean(L, cc_thread_alive(&checkp(L, 1)->t));
  return 1;
}

static int l_kill(lua_State *L) {
  cc_process_t *p = checkp(L, 1);
  int sig = SIGTERM, rc;
  if (lua_type(L, 2) == LUA_TSTRING) {
    const char *name = lua_tostring(L, 2);
    if ((sig = cc_signal_number(name)) <= 0) { /* echo it, and suggest a known one */
      const char *known[40], *s;
      char buf[32];
      int n = 0;
      for (int i = 1; i < 32 && n < 39; i++) {
        const char *k = cc_signal_name(i, buf, sizeof buf);
        if (k != buf) known[n++] = k;
      }
      known[n] = NULL;
      s = conc_suggest(strncmp(name, "SIG", 3) == 0 ? name : lua_pushfstring(L, "SIG%s", name),
                       known);
      return conc_argerror(L, 2, s ? lua_pushfstring(L, "unknown signal '%s' (did you mean '%s'?)",
                                                     name, s)
                                   : lua_pushfstring(L, "unknown signal '%s'", name));
    }
  } else if (!lua_isnoneornil(L, 2)) {
    lua_Integer s = luaL_checkinteger(L, 2);
    luaL_argcheck(L, s >= 0 && s < NSIG, 2, "signal number out of range");
    sig = (int)s;
  }
  rc = cc_process_kill(p, sig);
  lua_pushboolean(L, rc == 0);
  return 1;
}

static int process_index(lua_State *L) {
  cc_process_t *p = checkp(L, 1);
  const char *k = lua_tostring(L, 2);
  if (!k) return 0;
  if (strcmp(k, "pid") == 0) {
    lua_pushinteger(L, p->t.pid);
  } else if (strcmp(k, "exitcode") == 0) {
    if (atomic_load_explicit(&p->t.done, memory_order_acquire))
      lua_pushinteger(L, cc_process_exitcode(p));
    else
      lua_pushnil(L);
  } else if (strcmp(k, "name") == 0) {
    lua_pushstring(L, p->t.h.name);
  } else if (strcmp(k, "id") == 0) {
    lua_pushinteger(L, (lua_Integer)p->t.tid);
  } else if (strcmp(k, "daemon") == 0) {
    lua_pushboolean(L, p->t.daemon);
  } else {
    return 0;
  }
  return 1;
}

static int l_pid(lua_State *L) {
  lua_pushinteger(L, cc_pid);
  return 1;
}

static int l_ppid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getppid());
  return 1;
}

static const luaL_Reg methods[] = {
    {"join", l_join}, {"alive", l_alive}, {"kill", l_kill}, {NULL, NULL}};

static const luaL_Reg funcs[] = {
    {"process", l_process}, {"pid", l_pid}, {"ppid", l_ppid}, {NULL, NULL}};

static void build_process_type(lua_State *L, const cc_type_t *type, const luaL_Reg *meths) {
  conc_newtype(L, type, meths, NULL, process_index);
}

/* tostring: "conc.process 'kid' (running)", "(exited 0)", "(failed)",
 * "(killed by SIGKILL)", "(exited with status 3)". */
static void process_state(cc_obj_t *o, char *buf, size_t n) {
  cc_process_t *p = (cc_process_t *)o;
  char sb[32];
  if (cc_thread_alive(&p->t))
    snprintf(buf, n, "running");
  else if (p->how == CC_PROC_KILLED)
    snprintf(buf, n, "killed by %s", cc_signal_name(p->termsig, sb, sizeof sb));
  else if (p->how == CC_PROC_REPORTED)
    snprintf(buf, n, "%s", p->t.status == CC_T_ERROR ? "failed" : "exited 0");
  else
    snprintf(buf, n, "exited with status %d", cc_process_exitcode(p));
}

void conc_open_process(lua_State *L) {
  conc_describe(PROCESS_T, process_state);
  pthread_once(&hooks_once, install_hooks);
  conc_lazytype(PROCESS_T, build_process_type, methods); /* built on first use */
  luaL_setfuncs(L, funcs, 0);
}
