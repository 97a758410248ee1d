/*
 * lpool.c - conc.pool, the owner side (the core is lib/core/pool.c; the
 * files are described in lpool.h; see docs/POOLS.md): the pool object, its
 * workers (started and replaced here), its callbacks, and the owner's waits,
 * which serve the pool while they wait.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "codec.h"
#include "lpool.h"
#include "ltask.h"
#include "process.h"
#include "thread.h"

/* Registry keys. */
static const char owned_key = 'o';   /* weak: light(pool) -> pool userdata */
static const char spawn_key = 's';   /* {conc.thread, conc.process} */

/* ---- the owner side -------------------------------------------------------- */

cc_pool_t *conc_pool_check(lua_State *L) {
  cc_pool_t *p = (cc_pool_t *)conc_check(L, 1, POOL_T);
  if (p->owner_pid != cc_pid || lua_getiuservalue(L, 1, 1) != LUA_TTABLE)
    luaL_error(L, "pool '%s' can only be used by the thread that created it", p->h.name);
  lua_pop(L, 1);
  return p;
}

void conc_pool_push_uv(lua_State *L, int pidx, int k) {
  lua_getiuservalue(L, pidx, 1);
  lua_rawgeti(L, -1, k);
  lua_remove(L, -2);
}

/* Starts the worker of slot i: 1, or 0 with the error pushed (the slot is
 * then dead again). */
static int start_worker(lua_State *L, int pidx, cc_pool_t *p, int i) {
  char name[CC_NAME_MAX];
  int top = lua_gettop(L);
  snprintf(name, sizeof name, "%.40s worker %d", p->h.name, i + 1);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &spawn_key);
  lua_rawgeti(L, -1, p->processes ? 2 : 1);
  lua_createtable(L, 0, 2);
  lua_pushstring(L, name);
  lua_setfield(L, -2, "name");
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "daemon");
  lua_pushcfunction(L, conc_pool_worker_main);
  lua_pushvalue(L, pidx);
  lua_pushinteger(L, i);
  cc_pool_slot_live(p, i);
  if (lua_pcall(L, 4, 1, 0) != LUA_OK) {
    cc_pool_slot_dead(p, i);
    lua_replace(L, top + 1);
    lua_settop(L, top + 1);
    return 0;
  }
  conc_pool_push_uv(L, pidx, UV_WORKERS);
  lua_pushvalue(L, -2);
  lua_rawseti(L, -2, i + 1);
  lua_settop(L, top);
  return 1;
}

/* Starts the workers of the n slots listed, then the monitors of the
 * process workers among them: no monitor thread of ours is starting (and
 * allocating) while we fork, which GCC 12's AddressSanitizer runtime does
 * not survive (see docs/PROCESSES.md). On a failure, watches what did
 * start, gives the slots not reached back as dead, and raises. */
static void start_workers(lua_State *L, int pidx, cc_pool_t *p, const int *slots, int n) {
  int top = lua_gettop(L), started = 0, failed = 0;
  while (started < n && !failed) {
    if (start_worker(L, pidx, p, slots[started]))
      started++;
    else
      failed = 1;
  }
  for (int k = started + failed; k < n; k++)
    cc_pool_slot_dead(p, slots[k]);
  if (p->processes) {
    conc_pool_push_uv(L, pidx, UV_WORKERS);
    for (int k = 0; k < started; k++) {
      cc_obj_t *w;
      lua_rawgeti(L, -1, slots[k] + 1);
      w = conc_toobj(L, -1);
      if (cc_pool_watch(p, slots[k], w) != 0)
        fprintf(stderr, "conclua: warning: pool '%s': cannot watch worker process %d\n",
                p->h.name, (int)((cc_thread_t *)w)->pid);
      lua_pop(L, 1);
    }
  }
  lua_settop(L, top + failed);
  if (failed) lua_error(L);
}

/* Replaces the workers that died (service's rare path). */
static void replace_dead(lua_State *L, int pidx, cc_pool_t *p) {
  int slots[CC_POOL_MAX], n = 0, i;
  while ((i = cc_pool_claim_dead(p)) >= 0) {
    if (atomic_load(&p->terminated) ||
        (atomic_load(&p->closed) && cc_queue_size(p->tasks) == 0)) {
      atomic_store(&p->slot[i].state, CC_SLOT_EXITED); /* nothing left to do */
      continue;
    }
    slots[n++] = i;
  }
  start_workers(L, pidx, p, slots, n);
}

