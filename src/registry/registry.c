/*
 * The registry: the catalog of model names -> the version each serves now,
 * and its lifecycle (open, load, reload, unload, load everything, free).
 * load.c builds and checks a version completely; this file publishes it
 * with one pointer swap. Readers hold versions by refcount (model.c), so the
 * old one is freed by whoever releases it last. Also kept here: why a model
 * is not loaded, and each name's statistics snapshot.
 */
#include "registry/registry_internal.h"
#include "registry/load.h"
#include "registry/repo.h"
#include "common/error.h"
#include "common/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- publishing a version ----------------------------------------------- */

/* Publish m (NULL: unload) and drop the registry's reference to the old one. */
static void entry_swap(ap_entry *e, ap_model *m)
{
    pthread_mutex_lock(&e->mu);
    ap_model *old = e->current;
    e->current = m;
    pthread_mutex_unlock(&e->mu);
    atomic_store_explicit(&e->stats.version, m ? m->version : 0, memory_order_relaxed);
    ap_model_release(old);
}

/* ---- registry and entries ----------------------------------------------- */

void ap_registry_options_default(ap_registry_options *o)
{
    ap_onnx_options_default(&o->onnx);
    o->mixed_precision = 0;
    o->gpu_min_batch_rows = 0;
}

int ap_registry_open(const char *root, const ap_registry_options *opt, ap_registry **out,
                     ap_error *err)
{
    struct stat st;
    *out = NULL;
    if (!root)
        return ap__error_set(err, AP_EINVAL, "registry: no repository folder given");
    if (stat(root, &st) != 0 || !S_ISDIR(st.st_mode))
        return ap__error_set(err, AP_EIO, "%s: not a readable folder", root);
    ap_registry *reg = calloc(1, sizeof *reg);
    if (!reg || !(reg->root = strdup(root)) || !(reg->real_root = realpath(root, NULL))) {
        if (reg)
            free(reg->root);
        free(reg);
        return ap__error_set(err, AP_ENOMEM, "registry: %s: cannot resolve the folder", root);
    }
    if (opt)
        reg->opt = *opt;
    else
        ap_registry_options_default(&reg->opt);
    if (reg->opt.onnx.ort_library) {
        if (!(reg->ort_library = strdup(reg->opt.onnx.ort_library))) {
            free(reg->root);
            free(reg->real_root);
            free(reg);
            return ap__error_set(err, AP_ENOMEM, "registry: out of memory");
        }
        reg->opt.onnx.ort_library = reg->ort_library;
    }
    pthread_mutex_init(&reg->admin, NULL);
    pthread_mutex_init(&reg->fail_mu, NULL);
    *out = reg;
    return AP_OK;
}

void ap_registry_free(ap_registry *reg)
{
    if (!reg)
        return;
    int n = atomic_load(&reg->count);
    for (int i = 0; i < n; i++) {
        ap_entry *e = reg->entries[i];
        ap_model_release(e->current);
        pthread_mutex_destroy(&e->mu);
        free(e);
    }
    pthread_mutex_destroy(&reg->admin);
    pthread_mutex_destroy(&reg->fail_mu);
    free(reg->root);
    free(reg->real_root);
    free(reg->ort_library);
    free(reg);
}

/* A new entry, not published yet (publish_entry, or free it): a load that
   fails must not take room. Under admin. */
static int new_entry(ap_registry *reg, const char *name, ap_entry **out, ap_error *err)
{
    int n = atomic_load_explicit(&reg->count, memory_order_relaxed);
    if (n >= AP_REGISTRY_MAX_MODELS)
        return ap__error_set(err, AP_ERANGE, "%s: the registry holds at most %d models", name,
                            AP_REGISTRY_MAX_MODELS);
    ap_entry *e = calloc(1, sizeof *e);
    if (!e)
        return ap__error_set(err, AP_ENOMEM, "%s: out of memory", name);
    snprintf(e->name, sizeof e->name, "%s", name);
    pthread_mutex_init(&e->mu, NULL);
    *out = e;
    return AP_OK;
}

static void publish_entry(ap_registry *reg, ap_entry *e)
{
    int n = atomic_load_explicit(&reg->count, memory_order_relaxed);
    reg->entries[n] = e;
    /* release: readers that see the new count see the entry initialised */
    atomic_store_explicit(&reg->count, n + 1, memory_order_release);
}

/* ---- why a model is not loaded ------------------------------------------- */

