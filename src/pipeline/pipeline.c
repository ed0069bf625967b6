/* Pipeline steps: parsing with width checks, and the allocation-free run. */
#include "pipeline/pipeline.h"
#include "common/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { STEP_FILLNA, STEP_SELECT, STEP_SCALER, STEP_PCA };

typedef struct step {
    int op;
    int in, out;       /* row widths before and after */
    double *a;         /* fillna: values (in, or 1); scaler, pca: mean (in) */
    double *b;         /* scaler: scale (in); pca: components (out x in, row-major) */
    int32_t *cols;     /* select: out column indices */
    int nvalues;       /* fillna: 1 or in */
} step;

struct ap_pipeline {
    step *steps;
    int nsteps;
    int in_width, out_width, max_width;
    char desc[256];
};

int ap__json_doubles(const json_t *arr, int want, int max, const char *what, const char *field,
                    double **out, int *n, ap_error *err)
{
    *out = NULL;
    if (!json_is_array(arr))
        return ap__error_set(err, AP_EFORMAT, "%s: %s must be an array of numbers", what, field);
    size_t len = json_array_size(arr);
    if (want >= 0 && len != (size_t)want)
        return ap__error_set(err, AP_EFORMAT, "%s: %s has %zu values, expected %d", what, field,
                            len, want);
    if (want < 0 && (len == 0 || len > (size_t)max))
        return ap__error_set(err, AP_ERANGE, "%s: %s has %zu values (1..%d allowed)", what, field,
                            len, max);
    double *v = malloc((len ? len : 1) * sizeof *v);
    if (!v)
        return ap__error_set(err, AP_ENOMEM, "%s: %s: out of memory", what, field);
    for (size_t i = 0; i < len; i++) {
        const json_t *x = json_array_get(arr, i);
        if (!json_is_number(x) || !isfinite(json_number_value(x))) {
            free(v);
            return ap__error_set(err, AP_EFORMAT, "%s: %s[%zu] is not a finite number", what,
                                field, i);
        }
        v[i] = json_number_value(x);
    }
    *out = v;
    if (n)
        *n = (int)len;
    return AP_OK;
}

/* Append "name(args)" to the one-line description (truncated if long). */
static void desc_add(ap_pipeline *p, const char *text)
{
    size_t used = strlen(p->desc);
    snprintf(p->desc + used, sizeof p->desc - used, "%s%s", used ? " -> " : "", text);
}

/* Every key of a step object must be one this step reads. */
static int check_keys(const json_t *o, const char *const *allowed, const char *what, int i,
                      const char *op, ap_error *err)
{
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)o, key, v) {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            ok |= !strcmp(key, *a);
        if (!ok)
            return ap__error_set(err, AP_EFORMAT, "%s: pipeline step %d (%s): unknown key '%s'",
                                what, i, op, key);
    }
    return AP_OK;
}

