/*
 * lqueue.c - conc.queue and conc.select (the core is lib/core/queue.c).
 *
 * Misuse raises (a nil item, a put on a closed queue, task_done too often);
 * expected outcomes return fail values: put -> false on timeout, get ->
 * nil, "timeout" / nil, "closed" (plus the code name).
 *
 * Inside a task, put, get, iter, join and select suspend only the task
 * (ltask.h): the fast path runs at once; when the call must wait, its item
 * moves into a box on the task's stack (a userdata whose __gc clears what
 * it still holds), so it survives the suspension; a cancel or Ctrl-C clears
 * it before the error is raised. In a plain thread they block the thread.
 */
#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <string.h>

#include "lconc.h"
#include "lqueue.h"
#include "ltask.h"
#include "lvalue.h"
#include "queue.h"

#define QUEUE_T (&cc_queue_type)
#define SELECT_STACK 16 /* selects over more queues use a temporary userdata */

static cc_queue_t *checkq(lua_State *L, int idx) {
  return (cc_queue_t *)conc_check(L, idx, QUEUE_T);
}

/* `self` of a method (conc_self_of; the methods carry the queue metatable
 * as upvalue 1 for its error path). */
static cc_queue_t *self(lua_State *L) {
  return (cc_queue_t *)conc_self_of(L, QUEUE_T);
}

/* conc.queue([name | {name=, maxsize=},] [maxsize]) */
static int l_queue(lua_State *L) {
  static const char *const keys[] = {"name", "maxsize", NULL};
  char name[CC_NAME_MAX];
  int first = conc_ctor_name(L, 1, keys, name);
  lua_Integer max;
  cc_queue_t *q;
  if (first == 2 && lua_istable(L, 1) && lua_isnoneornil(L, 2)) {
    lua_settop(L, 1);
    lua_getfield(L, 1, "maxsize"); /* becomes argument 2 */
  }
  max = luaL_optinteger(L, first, 0);
  luaL_argcheck(L, max >= 0 && max <= INT32_MAX, first, "maxsize out of range");
  q = cc_queue_new((uint32_t)max, name);
  if (!q && conc_reclaim(L)) q = cc_queue_new((uint32_t)max, name);
  if (!q) return luaL_error(L, "conc.queue: %s", cc_strerror(CC_ENOMEM));
  conc_push_owned(L, &q->h);
  return 1;
}

/* ---- a waiting task's items ------------------------------------------------ */

#define BOX_MT "conc.queue.box"

/* What a suspended put, get or select keeps on its task's stack. */
typedef struct box {
  cc_item_t it;
  int which, n;
  cc_queue_t *qs[]; /* select's queues (borrowed: the arguments hold them) */
} box_t;

static int box_gc(lua_State *L) {
  box_t *b = lua_touserdata(L, 1);
  cc_item_clear(&b->it);
  return 0;
}

