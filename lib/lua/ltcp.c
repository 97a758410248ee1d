/*
 * ltcp.c - conc.tcp: listen/accept, connect, io-style read/write, close,
 * timeouts, on the calling thread's libuv loop (ltask.h).
 *
 * In a task every call suspends the task; in a plain thread it runs the
 * thread's loop until the call completes. A Server or Conn belongs to the
 * thread whose loop it is registered with. Each handle is malloc'd with
 * the libuv handle first and freed by its close callback; the userdata
 * only points at it. An operation in progress keeps a pointer to whoever
 * waits (conc_io_waiter) and forgets it when abandoned (timeout, cancel).
 * Environmental failures return nil, message; misuse raises.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "ltask.h"

#define SRV_T "conc.tcp.server"
#define CONN_T "conc.tcp.conn"
#define READ_MAX 65536

typedef struct tcp_srv {
  uv_tcp_t h;
  conc_loop_t *loop;
  int port, closed, pending, err;
  void *waiter;
} tcp_srv_t;

typedef struct gai_req gai_req_t;

typedef struct tcp_conn {
  uv_tcp_t h;
  conc_loop_t *loop;
  char *buf;
  size_t off, len, cap; /* unread bytes are buf[off, len) */
  int eof, err, reading, closed;
  int phase, status; /* connect: 0 resolving, 1 connecting, 2 done */
  double timeout;    /* read/write timeout, < 0 none */
  void *waiter;
  gai_req_t *gai;
  uv_connect_t creq;
} tcp_conn_t;

struct gai_req {
  uv_getaddrinfo_t r;
  tcp_conn_t *conn; /* NULL once the connection gave up on it */
};

typedef struct write_req {
  uv_write_t w;
  int done, status, orphan;
  void *waiter;
  char data[];
} write_req_t;

typedef struct ud {
  void *p; /* tcp_srv_t or tcp_conn_t, NULL once closed */
} ud_t;

static void ignore_sigpipe_once(void) {
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
  }
}

static void free_handle(uv_handle_t *h) {
  if (h->type == UV_TCP && h->data) {
    tcp_conn_t *c = h->data;
    free(c->buf);
  }
  free(h);
}

static void wake(void **waiter) {
  void *w = *waiter;
  if (w) {
    *waiter = NULL;
    conc_io_wake(w);
  }
}

static int fail(lua_State *L, const char *what, int uverr) {
  lua_pushnil(L);
  if (what)
    lua_pushfstring(L, "%s: %s", what, uv_strerror(uverr));
  else
    lua_pushstring(L, uv_strerror(uverr));
  return 2;
}

static cc_deadline_t deadline_of(double s) {
  return s < 0 ? CC_FOREVER : cc_deadline_in(s);
}

/* The server or connection at idx, checked to be open and this thread's. */
static void *check_handle(lua_State *L, int idx, const char *tname, int *closed) {
  ud_t *u = luaL_checkudata(L, idx, tname);
  *closed = u->p == NULL;
  if (u->p && ((tcp_conn_t *)u->p)->loop != conc_loop_get(L))
    luaL_error(L, "%s belongs to another thread", tname);
  return u->p;
}

/* ---- connections: close, gc ------------------------------------------------ */

static void conn_close(tcp_conn_t *c) {
  if (c->closed) return;
  c->closed = 1;
  if (c->gai) {
    c->gai->conn = NULL;
    c->gai = NULL;
  }
  wake(&c->waiter);
  c->h.data = c;
  uv_close((uv_handle_t *)&c->h, free_handle);
}

static int conn_gc(lua_State *L) {
  ud_t *u = luaL_checkudata(L, 1, CONN_T);
  if (u->p) conn_close(u->p);
  u->p = NULL;
  return 0;
}

static ud_t *push_ud(lua_State *L, void *p, const char *tname) {
  ud_t *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->p = p;
  luaL_setmetatable(L, tname);
  return u;
}

/* A write to a connection the peer has reset must fail with EPIPE, not
 * kill the process: SIGPIPE is ignored from the first connection on,
 * unless the program has its own handler (as Python does at start). */
static void ignore_sigpipe(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, ignore_sigpipe_once);
}

static tcp_conn_t *new_conn(lua_State *L, conc_loop_t *lp) {
  tcp_conn_t *c;
  ignore_sigpipe();
  c = calloc(1, sizeof *c);
  if (!c) luaL_error(L, "conc.tcp: out of memory");
  c->loop = lp;
  c->timeout = -1;
  uv_tcp_init(conc_loop_uv(lp), &c->h);
  c->h.data = c;
  return c;
}

