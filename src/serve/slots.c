/*
 * Served models (slots): for every model name, the version served and its
 * two batchers (alphapulse-v1 rows, raw input rows), and the model cache.
 *
 * The slot holds one reference to the version it serves (the registry's
 * refcount: ap_model_retain / ap_model_release); each queued or running
 * request holds one (the batcher's acquire/release hooks, one atomic each).
 * A reload with the same row shapes and batching settings keeps the
 * batchers and switches them with ap_batcher_set_model, so queued requests
 * finish on the version they were submitted against. A reload that changes
 * a shape builds new batchers and frees the old ones: what was still queued
 * there completes as cancelled.
 */
#include "serve/serve_internal.h"

#include <stdarg.h>

#include <stdio.h>

#include <stdlib.h>
#include <string.h>

#include "common/error.h"

void ap__service_logf(ap_service *svc, const char *fmt, ...)
{
    if (!svc->log)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    svc->log(svc->log_ctx, msg);
}

static void model_ref(void *m) { ap_model_retain(m); }
static void model_unref(void *m) { ap_model_release(m); }

/* Batch functions: each row of out is [prediction, confidence, outputs...].
   Rows are done in chunks through stack buffers so the path allocates
   nothing for ordinary output counts. */
#define CHUNK 64
#define CHUNK_OUTS 4096

