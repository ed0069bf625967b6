/* manifest.json / version.json parsing: what is accepted, and the message of
   each refusal (the field at fault is named). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "registry/manifest.h"

static void man_err(const char *json, int want_rc, const char *want_msg)
{
    ap_manifest m;
    ap_error err = {0};
    int rc = ap__manifest_parse(json, strlen(json), "x/manifest.json", &m, &err);
    if (rc != want_rc || !strstr(err.msg, want_msg))
        fail_msg("manifest %s: rc %d msg '%s', want %d '%s'", json, rc, err.msg, want_rc,
                 want_msg);
}

static void ver_err(const char *json, ap_model_kind kind, int want_rc, const char *want_msg)
{
    ap_version_spec s;
    ap_error err = {0};
    int rc = ap__version_spec_parse(json, strlen(json), kind, "x/1/version.json", &s, &err);
    if (rc != want_rc || !strstr(err.msg, want_msg))
        fail_msg("version %s: rc %d msg '%s', want %d '%s'", json, rc, err.msg, want_rc,
                 want_msg);
}

static void test_manifest_ok(void **state)
{
    (void)state;
    const char *j = "{\"name\":\"bull\",\"kind\":\"regime\",\"target\":\"bull\","
                    "\"description\":\"d\",\"version_policy\":{\"pinned\":3},"
                    "\"batching\":{\"max_batch_size\":32,\"max_queue_delay_us\":250}}";
    ap_manifest m;
    assert_int_equal(ap__manifest_parse(j, strlen(j), "m", &m, NULL), AP_OK);
    assert_string_equal(m.name, "bull");
    assert_int_equal(m.kind, AP_MODEL_REGIME);
    assert_int_equal(m.pinned_version, 3);
    assert_int_equal(m.max_batch_size, 32);
    assert_int_equal(m.max_queue_delay_us, 250);
    /* defaults: latest, 64 rows, 1000 us */
    const char *d = "{\"name\":\"a\",\"kind\":\"raw\",\"target\":\"t\"}";
    assert_int_equal(ap__manifest_parse(d, strlen(d), "m", &m, NULL), AP_OK);
    assert_int_equal(m.pinned_version, 0);
    assert_int_equal(m.max_batch_size, 64);
    assert_int_equal(m.max_queue_delay_us, 1000);
    assert_int_equal(m.precision, AP_PRECISION_AUTO);
    assert_true(m.precision_tolerance == 1e-3);
}

/* precision and precision_tolerance (issue 12): per model, in the manifest */
static void test_manifest_precision(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        ap_precision want;
    } ok[] = {{"auto", AP_PRECISION_AUTO}, {"full", AP_PRECISION_FULL},
              {"reduced", AP_PRECISION_REDUCED}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char j[256];
        snprintf(j, sizeof j, "{\"name\":\"a\",\"kind\":\"regime\",\"target\":\"t\","
                 "\"precision\":\"%s\",\"precision_tolerance\":0.25}", ok[i].value);
        ap_manifest m;
        ap_error err = {0};
        if (ap__manifest_parse(j, strlen(j), "m", &m, &err) != AP_OK)
            fail_msg("%s: %s", j, err.msg);
        assert_int_equal(m.precision, ok[i].want);
        assert_true(m.precision_tolerance == 0.25);
    }
    /* an integer tolerance is a number too; an ensemble may say full or auto */
    const char *j = "{\"name\":\"a\",\"kind\":\"raw\",\"target\":\"t\",\"precision_tolerance\":2}";
    ap_manifest m;
    assert_int_equal(ap__manifest_parse(j, strlen(j), "m", &m, NULL), AP_OK);
    assert_true(m.precision_tolerance == 2.0);
    j = "{\"name\":\"e\",\"kind\":\"ensemble\",\"target\":\"t\",\"precision\":\"full\"}";
    assert_int_equal(ap__manifest_parse(j, strlen(j), "m", &m, NULL), AP_OK);
    assert_int_equal(m.precision, AP_PRECISION_FULL);
