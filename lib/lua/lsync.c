/* lsync.c - placeholder until the sync binding lands. */
#include "lconc.h"

void conc_open_sync(lua_State *L) {
  (void)L;
}
