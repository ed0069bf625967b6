/*
 * Building one version of a model completely before anyone sees it: the
 * manifest and version.json, then the predictor (model file loaded through
 * the format table, widths and feature names checked against the spec) or
 * an ensemble's members, then warm-up predictions. The registry publishes
 * what this returns; nothing here touches a published version.
 */
#include "registry/load.h"
#include "registry/predict.h"
#include "registry/repo.h"
#include "alphapulse/features.h"
#include "common/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int attach_predictor(const ap_registry *reg, ap_model *m, const char *dir,
                            const char *what, ap_error *err)
{
    char path[AP_PATH_MAX_LEN];
    const ap_version_spec *s = &m->spec;
    m->ops = ap__predictor_find(s->format);
    if (!m->ops)
        return ap__error_set(err, AP_EUNSUPPORTED, "%s: unknown format '%s' (%s)", what,
                            s->format, ap__predictor_formats());
    int rc = ap__repo_join(path, what, err, "%s/%s", dir, s->file);
    struct stat st;
    if (rc == AP_OK && stat(path, &st) != 0)
        rc = ap__error_set(err, AP_EIO, "%s: model file '%s' is missing", what, s->file);
    if (rc == AP_OK)
        rc = ap__repo_inside(reg->real_root, path, what, err);
    if (rc == AP_OK)
        rc = m->ops->load(path, &reg->opt, &m->impl, err);
    if (rc != AP_OK) {
        m->ops = NULL;
        return rc;
    }
    m->ops->describe(m->impl, &m->desc);
    m->num_outputs = m->desc.num_outputs;
    int width = ap__pipeline_out_width(s->pipeline);
    if (width != m->desc.num_features)
        return ap__error_set(err, AP_EFORMAT,
                            "%s: width mismatch: %d inputs -> pipeline [%s] gives %d columns, "
                            "but %s reads %d features",
                            what, s->num_inputs, ap__pipeline_describe(s->pipeline), width,
                            s->file, m->desc.num_features);
    if (s->output_index >= m->num_outputs)
        return ap__error_set(err, AP_ERANGE, "%s: output_index %d, but %s has %d output(s)",
                            what, s->output_index, s->file, m->num_outputs);
    /* when columns pass through unchanged, names stored in the model file
       must be the manifest's features in the same order */
    for (int j = 0; s->inputs && ap__pipeline_keeps_columns(s->pipeline) && j < width; j++) {
        const char *fn = m->ops->feature_name(m->impl, j);
        if (fn && strcmp(fn, s->inputs[j]))
            return ap__error_set(err, AP_EFORMAT,
                                "%s: features[%d] is '%s' but %s names its feature %d '%s'",
                                what, j, s->inputs[j], s->file, j, fn);
    }
    return AP_OK;
}

/* Under admin: members must be loaded feature models. */
static int attach_members(const ap_registry *reg, ap_model *m, const char *what, ap_error *err)
{
    const ap_version_spec *s = &m->spec;
    m->members = calloc((size_t)s->num_inputs, sizeof *m->members);
    if (!m->members)
        return ap__error_set(err, AP_ENOMEM, "%s: out of memory", what);
    for (int k = 0; k < s->num_inputs; k++) {
        ap_entry *e = ap__registry_find_entry(reg, s->inputs[k]);
        if (!e || !e->current)
            return ap__error_set(err, AP_ENOTFOUND, "%s: member '%s' is not a loaded model", what,
                                s->inputs[k]);
        ap_model_kind kind = e->current->man.kind;
        if (kind != AP_MODEL_PATTERN && kind != AP_MODEL_REGIME)
            return ap__error_set(err, AP_EINVAL,
                                "%s: member '%s' is a %s model; members are pattern or regime "
                                "models", what, s->inputs[k], ap__model_kind_name(kind));
        m->members[k] = e;
    }
    m->num_outputs = s->num_inputs;
    snprintf(m->describe, sizeof m->describe, "%s(%d members)",
             s->combiner == AP_COMBINE_LOGISTIC ? "logistic" : "weighted_mean", s->num_inputs);
    return AP_OK;
}

/* Precision, before warm-up (which then runs what will serve): the
   manifest's request, "auto" by the registry's mixed_precision. A predictor
   that cannot be reduced stays full and the note says why: not a load
   failure. An approximate engine (FP16 dense layers) is measured on the
   warm-up rows as the predictor sees them: a NaN row and a zero row after
   feature selection and the pipeline. */
