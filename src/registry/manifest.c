/* manifest.json and version.json: strict parsing into plain structs. */
#include "registry/manifest.h"
#include "alphapulse/features.h"
#include "common/error.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[] = {"pattern", "regime", "ensemble", "raw"};
static const char *const conf_names[] = {"max_probability", "margin", "member_std"};

const char *ap__model_kind_name(ap_model_kind kind)
{
    return (unsigned)kind < 4 ? kind_names[kind] : "?";
}

const char *ap__confidence_name(int confidence)
{
    return (unsigned)confidence < 3 ? conf_names[confidence] : "?";
}

int ap__model_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > AP_MODEL_NAME_MAX || name[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

static int load_json(const char *buf, size_t len, const char *what, json_t **out, ap_error *err)
{
    json_error_t je;
    *out = NULL;
    if (len > AP_MANIFEST_MAX_BYTES)
        return ap__error_set(err, AP_ERANGE, "%s: larger than %zu bytes", what,
                            AP_MANIFEST_MAX_BYTES);
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return ap__error_set(err, AP_EFORMAT, "%s: malformed JSON at line %d column %d: %s", what,
                            je.line, je.column, je.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return ap__error_set(err, AP_EFORMAT, "%s: top level must be a JSON object", what);
    }
    *out = root;
    return AP_OK;
}

static int check_keys(const json_t *o, const char *const *allowed, const char *what,
                      const char *where, ap_error *err)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)o, key, v) {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            ok |= !strcmp(key, *a);
        if (!ok)
            return ap__error_set(err, AP_EFORMAT, "%s: unknown key '%s'%s", what, key, where);
    }
    return AP_OK;
}

/* A string field into a fixed buffer; required unless def is given. */
static int get_string(const json_t *o, const char *key, const char *def, char *dst, size_t cap,
                      const char *what, ap_error *err)
{
    const json_t *v = json_object_get(o, key);
    if (!v) {
        if (!def)
            return ap__error_set(err, AP_EFORMAT, "%s: missing \"%s\"", what, key);
        snprintf(dst, cap, "%s", def);
        return AP_OK;
    }
    const char *s = json_string_value(v);
    if (!s)
        return ap__error_set(err, AP_EFORMAT, "%s: \"%s\" must be a string", what, key);
    if (strlen(s) >= cap || strlen(s) != json_string_length(v))
        return ap__error_set(err, AP_EFORMAT, "%s: \"%s\" is too long or holds a NUL byte", what,
                            key);
    memcpy(dst, s, strlen(s) + 1);
    return AP_OK;
}

