/*
** evloop.h -- the event loop under the Lua scheduler.
**
** One EvLoop per lua_State owns the uv_loop_t. It never calls into Lua from
** a libuv callback: timers that fire only append their wake-up id to a list
** which evloop_poll() hands back, and the Lua scheduler (lua/cachert.lua)
** resumes the tasks. So no Lua error can unwind through libuv.
**
** Signals go the same way: when the executable asked for them
** (evloop_catch_signals), the first SIGINT, SIGTERM or SIGHUP is reported
** by evloop_poll() as the id -signum, and the scheduler stops gracefully; a
** second one ends the process at once, from the signal handler itself, so
** it works even while Lua never gives the loop a turn.
*/
#ifndef CACHERT_EVLOOP_H
#define CACHERT_EVLOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

typedef struct SleepTimer SleepTimer;

typedef struct EvLoop {
    uv_loop_t loop;
    int64_t *woken; /* ids whose timers fired since the last poll */
    size_t nwoken;
    size_t cap;
    int64_t next_id;        /* ids for timers and requests, never reused */
    size_t ntimers;         /* timers started and not yet fired */
    size_t npending;        /* requests begun and not yet woken */
    SleepTimer *timers;     /* those timers */
    uv_idle_t kick;         /* keeps a non-blocking poll from being a no-op */
    uv_signal_t signals[3]; /* SIGINT, SIGTERM, SIGHUP when caught */
    bool catching;          /* signals[] are initialised */
    bool signalled;         /* the first signal was reported */
    bool closed;
} EvLoop;

/* The id evloop_poll() reports for signal `signum`: never a timer's or a
** request's id, which are positive. */
#define EVLOOP_SIGNAL_ID(signum) (-(int64_t)(signum))

/* Makes sure file descriptors 0, 1 and 2 are open: each one that is closed
** is opened on /dev/null, as daemons do. Otherwise the loop's own
** descriptors (epoll, its wake-up pipes) could take those numbers, and
** libuv aborts when it closes one of them. Called by the executable before
** anything else, and by evloop_init(). */
void evloop_reserve_stdio(void);

/* Process-wide: every EvLoop initialised afterwards catches SIGINT, SIGTERM
** and SIGHUP (with unreferenced uv_signal_t handles, which never keep the
** loop alive). The first one is reported by evloop_poll() as
** EVLOOP_SIGNAL_ID(signum); any later one calls _exit(128 + the first
** signal's number) from the signal handler. For the executable only
** (main.c): a library loaded into someone else's process must leave their
** signals alone. Call it before the first evloop_init(). */
void evloop_catch_signals(void);

/* The first signal caught since evloop_catch_signals(), or 0. Readable
** after evloop_close(), for the exit status. */
int evloop_first_signal(void);

/* Initialises `s` (memory owned by the caller). Returns CR_OK or a
** negative CR_E* code. */
int evloop_init(EvLoop *s);

/* A fresh id (1, 2, ...) for a timer or a request. */
int64_t evloop_new_id(EvLoop *s);

/* After `ms` milliseconds, `id` is reported by a later evloop_poll().
** Returns CR_OK or CR_ENOMEM. */
int evloop_timer(EvLoop *s, uint64_t ms, int64_t id);

/* A request that will wake `id` has begun: polls may block for it. */
void evloop_begin(EvLoop *s);

/* The request begun with evloop_begin() completed: reports `id` in the
** next evloop_poll(). Returns false when out of memory. */
bool evloop_wake(EvLoop *s, int64_t id);

/* Reports `id` in the next evloop_poll() without a request: for a source
** that wakes the scheduler now and then (a server's requests), and must
** not keep polls waiting for it. Returns false when out of memory. */
bool evloop_notify(EvLoop *s, int64_t id);

/* Runs one loop iteration, waiting for an event when `block` is true and
** a timer or a request is pending (idle connections alone never make a
** poll wait). A poll that does not wait still runs the due timers and the
** ready I/O of unreferenced handles (reconnect backoffs, signals). Returns
** how many ids are now in s->woken; the caller consumes them and resets
** s->nwoken to 0. */
size_t evloop_poll(EvLoop *s, bool block);

/* Closes the pending sleep timers and the signal handles (signals get
** their default action back), runs the loop until every close
** callback has run, then closes the loop. Every other handle on the loop
** (engines' sweep timers) must have been closed before. Idempotent. */
void evloop_close(EvLoop *s);

#endif
