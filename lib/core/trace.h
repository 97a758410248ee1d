/*
 * trace.h - what `conclua --trace`, `--timeline` and `--lock-order` see, and
 * the one observer of actor.h that feeds them and conc.dump.
 *
 * The observer (cc_observe_install) is one function installed in
 * actor.h's cc_observer when a trace opens or the lock-order checker starts;
 * it dispatches each wait/hold/lifecycle event to the trace writer (while a
 * trace is open) and the lock-order checker (lockorder.h). The wait-site
 * recorder of conc.dump is not an observer: it sits in actor.h's
 * cc_park_hook, which only a wait that parks calls (the slow path), so with
 * neither a trace nor the checker on, cc_observer stays NULL and a lock's
 * fast path pays one predictable branch per event.
 *
 * The trace writer keeps one buffer per OS thread of binary records (no
 * lock on the hot path: a per-buffer flag set with plain stores, which a
 * closing trace orders with membarrier) stamped with the trace's own clock
 * (the TSC where the kernel keeps time with it), and writes full buffers
 * to an unlinked raw file opened with O_APPEND, which forked children
 * inherit and append to as well (they write each event through, since they
 * end with _exit). A hold waits in its buffer unwritten: released within
 * 5 us with nothing recorded in between, it is dropped and counted. Closing
 * the trace, in the process that opened it, sorts the records by track and
 * time, drops what does not pair (an end without a begin, a flow start
 * without its end), closes the spans still open (at the close on this
 * process's tracks; at its last event on a gone child's) and writes
 * {"traceEvents":[...]} to the file.
 *
 * Tracks: one per actor (thread, process, pool worker, task) for running
 * and waiting spans, and a second one beside it for the locks it holds.
 * The runtime's own threads (actor kind CC_ACTOR_RUNTIME: the process
 * reaper) run no script: no running span, and a lane only if something is
 * recorded on it.
 */
#ifndef CC_TRACE_H
#define CC_TRACE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "actor.h"

/* Installs the dispatching observer (idempotent). Call before threads. */
void cc_observe_install(void);

/* Wait sites for conc.dump: fn(a, o) runs on the actor's own thread when it
 * is about to park on o (after cc_wait_begin), and writes with cc_site_set
 * what the dump prints about it: the object, what the actor holds, the Lua
 * frames. (The dumping thread never reads another actor's objects: one
 * may be freed as it reads.) `where` is the lock-order checker's
 * question: writes "file:line" of the running Lua code into buf (buf[0] =
 * 0 when unknown). Both set once, before threads; on_park goes into
 * cc_park_hook (a NULL one records nothing when threads park). */
typedef void (*cc_site_fn)(cc_actor_t *a, cc_obj_t *o);
typedef void (*cc_where_fn)(char *buf, size_t n);
void cc_site_hooks(cc_site_fn on_park, cc_where_fn where);
/* The Lua side's answer to "where is this thread now" ("" when unknown). */
void cc_site_where(char *buf, size_t n);

/* A parked actor's site record (the text conc.dump prints): written by the
 * actor itself when it parks, read by anyone. */
#define CC_SITE_MAX 768
void cc_site_set(const cc_actor_t *a, const char *text);
/* Copies the record of `a` into buf (empty when none); torn copies are
 * retried, so the text is one the actor wrote. */
void cc_site_get(const cc_actor_t *a, char *buf, size_t n);

/* Opens a trace written at close to `json` (trace-event JSON) and/or
 * `html` (the timeline page; either may be NULL): the files are created
 * (truncated) now, so an unwritable path fails before anything runs.
 * Returns 0, CC_ESYS or CC_EINVAL (a trace is on, no path) with a message
 * in err. One trace per process family. */
int cc_trace_open(const char *json, const char *html, char *err, size_t n);
/* Non-zero while a trace is open (in this process family). */
int cc_trace_active(void);
/* Writes the file and stops tracing. Only the opening process writes it;
 * idempotent; returns 0 or CC_ESYS (message in err). Safe from atexit. */
int cc_trace_close(char *err, size_t n);
/* Instant event on the caller's track: `what` names it ("fork", "exit",
 * "deadlock"); detail (may be NULL) goes into its args. */
void cc_trace_instant(const char *what, const char *detail);
/* A queue put (put=1) or get (put=0) of the item at absolute position
 * `pos` of queue `q`: an instant event plus a flow arrow from the put to the
 * get of the same position. Callers test cc_trace_on first (a relaxed load:
 * one predictable branch). */
void cc_trace_queue(cc_obj_t *q, int put, uint64_t pos);
extern _Atomic int cc_trace_on;

#endif
