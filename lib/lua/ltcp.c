/*
 * ltcp.c - conc.tcp: listen/accept, connect, name resolution off the loop,
 * and the helpers both halves share (ltcp.h; a connection's methods are in
 * ltcp_conn.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ltcp.h"

int conc_tcp_fail(lua_State *L, const char *what, int uverr) {
  lua_pushnil(L);
  if (what)
    lua_pushfstring(L, "%s: %s", what, uv_strerror(uverr));
  else
    lua_pushstring(L, uv_strerror(uverr));
  lua_pushstring(L, uv_err_name(uverr));
  return 3;
}

void conc_tcp_wake(void **waiter) {
  void *w = *waiter;
  if (w) {
    *waiter = NULL;
    conc_io_wake(w);
  }
}

void conc_tcp_wait_here(lua_State *L, void **waiter, const char *busy) {
  void *me = conc_io_waiter(L);
  if (*waiter && *waiter != me) luaL_error(L, "%s (one at a time)", busy);
  *waiter = me;
}

cc_deadline_t conc_tcp_deadline_of(double s) {
  return s < 0 ? CC_FOREVER : cc_deadline_in(s);
}

void *conc_tcp_check_handle(lua_State *L, int idx, const char *tname, int *closed) {
  tcp_ud_t *u = luaL_checkudata(L, idx, tname);
  *closed = u->p == NULL;
  /* Both handle kinds start with the uv_tcp_t and then the loop. */
  if (u->p && ((tcp_conn_t *)u->p)->loop != conc_loop_get(L))
    luaL_error(L, "%s belongs to another thread", tname);
  return u->p;
}

static void build_types(lua_State *L);

tcp_ud_t *conc_tcp_push_ud(lua_State *L, void *p, const char *tname) {
  tcp_ud_t *u;
  if (luaL_getmetatable(L, tname) == LUA_TNIL) build_types(L);
  lua_pop(L, 1);
  u = lua_newuserdatauv(L, sizeof *u, 0);
  u->p = p;
  luaL_setmetatable(L, tname);
  return u;
}

/* ---- name resolution (libuv's thread pool: never blocks the loop) --------- */

struct tcp_gai {
  uv_getaddrinfo_t r;
  void (*done)(void *owner, int status, const struct addrinfo *res);
  void *owner; /* NULL once the owner gave up on it */
};

static void on_resolved(uv_getaddrinfo_t *r, int status, struct addrinfo *res) {
  tcp_gai_t *g = (tcp_gai_t *)r;
  if (g->owner) g->done(g->owner, status, res);
  uv_freeaddrinfo(res);
  free(g);
}

/* Starts resolving host:port into *slot (cleared by done, which gets the
 * addresses): 0, or a libuv error (nothing started). */
static int resolve(lua_State *L, conc_loop_t *lp, const char *host, int port, int passive,
                   tcp_gai_t **slot, void (*done)(void *, int, const struct addrinfo *),
                   void *owner) {
  tcp_gai_t *g = calloc(1, sizeof *g);
  struct addrinfo hints;
  char service[16];
  int rc;
  if (!g) return luaL_error(L, "conc.tcp: out of memory");
  g->done = done;
  g->owner = owner;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  snprintf(service, sizeof service, "%d", port);
  *slot = g;
  rc = uv_getaddrinfo(conc_loop_uv(lp), &g->r, on_resolved, host, service, &hints);
  if (rc) {
    *slot = NULL;
    free(g);
  }
  return rc;
}

void conc_tcp_cancel_resolve(tcp_gai_t **slot) {
  if (*slot) {
    (*slot)->owner = NULL;
    *slot = NULL;
  }
}

static int check_port(lua_State *L, int idx) {
  lua_Integer p = luaL_checkinteger(L, idx);
  luaL_argcheck(L, p >= 0 && p <= 65535, idx, "port must be between 0 and 65535");
  return (int)p;
}

/* nil, "host:port: message", CODE. */
static int fail_at(lua_State *L, const char *host, int port, int uverr) {
  char what[300];
  snprintf(what, sizeof what, "%s:%d", host, port);
  return conc_tcp_fail(L, what, uverr);
}

/* ---- connect ------------------------------------------------------------------ */

static void on_connect(uv_connect_t *req, int status) {
  tcp_conn_t *c = req->data;
  c->phase = 2;
  c->status = status;
  conc_tcp_wake(&c->waiter);
}

static void conn_resolved(void *owner, int status, const struct addrinfo *res) {
  tcp_conn_t *c = owner;
  c->gai = NULL;
  if (status < 0) {
    c->phase = 2;
    c->status = status;
  } else {
    int rc;
    c->creq.data = c;
    rc = uv_tcp_connect(&c->creq, &c->h, res->ai_addr, on_connect);
    if (rc) {
      c->phase = 2;
      c->status = rc;
    } else {
      c->phase = 1;
    }
  }
  if (c->phase == 2) conc_tcp_wake(&c->waiter);
}

