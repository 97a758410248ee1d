/*
 * pool.c - pools and futures; see pool.h and docs/POOLS.md.
 *
 * A queued task is an inline queue item holding the Future's address (no
 * object-reference flag: the queue never releases it, the pool does). A
 * worker takes it straight into its slot in the pool (arena memory), so a
 * monitor can tell, after the worker died, which task it had: the get
 * copies the item before it moves the queue's head. Whoever moves a Future
 * to a final state does it with one CAS; everything else (a worker that
 * finishes a task already failed by a monitor, a cancelled task taken from
 * the queue) loses that CAS and backs off.
 *
 * Lock order: cb_lock is a leaf. No lock is held while a Future is freed.
 */
#include "pool.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "actor.h"
#include "futex.h"
#include "process.h"
#include "wait.h"

static void (*release_payload)(const void *data, size_t len);

void cc_pool_set_release(void (*release)(const void *data, size_t len)) {
  release_payload = release;
}

static const char *(*error_text)(const void *data, size_t len, size_t *tlen);

void cc_pool_set_error_text(const char *(*text)(const void *data, size_t len, size_t *tlen)) {
  error_text = text;
}

/* Frees an encoded block after dropping the references it holds. */
static void drop_payload(void *data, size_t len) {
  if (!data) return;
  if (release_payload) release_payload(data, len);
  cc_free(data);
}

/* ---- function boxes ---------------------------------------------------- */

static void fnbox_destroy(cc_obj_t *o) {
  cc_fnbox_t *b = (cc_fnbox_t *)o;
  drop_payload(b->data, b->len);
  b->data = NULL;
}

const cc_type_t cc_fnbox_type = {.name = "poolfn", .destroy = fnbox_destroy};

cc_fnbox_t *cc_fnbox_new(void *data, size_t len) {
  cc_fnbox_t *b = cc_obj_new(&cc_fnbox_type, sizeof *b, NULL);
  if (!b) return NULL;
  b->data = data;
  b->len = len;
  return b;
}

/* ---- futures ------------------------------------------------------------ */

static void future_destroy(cc_obj_t *o) {
  cc_future_t *f = (cc_future_t *)o;
  void *args = f->args;
  f->args = NULL;
  drop_payload(args, f->args_len);
  drop_payload(f->result, f->result_len); /* results or an error value */
  f->result = NULL;
  if (f->fn) cc_obj_unref(&f->fn->h);
  if (f->pool) cc_obj_unref(&f->pool->h);
}

const cc_type_t cc_future_type = {.name = "future", .destroy = future_destroy};

/* "<pool name, at most 40 bytes>#<id>" into buf (CC_NAME_MAX bytes): what
 * snprintf's "%.40s#%lld" writes, at a tenth of its cost (one per submit). */
