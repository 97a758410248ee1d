/*
 * codec_enc.c - conc_encode, the write buffer, and the encoding of
 * scalars. The format and its rules are in docs/CODEC.md.
 *
 * Encoding takes one of two paths. Values made only of nil, booleans,
 * numbers, strings and at most one plain table of those (the usual queue
 * item) are written here with no Lua allocation and no protected call, the
 * scalars into one reservation. Anything else takes the general path,
 * under lua_pcall (codec_graph.c).
 */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "codec_int.h"
#include "lconc.h"

/* ---- scalars ---------------------------------------------------------- */

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
int conc__wbuf_grow(conc_wbuf_t *b, size_t need) {
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

/* Appends the scalar at idx (type t). Returns 0, or -1 out of memory. */
int conc__wbuf_scalar(conc_wbuf_t *b, lua_State *L, int idx, int t) {
  if (wbuf_reserve(b, scalar_room(L, idx, t)) != 0) return -1;
  b->len = (size_t)((char *)put_scalar(L, idx, t, (unsigned char *)b->data + b->len) - b->data);
  return 0;
}

/* A table is written as its tag, two one-byte count placeholders, the
 * values: conc__wbuf_counts() then rewrites the placeholders at pos, moving
 * what follows when the counts need more room. Returns 0, or -1 out of
 * memory. */
int conc__wbuf_counts(conc_wbuf_t *b, size_t pos, uint64_t narr, uint64_t nhash) {
  size_t k = (size_t)(uvarint_len(narr) + uvarint_len(nhash));
  if (k > 2) {
    if (wbuf_reserve(b, k - 2) != 0) return -1;
    memmove(b->data + pos + k, b->data + pos + 2, b->len - pos - 2);
    b->len += k - 2;
  }
  put_uvarint(put_uvarint((unsigned char *)b->data + pos, narr), nhash);
  return 0;
}

const char *conc__nomem_message(const conc_wbuf_t *b) {
  return b->in_arena ? cc_strerror(CC_ENOMEM) : "not enough memory";
}

/* ---- the flat path ---------------------------------------------------- */

enum { FLAT_DONE, FLAT_NO, FLAT_NOMEM };

/* A table without metatable whose keys and values are all scalars, at a
 * top-level slot: the same bytes enc_table (codec_graph.c) would write.
 * FLAT_NO as soon as something else shows up. */
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
      if (conc__wbuf_scalar(b, L, top - 1, kt) != 0) vt = -1;
    }
    if (vt < 0 || conc__wbuf_scalar(b, L, top, vt) != 0) {
      lua_pop(L, 2);
      return FLAT_NOMEM;
    }
    lua_pop(L, 1);
  }
  if (conc__wbuf_counts(b, pos, (uint64_t)narr, (uint64_t)nhash) != 0) return FLAT_NOMEM;
  return FLAT_DONE;
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
      if (conc__wbuf_scalar(b, L, first + i, t) != 0) return FLAT_NOMEM;
    } else if ((r = flat_table(L, first + i, b)) != FLAT_DONE) {
      return r;
    }
  }
  return FLAT_DONE;
}

void conc_encode(lua_State *L, int first, int n, conc_wbuf_t *b, const char *what) {
  int rc;
  first = lua_absindex(L, first);
  b->len = 0;
  b->has_objects = 0;
  rc = enc_flat(L, first, n, b);
  if (rc == FLAT_NOMEM && b->in_arena && conc_reclaim(L)) { /* see conc_reclaim */
    b->len = 0;
    rc = enc_flat(L, first, n, b);
  }
  switch (rc) {
  case FLAT_DONE:
    return;
  case FLAT_NOMEM: {
    const char *msg = conc__nomem_message(b);
    conc_wbuf_free(b);
    luaL_error(L, "%s", msg);
    return;
  }
  default: /* start again on the general path */
    b->len = 0;
  }
  conc__enc_general(L, first, n, b, what, 0, !conc__place_is_field(what));
}