/* Stack: host, port, timeout, the connection's userdata (4). */
static int connect_step(lua_State *L) {
  tcp_ud_t *u = lua_touserdata(L, 4);
  tcp_conn_t *c = u->p;
  if (c->phase < 2) {
    conc_tcp_wait_here(L, &c->waiter, "conc.tcp.connect: another task waits for this connection");
    return -1;
  }
  if (c->status < 0) {
    int st = c->status;
    conc_tcp_conn_close(c);
    u->p = NULL;
    return fail_at(L, lua_tostring(L, 1), (int)lua_tointeger(L, 2), st);
  }
  lua_settop(L, 4);
  return 1;
}

static int connect_abandon(lua_State *L) {
  tcp_ud_t *u = lua_touserdata(L, 4);
  if (u->p) conc_tcp_conn_close(u->p);
  u->p = NULL;
  return 0;
}

static int connect_timeout(lua_State *L) {
  connect_abandon(L);
  return conc_fail(L, CC_ETIMEOUT);
}

static int l_connect(lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  int port = check_port(L, 2), rc;
  double t = luaL_optnumber(L, 3, -1);
  conc_loop_t *lp = conc_loop_get(L);
  tcp_conn_t *c;
  lua_settop(L, 3);
  c = conc_tcp_new_conn(L, lp);
  conc_tcp_push_ud(L, c, CONN_T);
  rc = resolve(L, lp, host, port, 0, &c->gai, conn_resolved, c);
  if (rc) {
    c->phase = 2;
    c->status = rc;
  }
  return conc_io(L, connect_step, connect_timeout, connect_abandon, conc_tcp_deadline_of(t));
}

/* ---- servers ------------------------------------------------------------------ */

static void on_connection(uv_stream_t *s, int status) {
  tcp_srv_t *v = s->data;
  if (status < 0)
    v->err = status;
  else
    v->pending++;
  conc_tcp_wake(&v->waiter);
}

static void free_srv(uv_handle_t *h) {
  free(h);
}

static void srv_close(tcp_srv_t *v) {
  if (v->closed) return;
  v->closed = 1;
  conc_tcp_cancel_resolve(&v->gai);
  conc_tcp_wake(&v->waiter);
  uv_close((uv_handle_t *)&v->h, free_srv);
}

static int srv_gc(lua_State *L) {
  tcp_ud_t *u = luaL_checkudata(L, 1, SRV_T);
  if (u->p) srv_close(u->p);
  u->p = NULL;
  return 0;
}

static int accept_step(lua_State *L) {
  int closed, rc;
  tcp_srv_t *v = conc_tcp_check_handle(L, 1, SRV_T, &closed);
  tcp_conn_t *c;
  if (closed) return conc_fail(L, CC_ECLOSED);
  if (v->pending == 0) {
    if (v->err) {
      int e = v->err;
      v->err = 0;
      return conc_tcp_fail(L, "accept", e);
    }
    conc_tcp_wait_here(L, &v->waiter, "server:accept: another task is accepting on this server");
    return -1;
  }
  v->pending--;
  c = conc_tcp_new_conn(L, v->loop);
  conc_tcp_push_ud(L, c, CONN_T);
  rc = uv_accept((uv_stream_t *)&v->h, (uv_stream_t *)&c->h);
  if (rc) return conc_tcp_fail(L, "accept", rc);
  c->phase = 2;
  return 1;
}

static int srv_forget(lua_State *L) {
  tcp_ud_t *u = luaL_checkudata(L, 1, SRV_T);
  if (u->p) ((tcp_srv_t *)u->p)->waiter = NULL;
  return 0;
}

static int accept_timeout(lua_State *L) {
  srv_forget(L);
  return conc_fail(L, CC_ETIMEOUT);
}

static int s_accept(lua_State *L) {
  int closed;
  double t;
  conc_tcp_check_handle(L, 1, SRV_T, &closed);
  t = luaL_optnumber(L, 2, -1);
  lua_settop(L, 1);
  return conc_io(L, accept_step, accept_timeout, srv_forget, conc_tcp_deadline_of(t));
}

/* Binds and listens: 0 or a libuv error. */
static int bind_listen(tcp_srv_t *v, const struct sockaddr *addr) {
  struct sockaddr_storage bound;
  int blen = sizeof bound;
  int rc = uv_tcp_bind(&v->h, addr, 0);
  if (!rc) rc = uv_listen((uv_stream_t *)&v->h, v->backlog, on_connection);
  if (rc) return rc;
  uv_tcp_getsockname(&v->h, (struct sockaddr *)&bound, &blen);
  v->port = ntohs(((struct sockaddr_in *)&bound)->sin_port); /* same place in IPv6 */
  return 0;
}

