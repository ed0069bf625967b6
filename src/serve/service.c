/*
 * The service's life cycle and a request's way through it: pick a model,
 * submit its rows (inline, deferred to the event loop's pass, or batched),
 * deliver the completion; async requests keep their result in the store.
 * Slots and the model cache are slots.c; the store is results.c.
 */
#include "serve/serve_internal.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/error.h"

/* ---- life cycle ------------------------------------------------------------ */

int ap__service_create(const ap_service_config *cfg, ap_service_log_fn log, void *log_ctx,
                      ap_service **out, ap_error *err)
{
    *out = NULL;
    ap_service *s = calloc(1, sizeof *s);
    if (!s || !(s->repository = strdup(cfg->repository ? cfg->repository : ""))) {
        free(s);
        return ap__error_set(err, AP_ENOMEM, "service: out of memory");
    }
    s->cfg = *cfg;
    s->cfg.repository = s->repository;
    s->log = log;
    s->log_ctx = log_ctx;
    /* ids of inline inferences: like the batcher's, a 62-bit counter from a
       start that differs across runs (never 0) */
    atomic_init(&s->inline_ids, ((ap__clock_ns() * 0x9e3779b97f4a7c15ULL) >> 2) | 1);
    pthread_mutex_init(&s->admin, NULL);
    pthread_mutex_init(&s->catalog_mu, NULL);
    int rc;
    if ((rc = ap__results_init(&s->results, (size_t)cfg->max_async_results,
                              (uint64_t)(cfg->result_ttl * 1e9), err)) ||
        (rc = ap_workers_create((unsigned)cfg->workers, &s->workers, err)) ||
        (rc = ap_registry_open(s->repository, &cfg->registry, &s->reg, err)) ||
        (rc = ap__slots_load_all(s, err))) {
        ap__service_free(s);
        return rc;
    }
    *out = s;
    return AP_OK;
}

void ap__service_stop(ap_service *s)
{
    pthread_mutex_lock(&s->admin);
    if (!s->stopped)
        ap__slots_stop(s);
    s->stopped = 1;
    pthread_mutex_unlock(&s->admin);
}

void ap__service_free(ap_service *s)
{
    if (!s)
        return;
    if (s->workers) /* batchers are freed before the pool they run on */
        ap__service_stop(s);
    ap__slots_free(s);
    ap_workers_free(s->workers);
    ap__results_free(&s->results); /* entries hold versions: before the registry */
    ap_registry_free(s->reg);
    pthread_mutex_destroy(&s->admin);
    pthread_mutex_destroy(&s->catalog_mu);
    free(s->repository);
    free(s);
}

ap_registry *ap__service_registry(ap_service *s) { return s->reg; }

/* ---- picking ------------------------------------------------------------------ */

static const char *const kind_names[] = {"pattern", "regime", "ensemble", "raw"};

static int fits(const ap_slot *m, const ap_selector *q)
{
    return m->cur && (q->kind == AP_KIND_ANY || (int)m->info.kind == q->kind) &&
           (q->raw ? m->raw != NULL : m->feat != NULL) &&
           (!q->target || !strcmp(q->target, m->info.target));
}

/* A resident slot for q, read-locked, or NULL (*bad: the named model is
   resident but does not fit, the reason in err). */
static ap_slot *find_resident(ap_service *s, const ap_selector *q, const char *name, int *bad,
                              ap_error *err)
{
    if (name) {
        ap_slot *m = ap__slot_find(s, name);
        if (!m)
            return NULL;
        pthread_rwlock_rdlock(&m->lock);
        if (fits(m, q))
            return m;
        if (m->cur) {
            *bad = 1;
            ap__error_set(err, AP_ENOTFOUND, "model '%s' is %s", name,
                         q->kind != AP_KIND_ANY && (int)m->info.kind != q->kind
                             ? "of another kind" : "for another target");
        }
        pthread_rwlock_unlock(&m->lock);
        return NULL;
    }
    int n = atomic_load_explicit(&s->nslots, memory_order_acquire);
    for (int i = 0; i < n; i++) {
        ap_slot *m = s->slots[i];
        pthread_rwlock_rdlock(&m->lock);
        if (fits(m, q))
            return m;
        pthread_rwlock_unlock(&m->lock);
    }
    return NULL;
}

