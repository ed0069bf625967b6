/* ap_forest: format detection, loading, validation, compile; the public API. */
#include "forest/forest_internal.h"
#include "forest/quant.h"
#include "common/csv.h"
#include "common/error.h"

#include <stdlib.h>
#include <string.h>

static ap_forest_format sniff(const unsigned char *b, size_t len)
{
    size_t i = 0;
    while (i < len && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n'))
        i++;
    if (i < len && b[i] == '{') {
        /* JSON: next non-space is '"' or '}'. UBJSON: a type marker byte. */
        size_t j = i + 1;
        while (j < len && (b[j] == ' ' || b[j] == '\t' || b[j] == '\r' || b[j] == '\n'))
            j++;
        if (j < len && (b[j] == '"' || b[j] == '}'))
            return AP_FORMAT_XGBOOST_JSON;
        return AP_FORMAT_XGBOOST_UBJ;
    }
    return AP_FORMAT_LIGHTGBM;
}

int ap_forest_load_mem(const void *buf, size_t len, ap_forest_format format, const char *name,
                       ap_forest **out, ap_error *err)
{
    *out = NULL;
    if (!name)
        name = "model";
    if (!buf)
        return ap__error_set(err, AP_EINVAL, "%s: no data", name);
    if (len == 0)
        return ap__error_set(err, AP_EFORMAT, "%s: empty model file", name);
    if (len > AP_FOREST_MAX_FILE)
        return ap__error_set(err, AP_ERANGE, "%s: model larger than %zu bytes", name,
                            (size_t)AP_FOREST_MAX_FILE);
    /* text loaders want a NUL-terminated buffer: make our own copy */
    char *copy = malloc(len + 1);
    if (!copy)
        return ap__error_set(err, AP_ENOMEM, "%s: out of memory", name);
    memcpy(copy, buf, len);
    copy[len] = '\0';

    ap_forest *f = calloc(1, sizeof *f);
    if (!f) {
        free(copy);
        return ap__error_set(err, AP_ENOMEM, "%s: out of memory", name);
    }
    ap__forest_ir_init(&f->ir);
    if (format == AP_FORMAT_AUTO)
        format = sniff((const unsigned char *)copy, len);
    int rc;
    switch (format) {
    case AP_FORMAT_XGBOOST_JSON:
        rc = ap__xgboost_load_json(copy, len, name, &f->ir, err);
        break;
    case AP_FORMAT_XGBOOST_UBJ:
        rc = ap__xgboost_load_ubj((const unsigned char *)copy, len, name, &f->ir, err);
        break;
    case AP_FORMAT_LIGHTGBM:
        rc = ap__lightgbm_load(copy, len, name, &f->ir, err);
        break;
    default:
        rc = ap__error_set(err, AP_EINVAL, "%s: unknown model format %d", name, (int)format);
    }
    free(copy);
    if (rc == AP_OK)
        rc = ap__forest_ir_validate(&f->ir, name, err);
    if (rc == AP_OK)
        rc = ap__engine_compile(&f->ir, &f->engine, err);
    if (rc != AP_OK) {
        ap_forest_free(f);
        return rc;
    }
    *out = f;
    return AP_OK;
}

int ap__forest_from_ir(ap_forest_ir *ir, const char *name, ap_forest **out, ap_error *err)
{
    *out = NULL;
    ap_forest *f = calloc(1, sizeof *f);
    if (!f) {
        ap__forest_ir_free(ir);
        return ap__error_set(err, AP_ENOMEM, "%s: out of memory", name);
    }
    f->ir = *ir;  /* move: the forest owns the IR's arrays from here on */
    ap__forest_ir_init(ir);
    int rc = ap__forest_ir_validate(&f->ir, name, err);
    if (rc == AP_OK)
        rc = ap__engine_compile(&f->ir, &f->engine, err);
    if (rc != AP_OK) {
        ap_forest_free(f);
        return rc;
    }
    *out = f;
    return AP_OK;
}

int ap_forest_load(const char *path, ap_forest_format format, ap_forest **out, ap_error *err)
{
    char *buf;
    size_t len;
    *out = NULL;
    int rc = ap__read_file(path, AP_FOREST_MAX_FILE, &buf, &len, err);
    if (rc != AP_OK)
        return rc;
    rc = ap_forest_load_mem(buf, len, format, path, out, err);
    free(buf);
    return rc;
}

void ap_forest_free(ap_forest *f)
{
    if (!f)
        return;
    ap__forest_drop_device(f);
    ap__engine_free(f->engine);
    ap__qengine_free(f->quant);
    ap__forest_ir_free(&f->ir);
    free(f);
}

int ap_forest_num_features(const ap_forest *f) { return f->ir.num_features; }
int ap_forest_num_trees(const ap_forest *f) { return f->ir.ntrees; }
int ap_forest_is_float32(const ap_forest *f) { return f->ir.precision == AP_PREC_F32; }
const char *ap_forest_source(const ap_forest *f) { return f->ir.source; }
const char *ap_forest_objective(const ap_forest *f) { return f->ir.objective; }

int ap_forest_num_outputs(const ap_forest *f, unsigned flags)
{
    return (flags & AP_PREDICT_RAW) ? f->ir.num_groups : ap__forest_ir_num_outputs(&f->ir);
}

const char *ap_forest_feature_name(const ap_forest *f, int i)
{
    if (!f->ir.feature_names || i < 0 || i >= f->ir.num_features)
        return NULL;
    return f->ir.feature_names[i];
}

/* Precision: see forest.h. */
int ap_forest_set_precision(ap_forest *f, ap_precision p, ap_error *err)
{
    if (p == AP_PRECISION_FULL || p == AP_PRECISION_AUTO) {
        ap__qengine_free(f->quant);
        f->quant = NULL;
        return AP_OK;
    }
    if (p != AP_PRECISION_REDUCED)
        return ap__error_set(err, AP_EINVAL, "precision %d: expected auto, full or reduced", (int)p);
    if (f->quant)
        return AP_OK;
    return ap__qengine_compile(&f->ir, &f->quant, err);
}

ap_precision ap_forest_precision(const ap_forest *f)
{
    return f->quant ? AP_PRECISION_REDUCED : AP_PRECISION_FULL;
}

size_t ap_forest_model_bytes(const ap_forest *f, ap_precision p)
{
    if (p == AP_PRECISION_REDUCED)
        return f->quant ? ap__qengine_bytes(f->quant) : 0;
    return ap__engine_bytes(f->engine);
}

int ap_forest_node_bytes(const ap_forest *f, ap_precision p)
{
    if (p == AP_PRECISION_REDUCED)
        return f->quant ? ap__qengine_node_bytes(f->quant) : 0;
    return ap__engine_node_bytes(f->engine);
}