/* ---- reading ---------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  tcp_conn_t *c = h->data;
  (void)suggested;
  if (c->off > 0 && c->off == c->len) c->off = c->len = 0;
  if (c->cap - c->len < READ_MAX) {
    size_t cap = c->len + READ_MAX;
    char *nb = realloc(c->buf, cap);
    if (!nb) {
      *b = uv_buf_init(NULL, 0);
      return;
    }
    c->buf = nb;
    c->cap = cap;
  }
  *b = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  tcp_conn_t *c = s->data;
  (void)b;
  if (n > 0) {
    c->len += (size_t)n;
    if (c->len - c->off >= 4 * READ_MAX) { /* enough until somebody reads */
      uv_read_stop(s);
      c->reading = 0;
    }
  } else if (n == UV_EOF) {
    c->eof = 1;
  } else if (n < 0) {
    c->err = (int)n;
  }
  if (n != 0) wake(&c->waiter);
}

/* How many bytes format `f` takes from the unread data, or -1 when it
 * needs more (dry run: nothing consumed). *skip: bytes dropped after them
 * (the newline of "l"). */
static long measure(lua_State *L, int arg, const char *p, size_t n, int eof, size_t *skip) {
  *skip = 0;
  if (lua_type(L, arg) == LUA_TNUMBER) {
    lua_Integer k = lua_tointeger(L, arg);
    if (k == 0) return 0;
    if (n == 0) return eof ? -2 : -1;
    return (long)((size_t)k < n ? (size_t)k : n);
  } else {
    const char *f = lua_tostring(L, arg);
    const char *nl;
    if (*f == '*') f++;
    switch (*f) {
    case 'a':
      return eof ? (long)n : -1;
    case 'l':
    case 'L':
      nl = n ? memchr(p, '\n', n) : NULL;
      if (nl) {
        *skip = *f == 'l';
        return (long)(nl - p) + (*f == 'L');
      }
      if (eof) return n > 0 ? (long)n : -2;
      return -1;
    }
  }
  return -1;
}

static int read_step(lua_State *L) {
  int closed, nf;
  tcp_conn_t *c = check_handle(L, 1, CONN_T, &closed);
  size_t pos, skips[16];
  long lens[16];
  if (closed) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  nf = lua_gettop(L) - 1;
  if (c->err && c->off == c->len) return fail(L, NULL, c->err);
  /* Dry run over every format; consume only when all can be answered. */
  pos = c->off;
  for (int i = 0; i < nf; i++) {
    lens[i] = measure(L, 2 + i, c->buf + pos, c->len - pos, c->eof || c->err, &skips[i]);
    if (lens[i] == -1) {
      if (!c->reading) {
        int rc = uv_read_start((uv_stream_t *)&c->h, on_alloc, on_read);
        if (rc) return fail(L, NULL, rc);
        c->reading = 1;
      }
      c->waiter = conc_io_waiter(L);
      return -1;
    }
    if (lens[i] == -2) {
      nf = i + 1;
      break;
    }
    pos += (size_t)lens[i] + skips[i];
  }
  for (int i = 0; i < nf; i++) {
    if (lens[i] == -2) {
      lua_pushnil(L);
      if (i == 0) {
        lua_pushliteral(L, "closed");
        return 2;
      }
      return i + 1;
    }
    lua_pushlstring(L, c->buf + c->off, (size_t)lens[i]);
    c->off += (size_t)lens[i] + skips[i];
  }
  if (!c->reading && !c->eof && !c->err && c->len - c->off < 4 * READ_MAX) {
    /* resume reading after back-pressure */
    if (uv_read_start((uv_stream_t *)&c->h, on_alloc, on_read) == 0) c->reading = 1;
  }
  return nf;
}

static int conn_forget(lua_State *L) {
  ud_t *u = luaL_checkudata(L, 1, CONN_T);
  if (u->p) ((tcp_conn_t *)u->p)->waiter = NULL;
  return 0;
}

static int io_timeout(lua_State *L) {
  conn_forget(L);
  lua_pushnil(L);
  lua_pushliteral(L, "timeout");
  return 2;
}

