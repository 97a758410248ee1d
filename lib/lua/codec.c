/*
 * codec.c - the value codec: encoder, decoder, the walk that takes or drops
 * the object references held by encoded bytes, and a structural check of
 * Lua 5.4 bytecode. The format and its rules are in docs/CODEC.md.
 *
 * Encoding takes one of two paths. Values made only of nil, booleans,
 * numbers, strings and at most one plain table of those (the usual queue
 * item) are written with no Lua allocation and no protected call, the
 * scalars into one reservation. Anything else is encoded under
 * lua_pcall, so that every error (ours, or a Lua memory error) frees the
 * buffer before it propagates. Conc object references are taken only once
 * the bytes are complete, so a failed encoding never holds any.
 *
 * Identity (cycles, shared sub-tables, a function met twice) needs a Lua
 * table, created only when a second table or function is met: the first
 * one is always a top-level value, so it sits in a fixed stack slot and is
 * compared directly. The decoder mirrors this with its list of objects.
 */
#include "codec.h"

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "arena.h"
#include "cc.h"
#include "lconc.h"

/* ---- format ----------------------------------------------------------- */

#define HDR_VERSION 0x0F  /* mask of the version bits */
#define HDR_OBJECTS 0x10  /* the bytes hold conc object references */
#define HDR_RESERVED 0xE0 /* must be zero */

enum {
  T_NIL = 0x00,
  T_FALSE = 0x01,
  T_TRUE = 0x02,
  T_INT = 0x03,      /* zigzag uvarint */
  T_FLOAT = 0x04,    /* lua_Number, native byte order */
  T_STR = 0x05,      /* uvarint length, bytes */
  T_TABLE = 0x06,    /* uvarint narr, uvarint nhash, narr values, nhash pairs */
  T_TABLE_MT = 0x07, /* as T_TABLE, then the metatable */
  T_REF = 0x08,      /* uvarint: an object met before, numbered from 1 */
  T_LFUNC = 0x09,    /* u32 length, bytecode, byte nup, nup upvalues */
  T_CFUNC = 0x0A,    /* lua_CFunction, byte nup, nup upvalues */
  T_OBJ = 0x0B,      /* cc_obj_t pointer */
  T_GLOBALS = 0x0C,  /* upvalue only: the destination's globals table */
  T_MODULE = 0x0D,   /* upvalue only: uvarint length, name in package.loaded */
  T_UPJOIN = 0x0E,   /* Lua upvalue only: uvarint function ref, byte upvalue */
  T_FIXSTR = 0x20,   /* 0x20..0x3F: string of length tag - 0x20 */
  T_FIXINT = 0x80    /* 0x80..0xFF: integer tag - 0x80 */
};
#define FIXSTR_MAX 31
#define FIXINT_MAX 127
#define UVARINT_MAX 10 /* bytes in the longest 64-bit uvarint */
#define SCALAR_MAX (1 + UVARINT_MAX) /* longest non-string scalar */

static int uvarint_len(uint64_t v) {
  int n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

static unsigned char *put_uvarint(unsigned char *p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = (unsigned char)(v | 0x80);
    v >>= 7;
  }
  *p++ = (unsigned char)v;
  return p;
}

/* Reads a uvarint from [*pp, end). Returns 0 if it is truncated or does not
 * fit in 64 bits. */
static int get_uvarint(const unsigned char **pp, const unsigned char *end, uint64_t *out) {
  const unsigned char *p = *pp;
  uint64_t v = 0;
  int shift;
  for (shift = 0; shift < 64; shift += 7) {
    unsigned c;
    if (p >= end) return 0;
    c = *p++;
    if (shift == 63 && c > 1) return 0;
    v |= (uint64_t)(c & 0x7f) << shift;
    if (!(c & 0x80)) {
      *pp = p;
      *out = v;
      return 1;
    }
  }
  return 0;
}

static int skip(const unsigned char **pp, const unsigned char *end, uint64_t n) {
  if (n > (uint64_t)(end - *pp)) return 0;
  *pp += n;
  return 1;
}

static void put_u32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
}

static uint32_t get_u32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t zigzag(lua_Integer v) {
  return v < 0 ? (~(uint64_t)v << 1) | 1 : (uint64_t)v << 1;
}

static lua_Integer unzigzag(uint64_t z) {
  return (lua_Integer)(z >> 1) ^ -(lua_Integer)(z & 1);
}

#define IS_SCALAR(t) \
  ((t) == LUA_TNIL || (t) == LUA_TBOOLEAN || (t) == LUA_TNUMBER || (t) == LUA_TSTRING)

/* Bytes put_scalar may write for the value at idx, of type t (a scalar). */
static size_t scalar_room(lua_State *L, int idx, int t) {
  size_t n;
  if (t != LUA_TSTRING) return SCALAR_MAX;
  lua_tolstring(L, idx, &n);
  return 1 + UVARINT_MAX + n;
}

