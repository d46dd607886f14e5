/*
** clearscan.h -- removes every Redis key matching a glob pattern with
** SCAN cursor MATCH pattern COUNT n, then UNLINK of each non-empty batch,
** until the cursor returns to 0. Never KEYS (which blocks the server for
** the whole keyspace) and never FLUSHDB. UNLINK frees values off the
** server's main thread. A key written while the scan runs may survive, as
** with any SCAN-based clear.
*/
#ifndef CACHERT_CLEARSCAN_H
#define CACHERT_CLEARSCAN_H

#include <stddef.h>
#include <stdint.h>

#include "pool.h"

#define CLEARSCAN_COUNT "1000" /* SCAN's COUNT hint: keys examined per call */

/* Called once: status CR_OK (or CR_EREPLY when the server refused a
** command, CR_EPROTO for a malformed reply, a transport error otherwise)
** and how many keys were removed before it ended. */
typedef void (*clearscan_done_cb)(void *ud, int status, uint64_t removed);

/* Starts clearing `pattern` (binary safe, copied). Returns CR_OK, and
** `done` is called later from the loop; or an error code (the pool is not
** ready, out of memory), and `done` is never called. */
int clearscan_start(Pool *p, const char *pattern, size_t plen,
                    clearscan_done_cb done, void *ud);

#endif
