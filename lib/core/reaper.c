/*
 * reaper.c - the reaper thread: waits for the children this process forked
 * and settles their Process objects; see process.h and docs/PROCESSES.md.
 *
 * Process-private state (pthreads and file descriptors do not survive
 * fork): the list of children this process forked and not yet reaped, the
 * reaper thread and its eventfd. reap_mu guards the list; it is a leaf lock
 * (only waitpid, kill and list operations run under it) and it is held
 * across fork() (fork.c), so a child always finds the list whole and can
 * drop it. The list nodes and the reaper's poll array come from the arena,
 * not malloc: the reaper never enters malloc, so it cannot hold a malloc
 * lock that a fork would leave locked (glibc guards its own around fork();
 * some sanitizer runtimes do not).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "env.h"
#include "futex.h"
#include "process_int.h"

/* Polling period without pidfds. */
#define REAP_POLL_MS 10

typedef struct child {
  cc_process_t *p; /* the reaper's reference */
  pid_t pid;
  int pidfd;   /* -1: found by polling waitpid */
  int wstatus; /* once reaped */
  struct child *next;
} child_t;

static pthread_mutex_t reap_mu = PTHREAD_MUTEX_INITIALIZER;
static child_t *children;
static int nchildren;
static int wake_fd = -1;
static int reaper_running;
/* 1 once the reaper has made its start (its actor, its poll set) and waits
 * in poll: see cc_reaper_start. */
static _Atomic uint32_t reaper_ready;
static int use_pidfd = -1; /* -1 unknown, 0 no, 1 yes */

void cc_reaper_fork_prepare(void) {
  pthread_mutex_lock(&reap_mu);
}

void cc_reaper_fork_parent(void) {
  pthread_mutex_unlock(&reap_mu);
}

/* The list (whole, thanks to the prepare handler) belongs to the parent,
 * whose reaper goes on using it (its nodes are in the shared arena) and
 * holds the references: close the fds this process got copies of, and
 * forget the list. */
void cc_reaper_fork_child(void) {
  for (child_t *c = children; c; c = c->next)
    if (c->pidfd >= 0) close(c->pidfd);
  children = NULL;
  nchildren = 0;
  if (wake_fd >= 0) close(wake_fd);
  wake_fd = -1;
  reaper_running = 0;
  atomic_store(&reaper_ready, 0);
  use_pidfd = -1; /* read CONCLUA_NO_PIDFD again */
  pthread_mutex_init(&reap_mu, NULL);
}

static void wake_reaper(void) {
  uint64_t one = 1;
  if (write(wake_fd, &one, sizeof one) < 0) {
    /* EAGAIN: the counter is already non-zero, the reaper will look */
  }
}

/* A child that ended: unlinked from the list by the reaper. */
static void reaped(child_t *c) {
  cc_process_t *p = c->p;
  int daemon = p->t.daemon;
  if (WIFSIGNALED(c->wstatus))
    cc_process_settle(p, CC_PROC_KILLED, WTERMSIG(c->wstatus));
  else
    cc_process_settle(p, CC_PROC_EXITED, WEXITSTATUS(c->wstatus));
  if (c->pidfd >= 0) close(c->pidfd);
  cc_free(c);
  cc_obj_unref(&p->t.h);
  /* Last: the program may end as soon as no non-daemon child is left (an
   * error nobody waits for is printed by then: settle prints it). */
  if (!daemon) cc_thread_count_nondaemon(-1);
}

/* Waits (WNOHANG) for the children whose pidfd is readable, or for every
 * child when `all` (children without a pidfd, or more than the poll array
 * holds), under reap_mu (so a kill under reap_mu never hits a recycled
 * pid); handles the dead ones after unlocking. */
