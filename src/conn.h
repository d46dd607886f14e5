/*
** conn.h -- one Redis connection on a libuv loop.
**
** A connection resolves its host, connects, with TLS runs the TLS handshake
** (tls.h), runs its Redis handshake (AUTH, SELECT, PING, pipelined in one
** write) and then carries commands: conn_command() appends a formatted
** command to an output buffer and conn_flush() hands that buffer to the
** socket: uv_try_write, then uv_write for whatever the kernel did not take
** at once. So a flush usually leaves nothing in flight and the owner may
** flush again in the same loop turn (the pool does, once a batch is
** queued: pool.h); only a full socket buffer leaves a write in flight, and
** there is at most one. Replies are matched in order with a FIFO of
** pending commands. The connection is used once: the first failure
** (refused, reset, protocol error, rejected handshake, a deadline passed)
** is sticky, is reported to the owner, and the owner closes it.
**
** Commands may be queued from conn_new() on: those accepted before the
** handshake succeeded are held back and written right after it (never
** behind a rejected AUTH or SELECT), and fail with the connection's error
** if it never gets ready.
**
** Three outcomes stay apart: a reply (status CR_OK; a REDIS_REPLY_ERROR
** reply is still CR_OK: the server said no), and a transport failure
** (a negative CR_E* code, no reply).
**
** Deadlines are judged after the loop has polled the socket, never
** before: a reply (or a connect, or a handshake reply) that arrived while
** the process kept the CPU past the deadline is delivered, not counted as
** a timeout. connect_timeout_ms bounds resolve + connect + the TLS
** handshake + the Redis handshake.
** command_timeout_ms bounds the server's silence: once ready, with commands
** outstanding (handed to uv_write, awaiting a reply), the connection fails when
** nothing was read from the socket for command_timeout_ms since the last
** read or since the oldest outstanding command was written, whichever is
** later. Time a command spends in cachert's own queue (the output buffer,
** behind a write in flight, the process busy) does not count, nor does
** the length of a pipeline the server keeps answering: a long exchange
** (a deep pipeline, a clear's many SCAN round trips) is bounded only by
** the server answering. A server that stays silent past the deadline
** fails the connection with CR_ETIMEDOUT within about a millisecond of
** the deadline, or right after the busy stretch.
**
** TLS changes nothing above: the connection writes and reads plaintext
** through a session over memory BIOs (tls.h); the ciphertext it produces
** goes out in the same single write in flight, and any bytes read from the
** server (records included) count as the server speaking. A failed TLS
** handshake, or the server closing right after it (TLS 1.3 rejects a
** missing client certificate only then), is CR_ETLS with OpenSSL's reason
** ("certificate verify failed: hostname mismatch ...").
*/
#ifndef CACHERT_CONN_H
#define CACHERT_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "tls.h"

/* Bytes of unused input the redisReader keeps between replies before it
** frees its buffer (hiredis's maxbuf; its default is 16 KiB). This is not
** a limit on reply size: replies are bounded by the server's
** proto-max-bulk-len (512 MiB by default). Nesting is bounded by hiredis
** (7 levels of arrays). */
#define CONN_READER_MAXBUF (64 * 1024)

/* Bytes read from the socket per read callback. */
#define CONN_READ_CHUNK (64 * 1024)

/* An output buffer larger than this is freed after its write instead of
** being kept for reuse, so one burst does not pin memory. */
#define CONN_OUTBUF_KEEP (1024 * 1024)

/* Size of the sticky error message, NUL included; longer text is cut. */
#define CONN_ERRSTR_SIZE 320

typedef struct Conn Conn;

typedef struct ConnConfig {
    const char *host; /* borrowed: valid until conn_close() */
    int port;
    int db;                      /* SELECT when not 0 */
    const char *username;        /* ACL user or NULL; borrowed */
    const char *password;        /* AUTH when not NULL; borrowed */
    uint64_t connect_timeout_ms; /* resolve + connect + handshake; 0: none */
    uint64_t command_timeout_ms; /* server silence, see the top; 0: none */
    bool background; /* the handshake does not keep the loop alive, only
                        commands do (the resolve and connect requests
                        still do: libuv requests cannot be unreferenced) */
    TlsContext *tls; /* TLS when not NULL; borrowed: valid until conn_close() */
    const char *tls_server_name; /* SNI, name verified; NULL: host. Borrowed */
} ConnConfig;

/* A command's outcome, exactly as pool_reply_cb (pool.h): CR_OK with a
** reply valid only during the call, or a negative CR_E* code with NULL. */
typedef void (*conn_reply_cb)(void *ud, int status, const redisReply *reply);

/* A reply that answers no command: a pub/sub message (see
** conn_set_push_handler). The reply is valid only during the call. */
typedef void (*conn_push_cb)(void *ud, const redisReply *reply);

