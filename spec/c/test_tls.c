/*
** test_tls.c -- the pool over TLS against private TLS redis-servers:
** pipelined commands and values larger than a read both ways, verification
** of an IP address and of a DNS name, an unknown CA, a host name mismatch,
** a server_name override, verify = false, mutual TLS with and without a
** client certificate, a plaintext server on a TLS connection and the
** reverse, a handshake that never completes, a server killed and restarted
** under load, idle closes (close_notify) and a CA file that does not exist.
**
** Certificates come from spec/tls_certs.sh, run once per process into a
** temporary directory that is removed at exit. Every wait is bounded by a
** uv timer; every test ends with every handle closed (uv_loop_close == 0)
** and its server stopped.
*/
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include <uv.h>

#include "pool.h"
#include "redis_fixture.h"
#include "pool_harness.h"
#include "status.h"
#include "test.h"

typedef PoolHarness Harness;

/* -- Certificates ------------------------------------------------------- */

static char cert_dir[64];
static char names[16][32];
static char paths[16][128];
static int npaths;

static void remove_cert_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", cert_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", cert_dir);
}

/* The absolute path of `name` in the certificate directory, which the
** first call makes. Valid until exit. */
static const char *cert(const char *name)
{
    if (cert_dir[0] == '\0') {
        snprintf(cert_dir, sizeof(cert_dir), "/tmp/cachert-tls-XXXXXX");
        ASSERT_NOT_NULL(mkdtemp(cert_dir));
        atexit(remove_cert_dir);
        char cmd[512];
        snprintf(cmd, sizeof(cmd), "sh '%s' '%s'", CACHERT_TLS_CERTS_SH,
                 cert_dir);
        ASSERT_EQ_INT(0, system(cmd));
    }
    for (int i = 0; i < npaths; i++)
        if (strcmp(names[i], name) == 0)
            return paths[i];
    ASSERT_TRUE(npaths < 16);
    snprintf(names[npaths], sizeof(names[npaths]), "%s", name);
    snprintf(paths[npaths], sizeof(paths[npaths]), "%s/%s", cert_dir, name);
    return paths[npaths++];
}

/* A TLS server presenting `name`.pem (with `name`.key). */
static RedisFixtureTls server_files(const char *name, bool auth_clients)
{
    char file[32];
    RedisFixtureTls t;
    memset(&t, 0, sizeof(t));
    snprintf(file, sizeof(file), "%s.pem", name);
    t.cert = cert(file);
    /* server-chain.pem holds server.pem's certificate: same key. */
    snprintf(file, sizeof(file), "%s.key",
             strcmp(name, "server-chain") == 0 ? "server" : name);
    t.key = cert(file);
    t.ca = cert("ca.pem");
    t.auth_clients = auth_clients;
    if (auth_clients) {
        t.client_cert = cert("client.pem");
        t.client_key = cert("client.key");
    }
    return t;
}

/* -- Helpers ------------------------------------------------------------ */

/* A pool of `size` to the fixture over TLS, trusting the test CA. */
static PoolConfig config(const Harness *h, const char *host, size_t size)
{
    PoolConfig cfg = {.host = host,
                      .port = h->fx.port,
                      .size = size,
                      .connect_timeout_ms = 2000,
                      .command_timeout_ms = 2000};
    cfg.tls.enabled = true;
    cfg.tls.verify = true;
    cfg.tls.ca_file = cert("ca.pem");
    return cfg;
}

static void start_loop(Harness *h)
{
    memset(h, 0, sizeof(*h));
    cert("ca.pem"); /* makes them now, not while the loop's clock waits */
    /* As the runtime does: a write to a closed socket is an error, not a
    ** signal (the fixture's side channel writes with OpenSSL). */
    signal(SIGPIPE, SIG_IGN);
    ASSERT_EQ_INT(0, uv_loop_init(&h->loop));
    h->clock = &h->loop;
}

/* A loop and a TLS server presenting `name`.pem. */
static void start(Harness *h, const char *name, bool auth_clients,
                  const char *const *extra)
{
    start_loop(h);
    RedisFixtureTls files = server_files(name, auth_clients);
    ASSERT_TRUE(redis_fixture_start_tls(&h->fx, &files, extra));
}

static void expect_pong(Harness *h)
{
    Result r = run(h, 1, (const char *[]){"PING"}, NULL);
    ASSERT_EQ_INT(CR_OK, r.status);
    ASSERT_EQ_STR("PONG", r.str);
    result_free(&r);
}

#define ASSERT_CONTAINS(haystack, needle)                                      \
    do {                                                                       \
        if (strstr((haystack), (needle)) == NULL)                              \
            TEST_FAIL_("expected \"%s\" in \"%s\"", (needle), (haystack));     \
    } while (0)

