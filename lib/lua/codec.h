/*
 * codec.h - copying Lua values between lua_States.
 *
 * A compact versioned binary format (see docs/CODEC.md). What can be copied
 * is defined in ../shared/API.md "What can be copied": nil, booleans,
 * integers and floats (subtype kept), binary strings, tables (deep, cycles
 * and shared sub-tables preserved, metatables copied), Lua functions
 * (bytecode + upvalues; _ENV bound to the destination's globals; a loaded
 * module upvalue bound by name to the destination's module), C functions by
 * address (C-closure upvalues copied), conc objects by reference.
 *
 * Encoded bytes that contain conc objects hold one reference per object
 * occurrence: free them with conc_codec_release() (decoding does not consume
 * them; it takes references of its own).
 */
#ifndef CONC_CODEC_H
#define CONC_CODEC_H

#include <stddef.h>

#include <lua.h>

typedef struct conc_wbuf {
  char *data; /* malloc or arena block, see in_arena */
  size_t len, cap;
  int has_objects;
  int in_arena;
} conc_wbuf_t;

/* Encodes the n values at stack indexes first..first+n-1 into b (appending
 * after b->len is reset to 0). `what` names the values in error messages:
 * "argument" gives "(argument 2, field 'co')", "item", "result", ... Raises a
 * Lua error that names the offending value's place when a value cannot be
 * copied; b is left empty (and references released) in that case. */
void conc_encode(lua_State *L, int first, int n, conc_wbuf_t *b, const char *what);

/* Decodes values from data[0..len) and pushes them. Returns how many.
 * Raises a Lua error ("malformed data: ...") on bad input and never reads
 * outside the buffer. */
int conc_decode(lua_State *L, const void *data, size_t len);

/* Drops the object references held by encoded bytes (no-op if none). */
void conc_codec_release(const void *data, size_t len);

/* A buffer grows with malloc, or, when in_arena is set, in the shared arena
 * (cc_alloc), so a large item is written once, straight where it will be
 * read from (raises "out of shared memory" when the arena is full). */
void conc_wbuf_init(conc_wbuf_t *b, int in_arena);
void conc_wbuf_free(conc_wbuf_t *b);
/* Hands the data over to the caller (arena or malloc block per in_arena)
 * and leaves b empty. */
void *conc_wbuf_take(conc_wbuf_t *b, size_t *len);

#endif