/* An integer field in [lo, hi], def when absent. */
static int get_int(const json_t *o, const char *key, long long def, long long lo, long long hi,
                   long long *dst, const char *what, ap_error *err)
{
    const json_t *v = json_object_get(o, key);
    if (!v) {
        *dst = def;
        return AP_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return ap__error_set(err, AP_ERANGE, "%s: \"%s\" must be an integer in %lld..%lld", what,
                            key, lo, hi);
    *dst = json_integer_value(v);
    return AP_OK;
}

/* "precision" and "precision_tolerance" (after kind: an ensemble has no
   precision of its own). */
static int parse_precision(const json_t *root, ap_manifest *out, const char *what, ap_error *err)
{
    char p[16];
    int rc = get_string(root, "precision", "auto", p, sizeof p, what, err);
    if (rc == AP_EFORMAT && json_is_string(json_object_get(root, "precision")))
        return ap__error_set(err, AP_EFORMAT,
                            "%s: unknown precision '%.32s...' (auto, full, reduced)", what,
                            json_string_value(json_object_get(root, "precision")));
    if (rc != AP_OK)
        return rc;
    if (ap_precision_parse(p, &out->precision, NULL) != AP_OK)
        return ap__error_set(err, AP_EFORMAT, "%s: unknown precision '%s' (auto, full, reduced)",
                            what, p);
    if (out->kind == AP_MODEL_ENSEMBLE && out->precision == AP_PRECISION_REDUCED)
        return ap__error_set(err, AP_EFORMAT,
                            "%s: precision 'reduced': an ensemble's combiner runs at full "
                            "precision (its members carry their own precision)", what);
    const json_t *t = json_object_get(root, "precision_tolerance");
    out->precision_tolerance = AP_PRECISION_TOLERANCE_DEFAULT;
    if (!t)
        return AP_OK;
    if (!json_is_number(t) || !isfinite(json_number_value(t)) || !(json_number_value(t) > 0))
        return ap__error_set(err, AP_ERANGE,
                            "%s: \"precision_tolerance\" must be a finite number > 0", what);
    out->precision_tolerance = json_number_value(t);
    return AP_OK;
}

/* "device" (after kind: an ensemble's combiner has no device). */
static int parse_device(const json_t *root, ap_manifest *out, const char *what, ap_error *err)
{
    char d[16];
    int rc = get_string(root, "device", "auto", d, sizeof d, what, err);
    if (rc == AP_EFORMAT && json_is_string(json_object_get(root, "device")))
        return ap__error_set(err, AP_EFORMAT, "%s: unknown device '%.32s...' (auto, cpu, gpu)",
                            what, json_string_value(json_object_get(root, "device")));
    if (rc != AP_OK)
        return rc;
    if (ap_device_parse(d, &out->device, NULL) != AP_OK)
        return ap__error_set(err, AP_EFORMAT, "%s: unknown device '%s' (auto, cpu, gpu)", what, d);
    if (out->kind == AP_MODEL_ENSEMBLE && out->device == AP_DEVICE_GPU)
        return ap__error_set(err, AP_EFORMAT,
                            "%s: device 'gpu': an ensemble's combiner runs on the CPU (its "
                            "members carry their own device)", what);
    return AP_OK;
}

int ap__manifest_parse(const char *buf, size_t len, const char *what, ap_manifest *out,
                      ap_error *err)
{
    static const char *const keys[] = {"name", "kind", "target", "description",
                                       "version_policy", "batching", "min_bars", "precision",
                                       "precision_tolerance", "device", NULL};
    static const char *const batch_keys[] = {"max_batch_size", "max_queue_delay_us", NULL};
    json_t *root;
    memset(out, 0, sizeof *out);
    int rc = load_json(buf, len, what, &root, err);
    if (rc != AP_OK)
        return rc;
    char kind[16];
    long long v;
    if ((rc = check_keys(root, keys, what, "", err)) ||
        (rc = get_string(root, "name", NULL, out->name, sizeof out->name, what, err)) ||
        (rc = get_string(root, "kind", NULL, kind, sizeof kind, what, err)) ||
        (rc = get_string(root, "target", NULL, out->target, sizeof out->target, what, err)))
        goto done;
    if (!ap__model_name_ok(out->name)) {
        rc = ap__error_set(err, AP_EFORMAT,
                          "%s: name '%s' is not 1..64 characters of [A-Za-z0-9_.-]", what,
                          out->name);
        goto done;
    }
    out->kind = (ap_model_kind)-1;
    for (int k = 0; k < 4; k++)
        if (!strcmp(kind, kind_names[k]))
            out->kind = (ap_model_kind)k;
    if ((int)out->kind < 0) {
        rc = ap__error_set(err, AP_EFORMAT,
                          "%s: unknown kind '%s' (pattern, regime, ensemble, raw)", what, kind);
        goto done;
    }
    if ((rc = get_int(root, "min_bars", 0, 0, 1 << 24, &v, what, err)) ||
        (rc = parse_precision(root, out, what, err)) ||
        (rc = parse_device(root, out, what, err)))
        goto done;
    out->min_bars = (uint32_t)v;
    const json_t *d = json_object_get(root, "description");
    if (d && !json_is_string(d)) {
        rc = ap__error_set(err, AP_EFORMAT, "%s: \"description\" must be a string", what);
        goto done;
    }
    const json_t *pol = json_object_get(root, "version_policy");
    if (pol && !(json_is_string(pol) && !strcmp(json_string_value(pol), "latest"))) {
        static const char *const pol_keys[] = {"pinned", NULL};
        if (!json_is_object(pol) || !json_object_get(pol, "pinned")) {
            rc = ap__error_set(err, AP_EFORMAT,
                              "%s: \"version_policy\" must be \"latest\" or {\"pinned\": N}",
                              what);
            goto done;
        }
        if ((rc = check_keys(pol, pol_keys, what, " in version_policy", err)) ||
            (rc = get_int(pol, "pinned", 0, 1, UINT32_MAX, &v, what, err)))
            goto done;
        out->pinned_version = (uint32_t)v;
    }
    const json_t *b = json_object_get(root, "batching");
    json_t *empty = json_object();
    if (!b)
        b = empty;
    if (!json_is_object(b))
        rc = ap__error_set(err, AP_EFORMAT, "%s: \"batching\" must be an object", what);
    if (!rc)
        rc = check_keys(b, batch_keys, what, " in batching", err);
    if (!rc)
        rc = get_int(b, "max_batch_size", 64, 1, 65536, &v, what, err);
    if (!rc) {
        out->max_batch_size = (int)v;
        rc = get_int(b, "max_queue_delay_us", 1000, 0, 10000000, &v, what, err);
    }
    if (!rc)
        out->max_queue_delay_us = (uint32_t)v;
    json_decref(empty);
done:
    json_decref(root);
    return rc;
}

void ap__version_spec_free(ap_version_spec *s)
{
    if (!s)
        return;
    for (int i = 0; s->inputs && i < s->num_inputs; i++)
        free(s->inputs[i]);
    free(s->inputs);
    free(s->feature_idx);
    ap__pipeline_free(s->pipeline);
    free(s->coef);
    memset(s, 0, sizeof *s);
}

/* An array of 1..max distinct-or-not names (strings) into a malloc'd list. */
static int get_names(const json_t *arr, int max, const char *what, const char *key,
                     ap_version_spec *s, ap_error *err)
{
    size_t n = json_array_size(arr);
    if (!json_is_array(arr) || n == 0 || n > (size_t)max)
        return ap__error_set(err, AP_EFORMAT, "%s: \"%s\" must be an array of 1..%d names", what,
                            key, max);
    s->inputs = calloc(n, sizeof *s->inputs);
    if (!s->inputs)
        return ap__error_set(err, AP_ENOMEM, "%s: out of memory", what);
    s->num_inputs = (int)n;
    for (size_t i = 0; i < n; i++) {
        const json_t *x = json_array_get(arr, i);
        const char *str = json_string_value(x);
        if (!str || strlen(str) != json_string_length(x))
            return ap__error_set(err, AP_EFORMAT, "%s: %s[%zu] is not a string", what, key, i);
        if (!(s->inputs[i] = strdup(str)))
            return ap__error_set(err, AP_ENOMEM, "%s: out of memory", what);
    }
    return AP_OK;
}

static int parse_confidence(const json_t *root, int def, int ensemble, const char *what,
                            int *out, ap_error *err)
{
    char name[32];
    int rc = get_string(root, "confidence", conf_names[def], name, sizeof name, what, err);
    if (rc != AP_OK)
        return rc;
    for (int c = 0; c < 3; c++)
        if (!strcmp(name, conf_names[c])) {
            if ((c == AP_CONF_MEMBER_STD) != ensemble)
                break;
            *out = c;
            return AP_OK;
        }
    return ap__error_set(err, AP_EFORMAT,
                        ensemble ? "%s: confidence '%s': an ensemble's confidence is member_std"
                                 : "%s: unknown confidence '%s' (max_probability, margin)",
                        what, name);
}

static int parse_ensemble(const json_t *root, const char *what, ap_version_spec *s,
                          ap_error *err)
{
    static const char *const keys[] = {"members", "combiner", "confidence", NULL};
    static const char *const comb_keys[] = {"type", "coefficients", "intercept", "weights",
                                            NULL};
    int rc;
    if ((rc = check_keys(root, keys, what, "", err)) ||
        (rc = get_names(json_object_get(root, "members"), AP_MAX_MEMBERS, what, "members", s,
                        err)) ||
        (rc = parse_confidence(root, AP_CONF_MEMBER_STD, 1, what, &s->confidence, err)))
        return rc;
    for (int i = 0; i < s->num_inputs; i++) {
        if (!ap__model_name_ok(s->inputs[i]))
            return ap__error_set(err, AP_EFORMAT, "%s: members[%d] '%s' is not a model name",
                                what, i, s->inputs[i]);
        for (int j = 0; j < i; j++)
            if (!strcmp(s->inputs[i], s->inputs[j]))
                return ap__error_set(err, AP_EFORMAT, "%s: member '%s' is listed twice", what,
                                    s->inputs[i]);
    }
    const json_t *c = json_object_get(root, "combiner");
    if (!json_is_object(c))
        return ap__error_set(err, AP_EFORMAT, "%s: missing \"combiner\" object", what);
    char type[32];
    if ((rc = check_keys(c, comb_keys, what, " in combiner", err)) ||
        (rc = get_string(c, "type", NULL, type, sizeof type, what, err)))
        return rc;
    if (!strcmp(type, "logistic")) {
        s->combiner = AP_COMBINE_LOGISTIC;
        const json_t *b = json_object_get(c, "intercept");
        if (json_object_get(c, "weights") || !json_is_number(b) ||
            !isfinite(json_number_value(b)))
            return ap__error_set(err, AP_EFORMAT,
                                "%s: a logistic combiner has \"coefficients\" (one per member) "
                                "and a finite \"intercept\"", what);
        s->intercept = json_number_value(b);
        return ap__json_doubles(json_object_get(c, "coefficients"), s->num_inputs, 0, what,
                               "combiner.coefficients", &s->coef, NULL, err);
    }
    if (!strcmp(type, "weighted_mean")) {
        s->combiner = AP_COMBINE_WEIGHTED_MEAN;
        if (json_object_get(c, "coefficients") || json_object_get(c, "intercept"))
            return ap__error_set(err, AP_EFORMAT,
                                "%s: a weighted_mean combiner has only \"weights\"", what);
        rc = ap__json_doubles(json_object_get(c, "weights"), s->num_inputs, 0, what,
                             "combiner.weights", &s->coef, NULL, err);
        double sum = 0;
        for (int i = 0; rc == AP_OK && i < s->num_inputs; i++) {
            if (s->coef[i] < 0)
                return ap__error_set(err, AP_EFORMAT, "%s: combiner.weights[%d] is negative",
                                    what, i);
            sum += s->coef[i];
        }
        if (rc == AP_OK && !(sum > 0))
            rc = ap__error_set(err, AP_EFORMAT, "%s: combiner.weights sum to 0", what);
        return rc;
    }
    return ap__error_set(err, AP_EFORMAT,
                        "%s: unknown combiner type '%s' (logistic, weighted_mean)", what, type);
}

static int parse_single(const json_t *root, ap_model_kind kind, const char *what,
                        ap_version_spec *s, ap_error *err)
{
    static const char *const keys[] = {"format", "file", "feature_set", "features",
                                       "input_width", "pipeline", "output_index", "confidence",
                                       NULL};
    int rc;
    long long v;
    if ((rc = check_keys(root, keys, what, "", err)) ||
        (rc = get_string(root, "format", NULL, s->format, sizeof s->format, what, err)) ||
        (rc = get_string(root, "file", NULL, s->file, sizeof s->file, what, err)) ||
        (rc = parse_confidence(root, AP_CONF_MAX_PROBABILITY, 0, what, &s->confidence, err)) ||
        (rc = get_int(root, "output_index", 0, 0, 65535, &v, what, err)))
        return rc;
    s->output_index = (int)v;
    /* the model file stays inside its version folder */
    if (!s->file[0] || strchr(s->file, '/') || !strcmp(s->file, ".") || !strcmp(s->file, ".."))
        return ap__error_set(err, AP_EFORMAT,
                            "%s: \"file\" must be a file name inside the version folder", what);
    if (kind == AP_MODEL_RAW) {
        if (json_object_get(root, "features") || json_object_get(root, "feature_set"))
            return ap__error_set(err, AP_EFORMAT,
                                "%s: a raw model has \"input_width\", not features", what);
        if (!json_object_get(root, "input_width"))
            return ap__error_set(err, AP_EFORMAT, "%s: missing \"input_width\"", what);
        if ((rc = get_int(root, "input_width", 0, 1, AP_MAX_MODEL_INPUTS, &v, what, err)))
            return rc;
        s->num_inputs = (int)v;
    } else {
        char set[32];
        if (json_object_get(root, "input_width"))
            return ap__error_set(err, AP_EFORMAT,
                                "%s: \"input_width\" is for raw models; this one names features",
                                what);
        if ((rc = get_string(root, "feature_set", NULL, set, sizeof set, what, err)))
            return rc;
        if (strcmp(set, "alphapulse-v1"))
            return ap__error_set(err, AP_EUNSUPPORTED,
                                "%s: unknown feature_set '%s' (alphapulse-v1)", what, set);
        if ((rc = get_names(json_object_get(root, "features"), AP_MAX_MODEL_INPUTS, what,
                            "features", s, err)))
            return rc;
        s->feature_idx = malloc((size_t)s->num_inputs * sizeof *s->feature_idx);
        if (!s->feature_idx)
            return ap__error_set(err, AP_ENOMEM, "%s: out of memory", what);
        for (int i = 0; i < s->num_inputs; i++)
            if ((s->feature_idx[i] = ap_feature_index(s->inputs[i])) < 0)
                return ap__error_set(err, AP_ENOTFOUND,
                                    "%s: features[%d] '%s' is not an alphapulse-v1 feature",
                                    what, i, s->inputs[i]);
    }
    return ap__pipeline_parse(json_object_get(root, "pipeline"), s->num_inputs, what,
                             &s->pipeline, err);
}

int ap__version_spec_parse(const char *buf, size_t len, ap_model_kind kind, const char *what,
                          ap_version_spec *out, ap_error *err)
{
    json_t *root;
    memset(out, 0, sizeof *out);
    out->output_index = -1;
    int rc = load_json(buf, len, what, &root, err);
    if (rc != AP_OK)
        return rc;
    rc = kind == AP_MODEL_ENSEMBLE ? parse_ensemble(root, what, out, err)
                                   : parse_single(root, kind, what, out, err);
    json_decref(root);
    if (rc != AP_OK)
        ap__version_spec_free(out);
    return rc;
}
