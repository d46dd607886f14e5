/*
** redis_fixture.h -- a private redis-server for one C test.
**
** redis_fixture_start() forks and execs `redis-server --bind 127.0.0.1
** --port P --save '' --appendonly no --daemonize no` plus extra arguments,
** on a loopback port that was free a moment before; if the server dies or
** does not answer PING within REDIS_FIXTURE_START_MS (another process took
** the port), it tries another port. The child gets PR_SET_PDEATHSIG, so a
** test that exits on a failed assertion does not leave a server behind.
** The server is stopped by its PID only (SIGTERM, then SIGKILL), and always
** reaped with waitpid. redis_fixture_query() is a blocking side channel
** (inline command, first reply line) for set-up steps such as CLIENT PAUSE;
** redis_fixture_hold() keeps a client connection open (e.g. to fill
** maxclients).
**
** redis_fixture_start_tls() starts a server that speaks TLS only
** (`--port 0 --tls-port P` with the given certificate files, absolute
** paths); the same side channel then runs over TLS (blocking OpenSSL,
** no verification, the client certificate when one is given), so
** readiness is judged by a PONG either way.
*/
#ifndef CACHERT_REDIS_FIXTURE_H
#define CACHERT_REDIS_FIXTURE_H

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/ssl.h>

#define REDIS_FIXTURE_MAX_ARGS 24
#define REDIS_FIXTURE_START_MS 5000
#define REDIS_FIXTURE_TRIES    5

/* A TLS server's files (absolute paths, borrowed for the fixture's life). */
typedef struct RedisFixtureTls {
    const char *cert;        /* --tls-cert-file */
    const char *key;         /* --tls-key-file */
    const char *ca;          /* --tls-ca-cert-file: checks client certs */
    bool auth_clients;       /* --tls-auth-clients yes|no */
    const char *client_cert; /* for the side channel when auth_clients */
    const char *client_key;
} RedisFixtureTls;

typedef struct RedisFixture {
    pid_t pid; /* 0 when not running */
    int port;
    const char *extra[REDIS_FIXTURE_MAX_ARGS]; /* NULL-terminated, borrowed */
    bool tls;                                  /* port speaks TLS only */
    RedisFixtureTls tls_files;
} RedisFixture;

static inline void redis_fixture_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A loopback port nobody listens on right now (the kernel's pick). */
static inline int redis_fixture_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(sa.sin_port);
}

/* Connects to 127.0.0.1:port over a blocking socket and sends
** `inline_cmd` (e.g. "CLIENT PAUSE 500") as an inline command. Returns the
** socket, or -1 when it could not be sent. */
static inline int redis_fixture_send_inline(int port, const char *inline_cmd)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char cmd[256];
    int n = snprintf(cmd, sizeof(cmd), "%s\r\n", inline_cmd);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && n > 0 &&
        (size_t)n < sizeof(cmd) && write(fd, cmd, (size_t)n) == n)
        return fd;
    close(fd);
    return -1;
}