#define P(rest) "{\"name\":\"a\",\"kind\":\"raw\",\"target\":\"t\"," rest "}"
    man_err(P("\"precision\":\"half\""), AP_EFORMAT,
            "x/manifest.json: unknown precision 'half' (auto, full, reduced)");
    man_err(P("\"precision\":\"FULL\""), AP_EFORMAT, "unknown precision 'FULL'");
    man_err(P("\"precision\":\"\""), AP_EFORMAT, "unknown precision ''");
    man_err(P("\"precision\":\"reduced-but-much-longer-than-any-precision-name\""), AP_EFORMAT,
            "x/manifest.json: unknown precision 'reduced-but-much-longer");
    man_err(P("\"precision\":1"), AP_EFORMAT, "x/manifest.json: \"precision\" must be a string");
    man_err(P("\"precision\":null"), AP_EFORMAT, "\"precision\" must be a string");
    man_err(P("\"precision_tolerance\":0"), AP_ERANGE,
            "x/manifest.json: \"precision_tolerance\" must be a finite number > 0");
    man_err(P("\"precision_tolerance\":-1e-3"), AP_ERANGE, "\"precision_tolerance\" must be");
    man_err(P("\"precision_tolerance\":\"1e-3\""), AP_ERANGE, "\"precision_tolerance\" must be");
    /* (1e999 never gets here: jansson refuses the overflow as malformed JSON) */
    man_err(P("\"precision_tolerance\":1e999"), AP_EFORMAT, "real number overflow");
    man_err(P("\"precision_tolerance\":true"), AP_ERANGE, "\"precision_tolerance\" must be");
    man_err(P("\"precison\":\"full\""), AP_EFORMAT, "unknown key 'precison'");
#undef P
    man_err("{\"name\":\"e\",\"kind\":\"ensemble\",\"target\":\"t\",\"precision\":\"reduced\"}",
            AP_EFORMAT, "x/manifest.json: precision 'reduced': an ensemble's combiner runs at full "
            "precision");
}

static void test_manifest_errors(void **state)
{
    (void)state;
    man_err("{\"name\":\"a\",", AP_EFORMAT, "x/manifest.json: malformed JSON at line 1");
    man_err("[1]", AP_EFORMAT, "top level must be a JSON object");
    man_err("{\"kind\":\"raw\",\"target\":\"t\"}", AP_EFORMAT, "missing \"name\"");
    man_err("{\"name\":\"a b\",\"kind\":\"raw\",\"target\":\"t\"}", AP_EFORMAT,
            "name 'a b' is not");
    man_err("{\"name\":\"a\",\"kind\":\"neural\",\"target\":\"t\"}", AP_EFORMAT,
            "unknown kind 'neural'");
    man_err("{\"name\":\"a\",\"kind\":\"raw\",\"target\":7}", AP_EFORMAT,
            "\"target\" must be a string");
    man_err("{\"name\":\"a\",\"kind\":\"raw\",\"target\":\"t\",\"tagret\":1}", AP_EFORMAT,
            "unknown key 'tagret'");
    man_err("{\"name\":\"a\",\"kind\":\"raw\",\"target\":\"t\",\"version_policy\":\"all\"}",
            AP_EFORMAT, "\"version_policy\" must be \"latest\" or {\"pinned\": N}");
    man_err("{\"name\":\"a\",\"kind\":\"raw\",\"target\":\"t\",\"version_policy\":"
            "{\"pinned\":0}}", AP_ERANGE, "\"pinned\" must be an integer in 1..");
    man_err("{\"name\":\"a\",\"kind\":\"raw\",\"target\":\"t\",\"batching\":"
            "{\"max_batch_size\":0}}", AP_ERANGE, "\"max_batch_size\" must be an integer");
    man_err("{\"name\":\"a\",\"kind\":\"raw\",\"target\":\"t\",\"batching\":{\"size\":1}}",
            AP_EFORMAT, "unknown key 'size' in batching");
    man_err("{\"name\":\"a\",\"name\":\"b\",\"kind\":\"raw\",\"target\":\"t\"}", AP_EFORMAT,
            "duplicate");
}

static void test_version_ok(void **state)
{
    (void)state;
    const char *j = "{\"format\":\"xgboost\",\"file\":\"model.json\",\"feature_set\":"
                    "\"alphapulse-v1\",\"features\":[\"rsi\",\"close\"],\"pipeline\":"
                    "[{\"op\":\"fillna\",\"value\":0}],\"output_index\":1,"
                    "\"confidence\":\"margin\"}";
    ap_version_spec s;
    assert_int_equal(ap__version_spec_parse(j, strlen(j), AP_MODEL_PATTERN, "v", &s, NULL), AP_OK);
    assert_int_equal(s.num_inputs, 2);
    assert_int_equal(s.feature_idx[0], 13); /* rsi: 14th name of alphapulse-v1 */
    assert_int_equal(s.feature_idx[1], 3);  /* close */
    assert_int_equal(s.output_index, 1);
    assert_int_equal(s.confidence, AP_CONF_MARGIN);
    ap__version_spec_free(&s);
    const char *e = "{\"members\":[\"a\",\"b\"],\"combiner\":{\"type\":\"logistic\","
                    "\"coefficients\":[0.5,-1],\"intercept\":0.25}}";
    assert_int_equal(ap__version_spec_parse(e, strlen(e), AP_MODEL_ENSEMBLE, "v", &s, NULL),
                     AP_OK);
    assert_int_equal(s.num_inputs, 2);
    assert_int_equal(s.combiner, AP_COMBINE_LOGISTIC);
    assert_true(s.coef[1] == -1.0 && s.intercept == 0.25);
    assert_int_equal(s.confidence, AP_CONF_MEMBER_STD);
    ap__version_spec_free(&s);
}

