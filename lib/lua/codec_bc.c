/*
 * codec_bc.c - a structural check of Lua 5.4 bytecode, run by the decoder
 * (codec_dec.c) before lua_load sees a function's bytes.
 *
 * lua_load does not verify binary chunks: a forged length can make it
 * write out of bounds (a long string of size ~SIZE_MAX), allocate
 * gigabytes, recurse without limit, or build a closure with fewer upvalues
 * than its prototype. This walk follows Lua 5.4's dump format and accepts
 * a chunk only if every count fits in the bytes that remain, nesting stays
 * bounded, and the closure and prototype agree on the upvalues. Whether the
 * instructions make sense is not checked (see docs/CODEC.md).
 */
#include <limits.h>
#include <string.h>

#include "codec_int.h"

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
int conc__check_bytecode(const unsigned char *code, size_t len) {
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
