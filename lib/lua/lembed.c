/*
 * lembed.c - the C side of conclua.h for hosts: version, error codes, and
 * conc objects (queues, events, locks) used from the host's own threads
 * without Lua.
 *
 * Every entry point checks its arguments first (NULL, an object that is not
 * a live conc object, the wrong type) and returns CONCLUA_EINVAL instead of
 * touching them; core error codes are mapped to the public ones in one
 * place (to_public).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "conclua.h"
#include "event.h"
#include "lconc.h"
#include "lock.h"
#include "lvalue.h"
#include "queue.h"

/* conclua_object is the public name of a conc object. */
#define OBJ(o) ((cc_obj_t *)(void *)(o))
#define PUB(o) ((conclua_object *)(void *)(o))

int conclua_version(void) {
  return CONCLUA_VERSION_NUM;
}

const char *conclua_strerror(int err) {
  switch (err) {
  case CONCLUA_OK: return "ok";
  case CONCLUA_EINVAL: return "invalid argument";
  case CONCLUA_ETIMEOUT: return "timeout";
  case CONCLUA_ECLOSED: return "closed";
  case CONCLUA_ENOMEM: return "out of memory";
  case CONCLUA_EINTR: return "interrupted";
  case CONCLUA_EDEADLOCK: return "deadlock";
  case CONCLUA_ENOTOWNER: return "not owner";
  case CONCLUA_ELUA: return "Lua error";
  case CONCLUA_ESYS: return "system error";
  default: return "unknown error";
  }
}

/* The public code for a core result. A wait that returns CC_EINTR consumes
 * the interrupt, as the Lua binding does, so it is reported once. */
static int to_public(int rc) {
  switch (rc) {
  case 0: return CONCLUA_OK;
  case CC_ETIMEOUT:
  case CC_EFULL:
  case CC_EEMPTY: return CONCLUA_ETIMEOUT;
  case CC_ECLOSED: return CONCLUA_ECLOSED;
  case CC_ENOMEM: return CONCLUA_ENOMEM;
  case CC_EINTR: conc_interrupt_consumed(); return CONCLUA_EINTR;
  case CC_EDEADLOCK: return CONCLUA_EDEADLOCK;
  case CC_ENOTOWNER: return CONCLUA_ENOTOWNER;
  case CC_EINVAL: return CONCLUA_EINVAL;
  default: return CONCLUA_ESYS;
  }
}

/* A timeout in seconds -> *d: 0, or CONCLUA_EINVAL for NaN. */
static int to_deadline(double timeout, cc_deadline_t *d) {
  if (isnan(timeout)) return CONCLUA_EINVAL;
  if (timeout < 0) *d = CC_FOREVER;
  else if (timeout == 0) *d = CC_NOW;
  else *d = cc_deadline_in(timeout);
  return 0;
}

/* True when idx is a valid, acceptable index of L. */
static int valid_index(lua_State *L, int idx) {
  int top = lua_gettop(L);
  if (idx > 0) return idx <= top;
  if (idx > LUA_REGISTRYINDEX) return idx != 0 && -idx <= top;
  return 0; /* pseudo-indices hold no conc value a host would pass */
}

/* The object o if it is a live conc object of one of the types, else NULL. */
static cc_obj_t *check(conclua_object *o, const cc_type_t *t1, const cc_type_t *t2) {
  cc_obj_t *x = OBJ(o);
  if (!x || !cc_obj_valid(x)) return NULL;
  if (t1 && x->type != t1 && x->type != t2) return NULL;
  return x;
}

/* ---- objects ------------------------------------------------------------ */

conclua_object *conclua_toobject(lua_State *L, int idx) {
  cc_obj_t *o;
  if (!L || !valid_index(L, idx)) return NULL;
  o = conc_toobj(L, idx);
  if (!o) return NULL;
  cc_obj_ref(o);
  return PUB(o);
}

int conclua_pushobject(lua_State *L, conclua_object *o) {
  cc_obj_t *x = check(o, NULL, NULL);
  if (!L || !x) return CONCLUA_EINVAL;
  conc_push(L, x);
  return CONCLUA_OK;
}

conclua_object *conclua_object_ref(conclua_object *o) {
  cc_obj_t *x = check(o, NULL, NULL);
  if (x) cc_obj_ref(x);
  return x ? o : NULL;
}

void conclua_object_unref(conclua_object *o) {
  cc_obj_t *x = check(o, NULL, NULL);
  if (x) cc_obj_unref(x);
}

const char *conclua_object_type(const conclua_object *o) {
  cc_obj_t *x = check((conclua_object *)o, NULL, NULL);
  return x ? x->type->name : NULL;
}

const char *conclua_object_name(const conclua_object *o) {
  cc_obj_t *x = check((conclua_object *)o, NULL, NULL);
  return x ? x->name : NULL;
}

