/*
 * lprint.c - print that writes each whole line at once.
 *
 * Lua's own print calls fwrite once per argument and once per separator, so
 * two threads printing at the same time mix their lines ("thread 1
 * startthread 2: 0"). This print builds the line first, then, holding
 * stdout's stdio lock, flushes what io.write left buffered (so the order
 * within one thread stays as written) and writes the line with write(2).
 * One write(2) of a line up to PIPE_BUF bytes is never interleaved with
 * another process's on a pipe, and on a regular file or terminal it lands
 * whole too; forked processes share the descriptor, so this holds between
 * threads and processes alike.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "lconc.h"

/* Writes all of buf[0..len) to fd, retrying short writes and EINTR.
 * Returns 0 or an errno value. */
static int write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

static int l_print(lua_State *L) {
  int n = lua_gettop(L), err;
  luaL_Buffer b;
  const char *line;
  size_t len;
  luaL_buffinit(L, &b);
  for (int i = 1; i <= n; i++) {
    if (i > 1) luaL_addchar(&b, '\t');
    luaL_tolstring(L, i, NULL); /* __tostring and __name, as Lua's print */
    luaL_addvalue(&b);
  }
  luaL_addchar(&b, '\n');
  luaL_pushresult(&b);
  line = lua_tolstring(L, -1, &len);
  flockfile(stdout);
  fflush(stdout);
  err = write_all(fileno(stdout), line, len);
  funlockfile(stdout);
  if (err && err != EPIPE) return luaL_error(L, "print: %s", strerror(err));
  return 0;
}

void conc_open_print(lua_State *L) {
  /* Replace the base library's print (a C function) in this state's
   * globals; a print the host or script defined in Lua is left alone. */
  lua_getglobal(L, "print");
  if (lua_iscfunction(L, -1)) {
    lua_pushcfunction(L, l_print);
    lua_setglobal(L, "print");
  }
  lua_pop(L, 1);
}
