/*
 * codec_bench.c - encode + decode round trips of typical items, in ns.
 *
 * Not part of the build:
 *   cc -O2 -Ilib/lua -Ilib/core -Ilib/include $(pkg-config --cflags lua5.4) \
 *     bench/codec_bench.c build/libconclua.a $(pkg-config --libs lua5.4) \
 *     -luv -lpthread -lm -ldl -o /tmp/codec_bench && /tmp/codec_bench
 *
 * "reused" encodes into one malloc buffer kept across items; "arena" makes
 * a fresh arena block per item and frees it after decoding, as a queue's
 * put and get do.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>

#include "arena.h"
#include "codec.h"
#include "conclua.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct job {
  const char *name;
  const char *chunk; /* returns the item */
  long iterations;
} job_t;

/* lua_pcall'd: upvalue-free; arguments: the job, the mode. */
static int run(lua_State *L) {
  const job_t *j = lua_touserdata(L, 1);
  int arena = (int)lua_tointeger(L, 2);
  conc_wbuf_t b;
  double t0, t1;
  long i;
  if (luaL_dostring(L, j->chunk) != LUA_OK) return lua_error(L);
  conc_wbuf_init(&b, 0);
  t0 = now();
  for (i = 0; i < j->iterations; i++) {
    if (arena) {
      void *data;
      size_t len;
      conc_wbuf_init(&b, 1);
      conc_encode(L, 3, 1, &b, "item");
      data = conc_wbuf_take(&b, &len);
      conc_decode(L, data, len);
      conc_codec_release(data, len);
      cc_free(data);
    } else {
      conc_encode(L, 3, 1, &b, "item");
      conc_decode(L, b.data, b.len);
    }
    lua_settop(L, 3);
  }
  t1 = now();
  if (!arena) conc_wbuf_free(&b);
  printf("%-34s %-6s %10.1f ns per round trip\n", j->name, arena ? "arena" : "reused",
         (t1 - t0) * 1e9 / (double)j->iterations);
  return 0;
}

int main(void) {
  static const job_t jobs[] = {
      {"small integer (42)", "return 42", 5000000},
      {"float (1.5)", "return 1.5", 5000000},
      {"short string ('hello world')", "return 'hello world'", 5000000},
      {"flat table {x=1,y=2,z=3}", "return {x = 1, y = 2, z = 3}", 1000000},
      {"array {1..10}", "return {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}", 1000000},
      {"nested {a={b={c=1}}, l={1,2}}", "return {a = {b = {c = 1}}, l = {1, 2}}", 500000},
      {"function with 2 upvalues", "local k, s = 2, string return function(x) return s.rep(x, k) end",
       100000},
      {"1 MiB string", "return ('x'):rep(1 << 20)", 2000},
  };
  lua_State *L = conclua_newstate();
  size_t i;
  if (!L) return 1;
  for (i = 0; i < sizeof jobs / sizeof jobs[0]; i++) {
    int mode;
    for (mode = 0; mode < 2; mode++) {
      lua_settop(L, 0);
      lua_pushcfunction(L, run);
      lua_pushlightuserdata(L, (void *)&jobs[i]);
      lua_pushinteger(L, mode);
      if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
        fprintf(stderr, "%s: %s\n", jobs[i].name, lua_tostring(L, -1));
        return 1;
      }
    }
  }
  lua_close(L);
  return 0;
}
