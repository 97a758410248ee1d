/*
 * queue_host.c - a host whose own C threads feed a script's workers.
 *
 * The host makes two conc queues in C, `jobs` and `results`, and hands them
 * to every lua_State through the state hook (as globals). Its script
 * (argv[1], or the built-in one) starts a pool of workers (conc.pool) whose
 * tasks take numbers from `jobs` and put a table {job=, square=, worker=}
 * on `results` for each. Meanwhile two host pthreads put jobs without any
 * Lua: one puts integers, the other strings. The host's main thread takes
 * every result, decodes the table into its own state to read it, checks the
 * sum of the squares, closes `jobs` (the tasks' loops end), then lets the
 * script collect its tasks' counts and close the pool. Exit code 0 when
 * everything adds up.
 *
 * Build: cc queue_host.c $(pkg-config --cflags --libs conclua) -pthread,
 * or with CMake through find_package(conclua) (CMakeLists.txt here).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>

#include "conclua.h"

#define JOBS_PER_PRODUCER 500

typedef struct host {
  conclua_object *jobs, *results;
} host;

/* State hook: every thread's state gets the two queues as globals. */
static void expose(lua_State *L, void *ud) {
  host *h = ud;
  conclua_pushobject(L, h->jobs);
  lua_setglobal(L, "jobs");
  conclua_pushobject(L, h->results);
  lua_setglobal(L, "results");
}

/* Starts the pool and returns at once; `finish` runs once `jobs` is closed
 * and returns how many jobs the tasks handled. A script given as argv[1]
 * must define the same global `finish`. */
static const char *builtin =
    "local function work(w)\n"
    "  local handled = 0\n"
    "  for job in function() return jobs:get() end do  -- nil once closed\n"
    "    local n = tonumber(job)\n"
    "    results:put({job = n, square = n * n, worker = w})\n"
    "    handled = handled + 1\n"
    "  end\n"
    "  return handled\n"
    "end\n"
    "local pool = conc.pool(4)\n"
    "local tasks = {}\n"
    "for w = 1, 4 do tasks[w] = pool:submit(work, w) end\n"
    "function finish()\n"
    "  local total = 0\n"
    "  for w = 1, 4 do total = total + tasks[w]:get() end\n"
    "  pool:close()\n"
    "  pool:join()\n"
    "  return total\n"
    "end\n";

/* A host thread that puts jobs 1..JOBS_PER_PRODUCER, as integers or as
 * strings. */
typedef struct producer {
  host *h;
  int as_strings;
  int failed;
} producer;

static void *produce(void *arg) {
  producer *p = arg;
  for (int i = 1; i <= JOBS_PER_PRODUCER && !p->failed; i++) {
    int rc;
    if (p->as_strings) {
      char buf[32];
      int len = snprintf(buf, sizeof buf, "%d", i);
      rc = conclua_queue_put_string(p->h->jobs, buf, (size_t)len, CONCLUA_FOREVER);
    } else {
      rc = conclua_queue_put_integer(p->h->jobs, i, CONCLUA_FOREVER);
    }
    if (rc != CONCLUA_OK) {
      fprintf(stderr, "queue_host: put: %s\n", conclua_strerror(rc));
      p->failed = 1;
    }
  }
  return NULL;
}

/* Takes one result and adds its square to *sum: 0, or -1 on error. */
static int collect(lua_State *L, host *h, long long *sum, int *workers_seen) {
  conclua_value v;
  int rc = conclua_queue_get(h->results, &v, 30.0);
  if (rc != CONCLUA_OK) {
    fprintf(stderr, "queue_host: get: %s\n", conclua_strerror(rc));
    return -1;
  }
  if (v.type != CONCLUA_TENCODED || conclua_value_push(L, &v) != CONCLUA_OK ||
      !lua_istable(L, -1)) {
    fprintf(stderr, "queue_host: unexpected result\n");
    conclua_value_free(&v);
    return -1;
  }
  lua_getfield(L, -1, "square");
  lua_getfield(L, -2, "worker");
  *sum += lua_tointeger(L, -2);
  *workers_seen |= 1 << (lua_tointeger(L, -1) & 31);
  lua_pop(L, 3);
  conclua_value_free(&v);
  return 0;
}

int main(int argc, char **argv) {
  host h;
  producer prods[2];
  pthread_t tids[2];
  lua_State *L;
  long long sum = 0, expected = 0;
  int st, workers_seen = 0, ok = 1;

  if (conclua_version() / 100 != CONCLUA_VERSION_NUM / 100) {
    fprintf(stderr, "queue_host: built for conclua %s, linked with another\n",
            CONCLUA_VERSION);
    return 2;
  }
  h.jobs = conclua_queue_new(64, "jobs");
  h.results = conclua_queue_new(0, "results");
  if (!h.jobs || !h.results) return 2;
  conclua_set_state_hook(expose, &h); /* before the first thread */
  L = luaL_newstate();
  if (!L) return 2;
  conclua_openlibs(L);
  expose(L, &h);

  st = argc > 1 ? conclua_dofile(L, argv[1]) : conclua_dostring(L, builtin, "=workers");
  if (st != LUA_OK) {
    fprintf(stderr, "queue_host: %s\n", lua_tostring(L, -1));
    conclua_queue_close(h.jobs); /* lets any started worker end */
    ok = 0;
  }

  for (int i = 0; ok && i < 2; i++) {
    prods[i] = (producer){&h, i, 0};
    if (pthread_create(&tids[i], NULL, produce, &prods[i]) != 0) return 2;
  }
  for (int i = 0; ok && i < 2 * JOBS_PER_PRODUCER; i++) {
    if (collect(L, &h, &sum, &workers_seen) != 0) ok = 0;
  }
  if (st == LUA_OK) {
    for (int i = 0; i < 2; i++) {
      pthread_join(tids[i], NULL);
      if (prods[i].failed) ok = 0;
    }
    conclua_queue_close(h.jobs); /* every task's loop ends */
    if (conclua_dostring(L, "return finish()", "=finish") != LUA_OK) {
      fprintf(stderr, "queue_host: %s\n", lua_tostring(L, -1));
      ok = 0;
    } else {
      printf("jobs handled by the pool: %lld\n", (long long)lua_tointeger(L, -1));
      if (lua_tointeger(L, -1) != 2 * JOBS_PER_PRODUCER) ok = 0;
    }
    lua_settop(L, 0);
  }
  conclua_wait_threads();

  for (long long i = 1; i <= JOBS_PER_PRODUCER; i++) expected += 2 * i * i;
  printf("sum of squares: %lld (expected %lld), results left: %ld\n", sum, expected,
         conclua_queue_size(h.results));
  if (sum != expected || conclua_queue_size(h.results) != 0) ok = 0;
  printf("workers that answered: %d\n", __builtin_popcount((unsigned)workers_seen));

  lua_close(L);
  conclua_object_unref(h.jobs);
  conclua_object_unref(h.results);
  return ok ? 0 : 1;
}
