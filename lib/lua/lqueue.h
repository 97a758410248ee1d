/*
 * lqueue.h - what lqueue.c shares with the other bindings built on queues
 * (lpipe.c): a get that suspends a task keeps its item in a box on the
 * task's stack.
 */
#ifndef LQUEUE_H
#define LQUEUE_H

#include "item.h"
#include "ltask.h"

/* After a cc_queue_get_w (or cc_pipe_recv_w) gave CC_WAIT_PARK for the
 * task slot w: pushes a box for the item and suspends the task; done ends
 * the call (conc_queue_box_take gives it the item). A cancel reaches done
 * as CC_ECANCELLED (raise it with conc_task_raise_cancelled). */
int conc_queue_wait_get(lua_State *L, cc_wait_t *w, conc_wait_done_fn done);
/* In done: takes the item out of the box (the caller now owns it). */
void conc_queue_box_take(lua_State *L, cc_item_t *out);

#endif
