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

static void unserve(ap_srv_model *m);

/* ---- the model cache ---------------------------------------------------------- */

void ap_srv_model_touch(ap_server *s, ap_srv_model *m)
{
    uint64_t t = atomic_fetch_add_explicit(&s->use_tick, 1, memory_order_relaxed) + 1;
    atomic_store_explicit(&m->last_used, t, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->cache_hits, 1, memory_order_relaxed);
}

int ap_srv_models_resident(ap_server *s)
{
    return ap_server_models_loaded(s); /* resident = loaded and served */
}

void ap_srv_catalog_refresh(ap_server *s)
{
    ap_repo_model *list = NULL;
    int n = 0;
    ap_error e;
    if (ap_registry_list(s->reg, &list, &n, &e) != AP_OK) {
        ap_srv_log(s, "repository: %s", e.msg);
        return; /* keep the catalog we have */
    }
    pthread_mutex_lock(&s->catalog_mu);
    ap_repo_model *old = s->catalog;
    s->catalog = list;
    s->ncatalog = n;
    pthread_mutex_unlock(&s->catalog_mu);
    ap_registry_listing_free(old);
}

/* A model unloaded by request stays unloaded until a load request. */
static int held_out(ap_server *s, const char *name)
{
    ap_srv_model *m = ap_srv_model_find(s, name);
    return m && atomic_load(&m->held_out);
}

int ap_srv_catalog_has(ap_server *s, const char *name)
{
    if (held_out(s, name))
        return 0;
    int found = 0;
    pthread_mutex_lock(&s->catalog_mu);
    for (int i = 0; i < s->ncatalog && !found; i++)
        found = !strcmp(s->catalog[i].name, name);
    pthread_mutex_unlock(&s->catalog_mu);
    return found;
}

static int resident(ap_server *s, const char *name)
{
    ap_srv_model *m = ap_srv_model_find(s, name);
    if (!m)
        return 0;
    pthread_rwlock_rdlock(&m->lock);
    int r = m->cur != NULL;
    pthread_rwlock_unlock(&m->lock);
    return r;
}

int ap_srv_catalog_match(ap_server *s, int kind, const char *target, char *out, size_t size)
{
    int found = 0;
    pthread_mutex_lock(&s->catalog_mu);
    for (int i = 0; i < s->ncatalog && !found; i++) {
        const ap_repo_model *c = &s->catalog[i];
        if (c->ok && (int)c->kind == kind && (!target || !strcmp(c->target, target)) &&
            !resident(s, c->name) && !held_out(s, c->name)) {
            snprintf(out, size, "%s", c->name);
            found = 1;
        }
    }
    pthread_mutex_unlock(&s->catalog_mu);
    return found;
}

/* Under admin: 1 when a resident ensemble uses the model of slot m. */
static int needed_by_ensemble(ap_server *s, const ap_srv_model *m)
{
    int n = atomic_load(&s->nmodels);
    for (int i = 0; i < n; i++) {
        const ap_srv_version *v = s->models[i]->cur; /* admin: no swap under us */
        if (!v || v->info.kind != AP_MODEL_ENSEMBLE)
            continue;
        for (int k = 0; k < v->info.num_inputs; k++) {
            const char *nm = ap_model_input_name(v->m, k);
            if (nm && !strcmp(nm, m->name))
                return 1;
        }
    }
    return 0;
}

/* Under admin: unload least recently used resident models until `need`
   more fit, sparing the names in keep (an ensemble's members being loaded). */
static int make_room(ap_server *s, int need, char (*keep)[65], int nkeep, const char *who,
                     ap_error *err)
{
    int cap = s->cfg.model_cache_size;
    if (need > cap)
        return ap_error_set(err, AP_ERANGE, "model %s needs %d models resident at once, more "
                            "than model_cache_size (%d)", who, need, cap);
    while (ap_srv_models_resident(s) + need > cap) {
        int n = atomic_load(&s->nmodels);
        ap_srv_model *victim = NULL;
        uint64_t oldest = UINT64_MAX;
        for (int i = 0; i < n; i++) {
            ap_srv_model *m = s->models[i];
            if (!m->cur || needed_by_ensemble(s, m))
                continue;
            int kept = 0;
            for (int k = 0; k < nkeep && !kept; k++)
                kept = !strcmp(keep[k], m->name);
            uint64_t t = atomic_load_explicit(&m->last_used, memory_order_relaxed);
            if (!kept && t < oldest) {
                oldest = t;
                victim = m;
            }
        }
        if (!victim)
            return ap_error_set(err, AP_EOVERLOAD, "model cache is full (model_cache_size = %d) "
                                "and every resident model is needed by a resident ensemble: "
                                "cannot load %s", cap, who);
        ap_error e;
        if (ap_registry_unload(s->reg, victim->name, &e) != AP_OK)
            return ap_error_set(err, AP_EOVERLOAD, "cannot unload %s to make room for %s: %s",
                                victim->name, who, e.msg);
        unserve(victim);
        atomic_fetch_add_explicit(&s->cache_evictions, 1, memory_order_relaxed);
        ap_srv_log(s, "model cache: unloaded %s (least recently used) to load %s",
                   victim->name, who);
    }
    return AP_OK;
}

/* Under admin: load name (version 0: by policy) with room made for it and,
   for an ensemble, for its members (loaded first). */
