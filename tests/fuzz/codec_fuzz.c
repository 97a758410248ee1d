/*
 * codec_fuzz.c - robustness driver for the value decoder (docs/CODEC.md).
 *
 *   codec_fuzz N [SEED]   encodes a set of sample values, then decodes N
 *                         mutations of them (bit flips, byte changes,
 *                         truncations, insertions, deletions, random bytes,
 *                         splices of two samples). Each must decode or raise
 *                         a Lua error; a crash or a sanitizer report is a
 *                         failure. Deterministic for a given SEED.
 *   codec_fuzz FILE...    decodes each file once (replays a saved input).
 *   codec_fuzz --samples DIR   writes the encoded samples to DIR/sample-N
 *                         (the seed corpus in tests/fuzz/corpus/codec).
 *
 * Inputs go through conc_decode_untrusted, the decoder for bytes from
 * outside the program; every input sits in a malloc block of exactly its
 * size, so a sanitizer build catches any read past the end.
 *
 * Compiled with -DCODEC_LIBFUZZER it is a libFuzzer target instead:
 *   clang -g -fsanitize=fuzzer,address -DCODEC_LIBFUZZER -Ilib/lua -Ilib/include \
 *     $(pkg-config --cflags lua5.4) tests/fuzz/codec_fuzz.c build/libconclua.a \
 *     $(pkg-config --libs lua5.4) -lpthread -lm -ldl
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>

#include "codec.h"
#include "conclua.h"

/* ---- the Lua state ---------------------------------------------------- */

/* A cap on the state's memory: a mutated size must never make the decoder
 * allocate without bound (decoding raises a memory error instead). */
#define MEM_CAP ((size_t)512 << 20)
static size_t mem_used;

static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  if (ptr == NULL) osize = 0;
  if (nsize == 0) {
    free(ptr);
    mem_used -= osize;
    return NULL;
  }
  if (nsize > osize && mem_used + (nsize - osize) > MEM_CAP) return NULL;
  ptr = realloc(ptr, nsize);
  if (ptr) mem_used = mem_used - osize + nsize;
  return ptr;
}

static int panic(lua_State *L) {
  fprintf(stderr, "codec_fuzz: Lua panic: %s\n", lua_tostring(L, -1));
  abort();
}

static int open_all(lua_State *L) {
  conclua_openlibs(L);
  /* a module name from the bytes must never reach the file system */
  if (luaL_dostring(L, "package.path = '' package.cpath = ''") != LUA_OK) return lua_error(L);
  return 0;
}

static lua_State *new_state(void) {
  lua_State *L = lua_newstate(capped_alloc, NULL);
  if (!L) return NULL;
  lua_atpanic(L, panic);
  lua_pushcfunction(L, open_all);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
    fprintf(stderr, "codec_fuzz: cannot open the libraries: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return NULL;
  }
  return L;
}

static int decode_entry(lua_State *L) {
  const void *p = lua_touserdata(L, 1);
  size_t len = (size_t)lua_tointeger(L, 2);
  lua_settop(L, 0);
  conc_decode_untrusted(L, p, len);
  return 0;
}

/* Decodes one input in protected mode. Returns 1 if it decoded. */
static int try_decode(lua_State *L, const unsigned char *data, size_t len) {
  /* an exact-size copy: reads past the end are sanitizer errors */
  unsigned char *copy = malloc(len ? len : 1);
  int ok;
  if (!copy) abort();
  if (len) memcpy(copy, data, len);
  lua_pushcfunction(L, decode_entry);
  lua_pushlightuserdata(L, copy);
  lua_pushinteger(L, (lua_Integer)len);
  ok = lua_pcall(L, 2, 0, 0) == LUA_OK;
  lua_settop(L, 0);
  free(copy);
  return ok;
}

