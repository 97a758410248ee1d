/* lshared.c - placeholder until the shared binding lands. */
#include "lconc.h"

void conc_open_shared(lua_State *L) {
  (void)L;
}
