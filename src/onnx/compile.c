/*
 * compile.c: an ONNX graph -> the native plan (plan.h).
 *
 * Only the part of the graph the chosen output depends on is compiled (a
 * classifier's label output and whatever computes only it are skipped),
 * node by node in graph order, each operator into a stage over slots. A
 * double-input graph has a double input slot, and the float scores of its
 * tree ensemble (ORT's TreeEnsemble outputs are float) flow into float
 * operators. Identity, ZipMap, Flatten, Reshape to [N, W] and Cast to the
 * slot's own type are aliases; a Cast that changes the type is a
 * rounding/copy stage. A graph that is a tree ensemble reading the input
 * directly is marked direct_trees: rows go straight to the forest engine.
 *
 * What cannot be compiled fails with AP_EUNSUPPORTED naming the node and
 * the reason (api.c may then hand the graph to ONNX Runtime). Also owns
 * freeing a plan (ap__onnx_plan_free), as it owns what a plan allocates.
 *
 * The building blocks each operator is compiled with (slots, stages, the
 * value names, constants, node errors) are compile_util.c's (plan.h);
 * this file owns which operators compile and how.
 */
#include "onnx/plan.h"
#include "common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TYPE_FLOAT ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT
#define TYPE_DOUBLE ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE

static int is_op(const Onnx__NodeProto *n, const char *op) { return !strcmp(n->op_type, op); }

/* ---- one node ---- */

static int compile_gemm(ap_onnx_ctx *c, const Onnx__NodeProto *n, int x, ap_error *err)
{
    int gemm = is_op(n, "Gemm");
    int64_t ta = 0, tb = 0;
    float alpha = 1.0f, beta = 1.0f;
    int rc;
    if (gemm && ((rc = ap__onnx_attr_int(n, "transA", &ta, c->name, err)) ||
                 (rc = ap__onnx_attr_int(n, "transB", &tb, c->name, err)) ||
                 (rc = ap__onnx_attr_float(n, "alpha", &alpha, c->name, err)) ||
                 (rc = ap__onnx_attr_float(n, "beta", &beta, c->name, err))))
        return rc;
    if (ta)
        return ap__onnx_node_err(c, n, AP_EUNSUPPORTED, "transA=1 is not supported natively", err);
    if ((rc = ap__onnx_float_only(c, n, x, err)))
        return rc;
    if (n->n_input < 2)
        return ap__onnx_node_err(c, n, AP_EFORMAT, "needs 2 inputs", err);
    float *B;
    int nb, nd;
    int64_t dims[4];
    if ((rc = ap__onnx_const_floats(c, n, n->input[1], &B, &nb, dims, &nd, err)))
        return rc;
    int K = c->p->width[x];
    if (nd != 2 || dims[tb ? 1 : 0] != K) {
        free(B);
        return ap__onnx_node_err(c, n, AP_EFORMAT, "weight shape does not match the input width",
                                err);
    }
    int M = (int)dims[tb ? 0 : 1];
    stage *s = ap__onnx_new_stage(c, ST_DENSE, err);
    if (!s) {
        free(B);
        return AP_ENOMEM;
    }
    s->in = x;
    if ((rc = ap__dense_init(&s->dense, K, M, err))) {
        free(B);
        return rc;
    }
    for (int o = 0; o < M; o++)
        for (int i = 0; i < K; i++)
            s->dense.w[(size_t)o * K + i] =
                alpha * (tb ? B[(size_t)o * K + i] : B[(size_t)i * M + o]);
    free(B);
    if (gemm && n->n_input >= 3 && n->input[2][0]) {
        float *C;
        int ncv;
        if ((rc = ap__onnx_const_floats(c, n, n->input[2], &C, &ncv, dims, &nd, err)))
            return rc;
        if (ncv != 1 && ncv != M) {
            free(C);
            return ap__onnx_node_err(c, n, AP_EUNSUPPORTED,
                                    "C must broadcast over rows ([M] or [1, M])", err);
        }
        for (int o = 0; o < M; o++)
            s->dense.b[o] = beta * C[ncv == 1 ? 0 : o];
        free(C);
    }
    int o = ap__onnx_output_slot(c, n, 0, M, 0, err);
    if (o < 0)
        return o;
    c->p->st[c->p->nst - 1].out = o;
    return AP_OK;
}