static int not_found(ap_service *s, const ap_selector *q, ap_error *err)
{
    if (q->name && ap__slot_find(s, q->name)) /* a slot, not resident: held out */
        return ap__error_set(err, AP_ENOTFOUND, "model '%s' is not loaded (unloaded, or gone "
                            "from the repository; POST /v2/repository/models/%s/load serves "
                            "it again)", q->name, q->name);
    if (q->name)
        return ap__error_set(err, AP_ENOTFOUND, "unknown model '%s'", q->name);
    const char *k = q->kind >= 0 && q->kind < 4 ? kind_names[q->kind] : "any";
    if (q->target)
        return ap__error_set(err, AP_ENOTFOUND, "no %s model for target '%s' in the repository",
                            k, q->target);
    return ap__error_set(err, AP_ENOTFOUND, "no %s model in the repository", k);
}

static int open_lease(ap_slot *m, const ap_selector *q, ap_lease *l, ap_error *err)
{
    l->index = m->index; /* the model's metrics label, also when refused */
    if (q->version && q->version != m->info.version) {
        uint32_t v = m->info.version;
        pthread_rwlock_unlock(&m->lock);
        return ap__error_set(err, AP_ENOTFOUND, "model '%s' version %u is not served (serving "
                            "version %u)", m->name, q->version, v);
    }
    l->slot = m;
    l->model = m->cur;
    ap_model_retain(l->model);
    l->info = m->info;
    l->index = m->index;
    return AP_OK;
}

int ap__service_pick(ap_service *s, const ap_selector *q, ap_lease *l, ap_error *err)
{
    memset(l, 0, sizeof *l);
    l->index = -1;
    l->raw = q->raw;
    int bad = 0;
    ap_slot *m = find_resident(s, q, q->name, &bad, err);
    if (m) {
        ap__slot_touch(s, m);
        return open_lease(m, q, l, err);
    }
    char pick[72];
    if (!bad && q->on_demand &&
        (q->name ? ap__catalog_has(s, q->name)
                 : ap__catalog_match(s, q->kind, q->target, pick, sizeof pick))) {
        const char *name = q->name ? q->name : pick;
        int rc = ap__slot_ensure(s, name, err);
        if (rc != AP_OK) { /* the cache cannot take it (now or ever), or it failed to load */
            if (rc != AP_EFULL && err) /* an EIO keeping the loader's message (printing
                                          err->msg into itself lost it) */
                err->code = AP_EIO;
            return rc == AP_EFULL ? rc : AP_EIO;
        }
        m = find_resident(s, q, name, &bad, err);
        if (m)
            return open_lease(m, q, l, err);
    }
    if (q->name && (m = ap__slot_find(s, q->name)))
        l->index = m->index;
    return bad ? AP_ENOTFOUND : not_found(s, q, err);
}

void ap__service_unlock(ap_lease *l)
{
    if (l->slot)
        pthread_rwlock_unlock(&l->slot->lock);
    l->slot = NULL;
}

void ap__service_release(ap_lease *l)
{
    ap__service_unlock(l);
    ap_model_release(l->model);
    l->model = NULL;
}

/* ---- submitting ----------------------------------------------------------------- */

/* Take the pass's batcher list for b; 0 when it is full (do not defer). */
static int pass_add(ap_service_pass *p, ap_batcher *b)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->b[i] == b)
            return 1;
    if (p->n == AP_SERVICE_PASS_MAX)
        return 0;
    p->b[p->n++] = b;
    return 1;
}

void ap__service_pass_end(ap_service *s, ap_service_pass *p)
{
    p->immediate = 1; /* the first prediction of the next pass runs at once */
    if (p->n) {       /* the batch of this pass: everything deferred runs together */
        size_t k = p->n;
        p->n = 0;
        ap_workers_run_queued(s->workers, p->b, k, p);
    }
}

/* Inline inference: the rows run on this thread, no batcher, no queue. */
static void run_inline(ap_service *s, ap_lease *l, const double *X, size_t n,
                       const ap_submit_opts *o)
{
    size_t nout = 2 + (size_t)l->info.num_outputs;
    size_t ncols = l->raw ? (size_t)l->info.num_inputs : (size_t)ap_feature_count();
    ap__service_unlock(l);
    double small[64], *out = n * nout <= 64 ? small : malloc(n * nout * sizeof *out);
    ap_service_result res = {0};
    ap_error e;
    res.id = atomic_fetch_add_explicit(&s->inline_ids, 1, memory_order_relaxed);
    uint64_t t0 = ap__clock_ns();
    res.status = out ? ap__slot_run_rows(l->model, X, n, ncols, out, nout, &e, l->raw)
                     : ap__error_set(&e, AP_ENOMEM, "out of memory for %zu outputs", n * nout);
    res.compute_us = (ap__clock_ns() - t0) / 1000;
    res.message = res.status ? e.msg : "";
    if (!res.status) {
        res.out = out;
        res.nrows = n;
        res.nout = nout;
    }
    o->on_done(o->user, &res);
    if (out && out != small)
        free(out);
    ap__service_release(l);
}

