/*
 * fuzz_driver.h - the standalone side every fuzz target shares (when it is
 * not built for libFuzzer): `prog N [SEED]` runs N random inputs through the
 * target's own run_random, `prog FILE...` replays files (a seed corpus)
 * through `one`. Include it once, after defining the target.
 */
#ifndef FUZZ_DRIVER_H
#define FUZZ_DRIVER_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Runs each file of argv[1..] through one(data, size), up to `max` bytes
 * of each. 0, or 1 when a file cannot be read. */
static int fuzz_run_files(const char *prog, int argc, char **argv, size_t max,
                          void (*one)(const uint8_t *data, size_t size)) {
  uint8_t *buf = malloc(max);
  if (!buf) return 1;
  for (int i = 1; i < argc; i++) {
    FILE *f = fopen(argv[i], "rb");
    size_t n;
    if (!f) {
      fprintf(stderr, "%s: %s: %s\n", prog, argv[i], strerror(errno));
      free(buf);
      return 1;
    }
    n = fread(buf, 1, max, f);
    fclose(f);
    one(buf, n);
    printf("%s: ok\n", argv[i]);
  }
  free(buf);
  return 0;
}

/* The shared main: N [SEED] -> run_random(N, SEED), else the files. */
static int fuzz_main(const char *prog, int argc, char **argv, size_t max,
                     int (*run_random)(long n, uint64_t seed),
                     void (*one)(const uint8_t *data, size_t size)) {
  char *end;
  long n;
  if (argc < 2) {
    fprintf(stderr, "usage: %s N [SEED] | %s FILE...\n", prog, prog);
    return 2;
  }
  n = strtol(argv[1], &end, 10);
  if (*end == '\0' && n >= 0) return run_random(n, argc > 2 ? strtoull(argv[2], NULL, 0) : 0);
  return fuzz_run_files(prog, argc, argv, max, one);
}

#endif
