/*
 * lpipe.c - conc.pipe (the core is lib/core/pipe.c).
 *
 * Misuse raises: sending nil, sending on a closed end or to a closed other
 * end, receiving on a closed end, using a one-way end the wrong way.
 * Expected outcomes return fail values: recv -> nil, "timeout" and, once
 * the other end is closed and everything it sent has been received,
 * nil, "closed" (plus the code name).
 */
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "lconc.h"
#include "lqueue.h"
#include "lvalue.h"
#include "pipe.h"

#define PIPE_T (&cc_pipe_type)

static cc_pipe_t *checkend(lua_State *L, int idx) {
  return (cc_pipe_t *)conc_check(L, idx, PIPE_T);
}

/* conc.pipe([name | {name=, duplex=},] [duplex]): the ends are named
 * "<name> (a)" and "<name> (b)", so a name has 4 bytes less room. */
static int l_pipe(lua_State *L) {
  static const char *const keys[] = {"name", "duplex", NULL};
  char name[CC_NAME_MAX];
  int first = conc_ctor_name(L, 1, keys, name), duplex;
  cc_pipe_t *a, *b;
  char where[CC_NAME_MAX];
  conc_where(L, where, sizeof where);
  if (strlen(name) > CC_NAME_MAX - 5 && strcmp(name, where) != 0) /* a given name */
    return luaL_argerror(L, 1, lua_pushfstring(L, "a pipe's name is at most %d bytes (its ends "
                                                  "add \" (a)\")", CC_NAME_MAX - 5));
  if (first == 2 && lua_istable(L, 1) && lua_isnoneornil(L, 2)) {
    lua_settop(L, 1);
    lua_getfield(L, 1, "duplex"); /* becomes argument 2 */
  }
  duplex = lua_isnoneornil(L, first) ? 1 : lua_toboolean(L, first);
  if (cc_pipe_new(duplex, name, &a, &b) != 0 &&
      (!conc_reclaim(L) || cc_pipe_new(duplex, name, &a, &b) != 0))
    return luaL_error(L, "conc.pipe: %s", cc_strerror(CC_ENOMEM));
  conc_push_owned(L, &a->h);
  conc_push_owned(L, &b->h);
  return 2;
}

/* Misuse of end e: "pipe:send: this end is closed (pipe 'link (a)')". */
static int misuse(lua_State *L, cc_pipe_t *e, const char *what) {
  return luaL_error(L, "%s (pipe '%s')", what, e->h.name);
}

static int l_send(lua_State *L) {
  cc_pipe_t *e = checkend(L, 1);
  cc_item_t it;
  int rc;
  if (lua_isnoneornil(L, 2))
    conc_argerror(L, 2, lua_pushfstring(L, "non-nil value expected, got %s", luaL_typename(L, 2)));
  if (!e->out) return misuse(L, e, "pipe:send: this end only receives");
  if (cc_pipe_closed(e)) return misuse(L, e, "pipe:send: this end is closed");
  conc_item_from_lua(L, 2, &it, "message");
  rc = cc_pipe_send(e, &it);
  if (cc_unlikely(rc == CC_ENOMEM) && conc_reclaim(L)) rc = cc_pipe_send(e, &it);
  if (cc_likely(rc == 0)) return 0;
  cc_item_clear(&it);
  if (rc == CC_ECLOSED)
    return misuse(L, e, cc_pipe_closed(e) ? "pipe:send: this end is closed"
                                           : "pipe:send: the other end is closed");
  return conc_raise(L, rc, "pipe:send");
}

static int recv_done(lua_State *L, int rc, cc_item_t *it) {
  if (cc_likely(rc == 0)) {
    conc_item_push_take(L, it);
    return 1;
  }
  if (rc == CC_ECANCELLED) return conc_task_raise_cancelled(L);
  if (cc_pipe_closed(checkend(L, 1)))
    return misuse(L, checkend(L, 1), "pipe:recv: this end is closed");
  return conc_fail(L, rc);
}

static int recv_waited(lua_State *L, int rc, cc_wait_t *w) {
  cc_item_t it;
  (void)w;
  conc_queue_box_take(L, &it);
  return recv_done(L, rc, &it);
}

/* In a task a receive that must wait suspends only the task. */
static int l_recv(lua_State *L) {
  cc_pipe_t *e = checkend(L, 1);
  cc_deadline_t d = conc_opt_deadline(L, 2);
  cc_wait_t *w;
  cc_item_t it;
  int rc;
  if (!e->in) return misuse(L, e, "pipe:recv: this end only sends");
  w = conc_wait_slot(L);
  if (cc_likely(w == NULL)) return recv_done(L, cc_pipe_recv(e, &it, d), &it);
  rc = cc_pipe_recv_w(w, e, &it, d);
  if (rc != CC_WAIT_PARK) return recv_done(L, rc, &it);
  return conc_queue_wait_get(L, w, recv_waited);
}

static int l_poll(lua_State *L) {
  cc_pipe_t *e = checkend(L, 1);
  lua_pushboolean(L, cc_pipe_pending(e) > 0);
  return 1;
}

static int l_close(lua_State *L) {
  cc_pipe_close(checkend(L, 1));
  return 0;
}

static int l_closed(lua_State *L) {
  lua_pushboolean(L, cc_pipe_closed(checkend(L, 1)));
  return 1;
}

static const luaL_Reg methods[] = {{"send", l_send},     {"recv", l_recv},
                                   {"poll", l_poll},     {"close", l_close},
                                   {"closed", l_closed}, {NULL, NULL}};

static const luaL_Reg funcs[] = {{"pipe", l_pipe}, {NULL, NULL}};

static void build_pipe_type(lua_State *L, const cc_type_t *type, const luaL_Reg *meths) {
  conc_newtype(L, type, meths, NULL, NULL);
}

/* tostring: "conc.pipe 'p (a)' (open)" or "(closed)" */
static void pipe_state(cc_obj_t *o, char *buf, size_t n) {
  snprintf(buf, n, "%s", cc_pipe_closed((cc_pipe_t *)o) ? "closed" : "open");
}

void conc_open_pipe(lua_State *L) {
  conc_item_init();
  conc_lazytype(PIPE_T, build_pipe_type, methods); /* built on first use */
  conc_describe(PIPE_T, pipe_state);
  luaL_setfuncs(L, funcs, 0);
}
