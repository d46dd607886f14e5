/*
** engine.c -- backend choice, statistics and the expiry sweep.
**
** Invariant: every public call leaves the counters consistent with what the
** caller was told (a get that returned bytes is a hit until the caller
** reports them corrupt). The sweep timer removes at most
** ENGINE_SWEEP_BUDGET expired entries per tick, so a store full of expired
** keys never stalls the loop.
*/
#include "engine.h"

#include <stdlib.h>
#include <time.h>

#include "status.h"

struct Engine {
    Store *store;
    uv_timer_t sweep_timer;
    EngineStats stats;
    uint64_t coarse_slack_ms; /* how far the coarse clock may lag */
};

/* -- Helpers ------------------------------------------------------------ */

/* A lower bound of engine_now_ms() for ~5 ns instead of ~27 ns: reads
** answer from it and use the precise clock only for an entry that expires
** within coarse_slack_ms of it. */
static uint64_t coarse_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void on_sweep(uv_timer_t *t)
{
    Engine *e = t->data;
    store_sweep(e->store, engine_now_ms(), ENGINE_SWEEP_BUDGET);
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void count_error(Engine *e, int code)
{
    e->stats.errors++;
    e->stats.last_error = cr_strerror(code);
}

/* -- Public API --------------------------------------------------------- */

uint64_t engine_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

Engine *engine_new(uv_loop_t *loop, const EngineConfig *cfg)
{
    Engine *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    struct timespec res;
    /* Twice the tick, so a late tick cannot make a stale read look live. */
    if (clock_getres(CLOCK_MONOTONIC_COARSE, &res) == 0 && res.tv_sec == 0)
        e->coarse_slack_ms = 2 * ((uint64_t)res.tv_nsec / 1000000u + 1);
    else
        e->coarse_slack_ms = UINT64_MAX / 2; /* always ask the precise clock */
    e->store = store_new(cfg->max_items, cfg->max_bytes);
    if (e->store == NULL) {
        free(e);
        return NULL;
    }
    uv_timer_init(loop, &e->sweep_timer);
    e->sweep_timer.data = e;
    uv_timer_start(&e->sweep_timer, on_sweep, ENGINE_SWEEP_INTERVAL_MS,
                   ENGINE_SWEEP_INTERVAL_MS);
    uv_unref((uv_handle_t *)&e->sweep_timer);
    return e;
}

void engine_close(Engine *e)
{
    /* The store goes now, not on the next loop turn: a script that drops
    ** managers without running the loop must get their memory back. */
    store_free(e->store);
    e->store = NULL;
    uv_timer_stop(&e->sweep_timer);
    uv_close((uv_handle_t *)&e->sweep_timer, on_timer_closed);
}

const char *engine_get(Engine *e, const char *key, size_t klen, size_t *vlen)
{
    uint64_t lower = coarse_now_ms();
    uint64_t expires_at;
    const char *v =
        store_get_expiring(e->store, key, klen, lower, vlen, &expires_at);
    if (v != NULL && expires_at != 0 &&
        expires_at <= lower + e->coarse_slack_ms) {
        uint64_t now = engine_now_ms();
        if (now >= expires_at) { /* expired after all: remove, count it */
            store_exists(e->store, key, klen, now);
            v = NULL;
        }
    }
    if (v != NULL)
        e->stats.hits++;
    else
        e->stats.misses++;
    return v;
}

void engine_get_corrupt(Engine *e, const char *key, size_t klen)
{
    e->stats.hits--;
    e->stats.misses++;
    count_error(e, CR_ECORRUPT);
    store_delete(e->store, key, klen, engine_now_ms());
}

int engine_set(Engine *e, const char *key, size_t klen, const char *val,
               size_t vlen, uint64_t ttl_ms)
{
    uint64_t now = engine_now_ms();
    int rc = store_set(e->store, key, klen, val, vlen,
                       ttl_ms == 0 ? 0 : now + ttl_ms, now);
    if (rc != CR_OK) {
        count_error(e, rc);
        return rc;
    }
    e->stats.sets++;
    return CR_OK;
}

bool engine_delete(Engine *e, const char *key, size_t klen)
{
    bool removed = store_delete(e->store, key, klen, engine_now_ms());
    if (removed)
        e->stats.deletes++;
    return removed;
}

bool engine_exists(Engine *e, const char *key, size_t klen)
{
    return store_exists(e->store, key, klen, engine_now_ms());
}

size_t engine_clear(Engine *e, const char *pattern, size_t plen)
{
    size_t n = store_clear(e->store, pattern, plen, engine_now_ms());
    e->stats.deletes += n;
    return n;
}

void engine_set_limits(Engine *e, size_t max_items, size_t max_bytes)
{
    store_set_limits(e->store, max_items, max_bytes);
}

void engine_stats(const Engine *e, EngineStats *out)
{
    *out = e->stats;
    store_stats(e->store, &out->store);
}
