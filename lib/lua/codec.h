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
 *
 * Thread-safety: every function works on the caller's lua_State and buffer
 * only; different threads may encode and decode at the same time.
 */
#ifndef CONC_CODEC_H
#define CONC_CODEC_H

#include <stddef.h>

#include <lua.h>

/* Format version carried in the low 4 bits of the first byte. */
#define CONC_CODEC_VERSION 1
/* Deepest nesting of tables and functions (a top-level value is level 0)
 * that encode accepts and decode trusts. */
#define CONC_CODEC_MAXDEPTH 200

typedef struct conc_wbuf {
  char *data; /* malloc or arena block, see in_arena */
  size_t len, cap;
  int has_objects; /* the bytes hold conc object references */
  int in_arena;
} conc_wbuf_t;

/* Encodes the n values at stack indexes first..first+n-1 into b (appending
 * after b->len is reset to 0). `what` names the values in error messages:
 * "argument" gives "(argument 2, field 'co')", "item", "result", ... The
 * first value is `<what> 1`. Raises a Lua error that names the offending
 * value's place when a value cannot be copied (and "out of shared memory"
 * or "not enough memory" when b cannot grow); b is left empty and no
 * reference is held in that case. Values made only of nil, booleans,
 * numbers, strings and at most one plain table of those take a path that
 * allocates nothing but b (and uses no protected call). */
void conc_encode(lua_State *L, int first, int n, conc_wbuf_t *b, const char *what);

/* Decodes values from data[0..len) and pushes them. Returns how many.
 * Raises a Lua error ("malformed data: ...") on bad input and never reads
 * outside the buffer. May run `require` for a module upvalue whose module
 * is not loaded in L yet (and raise its errors). Functions decoded from
 * forged bytes are safe to hold but not to call: see docs/CODEC.md. */
int conc_decode(lua_State *L, const void *data, size_t len);

/* As conc_decode, for bytes that may come from outside this program (tests,
 * fuzzing, conc._decode): never runs code because of what it decodes, so it
 * also refuses a metatable with a __gc field (the collector would call it
 * unasked) and a module upvalue whose module is not loaded in L (no
 * require). */
int conc_decode_untrusted(lua_State *L, const void *data, size_t len);

/* Drops the object references held by encoded bytes (no-op, without
 * reading past the first byte, if there are none). Safe on malformed input:
 * it stops at the first byte it cannot parse. */
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
