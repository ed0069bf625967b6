/*
 * Typed access to an XGBoost model document (either view of xgb_doc.h):
 * a field of a given kind, integers written as strings or numbers, the
 * per-node arrays of a tree, floats that float can hold. Every refusal is a
 * message naming the file, the object and the key (or tree and node).
 */
#include "forest/xgb_load.h"
#include "common/error.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *ap__xgb_kind_name(int kind)
{
    static const char *const names[] = {"null", "boolean", "integer", "number",
                                        "string", "array", "object"};
    return names[kind];
}

/* obj[key] of the given kind; `where` names obj in messages. */
int ap__xgb_need(xgb_ld *L, const void *obj, const char *key, int kind, const char *where,
                const void **out)
{
    const void *v = L->o->member(obj, key);
    if (!v)
        return ap__error_set(L->err, AP_EFORMAT, "%s: %s: missing field '%s'", L->name, where,
                            key);
    int k = L->o->kind(v);
    if (k != kind && !(kind == XV_REAL && k == XV_INT))
        return ap__error_set(L->err, AP_EFORMAT, "%s: %s.%s: expected %s, found %s", L->name, where,
                            key, ap__xgb_kind_name(kind), ap__xgb_kind_name(k));
    *out = v;
    return AP_OK;
}

/* Integer field written as a string ("42", XGBoost's parameters) or a number. */
int ap__xgb_int_field(xgb_ld *L, const void *obj, const char *key, const char *where, long lo,
                     long hi, long dflt, int required, long *out)
{
    const void *v = L->o->member(obj, key);
    if (!v) {
        if (required)
            return ap__error_set(L->err, AP_EFORMAT, "%s: %s: missing field '%s'", L->name, where,
                                key);
        *out = dflt;
        return AP_OK;
    }
    const char *s;
    size_t n;
    double x;
    int is_int;
    if (L->o->string(v, &s, &n) == 0) {
        char tmp[32];
        char *end;
        if (n == 0 || n >= sizeof tmp)
            goto bad;
        memcpy(tmp, s, n);
        tmp[n] = '\0';
        x = strtod(tmp, &end);
        if (*end || x != floor(x))
            goto bad;
    } else if (L->o->number(v, &x, &is_int) != 0 || !is_int) {
        goto bad;
    }
    if (!(x >= (double)lo && x <= (double)hi))
        return ap__error_set(L->err, AP_ERANGE, "%s: %s.%s = %.17g out of range [%ld, %ld]",
                            L->name, where, key, x, lo, hi);
    *out = (long)x;
    return AP_OK;
bad:
    return ap__error_set(L->err, AP_EFORMAT, "%s: %s.%s: expected an integer", L->name, where,
                        key);
}

/* A per-node array of a tree: must be an array of exactly n elements. */
int ap__xgb_node_array(xgb_ld *L, const void *tobj, const char *key, int ti, long n, int required,
                      const void **out)
{
    const void *v = L->o->member(tobj, key);
    *out = NULL;
    if (!v) {
        if (!required)
            return AP_OK;
        return ap__error_set(L->err, AP_EFORMAT, "%s: tree %d: missing field '%s'", L->name, ti,
                            key);
    }
    if (L->o->kind(v) != XV_ARR)
        return ap__error_set(L->err, AP_EFORMAT, "%s: tree %d: %s: expected array, found %s",
                            L->name, ti, key, ap__xgb_kind_name(L->o->kind(v)));
    if (n >= 0 && L->o->length(v) != (size_t)n)
        return ap__error_set(L->err, AP_EFORMAT,
                            "%s: tree %d: %s has %zu entries but num_nodes is %ld", L->name, ti,
                            key, L->o->length(v), n);
    *out = v;
    return AP_OK;
}

/* Integer element i of arr. */
int ap__xgb_int_at(xgb_ld *L, const void *arr, long i, int ti, const char *key, double *x)
{
    int is_int;
    if (L->o->number_at(arr, (size_t)i, x, &is_int) != 0 || !is_int)
        return ap__error_set(L->err, AP_EFORMAT, "%s: tree %d node %ld: %s is not an integer",
                            L->name, ti, i, key);
    return AP_OK;
}

/* A double as float, refusing what float cannot hold (the cast would be UB). */
int ap__xgb_to_float(double x, float *f)
{
    if (!isfinite(x) || fabs(x) > FLT_MAX)
        return -1;
    *f = (float)x;
    return 0;
}
