/*
 * The repository folder on disk: bounded paths, the symlink rule (files must
 * resolve inside the repository), small reads, version folders, the list of
 * model folders, and the read-only public listings (ap_registry_list,
 * ap_registry_members). Reads files only, never the loaded state.
 */
#include "registry/repo.h"
#include "registry/registry_internal.h"
#include "common/csv.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- paths and files ---------------------------------------------------- */

int ap__repo_join(char *dst, const char *what, ap_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(dst, AP_PATH_MAX_LEN, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= AP_PATH_MAX_LEN)
        return ap__error_set(err, AP_ERANGE, "%s: path too long", what);
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

int ap__repo_highest_version(const char *dir, const char *name, uint32_t *out, ap_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return ap__error_set(err, AP_EIO, "%s: cannot open the model folder", name);
    uint32_t best = 0;
    struct dirent *de;
    char path[AP_PATH_MAX_LEN];
    struct stat st;
    while ((de = readdir(d))) {
        uint32_t v = version_of(de->d_name);
        if (v > best && snprintf(path, sizeof path, "%s/%s", dir, de->d_name) < AP_PATH_MAX_LEN &&
            stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            best = v;
    }
    closedir(d);
    if (!best)
        return ap__error_set(err, AP_ENOTFOUND, "%s: no version folder (1/, 2/, ...)", name);
    *out = best;
    return AP_OK;
}

/*
 * Symlinks: followed only while they stay inside the repository. A file or
 * folder whose real path leaves it (a link to /dev/zero, to another tree) is
 * refused, so the repository is all a model can read. A path that does not
 * resolve is left to the read that follows (it says what is missing).
 */
int ap__repo_inside(const char *real_root, const char *path, const char *what, ap_error *err)
{
    char *real = realpath(path, NULL);
    if (!real)
        return AP_OK;
    size_t n = strlen(real_root);
    int ok = !strncmp(real, real_root, n) && (real[n] == '/' || real[n] == '\0');
    int rc = ok ? AP_OK
                : ap__error_set(err, AP_EINVAL, "%s: %s resolves to %s, outside the repository "
                               "%s (symbolic links are followed only inside it)", what, path,
                               real, real_root);
    free(real);
    return rc;
}

int ap__repo_read_small(const char *path, const char *what, char **buf, size_t *len,
                      ap_error *err)
{
    ap_error e;
    int rc = ap__read_file(path, AP_MANIFEST_MAX_BYTES, buf, len, &e);
    if (rc != AP_OK)
        ap__error_set(err, rc, "%s: cannot read: %s", what, e.msg);
    return rc;
}


/* ---- model folders and listings ---------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void ap__repo_names_free(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

int ap__repo_list_models(const char *root, char ***out, int *n, ap_error *err)
{
    DIR *d = opendir(root);
    *out = NULL;
    *n = 0;
    if (!d)
        return ap__error_set(err, AP_EIO, "%s: cannot open the repository folder", root);
    char **names = NULL, path[AP_PATH_MAX_LEN];
    int count = 0, rc = AP_OK;
    struct dirent *de;
    struct stat st;
    while (rc == AP_OK && (de = readdir(d))) {
        if (de->d_name[0] == '.' ||
            snprintf(path, sizeof path, "%s/%s", root, de->d_name) >= AP_PATH_MAX_LEN ||
            stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        char **grown = count < 4 * AP_REGISTRY_MAX_MODELS
                           ? realloc(names, (size_t)(count + 1) * sizeof *names) : NULL;
        if (!grown || !(grown[count] = strdup(de->d_name))) {
            if (grown)
                names = grown;
            rc = ap__error_set(err, AP_ERANGE, "%s: too many folders or out of memory", root);
            break;
        }
        names = grown;
        count++;
    }
    closedir(d);
    if (rc != AP_OK) {
        ap__repo_names_free(names, count);
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
    int rc = ap__repo_list_models(reg->root, &names, &count, err);
    if (rc != AP_OK)
        return rc;
    ap_repo_model *list = calloc(count ? (size_t)count : 1, sizeof *list);
    if (!list)
        rc = ap__error_set(err, AP_ENOMEM, "%s: out of memory", reg->root);
    int k = 0;
    for (int i = 0; i < count; i++) {
        if (list && ap__model_name_ok(names[i])) {
            ap_repo_model *r = &list[k++];
            snprintf(r->name, sizeof r->name, "%s", names[i]);
            char path[AP_PATH_MAX_LEN], *buf;
            size_t len;
            ap_manifest man;
            if (snprintf(path, sizeof path, "%s/%s/manifest.json", reg->root, names[i]) <
                    AP_PATH_MAX_LEN &&
                ap__repo_inside(reg->real_root, path, names[i], NULL) == AP_OK &&
                ap__read_file(path, AP_MANIFEST_MAX_BYTES, &buf, &len, NULL) == AP_OK) {
                r->ok = ap__manifest_parse(buf, len, path, &man, NULL) == AP_OK &&
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
    char dir[AP_PATH_MAX_LEN], path[AP_PATH_MAX_LEN], *buf;
    size_t len;
    ap_manifest man;
    *n = 0;
    if (!ap__model_name_ok(name))
        return ap__error_set(err, AP_EINVAL, "'%s' is not a model name", name);
    int rc = ap__repo_join(dir, name, err, "%s/%s", reg->root, name);
    if (rc == AP_OK)
        rc = ap__repo_join(path, name, err, "%s/manifest.json", dir);
    if (rc == AP_OK)
        rc = ap__repo_inside(reg->real_root, path, name, err);
    if (rc == AP_OK)
        rc = ap__repo_read_small(path, name, &buf, &len, err);
    if (rc != AP_OK)
        return rc;
    rc = ap__manifest_parse(buf, len, path, &man, err);
    free(buf);
    if (rc != AP_OK || man.kind != AP_MODEL_ENSEMBLE)
        return rc;
    if (!version)
        version = man.pinned_version;
    if (!version && (rc = ap__repo_highest_version(dir, name, &version, err)) != AP_OK)
        return rc;
    if ((rc = ap__repo_join(path, name, err, "%s/%u/version.json", dir, version)) != AP_OK ||
        (rc = ap__repo_inside(reg->real_root, path, name, err)) != AP_OK ||
        (rc = ap__repo_read_small(path, name, &buf, &len, err)) != AP_OK)
        return rc;
    ap_version_spec spec;
    rc = ap__version_spec_parse(buf, len, AP_MODEL_ENSEMBLE, path, &spec, err);
    free(buf);
    if (rc != AP_OK)
        return rc;
    if (spec.num_inputs > max)
        rc = ap__error_set(err, AP_ERANGE, "%s: %d members (at most %d)", name, spec.num_inputs,
                          max);
    for (int i = 0; rc == AP_OK && i < spec.num_inputs; i++)
        snprintf(names[(*n)++], 65, "%s", spec.inputs[i]);
    ap__version_spec_free(&spec);
    return rc;
}

void ap_registry_listing_free(ap_repo_model *list)
{
    free(list);
}

/* An ensemble loads after the others; any error here is reported by the
   real load. */
int ap__repo_is_ensemble(const char *root, const char *name)
{
    char path[AP_PATH_MAX_LEN], *buf;
    size_t len;
    ap_manifest man;
    if (snprintf(path, sizeof path, "%s/%s/manifest.json", root, name) >= AP_PATH_MAX_LEN ||
        ap__read_file(path, AP_MANIFEST_MAX_BYTES, &buf, &len, NULL) != AP_OK)
        return 0;
    int ens = ap__manifest_parse(buf, len, path, &man, NULL) == AP_OK &&
              man.kind == AP_MODEL_ENSEMBLE;
    free(buf);
    return ens;
}