static unsigned char *put_scalar(lua_State *L, int idx, int t, unsigned char *p) {
  switch (t) {
  case LUA_TBOOLEAN:
    *p++ = lua_toboolean(L, idx) ? T_TRUE : T_FALSE;
    return p;
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) {
      lua_Integer v = lua_tointeger(L, idx);
      if (v >= 0 && v <= FIXINT_MAX) {
        *p++ = (unsigned char)(T_FIXINT + v);
        return p;
      }
      *p++ = T_INT;
      return put_uvarint(p, zigzag(v));
    } else {
      lua_Number x = lua_tonumber(L, idx);
      *p++ = T_FLOAT;
      memcpy(p, &x, sizeof x);
      return p + sizeof x;
    }
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    if (n <= FIXSTR_MAX) {
      *p++ = (unsigned char)(T_FIXSTR + n);
    } else {
      *p++ = T_STR;
      p = put_uvarint(p, n);
    }
    memcpy(p, s, n);
    return p + n;
  }
  default:
    *p++ = T_NIL;
    return p;
  }
}

/* ---- write buffer ----------------------------------------------------- */

void conc_wbuf_init(conc_wbuf_t *b, int in_arena) {
  b->data = NULL;
  b->len = b->cap = 0;
  b->has_objects = 0;
  b->in_arena = in_arena;
}

void conc_wbuf_free(conc_wbuf_t *b) {
  if (b->data) {
    if (b->in_arena)
      cc_free(b->data);
    else
      free(b->data);
  }
  b->data = NULL;
  b->len = b->cap = 0;
  b->has_objects = 0;
}

void *conc_wbuf_take(conc_wbuf_t *b, size_t *len) {
  void *d = b->data;
  *len = b->len;
  b->data = NULL;
  b->len = b->cap = 0;
  b->has_objects = 0;
  return d;
}

/* Makes room for `need` more bytes: at least double the capacity, or
 * exactly what is needed when that is more (a big string is then copied in
 * once, into a block of its own size). Returns 0, or -1 out of memory. */
static int wbuf_grow(conc_wbuf_t *b, size_t need) {
  size_t want = b->len + need, ncap = b->cap * 2;
  char *p;
  if (want < b->len) return -1;
  if (ncap < want) ncap = want;
  if (b->in_arena) {
    p = cc_alloc(ncap);
    if (!p) return -1;
    if (b->len) memcpy(p, b->data, b->len);
    if (b->data) cc_free(b->data);
    b->cap = cc_alloc_size(p);
  } else {
    p = realloc(b->data, ncap);
    if (!p) return -1;
    b->cap = ncap;
  }
  b->data = p;
  return 0;
}

static inline int wbuf_reserve(conc_wbuf_t *b, size_t need) {
  return cc_likely(b->cap - b->len >= need) ? 0 : wbuf_grow(b, need);
}

/* Appends the scalar at idx (type t). Returns 0, or -1 out of memory. */
static int wbuf_scalar(conc_wbuf_t *b, lua_State *L, int idx, int t) {
  if (wbuf_reserve(b, scalar_room(L, idx, t)) != 0) return -1;
  b->len = (size_t)((char *)put_scalar(L, idx, t, (unsigned char *)b->data + b->len) - b->data);
  return 0;
}

/* A table is written as its tag, two one-byte count placeholders, the
 * values: wbuf_counts() then rewrites the placeholders at pos, moving what
 * follows when the counts need more room. Returns 0, or -1 out of memory. */
static int wbuf_counts(conc_wbuf_t *b, size_t pos, uint64_t narr, uint64_t nhash) {
  size_t k = (size_t)(uvarint_len(narr) + uvarint_len(nhash));
  if (k > 2) {
    if (wbuf_reserve(b, k - 2) != 0) return -1;
    memmove(b->data + pos + k, b->data + pos + 2, b->len - pos - 2);
    b->len += k - 2;
  }
  put_uvarint(put_uvarint((unsigned char *)b->data + pos, narr), nhash);
  return 0;
}

static const char *nomem_message(const conc_wbuf_t *b) {
  return b->in_arena ? cc_strerror(CC_ENOMEM) : "not enough memory";
}

/* ---- encoder: places and errors --------------------------------------- */

/* How a value was reached from its parent. */
enum { F_FIELD, F_KEY, F_UPVAL, F_META };

typedef struct frame {
  int kind;
  int idx;          /* F_FIELD: stack index of the key; F_UPVAL: number */
  const char *name; /* F_UPVAL: name, "" for a C closure's */
} frame_t;

typedef struct enc {
  lua_State *L;
  conc_wbuf_t *b;
  const char *what;
  int argn;          /* number of the top-level value, from 1 */
  int lvl;           /* length of the path to the current value */
  int seen;          /* stack slot of the identity table, once has_seen */
  int has_seen;
  int first;         /* slot of the first object while !has_seen (0: none) */
  lua_Integer nseen; /* objects numbered so far */
  int mods;          /* stack slot of the module-name map, once has_mods */
  int has_mods;
  frame_t path[CONC_CODEC_MAXDEPTH];
} enc_t;

typedef struct msgbuf {
  char s[1024];
  size_t n;
} msgbuf_t;

