/*
** tls.c -- OpenSSL client sessions over memory BIOs (see tls.h).
**
** Each session owns one SSL with two BIO_s_mem: `rbio` holds ciphertext
** fed from the socket, `wbio` ciphertext to send. An empty rbio reports
** "retry", never EOF, so a short read is SSL_ERROR_WANT_READ, the normal
** "need more"; EOF on the socket is the connection's business. OpenSSL's
** error queue is per thread and outlives calls: it is cleared before each
** SSL call so a message never reports an older failure. Costs: one copy
** in (BIO), one out (the connection's buffer), besides the cipher.
*/
#include "tls.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

struct TlsContext {
    SSL_CTX *ctx;
    bool verify;
    bool anonymous; /* no client certificate */
};

struct TlsSession {
    SSL *ssl;
    bool anonymous; /* the context's, kept: the context may go first */
    char name[256]; /* the name verified, for messages */
    char err[TLS_ERRSTR_SIZE];
};

/* -- Messages ----------------------------------------------------------- */

/* OpenSSL's reason for the oldest error queued (the cause; later entries
** are consequences), or `dflt`. Clears the queue. */
static const char *queue_reason(const char *dflt, unsigned long *code)
{
    unsigned long e = ERR_peek_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    if (code != NULL)
        *code = e;
    return r != NULL ? r : dflt;
}

/* Says why the last SSL call (which returned `ret`) failed, in err. */
static void describe(TlsSession *s, int ret)
{
    int kind = SSL_get_error(s->ssl, ret);
    unsigned long code = 0;
    const char *reason = queue_reason("unexpected end of stream", &code);
    int lib_reason = code != 0 ? ERR_GET_REASON(code) : 0;
    long verify = SSL_get_verify_result(s->ssl);
    if (kind == SSL_ERROR_SYSCALL && code == 0)
        reason = "unexpected end of stream";

    if (lib_reason == SSL_R_CERTIFICATE_VERIFY_FAILED && verify != X509_V_OK) {
        const char *why = X509_verify_cert_error_string(verify);
        if (verify == X509_V_ERR_HOSTNAME_MISMATCH ||
            verify == X509_V_ERR_IP_ADDRESS_MISMATCH)
            snprintf(s->err, sizeof(s->err),
                     "%s: %s (the certificate is not "
                     "for %.80s)",
                     reason, why, s->name);
        else
            snprintf(s->err, sizeof(s->err), "%s: %s", reason, why);
    } else if (lib_reason == SSL_R_WRONG_VERSION_NUMBER ||
               lib_reason == SSL_R_PACKET_LENGTH_TOO_LONG ||
               lib_reason == SSL_R_UNKNOWN_PROTOCOL) {
        snprintf(s->err, sizeof(s->err),
                 "the server does not speak TLS (%s); is it a plain "
                 "Redis port?",
                 reason);
    } else if (lib_reason == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED ||
               (s->anonymous &&
                lib_reason == SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE)) {
        snprintf(s->err, sizeof(s->err),
                 "%s: the server requires a client certificate%s", reason,
                 s->anonymous ? " (set cert_file and key_file)" : "");
    } else {
        snprintf(s->err, sizeof(s->err), "%s", reason);
    }
}

/* "cannot load <what> <file>: <reason>", the reason from errno when the
** file cannot be read at all (clearer than OpenSSL's), else OpenSSL's. */
static void file_error(char *err, size_t errlen, const char *what,
                       const char *file)
{
    const char *reason = access(file, R_OK) != 0
                             ? strerror(errno)
                             : queue_reason("unknown error", NULL);
    snprintf(err, errlen, "cannot load %s %s: %s", what, file, reason);
    ERR_clear_error();
}

/* -- Context ------------------------------------------------------------ */