static int compile_linear(ap_onnx_ctx *c, const Onnx__NodeProto *n, int x, ap_error *err)
{
    int cls = is_op(n, "LinearClassifier");
    float *coef = NULL, *icpt = NULL;
    int ncoef, nicpt;
    char post[32] = "NONE";
    int rc;
    if ((rc = ap__onnx_float_only(c, n, x, err)) ||
        (rc = ap__onnx_reals_as_floats(c, n, "coefficients", &coef, &ncoef, err)))
        return rc;
    if ((rc = ap__onnx_reals_as_floats(c, n, "intercepts", &icpt, &nicpt, err)) ||
        (rc = ap__onnx_attr_string(n, "post_transform", post, sizeof post, c->name, err)))
        goto out;
    int K = c->p->width[x];
    int T = ncoef / K;
    int postv;
    if (ap__onnx_post_parse(post, &postv)) {
        rc = ap__onnx_node_err(c, n, AP_EFORMAT, "unknown post_transform", err);
        goto out;
    }
    if (T < 1 || T * K != ncoef || (nicpt != 0 && nicpt != T)) {
        rc = ap__onnx_node_err(c, n, AP_EFORMAT,
                              "coefficients/intercepts do not match the input width", err);
        goto out;
    }
    int ncls = T;
    if (!cls) {
        /* ORT sizes its output and GEMM by `targets` (default 1) */
        int64_t targets = 1;
        if ((rc = ap__onnx_attr_int(n, "targets", &targets, c->name, err)))
            goto out;
        if (targets != T) {
            rc = ap__onnx_node_err(c, n, AP_EFORMAT,
                                  "targets does not match the coefficients and the input width",
                                  err);
            goto out;
        }
    }
    if (cls) {
        const int64_t *li;
        const ProtobufCBinaryData *ls;
        size_t nli, nls;
        if ((rc = ap__onnx_attr_ints(n, "classlabels_ints", &li, &nli, c->name, err)) ||
            (rc = ap__onnx_attr_strings(n, "classlabels_strings", &ls, &nls, c->name, err)))
            goto out;
        ncls = (int)(nli + nls);
        if (!(ncls == T || (ncls == 2 && T == 1))) {
            rc = ap__onnx_node_err(c, n, AP_EFORMAT, "class labels do not match the coefficients",
                                  err);
            goto out;
        }
    }
    stage *s = ap__onnx_new_stage(c, ST_LINCLS, err);
    if (!s) {
        rc = AP_ENOMEM;
        goto out;
    }
    s->in = x;
    s->post = postv;
    s->binary = cls && ncls == 2 && T == 1;
    s->sub = cls;
    if ((rc = ap__dense_init(&s->dense, K, T, err)))
        goto out;
    memcpy(s->dense.w, coef, (size_t)ncoef * sizeof *coef);
    if (nicpt)
        memcpy(s->dense.b, icpt, (size_t)T * sizeof *icpt);
    int o = ap__onnx_output_slot(c, n, cls ? 1 : 0, ncls, 0, err);
    if (o < 0) {
        rc = o;
        goto out;
    }
    c->p->st[c->p->nst - 1].out = o;
out:
    free(coef);
    free(icpt);
    return rc;
}

