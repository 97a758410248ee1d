/*
 * options_fuzz.c - the conclua program's option parser (src/options.c).
 *
 * An input is a command line: arguments separated by zero bytes (argv[0]
 * is "conclua"). cli_parse_args must not crash, read past an argument or
 * the argv array (every argument sits in a malloc block of its exact size,
 * so a sanitizer build catches it), and its answer must be consistent: the
 * index it returns names an argument (or 0), the file names it returns
 * point into the arguments, and a second parse gives the same answer.
 *
 *   options_fuzz N [SEED]   N random command lines from a list of tokens
 *   options_fuzz FILE...    parses each file once (replays a saved input)
 *
 * Compiled with -DCONCLUA_LIBFUZZER it is a libFuzzer target instead.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define MAXARGS 64

#define CHECK(c)                                                                          \
  do {                                                                                    \
    if (!(c)) {                                                                           \
      fprintf(stderr, "options_fuzz: %s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
      abort();                                                                            \
    }                                                                                     \
  } while (0)

/* True when p points into one of the arguments. */
static int in_args(char **argv, int argc, const char *p) {
  for (int i = 0; i < argc; i++)
    if (p >= argv[i] && p <= argv[i] + strlen(argv[i])) return 1;
  return 0;
}

static void parse_line(const uint8_t *data, size_t size) {
  char *argv[MAXARGS + 2];
  int argc = 1, first, first2, flags, flags2;
  cli_opts o, o2;
  size_t start = 0;
  argv[0] = strdup("conclua");
  CHECK(argv[0]);
  for (size_t i = 0; i <= size && argc <= MAXARGS; i++) {
    if (i < size && data[i] != 0) continue;
    if (i == size && start == size && size > 0) break; /* a trailing zero ends it */
    argv[argc] = malloc(i - start + 1);
    CHECK(argv[argc]);
    memcpy(argv[argc], data + start, i - start);
    argv[argc][i - start] = '\0';
    argc++;
    start = i + 1;
  }
  argv[argc] = NULL;
  memset(&o, 0, sizeof o);
  flags = cli_parse_args(argv, &first, &o);
  CHECK(first >= 0 && first < argc);
  if (flags & HAS_ERROR) CHECK(first >= 1);
  if (o.trace_file) CHECK(in_args(argv, argc, o.trace_file));
  if (o.timeline_file) CHECK(in_args(argv, argc, o.timeline_file));
  CHECK(o.lock_order == 0 || o.lock_order == 1);
  memset(&o2, 0, sizeof o2);
  flags2 = cli_parse_args(argv, &first2, &o2);
  CHECK(flags == flags2 && first == first2 && memcmp(&o, &o2, sizeof o) == 0);
  for (int i = 0; i < argc; i++)
    free(argv[i]);
}

#ifdef CONCLUA_LIBFUZZER

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  parse_line(data, size);
  return 0;
}

#else
#include "fuzz_driver.h"

static const char *const tokens[] = {
    "-",        "--",         "-e",          "print(1)",       "-i",        "-v",
    "-E",       "-W",         "-l",          "mod",            "-lmod",     "-h",
    "-x",       "-ie",        "-vi",         "--help",         "--version", "--trace",
    "--trace=", "--trace=t",  "--timeline",  "--timeline=x",   "--lock-order",
    "--lock",   "--tracex",   "script.lua",  "a b",            "",          "-e-",
    "--=",      "---",        "-\xff",       "--timeline=-x",  "arg",
};

static uint64_t rng_state;

static uint64_t rng(void) { /* xorshift64* */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545F4914F6CDD1Dull;
}

static int run_random(long iterations, uint64_t seed) {
  static uint8_t buf[4096];
  const size_t ntok = sizeof tokens / sizeof tokens[0];
  rng_state = seed ? seed : 0x9E3779B97F4A7C15ull;
  for (long it = 0; it < iterations; it++) {
    size_t n = 0, nargs = (size_t)(rng() % 8);
    for (size_t a = 0; a < nargs; a++) {
      const char *t = tokens[rng() % ntok];
      size_t len = strlen(t);
      if (rng() % 8 == 0) len = (size_t)(rng() % (len + 1)); /* cut short */
      memcpy(buf + n, t, len);
      n += len;
      if (a + 1 < nargs) buf[n++] = 0;
    }
    parse_line(buf, n);
  }
  printf("options_fuzz: %ld command lines (seed %llu): ok\n", iterations,
         (unsigned long long)(seed ? seed : 0x9E3779B97F4A7C15ull));
  return 0;
}

static void one_line(const uint8_t *data, size_t size) {
  parse_line(data, size);
}

int main(int argc, char **argv) {
  return fuzz_main("options_fuzz", argc, argv, 1 << 16, run_random, one_line);
}
#endif
