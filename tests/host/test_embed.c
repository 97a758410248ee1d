/*
 * test_embed.c - the C API of conclua.h from a host's point of view: bad
 * input gets an error code (never a crash), and queues, events and locks
 * work between the host's threads and script threads.
 *
 * Checks run on the main thread only; helper pthreads record what they saw
 * and the main thread checks it after the join. Exit code 0 when all pass.
 */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "conclua.h"

static int failures;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                              \
    }                                                                          \
  } while (0)

#define CHECK_RC(expr, want)                                                   \
  do {                                                                         \
    int rc_ = (int)(expr);                                                     \
    if (rc_ != (want)) {                                                       \
      fprintf(stderr, "%s:%d: %s returned %d (%s), wanted %s\n", __FILE__,     \
              __LINE__, #expr, rc_, conclua_strerror(rc_), #want);             \
      failures++;                                                              \
    }                                                                          \
  } while (0)

/* Runs a chunk that must succeed; leaves its results on the stack. */
static void run(lua_State *L, const char *chunk) {
  int st = conclua_dostring(L, chunk, "=test");
  if (st != LUA_OK) {
    fprintf(stderr, "chunk failed: %s\n", lua_tostring(L, -1));
    failures++;
    lua_pop(L, 1);
  }
}

static void test_bad_input(lua_State *L) {
  conclua_object *e = conclua_event_new("e"), *q = conclua_queue_new(0, NULL);
  conclua_value v;
  long junk[16] = {0};
  conclua_object *fake = (conclua_object *)(void *)junk;

  CHECK(conclua_version() == CONCLUA_VERSION_NUM);
  CHECK(strcmp(conclua_strerror(CONCLUA_ECLOSED), "closed") == 0);
  CHECK(conclua_strerror(12345) != NULL);
  CHECK_RC(conclua_openlibs(NULL), CONCLUA_EINVAL);
  CHECK_RC(conclua_dofile(NULL, "x.lua"), CONCLUA_EINVAL);
  CHECK_RC(conclua_dostring(NULL, "return 1", NULL), CONCLUA_EINVAL);
  CHECK_RC(conclua_dostring(L, NULL, NULL), CONCLUA_EINVAL);
  conclua_interrupt_reset(NULL);

  /* Objects: NULL, a pointer that is no conc object, a value that is not one. */
  CHECK(conclua_toobject(NULL, 1) == NULL);
  CHECK(conclua_toobject(L, 5) == NULL); /* beyond the top */
  lua_pushinteger(L, 3);
  CHECK(conclua_toobject(L, -1) == NULL);
  lua_pop(L, 1);
  CHECK_RC(conclua_pushobject(NULL, q), CONCLUA_EINVAL);
  CHECK_RC(conclua_pushobject(L, NULL), CONCLUA_EINVAL);
  CHECK_RC(conclua_pushobject(L, fake), CONCLUA_EINVAL);
  CHECK(conclua_object_ref(NULL) == NULL && conclua_object_ref(fake) == NULL);
  conclua_object_unref(NULL);
  conclua_object_unref(fake);
  CHECK(conclua_object_type(NULL) == NULL && conclua_object_name(fake) == NULL);
  CHECK(strcmp(conclua_object_type(q), "queue") == 0);
  CHECK(strcmp(conclua_object_name(e), "e") == 0);

  /* Queue calls on NULL, on a fake, on an event (the wrong type). */
  CHECK_RC(conclua_queue_put_integer(NULL, 1, 0), CONCLUA_EINVAL);
  CHECK_RC(conclua_queue_put_integer(fake, 1, 0), CONCLUA_EINVAL);
  CHECK_RC(conclua_queue_put_integer(e, 1, 0), CONCLUA_EINVAL);
  CHECK_RC(conclua_queue_put_string(e, "x", 1, 0), CONCLUA_EINVAL);
  CHECK_RC(conclua_queue_put_string(q, NULL, 3, 0), CONCLUA_EINVAL);
  CHECK_RC(conclua_queue_put_number(q, 1.0, NAN), CONCLUA_EINVAL);
  CHECK_RC(conclua_queue_put_value(q, NULL, 1, 0), CONCLUA_EINVAL);
  CHECK_RC(conclua_queue_put_value(q, L, 7, 0), CONCLUA_EINVAL);
  CHECK_RC(conclua_queue_get(e, &v, 0), CONCLUA_EINVAL);
  CHECK(v.type == LUA_TNIL);
  CHECK_RC(conclua_queue_get(q, NULL, 0), CONCLUA_EINVAL);
  CHECK_RC(conclua_queue_close(e), CONCLUA_EINVAL);
  CHECK_RC(conclua_queue_size(e), CONCLUA_EINVAL);
  CHECK_RC(conclua_queue_size(q), 0);

  /* Event and lock calls on the wrong type. */
  CHECK_RC(conclua_event_set(q), CONCLUA_EINVAL);
  CHECK_RC(conclua_event_wait(NULL, 0), CONCLUA_EINVAL);
  CHECK_RC(conclua_event_is_set(fake), CONCLUA_EINVAL);
  CHECK_RC(conclua_lock_acquire(e, 0), CONCLUA_EINVAL);
  CHECK_RC(conclua_lock_release(q), CONCLUA_EINVAL);

  /* Values. */
  conclua_value_free(NULL);
  memset(&v, 0, sizeof v);
  conclua_value_free(&v);
  v.type = 77;
  CHECK_RC(conclua_value_push(L, &v), CONCLUA_EINVAL);
  v.type = CONCLUA_TENCODED; /* without its storage */
  CHECK_RC(conclua_value_push(L, &v), CONCLUA_EINVAL);
  CHECK_RC(conclua_value_push(NULL, &v), CONCLUA_EINVAL);
  CHECK(lua_gettop(L) == 0);

  conclua_object_unref(e);
  conclua_object_unref(q);
}

static void test_queue(lua_State *L) {
  conclua_object *q = conclua_queue_new(0, "q"), *small = conclua_queue_new(1, NULL);
  conclua_value v;

  /* Plain values round-trip, a string with a NUL inside included. */
  CHECK_RC(conclua_queue_put_string(q, "a\0b", 3, 0), CONCLUA_OK);
  CHECK_RC(conclua_queue_put_integer(q, -42, 0), CONCLUA_OK);
  CHECK_RC(conclua_queue_put_number(q, 2.5, 0), CONCLUA_OK);
  CHECK_RC(conclua_queue_size(q), 3);
  CHECK_RC(conclua_queue_get(q, &v, 0), CONCLUA_OK);
  CHECK(v.type == LUA_TSTRING && v.len == 3 && memcmp(v.str, "a\0b", 4) == 0);
  conclua_value_free(&v);
  CHECK(v.type == LUA_TNIL && v.str == NULL);
  CHECK_RC(conclua_queue_get(q, &v, 0), CONCLUA_OK);
  CHECK(v.type == LUA_TNUMBER && v.isinteger && v.integer == -42);
  CHECK_RC(conclua_queue_get(q, &v, 0), CONCLUA_OK);
  CHECK(v.type == LUA_TNUMBER && !v.isinteger && v.number == 2.5);
  CHECK_RC(conclua_queue_get(q, &v, 0), CONCLUA_ETIMEOUT);
  CHECK_RC(conclua_queue_get(q, &v, 0.01), CONCLUA_ETIMEOUT);
  CHECK(v.type == LUA_TNIL);

  /* An encoded value from the host's state, and one that cannot be copied. */
  run(L, "return {n = 7, list = {1, 2, 3}}, coroutine.create(print)");
  CHECK_RC(conclua_queue_put_value(q, L, -2, 0), CONCLUA_OK);
  CHECK_RC(conclua_queue_put_value(q, L, -1, 0), CONCLUA_ELUA);
  CHECK(lua_type(L, -1) == LUA_TSTRING); /* the message */
  lua_settop(L, 0);
  lua_pushnil(L);
  CHECK_RC(conclua_queue_put_value(q, L, 1, 0), CONCLUA_EINVAL);
  lua_settop(L, 0);
  CHECK_RC(conclua_queue_get(q, &v, 0), CONCLUA_OK);
  CHECK(v.type == CONCLUA_TENCODED && v.len > 0 && v.str != NULL);
  CHECK_RC(conclua_value_push(L, &v), CONCLUA_OK);
  conclua_value_free(&v);
  CHECK(lua_istable(L, -1));
  lua_getfield(L, -1, "n");
  CHECK(lua_tointeger(L, -1) == 7);
  lua_settop(L, 0);

  /* Scripts see the same queue: a conc thread doubles what the host puts. */
  conclua_pushobject(L, q);
  lua_setglobal(L, "hq");
  CHECK_RC(conclua_queue_put_integer(q, 21, 0), CONCLUA_OK);
  run(L, "local h = hq\n"
         "conc.thread(function(x) h:put(x * 2) end, h:get()):join()");
  CHECK_RC(conclua_queue_get(q, &v, 0), CONCLUA_OK);
  CHECK(v.type == LUA_TNUMBER && v.integer == 42);
  run(L, "return hq");
  {
    conclua_object *same = conclua_toobject(L, -1);
    CHECK(same == q);
    conclua_object_unref(same);
    lua_settop(L, 0);
  }

  /* Bounded: full with timeout 0 times out. Closed: puts fail, gets drain. */
  CHECK_RC(conclua_queue_put_integer(small, 1, 0), CONCLUA_OK);
  CHECK_RC(conclua_queue_put_integer(small, 2, 0), CONCLUA_ETIMEOUT);
  CHECK_RC(conclua_queue_put_integer(small, 2, 0.01), CONCLUA_ETIMEOUT);
  CHECK_RC(conclua_queue_close(small), CONCLUA_OK);
  CHECK_RC(conclua_queue_close(small), CONCLUA_OK);
  CHECK_RC(conclua_queue_put_string(small, "x", 1, CONCLUA_FOREVER), CONCLUA_ECLOSED);
  CHECK_RC(conclua_queue_get(small, &v, CONCLUA_FOREVER), CONCLUA_OK);
  CHECK(v.integer == 1);
  CHECK_RC(conclua_queue_get(small, &v, CONCLUA_FOREVER), CONCLUA_ECLOSED);

  conclua_object_unref(q);
  conclua_object_unref(small);
  lua_pushnil(L);
  lua_setglobal(L, "hq");
}

typedef struct lock_try {
  conclua_object *l;
  int rc;
} lock_try;

static void *try_lock(void *arg) {
  lock_try *t = arg;
  t->rc = conclua_lock_acquire(t->l, 0);
  if (t->rc == CONCLUA_OK) conclua_lock_release(t->l);
  return NULL;
}

static void test_event_lock(lua_State *L) {
  conclua_object *e = conclua_event_new(NULL), *l = conclua_lock_new("l", 0),
                 *r = conclua_lock_new("r", 1);
  lock_try t = {l, 0};
  pthread_t tid;

  CHECK_RC(conclua_event_is_set(e), 0);
  CHECK_RC(conclua_event_wait(e, 0.01), CONCLUA_ETIMEOUT);
  conclua_pushobject(L, e);
  lua_setglobal(L, "he");
  run(L, "local e = he; conc.thread(function() e:set() end):join()");
  CHECK_RC(conclua_event_wait(e, CONCLUA_FOREVER), CONCLUA_OK);
  CHECK_RC(conclua_event_is_set(e), 1);
  CHECK_RC(conclua_event_clear(e), CONCLUA_OK);
  CHECK_RC(conclua_event_is_set(e), 0);
  CHECK_RC(conclua_event_set(e), CONCLUA_OK);
  CHECK_RC(conclua_event_wait(e, 0), CONCLUA_OK);

  CHECK_RC(conclua_lock_release(l), CONCLUA_ENOTOWNER);
  CHECK_RC(conclua_lock_acquire(l, CONCLUA_FOREVER), CONCLUA_OK);
  CHECK_RC(conclua_lock_acquire(l, CONCLUA_FOREVER), CONCLUA_EDEADLOCK);
  CHECK_RC(conclua_lock_acquire(l, 0), CONCLUA_ETIMEOUT);
  pthread_create(&tid, NULL, try_lock, &t);
  pthread_join(tid, NULL);
  CHECK_RC(t.rc, CONCLUA_ETIMEOUT); /* another thread: held */
  /* A script thread sees the host's hold too. */
  conclua_pushobject(L, l);
  lua_setglobal(L, "hl");
  run(L, "local l = hl\n"
         "local ok, got = conc.thread(function() return l:acquire(0) end):join()\n"
         "held = got");
  lua_getglobal(L, "held");
  CHECK(lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1));
  lua_settop(L, 0);
  CHECK_RC(conclua_lock_release(l), CONCLUA_OK);
  CHECK_RC(conclua_lock_release(l), CONCLUA_ENOTOWNER);
  pthread_create(&tid, NULL, try_lock, &t);
  pthread_join(tid, NULL);
  CHECK_RC(t.rc, CONCLUA_OK);

  CHECK_RC(conclua_lock_acquire(r, CONCLUA_FOREVER), CONCLUA_OK);
  CHECK_RC(conclua_lock_acquire(r, CONCLUA_FOREVER), CONCLUA_OK);
  CHECK_RC(conclua_lock_release(r), CONCLUA_OK);
  CHECK_RC(conclua_lock_release(r), CONCLUA_OK);
  CHECK_RC(conclua_lock_release(r), CONCLUA_ENOTOWNER);

  lua_pushnil(L);
  lua_setglobal(L, "he");
  lua_pushnil(L);
  lua_setglobal(L, "hl");
  conclua_object_unref(e);
  conclua_object_unref(l);
  conclua_object_unref(r);
}

