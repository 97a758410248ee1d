/*
 * trace.c - the observer's dispatch, wait-site records, and the trace
 * writer of `conclua --trace` / `--timeline` (see trace.h).
 *
 * Lock order: list_lock (the list of buffers) is taken alone; a buffer's
 * busy flag is set by its own thread per event, and a closing trace (under
 * list_lock) waits until every flag is clear (buf_quiesce). Nothing else is
 * taken while either is held but the raw file's write().
 */
#include "trace.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "futex.h"
#include "lockorder.h"
#include "mutex.h"

/* The timeline page (lib/timeline/timeline.html, embedded at build time):
 * the trace JSON goes at offset cc_timeline_split. */
extern const char cc_timeline_page[];
extern const size_t cc_timeline_split;

_Atomic int cc_trace_on;

/* ---- the observer --------------------------------------------------------- */

static cc_site_fn site_fn;
static cc_where_fn where_fn;
static void trace_event(cc_actor_t *a, cc_obj_t *o, int ev, int result);
static void trace_hold(cc_actor_t *a, cc_obj_t *o);
static void trace_unhold(cc_actor_t *a, cc_obj_t *o);

static void dispatch(cc_actor_t *a, cc_obj_t *o, int ev, int result) {
#ifndef CC_PARK_HOOK /* else actor.c calls site_fn itself (cc_park_hook) */
  if (ev == CC_EV_WAIT_BEGIN && site_fn) site_fn(a, o);
#endif
  if (cc_unlikely(atomic_load_explicit(&cc_lockorder_on, memory_order_relaxed))) {
    if (ev == CC_EV_HOLD)
      cc_lockorder_hold(a, o);
    else if (ev == CC_EV_UNHOLD)
      cc_lockorder_unhold(a, o);
  }
  /* Last, so that these are tail calls. */
  if (cc_unlikely(atomic_load_explicit(&cc_trace_on, memory_order_relaxed))) {
    if (ev == CC_EV_HOLD)
      trace_hold(a, o);
    else if (ev == CC_EV_UNHOLD)
      trace_unhold(a, o);
    else
      trace_event(a, o, ev, result);
  }
}

void cc_observe_install(void) {
  if (cc_observer != dispatch) cc_observer = dispatch;
}

void cc_site_hooks(cc_site_fn on_park, cc_where_fn where) {
  if (site_fn != on_park) site_fn = on_park;
  if (where_fn != where) where_fn = where;
#ifdef CC_PARK_HOOK /* a hook of its own: the observer stays NULL while nothing traces */
  if (on_park && cc_park_hook != on_park) cc_park_hook = on_park;
#else
  if (on_park) cc_observe_install();
#endif
}

void cc_site_where(char *buf, size_t n) {
  buf[0] = '\0';
  if (where_fn) where_fn(buf, n);
}

/* ---- site records ---------------------------------------------------------
 * One record per actor slot, in chunks that mirror the actor table's,
 * allocated from the arena as the table's are and published in the
 * arena's globals: every process of the family reads the same records, so
 * a dump names what an actor of another process waits on and where. A
 * seqlock: the writer (the actor itself) makes seq odd, writes, makes it
 * even; readers retry while it is odd or moved (a writer killed half-way
 * leaves it odd: readers give up after their tries). The bytes are relaxed
 * atomics, so a torn read is detected instead of being a data race. */
typedef struct site {
  _Atomic uint32_t seq;
  _Atomic char text[CC_SITE_MAX];
} site_t;

static site_t *site_of(const cc_actor_t *a, int create) {
  _Atomic(void *) *slot = &cc_globals()->site_chunks[a->index / CC_ACTORS_PER_CHUNK];
  site_t *chunk = atomic_load_explicit(slot, memory_order_acquire);
  if (!chunk && create) {
    void *fresh = cc_calloc(CC_ACTORS_PER_CHUNK * sizeof(site_t)), *none = NULL;
    if (!fresh) return NULL;
    if (atomic_compare_exchange_strong(slot, &none, fresh)) {
      chunk = fresh;
    } else {
      cc_free(fresh);
      chunk = none;
    }
  }
  return chunk ? &chunk[a->index % CC_ACTORS_PER_CHUNK] : NULL;
}

/* One writer per record (the actor, on its own thread), so the writer sets
 * seq itself: odd from whatever it was (a process killed half-way through
 * its write left it odd; the slot's next actor must not write under an
 * even one), then the next even. */
void cc_site_set(const cc_actor_t *a, const char *text) {
  site_t *s = site_of(a, 1);
  size_t i = 0;
  uint32_t odd;
  if (!s) return;
  odd = atomic_load_explicit(&s->seq, memory_order_relaxed) | 1u;
  atomic_store_explicit(&s->seq, odd, memory_order_relaxed);
  atomic_thread_fence(memory_order_release); /* seq before the text */
  for (; text[i] && i + 1 < CC_SITE_MAX; i++)
    atomic_store_explicit(&s->text[i], text[i], memory_order_relaxed);
  atomic_store_explicit(&s->text[i], '\0', memory_order_relaxed);
  atomic_store_explicit(&s->seq, odd + 1, memory_order_release);
}

void cc_site_get(const cc_actor_t *a, char *buf, size_t n) {
  site_t *s = site_of(a, 0);
  buf[0] = '\0';
  if (!s || n == 0) return;
  for (int tries = 0; tries < 100; tries++) {
    uint32_t before = atomic_load_explicit(&s->seq, memory_order_acquire);
    size_t i = 0;
    if (before & 1) {
      cc_cpu_relax();
      continue;
    }
    for (; i + 1 < n && i + 1 < CC_SITE_MAX; i++)
      if ((buf[i] = atomic_load_explicit(&s->text[i], memory_order_relaxed)) == '\0') break;
    buf[i] = '\0';
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&s->seq, memory_order_relaxed) == before) return;
  }
  buf[0] = '\0';
}

/* ---- the trace's clock ------------------------------------------------------
 * Records carry ticks: the TSC where it is invariant and the kernel itself
 * keeps time with it (one rdtsc, about half a clock_gettime), else
 * CLOCK_MONOTONIC nanoseconds. Ticks become nanoseconds when the trace
 * closes, on the line through (open_tk, open_ns) and (close_tk, close_ns);
 * the open calibrates for 0.2 ms so that SHORT_HOLD_NS can be told in
 * ticks. CONCLUA_TRACE_CLOCK=monotonic keeps to clock_gettime. Every buffer
 * clamps its stamps to its last one, so one thread's records never go back
 * in time. */

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#define HAVE_TSC 1
#endif

