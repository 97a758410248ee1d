/*
 * codec_dec.c - the decoder, and the walk that takes or drops the object
 * references held by encoded bytes. The format and what the decoder
 * guarantees on bad input are in docs/CODEC.md.
 *
 * Objects are numbered in the order the encoder (codec_enc.c) met them; the
 * first one sits in a fixed stack slot, and the list of objects is created
 * only when a second one is met.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "codec_int.h"
#include "lconc.h"

/* ---- object references ------------------------------------------------ */

/* Calls fn on every valid conc object pointer of an encoding, in order.
 * Needs no lua_State: values are skipped by counting how many are still
 * due (each takes at least one byte, which bounds the count). Stops
 * quietly at the first thing it cannot parse. */
void conc__walk_objects(const void *data, size_t len, void (*fn)(cc_obj_t *)) {
  const unsigned char *p = data, *end;
  uint64_t pending, a, c;
  if (!data || len == 0) return;
  if ((*p & (HDR_VERSION | HDR_RESERVED)) != CONC_CODEC_VERSION || !(*p & HDR_OBJECTS)) return;
  end = p + len;
  p++;
  if (!get_uvarint(&p, end, &pending)) return;
  while (pending > 0 && p < end) {
    unsigned tag = *p++;
    uint64_t left;
    pending--;
    switch (tag) {
    case T_NIL:
    case T_FALSE:
    case T_TRUE:
    case T_GLOBALS:
      break;
    case T_INT:
    case T_REF:
      if (!get_uvarint(&p, end, &a)) return;
      break;
    case T_FLOAT:
      if (!skip(&p, end, sizeof(lua_Number))) return;
      break;
    case T_STR:
      if (!get_uvarint(&p, end, &a) || !skip(&p, end, a)) return;
      break;
    case T_MODULE:
      if (!get_uvarint(&p, end, &a) || !skip(&p, end, a) || p >= end) return;
      pending += *p++ != M_REQUIRE; /* a loader or value follows */
      break;
    case T_DTABLE:
      pending++; /* its contents come later */
      break;
    case T_TABLE:
    case T_TABLE_MT:
      if (!get_uvarint(&p, end, &a) || !get_uvarint(&p, end, &c)) return;
      left = (uint64_t)(end - p);
      if (a > left || c > left) return;
      pending += a + 2 * c + (tag == T_TABLE_MT);
      break;
    case T_LFUNC:
    case T_DLFUNC:
      if (end - p < 4) return;
      a = get_u32(p);
      p += 4;
      if (!skip(&p, end, a) || p >= end) return;
      pending += *p++;
      break;
    case T_CFUNC:
      if (!skip(&p, end, sizeof(lua_CFunction)) || p >= end) return;
      pending += *p++;
      break;
    case T_UPJOIN:
      if (!get_uvarint(&p, end, &a) || !skip(&p, end, 1)) return;
      break;
    case T_OBJ: {
      cc_obj_t *o;
      if ((size_t)(end - p) < sizeof o) return;
      memcpy(&o, p, sizeof o);
      p += sizeof o;
      if (cc_obj_valid(o)) fn(o);
      break;
    }
    default:
      if (tag >= T_FIXINT) break;
      if (tag >= T_FIXSTR && tag <= T_FIXSTR + FIXSTR_MAX) {
        if (!skip(&p, end, tag - T_FIXSTR)) return;
        break;
      }
      return;
    }
    if (pending > (uint64_t)(end - p)) return;
  }
}

void conc_codec_release(const void *data, size_t len) {
  conc__walk_objects(data, len, cc_obj_unref);
}

/* ---- decoder ---------------------------------------------------------- */

#define CTX_UPVAL 1 /* T_GLOBALS and T_MODULE allowed */

typedef struct dec {
  lua_State *L;
  const unsigned char *p, *end;
  int seen;          /* stack slot of the object list, once has_seen */
  int has_seen;
  int first;         /* slot of the first object while !has_seen (0: none) */
  lua_Integer nseen; /* objects numbered so far */
  int untrusted;     /* see conc_decode_untrusted */
  int has_pend;      /* the queue of deferred objects exists (seen[0]) */
  lua_Integer pend_head, pend_tail; /* pend[head+1..tail] are still due */
} dec_t;

static _Noreturn void dec_fail(dec_t *d, const char *why) {
  luaL_error(d->L, "malformed data: %s", why);
  abort(); /* not reached */
}

static unsigned dec_byte(dec_t *d) {
  if (d->p >= d->end) dec_fail(d, "truncated");
  return *d->p++;
}