static void mb_add(msgbuf_t *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mb_add(msgbuf_t *m, const char *fmt, ...) {
  va_list ap;
  int k;
  if (m->n >= sizeof m->s - 1) return;
  va_start(ap, fmt);
  k = vsnprintf(m->s + m->n, sizeof m->s - m->n, fmt, ap);
  va_end(ap);
  if (k < 0) return;
  m->n += (size_t)k;
  if (m->n >= sizeof m->s - 1) { /* truncated: say so */
    m->n = sizeof m->s - 1;
    memcpy(m->s + m->n - 4, "...)", 5);
  }
}

static int is_name(const char *s, size_t n) {
  size_t i;
  if (n == 0 || n > 40) return 0;
  for (i = 0; i < n; i++) {
    char c = s[i];
    int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return 0;
  }
  return 1;
}

/* Appends a key as a path step: `name` (`.name` after another step),
 * `[3]`, `[1.5]`, `[true]`, `["a b"]`, `[<table>]`. */
static void mb_key(msgbuf_t *m, lua_State *L, int idx, int first) {
  switch (lua_type(L, idx)) {
  case LUA_TSTRING: {
    size_t n, i;
    const char *s = lua_tolstring(L, idx, &n);
    if (is_name(s, n)) {
      mb_add(m, "%s%s", first ? "" : ".", s);
      return;
    }
    mb_add(m, "[\"");
    for (i = 0; i < n && i < 32; i++) {
      unsigned char c = (unsigned char)s[i];
      if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '\'')
        mb_add(m, "%c", c);
      else
        mb_add(m, "\\%u", c);
    }
    mb_add(m, "%s\"]", n > 32 ? "..." : "");
    return;
  }
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx))
      mb_add(m, "[" LUA_INTEGER_FMT "]", (LUAI_UACINT)lua_tointeger(L, idx));
    else
      mb_add(m, "[%.14g]", (double)lua_tonumber(L, idx));
    return;
  case LUA_TBOOLEAN:
    mb_add(m, "[%s]", lua_toboolean(L, idx) ? "true" : "false");
    return;
  default:
    mb_add(m, "[<%s>]", luaL_typename(L, idx));
  }
}

/* " (argument 2, field 'a.b[3]', upvalue 'f', key, metatable)" */
static void mb_place(msgbuf_t *m, const enc_t *e) {
  int k, infield = 0;
  mb_add(m, " (%s %d", e->what, e->argn);
  for (k = 0; k < e->lvl; k++) {
    const frame_t *f = &e->path[k];
    if (f->kind == F_FIELD) {
      if (!infield) mb_add(m, ", field '");
      mb_key(m, e->L, f->idx, !infield);
      infield = 1;
      continue;
    }
    if (infield) mb_add(m, "'");
    infield = 0;
    if (f->kind == F_KEY)
      mb_add(m, ", key");
    else if (f->kind == F_META)
      mb_add(m, ", metatable");
    else if (f->name && f->name[0])
      mb_add(m, ", upvalue '%s'", f->name);
    else
      mb_add(m, ", upvalue %d", f->idx);
  }
  if (infield) mb_add(m, "'");
  mb_add(m, ")");
}

/* Raises "<message> (<place>)". Runs inside the protected encoding, whose
 * caller frees the buffer. */