/* Pushes an empty box with room for n queues. */
static box_t *new_box(lua_State *L, int n) {
  box_t *b = lua_newuserdatauv(L, sizeof *b + (size_t)n * sizeof(cc_queue_t *), 0);
  memset(b, 0, sizeof *b);
  b->n = n;
  if (luaL_newmetatable(L, BOX_MT)) {
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  return b;
}

static int new_box_protected(lua_State *L) {
  new_box(L, 0);
  return 1;
}

/* Takes the box's item out (the box no longer clears it). */
static void box_take_item(box_t *b, cc_item_t *out) {
  *out = b->it;
  memset(&b->it, 0, sizeof b->it);
}

/* The same for a waiting call's box: the top of its stack when it
 * suspended and when its wait ends. */
static box_t *box_of(lua_State *L) {
  return luaL_checkudata(L, lua_gettop(L), BOX_MT);
}

void conc_queue_box_take(lua_State *L, cc_item_t *out) {
  box_take_item(box_of(L), out);
}

/* put with a deadline: true, false (timeout), or raises. */
static int put_done(lua_State *L, int rc, cc_item_t *it) {
  if (cc_likely(rc == 0)) {
    lua_pushboolean(L, 1);
    return 1;
  }
  cc_item_clear(it);
  if (rc == CC_ETIMEOUT) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (rc == CC_ECANCELLED) return conc_task_raise_cancelled(L);
  if (rc == CC_ECLOSED) /* the queue is `self`, at index 1 */
    return luaL_error(L, "queue '%s' is closed", ((conc_ud *)lua_touserdata(L, 1))->obj->name);
  return conc_raise(L, rc, "queue:put");
}

static int put_waited(lua_State *L, int rc, cc_wait_t *w) {
  cc_item_t it;
  (void)w;
  conc_queue_box_take(L, &it);
  return put_done(L, rc, &it);
}

static int do_put(lua_State *L, cc_queue_t *q, cc_deadline_t d) {
  cc_item_t it;
  cc_wait_t *w;
  int rc;
  if (lua_isnoneornil(L, 2))
    conc_argerror(L, 2, lua_pushfstring(L, "non-nil value expected, got %s", luaL_typename(L, 2)));
  w = conc_wait_slot(L);
  conc_item_from_lua(L, 2, &it, "item");
  if (cc_likely(w == NULL)) {
    rc = cc_queue_put(q, &it, d);
    if (cc_unlikely(rc == CC_ENOMEM) && conc_reclaim(L)) rc = cc_queue_put(q, &it, d);
    return put_done(L, rc, &it);
  }
  rc = cc_queue_put_w(w, q, &it, d);
  if (cc_unlikely(rc == CC_ENOMEM) && conc_reclaim(L)) rc = cc_queue_put_w(w, q, &it, d);
  if (rc != CC_WAIT_PARK) return put_done(L, rc, &it);
  /* The item moves into a box on the task's stack (made in protected mode:
   * the item is not lost if Lua is out of memory). */
  lua_pushcfunction(L, new_box_protected);
  if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
    cc_item_clear(&it);
    return lua_error(L);
  }
  {
    box_t *b = lua_touserdata(L, -1);
    b->it = it;
    cc_queue_wait_item(w, &b->it);
  }
  return conc_wait_ex(L, w, put_waited, CONC_WAIT_SEE_CANCEL);
}

static int l_put(lua_State *L) {
  cc_queue_t *q = self(L);
  return do_put(L, q, conc_opt_deadline(L, 3));
}

static int l_try_put(lua_State *L) {
  return do_put(L, self(L), CC_NOW);
}

/* Pushes the item and frees it (also when the push raises). */
static int push_item(lua_State *L, cc_item_t *it) {
  conc_item_push_take(L, it);
  return 1;
}

/* A get's end: the item, or nil, message, code (or raises). */
static int get_done(lua_State *L, int rc, cc_item_t *it) {
  if (cc_likely(rc == 0)) return push_item(L, it);
  if (rc == CC_ECANCELLED) return conc_task_raise_cancelled(L);
  return conc_fail(L, rc);
}

static int get_waited(lua_State *L, int rc, cc_wait_t *w) {
  cc_item_t it;
  (void)w;
  conc_queue_box_take(L, &it);
  return get_done(L, rc, &it);
}

/* A get in a task that must wait: the item will arrive in a box. */
int conc_queue_wait_get(lua_State *L, cc_wait_t *w, conc_wait_done_fn done) {
  box_t *b = new_box(L, 0);
  cc_queue_wait_item(w, &b->it);
  return conc_wait_ex(L, w, done, CONC_WAIT_SEE_CANCEL);
}

static int do_get(lua_State *L, cc_queue_t *q, cc_deadline_t d) {
  cc_item_t it;
  cc_wait_t *w = conc_wait_slot(L);
  int rc;
  if (cc_likely(w == NULL)) return get_done(L, cc_queue_get(q, &it, d), &it);
  rc = cc_queue_get_w(w, q, &it, d);
  if (rc != CC_WAIT_PARK) return get_done(L, rc, &it);
  return conc_queue_wait_get(L, w, get_waited);
}

static int l_get(lua_State *L) {
  cc_queue_t *q = self(L);
  return do_get(L, q, conc_opt_deadline(L, 2));
}

/* try_get: the item, or nil, "empty", "EMPTY" (or "closed"); never waits,
 * so a task calls the core directly too. */
