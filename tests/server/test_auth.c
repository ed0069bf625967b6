/*
 * Tokens (src/server/auth.c): the constant-time comparison gives the same
 * answers as memcmp on lengths and contents (every pair of a set of
 * strings that differ in the first, a middle and the last byte, and in
 * length), the file format and its refusals (file:line), roles in order,
 * the token bucket against a clock the test drives (rate 2/s: 2 at once,
 * then one every 500 ms, Retry-After rounded up), and a reload that fails
 * keeping the tokens in force. AP_TEST_THREADED: checks race a reload.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/auth.h"
#include "server/routes.h"

static char path[64];

static void write_file(const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    strcpy(path, "/tmp/ap_test_auth_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    return 0;
}

static void ct_equal(void **state)
{
    (void)state;
    const char *s[] = {"", "a", "b", "abcdefghijklmnop", "Xbcdefghijklmnop", "abcdefgXijklmnop",
                       "abcdefghijklmnoX", "abcdefghijklmno", "abcdefghijklmnopq"};
    size_t n = sizeof s / sizeof s[0];
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            size_t a = strlen(s[i]), b = strlen(s[j]);
            int want = a == b && memcmp(s[i], s[j], a) == 0;
            assert_int_equal(ap__auth_ct_equal(s[i], a, s[j], b), want);
        }
}

#define T_READ "read-0123456789abcdef"
#define T_PRED "pred-0123456789abcdef"
#define T_ADMIN "admin-0123456789abcdef"

static void roles_and_names(void **state)
{
    (void)state;
    write_file("# comment\n\n" T_READ " read dash\n" T_PRED " predict\n  " T_ADMIN
               "\tadmin ops # trailing comment\n");
    ap_srv_auth *a;
    ap_error err;
    assert_int_equal(ap__auth_open(path, 0, &a, &err), AP_OK);
    assert_int_equal(ap__auth_count(a), 3);
    char name[64];
    int retry;
    assert_int_equal(ap__auth_check(a, NULL, ROLE_READ, 1, name, sizeof name, &retry),
                     AP_AUTH_MISSING);
    assert_int_equal(ap__auth_check(a, "Basic " T_READ, ROLE_READ, 1, name, sizeof name, &retry),
                     AP_AUTH_INVALID);
    assert_int_equal(ap__auth_check(a, "Bearer nope-0123456789abcdef", ROLE_READ, 1, name,
                                    sizeof name, &retry), AP_AUTH_INVALID);
    /* a prefix of a token is not the token */
    assert_int_equal(ap__auth_check(a, "Bearer read-0123456789abcde", ROLE_READ, 1, name,
                                    sizeof name, &retry), AP_AUTH_INVALID);
    assert_int_equal(ap__auth_check(a, "bearer  " T_READ " ", ROLE_READ, 1, name, sizeof name,
                                    &retry), AP_AUTH_OK);
    assert_string_equal(name, "dash");
    assert_int_equal(ap__auth_check(a, "Bearer " T_READ, ROLE_PREDICT, 1, name, sizeof name,
                                    &retry), AP_AUTH_FORBIDDEN);
    assert_int_equal(ap__auth_check(a, "Bearer " T_PRED, ROLE_PREDICT, 1, name, sizeof name,
                                    &retry), AP_AUTH_OK);
    assert_string_equal(name, "line-4"); /* no NAME: its line */
    assert_int_equal(ap__auth_check(a, "Bearer " T_PRED, ROLE_INGEST, 1, name, sizeof name,
                                    &retry), AP_AUTH_FORBIDDEN);
    for (int r = ROLE_READ; r <= ROLE_ADMIN; r++)
        assert_int_equal(ap__auth_check(a, "Bearer " T_ADMIN, r, 1, name, sizeof name, &retry),
                         AP_AUTH_OK);
    assert_string_equal(name, "ops");
    ap__auth_free(a);
}

static void bad_files(void **state)
{
    (void)state;
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"short admin\n", ":1: a token is 16..256"},
        {T_READ " reader\n", ":1: unknown role 'reader'"},
        {T_READ "\n", ":1: expected TOKEN ROLE [NAME]"},
        {T_READ " read a b\n", ":1: expected TOKEN ROLE [NAME]"},
        {"# only comments\n", "has no token"},
        {T_READ " read x\n" T_READ " admin y\n", ":2: the same token as 'x'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_file(cases[i].text);
        ap_srv_auth *a = NULL;
        ap_error err;
        assert_int_not_equal(ap__auth_open(path, 0, &a, &err), AP_OK);
        assert_null(a);
        if (!strstr(err.msg, cases[i].want) || !strstr(err.msg, path))
            fail_msg("case %zu: '%s' does not say '%s' and the path", i, err.msg, cases[i].want);
    }
    ap_srv_auth *a = NULL;
    ap_error err;
    assert_int_equal(ap__auth_open("/nonexistent/tokens", 0, &a, &err), AP_EIO);
}

