/*
** cluster.c -- the Redis Cluster backend (cluster.h): the slot map, one
** pool per node, routing and redirections.
**
** Nodes are never forgotten once known (seeds, map entries, redirection
** targets): their index is stable, so the map is a 16384-entry array of
** node indices. A node has a pool only while it is a primary of the map
** or needed to ask for the map; its state follows its pool's reports.
*/
#include "cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backoff.h"
#include "commands.h"
#include "slot.h"
#include "status.h"

#define NO_NODE   UINT16_MAX
#define MAX_NODES (NO_NODE - 1)

typedef enum NodeState {
    NODE_IDLE,       /* no pool */
    NODE_CONNECTING, /* its pool's first outcome is awaited */
    NODE_READY,
    NODE_DOWN, /* its pool failed and retries by itself */
} NodeState;

typedef struct Cluster Cluster;
typedef struct Node Node;

/* A command in flight, with its arguments kept for a redirection. */
typedef struct Req {
    Cluster *cl;
    pool_reply_cb cb;
    void *ud;
    struct Req *next; /* in a node's waiting list or the TRYAGAIN list */
    Node *to;         /* an ASK target or a node_command's node, or NULL */
    Node *sent_to;
    bool asking;
    bool fixed; /* node_command: never rerouted */
    uint16_t slot;
    int redirects;
    int argc;
    const char **argv;
    size_t *lens;
    char data[];
} Req;

struct Node {
    Cluster *cl;
    char *host;
    int port;
    uint16_t index;
    Pool *pool;
    NodeState state;
    bool primary; /* owns slots in the current map */
    Req *waiting; /* commands sent while connecting */
    Req **waiting_tail;
};

struct Cluster {
    Backend base;
    uv_loop_t *loop;
    pool_state_cb on_state;
    void *ud;
    PoolConfig pool_cfg; /* host and port: each node's own */
    Logger log;
    Node **nodes;
    size_t nnodes, cap;
    size_t nseeds; /* the first nodes */
    uint16_t owner[SLOT_COUNT];
    uint16_t next_owner[SLOT_COUNT]; /* a map being read */
    bool have_map;
    bool closed;
    uint64_t epoch;  /* bumped when a slot changes owner */
    bool report_due; /* report the next map even if unchanged (fail()) */
    /* the first map is loaded: its first report waits until every primary
    ** has connected or failed, so what it says is settled */
    bool first_pending;
    /* the map's refresh */
    bool refreshing;
    bool refresh_wanted; /* when a node connects */
    size_t next_pick;
    Backoff backoff;
    uv_timer_t refresh_timer;
    /* TRYAGAIN */
    Req *delayed;
    Req **delayed_tail;
    uv_timer_t tryagain_timer;
    int open_handles;
    char message[512];
};

/* A multi-key UNLINK split by slot: the sum of its parts. */
typedef struct Split {
    pool_reply_cb cb;
    void *ud;
    size_t pending;
    long long sum;
    int status;
    bool refused;
    char err[256];
} Split;

static void refresh(Cluster *cl);
static void on_refresh_timer(uv_timer_t *t);
static int route(Req *r);

/* -- Lifetime ----------------------------------------------------------- */

static void free_cluster(Cluster *cl)
{
    for (size_t i = 0; i < cl->nnodes; i++) {
        free(cl->nodes[i]->host);
        free(cl->nodes[i]);
    }
    free(cl->nodes);
    pool_config_free(&cl->pool_cfg);
    free(cl);
}

static void on_closed(uv_handle_t *h)
{
    Cluster *cl = h->data;
    if (--cl->open_handles == 0)
        free_cluster(cl);
}

static void report(Cluster *cl, int status, const char *message)
{
    if (!cl->closed)
        cl->on_state(cl->ud, status, message);
}

/* -- Requests ----------------------------------------------------------- */

