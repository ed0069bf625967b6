/*
 * The predict path of an acquired version and its statistics: select
 * features -> pipeline -> predictor -> prediction + confidence; ensembles
 * combine their members. Depends only on the model structs (model.h), never
 * on the registry catalog. No lock is taken here except the short
 * per-member acquire of ensembles, and small batches run in stack scratch
 * (no allocation). Latency and counts go to the entry's ap_stats.
 */
#include "registry/predict.h"
#include "alphapulse/features.h"
#include "common/error.h"
#include "common/clock.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Stack scratch per call: 16 KiB, so a batcher worker's stack is never a
   concern even with an ensemble frame above a member frame. */
#define STACK_DOUBLES 2048
/* Rows per ensemble chunk: member predictions of a chunk live on the stack. */
#define ENSEMBLE_CHUNK (STACK_DOUBLES / AP_MAX_MEMBERS)

static void stats_record_predict(ap_stats *s, uint64_t ns, size_t rows, int ok)
{
    if (!ok) {
        atomic_fetch_add_explicit(&s->errors, 1, memory_order_relaxed);
        return;
    }
    atomic_fetch_add_explicit(&s->predictions, rows, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->lat_count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->lat_sum_ns, ns, memory_order_relaxed);
    uint64_t cur = atomic_load_explicit(&s->lat_max_ns, memory_order_relaxed);
    while (ns > cur && !atomic_compare_exchange_weak_explicit(&s->lat_max_ns, &cur, ns,
                                                              memory_order_relaxed,
                                                              memory_order_relaxed))
        ;
    /* min starts at 0 meaning "none yet" */
    cur = atomic_load_explicit(&s->lat_min_ns, memory_order_relaxed);
    while ((cur == 0 || ns < cur) &&
           !atomic_compare_exchange_weak_explicit(&s->lat_min_ns, &cur, ns ? ns : 1,
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
    atomic_fetch_add_explicit(&s->lat_buckets[ap_latency_bucket(ns)], 1, memory_order_relaxed);
}

static double confidence_of(const ap_model *m, const double *out, double pred)
{
    if (m->spec.confidence == AP_CONF_MARGIN)
        return fabs(2.0 * pred - 1.0);
    /* max_probability; one output is P(class 1) of a binary model */
    if (m->num_outputs == 1)
        return out[0] > 0.5 ? out[0] : 1.0 - out[0];
    double best = out[0];
    for (int k = 1; k < m->num_outputs; k++)
        if (out[k] > best)
            best = out[k];
    return best;
}

static int predict_single(const ap_model *m, const double *X, size_t nrows, int full,
                          double *pred, double *conf, double *outputs, ap_error *err)
{
    const int nin = m->spec.num_inputs, nout = m->num_outputs;
    const int F = ap_feature_count();
    const size_t per_row = (size_t)m->scratch_per_row;
    double stack[STACK_DOUBLES];
    double *scratch = stack;
    size_t chunk = STACK_DOUBLES / per_row;
    if (chunk == 0) {
        /* a very wide raw model: one heap chunk for the whole call */
        chunk = nrows < 64 ? nrows : 64;
        scratch = malloc(chunk * per_row * sizeof *scratch);
        if (!scratch)
            return ap__error_set(err, AP_ENOMEM, "%s: out of memory", m->entry->name);
    }
    const size_t width = (size_t)ap__pipeline_max_width(m->spec.pipeline);
    for (size_t r0 = 0; r0 < nrows; r0 += chunk) {
        size_t n = nrows - r0 < chunk ? nrows - r0 : chunk;
        double *a = scratch, *b = scratch + chunk * width, *o = b + chunk * width;
        if (full) {
            for (size_t r = 0; r < n; r++)
                for (int j = 0; j < nin; j++)
                    a[r * (size_t)nin + (size_t)j] =
                        X[(r0 + r) * (size_t)F + (size_t)m->spec.feature_idx[j]];
        } else {
            memcpy(a, X + r0 * (size_t)nin, n * (size_t)nin * sizeof *a);
        }
        const double *in = ap__pipeline_run(m->spec.pipeline, a, b, n);
        double *y = outputs ? outputs + r0 * (size_t)nout : o;
        int rc = m->ops->predict(m->impl, in, n, y, err);
        if (rc != AP_OK) {
            if (scratch != stack)
                free(scratch);
            if (err)
                ap__error_prefix(err, "%s: ", m->entry->name);
            return rc;
        }
        for (size_t r = 0; r < n; r++) {
            const double *row = y + r * (size_t)nout;
            double p = row[m->spec.output_index];
            pred[r0 + r] = p;
            if (conf)
                conf[r0 + r] = confidence_of(m, row, p);
        }
    }
    if (scratch != stack)
        free(scratch);
    return AP_OK;
}

int ap_model_transform_width(const ap_model *m)
{
    return m->spec.pipeline ? ap__pipeline_out_width(m->spec.pipeline) : 0;
}

int ap_model_transform(const ap_model *m, const double *X, size_t nrows, int full, double *out,
                       ap_error *err)
{
    if (!m->spec.pipeline)
        return ap__error_set(err, AP_EUNSUPPORTED, "%s: an ensemble has no pipeline",
                            m->entry->name);
    if (full && m->man.kind == AP_MODEL_RAW)
        return ap__error_set(err, AP_EUNSUPPORTED, "%s: a raw model takes its input tensor",
                            m->entry->name);
    const int nin = m->spec.num_inputs, w = ap__pipeline_out_width(m->spec.pipeline);
    const size_t F = (size_t)ap_feature_count();
    const size_t width = (size_t)ap__pipeline_max_width(m->spec.pipeline);
    double *a = malloc(2 * width * sizeof *a);
    if (!a)
        return ap__error_set(err, AP_ENOMEM, "%s: out of memory", m->entry->name);
    for (size_t r = 0; r < nrows; r++) {
        for (int j = 0; j < nin; j++)
            a[j] = full ? X[r * F + (size_t)m->spec.feature_idx[j]]
                        : X[r * (size_t)nin + (size_t)j];
        const double *y = ap__pipeline_run(m->spec.pipeline, a, a + width, 1);
        memcpy(out + r * (size_t)w, y, (size_t)w * sizeof *y);
    }
    free(a);
    return AP_OK;
}

/* p: nm member predictions of one row, in member order. */
static void combine(const ap_model *m, const double *p, double *pred, double *conf)
{
    const int nm = m->spec.num_inputs;
    const double *c = m->spec.coef;
    double acc = 0.0, mean = 0.0, var = 0.0;
    for (int k = 0; k < nm; k++)
        acc += c[k] * p[k];
    if (m->spec.combiner == AP_COMBINE_LOGISTIC) {
        /* sklearn's LogisticRegression: expit(X @ coef + intercept) */
        *pred = 1.0 / (1.0 + exp(-(acc + m->spec.intercept)));
    } else {
        double wsum = 0.0;
        for (int k = 0; k < nm; k++)
            wsum += c[k];
        *pred = acc / wsum;
    }
    /* confidence = 1 - population std of the member predictions (two-pass) */
    for (int k = 0; k < nm; k++)
        mean += p[k];
    mean /= nm;
    for (int k = 0; k < nm; k++)
        var += (p[k] - mean) * (p[k] - mean);
    if (conf)
        *conf = 1.0 - sqrt(var / nm);
}

static int predict_ensemble(const ap_model *m, const double *X, size_t nrows, int full,
                            double *pred, double *conf, double *outputs, ap_error *err)
{
    const int nm = m->spec.num_inputs;
    const size_t F = (size_t)ap_feature_count();
    if (!full) {
        for (size_t r = 0; r < nrows; r++) {
            const double *p = X + r * (size_t)nm;
            combine(m, p, &pred[r], conf ? &conf[r] : NULL);
            if (outputs)
                memcpy(outputs + r * (size_t)nm, p, (size_t)nm * sizeof *p);
        }
        return AP_OK;
    }
    /* hold the member versions served now for the whole call: a swap during
       the call cannot mix two versions of one member within this request */
    ap_model *held[AP_MAX_MEMBERS];
    int rc = AP_OK, nheld = 0;
    for (; nheld < nm; nheld++) {
        held[nheld] = ap__entry_acquire(m->members[nheld]);
        if (!held[nheld]) {
            rc = ap__error_set(err, AP_ENOTFOUND, "%s: member '%s' is not loaded",
                              m->entry->name, m->members[nheld]->name);
            break;
        }
    }
    double colmajor[ENSEMBLE_CHUNK * AP_MAX_MEMBERS], row[AP_MAX_MEMBERS];
    for (size_t r0 = 0; rc == AP_OK && r0 < nrows; r0 += ENSEMBLE_CHUNK) {
        size_t n = nrows - r0 < ENSEMBLE_CHUNK ? nrows - r0 : ENSEMBLE_CHUNK;
        for (int k = 0; rc == AP_OK && k < nm; k++) {
            rc = ap__model_predict_impl(held[k], X + r0 * F, n, 1, colmajor + (size_t)k * n,
                                       NULL, NULL, err);
            if (rc != AP_OK && err) /* the member named itself */
                ap__error_prefix(err, "%s: member ", m->entry->name);
        }
        for (size_t r = 0; rc == AP_OK && r < n; r++) {
            for (int k = 0; k < nm; k++)
                row[k] = colmajor[(size_t)k * n + r];
            combine(m, row, &pred[r0 + r], conf ? &conf[r0 + r] : NULL);
            if (outputs)
                memcpy(outputs + (r0 + r) * (size_t)nm, row, (size_t)nm * sizeof *row);
        }
    }
    for (int k = 0; k < nheld; k++)
        ap_model_release(held[k]);
    return rc;
}

int ap__model_predict_impl(const ap_model *m, const double *X, size_t nrows, int full,
                          double *pred, double *conf, double *outputs, ap_error *err)
{
    if (full && m->man.kind == AP_MODEL_RAW)
        return ap__error_set(err, AP_EUNSUPPORTED,
                            "%s: a raw model takes its input tensor (predict_raw), not "
                            "alphapulse-v1 features", m->entry->name);
    if (m->man.kind == AP_MODEL_ENSEMBLE)
        return predict_ensemble(m, X, nrows, full, pred, conf, outputs, err);
    return predict_single(m, X, nrows, full, pred, conf, outputs, err);
}

static int predict_timed(const ap_model *m, const double *X, size_t nrows, int full,
                         double *pred, double *conf, double *outputs, ap_error *err)
{
    if (!m || (!X && nrows) || (!pred && nrows))
        return ap__error_set(err, AP_EINVAL, "predict: NULL model, input or output");
    uint64_t t0 = ap__clock_ns();
    int rc = ap__model_predict_impl(m, X, nrows, full, pred, conf, outputs, err);
    stats_record_predict(&m->entry->stats, ap__clock_ns() - t0, nrows, rc == AP_OK);
    return rc;
}

int ap_model_predict(const ap_model *m, const double *features, size_t nrows, double *pred,
                     double *conf, double *outputs, ap_error *err)
{
    return predict_timed(m, features, nrows, 1, pred, conf, outputs, err);
}

int ap_model_predict_raw(const ap_model *m, const double *X, size_t nrows, double *pred,
                         double *conf, double *outputs, ap_error *err)
{
    return predict_timed(m, X, nrows, 0, pred, conf, outputs, err);
}