/* A name: the first IPv4 address it has, else its first address. */
static void srv_resolved(void *owner, int status, const struct addrinfo *res) {
  tcp_srv_t *v = owner;
  const struct addrinfo *a = res;
  v->gai = NULL;
  if (status == 0) {
    for (const struct addrinfo *i = res; i; i = i->ai_next)
      if (i->ai_family == AF_INET) {
        a = i;
        break;
      }
    status = bind_listen(v, a->ai_addr);
  }
  v->phase = 2;
  v->status = status;
  conc_tcp_wake(&v->waiter);
}

/* Stack: host, port, backlog, the server's userdata (4). */
static int listen_step(lua_State *L) {
  tcp_ud_t *u = lua_touserdata(L, 4);
  tcp_srv_t *v = u->p;
  if (v->phase < 2) {
    conc_tcp_wait_here(L, &v->waiter, "conc.tcp.listen: another task waits for this server");
    return -1;
  }
  if (v->status < 0) {
    int st = v->status;
    srv_close(v);
    u->p = NULL;
    return fail_at(L, lua_tostring(L, 1), (int)lua_tointeger(L, 2), st);
  }
  lua_settop(L, 4);
  return 1;
}

static int listen_abandon(lua_State *L) {
  tcp_ud_t *u = lua_touserdata(L, 4);
  if (u->p) srv_close(u->p);
  u->p = NULL;
  return 0;
}

static int listen_timeout(lua_State *L) { /* never: no deadline */
  listen_abandon(L);
  return conc_fail(L, CC_ETIMEOUT);
}

/* conc.tcp.listen(host, port [, backlog]): a numeric address binds at
 * once; a name is resolved first, like connect does (a task suspends
 * meanwhile), and the server listens on its first IPv4 address (else its
 * first address). */
static int l_listen(lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  int port = check_port(L, 2), rc;
  lua_Integer backlog = luaL_optinteger(L, 3, 511);
  conc_loop_t *lp = conc_loop_get(L);
  struct sockaddr_storage addr;
  tcp_srv_t *v;
  int numeric = 1;
  luaL_argcheck(L, backlog >= 1 && backlog <= 65535, 3, "backlog must be between 1 and 65535");
  lua_settop(L, 3);
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)&addr) != 0 &&
      uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr) != 0)
    numeric = 0;
  v = calloc(1, sizeof *v);
  if (!v) return luaL_error(L, "conc.tcp: out of memory");
  v->loop = lp;
  v->backlog = (int)backlog;
  uv_tcp_init(conc_loop_uv(lp), &v->h);
  v->h.data = v;
  conc_tcp_push_ud(L, v, SRV_T);
  if (numeric) {
    v->phase = 2;
    v->status = bind_listen(v, (struct sockaddr *)&addr);
    return listen_step(L);
  }
  rc = resolve(L, lp, host, port, 1, &v->gai, srv_resolved, v);
  if (rc) {
    v->phase = 2;
    v->status = rc;
  }
  return conc_io(L, listen_step, listen_timeout, listen_abandon, CC_FOREVER);
}

static int s_tostring(lua_State *L) {
  tcp_ud_t *u = luaL_checkudata(L, 1, SRV_T);
  if (u->p)
    lua_pushfstring(L, "conc.tcp.server (port %d)", ((tcp_srv_t *)u->p)->port);
  else
    lua_pushliteral(L, "conc.tcp.server (closed)");
  return 1;
}

static int s_index(lua_State *L) {
  tcp_ud_t *u = luaL_checkudata(L, 1, SRV_T);
  const char *k = luaL_checkstring(L, 2);
  if (strcmp(k, "port") == 0) {
    if (u->p)
      lua_pushinteger(L, ((tcp_srv_t *)u->p)->port);
    else
      lua_pushnil(L);
    return 1;
  }
  lua_getmetatable(L, 1);
  lua_getfield(L, -1, "__methods");
  lua_getfield(L, -1, k);
  return 1;
}

static const luaL_Reg srv_methods[] = {{"accept", s_accept}, {"close", srv_gc}, {NULL, NULL}};

static const luaL_Reg funcs[] = {{"listen", l_listen}, {"connect", l_connect}, {NULL, NULL}};

/* The Server and Conn metatables, built in a state the first time one of
 * its objects is made (most states never use TCP: building them in every
 * new thread's state was a tenth of its start). */
static void build_types(lua_State *L) {
  conc_tcp_open_conn(L);
  if (luaL_newmetatable(L, SRV_T)) {
    lua_newtable(L);
    luaL_setfuncs(L, srv_methods, 0);
    conc_methods_strict(L, -1, SRV_T); /* s_index's misses raise */
    lua_setfield(L, -2, "__methods");
    lua_pushcfunction(L, s_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, srv_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, srv_gc);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, s_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
}

void conc_open_tcp(lua_State *L) {
  lua_newtable(L);
  luaL_setfuncs(L, funcs, 0);
  lua_setfield(L, -2, "tcp");
}