static int compile_binop(ap_onnx_ctx *c, const Onnx__NodeProto *n, ap_error *err)
{
    int op = is_op(n, "Add") ? OP_ADD : is_op(n, "Sub") ? OP_SUB : is_op(n, "Mul") ? OP_MUL : OP_DIV;
    if (n->n_input != 2)
        return ap__onnx_node_err(c, n, AP_EFORMAT, "needs 2 inputs", err);
    int a = ap__onnx_lookup_value(c, n->input[0]), b = ap__onnx_lookup_value(c, n->input[1]);
    int rc;
    if (a >= 0 && b >= 0) {
        if (c->p->width[a] != c->p->width[b])
            return ap__onnx_node_err(c, n, AP_EUNSUPPORTED, "operands of different widths", err);
        if (c->p->dbl[a] != c->p->dbl[b])
            return ap__onnx_node_err(c, n, AP_EFORMAT, "operands of different types", err);
        stage *s = ap__onnx_new_stage(c, ST_BIN2, err);
        if (!s)
            return AP_ENOMEM;
        s->in = a;
        s->in2 = b;
        s->sub = op;
        int o = ap__onnx_output_slot(c, n, 0, c->p->width[a], c->p->dbl[a], err);
        if (o < 0)
            return o;
        c->p->st[c->p->nst - 1].out = o;
        return AP_OK;
    }
    int x = a >= 0 ? a : b;
    if (x < 0)
        return ap__onnx_node_err(c, n, AP_EUNSUPPORTED, "no computed operand (constant folding "
                                "is not supported)", err);
    double *v;
    int nv = 0;
    if ((rc = ap__onnx_const_reals(c, n, n->input[a >= 0 ? 1 : 0], c->p->dbl[x], &v, &nv, err)))
        return rc;
    if (nv != 1 && nv != c->p->width[x]) {
        free(v);
        return ap__onnx_node_err(c, n, AP_EUNSUPPORTED, "constant must broadcast over rows", err);
    }
    stage *s = ap__onnx_new_stage(c, ST_BINC, err);
    if (!s) {
        free(v);
        return AP_ENOMEM;
    }
    s->in = x;
    s->sub = op;
    s->const_left = a < 0;
    s->cd = v;
    s->nc = nv;
    int o = ap__onnx_output_slot(c, n, 0, c->p->width[x], c->p->dbl[x], err);
    if (o < 0)
        return o;
    c->p->st[c->p->nst - 1].out = o;
    return AP_OK;
}