static Req *req_new(Cluster *cl, int argc, const char **argv,
                    const size_t *argvlen, pool_reply_cb cb, void *ud)
{
    size_t bytes = 0;
    for (int i = 0; i < argc; i++)
        bytes += argvlen != NULL ? argvlen[i] : strlen(argv[i]);
    size_t n = (size_t)argc;
    Req *r = malloc(sizeof(*r) + n * (sizeof(char *) + sizeof(size_t)) + bytes);
    if (r == NULL)
        return NULL;
    memset(r, 0, sizeof(*r));
    r->cl = cl;
    r->cb = cb;
    r->ud = ud;
    r->argc = argc;
    r->lens = (size_t *)(void *)r->data;
    r->argv = (const char **)(void *)(r->lens + n);
    char *p = (char *)(r->argv + n);
    for (int i = 0; i < argc; i++) {
        r->lens[i] = argvlen != NULL ? argvlen[i] : strlen(argv[i]);
        memcpy(p, argv[i], r->lens[i]);
        r->argv[i] = p;
        p += r->lens[i];
    }
    /* EVAL script numkeys key ...: the first key routes it */
    int k =
        argc > 3 && r->lens[0] == 4 && strncasecmp(r->argv[0], "EVAL", 4) == 0
            ? 3
            : 1;
    if (argc > k)
        r->slot = slot_of(r->argv[k], r->lens[k]);
    return r;
}

static void finish(Req *r, int status, const redisReply *reply)
{
    r->cb(r->ud, status, reply);
    free(r);
}

/* Fails every request of a list. */
static void fail_list(Req *list, int status)
{
    while (list != NULL) {
        Req *next = list->next;
        finish(list, status, NULL);
        list = next;
    }
}

/* Sends every request of a list again (a node ready, a TRYAGAIN delay
** over); one that cannot go fails. */
static void route_list(Req *list)
{
    while (list != NULL) {
        Req *next = list->next;
        int rc = route(list);
        if (rc != CR_OK)
            finish(list, rc, NULL);
        list = next;
    }
}

/* -- Nodes -------------------------------------------------------------- */

static void node_name(const Node *n, char *buf, size_t size)
{
    snprintf(buf, size, "%s:%d", n->host, n->port);
}

static Node *find_node(Cluster *cl, const char *host, size_t hlen, int port)
{
    for (size_t i = 0; i < cl->nnodes; i++) {
        Node *n = cl->nodes[i];
        if (n->port == port && strlen(n->host) == hlen &&
            memcmp(n->host, host, hlen) == 0)
            return n;
    }
    if (cl->nnodes == MAX_NODES)
        return NULL;
    if (cl->nnodes == cl->cap) {
        size_t cap = cl->cap ? 2 * cl->cap : 8;
        Node **nodes = realloc(cl->nodes, cap * sizeof(*nodes));
        if (nodes == NULL)
            return NULL;
        cl->nodes = nodes;
        cl->cap = cap;
    }
    Node *n = calloc(1, sizeof(*n));
    char *h = malloc(hlen + 1);
    if (n == NULL || h == NULL) {
        free(n);
        free(h);
        return NULL;
    }
    memcpy(h, host, hlen);
    h[hlen] = '\0';
    n->cl = cl;
    n->host = h;
    n->port = port;
    n->index = (uint16_t)cl->nnodes;
    n->state = NODE_IDLE;
    n->waiting_tail = &n->waiting;
    cl->nodes[cl->nnodes++] = n;
    return n;
}

static Req *take_waiting(Node *n)
{
    Req *list = n->waiting;
    n->waiting = NULL;
    n->waiting_tail = &n->waiting;
    return list;
}

/* Asks for the map again in `ms` (unless a refresh is due sooner). */
static void refresh_in(Cluster *cl, uint64_t ms)
{
    if (cl->closed)
        return;
    if (uv_is_active((uv_handle_t *)&cl->refresh_timer) &&
        uv_timer_get_due_in(&cl->refresh_timer) <= ms)
        return;
    uv_timer_start(&cl->refresh_timer, on_refresh_timer, ms, 0);
}

/* True when no node can answer now: none ready, none connecting. */
static bool all_down(const Cluster *cl)
{
    for (size_t i = 0; i < cl->nnodes; i++)
        if (cl->nodes[i]->state == NODE_READY ||
            cl->nodes[i]->state == NODE_CONNECTING)
            return false;
    return true;
}

