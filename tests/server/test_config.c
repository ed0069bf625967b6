/* Unit tests of the server configuration (src/server/config.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "server/config.h"

static char *write_temp(const char *text)
{
    static char path[64];
    strcpy(path, "/tmp/ap_test_config_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_defaults(void **state)
{
    (void)state;
    ap_server_config c;
    ap__server_config_default(&c);
    assert_string_equal(c.host, "127.0.0.1");
    assert_int_equal(c.port, 8080);
    assert_int_equal(c.batch_size, 64);
    assert_true(c.inference_timeout == 1.0);
    assert_int_equal(c.model_cache_size, 64);
    assert_int_equal(c.max_async_results, 4096);
    assert_true(c.request_timeout == 10.0);
    assert_int_equal(c.reserve_connections, 16);
    assert_int_equal(c.max_future_s, 86400);
    assert_string_equal(c.onnx_enabled, "auto");
    assert_int_equal(c.nreplay, 0);
    assert_int_equal(c.replay_loop, 1);
    assert_int_equal(c.max_body_bytes, 1048576);
    /* every setting has a default that parses back to itself */
    for (int i = 0; i < ap__server_config_count(); i++) {
        ap_config_setting_info in;
        char buf[64];
        ap__server_config_info(i, &in);
        ap__server_config_value(&c, i, buf, sizeof buf);
        if (strcmp(in.key, "inference_timeout") && strcmp(in.key, "result_ttl") &&
            strcmp(in.key, "replay_speed") && strcmp(in.key, "shutdown_timeout"))
            assert_string_equal(buf, in.def);
        assert_true(!strncmp(in.env, "AP_", 3));
    }
}

static void test_set(void **state)
{
    (void)state;
    ap_server_config c;
    ap_error err;
    ap__server_config_default(&c);
    assert_int_equal(ap__server_config_set(&c, "Batch-Size", "32", "test", &err), AP_OK);
    assert_int_equal(c.batch_size, 32);
    assert_int_equal(ap__server_config_set(&c, "inference_timeout", "0.25", "test", &err), AP_OK);
    assert_true(c.inference_timeout == 0.25);
    assert_int_equal(ap__server_config_set(&c, "onnx_enabled", "OFF", "test", &err), AP_OK);
    assert_string_equal(c.onnx_enabled, "native");
    assert_int_equal(ap__server_config_set(&c, "onnx_enabled", "ort", "test", &err), AP_OK);
    assert_string_equal(c.onnx_enabled, "ort");
    assert_int_equal(ap__server_config_set(&c, "onnx_enabled", "1", "test", &err), AP_OK);
    assert_string_equal(c.onnx_enabled, "auto");
    assert_int_equal(ap__server_config_set(&c, "max_queue_delay_us", "-1", "test", &err), AP_OK);
    assert_int_equal(c.max_queue_delay_us, -1);

    /* errors name the source and the key, and change nothing */
    assert_int_equal(ap__server_config_set(&c, "batch_size", "0", "--batch-size", &err),
                     AP_EINVAL);
    assert_non_null(strstr(err.msg, "--batch-size: batch_size: '0'"));
    assert_int_equal(c.batch_size, 32);
    assert_int_equal(ap__server_config_set(&c, "port", "65536", "x", &err), AP_EINVAL);
    assert_int_equal(ap__server_config_set(&c, "port", "80a", "x", &err), AP_EINVAL);
    assert_int_equal(ap__server_config_set(&c, "port", "", "x", &err), AP_EINVAL);
    assert_int_equal(ap__server_config_set(&c, "inference_timeout", "nan", "x", &err), AP_EINVAL);
    assert_int_equal(ap__server_config_set(&c, "inference_timeout", "0", "x", &err), AP_EINVAL);
    assert_int_equal(ap__server_config_set(&c, "onnx_enabled", "maybe", "x", &err), AP_EINVAL);
    assert_non_null(strstr(err.msg, "boolean"));
    assert_int_equal(ap__server_config_set(&c, "access_log", "maybe", "x", &err), AP_EINVAL);
    assert_int_equal(ap__server_config_set(&c, "repository", "", "x", &err), AP_EINVAL);
    assert_int_equal(ap__server_config_set(&c, "bogus", "1", "here", &err), AP_ENOTFOUND);
    assert_non_null(strstr(err.msg, "here: unknown setting 'bogus'"));
    char longv[2000];
    memset(longv, 'a', sizeof longv - 1);
    longv[sizeof longv - 1] = 0;
    assert_int_equal(ap__server_config_set(&c, "host", longv, "x", &err), AP_ERANGE);
}