static uint64_t dec_uvarint(dec_t *d) {
  uint64_t v;
  if (!get_uvarint(&d->p, d->end, &v))
    dec_fail(d, (size_t)(d->end - d->p) < UVARINT_MAX ? "truncated" : "bad varint");
  return v;
}

static const unsigned char *dec_bytes(dec_t *d, uint64_t n) {
  const unsigned char *s = d->p;
  if (!skip(&d->p, d->end, n)) dec_fail(d, "truncated");
  return s;
}

static void dec_value(dec_t *d, int depth, int ctx);

static void dec_enter(dec_t *d, int depth, int slots) {
  if (depth >= CONC_CODEC_MAXDEPTH) dec_fail(d, "nesting too deep");
  if (!lua_checkstack(d->L, slots)) dec_fail(d, "nesting too deep");
}

/* Creates the object list (objects 1..nseen, and at index 0 the queue of
 * deferred objects once there is one). */
static void dec_need_seen(dec_t *d) {
  lua_State *L = d->L;
  if (d->has_seen) return;
  lua_createtable(L, 8, 0);
  if (d->first) {
    lua_pushvalue(L, d->first);
    lua_rawseti(L, -2, 1);
  }
  lua_replace(L, d->seen);
  d->has_seen = 1;
}

/* Numbers the object at idx; mirrors enc_register. */
static void dec_register(dec_t *d, int idx, int depth) {
  lua_State *L = d->L;
  d->nseen++;
  if (!d->has_seen) {
    if (d->nseen == 1 && depth == 0) {
      d->first = idx;
      return;
    }
    dec_need_seen(d);
  }
  lua_pushvalue(L, idx);
  lua_rawseti(L, d->seen, d->nseen);
}

static void dec_push_ref(dec_t *d, uint64_t ref) {
  if (ref < 1 || ref > (uint64_t)d->nseen) dec_fail(d, "bad back-reference");
  if (d->has_seen)
    lua_rawgeti(d->L, d->seen, (lua_Integer)ref);
  else
    lua_pushvalue(d->L, d->first);
}

/* Reads a table's two counts, checked against the bytes left (a value
 * takes at least one byte). */
static void dec_counts(dec_t *d, uint64_t *narr, uint64_t *nhash) {
  uint64_t left;
  *narr = dec_uvarint(d);
  *nhash = dec_uvarint(d);
  left = (uint64_t)(d->end - d->p);
  if (*narr > left || *nhash > (left - *narr) / 2) dec_fail(d, "bad table size");
}

/* The entries and metatable of the table at t. */
static void dec_entries(dec_t *d, int t, int depth, uint64_t narr, uint64_t nhash, int has_mt) {
  lua_State *L = d->L;
  uint64_t i;
  for (i = 1; i <= narr; i++) {
    dec_value(d, depth + 1, 0);
    lua_rawseti(L, t, (lua_Integer)i);
  }
  for (i = 0; i < nhash; i++) {
    dec_value(d, depth + 1, 0);
    if (lua_isnil(L, -1) || (lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1) &&
                             lua_tonumber(L, -1) != lua_tonumber(L, -1)))
      dec_fail(d, "bad table key");
    dec_value(d, depth + 1, 0);
    lua_rawset(L, t);
  }
  if (has_mt) {
    dec_value(d, depth + 1, 0);
    if (!lua_istable(L, -1)) dec_fail(d, "bad metatable");
    if (d->untrusted) {
      lua_pushliteral(L, "__gc");
      if (lua_rawget(L, -2) != LUA_TNIL) dec_fail(d, "metatable with __gc refused");
      lua_pop(L, 1);
    }
    lua_setmetatable(L, t);
  }
}

static void dec_table(dec_t *d, int depth, int has_mt) {
  lua_State *L = d->L;
  uint64_t narr, nhash;
  int t;
  dec_enter(d, depth, 6);
  dec_counts(d, &narr, &nhash);
  lua_createtable(L, narr > INT_MAX ? INT_MAX : (int)narr, nhash > INT_MAX ? INT_MAX : (int)nhash);
  t = lua_gettop(L);
  dec_register(d, t, depth);
  dec_entries(d, t, depth, narr, nhash, has_mt);
}

/* Queues the object on top (a table or Lua function whose contents come
 * after the current top-level value); leaves it pushed. */