/* Opens a pool that must fail with CR_ETLS and a message holding `want`. */
static void expect_tls_failure(Harness *h, const PoolConfig *cfg,
                               const char *want)
{
    open_pool(h, cfg);
    ASSERT_EQ_INT(CR_ETLS, h->states[0]);
    ASSERT_CONTAINS(h->message, want);
    ASSERT_FALSE(pool_ready(h->pool));
}

/* -- Commands ----------------------------------------------------------- */

static void test_tls_pool_runs_pipelined_commands_and_big_values(void)
{
    Harness h;
    start(&h, "server", false, NULL);
    PoolConfig cfg = config(&h, "127.0.0.1", 1); /* IP SAN verified */
    open_pool(&h, &cfg);
    ASSERT_EQ_INT(CR_OK, h.states[0]);

    enum { N = 1000 };
    Result *res = calloc(N, sizeof(*res));
    ASSERT_NOT_NULL(res);
    uint64_t writes = pool_writes(h.pool);
    for (int i = 0; i < N; i++)
        ASSERT_EQ_INT(CR_OK,
                      pool_command(h.pool, 2, (const char *[]){"INCR", "n"},
                                   NULL, on_reply, &res[i]));
    for (int i = 0; i < N; i++)
        ASSERT_TRUE(wait_count(&h.loop, &res[i].calls, 1, 5000));
    for (int i = 0; i < N; i++) { /* in order: the i-th INCR saw i + 1 */
        ASSERT_EQ_INT(1, res[i].calls);
        ASSERT_EQ_INT(CR_OK, res[i].status);
        ASSERT_EQ_INT(i + 1, res[i].integer);
    }
    free(res);
    /* One write per batch, as over TCP (test_pool.c). */
    ASSERT_EQ_INT((N + POOL_WRITE_BATCH - 1) / POOL_WRITE_BATCH,
                  pool_writes(h.pool) - writes);

    /* Values spanning many records and reads, both ways. */
    size_t sizes[] = {64 * 1024 + 1, 1024 * 1024 + 7};
    for (size_t k = 0; k < 2; k++) {
        size_t len = sizes[k];
        char *big = malloc(len);
        ASSERT_NOT_NULL(big);
        for (size_t i = 0; i < len; i++)
            big[i] = (char)(i * 131 + k);
        Result r = run(&h, 3, (const char *[]){"SET", "big", big},
                       (size_t[]){3, 3, len});
        ASSERT_EQ_STR("OK", r.str);
        result_free(&r);
        r = run(&h, 2, (const char *[]){"GET", "big"}, NULL);
        ASSERT_EQ_MEM(big, len, r.str, r.len);
        result_free(&r);
        free(big);
    }
    finish(&h);
}

static void test_tls_verifies_the_dns_name_localhost(void)
{
    Harness h;
    start(&h, "server", false, NULL);
    PoolConfig cfg = config(&h, "localhost", 1);
    open_pool(&h, &cfg);
    ASSERT_EQ_INT(CR_OK, h.states[0]);
    expect_pong(&h);
    finish(&h);
}

/* -- Verification failures ---------------------------------------------- */

static void test_tls_rejects_a_server_whose_ca_is_not_trusted(void)
{
    Harness h;
    start(&h, "server-chain", false, NULL); /* sends the test CA too */
    PoolConfig cfg = config(&h, "127.0.0.1", 1);
    cfg.tls.ca_file = cert("other-ca.pem");
    expect_tls_failure(&h, &cfg,
                       "TLS handshake failed: certificate verify failed: "
                       "self-signed certificate in certificate chain");
    finish(&h);
}

static void test_tls_rejects_a_leaf_from_an_unknown_ca(void)
{
    Harness h;
    start(&h, "server", false, NULL);
    PoolConfig cfg = config(&h, "127.0.0.1", 1);
    cfg.tls.ca_file = cert("other-ca.pem");
    expect_tls_failure(&h, &cfg, "certificate verify failed");
    finish(&h);
}

static void test_tls_reports_a_host_name_mismatch(void)
{
    Harness h;
    start(&h, "wrong", false, NULL);
    PoolConfig cfg = config(&h, "localhost", 1);
    expect_tls_failure(&h, &cfg, "hostname mismatch");
    ASSERT_CONTAINS(h.message, "localhost");
    finish(&h);
}

static void test_tls_reports_an_ip_address_mismatch(void)
{
    Harness h;
    start(&h, "wrong", false, NULL);
    PoolConfig cfg = config(&h, "127.0.0.1", 1);
    expect_tls_failure(&h, &cfg, "IP address mismatch");
    finish(&h);
}