static int parse_step(const json_t *o, int i, int width, const char *what, step *s,
                      ap_pipeline *p, ap_error *err)
{
    char field[96];
    if (!json_is_object(o))
        return ap__error_set(err, AP_EFORMAT, "%s: pipeline step %d is not an object", what, i);
    const char *op = json_string_value(json_object_get(o, "op"));
    if (!op)
        return ap__error_set(err, AP_EFORMAT, "%s: pipeline step %d has no \"op\" string", what,
                            i);
    s->in = width;
    if (!strcmp(op, "fillna")) {
        static const char *const keys[] = {"op", "value", "values", NULL};
        int krc = check_keys(o, keys, what, i, op, err);
        if (krc != AP_OK)
            return krc;
        s->op = STEP_FILLNA;
        s->out = width;
        const json_t *one = json_object_get(o, "value"), *many = json_object_get(o, "values");
        if (!!one == !!many)
            return ap__error_set(err, AP_EFORMAT,
                                "%s: pipeline step %d (fillna) needs exactly one of \"value\" "
                                "and \"values\"", what, i);
        if (one) {
            if (!json_is_number(one) || !isfinite(json_number_value(one)))
                return ap__error_set(err, AP_EFORMAT,
                                    "%s: pipeline step %d (fillna): value is not a finite number",
                                    what, i);
            s->a = malloc(sizeof *s->a);
            if (!s->a)
                return ap__error_set(err, AP_ENOMEM, "%s: out of memory", what);
            s->a[0] = json_number_value(one);
            s->nvalues = 1;
            snprintf(field, sizeof field, "fillna(%.6g)", s->a[0]);
            desc_add(p, field);
            return AP_OK;
        }
        snprintf(field, sizeof field, "pipeline step %d (fillna) values", i);
        int rc = ap__json_doubles(many, width, 0, what, field, &s->a, &s->nvalues, err);
        snprintf(field, sizeof field, "fillna(%d values)", width);
        if (rc == AP_OK)
            desc_add(p, field);
        return rc;
    }
    if (!strcmp(op, "select")) {
        static const char *const keys[] = {"op", "columns", NULL};
        int krc = check_keys(o, keys, what, i, op, err);
        if (krc != AP_OK)
            return krc;
        s->op = STEP_SELECT;
        const json_t *cols = json_object_get(o, "columns");
        size_t n = json_array_size(cols);
        if (!json_is_array(cols) || n == 0 || n > AP_PIPELINE_MAX_WIDTH)
            return ap__error_set(err, AP_EFORMAT,
                                "%s: pipeline step %d (select): columns must be a non-empty "
                                "array of column indices", what, i);
        s->cols = malloc(n * sizeof *s->cols);
        if (!s->cols)
            return ap__error_set(err, AP_ENOMEM, "%s: out of memory", what);
        for (size_t k = 0; k < n; k++) {
            const json_t *c = json_array_get(cols, k);
            if (!json_is_integer(c) || json_integer_value(c) < 0 ||
                json_integer_value(c) >= width)
                return ap__error_set(err, AP_ERANGE,
                                    "%s: pipeline step %d (select): columns[%zu] is not a column "
                                    "index in 0..%d", what, i, k, width - 1);
            s->cols[k] = (int32_t)json_integer_value(c);
        }
        s->out = (int)n;
        snprintf(field, sizeof field, "select(%d->%d)", width, s->out);
        desc_add(p, field);
        return AP_OK;
    }
    if (!strcmp(op, "standard_scaler")) {
        static const char *const keys[] = {"op", "mean", "scale", NULL};
        int krc = check_keys(o, keys, what, i, op, err);
        if (krc != AP_OK)
            return krc;
        s->op = STEP_SCALER;
        s->out = width;
        snprintf(field, sizeof field, "pipeline step %d (standard_scaler) mean", i);
        int rc = ap__json_doubles(json_object_get(o, "mean"), width, 0, what, field, &s->a, NULL,
                                 err);
        snprintf(field, sizeof field, "pipeline step %d (standard_scaler) scale", i);
        if (rc == AP_OK)
            rc = ap__json_doubles(json_object_get(o, "scale"), width, 0, what, field, &s->b, NULL,
                                 err);
        for (int j = 0; rc == AP_OK && j < width; j++)
            if (s->b[j] == 0.0)
                rc = ap__error_set(err, AP_EFORMAT,
                                  "%s: pipeline step %d (standard_scaler): scale[%d] is 0", what,
                                  i, j);
        snprintf(field, sizeof field, "standard_scaler(%d)", width);
        if (rc == AP_OK)
            desc_add(p, field);
        return rc;
    }
    if (!strcmp(op, "pca")) {
        static const char *const keys[] = {"op", "mean", "components", NULL};
        int krc = check_keys(o, keys, what, i, op, err);
        if (krc != AP_OK)
            return krc;
        s->op = STEP_PCA;
        snprintf(field, sizeof field, "pipeline step %d (pca) mean", i);
        int rc = ap__json_doubles(json_object_get(o, "mean"), width, 0, what, field, &s->a, NULL,
                                 err);
        if (rc != AP_OK)
            return rc;
        const json_t *comp = json_object_get(o, "components");
        size_t k = json_array_size(comp);
        if (!json_is_array(comp) || k == 0 ||
            k > (size_t)AP_PIPELINE_MAX_PARAMS / (size_t)width)
            return ap__error_set(err, AP_EFORMAT,
                                "%s: pipeline step %d (pca): components must be a non-empty "
                                "array of rows of %d numbers", what, i, width);
        s->out = (int)k;
        s->b = malloc(k * (size_t)width * sizeof *s->b);
        if (!s->b)
            return ap__error_set(err, AP_ENOMEM, "%s: out of memory", what);
        for (size_t r = 0; r < k; r++) {
            double *row;
            snprintf(field, sizeof field, "pipeline step %d (pca) components[%zu]", i, r);
            rc = ap__json_doubles(json_array_get(comp, r), width, 0, what, field, &row, NULL, err);
            if (rc != AP_OK)
                return rc;
            memcpy(s->b + r * (size_t)width, row, (size_t)width * sizeof *row);
            free(row);
        }
        snprintf(field, sizeof field, "pca(%d->%d)", width, s->out);
        desc_add(p, field);
        return AP_OK;
    }
    return ap__error_set(err, AP_EFORMAT,
                        "%s: pipeline step %d: unknown op '%s' (fillna, select, "
                        "standard_scaler, pca)", what, i, op);
}

