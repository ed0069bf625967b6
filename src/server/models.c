/*
 * Model slots: for every model name, the version served and its two batchers
 * (alphapulse-v1 rows for /v1, raw input rows for /v2 infer).
 *
 * Versions are wrapped in ap_srv_version, refcounted with an atomic so that the
 * batcher's acquire/release hooks are a single atomic operation (the registry's
 * own acquire takes a mutex). The slot holds one reference; each queued or
 * running request holds one (taken by the batcher at submit). A reload with the
 * same row shapes and batching settings keeps the batchers and switches them
 * with ap_batcher_set_model, so queued requests finish on the version they
 * were submitted against. A reload that changes a shape builds new batchers
 * and frees the old ones: what was still queued there completes as cancelled.
 */
#include "server/server_internal.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"

void ap_srv_version_ref(void *v)
{
    atomic_fetch_add_explicit(&((ap_srv_version *)v)->refs, 1, memory_order_relaxed);
}

void ap_srv_version_unref(void *vp)
{
    ap_srv_version *v = vp;
    if (v && atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) == 1) {
        ap_model_release(v->m);
        free(v);
    }
}

/* Batch functions: each row of out is [prediction, confidence, outputs...].
   Rows are done in chunks through stack buffers so the path allocates
   nothing for ordinary output counts. */
#define CHUNK 64
#define CHUNK_OUTS 4096

int ap_srv_run_rows(void *ctx, const double *X, size_t nrows, size_t ncols, double *out,
                 size_t nout, ap_error *err, int raw)
{
    const ap_srv_version *v = ctx;
    size_t k = (size_t)v->info.num_outputs;
    size_t step = k > CHUNK_OUTS / CHUNK ? CHUNK_OUTS / k : CHUNK;
    if (step == 0)
        return ap_error_set(err, AP_ERANGE, "model %s: %zu outputs per row is more than the "
                            "server handles (%d)", v->info.name, k, CHUNK_OUTS);
    double pred[CHUNK], conf[CHUNK], outs[CHUNK_OUTS];
    for (size_t r0 = 0; r0 < nrows; r0 += step) {
        size_t n = nrows - r0 < step ? nrows - r0 : step;
        const double *x = X + r0 * ncols;
        int rc = raw ? ap_model_predict_raw(v->m, x, n, pred, conf, outs, err)
                     : ap_model_predict(v->m, x, n, pred, conf, outs, err);
        if (rc)
            return rc;
        for (size_t r = 0; r < n; r++) {
            double *o = out + (r0 + r) * nout;
            o[0] = pred[r];
            o[1] = conf[r];
            memcpy(o + 2, outs + r * k, k * sizeof *o);
        }
    }
    return AP_OK;
}

static int run_features(void *ctx, const double *X, size_t nrows, size_t ncols, double *out,
                        size_t nout, ap_error *err)
{
    return ap_srv_run_rows(ctx, X, nrows, ncols, out, nout, err, 0);
}

static int run_raw(void *ctx, const double *X, size_t nrows, size_t ncols, double *out,
                   size_t nout, ap_error *err)
{
    return ap_srv_run_rows(ctx, X, nrows, ncols, out, nout, err, 1);
}

ap_srv_model *ap_srv_model_find(ap_server *s, const char *name)
{
    int n = atomic_load_explicit(&s->nmodels, memory_order_acquire);
    for (int i = 0; i < n; i++)
        if (!strcmp(s->models[i]->name, name))
            return s->models[i];
    return NULL;
}

