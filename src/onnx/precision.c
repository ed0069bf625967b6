/*
 * precision.c: a native plan in reduced precision (issue 12; the public
 * semantics are ap_onnx_set_precision's, include/alphapulse/onnx.h).
 *
 * REDUCED stores every dense stage's weights (Gemm, MatMul, Linear*) in
 * IEEE half (src/dense: float accumulation, biases stay float) and asks
 * every tree ensemble's forest for its quantized engine (exact by
 * construction, or refused). It is checked, not assumed: the plan runs the
 * caller's rows once before (FP32) and once after, and the largest absolute
 * difference over all outputs must be <= the tolerance. Until that passes
 * both weight copies are kept; any refusal or a deviation over the
 * tolerance puts every stage back as it was (FP32 weights, FULL forests),
 * so predict gives the same bits as before the call. Once it passes the
 * FP32 weights are freed (the memory saving), so FULL after REDUCED is
 * refused for a graph with dense stages; a graph of tree ensembles only
 * goes back (its forests keep their full engine).
 */
#include "onnx/plan.h"
#include "common/error.h"

#include <math.h>
#include <stdlib.h>

static int is_dense(const stage *s) { return s->kind == ST_DENSE || s->kind == ST_LINCLS; }

/* stages [0, upto) as they were: float weights only, forests FULL */
static void back_to_full(ap_onnx_plan *p, int upto)
{
    for (int i = 0; i < upto; i++) {
        stage *s = &p->st[i];
        ap_error ignored;
        if (is_dense(s))
            ap__dense_drop_half(&s->dense);
        else if (s->kind == ST_TREES)
            ap__onnx_trees_set_precision(s->trees, AP_PRECISION_FULL, &ignored);
    }
}

/* max |a - b|: equal values (also infinities of one sign) and NaN against
   NaN count 0, NaN against a number counts inf */
static double deviation(const double *a, const double *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d;
        if (isnan(a[i]) || isnan(b[i]))
            d = isnan(a[i]) && isnan(b[i]) ? 0 : INFINITY;
        else
            d = a[i] == b[i] ? 0 : fabs(a[i] - b[i]);
        if (d > m)
            m = d;
    }
    return m;
}

int ap__onnx_plan_reduce(ap_onnx_plan *p, double tol, const double *X, size_t nrows,
                        double *max_dev, ap_error *err)
{
    *max_dev = 0;
    if (p->prec == AP_PRECISION_REDUCED) {
        *max_dev = p->reduced_dev;
        return AP_OK;
    }
    int nred = 0;
    for (int i = 0; i < p->nst; i++)
        nred += is_dense(&p->st[i]) || p->st[i].kind == ST_TREES;
    if (!nred)
        return ap__error_set(err, AP_EUNSUPPORTED,
                            "reduced precision: nothing to reduce (no dense layer or tree "
                            "ensemble in %s)", p->summary);
    if (!(tol > 0))
        tol = AP_PRECISION_DEFAULT_TOL;
    double *zero = NULL;
    if (!X || !nrows) {
        zero = calloc((size_t)p->nf ? (size_t)p->nf : 1, sizeof *zero);
        X = zero;
        nrows = 1;
    }
    size_t ny = nrows * (size_t)p->nout;
    double *yf = malloc((ny ? ny : 1) * sizeof *yf), *yr = malloc((ny ? ny : 1) * sizeof *yr);
    int rc = AP_OK;
    if (!yf || !yr || !X) {
        rc = ap__error_set(err, AP_ENOMEM, "reduced precision: out of memory for %zu rows", nrows);
        goto out;
    }
    ap__onnx_plan_run(p, X, nrows, yf);
    for (int i = 0; i < p->nst; i++) {
        stage *s = &p->st[i];
        if (is_dense(s))
            rc = ap__dense_to_half(&s->dense, err);
        else if (s->kind == ST_TREES)
            rc = ap__onnx_trees_set_precision(s->trees, AP_PRECISION_REDUCED, err);
        if (rc != AP_OK) {
            ap_error why = *err;  /* err->msg cannot be read while written */
            back_to_full(p, i + 1);
            rc = ap__error_set(err, rc, "reduced precision: %s: %s", s->label, why.msg);
            goto out;
        }
    }
    ap__onnx_plan_run(p, X, nrows, yr);
    double dev = deviation(yf, yr, ny);
    *max_dev = dev;
    if (!(dev <= tol)) {
        back_to_full(p, p->nst);
        rc = ap__error_set(err, AP_ERANGE,
                          "reduced precision: max abs output deviation %.3g on %zu rows exceeds "
                          "the tolerance %.3g: the model stays full precision", dev, nrows, tol);
        goto out;
    }
    for (int i = 0; i < p->nst; i++)
        if (is_dense(&p->st[i]))
            ap__dense_drop_full(&p->st[i].dense);
    p->prec = AP_PRECISION_REDUCED;
    p->reduced_dev = dev;
out:
    free(zero);
    free(yf);
    free(yr);
    return rc;
}

int ap__onnx_plan_full(ap_onnx_plan *p, ap_error *err)
{
    if (p->prec != AP_PRECISION_REDUCED)
        return AP_OK;
    for (int i = 0; i < p->nst; i++)
        if (is_dense(&p->st[i]) && !p->st[i].dense.w)
            return ap__error_set(err, AP_ECONFLICT,
                                "full precision after reduced: the FP32 weights of %s were "
                                "freed when the model was reduced (load it again)",
                                p->st[i].label);
    for (int i = 0; i < p->nst; i++) {
        stage *s = &p->st[i];
        if (s->kind != ST_TREES)
            continue;
        int rc = ap__onnx_trees_set_precision(s->trees, AP_PRECISION_FULL, err);
        if (rc != AP_OK)
            return rc;
    }
    p->prec = AP_PRECISION_FULL;
    return AP_OK;
}

size_t ap__onnx_plan_bytes(const ap_onnx_plan *p, ap_precision q)
{
    if (q != AP_PRECISION_FULL && q != AP_PRECISION_REDUCED)
        q = p->prec;
    if (q == AP_PRECISION_REDUCED && p->prec != AP_PRECISION_REDUCED)
        return 0;
    size_t b = 0;
    for (int i = 0; i < p->nst; i++) {
        const stage *s = &p->st[i];
        if (is_dense(s)) {
            size_t k = ap__dense_bytes(&s->dense, q == AP_PRECISION_REDUCED);
            if (!k)
                return 0;  /* that copy is gone: the precision is not built */
            b += k;
        } else if (s->kind == ST_TREES) {
            b += ap__onnx_trees_bytes(s->trees, q);
        }
    }
    return b;
}