#ifdef CODEC_LIBFUZZER

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static lua_State *L;
  static unsigned calls;
  if (!L && !(L = new_state())) abort();
  try_decode(L, data, size);
  if (++calls % 256 == 0) lua_gc(L, LUA_GCCOLLECT);
  return 0;
}

#else

/* ---- samples ---------------------------------------------------------- */

/* Each entry is a list of values encoded together. */
static const char samples_chunk[] =
    "local conc = require 'conc'\n"
    "local t = {1, 2, 3, name = 'x', nested = {a = {b = {c = true}}}, [1.5] = 2.5}\n"
    "t.self = t\n"
    "local shared = {v = 1}\n"
    "local mt = {__index = function(_, k) return k end}\n"
    "mt.__mt = mt\n"
    "local count = 0\n"
    "local function inc() count = count + 1 end\n"
    "local function get() return count end\n"
    "local str = string\n"
    "local function fmt(a, b) return str.format('%d %s', a + b, CODEC_G) end\n"
    "local function fact(n) return n <= 1 and 1 or n * fact(n - 1) end\n"
    "local idx = getmetatable(conc.current()).__index\n"
    "local big = {}\n"
    "for i = 1, 200 do big[i] = i; big['k' .. i] = -i end\n"
    "local deep, cur = {}, nil\n" /* deeper than CONC_CODEC_INLINE: deferred contents */
    "cur = deep\n"
    "for i = 1, 110 do cur.n = {i = i, s = shared}; cur = cur.n end\n"
    "cur.back = deep\n"
    "local chain = function() return 0 end\n"
    "for _ = 1, 105 do local g = chain; chain = function() return g() + count end end\n"
    "package.preload.fz_pre = function() return {p = 1} end\n"
    "local pre = require 'fz_pre'\n"
    "package.loaded.fz_hand = {h = 2}\n"
    "local hand = package.loaded.fz_hand\n"
    "local function mods() return pre, hand, str end\n"
    "return {\n"
    "  {n = 1, 1}, {n = 1, -123456789}, {n = 1, 1.5}, {n = 1, 'hello'},\n"
    "  {n = 1, ('x'):rep(100)}, {n = 3, nil, true, false}, {n = 1, t},\n"
    "  {n = 1, {x = shared, y = shared, z = {shared}}}, {n = 1, setmetatable({}, mt)},\n"
    "  {n = 2, inc, get}, {n = 1, fmt}, {n = 1, fact}, {n = 2, print, string.format},\n"
    "  {n = 1, idx}, {n = 2, idx, idx}, {n = 1, conc.current()},\n"
    "  {n = 1, {[conc.current()] = 1, [true] = false, [-1] = 'neg'}},\n"
    "  {n = 1, big}, {n = 4, 'a', {inc = inc}, {get = get, t = t}, fmt},\n"
    "  {n = 2, deep, shared}, {n = 2, chain, get}, {n = 1, mods},\n"
    "}\n";

typedef struct sample {
  unsigned char *data;
  size_t len;
} sample_t;

static int encode_entry(lua_State *L) {
  conc_wbuf_t *b = lua_touserdata(L, 1);
  lua_remove(L, 1);
  conc_encode(L, 1, lua_gettop(L), b, "argument");
  return 0;
}

/* Encodes every sample list. Returns how many, or -1. */
static int make_samples(lua_State *L, sample_t *out, int max) {
  int i, n;
  if (luaL_dostring(L, samples_chunk) != LUA_OK) {
    fprintf(stderr, "codec_fuzz: samples: %s\n", lua_tostring(L, -1));
    return -1;
  }
  n = (int)lua_rawlen(L, -1);
  if (n > max) n = max;
  for (i = 0; i < n; i++) {
    conc_wbuf_t b;
    int k, nv, entry;
    conc_wbuf_init(&b, 0);
    lua_rawgeti(L, -1, i + 1);
    entry = lua_gettop(L);
    lua_getfield(L, entry, "n");
    nv = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    lua_pushcfunction(L, encode_entry);
    lua_pushlightuserdata(L, &b);
    for (k = 1; k <= nv; k++) lua_rawgeti(L, entry, k);
    if (lua_pcall(L, nv + 1, 0, 0) != LUA_OK) {
      fprintf(stderr, "codec_fuzz: encoding sample %d: %s\n", i + 1, lua_tostring(L, -1));
      return -1;
    }
    lua_pop(L, 1);
    out[i].data = (unsigned char *)conc_wbuf_take(&b, &out[i].len);
  }
  lua_pop(L, 1);
  return n;
}