static void failure_set(ap_registry *reg, const char *name, const char *msg)
{
    pthread_mutex_lock(&reg->fail_mu);
    int i = 0;
    while (i < reg->nfailures && strcmp(reg->failures[i].name, name))
        i++;
    if (i == reg->nfailures && i < AP_REGISTRY_MAX_MODELS)
        reg->nfailures++;
    if (i < reg->nfailures) {
        snprintf(reg->failures[i].name, sizeof reg->failures[i].name, "%s", name);
        snprintf(reg->failures[i].msg, sizeof reg->failures[i].msg, "%s", msg);
    }
    pthread_mutex_unlock(&reg->fail_mu);
}

static void failure_clear(ap_registry *reg, const char *name)
{
    pthread_mutex_lock(&reg->fail_mu);
    for (int i = 0; i < reg->nfailures; i++)
        if (!strcmp(reg->failures[i].name, name)) {
            reg->failures[i] = reg->failures[--reg->nfailures];
            break;
        }
    pthread_mutex_unlock(&reg->fail_mu);
}

int ap_registry_failure(ap_registry *reg, const char *name, char *msg, size_t size)
{
    int found = 0;
    pthread_mutex_lock(&reg->fail_mu);
    for (int i = 0; i < reg->nfailures && !found; i++)
        if (!strcmp(reg->failures[i].name, name)) {
            snprintf(msg, size, "%s", reg->failures[i].msg);
            found = 1;
        }
    pthread_mutex_unlock(&reg->fail_mu);
    return found;
}

int ap_registry_count(const ap_registry *reg)
{
    return atomic_load_explicit(&reg->count, memory_order_acquire);
}

const char *ap_registry_name(const ap_registry *reg, int i)
{
    return i >= 0 && i < ap_registry_count(reg) ? reg->entries[i]->name : NULL;
}

int ap_registry_acquire(ap_registry *reg, const char *name, ap_model **out, ap_error *err)
{
    *out = NULL;
    ap_entry *e = name ? ap__registry_find_entry(reg, name) : NULL;
    if (!e)
        return ap__error_set(err, AP_ENOTFOUND, "model '%s' is not in the repository",
                            name ? name : "(null)");
    if (!(*out = ap__entry_acquire(e)))
        return ap__error_set(err, AP_ENOTFOUND, "model '%s' is not loaded", name);
    return AP_OK;
}

/* Under admin: the name of a loaded ensemble whose members include e. */
static const char *used_by_ensemble(const ap_registry *reg, const ap_entry *e)
{
    int n = ap_registry_count(reg);
    for (int i = 0; i < n; i++) {
        const ap_model *m = reg->entries[i]->current;
        if (!m || m->man.kind != AP_MODEL_ENSEMBLE)
            continue;
        for (int k = 0; k < m->spec.num_inputs; k++)
            if (m->members[k] == e)
                return m->entry->name;
    }
    return NULL;
}

int ap_registry_unload(ap_registry *reg, const char *name, ap_error *err)
{
    pthread_mutex_lock(&reg->admin);
    int rc = AP_OK;
    ap_entry *e = ap__registry_find_entry(reg, name);
    const char *user = e ? used_by_ensemble(reg, e) : NULL;
    if (!e || !e->current)
        rc = ap__error_set(err, AP_ENOTFOUND, "model '%s' is not loaded", name);
    else if (user)
        rc = ap__error_set(err, AP_EINVAL, "cannot unload '%s': ensemble '%s' uses it", name,
                          user);
    else
        entry_swap(e, NULL);
    pthread_mutex_unlock(&reg->admin);
    return rc;
}

int ap_registry_stats(const ap_registry *reg, const char *name, ap_model_stats *out,
                      ap_error *err)
{
    const ap_entry *e = ap__registry_find_entry(reg, name);
    if (!e)
        return ap__error_set(err, AP_ENOTFOUND, "model '%s' is not in the repository", name);
    const ap_stats *s = &e->stats;
    out->version = atomic_load_explicit(&s->version, memory_order_relaxed);
    out->loads = atomic_load_explicit(&s->loads, memory_order_relaxed);
    out->load_errors = atomic_load_explicit(&s->load_errors, memory_order_relaxed);
    out->load_time_ns = atomic_load_explicit(&s->load_time_ns, memory_order_relaxed);
    out->predictions = atomic_load_explicit(&s->predictions, memory_order_relaxed);
    out->errors = atomic_load_explicit(&s->errors, memory_order_relaxed);
    out->latency_count = atomic_load_explicit(&s->lat_count, memory_order_relaxed);
    out->latency_sum_ns = atomic_load_explicit(&s->lat_sum_ns, memory_order_relaxed);
    out->latency_min_ns = atomic_load_explicit(&s->lat_min_ns, memory_order_relaxed);
    out->latency_max_ns = atomic_load_explicit(&s->lat_max_ns, memory_order_relaxed);
    for (int i = 0; i < AP_LATENCY_BUCKETS; i++)
        out->latency_buckets[i] = atomic_load_explicit(&s->lat_buckets[i], memory_order_relaxed);
    return AP_OK;
}