/* The first report, once no primary is still connecting: CR_OK when one
** is up (those down are a partial outage), else an error. */
static void report_first(Cluster *cl, int status, const char *last)
{
    size_t primaries = 0, up = 0;
    for (size_t i = 0; i < cl->nnodes; i++) {
        const Node *n = cl->nodes[i];
        if (!n->primary)
            continue;
        if (n->state == NODE_CONNECTING)
            return;
        primaries++;
        up += n->state == NODE_READY;
    }
    cl->first_pending = false;
    if (up > 0) {
        snprintf(cl->message, sizeof(cl->message),
                 "cluster: %zu primaries, %zu connected", primaries, up);
        report(cl, CR_OK, cl->message);
    } else {
        snprintf(cl->message, sizeof(cl->message),
                 "cluster: no primary answers (last: %s)", last);
        report(cl, status != CR_OK ? status : CR_ECONNREFUSED, cl->message);
    }
}

static void on_node_state(void *ud, int status, const char *message)
{
    Node *n = ud;
    Cluster *cl = n->cl;
    char name[300];
    node_name(n, name, sizeof(name));
    if (status == CR_OK) {
        n->state = NODE_READY;
        route_list(take_waiting(n));
        if (cl->refresh_wanted)
            refresh(cl);
        if (cl->first_pending) {
            if (n->primary)
                report_first(cl, status, message);
        } else if (cl->have_map && n->primary) {
            snprintf(cl->message, sizeof(cl->message),
                     "cluster: primary %s connected", name);
            report(cl, CR_OK, cl->message);
        }
        return;
    }
    n->state = NODE_DOWN;
    fail_list(take_waiting(n), status);
    log_msg(&cl->log, LOG_DEBUG, "cluster: node %s: %s", name, message);
    if (cl->first_pending && n->primary) {
        char last[400];
        snprintf(last, sizeof(last), "%s: %s", name, message);
        report_first(cl, status, last);
    }
    if (!cl->have_map) {
        if (all_down(cl)) {
            snprintf(cl->message, sizeof(cl->message),
                     "cluster: no node answers (last: %s: %s)", name, message);
            report(cl, status, cl->message);
        }
    } else if (n->primary) {
        refresh_in(cl, CLUSTER_REFRESH_MS);
    }
}

/* Opens `n`'s pool (it connects, reports through on_node_state). */
static bool node_open(Node *n)
{
    Cluster *cl = n->cl;
    if (n->pool != NULL)
        return true;
    if (cl->closed) /* a callback closed the backend: no new pool */
        return false;
    PoolConfig pc = cl->pool_cfg;
    pc.host = n->host;
    pc.port = n->port;
    n->pool = pool_new(cl->loop, &pc, on_node_state, n);
    if (n->pool == NULL)
        return false;
    n->state = NODE_CONNECTING;
    pool_connect(n->pool);
    return true;
}

/* Closes `n`'s pool: what waits on it fails with CR_ECONNRESET. */
static void node_close(Node *n)
{
    Pool *p = n->pool;
    n->pool = NULL;
    n->state = NODE_IDLE;
    fail_list(take_waiting(n), CR_ECONNRESET);
    if (p != NULL)
        pool_close(p);
}

/* -- Routing ------------------------------------------------------------ */

static void on_reply(void *ud, int status, const redisReply *reply);

/* Sends `r` to its node: the ASK target or fixed node, else its slot's
** owner. CR_OK, or the status to fail it with. */
static int route(Req *r)
{
    Cluster *cl = r->cl;
    if (cl->closed) /* a callback of an earlier request closed it */
        return CR_ECONNRESET;
    Node *n = r->to;
    if (n == NULL) {
        uint16_t i = cl->owner[r->slot];
        if (i == NO_NODE)
            return CR_ECLUSTERDOWN;
        n = cl->nodes[i];
    }
    r->sent_to = n;
    switch (n->state) {
    case NODE_READY:
        return r->asking ? pool_command_asking(n->pool, r->argc, r->argv,
                                               r->lens, on_reply, r)
                         : pool_command(n->pool, r->argc, r->argv, r->lens,
                                        on_reply, r);
    case NODE_IDLE:
        if (!node_open(n))
            return CR_ENOMEM;
        __attribute__((fallthrough)); /* wait for its handshake */
    case NODE_CONNECTING:
        r->next = NULL;
        *n->waiting_tail = r;
        n->waiting_tail = &r->next;
        return CR_OK;
    default:
        return CR_ECONNRESET;
    }
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* "MOVED 3999 127.0.0.1:6381" / "ASK ...": the slot and the node. NULL
** when malformed. An empty host is the replying node's. */
static Node *redirect_target(Cluster *cl, const Req *r, const char *text,
                             unsigned *slot)
{
    const char *p = strchr(text, ' ');
    if (p == NULL)
        return NULL;
    char *end;
    unsigned long s = strtoul(p + 1, &end, 10);
    if (end == p + 1 || *end != ' ' || s >= SLOT_COUNT)
        return NULL;
    const char *addr = end + 1;
    const char *colon = strrchr(addr, ':');
    if (colon == NULL)
        return NULL;
    long port = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || port <= 0 || port > 65535)
        return NULL;
    *slot = (unsigned)s;
    if (colon == addr)
        return find_node(cl, r->sent_to->host, strlen(r->sent_to->host),
                         (int)port);
    return find_node(cl, addr, (size_t)(colon - addr), (int)port);
}

