/*
** backoff.h -- the gaps between reconnection attempts, one rule for every
** part that reconnects (a pool, the Sentinel discovery, its subscription).
**
** The nominal gap doubles from BACKOFF_MIN_MS up to BACKOFF_MAX_MS; each
** gap handed out is jittered, uniformly random in [4/5 of the nominal
** gap, all of it] (never above BACKOFF_MAX_MS), so a fleet of processes
** that lost the same server does not come back in step. The owner calls
** backoff_reset() when what it retries has been healthy for a while.
*/
#ifndef CACHERT_BACKOFF_H
#define CACHERT_BACKOFF_H

#include <stdint.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

typedef struct Backoff {
    uint64_t nominal_ms; /* the next gap before its jitter */
    uint64_t rng;        /* splitmix64 state */
} Backoff;

/* Starts at BACKOFF_MIN_MS; `seed` makes the jitter differ per owner. */
void backoff_init(Backoff *b, uint64_t seed);

/* The next gap in milliseconds; the nominal gap then doubles (capped). */
uint64_t backoff_next(Backoff *b);

/* Back to BACKOFF_MIN_MS. */
void backoff_reset(Backoff *b);

#endif
