/*
 * lvalue.h - one Lua value <-> one cc_item_t (queue items, shared-table
 * values).
 *
 * Scalars take a fast path that never enters the codec: booleans, integers,
 * floats and strings are stored in a tiny tagged form of our own (the item's
 * `kind` byte names it; the bytes are the raw 8-byte number or the string's
 * bytes). Everything else (tables, functions, conc objects, ...) goes
 * through the codec (kind CONC_K_CODEC), encoded straight into the arena and
 * handed to the item without a further copy. See docs/QUEUES.md.
 */
#ifndef LVALUE_H
#define LVALUE_H

#include <lua.h>

#include "item.h"

enum {
  CONC_K_NONE = 0, /* an empty item: nil */
  CONC_K_CODEC,
  CONC_K_TRUE,
  CONC_K_FALSE,
  CONC_K_INT,
  CONC_K_FLOAT,
  CONC_K_STR
};

/* Stores the value at idx into *it (nil gives an empty item). `what` names
 * the value in codec errors ("item", "value"). Raises a Lua error when the
 * value cannot be copied or the arena is full; *it is then empty. */
void conc_item_from_lua(lua_State *L, int idx, cc_item_t *it, const char *what);

/* Pushes the value *it holds (nil for an empty item). Does not consume it.
 * Raises on malformed codec data or a memory error. */
void conc_item_push(lua_State *L, const cc_item_t *it);

/* Pushes the value *it holds and clears the item, also when the push
 * raises (Lua out of memory, a decode error): what the item held in the
 * arena is then released, never leaked. For items taken out of a
 * container (queue get, pipe recv, shared-table read). */
void conc_item_push_take(lua_State *L, cc_item_t *it);

/* Installs the codec's release hook for items (idempotent, thread-safe). */
void conc_item_init(void);

#endif
