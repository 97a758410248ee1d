/* item.c - inline or boxed encoded values; see item.h. */
#include "item.h"

#include <string.h>

#include "arena.h"

void (*cc_item_release)(const void *data, size_t len);

static void set_empty(cc_item_t *it) {
  it->len = 0;
  it->flags = 0;
  it->kind = 0;
  it->spare = 0;
}

void *cc_item_alloc(cc_item_t *it, size_t len, unsigned kind) {
  cc_box_t *b;
  set_empty(it);
  if (len > UINT32_MAX) return NULL;
  it->len = (uint32_t)len;
  it->kind = (uint8_t)kind;
  if (len <= CC_ITEM_INLINE) return it->u.bytes;
  b = cc_alloc(sizeof *b + len);
  if (!b) {
    set_empty(it);
    return NULL;
  }
  atomic_store_explicit(&b->refs, 1, memory_order_relaxed);
  b->adopted = 0;
  b->data = b + 1;
  it->flags = CC_ITEM_EXT;
  it->u.box = b;
  return b->data;
}

int cc_item_make(cc_item_t *it, const void *data, size_t len, unsigned kind,
                 unsigned flags) {
  cc_box_t *b;
  set_empty(it);
  if (len > UINT32_MAX) return CC_EOVERFLOW;
  if (!(flags & CC_ITEM_OBJS) && len <= CC_ITEM_INLINE) {
    memcpy(it->u.bytes, data, len);
    if (flags & CC_ITEM_ADOPT) cc_free((void *)data);
  } else if (flags & CC_ITEM_ADOPT) {
    b = cc_alloc(sizeof *b);
    if (!b) return CC_ENOMEM;
    b->adopted = 1;
    b->data = (void *)data;
    goto boxed;
  } else {
    b = cc_alloc(sizeof *b + len);
    if (!b) return CC_ENOMEM;
    b->adopted = 0;
    b->data = b + 1;
    memcpy(b->data, data, len);
    goto boxed;
  }
  it->len = (uint32_t)len;
  it->kind = (uint8_t)kind;
  return 0;
boxed:
  atomic_store_explicit(&b->refs, 1, memory_order_relaxed);
  it->len = (uint32_t)len;
  it->kind = (uint8_t)kind;
  it->flags = (uint8_t)(CC_ITEM_EXT | (flags & CC_ITEM_OBJS));
  it->u.box = b;
  return 0;
}

void cc_item_share(const cc_item_t *src, cc_item_t *dst) {
  *dst = *src;
  if (src->flags & CC_ITEM_EXT)
    atomic_fetch_add_explicit(&src->u.box->refs, 1, memory_order_relaxed);
}

void cc_item_clear(cc_item_t *it) {
  if (it->flags & CC_ITEM_EXT) {
    cc_box_t *b = it->u.box;
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) {
      if ((it->flags & CC_ITEM_OBJS) && cc_item_release)
        cc_item_release(b->data, it->len);
      if (b->adopted) cc_free(b->data);
      cc_free(b);
    }
  }
  set_empty(it);
}
