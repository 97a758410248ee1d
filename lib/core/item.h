/*
 * item.h - one encoded value stored in the arena (a queue item, a shared
 * table's value).
 *
 * The core does not know the codec: an item is an opaque byte string plus a
 * one-byte `kind` the binding chooses (its own tag for the format) and a flag
 * saying whether the bytes hold conc object references. Small items without
 * object references live inline in the 64-byte cc_item_t itself, so a queue
 * slot or a table entry needs no allocation; anything else lives in a
 * reference-counted box in the arena, so a reader can take a reference under
 * its container's lock and decode after dropping the lock, while a writer
 * replaces or removes the item.
 *
 * Lifetimes: an item owns its box (one reference) and, through the box, the
 * object references its bytes hold. cc_item_clear() drops them; when the last
 * reference to a box goes, the binding's cc_item_release hook releases the
 * object references, then the box is freed.
 *
 * Thread-safety: an item is a plain value guarded by its container's lock;
 * only the box reference count is atomic. cc_item_clear() may run the release
 * hook, which unreferences objects (and may destroy them): call it outside
 * every container lock.
 */
#ifndef CC_ITEM_H
#define CC_ITEM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "cc.h"

/* Items up to this many bytes (and without object references) are inline. */
#define CC_ITEM_INLINE 56

enum {
  CC_ITEM_EXT = 1,   /* stored in a box (u.box) */
  CC_ITEM_OBJS = 2,  /* bytes hold conc object references */
  CC_ITEM_ADOPT = 4, /* cc_item_make: `data` is a cc_alloc block to take over */
};

typedef struct cc_box {
  _Atomic int32_t refs;
  uint32_t adopted; /* data is a separate block (not right after the box) */
  void *data;
} cc_box_t;

typedef struct cc_item {
  uint32_t len;
  uint8_t flags; /* CC_ITEM_EXT | CC_ITEM_OBJS */
  uint8_t kind;  /* the binding's format tag; 0 for an empty item */
  uint16_t spare;
  union {
    unsigned char bytes[CC_ITEM_INLINE];
    cc_box_t *box;
  } u;
} cc_item_t;

/* Set by the binding before any item with CC_ITEM_OBJS exists: drops the
 * object references held by encoded bytes. The same function address is
 * valid in every forked process (same binary). */
extern void (*cc_item_release)(const void *data, size_t len);

/* Makes `it` hold a copy of data[0..len) (or, with CC_ITEM_ADOPT, takes over
 * the cc_alloc block `data`; a small one is copied inline and freed). flags:
 * CC_ITEM_OBJS and/or CC_ITEM_ADOPT. Returns 0, or CC_ENOMEM / CC_EOVERFLOW
 * (len >= 4 GiB) with `it` empty and `data` still the caller's. */
int cc_item_make(cc_item_t *it, const void *data, size_t len, unsigned kind,
                 unsigned flags);

/* Makes `it` an uninitialised item of len bytes without object references
 * and returns where to write them (one copy in for raw strings). NULL on
 * CC_ENOMEM / too long, with `it` empty. */
void *cc_item_alloc(cc_item_t *it, size_t len, unsigned kind);

/* The item's bytes (valid while the caller owns `it` or a share of it). */
static inline const void *cc_item_data(const cc_item_t *it) {
  return (it->flags & CC_ITEM_EXT) ? it->u.box->data : (const void *)it->u.bytes;
}

/* Copies src into dst taking another reference to src's box: dst can be
 * read after the container lock that guards src is dropped. Never blocks,
 * never allocates. */
void cc_item_share(const cc_item_t *src, cc_item_t *dst);

/* Drops what `it` holds (see above) and leaves it empty. Call outside
 * container locks. */
void cc_item_clear(cc_item_t *it);

#endif