static void on_tryagain_timer(uv_timer_t *t)
{
    Cluster *cl = t->data;
    Req *list = cl->delayed;
    cl->delayed = NULL;
    cl->delayed_tail = &cl->delayed;
    route_list(list);
}

/* Follows a redirection in `reply`; false when it is none (or the bound is
** reached): the reply is the command's. */
static bool redirected(Req *r, const redisReply *reply)
{
    Cluster *cl = r->cl;
    const char *text = reply->str;
    if (starts_with(text, "CLUSTERDOWN")) {
        log_msg(&cl->log, LOG_DEBUG, "cluster: %s:%d: %s", r->sent_to->host,
                r->sent_to->port, text);
        finish(r, CR_ECLUSTERDOWN, NULL);
        return true;
    }
    bool moved = starts_with(text, "MOVED ");
    bool redirect =
        moved || starts_with(text, "ASK ") || starts_with(text, "TRYAGAIN");
    if (redirect && r->redirects >= CLUSTER_MAX_REDIRECTS) {
        /* the slot keeps moving: for this command, as if it were down */
        log_msg(&cl->log, LOG_DEBUG, "cluster: %d redirections, last: %s",
                r->redirects, text);
        finish(r, CR_ECLUSTERDOWN, NULL);
        return true;
    }
    if (moved || starts_with(text, "ASK ")) {
        unsigned slot;
        Node *to = redirect_target(cl, r, text, &slot);
        if (to == NULL)
            return false;
        r->redirects++;
        if (moved) {
            cl->epoch += cl->owner[slot] != to->index;
            cl->owner[slot] = to->index;
            refresh_in(cl, 0);
            r->to = r->fixed ? to : NULL;
            r->asking = false;
        } else {
            r->to = to;
            r->asking = true;
        }
        int rc = route(r);
        if (rc != CR_OK)
            finish(r, rc, NULL);
        return true;
    }
    if (starts_with(text, "TRYAGAIN")) {
        r->redirects++;
        r->next = NULL;
        *cl->delayed_tail = r;
        cl->delayed_tail = &r->next;
        if (!uv_is_active((uv_handle_t *)&cl->tryagain_timer))
            uv_timer_start(&cl->tryagain_timer, on_tryagain_timer,
                           CLUSTER_TRYAGAIN_MS, 0);
        return true;
    }
    return false;
}

static void on_reply(void *ud, int status, const redisReply *reply)
{
    Req *r = ud;
    if (status == CR_OK && reply->type == REDIS_REPLY_ERROR && !r->cl->closed &&
        redirected(r, reply))
        return;
    finish(r, status, reply);
}

/* -- The map ------------------------------------------------------------ */

/* Reads a CLUSTER SLOTS reply into next_owner. False when malformed. */
static bool read_map(Cluster *cl, const Node *from, const redisReply *reply)
{
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0)
        return false;
    for (size_t s = 0; s < SLOT_COUNT; s++)
        cl->next_owner[s] = NO_NODE;
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *e = reply->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER ||
            e->element[2]->type != REDIS_REPLY_ARRAY ||
            e->element[2]->elements < 2)
            return false;
        long long lo = e->element[0]->integer, hi = e->element[1]->integer;
        const redisReply *host = e->element[2]->element[0];
        const redisReply *port = e->element[2]->element[1];
        if (lo < 0 || hi < lo || hi >= SLOT_COUNT ||
            host->type != REDIS_REPLY_STRING ||
            port->type != REDIS_REPLY_INTEGER || port->integer <= 0 ||
            port->integer > 65535)
            return false;
        Node *n = host->len > 0 && strcmp(host->str, "?") != 0
                      ? find_node(cl, host->str, host->len, (int)port->integer)
                      : find_node(cl, from->host, strlen(from->host),
                                  (int)port->integer);
        if (n == NULL)
            return false;
        for (long long s = lo; s <= hi; s++)
            cl->next_owner[s] = n->index;
    }
    return true;
}