typedef struct putter {
  conclua_object *q;
  int rc;
} putter;

static void *put_later(void *arg) {
  putter *p = arg;
  p->rc = conclua_queue_put_integer(p->q, 21, CONCLUA_FOREVER);
  return NULL;
}

static void test_queue_from_thread(lua_State *L) {
  conclua_object *q = conclua_queue_new(0, NULL);
  putter p = {q, -100};
  pthread_t tid;
  conclua_pushobject(L, q);
  lua_setglobal(L, "tq");
  pthread_create(&tid, NULL, put_later, &p);
  run(L, "local q = tq; return conc.thread(function() return q:get() end):join()");
  pthread_join(tid, NULL);
  CHECK_RC(p.rc, CONCLUA_OK);
  CHECK(lua_toboolean(L, -2) && lua_tointeger(L, -1) == 21);
  lua_settop(L, 0);
  lua_pushnil(L);
  lua_setglobal(L, "tq");
  conclua_object_unref(q);
}

/* Ctrl-C from C: a handler calls conclua_interrupt; the next wait of the
 * interruptible thread ends with CONCLUA_EINTR, once. */
static lua_State *sig_L;
static void on_sigint(int sig) {
  (void)sig;
  conclua_interrupt(sig_L);
}

static void test_interrupt(lua_State *L) {
  conclua_object *e = conclua_event_new(NULL);
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old);
  sig_L = L;
  conclua_set_interruptible(1);
  raise(SIGINT);
  CHECK_RC(conclua_event_wait(e, 30.0), CONCLUA_EINTR);
  CHECK_RC(conclua_event_wait(e, 0.01), CONCLUA_ETIMEOUT); /* consumed */
  run(L, "interrupted_not = true"); /* no pending hook either */
  conclua_set_interruptible(0);
  sigaction(SIGINT, &old, NULL);
  conclua_object_unref(e);
}

int main(void) {
  lua_State *L = luaL_newstate();
  int st;
  if (!L) return 2;
  lua_pushcfunction(L, conclua_openlibs);
  st = lua_pcall(L, 0, 0, 0);
  if (st != LUA_OK) {
    fprintf(stderr, "cannot open conc: %s\n", lua_tostring(L, -1));
    return 2;
  }
  test_bad_input(L);
  test_queue(L);
  test_queue_from_thread(L);
  test_event_lock(L);
  if (!getenv("CONCLUA_TSAN")) test_interrupt(L);
  conclua_wait_threads();
  lua_close(L);
  if (failures) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("ok\n");
  return 0;
}