void conc_pool_service(lua_State *L, int pidx, cc_pool_t *p) {
  cc_future_t *f;
  int top = lua_gettop(L);
  if (cc_unlikely(atomic_load(&p->deaths) != 0)) replace_dead(L, pidx, p);
  if (!(f = cc_pool_take_callbacks(p))) return;
  conc_pool_push_uv(L, pidx, UV_CALLBACKS);
  while (f) {
    cc_future_t *next = f->cb_next;
    conc_push_owned(L, &f->h); /* adopts the list's reference */
    conc_pool_run_callbacks(L, top + 1, top + 2, p);
    lua_settop(L, top + 1);
    f = next;
  }
  lua_settop(L, top);
}

/* If this state owns the pool of f (the Future's userdata at fidx),
 * pushes the pool userdata and returns its index; else returns 0. A Future
 * that this state submitted keeps its pool's userdata as its user value:
 * no registry lookup then. */
int conc_pool_owner_of(lua_State *L, int fidx, cc_future_t *f) {
  if (f->pool->owner_pid != cc_pid) return 0;
  if (lua_getiuservalue(L, fidx, 1) == LUA_TUSERDATA) return lua_gettop(L);
  lua_pop(L, 1);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &owned_key) != LUA_TTABLE) { /* no pool yet */
    lua_pop(L, 1);
    return 0;
  }
  if (lua_rawgetp(L, -1, f->pool) != LUA_TUSERDATA) {
    lua_pop(L, 2);
    return 0;
  }
  lua_remove(L, -2);
  return lua_gettop(L);
}

/* One round of the owner's wait for f (NULL: every task of p): serves the
 * pool, then returns 0 when what it waits for is there, `prev` (how the
 * last wait ended: CC_ETIMEOUT, CC_EINTR) if that is not 0, else
 * CC_WAIT_PARK with *w ready to wait for the pool's next event (a finish or
 * a death). Served after the check: a finished f's callbacks run now. */
static int owner_round(lua_State *L, int pidx, cc_pool_t *p, cc_future_t *f, cc_wait_t *w,
                       cc_deadline_t d, int prev) {
  for (;;) {
    uint32_t seen = atomic_load(&p->notify);
    int done = f ? cc_future_done(f) : atomic_load(&p->unfinished) == 0, rc;
    conc_pool_service(L, pidx, p);
    if (done) return 0;
    if (prev) return prev;
    rc = cc_pool_wait_event_w(w, p, seen, f ? &f->h : &p->h, d);
    if (rc) return rc; /* CC_WAIT_PARK, or CC_ETIMEOUT for a deadline of now */
  }
}

int conc_pool_owner_wait(lua_State *L, int pidx, cc_pool_t *p, cc_future_t *f,
                         cc_deadline_t d) {
  cc_wait_t w;
  int rc = owner_round(L, pidx, p, f, &w, d, 0);
  while (rc == CC_WAIT_PARK) rc = owner_round(L, pidx, p, f, &w, d, cc_wait_run(&w));
  return rc;
}

/* A task's owner wait goes on after a pool event (see conc_pool_wait):
 * w->arg[2] is the Future's index (0: every task), arg[3] its pool's,
 * arg[4] finish. */
static int owner_waited(lua_State *L, int rc, cc_wait_t *w) {
  int fidx = (int)w->arg[2], pidx = (int)w->arg[3];
  conc_wait_done_fn finish = (conc_wait_done_fn)w->arg[4];
  cc_pool_t *p = (cc_pool_t *)conc_toobj(L, pidx);
  cc_future_t *f = fidx ? (cc_future_t *)conc_toobj(L, fidx) : NULL;
  int as_thread = w->task == NULL; /* conc_wait_ex had no waiter record */
  if (rc != CC_ECANCELLED) rc = owner_round(L, pidx, p, f, w, w->deadline, rc);
  while (as_thread && rc == CC_WAIT_PARK) /* a loop, not one more C level per event */
    rc = owner_round(L, pidx, p, f, w, w->deadline, cc_wait_run(w));
  if (rc != CC_WAIT_PARK) return finish(L, rc, w);
  w->arg[2] = (uintptr_t)fidx;
  w->arg[3] = (uintptr_t)pidx;
  w->arg[4] = (uintptr_t)finish;
  if (conc_cancel_pending(L)) return finish(L, CC_ECANCELLED, w); /* came meanwhile */
  return conc_wait_ex(L, w, owner_waited, CONC_WAIT_SEE_CANCEL);
}