/* ---- values ------------------------------------------------------------- */

static int push_encoded(lua_State *L) {
  conc_item_push(L, lua_touserdata(L, 1));
  return 1;
}

int conclua_value_push(lua_State *L, const conclua_value *v) {
  if (!L || !v) return CONCLUA_EINVAL;
  switch (v->type) {
  case LUA_TNIL: lua_pushnil(L); return CONCLUA_OK;
  case LUA_TBOOLEAN: lua_pushboolean(L, v->boolean); return CONCLUA_OK;
  case LUA_TNUMBER:
    if (v->isinteger) lua_pushinteger(L, v->integer);
    else lua_pushnumber(L, v->number);
    return CONCLUA_OK;
  case LUA_TSTRING:
    if (!v->str) return CONCLUA_EINVAL;
    lua_pushlstring(L, v->str, v->len);
    return CONCLUA_OK;
  case CONCLUA_TENCODED:
    if (!v->internal_) return CONCLUA_EINVAL;
    lua_pushcfunction(L, push_encoded);
    lua_pushlightuserdata(L, v->internal_);
    return lua_pcall(L, 1, 1, 0) == LUA_OK ? CONCLUA_OK : CONCLUA_ELUA;
  default: return CONCLUA_EINVAL;
  }
}

void conclua_value_free(conclua_value *v) {
  if (!v) return;
  if (v->type == CONCLUA_TENCODED && v->internal_) cc_item_clear(v->internal_);
  free(v->internal_);
  memset(v, 0, sizeof *v);
  v->type = LUA_TNIL;
}

/* Fills *v from the item, which it consumes. */
static int value_from_item(conclua_value *v, cc_item_t *it) {
  switch (it->kind) {
  case CONC_K_TRUE:
  case CONC_K_FALSE:
    v->type = LUA_TBOOLEAN;
    v->boolean = it->kind == CONC_K_TRUE;
    break;
  case CONC_K_INT:
    v->type = LUA_TNUMBER;
    v->isinteger = 1;
    memcpy(&v->integer, it->u.bytes, sizeof v->integer);
    v->number = (lua_Number)v->integer;
    break;
  case CONC_K_FLOAT:
    v->type = LUA_TNUMBER;
    memcpy(&v->number, it->u.bytes, sizeof v->number);
    break;
  case CONC_K_STR: {
    char *s = malloc((size_t)it->len + 1);
    if (!s) {
      cc_item_clear(it);
      return CONCLUA_ENOMEM;
    }
    memcpy(s, cc_item_data(it), it->len);
    s[it->len] = '\0';
    v->type = LUA_TSTRING;
    v->str = s;
    v->len = it->len;
    v->internal_ = s;
    break;
  }
  case CONC_K_CODEC: {
    cc_item_t *keep = malloc(sizeof *keep);
    if (!keep) {
      cc_item_clear(it);
      return CONCLUA_ENOMEM;
    }
    *keep = *it; /* the item (and its object references) moves */
    v->type = CONCLUA_TENCODED;
    v->str = cc_item_data(keep);
    v->len = keep->len;
    v->internal_ = keep;
    return CONCLUA_OK;
  }
  default:
    break; /* nil */
  }
  cc_item_clear(it);
  return CONCLUA_OK;
}

/* ---- queues ------------------------------------------------------------- */

#define QUEUE(o) ((cc_queue_t *)(void *)check((o), &cc_queue_type, NULL))

conclua_object *conclua_queue_new(unsigned maxsize, const char *name) {
  if (maxsize > INT32_MAX || cc_arena_init() != 0) return NULL;
  return PUB(cc_queue_new((uint32_t)maxsize, name ? name : "host"));
}

/* Puts the item (consumed on success, cleared otherwise). */
static int put_item(cc_queue_t *q, cc_item_t *it, double timeout) {
  cc_deadline_t d;
  int rc = to_deadline(timeout, &d);
  if (rc == 0) rc = to_public(cc_queue_put(q, it, d));
  if (rc != 0) cc_item_clear(it);
  return rc;
}

int conclua_queue_put_string(conclua_object *o, const char *s, size_t len, double timeout) {
  cc_queue_t *q = QUEUE(o);
  cc_item_t it;
  void *p;
  if (!q || (!s && len > 0)) return CONCLUA_EINVAL;
  p = cc_item_alloc(&it, len, CONC_K_STR);
  if (!p) return CONCLUA_ENOMEM;
  if (len) memcpy(p, s, len);
  return put_item(q, &it, timeout);
}

/* An inline 8-byte scalar item. */
static void scalar_item(cc_item_t *it, unsigned kind, const void *bytes) {
  memset(it, 0, sizeof *it);
  it->len = 8;
  it->kind = (uint8_t)kind;
  memcpy(it->u.bytes, bytes, 8);
}

