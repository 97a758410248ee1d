/*
 * lthread.c - conc.thread and friends: join, current, threads, sleep, now,
 * cpus; plus the hooks that run a Thread's job in a fresh lua_State.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "codec.h"
#include "conclua.h"
#include "lconc.h"
#include "ltask.h"
#include "thread.h"

#define THREAD_T (&cc_thread_type)

/* ---- running a job ---------------------------------------------------- */

int conc_run_job(lua_State *L) {
  cc_thread_t *t = lua_touserdata(L, 1);
  conc_wbuf_t b;
  int n, base = lua_gettop(L);
  void *data;
  size_t len;
  n = conc_decode_job(L, t->job, t->job_len); /* the creator's package paths first */
  cc_thread_drop_job(t); /* clears first: a process killed here leaks, never frees twice */
  lua_call(L, n - 1, LUA_MULTRET);
  n = lua_gettop(L) - base;
  conc_wbuf_init(&b, 1);
  conc_encode(L, base + 1, n, &b, "result");
  data = conc_wbuf_take(&b, &len);
  lua_settop(L, 0);
  lua_pushlightuserdata(L, data);
  lua_pushinteger(L, (lua_Integer)len);
  return 2;
}

/* The report of an error that no join was waiting for when the thread
 * ended (the observed rule, thread.h): printed by the core at that moment,
 * once. A later join still re-raises it. */
static void report_error(cc_thread_t *t) {
  size_t tl;
  const char *tx = conc_error_text(t->result, t->result_len, &tl);
  fprintf(stderr, "conclua: error in thread '%s' (started at %s), not joined:\n%.*s\n",
          t->h.name, t->spawn_site, (int)tl, tx);
  fflush(stderr);
}

static void thread_run(void *ctx, cc_thread_t *t) {
  lua_State *L = ctx;
  size_t len = 0;
  if (!L) {
    const char *m = "cannot create a Lua state for the thread";
    cc_thread_drop_job(t);
    cc_thread_finish(t, CC_T_ERROR, conc_error_from_text(m, strlen(m), &len), len);
    return;
  }
  lua_pushcfunction(L, conc_error_handler);
  lua_pushcfunction(L, conc_run_job);
  lua_pushlightuserdata(L, t);
  if (lua_pcall(L, 1, 2, 1) == LUA_OK) {
    void *data = lua_touserdata(L, -2);
    len = (size_t)lua_tointeger(L, -1);
    lua_settop(L, 0);
    cc_thread_finish(t, CC_T_OK, data, len);
  } else {
    void *err = conc_error_store(L, -1, &len); /* the error value, whatever its type */
    lua_settop(L, 0);
    cc_thread_drop_job(t);
    cc_thread_finish(t, CC_T_ERROR, err, len); /* reports it if no join waits */
  }
}

static void *thread_prepare(void) {
  return conclua_newstate();
}

static void thread_discard(void *ctx) {
  if (ctx) lua_close(ctx);
}

static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;
static void install_hooks(void) {
  static const cc_thread_hooks_t h = {thread_prepare, thread_run, thread_discard,
                                      report_error, conc_codec_release};
  cc_thread_set_hooks(&h);
}

/* ---- Lua API ---------------------------------------------------------- */

void conc_spawn_args(lua_State *L, conc_spawn_t *s) {
  static const char *const keys[] = {"name", "daemon", NULL};
  int fidx = 1;
  s->name = NULL;
  s->daemon = 0;
  if (lua_type(L, 1) == LUA_TSTRING || lua_istable(L, 1)) { /* the name, one way */
    fidx = 2;
    s->name = conc_name_arg(L, 1, keys); /* unknown keys raise */
    if (lua_istable(L, 1)) {
      lua_getfield(L, 1, "daemon");
      s->daemon = lua_toboolean(L, -1);
      lua_pop(L, 1);
    }
  }
  luaL_checktype(L, fidx, LUA_TFUNCTION);
  conc_wbuf_init(&s->job, 1);
  conc_encode_job(L, fidx, lua_gettop(L) - fidx + 1, &s->job);
}

static int l_thread(lua_State *L) {
  int rc;
  conc_spawn_t s;
  cc_thread_t *t;
  conc_spawn_args(L, &s);
  t = cc_thread_new(s.name, s.daemon);
  if (!t) {
    conc_wbuf_free(&s.job);
    return luaL_error(L, "conc.thread: %s", cc_strerror(CC_ENOMEM));
  }
  conc_where(L, t->spawn_site, sizeof t->spawn_site);
  t->job = conc_wbuf_take(&s.job, &t->job_len);
  conc_push_owned(L, &t->h);
  rc = cc_thread_start(t);
  if (rc != 0) return conc_raise(L, rc, "conc.thread: cannot start a thread"); /* names the limit */
  return 1;
}

static int joined(lua_State *L, int rc, cc_wait_t *w);

/* t:join([timeout]): a blocking call (ltask.h): a task suspends. */
static int l_join(lua_State *L) {
  cc_thread_t *t = (cc_thread_t *)conc_check(L, 1, THREAD_T);
  cc_deadline_t d = conc_opt_deadline(L, 2);
  cc_wait_t local, *w;
  int rc;
  cc_actor_t *me = cc_self();
  if (me->thread == &t->h && cc_thread_alive(t))
    return luaL_error(L, "cannot join the current thread");
  w = conc_wait_slot(L);
  if (!w) w = &local;
  rc = cc_thread_join_w(w, t, d, 0, NULL);
  if (rc == CC_WAIT_PARK) return conc_wait(L, w, joined);
  return joined(L, rc, w);
}

