/*
** clearscan.c -- the SCAN + UNLINK loop, one command in flight at a time
** so the server never sees more than one batch of this clear at once.
*/
#include "clearscan.h"

#include <stdlib.h>
#include <string.h>

#include "status.h"

typedef struct ClearScan {
    Pool *pool;
    char *pattern;
    size_t plen;
    char cursor[32];
    uint64_t removed;
    clearscan_done_cb done;
    void *ud;
} ClearScan;

/* -- Helpers ------------------------------------------------------------ */

static void finish(ClearScan *cs, int status)
{
    cs->done(cs->ud, status, cs->removed);
    free(cs->pattern);
    free(cs);
}

static void on_scan(void *ud, int status, const redisReply *r);

static int send_scan(ClearScan *cs)
{
    const char *argv[] = {"SCAN",      cs->cursor, "MATCH",
                          cs->pattern, "COUNT",    CLEARSCAN_COUNT};
    size_t lens[] = {4, strlen(cs->cursor),     5, cs->plen,
                     5, strlen(CLEARSCAN_COUNT)};
    return pool_command(cs->pool, 6, argv, lens, on_scan, cs);
}

static void next_or_finish(ClearScan *cs)
{
    if (strcmp(cs->cursor, "0") == 0) {
        finish(cs, CR_OK);
        return;
    }
    int rc = send_scan(cs);
    if (rc != CR_OK)
        finish(cs, rc);
}

static void on_unlink(void *ud, int status, const redisReply *r)
{
    ClearScan *cs = ud;
    if (status != CR_OK) {
        finish(cs, status);
        return;
    }
    if (r->type != REDIS_REPLY_INTEGER) {
        finish(cs, r->type == REDIS_REPLY_ERROR ? CR_EREPLY : CR_EPROTO);
        return;
    }
    cs->removed += (uint64_t)r->integer;
    next_or_finish(cs);
}

static void on_scan(void *ud, int status, const redisReply *r)
{
    ClearScan *cs = ud;
    if (status != CR_OK) {
        finish(cs, status);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        finish(cs, CR_EREPLY);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[0]->len >= sizeof(cs->cursor) ||
        r->element[1]->type != REDIS_REPLY_ARRAY) {
        finish(cs, CR_EPROTO);
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
        argv[0] = "UNLINK";
        lens[0] = 6;
        rc = CR_OK;
        for (size_t i = 0; i < keys->elements; i++) {
            if (keys->element[i]->type != REDIS_REPLY_STRING) {
                rc = CR_EPROTO;
                break;
            }
            argv[i + 1] = keys->element[i]->str;
            lens[i + 1] = keys->element[i]->len;
        }
        if (rc == CR_OK) /* pool_command copies the arguments */
            rc = pool_command(cs->pool, (int)n, argv, lens, on_unlink, cs);
    }
    free(argv);
    free(lens);
    if (rc != CR_OK)
        finish(cs, rc);
}

/* -- Public API --------------------------------------------------------- */

int clearscan_start(Pool *p, const char *pattern, size_t plen,
                    clearscan_done_cb done, void *ud)
{
    ClearScan *cs = calloc(1, sizeof(*cs));
    if (cs == NULL)
        return CR_ENOMEM;
    cs->pattern = malloc(plen + 1);
    if (cs->pattern == NULL) {
        free(cs);
        return CR_ENOMEM;
    }
    memcpy(cs->pattern, pattern, plen);
    cs->pattern[plen] = '\0';
    cs->plen = plen;
    cs->pool = p;
    cs->done = done;
    cs->ud = ud;
    strcpy(cs->cursor, "0");
    int rc = send_scan(cs);
    if (rc != CR_OK) {
        free(cs->pattern);
        free(cs);
    }
    return rc;
}