static void test_replay(void **state)
{
    (void)state;
    ap_server_config c;
    ap_error err;
    ap__server_config_default(&c);
    assert_int_equal(ap__server_config_set(&c, "replay",
                                          "GOOG/1d=examples/data/goog_daily.csv, "
                                          "USDCHF/4h = examples/data/usdchf_4h.csv",
                                          "x", &err),
                     AP_OK);
    assert_int_equal(c.nreplay, 2);
    assert_string_equal(c.replay[0].symbol, "GOOG");
    assert_int_equal(c.replay[0].tf_s, 86400);
    assert_string_equal(c.replay[1].symbol, "USDCHF");
    assert_string_equal(c.replay[1].timeframe, "4h");
    assert_int_equal(c.replay[1].tf_s, 4 * 3600);
    assert_string_equal(c.replay[1].path, "examples/data/usdchf_4h.csv");
    char buf[512];
    for (int i = 0; i < ap__server_config_count(); i++) {
        ap_config_setting_info in;
        ap__server_config_info(i, &in);
        if (!strcmp(in.key, "replay")) {
            ap__server_config_value(&c, i, buf, sizeof buf);
            assert_string_equal(buf, "GOOG/1d=examples/data/goog_daily.csv,"
                                     "USDCHF/4h=examples/data/usdchf_4h.csv");
        }
    }
    assert_int_equal(ap__server_config_check(&c, &err), AP_OK);
    assert_int_equal(ap__server_config_set(&c, "replay", "A/1d=a.csv,A/1d=b.csv", "x", &err), AP_OK);
    assert_int_equal(ap__server_config_check(&c, &err), AP_EINVAL);
    assert_non_null(strstr(err.msg, "A/1d"));
    assert_int_equal(ap__server_config_set(&c, "replay", "GOOG=a.csv", "x", &err), AP_EINVAL);
    assert_int_equal(ap__server_config_set(&c, "replay", "GOOG/7q=a.csv", "x", &err), AP_EINVAL);
    assert_int_equal(ap__server_config_set(&c, "replay", "GOOG/1d=", "x", &err), AP_EINVAL);
    assert_int_equal(ap__server_config_set(&c, "replay", "", "x", &err), AP_OK);
    assert_int_equal(c.nreplay, 0);
}

static void test_file(void **state)
{
    (void)state;
    ap_server_config c;
    ap_error err;
    ap__server_config_default(&c);
    char *p = write_temp("# alphapulse\n\n  port = 9000  \nhost=\"0.0.0.0\"  # all\n"
                         "repository = models#1\nBATCH_SIZE = 8 # comment\n");
    assert_int_equal(ap__server_config_load_file(&c, p, &err), AP_OK);
    assert_int_equal(c.port, 9000);
    assert_string_equal(c.host, "0.0.0.0");
    assert_string_equal(c.repository, "models#1"); /* '#' not after whitespace */
    assert_int_equal(c.batch_size, 8);
    unlink(p);

    p = write_temp("port = 1\n# x\nworkers = -3\nport = 2\n");
    assert_int_equal(ap__server_config_load_file(&c, p, &err), AP_EINVAL);
    char where[128];
    snprintf(where, sizeof where, "%s:3: workers", p);
    assert_non_null(strstr(err.msg, where));
    unlink(p);

    p = write_temp("port = 1\nnot a setting\n");
    assert_int_equal(ap__server_config_load_file(&c, p, &err), AP_EFORMAT);
    snprintf(where, sizeof where, "%s:2: expected 'key = value'", p);
    assert_non_null(strstr(err.msg, where));
    unlink(p);

    p = write_temp("host = \"abc\n");
    assert_int_equal(ap__server_config_load_file(&c, p, &err), AP_EFORMAT);
    unlink(p);
    p = write_temp(" = 3\n");
    assert_int_equal(ap__server_config_load_file(&c, p, &err), AP_EFORMAT);
    unlink(p);
    p = write_temp("colour = blue\n");
    assert_int_equal(ap__server_config_load_file(&c, p, &err), AP_ENOTFOUND);
    assert_non_null(strstr(err.msg, "colour"));
    unlink(p);
    assert_int_equal(ap__server_config_load_file(&c, "/nonexistent/x.conf", &err), AP_EIO);
}

static const char *fake_env(const char *name)
{
    static const char *vars[][2] = {
        {"AP_PORT", "7000"}, {"BATCH_SIZE", "5"}, {"AP_MODEL_CACHE_SIZE", "10"},
        {"MODEL_CACHE_SIZE", "20"}, {"INFERENCE_TIMEOUT", " 2 "}, {NULL, NULL}};
    for (int i = 0; vars[i][0]; i++)
        if (!strcmp(vars[i][0], name))
            return vars[i][1];
    return NULL;
}

static const char *bad_env(const char *name)
{
    return !strcmp(name, "MIXED_PRECISION_ENABLED") ? "perhaps" : NULL;
}

static void test_env(void **state)
{
    (void)state;
    ap_server_config c;
    ap_error err;
    ap__server_config_default(&c);
    assert_int_equal(ap__server_config_load_env(&c, fake_env, &err), AP_OK);
    assert_int_equal(c.port, 7000);
    assert_int_equal(c.batch_size, 5);        /* original name */
    assert_int_equal(c.model_cache_size, 10); /* AP_ name wins */
    assert_true(c.inference_timeout == 2.0);
    assert_int_equal(ap__server_config_load_env(&c, bad_env, &err), AP_EINVAL);
    assert_non_null(strstr(err.msg, "environment MIXED_PRECISION_ENABLED"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults), cmocka_unit_test(test_set),
        cmocka_unit_test(test_replay),   cmocka_unit_test(test_file),
        cmocka_unit_test(test_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
