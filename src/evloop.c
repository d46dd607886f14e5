/*
** evloop.c -- timers and polling for the Lua scheduler.
**
** Each sleep gets its own malloc'd uv_timer_t, freed in its close callback.
** Wake-ups are queued in `woken` in firing order; libuv fires timers with
** equal deadlines in start order, so equal sleeps wake tasks FIFO.
**
** Signals: libuv's handler for each caught signal is wrapped by
** on_raw_signal, which counts signals in the handler itself. The first one
** goes on to libuv, whose callback (on_signal) queues its id like a timer;
** the second calls _exit(), since the loop may never run again (a Lua loop
** that never waits, an exit hook stuck in a system call).
*/
#include "evloop.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
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

/* -- Signals ------------------------------------------------------------ */

static const int caught_signals[] = {SIGINT, SIGTERM, SIGHUP};
#define NCAUGHT (sizeof(caught_signals) / sizeof(caught_signals[0]))

static bool catch_signals;                 /* evloop_catch_signals() called */
static volatile sig_atomic_t first_signal; /* 0 until one arrives */
static struct sigaction libuv_action[NCAUGHT]; /* what on_raw_signal wraps */

static void on_raw_signal(int signum, siginfo_t *info, void *ctx)
{
    if (first_signal != 0)
        _exit(128 + first_signal); /* the second: at once, nothing cleaned */
    first_signal = signum;
    for (size_t i = 0; i < NCAUGHT; i++) {
        const struct sigaction *a = &libuv_action[i];
        if (caught_signals[i] != signum)
            continue;
        if (a->sa_flags & SA_SIGINFO)
            a->sa_sigaction(signum, info, ctx);
        else if (a->sa_handler != SIG_DFL && a->sa_handler != SIG_IGN)
            a->sa_handler(signum);
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    EvLoop *s = h->data;
    if (s->signalled)
        return;
    /* Out of memory: the scheduler never hears of it, but a second signal
    ** still ends the process. */
    s->signalled = push_woken(s, EVLOOP_SIGNAL_ID(signum));
}

/* Starts the signal handles of `s` and puts on_raw_signal in front of the
** handlers libuv installed for them. A signal ignored when the process
** started stays ignored (nohup, a shell's background job). */
static void start_signals(EvLoop *s)
{
    for (size_t i = 0; i < NCAUGHT; i++) {
        uv_signal_t *h = &s->signals[i];
        uv_signal_init(&s->loop, h);
        h->data = s;
        struct sigaction old;
        if (sigaction(caught_signals[i], NULL, &old) == 0 &&
            !(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_IGN)
            continue; /* initialised, not started: closed all the same */
        uv_signal_start(h, on_signal, caught_signals[i]);
        uv_unref((uv_handle_t *)h);
        if (sigaction(caught_signals[i], NULL, &libuv_action[i]) != 0)
            continue;
        struct sigaction wrap = libuv_action[i];
        wrap.sa_sigaction = on_raw_signal;
        wrap.sa_flags |= SA_SIGINFO;
        sigaction(caught_signals[i], &wrap, NULL);
    }
    s->catching = true;
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

void evloop_catch_signals(void)
{
    catch_signals = true;
}

int evloop_first_signal(void)
{
    return first_signal;
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
    s->catching = false;
    s->signalled = false;
    s->closed = false;
    evloop_reserve_stdio();
    if (uv_loop_init(&s->loop) != 0)
        return CR_ENOMEM;
    uv_idle_init(&s->loop, &s->kick);
    if (catch_signals)
        start_signals(s);
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

bool evloop_notify(EvLoop *s, int64_t id)
{
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
    for (size_t i = 0; s->catching && i < NCAUGHT; i++)
        uv_close((uv_handle_t *)&s->signals[i], NULL); /* back to SIG_DFL */
    uv_run(&s->loop, UV_RUN_DEFAULT);
    uv_loop_close(&s->loop);
    free(s->woken);
    s->woken = NULL;
}