static void dec_defer(dec_t *d) {
  lua_State *L = d->L;
  if (!lua_checkstack(L, 2)) dec_fail(d, "nesting too deep");
  dec_need_seen(d);
  if (!d->has_pend) {
    lua_createtable(L, 16, 0);
    lua_rawseti(L, d->seen, 0);
    d->has_pend = 1;
  }
  lua_rawgeti(L, d->seen, 0);
  lua_pushvalue(L, -2);
  lua_rawseti(L, -2, ++d->pend_tail);
  lua_pop(L, 1);
}

typedef struct chunk {
  const char *p;
  size_t n;
} chunk_t;

static const char *chunk_reader(lua_State *L, void *ud, size_t *size) {
  chunk_t *c = ud;
  (void)L;
  *size = c->n;
  c->n = 0;
  return *size ? c->p : NULL;
}

/* Upvalue i of the Lua function at f shares upvalue n of object `ref`. */
static void dec_join(dec_t *d, int f, int i) {
  lua_State *L = d->L;
  uint64_t ref = dec_uvarint(d);
  unsigned n = dec_byte(d);
  int g;
  dec_push_ref(d, ref);
  g = lua_gettop(L);
  if (lua_type(L, g) != LUA_TFUNCTION || lua_iscfunction(L, g) || n < 1 ||
      n > (unsigned)conc__fn_nups(L, g))
    dec_fail(d, "bad upvalue join");
  lua_upvaluejoin(L, f, i, g, (int)n);
  lua_pop(L, 1);
}

/* The nup upvalue entries of the Lua function at f. */
static void dec_lupvalues(dec_t *d, int f, int depth, int nup) {
  lua_State *L = d->L;
  int i;
  for (i = 1; i <= nup; i++) {
    if (d->p < d->end && *d->p == T_UPJOIN) {
      d->p++;
      dec_join(d, f, i);
      continue;
    }
    dec_value(d, depth + 1, CTX_UPVAL);
    if (!lua_setupvalue(L, f, i)) dec_fail(d, "bad upvalue");
  }
}

/* A Lua function; with `later` (T_DLFUNC) its upvalues come after the
 * current top-level value. */
static void dec_lfunction(dec_t *d, int depth, int later) {
  lua_State *L = d->L;
  const unsigned char *code;
  chunk_t c;
  uint32_t len;
  int f, nup, want;
  dec_enter(d, later ? 0 : depth, 6); /* deferred: no recursion here */
  len = get_u32(dec_bytes(d, 4));
  code = dec_bytes(d, len);
  want = conc__check_bytecode(code, len);
  if (want < 0) dec_fail(d, "bad bytecode");
  c.p = (const char *)code;
  c.n = len;
  if (lua_load(L, chunk_reader, &c, "=(copy)", "b") != LUA_OK)
    luaL_error(L, "malformed data: bad bytecode (%s)", lua_tostring(L, -1));
  f = lua_gettop(L);
  nup = (int)dec_byte(d);
  if (nup != want || conc__fn_nups(L, f) != nup) dec_fail(d, "bad upvalue count");
  dec_register(d, f, depth);
  if (later)
    dec_defer(d);
  else
    dec_lupvalues(d, f, depth, nup);
}

static void dec_cfunction(dec_t *d, int depth) {
  lua_State *L = d->L;
  lua_CFunction fn;
  int i, nup;
  memcpy(&fn, dec_bytes(d, sizeof fn), sizeof fn);
  nup = (int)dec_byte(d);
  if (!fn) dec_fail(d, "null C function");
  if (nup == 0) {
    lua_pushcfunction(L, fn);
    return;
  }
  dec_enter(d, depth, nup + 4);
  for (i = 0; i < nup; i++) dec_value(d, depth + 1, CTX_UPVAL);
  lua_pushcclosure(L, fn, nup);
  dec_register(d, lua_gettop(L), depth);
}

/* require(name), name on top (replaced by the module). A failure says what
 * a copied function needed and how to provide it. */
static void dec_require(dec_t *d, int how) {
  lua_State *L = d->L;
  int nm = lua_gettop(L);
  if (lua_getglobal(L, "require") != LUA_TFUNCTION)
    luaL_error(L, "cannot bind module '%s' for a copied function: no 'require' function",
               lua_tostring(L, nm));
  lua_pushvalue(L, nm);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    if (how == M_PRELOAD)
      luaL_error(L, "cannot bind module '%s' for a copied function: its package.preload "
                 "loader, copied from the sender, failed: %s",
                 lua_tostring(L, nm), luaL_tolstring(L, -1, NULL));
    luaL_error(L, "cannot bind module '%s' for a copied function: %s\n(the sender found it on "
               "its package.path/cpath; a new thread or process starts with its creator's "
               "paths, but this state's package.path and package.cpath do not find it: "
               "require it here first, or give this state the sender's paths)",
               lua_tostring(L, nm), luaL_tolstring(L, -1, NULL));
  }
  lua_replace(L, nm);
}