/* The connection became ready (CR_OK), or failed (a negative CR_E* code:
** CR_ECONNREFUSED, CR_ECONNRESET, CR_ETIMEDOUT, CR_EAUTH, CR_EREJECTED,
** CR_EPROTO, CR_ETLS, CR_ENOMEM) with a message valid during the call. A
** handshake refused by the server is CR_EAUTH for a rejected password, user or
** database, CR_ECONNREFUSED when it cannot serve yet (LOADING, BUSY,
** MASTERDOWN), CR_EREJECTED otherwise ("ERR max number of clients
** reached", ...); the message is the server's error text. Called at most once
** with CR_OK and at most once with an error, from loop callbacks only,
** never after conn_close(). After an error the owner must call
** conn_close() (it may do so from inside this callback). */
typedef void (*conn_state_cb)(void *ud, Conn *c, int status,
                              const char *message);

/* Creates a connection and starts resolving; the outcome comes through
** on_state. Returns NULL when out of memory (nothing is left behind). */
Conn *conn_new(uv_loop_t *loop, const ConnConfig *cfg, conn_state_cb on_state,
               void *ud);

/* Queues a command (argc >= 1 binary-safe strings, copied) in the output
** buffer; conn_flush() sends it. Before the connection is ready the command
** is held and written as soon as the handshake succeeds. Returns CR_OK, and
** `cb` is called exactly once later (from a loop callback or conn_close());
** or CR_ECONNRESET when the connection failed or is closing, or CR_ENOMEM,
** and `cb` is never called. No deadline runs while the command waits to be
** written (while connecting, connect_timeout_ms bounds that wait); once it
** is written, the server's silence is bounded (see the top). Costs no
** timer or clock work. */
int conn_command(Conn *c, int argc, const char **argv, const size_t *argvlen,
                 conn_reply_cb cb, void *ud);

/* Writes the output buffer (see the top) unless it is empty or a write is
** still in flight (then what was queued meanwhile waits for the next
** flush). Returns true when it started a write. Never calls a callback: a
** write that fails at once is reported from a loop callback, and no later
** flush writes to that socket again. */
bool conn_flush(Conn *c);

/* True when bytes wait in the output buffer. */
bool conn_has_output(const Conn *c);

/* Commands in the output buffer, not yet written, while ready (0 before:
** those are held back until the handshake succeeded). */
size_t conn_queued(const Conn *c);

/* True once the handshake succeeded, until the first failure. */
bool conn_ready(const Conn *c);

/* Commands queued or awaiting a reply (the handshake's not counted). */
size_t conn_pending(const Conn *c);

/* After a failure: true when it was the server closing the connection (EOF
** or ECONNRESET) while it was ready with no command queued or awaiting a
** reply, e.g. its idle timeout: nothing was lost, and a new connection may
** replace it quietly. */
bool conn_idle_closed(const Conn *c);

/* Writes started so far (a flush, or TLS records sent on their own), the
** handshake's included; a write the kernel took in parts counts once. */
uint64_t conn_writes(const Conn *c);

/* SIGPIPE: a write to a socket the server has closed (it crashed, was
** killed, or reset the connection) raises SIGPIPE, whose default action
** ends the process; libuv's stream writes (uv_try_write, uv_write) cannot
** pass MSG_NOSIGNAL. So the first conn_new() calls this (the cachert
** executable calls it at start-up): when SIGPIPE has its default
** disposition, it installs a handler that does nothing, so such a write
** fails with EPIPE, which the connection reports like any reset. An
** ignored or handled SIGPIPE is left as it is, and it is done once per
** process: a later choice of the program's stands. A handler rather than
** SIG_IGN: exec() resets a handled signal to its default, so child
** processes (os.execute, io.popen) start with the usual SIGPIPE. What
** changes for the program: a write to a closed pipe (e.g. stdout into
** `| head`) fails with EPIPE (io.write returns nil, "Broken pipe")
** instead of ending the process, as under luasocket, which sets SIG_IGN
** when loaded. */
void conn_quiet_sigpipe(void);

/* Makes `c` a pub/sub connection: from now on a reply that arrives with
** no command awaiting it, or an array whose first element is "message" or
** "pmessage" (one that may come between a command and its reply), goes to
** `cb` instead of failing the connection with a protocol error. Every
** other reply still answers its command in order: SUBSCRIBE's own
** confirmation, a PING's ["pong", ""]. Set it before sending SUBSCRIBE;
** `cb` may call conn_close(). */
void conn_set_push_handler(Conn *c, conn_push_cb cb, void *ud);

/* The sticky error: CR_OK while healthy, else the first failure's code;
** *message (when not NULL) gets its text, valid while `c` is. */
int conn_error(const Conn *c, const char **message);

/* Fails every pending command with the sticky error, or CR_ECONNRESET
** when there is none (the callbacks run before this returns), closes every
** handle and frees the connection once libuv has closed them all; when
** called from inside one of its callbacks the free waits until that
** callback returns. `c` must not be used afterwards; on_state is not
** called again. Not idempotent: call it once. */
void conn_close(Conn *c);

#endif