int conc_pool_wait(lua_State *L, int fidx, int pidx, cc_deadline_t d,
                   conc_wait_done_fn finish) {
  cc_wait_t local, *w = conc_wait_slot(L);
  cc_future_t *f = fidx ? (cc_future_t *)conc_toobj(L, fidx) : NULL;
  cc_pool_t *p = pidx ? (cc_pool_t *)conc_toobj(L, pidx) : f->pool;
  int rc;
  if (!w) w = &local;
  w->arg[2] = (uintptr_t)fidx;
  if (!pidx) { /* any thread or task, of any process */
    rc = cc_future_wait_w(w, f, d);
    w->arg[2] = (uintptr_t)fidx;
    if (rc != CC_WAIT_PARK) return finish(L, rc, w);
    return conc_wait_ex(L, w, finish, CONC_WAIT_SEE_CANCEL);
  }
  if (w == &local) { /* the owner's thread: serves between events */
    rc = conc_pool_owner_wait(L, pidx, p, f, d);
    w->arg[2] = (uintptr_t)fidx;
    return finish(L, rc, w);
  }
  /* One of the owner's tasks: it wakes at each event of the pool, serves
   * it (callbacks run in this task then) and suspends again. */
  rc = owner_round(L, pidx, p, f, w, d, 0);
  w->arg[2] = (uintptr_t)fidx;
  if (rc != CC_WAIT_PARK) return finish(L, rc, w);
  w->arg[3] = (uintptr_t)pidx;
  w->arg[4] = (uintptr_t)finish;
  return conc_wait_ex(L, w, owner_waited, CONC_WAIT_SEE_CANCEL);
}

/* The shared box of the function at fidx, encoded on first use by the
 * pool at pidx (a weak-keyed cache in its user value). */
cc_fnbox_t *conc_pool_function_box(lua_State *L, int pidx, int fidx) {
  cc_fnbox_t *b;
  conc_wbuf_t w;
  void *data;
  size_t len;
  conc_pool_push_uv(L, pidx, UV_FUNCTIONS);
  lua_pushvalue(L, fidx);
  if (lua_rawget(L, -2) == LUA_TUSERDATA) {
    b = (cc_fnbox_t *)((conc_ud *)lua_touserdata(L, -1))->obj;
    lua_pop(L, 2);
    return b;
  }
  lua_pop(L, 1);
  conc_wbuf_init(&w, 1);
  conc_encode_job(L, fidx, 1, &w); /* with the creator's package paths */
  data = conc_wbuf_take(&w, &len);
  if (!(b = cc_fnbox_new(data, len))) {
    conc_codec_release(data, len);
    cc_free(data);
    luaL_error(L, "pool: %s", cc_strerror(CC_ENOMEM));
  }
  conc_push_owned(L, &b->h);
  lua_pushvalue(L, fidx);
  lua_pushvalue(L, -2);
  lua_rawset(L, -4);
  lua_pop(L, 2);
  return b;
}

/* Queues a task of `kind` with fn box b and encoded args (taken over);
 * pushes its Future (its user value keeps the pool alive). */
cc_future_t *conc_pool_queue_task(lua_State *L, cc_pool_t *p, int kind, cc_fnbox_t *b,
                                  void *args, size_t len) {
  int rc;
  cc_future_t *f = cc_future_new(p, kind, b, args, len);
  if (!f) {
    if (args) {
      conc_codec_release(args, len);
      cc_free(args);
    }
    luaL_error(L, "pool: %s", cc_strerror(CC_ENOMEM));
  }
  conc_push_owned(L, &f->h);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  if ((rc = cc_pool_submit(p, f)) != 0) /* f is cancelled */
    luaL_error(L, "pool:submit: %s", rc == CC_ECLOSED ? "pool is closed" : cc_strerror(rc));
  return f;
}

void conc_pool_check_open(lua_State *L, cc_pool_t *p, const char *what) {
  if (atomic_load(&p->closed)) luaL_error(L, "pool:%s: pool is closed", what);
}

