/*
** clearscan.c -- the SCAN + UNLINK loop, one command in flight at a time
** so the server never sees more than one batch of this clear at once;
** node after node when the backend has several (a Cluster).
*/
#include "clearscan.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "globmatch.h"
#include "status.h"

typedef struct ClearScan {
    Backend *backend;
    size_t node;     /* the node being scanned */
    char **patterns; /* matched here when n > 1 */
    size_t *plens;
    size_t n;
    char *match; /* SCAN's MATCH argument, NULL for none */
    size_t mlen;
    char cursor[32];
    uint64_t removed;
    clearscan_done_cb done;
    void *ud;
    ClearScanHooks hooks;
    char err[160];
} ClearScan;

/* -- Helpers ------------------------------------------------------------ */

static void cs_free(ClearScan *cs)
{
    for (size_t i = 0; i < cs->n; i++)
        free(cs->patterns[i]);
    free(cs->patterns);
    free(cs->plens);
    free(cs->match);
    free(cs);
}

static void finish(ClearScan *cs, int status)
{
    cs->done(cs->ud, status, cs->removed, cs->err[0] ? cs->err : NULL);
    cs_free(cs);
}

/* A reply that is not what was asked for: the server's error, or junk. */
static void finish_bad_reply(ClearScan *cs, const redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(cs->err, sizeof(cs->err), "%s", r->str);
        finish(cs, CR_EREPLY);
    } else {
        finish(cs, CR_EPROTO);
    }
}

static void on_scan(void *ud, int status, const redisReply *r);

/* The next SCAN on the current node, or on the next ones: a node that
** holds no slots (CR_EINVAL) is skipped, so is one lost when the hooks
** say so. CR_OK with nothing sent when every node is done. */
static int send_scan(ClearScan *cs, bool *sent)
{
    *sent = false;
    while (cs->node < backend_nodes(cs->backend)) {
        RedisCmd cmd;
        cmd_scan(&cmd, cs->cursor, CLEARSCAN_COUNT, cs->match, cs->mlen);
        int rc = backend_node_command(cs->backend, cs->node, cmd.argc, cmd.argv,
                                      cmd.lens, on_scan, cs);
        if (rc == CR_OK) {
            *sent = true;
            return CR_OK;
        }
        if (rc == CR_ECONNRESET && cs->hooks.node_lost != NULL) {
            if (!cs->hooks.node_lost(cs->hooks.ud, cs->node, rc))
                return rc;
        } else if (rc != CR_EINVAL) {
            return rc;
        }
        cs->node++;
        strcpy(cs->cursor, "0");
    }
    return CR_OK;
}

/* After a reply: the next batch, the next node, or the end. */
static void next_or_finish(ClearScan *cs)
{
    if (strcmp(cs->cursor, "0") == 0)
        cs->node++;
    bool sent;
    int rc = send_scan(cs, &sent);
    if (rc != CR_OK || !sent)
        finish(cs, rc);
}

/* A transport failure on the current node: the end, or (hooks) the next
** node. */
static void transport_failed(ClearScan *cs, int status)
{
    if (cs->hooks.node_lost == NULL ||
        !cs->hooks.node_lost(cs->hooks.ud, cs->node, status)) {
        finish(cs, status);
        return;
    }
    strcpy(cs->cursor, "0");
    next_or_finish(cs);
}

static void on_unlink(void *ud, int status, const redisReply *r)
{
    ClearScan *cs = ud;
    if (status != CR_OK) {
        transport_failed(cs, status);
        return;
    }
    if (r->type != REDIS_REPLY_INTEGER) {
        finish_bad_reply(cs, r);
        return;
    }
    cs->removed += (uint64_t)r->integer;
    next_or_finish(cs);
}

static bool wanted(const ClearScan *cs, const char *key, size_t klen)
{
    if (cs->hooks.keep != NULL && !cs->hooks.keep(cs->hooks.ud, key, klen))
        return false;
    if (cs->n == 1) /* the server matched it */
        return true;
    for (size_t i = 0; i < cs->n; i++)
        if (globmatch(cs->patterns[i], cs->plens[i], key, klen))
            return true;
    return false;
}