static _Noreturn void enc_fail(enc_t *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static _Noreturn void enc_fail(enc_t *e, const char *fmt, ...) {
  msgbuf_t m;
  va_list ap;
  int k;
  va_start(ap, fmt);
  k = vsnprintf(m.s, 256, fmt, ap);
  va_end(ap);
  m.n = k < 0 ? 0 : (size_t)k > 255 ? 255 : (size_t)k;
  mb_place(&m, e);
  lua_pushlstring(e->L, m.s, m.n);
  lua_error(e->L);
  abort(); /* not reached */
}

static _Noreturn void enc_nomem(enc_t *e) {
  lua_pushstring(e->L, nomem_message(e->b));
  lua_error(e->L);
  abort(); /* not reached */
}

/* ---- encoder: values -------------------------------------------------- */

static unsigned char *enc_room(enc_t *e, size_t n) {
  if (wbuf_reserve(e->b, n) != 0) enc_nomem(e);
  return (unsigned char *)e->b->data + e->b->len;
}

static void enc_end(enc_t *e, unsigned char *p) {
  e->b->len = (size_t)((char *)p - e->b->data);
}

static void enc_byte(enc_t *e, unsigned c) {
  *enc_room(e, 1) = (unsigned char)c;
  e->b->len++;
}

static frame_t *enc_frame(enc_t *e, int kind) {
  frame_t *f = &e->path[e->lvl++];
  f->kind = kind;
  return f;
}

/* Entering a table or function: bounds the depth (and the C and Lua stack
 * it takes). */
static void enc_enter(enc_t *e) {
  if (e->lvl >= CONC_CODEC_MAXDEPTH)
    enc_fail(e, "cannot copy a value nested more than %d levels deep", CONC_CODEC_MAXDEPTH);
  luaL_checkstack(e->L, 8, "nesting too deep");
}

static int fn_nups(lua_State *L, int f) {
  lua_Debug ar;
  lua_pushvalue(L, f);
  lua_getinfo(L, ">u", &ar);
  return ar.nups;
}

static void enc_need_seen(enc_t *e) {
  lua_State *L = e->L;
  if (e->has_seen) return;
  lua_createtable(L, 0, 8);
  if (e->first) {
    lua_pushvalue(L, e->first);
    lua_pushinteger(L, 1);
    lua_rawset(L, -3);
  }
  lua_replace(L, e->seen);
  e->has_seen = 1;
  e->first = 0;
}

/* Numbers the object at idx (a table, a Lua function, or a C closure with
 * upvalues), in the order the decoder will meet it. */
static void enc_register(enc_t *e, int idx) {
  lua_State *L = e->L;
  e->nseen++;
  if (!e->has_seen) {
    if (e->nseen == 1 && e->lvl == 0) { /* a top-level value: a fixed slot */
      e->first = idx;
      return;
    }
    enc_need_seen(e);
  }
  lua_pushvalue(L, idx);
  lua_pushinteger(L, e->nseen);
  lua_rawset(L, e->seen);
}

/* Writes a back-reference and returns 1 if the object at idx was met
 * before. */
static int enc_backref(enc_t *e, int idx) {
  lua_State *L = e->L;
  lua_Integer ref = 0;
  unsigned char *p;
  if (e->has_seen) {
    int t;
    lua_pushvalue(L, idx);
    t = lua_rawget(L, e->seen);
    if (t == LUA_TBOOLEAN)
      enc_fail(e, "cannot copy a C closure that holds itself through its upvalues");
    if (t == LUA_TNUMBER) ref = lua_tointeger(L, -1);
    lua_pop(L, 1);
  } else if (e->first && lua_rawequal(L, idx, e->first)) {
    ref = 1;
  }
  if (!ref) return 0;
  p = enc_room(e, 1 + UVARINT_MAX);
  *p++ = T_REF;
  enc_end(e, put_uvarint(p, (uint64_t)ref));
  return 1;
}

static void enc_value(enc_t *e, int idx);

/* One pass of lua_next: while the keys run 1, 2, 3, ... the values go to
 * the array part; from the first other key on, every pair goes to the hash
 * part (so a sparse table costs what its entries cost, whatever its
 * border). */
static void enc_table(enc_t *e, int t) {
  lua_State *L = e->L;
  lua_Integer narr = 0, nhash = 0;
  size_t pos;
  int mt = 0, inarr = 1;
  if (enc_backref(e, t)) return;
  enc_enter(e);
  enc_register(e, t);
  if (lua_getmetatable(L, t)) mt = lua_gettop(L);
  enc_byte(e, mt ? T_TABLE_MT : T_TABLE);
  pos = e->b->len;
  enc_room(e, 2);
  e->b->len += 2;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    int top = lua_gettop(L);
    if (inarr && lua_isinteger(L, top - 1) && lua_tointeger(L, top - 1) == narr + 1) {
      narr++;
    } else {
      inarr = 0;
      nhash++;
      enc_frame(e, F_KEY);
      enc_value(e, top - 1);
      e->lvl--;
    }
    enc_frame(e, F_FIELD)->idx = top - 1;
    enc_value(e, top);
    e->lvl--;
    lua_pop(L, 1);
  }
  if (wbuf_counts(e->b, pos, (uint64_t)narr, (uint64_t)nhash) != 0) enc_nomem(e);
  if (mt) {
    enc_frame(e, F_META);
    enc_value(e, mt);
    e->lvl--;
    lua_pop(L, 1);
  }
}

/* package.loaded inverted: value -> name, for tables, functions and
 * userdata. Built once per encoding, when the first upvalue needs it. */
static void enc_need_mods(enc_t *e) {
  lua_State *L = e->L;
  int map;
  if (e->has_mods) return;
  lua_newtable(L);
  map = lua_gettop(L);
  if (lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE) == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      int t = lua_type(L, -1);
      if (lua_type(L, -2) == LUA_TSTRING &&
          (t == LUA_TTABLE || t == LUA_TFUNCTION || t == LUA_TUSERDATA)) {
        lua_pushvalue(L, -1);
        lua_pushvalue(L, -3);
        lua_rawset(L, map);
      }
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  lua_replace(L, e->mods);
  e->has_mods = 1;
}

/* Upvalue i (value at v) of the function at f. For a Lua function (fref,
 * its object number, non-zero) an upvalue already met in another copied
 * function is joined to it. The source globals become T_GLOBALS, a value of
 * package.loaded becomes T_MODULE, anything else is copied. */
static void enc_upvalue(enc_t *e, int v, int f, lua_Integer fref, int i) {
  lua_State *L = e->L;
  int t = lua_type(L, v);
  unsigned char *p;
  if (fref) {
    void *id = lua_upvalueid(L, f, i);
    enc_need_seen(e);
    if (lua_rawgetp(L, e->seen, id) == LUA_TNUMBER) {
      lua_Integer packed = lua_tointeger(L, -1);
      lua_pop(L, 1);
      p = enc_room(e, 2 + UVARINT_MAX);
      *p++ = T_UPJOIN;
      p = put_uvarint(p, (uint64_t)(packed >> 8));
      *p++ = (unsigned char)(packed & 0xff);
      enc_end(e, p);
      return;
    }
    lua_pop(L, 1);
    lua_pushinteger(L, fref * 256 + i);
    lua_rawsetp(L, e->seen, id);
  }
  if (t == LUA_TTABLE) {
    int g;
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    g = lua_rawequal(L, v, -1);
    lua_pop(L, 1);
    if (g) {
      enc_byte(e, T_GLOBALS);
      return;
    }
  }
  if (t == LUA_TTABLE || t == LUA_TFUNCTION || t == LUA_TUSERDATA) {
    enc_need_mods(e);
    lua_pushvalue(L, v);
    if (lua_rawget(L, e->mods) == LUA_TSTRING) {
      size_t n;
      const char *name = lua_tolstring(L, -1, &n);
      p = enc_room(e, 1 + UVARINT_MAX + n);
      *p++ = T_MODULE;
      p = put_uvarint(p, n);
      memcpy(p, name, n);
      enc_end(e, p + n);
      lua_pop(L, 1);
      return;
    }
    lua_pop(L, 1);
  }
  enc_value(e, v);
}