static int compile_node(ap_onnx_ctx *c, const Onnx__NodeProto *n, ap_error *err)
{
    ap_onnx_plan *p = c->p;
    const char *dom = n->domain ? n->domain : "";
    int ml = !strcmp(dom, "ai.onnx.ml");
    if (!ml && dom[0] && strcmp(dom, "ai.onnx"))
        return ap__error_set(err, AP_EUNSUPPORTED, "%s: node '%s': operator %s of domain '%s' is "
                            "not supported natively", c->name, ap__onnx_node_label(n), n->op_type,
                            dom);
    int rc;
    if ((rc = ap__onnx_node_check_attrs(c, n, ml, err)))
        return rc;
    if (ml && (is_op(n, "TreeEnsembleClassifier") || is_op(n, "TreeEnsembleRegressor"))) {
        int x = ap__onnx_input_slot(c, n, 0, err);
        if (x < 0)
            return x;
        stage *s = ap__onnx_new_stage(c, ST_TREES, err);
        if (!s)
            return AP_ENOMEM;
        s->in = x;
        int nout;
        /* double rows run the double kernel; its scores are float (ORT's
           Y / Z outputs are tensor(float) for either input type) */
        if ((rc = ap__onnx_trees_build(n, p->width[x], p->dbl[x], c->name, &s->trees, &nout,
                                      err)))
            return rc;
        p->ntrees += ap__onnx_trees_count(s->trees);
        int o = ap__onnx_output_slot(c, n, is_op(n, "TreeEnsembleClassifier") ? 1 : 0, nout, 0, err);
        if (o < 0)
            return o;
        p->st[p->nst - 1].out = o;
        return AP_OK;
    }
    if (ml && (is_op(n, "LinearClassifier") || is_op(n, "LinearRegressor"))) {
        int x = ap__onnx_input_slot(c, n, 0, err);
        return x < 0 ? x : compile_linear(c, n, x, err);
    }
    if (ml && is_op(n, "ZipMap")) {
        int x = ap__onnx_input_slot(c, n, 0, err);
        return x < 0 ? x : ap__onnx_bind_value(c, n->output[0], x, err);
    }
    if (ml && is_op(n, "Scaler")) {
        int x = ap__onnx_input_slot(c, n, 0, err);
        if (x < 0)
            return x;
        if ((rc = ap__onnx_float_only(c, n, x, err)))
            return rc;
        stage *s = ap__onnx_new_stage(c, ST_SCALER, err);
        if (!s)
            return AP_ENOMEM;
        s->in = x;
        if ((rc = ap__onnx_reals_as_floats(c, n, "offset", &s->c, &s->nc, err)) ||
            (rc = ap__onnx_reals_as_floats(c, n, "scale", &s->c2, &s->nc2, err)))
            return rc;
        if ((s->nc != 1 && s->nc != p->width[x]) || (s->nc2 != 1 && s->nc2 != p->width[x]))
            return ap__onnx_node_err(c, n, AP_EFORMAT, "offset/scale must have 1 or W values", err);
        int o = ap__onnx_output_slot(c, n, 0, p->width[x], 0, err);
        if (o < 0)
            return o;
        p->st[p->nst - 1].out = o;
        return AP_OK;
    }
    if (ml && is_op(n, "Normalizer")) {
        int x = ap__onnx_input_slot(c, n, 0, err);
        if (x < 0)
            return x;
        char norm[16] = "MAX";
        if ((rc = ap__onnx_float_only(c, n, x, err)) ||
            (rc = ap__onnx_attr_string(n, "norm", norm, sizeof norm, c->name, err)))
            return rc;
        stage *s = ap__onnx_new_stage(c, ST_NORM, err);
        if (!s)
            return AP_ENOMEM;
        s->in = x;
        if (!strcmp(norm, "MAX"))
            s->sub = NORM_MAX;
        else if (!strcmp(norm, "L1"))
            s->sub = NORM_L1;
        else if (!strcmp(norm, "L2"))
            s->sub = NORM_L2;
        else
            return ap__onnx_node_err(c, n, AP_EFORMAT, "norm must be MAX, L1 or L2", err);
        int o = ap__onnx_output_slot(c, n, 0, p->width[x], 0, err);
        if (o < 0)
            return o;
        p->st[p->nst - 1].out = o;
        return AP_OK;
    }
    if (ml)
        return ap__error_set(err, AP_EUNSUPPORTED, "%s: node '%s': operator ai.onnx.ml.%s is not "
                            "supported natively", c->name, ap__onnx_node_label(n), n->op_type);
    if (is_op(n, "Gemm") || is_op(n, "MatMul")) {
        int x = ap__onnx_input_slot(c, n, 0, err);
        return x < 0 ? x : compile_gemm(c, n, x, err);
    }
    if (is_op(n, "Add") || is_op(n, "Sub") || is_op(n, "Mul") || is_op(n, "Div"))
        return compile_binop(c, n, err);
    static const char *acts[] = {"Relu", "Sigmoid", "Tanh", "Softmax", "Exp", "Softplus", "Abs",
                                 "Neg"};  /* ACT_* order */
    int act_kind = -1;
    for (int i = 0; i < (int)(sizeof acts / sizeof *acts); i++)
        if (is_op(n, acts[i]))
            act_kind = i;
    if (act_kind >= 0) {
        int x = ap__onnx_input_slot(c, n, 0, err);
        if (x < 0)
            return x;
        if (is_op(n, "Softmax")) {
            int64_t axis = -1;
            if ((rc = ap__onnx_attr_int(n, "axis", &axis, c->name, err)))
                return rc;
            if (axis != 1 && axis != -1)
                return ap__onnx_node_err(c, n, AP_EUNSUPPORTED, "only axis 1 / -1 is supported",
                                        err);
        }
        stage *s = ap__onnx_new_stage(c, ST_ACT, err);
        if (!s)
            return AP_ENOMEM;
        s->in = x;
        s->sub = act_kind;
        int o = ap__onnx_output_slot(c, n, 0, p->width[x], p->dbl[x], err);
        if (o < 0)
            return o;
        p->st[p->nst - 1].out = o;
        return AP_OK;
    }
    if (is_op(n, "Identity") || is_op(n, "Flatten") || is_op(n, "Reshape") ||
        is_op(n, "Cast")) {
        int x = ap__onnx_input_slot(c, n, 0, err);
        if (x < 0)
            return x;
        if (is_op(n, "Flatten")) {
            int64_t axis = 1;
            if ((rc = ap__onnx_attr_int(n, "axis", &axis, c->name, err)))
                return rc;
            if (axis != 1)
                return ap__onnx_node_err(c, n, AP_EUNSUPPORTED, "only axis 1 is supported", err);
        }
        if (is_op(n, "Reshape")) {
            float *shape;
            int ns, nd;
            int64_t dims[4], allowzero = 0;
            /* allowzero=1 makes a 0 in the shape a zero-size dimension
               instead of "copy the input's": not the [N, W] case below */
            if ((rc = ap__onnx_attr_int(n, "allowzero", &allowzero, c->name, err)))
                return rc;
            if (allowzero != 0)
                return ap__onnx_node_err(c, n, AP_EUNSUPPORTED,
                                        "allowzero=1 is not supported natively", err);
            if (n->n_input < 2)
                return ap__onnx_node_err(c, n, AP_EFORMAT, "needs a shape input", err);
            if ((rc = ap__onnx_const_floats(c, n, n->input[1], &shape, &ns, dims, &nd, err)))
                return rc;
            int ok = ns == 2 && (shape[0] == -1 || shape[0] == 0) &&
                     (shape[1] == p->width[x] || (shape[1] == -1 && shape[0] == 0));
            free(shape);
            if (!ok)
                return ap__onnx_node_err(c, n, AP_EUNSUPPORTED,
                                        "only reshapes to [N, W] are supported", err);
        }
        if (is_op(n, "Cast")) {
            int64_t to = 0, saturate = 1;
            if ((rc = ap__onnx_attr_int(n, "to", &to, c->name, err)) ||
                (rc = ap__onnx_attr_int(n, "saturate", &saturate, c->name, err)))
                return rc;
            /* saturate only concerns float8 targets; anything but its
               default is refused rather than assumed harmless */
            if (saturate != 1)
                return ap__onnx_node_err(c, n, AP_EUNSUPPORTED,
                                        "saturate=0 is not supported natively", err);
            if (to != TYPE_FLOAT && to != TYPE_DOUBLE)
                return ap__onnx_node_err(c, n, AP_EUNSUPPORTED, "only casts to float or double",
                                        err);
            int dbl = to == TYPE_DOUBLE;
            if (dbl != p->dbl[x]) {
                /* a new slot, not an alias: the type decides how later
                   operators compute (double -> float rounds) */
                stage *s = ap__onnx_new_stage(c, ST_CAST, err);
                if (!s)
                    return AP_ENOMEM;
                s->in = x;
                int o = ap__onnx_output_slot(c, n, 0, p->width[x], dbl, err);
                if (o < 0)
                    return o;
                p->st[p->nst - 1].out = o;
                return AP_OK;
            }
        }
        return ap__onnx_bind_value(c, n->output[0], x, err);
    }
    if (is_op(n, "Concat")) {
        int64_t axis = 0;
        if ((rc = ap__onnx_attr_int(n, "axis", &axis, c->name, err)))
            return rc;
        if (axis != 1 && axis != -1)
            return ap__onnx_node_err(c, n, AP_EUNSUPPORTED, "only axis 1 / -1 is supported", err);
        if (n->n_input < 1 || n->n_input > 1024)
            return ap__onnx_node_err(c, n, AP_EFORMAT, "needs 1..1024 inputs", err);
        stage *s = ap__onnx_new_stage(c, ST_CONCAT, err);
        if (!s)
            return AP_ENOMEM;
        s->ins = malloc(n->n_input * sizeof *s->ins);
        if (!s->ins)
            return ap__error_set(err, AP_ENOMEM, "%s: out of memory", c->name);
        int w = 0;
        for (size_t i = 0; i < n->n_input; i++) {
            int x = ap__onnx_input_slot(c, n, i, err);
            if (x < 0)
                return x;
            if (i > 0 && p->dbl[x] != p->dbl[s->ins[0]])
                return ap__onnx_node_err(c, n, AP_EFORMAT, "inputs of different types", err);
            s->ins[s->nins++] = x;
            w += p->width[x];
        }
        int o = ap__onnx_output_slot(c, n, 0, w, p->dbl[s->ins[0]], err);
        if (o < 0)
            return o;
        p->st[p->nst - 1].out = o;
        return AP_OK;
    }
    return ap__error_set(err, AP_EUNSUPPORTED, "%s: node '%s': operator %s is not supported "
                        "natively", c->name, ap__onnx_node_label(n), n->op_type);
}