/* ---- mutations -------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rng(void) { /* xorshift64* */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545F4914F6CDD1Dull;
}

static size_t below(size_t n) {
  return n ? (size_t)(rng() % n) : 0;
}

/* Bytes the format gives meaning to: tags, small counts, extremes. */
static const unsigned char interesting[] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
                                            0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F,
                                            0x10, 0x11, 0x1f, 0x20, 0x3f, 0x7f, 0x80, 0x81, 0xff};

/* The mutation buffer: twice the largest sample, at least 64 KiB (set by
 * run_mutations before any mutation). */
static size_t buf_max = 65536;
#define BUF_MAX buf_max

/* Applies one random mutation to buf[0..*len). */
static void mutate(unsigned char *buf, size_t *len, const sample_t *samples, int nsamples) {
  size_t n = *len, pos, k;
  switch (below(8)) {
  case 0: /* bit flips */
    for (k = below(4) + 1; k > 0 && n; k--) buf[below(n)] ^= (unsigned char)(1u << below(8));
    break;
  case 1: /* a byte set to something meaningful */
    if (n) buf[below(n)] = interesting[below(sizeof interesting)];
    break;
  case 2: /* a byte set at random */
    if (n) buf[below(n)] = (unsigned char)rng();
    break;
  case 3: /* truncation */
    *len = below(n + 1);
    break;
  case 4: { /* insertion of random bytes */
    size_t add = below(16) + 1;
    if (n + add > BUF_MAX) break;
    pos = below(n + 1);
    memmove(buf + pos + add, buf + pos, n - pos);
    for (k = 0; k < add; k++) buf[pos + k] = (unsigned char)rng();
    *len = n + add;
    break;
  }
  case 5: /* deletion of a range */
    if (!n) break;
    pos = below(n);
    k = below(n - pos) + 1;
    memmove(buf + pos, buf + pos + k, n - pos - k);
    *len = n - k;
    break;
  case 6: { /* splice: a piece of another sample written over this one */
    const sample_t *o = &samples[below((size_t)nsamples)];
    size_t from, cnt;
    if (!o->len) break;
    from = below(o->len);
    cnt = below(o->len - from) + 1;
    pos = below(n + 1);
    if (pos + cnt > BUF_MAX) break;
    memcpy(buf + pos, o->data + from, cnt);
    if (pos + cnt > n) *len = pos + cnt;
    break;
  }
  default: /* a duplicated range */
    if (!n) break;
    pos = below(n);
    k = below(n - pos) + 1;
    if (n + k > BUF_MAX) break;
    memmove(buf + pos + k, buf + pos, n - pos);
    *len = n + k;
    break;
  }
}

/* Random bytes after a valid header: the decoder gets past the first
 * checks. */
static size_t random_input(unsigned char *buf) {
  size_t i, n = below(64);
  buf[0] = CONC_CODEC_VERSION;
  buf[1] = (unsigned char)(below(3) + 1);
  for (i = 2; i < n + 2; i++) buf[i] = (unsigned char)rng();
  return n + 2;
}