int conclua_queue_put_integer(conclua_object *o, lua_Integer i, double timeout) {
  cc_queue_t *q = QUEUE(o);
  cc_item_t it;
  if (!q) return CONCLUA_EINVAL;
  scalar_item(&it, CONC_K_INT, &i);
  return put_item(q, &it, timeout);
}

int conclua_queue_put_number(conclua_object *o, lua_Number n, double timeout) {
  cc_queue_t *q = QUEUE(o);
  cc_item_t it;
  if (!q) return CONCLUA_EINVAL;
  scalar_item(&it, CONC_K_FLOAT, &n);
  return put_item(q, &it, timeout);
}

/* Encodes the value (arg 2) into the item (light userdata, arg 1). */
static int encode_item(lua_State *L) {
  conc_item_from_lua(L, 2, lua_touserdata(L, 1), "item");
  return 0;
}

int conclua_queue_put_value(conclua_object *o, lua_State *L, int idx, double timeout) {
  cc_queue_t *q = QUEUE(o);
  cc_item_t it;
  if (!q || !L || !valid_index(L, idx) || lua_isnil(L, idx)) return CONCLUA_EINVAL;
  if (!lua_checkstack(L, 3)) return CONCLUA_ENOMEM;
  conc_item_init();
  idx = lua_absindex(L, idx);
  lua_pushcfunction(L, encode_item);
  lua_pushlightuserdata(L, &it);
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) return CONCLUA_ELUA;
  return put_item(q, &it, timeout);
}

int conclua_queue_get(conclua_object *o, conclua_value *out, double timeout) {
  cc_queue_t *q = QUEUE(o);
  cc_deadline_t d;
  cc_item_t it;
  int rc;
  if (!out) return CONCLUA_EINVAL;
  memset(out, 0, sizeof *out);
  out->type = LUA_TNIL;
  if (!q) return CONCLUA_EINVAL;
  if ((rc = to_deadline(timeout, &d)) != 0) return rc;
  rc = to_public(cc_queue_get(q, &it, d));
  return rc == 0 ? value_from_item(out, &it) : rc;
}

int conclua_queue_close(conclua_object *o) {
  cc_queue_t *q = QUEUE(o);
  if (!q) return CONCLUA_EINVAL;
  cc_queue_close(q);
  return CONCLUA_OK;
}

long conclua_queue_size(conclua_object *o) {
  cc_queue_t *q = QUEUE(o);
  return q ? (long)cc_queue_size(q) : CONCLUA_EINVAL;
}

/* ---- events ------------------------------------------------------------- */

#define EVENT(o) check((o), &cc_event_type, NULL)

conclua_object *conclua_event_new(const char *name) {
  if (cc_arena_init() != 0) return NULL;
  return PUB(cc_event_new(name ? name : "host"));
}

int conclua_event_set(conclua_object *o) {
  cc_obj_t *e = EVENT(o);
  if (!e) return CONCLUA_EINVAL;
  cc_event_set(e);
  return CONCLUA_OK;
}

int conclua_event_clear(conclua_object *o) {
  cc_obj_t *e = EVENT(o);
  if (!e) return CONCLUA_EINVAL;
  cc_event_clear(e);
  return CONCLUA_OK;
}

int conclua_event_is_set(conclua_object *o) {
  cc_obj_t *e = EVENT(o);
  return e ? cc_event_is_set(e) != 0 : CONCLUA_EINVAL;
}

int conclua_event_wait(conclua_object *o, double timeout) {
  cc_obj_t *e = EVENT(o);
  cc_deadline_t d;
  int rc;
  if (!e) return CONCLUA_EINVAL;
  if ((rc = to_deadline(timeout, &d)) != 0) return rc;
  rc = cc_event_wait(e, d);
  if (rc == 1) return CONCLUA_OK;
  return rc == 0 ? CONCLUA_ETIMEOUT : to_public(rc);
}

/* ---- locks -------------------------------------------------------------- */

#define LOCK(o) check((o), &cc_lock_type, &cc_rlock_type)

conclua_object *conclua_lock_new(const char *name, int recursive) {
  if (cc_arena_init() != 0) return NULL;
  return PUB(cc_lock_new(name ? name : "host", recursive != 0));
}

int conclua_lock_acquire(conclua_object *o, double timeout) {
  cc_obj_t *l = LOCK(o);
  cc_deadline_t d;
  int rc;
  if (!l) return CONCLUA_EINVAL;
  if ((rc = to_deadline(timeout, &d)) != 0) return rc;
  return to_public(cc_lock_acquire(l, d));
}

int conclua_lock_release(conclua_object *o) {
  cc_obj_t *l = LOCK(o);
  return l ? to_public(cc_lock_release(l)) : CONCLUA_EINVAL;
}
