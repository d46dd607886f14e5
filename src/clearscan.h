/*
** clearscan.h -- removes every Redis key matching any of a set of glob
** patterns in ONE pass over the keyspace: SCAN cursor [MATCH m] COUNT n,
** then UNLINK of each batch's matching keys, until the cursor returns to 0.
** With one pattern the server filters (MATCH pattern); with several, MATCH
** narrows the scan to their common literal head (when they have one) and
** each scanned key is matched here against every pattern with the
** Redis-exact matcher, so N patterns cost one scan, not N. A backend of
** several nodes (a Cluster) is scanned node after node. Never KEYS
** (which blocks the server for the whole keyspace) and never FLUSHDB.
** UNLINK frees values off the server's main thread. A key written while
** the scan runs may survive, as with any SCAN-based clear.
*/
#ifndef CACHERT_CLEARSCAN_H
#define CACHERT_CLEARSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"

#define CLEARSCAN_COUNT "1000" /* SCAN's COUNT hint: keys examined per call */

/* Called once: status CR_OK (or CR_EREPLY when the server refused a
** command, with its error text in `err`; CR_EPROTO for a malformed reply;
** a transport error otherwise, err NULL) and how many keys were removed
** before it ended. `err` is valid during the call only. */
typedef void (*clearscan_done_cb)(void *ud, int status, uint64_t removed,
                                  const char *err);

/* Optional hooks for a Cluster (NULL fields are not called):
**   keep: a scanned key matching a pattern is removed only when it
**         returns true (a replay limited to some slots);
**   node_lost: node `node`'s SCAN or UNLINK failed in transport: when it
**         returns true (the caller answers for that node's keys some other
**         way), the clear goes on with the next node; false ends it with
**         that failure. */
typedef struct ClearScanHooks {
    bool (*keep)(void *ud, const char *key, size_t klen);
    bool (*node_lost)(void *ud, size_t node, int status);
    void *ud;
} ClearScanHooks;

/* Starts clearing every key matching one of the `n` >= 1 patterns (binary
** safe, copied); `hooks` may be NULL (copied). Returns CR_OK, and `done` is
** called later from the loop; or an error code (the backend is not ready,
** out of memory), and `done` is never called. */
int clearscan_start(Backend *b, const char *const *patterns,
                    const size_t *plens, size_t n, const ClearScanHooks *hooks,
                    clearscan_done_cb done, void *ud);

#endif
