/*
 * The format table: tree ensembles through the forest module, ONNX graphs
 * through the onnx module. Owns nothing but the table; each loaded
 * predictor (impl) is owned by whoever called load and freed with free.
 */
#include "pipeline/predictor.h"
#include "alphapulse/forest.h"
#include "alphapulse/onnx.h"
#include "common/error.h"

#include <stdio.h>
#include <string.h>

/* ---- tree ensembles ----------------------------------------------------- */

/* A tree file by content (XGBoost JSON vs UBJSON vs LightGBM text is
   sniffed); source: the library the file must come from, or NULL for any. */
static int forest_load_as(const char *path, const char *source, void **out, ap_error *err)
{
    ap_forest *f;
    *out = NULL;
    int rc = ap_forest_load(path, AP_FORMAT_AUTO, &f, err);
    if (rc != AP_OK)
        return rc;
    /* a LightGBM file named in an "xgboost" manifest is an error, not a surprise */
    if (source && strcmp(ap_forest_source(f), source) != 0) {
        rc = ap__error_set(err, AP_EFORMAT, "%s: is a %s model, but the manifest says %s", path,
                          ap_forest_source(f), source);
        ap_forest_free(f);
        return rc;
    }
    *out = f;
    return AP_OK;
}

static int xgboost_load(const char *path, const ap_registry_options *opt, void **out,
                        ap_error *err)
{
    return forest_load_as(path, "xgboost", out, err);
}

static int lightgbm_load(const char *path, const ap_registry_options *opt, void **out,
                         ap_error *err)
{
    return forest_load_as(path, "lightgbm", out, err);
}

static int any_tree_load(const char *path, const ap_registry_options *opt, void **out,
                         ap_error *err)
{
    return forest_load_as(path, NULL, out, err);
}

static int forest_predict(const void *impl, const double *X, size_t nrows, double *out,
                          ap_error *err)
{
    ap_forest_predict(impl, X, nrows, out, 0); /* cannot fail */
    return AP_OK;
}

static int forest_predict_raw(const void *impl, const double *X, size_t nrows, double *out,
                              ap_error *err)
{
    ap_forest_predict(impl, X, nrows, out, AP_PREDICT_RAW); /* cannot fail */
    return AP_OK;
}

static void forest_free(void *impl) { ap_forest_free(impl); }

static void forest_describe(const void *impl, ap_predictor_desc *d)
{
    d->num_features = ap_forest_num_features(impl);
    d->num_outputs = ap_forest_num_outputs(impl, 0);
    d->num_raw_outputs = ap_forest_num_outputs(impl, AP_PREDICT_RAW);
    d->num_trees = ap_forest_num_trees(impl);
    d->float32 = ap_forest_is_float32(impl);
    d->detail = ap_forest_objective(impl);
}

static const char *forest_feature_name(const void *impl, int i)
{
    return ap_forest_feature_name(impl, i);
}

/* Quantized trees are exact by construction (or refused): nothing to
   measure on the rows. */
static int forest_set_precision(void *impl, ap_precision p, double tolerance, const double *X,
                                size_t nrows, double *max_dev, ap_error *err)
{
    if (max_dev)
        *max_dev = 0;
    return ap_forest_set_precision(impl, p, err);
}

static ap_precision forest_precision(const void *impl) { return ap_forest_precision(impl); }

static size_t forest_model_bytes(const void *impl, ap_precision p)
{
    return ap_forest_model_bytes(impl, p);
}

static int forest_node_bytes(const void *impl, ap_precision p)
{
    return ap_forest_node_bytes(impl, p);
}

static int forest_set_device(void *impl, ap_device d, size_t min_rows, ap_error *err)
{
    return ap_forest_set_device(impl, d, min_rows, err);
}

static ap_device forest_device(const void *impl, size_t *min_rows, const char **note)
{
    *min_rows = ap_forest_gpu_min_rows(impl);
    *note = ap_forest_device_note(impl);
    return ap_forest_device(impl);
}

/* ---- ONNX graphs: backend from the options (docs/ONNX.md) -------------- */

