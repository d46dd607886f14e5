/*
** evloop.c -- timers and polling for the Lua scheduler.
**
** Each sleep gets its own malloc'd uv_timer_t, freed in its close callback.
** Wake-ups are queued in `woken` in firing order; libuv fires timers with
** equal deadlines in start order, so equal sleeps wake tasks FIFO.
*/
#include "evloop.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "status.h"

struct SleepTimer {
    uv_timer_t handle;
    EvLoop *sched;
    int64_t id;
    SleepTimer *prev, *next; /* on s->timers until it fires or closes */
};

/* -- Helpers ------------------------------------------------------------ */

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void unlink_timer(SleepTimer *t)
{
    EvLoop *s = t->sched;
    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        s->timers = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    s->ntimers--;
}

static bool push_woken(EvLoop *s, int64_t id)
{
    if (s->nwoken == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        int64_t *w = realloc(s->woken, cap * sizeof(*w));
        if (w == NULL)
            return false;
        s->woken = w;
        s->cap = cap;
    }
    s->woken[s->nwoken++] = id;
    return true;
}

static void on_kick(uv_idle_t *h)
{
    (void)h;
}

static void on_timer(uv_timer_t *h)
{
    SleepTimer *t = h->data;
    if (!push_woken(t->sched, t->id)) {
        /* Out of memory: fire again shortly instead of losing the task. */
        uv_timer_start(h, on_timer, 1, 0);
        return;
    }
    unlink_timer(t);
    uv_close((uv_handle_t *)h, on_timer_closed);
}

/* -- Public API --------------------------------------------------------- */

void evloop_reserve_stdio(void)
{
    for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++) {
        if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
            continue;
        /* The lowest free number: `fd` itself, since those below are open. */
        int nfd = open("/dev/null", O_RDWR);
        if (nfd >= 0 && nfd != fd) {
            dup2(nfd, fd);
            close(nfd);
        }
    }
}

int evloop_init(EvLoop *s)
{
    s->woken = NULL;
    s->nwoken = 0;
    s->cap = 0;
    s->ntimers = 0;
    s->next_id = 0;
    s->npending = 0;
    s->timers = NULL;
    s->closed = false;
    evloop_reserve_stdio();
    if (uv_loop_init(&s->loop) != 0)
        return CR_ENOMEM;
    uv_idle_init(&s->loop, &s->kick);
    return CR_OK;
}

int64_t evloop_new_id(EvLoop *s)
{
    return ++s->next_id;
}

void evloop_begin(EvLoop *s)
{
    s->npending++;
}

bool evloop_wake(EvLoop *s, int64_t id)
{
    s->npending--;
    return push_woken(s, id);
}

int evloop_timer(EvLoop *s, uint64_t ms, int64_t id)
{
    SleepTimer *t = malloc(sizeof(*t));
    if (t == NULL)
        return CR_ENOMEM;
    uv_timer_init(&s->loop, &t->handle);
    t->handle.data = t;
    t->sched = s;
    t->id = id;
    t->prev = NULL;
    t->next = s->timers;
    if (s->timers != NULL)
        s->timers->prev = t;
    s->timers = t;
    uv_update_time(&s->loop); /* the loop's clock may be stale */
    /* +1: the loop's clock counts whole milliseconds, so a timer started
    ** part-way through one would otherwise fire up to 1 ms early. */
    uv_timer_start(&t->handle, on_timer, ms + 1, 0);
    s->ntimers++;
    return CR_OK;
}

size_t evloop_poll(EvLoop *s, bool block)
{
    bool wait = block && (s->ntimers > 0 || s->npending > 0);
    if (wait) {
        uv_run(&s->loop, UV_RUN_ONCE);
        return s->nwoken;
    }
    /* uv_run does nothing at all while no referenced handle is active, and
    ** everything that must keep running here is unreferenced: an active
    ** idle handle makes it run one iteration, polling without a wait. */
    uv_idle_start(&s->kick, on_kick);
    uv_run(&s->loop, UV_RUN_NOWAIT);
    uv_idle_stop(&s->kick);
    return s->nwoken;
}

void evloop_close(EvLoop *s)
{
    if (s->closed)
        return;
    s->closed = true;
    while (s->timers != NULL) { /* sleeps of tasks that never finished */
        SleepTimer *t = s->timers;
        unlink_timer(t);
        uv_close((uv_handle_t *)&t->handle, on_timer_closed);
    }
    uv_close((uv_handle_t *)&s->kick, NULL);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    uv_loop_close(&s->loop);
    free(s->woken);
    s->woken = NULL;
}
