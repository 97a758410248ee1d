/*
 * arena.h - the shared-object arena and reference-counted conc objects.
 *
 * Every conc object (thread, lock, queue, shared table, ...) and every copied
 * value that crosses a thread lives in one region mapped MAP_SHARED |
 * MAP_ANONYMOUS | MAP_NORESERVE when the library starts. Forked children
 * inherit the mapping at the same address, so plain pointers stay valid in
 * every process of the family and every object works across fork() with no
 * second implementation. See docs/ARENA.md for the design and its limits.
 */
#ifndef CC_ARENA_H
#define CC_ARENA_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "mutex.h"

/* Maps the arena if not mapped yet. Thread-safe, idempotent; called from
 * every entry point. The size comes from CONCLUA_ARENA_MB (MiB, 1 to
 * 1048576); by default 4096, or a quarter of an address-space limit
 * (ulimit -v). Returns 0, CC_EINVAL (a malformed CONCLUA_ARENA_MB) or
 * CC_ENOMEM (the kernel refused the reservation); cc_arena_error() then
 * says why. */
int cc_arena_init(void);
/* Why cc_arena_init failed (a sentence naming the setting or the limit),
 * or NULL when the arena is mapped. */
const char *cc_arena_error(void);

/* Allocation from the arena. NULL when the arena is exhausted. Memory is
 * 16-byte aligned; cc_calloc zeroes. Safe from any thread or process. */
void *cc_alloc(size_t n);
void *cc_calloc(size_t n);
void cc_free(void *p);
/* A block written by another process is about to be read (decoding a
 * result or an item): under ThreadSanitizer, orders this thread after every
 * cc_free so far, which TSan cannot see through the other process. Does
 * nothing in other builds. */
void cc_arena_handoff(void);
/* The other half, under ThreadSanitizer only (mutex.c calls it at every
 * unlock): what this thread did under an arena mutex may be followed, in
 * another process, by freeing that memory, and then here by reusing it. */
void cc_arena_handoff_release(void);
/* Usable size of a block from cc_alloc. */
size_t cc_alloc_size(const void *p);
/* True when p points into the arena. */
int cc_in_arena(const void *p);

typedef struct cc_arena_stats {
  size_t mapped;    /* bytes reserved */
  size_t used;      /* bytes handed out by the bump pointer so far */
  size_t live;      /* bytes in live blocks */
  size_t nblocks;   /* live blocks */
} cc_arena_stats_t;
void cc_arena_stats(cc_arena_stats_t *st);

/* For the Lua binding's collectors (lib/lua/lmemory.c): memory that a Lua
 * object keeps alive in the arena is invisible to them otherwise.
 *
 * cc_arena_take_debt: the bytes the calling thread has allocated since they
 * were last taken, if at least `min` (and then resets the count); else 0.
 * Thread-local.
 *
 * cc_arena_pressure: an epoch that changes whenever the live bytes pass a
 * threshold (twice the live size after the last collections, at least
 * 64 MiB more, at most half of what is left), or on cc_arena_pressure_raise
 * (an allocation failed): every state should then collect, since the
 * garbage may be in any of them. cc_arena_pressure_settled, after a full
 * collection, brings the threshold down to what is live now.
 * None of them blocks. */
size_t cc_arena_take_debt(size_t min);
uint32_t cc_arena_pressure(void);
void cc_arena_pressure_raise(void);
void cc_arena_pressure_settled(void);

/* Fault injection for tests: the n-th allocation from now by this process
 * (any thread) returns NULL; 0 cancels. */
void cc_arena_fail_in(long n);

/* ---- objects ---------------------------------------------------------- */

struct cc_obj;
struct cc_actor;

/* One per kind of object; static, so its address is the same in every
 * forked process. */
typedef struct cc_type {
  const char *name; /* "lock", "queue", ...: the Lua metatable is "conc.<name>" */
  /* Frees what the object owns (not the object itself). May be NULL. */
  void (*destroy)(struct cc_obj *o);
  /* For lock-like objects: the actor holding it, or NULL. Used by deadlock
   * detection and dumps. May be NULL. */
  struct cc_actor *(*owner)(struct cc_obj *o);
  /* For lock-like objects: called when actor `a` ends while still holding
   * `o`; must release it (all recursion levels) so waiters are not stranded.
   * May be NULL. */
  void (*abandon)(struct cc_obj *o, struct cc_actor *a);
  /* Optional: called when the last reference goes. Returns non-zero when
   * the object must live on (a lock still held: its release frees it
   * with cc_obj_free), 0 to free it now. */
  int (*linger)(struct cc_obj *o);
} cc_type_t;

#define CC_OBJ_MAGIC 0xC0C1A0B1u
#define CC_NAME_MAX 64

typedef struct cc_obj {
  const cc_type_t *type;
  _Atomic int32_t refs;
  uint32_t magic;
  int64_t id; /* unique over the arena's life */
  char name[CC_NAME_MAX];
} cc_obj_t;

/* A zeroed object of `size` bytes (size includes the cc_obj_t header, which
 * must be the first member) with one reference. `name` may be NULL.
 * NULL when out of memory. */
void *cc_obj_new(const cc_type_t *type, size_t size, const char *name);
void cc_obj_ref(cc_obj_t *o);
/* Drops a reference; the last one destroys and frees the object (unless
 * its type's linger hook keeps it). Never blocks on anything but the
 * allocator's short internal lock. */
void cc_obj_unref(cc_obj_t *o);
/* Destroys and frees an object that has no reference left: cc_obj_unref's
 * end, and a lingering object's (see cc_type_t.linger) when it is done. */
void cc_obj_free(cc_obj_t *o);
/* Validates a pointer read from untrusted bytes: in the arena, aligned, and
 * carrying the object magic. */
int cc_obj_valid(const void *p);
/* The same, or an object with no reference left that lingers because it is
 * held (cc_type_t.linger): what an actor's hold list may name. */
int cc_obj_valid_held(const void *p);
void cc_obj_set_name(cc_obj_t *o, const char *name);

/* A fresh id, unique across threads and processes. */
int64_t cc_next_id(void);

/* ---- arena-wide globals ------------------------------------------------
 * State that must be shared by every process lives here, at the start of
 * the arena. Modules add their own fields. */
#define CC_ACTOR_CHUNKS 4096 /* chunks of the actor table: see actor.h */

typedef struct cc_globals {
  _Atomic int64_t next_id;
  cc_mutex_t graph_lock; /* wait-for graph: see actor.c */
  cc_mutex_t registry_lock; /* live threads/processes list: see thread.c */
  void *registry_head;
  /* The actor table (actor.c): chunks allocated as it grows, never moved
   * or freed, so an actor's address and index stay valid in every process. */
  _Atomic(void *) actor_chunks[CC_ACTOR_CHUNKS];
  _Atomic uint32_t nactors; /* slots in published chunks */
  cc_mutex_t actors_lock;
  void *actor_free;
  _Atomic(void *) wait_table; /* lib/core/wait.c */
  /* The actors' site records (trace.c), chunk for chunk with the table. */
  _Atomic(void *) site_chunks[CC_ACTOR_CHUNKS];
} cc_globals_t;

cc_globals_t *cc_globals(void);

#endif