static int enc_writer(lua_State *L, const void *p, size_t n, void *ud) {
  conc_wbuf_t *b = ud;
  (void)L;
  if (wbuf_reserve(b, n) != 0) return 1;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

static void enc_lfunction(enc_t *e, int f) {
  lua_State *L = e->L;
  lua_Integer fref;
  size_t pos, size;
  int i, nup, st;
  if (enc_backref(e, f)) return;
  enc_enter(e);
  enc_register(e, f);
  fref = e->nseen;
  enc_byte(e, T_LFUNC);
  pos = e->b->len;
  enc_room(e, 4);
  e->b->len += 4;
  lua_pushvalue(L, f);
  st = lua_dump(L, enc_writer, e->b, 0); /* 0: keep the debug information */
  lua_pop(L, 1);
  if (st != 0) enc_nomem(e);
  size = e->b->len - pos - 4;
  if (size > UINT32_MAX) enc_fail(e, "cannot copy a function of %zu bytes of bytecode", size);
  put_u32((unsigned char *)e->b->data + pos, (uint32_t)size);
  nup = fn_nups(L, f);
  enc_byte(e, (unsigned)nup);
  for (i = 1; i <= nup; i++) {
    const char *name = lua_getupvalue(L, f, i);
    frame_t *fr = enc_frame(e, F_UPVAL);
    fr->name = name;
    fr->idx = i;
    enc_upvalue(e, lua_gettop(L), f, fref, i);
    e->lvl--;
    lua_pop(L, 1);
  }
}

/* A C function goes by address. A C closure with upvalues is numbered after
 * its upvalues (the decoder can only create it then), so it cannot be
 * reached from them: it is marked `false` meanwhile to catch that. */
static void enc_cfunction(enc_t *e, int f) {
  lua_State *L = e->L;
  lua_CFunction fn = lua_tocfunction(L, f);
  int i, nup = fn_nups(L, f);
  unsigned char *p;
  if (nup > 0) {
    if (enc_backref(e, f)) return;
    enc_enter(e);
    enc_need_seen(e);
    lua_pushvalue(L, f);
    lua_pushboolean(L, 0);
    lua_rawset(L, e->seen);
  }
  p = enc_room(e, 2 + sizeof fn);
  *p++ = T_CFUNC;
  memcpy(p, &fn, sizeof fn);
  p += sizeof fn;
  *p++ = (unsigned char)nup;
  enc_end(e, p);
  for (i = 1; i <= nup; i++) {
    frame_t *fr;
    lua_getupvalue(L, f, i);
    fr = enc_frame(e, F_UPVAL);
    fr->name = "";
    fr->idx = i;
    enc_upvalue(e, lua_gettop(L), f, 0, i);
    e->lvl--;
    lua_pop(L, 1);
  }
  if (nup > 0) enc_register(e, f);
}

static void enc_userdata(enc_t *e, int idx) {
  lua_State *L = e->L;
  cc_obj_t *o = conc_toobj(L, idx);
  unsigned char *p;
  if (o) {
    p = enc_room(e, 1 + sizeof o);
    *p++ = T_OBJ;
    memcpy(p, &o, sizeof o);
    enc_end(e, p + sizeof o);
    e->b->data[0] |= HDR_OBJECTS;
    e->b->has_objects = 1;
    return;
  }
  if (luaL_getmetafield(L, idx, "__conctype") != LUA_TNIL)
    enc_fail(e, "cannot copy a closed conc object");
  if (luaL_getmetafield(L, idx, "__name") == LUA_TSTRING)
    enc_fail(e, "cannot copy a userdata of type '%s'", lua_tostring(L, -1));
  enc_fail(e, "cannot copy a userdata");
}

static void enc_value(enc_t *e, int idx) {
  lua_State *L = e->L;
  int t = lua_type(L, idx);
  switch (t) {
  case LUA_TTABLE:
    enc_table(e, idx);
    return;
  case LUA_TFUNCTION:
    if (lua_iscfunction(L, idx))
      enc_cfunction(e, idx);
    else
      enc_lfunction(e, idx);
    return;
  case LUA_TUSERDATA:
    enc_userdata(e, idx);
    return;
  case LUA_TLIGHTUSERDATA:
    enc_fail(e, "cannot copy a light userdata");
  case LUA_TTHREAD:
    enc_fail(e, "cannot copy a coroutine");
  default:
    if (wbuf_scalar(e->b, L, idx, t) != 0) enc_nomem(e);
  }
}

/* lua_pcall'd: arguments are the enc_t and the values. */
static int enc_protected(lua_State *L) {
  enc_t *e = lua_touserdata(L, 1);
  int i, n = lua_gettop(L) - 1;
  unsigned char *p;
  e->L = L;
  lua_pushnil(L);
  e->seen = lua_gettop(L);
  lua_pushnil(L);
  e->mods = lua_gettop(L);
  p = enc_room(e, 1 + UVARINT_MAX);
  *p++ = CONC_CODEC_VERSION;
  enc_end(e, put_uvarint(p, (uint64_t)n));
  for (i = 0; i < n; i++) {
    e->argn = i + 1;
    e->lvl = 0;
    enc_value(e, i + 2);
  }
  return 0;
}

static void walk_objects(const void *data, size_t len, void (*fn)(cc_obj_t *));

enum { FLAT_DONE, FLAT_NO, FLAT_NOMEM };

/* A table without metatable whose keys and values are all scalars, at a
 * top-level slot: the same bytes enc_table would write. FLAT_NO as soon as
 * something else shows up. */
static int flat_table(lua_State *L, int t, conc_wbuf_t *b) {
  lua_Integer narr = 0, nhash = 0;
  size_t pos;
  int inarr = 1;
  if (!lua_checkstack(L, 3)) return FLAT_NO;
  if (lua_getmetatable(L, t)) {
    lua_pop(L, 1);
    return FLAT_NO;
  }
  if (wbuf_reserve(b, 3) != 0) return FLAT_NOMEM;
  b->data[b->len] = T_TABLE;
  pos = b->len + 1;
  b->len += 3;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    int top = lua_gettop(L), kt = lua_type(L, top - 1), vt = lua_type(L, top);
    if (!IS_SCALAR(vt) || !IS_SCALAR(kt)) {
      lua_pop(L, 2);
      return FLAT_NO;
    }
    if (inarr && lua_isinteger(L, top - 1) && lua_tointeger(L, top - 1) == narr + 1) {
      narr++;
    } else {
      inarr = 0;
      nhash++;
      if (wbuf_scalar(b, L, top - 1, kt) != 0) vt = -1;
    }
    if (vt < 0 || wbuf_scalar(b, L, top, vt) != 0) {
      lua_pop(L, 2);
      return FLAT_NOMEM;
    }
    lua_pop(L, 1);
  }
  return wbuf_counts(b, pos, (uint64_t)narr, (uint64_t)nhash) != 0 ? FLAT_NOMEM : FLAT_DONE;
}

