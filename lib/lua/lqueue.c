/* lqueue.c - placeholder until the queue binding lands. */
#include "lconc.h"

void conc_open_queue(lua_State *L) {
  (void)L;
}
