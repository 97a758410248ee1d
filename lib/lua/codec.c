/* placeholder codec: replaced by the real one */
#include "codec.h"
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "arena.h"
void conc_wbuf_init(conc_wbuf_t *b, int in_arena) { memset(b, 0, sizeof *b); b->in_arena = in_arena; }
void conc_wbuf_free(conc_wbuf_t *b) { if (b->in_arena) cc_free(b->data); else free(b->data); b->data = NULL; }
void *conc_wbuf_take(conc_wbuf_t *b, size_t *len) { void *d = b->data; *len = b->len; b->data = NULL; b->len = 0; return d; }
void conc_encode(lua_State *L, int first, int n, conc_wbuf_t *b, const char *what) {
  (void)L; (void)first; (void)what; b->len = 0; b->data = b->in_arena ? cc_alloc(16) : malloc(16);
  memcpy(b->data, &n, sizeof n); b->len = sizeof n;
  for (int i = 0; i < n; i++) lua_pushvalue(L, first + i);
  lua_pop(L, n);
}
int conc_decode(lua_State *L, const void *data, size_t len) { (void)L; (void)data; (void)len; return 0; }
void conc_codec_release(const void *data, size_t len) { (void)data; (void)len; }
