/*
 * arena.c - a process-shared allocator over one MAP_SHARED region.
 *
 * Layout: [cc_arena_hdr_t | globals | blocks ...]. Blocks come from a bump
 * pointer and, once freed, go to a free list per size class. Classes are
 * powers of two from 32 bytes up; each block carries a 16-byte header with
 * its class. Each class has its own cc_mutex, so threads allocating different
 * sizes do not contend, and the critical sections are a few instructions.
 * Freed memory of large classes is returned to the kernel with MADV_REMOVE
 * so a burst of big items does not pin memory forever.
 */
#include "arena.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "cc.h"

#define MIN_SHIFT 5  /* 32 bytes */
#define NCLASSES 40
#define BLOCK_MAGIC 0xB10Cu
#define BIG_SHIFT 22 /* classes >= 4 MiB give their pages back when freed */

typedef struct block_hdr {
  uint32_t cls;
  uint32_t magic;
  uint64_t pad; /* keeps the payload 16-byte aligned */
} block_hdr_t;

typedef struct free_block {
  block_hdr_t h;
  struct free_block *next;
} free_block_t;

typedef struct cc_arena_hdr {
  uint64_t magic;
  size_t size;
  _Atomic size_t bump; /* offset of the first never-used byte */
  _Atomic size_t live;
  /* Memory pressure (cc_arena_pressure): the epoch changes when `live`
   * passes the threshold, which collections bring back down. */
  _Atomic size_t threshold;
  _Atomic uint32_t epoch;
  _Atomic size_t nblocks;
  struct {
    cc_mutex_t lock;
    free_block_t *head;
  } classes[NCLASSES];
  cc_globals_t globals;
} cc_arena_hdr_t;

static cc_arena_hdr_t *arena;
static char *arena_base, *arena_end;
static pthread_once_t arena_once = PTHREAD_ONCE_INIT;
static int arena_err;
static char arena_errmsg[192];

#define DEFAULT_MB 4096u
#define MAX_MB ((size_t)1 << 20) /* 1 TiB: far below any 64-bit address space */
#define MIN_MB 1u

/* Test hook (cc_arena_fail_in): the allocation that brings this to 0 fails. */
static _Atomic long fail_countdown;
/* Bytes this thread has taken from the arena since they were last taken
 * (cc_arena_take_debt): what its Lua collector is told (lmemory.c). */
static _Thread_local size_t thread_debt;

static size_t next_threshold(size_t live);
static void pressure(size_t live);

/* Parses CONCLUA_ARENA_MB: a whole number of MiB in [MIN_MB, MAX_MB].
 * Returns the number, or 0 (and writes the message) when malformed. */
static size_t parse_mb(const char *env) {
  size_t mb = 0;
  const char *c = env;
  if (*c == '\0') goto bad;
  for (; *c; c++) {
    if (*c < '0' || *c > '9') goto bad;
    mb = mb * 10 + (size_t)(*c - '0');
    if (mb > MAX_MB) goto bad;
  }
  if (mb >= MIN_MB) return mb;
bad:
  snprintf(arena_errmsg, sizeof arena_errmsg,
           "CONCLUA_ARENA_MB='%.40s' is not a whole number of MiB from %u to %zu", env,
           MIN_MB, MAX_MB);
  return 0;
}

/* The address-space limit (ulimit -v) in MiB, or 0 when unlimited. */
static size_t as_limit_mb(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_AS, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 0;
  return (size_t)(rl.rlim_cur >> 20);
}

