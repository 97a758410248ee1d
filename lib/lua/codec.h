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
#define CONC_CODEC_VERSION 2
/* Deepest recursion of the encoder and the decoder (a top-level value is
 * level 0). Values of any depth are copied: a table or Lua function met at
 * level CONC_CODEC_INLINE or deeper is numbered there and its contents are
 * written after the top-level value, starting again at level 0 (so the C
 * stack depth stays bounded, and the rest lives in heap memory). Only a
 * chain of C closures held by each other's upvalues cannot be deferred
 * (they can be created only after their upvalues): such a chain is refused
 * past CONC_CODEC_MAXDEPTH. */
#define CONC_CODEC_MAXDEPTH 200
#define CONC_CODEC_INLINE 100

typedef struct conc_wbuf {
  char *data; /* malloc or arena block, see in_arena */
  size_t len, cap;
  int has_objects; /* the bytes hold conc object references */
  int in_arena;
} conc_wbuf_t;

/* Encodes the n values at stack indexes first..first+n-1 into b (appending
 * after b->len is reset to 0). `what` names the values in error messages:
 * "argument" gives "(argument 2, field 'co')", "item", "result", ... The
 * first value is `<what> 1`. A `what` that is a field, "field '<string
 * key>'" or "field [<other key>]" (a shared table's), names one value, is
 * not numbered, and starts the path: "(field 'x[1].co')". Raises a Lua error that names the offending
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

/* ---- jobs: the function and arguments of a thread or process --------- */

/* As conc_encode(L, first, n, b, "argument"), for the job of a new thread or
 * process: the message also carries the creator's package.path and
 * package.cpath (when they are strings), which conc_decode_job sets in the
 * destination before it decodes the values, so that the job's code and its
 * module upvalues are found where the creator finds them. Same errors as
 * conc_encode. */
void conc_encode_job(lua_State *L, int first, int n, conc_wbuf_t *b);

/* Decodes a job made by conc_encode_job into L (trusted, as conc_decode):
 * first sets L's package.path and package.cpath to the creator's, then
 * pushes the values (the function and its arguments) and returns how many.
 * Raises as conc_decode. */
int conc_decode_job(lua_State *L, const void *data, size_t len);

/* ---- errors of a job -------------------------------------------------- */

/* A message handler for the lua_pcall that runs a job's body (thread,
 * process, pool task). A string error becomes "msg\nstack traceback:\n..."
 * (as lua.c does); any other value (a table, a number, ...) is returned
 * unchanged and its traceback text is kept in the registry for
 * conc_error_store. */
int conc_error_handler(lua_State *L);

/* Stores the error value at idx (what conc_error_handler left, after the
 * failed lua_pcall) in an arena block for the job's result, and returns it
 * (NULL when the arena is full) with its length in *len. Never raises. The
 * block is a codec message: its text first (the string error, or for any
 * other value "(error object is a <type> value)" and its traceback, or its
 * __tostring), then the value itself when it is not a string. A value that
 * cannot be copied (a coroutine, ...) is stored as text only, the text
 * saying why. Free the block with cc_free after conc_codec_release (it may
 * hold conc object references, as results do). */
void *conc_error_store(lua_State *L, int idx, size_t *len);

/* The same kind of block for a plain text, without a Lua state and without
 * malloc (arena only): for errors raised outside Lua. NULL and *outlen 0
 * when the arena is full. */
void *conc_error_from_text(const char *s, size_t len, size_t *outlen);

/* The text of an error block made by conc_error_store/conc_error_from_text,
 * or of a plain text (a core message, which starts with a printable
 * character): returns a pointer into data (no allocation, no Lua state:
 * safe on the reaper thread) and its length in *tlen. Not NUL-terminated for
 * a block. For NULL (no memory was left to keep the error) it says so;
 * "?" for an unreadable block. */
const char *conc_error_text(const void *data, size_t len, size_t *tlen);

/* Pushes the error a job stored (block or plain text), ready for
 * lua_error: a string error as "<kind> '<name>': <text>" (as join raised it
 * until now; kind "thread", "process", "task", ...; just the text when kind
 * is NULL), any other value as itself (decoded: `error({code = 42})` in a
 * thread is that table in the joiner). Raises "malformed data: ..." on a
 * corrupt block. */
void conc_error_push(lua_State *L, const void *data, size_t len, const char *kind,
                     const char *name);

/* Drops the object references held by encoded bytes (no-op, without
 * reading past the first byte, if there are none). Safe on malformed input:
 * it stops at the first byte it cannot parse; a plain text (first byte
 * printable: reserved header bits set) is left alone, so the hook may be
 * called on any job result, error texts included. */
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