static int settle_precision(const ap_registry *reg, ap_model *m, const char *what, ap_error *err)
{
    ap_precision want = m->man.precision;
    if (want == AP_PRECISION_AUTO)
        want = reg->opt.mixed_precision ? AP_PRECISION_REDUCED : AP_PRECISION_FULL;
    char *note = m->precision_note;
    const size_t cap = sizeof m->precision_note;
    m->precision = AP_PRECISION_FULL;
    if (!m->ops) { /* an ensemble: its members settled their own */
        if (want == AP_PRECISION_REDUCED)
            snprintf(note, cap, "an ensemble's combiner runs at full precision (its members "
                                "carry their own)");
        return AP_OK;
    }
    if (want == AP_PRECISION_REDUCED && (!m->ops->set_precision || !m->ops->precision)) {
        snprintf(note, cap, "%s models have no reduced precision", m->ops->title);
    } else if (want == AP_PRECISION_REDUCED) {
        const int full = m->man.kind != AP_MODEL_RAW;
        const size_t in = (size_t)(full ? ap_feature_count() : m->spec.num_inputs);
        const size_t w = (size_t)ap_model_transform_width(m);
        double *X = malloc(2 * in * sizeof *X), *Y = malloc(2 * w * sizeof *Y);
        int rc = X && Y ? AP_OK : ap__error_set(err, AP_ENOMEM, "%s: out of memory", what);
        for (size_t j = 0; rc == AP_OK && j < in; j++) {
            X[j] = NAN;
            X[in + j] = 0.0;
        }
        if (rc == AP_OK)
            rc = ap_model_transform(m, X, 2, full, Y, err);
        if (rc == AP_OK) {
            ap_error why = {0};
            double dev = 0.0;
            if (m->ops->set_precision(m->impl, AP_PRECISION_REDUCED, m->man.precision_tolerance,
                                      Y, 2, &dev, &why) != AP_OK)
                snprintf(note, cap, "%s", why.msg[0] ? why.msg : "refused by the engine");
            m->precision_deviation = dev;
        }
        free(X);
        free(Y);
        if (rc != AP_OK)
            return rc;
    }
    if (m->ops->precision)
        m->precision = m->ops->precision(m->impl);
    if (want == AP_PRECISION_REDUCED && m->precision != AP_PRECISION_REDUCED && !note[0])
        snprintf(note, cap, "the engine stayed at full precision");
    if (m->ops->model_bytes) {
        m->bytes_full = m->ops->model_bytes(m->impl, AP_PRECISION_FULL);
        m->bytes_reduced = m->ops->model_bytes(m->impl, AP_PRECISION_REDUCED);
    }
    if (m->ops->node_bytes)
        m->node_bytes = m->ops->node_bytes(m->impl, m->precision);
    return AP_OK;
}

/* Device, after precision and before warm-up: the manifest's, with the
   registry's gpu_min_batch_rows for "auto". A model that cannot go to the
   GPU (no device, a format or node kind without a GPU path) runs on the CPU
   and the description says why; it is not a load failure, "gpu" included
   (a repository stays servable on a machine without a GPU; the CLI's
   --device gpu is the strict one). */
static void settle_device(const ap_registry *reg, ap_model *m)
{
    const size_t cap = sizeof m->device;
    ap_device want = m->man.device;
    m->gpu_min_rows = 0;
    if (want == AP_DEVICE_CPU) {
        snprintf(m->device, cap, "cpu (requested)");
        return;
    }
    if (!m->ops) {
        snprintf(m->device, cap, "cpu (an ensemble's combiner; its members carry their own)");
        return;
    }
    if (!m->ops->set_device) {
        snprintf(m->device, cap, "cpu (%s models have no GPU path)", m->ops->title);
        return;
    }
    ap_error why = {0};
    if (m->ops->set_device(m->impl, want, want == AP_DEVICE_AUTO ? reg->opt.gpu_min_batch_rows : 0,
                           &why) != AP_OK) {
        const char *msg = why.msg;
        if (!strncmp(msg, "device gpu: ", 12)) /* the request is said by device_requested */
            msg += 12;
        snprintf(m->device, cap, "cpu (%s)", msg);
        return;
    }
    const char *note = "";
    ap_device d = m->ops->device(m->impl, &m->gpu_min_rows, &note);
    snprintf(m->device, cap, "%s (%s)", d == AP_DEVICE_GPU ? "gpu" : "cpu",
             note[0] ? note : "requested");
}

/* Warm-up: a NaN row and a zero row through the whole path. Touches every
   page of the model once and proves it predicts finite values. */