static void *map_region(size_t mb) {
  void *p = mmap(NULL, mb << 20, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

/* Reserves the region. An explicit CONCLUA_ARENA_MB is taken as is or
 * refused with a message; the default is 4 GiB of address space, or a
 * quarter of an address-space limit (ulimit -v), halved while the kernel
 * refuses, so that a limited process still starts with room left for its
 * Lua heaps and thread stacks. */
static void arena_map(void) {
  const char *env = getenv("CONCLUA_ARENA_MB");
  size_t mb, lim = as_limit_mb();
  void *p;
  if (env) {
    if (!(mb = parse_mb(env))) {
      arena_err = CC_EINVAL;
      return;
    }
    if (!(p = map_region(mb))) {
      int e = errno;
      snprintf(arena_errmsg, sizeof arena_errmsg,
               "cannot reserve CONCLUA_ARENA_MB=%zu MiB of address space: %s%s", mb,
               strerror(e), lim ? " (ulimit -v is lower)" : "");
      arena_err = CC_ENOMEM;
      return;
    }
  } else {
    mb = DEFAULT_MB;
    if (lim && lim / 4 < mb) mb = lim / 4 > MIN_MB ? lim / 4 : MIN_MB;
    while (!(p = map_region(mb)) && mb > MIN_MB)
      mb /= 2;
    if (!p) {
      snprintf(arena_errmsg, sizeof arena_errmsg,
               "cannot reserve even %u MiB of address space for the shared arena: %s",
               MIN_MB, strerror(errno));
      arena_err = CC_ENOMEM;
      return;
    }
  }
  arena = p;
  arena->magic = 0x636f6e636c756121ull;
  arena->size = mb << 20;
  atomic_store(&arena->bump, (sizeof(cc_arena_hdr_t) + 63) & ~(size_t)63);
  atomic_store(&arena->globals.next_id, 1);
  atomic_store(&arena->threshold, next_threshold(atomic_load(&arena->bump)));
  arena_base = p;
  arena_end = arena_base + arena->size;
}

int cc_arena_init(void) {
  pthread_once(&arena_once, arena_map);
  return arena_err;
}

const char *cc_arena_error(void) {
  cc_arena_init();
  return arena_err ? arena_errmsg : NULL;
}

cc_globals_t *cc_globals(void) {
  if (cc_unlikely(!arena) && cc_arena_init() != 0) cc_panic("%s", arena_errmsg);
  return &arena->globals;
}

int cc_in_arena(const void *p) {
  return arena && (const char *)p >= arena_base && (const char *)p < arena_end;
}

static unsigned size_class(size_t n) {
  size_t need = n + sizeof(block_hdr_t);
  unsigned c = 0;
  if (need <= ((size_t)1 << MIN_SHIFT)) return 0;
  c = (unsigned)(64 - __builtin_clzll((unsigned long long)(need - 1))) - MIN_SHIFT;
  return c;
}

/* ThreadSanitizer cannot see other processes: a block one thread frees, a
 * child process allocates and fills, and another thread then reads looks
 * like a race between the free and the read; so does a slot one thread
 * read under a queue's lock, whose ring a child process then resized and
 * freed, and which another thread then allocated. Under TSan (only), every
 * free and every arena mutex unlock releases, and every allocation and
 * hand-over acquires, one sync point, so TSan orders them as the
 * cross-process protocol does (at the price of hiding a race between two
 * threads that is ordered only by unrelated arena mutexes). */
#if defined(__SANITIZE_THREAD__)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
static char tsan_sync;
#define TSAN_RELEASE() __tsan_release(&tsan_sync)
#define TSAN_ACQUIRE() __tsan_acquire(&tsan_sync)
#else
#define TSAN_RELEASE() ((void)0)
#define TSAN_ACQUIRE() ((void)0)
#endif

void cc_arena_handoff(void) {
  TSAN_ACQUIRE();
}

void cc_arena_handoff_release(void) {
  TSAN_RELEASE();
}

static size_t class_bytes(unsigned cls) {
  return (size_t)1 << (cls + MIN_SHIFT);
}

void *cc_alloc(size_t n) {
  unsigned cls;
  free_block_t *b;
  size_t bytes, off, live;
  if (cc_unlikely(!arena) && cc_arena_init() != 0) return NULL;
  if (n > ((size_t)1 << 40)) return NULL;
  if (cc_unlikely(atomic_load_explicit(&fail_countdown, memory_order_relaxed) > 0) &&
      atomic_fetch_sub(&fail_countdown, 1) == 1)
    return NULL;
  cls = size_class(n);
  if (cls >= NCLASSES) return NULL;
  bytes = class_bytes(cls);
  cc_mutex_lock(&arena->classes[cls].lock);
  TSAN_ACQUIRE();
  b = arena->classes[cls].head;
  if (b) arena->classes[cls].head = b->next;
  cc_mutex_unlock(&arena->classes[cls].lock);
  if (!b) {
    off = atomic_fetch_add(&arena->bump, bytes);
    if (off + bytes > arena->size) {
      /* Leave the bump where it is: later smaller requests may still fail,
       * but freed blocks keep being reused. */
      return NULL;
    }
    b = (free_block_t *)(arena_base + off);
  }
  b->h.cls = cls;
  b->h.magic = BLOCK_MAGIC;
  live = atomic_fetch_add_explicit(&arena->live, bytes, memory_order_relaxed) + bytes;
  atomic_fetch_add_explicit(&arena->nblocks, 1, memory_order_relaxed);
  thread_debt += bytes;
  if (cc_unlikely(live > atomic_load_explicit(&arena->threshold, memory_order_relaxed)))
    pressure(live);
  return (char *)b + sizeof(block_hdr_t);
}

size_t cc_arena_take_debt(size_t min) {
  size_t d = thread_debt;
  if (cc_likely(d < min)) return 0;
  thread_debt = 0;
  return d;
}

/* ---- memory pressure ---------------------------------------------------- */

/* The live size at which collectors are asked to run next: double the live
 * size now, at least 64 MiB more, but never more than half of what is left,
 * so that they run well before the arena is full, and rarely while it is
 * far from full. */
static size_t next_threshold(size_t live) {
  size_t grow = live > ((size_t)64 << 20) ? live : (size_t)64 << 20;
  size_t left = arena->size > live ? arena->size - live : 0;
  if (grow > left / 2) grow = left / 2;
  return live + grow;
}

/* `live` passed the threshold: one caller moves it on and opens an epoch. */
static void pressure(size_t live) {
  size_t th = atomic_load(&arena->threshold);
  while (live > th) {
    if (atomic_compare_exchange_weak(&arena->threshold, &th, next_threshold(live))) {
      atomic_fetch_add(&arena->epoch, 1);
      return;
    }
  }
}

uint32_t cc_arena_pressure(void) {
  return arena ? atomic_load_explicit(&arena->epoch, memory_order_relaxed) : 0;
}

void cc_arena_pressure_raise(void) {
  if (!arena) return;
  atomic_store(&arena->threshold, next_threshold(atomic_load(&arena->live)));
  atomic_fetch_add(&arena->epoch, 1);
}

void cc_arena_pressure_settled(void) {
  size_t th, nt;
  if (!arena) return;
  nt = next_threshold(atomic_load(&arena->live));
  th = atomic_load(&arena->threshold);
  while (nt < th && !atomic_compare_exchange_weak(&arena->threshold, &th, nt)) {
  }
}

void cc_arena_fail_in(long n) {
  atomic_store(&fail_countdown, n > 0 ? n : 0);
}

void *cc_calloc(size_t n) {
  void *p = cc_alloc(n);
  if (p) memset(p, 0, n);
  return p;
}

static block_hdr_t *header_of(const void *p) {
  block_hdr_t *h = (block_hdr_t *)((char *)p - sizeof(block_hdr_t));
  if (!cc_in_arena(p) || h->magic != BLOCK_MAGIC || h->cls >= NCLASSES)
    cc_panic("cc_free: %p is not a live arena block", p);
  return h;
}

size_t cc_alloc_size(const void *p) {
  return class_bytes(header_of(p)->cls) - sizeof(block_hdr_t);
}

void cc_free(void *p) {
  block_hdr_t *h;
  free_block_t *b;
  unsigned cls;
  if (!p) return;
  h = header_of(p);
  cls = h->cls;
  h->magic = 0;
  b = (free_block_t *)h;
  if (cls + MIN_SHIFT >= BIG_SHIFT) {
    /* Give the pages after the first back; the header page stays. */
    size_t page = 4096, bytes = class_bytes(cls);
    char *start = (char *)b + page;
    madvise(start, bytes - page, MADV_REMOVE);
  }
  atomic_fetch_sub_explicit(&arena->live, class_bytes(cls), memory_order_relaxed);
  atomic_fetch_sub_explicit(&arena->nblocks, 1, memory_order_relaxed);
  cc_mutex_lock(&arena->classes[cls].lock);
  b->next = arena->classes[cls].head;
  arena->classes[cls].head = b;
  TSAN_RELEASE();
  cc_mutex_unlock(&arena->classes[cls].lock);
}

void cc_arena_stats(cc_arena_stats_t *st) {
  memset(st, 0, sizeof *st);
  if (!arena) return;
  st->mapped = arena->size;
  st->used = atomic_load(&arena->bump);
  st->live = atomic_load(&arena->live);
  st->nblocks = atomic_load(&arena->nblocks);
}

/* ---- objects ---------------------------------------------------------- */

int64_t cc_next_id(void) {
  return atomic_fetch_add(&cc_globals()->next_id, 1);
}

void *cc_obj_new(const cc_type_t *type, size_t size, const char *name) {
  cc_obj_t *o = cc_calloc(size);
  if (!o) return NULL;
  o->type = type;
  atomic_store_explicit(&o->refs, 1, memory_order_relaxed);
  o->magic = CC_OBJ_MAGIC;
  o->id = cc_next_id();
  cc_obj_set_name(o, name);
  return o;
}

void cc_obj_set_name(cc_obj_t *o, const char *name) {
  if (!name) name = "";
  strncpy(o->name, name, CC_NAME_MAX - 1);
  o->name[CC_NAME_MAX - 1] = '\0';
}

void cc_obj_ref(cc_obj_t *o) {
  atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);
}

void cc_obj_unref(cc_obj_t *o) {
  /* acq_rel rather than release + an acquire fence: the same instruction on
   * x86 and ARMv8.1, and ThreadSanitizer does not model standalone fences
   * (it reported the frees after the last unref as races). */
  int32_t r = atomic_fetch_sub_explicit(&o->refs, 1, memory_order_acq_rel);
  if (r > 1) return;
  if (r != 1) cc_panic("object %p (%s) unreferenced too often", (void *)o, o->type->name);
  if (o->type->linger && o->type->linger(o)) return;
  cc_obj_free(o);
}

void cc_obj_free(cc_obj_t *o) {
  if (o->type->destroy) o->type->destroy(o);
  o->magic = 0;
  cc_free(o);
}

/* 1: a live object; 2: one that lingers with no reference left (its type
 * has a linger hook); 0: not an object. */
static int obj_state(const void *p) {
  const cc_obj_t *o = p;
  if (!cc_in_arena(p) || ((uintptr_t)p & 15) != 0) return 0;
  if (!cc_in_arena((const char *)p + sizeof(cc_obj_t) - 1)) return 0;
  if (o->magic != CC_OBJ_MAGIC) return 0;
  if (atomic_load(&((cc_obj_t *)o)->refs) > 0) return 1;
  return o->type && o->type->linger ? 2 : 0;
}

int cc_obj_valid(const void *p) {
  return obj_state(p) == 1;
}

int cc_obj_valid_held(const void *p) {
  return obj_state(p) != 0;
}
