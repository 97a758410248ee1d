/*
 * trace.c - the observer's dispatch, wait-site records, and the trace
 * writer of `conclua --trace` / `--timeline` (see trace.h).
 *
 * Lock order: list_lock (the list of buffers) is taken alone; a buffer's
 * busy flag is taken by its own thread per event, and by a closing trace
 * (under list_lock) to flush it. Nothing else is taken while either is
 * held but the raw file's write().
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
#include <unistd.h>

#include "futex.h"
#include "lockorder.h"

/* The timeline page (lib/timeline/timeline.html, embedded at build time):
 * the trace JSON goes at offset cc_timeline_split. */
extern const char cc_timeline_page[];
extern const size_t cc_timeline_split;

_Atomic int cc_trace_on;

/* ---- the observer --------------------------------------------------------- */

static cc_site_fn site_fn;
static cc_where_fn where_fn;
static void trace_event(cc_actor_t *a, cc_obj_t *o, int ev, int result);

static void dispatch(cc_actor_t *a, cc_obj_t *o, int ev, int result) {
  if (ev == CC_EV_WAIT_BEGIN && site_fn) site_fn(a);
  if (cc_unlikely(atomic_load_explicit(&cc_trace_on, memory_order_relaxed))) trace_event(a, o, ev, result);
  if (cc_unlikely(atomic_load_explicit(&cc_lockorder_on, memory_order_relaxed))) {
    if (ev == CC_EV_HOLD)
      cc_lockorder_hold(a, o);
    else if (ev == CC_EV_UNHOLD)
      cc_lockorder_unhold(a, o);
  }
}

void cc_observe_install(void) {
  if (cc_observer != dispatch) cc_observer = dispatch;
}

void cc_site_hooks(cc_site_fn on_park, cc_where_fn where) {
  if (site_fn != on_park) site_fn = on_park;
  if (where_fn != where) where_fn = where;
  cc_observe_install();
}

void cc_site_where(char *buf, size_t n) {
  buf[0] = '\0';
  if (where_fn) where_fn(buf, n);
}

/* ---- site records ---------------------------------------------------------
 * One record per actor slot, in chunks that mirror the actor table's, kept
 * in this process (a forked child starts with a copy). A seqlock: the
 * writer (the actor itself) makes seq odd, writes, makes it even; readers
 * retry while it is odd or moved. The bytes are relaxed atomics, so a torn
 * read is detected instead of being a data race. */
typedef struct site {
  _Atomic uint32_t seq;
  _Atomic char text[CC_SITE_MAX];
} site_t;

static _Atomic(site_t *) site_chunks[CC_ACTOR_CHUNKS];

static site_t *site_of(const cc_actor_t *a, int create) {
  uint32_t c = a->index / CC_ACTORS_PER_CHUNK;
  site_t *chunk = atomic_load_explicit(&site_chunks[c], memory_order_acquire);
  if (!chunk && create) {
    site_t *fresh = calloc(CC_ACTORS_PER_CHUNK, sizeof(site_t)), *none = NULL;
    if (!fresh) return NULL;
    if (atomic_compare_exchange_strong(&site_chunks[c], &none, fresh))
      chunk = fresh;
    else {
      free(fresh);
      chunk = none;
    }
  }
  return chunk ? &chunk[a->index % CC_ACTORS_PER_CHUNK] : NULL;
}

