/*
** backoff.c -- see backoff.h.
*/
#include "backoff.h"

/* splitmix64 (Steele, Lea, Flood 2014): one add and three xor-shift-
** multiplies per draw; plenty for jitter, and no shared state (rand()). */
static uint64_t next_random(Backoff *b)
{
    uint64_t z = (b->rng += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

void backoff_init(Backoff *b, uint64_t seed)
{
    b->nominal_ms = BACKOFF_MIN_MS;
    b->rng = seed;
}

uint64_t backoff_next(Backoff *b)
{
    uint64_t gap = b->nominal_ms - next_random(b) % (b->nominal_ms / 5 + 1);
    b->nominal_ms *= 2;
    if (b->nominal_ms > BACKOFF_MAX_MS)
        b->nominal_ms = BACKOFF_MAX_MS;
    return gap;
}

void backoff_reset(Backoff *b)
{
    b->nominal_ms = BACKOFF_MIN_MS;
}
