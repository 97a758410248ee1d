/* lprocess.c - placeholder until the process binding lands. */
#include "lconc.h"

void conc_open_process(lua_State *L) {
  (void)L;
}