int ap__service_submit(ap_service *s, ap_lease *l, const double *X, size_t n,
                      const ap_submit_opts *o, int *parked, ap_error *err)
{
    *parked = 0;
    uint64_t now = ap__clock_ns();
    if (o->deadline_ns && now >= o->deadline_ns) {
        ap__service_release(l);
        return ap__error_set(err, AP_ETIMEDOUT, "deadline passed before the request ran");
    }
    if (s->cfg.inline_inference) {
        run_inline(s, l, X, n, o);
        return AP_OK;
    }
    ap_batcher *b = l->raw ? l->slot->raw : l->slot->feat;
    ap_batch_submit_opts bo = {0};
    /* what is left of the deadline (at least 1 us: the check above passed) */
    bo.timeout_us = o->deadline_ns ? (o->deadline_ns - now + 999) / 1000 : 0;
    bo.model_ctx = l->model;
    bo.on_done = o->on_done;
    bo.user = o->user;
    /* under an event loop, the pass's first prediction runs at once; later
       ones are deferred to the end of the pass and, when this loop runs them
       itself (flushable), parked: the caller need not suspend */
    int park = 0;
    if (o->pass && o->pass->immediate)
        o->pass->immediate = 0;
    else if (o->pass && pass_add(o->pass, b)) {
        bo.defer = 1;
        bo.defer_owner = o->pass;
        park = ap_batcher_flushable(b);
    }
    uint64_t id;
    int rc = ap_batch_submit(b, X, n, &bo, &id, err);
    ap__service_release(l); /* the request holds its own reference */
    if (rc == AP_OK)
        *parked = park;
    return rc;
}

int ap__service_submit_async(ap_service *s, ap_lease *l, const double *row, uint64_t deadline_ns,
                            const ap_async_meta *meta, uint64_t *id, ap_error *err)
{
    uint64_t now = ap__clock_ns();
    if (deadline_ns && now >= deadline_ns) {
        ap__service_release(l);
        return ap__error_set(err, AP_ETIMEDOUT, "deadline passed before the request ran");
    }
    ap_results *rs = &s->results;
    ap_batch_submit_opts bo = {0};
    bo.timeout_us = deadline_ns ? (deadline_ns - now + 999) / 1000 : 0;
    bo.model_ctx = l->model;
    bo.on_done = ap__results_on_done;
    bo.user = rs;
    /* the store lock is held across the submit so that the completion (on
       another thread) finds the entry; it takes that lock, so the batch must
       not run inside this submit */
    bo.queue_only = 1;
    uint64_t bid;
    pthread_mutex_lock(&rs->mu);
    int rc = ap_batch_submit(l->slot->feat, row, 1, &bo, &bid, err);
    if (rc == AP_OK) {
        ap_async_entry *e = ap__results_insert_locked(rs, bid);
        *id = e->r.id; /* the client gets the public id */
        e->r.index = l->index;
        e->r.model = l->model; /* the lease's reference moves to the entry */
        l->model = NULL;
        e->r.meta = *meta;
        e->batcher = l->slot->feat;
    }
    pthread_mutex_unlock(&rs->mu);
    ap__service_release(l);
    return rc;
}

/* ---- async results ----------------------------------------------------------------- */

int ap__service_result_get(ap_service *s, uint64_t id, ap_async_result *out, ap_error *err)
{
    pthread_mutex_lock(&s->results.mu);
    ap_async_entry *p = ap__results_find_locked(&s->results, id, ap__clock_ns());
    int oom = 0;
    if (p) {
        *out = p->r;
        ap_model_retain(out->model);
        out->text = NULL;
        out->text_len = p->text_len;
        if (p->text && !(out->text = malloc(p->text_len + 1)))
            oom = 1;
        else if (p->text)
            memcpy(out->text, p->text, p->text_len + 1);
    }
    pthread_mutex_unlock(&s->results.mu);
    if (!p)
        return ap__error_set(err, AP_ENOTFOUND, "unknown request id %" PRIu64 " (never issued, "
                            "deleted or expired)", id);
    if (oom) {
        ap_model_release(out->model);
        return ap__error_set(err, AP_ENOMEM, "out of memory for a result of %zu bytes",
                            out->text_len);
    }
    return AP_OK;
}

