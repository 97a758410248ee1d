/*
 * shared_fuzz.c - the shared-table core (lib/core/shared.c) against a model.
 *
 * An input is a program: each operation is an opcode byte followed by its
 * operands (a key number, a value length). Keys come from a fixed set that
 * covers every key type and the edges of the layout (integers around the
 * border, extremes, non-integral floats, booleans, strings of 0, 16 (the
 * inline limit), 17 and 200 bytes, embedded zeros, two strings of one
 * length). After every operation the table must agree with a plain model:
 * values whole and current, count, # (the unique border), the snapshot's
 * keys; at the end, destroying the table must release every value exactly
 * once and leave the arena's block count where it was. Any disagreement
 * aborts (a crash for libFuzzer).
 *
 *   shared_fuzz N [SEED]   runs N random programs (deterministic per SEED)
 *   shared_fuzz FILE...    runs each file once (replays a saved input)
 *
 * Compiled with -DCONCLUA_LIBFUZZER it is a libFuzzer target instead
 * (tests/CMakeLists.txt, option CONCLUA_LIBFUZZER).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "item.h"
#include "shared.h"

#define NKEYS 48
#define MAXVAL 600

/* ---- the keys ------------------------------------------------------------ */

static cc_skey_t keys[NKEYS];
static char strkeys[NKEYS][256];

static void make_keys(void) {
  static const int64_t ints[] = {0, -1, INT64_MIN, INT64_MAX, 1000000007, 64, 65, 129};
  static const double floats[] = {1.5, -2.25, 1e300, -1e-300, 0.5, 3.0e18};
  int n = 0;
  for (int64_t i = 1; i <= 20; i++) /* the array part */
    keys[n++] = (cc_skey_t){CC_SK_INT, 0, {.i = i}};
  for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
    keys[n++] = (cc_skey_t){CC_SK_INT, 0, {.i = ints[i]}};
  for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++)
    keys[n++] = (cc_skey_t){CC_SK_FLOAT, 0, {.f = floats[i]}};
  keys[n++] = (cc_skey_t){CC_SK_BOOL, 0, {.i = 0}};
  keys[n++] = (cc_skey_t){CC_SK_BOOL, 0, {.i = 1}};
  {
    static const size_t lens[] = {0, 1, 1, 15, 16, 16, 17, 17, 40, 200, 255, 3};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
      char *s = strkeys[n];
      for (size_t j = 0; j < lens[i]; j++)
        s[j] = (char)('a' + (j * 7 + i) % 26);
      if (lens[i] > 2 && i % 2) s[1] = '\0'; /* an embedded zero */
      keys[n++] = (cc_skey_t){CC_SK_STR, lens[i], {.s = s}};
    }
  }
  if (n != NKEYS) abort();
}

/* ---- values ---------------------------------------------------------------- */

/* A value: [id: 4 bytes][bytes derived from id]; with CC_ITEM_OBJS every
 * release is counted (the binding's hook would unreference objects). */
static long made, released;

static void count_release(const void *data, size_t len) {
  (void)data;
  (void)len;
  released++;
}

static void value_bytes(unsigned char *v, uint32_t len, uint32_t id) {
  memcpy(v, &id, 4);
  for (uint32_t j = 4; j < len; j++)
    v[j] = (unsigned char)(id * 13 + j);
}

/* ---- the model ---------------------------------------------------------------- */

typedef struct model {
  int present[NKEYS];
  uint32_t id[NKEYS], len[NKEYS];
} model_t;

