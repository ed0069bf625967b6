/* The format table: tree ensembles through the forest module. */
#include "pipeline/predictor.h"
#include "alphapulse/forest.h"
#include "alphapulse/onnx.h"
#include "common/error.h"

#include <string.h>

/* Both tree formats load by content (XGBoost JSON vs UBJSON is sniffed), then
   check that the file really is of the format the manifest declares: a
   LightGBM file named in an "xgboost" manifest is an error, not a surprise. */
static int forest_load_as(const char *path, const char *source, void **out, ap_error *err)
{
    ap_forest *f;
    *out = NULL;
    int rc = ap_forest_load(path, AP_FORMAT_AUTO, &f, err);
    if (rc != AP_OK)
        return rc;
    if (strcmp(ap_forest_source(f), source) != 0) {
        rc = ap_error_set(err, AP_EFORMAT, "%s: is a %s model, but the manifest says %s", path,
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

static int forest_predict(const void *impl, const double *X, size_t nrows, double *out,
                          ap_error *err)
{
    ap_forest_predict(impl, X, nrows, out, 0); /* cannot fail */
    return AP_OK;
}

static void forest_free(void *impl) { ap_forest_free(impl); }

static void forest_describe(const void *impl, ap_predictor_desc *d)
{
    d->num_features = ap_forest_num_features(impl);
    d->num_outputs = ap_forest_num_outputs(impl, 0);
    d->num_trees = ap_forest_num_trees(impl);
    d->detail = ap_forest_objective(impl);
}

static const char *forest_feature_name(const void *impl, int i)
{
    return ap_forest_feature_name(impl, i);
}

/* ONNX graphs: backend from the registry's options (docs/ONNX.md). */
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
    d->num_trees = ap_onnx_num_trees(impl);
    d->detail = ap_onnx_summary(impl);
}

static const char *onnx_feature_name(const void *impl, int i) { return NULL; }

static const ap_predictor_ops predictors[] = {
    {"xgboost", xgboost_load, forest_predict, forest_free, forest_describe, forest_feature_name},
    {"lightgbm", lightgbm_load, forest_predict, forest_free, forest_describe,
     forest_feature_name},
    {"onnx", onnx_load, onnx_predict, onnx_free, onnx_describe, onnx_feature_name},
};

const ap_predictor_ops *ap_predictor_find(const char *format)
{
    for (size_t i = 0; i < sizeof predictors / sizeof predictors[0]; i++)
        if (!strcmp(predictors[i].format, format))
            return &predictors[i];
    return NULL;
}

const char *ap_predictor_formats(void) { return "xgboost, lightgbm, onnx"; }