/* ---- the graph ---- */

int ap__onnx_plan_compile(ap_onnx_plan *p, const Onnx__ModelProto *mp, const ap_onnx_io *r,
                         const char *name, ap_error *err)
{
    const Onnx__GraphProto *g = mp->graph;
    ap_onnx_ctx c = {.g = g, .name = name, .p = p};
    p->nf = r->nf;
    p->f64 = r->elem == TYPE_DOUBLE;
    p->prec = AP_PRECISION_FULL;
    int rc = AP_OK;
    /* which nodes the output needs: walk backwards from it */
    unsigned char *need = calloc(g->n_node ? g->n_node : 1, 1);
    size_t nwant = 0, capwant = 1;
    for (size_t i = 0; i < g->n_node; i++)
        capwant += g->node[i]->n_input;
    const char **want = malloc(capwant * sizeof *want);
    if (!need || !want) {
        rc = ap__error_set(err, AP_ENOMEM, "%s: out of memory", name);
        goto out;
    }
    want[nwant++] = r->output;
    for (size_t i = g->n_node; i-- > 0;) {
        const Onnx__NodeProto *n = g->node[i];
        for (size_t k = 0; k < n->n_output && !need[i]; k++)
            for (size_t w = 0; w < nwant; w++)
                if (n->output[k][0] && !strcmp(n->output[k], want[w])) {
                    need[i] = 1;
                    break;
                }
        if (!need[i])
            continue;
        for (size_t k = 0; k < n->n_input; k++)
            want[nwant++] = n->input[k];  /* capwant counts every input once */
    }
    int x = ap__onnx_add_slot(&c, r->nf, p->f64, err);
    if (x < 0 || (rc = ap__onnx_bind_value(&c, r->input, x, err))) {
        rc = x < 0 ? x : rc;
        goto out;
    }
    p->in_slot = x;
    size_t pos = 0;
    for (size_t i = 0; i < g->n_node; i++) {
        if (!need[i])
            continue;
        if (!strcmp(g->node[i]->op_type, "Constant")) {
            /* read by ap__onnx_find_const when an operator needs it: only `value` */
            const char *dom = g->node[i]->domain ? g->node[i]->domain : "";
            if ((!dom[0] || !strcmp(dom, "ai.onnx")) &&
                (rc = ap__onnx_node_check_attrs(&c, g->node[i], 0, err)))
                goto out;
            continue;
        }
        int first = p->nst;
        if ((rc = compile_node(&c, g->node[i], err)))
            goto out;
        for (int k = first; k < p->nst; k++)
            snprintf(p->st[k].label, sizeof p->st[k].label, "node '%s' (%s)",
                     ap__onnx_node_label(g->node[i]), g->node[i]->op_type);
        pos += (size_t)snprintf(p->summary + pos, pos < sizeof p->summary ? sizeof p->summary - pos : 0,
                                "%s%s", pos ? "+" : "", g->node[i]->op_type);
        if (pos >= sizeof p->summary)
            pos = sizeof p->summary;
    }
    p->out_slot = ap__onnx_lookup_value(&c, r->output);
    if (p->out_slot < 0) {
        rc = ap__error_set(err, AP_EFORMAT, "%s: output '%s' is not computed by any node", name,
                          r->output);
        goto out;
    }
    p->nout = p->width[p->out_slot];
    p->direct_trees = p->nst == 1 && p->st[0].kind == ST_TREES && p->st[0].in == p->in_slot;
out:
    free(need);
    free(want);
    free(c.vals);
    return rc;
}

void ap__onnx_plan_free(ap_onnx_plan *p)
{
    for (int i = 0; i < p->nst; i++) {
        stage *s = &p->st[i];
        ap__onnx_trees_free(s->trees);
        ap__dense_free(&s->dense);
        free(s->ins);
        free(s->c);
        free(s->c2);
        free(s->cd);
    }
    free(p->st);
    free(p->width);
    free(p->dbl);
    free(p->off);
}
