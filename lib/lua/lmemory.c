/*
 * lmemory.c - what the Lua collector must know about the shared arena.
 *
 * A conc userdata is a few bytes of Lua heap, but the object it holds (a
 * queue and its items, a shared table, a pipe) may keep megabytes of arena
 * memory alive. The collector only sees the Lua heap, so a loop that makes
 * and drops such objects would fill the arena long before Lua felt any need
 * to collect. Three rules, one place (every binding calls these):
 *
 *  - Debt: every arena byte a thread allocates counts as if its Lua state
 *    had allocated it (cc_arena_take_debt, paid with LUA_GCSTEP), so the
 *    collector runs at the pace this thread fills the arena and finalizes
 *    the objects it dropped, which gives their memory back.
 *  - Pressure: objects made by one thread may be dropped by another, which
 *    allocated nothing. When the arena's live bytes pass a threshold (twice
 *    what was live after the last collections, at least 64 MiB more, at
 *    most half of what is left) every state runs a full collection when it
 *    next stores or takes a value or makes an object (cc_arena_pressure).
 *    A steady stream through a queue never passes it, so it costs nothing
 *    there.
 *  - Reclaim: before an operation reports "out of shared memory", it runs a
 *    full collection of the calling state (its finalizers drop what the
 *    dead userdata held), tells the others (a new pressure epoch) and tries
 *    once more.
 */
#include <lauxlib.h>
#include <lua.h>

#include "arena.h"
#include "lconc.h"

/* Debt is paid in steps of at least this much: small items (inline in a
 * queue slot) cost nothing, and a step is one call every 64 KiB at most. */
#define DEBT_STEP ((size_t)64 << 10)

/* The pressure epoch this thread's state has collected for (per thread: a
 * state runs on one thread at a time). */
static _Thread_local uint32_t seen_epoch;

static void collect(lua_State *L) {
  if (lua_gc(L, LUA_GCCOLLECT) != -1) cc_arena_pressure_settled();
}

void conc_gc_account(lua_State *L) {
  size_t d = cc_arena_take_debt(DEBT_STEP);
  uint32_t e = cc_arena_pressure();
  if (cc_unlikely(e != seen_epoch)) {
    seen_epoch = e;
    /* A stopped collector stays stopped (collectgarbage("stop")). */
    if (lua_gc(L, LUA_GCISRUNNING)) collect(L);
  } else if (cc_unlikely(d != 0)) {
    size_t kb = d >> 10;
    if (lua_gc(L, LUA_GCISRUNNING)) lua_gc(L, LUA_GCSTEP, kb > INT32_MAX ? INT32_MAX : (int)kb);
  }
}

int conc_reclaim(lua_State *L) {
  cc_arena_take_debt(0); /* a full collection pays every debt */
  cc_arena_pressure_raise();
  seen_epoch = cc_arena_pressure();
  /* -1 inside a finalizer, where the collector cannot run again. */
  if (lua_gc(L, LUA_GCCOLLECT) == -1) return 0;
  cc_arena_pressure_settled();
  return 1;
}

/* conc._arena() -> {mapped=, used=, live=, blocks=}: for tests and dumps. */
static int l_arena(lua_State *L) {
  cc_arena_stats_t st;
  cc_arena_stats(&st);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, (lua_Integer)st.mapped);
  lua_setfield(L, -2, "mapped");
  lua_pushinteger(L, (lua_Integer)st.used);
  lua_setfield(L, -2, "used");
  lua_pushinteger(L, (lua_Integer)st.live);
  lua_setfield(L, -2, "live");
  lua_pushinteger(L, (lua_Integer)st.nblocks);
  lua_setfield(L, -2, "blocks");
  return 1;
}

/* conc._fail_alloc(n): the n-th arena allocation from now fails (0 cancels).
 * Fault injection for tests. */
static int l_fail_alloc(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 0, 1, "must be >= 0");
  cc_arena_fail_in((long)n);
  return 0;
}

static const luaL_Reg funcs[] = {{"_arena", l_arena}, {"_fail_alloc", l_fail_alloc}, {NULL, NULL}};

void conc_open_memory(lua_State *L) {
  luaL_setfuncs(L, funcs, 0);
}