#define V(rest) \
    "{\"format\":\"xgboost\",\"file\":\"m.json\",\"feature_set\":\"alphapulse-v1\"" rest "}"

static void test_version_errors(void **state)
{
    (void)state;
    ver_err(V(",\"features\":[\"rsi\",\"rsi_bogus\"]"), AP_MODEL_PATTERN, AP_ENOTFOUND,
            "features[1] 'rsi_bogus' is not an alphapulse-v1 feature");
    ver_err(V(",\"features\":[]"), AP_MODEL_PATTERN, AP_EFORMAT, "\"features\" must be an array");
    ver_err(V(",\"features\":[\"rsi\",3]"), AP_MODEL_PATTERN, AP_EFORMAT,
            "features[1] is not a string");
    ver_err("{\"format\":\"xgboost\",\"file\":\"m\",\"feature_set\":\"alphapulse-v2\","
            "\"features\":[\"rsi\"]}", AP_MODEL_PATTERN, AP_EUNSUPPORTED,
            "unknown feature_set 'alphapulse-v2'");
    ver_err("{\"format\":\"xgboost\",\"file\":\"../../etc/passwd\",\"input_width\":2}",
            AP_MODEL_RAW, AP_EFORMAT, "\"file\" must be a file name inside the version folder");
    ver_err("{\"format\":\"xgboost\",\"file\":\"m\"}", AP_MODEL_RAW, AP_EFORMAT,
            "missing \"input_width\"");
    ver_err(V(",\"features\":[\"rsi\"],\"input_width\":1"), AP_MODEL_REGIME, AP_EFORMAT,
            "\"input_width\" is for raw models");
    ver_err(V(",\"features\":[\"rsi\"],\"confidence\":\"member_std\""), AP_MODEL_PATTERN,
            AP_EFORMAT, "unknown confidence 'member_std'");
    ver_err(V(",\"features\":[\"rsi\"],\"output_index\":-1"), AP_MODEL_PATTERN, AP_ERANGE,
            "\"output_index\" must be an integer");
    ver_err(V(",\"features\":[\"rsi\",\"close\"],\"pipeline\":[{\"op\":\"pca\",\"mean\":[0],"
              "\"components\":[[1]]}]"), AP_MODEL_PATTERN, AP_EFORMAT,
            "pipeline step 0 (pca) mean has 1 values, expected 2");
    ver_err(V(",\"features\":[\"rsi\"],\"members\":[\"a\"]"), AP_MODEL_PATTERN, AP_EFORMAT,
            "unknown key 'members'");
    ver_err("{\"members\":[\"a\",\"a\"],\"combiner\":{\"type\":\"weighted_mean\","
            "\"weights\":[1,1]}}", AP_MODEL_ENSEMBLE, AP_EFORMAT, "member 'a' is listed twice");
    ver_err("{\"members\":[\"a\",\"b\"],\"combiner\":{\"type\":\"logistic\","
            "\"coefficients\":[1],\"intercept\":0}}", AP_MODEL_ENSEMBLE, AP_EFORMAT,
            "combiner.coefficients has 1 values, expected 2");
    ver_err("{\"members\":[\"a\",\"b\"],\"combiner\":{\"type\":\"logistic\","
            "\"coefficients\":[1,2]}}", AP_MODEL_ENSEMBLE, AP_EFORMAT, "finite \"intercept\"");
    ver_err("{\"members\":[\"a\",\"b\"],\"combiner\":{\"type\":\"weighted_mean\","
            "\"weights\":[0,0]}}", AP_MODEL_ENSEMBLE, AP_EFORMAT, "weights sum to 0");
    ver_err("{\"members\":[\"a\"],\"combiner\":{\"type\":\"vote\"}}", AP_MODEL_ENSEMBLE,
            AP_EFORMAT, "unknown combiner type 'vote'");
    ver_err("{\"members\":[\"a\"],\"combiner\":{\"type\":\"weighted_mean\",\"weights\":[1]},"
            "\"confidence\":\"margin\"}", AP_MODEL_ENSEMBLE, AP_EFORMAT,
            "an ensemble's confidence is member_std");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_manifest_ok),
        cmocka_unit_test(test_manifest_errors),
        cmocka_unit_test(test_manifest_precision),
        cmocka_unit_test(test_version_ok),
        cmocka_unit_test(test_version_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