/* The path without bookkeeping nor protected call, for values made of
 * scalars and at most one plain table of scalars (the usual queue item):
 * nothing is allocated but b, and nothing can raise but running out of
 * memory for b. */
static int enc_flat(lua_State *L, int first, int n, conc_wbuf_t *b) {
  size_t total = 1 + UVARINT_MAX;
  int i, tables = 0;
  for (i = 0; i < n; i++) {
    int t = lua_type(L, first + i);
    if (IS_SCALAR(t))
      total += scalar_room(L, first + i, t);
    else if (t != LUA_TTABLE || tables++)
      return FLAT_NO;
  }
  if (wbuf_reserve(b, total) != 0) return FLAT_NOMEM;
  b->data[0] = CONC_CODEC_VERSION;
  b->len = (size_t)((char *)put_uvarint((unsigned char *)b->data + 1, (uint64_t)n) - b->data);
  for (i = 0; i < n; i++) {
    int r, t = lua_type(L, first + i);
    if (t != LUA_TTABLE) {
      if (wbuf_scalar(b, L, first + i, t) != 0) return FLAT_NOMEM;
    } else if ((r = flat_table(L, first + i, b)) != FLAT_DONE) {
      return r;
    }
  }
  return FLAT_DONE;
}

void conc_encode(lua_State *L, int first, int n, conc_wbuf_t *b, const char *what) {
  enc_t e;
  int i;
  first = lua_absindex(L, first);
  b->len = 0;
  b->has_objects = 0;
  switch (enc_flat(L, first, n, b)) {
  case FLAT_DONE:
    return;
  case FLAT_NOMEM: {
    const char *msg = nomem_message(b);
    conc_wbuf_free(b);
    luaL_error(L, "%s", msg);
    return;
  }
  default: /* start again on the general path */
    b->len = 0;
  }
  luaL_checkstack(L, n + 8, "too many values to copy");
  e.b = b;
  e.what = what;
  e.argn = e.lvl = 0;
  e.seen = e.has_seen = e.first = 0;
  e.mods = e.has_mods = 0;
  e.nseen = 0;
  lua_pushcfunction(L, enc_protected);
  lua_pushlightuserdata(L, &e);
  for (i = 0; i < n; i++) lua_pushvalue(L, first + i);
  if (lua_pcall(L, n + 1, 0, 0) != LUA_OK) {
    conc_wbuf_free(b);
    lua_error(L);
  }
  if (b->has_objects) walk_objects(b->data, b->len, cc_obj_ref);
}

/* ---- object references ------------------------------------------------ */

/* Calls fn on every valid conc object pointer of an encoding, in order.
 * Needs no lua_State: values are skipped by counting how many are still
 * due (each takes at least one byte, which bounds the count). Stops
 * quietly at the first thing it cannot parse. */
static void walk_objects(const void *data, size_t len, void (*fn)(cc_obj_t *)) {
  const unsigned char *p = data, *end;
  uint64_t pending, a, c;
  if (!data || len == 0) return;
  if ((*p & HDR_VERSION) != CONC_CODEC_VERSION || !(*p & HDR_OBJECTS)) return;
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
    case T_MODULE:
      if (!get_uvarint(&p, end, &a) || !skip(&p, end, a)) return;
      break;
    case T_TABLE:
    case T_TABLE_MT:
      if (!get_uvarint(&p, end, &a) || !get_uvarint(&p, end, &c)) return;
      left = (uint64_t)(end - p);
      if (a > left || c > left) return;
      pending += a + 2 * c + (tag == T_TABLE_MT);
      break;
    case T_LFUNC:
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
  walk_objects(data, len, cc_obj_unref);
}