#define SHORT_HOLD_NS 5000

static _Atomic int use_tsc;
static int64_t open_tk, open_ns, close_tk, close_ns;
static int64_t short_ticks;

static inline int64_t trace_clock(void) {
#ifdef HAVE_TSC
  if (cc_likely(atomic_load_explicit(&use_tsc, memory_order_relaxed)))
    return (int64_t)__builtin_ia32_rdtsc();
#endif
  return cc_now_ns();
}

/* Non-zero when the TSC is invariant and the kernel's clocksource is the
 * TSC (so the kernel found it in step across CPUs). */
static int tsc_usable(void) {
#ifdef HAVE_TSC
  unsigned eax, ebx, ecx, edx;
  char cs[16] = "";
  const char *env = getenv("CONCLUA_TRACE_CLOCK");
  int fd;
  ssize_t n;
  if (env && strcmp(env, "monotonic") == 0) return 0;
  if (!__get_cpuid(0x80000007u, &eax, &ebx, &ecx, &edx) || !(edx & (1u << 8))) return 0;
  fd = open("/sys/devices/system/clocksource/clocksource0/current_clocksource",
            O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  n = read(fd, cs, sizeof cs - 1);
  close(fd);
  return n >= 3 && strncmp(cs, "tsc", 3) == 0 && (n == 3 || cs[3] == '\n');
#else
  return 0;
#endif
}

/* Picks the clock and calibrates it (trace open). */
static void clock_start(void) {
  int tsc = tsc_usable();
  atomic_store_explicit(&use_tsc, tsc, memory_order_relaxed);
  open_ns = cc_now_ns();
  open_tk = trace_clock();
  if (tsc) {
    int64_t ns, tk;
    do {
      ns = cc_now_ns();
      tk = trace_clock();
    } while (ns - open_ns < 200000 || tk <= open_tk);
    short_ticks = (int64_t)((double)SHORT_HOLD_NS * (double)(tk - open_tk) / (double)(ns - open_ns));
  } else {
    short_ticks = SHORT_HOLD_NS;
  }
}

/* Ends the calibration (trace close). */
static void clock_stop(void) {
  close_ns = cc_now_ns();
  close_tk = trace_clock();
  if (close_tk <= open_tk || close_ns <= open_ns) { /* cannot happen: keep ticks as ns */
    close_tk = open_tk + 1;
    close_ns = open_ns + 1;
  }
}

static int64_t ticks_to_ns(int64_t tk) {
  return open_ns + (int64_t)((double)(tk - open_tk) * (double)(close_ns - open_ns) /
                             (double)(close_tk - open_tk));
}

/* ---- per-thread buffers of binary records ----------------------------------
 * An event costs a clock read and a copy into the thread's buffer; the JSON
 * is written only when the trace closes. A hold is not written at once: it
 * waits in the buffer's pending slot (its name copied, the object may be
 * freed by the time it is written), and is written before whatever the
 * thread records next. When the next event is its own release within
 * SHORT_HOLD_NS, the hold is dropped and counted instead: an uncontended lock
 * pair in a loop would otherwise fill the trace with invisible slivers, and
 * costs two clock reads and a few stores.
 *
 * The buffer's busy flag: its thread sets it around each event, and a
 * closing trace must not read the buffer while it is set. With membarrier
 * (Linux 4.14+), the thread's side is plain stores: it sets the flag, then
 * checks cc_trace_on; the closer clears cc_trace_on, has the kernel run a
 * full barrier on every thread of the process (MEMBARRIER_CMD_PRIVATE_
 * EXPEDITED), then waits for each flag to be clear: a thread either saw the
 * trace off and backs out, or its flag is visible to the closer, which
 * waits. Without membarrier the thread's side is an atomic exchange. */

#define BUF_CAP (256 * 1024)
#define SEEN 16
#define STR_MAX 512

enum { CAT_RUN, CAT_WAIT, CAT_HOLD, CAT_QUEUE, CAT_FLOW, CAT_EVENT, CAT_TAKES, CAT_NAME,
       CAT_PNAME };

/* Short holds in a row before the holds of a run skip the clock (see
 * "Runs of takes" above trace_hold). */
#define RUN_MIN 16

/* One event: the header, then n1 bytes of label and n2 of detail. */
typedef struct rec {
  uint16_t size; /* header + strings, rounded up to 8 */
  char ph;       /* B E i M; W: E running + B wait; R: E wait + B running;
                  * P, G: a queue put (get) and its flow start (end) */
  uint8_t cat;
  int32_t pid;
  int64_t tid;
  int64_t ts; /* ticks (see the trace's clock) */
  uint64_t num; /* item position, or result code */
  uint16_t n1, n2;
  uint32_t pad;
  union {
    /* A type's name (static: the same address in every process of the
     * family), or NULL: the object's type for waits and holds. */
    const char *type;
    uint64_t flow; /* P and G: the flow's id */
  };
} rec_t;

typedef struct tbuf {
  struct tbuf *next;
  _Atomic int busy;
  size_t len;
  int64_t last_ts;     /* the last stamp taken */
  uint64_t short_holds; /* holds dropped as slivers */
  /* The pending hold: pend_o non-NULL while one waits. */
  const cc_actor_t *pend_a;
  const cc_obj_t *pend_o;
  int64_t pend_ts, pend_tid;
  int32_t pend_pid;
  const cc_type_t *pend_type;
  char pend_name[CC_NAME_MAX];
  /* The run of takes: run_n short holds of run_o by run_a so far (0: none),
   * the first taken at run_t1, the last let go at run_last. run_fast once
   * the run has RUN_MIN: its holds then skip the clock, and run_held says
   * whether one is on. */
  const cc_actor_t *run_a;
  const cc_obj_t *run_o;
  int64_t run_aid, run_oid, run_t1, run_last, run_tid;
  uint64_t run_n;
  int32_t run_pid;
  int run_fast, run_held;
  const cc_type_t *run_type;
  char run_name[CC_NAME_MAX];
  /* Actors this thread has named in the trace: key = actor address + id. */
  const cc_actor_t *seen_a[SEEN];
  int64_t seen_id[SEEN];
  int64_t seen_tid[SEEN];
  _Alignas(8) char data[BUF_CAP];
} tbuf_t;

static pthread_mutex_t list_lock = PTHREAD_MUTEX_INITIALIZER;
static tbuf_t *buffers;
static _Thread_local tbuf_t *mine;
static int raw_fd = -1, out_fd = -1;
static int32_t owner_pid;
static int through; /* a forked child: every event is written at once */
static int64_t t0;  /* ticks */
static _Atomic int asym; /* membarrier registered: the plain-store busy flag */

#if defined(__linux__) && defined(SYS_membarrier)
#define MB_PRIVATE_EXPEDITED 8 /* linux/membarrier.h's values (the ABI) */
#define MB_REGISTER_PRIVATE_EXPEDITED 16
#define MB_GLOBAL 1
#endif

static void asym_setup(void) {
#ifdef MB_PRIVATE_EXPEDITED
  if (!atomic_load(&asym) && syscall(SYS_membarrier, MB_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0)
    atomic_store(&asym, 1);
#endif
}

/* A full barrier on every running thread of this process (asym only). */
static void asym_barrier(void) {
#ifdef MB_PRIVATE_EXPEDITED
  if (syscall(SYS_membarrier, MB_PRIVATE_EXPEDITED, 0, 0) != 0 &&
      syscall(SYS_membarrier, MB_GLOBAL, 0, 0) != 0)
    cc_panic("membarrier failed after its registration: %s", strerror(errno));
#endif
}

/* Takes the buffer for one event; 0 (and nothing taken) when the trace is
 * off. */
static inline int buf_enter(tbuf_t *b) {
  if (cc_likely(atomic_load_explicit(&asym, memory_order_relaxed))) {
    atomic_store_explicit(&b->busy, 1, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst); /* the closer's membarrier orders the rest */
  } else {
    atomic_store_explicit(&b->busy, 1, memory_order_seq_cst);
  }
  if (cc_likely(atomic_load_explicit(&cc_trace_on, memory_order_seq_cst))) return 1;
  atomic_store_explicit(&b->busy, 0, memory_order_release);
  return 0;
}

static inline void buf_leave(tbuf_t *b) {
  atomic_store_explicit(&b->busy, 0, memory_order_release);
}

/* The closer, after clearing cc_trace_on: waits until no thread is inside
 * an event; from then on every buffer is the closer's. */
static void buf_quiesce(void) {
  if (atomic_load(&asym)) asym_barrier();
  for (tbuf_t *b = buffers; b; b = b->next)
    while (atomic_load_explicit(&b->busy, memory_order_acquire)) cc_cpu_relax();
}

/* A stamp for the buffer's next record: never before its last one. */
static inline int64_t stamp(tbuf_t *b) {
  int64_t now = trace_clock();
  if (cc_unlikely(now < b->last_ts)) now = b->last_ts;
  b->last_ts = now;
  return now;
}

static void put_waiting(tbuf_t *b);

static void buf_write(tbuf_t *b) {
  size_t off = 0;
  while (off < b->len) {
    ssize_t w = write(raw_fd, b->data + off, b->len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break; /* disk full: the trace loses these records */
    off += (size_t)w;
  }
  b->len = 0;
}

/* Writes out everything the buffer holds, the run and pending hold
 * included. */
static void buf_flush(tbuf_t *b) {
  if (b->run_n || b->pend_o) put_waiting(b);
  buf_write(b);
}

static tbuf_t *my_buffer(void) {
  if (cc_likely(mine != NULL)) return mine;
  mine = calloc(1, sizeof *mine);
  if (!mine) return NULL;
  pthread_mutex_lock(&list_lock);
  mine->next = buffers;
  buffers = mine;
  pthread_mutex_unlock(&list_lock);
  return mine;
}

/* The child keeps only the forking thread's buffer, emptied: the parent
 * writes what it held. The other threads do not exist here. */
static void after_fork_child(void) {
  pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
  list_lock = fresh;
  buffers = NULL;
  if (mine) {
    mine->next = NULL;
    mine->len = 0;
    mine->pend_o = NULL;
    mine->run_n = 0;
    mine->run_fast = mine->run_held = 0;
    mine->run_o = NULL;
    mine->short_holds = 0;
    memset(mine->seen_a, 0, sizeof mine->seen_a); /* tracks are named again, under this pid */
    atomic_store(&mine->busy, 0);
    buffers = mine;
  }
  through = 1;
}

__attribute__((constructor)) static void trace_atfork(void) {
  pthread_atfork(NULL, NULL, after_fork_child);
}

/* Appends a record (after the run and the pending hold, if they wait);
 * returns it. */
static rec_t *emit(tbuf_t *b, char ph, int cat, int32_t pid, int64_t tid, int64_t ts,
                   uint64_t num, const char *s1, const char *s2) {
  size_t n1 = s1 ? strnlen(s1, STR_MAX) : 0, n2 = s2 ? strnlen(s2, STR_MAX) : 0;
  size_t size = (sizeof(rec_t) + n1 + n2 + 7) & ~(size_t)7;
  rec_t r, *at;
  if (b->run_n || b->pend_o) put_waiting(b);
  if (b->len + size > BUF_CAP) buf_write(b);
  at = (rec_t *)(b->data + b->len);
  r.size = (uint16_t)size;
  r.ph = ph;
  r.cat = (uint8_t)cat;
  r.pid = pid;
  r.tid = tid;
  r.ts = ts;
  r.num = num;
  r.n1 = (uint16_t)n1;
  r.n2 = (uint16_t)n2;
  r.pad = 0;
  r.type = NULL;
  memcpy(at, &r, sizeof r);
  if (n1) memcpy(b->data + b->len + sizeof r, s1, n1);
  if (n2) memcpy(b->data + b->len + sizeof r + n1, s2, n2);
  b->len += size;
  return at;
}

/* emit() for a wait or hold record: s1 the object's name, type its type's. */
static void emit_obj(tbuf_t *b, char ph, int cat, int32_t pid, int64_t tid, int64_t ts,
                     uint64_t num, const char *name, const char *type) {
  emit(b, ph, cat, pid, tid, ts, num, name, NULL)->type = type;
}

static const char *type_name(const cc_type_t *t) {
  return t ? t->name : "lock";
}

/* Ends the run of takes: written as one span from its first take to its
 * last release, or to now when a take is on (that take's start is not
 * known: it is somewhere in the run), and then that hold goes on as a hold
 * span from now. A run shorter than RUN_MIN is only counted. */
static void run_close(tbuf_t *b) {
  uint64_t n = b->run_n;
  int held = b->run_held;
  int32_t pid = b->run_pid;
  int64_t lane = b->run_tid + 1, now = b->last_ts;
  b->run_n = 0; /* first: emit() would close it again */
  b->run_fast = b->run_held = 0;
  b->run_o = NULL;
  if (n < RUN_MIN) {
    b->short_holds += n;
    return;
  }
  emit_obj(b, 'B', CAT_TAKES, pid, lane, b->run_t1, n, b->run_name, type_name(b->run_type));
  emit(b, 'E', CAT_TAKES, pid, lane, held ? now : b->run_last, 0, NULL, NULL);
  if (held) emit_obj(b, 'B', CAT_HOLD, pid, lane, now, 0, b->run_name, type_name(b->run_type));
}

/* Writes what waits in the buffer: the run of takes, then the pending hold
 * (it began later). */
__attribute__((noinline)) static void put_waiting(tbuf_t *b) {
  if (b->run_n) run_close(b);
  if (b->pend_o) {
    b->pend_o = NULL; /* first: emit() would write it again */
    emit_obj(b, 'B', CAT_HOLD, b->pend_pid, b->pend_tid + 1, b->pend_ts, 0, b->pend_name,
             type_name(b->pend_type));
  }
}

static const char *kind_name(int kind) {
  switch (kind) {
  case CC_WAIT_LOCK: return "lock";
  case CC_WAIT_COND: return "condition";
  case CC_WAIT_SEM: return "semaphore";
  case CC_WAIT_EVENT: return "event";
  case CC_WAIT_BARRIER: return "barrier";
  case CC_WAIT_QUEUE: return "queue";
  case CC_WAIT_JOIN: return "join";
  case CC_WAIT_SLEEP: return "sleep";
  case CC_WAIT_PIPE: return "pipe";
  default: return "other";
  }
}

static int64_t track_of(const cc_actor_t *a) {
  uint64_t h = 1469598103934665603ull;
  for (const char *s = a->name; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  h ^= (uint64_t)a->id * 0x9e3779b97f4a7c15ull;
  h ^= (uint64_t)a->kind << 7;
  return (int64_t)((h >> 20) & 0x3fffffff) * 2; /* even: run lane; +1: holds */
}

/* The runtime's own threads (CC_ACTOR_RUNTIME: the process reaper) run no
 * script: no lane at their start and no running span; a lane only if
 * something happens on it. Told by their kind, not their name: a script's
 * thread may be called anything. */
static int runtime_actor(const cc_actor_t *a) {
  return a->kind == CC_ACTOR_RUNTIME;
}

static int64_t track_slow(tbuf_t *b, const cc_actor_t *a, int64_t now);

/* The track of `a`, naming it (and starting its running span) the first
 * time this thread sees it. */
static inline int64_t track(tbuf_t *b, const cc_actor_t *a, int64_t now) {
  unsigned slot = (unsigned)(((uintptr_t)a >> 4) % SEEN);
  if (cc_likely(b->seen_a[slot] == a && b->seen_id[slot] == a->id)) return b->seen_tid[slot];
  return track_slow(b, a, now);
}

__attribute__((noinline)) static int64_t track_slow(tbuf_t *b, const cc_actor_t *a,
                                                   int64_t now) {
  unsigned slot = (unsigned)(((uintptr_t)a >> 4) % SEEN);
  char pname[CC_NAME_MAX + 32];
  int64_t tid = track_of(a);
  b->seen_a[slot] = a;
  b->seen_id[slot] = a->id;
  b->seen_tid[slot] = tid;
  if (a->kind == CC_ACTOR_PROCESS) {
    snprintf(pname, sizeof pname, "process '%s' (pid %d)", a->name, (int)a->pid);
    emit(b, 'M', CAT_PNAME, a->pid, 0, t0, 0, pname, NULL);
  } else if (a->pid == owner_pid && strcmp(a->name, "main") == 0) {
    snprintf(pname, sizeof pname, "main (pid %d)", (int)a->pid);
    emit(b, 'M', CAT_PNAME, a->pid, 0, t0, 0, pname, NULL);
  }
  emit(b, 'M', CAT_NAME, a->pid, tid, t0, 0, a->name, NULL);
  emit(b, 'M', CAT_NAME, a->pid, tid + 1, t0, 1, a->name, NULL);
  if (!runtime_actor(a)) emit(b, 'B', CAT_RUN, a->pid, tid, now, 0, NULL, NULL);
  return tid;
}

/* ---- the hot path: an uncontended lock pair is trace_hold + trace_unhold ----
 *
 * Runs of takes. A pair costs two clock reads, and on a virtual CPU one
 * rdtsc costs as much as half an untraced pair (about 19 ns beside 38 ns).
 * But one read per pair is enough to know that a lock taken over and over
 * is let go quickly, if the run is drawn as what it is: after RUN_MIN short
 * holds of the same lock in a row, each begun within SHORT_HOLD_NS of the
 * last release (the candidate run, read both ends), the holds of the run
 * skip the clock and only the releases read it. A release within
 * SHORT_HOLD_NS of the last one proves that the take between them (and the
 * gap before it) was short. The run is written as one span, "took lock 'x'
 * N times", from its first take to its last release; it claims only that
 * the takes happened inside it, never that the lock was held throughout
 * (two threads' runs of one lock may overlap). It ends at a release later
 * than SHORT_HOLD_NS (that take, of unknown length, is the run's last), at
 * a take of another lock, and at any other event of the thread (a take
 * still on then becomes a hold span from that event's time on). */

static inline int run_again(const tbuf_t *b, const cc_actor_t *a, const cc_obj_t *o) {
  return o == b->run_o && a == b->run_a && o->id == b->run_oid && a->id == b->run_aid;
}

/* A short hold of the pending slot's lock, let go at now: the run grows,
 * or a new one begins. */
static inline void run_add(tbuf_t *b, const cc_actor_t *a, const cc_obj_t *o, int64_t now) {
  if (run_again(b, a, o) && b->pend_ts - b->run_last < short_ticks) {
    b->run_last = now;
    if (++b->run_n >= RUN_MIN) { /* the holds skip the clock from now on */
      b->run_fast = 1;
      b->run_tid = b->pend_tid;
      b->run_pid = b->pend_pid;
      b->run_type = b->pend_type;
      memcpy(b->run_name, b->pend_name, CC_NAME_MAX);
    }
    return;
  }
  b->short_holds += b->run_n; /* a run that did not grow to RUN_MIN */
  b->run_a = a;
  b->run_o = o;
  b->run_aid = a->id;
  b->run_oid = o->id;
  b->run_t1 = b->pend_ts;
  b->run_last = now;
  b->run_n = 1;
}

__attribute__((noinline)) static void trace_hold(cc_actor_t *a, cc_obj_t *o) {
  tbuf_t *b = mine;
  int64_t now, tid;
  if (cc_unlikely(!b) && !(b = my_buffer())) return;
  if (!buf_enter(b)) return;
  if (b->run_fast && !b->run_held && run_again(b, a, o)) { /* no clock */
    b->run_held = 1;
    b->run_n++;
    buf_leave(b);
    return;
  }
  now = stamp(b);
  if (b->run_fast) run_close(b); /* another lock, or another actor's */
  if (b->pend_o) put_waiting(b);
  tid = track(b, a, now);
  b->pend_a = a;
  b->pend_ts = now;
  b->pend_tid = tid;
  b->pend_pid = a->pid;
  b->pend_type = o->type;
  memcpy(b->pend_name, o->name, CC_NAME_MAX);
  b->pend_name[CC_NAME_MAX - 1] = '\0';
  b->pend_o = o;
  if (cc_unlikely(through)) buf_flush(b);
  buf_leave(b);
}

/* An unhold that ends a span: ends every hold span of the actor, then
 * begins again those still held (holds need not end in the order they
 * began; the lane nests). */
__attribute__((noinline)) static void unhold_span(tbuf_t *b, cc_actor_t *a, int64_t now) {
  int64_t tid = track(b, a, now);
  int32_t n = atomic_load(&a->nheld);
  if (n > CC_MAX_HELD) n = CC_MAX_HELD;
  emit(b, 'E', CAT_HOLD, a->pid, tid + 1, now, 0, NULL, NULL);
  for (int32_t i = 0; i < n; i++) emit(b, 'E', CAT_HOLD, a->pid, tid + 1, now, 0, NULL, NULL);
  for (int32_t i = 0; i < n; i++) {
    cc_obj_t *h = atomic_load(&a->held[i]);
    emit_obj(b, 'B', CAT_HOLD, a->pid, tid + 1, now, 0, h->name,
             h->type ? h->type->name : "lock");
  }
  if (through) buf_flush(b);
}

__attribute__((noinline)) static void trace_unhold(cc_actor_t *a, cc_obj_t *o) {
  tbuf_t *b = mine;
  int64_t now;
  if (cc_unlikely(!b) && !(b = my_buffer())) return;
  if (!buf_enter(b)) return;
  now = stamp(b);
  if (b->run_held && o == b->run_o && a == b->run_a) { /* a take of the run ends */
    b->run_held = 0;
    if (cc_unlikely(now - b->run_last >= short_ticks)) {
      b->run_last = now; /* the take may have been long: the run ends with it */
      run_close(b);
    }
    b->run_last = now;
  } else if (cc_likely(b->pend_o == o && b->pend_a == a && now - b->pend_ts < short_ticks)) {
    b->pend_o = NULL; /* a short hold: part of a run, or only counted */
    run_add(b, a, o, now);
  } else {
    unhold_span(b, a, now);
  }
  buf_leave(b);
}

/* Every other observer event (out of line: the hold and unhold paths stay
 * small). */
__attribute__((noinline)) static void trace_event(cc_actor_t *a, cc_obj_t *o, int ev,
                                                  int result) {
  tbuf_t *b;
  int64_t now, tid;
  if (!a) return;
  /* A process's actor freed while its pid is still ours never started (the
   * fork failed, or the child died before its setup): no lane for it, and
   * above all no process name under our pid. */
  if (ev == CC_EV_END && a->kind == CC_ACTOR_PROCESS && a->pid == cc_pid) return;
#ifdef CC_EV_LIFECYCLE
  if ((ev == CC_EV_START || ev == CC_EV_END) && runtime_actor(a)) return;
#endif
  if (!(b = my_buffer()) || !buf_enter(b)) return;
  now = stamp(b);
  tid = track(b, a, now);
  switch (ev) {
  case CC_EV_WAIT_BEGIN: {
    /* Strings as they are (name, type): the label is made at close. */
    int kind = atomic_load(&a->wait_kind);
    emit_obj(b, 'W', CAT_WAIT, a->pid, tid, now, (uint64_t)kind, o ? o->name : NULL,
             o && o->type ? o->type->name : kind_name(kind));
    break;
  }
  case CC_EV_WAIT_END:
    emit(b, 'R', CAT_WAIT, a->pid, tid, now, (uint64_t)(int64_t)result, NULL, NULL);
    break;
#ifdef CC_EV_LIFECYCLE /* actor.h's lifecycle events (see notes/see_to_arena.md) */
  case CC_EV_START:
    break; /* track() began its running span */
  case CC_EV_END:
    emit(b, 'E', CAT_RUN, a->pid, tid, now, 0, NULL, NULL);
    b->seen_a[((uintptr_t)a >> 4) % SEEN] = NULL;
    break;
  case CC_EV_DEADLOCK:
    emit(b, 'i', CAT_EVENT, a->pid, tid, now, 0, "deadlock", cc_deadlock_message());
    break;
#endif
  default:
    break;
  }
  if (through) buf_flush(b);
  buf_leave(b);
}

void cc_trace_instant(const char *what, const char *detail) {
  tbuf_t *b;
  cc_actor_t *a;
  int64_t now, tid;
  if (!atomic_load(&cc_trace_on) || !(b = my_buffer())) return;
  a = cc_self();
  if (!buf_enter(b)) return;
  now = stamp(b);
  tid = track(b, a, now);
  emit(b, 'i', CAT_EVENT, a->pid, tid, now, 0, what, detail);
  if (through) buf_flush(b);
  buf_leave(b);
}

void cc_trace_queue(cc_obj_t *q, int put, uint64_t pos) {
  tbuf_t *b;
  cc_actor_t *a;
  int64_t now, tid;
  uint64_t flow;
  if (!atomic_load(&cc_trace_on) || !(b = my_buffer())) return;
  a = cc_self();
  flow = ((uint64_t)q->id << 32) ^ pos;
  if (!buf_enter(b)) return;
  now = stamp(b);
  tid = track(b, a, now);
  emit(b, put ? 'P' : 'G', CAT_QUEUE, a->pid, tid, now, pos, q->name, NULL)->flow = flow;
  if (through) buf_flush(b);
  buf_leave(b);
}

/* ---- open and close ---------------------------------------------------- */

static char *json_path, *html_path;
static int html_fd = -1;

/* Whether two paths name one file: the same string, or one existing file. */
static int same_file(const char *a, const char *b) {
  struct stat sa, sb;
  if (strcmp(a, b) == 0) return 1;
  return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Whether path is an existing Lua file, which a trace must not empty
 * (`conclua --trace atm.lua`: the trace's own file forgotten); err says so. */
static int lua_file(const char *path, char *err, size_t n) {
  size_t len = strlen(path);
  struct stat st;
  if (len <= 4 || strcmp(path + len - 4, ".lua") != 0 || stat(path, &st) != 0) return 0;
  snprintf(err, n, "will not overwrite the Lua file '%s' with a trace (name the trace's own "
                   "file first: --trace t.json script.lua)", path);
  return 1;
}

/* Creates (truncates) path for the final file; -1 with err on failure. */
static int create_out(const char *path, char *err, size_t n) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) snprintf(err, n, "cannot write trace file '%s': %s", path, strerror(errno));
  return fd;
}

int cc_trace_open(const char *json, const char *html, char *err, size_t n) {
  char tmp[4096];
  const char *beside = json ? json : html;
  if (out_fd >= 0 || html_fd >= 0 || atomic_load(&cc_trace_on) || !beside) {
    snprintf(err, n, beside ? "a trace is already on" : "no trace file named");
    return CC_EINVAL;
  }
  if (json && html && same_file(json, html)) {
    snprintf(err, n, "the trace and the timeline need two files ('%s' twice)", json);
    return CC_EINVAL;
  }
  if ((json && lua_file(json, err, n)) || (html && lua_file(html, err, n))) return CC_EINVAL;
  /* The raw file first: a path that fails leaves an existing file as it was. */
  snprintf(tmp, sizeof tmp, "%s.raw-XXXXXX", beside);
  raw_fd = mkstemp(tmp);
  if (raw_fd < 0) { /* its directory: the trace's own file could not be made either */
    snprintf(err, n, "cannot write trace file '%s': %s", beside, strerror(errno));
    return CC_ESYS;
  }
  unlink(tmp);
  if (json && (out_fd = create_out(json, err, n)) < 0) goto fail;
  if (html && (html_fd = create_out(html, err, n)) < 0) goto fail;
  /* O_APPEND: every process of the family appends whole records. */
  fcntl(raw_fd, F_SETFL, fcntl(raw_fd, F_GETFL) | O_APPEND);
  fcntl(raw_fd, F_SETFD, FD_CLOEXEC);
  free(json_path); /* a trace opened before in this process, closed since */
  free(html_path);
  json_path = json ? strdup(json) : NULL;
  html_path = html ? strdup(html) : NULL;
  owner_pid = cc_pid ? cc_pid : (int32_t)getpid();
  asym_setup();
  clock_start();
  t0 = open_tk;
  cc_observe_install();
  atomic_store(&cc_trace_on, 1);
  return 0;
fail:
  if (out_fd >= 0) close(out_fd);
  if (html_fd >= 0) close(html_fd);
  close(raw_fd);
  out_fd = html_fd = raw_fd = -1;
  return CC_ESYS;
}

int cc_trace_active(void) {
  return atomic_load(&cc_trace_on);
}

/* ---- the final file -------------------------------------------------------- */

typedef struct ev {
  const rec_t *r;
  size_t seq;
} ev_t;

static int ev_cmp(const void *x, const void *y) {
  const rec_t *a = ((const ev_t *)x)->r, *b = ((const ev_t *)y)->r;
  int am = a->ph == 'M', bm = b->ph == 'M';
  if (a->pid != b->pid) return a->pid < b->pid ? -1 : 1;
  if (a->tid != b->tid) return a->tid < b->tid ? -1 : 1;
  if (am != bm) return bm - am; /* names first */
  if (a->ts != b->ts) return a->ts < b->ts ? -1 : 1;
  return ((const ev_t *)x)->seq < ((const ev_t *)y)->seq ? -1 : 1;
}

/* Flow ends seen, sorted: (id << 1) | (it is an end: a get). */
static uint64_t *flows;
static size_t nflow;

static int u64_cmp(const void *x, const void *y) {
  uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
  return a < b ? -1 : a > b;
}

static int has_flow(uint64_t id, char ph) {
  uint64_t key = (id << 1) | (ph == 'f');
  return nflow && bsearch(&key, flows, nflow, sizeof key, u64_cmp) != NULL;
}

/* The length of the well-formed UTF-8 sequence at s (n bytes left), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  size_t len;
  uint32_t cp;
  if (s[0] < 0x80) return 1;
  if (s[0] >= 0xC2 && s[0] <= 0xDF)
    len = 2, cp = s[0] & 0x1Fu;
  else if (s[0] >= 0xE0 && s[0] <= 0xEF)
    len = 3, cp = s[0] & 0x0Fu;
  else if (s[0] >= 0xF0 && s[0] <= 0xF4)
    len = 4, cp = s[0] & 0x07u;
  else
    return 0;
  if (n < len) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3Fu);
  }
  if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
      (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
    return 0;
  return len;
}

/* A JSON string (quoted) of n bytes at s. Names are the script's bytes, or
 * cut at a byte limit: what is not UTF-8 becomes U+FFFD, so the file always
 * parses. */
static void json_put(FILE *out, const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  fputc('"', out);
  for (size_t i = 0; i < n;) {
    unsigned char c = u[i];
    size_t len = utf8_seq(u + i, n - i);
    if (len == 0) {
      fputs("\\ufffd", out);
      i++;
      continue;
    }
    if (c == '"' || c == '\\')
      fprintf(out, "\\%c", c);
    else if (c < 0x20 || c == '<') /* never "</script>" inside the timeline page */
      fprintf(out, "\\u%04x", c);
    else
      fwrite(u + i, 1, len, out);
    i += len;
  }
  fputc('"', out);
}

static void put_ts(FILE *out, int64_t ns) {
  int64_t d = ns - open_ns; /* t0, in ns */
  if (d < 0) d = 0;
  fprintf(out, "%lld.%03d", (long long)(d / 1000), (int)(d % 1000));
}

/* One JSON event of record r, as phase ph of category cat (a W or R record
 * is written as its two halves). */
static void put_event(FILE *out, const rec_t *r, char ph, int cat) {
  static const char *cats[] = {"run", "wait", "hold", "queue", "flow", "event", "takes"};
  const char *s1 = (const char *)(r + 1), *s2 = s1 + r->n1;
  fprintf(out, "{\"ph\":\"%c\",\"pid\":%d,\"tid\":%lld,\"ts\":", ph, (int)r->pid,
          (long long)r->tid);
  put_ts(out, r->ts);
  switch (ph) {
  case 'M':
    fprintf(out, ",\"name\":\"%s\",\"args\":{\"name\":",
            cat == CAT_PNAME ? "process_name" : "thread_name");
    if (r->num) { /* the holds lane */
      char name[STR_MAX + 8];
      snprintf(name, sizeof name, "%.*s holds", (int)r->n1, s1);
      json_put(out, name, strlen(name));
    } else {
      json_put(out, s1, r->n1);
    }
    fputs("}", out);
    break;
  case 'B':
    if (cat == CAT_RUN) {
      fputs(",\"name\":\"running\",\"cat\":\"run\"", out);
    } else {
      /* s1: the object's name (none for a sleep), r->type: its type. */
      char label[2 * STR_MAX + 8], name[2 * STR_MAX + 48];
      const char *type = r->type ? r->type : "?";
      if (r->n1 || cat == CAT_HOLD || cat == CAT_TAKES)
        snprintf(label, sizeof label, "%s '%.*s'", type, (int)r->n1, s1);
      else
        snprintf(label, sizeof label, "%s", type);
      if (cat == CAT_TAKES)
        snprintf(name, sizeof name, "took %s %llu times", label, (unsigned long long)r->num);
      else
        snprintf(name, sizeof name, "%s %s", cat == CAT_WAIT ? "wait" : "hold", label);
      fputs(",\"name\":", out);
      json_put(out, name, strlen(name));
      fprintf(out, ",\"cat\":\"%s\",\"args\":{\"object\":", cats[cat]);
      json_put(out, label, strlen(label));
      if (cat == CAT_WAIT) fprintf(out, ",\"kind\":\"%s\"", kind_name((int)r->num));
      if (cat == CAT_TAKES) fprintf(out, ",\"takes\":%llu", (unsigned long long)r->num);
      fputs("}", out);
    }
    break;
  case 'E':
    if (cat == CAT_WAIT) /* a code, or a primitive's own result (>= 0) */
      fprintf(out, ",\"args\":{\"result\":\"%s\"}",
              (int64_t)r->num < 0 ? cc_strerror((int)(int64_t)r->num) : "ok");
    break;
  case 'i':
    fputs(",\"s\":\"t\",\"name\":", out);
    if (cat == CAT_QUEUE) {
      char label[STR_MAX + 16], name[STR_MAX + 24];
      snprintf(label, sizeof label, "queue '%.*s'", (int)r->n1, s1);
      snprintf(name, sizeof name, "%s %s", r->ph == 'P' ? "put" : "get", label);
      json_put(out, name, strlen(name));
      fputs(",\"cat\":\"queue\",\"args\":{\"object\":", out);
      json_put(out, label, strlen(label));
      fprintf(out, ",\"item\":%llu}", (unsigned long long)r->num);
    } else {
      json_put(out, s1, r->n1);
      fputs(",\"cat\":\"event\",\"args\":{\"detail\":", out);
      json_put(out, s2, r->n2);
      fputs("}", out);
    }
    break;
  case 's':
  case 'f':
    fprintf(out, ",\"name\":\"item\",\"cat\":\"flow\",\"id\":%llu%s", (unsigned long long)r->flow,
            ph == 'f' ? ",\"bp\":\"e\"" : "");
    break;
  }
  fputs("}", out);
}

/* Writes all of s to fd; returns 0 or -1. */
static int put_all(int fd, const char *s, size_t len) {
  while (len > 0) {
    ssize_t w = write(fd, s, len);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    s += w;
    len -= (size_t)w;
  }
  return 0;
}

/* The final file, from the raw file's records; short_holds: how many were
 * left out. */
static int finalize(uint64_t short_holds, char *err, size_t errn) {
  struct stat st;
  char *raw = NULL;
  ev_t *evs = NULL;
  size_t n = 0, cap = 0, nflows = 0, off;
  int rc = 0, first = 1;
  FILE *out = NULL;
  char *json = NULL;
  size_t jlen = 0;
  const char *failed = json_path ? json_path : html_path;
  errno = 0;
  if (fstat(raw_fd, &st) != 0) goto fail;
  raw = malloc((size_t)st.st_size + 8);
  if (!raw) goto fail;
  if (pread(raw_fd, raw, (size_t)st.st_size, 0) != st.st_size) goto fail;
  for (off = 0; off + sizeof(rec_t) <= (size_t)st.st_size;) {
    const rec_t *r = (const rec_t *)(raw + off);
    if (r->size < sizeof(rec_t) || off + r->size > (size_t)st.st_size) break; /* cut short */
    if (n == cap) {
      ev_t *grown = realloc(evs, (cap = cap ? cap * 2 : 1024) * sizeof *evs);
      if (!grown) goto fail;
      evs = grown;
    }
    ((rec_t *)r)->ts = ticks_to_ns(r->ts);
    evs[n].r = r;
    evs[n].seq = n;
    if (r->ph == 'P' || r->ph == 'G') nflows++;
    n++;
    off += r->size;
  }
  if (n) qsort(evs, n, sizeof *evs, ev_cmp);
  flows = malloc((nflows ? nflows : 1) * sizeof *flows);
  if (!flows) goto fail;
  nflow = 0;
  for (size_t i = 0; i < n; i++)
    if (evs[i].r->ph == 'P' || evs[i].r->ph == 'G')
      flows[nflow++] = (evs[i].r->flow << 1) | (evs[i].r->ph == 'G');
  if (nflow) qsort(flows, nflow, sizeof *flows, u64_cmp);
  out = open_memstream(&json, &jlen);
  if (!out) goto fail;
  fprintf(out, "{\"displayTimeUnit\":\"ms\",\"otherData\":{\"short_holds_left_out\":%llu},"
               "\"traceEvents\":[\n",
          (unsigned long long)short_holds);
  for (size_t i = 0; i < n;) {
    size_t j = i;
    int depth = 0;
    int64_t last = open_ns;
    /* One track at a time: drop an end without a begin and a flow end
     * without its other end; close what is still open: on a track of this
     * process at the end of the trace (its actor was alive then: an actor's
     * end closes its span), on another process's at its last event (the
     * process is gone; when it ended, its track does not say). */
    for (; j < n && evs[j].r->pid == evs[i].r->pid && evs[j].r->tid == evs[i].r->tid; j++) {
      const rec_t *r = evs[j].r;
      if (r->ph == 'W' || r->ph == 'R') { /* an end (if anything is open), then a begin */
        if (r->ts > last) last = r->ts;
        if (!first) fputs(",\n", out);
        first = 0;
        if (depth > 0) {
          put_event(out, r, 'E', r->ph == 'W' ? CAT_RUN : CAT_WAIT);
          fputs(",\n", out);
          depth--;
        }
        put_event(out, r, 'B', r->ph == 'W' ? CAT_WAIT : CAT_RUN);
        depth++;
        continue;
      }
      if (r->ph == 'E') {
        if (depth == 0) continue;
        depth--;
      } else if (r->ph == 'B') {
        /* A running span begins where its actor is first seen by a buffer:
         * its creator's (CC_EV_START), its own, its freer's (CC_EV_END).
         * Only the first one counts. */
        if (r->cat == CAT_RUN && depth > 0) continue;
        depth++;
      }
      if (r->ph != 'M' && r->ts > last) last = r->ts;
      if (!first) fputs(",\n", out);
      first = 0;
      if (r->ph == 'P' || r->ph == 'G') { /* the instant, and its flow's end if both came */
        put_event(out, r, 'i', CAT_QUEUE);
        if (has_flow(r->flow, r->ph == 'P' ? 'f' : 's')) {
          fputs(",\n", out);
          put_event(out, r, r->ph == 'P' ? 's' : 'f', CAT_FLOW);
        }
        continue;
      }
      put_event(out, r, r->ph, r->cat);
    }
    for (int ours = evs[i].r->pid == owner_pid; depth > 0; depth--) {
      fprintf(out, ",\n{\"ph\":\"E\",\"pid\":%d,\"tid\":%lld,\"ts\":", (int)evs[i].r->pid,
              (long long)evs[i].r->tid);
      put_ts(out, ours && close_ns > last ? close_ns : last);
      fputs(ours ? ",\"args\":{\"closed\":\"at the end of the trace\"}}"
                 : ",\"args\":{\"closed\":\"at the last event of its process\"}}",
            out);
    }
    i = j;
  }
  fputs("\n]}\n", out);
  if (fclose(out) != 0) {
    out = NULL;
    goto fail;
  }
  out = NULL;
  { /* both files, even when the first fails; the first failure is told */
    int jerr = 0, herr = 0;
    if (out_fd >= 0) {
      if (put_all(out_fd, json, jlen) != 0) jerr = errno ? errno : EIO;
      if (close(out_fd) != 0 && !jerr) jerr = errno;
      out_fd = -1;
    }
    if (html_fd >= 0) {
      if (put_all(html_fd, cc_timeline_page, cc_timeline_split) != 0 ||
          put_all(html_fd, json, jlen) != 0 ||
          put_all(html_fd, cc_timeline_page + cc_timeline_split,
                  strlen(cc_timeline_page + cc_timeline_split)) != 0)
        herr = errno ? errno : EIO;
      if (close(html_fd) != 0 && !herr) herr = errno;
      html_fd = -1;
    }
    if (jerr || herr) {
      failed = jerr ? json_path : html_path;
      errno = jerr ? jerr : herr;
      goto fail;
    }
  }
  goto done;
fail:
  snprintf(err, errn, "cannot write trace file '%s': %s", failed ? failed : "?",
           errno ? strerror(errno) : "out of memory");
  rc = CC_ESYS;
  /* Closed either way: a later trace may start (cc_trace_open refuses
   * while they are open). */
  if (out_fd >= 0) close(out_fd);
  if (html_fd >= 0) close(html_fd);
  out_fd = html_fd = -1;
done:
  if (out) fclose(out);
  free(json);
  free(flows);
  flows = NULL;
  free(evs);
  free(raw);
  return rc;
}

int cc_trace_close(char *err, size_t n) {
  int rc;
  uint64_t short_holds = 0;
  if (!atomic_load(&cc_trace_on) || (cc_pid ? cc_pid : (int32_t)getpid()) != owner_pid) {
    if (n) err[0] = '\0';
    return 0;
  }
  atomic_store(&cc_trace_on, 0);
  pthread_mutex_lock(&list_lock);
  buf_quiesce();
  clock_stop();
  /* The buffers are ours now (see buf_enter): written out, and reset for a
   * trace opened later (which names its tracks again). */
  for (tbuf_t *b = buffers; b; b = b->next) {
    /* A take of a run still on began after the run's last stamp, at a time
     * not read: the run and that hold are written as lasting until now. */
    if (b->last_ts < close_tk) b->last_ts = close_tk;
    buf_flush(b);
    short_holds += b->short_holds;
    b->short_holds = 0;
    b->last_ts = 0;
    memset(b->seen_a, 0, sizeof b->seen_a);
  }
  pthread_mutex_unlock(&list_lock);
  rc = finalize(short_holds, err, n);
  /* raw_fd stays open: a late writer must never hit a reused descriptor. */
  return rc;
}