int ap__pipeline_parse(const json_t *steps, int in_width, const char *what, ap_pipeline **out,
                      ap_error *err)
{
    *out = NULL;
    if (in_width <= 0 || in_width > AP_PIPELINE_MAX_WIDTH)
        return ap__error_set(err, AP_ERANGE, "%s: pipeline input width %d out of range", what,
                            in_width);
    if (steps && !json_is_array(steps))
        return ap__error_set(err, AP_EFORMAT, "%s: \"pipeline\" must be an array of steps", what);
    size_t n = steps ? json_array_size(steps) : 0;
    if (n > AP_PIPELINE_MAX_STEPS)
        return ap__error_set(err, AP_ERANGE, "%s: pipeline has %zu steps (at most %d)", what, n,
                            AP_PIPELINE_MAX_STEPS);
    ap_pipeline *p = calloc(1, sizeof *p);
    if (!p || (n && !(p->steps = calloc(n, sizeof *p->steps)))) {
        free(p);
        return ap__error_set(err, AP_ENOMEM, "%s: out of memory", what);
    }
    p->in_width = p->out_width = p->max_width = in_width;
    for (size_t i = 0; i < n; i++) {
        p->nsteps = (int)i + 1; /* so that free releases this step too */
        int rc = parse_step(json_array_get(steps, i), (int)i, p->out_width, what, &p->steps[i],
                            p, err);
        if (rc != AP_OK) {
            ap__pipeline_free(p);
            return rc;
        }
        p->out_width = p->steps[i].out;
        if (p->out_width > p->max_width)
            p->max_width = p->out_width;
    }
    if (!n)
        snprintf(p->desc, sizeof p->desc, "none");
    *out = p;
    return AP_OK;
}

void ap__pipeline_free(ap_pipeline *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->nsteps; i++) {
        free(p->steps[i].a);
        free(p->steps[i].b);
        free(p->steps[i].cols);
    }
    free(p->steps);
    free(p);
}

int ap__pipeline_num_steps(const ap_pipeline *p) { return p->nsteps; }
int ap__pipeline_in_width(const ap_pipeline *p) { return p->in_width; }
int ap__pipeline_out_width(const ap_pipeline *p) { return p->out_width; }
int ap__pipeline_max_width(const ap_pipeline *p) { return p->max_width; }
int ap__pipeline_keeps_columns(const ap_pipeline *p)
{
    for (int i = 0; i < p->nsteps; i++)
        if (p->steps[i].op == STEP_SELECT || p->steps[i].op == STEP_PCA)
            return 0;
    return 1;
}

const char *ap__pipeline_describe(const ap_pipeline *p) { return p->desc; }

double *ap__pipeline_run(const ap_pipeline *p, double *a, double *b, size_t nrows)
{
    double *cur = a, *other = b;
    for (int i = 0; i < p->nsteps; i++) {
        const step *s = &p->steps[i];
        size_t in = (size_t)s->in, out = (size_t)s->out;
        switch (s->op) {
        case STEP_FILLNA:
            for (size_t r = 0; r < nrows; r++)
                for (size_t j = 0; j < in; j++)
                    if (isnan(cur[r * in + j]))
                        cur[r * in + j] = s->a[s->nvalues == 1 ? 0 : j];
            break;
        case STEP_SCALER:
            /* two roundings, as sklearn: X -= mean_; X /= scale_ */
            for (size_t r = 0; r < nrows; r++)
                for (size_t j = 0; j < in; j++)
                    cur[r * in + j] = (cur[r * in + j] - s->a[j]) / s->b[j];
            break;
        case STEP_SELECT:
            for (size_t r = 0; r < nrows; r++)
                for (size_t k = 0; k < out; k++)
                    other[r * out + k] = cur[r * in + (size_t)s->cols[k]];
            cur = other;
            other = cur == a ? b : a;
            break;
        case STEP_PCA:
            /* centre in place (cur is scratch), then project */
            for (size_t r = 0; r < nrows; r++) {
                double *x = cur + r * in;
                for (size_t j = 0; j < in; j++)
                    x[j] -= s->a[j];
                for (size_t k = 0; k < out; k++) {
                    const double *c = s->b + k * in;
                    double acc = 0.0;
                    for (size_t j = 0; j < in; j++)
                        acc += x[j] * c[j];
                    other[r * out + k] = acc;
                }
            }
            cur = other;
            other = cur == a ? b : a;
            break;
        }
    }
    return cur;
}
