/*
 * Private: the repository folder on disk (repo.c): bounded path joins, the
 * rule that files resolve inside the repository, small reads, version
 * folders and the list of model folders. Touches files only, never the
 * loaded state.
 */
#ifndef AP_REGISTRY_REPO_H
#define AP_REGISTRY_REPO_H

#include <stdint.h>
#include "alphapulse/common.h"
#include "common/error.h"

#define AP_PATH_MAX_LEN 4096

/* dst (AP_PATH_MAX_LEN bytes) = the formatted path; "what: path too long". */
int ap__repo_join(char *dst, const char *what, ap_error *err, const char *fmt, ...)
    AP_PRINTF(4, 5);
/* AP_OK if path does not resolve (the read that follows says what is
   missing) or resolves inside real_root; else an error naming both. */
int ap__repo_inside(const char *real_root, const char *path, const char *what, ap_error *err);
/* A manifest-sized file; "what: cannot read: ..." on error. */
int ap__repo_read_small(const char *path, const char *what, char **buf, size_t *len,
                       ap_error *err);
/* The highest canonical version folder (1/, 2/, ...) of dir. */
int ap__repo_highest_version(const char *dir, const char *name, uint32_t *out, ap_error *err);
/* Sorted malloc'd names of the sub-folders of root not starting with '.';
   free each and the array with ap__repo_names_free. */
int ap__repo_list_models(const char *root, char ***out, int *n, ap_error *err);
void ap__repo_names_free(char **names, int n);
/* 1 if root/name's manifest says ensemble (any error: 0, the load reports it). */
int ap__repo_is_ensemble(const char *root, const char *name);

#endif
