/*
 * A read-only view of a parsed XGBoost model document, so one walker
 * (xgboost.c and the files of xgb_load.h) reads both JSON (jansson,
 * xgb_json.c) and UBJSON (ubjson.c).
 *
 * UBJSON is not converted to jansson: XGBoost writes every per-node array as
 * an optimized typed container ([$d#L<n>), and keeping those as one packed
 * value over the input bytes (no per-element allocation) makes UBJ loads
 * several times faster than JSON (see the report / test_xgboost_parity.py).
 */
#ifndef AP_FOREST_XGB_DOC_H
#define AP_FOREST_XGB_DOC_H

#include <stddef.h>
#include "alphapulse/common.h"

enum { XV_NULL, XV_BOOL, XV_INT, XV_REAL, XV_STR, XV_ARR, XV_OBJ };

/* Handles are opaque (json_t * or ubj_val *). NULL means "absent". */
typedef struct xgb_doc_ops {
    /* member of an object, NULL if absent or v is not an object */
    const void *(*member)(const void *obj, const char *key);
    int (*kind)(const void *v);                            /* XV_* */
    size_t (*length)(const void *v);                       /* arrays, else 0 */
    /* element i of an array, NULL for packed numeric arrays (use number_at) */
    const void *(*element)(const void *arr, size_t i);
    /* numeric element i of an array: 0 and *x, *is_int; -1 if not a number */
    int (*number_at)(const void *arr, size_t i, double *x, int *is_int);
    /* scalar number: 0 and *x, *is_int; -1 if not a number */
    int (*number)(const void *v, double *x, int *is_int);
    /* string: 0 and bytes (not NUL-terminated) + length; -1 if not a string */
    int (*string)(const void *v, const char **s, size_t *n);
    /* boolean: 0 and *b; -1 if not a boolean */
    int (*boolean)(const void *v, int *b);
    /* members of an object in file order: it = NULL gives the first; returns
       NULL after the last (or if obj is not an object), else an iterator
       with *key / *klen its key (bytes, not NUL-terminated) and *val its
       value. Lets the loader refuse keys it does not know instead of
       ignoring them. */
    const void *(*next_member)(const void *obj, const void *it, const char **key,
                               size_t *klen, const void **val);
} xgb_doc_ops;

/* JSON (xgb_json.c): parse with jansson after turning XGBoost's bare NaN /
   Infinity tokens into null; on error a message prefixed with `name` and
   the line and column. The root is read through ap__xgb_json_ops. */
struct json_t;
int ap__xgb_json_parse(const char *buf, size_t len, const char *name, struct json_t **root,
                      ap_error *err);
void ap__xgb_json_free(struct json_t *root);
extern const xgb_doc_ops ap__xgb_json_ops;

/* UBJSON (ubjson.c) */
typedef struct ubj_val ubj_val;

/* Parse UBJSON into a tree of values pointing into buf (which must outlive
   it). Counts are checked against the remaining bytes before any allocation;
   nesting is bounded. On error: a message prefixed with `name` and the byte
   offset. */
int ap__ubj_parse(const unsigned char *buf, size_t len, const char *name, ubj_val **root,
                 ap_error *err);
void ap__ubj_free(ubj_val *root);
extern const xgb_doc_ops ap__ubj_ops;

#endif
