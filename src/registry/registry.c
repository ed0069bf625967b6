/*
 * The registry: model names -> the version served now. Loading builds and
 * checks a version completely (files, widths, names, warm-up predictions)
 * before one pointer swap publishes it; readers hold versions by refcount,
 * so the old one is freed by whoever releases it last.
 */
#include "registry/registry_internal.h"
#include "alphapulse/features.h"
#include "common/csv.h"
#include "common/error.h"
#include "common/clock.h"

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define PATH_MAX_LEN 4096

/* ---- versions: refcount ------------------------------------------------- */

void ap_model_free_now(ap_model *m)
{
    if (!m)
        return;
    if (m->ops)
        m->ops->free(m->impl);
    ap_version_spec_free(&m->spec);
    free(m->members);
    free(m);
}

void ap_model_release(ap_model *m)
{
    if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
        ap_model_free_now(m);
}

void ap_model_retain(ap_model *m)
{
    if (m)
        atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
}

ap_model *ap_entry_acquire(ap_entry *e)
{
    pthread_mutex_lock(&e->mu);
    ap_model *m = e->current;
    if (m)
        atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&e->mu);
    return m;
}

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
}

int ap_registry_open(const char *root, const ap_registry_options *opt, ap_registry **out,
                     ap_error *err)
{
    struct stat st;
    *out = NULL;
    if (!root)
        return ap_error_set(err, AP_EINVAL, "registry: no repository folder given");
    if (stat(root, &st) != 0 || !S_ISDIR(st.st_mode))
        return ap_error_set(err, AP_EIO, "%s: not a readable folder", root);
    ap_registry *reg = calloc(1, sizeof *reg);
    if (!reg || !(reg->root = strdup(root)) || !(reg->real_root = realpath(root, NULL))) {
        if (reg)
            free(reg->root);
        free(reg);
        return ap_error_set(err, AP_ENOMEM, "registry: %s: cannot resolve the folder", root);
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
            return ap_error_set(err, AP_ENOMEM, "registry: out of memory");
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

static ap_entry *find_entry(const ap_registry *reg, const char *name)
{
    int n = atomic_load_explicit(&reg->count, memory_order_acquire);
    for (int i = 0; i < n; i++)
        if (!strcmp(reg->entries[i]->name, name))
            return reg->entries[i];
    return NULL;
}

/* A new entry, not published yet (publish_entry, or free it): a load that
   fails must not take room. Under admin. */
static int new_entry(ap_registry *reg, const char *name, ap_entry **out, ap_error *err)
{
    int n = atomic_load_explicit(&reg->count, memory_order_relaxed);
    if (n >= AP_REGISTRY_MAX_MODELS)
        return ap_error_set(err, AP_ERANGE, "%s: the registry holds at most %d models", name,
                            AP_REGISTRY_MAX_MODELS);
    ap_entry *e = calloc(1, sizeof *e);
    if (!e)
        return ap_error_set(err, AP_ENOMEM, "%s: out of memory", name);
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
    ap_entry *e = name ? find_entry(reg, name) : NULL;
    if (!e)
        return ap_error_set(err, AP_ENOTFOUND, "model '%s' is not in the repository",
                            name ? name : "(null)");
    if (!(*out = ap_entry_acquire(e)))
        return ap_error_set(err, AP_ENOTFOUND, "model '%s' is not loaded", name);
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
    ap_entry *e = find_entry(reg, name);
    const char *user = e ? used_by_ensemble(reg, e) : NULL;
    if (!e || !e->current)
        rc = ap_error_set(err, AP_ENOTFOUND, "model '%s' is not loaded", name);
    else if (user)
        rc = ap_error_set(err, AP_EINVAL, "cannot unload '%s': ensemble '%s' uses it", name,
                          user);
    else
        entry_swap(e, NULL);
    pthread_mutex_unlock(&reg->admin);
    return rc;
}

int ap_registry_stats(const ap_registry *reg, const char *name, ap_model_stats *out,
                      ap_error *err)
{
    const ap_entry *e = find_entry(reg, name);
    if (!e)
        return ap_error_set(err, AP_ENOTFOUND, "model '%s' is not in the repository", name);
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

/* ---- loading one version ------------------------------------------------ */

static int join(char *dst, const char *what, ap_error *err, const char *fmt, ...)
    AP_PRINTF(4, 5);
static int join(char *dst, const char *what, ap_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(dst, PATH_MAX_LEN, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= PATH_MAX_LEN)
        return ap_error_set(err, AP_ERANGE, "%s: path too long", what);
    return AP_OK;
}

/* A canonical version folder name: 1..4294967295, no leading zero. */
static uint32_t version_of(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 10 || s[0] == '0')
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    return v <= UINT32_MAX ? (uint32_t)v : 0;
}

static int highest_version(const char *dir, const char *name, uint32_t *out, ap_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return ap_error_set(err, AP_EIO, "%s: cannot open the model folder", name);
    uint32_t best = 0;
    struct dirent *de;
    char path[PATH_MAX_LEN];
    struct stat st;
    while ((de = readdir(d))) {
        uint32_t v = version_of(de->d_name);
        if (v > best && snprintf(path, sizeof path, "%s/%s", dir, de->d_name) < PATH_MAX_LEN &&
            stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            best = v;
    }
    closedir(d);
    if (!best)
        return ap_error_set(err, AP_ENOTFOUND, "%s: no version folder (1/, 2/, ...)", name);
    *out = best;
    return AP_OK;
}

/*
 * Symlinks: followed only while they stay inside the repository. A file or
 * folder whose real path leaves it (a link to /dev/zero, to another tree) is
 * refused, so the repository is all a model can read. A path that does not
 * resolve is left to the read that follows (it says what is missing).
 */
static int inside(const ap_registry *reg, const char *path, const char *what, ap_error *err)
{
    char *real = realpath(path, NULL);
    if (!real)
        return AP_OK;
    size_t n = strlen(reg->real_root);
    int ok = !strncmp(real, reg->real_root, n) && (real[n] == '/' || real[n] == '\0');
    int rc = ok ? AP_OK
                : ap_error_set(err, AP_EINVAL, "%s: %s resolves to %s, outside the repository "
                               "%s (symbolic links are followed only inside it)", what, path,
                               real, reg->real_root);
    free(real);
    return rc;
}

static int read_small(const char *path, const char *what, char **buf, size_t *len,
                      ap_error *err)
{
    ap_error e;
    int rc = ap_read_file(path, AP_MANIFEST_MAX_BYTES, buf, len, &e);
    if (rc != AP_OK)
        ap_error_set(err, rc, "%s: cannot read: %s", what, e.msg);
    return rc;
}

/* Predictor: load the model file, check it against the version spec. */
static int attach_predictor(const ap_registry *reg, ap_model *m, const char *dir,
                            const char *what, ap_error *err)
{
    char path[PATH_MAX_LEN];
    const ap_version_spec *s = &m->spec;
    m->ops = ap_predictor_find(s->format);
    if (!m->ops)
        return ap_error_set(err, AP_EUNSUPPORTED, "%s: unknown format '%s' (%s)", what,
                            s->format, ap_predictor_formats());
    int rc = join(path, what, err, "%s/%s", dir, s->file);
    struct stat st;
    if (rc == AP_OK && stat(path, &st) != 0)
        rc = ap_error_set(err, AP_EIO, "%s: model file '%s' is missing", what, s->file);
    if (rc == AP_OK)
        rc = inside(reg, path, what, err);
    if (rc == AP_OK)
        rc = m->ops->load(path, &reg->opt, &m->impl, err);
    if (rc != AP_OK) {
        m->ops = NULL;
        return rc;
    }
    m->ops->describe(m->impl, &m->desc);
    m->num_outputs = m->desc.num_outputs;
    int width = ap_pipeline_out_width(s->pipeline);
    if (width != m->desc.num_features)
        return ap_error_set(err, AP_EFORMAT,
                            "%s: width mismatch: %d inputs -> pipeline [%s] gives %d columns, "
                            "but %s reads %d features",
                            what, s->num_inputs, ap_pipeline_describe(s->pipeline), width,
                            s->file, m->desc.num_features);
    if (s->output_index >= m->num_outputs)
        return ap_error_set(err, AP_ERANGE, "%s: output_index %d, but %s has %d output(s)",
                            what, s->output_index, s->file, m->num_outputs);
    /* when columns pass through unchanged, names stored in the model file
       must be the manifest's features in the same order */
    for (int j = 0; s->inputs && ap_pipeline_keeps_columns(s->pipeline) && j < width; j++) {
        const char *fn = m->ops->feature_name(m->impl, j);
        if (fn && strcmp(fn, s->inputs[j]))
            return ap_error_set(err, AP_EFORMAT,
                                "%s: features[%d] is '%s' but %s names its feature %d '%s'",
                                what, j, s->inputs[j], s->file, j, fn);
    }
    return AP_OK;
}

/* Under admin: members must be loaded feature models. */
static int attach_members(ap_registry *reg, ap_model *m, const char *what, ap_error *err)
{
    const ap_version_spec *s = &m->spec;
    m->members = calloc((size_t)s->num_inputs, sizeof *m->members);
    if (!m->members)
        return ap_error_set(err, AP_ENOMEM, "%s: out of memory", what);
    for (int k = 0; k < s->num_inputs; k++) {
        ap_entry *e = find_entry(reg, s->inputs[k]);
        if (!e || !e->current)
            return ap_error_set(err, AP_ENOTFOUND, "%s: member '%s' is not a loaded model", what,
                                s->inputs[k]);
        ap_model_kind kind = e->current->man.kind;
        if (kind != AP_MODEL_PATTERN && kind != AP_MODEL_REGIME)
            return ap_error_set(err, AP_EINVAL,
                                "%s: member '%s' is a %s model; members are pattern or regime "
                                "models", what, s->inputs[k], ap_model_kind_name(kind));
        m->members[k] = e;
    }
    m->num_outputs = s->num_inputs;
    snprintf(m->describe, sizeof m->describe, "%s(%d members)",
             s->combiner == AP_COMBINE_LOGISTIC ? "logistic" : "weighted_mean", s->num_inputs);
    return AP_OK;
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
    int rc = row && outs ? AP_OK : ap_error_set(err, AP_ENOMEM, "%s: out of memory", what);
    for (int pass = 0; rc == AP_OK && pass < 2; pass++) {
        double pred, conf;
        for (int j = 0; j < width; j++)
            row[j] = pass ? 0.0 : NAN;
        rc = ap_model_predict_impl(m, row, 1, full, &pred, &conf, outs, err);
        if (rc == AP_OK && (!isfinite(pred) || !isfinite(conf)))
            rc = ap_error_set(err, AP_EFORMAT,
                              "%s: warm-up prediction on a %s row is not finite (%g)", what,
                              pass ? "zero" : "NaN", pred);
    }
    free(row);
    free(outs);
    return rc;
}

/* Under admin: build version `version` (0: by policy) of `name` completely. */
static int build_version(ap_registry *reg, const char *name, uint32_t version, ap_entry *e,
                         ap_model **out, ap_error *err)
{
    char dir[PATH_MAX_LEN], path[PATH_MAX_LEN], what[PATH_MAX_LEN];
    char *buf = NULL;
    size_t len;
    *out = NULL;
    ap_model *m = calloc(1, sizeof *m);
    if (!m)
        return ap_error_set(err, AP_ENOMEM, "%s: out of memory", name);
    atomic_init(&m->refs, 1);
    m->entry = e;
    int rc = join(dir, name, err, "%s/%s", reg->root, name);
    if (rc == AP_OK)
        rc = join(path, name, err, "%s/manifest.json", dir);
    if (rc == AP_OK)
        rc = join(what, name, err, "%s/manifest.json", name);
    if (rc == AP_OK)
        rc = inside(reg, path, what, err);
    if (rc == AP_OK)
        rc = read_small(path, what, &buf, &len, err);
    if (rc == AP_OK)
        rc = ap_manifest_parse(buf, len, what, &m->man, err);
    free(buf);
    buf = NULL;
    if (rc == AP_OK && strcmp(m->man.name, name))
        rc = ap_error_set(err, AP_EFORMAT, "%s: name '%s' differs from its folder '%s'", what,
                          m->man.name, name);
    if (rc == AP_OK && !version)
        version = m->man.pinned_version;
    if (rc == AP_OK && !version)
        rc = highest_version(dir, name, &version, err);
    m->version = version;
    if (rc == AP_OK)
        rc = join(dir, name, err, "%s/%s/%u", reg->root, name, version);
    if (rc == AP_OK)
        rc = join(path, name, err, "%s/version.json", dir);
    if (rc == AP_OK)
        rc = join(what, name, err, "%s/%u/version.json", name, version);
    struct stat st;
    if (rc == AP_OK && (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)))
        rc = ap_error_set(err, AP_ENOTFOUND, "%s: version %u: no folder %s/%u", name, version,
                          name, version);
    if (rc == AP_OK)
        rc = inside(reg, path, what, err);
    if (rc == AP_OK)
        rc = read_small(path, what, &buf, &len, err);
    if (rc == AP_OK)
        rc = ap_version_spec_parse(buf, len, m->man.kind, what, &m->spec, err);
    free(buf);
    if (rc == AP_OK && m->man.kind == AP_MODEL_ENSEMBLE) {
        rc = attach_members(reg, m, what, err);
    } else if (rc == AP_OK) {
        rc = attach_predictor(reg, m, dir, what, err);
        snprintf(m->describe, sizeof m->describe, "%s", ap_pipeline_describe(m->spec.pipeline));
    }
    if (rc == AP_OK && m->spec.pipeline)
        m->scratch_per_row = 2 * ap_pipeline_max_width(m->spec.pipeline) + m->num_outputs;
    if (rc == AP_OK)
        rc = warm_up(m, what, err);
    if (rc != AP_OK) {
        ap_model_free_now(m);
        return rc;
    }
    *out = m;
    return AP_OK;
}

static int load_locked(ap_registry *reg, const char *name, uint32_t version, ap_error *err)
{
    if (!name || !ap_model_name_ok(name))
        return ap_error_set(err, AP_EINVAL, "'%s' is not a model name ([A-Za-z0-9_.-], 1..64)",
                            name ? name : "(null)");
    char dir[PATH_MAX_LEN];
    struct stat st;
    int in_repo = snprintf(dir, sizeof dir, "%s/%s", reg->root, name) < PATH_MAX_LEN &&
                  stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
    if (!in_repo)
        return ap_error_set(err, AP_ENOTFOUND, "model '%s' is not in the repository (no folder "
                            "%s/%s)", name, reg->root, name);
    ap_entry *e = find_entry(reg, name);
    int fresh = !e;
    int rc = fresh ? new_entry(reg, name, &e, err) : AP_OK;
    if (rc != AP_OK) {
        failure_set(reg, name, err ? err->msg : "cannot load");
        return rc;
    }
    uint64_t t0 = ap_clock_ns();
    ap_model *m;
    rc = build_version(reg, name, version, e, &m, err);
    const char *user = rc == AP_OK && m->man.kind != AP_MODEL_PATTERN &&
                               m->man.kind != AP_MODEL_REGIME
                           ? used_by_ensemble(reg, e) : NULL;
    if (user) {
        rc = ap_error_set(err, AP_EINVAL,
                          "%s: is now a %s model, but ensemble '%s' uses it as a member", name,
                          ap_model_kind_name(m->man.kind), user);
        ap_model_free_now(m);
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
    atomic_store_explicit(&e->stats.load_time_ns, ap_clock_ns() - t0, memory_order_relaxed);
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

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of the sub-folders of root (not starting with '.'). */
static int list_models(const char *root, char ***out, int *n, ap_error *err)
{
    DIR *d = opendir(root);
    *out = NULL;
    *n = 0;
    if (!d)
        return ap_error_set(err, AP_EIO, "%s: cannot open the repository folder", root);
    char **names = NULL, path[PATH_MAX_LEN];
    int count = 0, rc = AP_OK;
    struct dirent *de;
    struct stat st;
    while (rc == AP_OK && (de = readdir(d))) {
        if (de->d_name[0] == '.' ||
            snprintf(path, sizeof path, "%s/%s", root, de->d_name) >= PATH_MAX_LEN ||
            stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        char **grown = count < 4 * AP_REGISTRY_MAX_MODELS
                           ? realloc(names, (size_t)(count + 1) * sizeof *names) : NULL;
        if (!grown || !(grown[count] = strdup(de->d_name))) {
            if (grown)
                names = grown;
            rc = ap_error_set(err, AP_ERANGE, "%s: too many folders or out of memory", root);
            break;
        }
        names = grown;
        count++;
    }
    closedir(d);
    if (rc != AP_OK) {
        for (int i = 0; i < count; i++)
            free(names[i]);
        free(names);
        return rc;
    }
    if (count)
        qsort(names, (size_t)count, sizeof *names, cmp_str);
    *out = names;
    *n = count;
    return AP_OK;
}

int ap_registry_list(const ap_registry *reg, ap_repo_model **out, int *n, ap_error *err)
{
    char **names;
    int count;
    *out = NULL;
    *n = 0;
    int rc = list_models(reg->root, &names, &count, err);
    if (rc != AP_OK)
        return rc;
    ap_repo_model *list = calloc(count ? (size_t)count : 1, sizeof *list);
    if (!list)
        rc = ap_error_set(err, AP_ENOMEM, "%s: out of memory", reg->root);
    int k = 0;
    for (int i = 0; i < count; i++) {
        if (list && ap_model_name_ok(names[i])) {
            ap_repo_model *r = &list[k++];
            snprintf(r->name, sizeof r->name, "%s", names[i]);
            char path[PATH_MAX_LEN], *buf;
            size_t len;
            ap_manifest man;
            if (snprintf(path, sizeof path, "%s/%s/manifest.json", reg->root, names[i]) <
                    PATH_MAX_LEN &&
                inside(reg, path, names[i], NULL) == AP_OK &&
                ap_read_file(path, AP_MANIFEST_MAX_BYTES, &buf, &len, NULL) == AP_OK) {
                r->ok = ap_manifest_parse(buf, len, path, &man, NULL) == AP_OK &&
                        !strcmp(man.name, names[i]);
                if (r->ok) {
                    r->kind = man.kind;
                    snprintf(r->target, sizeof r->target, "%s", man.target);
                }
                free(buf);
            }
        }
        free(names[i]);
    }
    free(names);
    if (rc != AP_OK) {
        free(list);
        return rc;
    }
    *out = list;
    *n = k;
    return AP_OK;
}

int ap_registry_members(ap_registry *reg, const char *name, uint32_t version,
                        char (*names)[65], int max, int *n, ap_error *err)
{
    char dir[PATH_MAX_LEN], path[PATH_MAX_LEN], *buf;
    size_t len;
    ap_manifest man;
    *n = 0;
    if (!ap_model_name_ok(name))
        return ap_error_set(err, AP_EINVAL, "'%s' is not a model name", name);
    int rc = join(dir, name, err, "%s/%s", reg->root, name);
    if (rc == AP_OK)
        rc = join(path, name, err, "%s/manifest.json", dir);
    if (rc == AP_OK)
        rc = inside(reg, path, name, err);
    if (rc == AP_OK)
        rc = read_small(path, name, &buf, &len, err);
    if (rc != AP_OK)
        return rc;
    rc = ap_manifest_parse(buf, len, path, &man, err);
    free(buf);
    if (rc != AP_OK || man.kind != AP_MODEL_ENSEMBLE)
        return rc;
    if (!version)
        version = man.pinned_version;
    if (!version && (rc = highest_version(dir, name, &version, err)) != AP_OK)
        return rc;
    if ((rc = join(path, name, err, "%s/%u/version.json", dir, version)) != AP_OK ||
        (rc = inside(reg, path, name, err)) != AP_OK ||
        (rc = read_small(path, name, &buf, &len, err)) != AP_OK)
        return rc;
    ap_version_spec spec;
    rc = ap_version_spec_parse(buf, len, AP_MODEL_ENSEMBLE, path, &spec, err);
    free(buf);
    if (rc != AP_OK)
        return rc;
    if (spec.num_inputs > max)
        rc = ap_error_set(err, AP_ERANGE, "%s: %d members (at most %d)", name, spec.num_inputs,
                          max);
    for (int i = 0; rc == AP_OK && i < spec.num_inputs; i++)
        snprintf(names[(*n)++], 65, "%s", spec.inputs[i]);
    ap_version_spec_free(&spec);
    return rc;
}

void ap_registry_listing_free(ap_repo_model *list)
{
    free(list);
}

/* An ensemble's manifest says so: load it after the others. Any error here
   is reported by the real load. */
static int is_ensemble(const char *root, const char *name)
{
    char path[PATH_MAX_LEN], *buf;
    size_t len;
    ap_manifest man;
    if (snprintf(path, sizeof path, "%s/%s/manifest.json", root, name) >= PATH_MAX_LEN ||
        ap_read_file(path, AP_MANIFEST_MAX_BYTES, &buf, &len, NULL) != AP_OK)
        return 0;
    int ens = ap_manifest_parse(buf, len, path, &man, NULL) == AP_OK &&
              man.kind == AP_MODEL_ENSEMBLE;
    free(buf);
    return ens;
}

int ap_registry_load_all(ap_registry *reg, ap_registry_report_fn report, void *ctx,
                         ap_error *err)
{
    char **names;
    int n, failed = 0;
    pthread_mutex_lock(&reg->admin);
    int rc = list_models(reg->root, &names, &n, err);
    if (rc != AP_OK) {
        pthread_mutex_unlock(&reg->admin);
        return rc;
    }
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++) {
            if (is_ensemble(reg->root, names[i]) != pass)
                continue;
            ap_error e = {0};
            int lrc = load_locked(reg, names[i], 0, &e);
            failed += lrc != AP_OK;
            if (report) {
                ap_entry *en = lrc == AP_OK ? find_entry(reg, names[i]) : NULL;
                report(ctx, names[i], en ? en->current : NULL, lrc == AP_OK ? NULL : &e);
            }
        }
    pthread_mutex_unlock(&reg->admin);
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return failed;
}

/* ---- description -------------------------------------------------------- */

void ap_model_describe(const ap_model *m, ap_model_info *out)
{
    memset(out, 0, sizeof *out);
    int ens = m->man.kind == AP_MODEL_ENSEMBLE;
    out->name = m->man.name;
    out->kind = m->man.kind;
    out->kind_name = ap_model_kind_name(m->man.kind);
    out->target = m->man.target;
    out->format = ens ? "ensemble" : m->spec.format;
    out->file = m->spec.file;
    out->version = m->version;
    out->num_inputs = m->spec.num_inputs;
    out->num_outputs = m->num_outputs;
    out->num_trees = ens ? 0 : m->desc.num_trees;
    out->pipeline_steps = m->spec.pipeline ? ap_pipeline_num_steps(m->spec.pipeline) : 0;
    out->pipeline = m->describe;
    out->confidence = ap_confidence_name(m->spec.confidence);
    out->output_index = m->spec.output_index;
    out->max_batch_size = m->man.max_batch_size;
    out->max_queue_delay_us = m->man.max_queue_delay_us;
    out->min_bars = m->man.min_bars;
}

int ap_model_features_used(const ap_model *m, unsigned char *used)
{
    int F = ap_feature_count();
    memset(used, 0, (size_t)F);
    if (m->man.kind == AP_MODEL_ENSEMBLE) {
        unsigned char sub[AP_FEATURE_COUNT];
        for (int k = 0; k < m->spec.num_inputs; k++) {
            ap_model *mm = ap_entry_acquire(m->members[k]);
            if (!mm)
                continue;
            ap_model_features_used(mm, sub);
            ap_model_release(mm);
            for (int j = 0; j < F; j++)
                used[j] |= sub[j];
        }
    } else if (m->man.kind != AP_MODEL_RAW && m->spec.feature_idx) {
        for (int j = 0; j < m->spec.num_inputs; j++)
            used[m->spec.feature_idx[j]] = 1;
    }
    int n = 0;
    for (int j = 0; j < F; j++)
        n += used[j];
    return n;
}

const char *ap_model_input_name(const ap_model *m, int i)
{
    if (!m->spec.inputs || i < 0 || i >= m->spec.num_inputs)
        return NULL;
    return m->spec.inputs[i];
}