void cc_site_set(const cc_actor_t *a, const char *text) {
  site_t *s = site_of(a, 1);
  size_t i = 0;
  if (!s) return;
  atomic_fetch_add_explicit(&s->seq, 1, memory_order_acq_rel);
  for (; text[i] && i + 1 < CC_SITE_MAX; i++)
    atomic_store_explicit(&s->text[i], text[i], memory_order_relaxed);
  atomic_store_explicit(&s->text[i], '\0', memory_order_relaxed);
  atomic_fetch_add_explicit(&s->seq, 1, memory_order_release);
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

/* ---- per-thread buffers -------------------------------------------------- */

#define BUF_CAP (64 * 1024)
#define LINE_MAX_ 1024
#define SEEN 16

typedef struct tbuf {
  struct tbuf *next;
  _Atomic int busy;
  size_t len;
  /* Actors this thread has named in the trace: key = actor address + id. */
  const cc_actor_t *seen_a[SEEN];
  int64_t seen_id[SEEN];
  int64_t seen_tid[SEEN];
  char data[BUF_CAP];
} tbuf_t;

static pthread_mutex_t list_lock = PTHREAD_MUTEX_INITIALIZER;
static tbuf_t *buffers;
static _Thread_local tbuf_t *mine;
static int raw_fd = -1, out_fd = -1;
static int32_t owner_pid;
static int through; /* a forked child: every event is written at once */
static int64_t t0;

static void buf_flush_locked(tbuf_t *b) {
  size_t off = 0;
  while (off < b->len) {
    ssize_t w = write(raw_fd, b->data + off, b->len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break; /* disk full: the trace loses these lines */
    off += (size_t)w;
  }
  b->len = 0;
}

static void buf_lock(tbuf_t *b) {
  while (atomic_exchange_explicit(&b->busy, 1, memory_order_acquire)) cc_cpu_relax();
}

static void buf_unlock(tbuf_t *b) {
  atomic_store_explicit(&b->busy, 0, memory_order_release);
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
    atomic_store(&mine->busy, 0);
    buffers = mine;
  }
  through = 1;
}

__attribute__((constructor)) static void trace_atfork(void) {
  pthread_atfork(NULL, NULL, after_fork_child);
}

/* JSON string body of s (quotes and controls escaped) into out. */
static size_t json_str(char *out, size_t n, const char *s) {
  size_t j = 0;
  for (; *s && j + 7 < n; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '<') { /* never "</script>" inside the timeline page */
      memcpy(out + j, "\\u003c", 6);
      j += 6;
    } else if (c == '"' || c == '\\') {
      out[j++] = '\\';
      out[j++] = (char)c;
    } else if (c < 0x20) {
      j += (size_t)snprintf(out + j, n - j, "\\u%04x", c);
    } else {
      out[j++] = (char)c;
    }
  }
  out[j] = '\0';
  return j;
}