/* ---- bytecode check ----------------------------------------------------
 * lua_load does not verify binary chunks: a forged length can make it
 * write out of bounds (a long string of size ~SIZE_MAX), allocate
 * gigabytes, recurse without limit, or build a closure with fewer upvalues
 * than its prototype. This walk follows Lua 5.4's dump format and accepts
 * a chunk only if every count fits in the bytes that remain, nesting stays
 * bounded, and the closure and prototype agree on the upvalues. Whether the
 * instructions make sense is not checked (see docs/CODEC.md). */

typedef struct bcr {
  const unsigned char *p, *end;
  int bad;
} bcr_t;

static unsigned bc_byte(bcr_t *r) {
  if (r->p >= r->end) {
    r->bad = 1;
    return 0;
  }
  return *r->p++;
}

/* lundump's loadUnsigned: 7-bit groups, most significant first, the last
 * byte flagged with 0x80. */
static size_t bc_unsigned(bcr_t *r, size_t limit) {
  size_t x = 0;
  unsigned b;
  limit >>= 7;
  do {
    b = bc_byte(r);
    if (r->bad || x >= limit) {
      r->bad = 1;
      return 0;
    }
    x = (x << 7) | (b & 0x7f);
  } while (!(b & 0x80));
  return x;
}

static void bc_skip(bcr_t *r, size_t n) {
  if (r->bad || n > (size_t)(r->end - r->p))
    r->bad = 1;
  else
    r->p += n;
}

/* A count of items taking at least `unit` bytes each. */
static size_t bc_count(bcr_t *r, size_t unit) {
  size_t n = bc_unsigned(r, INT_MAX);
  if (!r->bad && n > (size_t)(r->end - r->p) / unit) r->bad = 1;
  return r->bad ? 0 : n;
}

static void bc_string(bcr_t *r, int nullable) {
  size_t n = bc_unsigned(r, ~(size_t)0);
  if (n == 0) {
    if (!nullable) r->bad = 1;
    return;
  }
  bc_skip(r, n - 1);
}

/* Returns the prototype's number of upvalues. */
static size_t bc_function(bcr_t *r, int depth) {
  size_t i, n, nups;
  if (depth > CONC_CODEC_MAXDEPTH) {
    r->bad = 1;
    return 0;
  }
  bc_string(r, 1);          /* source */
  bc_unsigned(r, INT_MAX);  /* linedefined */
  bc_unsigned(r, INT_MAX);  /* lastlinedefined */
  bc_skip(r, 3);            /* numparams, is_vararg, maxstacksize */
  n = bc_count(r, 4);       /* code */
  bc_skip(r, n * 4);
  n = bc_count(r, 1);       /* constants */
  for (i = 0; i < n && !r->bad; i++) {
    switch (bc_byte(r)) {
    case 0x00: /* nil */
    case 0x01: /* false */
    case 0x11: /* true */
      break;
    case 0x03: /* integer */
      bc_skip(r, sizeof(lua_Integer));
      break;
    case 0x13: /* float */
      bc_skip(r, sizeof(lua_Number));
      break;
    case 0x04: /* short string */
    case 0x14: /* long string */
      bc_string(r, 0);
      break;
    default:
      r->bad = 1;
    }
  }
  nups = bc_count(r, 3); /* upvalues: instack, idx, kind */
  bc_skip(r, nups * 3);
  n = bc_count(r, 1); /* nested prototypes */
  for (i = 0; i < n && !r->bad; i++) bc_function(r, depth + 1);
  n = bc_count(r, 1); /* lineinfo */
  bc_skip(r, n);
  n = bc_count(r, 2); /* abslineinfo: pc, line */
  for (i = 0; i < n && !r->bad; i++) {
    bc_unsigned(r, INT_MAX);
    bc_unsigned(r, INT_MAX);
  }
  n = bc_count(r, 3); /* local variables: name, startpc, endpc */
  for (i = 0; i < n && !r->bad; i++) {
    bc_string(r, 1);
    bc_unsigned(r, INT_MAX);
    bc_unsigned(r, INT_MAX);
  }
  n = bc_count(r, 1); /* upvalue names: none, or one per upvalue */
  if (n != 0 && n != nups) r->bad = 1;
  for (i = 0; i < n && !r->bad; i++) bc_string(r, 1);
  return nups;
}

/* Size of the header ldump writes: signature, version, format, LUAC_DATA,
 * three type sizes, LUAC_INT, LUAC_NUM. */
#define BC_HEADER (4 + 1 + 1 + 6 + 3 + sizeof(lua_Integer) + sizeof(lua_Number))