/* Uses next_owner: primaries get a pool, former ones lose theirs. */
static void apply_map(Cluster *cl, const Node *from)
{
    bool changed = memcmp(cl->owner, cl->next_owner, sizeof(cl->owner)) != 0;
    cl->epoch += changed;
    memcpy(cl->owner, cl->next_owner, sizeof(cl->owner));
    for (size_t i = 0; i < cl->nnodes; i++)
        cl->nodes[i]->primary = false;
    size_t primaries = 0;
    bool uncovered = false;
    for (size_t s = 0; s < SLOT_COUNT; s++) {
        if (cl->owner[s] == NO_NODE) {
            uncovered = true;
        } else if (!cl->nodes[cl->owner[s]]->primary) {
            cl->nodes[cl->owner[s]]->primary = true;
            primaries++;
        }
    }
    bool all_ready = true;
    for (size_t i = 0; i < cl->nnodes; i++) {
        Node *n = cl->nodes[i];
        if (n->primary) {
            if (n->state == NODE_IDLE)
                node_open(n);
            all_ready = all_ready && n->state == NODE_READY;
        } else if (n->pool != NULL && n->waiting == NULL &&
                   pool_pending(n->pool) == 0) {
            /* a replica, or gone: it would answer MOVED (one still busy,
            ** an ASK target or a SCAN, is closed by a later map) */
            node_close(n);
        }
    }
    char name[300];
    node_name(from, name, sizeof(name));
    bool first = !cl->have_map;
    cl->have_map = true;
    backoff_reset(&cl->backoff);
    bool due = cl->report_due;
    cl->report_due = false;
    if (first || changed || due) {
        log_msg(&cl->log, LOG_INFO,
                "cluster: %s map of %zu primaries from %s%s",
                first ? "the" : "a new", primaries, name,
                uncovered ? " (some slots have no owner)" : "");
        snprintf(cl->message, sizeof(cl->message),
                 "cluster: %zu primaries (map from %s)", primaries, name);
        if (first) {
            cl->first_pending = true;
            report_first(cl, CR_OK, name);
        } else if (!cl->first_pending) {
            report(cl, CR_OK, cl->message);
        }
    }
    if (!all_ready || uncovered)
        refresh_in(cl, CLUSTER_REFRESH_MS);
}

static void on_slots(void *ud, int status, const redisReply *reply)
{
    Node *from = ud;
    Cluster *cl = from->cl;
    cl->refreshing = false;
    if (cl->closed)
        return;
    if (status == CR_OK && read_map(cl, from, reply)) {
        apply_map(cl, from);
        return;
    }
    char name[300];
    node_name(from, name, sizeof(name));
    snprintf(cl->message, sizeof(cl->message),
             "cluster: CLUSTER SLOTS on %s: %s", name,
             status != CR_OK ? cr_strerror(status)
             : reply->type == REDIS_REPLY_ERROR
                 ? reply->str
                 : "no slot map (is it a cluster node?)");
    log_msg(&cl->log, LOG_DEBUG, "%s", cl->message);
    cl->next_pick++;
    if (!cl->have_map)
        report(cl, status != CR_OK ? status : CR_EREPLY, cl->message);
    refresh_in(cl, backoff_next(&cl->backoff));
}