static int l_submit(lua_State *L) {
  cc_pool_t *p = conc_pool_check(L);
  int n = lua_gettop(L);
  cc_fnbox_t *b;
  conc_wbuf_t w;
  void *args;
  size_t len;
  luaL_checktype(L, 2, LUA_TFUNCTION);
  conc_pool_service(L, 1, p);
  conc_pool_check_open(L, p, "submit");
  b = conc_pool_function_box(L, 1, 2);
  /* Arguments are numbered as the caller sees them: the function is 1. */
  args = NULL;
  len = 0;
  if (n > 2) {
    lua_pushnil(L);
    lua_replace(L, 2);
    conc_wbuf_init(&w, 1);
    conc_encode(L, 2, n - 1, &w, "argument");
    args = conc_wbuf_take(&w, &len);
  }
  conc_pool_queue_task(L, p, CC_TASK_APPLY, b, args, len);
  return 1;
}

static int applied(lua_State *L, int rc, cc_wait_t *w) {
  cc_future_t *f = (cc_future_t *)conc_toobj(L, (int)w->arg[2]);
  if (rc == CC_ECANCELLED) { /* nobody else can get it: it need not run */
    cc_future_cancel(f);
    return conc_task_raise_cancelled(L);
  }
  if (rc) return conc_raise(L, rc, "pool:apply");
  return conc_pool_results(L, f);
}

/* pool:apply: submit, then get (a task suspends). */
static int l_apply(lua_State *L) {
  l_submit(L);
  return conc_pool_wait(L, lua_gettop(L), 1, CC_FOREVER, applied);
}

static int l_close(lua_State *L) {
  cc_pool_t *p = conc_pool_check(L);
  cc_pool_close(p);
  conc_pool_service(L, 1, p);
  return 0;
}

/* The end of pool:join (the pool at 1): every task has finished; once the
 * pool is closed, joins its workers (idle by now: they are leaving) and
 * their monitors. */
static int joined(lua_State *L, int rc, cc_wait_t *w) {
  cc_pool_t *p = (cc_pool_t *)conc_toobj(L, 1);
  int n;
  (void)w;
  if (rc == CC_ECANCELLED) return conc_task_raise_cancelled(L);
  if (rc) return conc_raise(L, rc, "pool:join");
  if (!atomic_load(&p->closed)) return 0;
  conc_pool_push_uv(L, 1, UV_WORKERS);
  n = (int)lua_rawlen(L, -1);
  for (int i = 1; i <= n; i++) {
    cc_obj_t *o;
    if (lua_rawgeti(L, -1, i) == LUA_TNIL) {
      lua_pop(L, 1);
      continue;
    }
    o = conc_toobj(L, -1);
    rc = o->type == &cc_process_type ? cc_process_join((cc_process_t *)o, CC_FOREVER)
                                      : cc_thread_join((cc_thread_t *)o, CC_FOREVER);
    if (rc) return conc_raise(L, rc, "pool:join");
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  rc = cc_pool_wait_monitors(p, CC_FOREVER);
  if (rc) return conc_raise(L, rc, "pool:join");
  conc_pool_service(L, 1, p);
  return 0;
}

/* pool:join: waits for every task (a task suspends, serving the pool as
 * get does); once the pool is closed, also for its workers. */
static int l_join(lua_State *L) {
  conc_pool_check(L);
  lua_settop(L, 1);
  return conc_pool_wait(L, 0, 1, CC_FOREVER, joined);
}

/* __close: close and join as the thread, also in a task (a to-be-closed
 * variable's handler does not suspend). */
static int l_close_join(lua_State *L) {
  conc_ud *u = lua_touserdata(L, 1);
  cc_pool_t *p;
  if (!u || !u->obj) return 0;
  l_close(L);
  lua_settop(L, 1);
  p = (cc_pool_t *)u->obj;
  return joined(L, conc_pool_owner_wait(L, 1, p, NULL, CC_FOREVER), NULL);
}

/* __gc: the owner's last reference stops the workers (queued tasks are
 * cancelled, running ones finish; never waits). */
static int pool_gc(lua_State *L) {
  conc_ud *u = lua_touserdata(L, 1);
  if (u && u->obj) {
    cc_pool_t *p = (cc_pool_t *)u->obj;
    u->obj = NULL;
    if (u->pid != cc_pid) return 0; /* the parent process's reference */
    if (p->owner_pid == cc_pid && lua_getiuservalue(L, 1, 1) == LUA_TTABLE)
      cc_pool_terminate(p);
    cc_obj_unref(&p->h);
  }
  return 0;
}

/* Fields (the key is looked at first: a method lookup, pool:submit, pays
 * no type check here). */
static int pool_index(lua_State *L) {
  const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
  cc_pool_t *p;
  if (!k || (strcmp(k, "name") != 0 && strcmp(k, "size") != 0 &&
             strcmp(k, "processes") != 0))
    return 0;
  p = (cc_pool_t *)conc_check(L, 1, POOL_T);
  if (strcmp(k, "name") == 0)
    lua_pushstring(L, p->h.name);
  else if (strcmp(k, "size") == 0)
    lua_pushinteger(L, p->nworkers);
  else if (strcmp(k, "processes") == 0)
    lua_pushboolean(L, p->processes);
  else
    return 0;
  return 1;
}

/* Pushes the registry's table of this state's pools (weak: light(pool) ->
 * pool userdata), made with the spawners' table on the first conc.pool of
 * the state (most states never make one, so conc_open_pool leaves both to
 * here): l_pool's upvalues are conc.thread and conc.process. */
static void push_owned(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &owned_key) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_createtable(L, 2, 0);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_rawseti(L, -2, 1);
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_rawseti(L, -2, 2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &spawn_key);
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &owned_key);
}