/* Sends `inline_cmd` to 127.0.0.1:port and copies the first reply line
** into out. Returns false when nothing answered within timeout_ms. */
static inline bool redis_fixture_query_port(int port, const char *inline_cmd,
                                            char *out, size_t outlen,
                                            int timeout_ms)
{
    int fd = redis_fixture_send_inline(port, inline_cmd);
    if (fd < 0)
        return false;
    bool ok = false;
    size_t got = 0;
    struct pollfd pfd = {fd, POLLIN, 0};
    while (got + 1 < outlen && poll(&pfd, 1, timeout_ms) == 1) {
        ssize_t r = read(fd, out + got, outlen - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
        out[got] = '\0';
        char *eol = strstr(out, "\r\n");
        if (eol != NULL) {
            *eol = '\0';
            ok = true;
            break;
        }
    }
    close(fd);
    return ok;
}

/* redis_fixture_query_port over TLS: a blocking handshake on a socket
** with send/receive timeouts of timeout_ms. */
static inline bool redis_fixture_query_tls(const RedisFixture *fx,
                                           const char *inline_cmd, char *out,
                                           size_t outlen, int timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)fx->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = NULL;
    bool ok = false;
    char cmd[256];
    int n = snprintf(cmd, sizeof(cmd), "%s\r\n", inline_cmd);
    const RedisFixtureTls *t = &fx->tls_files;
    if (ctx != NULL && t->client_cert != NULL &&
        (SSL_CTX_use_certificate_chain_file(ctx, t->client_cert) != 1 ||
         SSL_CTX_use_PrivateKey_file(ctx, t->client_key, SSL_FILETYPE_PEM) !=
             1)) {
        SSL_CTX_free(ctx);
        ctx = NULL;
    }
    if (ctx != NULL && n > 0 && (size_t)n < sizeof(cmd) &&
        connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        (ssl = SSL_new(ctx)) != NULL && SSL_set_fd(ssl, fd) == 1 &&
        SSL_connect(ssl) == 1 && SSL_write(ssl, cmd, n) == n) {
        size_t got = 0;
        while (got + 1 < outlen) {
            int r = SSL_read(ssl, out + got, (int)(outlen - 1 - got));
            if (r <= 0)
                break;
            got += (size_t)r;
            out[got] = '\0';
            char *eol = strstr(out, "\r\n");
            if (eol != NULL) {
                *eol = '\0';
                ok = true;
                break;
            }
        }
    }
    if (ssl != NULL)
        SSL_shutdown(ssl);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    return ok;
}

/* The side channel to the fixture's server, plain or TLS. */
static inline bool redis_fixture_query_ms(const RedisFixture *fx,
                                          const char *inline_cmd, char *out,
                                          size_t outlen, int timeout_ms)
{
    if (fx->tls)
        return redis_fixture_query_tls(fx, inline_cmd, out, outlen, timeout_ms);
    return redis_fixture_query_port(fx->port, inline_cmd, out, outlen,
                                    timeout_ms);
}

static inline bool redis_fixture_query(const RedisFixture *fx,
                                       const char *inline_cmd, char *out,
                                       size_t outlen)
{
    return redis_fixture_query_ms(fx, inline_cmd, out, outlen, 2000);
}

/* Opens a connection to the server and keeps it: returns its descriptor
** once the server answered a PING on it (so it counts as a client), or -1
** after `timeout_ms`. Retries while the server turns it away (a client
** that just closed may still count). The caller closes it. */
static inline int redis_fixture_hold(const RedisFixture *fx, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 10) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
            return -1;
        struct sockaddr_in sa;
        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_port = htons((uint16_t)fx->port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        char reply[64];
        ssize_t got = 0;
        struct pollfd pfd = {fd, POLLIN, 0};
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
            write(fd, "PING\r\n", 6) == 6 && poll(&pfd, 1, 1000) == 1)
            got = read(fd, reply, sizeof(reply) - 1);
        if (got >= 7 && memcmp(reply, "+PONG\r\n", 7) == 0)
            return fd;
        close(fd);
        redis_fixture_sleep_ms(10);
    }
    return -1;
}

/* Sends `sig` to the child *pid (when running) and reaps it: waits up to
** 2 s, then kills it. *pid is 0 afterwards. */
static inline void redis_fixture_reap(pid_t *pid, int sig)
{
    if (*pid <= 0)
        return;
    kill(*pid, sig);
    for (int i = 0; i < 200; i++) {
        if (waitpid(*pid, NULL, WNOHANG) == *pid) {
            *pid = 0;
            return;
        }
        redis_fixture_sleep_ms(10);
    }
    kill(*pid, SIGKILL);
    waitpid(*pid, NULL, 0);
    *pid = 0;
}

/* Stops the server with `sig` (SIGKILL for a crash) and reaps it; after
** SIGTERM it waits up to 2 s, then kills. */
static inline void redis_fixture_kill(RedisFixture *fx, int sig)
{
    redis_fixture_reap(&fx->pid, sig);
}

static inline void redis_fixture_stop(RedisFixture *fx)
{
    redis_fixture_kill(fx, SIGTERM);
}

/* Runs argv[0] (looked up on PATH) with argv in a child whose stdin and
** stdout are /dev/null and that dies with the test (PR_SET_PDEATHSIG).
** Returns its PID, or -1 when fork failed. */
static inline pid_t redis_fixture_exec(const char *const *argv)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127); /* the test already died */
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
        dup2(devnull, STDIN_FILENO);
        dup2(devnull, STDOUT_FILENO);
        close(devnull);
    }
    execvp(argv[0], (char *const *)argv);
    _exit(127);
}