/* Asks a connected node for the map; with none, opens every known node's
** pool and asks when one connects. */
static void refresh(Cluster *cl)
{
    if (cl->closed || cl->refreshing)
        return;
    Node *from = NULL;
    for (size_t k = 0; k < cl->nnodes && from == NULL; k++) {
        Node *n = cl->nodes[(cl->next_pick + k) % cl->nnodes];
        if (n->state == NODE_READY)
            from = n;
    }
    if (from == NULL) {
        cl->refresh_wanted = true;
        for (size_t i = 0; i < cl->nnodes; i++) {
            Node *n = cl->nodes[i];
            if (n->state == NODE_IDLE &&
                (i < cl->nseeds || !cl->have_map || n->primary))
                node_open(n);
        }
        if (all_down(cl)) /* retrying by themselves: ask again later */
            refresh_in(cl, backoff_next(&cl->backoff));
        return;
    }
    cl->refresh_wanted = false;
    RedisCmd cmd;
    cmd_cluster_slots(&cmd);
    if (pool_command(from->pool, cmd.argc, cmd.argv, cmd.lens, on_slots,
                     from) == CR_OK)
        cl->refreshing = true;
    else
        refresh_in(cl, CLUSTER_REFRESH_MS);
}

static void on_refresh_timer(uv_timer_t *t)
{
    refresh(t->data);
}

/* -- Multi-key UNLINK --------------------------------------------------- */

static void split_done(Split *sp)
{
    redisReply r;
    memset(&r, 0, sizeof(r));
    if (sp->status != CR_OK) {
        sp->cb(sp->ud, sp->status, NULL);
    } else if (sp->refused) {
        r.type = REDIS_REPLY_ERROR;
        r.str = sp->err;
        r.len = strlen(sp->err);
        sp->cb(sp->ud, CR_OK, &r);
    } else {
        r.type = REDIS_REPLY_INTEGER;
        r.integer = sp->sum;
        sp->cb(sp->ud, CR_OK, &r);
    }
    free(sp);
}

static void on_split_reply(void *ud, int status, const redisReply *reply)
{
    Split *sp = ud;
    if (status != CR_OK) {
        if (sp->status == CR_OK)
            sp->status = status;
    } else if (reply->type == REDIS_REPLY_INTEGER) {
        sp->sum += reply->integer;
    } else if (!sp->refused) {
        sp->refused = true;
        snprintf(sp->err, sizeof(sp->err), "%s",
                 reply->type == REDIS_REPLY_ERROR ? reply->str
                                                  : "unexpected reply");
    }
    if (--sp->pending == 0)
        split_done(sp);
}

typedef struct SlotKey {
    uint16_t slot;
    int arg;
} SlotKey;

static int by_slot(const void *a, const void *b)
{
    const SlotKey *x = a, *y = b;
    if (x->slot != y->slot)
        return x->slot < y->slot ? -1 : 1;
    return x->arg - y->arg;
}

/* UNLINK k1 k2 ...: one UNLINK per slot, the integer replies summed. */
static int split_unlink(Cluster *cl, int argc, const char **argv,
                        const size_t *lens, pool_reply_cb cb, void *ud)
{
    size_t n = (size_t)argc - 1;
    SlotKey *keys = malloc(n * sizeof(*keys));
    const char **sub = malloc((n + 1) * sizeof(*sub));
    size_t *sublens = malloc((n + 1) * sizeof(*sublens));
    Split *sp = calloc(1, sizeof(*sp));
    int rc = CR_ENOMEM;
    if (keys == NULL || sub == NULL || sublens == NULL || sp == NULL)
        goto out;
    for (size_t i = 0; i < n; i++) {
        keys[i].arg = (int)i + 1;
        keys[i].slot = slot_of(argv[i + 1], lens[i + 1]);
    }
    qsort(keys, n, sizeof(*keys), by_slot);
    sp->cb = cb;
    sp->ud = ud;
    sp->pending = 1; /* held until every part is sent */
    rc = CR_OK;
    for (size_t i = 0; i < n;) {
        int m = 1;
        sub[0] = argv[0];
        sublens[0] = lens[0];
        size_t j = i;
        for (; j < n && keys[j].slot == keys[i].slot; j++) {
            sub[m] = argv[keys[j].arg];
            sublens[m++] = lens[keys[j].arg];
        }
        i = j;
        Req *r = req_new(cl, m, sub, sublens, on_split_reply, sp);
        int sent = r != NULL ? route(r) : CR_ENOMEM;
        if (sent == CR_OK) {
            sp->pending++;
        } else {
            free(r);
            if (sp->status == CR_OK)
                sp->status = sent;
        }
    }
    if (sp->pending == 1 && sp->status != CR_OK) { /* nothing went out */
        rc = sp->status;
        goto out;
    }
    sp->pending--; /* > 0: the parts answer later */
    sp = NULL;
out:
    free(keys);
    free(sub);
    free(sublens);
    free(sp);
    return rc;
}