static void on_scan(void *ud, int status, const redisReply *r)
{
    ClearScan *cs = ud;
    if (status != CR_OK) {
        transport_failed(cs, status);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[0]->len >= sizeof(cs->cursor) ||
        r->element[1]->type != REDIS_REPLY_ARRAY) {
        finish_bad_reply(cs, r);
        return;
    }
    memcpy(cs->cursor, r->element[0]->str, r->element[0]->len);
    cs->cursor[r->element[0]->len] = '\0';
    const redisReply *keys = r->element[1];
    if (keys->elements == 0) {
        next_or_finish(cs);
        return;
    }
    size_t n = keys->elements + 1;
    const char **argv = malloc(n * sizeof(*argv));
    size_t *lens = malloc(n * sizeof(*lens));
    int rc = CR_ENOMEM;
    if (argv != NULL && lens != NULL) {
        cmd_unlink_head(argv, lens);
        rc = CR_OK;
        n = 1;
        for (size_t i = 0; i < keys->elements; i++) {
            const redisReply *k = keys->element[i];
            if (k->type != REDIS_REPLY_STRING) {
                rc = CR_EPROTO;
                break;
            }
            if (wanted(cs, k->str, k->len)) {
                argv[n] = k->str;
                lens[n++] = k->len;
            }
        }
        if (rc == CR_OK && n == 1) { /* nothing of ours in this batch */
            free(argv);
            free(lens);
            next_or_finish(cs);
            return;
        }
        if (rc == CR_OK) /* the backend copies the arguments */
            rc = backend_node_command(cs->backend, cs->node, (int)n, argv, lens,
                                      on_unlink, cs);
    }
    free(argv);
    free(lens);
    if (rc == CR_ECONNRESET)
        transport_failed(cs, rc);
    else if (rc != CR_OK)
        finish(cs, rc);
}

/* The MATCH argument for several patterns: their common literal head,
** escaped, then "*"; none when they share no head. */
static int common_match(ClearScan *cs)
{
    size_t maxlen = 0;
    for (size_t i = 0; i < cs->n; i++)
        if (cs->plens[i] > maxlen)
            maxlen = cs->plens[i];
    char *head = malloc(maxlen + 1);
    char *tmp = malloc(maxlen + 1);
    if (head == NULL || tmp == NULL) {
        free(head);
        free(tmp);
        return CR_ENOMEM;
    }
    bool whole;
    size_t hlen = globmatch_prefix(cs->patterns[0], cs->plens[0], head, &whole);
    for (size_t i = 1; i < cs->n && hlen > 0; i++) {
        size_t tlen =
            globmatch_prefix(cs->patterns[i], cs->plens[i], tmp, &whole);
        size_t j = 0;
        while (j < hlen && j < tlen && head[j] == tmp[j])
            j++;
        hlen = j;
    }
    free(tmp);
    if (hlen > 0) {
        cs->match = malloc(2 * hlen + 1);
        if (cs->match == NULL) {
            free(head);
            return CR_ENOMEM;
        }
        for (size_t j = 0; j < hlen; j++) {
            if (strchr("*?[]\\", head[j]) != NULL && head[j] != '\0')
                cs->match[cs->mlen++] = '\\';
            cs->match[cs->mlen++] = head[j];
        }
        cs->match[cs->mlen++] = '*';
    }
    free(head);
    return CR_OK;
}

/* -- Public API --------------------------------------------------------- */

int clearscan_start(Backend *b, const char *const *patterns,
                    const size_t *plens, size_t n, const ClearScanHooks *hooks,
                    clearscan_done_cb done, void *ud)
{
    if (n == 0)
        return CR_EINVAL;
    ClearScan *cs = calloc(1, sizeof(*cs));
    if (cs == NULL)
        return CR_ENOMEM;
    cs->patterns = calloc(n, sizeof(*cs->patterns));
    cs->plens = calloc(n, sizeof(*cs->plens));
    if (cs->patterns == NULL || cs->plens == NULL) {
        cs_free(cs);
        return CR_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        cs->patterns[i] = malloc(plens[i] + 1);
        if (cs->patterns[i] == NULL) {
            cs_free(cs);
            return CR_ENOMEM;
        }
        cs->n = i + 1;
        memcpy(cs->patterns[i], patterns[i], plens[i]);
        cs->patterns[i][plens[i]] = '\0';
        cs->plens[i] = plens[i];
    }
    int rc = CR_OK;
    if (n == 1) {
        cs->match = malloc(plens[0] + 1);
        if (cs->match == NULL)
            rc = CR_ENOMEM;
        else {
            memcpy(cs->match, patterns[0], plens[0]);
            cs->mlen = plens[0];
        }
    } else {
        rc = common_match(cs);
    }
    cs->backend = b;
    cs->done = done;
    cs->ud = ud;
    if (hooks != NULL)
        cs->hooks = *hooks;
    strcpy(cs->cursor, "0");
    bool sent = false;
    if (rc == CR_OK)
        rc = send_scan(cs, &sent);
    if (rc == CR_OK && !sent)
        rc = CR_ECONNRESET; /* every node lost: nothing was cleared */
    if (rc != CR_OK)
        cs_free(cs);
    return rc;
}