/* A module upvalue: package.loaded[name] of the destination; when it is
 * not loaded, the sender's loader (set as package.preload[name], then
 * required), its value (set as package.loaded[name]), or require(name). */
static void dec_module(dec_t *d, int depth) {
  lua_State *L = d->L;
  uint64_t n = dec_uvarint(d);
  const char *name = (const char *)dec_bytes(d, n);
  unsigned how = dec_byte(d);
  int nm, pl = 0;
  if (how > M_VALUE) dec_fail(d, "bad module entry");
  lua_pushlstring(L, name, (size_t)n);
  nm = lua_gettop(L);
  if (how != M_REQUIRE) { /* at the upvalue's own level, as the encoder writes it */
    dec_value(d, depth, 0);
    pl = lua_gettop(L);
    if (how == M_PRELOAD && lua_type(L, pl) != LUA_TFUNCTION) dec_fail(d, "bad module loader");
  }
  if (lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE) == LUA_TTABLE) {
    lua_pushvalue(L, nm);
    if (lua_rawget(L, -2) != LUA_TNIL) {
      lua_replace(L, nm);
      lua_settop(L, nm);
      return;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  if (how == M_VALUE) {
    if (!d->untrusted) { /* later copies of functions using it find it loaded */
      luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
      lua_pushvalue(L, nm);
      lua_pushvalue(L, pl);
      lua_rawset(L, -3);
      lua_pop(L, 1);
    }
    lua_replace(L, nm);
    return;
  }
  if (d->untrusted)
    luaL_error(L, "malformed data: module '%s' is not loaded", lua_tostring(L, nm));
  if (how == M_PRELOAD) {
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushvalue(L, nm);
    if (lua_rawget(L, -2) == LUA_TNIL) {
      lua_pushvalue(L, nm);
      lua_pushvalue(L, pl);
      lua_rawset(L, -4);
    }
    lua_settop(L, nm);
  }
  dec_require(d, (int)how);
}

static void dec_value(dec_t *d, int depth, int ctx) {
  lua_State *L = d->L;
  unsigned tag = dec_byte(d);
  if (tag >= T_FIXINT) {
    lua_pushinteger(L, (lua_Integer)(tag - T_FIXINT));
    return;
  }
  if (tag >= T_FIXSTR && tag <= T_FIXSTR + FIXSTR_MAX) {
    size_t n = tag - T_FIXSTR;
    lua_pushlstring(L, (const char *)dec_bytes(d, n), n);
    return;
  }
  switch (tag) {
  case T_NIL:
    lua_pushnil(L);
    return;
  case T_FALSE:
  case T_TRUE:
    lua_pushboolean(L, tag == T_TRUE);
    return;
  case T_INT:
    lua_pushinteger(L, unzigzag(dec_uvarint(d)));
    return;
  case T_FLOAT: {
    lua_Number x;
    memcpy(&x, dec_bytes(d, sizeof x), sizeof x);
    lua_pushnumber(L, x);
    return;
  }
  case T_STR: {
    uint64_t n = dec_uvarint(d);
    lua_pushlstring(L, (const char *)dec_bytes(d, n), (size_t)n);
    return;
  }
  case T_TABLE:
  case T_TABLE_MT:
    dec_table(d, depth, tag == T_TABLE_MT);
    return;
  case T_DTABLE: /* no recursion: no depth check */
    if (!lua_checkstack(L, 4)) dec_fail(d, "nesting too deep");
    lua_newtable(L);
    dec_register(d, lua_gettop(L), depth);
    dec_defer(d);
    return;
  case T_REF:
    dec_push_ref(d, dec_uvarint(d));
    return;
  case T_LFUNC:
  case T_DLFUNC:
    dec_lfunction(d, depth, tag == T_DLFUNC);
    return;
  case T_CFUNC:
    dec_cfunction(d, depth);
    return;
  case T_OBJ: {
    cc_obj_t *o;
    memcpy(&o, dec_bytes(d, sizeof o), sizeof o);
    if (!cc_obj_valid(o)) dec_fail(d, "invalid conc object");
    conc_push(L, o);
    return;
  }
  case T_GLOBALS:
    if (!(ctx & CTX_UPVAL)) break;
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    return;
  case T_MODULE:
    if (!(ctx & CTX_UPVAL)) break;
    dec_module(d, depth);
    return;
  default:
    break;
  }
  {
    char why[32];
    snprintf(why, sizeof why, "bad tag 0x%02x", tag);
    dec_fail(d, why);
  }
}

/* Fills the deferred objects in the order they were queued (the
 * encoder's order), each starting again at depth 0; deeper objects met
 * meanwhile join the queue. */
static void dec_drain(dec_t *d) {
  lua_State *L = d->L;
  int pend;
  if (!lua_checkstack(L, 8)) dec_fail(d, "nesting too deep");
  lua_rawgeti(L, d->seen, 0);
  pend = lua_gettop(L);
  while (d->pend_head < d->pend_tail) {
    int v;
    lua_rawgeti(L, pend, ++d->pend_head);
    lua_pushnil(L);
    lua_rawseti(L, pend, d->pend_head);
    v = lua_gettop(L);
    if (lua_istable(L, v)) {
      unsigned tag = dec_byte(d);
      uint64_t narr, nhash;
      if (tag != T_TABLE && tag != T_TABLE_MT) dec_fail(d, "bad deferred table");
      dec_counts(d, &narr, &nhash);
      dec_entries(d, v, 0, narr, nhash, tag == T_TABLE_MT);
    } else {
      dec_lupvalues(d, v, 0, conc__fn_nups(L, v));
    }
    lua_settop(L, v - 1);
  }
  lua_pop(L, 1);
  d->pend_head = d->pend_tail = 0;
}

/* Sets package[field] to the string on top (popped); anything else is
 * skipped. */
static void set_package_field(lua_State *L, const char *field) {
  if (lua_type(L, -1) == LUA_TSTRING) {
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    if (lua_getfield(L, -1, LUA_LOADLIBNAME) == LUA_TTABLE) {
      lua_pushvalue(L, -3);
      lua_setfield(L, -2, field);
    }
    lua_pop(L, 2);
  }
  lua_pop(L, 1);
}

/* job: the first two values are the sender's package.path and cpath.
 * Inlined in each entry point, so that the plain one pays nothing for the
 * flags it does not use (the common item is a few bytes). */
static inline __attribute__((always_inline)) int decode(lua_State *L, const void *data,
                                                        size_t len, int untrusted, int job) {
  dec_t d;
  uint64_t n, i;
  unsigned hdr;
  d.L = L;
  d.untrusted = untrusted;
  if (!data || len == 0) luaL_error(L, "malformed data: truncated");
  d.p = data;
  d.end = d.p + len;
  d.seen = d.has_seen = d.first = 0;
  d.has_pend = 0;
  d.pend_head = d.pend_tail = 0;
  d.nseen = 0;
  hdr = dec_byte(&d);
  if ((hdr & HDR_VERSION) != CONC_CODEC_VERSION)
    luaL_error(L, "malformed data: unsupported format version %d", (int)(hdr & HDR_VERSION));
  if (hdr & HDR_RESERVED) dec_fail(&d, "bad header");
  n = dec_uvarint(&d);
  if (n > (uint64_t)(d.end - d.p)) dec_fail(&d, "bad value count");
  if (n > INT_MAX - 16 || !lua_checkstack(L, (int)n + 16))
    luaL_error(L, "malformed data: too many values (%I)", (lua_Integer)n);
  if (job && n < 2) dec_fail(&d, "bad job");
  lua_pushnil(L); /* slot for the object list */
  d.seen = lua_gettop(L);
  for (i = 0; i < n; i++) {
    dec_value(&d, 0, 0);
    if (d.has_pend) dec_drain(&d);
    if (job && i == 1) { /* the paths, before anything that may require */
      set_package_field(L, "cpath");
      set_package_field(L, "path");
    }
  }
  if (d.p != d.end) dec_fail(&d, "trailing bytes");
  lua_remove(L, d.seen);
  return (int)n - (job ? 2 : 0);
}

int conc_decode(lua_State *L, const void *data, size_t len) {
  cc_arena_handoff(); /* (TSan only: the bytes may come from another process) */
  return decode(L, data, len, 0, 0);
}

int conc_decode_untrusted(lua_State *L, const void *data, size_t len) {
  return decode(L, data, len, 1, 0);
}

int conc_decode_job(lua_State *L, const void *data, size_t len) {
  cc_arena_handoff();
  return decode(L, data, len, 0, 1);
}
