/*
** inspect.c -- the engine's inspection operations: one step of a key
** listing (SCAN, optionally followed by UNLINK of what it found) and a
** node's INFO text.
**
** They serve tools that look at the cache in Redis (the `cachert keys`,
** `clear` and `stats` commands), so unlike get/set they never complete on
** the memory store once sent: a failure is reported as a failure (and
** counted), and the backend's own state callback decides whether the
** manager moves to the memory store. A listing walks node after node (a
** Cluster's primaries) with the caller holding the position between steps
** (node, cursor), so one step is one SCAN (plus one UNLINK) in flight and
** the caller may report progress, stop early or pace itself.
*/
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "engine_impl.h"
#include "globmatch.h"
#include "status.h"

#define SCAN_DEFAULT_COUNT 1000

typedef struct ScanStep {
    Engine *e;
    size_t node;
    char cursor[ENGINE_SCAN_CURSOR_MAX + 1];
    char *match; /* SCAN's MATCH argument */
    size_t mlen;
    char count[24];
    bool unlink;
    engine_done_cb done;
    void *ud;
    /* UNLINK's name then the keys found (copies in `bytes`) */
    const char **argv;
    size_t *lens;
    char *bytes;
    size_t nkeys;
    char err[200];
} ScanStep;

/* -- Helpers ------------------------------------------------------------ */

static bool valid_cursor(const char *cursor)
{
    size_t n = strlen(cursor);
    if (n == 0 || n > ENGINE_SCAN_CURSOR_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (cursor[i] < '0' || cursor[i] > '9')
            return false;
    return true;
}

static void fail_now(Engine *e, int status, const char *msg,
                     engine_done_cb done, void *ud)
{
    EngineResult r = {0};
    r.status = status;
    if (status != CR_EINVAL && !e->quiet)
        count_error(e, status, msg);
    r.err = msg != NULL ? msg : cr_strerror(status);
    done(ud, &r);
}

static void step_free(ScanStep *st)
{
    free(st->argv);
    free(st->lens);
    free(st->bytes);
    free(st->match);
    free(st);
}

/* Ends the step with a failure: the transport's status, or the server's
** error text (CR_EREPLY, CR_ENOPERM, ...). */
static void step_failed(ScanStep *st, int status, const redisReply *reply)
{
    Engine *e = st->e;
    const char *text = NULL;
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        snprintf(st->err, sizeof(st->err), "%s", reply->str);
        text = st->err;
        status = error_status(text);
    } else if (reply != NULL) {
        status = CR_EPROTO;
    }
    if (!e->quiet)
        count_error(e, status, text);
    EngineResult r = {0};
    r.status = status;
    /* The server's own words when it gave some: last_error may be older
    ** (or not set at all on a quiet engine). */
    r.err = text != NULL       ? text
            : e->last_error[0] ? e->last_error
                               : cr_strerror(status);
    st->done(st->ud, &r);
    step_free(st);
}

/* Ends the step with its page: where the next one starts is the cursor the
** server gave, or the next node once this node's cursor is back at 0. */
static void step_finish(ScanStep *st, uint64_t unlinked)
{
    EngineScanPage page = {0};
    if (st->nkeys > 0) {
        page.keys = st->argv + 1;
        page.klens = st->lens + 1;
        page.nkeys = st->nkeys;
    }
    page.unlinked = unlinked;
    page.next_node = st->node;
    page.next_cursor = st->cursor;
    if (strcmp(st->cursor, "0") == 0) {
        page.next_node = st->node + 1;
        size_t nodes =
            st->e->backend != NULL ? backend_nodes(st->e->backend) : 0;
        page.done = page.next_node >= nodes;
    }
    st->e->stats.deletes += unlinked;
    EngineResult r = {0};
    r.page = &page;
    r.count = unlinked;
    st->done(st->ud, &r);
    step_free(st);
}

static void on_unlinked(void *ud, int status, const redisReply *reply)
{
    ScanStep *st = ud;
    if (status != CR_OK || reply->type != REDIS_REPLY_INTEGER) {
        step_failed(st, status, status == CR_OK ? reply : NULL);
        return;
    }
    step_finish(st, (uint64_t)reply->integer);
}

