/* pipe.c - pipes as pairs of queue ends; see pipe.h. */
#include "pipe.h"

#include <stdio.h>

static void pipe_destroy(cc_obj_t *o) {
  cc_pipe_t *e = (cc_pipe_t *)o;
  cc_pipe_close(e); /* nobody can use this end any more */
  if (e->in) cc_obj_unref(&e->in->h);
  if (e->out) cc_obj_unref(&e->out->h);
}

const cc_type_t cc_pipe_type = {.name = "pipe", .destroy = pipe_destroy};

static cc_pipe_t *new_end(const char *name, const char *side, cc_queue_t *in,
                          cc_queue_t *out) {
  char full[CC_NAME_MAX];
  cc_pipe_t *e;
  snprintf(full, sizeof full, "%.*s%s", CC_NAME_MAX - 5, name ? name : "", side);
  e = cc_obj_new(&cc_pipe_type, sizeof *e, full);
  if (!e) return NULL;
  e->in = in;
  e->out = out;
  if (in) cc_obj_ref(&in->h);
  if (out) cc_obj_ref(&out->h);
  return e;
}

int cc_pipe_new(int duplex, const char *name, cc_pipe_t **a, cc_pipe_t **b) {
  cc_queue_t *ab = cc_queue_new(0, name), *ba = duplex ? cc_queue_new(0, name) : NULL;
  int rc = CC_ENOMEM;
  *a = *b = NULL;
  if (!ab || (duplex && !ba)) goto out;
  /* Duplex: a sends into ab and receives from ba. One-way: a receives,
   * b sends, over the one queue. */
  if (duplex) {
    *a = new_end(name, " (a)", ba, ab);
    *b = new_end(name, " (b)", ab, ba);
  } else {
    *a = new_end(name, " (a)", ab, NULL);
    *b = new_end(name, " (b)", NULL, ab);
  }
  if (*a && *b) {
    rc = 0;
  } else {
    if (*a) cc_obj_unref(&(*a)->h);
    if (*b) cc_obj_unref(&(*b)->h);
    *a = *b = NULL;
  }
out: /* the ends hold their own references to the queues */
  if (ab) cc_obj_unref(&ab->h);
  if (ba) cc_obj_unref(&ba->h);
  return rc;
}

int cc_pipe_send(cc_pipe_t *e, cc_item_t *it) {
  if (!e->out) return CC_EINVAL;
  if (cc_pipe_closed(e)) return CC_ECLOSED;
  return cc_queue_put(e->out, it, CC_FOREVER);
}

int cc_pipe_recv(cc_pipe_t *e, cc_item_t *out, cc_deadline_t deadline) {
  if (!e->in) return CC_EINVAL;
  if (cc_pipe_closed(e)) return CC_ECLOSED;
  return cc_queue_get(e->in, out, deadline);
}

int cc_pipe_recv_w(cc_wait_t *w, cc_pipe_t *e, cc_item_t *out, cc_deadline_t deadline) {
  if (!e->in) return CC_EINVAL;
  if (cc_pipe_closed(e)) return CC_ECLOSED;
  return cc_queue_get_w(w, e->in, out, deadline);
}

uint32_t cc_pipe_pending(cc_pipe_t *e) {
  return e->in ? cc_queue_size(e->in) : 0;
}

void cc_pipe_close(cc_pipe_t *e) {
  cc_item_t it;
  if (atomic_exchange(&e->closed, 1)) return;
  /* Incoming first: once the other end sees "closed" on receive, its sends
   * already fail. */
  if (e->in) cc_queue_close(e->in);
  if (e->out) cc_queue_close(e->out);
  /* Nobody will ever receive these: free them now. */
  if (e->in)
    while (cc_queue_get(e->in, &it, CC_NOW) == 0)
      cc_item_clear(&it);
}