static int run_mutations(lua_State *L, long iterations, uint64_t seed) {
  sample_t samples[64];
  unsigned char *buf;
  long i, decoded = 0, refused = 0;
  int nsamples, s;
  struct timespec t0, t1;
  nsamples = make_samples(L, samples, 64);
  if (nsamples <= 0) return 1;
  for (s = 0; s < nsamples; s++)
    if (samples[s].len * 2 > buf_max) buf_max = samples[s].len * 2;
  if (!(buf = malloc(buf_max))) return 1;
  for (s = 0; s < nsamples; s++) {
    if (!try_decode(L, samples[s].data, samples[s].len)) {
      fprintf(stderr, "codec_fuzz: sample %d does not decode\n", s + 1);
      return 1;
    }
  }
  rng_state = seed ? seed : 0x9E3779B97F4A7C15ull;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (i = 0; i < iterations; i++) {
    size_t len;
    if (below(16) == 0) {
      len = random_input(buf);
    } else {
      const sample_t *sm = &samples[below((size_t)nsamples)];
      int k, rounds = (int)below(4) + 1;
      len = sm->len;
      memcpy(buf, sm->data, len);
      for (k = 0; k < rounds; k++) mutate(buf, &len, samples, nsamples);
    }
    if (try_decode(L, buf, len))
      decoded++;
    else
      refused++;
    if (i % 1000 == 999) lua_gc(L, LUA_GCCOLLECT);
  }
  lua_gc(L, LUA_GCCOLLECT);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  printf("codec_fuzz: %ld inputs (seed %llu): %ld decoded, %ld refused, %.2f s\n", iterations,
         (unsigned long long)(seed ? seed : 0x9E3779B97F4A7C15ull), decoded, refused,
         (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
  for (s = 0; s < nsamples; s++) {
    conc_codec_release(samples[s].data, samples[s].len);
    free(samples[s].data);
  }
  free(buf);
  return 0;
}

static int run_files(lua_State *L, int argc, char **argv) {
  int i;
  for (i = 1; i < argc; i++) {
    FILE *f = fopen(argv[i], "rb");
    unsigned char *data;
    long n;
    if (!f) {
      fprintf(stderr, "codec_fuzz: %s: %s\n", argv[i], strerror(errno));
      return 1;
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    data = malloc(n > 0 ? (size_t)n : 1);
    if (!data || fread(data, 1, (size_t)n, f) != (size_t)n) {
      fclose(f);
      free(data);
      fprintf(stderr, "codec_fuzz: %s: cannot read\n", argv[i]);
      return 1;
    }
    fclose(f);
    printf("%s: %s\n", argv[i], try_decode(L, data, (size_t)n) ? "decoded" : "refused");
    free(data);
  }
  return 0;
}

static int write_samples(lua_State *L, const char *dir) {
  sample_t samples[64];
  int nsamples = make_samples(L, samples, 64);
  if (nsamples <= 0) return 1;
  for (int s = 0; s < nsamples; s++) {
    char path[4096];
    FILE *f;
    snprintf(path, sizeof path, "%s/sample-%02d", dir, s + 1);
    if (!(f = fopen(path, "wb")) || fwrite(samples[s].data, 1, samples[s].len, f) != samples[s].len) {
      fprintf(stderr, "codec_fuzz: %s: %s\n", path, strerror(errno));
      return 1;
    }
    fclose(f);
    conc_codec_release(samples[s].data, samples[s].len);
    free(samples[s].data);
  }
  return 0;
}

int main(int argc, char **argv) {
  lua_State *L;
  char *end;
  long n;
  int rc;
  if (argc < 2) {
    fprintf(stderr, "usage: codec_fuzz N [SEED] | codec_fuzz FILE... | codec_fuzz --samples DIR\n");
    return 2;
  }
  L = new_state();
  if (!L) return 1;
  n = strtol(argv[1], &end, 10);
  if (argc == 3 && strcmp(argv[1], "--samples") == 0)
    rc = write_samples(L, argv[2]);
  else if (*end == '\0' && n >= 0)
    rc = run_mutations(L, n, argc > 2 ? strtoull(argv[2], NULL, 0) : 0);
  else
    rc = run_files(L, argc, argv);
  lua_close(L);
  return rc;
}

#endif