int ap__slot_run_rows(const ap_model *m, const double *X, size_t nrows, size_t ncols,
                     double *out, size_t nout, ap_error *err, int raw)
{
    size_t k = nout - 2; /* the model's outputs */
    size_t step = k > CHUNK_OUTS / CHUNK ? CHUNK_OUTS / k : CHUNK;
    if (step == 0) {
        ap_model_info in;
        ap_model_describe(m, &in);
        return ap__error_set(err, AP_ERANGE, "model %s: %zu outputs per row is more than the "
                            "server handles (%d)", in.name, k, CHUNK_OUTS);
    }
    double pred[CHUNK], conf[CHUNK], outs[CHUNK_OUTS];
    for (size_t r0 = 0; r0 < nrows; r0 += step) {
        size_t n = nrows - r0 < step ? nrows - r0 : step;
        const double *x = X + r0 * ncols;
        int rc = raw ? ap_model_predict_raw(m, x, n, pred, conf, outs, err)
                     : ap_model_predict(m, x, n, pred, conf, outs, err);
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
    return ap__slot_run_rows(ctx, X, nrows, ncols, out, nout, err, 0);
}

static int run_raw(void *ctx, const double *X, size_t nrows, size_t ncols, double *out,
                   size_t nout, ap_error *err)
{
    return ap__slot_run_rows(ctx, X, nrows, ncols, out, nout, err, 1);
}

ap_slot *ap__slot_find(ap_service *s, const char *name)
{
    int n = atomic_load_explicit(&s->nslots, memory_order_acquire);
    for (int i = 0; i < n; i++)
        if (!strcmp(s->slots[i]->name, name))
            return s->slots[i];
    return NULL;
}

/* Batcher settings for a version: the manifest's, capped by the service's. */
static void batch_config(const ap_service *s, const ap_model_info *in, int raw, char *name,
                         size_t name_size, ap_batcher_config *bc)
{
    const ap_service_config *c = &s->cfg;
    ap_batcher_config_default(bc);
    snprintf(name, name_size, "%s%s", in->name, raw ? ":raw" : "");
    bc->name = name;
    bc->ncols = raw ? (size_t)in->num_inputs : (size_t)ap_feature_count();
    bc->nout = 2 + (size_t)in->num_outputs;
    int mb = in->max_batch_size > 0 ? in->max_batch_size : c->batch_size;
    bc->max_batch_rows = (size_t)(mb < c->batch_size ? mb : c->batch_size);
    bc->max_queue_delay_us = c->max_queue_delay_us < 0 ? in->max_queue_delay_us
                                                        : (uint64_t)c->max_queue_delay_us;
    bc->max_queue_rows = (size_t)c->max_queue_rows;
    bc->default_timeout_us = (uint64_t)(c->inference_timeout * 1e6);
    bc->adaptive_target_us = (uint64_t)c->adaptive_target_us;
    bc->caller_runs = c->caller_runs;
}

static int same_shape(const ap_service *s, const ap_model *old, const ap_model_info *a,
                      const ap_model_info *b)
{
    if (!old || (a->kind == AP_MODEL_RAW) != (b->kind == AP_MODEL_RAW))
        return 0;
    ap_batcher_config ca, cb;
    char na[SLOT_NAME_MAX + 8], nb[SLOT_NAME_MAX + 8];
    batch_config(s, a, 1, na, sizeof na, &ca);
    batch_config(s, b, 1, nb, sizeof nb, &cb);
    return ca.ncols == cb.ncols && ca.nout == cb.nout && ca.max_batch_rows == cb.max_batch_rows &&
           ca.max_queue_delay_us == cb.max_queue_delay_us;
}

static int make_batcher(ap_service *s, ap_model *v, const ap_model_info *in, int raw,
                        ap_batcher **out, ap_error *err)
{
    char name[SLOT_NAME_MAX + 8];
    ap_batcher_config bc;
    batch_config(s, in, raw, name, sizeof name, &bc);
    ap_batch_model bm = {raw ? run_raw : run_features, v, model_ref, model_unref};
    return ap_batcher_create(s->workers, &bc, &bm, out, err);
}

/* Serve version v (one reference passed in) in slot m. */
static int install(ap_service *s, ap_slot *m, ap_model *v, ap_error *err)
{
    ap_model_info in;
    ap_model_describe(v, &in);
    ap_batcher *nf = NULL, *nr = NULL, *of = NULL, *orw = NULL;
    pthread_rwlock_wrlock(&m->lock);
    ap_model *old = m->cur;
    int rc = AP_OK;
    if (same_shape(s, old, &m->info, &in)) {
        if (m->feat)
            rc = ap_batcher_set_model(m->feat, v, err);
        if (!rc)
            rc = ap_batcher_set_model(m->raw, v, err);
    } else {
        if (in.kind != AP_MODEL_RAW)
            rc = make_batcher(s, v, &in, 0, &nf, err);
        if (!rc)
            rc = make_batcher(s, v, &in, 1, &nr, err);
        if (!rc) {
            of = m->feat;
            orw = m->raw;
            m->feat = nf;
            m->raw = nr;
        }
    }
    if (!rc) {
        m->cur = v;
        m->info = in;
    }
    pthread_rwlock_unlock(&m->lock);
    if (rc) {
        ap_batcher_free(nf);
        ap_batcher_free(nr);
        ap_model_release(v);
        return rc;
    }
    ap_batcher_free(of);
    ap_batcher_free(orw);
    ap_model_release(old);
    if (in.precision_note[0]) /* v is held by the slot: its strings stay */
        ap__service_logf(s, "model %s version %u: full precision (%s asked reduced): %s",
                         in.name, in.version,
                         strcmp(in.precision_requested, "auto") ? "its manifest"
                                                                : "mixed_precision_enabled",
                         in.precision_note);
    /* a manifest that asks for the GPU and does not get it: said once, here
       (every model says where it runs in /v1/models) */
    if (!strcmp(in.device_requested, "gpu") && strncmp(in.device, "gpu", 3))
        ap__service_logf(s, "model %s version %u: device %s (its manifest asked gpu)", in.name,
                         in.version, in.device);
    return AP_OK;
}

static ap_slot *slot_get(ap_service *s, const char *name, ap_error *err)
{
    ap_slot *m = ap__slot_find(s, name);
    if (m)
        return m;
    int n = atomic_load(&s->nslots);
    if (n == AP_REGISTRY_MAX_MODELS || strlen(name) >= SLOT_NAME_MAX) {
        ap__error_set(err, AP_EFULL, "model %s: no room for another model", name);
        return NULL;
    }
    m = calloc(1, sizeof *m);
    if (!m) {
        ap__error_set(err, AP_ENOMEM, "model %s: out of memory", name);
        return NULL;
    }
    strcpy(m->name, name);
    m->index = n;
    pthread_rwlock_init(&m->lock, NULL);
    s->slots[n] = m;
    atomic_store_explicit(&s->nslots, n + 1, memory_order_release);
    return m;
}

/* Called with s->admin held, after the registry loaded name. */
static int serve_loaded(ap_service *s, const char *name, ap_error *err)
{
    ap_slot *m = slot_get(s, name, err);
    if (!m)
        return err ? err->code : AP_ENOMEM;
    ap_model *v;
    int rc = ap_registry_acquire(s->reg, name, &v, err);
    return rc ? rc : install(s, m, v, err);
}

static void unserve(ap_slot *m);

/* ---- the model cache ---------------------------------------------------------- */

void ap__slot_touch(ap_service *s, ap_slot *m)
{
    uint64_t t = atomic_fetch_add_explicit(&s->use_tick, 1, memory_order_relaxed) + 1;
    atomic_store_explicit(&m->last_used, t, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->cache_hits, 1, memory_order_relaxed);
}

int ap__service_resident(ap_service *s)
{
    int n = atomic_load(&s->nslots), k = 0;
    for (int i = 0; i < n; i++) {
        pthread_rwlock_rdlock(&s->slots[i]->lock);
        k += s->slots[i]->cur != NULL;
        pthread_rwlock_unlock(&s->slots[i]->lock);
    }
    return k;
}

void ap__catalog_refresh(ap_service *s)
{
    ap_repo_model *list = NULL;
    int n = 0;
    ap_error e;
    if (ap_registry_list(s->reg, &list, &n, &e) != AP_OK) {
        ap__service_logf(s, "repository: %s", e.msg);
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
static int held_out(ap_service *s, const char *name)
{
    ap_slot *m = ap__slot_find(s, name);
    return m && atomic_load(&m->held_out);
}

int ap__catalog_has(ap_service *s, const char *name)
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

static int resident(ap_service *s, const char *name)
{
    ap_slot *m = ap__slot_find(s, name);
    if (!m)
        return 0;
    pthread_rwlock_rdlock(&m->lock);
    int r = m->cur != NULL;
    pthread_rwlock_unlock(&m->lock);
    return r;
}

int ap__catalog_match(ap_service *s, int kind, const char *target, char *out, size_t size)
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
static int needed_by_ensemble(ap_service *s, const ap_slot *m)
{
    int n = atomic_load(&s->nslots);
    for (int i = 0; i < n; i++) {
        const ap_slot *e = s->slots[i]; /* admin: no swap under us */
        if (!e->cur || e->info.kind != AP_MODEL_ENSEMBLE)
            continue;
        for (int k = 0; k < e->info.num_inputs; k++) {
            const char *nm = ap_model_input_name(e->cur, k);
            if (nm && !strcmp(nm, m->name))
                return 1;
        }
    }
    return 0;
}

/* Under admin: unload least recently used resident models until `need`
   more fit, sparing the names in keep (an ensemble's members being loaded). */
static int make_room(ap_service *s, int need, char (*keep)[65], int nkeep, const char *who,
                     ap_error *err)
{
    int cap = s->cfg.model_cache_size;
    if (need > cap)
        return ap__error_set(err, AP_EFULL, "model %s needs %d models resident at once, more "
                            "than model_cache_size (%d)", who, need, cap);
    while (ap__service_resident(s) + need > cap) {
        int n = atomic_load(&s->nslots);
        ap_slot *victim = NULL;
        uint64_t oldest = UINT64_MAX;
        for (int i = 0; i < n; i++) {
            ap_slot *m = s->slots[i];
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
            return ap__error_set(err, AP_EFULL, "model cache is full (model_cache_size = %d) "
                                "and every resident model is needed by a resident ensemble: "
                                "cannot load %s", cap, who);
        ap_error e;
        if (ap_registry_unload(s->reg, victim->name, &e) != AP_OK)
            return ap__error_set(err, AP_EFULL, "cannot unload %s to make room for %s: %s",
                                victim->name, who, e.msg);
        unserve(victim);
        atomic_fetch_add_explicit(&s->cache_evictions, 1, memory_order_relaxed);
        ap__service_logf(s, "model cache: unloaded %s (least recently used) to load %s",
                   victim->name, who);
    }
    return AP_OK;
}

/* Under admin: load name (version 0: by policy) with room made for it and,
   for an ensemble, for its members (loaded first). */
static int load_locked(ap_service *s, const char *name, uint32_t version, ap_error *err)
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
        return ap__error_set(err, AP_EFULL, "model %s needs %d models resident at once (itself "
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
            return ap__error_set(err, rc, "%s: member %s: %s", name, members[k], e.msg);
        ap_slot *m = ap__slot_find(s, members[k]);
        if (m) {
            atomic_store(&m->last_used, atomic_fetch_add(&s->use_tick, 1) + 1);
            atomic_store(&m->held_out, 0); /* an ensemble that needs it brought it back */
        }
    }
    rc = ap_registry_load(s->reg, name, version, err);
    if (!rc)
        rc = serve_loaded(s, name, err);
    ap_slot *m = rc ? NULL : ap__slot_find(s, name);
    if (m)
        atomic_store(&m->last_used, atomic_fetch_add(&s->use_tick, 1) + 1);
    return rc;
}

int ap__slot_ensure(ap_service *s, const char *name, ap_error *err)
{
    atomic_fetch_add_explicit(&s->cache_misses, 1, memory_order_relaxed);
    pthread_mutex_lock(&s->admin);
    int rc = resident(s, name) ? AP_OK : load_locked(s, name, 0, err);
    pthread_mutex_unlock(&s->admin);
    if (rc) {
        atomic_fetch_add_explicit(&s->cache_load_failures, 1, memory_order_relaxed);
        ap__service_logf(s, "model %s: load on first use failed: %s", name, err->msg);
    }
    return rc;
}

int ap__service_load(ap_service *s, const char *name, uint32_t version, ap_error *err)
{
    pthread_mutex_lock(&s->admin);
    int rc = load_locked(s, name, version, err);
    ap_slot *m = rc ? NULL : ap__slot_find(s, name);
    if (m)
        atomic_store(&m->held_out, 0);
    ap__catalog_refresh(s);
    pthread_mutex_unlock(&s->admin);
    return rc;
}

int ap__service_unload(ap_service *s, const char *name, ap_error *err)
{
    pthread_mutex_lock(&s->admin);
    int rc = ap_registry_unload(s->reg, name, err);
    ap_slot *m = rc ? NULL : ap__slot_find(s, name);
    if (m) {
        unserve(m);
        atomic_store(&m->held_out, 1);
    }
    pthread_mutex_unlock(&s->admin);
    return rc;
}

/* Start-up: every repository model while the cache has room, models before
   the ensembles that combine them; the rest load on first use. */
int ap__slots_load_all(ap_service *s, ap_error *err)
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
            if (ap__service_resident(s) >= s->cfg.model_cache_size) {
                ap__service_logf(s, "model %s: not loaded at start (model_cache_size = %d is full); "
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
                    ap__service_logf(s, "model %s refused: %s", list[i].name, e.msg);
                continue;
            }
            if (ap_registry_load(s->reg, list[i].name, 0, &e) != AP_OK)
                ap__service_logf(s, "model %s refused: %s", list[i].name, e.msg);
            else if (serve_loaded(s, list[i].name, &e) != AP_OK)
                ap__service_logf(s, "model %s: cannot serve: %s", list[i].name, e.msg);
        }
    pthread_mutex_lock(&s->catalog_mu);
    s->catalog = list;
    s->ncatalog = n;
    pthread_mutex_unlock(&s->catalog_mu);
    pthread_mutex_unlock(&s->admin);
    return AP_OK;
}

/* Stop serving every model; slots stay (requests may still look them up). */
static void unserve(ap_slot *m)
{
    pthread_rwlock_wrlock(&m->lock);
    ap_model *v = m->cur;
    ap_batcher *f = m->feat, *r = m->raw;
    m->cur = NULL;
    m->feat = m->raw = NULL;
    pthread_rwlock_unlock(&m->lock);
    ap_batcher_free(f);
    ap_batcher_free(r);
    ap_model_release(v);
}

void ap__slots_stop(ap_service *s)
{
    int n = atomic_load(&s->nslots);
    for (int i = 0; i < n; i++)
        unserve(s->slots[i]);
}

void ap__slots_free(ap_service *s)
{
    ap__slots_stop(s);
    int n = atomic_load(&s->nslots);
    for (int i = 0; i < n; i++) {
        pthread_rwlock_destroy(&s->slots[i]->lock);
        free(s->slots[i]);
        s->slots[i] = NULL;
    }
    atomic_store(&s->nslots, 0);
    ap_registry_listing_free(s->catalog);
    s->catalog = NULL;
    s->ncatalog = 0;
}