/* -- The interface ------------------------------------------------------ */

static bool is_unlink(const char *name, size_t len)
{
    return len == 6 && strncmp(name, "UNLINK", 6) == 0;
}

static void cluster_connect(Backend *b)
{
    refresh((Cluster *)b);
}

static int cluster_command(Backend *b, int argc, const char **argv,
                           const size_t *argvlen, pool_reply_cb cb, void *ud)
{
    Cluster *cl = (Cluster *)b;
    if (!cl->have_map || cl->closed)
        return CR_ECONNRESET;
    if (argc < 2 || argv == NULL)
        return CR_EINVAL; /* every command cachert sends names a key */
    if (argc > 2 &&
        is_unlink(argv[0], argvlen != NULL ? argvlen[0] : strlen(argv[0]))) {
        size_t *lens = malloc((size_t)argc * sizeof(*lens));
        if (lens == NULL)
            return CR_ENOMEM;
        for (int i = 0; i < argc; i++)
            lens[i] = argvlen != NULL ? argvlen[i] : strlen(argv[i]);
        int rc = split_unlink(cl, argc, argv, lens, cb, ud);
        free(lens);
        return rc;
    }
    Req *r = req_new(cl, argc, argv, argvlen, cb, ud);
    if (r == NULL)
        return CR_ENOMEM;
    int rc = route(r);
    if (rc != CR_OK)
        free(r);
    return rc;
}

static size_t cluster_nodes(const Backend *b)
{
    return ((const Cluster *)b)->nnodes;
}

static int cluster_node_command(Backend *b, size_t node, int argc,
                                const char **argv, const size_t *argvlen,
                                pool_reply_cb cb, void *ud)
{
    Cluster *cl = (Cluster *)b;
    if (!cl->have_map || cl->closed)
        return CR_ECONNRESET;
    if (argc < 1 || argv == NULL)
        return CR_EINVAL;
    if (argc > 1 &&
        is_unlink(argv[0], argvlen != NULL ? argvlen[0] : strlen(argv[0])))
        return cluster_command(b, argc, argv, argvlen, cb, ud);
    if (node >= cl->nnodes || !cl->nodes[node]->primary)
        return CR_EINVAL;
    Req *r = req_new(cl, argc, argv, argvlen, cb, ud);
    if (r == NULL)
        return CR_ENOMEM;
    r->to = cl->nodes[node];
    r->fixed = true;
    int rc = route(r);
    if (rc != CR_OK)
        free(r);
    return rc;
}

static bool cluster_ready(const Backend *b)
{
    const Cluster *cl = (const Cluster *)b;
    return cl->have_map && !cl->closed;
}

/* A node refused what a primary would not (READONLY): the map is old. */
static void cluster_fail(Backend *b, int status, const char *message)
{
    Cluster *cl = (Cluster *)b;
    log_msg(&cl->log, LOG_INFO, "cluster: %s (%s); asking for the map again",
            message, cr_errname(status));
    cl->report_due = true; /* the engine waits for a report to try again */
    refresh_in(cl, 0);
}

static void cluster_close(Backend *b)
{
    Cluster *cl = (Cluster *)b;
    if (cl->closed)
        return;
    cl->closed = true;
    Req *delayed = cl->delayed;
    cl->delayed = NULL;
    cl->delayed_tail = &cl->delayed;
    fail_list(delayed, CR_ECONNRESET);
    for (size_t i = 0; i < cl->nnodes; i++)
        node_close(cl->nodes[i]);
    uv_close((uv_handle_t *)&cl->refresh_timer, on_closed);
    uv_close((uv_handle_t *)&cl->tryagain_timer, on_closed);
}

static bool cluster_slot_ready(const Backend *b, unsigned slot)
{
    const Cluster *cl = (const Cluster *)b;
    uint16_t i = slot < SLOT_COUNT ? cl->owner[slot] : NO_NODE;
    return i != NO_NODE && cl->nodes[i]->state == NODE_READY;
}

