/*
 * codec_int.h - what the files of the value codec share; private to them
 * (codec.h is the API). The format and its rules are in docs/CODEC.md.
 *
 *   codec_enc.c    conc_encode, the write buffer, scalars, and the flat
 *                  path (values made of scalars and at most one plain table
 *                  of them: no Lua allocation, no protected call)
 *   codec_graph.c  the general encoder, under lua_pcall: tables, functions,
 *                  upvalues, conc objects, identity
 *   codec_place.c  encoding errors that name the value's place
 *   codec_dec.c    the decoder, and the walk that takes or drops the object
 *                  references held by encoded bytes
 *   codec_bc.c     a structural check of Lua 5.4 bytecode, before lua_load
 *
 * Functions one file calls in another are named conc__*; the helpers below
 * are static inline so that the hot paths stay inlined.
 */
#ifndef CONC_CODEC_INT_H
#define CONC_CODEC_INT_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "arena.h"
#include "cc.h"
#include "codec.h"

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
  T_DTABLE = 0x0F,   /* a table whose contents (a T_TABLE/T_TABLE_MT) come later */
  T_DLFUNC = 0x10,   /* as T_LFUNC without the upvalues, which come later */
  T_FIXSTR = 0x20,   /* 0x20..0x3F: string of length tag - 0x20 */
  T_FIXINT = 0x80    /* 0x80..0xFF: integer tag - 0x80 */
};
/* How a module upvalue is resolved when the destination has not loaded it
 * (the byte after its name). */
enum {
  M_REQUIRE = 0, /* require(name): found on package.path/cpath, or a library */
  M_PRELOAD = 1, /* then a value: the loader, set as package.preload[name] */
  M_VALUE = 2    /* then a value: the module itself, set as package.loaded[name] */
};
#define FIXSTR_MAX 31
#define FIXINT_MAX 127
#define UVARINT_MAX 10 /* bytes in the longest 64-bit uvarint */
#define SCALAR_MAX (1 + UVARINT_MAX) /* longest non-string scalar */

static inline int uvarint_len(uint64_t v) {
  int n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

static inline unsigned char *put_uvarint(unsigned char *p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = (unsigned char)(v | 0x80);
    v >>= 7;
  }
  *p++ = (unsigned char)v;
  return p;
}

/* Reads a uvarint from [*pp, end). Returns 0 if it is truncated or does not
 * fit in 64 bits. */
static inline int get_uvarint(const unsigned char **pp, const unsigned char *end,
                              uint64_t *out) {
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

static inline int skip(const unsigned char **pp, const unsigned char *end, uint64_t n) {
  if (n > (uint64_t)(end - *pp)) return 0;
  *pp += n;
  return 1;
}

static inline void put_u32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
}

static inline uint32_t get_u32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t zigzag(lua_Integer v) {
  return v < 0 ? (~(uint64_t)v << 1) | 1 : (uint64_t)v << 1;
}

static inline lua_Integer unzigzag(uint64_t z) {
  return (lua_Integer)(z >> 1) ^ -(lua_Integer)(z & 1);
}

/* ---- write buffer (codec_enc.c) --------------------------------------- */

/* Makes room for `need` more bytes. Returns 0, or -1 out of memory. */
int conc__wbuf_grow(conc_wbuf_t *b, size_t need);

static inline int wbuf_reserve(conc_wbuf_t *b, size_t need) {
  return cc_likely(b->cap - b->len >= need) ? 0 : conc__wbuf_grow(b, need);
}

/* Appends the scalar at idx (type t). Returns 0, or -1 out of memory. */
int conc__wbuf_scalar(conc_wbuf_t *b, lua_State *L, int idx, int t);

/* Rewrites a table's two one-byte count placeholders at pos. Returns 0, or
 * -1 out of memory. */
int conc__wbuf_counts(conc_wbuf_t *b, size_t pos, uint64_t narr, uint64_t nhash);

/* The error message for a buffer that cannot grow. */
const char *conc__nomem_message(const conc_wbuf_t *b);

/* ---- the general encoder (codec_graph.c, codec_place.c) --------------- */

/* The general path of conc_encode: encodes the n values from the absolute
 * stack index first into b (empty), under lua_pcall, then takes the object
 * references. Raises as conc_encode does, b left empty and no reference
 * held. Error messages number the values from 1 after the first `hidden`
 * ones (which must be strings), or do not number them when !numbered:
 * "(error value, field 'co')". */
void conc__enc_general(lua_State *L, int first, int n, conc_wbuf_t *b, const char *what,
                       int hidden, int numbered);

/* Whether `what` names a field place ("field 'x'", see conc_encode): its
 * one value is not numbered and its path goes on in the steps below. */
int conc__place_is_field(const char *what);

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
  int hidden;        /* leading values not counted in argn */
  int numbered;      /* 0: the place says "(<what>, ...)" without argn */
  int lvl;           /* length of the path to the current value */
  int seen;          /* stack slot of the identity table, once has_seen */
  int has_seen;
  int first;         /* slot of the first object while !has_seen (0: none) */
  lua_Integer nseen; /* objects numbered so far */
  int mods;          /* stack slot of the module-name map, once has_mods */
  int has_mods;
  int pend;          /* stack slot of the deferred objects, once has_pend */
  int has_pend;
  lua_Integer pend_head, pend_tail; /* pend[head+1..tail] are still due */
  int deferred;      /* encoding the contents of a deferred object */
  const char *modname; /* copying this module's value (for error messages) */
  int nomem;         /* the buffer could not grow (the error is enc_nomem's) */
  frame_t path[CONC_CODEC_MAXDEPTH];
} enc_t;

/* Raises "<message> (<place>)", the place being e's path. */
_Noreturn void conc__enc_fail(enc_t *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The number of upvalues of the function at f. */
int conc__fn_nups(lua_State *L, int f);

/* ---- object references and bytecode (codec_dec.c, codec_bc.c) --------- */

/* Calls fn on every valid conc object pointer of an encoding, in order. */
void conc__walk_objects(const void *data, size_t len, void (*fn)(cc_obj_t *));

/* Returns the chunk's number of upvalues, or -1 if it must not be loaded. */
int conc__check_bytecode(const unsigned char *code, size_t len);

#endif