/* Returns the chunk's number of upvalues, or -1 if it must not be loaded. */
static int check_bytecode(const unsigned char *code, size_t len) {
  bcr_t r;
  size_t nups;
  unsigned main_nups;
  if (len < BC_HEADER + 1 || memcmp(code, LUA_SIGNATURE, 4) != 0) return -1;
  /* lua_load checks the rest of the header; the walk needs these sizes */
  if (code[12] != 4 || code[13] != sizeof(lua_Integer) || code[14] != sizeof(lua_Number))
    return -1;
  r.p = code + BC_HEADER;
  r.end = code + len;
  r.bad = 0;
  main_nups = bc_byte(&r);
  nups = bc_function(&r, 0);
  if (r.bad || r.p != r.end || nups != main_nups) return -1;
  return (int)nups;
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

/* Numbers the object at idx; mirrors enc_register. */
static void dec_register(dec_t *d, int idx, int depth) {
  lua_State *L = d->L;
  d->nseen++;
  if (!d->has_seen) {
    if (d->nseen == 1 && depth == 0) {
      d->first = idx;
      return;
    }
    lua_createtable(L, 8, 0);
    if (d->first) {
      lua_pushvalue(L, d->first);
      lua_rawseti(L, -2, 1);
    }
    lua_replace(L, d->seen);
    d->has_seen = 1;
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

static void dec_table(dec_t *d, int depth, int has_mt) {
  lua_State *L = d->L;
  uint64_t narr, nhash, i, left;
  int t;
  dec_enter(d, depth, 6);
  narr = dec_uvarint(d);
  nhash = dec_uvarint(d);
  left = (uint64_t)(d->end - d->p); /* a value takes at least one byte */
  if (narr > left || nhash > (left - narr) / 2) dec_fail(d, "bad table size");
  lua_createtable(L, narr > INT_MAX ? INT_MAX : (int)narr, nhash > INT_MAX ? INT_MAX : (int)nhash);
  t = lua_gettop(L);
  dec_register(d, t, depth);
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
      n > (unsigned)fn_nups(L, g))
    dec_fail(d, "bad upvalue join");
  lua_upvaluejoin(L, f, i, g, (int)n);
  lua_pop(L, 1);
}

static void dec_lfunction(dec_t *d, int depth) {
  lua_State *L = d->L;
  const unsigned char *code;
  chunk_t c;
  uint32_t len;
  int f, i, nup, want;
  dec_enter(d, depth, 6);
  len = get_u32(dec_bytes(d, 4));
  code = dec_bytes(d, len);
  want = check_bytecode(code, len);
  if (want < 0) dec_fail(d, "bad bytecode");
  c.p = (const char *)code;
  c.n = len;
  if (lua_load(L, chunk_reader, &c, "=(copy)", "b") != LUA_OK)
    luaL_error(L, "malformed data: bad bytecode (%s)", lua_tostring(L, -1));
  f = lua_gettop(L);
  nup = (int)dec_byte(d);
  if (nup != want || fn_nups(L, f) != nup) dec_fail(d, "bad upvalue count");
  dec_register(d, f, depth);
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

/* package.loaded[name], or require(name) when it is not loaded yet. */
static void dec_module(dec_t *d) {
  lua_State *L = d->L;
  uint64_t n = dec_uvarint(d);
  const char *name = (const char *)dec_bytes(d, n);
  int nm;
  lua_pushlstring(L, name, (size_t)n);
  nm = lua_gettop(L);
  if (lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE) == LUA_TTABLE) {
    lua_pushvalue(L, nm);
    if (lua_rawget(L, -2) != LUA_TNIL) {
      lua_replace(L, nm);
      lua_pop(L, 1);
      return;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  if (d->untrusted)
    luaL_error(L, "malformed data: module '%s' is not loaded", lua_tostring(L, nm));
  if (lua_getglobal(L, "require") != LUA_TFUNCTION)
    luaL_error(L, "cannot bind module '%s': no 'require' function", lua_tostring(L, nm));
  lua_insert(L, nm);
  lua_call(L, 1, 1);
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
  case T_REF:
    dec_push_ref(d, dec_uvarint(d));
    return;
  case T_LFUNC:
    dec_lfunction(d, depth);
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
    dec_module(d);
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

static int decode(lua_State *L, const void *data, size_t len, int untrusted) {
  dec_t d;
  uint64_t n, i;
  unsigned hdr;
  d.L = L;
  d.untrusted = untrusted;
  if (!data || len == 0) luaL_error(L, "malformed data: truncated");
  d.p = data;
  d.end = d.p + len;
  d.seen = d.has_seen = d.first = 0;
  d.nseen = 0;
  hdr = dec_byte(&d);
  if ((hdr & HDR_VERSION) != CONC_CODEC_VERSION)
    luaL_error(L, "malformed data: unsupported format version %d", (int)(hdr & HDR_VERSION));
  if (hdr & HDR_RESERVED) dec_fail(&d, "bad header");
  n = dec_uvarint(&d);
  if (n > (uint64_t)(d.end - d.p)) dec_fail(&d, "bad value count");
  if (n > INT_MAX - 16 || !lua_checkstack(L, (int)n + 16))
    luaL_error(L, "malformed data: too many values (%I)", (lua_Integer)n);
  lua_pushnil(L); /* slot for the object list */
  d.seen = lua_gettop(L);
  for (i = 0; i < n; i++) dec_value(&d, 0, 0);
  if (d.p != d.end) dec_fail(&d, "trailing bytes");
  lua_remove(L, d.seen);
  return (int)n;
}

int conc_decode(lua_State *L, const void *data, size_t len) {
  return decode(L, data, len, 0);
}

int conc_decode_untrusted(lua_State *L, const void *data, size_t len) {
  return decode(L, data, len, 1);
}