static int load_locked(ap_server *s, const char *name, uint32_t version, ap_error *err)
{
    char members[AP_REGISTRY_MAX_MODELS][65];
    int nm = 0;
    int rc = ap_registry_members(s->reg, name, version, members, AP_REGISTRY_MAX_MODELS, &nm,
                                 err);
    if (rc == AP_ENOTFOUND || rc == AP_EIO) /* let the load say what is wrong */
        nm = 0;
    else if (rc != AP_OK)
        return rc;
    /* an ensemble and all its members are resident together, or it cannot
       predict: refuse at once when the whole set exceeds the cache */
    if (1 + nm > s->cfg.model_cache_size)
        return ap_error_set(err, AP_ERANGE, "model %s needs %d models resident at once (itself "
                            "and %d members), more than model_cache_size (%d)", name, 1 + nm, nm,
                            s->cfg.model_cache_size);
    int need = resident(s, name) ? 0 : 1;
    for (int k = 0; k < nm; k++)
        need += !resident(s, members[k]);
    if (need && (rc = make_room(s, need, members, nm, name, err)) != AP_OK)
        return rc;
    for (int k = 0; k < nm; k++) {
        if (resident(s, members[k]))
            continue;
        ap_error e;
        if ((rc = ap_registry_load(s->reg, members[k], 0, &e)) != AP_OK ||
            (rc = serve_loaded(s, members[k], &e)) != AP_OK)
            return ap_error_set(err, rc, "%s: member %s: %s", name, members[k], e.msg);
        ap_srv_model *m = ap_srv_model_find(s, members[k]);
        if (m) {
            atomic_store(&m->last_used, atomic_fetch_add(&s->use_tick, 1) + 1);
            atomic_store(&m->held_out, 0); /* an ensemble that needs it brought it back */
        }
    }
    rc = ap_registry_load(s->reg, name, version, err);
    if (!rc)
        rc = serve_loaded(s, name, err);
    ap_srv_model *m = rc ? NULL : ap_srv_model_find(s, name);
    if (m)
        atomic_store(&m->last_used, atomic_fetch_add(&s->use_tick, 1) + 1);
    return rc;
}

int ap_srv_model_ensure(ap_server *s, const char *name, ap_error *err)
{
    atomic_fetch_add_explicit(&s->cache_misses, 1, memory_order_relaxed);
    pthread_mutex_lock(&s->admin);
    int rc = resident(s, name) ? AP_OK : load_locked(s, name, 0, err);
    pthread_mutex_unlock(&s->admin);
    if (rc) {
        atomic_fetch_add_explicit(&s->cache_load_failures, 1, memory_order_relaxed);
        ap_srv_log(s, "model %s: load on first use failed: %s", name, err->msg);
    }
    return rc;
}

int ap_srv_model_load(ap_server *s, const char *name, uint32_t version, ap_error *err)
{
    pthread_mutex_lock(&s->admin);
    int rc = load_locked(s, name, version, err);
    ap_srv_model *m = rc ? NULL : ap_srv_model_find(s, name);
    if (m)
        atomic_store(&m->held_out, 0);
    ap_srv_catalog_refresh(s);
    pthread_mutex_unlock(&s->admin);
    return rc;
}

int ap_srv_model_unload(ap_server *s, const char *name, ap_error *err)
{
    pthread_mutex_lock(&s->admin);
    int rc = ap_registry_unload(s->reg, name, err);
    ap_srv_model *m = rc ? NULL : ap_srv_model_find(s, name);
    if (m) {
        unserve(m);
        atomic_store(&m->held_out, 1);
    }
    pthread_mutex_unlock(&s->admin);
    return rc;
}

/* Start-up: every repository model while the cache has room, models before
   the ensembles that combine them; the rest load on first use. */
int ap_srv_models_load_all(ap_server *s, ap_error *err)
{
    ap_repo_model *list;
    int n;
    int rc = ap_registry_list(s->reg, &list, &n, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&s->admin);
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++) {
            int ens = list[i].ok && list[i].kind == AP_MODEL_ENSEMBLE;
            if (ens != pass)
                continue;
            if (ap_srv_models_resident(s) >= s->cfg.model_cache_size) {
                ap_srv_log(s, "model %s: not loaded at start (model_cache_size = %d is full); "
                           "it loads on first use", list[i].name, s->cfg.model_cache_size);
                continue;
            }
            ap_error e;
            char members[AP_REGISTRY_MAX_MODELS][65];
            int nm = 0;
            int ok = 1;
            if (ens && ap_registry_members(s->reg, list[i].name, 0, members,
                                           AP_REGISTRY_MAX_MODELS, &nm, &e) == AP_OK)
                for (int k = 0; k < nm; k++)
                    ok &= resident(s, members[k]);
            if (!ok) { /* a member did not load: the registry says which */
                if (ap_registry_load(s->reg, list[i].name, 0, &e) != AP_OK)
                    ap_srv_log(s, "model %s refused: %s", list[i].name, e.msg);
                continue;
            }
            if (ap_registry_load(s->reg, list[i].name, 0, &e) != AP_OK)
                ap_srv_log(s, "model %s refused: %s", list[i].name, e.msg);
            else if (serve_loaded(s, list[i].name, &e) != AP_OK)
                ap_srv_log(s, "model %s: cannot serve: %s", list[i].name, e.msg);
        }
    pthread_mutex_lock(&s->catalog_mu);
    s->catalog = list;
    s->ncatalog = n;
    pthread_mutex_unlock(&s->catalog_mu);
    pthread_mutex_unlock(&s->admin);
    return AP_OK;
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
    ap_registry_listing_free(s->catalog);
    s->catalog = NULL;
    s->ncatalog = 0;
}