static int onnx_load(const char *path, const ap_registry_options *opt, void **out, ap_error *err)
{
    *out = NULL;
    ap_onnx *m;
    int rc = ap_onnx_load(path, &opt->onnx, &m, err);
    if (rc == AP_OK)
        *out = m;
    return rc;
}

/* The native plan cannot fail; ONNX Runtime can (a kernel refusing the
   rows it is given): its error goes back to the caller. */
static int onnx_predict(const void *impl, const double *X, size_t nrows, double *out,
                        ap_error *err)
{
    return ap_onnx_predict(impl, X, nrows, out, err);
}

static void onnx_free(void *impl) { ap_onnx_free(impl); }

static void onnx_describe(const void *impl, ap_predictor_desc *d)
{
    d->num_features = ap_onnx_num_features(impl);
    d->num_outputs = ap_onnx_num_outputs(impl);
    d->num_raw_outputs = 0;
    d->num_trees = ap_onnx_num_trees(impl);
    d->float32 = ap_onnx_is_float32(impl);
    d->detail = ap_onnx_summary(impl);
}

static const char *onnx_feature_name(const void *impl, int i) { return NULL; }

static int onnx_set_precision(void *impl, ap_precision p, double tolerance, const double *X,
                              size_t nrows, double *max_dev, ap_error *err)
{
    return ap_onnx_set_precision(impl, p, tolerance, X, nrows, max_dev, err);
}

static ap_precision onnx_precision(const void *impl) { return ap_onnx_precision(impl); }

static size_t onnx_model_bytes(const void *impl, ap_precision p)
{
    return ap_onnx_model_bytes(impl, p);
}

/* The graph's forests have no public node layout: 0 (docs/SERVER.md). */
static int onnx_node_bytes(const void *impl, ap_precision p) { return 0; }

/* ---- the table ---------------------------------------------------------- */

/* The hooks both tree formats share (they differ only in the source check). */
#define TREE_HOOKS                                                     \
    .predict = forest_predict, .predict_raw = forest_predict_raw,      \
    .free = forest_free, .describe = forest_describe,                  \
    .feature_name = forest_feature_name,                               \
    .set_precision = forest_set_precision, .precision = forest_precision, \
    .model_bytes = forest_model_bytes, .node_bytes = forest_node_bytes, \
    .set_device = forest_set_device, .device = forest_device

static const ap_predictor_ops xgboost_ops = {
    .format = "xgboost", .title = "XGBoost", .load = xgboost_load, TREE_HOOKS};
static const ap_predictor_ops lightgbm_ops = {
    .format = "lightgbm", .title = "LightGBM", .load = lightgbm_load, TREE_HOOKS};
/* Not a manifest format: a tree file of either library, as its content says. */
static const ap_predictor_ops any_tree_ops = {
    .format = "tree", .title = "tree", .load = any_tree_load, TREE_HOOKS};
static const ap_predictor_ops onnx_ops = {
    .format = "onnx", .title = "ONNX", .uses_onnx_options = 1, .load = onnx_load,
    .predict = onnx_predict, .predict_raw = NULL, .free = onnx_free,
    .describe = onnx_describe, .feature_name = onnx_feature_name,
    .set_precision = onnx_set_precision, .precision = onnx_precision,
    .model_bytes = onnx_model_bytes, .node_bytes = onnx_node_bytes};

/* The formats a manifest may name. */
static const ap_predictor_ops *const predictors[] = {&xgboost_ops, &lightgbm_ops, &onnx_ops};

const ap_predictor_ops *ap__predictor_find(const char *format)
{
    for (size_t i = 0; i < sizeof predictors / sizeof predictors[0]; i++)
        if (!strcmp(predictors[i]->format, format))
            return predictors[i];
    return NULL;
}

const ap_predictor_ops *ap__predictor_for_file(const char *path)
{
    size_t n = strlen(path);
    if (n >= 5 && !strcmp(path + n - 5, ".onnx"))
        return &onnx_ops;
    unsigned char head[2];
    FILE *fp = fopen(path, "rb");
    size_t got = fp ? fread(head, 1, sizeof head, fp) : 0;
    if (fp)
        fclose(fp);
    return ap_onnx_sniff(head, got) ? &onnx_ops : &any_tree_ops;
}

const char *ap__predictor_formats(void) { return "xgboost, lightgbm, onnx"; }