static void test_tls_accepts_a_server_name_override_that_matches(void)
{
    Harness h;
    start(&h, "wrong", false, NULL);
    PoolConfig cfg = config(&h, "127.0.0.1", 1);
    cfg.tls.server_name = "wrong.example";
    open_pool(&h, &cfg);
    ASSERT_EQ_INT(CR_OK, h.states[0]);
    expect_pong(&h);
    finish(&h);
}

static void test_tls_without_verification_accepts_a_wrong_name(void)
{
    Harness h;
    start(&h, "wrong", false, NULL);
    PoolConfig cfg = config(&h, "localhost", 1);
    cfg.tls.verify = false;
    cfg.tls.ca_file = cert("other-ca.pem"); /* not even the right CA */
    open_pool(&h, &cfg);
    ASSERT_EQ_INT(CR_OK, h.states[0]);
    expect_pong(&h);
    finish(&h);
}

/* -- Mutual TLS --------------------------------------------------------- */

static void test_tls_mutual_works_with_a_client_certificate(void)
{
    Harness h;
    start(&h, "server", true, NULL);
    PoolConfig cfg = config(&h, "127.0.0.1", 2);
    cfg.tls.cert_file = cert("client.pem");
    cfg.tls.key_file = cert("client.key");
    open_pool(&h, &cfg);
    ASSERT_EQ_INT(CR_OK, h.states[0]);
    expect_pong(&h);
    finish(&h);
}

static void test_tls_mutual_without_a_client_certificate_fails_clearly(void)
{
    Harness h;
    start(&h, "server", true, NULL);
    PoolConfig cfg = config(&h, "127.0.0.1", 1);
    /* TLS 1.3: an alert after the handshake, or the server's reset. */
    expect_tls_failure(&h, &cfg, "client certificate");
    ASSERT_CONTAINS(h.message, "cert_file");
    finish(&h);
}

/* -- Wrong transport ---------------------------------------------------- */

static void test_tls_to_a_plaintext_server_times_out_saying_why(void)
{
    Harness h;
    start_loop(&h);
    ASSERT_TRUE(redis_fixture_start(&h.fx, NULL));
    PoolConfig cfg = config(&h, "127.0.0.1", 1);
    cfg.connect_timeout_ms = 500;
    /* Redis reads a ClientHello as an unfinished inline command: silence. */
    open_pool(&h, &cfg);
    ASSERT_EQ_INT(CR_ETIMEDOUT, h.states[0]);
    ASSERT_CONTAINS(h.message, "TLS handshake");
    ASSERT_CONTAINS(h.message, "does not speak TLS");
    finish(&h);
}

static void test_plain_to_a_tls_server_hints_at_tls(void)
{
    Harness h;
    start(&h, "server", false, NULL);
    PoolConfig cfg = config(&h, "127.0.0.1", 1);
    cfg.tls.enabled = false;
    open_pool(&h, &cfg);
    ASSERT_TRUE(h.states[0] < 0);
    ASSERT_CONTAINS(h.message, "use rediss:// or tls = true");
    finish(&h);
}

/* A listening socket that is never accepted: TCP connects (the kernel
** completes it from the backlog), the ClientHello is never answered. */
static void test_tls_handshake_that_never_completes_times_out(void)
{
    Harness h;
    start_loop(&h);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_TRUE(fd >= 0);
    struct sockaddr_in sa;
    socklen_t salen = sizeof(sa);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ_INT(0, bind(fd, (struct sockaddr *)&sa, sizeof(sa)));
    ASSERT_EQ_INT(0, listen(fd, 8));
    ASSERT_EQ_INT(0, getsockname(fd, (struct sockaddr *)&sa, &salen));
    h.fx.port = ntohs(sa.sin_port);
    PoolConfig cfg = config(&h, "127.0.0.1", 1);
    cfg.connect_timeout_ms = 300;
    uv_update_time(&h.loop);
    uint64_t t0 = uv_now(&h.loop);
    open_pool(&h, &cfg);
    ASSERT_EQ_INT(CR_ETIMEDOUT, h.states[0]);
    ASSERT_CONTAINS(h.message, "TLS handshake");
    uint64_t took = h.state_ms[0] - t0;
    ASSERT_TRUE(took >= 300 && took < 600);
    finish(&h);
    close(fd);
}

/* -- Outages ------------------------------------------------------------ */