TlsContext *tls_context_new(const TlsConfig *cfg, char *err, size_t errlen)
{
    ERR_clear_error();
    TlsContext *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->ctx = SSL_CTX_new(TLS_client_method());
    if (t->ctx == NULL) {
        snprintf(err, errlen, "cannot create a TLS context: %s",
                 queue_reason("unknown error", NULL));
        free(t);
        return NULL;
    }
    t->verify = cfg->verify;
    t->anonymous = cfg->cert_file == NULL;
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    /* A TLS 1.2 renegotiation would turn a write into "want read": refused
    ** outright, it fails with a clear alert instead. */
    SSL_CTX_set_options(t->ctx, SSL_OP_NO_RENEGOTIATION);
    /* Idle connections keep no read/write buffers (~34 KiB each). */
    SSL_CTX_set_mode(t->ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_verify(t->ctx, cfg->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
                       NULL);

    bool ok = true;
    if (cfg->ca_file != NULL) {
        if (SSL_CTX_load_verify_locations(t->ctx, cfg->ca_file, NULL) != 1) {
            file_error(err, errlen, "CA file", cfg->ca_file);
            ok = false;
        }
    } else if (cfg->verify && SSL_CTX_set_default_verify_paths(t->ctx) != 1) {
        snprintf(err, errlen, "cannot load the system CA store: %s",
                 queue_reason("unknown error", NULL));
        ok = false;
    }
    if (ok && cfg->cert_file == NULL && cfg->key_file != NULL) {
        snprintf(err, errlen, "key_file %s given without cert_file",
                 cfg->key_file);
        ok = false;
    }
    if (ok && cfg->cert_file != NULL) {
        /* Without key_file the key is looked for in the certificate file. */
        const char *key = cfg->key_file ? cfg->key_file : cfg->cert_file;
        if (SSL_CTX_use_certificate_chain_file(t->ctx, cfg->cert_file) != 1) {
            file_error(err, errlen, "certificate file", cfg->cert_file);
            ok = false;
        } else if (SSL_CTX_use_PrivateKey_file(t->ctx, key, SSL_FILETYPE_PEM) !=
                   1) {
            file_error(err, errlen, "key file", key);
            ok = false;
        } else if (SSL_CTX_check_private_key(t->ctx) != 1) {
            snprintf(err, errlen, "key file %s does not match certificate %s",
                     key, cfg->cert_file);
            ok = false;
        }
    }
    ERR_clear_error();
    if (!ok) {
        tls_context_free(t);
        return NULL;
    }
    return t;
}

void tls_context_free(TlsContext *ctx)
{
    if (ctx == NULL)
        return;
    SSL_CTX_free(ctx->ctx);
    free(ctx);
}

bool tls_context_anonymous(const TlsContext *ctx)
{
    return ctx->anonymous;
}

/* -- Session ------------------------------------------------------------ */

static bool is_ip_literal(const char *name)
{
    unsigned char addr[16];
    return inet_pton(AF_INET, name, addr) == 1 ||
           inet_pton(AF_INET6, name, addr) == 1;
}

TlsSession *tls_session_new(TlsContext *ctx, const char *host,
                            const char *server_name, char *err, size_t errlen)
{
    ERR_clear_error();
    const char *name = server_name != NULL ? server_name : host;
    if (ctx->verify && (name == NULL || name[0] == '\0')) {
        /* SSL_set1_host("") would check the chain only: any certificate
        ** a trusted CA signed would pass. */
        snprintf(err, errlen, "no server name to verify");
        return NULL;
    }
    if (name == NULL)
        name = "";
    TlsSession *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->anonymous = ctx->anonymous;
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->ssl = SSL_new(ctx->ctx);
    BIO *rbio = BIO_new(BIO_s_mem());
    BIO *wbio = BIO_new(BIO_s_mem());
    if (s->ssl == NULL || rbio == NULL || wbio == NULL) {
        snprintf(err, errlen, "out of memory");
        BIO_free(rbio);
        BIO_free(wbio);
        tls_session_free(s);
        return NULL;
    }
    BIO_set_mem_eof_return(rbio, -1); /* empty: "retry", not EOF */
    SSL_set_bio(s->ssl, rbio, wbio);  /* the SSL owns both now */
    SSL_set_connect_state(s->ssl);

    bool ip = is_ip_literal(name);
    int ok = 1;
    if (!ip && name[0] != '\0') /* SNI carries DNS names only (RFC 6066) */
        ok = SSL_set_tlsext_host_name(s->ssl, name);
    if (ok == 1 && ctx->verify && !ip) {
        /* "f*.example.com" is no certificate name we accept */
        SSL_set_hostflags(s->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        ok = SSL_set1_host(s->ssl, name);
    } else if (ok == 1 && ctx->verify) {
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->ssl), name);
    }
    if (ok != 1) {
        snprintf(err, errlen, "cannot use server name %s: %s", name,
                 queue_reason("invalid name", NULL));
        tls_session_free(s);
        return NULL;
    }
    return s;
}

void tls_session_free(TlsSession *s)
{
    if (s == NULL)
        return;
    SSL_free(s->ssl); /* and its BIOs */
    free(s);
}

bool tls_feed(TlsSession *s, const char *data, size_t len)
{
    size_t done = 0;
    while (done < len) {
        size_t chunk =
            len - done > (size_t)INT_MAX ? (size_t)INT_MAX : len - done;
        int n = BIO_write(SSL_get_rbio(s->ssl), data + done, (int)chunk);
        if (n <= 0)
            return false;
        done += (size_t)n;
    }
    return true;
}

int tls_handshake(TlsSession *s)
{
    ERR_clear_error();
    int ret = SSL_do_handshake(s->ssl);
    if (ret == 1)
        return TLS_OK;
    if (SSL_get_error(s->ssl, ret) == SSL_ERROR_WANT_READ)
        return TLS_WANT;
    describe(s, ret);
    return TLS_ERROR;
}

int tls_read(TlsSession *s, char *buf, size_t cap, size_t *n)
{
    ERR_clear_error();
    *n = 0;
    int ret = SSL_read_ex(s->ssl, buf, cap, n);
    if (ret == 1)
        return TLS_OK;
    int kind = SSL_get_error(s->ssl, ret);
    if (kind == SSL_ERROR_WANT_READ)
        return TLS_WANT;
    if (kind == SSL_ERROR_ZERO_RETURN)
        return TLS_CLOSED;
    describe(s, ret);
    return TLS_ERROR;
}

int tls_write(TlsSession *s, const char *data, size_t len)
{
    ERR_clear_error();
    size_t written = 0;
    /* A memory BIO takes everything: one call writes it all (as records
    ** of at most 16 KiB). */
    if (len == 0 || SSL_write_ex(s->ssl, data, len, &written) == 1)
        return TLS_OK;
    describe(s, 0);
    return TLS_ERROR;
}

size_t tls_out_len(const TlsSession *s)
{
    return BIO_ctrl_pending(SSL_get_wbio(s->ssl));
}

size_t tls_out_read(TlsSession *s, char *dst, size_t cap)
{
    if (cap > (size_t)INT_MAX)
        cap = (size_t)INT_MAX;
    int n = BIO_read(SSL_get_wbio(s->ssl), dst, (int)cap);
    return n > 0 ? (size_t)n : 0;
}

const char *tls_error(const TlsSession *s)
{
    return s->err;
}
