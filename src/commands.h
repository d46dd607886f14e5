/*
** commands.h -- every Redis command cachert sends, spelled in one place.
**
** A builder fills a RedisCmd with argc, argv and argvlen ready for
** conn_command(), pool_command() or backend_command(). The arguments point
** at the caller's bytes (and at the RedisCmd's own digits): keep both alive
** until the call that queues the command returns (it copies them). Nothing
** here allocates or formats with printf: numbers are written by resp.h.
*/
#ifndef CACHERT_COMMANDS_H
#define CACHERT_COMMANDS_H

#include <stddef.h>
#include <stdint.h>

#include "resp.h"

#define CMD_MAX_ARGS 8

typedef struct RedisCmd {
    int argc;
    const char *argv[CMD_MAX_ARGS];
    size_t lens[CMD_MAX_ARGS];
    char num[RESP_U64_DIGITS + 4]; /* the digits of a number argument */
} RedisCmd;

/* -- The cache's data commands -------------------------------------------- */

void cmd_get(RedisCmd *c, const char *key, size_t klen);
void cmd_exists(RedisCmd *c, const char *key, size_t klen);
/* SET key token NX PX ttl_ms: a lock taken only when free. */
void cmd_lock(RedisCmd *c, const char *key, size_t klen, const char *token,
              size_t tlen, uint64_t ttl_ms);
/* EVAL of a compare-and-delete: key removed only while it holds token
** (the lock's owner releases it, never a later owner's). */
void cmd_unlock(RedisCmd *c, const char *key, size_t klen, const char *token,
                size_t tlen);
/* PTTL: milliseconds left, -1 without expiry, -2 for a missing key. */
void cmd_pttl(RedisCmd *c, const char *key, size_t klen);
/* UNLINK: the value is freed off the server's main thread. */
void cmd_unlink(RedisCmd *c, const char *key, size_t klen);
/* SET key val [PX ttl_ms]: no PX when ttl_ms is 0 (no expiry). */
void cmd_set(RedisCmd *c, const char *key, size_t klen, const char *val,
             size_t vlen, uint64_t ttl_ms);
/* SET key "" XX PX 1: writes nothing where the key is absent, yet a
** replica or an ACL without SET refuses it (the recovery probe). */
void cmd_set_probe(RedisCmd *c, const char *key, size_t klen);
/* SCAN cursor COUNT count [MATCH match]: no MATCH when match is NULL. */
void cmd_scan(RedisCmd *c, const char *cursor, const char *count,
              const char *match, size_t mlen);
/* The head of an UNLINK of many keys: argv[0] and argvlen[0]; the caller
** appends the keys. */
void cmd_unlink_head(const char **argv, size_t *argvlen);

/* -- A connection's handshake and topology -------------------------------- */

/* AUTH [user] password. */
void cmd_auth(RedisCmd *c, const char *user, const char *password);
void cmd_select(RedisCmd *c, int db);
void cmd_ping(RedisCmd *c);
/* ROLE: "master" or "slave" (a primary's or a replica's view). */
void cmd_role(RedisCmd *c);
/* SENTINEL get-master-addr-by-name name -> [ip, port] or nil. */
void cmd_sentinel_master_addr(RedisCmd *c, const char *name);
/* CLUSTER SLOTS -> [[start, end, [host, port, id], replicas...], ...]. */
void cmd_cluster_slots(RedisCmd *c);
/* ASKING: the next command may touch a slot being imported. */
void cmd_asking(RedisCmd *c);
/* CLIENT ID -> the connection's id. */
void cmd_client_id(RedisCmd *c);
/* CLIENT TRACKING on REDIRECT id [BCAST PREFIX prefix] (BCAST when plen
** > 0). */
void cmd_tracking(RedisCmd *c, long long redirect, const char *prefix,
                  size_t plen);
/* INFO [section]: no section when NULL. */
void cmd_info(RedisCmd *c, const char *section);
/* SUBSCRIBE to `n` (< CMD_MAX_ARGS) channels. */
void cmd_subscribe(RedisCmd *c, const char *const *channels, int n);

#endif