static int c_read(lua_State *L) {
  int closed, n = lua_gettop(L);
  tcp_conn_t *c = check_handle(L, 1, CONN_T, &closed);
  if (n == 1) {
    lua_pushliteral(L, "l");
    n = 2;
  }
  luaL_argcheck(L, n - 1 <= 16, 18, "too many formats");
  for (int i = 2; i <= n; i++) {
    if (lua_type(L, i) == LUA_TNUMBER) {
      luaL_argcheck(L, lua_isinteger(L, i) && lua_tointeger(L, i) >= 0, i,
                    "byte count must be a non-negative integer");
    } else {
      const char *f = luaL_checkstring(L, i);
      if (*f == '*') f++;
      luaL_argcheck(L, (*f == 'a' || *f == 'l' || *f == 'L') && f[1] == '\0', i,
                    "invalid format");
    }
  }
  return conc_io(L, read_step, io_timeout, conn_forget, c ? deadline_of(c->timeout) : CC_NOW);
}

/* ---- writing ------------------------------------------------------------------ */

static void on_write(uv_write_t *w, int status) {
  write_req_t *r = (write_req_t *)w;
  r->done = 1;
  r->status = status;
  if (r->orphan) {
    free(r);
    return;
  }
  wake(&r->waiter);
}

/* Stack: self, strings..., the request (light userdata) on top. */
static int write_step(lua_State *L) {
  write_req_t *r = lua_touserdata(L, -1);
  if (!r->done) {
    r->waiter = conc_io_waiter(L);
    return -1;
  }
  lua_pop(L, 1);
  if (r->status < 0) {
    int st = r->status;
    free(r);
    return fail(L, NULL, st);
  }
  free(r);
  lua_settop(L, 1);
  return 1;
}

static int write_abandon(lua_State *L) {
  write_req_t *r = lua_touserdata(L, -1);
  if (r->done) {
    free(r);
  } else {
    r->orphan = 1;
    r->waiter = NULL;
  }
  return 0;
}

static int write_timeout(lua_State *L) {
  write_abandon(L);
  lua_pushnil(L);
  lua_pushliteral(L, "timeout");
  return 2;
}

static int c_write(lua_State *L) {
  int closed, n = lua_gettop(L), rc;
  tcp_conn_t *c = check_handle(L, 1, CONN_T, &closed);
  size_t total = 0, at = 0;
  write_req_t *r;
  uv_buf_t b;
  for (int i = 2; i <= n; i++) {
    size_t len;
    luaL_checklstring(L, i, &len);
    total += len;
  }
  if (closed) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  if (c->err) return fail(L, NULL, c->err);
  r = malloc(sizeof *r + total + 1);
  if (!r) return luaL_error(L, "conc.tcp: out of memory");
  memset(r, 0, sizeof *r);
  for (int i = 2; i <= n; i++) {
    size_t len;
    const char *s = lua_tolstring(L, i, &len);
    memcpy(r->data + at, s, len);
    at += len;
  }
  b = uv_buf_init(r->data, (unsigned)total);
  rc = uv_write(&r->w, (uv_stream_t *)&c->h, &b, 1, on_write);
  if (rc) {
    free(r);
    return fail(L, NULL, rc);
  }
  lua_pushlightuserdata(L, r);
  return conc_io(L, write_step, write_timeout, write_abandon, deadline_of(c->timeout));
}

/* ---- connect ------------------------------------------------------------------ */

static void on_connect(uv_connect_t *req, int status) {
  tcp_conn_t *c = req->data;
  c->phase = 2;
  c->status = status;
  wake(&c->waiter);
}

static void on_resolved(uv_getaddrinfo_t *r, int status, struct addrinfo *res) {
  gai_req_t *g = (gai_req_t *)r;
  tcp_conn_t *c = g->conn;
  if (c) {
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
    if (c->phase == 2) wake(&c->waiter);
  }
  uv_freeaddrinfo(res);
  free(g);
}

/* Stack: host, port, timeout, the connection's userdata (4). */
static int connect_step(lua_State *L) {
  ud_t *u = lua_touserdata(L, 4);
  tcp_conn_t *c = u->p;
  if (c->phase < 2) {
    c->waiter = conc_io_waiter(L);
    return -1;
  }
  if (c->status < 0) {
    int st = c->status;
    const char *host = lua_tostring(L, 1);
    conn_close(c);
    u->p = NULL;
    lua_pushnil(L);
    lua_pushfstring(L, "%s:%d: %s", host, (int)lua_tointeger(L, 2), uv_strerror(st));
    return 2;
  }
  lua_settop(L, 4);
  return 1;
}