/* Appends one line: `{"ph":"X","pid":P,"tid":T,"ts":US` + rest + `}\n`. */
static void emit(tbuf_t *b, char ph, int32_t pid, int64_t tid, int64_t ns, const char *rest) {
  char line[LINE_MAX_];
  int64_t us = (ns - t0) / 1000, frac = (ns - t0) % 1000;
  int len;
  if (us < 0) us = 0, frac = 0;
  len = snprintf(line, sizeof line, "{\"ph\":\"%c\",\"pid\":%d,\"tid\":%lld,\"ts\":%lld.%03d%s}\n",
                 ph, (int)pid, (long long)tid, (long long)us, (int)frac, rest);
  if (len <= 0 || (size_t)len >= sizeof line) return;
  if (b->len + (size_t)len > BUF_CAP) buf_flush_locked(b);
  memcpy(b->data + b->len, line, (size_t)len);
  b->len += (size_t)len;
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

/* The track of `a`, naming it (and starting its running span) the first
 * time this thread sees it. */
static int64_t track(tbuf_t *b, const cc_actor_t *a, int64_t now) {
  unsigned slot = (unsigned)(((uintptr_t)a >> 4) % SEEN);
  char rest[LINE_MAX_ / 2], name[CC_NAME_MAX * 2];
  int64_t tid;
  if (b->seen_a[slot] == a && b->seen_id[slot] == a->id) return b->seen_tid[slot];
  tid = track_of(a);
  b->seen_a[slot] = a;
  b->seen_id[slot] = a->id;
  b->seen_tid[slot] = tid;
  json_str(name, sizeof name, a->name);
  if (a->kind == CC_ACTOR_PROCESS) {
    snprintf(rest, sizeof rest, ",\"name\":\"process_name\",\"args\":{\"name\":\"process '%s' (pid %d)\"}",
             name, (int)a->pid);
    emit(b, 'M', a->pid, 0, t0, rest);
  } else if (a->pid == owner_pid && strcmp(a->name, "main") == 0) {
    snprintf(rest, sizeof rest, ",\"name\":\"process_name\",\"args\":{\"name\":\"main (pid %d)\"}",
             (int)a->pid);
    emit(b, 'M', a->pid, 0, t0, rest);
  }
  snprintf(rest, sizeof rest, ",\"name\":\"thread_name\",\"args\":{\"name\":\"%s\"}", name);
  emit(b, 'M', a->pid, tid, t0, rest);
  snprintf(rest, sizeof rest, ",\"name\":\"thread_name\",\"args\":{\"name\":\"%s holds\"}", name);
  emit(b, 'M', a->pid, tid + 1, t0, rest);
  emit(b, 'B', a->pid, tid, now, ",\"name\":\"running\",\"cat\":\"run\"");
  return tid;
}

static void obj_label(char *out, size_t n, const char *kind, const cc_obj_t *o) {
  char name[CC_NAME_MAX * 2];
  if (!o) {
    snprintf(out, n, "%s", kind);
    return;
  }
  json_str(name, sizeof name, o->name);
  snprintf(out, n, "%s '%s'", o->type ? o->type->name : kind, name);
}

static void trace_event(cc_actor_t *a, cc_obj_t *o, int ev, int result) {
  tbuf_t *b = my_buffer();
  char label[CC_NAME_MAX * 3], rest[LINE_MAX_ / 2];
  int64_t now = cc_now_ns(), tid;
  if (!b || !a) return;
  buf_lock(b);
  tid = track(b, a, now);
  switch (ev) {
  case CC_EV_WAIT_BEGIN:
    obj_label(label, sizeof label, kind_name(atomic_load(&a->wait_kind)), o);
    emit(b, 'E', a->pid, tid, now, "");
    snprintf(rest, sizeof rest,
             ",\"name\":\"wait %s\",\"cat\":\"wait\",\"args\":{\"object\":\"%s\",\"kind\":\"%s\"}",
             label, label, kind_name(atomic_load(&a->wait_kind)));
    emit(b, 'B', a->pid, tid, now, rest);
    break;
  case CC_EV_WAIT_END:
    snprintf(rest, sizeof rest, ",\"args\":{\"result\":\"%s\"}", cc_strerror(result));
    emit(b, 'E', a->pid, tid, now, rest);
    emit(b, 'B', a->pid, tid, now, ",\"name\":\"running\",\"cat\":\"run\"");
    break;
  case CC_EV_HOLD:
    obj_label(label, sizeof label, "lock", o);
    snprintf(rest, sizeof rest, ",\"name\":\"hold %s\",\"cat\":\"hold\",\"args\":{\"object\":\"%s\"}",
             label, label);
    emit(b, 'B', a->pid, tid + 1, now, rest);
    break;
  case CC_EV_UNHOLD: {
    /* Holds need not end in the order they began: end them all, then
     * begin again those still held, so the lane nests. */
    int32_t n = atomic_load(&a->nheld);
    if (n > CC_MAX_HELD) n = CC_MAX_HELD;
    emit(b, 'E', a->pid, tid + 1, now, "");
    for (int32_t i = 0; i < n; i++) emit(b, 'E', a->pid, tid + 1, now, "");
    for (int32_t i = 0; i < n; i++) {
      obj_label(label, sizeof label, "lock", atomic_load(&a->held[i]));
      snprintf(rest, sizeof rest, ",\"name\":\"hold %s\",\"cat\":\"hold\",\"args\":{\"object\":\"%s\"}",
               label, label);
      emit(b, 'B', a->pid, tid + 1, now, rest);
    }
    break;
  }
  }
  if (through) buf_flush_locked(b);
  buf_unlock(b);
}

void cc_trace_instant(const char *what, const char *detail) {
  tbuf_t *b;
  cc_actor_t *a;
  char w[128], d[512], rest[LINE_MAX_ / 2 + 200];
  int64_t now, tid;
  if (!atomic_load(&cc_trace_on) || !(b = my_buffer())) return;
  a = cc_self();
  now = cc_now_ns();
  json_str(w, sizeof w, what);
  json_str(d, sizeof d, detail ? detail : "");
  buf_lock(b);
  tid = track(b, a, now);
  snprintf(rest, sizeof rest, ",\"name\":\"%s\",\"cat\":\"event\",\"s\":\"t\",\"args\":{\"detail\":\"%s\"}",
           w, d);
  emit(b, 'i', a->pid, tid, now, rest);
  if (through) buf_flush_locked(b);
  buf_unlock(b);
}

void cc_trace_queue(cc_obj_t *q, int put, uint64_t pos) {
  tbuf_t *b;
  cc_actor_t *a;
  char label[CC_NAME_MAX * 3], rest[LINE_MAX_ / 2];
  int64_t now, tid;
  unsigned long long flow;
  if (!atomic_load(&cc_trace_on) || !(b = my_buffer())) return;
  a = cc_self();
  now = cc_now_ns();
  flow = ((unsigned long long)q->id << 32) ^ (unsigned long long)pos;
  obj_label(label, sizeof label, "queue", q);
  buf_lock(b);
  tid = track(b, a, now);
  snprintf(rest, sizeof rest,
           ",\"name\":\"%s %s\",\"cat\":\"queue\",\"s\":\"t\",\"args\":{\"object\":\"%s\",\"item\":%llu}",
           put ? "put" : "get", label, label, (unsigned long long)pos);
  emit(b, 'i', a->pid, tid, now, rest);
  snprintf(rest, sizeof rest, ",\"name\":\"item\",\"cat\":\"flow\",\"id\":%llu%s", flow,
           put ? "" : ",\"bp\":\"e\"");
  emit(b, put ? 's' : 'f', a->pid, tid, now, rest);
  if (through) buf_flush_locked(b);
  buf_unlock(b);
}

/* ---- open and close ---------------------------------------------------- */

static char *json_path, *html_path;
static int html_fd = -1;

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
  if (json && (out_fd = create_out(json, err, n)) < 0) return CC_ESYS;
  if (html && (html_fd = create_out(html, err, n)) < 0) goto fail;
  snprintf(tmp, sizeof tmp, "%s.raw-XXXXXX", beside);
  raw_fd = mkstemp(tmp);
  if (raw_fd < 0) {
    snprintf(err, n, "cannot create a file beside '%s': %s", beside, strerror(errno));
    goto fail;
  }
  unlink(tmp);
  /* O_APPEND: every process of the family appends whole lines. */
  fcntl(raw_fd, F_SETFL, fcntl(raw_fd, F_GETFL) | O_APPEND);
  fcntl(raw_fd, F_SETFD, FD_CLOEXEC);
  json_path = json ? strdup(json) : NULL;
  html_path = html ? strdup(html) : NULL;
  owner_pid = cc_pid ? cc_pid : (int32_t)getpid();
  t0 = cc_now_ns();
  cc_observe_install();
  atomic_store(&cc_trace_on, 1);
  return 0;
fail:
  if (out_fd >= 0) close(out_fd);
  if (html_fd >= 0) close(html_fd);
  out_fd = html_fd = -1;
  return CC_ESYS;
}

