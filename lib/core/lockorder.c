/*
 * lockorder.c - the lock-order checker of `conclua --lock-order` (see
 * lockorder.h).
 *
 * Two tables of this process, under one mutex taken only while the checker
 * is on: the holds (actor, lock) -> where it was taken, and the edges
 * (first lock, second lock) -> where each was taken, the first time that
 * order was seen. Locks are named by their object id (stable, never
 * reused), so a freed lock cannot alias a new one.
 */
#include "lockorder.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trace.h"

#define SITE 160

_Atomic int cc_lockorder_on;

typedef struct hold {
  struct hold *next;
  const cc_actor_t *a;
  int64_t actor_id;
  int64_t obj;
  char site[SITE];
} hold_t;

typedef struct edge {
  struct edge *next;
  int64_t first, second;
  char first_name[CC_NAME_MAX], second_name[CC_NAME_MAX];
  char first_site[SITE], second_site[SITE];
  char who[96];
  int warned;
} edge_t;

#define NEDGE 256
static pthread_mutex_t lo_lock = PTHREAD_MUTEX_INITIALIZER;
static hold_t *holds;
static edge_t *edges[NEDGE];
static int warnings;

/* A child forked while another thread held lo_lock would wait forever for
 * it: the child starts with a fresh one (the tables are the parent's copy,
 * consistent at every step of an insert or removal). */
static void after_fork_child(void) {
  pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
  lo_lock = fresh;
}

__attribute__((constructor)) static void lockorder_atfork(void) {
  pthread_atfork(NULL, NULL, after_fork_child);
}

void cc_lockorder_enable(void) {
  cc_observe_install();
  atomic_store(&cc_lockorder_on, 1);
}

int cc_lockorder_warnings(void) {
  int n;
  pthread_mutex_lock(&lo_lock);
  n = warnings;
  pthread_mutex_unlock(&lo_lock);
  return n;
}

static edge_t *find_edge(int64_t first, int64_t second) {
  for (edge_t *e = edges[(uint64_t)(first * 31 + second) % NEDGE]; e; e = e->next)
    if (e->first == first && e->second == second) return e;
  return NULL;
}

static hold_t *find_hold(const cc_actor_t *a, int64_t obj) {
  for (hold_t *h = holds; h; h = h->next)
    if (h->a == a && h->actor_id == a->id && h->obj == obj) return h;
  return NULL;
}

static void copy(char *dst, const char *src, size_t n) {
  snprintf(dst, n, "%s", src && *src ? src : "?");
}

static void warn(const edge_t *e, const edge_t *rev) {
  fprintf(stderr,
          "conclua: lock-order warning: locks '%s' and '%s' are taken in both orders "
          "(a possible deadlock):\n"
          "  %s took '%s' at %s, then '%s' at %s\n"
          "  %s took '%s' at %s, then '%s' at %s\n",
          rev->first_name, rev->second_name, rev->who, rev->first_name, rev->first_site,
          rev->second_name, rev->second_site, e->who, e->first_name, e->first_site,
          e->second_name, e->second_site);
  fflush(stderr);
}

void cc_lockorder_hold(cc_actor_t *a, cc_obj_t *o) {
  char here[SITE];
  hold_t *h;
  int32_t n = atomic_load(&a->nheld);
  if (n > CC_MAX_HELD) n = CC_MAX_HELD;
  cc_site_where(here, sizeof here);
  pthread_mutex_lock(&lo_lock);
  if (!(h = find_hold(a, o->id)) && (h = calloc(1, sizeof *h))) {
    h->a = a;
    h->actor_id = a->id;
    h->obj = o->id;
    copy(h->site, here, sizeof h->site);
    h->next = holds;
    holds = h;
  }
  for (int32_t i = 0; i < n; i++) {
    cc_obj_t *prev = atomic_load(&a->held[i]);
    hold_t *ph;
    edge_t *e, *rev;
    if (!prev || prev == o || find_edge(prev->id, o->id)) continue;
    if (!(e = calloc(1, sizeof *e))) break;
    e->first = prev->id;
    e->second = o->id;
    copy(e->first_name, prev->name, sizeof e->first_name);
    copy(e->second_name, o->name, sizeof e->second_name);
    ph = find_hold(a, prev->id);
    copy(e->first_site, ph ? ph->site : NULL, sizeof e->first_site);
    copy(e->second_site, here, sizeof e->second_site);
    cc_actor_describe(a, e->who, sizeof e->who);
    e->next = edges[(uint64_t)(e->first * 31 + e->second) % NEDGE];
    edges[(uint64_t)(e->first * 31 + e->second) % NEDGE] = e;
    rev = find_edge(o->id, prev->id);
    if (rev && !rev->warned) {
      rev->warned = e->warned = 1;
      warnings++;
      warn(e, rev);
    }
  }
  pthread_mutex_unlock(&lo_lock);
}

void cc_lockorder_unhold(cc_actor_t *a, cc_obj_t *o) {
  hold_t **p;
  int32_t n = atomic_load(&a->nheld);
  if (n > CC_MAX_HELD) n = CC_MAX_HELD;
  /* A recursive lock still held keeps its first site. */
  for (int32_t i = 0; i < n; i++)
    if (atomic_load(&a->held[i]) == o) return;
  pthread_mutex_lock(&lo_lock);
  for (p = &holds; *p; p = &(*p)->next)
    if ((*p)->a == a && (*p)->actor_id == a->id && (*p)->obj == o->id) {
      hold_t *h = *p;
      *p = h->next;
      free(h);
      break;
    }
  pthread_mutex_unlock(&lo_lock);
}