static void bucket(void **state)
{
    (void)state;
    write_file(T_READ " read\n" T_ADMIN " admin\n");
    ap_srv_auth *a;
    ap_error err;
    assert_int_equal(ap__auth_open(path, 2, &a, &err), AP_OK);
    int retry;
    uint64_t t = 1000000000ull, ms = 1000000ull;
    const char *h = "Bearer " T_READ;
    assert_int_equal(ap__auth_check(a, h, ROLE_READ, t, NULL, 0, &retry), AP_AUTH_OK);
    assert_int_equal(ap__auth_check(a, h, ROLE_READ, t, NULL, 0, &retry), AP_AUTH_OK);
    assert_int_equal(ap__auth_check(a, h, ROLE_READ, t, NULL, 0, &retry), AP_AUTH_LIMITED);
    assert_int_equal(retry, 1); /* 0.5 s to the next token, rounded up */
    /* another token has its own bucket */
    assert_int_equal(ap__auth_check(a, "Bearer " T_ADMIN, ROLE_READ, t, NULL, 0, &retry),
                     AP_AUTH_OK);
    assert_int_equal(ap__auth_check(a, h, ROLE_READ, t + 400 * ms, NULL, 0, &retry),
                     AP_AUTH_LIMITED);
    assert_int_equal(ap__auth_check(a, h, ROLE_READ, t + 510 * ms, NULL, 0, &retry), AP_AUTH_OK);
    assert_int_equal(ap__auth_check(a, h, ROLE_READ, t + 520 * ms, NULL, 0, &retry),
                     AP_AUTH_LIMITED);
    /* idle for long: the bucket fills up to one second's worth, no more */
    uint64_t later = t + 60000 * ms;
    assert_int_equal(ap__auth_check(a, h, ROLE_READ, later, NULL, 0, &retry), AP_AUTH_OK);
    assert_int_equal(ap__auth_check(a, h, ROLE_READ, later, NULL, 0, &retry), AP_AUTH_OK);
    assert_int_equal(ap__auth_check(a, h, ROLE_READ, later, NULL, 0, &retry), AP_AUTH_LIMITED);
    /* a forbidden request takes nothing from the bucket */
    assert_int_equal(ap__auth_check(a, h, ROLE_ADMIN, later + 600 * ms, NULL, 0, &retry),
                     AP_AUTH_FORBIDDEN);
    assert_int_equal(ap__auth_check(a, h, ROLE_READ, later + 600 * ms, NULL, 0, &retry),
                     AP_AUTH_OK);
    ap__auth_free(a);
}

typedef struct racer {
    ap_srv_auth *a;
    int stop, bad;
} racer;

static void *check_loop(void *arg)
{
    racer *x = arg;
    int retry;
    while (!__atomic_load_n(&x->stop, __ATOMIC_ACQUIRE)) {
        int rc = ap__auth_check(x->a, "Bearer " T_ADMIN, ROLE_ADMIN, 1, NULL, 0, &retry);
        if (rc != AP_AUTH_OK)
            x->bad++;
    }
    return NULL;
}

static void reload(void **state)
{
    (void)state;
    write_file(T_READ " read\n" T_ADMIN " admin\n");
    racer x = {0};
    ap_error err;
    assert_int_equal(ap__auth_open(path, 0, &x.a, &err), AP_OK);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, check_loop, &x), 0);
    int n;
    for (int i = 0; i <= 50; i++) { /* the admin token stays valid through every reload */
        write_file(i % 2 ? T_ADMIN " admin\n" : T_READ " read\n" T_ADMIN " admin\n");
        assert_int_equal(ap__auth_reload(x.a, &n, &err), AP_OK);
        assert_int_equal(n, i % 2 ? 1 : 2);
    }
    __atomic_store_n(&x.stop, 1, __ATOMIC_RELEASE);
    pthread_join(th, NULL);
    assert_int_equal(x.bad, 0);
    int retry;
    /* the last file had both tokens; now a bad file: the tokens in force stay */
    write_file(T_ADMIN " root\n");
    assert_int_not_equal(ap__auth_reload(x.a, &n, &err), AP_OK);
    assert_non_null(strstr(err.msg, "unknown role 'root'"));
    assert_int_equal(ap__auth_check(x.a, "Bearer " T_READ, ROLE_READ, 1, NULL, 0, &retry),
                     AP_AUTH_OK);
    write_file(T_ADMIN " admin\n"); /* a good one: the read token is gone */
    assert_int_equal(ap__auth_reload(x.a, &n, &err), AP_OK);
    assert_int_equal(ap__auth_check(x.a, "Bearer " T_READ, ROLE_READ, 1, NULL, 0, &retry),
                     AP_AUTH_INVALID);
    ap__auth_free(x.a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ct_equal),
        cmocka_unit_test_setup_teardown(roles_and_names, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_files, setup, teardown),
        cmocka_unit_test_setup_teardown(bucket, setup, teardown),
        cmocka_unit_test_setup_teardown(reload, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