int ap__service_result_delete(ap_service *s, uint64_t id, int *was_pending, int *index,
                             ap_error *err)
{
    ap_results *rs = &s->results;
    pthread_mutex_lock(&rs->mu);
    ap_async_entry *p = ap__results_find_locked(rs, id, ap__clock_ns());
    int state = p ? p->r.state : 0, slot = p ? p->r.index : -1;
    uint64_t batch_id = p ? p->batch_id : 0;
    ap_batcher *b = p ? p->batcher : NULL;
    pthread_mutex_unlock(&rs->mu);
    *index = slot;
    *was_pending = state == AP_ASYNC_PENDING;
    if (!p)
        return ap__error_set(err, AP_ENOTFOUND, "unknown request id %" PRIu64 " (never issued, "
                            "deleted or expired)", id);
    if (state == AP_ASYNC_PENDING && slot >= 0) {
        /* cancel outside the store lock (a queued request's completion runs
           on this thread and takes it); the slot lock keeps the batcher alive */
        ap_slot *m = s->slots[slot];
        pthread_rwlock_rdlock(&m->lock);
        if (m->feat == b)
            ap_batch_cancel(b, batch_id, NULL);
        pthread_rwlock_unlock(&m->lock);
    }
    pthread_mutex_lock(&rs->mu);
    p = ap__results_find_locked(rs, id, ap__clock_ns());
    if (p)
        ap__results_remove_locked(rs, p);
    pthread_mutex_unlock(&rs->mu);
    return AP_OK;
}

/* ---- views ------------------------------------------------------------------------ */

int ap__service_slots(ap_service *s) { return atomic_load_explicit(&s->nslots, memory_order_acquire); }

const char *ap__service_slot_name(ap_service *s, int i)
{
    return i >= 0 && i < ap__service_slots(s) ? s->slots[i]->name : NULL;
}

int ap__service_slot_find(ap_service *s, const char *name)
{
    ap_slot *m = ap__slot_find(s, name);
    return m ? m->index : -1;
}

ap_model *ap__service_slot_model(ap_service *s, int i)
{
    if (i < 0 || i >= ap__service_slots(s))
        return NULL;
    ap_slot *m = s->slots[i];
    pthread_rwlock_rdlock(&m->lock);
    ap_model *v = m->cur;
    ap_model_retain(v);
    pthread_rwlock_unlock(&m->lock);
    return v;
}

int ap__service_slot_held_out(ap_service *s, int i)
{
    return i >= 0 && i < ap__service_slots(s) && atomic_load(&s->slots[i]->held_out);
}

int ap__service_batch_stats(ap_service *s, int i, int raw, ap_batch_stats *out)
{
    if (i < 0 || i >= ap__service_slots(s))
        return AP_ENOTFOUND;
    ap_slot *m = s->slots[i];
    pthread_rwlock_rdlock(&m->lock);
    ap_batcher *b = raw ? m->raw : m->feat;
    int rc = b ? ap_batcher_stats(b, out) : AP_ENOTFOUND;
    pthread_rwlock_unlock(&m->lock);
    return rc;
}

int ap__service_pool_stats(ap_service *s, ap_batch_stats *out)
{
    return ap_workers_stats(s->workers, out);
}

void ap__service_cache_stats(ap_service *s, ap_cache_stats *o)
{
    o->capacity = s->cfg.model_cache_size;
    o->resident = ap__service_resident(s);
    o->hits = atomic_load_explicit(&s->cache_hits, memory_order_relaxed);
    o->misses = atomic_load_explicit(&s->cache_misses, memory_order_relaxed);
    o->evictions = atomic_load_explicit(&s->cache_evictions, memory_order_relaxed);
    o->load_failures = atomic_load_explicit(&s->cache_load_failures, memory_order_relaxed);
}

int ap__service_catalog(ap_service *s, int refresh, ap_repo_model **out, int *n, ap_error *err)
{
    if (refresh) {
        pthread_mutex_lock(&s->admin);
        ap__catalog_refresh(s);
        pthread_mutex_unlock(&s->admin);
    }
    pthread_mutex_lock(&s->catalog_mu);
    int k = s->ncatalog;
    ap_repo_model *c = malloc(((size_t)k + 1) * sizeof *c);
    if (c && k)
        memcpy(c, s->catalog, (size_t)k * sizeof *c);
    pthread_mutex_unlock(&s->catalog_mu);
    if (!c)
        return ap__error_set(err, AP_ENOMEM, "service: out of memory for the catalog");
    *out = c;
    *n = k;
    return AP_OK;
}