/* Batcher settings for a version: the manifest's, capped by the server's. */
static void batch_config(const ap_server *s, const ap_srv_version *v, int raw, char *name,
                         size_t name_size, ap_batcher_config *bc)
{
    const ap_server_config *c = &s->cfg;
    ap_batcher_config_default(bc);
    snprintf(name, name_size, "%s%s", v->info.name, raw ? ":raw" : "");
    bc->name = name;
    bc->ncols = raw ? (size_t)v->info.num_inputs : (size_t)ap_feature_count();
    bc->nout = (size_t)v->nout;
    int mb = v->info.max_batch_size > 0 ? v->info.max_batch_size : c->batch_size;
    bc->max_batch_rows = (size_t)(mb < c->batch_size ? mb : c->batch_size);
    bc->max_queue_delay_us = c->max_queue_delay_us < 0 ? v->info.max_queue_delay_us
                                                        : (uint64_t)c->max_queue_delay_us;
    bc->max_queue_rows = (size_t)c->max_queue_rows;
    bc->default_timeout_us = (uint64_t)(c->inference_timeout * 1e6);
    /* results are delivered by callback, never kept in the batcher */
    bc->result_capacity = 1;
    bc->adaptive_target_us = (uint64_t)c->adaptive_target_us;
    bc->caller_runs = c->caller_runs;
}

static int same_shape(const ap_server *s, const ap_srv_version *a, const ap_srv_version *b)
{
    if (!a || (a->info.kind == AP_MODEL_RAW) != (b->info.kind == AP_MODEL_RAW))
        return 0;
    ap_batcher_config ca, cb;
    char na[SRV_NAME_MAX + 8], nb[SRV_NAME_MAX + 8];
    batch_config(s, a, 1, na, sizeof na, &ca);
    batch_config(s, b, 1, nb, sizeof nb, &cb);
    return ca.ncols == cb.ncols && ca.nout == cb.nout && ca.max_batch_rows == cb.max_batch_rows &&
           ca.max_queue_delay_us == cb.max_queue_delay_us;
}

static int make_batcher(ap_server *s, ap_srv_version *v, int raw, ap_batcher **out, ap_error *err)
{
    char name[SRV_NAME_MAX + 8];
    ap_batcher_config bc;
    batch_config(s, v, raw, name, sizeof name, &bc);
    ap_batch_model bm = {raw ? run_raw : run_features, v, ap_srv_version_ref, ap_srv_version_unref};
    return ap_batcher_create(s->workers, &bc, &bm, out, err);
}

/* Serve version v (one reference passed in) in slot m. */
static int install(ap_server *s, ap_srv_model *m, ap_srv_version *v, ap_error *err)
{
    ap_batcher *nf = NULL, *nr = NULL, *of = NULL, *orw = NULL;
    pthread_rwlock_wrlock(&m->lock);
    ap_srv_version *old = m->cur;
    int rc = AP_OK;
    if (same_shape(s, old, v)) {
        if (m->feat)
            rc = ap_batcher_set_model(m->feat, v, err);
        if (!rc)
            rc = ap_batcher_set_model(m->raw, v, err);
    } else {
        if (v->info.kind != AP_MODEL_RAW)
            rc = make_batcher(s, v, 0, &nf, err);
        if (!rc)
            rc = make_batcher(s, v, 1, &nr, err);
        if (!rc) {
            of = m->feat;
            orw = m->raw;
            m->feat = nf;
            m->raw = nr;
        }
    }
    if (!rc)
        m->cur = v;
    pthread_rwlock_unlock(&m->lock);
    if (rc) {
        ap_batcher_free(nf);
        ap_batcher_free(nr);
        ap_srv_version_unref(v);
        return rc;
    }
    ap_batcher_free(of);
    ap_batcher_free(orw);
    ap_srv_version_unref(old);
    return AP_OK;
}

static ap_srv_model *slot_get(ap_server *s, const char *name, ap_error *err)
{
    ap_srv_model *m = ap_srv_model_find(s, name);
    if (m)
        return m;
    int n = atomic_load(&s->nmodels);
    if (n == SRV_MAX_MODELS || strlen(name) >= SRV_NAME_MAX) {
        ap_error_set(err, AP_ERANGE, "model %s: no room for another model", name);
        return NULL;
    }
    m = calloc(1, sizeof *m);
    if (!m) {
        ap_error_set(err, AP_ENOMEM, "model %s: out of memory", name);
        return NULL;
    }
    strcpy(m->name, name);
    m->index = n;
    pthread_rwlock_init(&m->lock, NULL);
    s->models[n] = m;
    atomic_store_explicit(&s->nmodels, n + 1, memory_order_release);
    return m;
}