static void on_scanned(void *ud, int status, const redisReply *reply)
{
    ScanStep *st = ud;
    if (status != CR_OK) {
        step_failed(st, status, NULL);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[0]->len > ENGINE_SCAN_CURSOR_MAX ||
        reply->element[1]->type != REDIS_REPLY_ARRAY) {
        step_failed(st, CR_EPROTO, reply);
        return;
    }
    const redisReply *keys = reply->element[1];
    for (size_t i = 0; i < keys->elements; i++)
        if (keys->element[i]->type != REDIS_REPLY_STRING) {
            step_failed(st, CR_EPROTO, reply);
            return;
        }
    memcpy(st->cursor, reply->element[0]->str, reply->element[0]->len);
    st->cursor[reply->element[0]->len] = '\0';
    /* The reply is the pool's, valid during this callback only: the keys
    ** must outlive an UNLINK round trip, so the step keeps a copy, after
    ** UNLINK's name (argv[0]) so that they are also its arguments. */
    size_t n = keys->elements, total = 0;
    for (size_t i = 0; i < n; i++)
        total += keys->element[i]->len;
    st->argv = malloc((n + 1) * sizeof(*st->argv));
    st->lens = malloc((n + 1) * sizeof(*st->lens));
    st->bytes = malloc(total + 1);
    if (st->argv == NULL || st->lens == NULL || st->bytes == NULL) {
        step_failed(st, CR_ENOMEM, NULL);
        return;
    }
    cmd_unlink_head(st->argv, st->lens);
    char *p = st->bytes;
    for (size_t i = 0; i < n; i++) {
        const redisReply *k = keys->element[i];
        memcpy(p, k->str, k->len);
        st->argv[i + 1] = p;
        st->lens[i + 1] = k->len;
        p += k->len;
    }
    st->nkeys = n;
    if (!st->unlink || n == 0) {
        step_finish(st, 0);
        return;
    }
    /* a Cluster's backend splits an UNLINK of many keys by slot */
    int rc = backend_node_command(st->e->backend, st->node, (int)n + 1,
                                  st->argv, st->lens, on_unlinked, st);
    if (rc != CR_OK)
        step_failed(st, rc, NULL);
}

/* Sends the SCAN of the step's position, skipping nodes that hold no
** slots. CR_OK with *sent false: no node left (the listing is done). */
static int send_scan(ScanStep *st, bool *sent)
{
    *sent = false;
    Backend *b = st->e->backend;
    while (st->node < backend_nodes(b)) {
        RedisCmd cmd;
        cmd_scan(&cmd, st->cursor, st->count, st->match, st->mlen);
        int rc = backend_node_command(b, st->node, cmd.argc, cmd.argv, cmd.lens,
                                      on_scanned, st);
        if (rc != CR_EINVAL) {
            *sent = rc == CR_OK;
            return rc;
        }
        st->node++;
        strcpy(st->cursor, "0");
    }
    return CR_OK;
}

typedef struct KeyList {
    char *bytes;
    size_t len, cap;
    size_t n;
    const char *pattern;
    size_t plen;
    bool oom;
} KeyList;

static bool collect_key(void *ud, const char *key, size_t klen, const char *val,
                        size_t vlen, uint64_t ttl_left_ms)
{
    (void)val;
    (void)vlen;
    (void)ttl_left_ms;
    KeyList *l = ud;
    if (!globmatch(l->pattern, l->plen, key, klen))
        return true;
    if (l->len + klen + sizeof(size_t) > l->cap) {
        size_t cap = (l->cap ? 2 * l->cap : 4096) + klen + sizeof(size_t);
        char *p = realloc(l->bytes, cap);
        if (p == NULL) {
            l->oom = true;
            return false;
        }
        l->bytes = p;
        l->cap = cap;
    }
    memcpy(l->bytes + l->len, &klen, sizeof(klen));
    memcpy(l->bytes + l->len + sizeof(klen), key, klen);
    l->len += sizeof(klen) + klen;
    l->n++;
    return true;
}

/* The memory store's listing: every matching key in one page. */
static void scan_memory(Engine *e, const char *pattern, size_t plen,
                        bool unlink, engine_done_cb done, void *ud)
{
    KeyList l = {0};
    l.pattern = pattern;
    l.plen = plen;
    store_foreach(e->store, store_now_ms(e), collect_key, &l);
    const char **keys = malloc((l.n + 1) * sizeof(*keys));
    size_t *klens = malloc((l.n + 1) * sizeof(*klens));
    if (l.oom || keys == NULL || klens == NULL) {
        free(l.bytes);
        free(keys);
        free(klens);
        fail_now(e, CR_ENOMEM, NULL, done, ud);
        return;
    }
    size_t off = 0;
    for (size_t i = 0; i < l.n; i++) {
        memcpy(&klens[i], l.bytes + off, sizeof(size_t));
        keys[i] = l.bytes + off + sizeof(size_t);
        off += sizeof(size_t) + klens[i];
    }
    uint64_t unlinked = 0;
    for (size_t i = 0; unlink && i < l.n; i++)
        unlinked += engine_delete(e, keys[i], klens[i]) ? 1 : 0;
    EngineScanPage page = {0};
    page.keys = keys;
    page.klens = klens;
    page.nkeys = l.n;
    page.unlinked = unlinked;
    page.done = true;
    page.next_cursor = "0";
    page.memory = true;
    EngineResult r = {0};
    r.page = &page;
    r.count = unlinked;
    done(ud, &r);
    free(keys);
    free(klens);
    free(l.bytes);
}

