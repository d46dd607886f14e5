/*
** reply_capture.h -- what the pool, TLS and Sentinel tests share: a Result
** that captures one command's outcome (a copy of its reply), bounded waits
** on a libuv loop, and a steady load of SETs. Header-only, for the test
** programs.
*/
#ifndef CACHERT_REPLY_CAPTURE_H
#define CACHERT_REPLY_CAPTURE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "pool.h"
#include "status.h"
#include "test.h"

typedef struct Result {
    int calls;
    int status;
    int type;
    long long integer;
    char *str; /* a copy of the reply's string, NUL added */
    size_t len;
    void *owner; /* for callbacks that act on their test's state */
} Result;

/* A pool_reply_cb / conn_reply_cb recording into the Result `ud`. */
static void on_reply(void *ud, int status, const redisReply *r)
{
    Result *res = ud;
    res->calls++;
    res->status = status;
    if (r == NULL)
        return;
    res->type = r->type;
    res->integer = r->integer;
    if (r->str != NULL) {
        free(res->str);
        res->str = malloc(r->len + 1);
        ASSERT_NOT_NULL(res->str);
        memcpy(res->str, r->str, r->len);
        res->str[r->len] = '\0';
        res->len = r->len;
    }
}

static void result_free(Result *r)
{
    free(r->str);
    r->str = NULL;
}

static void on_guard(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

/* Runs the loop until *counter >= target or `ms` pass; true on the first. */
static bool wait_count(uv_loop_t *loop, const int *counter, int target,
                       uint64_t ms)
{
    bool expired = false;
    uv_timer_t guard;
    uv_timer_init(loop, &guard);
    guard.data = &expired;
    uv_timer_start(&guard, on_guard, ms, 0);
    while (*counter < target && !expired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(loop, UV_RUN_NOWAIT); /* completes the close */
    return *counter >= target;
}

/* A steady flow of SETs on the pool *pool (20 per tick of `timer`, which
** the test starts), counting how each one ended. */
typedef struct Load {
    Pool **pool;
    uv_timer_t timer;
    int issued;
    int ok;
    int failed;
    int rejected; /* pool_command refused it: never sent */
} Load;

static inline void on_load_reply(void *ud, int status, const redisReply *r)
{
    Load *l = ud;
    if (status == CR_OK && r->type == REDIS_REPLY_STATUS)
        l->ok++;
    else
        l->failed++;
}

static inline void on_load_tick(uv_timer_t *t)
{
    Load *l = t->data;
    for (int i = 0; i < 20; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", l->issued % 100);
        int rc = pool_command(*l->pool, 3, (const char *[]){"SET", key, "v"},
                              NULL, on_load_reply, l);
        if (rc == CR_OK)
            l->issued++;
        else
            l->rejected++;
    }
}

/* Starts the load on *pool: 20 SETs every millisecond of `loop`. */
static inline void load_start(Load *l, uv_loop_t *loop, Pool **pool)
{
    memset(l, 0, sizeof(*l));
    l->pool = pool;
    uv_timer_init(loop, &l->timer);
    l->timer.data = l;
    uv_timer_start(&l->timer, on_load_tick, 1, 1);
}

/* Stops it; the timer is closed on the loop's next run. */
static inline void load_stop(Load *l)
{
    uv_timer_stop(&l->timer);
    uv_close((uv_handle_t *)&l->timer, NULL);
}

/* Runs the loop for `ms`. */
static void run_for(uv_loop_t *loop, uint64_t ms)
{
    static const int never = 0;
    wait_count(loop, &never, 1, ms);
}

#endif
