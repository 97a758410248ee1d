/*
 * codec_place.c - the encoder's error messages, which name the offending
 * value and its place: "cannot copy a coroutine (argument 3, field 'f',
 * upvalue 'co', field 'x')". The format of a place is in docs/CODEC.md,
 * "Error messages".
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "codec_int.h"

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

/* Appends a string key as a path step: `name` (`.name` after another
 * step) or `["a b"]`. */
static void mb_skey(msgbuf_t *m, const char *s, size_t n, int first) {
  size_t i;
  if (is_name(s, n)) {
    mb_add(m, "%s%.*s", first ? "" : ".", (int)n, s);
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
}

/* Appends a key as a path step: `name` (`.name` after another step),
 * `[3]`, `[1.5]`, `[true]`, `["a b"]`, `[<table>]`. */
static void mb_key(msgbuf_t *m, lua_State *L, int idx, int first) {
  switch (lua_type(L, idx)) {
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    mb_skey(m, s, n, first);
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

int conc__place_is_field(const char *what) {
  return strncmp(what, "field ", 6) == 0;
}

/* Starts the place at a root that is a field ("field 'x'" or "field [3]",
 * see codec.h): the steps below continue its path, "field 'x[1].y'". */
static void mb_field_root(msgbuf_t *m, const char *key) {
  size_t n = strlen(key);
  mb_add(m, " (field '");
  if (n >= 2 && key[0] == '\'' && key[n - 1] == '\'')
    mb_skey(m, key + 1, n - 2, 1); /* a string key, spelt as any path step */
  else
    mb_add(m, "%s", key);
}

/* " (argument 2, field 'a.b[3]', upvalue 'f', key, metatable)" */
static void mb_place(msgbuf_t *m, const enc_t *e) {
  int k, infield = 0;
  if (conc__place_is_field(e->what)) {
    mb_field_root(m, e->what + 6);
    infield = 1;
  } else if (e->numbered) {
    mb_add(m, " (%s %d", e->what, e->argn);
  } else {
    mb_add(m, " (%s", e->what);
  }
  if (e->deferred) { /* inside a value deeper than CONC_CODEC_INLINE */
    if (infield) mb_add(m, "'");
    infield = 0;
    mb_add(m, ", ...");
  }
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
_Noreturn void conc__enc_fail(enc_t *e, const char *fmt, ...) {
  msgbuf_t m;
  va_list ap;
  int k;
  va_start(ap, fmt);
  k = vsnprintf(m.s, 256, fmt, ap);
  va_end(ap);
  m.n = k < 0 ? 0 : (size_t)k > 255 ? 255 : (size_t)k;
  mb_place(&m, e);
  if (e->modname)
    mb_add(&m, "; module '%s' is copied because a new state cannot require it (it is not on "
               "package.path or package.cpath: set by hand in package.loaded, or loaded by a "
               "package.preload function that cannot be copied): put it in a file on "
               "package.path, or give it a copyable loader in package.preload",
           e->modname);
  lua_pushlstring(e->L, m.s, m.n);
  lua_error(e->L);
  abort(); /* not reached */
}
