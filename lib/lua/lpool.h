/*
 * lpool.h - what the files of conc.pool share (see docs/POOLS.md):
 * lpool.c the owner side (the pool object, its workers, its waits and
 * callbacks), lpool_worker.c the worker side, lpool_map.c pool:map,
 * lpool_future.c Futures.
 *
 * Only the state that created a pool (in its process) uses it: it keeps the
 * pool userdata's user value, a table {workers, callbacks, functions}, and
 * finds its pools by address in a weak registry table, which is how a
 * Future's methods know that they run in the owner and may run callbacks
 * and replace dead workers there (conc_pool_service).
 */
#ifndef LPOOL_H
#define LPOOL_H

#include "lconc.h"
#include "pool.h"
#include "ltask.h"

#define POOL_T (&cc_pool_type)
#define FUTURE_T (&cc_future_type)
#define FNBOX_T (&cc_fnbox_type)

/* The pool userdata's user value. */
enum { UV_WORKERS = 1, UV_CALLBACKS, UV_FUNCTIONS };

/* ---- lpool_worker.c ---- */

/* The job of every worker: worker_main(pool, slot). */
int conc_pool_worker_main(lua_State *L);

/* ---- lpool.c: the owner side ---- */

/* The pool of method self at 1, which this state must own. */
cc_pool_t *conc_pool_check(lua_State *L);
/* Pushes field k of the user value of the pool userdata at pidx. */
void conc_pool_push_uv(lua_State *L, int pidx, int k);
/* What the owner does at each call into a pool or one of its Futures and
 * while it waits in one: replace dead workers, run queued callbacks. */
void conc_pool_service(lua_State *L, int pidx, cc_pool_t *p);
/* If this state owns the pool of f (the Future's userdata at fidx),
 * pushes the pool userdata and returns its index; else returns 0. */
int conc_pool_owner_of(lua_State *L, int fidx, cc_future_t *f);
/* The owner's wait for f (or, f NULL, for every task of p) as a thread,
 * serving the pool meanwhile: 0, CC_ETIMEOUT or CC_EINTR. */
int conc_pool_owner_wait(lua_State *L, int pidx, cc_pool_t *p, cc_future_t *f,
                         cc_deadline_t d);
/* Waits for the Future at fidx (as the owner, serving the pool, when pidx
 * is the index of its pool's userdata; pidx 0: as anyone else; fidx 0:
 * for every task of the pool at pidx) and returns
 * finish(L, rc, w) with rc 0, CC_ETIMEOUT, CC_EINTR or, for a task that was
 * cancelled meanwhile, CC_ECANCELLED (finish raises it: the Future itself
 * is left alone). A task suspends; a thread blocks. finish finds fidx in
 * w->arg[2]. */
int conc_pool_wait(lua_State *L, int fidx, int pidx, cc_deadline_t d,
                   conc_wait_done_fn finish);
/* The shared box of the function at fidx, encoded on first use by the
 * pool at pidx. */
cc_fnbox_t *conc_pool_function_box(lua_State *L, int pidx, int fidx);
/* Queues a task of `kind` with fn box b and encoded args (taken over);
 * pushes its Future (its user value keeps the pool at 1 alive). */
cc_future_t *conc_pool_queue_task(lua_State *L, cc_pool_t *p, int kind, cc_fnbox_t *b,
                                  void *args, size_t len);
void conc_pool_check_open(lua_State *L, cc_pool_t *p, const char *what);

/* ---- lpool_map.c ---- */

int conc_pool_map(lua_State *L);

/* ---- lpool_future.c ---- */

/* Pushes the results of f, which finished with CC_F_OK: how many. */
int conc_pool_decode_results(lua_State *L, cc_future_t *f);
/* The results of final f, or raises its error (the value the task raised:
 * a string error as "file:line: pool 'p': msg\ntraceback", any other value
 * as itself). */
int conc_pool_results(lua_State *L, cc_future_t *f);
/* Runs, in order, the callbacks listed (in the table at cbs) for the
 * Future userdata at fidx; the list is removed first. An error in a
 * callback is printed. */
void conc_pool_run_callbacks(lua_State *L, int cbs, int fidx, cc_pool_t *p);

#endif