/* Starts the server on fx->port; false when it died or stayed silent. */
static inline bool redis_fixture_spawn(RedisFixture *fx)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", fx->port);
    const char *argv[REDIS_FIXTURE_MAX_ARGS + 32];
    int argc = 0;
    argv[argc++] = "redis-server";
    argv[argc++] = "--bind";
    argv[argc++] = "127.0.0.1";
    argv[argc++] = "--port";
    if (fx->tls) {
        const RedisFixtureTls *t = &fx->tls_files;
        argv[argc++] = "0";
        argv[argc++] = "--tls-port";
        argv[argc++] = port;
        argv[argc++] = "--tls-cert-file";
        argv[argc++] = t->cert;
        argv[argc++] = "--tls-key-file";
        argv[argc++] = t->key;
        argv[argc++] = "--tls-ca-cert-file";
        argv[argc++] = t->ca;
        argv[argc++] = "--tls-auth-clients";
        argv[argc++] = t->auth_clients ? "yes" : "no";
    } else {
        argv[argc++] = port;
    }
    argv[argc++] = "--save";
    argv[argc++] = "";
    argv[argc++] = "--appendonly";
    argv[argc++] = "no";
    argv[argc++] = "--daemonize";
    argv[argc++] = "no";
    argv[argc++] = "--logfile";
    argv[argc++] = "/dev/null";
    for (int i = 0; fx->extra[i] != NULL; i++)
        argv[argc++] = fx->extra[i];
    argv[argc] = NULL;

    pid_t pid = redis_fixture_exec(argv);
    if (pid < 0)
        return false;
    fx->pid = pid;
    char line[128];
    for (int waited = 0; waited < REDIS_FIXTURE_START_MS; waited += 10) {
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            fx->pid = 0; /* exited: most likely the port was taken */
            return false;
        }
        /* Any reply will do: -NOAUTH also says the server is up. */
        if (redis_fixture_query_ms(fx, "PING", line, sizeof(line), 500) &&
            (line[0] == '+' || line[0] == '-'))
            return true;
        redis_fixture_sleep_ms(10);
    }
    redis_fixture_kill(fx, SIGKILL);
    return false;
}

/* Starts a server (TLS-only with `tls`'s files when tls is not NULL, see
** the top) with the extra arguments (NULL-terminated, or NULL) on a free
** loopback port. */
static inline bool redis_fixture_start_with(RedisFixture *fx,
                                            const RedisFixtureTls *tls,
                                            const char *const *extra)
{
    memset(fx, 0, sizeof(*fx));
    if (tls != NULL) {
        fx->tls = true;
        fx->tls_files = *tls;
    }
    for (int i = 0; extra != NULL && extra[i] != NULL; i++) {
        if (i + 1 >= REDIS_FIXTURE_MAX_ARGS)
            return false;
        fx->extra[i] = extra[i];
    }
    for (int tries = 0; tries < REDIS_FIXTURE_TRIES; tries++) {
        fx->port = redis_fixture_free_port();
        if (fx->port > 0 && redis_fixture_spawn(fx))
            return true;
    }
    return false;
}

/* A plain server with the extra arguments (NULL-terminated, or NULL). */
static inline bool redis_fixture_start(RedisFixture *fx,
                                       const char *const *extra)
{
    return redis_fixture_start_with(fx, NULL, extra);
}

/* A TLS-only server with `tls`'s files and the extra arguments. */
static inline bool redis_fixture_start_tls(RedisFixture *fx,
                                           const RedisFixtureTls *tls,
                                           const char *const *extra)
{
    return redis_fixture_start_with(fx, tls, extra);
}

/* Starts the same server again on the same port (after a kill). */
static inline bool redis_fixture_restart(RedisFixture *fx)
{
    for (int tries = 0; tries < REDIS_FIXTURE_TRIES; tries++) {
        if (redis_fixture_spawn(fx))
            return true;
        redis_fixture_sleep_ms(100);
    }
    return false;
}

#endif