int cc_trace_active(void) {
  return atomic_load(&cc_trace_on);
}

/* ---- the final file -------------------------------------------------------- */

typedef struct ev {
  char *line; /* NUL-terminated, without its newline */
  int32_t pid;
  int64_t tid;
  double ts;
  char ph;
  size_t seq;
  unsigned long long flow;
} ev_t;

static int ev_cmp(const void *x, const void *y) {
  const ev_t *a = x, *b = y;
  if (a->pid != b->pid) return a->pid < b->pid ? -1 : 1;
  if (a->tid != b->tid) return a->tid < b->tid ? -1 : 1;
  if (a->ts != b->ts) return a->ts < b->ts ? -1 : 1;
  return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static unsigned long long flow_id(const char *line) {
  const char *p = strstr(line, "\"cat\":\"flow\",\"id\":");
  return p ? strtoull(p + 18, NULL, 10) : 0;
}

/* Flow ends seen, sorted: (id << 1) | (ph == 'f'). */
static unsigned long long *flows;
static size_t nflow;

static int ull_cmp(const void *x, const void *y) {
  unsigned long long a = *(const unsigned long long *)x, b = *(const unsigned long long *)y;
  return a < b ? -1 : a > b;
}

static int has_flow(unsigned long long id, char ph) {
  unsigned long long key = (id << 1) | (ph == 'f');
  return bsearch(&key, flows, nflow, sizeof key, ull_cmp) != NULL;
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

static int finalize(char *err, size_t errn) {
  struct stat st;
  char *raw = NULL, *p, *end;
  ev_t *evs = NULL;
  size_t n = 0, cap = 0, nflows = 0;
  int rc = 0, first = 1;
  FILE *out = NULL;
  char *json = NULL;
  size_t jlen = 0;
  const char *failed = json_path ? json_path : html_path;
  if (fstat(raw_fd, &st) != 0) goto fail;
  raw = malloc((size_t)st.st_size + 1);
  if (!raw) goto fail;
  if (pread(raw_fd, raw, (size_t)st.st_size, 0) != st.st_size) goto fail;
  raw[st.st_size] = '\0';
  for (p = raw, end = raw + st.st_size; p < end;) {
    char *nl = memchr(p, '\n', (size_t)(end - p));
    ev_t e;
    long long tid;
    int pid;
    char ph;
    if (!nl) break; /* a line cut short (a process killed mid-write) */
    *nl = '\0';
    if (sscanf(p, "{\"ph\":\"%c\",\"pid\":%d,\"tid\":%lld,\"ts\":%lf", &ph, &pid, &tid, &e.ts) == 4) {
      if (n == cap) {
        ev_t *grown = realloc(evs, (cap = cap ? cap * 2 : 1024) * sizeof *evs);
        if (!grown) goto fail;
        evs = grown;
      }
      e.line = p;
      e.pid = pid;
      e.tid = tid;
      e.ph = ph;
      e.seq = n;
      e.flow = (ph == 's' || ph == 'f') ? flow_id(p) : 0;
      if (e.flow) nflows++;
      evs[n++] = e;
    }
    p = nl + 1;
  }
  qsort(evs, n, sizeof *evs, ev_cmp);
  flows = malloc((nflows ? nflows : 1) * sizeof *flows);
  if (!flows) goto fail;
  nflow = 0;
  for (size_t i = 0; i < n; i++)
    if (evs[i].flow) flows[nflow++] = (evs[i].flow << 1) | (evs[i].ph == 'f');
  qsort(flows, nflow, sizeof *flows, ull_cmp);
  out = open_memstream(&json, &jlen);
  if (!out) goto fail;
  fputs("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n", out);
  for (size_t i = 0; i < n;) {
    size_t j = i;
    int depth = 0;
    double last = 0;
    /* One track at a time: drop an end without a begin, close what is
     * still open at the track's last moment. */
    for (; j < n && evs[j].pid == evs[i].pid && evs[j].tid == evs[i].tid; j++) {
      ev_t *e = &evs[j];
      if (e->ph == 'E') {
        if (depth == 0) continue;
        depth--;
      } else if (e->ph == 'B') {
        depth++;
      } else if ((e->ph == 's' && !has_flow(e->flow, 'f')) ||
                 (e->ph == 'f' && !has_flow(e->flow, 's'))) {
        continue;
      }
      if (e->ph != 'M' && e->ts > last) last = e->ts;
      fprintf(out, "%s%s", first ? "" : ",\n", e->line);
      first = 0;
    }
    for (; depth > 0; depth--)
      fprintf(out, ",\n{\"ph\":\"E\",\"pid\":%d,\"tid\":%lld,\"ts\":%.3f,\"args\":{\"closed\":\"at end\"}}",
              (int)evs[i].pid, (long long)evs[i].tid, last);
    i = j;
  }
  fputs("\n]}\n", out);
  if (fclose(out) != 0) {
    out = NULL;
    goto fail;
  }
  out = NULL;
  if (out_fd >= 0 && (put_all(out_fd, json, jlen) != 0 || close(out_fd) != 0)) goto fail;
  out_fd = -1;
  failed = html_path;
  if (html_fd >= 0 &&
      (put_all(html_fd, cc_timeline_page, cc_timeline_split) != 0 ||
       put_all(html_fd, json, jlen) != 0 ||
       put_all(html_fd, cc_timeline_page + cc_timeline_split,
               strlen(cc_timeline_page + cc_timeline_split)) != 0 ||
       close(html_fd) != 0))
    goto fail;
  html_fd = -1;
  goto done;
fail:
  snprintf(err, errn, "cannot write trace file '%s': %s", failed ? failed : "?",
           errno ? strerror(errno) : "out of memory");
  rc = CC_ESYS;
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
  if (!atomic_load(&cc_trace_on) || (cc_pid ? cc_pid : (int32_t)getpid()) != owner_pid) {
    if (n) err[0] = '\0';
    return 0;
  }
  atomic_store(&cc_trace_on, 0);
  pthread_mutex_lock(&list_lock);
  for (tbuf_t *b = buffers; b; b = b->next) {
    buf_lock(b);
    buf_flush_locked(b);
    buf_unlock(b);
  }
  pthread_mutex_unlock(&list_lock);
  rc = finalize(err, n);
  /* raw_fd stays open: a late writer must never hit a reused descriptor. */
  return rc;
}