static int joined(lua_State *L, int rc, cc_wait_t *w) {
  cc_thread_t *t = (cc_thread_t *)conc_check(L, 1, THREAD_T);
  (void)w;
  if (rc == CC_ETIMEOUT) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (rc != 0) return conc_raise(L, rc, "join");
  if (t->status == CC_T_ERROR) {
    conc_error_push(L, t->result, t->result_len, t->is_process ? "process" : "thread",
                    t->h.name);
    conc_hint_global(L);
    return lua_error(L);
  }
  lua_pushboolean(L, 1);
  return 1 + conc_decode(L, t->result, t->result_len);
}

static int l_alive(lua_State *L) {
  cc_thread_t *t = (cc_thread_t *)conc_check(L, 1, THREAD_T);
  lua_pushboolean(L, cc_thread_alive(t));
  return 1;
}

static int thread_index(lua_State *L) {
  cc_thread_t *t = (cc_thread_t *)conc_check(L, 1, THREAD_T);
  const char *k = lua_tostring(L, 2);
  if (!k) return 0;
  if (strcmp(k, "name") == 0)
    lua_pushstring(L, t->h.name);
  else if (strcmp(k, "id") == 0)
    lua_pushinteger(L, (lua_Integer)t->tid);
  else if (strcmp(k, "daemon") == 0)
    lua_pushboolean(L, t->daemon);
  else
    return 0;
  return 1;
}

/* The Thread object for the calling actor, made on first use for the main
 * thread (and for threads a host created itself). */
static cc_thread_t *current_thread(void) {
  cc_actor_t *a = cc_self();
  if (!a->thread) {
    cc_thread_t *t = cc_thread_new(a->name, 0);
    if (!t) return NULL;
    t->tid = a->id;
    t->actor = a;
    a->thread = &t->h;
    cc_thread_register(t);
  }
  return (cc_thread_t *)a->thread;
}

static int l_current(lua_State *L) {
  cc_thread_t *t = current_thread();
  if (!t) return luaL_error(L, "conc.current: %s", cc_strerror(CC_ENOMEM));
  conc_push(L, &t->h);
  return 1;
}

typedef struct collect {
  cc_obj_t **objs;
  int n, cap;
} collect_t;

/* Runs under the registry lock: takes a reference, stops when full. */
static int collect_one(cc_thread_t *t, void *ud) {
  collect_t *c = ud;
  if (t->pid != cc_pid || t->is_process || !cc_thread_alive(t)) return 0;
  if (c->n == c->cap) return 1;
  cc_obj_ref(&t->h);
  c->objs[c->n++] = &t->h;
  return 0;
}

static int l_threads(lua_State *L) {
  collect_t c = {NULL, 0, 256};
  current_thread();
  for (;;) { /* as many as there are: a full array is grown and filled again */
    c.objs = malloc((size_t)c.cap * sizeof *c.objs);
    if (!c.objs) return luaL_error(L, "conc.threads: out of memory");
    c.n = 0;
    cc_thread_foreach(collect_one, &c);
    if (c.n < c.cap) break;
    for (int i = 0; i < c.n; i++) cc_obj_unref(c.objs[i]);
    free(c.objs);
    c.cap *= 2;
  }
  lua_createtable(L, c.n, 0);
  for (int i = 0; i < c.n; i++) {
    conc_push_owned(L, c.objs[i]); /* (a Lua memory error here leaks the rest's references) */
    lua_rawseti(L, -2, i + 1);
  }
  free(c.objs);
  return 1;
}

static int l_now(lua_State *L) {
  lua_pushnumber(L, (double)cc_now_ns() / 1e9);
  return 1;
}

/* The CPUs this process may run on (its affinity mask: taskset, cpusets),
 * else the online ones. The mask is sized up for machines of more than
 * 1024 CPUs, whose kernel refuses a smaller one (EINVAL). */
static int l_cpus(lua_State *L) {
  long n = 0;
  for (int ncpu = 1024; ncpu <= (1 << 16) && n == 0; ncpu *= 2) {
    cpu_set_t *set = CPU_ALLOC(ncpu);
    size_t size = CPU_ALLOC_SIZE(ncpu);
    if (!set) break;
    if (sched_getaffinity(0, size, set) == 0)
      n = CPU_COUNT_S(size, set);
    else if (errno != EINVAL)
      n = -1;
    CPU_FREE(set);
  }
  if (n <= 0) n = sysconf(_SC_NPROCESSORS_ONLN);
  lua_pushinteger(L, n > 0 ? n : 1);
  return 1;
}

static const luaL_Reg thread_methods[] = {
    {"join", l_join}, {"alive", l_alive}, {NULL, NULL}};

static const luaL_Reg funcs[] = {{"thread", l_thread},   {"current", l_current},
                                 {"threads", l_threads},
                                 {"now", l_now},         {"cpus", l_cpus},
                                 {NULL, NULL}};

static void build_thread_type(lua_State *L, const cc_type_t *type,
                              const luaL_Reg *methods) {
  conc_newtype(L, type, methods, NULL, thread_index);
}

/* tostring: "conc.thread 'w' (running)", "(finished)" or "(failed)". */
static void thread_state(cc_obj_t *o, char *buf, size_t n) {
  cc_thread_t *t = (cc_thread_t *)o;
  if (cc_thread_alive(t))
    snprintf(buf, n, "running");
  else
    snprintf(buf, n, "%s", t->status == CC_T_ERROR ? "failed" : "finished");
}

void conc_open_thread(lua_State *L) {
  pthread_once(&hooks_once, install_hooks);
  conc_describe(THREAD_T, thread_state);
  conc_lazytype(THREAD_T, build_thread_type, thread_methods);
  luaL_setfuncs(L, funcs, 0);
}