/* ---- loading: publish what load.c built ---------------------------------- */

static int load_locked(ap_registry *reg, const char *name, uint32_t version, ap_error *err)
{
    if (!name || !ap__model_name_ok(name))
        return ap__error_set(err, AP_EINVAL, "'%s' is not a model name ([A-Za-z0-9_.-], 1..64)",
                            name ? name : "(null)");
    char dir[AP_PATH_MAX_LEN];
    struct stat st;
    int in_repo = snprintf(dir, sizeof dir, "%s/%s", reg->root, name) < AP_PATH_MAX_LEN &&
                  stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
    if (!in_repo)
        return ap__error_set(err, AP_ENOTFOUND, "model '%s' is not in the repository (no folder "
                            "%s/%s)", name, reg->root, name);
    ap_entry *e = ap__registry_find_entry(reg, name);
    int fresh = !e;
    int rc = fresh ? new_entry(reg, name, &e, err) : AP_OK;
    if (rc != AP_OK) {
        failure_set(reg, name, err ? err->msg : "cannot load");
        return rc;
    }
    uint64_t t0 = ap__clock_ns();
    ap_model *m;
    rc = ap__version_build(reg, name, version, e, &m, err);
    const char *user = rc == AP_OK && m->man.kind != AP_MODEL_PATTERN &&
                               m->man.kind != AP_MODEL_REGIME
                           ? used_by_ensemble(reg, e) : NULL;
    if (user) {
        rc = ap__error_set(err, AP_EINVAL,
                          "%s: is now a %s model, but ensemble '%s' uses it as a member", name,
                          ap__model_kind_name(m->man.kind), user);
        ap__model_free_now(m);
    }
    if (rc != AP_OK) {
        failure_set(reg, name, err ? err->msg : "cannot load");
        if (fresh) { /* nothing of a failed first load stays */
            pthread_mutex_destroy(&e->mu);
            free(e);
        } else {
            atomic_fetch_add_explicit(&e->stats.load_errors, 1, memory_order_relaxed);
        }
        return rc;
    }
    if (fresh)
        publish_entry(reg, e);
    failure_clear(reg, name);
    atomic_store_explicit(&e->stats.load_time_ns, ap__clock_ns() - t0, memory_order_relaxed);
    atomic_fetch_add_explicit(&e->stats.loads, 1, memory_order_relaxed);
    entry_swap(e, m);
    return AP_OK;
}

int ap_registry_load(ap_registry *reg, const char *name, uint32_t version, ap_error *err)
{
    pthread_mutex_lock(&reg->admin);
    int rc = load_locked(reg, name, version, err);
    pthread_mutex_unlock(&reg->admin);
    return rc;
}

/* ---- the whole repository ----------------------------------------------- */

int ap_registry_load_all(ap_registry *reg, ap_registry_report_fn report, void *ctx,
                         ap_error *err)
{
    char **names;
    int n, failed = 0;
    pthread_mutex_lock(&reg->admin);
    int rc = ap__repo_list_models(reg->root, &names, &n, err);
    if (rc != AP_OK) {
        pthread_mutex_unlock(&reg->admin);
        return rc;
    }
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++) {
            if (ap__repo_is_ensemble(reg->root, names[i]) != pass)
                continue;
            ap_error e = {0};
            int lrc = load_locked(reg, names[i], 0, &e);
            failed += lrc != AP_OK;
            if (report) {
                ap_entry *en = lrc == AP_OK ? ap__registry_find_entry(reg, names[i]) : NULL;
                report(ctx, names[i], en ? en->current : NULL, lrc == AP_OK ? NULL : &e);
            }
        }
    pthread_mutex_unlock(&reg->admin);
    ap__repo_names_free(names, n);
    return failed;
}
