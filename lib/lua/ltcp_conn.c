/*
 * ltcp_conn.c - a conc.tcp connection: io-style read, write, close,
 * peername/sockname, settimeout (ltcp.h; servers and connect in ltcp.c).
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "ltcp.h"

#define READ_MAX 65536

typedef struct write_req {
  uv_write_t w;
  int done, status, orphan;
  void *waiter;
  char data[];
} write_req_t;

static void ignore_sigpipe_once(void) {
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
  }
}

/* A write to a connection the peer has reset must fail with EPIPE, not
 * kill the process: SIGPIPE is ignored from the first connection on,
 * unless the program has its own handler (as Python does at start). */
static void ignore_sigpipe(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, ignore_sigpipe_once);
}

static void free_conn(uv_handle_t *h) {
  tcp_conn_t *c = h->data;
  free(c->buf);
  free(c);
}

tcp_conn_t *conc_tcp_new_conn(lua_State *L, conc_loop_t *lp) {
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

/* ---- close, gc ------------------------------------------------------------- */

void conc_tcp_conn_close(tcp_conn_t *c) {
  if (c->closed) return;
  c->closed = 1;
  conc_tcp_cancel_resolve(&c->gai);
  conc_tcp_wake(&c->waiter);
  c->h.data = c;
  uv_close((uv_handle_t *)&c->h, free_conn);
}

static int conn_gc(lua_State *L) {
  tcp_ud_t *u = luaL_checkudata(L, 1, CONN_T);
  if (u->p) conc_tcp_conn_close(u->p);
  u->p = NULL;
  return 0;
}

/* ---- reading ---------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  tcp_conn_t *c = h->data;
  (void)suggested;
  /* The bytes already consumed go before the buffer grows (kept, a
   * connection whose reads end mid-line grew by all it ever received, and
   * each realloc copied it all). Moved only when they are at least as many
   * as the unread ones, so a byte is moved once on average. */
  if (c->off > 0 && c->off >= c->len - c->off) {
    memmove(c->buf, c->buf + c->off, c->len - c->off);
    c->len -= c->off;
    c->off = 0;
  }
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
  if (n != 0) conc_tcp_wake(&c->waiter);
}

/* How many bytes format `f` takes from the unread data, or -1 when it
 * needs more (dry run: nothing consumed). *skip: bytes dropped after them
 * (the newline of "l"). */
static long measure(lua_State *L, int arg, const char *p, size_t n, int eof, size_t *skip) {
  *skip = 0;
  if (lua_type(L, arg) == LUA_TNUMBER) {
    lua_Integer k = lua_tointeger(L, arg);
    if (k == 0 && n > 0) return 0; /* "": more is there (file:read(0)) */
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
  tcp_conn_t *c = conc_tcp_check_handle(L, 1, CONN_T, &closed);
  size_t pos, skips[16];
  long lens[16];
  if (closed) return conc_fail(L, CC_ECLOSED);
  nf = lua_gettop(L) - 1;
  if (c->err && c->off == c->len) return conc_tcp_fail(L, NULL, c->err);
  /* Dry run over every format; consume only when all can be answered. */
  pos = c->off;
  for (int i = 0; i < nf; i++) {
    lens[i] = measure(L, 2 + i, c->buf + pos, c->len - pos, c->eof || c->err, &skips[i]);
    if (lens[i] == -1) {
      if (!c->reading) {
        int rc = uv_read_start((uv_stream_t *)&c->h, on_alloc, on_read);
        if (rc) return conc_tcp_fail(L, NULL, rc);
        c->reading = 1;
      }
      conc_tcp_wait_here(L, &c->waiter, "conn:read: another task is reading this connection");
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
      if (i == 0) return conc_fail(L, CC_ECLOSED);
      lua_pushnil(L);
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
  tcp_ud_t *u = luaL_checkudata(L, 1, CONN_T);
  if (u->p) ((tcp_conn_t *)u->p)->waiter = NULL;
  return 0;
}

static int io_timeout(lua_State *L) {
  conn_forget(L);
  return conc_fail(L, CC_ETIMEOUT);
}

static int c_read(lua_State *L) {
  int closed, n = lua_gettop(L);
  tcp_conn_t *c = conc_tcp_check_handle(L, 1, CONN_T, &closed);
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
  return conc_io(L, read_step, io_timeout, conn_forget, c ? conc_tcp_deadline_of(c->timeout) : CC_NOW);
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
  conc_tcp_wake(&r->waiter);
}

/* Stack: self, strings..., the request (light userdata) on top. */
static int write_step(lua_State *L) {
  write_req_t *r = lua_touserdata(L, -1);
  if (!r->done) {
    conc_tcp_wait_here(L, &r->waiter, "conn:write: another task waits for this write");
    return -1;
  }
  lua_pop(L, 1);
  if (r->status < 0) {
    int st = r->status;
    free(r);
    return conc_tcp_fail(L, NULL, st);
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
  return conc_fail(L, CC_ETIMEOUT);
}

static int c_write(lua_State *L) {
  int closed, n = lua_gettop(L), rc;
  tcp_conn_t *c = conc_tcp_check_handle(L, 1, CONN_T, &closed);
  size_t total = 0, at = 0;
  write_req_t *r;
  uv_buf_t b;
  for (int i = 2; i <= n; i++) {
    size_t len;
    luaL_checklstring(L, i, &len);
    total += len;
  }
  if (closed) return conc_fail(L, CC_ECLOSED);
  if (c->err) return conc_tcp_fail(L, NULL, c->err);
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
    return conc_tcp_fail(L, NULL, rc);
  }
  lua_pushlightuserdata(L, r);
  return conc_io(L, write_step, write_timeout, write_abandon, conc_tcp_deadline_of(c->timeout));
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
  tcp_conn_t *c = conc_tcp_check_handle(L, 1, CONN_T, &closed);
  struct sockaddr_storage a;
  if (closed) return conc_fail(L, CC_ECLOSED);
  len = sizeof a;
  rc = peer ? uv_tcp_getpeername(&c->h, (struct sockaddr *)&a, &len)
            : uv_tcp_getsockname(&c->h, (struct sockaddr *)&a, &len);
  if (rc) return conc_tcp_fail(L, NULL, rc);
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
  tcp_ud_t *u = luaL_checkudata(L, 1, CONN_T);
  double t = luaL_optnumber(L, 2, -1);
  conc_tcp_check_handle(L, 1, CONN_T, &closed);
  luaL_argcheck(L, t == t, 2, "timeout must be a number");
  if (u->p) ((tcp_conn_t *)u->p)->timeout = t < 0 ? -1 : t;
  lua_settop(L, 1);
  return 1;
}

static int c_tostring(lua_State *L) {
  tcp_ud_t *u = luaL_checkudata(L, 1, CONN_T);
  lua_pushfstring(L, "conc.tcp.conn (%s)", u->p ? "open" : "closed");
  return 1;
}

static const luaL_Reg conn_methods[] = {
    {"read", c_read},         {"write", c_write},       {"close", conn_gc},
    {"peername", c_peername}, {"sockname", c_sockname}, {"settimeout", c_settimeout},
    {NULL, NULL}};

void conc_tcp_open_conn(lua_State *L) {
  if (luaL_newmetatable(L, CONN_T)) {
    lua_newtable(L);
    luaL_setfuncs(L, conn_methods, 0);
    conc_methods_strict(L, -1, CONN_T);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, conn_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, conn_gc);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, c_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
}