/* Wrap the version the registry serves now for name. */
static int wrap_current(ap_server *s, const char *name, ap_srv_version **out, ap_error *err)
{
    ap_srv_version *v = calloc(1, sizeof *v);
    if (!v)
        return ap_error_set(err, AP_ENOMEM, "model %s: out of memory", name);
    int rc = ap_registry_acquire(s->reg, name, &v->m, err);
    if (rc) {
        free(v);
        return rc;
    }
    ap_model_describe(v->m, &v->info);
    v->nout = 2 + v->info.num_outputs;
    atomic_init(&v->refs, 1);
    *out = v;
    return AP_OK;
}

/* Called with s->admin held, after the registry loaded name. */
static int serve_loaded(ap_server *s, const char *name, ap_error *err)
{
    ap_srv_model *m = slot_get(s, name, err);
    if (!m)
        return err ? err->code : AP_ENOMEM;
    ap_srv_version *v = NULL;
    int rc = wrap_current(s, name, &v, err);
    return rc ? rc : install(s, m, v, err);
}

int ap_srv_model_load(ap_server *s, const char *name, uint32_t version, ap_error *err)
{
    pthread_mutex_lock(&s->admin);
    int rc = ap_registry_load(s->reg, name, version, err);
    if (!rc)
        rc = serve_loaded(s, name, err);
    pthread_mutex_unlock(&s->admin);
    return rc;
}

static void unserve(ap_srv_model *m);

int ap_srv_model_unload(ap_server *s, const char *name, ap_error *err)
{
    pthread_mutex_lock(&s->admin);
    int rc = ap_registry_unload(s->reg, name, err);
    ap_srv_model *m = rc ? NULL : ap_srv_model_find(s, name);
    if (m)
        unserve(m);
    pthread_mutex_unlock(&s->admin);
    return rc;
}

typedef struct load_report {
    ap_server *s;
    int refused;
} load_report;

static void on_loaded(void *ctx, const char *name, const ap_model *m, const ap_error *err)
{
    load_report *lr = ctx;
    if (!m) {
        lr->refused++;
        ap_srv_log(lr->s, "model %s refused: %s", name, err->msg);
    }
}

int ap_srv_models_load_all(ap_server *s, ap_error *err)
{
    load_report lr = {s, 0};
    pthread_mutex_lock(&s->admin);
    int rc = ap_registry_load_all(s->reg, on_loaded, &lr, err);
    for (int i = 0; rc >= 0 && i < ap_registry_count(s->reg); i++) {
        const char *name = ap_registry_name(s->reg, i);
        ap_error e;
        ap_model *probe;
        if (ap_registry_acquire(s->reg, name, &probe, &e) != AP_OK)
            continue; /* refused: reported above */
        ap_model_release(probe);
        if (serve_loaded(s, name, &e) != AP_OK)
            ap_srv_log(s, "model %s: cannot serve: %s", name, e.msg);
    }
    pthread_mutex_unlock(&s->admin);
    return rc < 0 ? rc : AP_OK;
}

/* Stop serving every model; slots stay (requests may still look them up). */
static void unserve(ap_srv_model *m)
{
    pthread_rwlock_wrlock(&m->lock);
    ap_srv_version *v = m->cur;
    ap_batcher *f = m->feat, *r = m->raw;
    m->cur = NULL;
    m->feat = m->raw = NULL;
    pthread_rwlock_unlock(&m->lock);
    ap_batcher_free(f);
    ap_batcher_free(r);
    ap_srv_version_unref(v);
}

void ap_srv_models_stop(ap_server *s)
{
    int n = atomic_load(&s->nmodels);
    for (int i = 0; i < n; i++)
        unserve(s->models[i]);
}

void ap_srv_models_free(ap_server *s)
{
    ap_srv_models_stop(s);
    int n = atomic_load(&s->nmodels);
    for (int i = 0; i < n; i++) {
        pthread_rwlock_destroy(&s->models[i]->lock);
        free(s->models[i]);
        s->models[i] = NULL;
    }
    atomic_store(&s->nmodels, 0);
}