static int l_try_get(lua_State *L) {
  cc_item_t it;
  int rc = cc_queue_get(self(L), &it, CC_NOW);
  return get_done(L, rc == CC_ETIMEOUT ? CC_EEMPTY : rc, &it);
}

static int l_peek(lua_State *L) {
  cc_item_t it;
  if (cc_queue_peek(self(L), &it) != 0) {
    lua_pushnil(L);
    return 1;
  }
  return push_item(L, &it);
}

static int l_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)cc_queue_size(self(L)));
  return 1;
}

static int l_empty(lua_State *L) {
  lua_pushboolean(L, cc_queue_size(self(L)) == 0);
  return 1;
}

static int l_full(lua_State *L) {
  cc_queue_t *q = self(L);
  lua_pushboolean(L, q->maxsize != 0 && cc_queue_size(q) >= q->maxsize);
  return 1;
}

static int l_close(lua_State *L) {
  cc_queue_close(self(L));
  return 0;
}

static int l_closed(lua_State *L) {
  lua_pushboolean(L, atomic_load(&self(L)->closed) != 0);
  return 1;
}

static int iter_done(lua_State *L, int rc, cc_item_t *it) {
  if (rc == 0) return push_item(L, it);
  if (rc == CC_ECLOSED) return 0;
  if (rc == CC_ECANCELLED) return conc_task_raise_cancelled(L);
  return conc_raise(L, rc, "queue:iter");
}

static int iter_waited(lua_State *L, int rc, cc_wait_t *w) {
  cc_item_t it;
  (void)w;
  conc_queue_box_take(L, &it);
  return iter_done(L, rc, &it);
}

static int iter_next(lua_State *L) {
  cc_queue_t *q = checkq(L, lua_upvalueindex(1));
  cc_item_t it;
  cc_wait_t *w = conc_wait_slot(L);
  int rc;
  if (cc_likely(w == NULL)) return iter_done(L, cc_queue_get(q, &it, CC_FOREVER), &it);
  rc = cc_queue_get_w(w, q, &it, CC_FOREVER);
  if (rc != CC_WAIT_PARK) return iter_done(L, rc, &it);
  return conc_queue_wait_get(L, w, iter_waited);
}

static int l_iter(lua_State *L) {
  self(L);
  lua_settop(L, 1);
  lua_pushcclosure(L, iter_next, 1);
  return 1;
}

static int l_task_done(lua_State *L) {
  if (cc_queue_task_done(self(L)) != 0)
    return luaL_error(L, "queue:task_done: called more times than items were put");
  return 0;
}

static int join_done(lua_State *L, int rc, cc_wait_t *w) {
  (void)w;
  if (rc != 0 && rc != CC_ETIMEOUT) return conc_raise(L, rc, "queue:join");
  lua_pushboolean(L, rc == 0);
  return 1;
}

static int l_join(lua_State *L) {
  cc_queue_t *q = self(L);
  cc_deadline_t d = conc_opt_deadline(L, 2);
  cc_wait_t *w = conc_wait_slot(L);
  int rc;
  if (w == NULL) return join_done(L, cc_queue_join(q, d), NULL);
  rc = cc_queue_join_w(w, q, d);
  if (rc != CC_WAIT_PARK) return join_done(L, rc, w);
  return conc_wait(L, w, join_done);
}

/* ---- select ---------------------------------------------------------------- */

/* A per-thread xorshift: the starting queue of each select is random, so no
 * queue starves whatever the pattern of calls (a plain counter can be
 * defeated by a thread alternating between two selects). */
static _Thread_local uint32_t rot_state;

static uint32_t next_start(void) {
  uint32_t x = rot_state;
  if (x == 0) x = (uint32_t)(uintptr_t)&rot_state | 1u;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  rot_state = x;
  return x;
}

static int select_done(lua_State *L, int rc, int which, cc_item_t *it) {
  if (rc == 0) {
    lua_pushvalue(L, which + 1);
    push_item(L, it);
    return 2;
  }
  if (rc == CC_ECANCELLED) return conc_task_raise_cancelled(L);
  if (rc == CC_ENOMEM || rc == CC_EINTR) return conc_raise(L, rc, "conc.select");
  return conc_fail(L, rc);
}