#define CHECK(c)                                                                         \
  do {                                                                                   \
    if (!(c)) {                                                                          \
      fprintf(stderr, "shared_fuzz: %s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
      abort();                                                                           \
    }                                                                                    \
  } while (0)

static void check_key(cc_shared_t *s, const model_t *m, int k) {
  cc_item_t it;
  CHECK(cc_shared_get(s, &keys[k], &it) == 0);
  if (!m->present[k]) {
    CHECK(it.kind == 0);
    return;
  }
  CHECK(it.kind == 1 && it.len == m->len[k]);
  {
    unsigned char want[MAXVAL];
    value_bytes(want, it.len, m->id[k]);
    CHECK(memcmp(cc_item_data(&it), want, it.len) == 0);
  }
  cc_item_clear(&it);
}

static int key_index(int type, const unsigned char *p, uint32_t len) {
  for (int k = 0; k < NKEYS; k++) {
    if (keys[k].type != type) continue;
    if (type == CC_SK_STR) {
      if (keys[k].len == len && memcmp(keys[k].u.s, p, len) == 0) return k;
    } else if (memcmp(&keys[k].u.i, p, 8) == 0) {
      return k;
    }
  }
  return -1;
}

static void check_all(cc_shared_t *s, const model_t *m) {
  uint32_t n, want = 0;
  int64_t border, want_border = 0, need;
  static unsigned char buf[NKEYS * 300];
  int seen[NKEYS] = {0};
  for (int k = 0; k < NKEYS; k++) {
    want += (uint32_t)m->present[k];
    check_key(s, m, k);
  }
  while (want_border < 20 && m->present[want_border]) /* keys 0..19 are 1..20 */
    want_border++;
  CHECK(cc_shared_count(s, &n) == 0 && n == want);
  CHECK(cc_shared_len(s, &border) == 0 && border == want_border);
  need = cc_shared_snapshot(s, buf, sizeof buf);
  CHECK(need >= 0 && (size_t)need <= sizeof buf);
  for (int64_t off = 0; off < need;) {
    uint32_t len;
    int k;
    CHECK(need - off >= 5);
    memcpy(&len, buf + off + 1, 4);
    CHECK((uint64_t)(need - off - 5) >= len);
    k = key_index(buf[off], buf + off + 5, len);
    CHECK(k >= 0 && m->present[k] && !seen[k]);
    seen[k] = 1;
    off += 5 + len;
  }
  for (int k = 0; k < NKEYS; k++)
    CHECK(seen[k] == m->present[k]);
}

/* ---- one program ------------------------------------------------------------------ */

static void set_key(cc_shared_t *s, model_t *m, int k, uint32_t len, uint32_t id) {
  unsigned char v[MAXVAL];
  cc_item_t it;
  unsigned flags = (id % 3 == 0) ? CC_ITEM_OBJS : 0; /* boxed even when short */
  value_bytes(v, len, id);
  CHECK(cc_item_make(&it, v, len, 1, flags) == 0);
  if (flags) made++;
  CHECK(cc_shared_set(s, &keys[k], &it) == 0);
  CHECK(it.kind == 0);
  m->present[k] = 1;
  m->id[k] = id;
  m->len[k] = len;
}

static void del_key(cc_shared_t *s, model_t *m, int k) {
  cc_item_t none = {0};
  CHECK(cc_shared_set(s, &keys[k], &none) == 0);
  m->present[k] = 0;
}

static void run_program(const uint8_t *p, size_t n) {
  cc_arena_stats_t before, after;
  cc_shared_t *s;
  model_t m;
  uint32_t id = 0, depth = 0;
  size_t i = 0;
  memset(&m, 0, sizeof m);
  made = released = 0;
  cc_arena_stats(&before);
  s = cc_shared_new("fuzz");
  CHECK(s != NULL);
  while (i < n) {
    uint8_t op = p[i++];
    int k = i < n ? p[i] % NKEYS : 0;
    uint32_t len = i + 1 < n ? 4 + (uint32_t)p[i + 1] * 2 : 4;
    switch (op % 8) {
    case 0:
    case 1: /* set */
      i += 2;
      set_key(s, &m, k, len, ++id);
      break;
    case 2: /* delete */
      i += 1;
      del_key(s, &m, k);
      break;
    case 3: /* get */
      i += 1;
      check_key(s, &m, k);
      break;
    case 4: /* fill a run of keys (grows the array) */
      i += 2;
      for (int j = 0; j < (int)(len % 40); j++)
        set_key(s, &m, (k + j) % NKEYS, 4 + (uint32_t)j * 5, ++id);
      break;
    case 5: /* drain a run of keys (shrinks it) */
      i += 2;
      for (int j = 0; j < (int)(len % 48); j++)
        del_key(s, &m, (k + j) % NKEYS);
      break;
    case 6: /* hold / unhold: the holder's own operations go through */
      if (depth < 3 && (op & 8)) {
        CHECK(cc_shared_hold(s, CC_FOREVER) == 0);
        depth++;
      } else if (depth > 0) {
        CHECK(cc_shared_unhold(s) == 0);
        depth--;
      }
      break;
    default:
      check_all(s, &m);
      break;
    }
  }
  check_all(s, &m);
  while (depth-- > 0)
    CHECK(cc_shared_unhold(s) == 0);
  CHECK(cc_shared_unhold(s) == CC_ENOTOWNER);
  cc_obj_unref(&s->h);
  CHECK(released == made); /* every value released once, none twice */
  cc_arena_stats(&after);
  if (after.nblocks != before.nblocks)
    fprintf(stderr, "shared_fuzz: %zu arena blocks before, %zu after\n", before.nblocks,
            after.nblocks);
  CHECK(after.nblocks == before.nblocks); /* nothing leaked */
}

static void setup(void) {
  static int done;
  if (done) return;
  done = 1;
  if (cc_arena_init() != 0) abort();
  make_keys();
  cc_item_release = count_release;
  {
    cc_shared_t *s = cc_shared_new(NULL); /* the caller's actor exists before */
    if (!s || cc_shared_unhold(s) != CC_ENOTOWNER) abort(); /* the first count */
    cc_obj_unref(&s->h);
  }
}

#ifdef CONCLUA_LIBFUZZER

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  setup();
  run_program(data, size);
  return 0;
}

#else
#include "fuzz_driver.h"

static uint64_t rng_state;

static uint64_t rng(void) { /* xorshift64* */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545F4914F6CDD1Dull;
}

static int run_random(long iterations, uint64_t seed) {
  static uint8_t buf[4096];
  rng_state = seed ? seed : 0x9E3779B97F4A7C15ull;
  for (long it = 0; it < iterations; it++) {
    size_t n = (size_t)(rng() % sizeof buf);
    for (size_t j = 0; j < n; j++)
      buf[j] = (uint8_t)rng();
    run_program(buf, n);
  }
  printf("shared_fuzz: %ld programs (seed %llu): no disagreement\n", iterations,
         (unsigned long long)(seed ? seed : 0x9E3779B97F4A7C15ull));
  return 0;
}

static void one_program(const uint8_t *data, size_t size) {
  run_program(data, size);
}

int main(int argc, char **argv) {
  setup();
  return fuzz_main("shared_fuzz", argc, argv, 1 << 20, run_random, one_program);
}
#endif