static int l_pool(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  int processes = 0, pidx;
  char where[CC_NAME_MAX];
  const char *name = NULL;
  cc_pool_t *p;
  luaL_argcheck(L, n >= 1 && n <= CC_POOL_MAX, 1, "pool size must be from 1 to 1024");
  if (!lua_isnoneornil(L, 2)) {
    static const char *const keys[] = {"name", "processes", NULL};
    luaL_checktype(L, 2, LUA_TTABLE);
    name = conc_name_arg(L, 2, keys); /* unknown keys raise; a long name too */
    lua_getfield(L, 2, "processes");
    processes = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  if (!name) {
    conc_where(L, where, sizeof where);
    name = where;
  }
  p = cc_pool_new((int)n, processes, name);
  if (!p) return luaL_error(L, "conc.pool: %s", cc_strerror(CC_ENOMEM));
  lua_settop(L, 2);
  conc_push_owned(L, &p->h);
  pidx = lua_gettop(L);
  lua_createtable(L, 3, 0);
  lua_createtable(L, (int)n, 0);
  lua_rawseti(L, -2, UV_WORKERS);
  lua_newtable(L);
  lua_rawseti(L, -2, UV_CALLBACKS);
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_rawseti(L, -2, UV_FUNCTIONS);
  lua_setiuservalue(L, pidx, 1);
  push_owned(L);
  lua_pushvalue(L, pidx);
  lua_rawsetp(L, -2, p);
  lua_pop(L, 1);
  {
    int slots[CC_POOL_MAX];
    for (int i = 0; i < (int)n; i++)
      slots[i] = i;
    start_workers(L, pidx, p, slots, (int)n);
  }
  return 1;
}

/* ---- registration ------------------------------------------------------------- */

static const luaL_Reg pool_methods[] = {{"submit", l_submit}, {"apply", l_apply},
                                        {"map", conc_pool_map},       {"close", l_close},
                                        {"join", l_join},     {NULL, NULL}};
static const luaL_Reg pool_meta[] = {{"__gc", pool_gc}, {"__close", l_close_join},
                                     {NULL, NULL}};

static void build_pool(lua_State *L, const cc_type_t *type, const luaL_Reg *methods) {
  conc_newtype(L, type, methods, pool_meta, pool_index);
}

static void build_fnbox(lua_State *L, const cc_type_t *type, const luaL_Reg *methods) {
  conc_newtype(L, type, methods, NULL, NULL);
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static void init(void) {
  cc_pool_set_release(conc_codec_release);
  cc_pool_set_error_text(conc_error_text);
}

void conc_open_pool(lua_State *L) {
  pthread_once(&init_once, init);
  conc_lazytype(&cc_pool_type, build_pool, pool_methods); /* (spelled out for check_docs) */
  conc_lazytype(&cc_fnbox_type, build_fnbox, NULL);
  /* The spawners, taken from the module table being built; the registry
   * entries wait for the state's first pool (push_owned). */
  lua_getfield(L, -1, "thread");
  lua_getfield(L, -2, "process");
  lua_pushcclosure(L, l_pool, 2);
  lua_setfield(L, -2, "pool");
}