static int connect_abandon(lua_State *L) {
  ud_t *u = lua_touserdata(L, 4);
  if (u->p) conn_close(u->p);
  u->p = NULL;
  return 0;
}

static int connect_timeout(lua_State *L) {
  connect_abandon(L);
  lua_pushnil(L);
  lua_pushliteral(L, "timeout");
  return 2;
}

static int check_port(lua_State *L, int idx) {
  lua_Integer p = luaL_checkinteger(L, idx);
  luaL_argcheck(L, p >= 0 && p <= 65535, idx, "port must be between 0 and 65535");
  return (int)p;
}

static int l_connect(lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  int port = check_port(L, 2), rc;
  double t = luaL_optnumber(L, 3, -1);
  conc_loop_t *lp = conc_loop_get(L);
  tcp_conn_t *c;
  gai_req_t *g;
  char service[16];
  struct addrinfo hints;
  lua_settop(L, 3);
  c = new_conn(L, lp);
  push_ud(L, c, CONN_T);
  g = calloc(1, sizeof *g);
  if (!g) return luaL_error(L, "conc.tcp: out of memory");
  g->conn = c;
  c->gai = g;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  snprintf(service, sizeof service, "%d", port);
  rc = uv_getaddrinfo(conc_loop_uv(lp), &g->r, on_resolved, host, service, &hints);
  if (rc) {
    free(g);
    c->gai = NULL;
    c->phase = 2;
    c->status = rc;
  }
  return conc_io(L, connect_step, connect_timeout, connect_abandon, deadline_of(t));
}

/* ---- servers ------------------------------------------------------------------ */

static void on_connection(uv_stream_t *s, int status) {
  tcp_srv_t *v = s->data;
  if (status < 0)
    v->err = status;
  else
    v->pending++;
  wake(&v->waiter);
}

static void srv_close(tcp_srv_t *v) {
  if (v->closed) return;
  v->closed = 1;
  wake(&v->waiter);
  v->h.data = NULL;
  uv_close((uv_handle_t *)&v->h, free_handle);
}

static int srv_gc(lua_State *L) {
  ud_t *u = luaL_checkudata(L, 1, SRV_T);
  if (u->p) srv_close(u->p);
  u->p = NULL;
  return 0;
}

static int accept_step(lua_State *L) {
  int closed, rc;
  tcp_srv_t *v = check_handle(L, 1, SRV_T, &closed);
  tcp_conn_t *c;
  if (closed) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  if (v->pending == 0) {
    if (v->err) {
      int e = v->err;
      v->err = 0;
      return fail(L, "accept", e);
    }
    v->waiter = conc_io_waiter(L);
    return -1;
  }
  v->pending--;
  c = new_conn(L, v->loop);
  push_ud(L, c, CONN_T);
  rc = uv_accept((uv_stream_t *)&v->h, (uv_stream_t *)&c->h);
  if (rc) return fail(L, "accept", rc);
  c->phase = 2;
  return 1;
}

static int srv_forget(lua_State *L) {
  ud_t *u = luaL_checkudata(L, 1, SRV_T);
  if (u->p) ((tcp_srv_t *)u->p)->waiter = NULL;
  return 0;
}

static int accept_timeout(lua_State *L) {
  srv_forget(L);
  lua_pushnil(L);
  lua_pushliteral(L, "timeout");
  return 2;
}

static int s_accept(lua_State *L) {
  int closed;
  double t;
  check_handle(L, 1, SRV_T, &closed);
  t = luaL_optnumber(L, 2, -1);
  lua_settop(L, 1);
  return conc_io(L, accept_step, accept_timeout, srv_forget, deadline_of(t));
}

