/*
** tls.h -- TLS for a connection whose socket cachert owns (OpenSSL).
**
** OpenSSL never touches the socket: a TlsSession sits between two memory
** BIOs. The connection feeds the ciphertext it read (tls_feed), takes
** plaintext out (tls_read), hands in plaintext to send (tls_write) and
** drains the ciphertext to write on its socket (tls_out_len, tls_out_read)
** after every call, since any of them may produce records: the handshake,
** an alert, a reply to a key update. So the libuv loop, the connection's
** deadlines and its single write in flight stay as they are, and OpenSSL
** cannot raise SIGPIPE (it makes no system call on the socket).
**
** A TlsContext wraps one SSL_CTX: the CA bundle, the client certificate and
** the verification mode. Loading CAs is costly (the system store is
** hundreds of certificates), so a pool creates one and its connections
** share it. Sessions keep what they need of it (OpenSSL counts references
** to the SSL_CTX), so it may be freed before them.
**
** Verification (TlsConfig.verify): the server's chain against the CA
** bundle, and its name: the host name (SNI is sent and checked against
** the certificate's DNS names) or an IP literal (no SNI, as RFC 6066 says;
** checked against its IP addresses). Error texts name the cause in
** OpenSSL's words, e.g. "certificate verify failed: hostname mismatch".
*/
#ifndef CACHERT_TLS_H
#define CACHERT_TLS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct TlsConfig {
    bool enabled;        /* false: plain TCP */
    const char *ca_file; /* PEM bundle; NULL: the system store */
    /* Client certificate chain for mutual TLS and its key, or NULL. */
    const char *cert_file;
    const char *key_file;
    /* SNI and the name checked; NULL: the host connected to. */
    const char *server_name;
    bool verify; /* check the server's certificate and host name */
} TlsConfig;

typedef struct TlsContext TlsContext;
typedef struct TlsSession TlsSession;

/* Size of the error texts below, NUL included; longer text is cut. */
#define TLS_ERRSTR_SIZE 256

/* Outcomes of tls_handshake and tls_read. */
enum {
    TLS_OK = 0,   /* done (handshake), or plaintext returned (read) */
    TLS_WANT = 1, /* needs more ciphertext: feed it and call again */
    TLS_CLOSED,   /* the server sent close_notify: like EOF */
    TLS_ERROR     /* failed for good; tls_error() says why */
};

/* Loads the CA bundle (or the system store), the client certificate and
** its key per `cfg` (whose strings are not kept). Returns NULL with a
** message in err (errlen bytes) naming the file and OpenSSL's reason, e.g.
** "cannot load CA file /x/ca.pem: No such file or directory". */
TlsContext *tls_context_new(const TlsConfig *cfg, char *err, size_t errlen);

/* NULL is ignored. Sessions made from it stay usable. */
void tls_context_free(TlsContext *ctx);

/* A client session for a connection to `host` (the name or address
** connected to; borrowed only during the call); `server_name` (or NULL:
** host) is sent as SNI when it is a DNS name and is the name verified.
** Returns NULL with a message in err when out of memory or the name is
** unusable. */
TlsSession *tls_session_new(TlsContext *ctx, const char *host,
                            const char *server_name, char *err, size_t errlen);

/* NULL is ignored. */
void tls_session_free(TlsSession *s);

/* Ciphertext read from the socket. False when out of memory. */
bool tls_feed(TlsSession *s, const char *data, size_t len);

/* Advances the handshake: TLS_OK once it is complete, TLS_WANT while it
** waits for the server, TLS_ERROR. Drain the output after each call. */
int tls_handshake(TlsSession *s);

/* Decrypts up to `cap` bytes into buf: TLS_OK with *n > 0, TLS_WANT when
** no complete record is buffered, TLS_CLOSED, or TLS_ERROR. Call until
** it returns something else than TLS_OK. */
int tls_read(TlsSession *s, char *buf, size_t cap, size_t *n);

/* Encrypts all of `len` bytes (after the handshake); the records wait in
** the output. TLS_OK or TLS_ERROR. */
int tls_write(TlsSession *s, const char *data, size_t len);

/* Ciphertext waiting to be written to the socket, in bytes. */
size_t tls_out_len(const TlsSession *s);

/* Moves up to `cap` bytes of that ciphertext into dst; returns how many. */
size_t tls_out_read(TlsSession *s, char *dst, size_t cap);

/* The text of the last TLS_ERROR (or ""), valid while `s` is, e.g.
** "certificate verify failed: self-signed certificate in certificate
** chain", or "the server does not speak TLS (wrong version number)". */
const char *tls_error(const TlsSession *s);

/* True when the context has no client certificate (so a server asking
** for one is worth a hint). */
bool tls_context_anonymous(const TlsContext *ctx);

#endif