/* -- Public API --------------------------------------------------------- */

int engine_scan_async(Engine *e, size_t node, const char *cursor,
                      const char *pattern, size_t plen, size_t count,
                      bool unlink, engine_done_cb done, void *ud)
{
    if (!valid_cursor(cursor)) {
        fail_now(e, CR_EINVAL, "cursor must be digits", done, ud);
        return 0;
    }
    if (e->mode != MODE_REDIS || e->backend == NULL) {
        scan_memory(e, pattern, plen, unlink, done, ud);
        return 0;
    }
    ScanStep *st = calloc(1, sizeof(*st));
    if (st != NULL)
        st->match = malloc(plen + 1);
    if (st == NULL || st->match == NULL) {
        free(st);
        fail_now(e, CR_ENOMEM, NULL, done, ud);
        return 0;
    }
    memcpy(st->match, pattern, plen);
    st->mlen = plen;
    st->e = e;
    st->node = node;
    strcpy(st->cursor, cursor);
    *resp_u64(st->count, count > 0 ? count : (size_t)SCAN_DEFAULT_COUNT) = 0;
    st->unlink = unlink;
    st->done = done;
    st->ud = ud;
    bool sent;
    int rc = send_scan(st, &sent);
    if (rc == CR_OK && !sent) { /* past the last node: an empty last page */
        strcpy(st->cursor, "0");
        st->node = backend_nodes(e->backend);
        step_finish(st, 0);
        return 0;
    }
    if (rc != CR_OK) {
        free(st->match);
        free(st);
        fail_now(e, rc, NULL, done, ud);
        return 0;
    }
    return 1;
}

typedef struct InfoReq {
    Engine *e;
    engine_done_cb done;
    void *ud;
} InfoReq;

static void on_info(void *ud, int status, const redisReply *reply)
{
    InfoReq *q = ud;
    Engine *e = q->e;
    EngineResult r = {0};
    r.count = e->backend != NULL ? backend_nodes(e->backend) : 0;
    if (status != CR_OK) {
        if (!e->quiet)
            count_error(e, status, NULL);
        r.status = status;
        r.err = e->last_error;
    } else if (reply->type == REDIS_REPLY_STRING) {
        r.found = true;
        r.val = reply->str;
        r.vlen = reply->len;
        r.reply = reply;
    } else {
        if (!e->quiet)
            count_error(e, reply_status(reply), reply_text(reply));
        r.status = reply_status(reply);
        r.err = reply_text(reply) != NULL ? reply_text(reply) : e->last_error;
    }
    q->done(q->ud, &r);
    free(q);
}

int engine_info_async(Engine *e, size_t node, const char *section,
                      engine_done_cb done, void *ud)
{
    if (e->mode != MODE_REDIS || e->backend == NULL) {
        EngineResult r = {0};
        r.status = CR_ECONNRESET;
        r.err = cr_strerror(CR_ECONNRESET);
        done(ud, &r);
        return 0;
    }
    RedisCmd cmd;
    cmd_info(&cmd, section);
    InfoReq *q = malloc(sizeof(*q));
    if (q == NULL) {
        fail_now(e, CR_ENOMEM, NULL, done, ud);
        return 0;
    }
    q->e = e;
    q->done = done;
    q->ud = ud;
    int rc = backend_node_command(e->backend, node, cmd.argc, cmd.argv,
                                  cmd.lens, on_info, q);
    if (rc == CR_OK)
        return 1;
    free(q);
    EngineResult r = {0};
    r.count = backend_nodes(e->backend);
    if (rc == CR_EINVAL && node < r.count) { /* a replica: skip it */
        done(ud, &r);
        return 0;
    }
    fail_now(e, rc, NULL, done, ud);
    return 0;
}