static int select_waited(lua_State *L, int rc, cc_wait_t *w) {
  box_t *b = box_of(L);
  cc_item_t it;
  (void)w;
  box_take_item(b, &it);
  return select_done(L, rc, b->which, &it);
}

static int l_select(lua_State *L) {
  int n = lua_gettop(L), which = 0, rc;
  cc_deadline_t d = CC_FOREVER;
  cc_queue_t *stackqs[SELECT_STACK], **qs = stackqs;
  cc_item_t it;
  cc_wait_t *w;
  box_t *b;
  if (n >= 2 && lua_type(L, n) == LUA_TNUMBER) {
    d = conc_opt_deadline(L, n);
    n--;
  } else if (n >= 2 && lua_isnil(L, n)) {
    n--;
  }
  luaL_argexpected(L, n >= 1, 1, "conc.queue");
  w = conc_wait_slot(L);
  if (cc_likely(w == NULL)) {
    if (n > SELECT_STACK) qs = lua_newuserdatauv(L, (size_t)n * sizeof *qs, 0);
    for (int i = 0; i < n; i++)
      qs[i] = checkq(L, i + 1);
    rc = cc_queue_select(qs, n, next_start(), &it, &which, d);
    if (rc == CC_ENOMEM && conc_reclaim(L)) rc = cc_queue_select(qs, n, next_start(), &it, &which, d);
    return select_done(L, rc, which, &it);
  }
  /* In a task: the queues, the item and the index live in a box on the
   * task's stack (the arguments keep the queues alive). */
  lua_settop(L, n);
  b = new_box(L, n);
  for (int i = 0; i < n; i++)
    b->qs[i] = checkq(L, i + 1);
  rc = cc_queue_select_w(w, b->qs, n, next_start(), &b->it, &b->which, d);
  if (rc == CC_ENOMEM && conc_reclaim(L))
    rc = cc_queue_select_w(w, b->qs, n, next_start(), &b->it, &b->which, d);
  if (rc != CC_WAIT_PARK) {
    box_take_item(b, &it);
    return select_done(L, rc, b->which, &it);
  }
  return conc_wait_ex(L, w, select_waited, CONC_WAIT_SEE_CANCEL);
}

static const luaL_Reg methods[] = {{"put", l_put},
                                   {"get", l_get},
                                   {"try_put", l_try_put},
                                   {"try_get", l_try_get},
                                   {"peek", l_peek},
                                   {"empty", l_empty},
                                   {"full", l_full},
                                   {"close", l_close},
                                   {"closed", l_closed},
                                   {"iter", l_iter},
                                   {"task_done", l_task_done},
                                   {"join", l_join},
                                   {"size", l_len},
                                   {NULL, NULL}};

static int l_mlen(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)cc_queue_size(checkq(L, 1)));
  return 1;
}

static const luaL_Reg metamethods[] = {{"__len", l_mlen}, {NULL, NULL}};

static const luaL_Reg funcs[] = {{"queue", l_queue}, {"select", l_select}, {NULL, NULL}};

static void build_queue_type(lua_State *L, const cc_type_t *type, const luaL_Reg *meths) {
  conc_newtype(L, type, NULL, metamethods, NULL);
  /* Method lookups go straight to a table (no C __index call per q:put);
   * each method carries the metatable for its `self` check. */
  luaL_getmetatable(L, "conc.queue");
  lua_newtable(L);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, meths, 1);
  conc_methods_strict(L, -1, "conc.queue"); /* q:gett() suggests get */
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

/* tostring: "conc.queue 'jobs' (3 items)", "(closed)", "(closed, 1 item)" */
static void queue_state(cc_obj_t *o, char *buf, size_t n) {
  cc_queue_t *q = (cc_queue_t *)o;
  size_t k = (size_t)cc_queue_size(q);
  int closed = atomic_load(&q->closed) != 0;
  if (closed && k == 0)
    snprintf(buf, n, "closed");
  else
    snprintf(buf, n, "%s%zu item%s", closed ? "closed, " : "", k, k == 1 ? "" : "s");
}

void conc_open_queue(lua_State *L) {
  conc_item_init();
  conc_lazytype(QUEUE_T, build_queue_type, methods);
  conc_describe(QUEUE_T, queue_state);
  luaL_setfuncs(L, funcs, 0);
}