static void test_tls_pool_survives_a_server_killed_and_restarted(void)
{
    Harness h;
    start(&h, "server", false, NULL);
    PoolConfig cfg = config(&h, "127.0.0.1", 2);
    open_pool(&h, &cfg);
    ASSERT_EQ_INT(CR_OK, h.states[0]);
    Load load;
    load_start(&load, &h.loop, &h.pool);
    ASSERT_TRUE(wait_count(&h.loop, &load.ok, 500, 5000));

    redis_fixture_kill(&h.fx, SIGKILL);
    ASSERT_TRUE(wait_count(&h.loop, &h.down, 1, 3000));
    ASSERT_FALSE(pool_ready(h.pool));
    ASSERT_EQ_INT(0, pool_pending(h.pool));
    ASSERT_EQ_INT(load.issued, load.ok + load.failed); /* nothing hangs */
    run_for(&h.loop, 150);
    ASSERT_TRUE(load.rejected > 0);

    ASSERT_TRUE(redis_fixture_restart(&h.fx));
    ASSERT_TRUE(wait_count(&h.loop, &h.ready, 2, 8000));
    int ok_before = load.ok;
    ASSERT_TRUE(wait_count(&h.loop, &load.ok, ok_before + 200, 5000));
    load_stop(&load);
    expect_pong(&h);
    finish(&h);
    ASSERT_EQ_INT(load.issued, load.ok + load.failed); /* exactly once each */
}

static const char *const idle_timeout[] = {"--timeout", "1", NULL};

static void test_tls_pool_stays_ready_across_idle_closes(void)
{
    Harness h;
    start(&h, "server", false, idle_timeout);
    PoolConfig cfg = config(&h, "127.0.0.1", 2);
    open_pool(&h, &cfg);
    ASSERT_EQ_INT(CR_OK, h.states[0]);
    expect_pong(&h);
    /* The server closes both idle connections (close_notify, then FIN). */
    run_for(&h.loop, 2500);
    ASSERT_TRUE(pool_replaced(h.pool) >= 2);
    ASSERT_TRUE(pool_ready(h.pool));
    expect_pong(&h);
    ASSERT_EQ_INT(1, h.nstates); /* never reported down */
    finish(&h);
}

/* -- Configuration errors ----------------------------------------------- */

static void test_tls_reports_a_missing_ca_file_and_keeps_retrying(void)
{
    Harness h;
    start(&h, "server", false, NULL);
    PoolConfig cfg = config(&h, "127.0.0.1", 2);
    cfg.tls.ca_file = "/nonexistent/cachert/ca.pem";
    expect_tls_failure(&h, &cfg,
                       "TLS: cannot load CA file /nonexistent/cachert/ca.pem: "
                       "No such file or directory");
    /* Retried with the backoff, failing the same way, never crashing. */
    ASSERT_TRUE(wait_count(&h.loop, &h.down, 3, 3000));
    ASSERT_EQ_INT(CR_ETLS, h.states[2]);
    ASSERT_EQ_INT(0, h.ready);
    finish(&h);
}

static void test_tls_reports_a_key_that_does_not_match_its_certificate(void)
{
    Harness h;
    start(&h, "server", false, NULL);
    PoolConfig cfg = config(&h, "127.0.0.1", 1);
    cfg.tls.cert_file = cert("client.pem");
    cfg.tls.key_file = cert("server.key");
    expect_tls_failure(&h, &cfg, "cannot load key file");
    ASSERT_CONTAINS(h.message, "key values mismatch");
    finish(&h);
}

static const TestCase cases[] = {
    TEST_CASE(test_tls_pool_runs_pipelined_commands_and_big_values),
    TEST_CASE(test_tls_verifies_the_dns_name_localhost),
    TEST_CASE(test_tls_rejects_a_server_whose_ca_is_not_trusted),
    TEST_CASE(test_tls_rejects_a_leaf_from_an_unknown_ca),
    TEST_CASE(test_tls_reports_a_host_name_mismatch),
    TEST_CASE(test_tls_reports_an_ip_address_mismatch),
    TEST_CASE(test_tls_accepts_a_server_name_override_that_matches),
    TEST_CASE(test_tls_without_verification_accepts_a_wrong_name),
    TEST_CASE(test_tls_mutual_works_with_a_client_certificate),
    TEST_CASE(test_tls_mutual_without_a_client_certificate_fails_clearly),
    TEST_CASE(test_tls_to_a_plaintext_server_times_out_saying_why),
    TEST_CASE(test_plain_to_a_tls_server_hints_at_tls),
    TEST_CASE(test_tls_handshake_that_never_completes_times_out),
    TEST_CASE(test_tls_pool_survives_a_server_killed_and_restarted),
    TEST_CASE(test_tls_pool_stays_ready_across_idle_closes),
    TEST_CASE(test_tls_reports_a_missing_ca_file_and_keeps_retrying),
    TEST_CASE(test_tls_reports_a_key_that_does_not_match_its_certificate),
    {NULL, NULL},
};

TEST_MAIN(cases)