static int l_listen(lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  int port = check_port(L, 2), rc;
  lua_Integer backlog = luaL_optinteger(L, 3, 511);
  conc_loop_t *lp = conc_loop_get(L);
  struct sockaddr_storage addr;
  struct sockaddr_storage bound;
  int blen = sizeof bound;
  tcp_srv_t *v;
  ud_t *u;
  luaL_argcheck(L, backlog >= 1 && backlog <= 65535, 3, "backlog must be between 1 and 65535");
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)&addr) != 0 &&
      uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr) != 0) {
    if (strcmp(host, "localhost") == 0)
      uv_ip4_addr("127.0.0.1", port, (struct sockaddr_in *)&addr);
    else {
      lua_pushnil(L);
      lua_pushfstring(L, "%s: not a numeric address (use an IP address or localhost)", host);
      return 2;
    }
  }
  v = calloc(1, sizeof *v);
  if (!v) return luaL_error(L, "conc.tcp: out of memory");
  v->loop = lp;
  uv_tcp_init(conc_loop_uv(lp), &v->h);
  v->h.data = v;
  u = push_ud(L, v, SRV_T);
  rc = uv_tcp_bind(&v->h, (struct sockaddr *)&addr, 0);
  if (!rc) rc = uv_listen((uv_stream_t *)&v->h, (int)backlog, on_connection);
  if (rc) {
    srv_close(v);
    u->p = NULL;
    lua_pushnil(L);
    lua_pushfstring(L, "%s:%d: %s", host, port, uv_strerror(rc));
    return 2;
  }
  uv_tcp_getsockname(&v->h, (struct sockaddr *)&bound, &blen);
  v->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
  return 1;
}

/* ---- the rest of the methods ------------------------------------------------- */

static int push_addr(lua_State *L, struct sockaddr_storage *a) {
  char ip[64];
  int port;
  if (a->ss_family == AF_INET6) {
    uv_ip6_name((struct sockaddr_in6 *)a, ip, sizeof ip);
    port = ntohs(((struct sockaddr_in6 *)a)->sin6_port);
  } else {
    uv_ip4_name((struct sockaddr_in *)a, ip, sizeof ip);
    port = ntohs(((struct sockaddr_in *)a)->sin_port);
  }
  lua_pushstring(L, ip);
  lua_pushinteger(L, port);
  return 2;
}

static int names(lua_State *L, int peer) {
  int closed, len, rc;
  tcp_conn_t *c = check_handle(L, 1, CONN_T, &closed);
  struct sockaddr_storage a;
  if (closed) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  len = sizeof a;
  rc = peer ? uv_tcp_getpeername(&c->h, (struct sockaddr *)&a, &len)
            : uv_tcp_getsockname(&c->h, (struct sockaddr *)&a, &len);
  if (rc) return fail(L, NULL, rc);
  return push_addr(L, &a);
}

static int c_peername(lua_State *L) {
  return names(L, 1);
}

static int c_sockname(lua_State *L) {
  return names(L, 0);
}

static int c_settimeout(lua_State *L) {
  int closed;
  ud_t *u = luaL_checkudata(L, 1, CONN_T);
  double t = luaL_optnumber(L, 2, -1);
  check_handle(L, 1, CONN_T, &closed);
  luaL_argcheck(L, t == t, 2, "timeout must be a number");
  if (u->p) ((tcp_conn_t *)u->p)->timeout = t < 0 ? -1 : t;
  lua_settop(L, 1);
  return 1;
}

static int c_tostring(lua_State *L) {
  ud_t *u = luaL_checkudata(L, 1, CONN_T);
  lua_pushfstring(L, "conc.tcp.conn (%s)", u->p ? "open" : "closed");
  return 1;
}

static int s_tostring(lua_State *L) {
  ud_t *u = luaL_checkudata(L, 1, SRV_T);
  if (u->p)
    lua_pushfstring(L, "conc.tcp.server (port %d)", ((tcp_srv_t *)u->p)->port);
  else
    lua_pushliteral(L, "conc.tcp.server (closed)");
  return 1;
}

static int s_index(lua_State *L) {
  ud_t *u = luaL_checkudata(L, 1, SRV_T);
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

static const luaL_Reg conn_methods[] = {
    {"read", c_read},         {"write", c_write},       {"close", conn_gc},
    {"peername", c_peername}, {"sockname", c_sockname}, {"settimeout", c_settimeout},
    {NULL, NULL}};

static const luaL_Reg srv_methods[] = {{"accept", s_accept}, {"close", srv_gc}, {NULL, NULL}};

static const luaL_Reg funcs[] = {{"listen", l_listen}, {"connect", l_connect}, {NULL, NULL}};

void conc_open_tcp(lua_State *L) {
  if (luaL_newmetatable(L, CONN_T)) {
    lua_newtable(L);
    luaL_setfuncs(L, conn_methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, conn_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, conn_gc);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, c_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, SRV_T)) {
    lua_newtable(L);
    luaL_setfuncs(L, srv_methods, 0);
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
  lua_newtable(L);
  luaL_setfuncs(L, funcs, 0);
  lua_setfield(L, -2, "tcp");
}