static void reap_some(const struct pollfd *fds, int nfds, int all) {
  child_t *dead = NULL, **pp;
  int status;
  pthread_mutex_lock(&reap_mu);
  pp = &children;
  while (*pp) {
    child_t *c = *pp;
    int ready = all || c->pidfd < 0;
    for (int i = 1; i < nfds && !ready; i++)
      if (fds[i].fd == c->pidfd && (fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
        ready = 1;
    if (ready && waitpid(c->pid, &status, WNOHANG) == c->pid) {
      *pp = c->next;
      nchildren--;
      c->wstatus = status;
      c->next = dead;
      dead = c;
      continue;
    }
    pp = &c->next;
  }
  pthread_mutex_unlock(&reap_mu);
  while (dead) {
    child_t *next = dead->next;
    reaped(dead);
    dead = next;
  }
}

static void *reaper_main(void *arg) {
  struct pollfd *fds = NULL, one;
  int cap = 0;
  cc_actor_t *me = cc_actor_new("conclua reaper", cc_next_id(), CC_ACTOR_RUNTIME);
  (void)arg;
  if (me) cc_set_self(me);
  for (;;) {
    int n = 1, all = 0;
    uint64_t count;
    struct pollfd *set = fds;
    pthread_mutex_lock(&reap_mu);
    if (nchildren + 1 > cap) {
      int ncap = (nchildren + 1) * 2;
      struct pollfd *nf = cc_alloc((size_t)ncap * sizeof *nf);
      if (nf) {
        cc_free(fds);
        fds = set = nf;
        cap = ncap;
      }
    }
    if (!set) { /* out of memory: poll the wake fd, waitpid every child */
      set = &one;
      cap = 0;
    }
    set[0].fd = wake_fd;
    set[0].events = POLLIN;
    set[0].revents = 0;
    for (child_t *c = children; c; c = c->next) {
      if (c->pidfd < 0 || n >= cap) {
        all = 1;
        continue;
      }
      set[n].fd = c->pidfd;
      set[n].events = POLLIN;
      set[n].revents = 0;
      n++;
    }
    pthread_mutex_unlock(&reap_mu);
    if (!atomic_load_explicit(&reaper_ready, memory_order_relaxed)) {
      atomic_store_explicit(&reaper_ready, 1, memory_order_release);
      cc_futex_wake(&reaper_ready, INT32_MAX);
    }
    if (poll(set, (nfds_t)n, all ? REAP_POLL_MS : -1) < 0) continue;
    if ((set[0].revents & POLLIN) && read(wake_fd, &count, sizeof count) < 0) {
      /* EAGAIN: somebody else drained it */
    }
    reap_some(set, n, all);
  }
  return NULL;
}

int cc_reaper_start(void) {
  int rc = 0;
  pthread_mutex_lock(&reap_mu);
  if (reaper_running) goto out;
  if (use_pidfd < 0) {
    long off;
    cc_env_int("CONCLUA_NO_PIDFD", 0, &off); /* a bad value: luaopen_conc refuses it */
    use_pidfd = !off;
  }
  if (wake_fd < 0) wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd < 0) {
    rc = CC_EAGAIN;
    goto out;
  }
  if (cc_thread_spawn_detached(reaper_main, NULL, 256 << 10) != 0)
    rc = CC_EAGAIN;
  else
    reaper_running = 1;
out:
  pthread_mutex_unlock(&reap_mu);
  /* The first process waits for the reaper's start: until the reaper waits
   * in poll it allocates (its actor, its poll set), and a fork meanwhile
   * copies the allocator's locks held: GCC 12's ASan allocator then hangs
   * the child at its first malloc (the soak test's first process did, 1
   * run in 12 under ASan). */
  while (rc == 0 && !atomic_load_explicit(&reaper_ready, memory_order_acquire))
    if (cc_futex_wait(&reaper_ready, 0, CC_FOREVER) == CC_EINTR) rc = CC_EINTR;
  return rc;
}

void *cc_reaper_node_new(void) {
  return cc_alloc(sizeof(child_t));
}

void cc_reaper_node_free(void *node) {
  cc_free(node);
}

void cc_reaper_add(void *node, cc_process_t *p, int32_t pid) {
  child_t *c = node;
  c->p = p;
  c->pid = pid;
  c->pidfd = -1;
  pthread_mutex_lock(&reap_mu);
  if (use_pidfd == 1) {
    long fd = syscall(SYS_pidfd_open, pid, 0);
    if (fd >= 0)
      c->pidfd = (int)fd;
    else if (errno == ENOSYS)
      use_pidfd = 0;
  }
  c->next = children;
  children = c;
  nchildren++;
  pthread_mutex_unlock(&reap_mu);
  wake_reaper();
}

int cc_reaper_kill(cc_process_t *p, int sig) {
  int rc = CC_ECLOSED;
  pthread_mutex_lock(&reap_mu);
  for (child_t *c = children; c; c = c->next) {
    if (c->p != p) continue;
    rc = kill(c->pid, sig) == 0 ? 0 : CC_ECLOSED;
    break;
  }
  pthread_mutex_unlock(&reap_mu);
  return rc;
}
