/*
 * ltcp.h - what the two halves of conc.tcp share: ltcp.c (servers,
 * connect, name resolution, the module) and ltcp_conn.c (a connection's
 * read, write and the rest of its methods).
 *
 * In a task every call suspends the task; in a plain thread it runs the
 * thread's loop until the call completes (conc_io, ltask.h). A Server or
 * Conn belongs to the thread whose loop it is registered with. Each handle
 * is malloc'd with the libuv handle first and freed by its close callback;
 * the userdata only points at it. An operation in progress keeps a pointer
 * to whoever waits (conc_io_waiter) and forgets it when abandoned (timeout,
 * cancel). Environmental failures return nil, message, CODE (API.md);
 * misuse raises.
 */
#ifndef LTCP_H
#define LTCP_H

#include "ltask.h"

#define SRV_T "conc.tcp.server"
#define CONN_T "conc.tcp.conn"

typedef struct tcp_gai tcp_gai_t;

typedef struct tcp_srv {
  uv_tcp_t h;
  conc_loop_t *loop;
  int port, closed, pending, err;
  int phase, status; /* listen: 0 resolving, 2 done (status: 0 or an error) */
  int backlog;
  void *waiter;
  tcp_gai_t *gai;
} tcp_srv_t;

typedef struct tcp_conn {
  uv_tcp_t h;
  conc_loop_t *loop;
  char *buf;
  size_t off, len, cap; /* unread bytes are buf[off, len) */
  int eof, err, reading, closed;
  int phase, status; /* connect: 0 resolving, 1 connecting, 2 done */
  double timeout;    /* read/write timeout, < 0 none */
  void *waiter;
  tcp_gai_t *gai;
  uv_connect_t creq;
} tcp_conn_t;

typedef struct tcp_ud {
  void *p; /* tcp_srv_t or tcp_conn_t, NULL once closed */
} tcp_ud_t;

/* nil, "<what>: <libuv's message>" (or the message alone), libuv's error
 * name as the code ("ECONNREFUSED", "EAI_NONAME", ...). */
int conc_tcp_fail(lua_State *L, const char *what, int uverr);
/* The waiter in *waiter, if any, goes on (from a libuv callback). */
void conc_tcp_wake(void **waiter);
/* From a step that must wait: the caller becomes *waiter. Another task
 * waiting there already is an error, `busy` (both would wait on one slot,
 * and one would never wake). */
void conc_tcp_wait_here(lua_State *L, void **waiter, const char *busy);
cc_deadline_t conc_tcp_deadline_of(double s);
/* The server or connection at idx, checked to be this thread's; NULL (and
 * *closed set) once closed. */
void *conc_tcp_check_handle(lua_State *L, int idx, const char *tname, int *closed);
tcp_ud_t *conc_tcp_push_ud(lua_State *L, void *p, const char *tname);
/* A new connection handle on lp's loop (raises when out of memory). */
tcp_conn_t *conc_tcp_new_conn(lua_State *L, conc_loop_t *lp);
void conc_tcp_conn_close(tcp_conn_t *c);
/* Forgets a name lookup in progress (*slot, if any): its result is dropped. */
void conc_tcp_cancel_resolve(tcp_gai_t **slot);
/* Registers the Conn metatable (ltcp_conn.c). */
void conc_tcp_open_conn(lua_State *L);

#endif