static int warm_up(const ap_model *m, const char *what, ap_error *err)
{
    int F = ap_feature_count();
    int full = m->man.kind != AP_MODEL_RAW;
    int width = full ? F : m->spec.num_inputs;
    double *row = malloc((size_t)width * sizeof *row);
    double *outs = malloc((size_t)m->num_outputs * sizeof *outs);
    int rc = row && outs ? AP_OK : ap__error_set(err, AP_ENOMEM, "%s: out of memory", what);
    for (int pass = 0; rc == AP_OK && pass < 2; pass++) {
        double pred, conf;
        for (int j = 0; j < width; j++)
            row[j] = pass ? 0.0 : NAN;
        rc = ap__model_predict_impl(m, row, 1, full, &pred, &conf, outs, err);
        if (rc == AP_OK && (!isfinite(pred) || !isfinite(conf)))
            rc = ap__error_set(err, AP_EFORMAT,
                              "%s: warm-up prediction on a %s row is not finite (%g)", what,
                              pass ? "zero" : "NaN", pred);
    }
    free(row);
    free(outs);
    return rc;
}

int ap__version_build(const ap_registry *reg, const char *name, uint32_t version, ap_entry *e,
                     ap_model **out, ap_error *err)
{
    char dir[AP_PATH_MAX_LEN], path[AP_PATH_MAX_LEN], what[AP_PATH_MAX_LEN];
    char *buf = NULL;
    size_t len;
    *out = NULL;
    ap_model *m = calloc(1, sizeof *m);
    if (!m)
        return ap__error_set(err, AP_ENOMEM, "%s: out of memory", name);
    atomic_init(&m->refs, 1);
    m->entry = e;
    m->precision = AP_PRECISION_FULL;
    int rc = ap__repo_join(dir, name, err, "%s/%s", reg->root, name);
    if (rc == AP_OK)
        rc = ap__repo_join(path, name, err, "%s/manifest.json", dir);
    if (rc == AP_OK)
        rc = ap__repo_join(what, name, err, "%s/manifest.json", name);
    if (rc == AP_OK)
        rc = ap__repo_inside(reg->real_root, path, what, err);
    if (rc == AP_OK)
        rc = ap__repo_read_small(path, what, &buf, &len, err);
    if (rc == AP_OK)
        rc = ap__manifest_parse(buf, len, what, &m->man, err);
    free(buf);
    buf = NULL;
    if (rc == AP_OK && strcmp(m->man.name, name))
        rc = ap__error_set(err, AP_EFORMAT, "%s: name '%s' differs from its folder '%s'", what,
                          m->man.name, name);
    if (rc == AP_OK && !version)
        version = m->man.pinned_version;
    if (rc == AP_OK && !version)
        rc = ap__repo_highest_version(dir, name, &version, err);
    m->version = version;
    if (rc == AP_OK)
        rc = ap__repo_join(dir, name, err, "%s/%s/%u", reg->root, name, version);
    if (rc == AP_OK)
        rc = ap__repo_join(path, name, err, "%s/version.json", dir);
    if (rc == AP_OK)
        rc = ap__repo_join(what, name, err, "%s/%u/version.json", name, version);
    struct stat st;
    if (rc == AP_OK && (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)))
        rc = ap__error_set(err, AP_ENOTFOUND, "%s: version %u: no folder %s/%u", name, version,
                          name, version);
    if (rc == AP_OK)
        rc = ap__repo_inside(reg->real_root, path, what, err);
    if (rc == AP_OK)
        rc = ap__repo_read_small(path, what, &buf, &len, err);
    if (rc == AP_OK)
        rc = ap__version_spec_parse(buf, len, m->man.kind, what, &m->spec, err);
    free(buf);
    if (rc == AP_OK && m->man.kind == AP_MODEL_ENSEMBLE) {
        rc = attach_members(reg, m, what, err);
    } else if (rc == AP_OK) {
        rc = attach_predictor(reg, m, dir, what, err);
        snprintf(m->describe, sizeof m->describe, "%s", ap__pipeline_describe(m->spec.pipeline));
    }
    if (rc == AP_OK && m->spec.pipeline)
        m->scratch_per_row = 2 * ap__pipeline_max_width(m->spec.pipeline) + m->num_outputs;
    if (rc == AP_OK)
        rc = settle_precision(reg, m, what, err);
    if (rc == AP_OK)
        settle_device(reg, m);
    if (rc == AP_OK)
        rc = warm_up(m, what, err);
    if (rc != AP_OK) {
        ap__model_free_now(m);
        return rc;
    }
    *out = m;
    return AP_OK;
}
