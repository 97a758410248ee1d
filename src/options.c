/*
 * options.c - the command line of the conclua program: lua 5.4's options
 * plus conclua's long ones. Pure parsing (no Lua, no side effects), so a
 * fuzzer can drive it alone.
 */
#include <string.h>

#include "cli.h"

/* --name, --name=value or --name value. Returns the flags to add. */
static int long_option(char **argv, int *i, cli_opts *o) {
  const char *a = argv[*i] + 2;
  static const char *const names[] = {"trace", "timeline"};
  if (strcmp(a, "lock-order") == 0) {
    o->lock_order = 1;
    return 0;
  }
  if (strcmp(a, "help") == 0) return HAS_HELP;
  if (strcmp(a, "version") == 0) return HAS_V | HAS_VERSION;
  for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
    size_t n = strlen(names[k]);
    const char *v;
    if (strncmp(a, names[k], n) != 0 || (a[n] != '\0' && a[n] != '=')) continue;
    if (a[n] == '=') {
      v = a + n + 1;
    } else {
      v = argv[*i + 1];
      if (v == NULL || v[0] == '-') return HAS_ERROR | NEEDS_ARG;
      (*i)++;
    }
    if (*v == '\0') return HAS_ERROR | NEEDS_ARG;
    if (k == 0)
      o->trace_file = v;
    else
      o->timeline_file = v;
    return 0;
  }
  return HAS_ERROR;
}

int cli_parse_args(char **argv, int *first, cli_opts *o) {
  int args = 0, i;
  *first = 0;
  if (argv[0] == NULL) return 0;
  for (i = 1; argv[i] != NULL; i++) {
    *first = i;
    if (argv[i][0] != '-') return args; /* the script */
    switch (argv[i][1]) {
    case '-':
      if (argv[i][2] == '\0') { /* "--" */
        *first = argv[i + 1] != NULL ? i + 1 : 0;
        return args;
      }
      args |= long_option(argv, &i, o);
      if (args & (HAS_ERROR | HAS_HELP)) return args;
      break;
    case '\0': /* "-": the script is stdin */
      return args;
    case 'h': /* not in lua: usage on stdout */
      if (argv[i][2] != '\0') return HAS_ERROR;
      return args | HAS_HELP;
    case 'E':
      if (argv[i][2] != '\0') return HAS_ERROR;
      args |= HAS_NOENV;
      break;
    case 'W':
      if (argv[i][2] != '\0') return HAS_ERROR;
      break;
    case 'i':
      args |= HAS_I; /* -i implies -v */
      /* FALLTHROUGH */
    case 'v':
      if (argv[i][2] != '\0') return HAS_ERROR;
      args |= HAS_V;
      break;
    case 'e':
      args |= HAS_E;
      /* FALLTHROUGH */
    case 'l':
      if (argv[i][2] == '\0') {
        if (argv[i + 1] == NULL || argv[i + 1][0] == '-') return HAS_ERROR | NEEDS_ARG;
        i++;
      }
      break;
    default:
      return HAS_ERROR;
    }
  }
  *first = 0;
  return args;
}