static void cluster_slot_group(const Backend *b, bool by_node, size_t which,
                               uint8_t *bits, char *name, size_t nlen)
{
    const Cluster *cl = (const Cluster *)b;
    uint16_t owner;
    if (by_node)
        owner = which < cl->nnodes ? (uint16_t)which : NO_NODE;
    else
        owner = which < SLOT_COUNT ? cl->owner[which] : NO_NODE;
    memset(bits, 0, SLOT_COUNT / 8);
    for (size_t s = 0; s < SLOT_COUNT; s++)
        if (cl->owner[s] == owner)
            bits[s / 8] |= (uint8_t)(1u << (s % 8));
    if (owner == NO_NODE)
        snprintf(name, nlen, "slots without an owner");
    else
        node_name(cl->nodes[owner], name, nlen);
}

static void cluster_node_counts(const Backend *b, size_t *known, size_t *up)
{
    const Cluster *cl = (const Cluster *)b;
    *known = 0;
    *up = 0;
    for (size_t i = 0; i < cl->nnodes; i++) {
        if (cl->nodes[i]->primary) {
            (*known)++;
            if (cl->nodes[i]->state == NODE_READY)
                (*up)++;
        }
    }
}

/* Every slot's owner tracks what it serves. */
static bool cluster_tracking_ready(const Backend *b)
{
    const Cluster *cl = (const Cluster *)b;
    if (!cl->have_map || cl->closed)
        return false;
    for (size_t s = 0; s < SLOT_COUNT; s++) {
        uint16_t i = cl->owner[s];
        if (i == NO_NODE || cl->nodes[i]->pool == NULL ||
            !pool_tracking_ready(cl->nodes[i]->pool))
            return false;
    }
    return true;
}

static uint64_t cluster_epoch(const Backend *b)
{
    return ((const Cluster *)b)->epoch;
}

static const BackendVtbl cluster_vtbl = {
    .connect = cluster_connect,
    .command = cluster_command,
    .nodes = cluster_nodes,
    .node_command = cluster_node_command,
    .ready = cluster_ready,
    .fail = cluster_fail,
    .close = cluster_close,
    .slot_ready = cluster_slot_ready,
    .slot_group = cluster_slot_group,
    .node_counts = cluster_node_counts,
    .epoch = cluster_epoch,
    .tracking_ready = cluster_tracking_ready,
};

Backend *cluster_new(uv_loop_t *loop, const RedisConfig *cfg,
                     pool_state_cb on_state, void *ud)
{
    Cluster *cl = calloc(1, sizeof(*cl));
    if (cl == NULL)
        return NULL;
    PoolConfig nodes = cfg->pool;
    nodes.host = NULL;
    nodes.port = 0;
    if (!pool_config_copy(&cl->pool_cfg, &nodes)) {
        free(cl);
        return NULL;
    }
    bool oom = false;
    if (cfg->ncluster_nodes > 0) {
        for (size_t i = 0; i < cfg->ncluster_nodes && !oom; i++) {
            const RedisAddr *a = &cfg->cluster_nodes[i];
            oom = find_node(cl, a->host, strlen(a->host), a->port) == NULL;
        }
    } else {
        const char *host = cfg->pool.host ? cfg->pool.host : "127.0.0.1";
        oom = find_node(cl, host, strlen(host), cfg->pool.port) == NULL;
    }
    if (oom) {
        free_cluster(cl);
        return NULL;
    }
    cl->nseeds = cl->nnodes;
    for (size_t s = 0; s < SLOT_COUNT; s++)
        cl->owner[s] = NO_NODE;
    cl->base.vt = &cluster_vtbl;
    cl->loop = loop;
    cl->on_state = on_state;
    cl->ud = ud;
    cl->log = cfg->log;
    cl->delayed_tail = &cl->delayed;
    backoff_init(&cl->backoff, uv_hrtime() ^ (uint64_t)(uintptr_t)cl);
    uv_timer_init(loop, &cl->refresh_timer);
    uv_timer_init(loop, &cl->tryagain_timer);
    cl->refresh_timer.data = cl;
    cl->tryagain_timer.data = cl;
    uv_unref((uv_handle_t *)&cl->refresh_timer);
    cl->open_handles = 2;
    return &cl->base;
}