static void future_name(char *buf, const char *pool, int64_t id) {
  char digits[24];
  size_t n = strnlen(pool, 40), k = sizeof digits;
  uint64_t v = id < 0 ? -(uint64_t)id : (uint64_t)id;
  do {
    digits[--k] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  if (id < 0) digits[--k] = '-';
  memcpy(buf, pool, n);
  buf[n] = '#';
  memcpy(buf + n + 1, digits + k, sizeof digits - k);
  buf[n + 1 + sizeof digits - k] = '\0';
}

cc_future_t *cc_future_new(cc_pool_t *p, int kind, cc_fnbox_t *fn, void *args,
                           size_t args_len) {
  cc_future_t *f = cc_obj_new(&cc_future_type, sizeof *f, NULL);
  if (!f) return NULL;
  future_name(f->h.name, p->h.name, f->h.id);
  f->kind = kind;
  cc_obj_ref(&p->h);
  f->pool = p;
  cc_obj_ref(&fn->h);
  f->fn = fn;
  f->args = args;
  f->args_len = args_len;
  return f;
}

/* Tells the owner something happened (a finish or a death). seq_cst: pairs
 * with the owner's announcement in cc_pool_wait_event. */
static void poke_owner(cc_pool_t *p) {
  atomic_fetch_add(&p->notify, 1);
  if (atomic_load(&p->owner_waiting)) cc_wake(&p->notify, INT32_MAX); /* its tasks too */
}

static void queue_callback(cc_pool_t *p, cc_future_t *f) {
  cc_obj_ref(&f->h);
  f->cb_next = NULL;
  cc_mutex_lock(&p->cb_lock);
  if (p->cb_tail)
    p->cb_tail->cb_next = f;
  else
    atomic_store(&p->cb_head, f);
  p->cb_tail = f;
  cc_mutex_unlock(&p->cb_lock);
}

/* Frees a result that lost the race to finish a Future (an error value
 * may hold object references too; the release hook leaves a plain text
 * alone). */
static void drop_result(int status, void *result, size_t len) {
  (void)status;
  drop_payload(result, len);
}

/* With f claimed (FINISHING): publishes its final state and result. The
 * callback is queued before the state is final, so an owner that sees f
 * final finds its callback queued; an owner asking for a callback after
 * our CAS on `cb` sees FINISHING or later and runs it itself (see
 * cc_future_want_callback). The pool counts f finished last: join's
 * "nothing unfinished" implies every callback is queued. */
static void publish(cc_future_t *f, int status, void *result, size_t len) {
  cc_pool_t *p = f->pool;
  uint32_t want = 1;
  f->result = result;
  f->result_len = len;
  if (atomic_compare_exchange_strong(&f->cb, &want, 2)) queue_callback(p, f);
  atomic_store(&f->state, (uint32_t)status); /* seq_cst: pairs with waiters */
  if (atomic_load(&f->waiters)) cc_wake(&f->state, INT32_MAX);
  atomic_fetch_sub(&p->unfinished, 1);
  poke_owner(p);
}

int cc_future_finish(cc_future_t *f, int status, void *result, size_t len) {
  uint32_t s = atomic_load(&f->state);
  /* Claim first (FINISHING), so the result is written before the final
   * state is published and a losing finisher never touches it. */
  do {
    if (s >= CC_F_FINISHING) {
      drop_result(status, result, len);
      return 0;
    }
  } while (!atomic_compare_exchange_weak(&f->state, &s, CC_F_FINISHING));
  publish(f, status, result, len);
  return 1;
}

void cc_future_drop_result(cc_future_t *f) {
  uint32_t st = cc_future_state(f);
  void *r = f->result;
  if (st < CC_F_OK || !r) return;
  f->result = NULL;
  drop_result((int)st, r, f->result_len);
}

int cc_future_cancel(cc_future_t *f) {
  uint32_t s = CC_F_PENDING;
  if (!atomic_compare_exchange_strong(&f->state, &s, CC_F_FINISHING)) return 0;
  publish(f, CC_F_CANCELLED, NULL, 0);
  return 1;
}

int cc_future_want_callback(cc_future_t *f) {
  uint32_t want = 0;
  /* seq_cst: a finisher claims the state (FINISHING) before its CAS on cb.
   * Either that CAS sees our 1 and queues f, or we see FINISHING or later
   * here (or both, and the CAS on cb picks one). */
  if (!atomic_compare_exchange_strong(&f->cb, &want, 1)) return 0; /* asked already */
  if (atomic_load(&f->state) >= CC_F_FINISHING) {
    want = 1;
    return atomic_compare_exchange_strong(&f->cb, &want, 2);
  }
  return 0;
}

cc_future_t *cc_pool_take_callbacks(cc_pool_t *p) {
  cc_future_t *f;
  if (!atomic_load_explicit(&p->cb_head, memory_order_acquire)) return NULL;
  cc_mutex_lock(&p->cb_lock);
  f = atomic_load(&p->cb_head);
  atomic_store(&p->cb_head, NULL);
  p->cb_tail = NULL;
  cc_mutex_unlock(&p->cb_lock);
  return f;
}

/* ---- waits: tests for the one wait primitive (wait.h) ---------------------- */

static int fw_poll(cc_wait_t *w) {
  cc_future_t *f = (cc_future_t *)w->obj;
  uint32_t st = atomic_load(&f->state);
  if (st >= CC_F_OK) return 0;
  w->addr = &f->state;
  w->val = st;
  return CC_WAIT_PARK;
}

static void fw_enter(cc_wait_t *w) {
  atomic_fetch_add(&((cc_future_t *)w->obj)->waiters, 1); /* pairs with publish */
}

static int fw_leave(cc_wait_t *w, int rc) {
  cc_future_t *f = (cc_future_t *)w->obj;
  if (w->parked) atomic_fetch_sub(&f->waiters, 1);
  return rc < 0 && cc_future_done(f) ? 0 : rc;
}

static const cc_wait_ops_t future_ops = {CC_WAIT_JOIN, 4, fw_poll, fw_enter, fw_leave};

int cc_future_wait_w(cc_wait_t *w, cc_future_t *f, cc_deadline_t deadline) {
  if (cc_future_done(f)) return 0;
  if (deadline == CC_NOW) return CC_ETIMEOUT;
  cc_wait_init(w, &future_ops, &f->h, deadline);
  return CC_WAIT_PARK;
}

int cc_future_wait(cc_future_t *f, cc_deadline_t deadline) {
  cc_wait_t w;
  int rc = cc_future_wait_w(&w, f, deadline);
  return rc == CC_WAIT_PARK ? cc_wait_run(&w) : rc;
}

/* The owner's wait: arg[0] is the pool, arg[1] the notify value seen. */
static int ow_poll(cc_wait_t *w) {
  cc_pool_t *p = (cc_pool_t *)w->arg[0];
  if (atomic_load(&p->notify) != (uint32_t)w->arg[1]) return 0;
  w->addr = &p->notify;
  w->val = (uint32_t)w->arg[1];
  return CC_WAIT_PARK;
}

/* owner_waiting counts the owner's parked waiters: its thread, or several
 * of its tasks at once. */
static void ow_enter(cc_wait_t *w) {
  atomic_fetch_add(&((cc_pool_t *)w->arg[0])->owner_waiting, 1); /* pairs with poke_owner */
}

static int ow_leave(cc_wait_t *w, int rc) {
  cc_pool_t *p = (cc_pool_t *)w->arg[0];
  if (w->parked) atomic_fetch_sub(&p->owner_waiting, 1);
  return rc < 0 && atomic_load(&p->notify) != (uint32_t)w->arg[1] ? 0 : rc;
}

static const cc_wait_ops_t owner_ops = {CC_WAIT_JOIN, 1, ow_poll, ow_enter, ow_leave};

int cc_pool_wait_event_w(cc_wait_t *w, cc_pool_t *p, uint32_t seen, cc_obj_t *on,
                         cc_deadline_t deadline) {
  if (atomic_load(&p->notify) != seen) return 0;
  if (deadline == CC_NOW) return CC_ETIMEOUT;
  cc_wait_init(w, &owner_ops, on, deadline);
  w->arg[0] = (uintptr_t)p;
  w->arg[1] = seen;
  return CC_WAIT_PARK;
}

int cc_pool_wait_event(cc_pool_t *p, uint32_t seen, cc_obj_t *on, cc_deadline_t deadline) {
  cc_wait_t w;
  int rc = cc_pool_wait_event_w(&w, p, seen, on, deadline);
  return rc == CC_WAIT_PARK ? cc_wait_run(&w) : rc;
}

static int mw_poll(cc_wait_t *w) {
  cc_pool_t *p = (cc_pool_t *)w->obj;
  uint32_t n = atomic_load(&p->monitors);
  if (n == 0) return 0;
  w->addr = &p->monitors;
  w->val = n;
  return CC_WAIT_PARK;
}

static const cc_wait_ops_t monitors_ops = {CC_WAIT_JOIN, 0, mw_poll, NULL, NULL};

int cc_pool_wait_monitors(cc_pool_t *p, cc_deadline_t deadline) {
  cc_wait_t w;
  if (atomic_load(&p->monitors) == 0) return 0;
  cc_wait_init(&w, &monitors_ops, &p->h, deadline);
  return cc_wait_run(&w);
}

/* ---- pools ---------------------------------------------------------------- */

static void pool_destroy(cc_obj_t *o) {
  cc_pool_t *p = (cc_pool_t *)o;
  cc_future_t *f = cc_pool_take_callbacks(p);
  while (f) {
    cc_future_t *next = f->cb_next;
    cc_obj_unref(&f->h);
    f = next;
  }
  if (p->tasks) cc_obj_unref(&p->tasks->h);
}

const cc_type_t cc_pool_type = {.name = "pool", .destroy = pool_destroy};

cc_pool_t *cc_pool_new(int n, int processes, const char *name) {
  cc_pool_t *p;
  if (n < 1 || n > CC_POOL_MAX) return NULL;
  p = cc_obj_new(&cc_pool_type, sizeof *p + (size_t)n * sizeof(cc_pool_slot_t), name);
  if (!p) return NULL;
  p->tasks = cc_queue_new(0, p->h.name);
  if (!p->tasks) {
    cc_obj_unref(&p->h);
    return NULL;
  }
  p->nworkers = n;
  p->processes = processes != 0;
  p->owner_pid = cc_pid;
  cc_mutex_init(&p->cb_lock);
  return p;
}

static void task_item(cc_item_t *it, cc_future_t *f) {
  memset(it, 0, sizeof *it);
  it->len = sizeof f;
  it->kind = 0xF0; /* ours; never decoded by the value layer */
  memcpy(it->u.bytes, &f, sizeof f);
}

static cc_future_t *item_future(const cc_item_t *it) {
  cc_future_t *f = NULL;
  if (it->len == sizeof f && !(it->flags & CC_ITEM_EXT)) memcpy(&f, it->u.bytes, sizeof f);
  return f;
}

int cc_pool_submit(cc_pool_t *p, cc_future_t *f) {
  cc_item_t it;
  int rc = CC_ECLOSED;
  /* Counted before anyone may publish f: every publish takes one off. */
  atomic_fetch_add(&p->unfinished, 1);
  if (!atomic_load(&p->closed)) {
    task_item(&it, f);
    cc_obj_ref(&f->h); /* the queue's */
    if ((rc = cc_queue_put(p->tasks, &it, CC_FOREVER)) == 0) return 0;
    cc_obj_unref(&f->h);
  }
  /* Not queued: cancelled here, its publish balancing the count (a caller
   * that cancelled it too took one more off: join then never saw 0). */
  if (!cc_future_cancel(f)) atomic_fetch_sub(&p->unfinished, 1);
  return rc;
}

/* Forgets the slot's task (cleared first: a worker killed between the two
 * steps leaks a reference rather than dropping one twice). */
static void slot_drop(cc_pool_slot_t *s, cc_future_t *f) {
  s->item.len = 0;
  atomic_signal_fence(memory_order_seq_cst);
  cc_obj_unref(&f->h);
}

cc_future_t *cc_pool_take(cc_pool_t *p, int i) {
  cc_pool_slot_t *s = &p->slot[i];
  for (;;) {
    uint32_t st = CC_F_PENDING;
    cc_future_t *f;
    int rc = cc_queue_get(p->tasks, &s->item, CC_FOREVER);
    if (rc != 0) {
      s->item.len = 0;
      atomic_store(&s->state, CC_SLOT_EXITED);
      return NULL;
    }
    f = item_future(&s->item);
    if (!f) cc_panic("pool: malformed task");
    if (atomic_load(&p->terminated)) {
      cc_future_cancel(f);
      slot_drop(s, f);
      continue;
    }
    if (atomic_compare_exchange_strong(&f->state, &st, CC_F_RUNNING)) {
      f->runner_pid = cc_pid;
      return f;
    }
    slot_drop(s, f); /* cancelled meanwhile */
  }
}

void cc_pool_task_done(cc_pool_t *p, int i, cc_future_t *f, int status, void *result,
                       size_t len) {
  cc_future_finish(f, status, result, len);
  slot_drop(&p->slot[i], f);
}

void cc_pool_close(cc_pool_t *p) {
  atomic_store(&p->closed, 1);
  cc_queue_close(p->tasks);
}

void cc_pool_terminate(cc_pool_t *p) {
  cc_item_t it;
  atomic_store(&p->terminated, 1);
  cc_pool_close(p);
  while (cc_queue_get(p->tasks, &it, CC_NOW) == 0) {
    cc_future_t *f = item_future(&it);
    if (!f) continue;
    cc_future_cancel(f);
    cc_obj_unref(&f->h);
  }
}

/* ---- worker slots and monitors --------------------------------------------- */

void cc_pool_slot_live(cc_pool_t *p, int i) {
  p->slot[i].item.len = 0;
  atomic_store(&p->slot[i].state, CC_SLOT_LIVE);
}

void cc_pool_slot_dead(cc_pool_t *p, int i) {
  atomic_store(&p->slot[i].state, CC_SLOT_DEAD);
  atomic_fetch_add(&p->deaths, 1);
  poke_owner(p);
}

int cc_pool_claim_dead(cc_pool_t *p) {
  if (atomic_load(&p->deaths) == 0) return -1;
  for (int i = 0; i < p->nworkers; i++) {
    uint32_t s = CC_SLOT_DEAD;
    if (atomic_compare_exchange_strong(&p->slot[i].state, &s, CC_SLOT_SPAWNING)) {
      atomic_fetch_sub(&p->deaths, 1);
      return i;
    }
  }
  return -1;
}

/* How worker process w ended, for the error of the task it was running. */
static void describe_death(cc_pool_t *p, cc_process_t *w, char *buf, size_t n) {
  char sb[32];
  if (w->how == CC_PROC_KILLED)
    snprintf(buf, n, "pool '%s': worker process %d was killed by signal %d (%s)",
             p->h.name, (int)w->t.pid, w->termsig, cc_signal_name(w->termsig, sb, sizeof sb));
  else if (w->how == CC_PROC_EXITED)
    snprintf(buf, n, "pool '%s': worker process %d exited with status %d", p->h.name,
             (int)w->t.pid, w->t.exitcode);
  else if (w->how == CC_PROC_LOST)
    snprintf(buf, n, "pool '%s': worker process %d was lost", p->h.name, (int)w->t.pid);
  else {
    size_t tl = 1;
    const char *tx = "?";
    if (error_text) tx = error_text(w->t.result, w->t.result_len, &tl);
    snprintf(buf, n, "pool '%s': worker process %d failed: %.*s", p->h.name, (int)w->t.pid,
             (int)(tl < 200 ? tl : 200), tx);
  }
}

/* After worker process w of slot i ended without being told to: fails the
 * task it had. Ownership of that task's reference (see the top of the
 * file): the worker's, unless the task is still PENDING (it may also still
 * be in the queue, killed half-way through the get: then one reference
 * leaks rather than being dropped twice). */
static void worker_died(cc_pool_t *p, int i, cc_process_t *w) {
  cc_pool_slot_t *s = &p->slot[i];
  cc_future_t *f;
  /* The task reached the dead worker through the queue (a put's release of
   * `tail`, the worker's acquire); acquiring `tail` here too makes that
   * visible to ThreadSanitizer, which cannot see the worker's process. */
  (void)atomic_load_explicit(&p->tasks->tail, memory_order_acquire);
  f = item_future(&s->item);
  if (f && cc_obj_valid(f) && f->h.type == &cc_future_type) {
    uint32_t st = atomic_load(&f->state);
    int mine = st != CC_F_PENDING && f->runner_pid == w->t.pid;
    if (st == CC_F_PENDING || (mine && st < CC_F_OK)) {
      char text[320];
      size_t len;
      char *m;
      describe_death(p, w, text, sizeof text);
      len = strlen(text);
      snprintf(text + len, sizeof text - len, " while running this task");
      len = strlen(text);
      if ((m = cc_alloc(len + 1))) memcpy(m, text, len + 1);
      f->died = 1;
      if (st == CC_F_FINISHING) /* it died publishing: nobody else will */
        publish(f, CC_F_ERROR, m, m ? len : 0);
      else
        cc_future_finish(f, CC_F_ERROR, m, m ? len : 0);
    }
    s->item.len = 0;
    if (mine) cc_obj_unref(&f->h);
  }
  s->item.len = 0;
  cc_pool_slot_dead(p, i);
}

typedef struct monitor {
  cc_pool_t *p;
  cc_process_t *w;
  int slot;
} monitor_t;

static void *monitor_main(void *arg) {
  monitor_t m = *(monitor_t *)arg;
  char name[CC_NAME_MAX];
  cc_actor_t *me;
  cc_free(arg);
  snprintf(name, sizeof name, "%.40s monitor %d", m.p->h.name, m.slot);
  me = cc_actor_new(name, cc_next_id(), CC_ACTOR_THREAD);
  if (me) cc_set_self(me);
  while (cc_process_join(m.w, CC_FOREVER) != 0) {
  }
  if (atomic_load(&m.p->slot[m.slot].state) != CC_SLOT_EXITED) worker_died(m.p, m.slot, m.w);
  if (me) cc_actor_free(me);
  cc_obj_unref(&m.w->t.h);
  /* Our reference keeps the count valid across the wake. */
  if (atomic_fetch_sub(&m.p->monitors, 1) == 1) cc_wake(&m.p->monitors, INT32_MAX);
  cc_obj_unref(&m.p->h);
  return NULL;
}

int cc_pool_watch(cc_pool_t *p, int i, cc_obj_t *proc) {
  cc_process_t *w = (cc_process_t *)proc;
  monitor_t *m = cc_alloc(sizeof *m);
  p->slot[i].pid = w->t.pid;
  if (!m) return CC_EAGAIN;
  cc_obj_ref(&p->h);
  cc_obj_ref(&w->t.h);
  m->p = p;
  m->w = w;
  m->slot = i;
  atomic_fetch_add(&p->monitors, 1);
  if (cc_thread_spawn_detached(monitor_main, m, 128 << 10) != 0) {
    atomic_fetch_sub(&p->monitors, 1);
    cc_obj_unref(&w->t.h);
    cc_obj_unref(&p->h);
    cc_free(m);
    return CC_EAGAIN;
  }
  return 0;
}
