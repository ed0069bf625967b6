/*
 * compile_util.c: the plan under construction (plan.h's building section),
 * the helpers compile.c compiles each operator with: slots (the plan's
 * width/off/dbl arrays) and stages (its st array) as they grow, the names
 * of the graph's values bound to slots, the graph's constants (initializers
 * and Constant nodes) read as float or double vectors, and the errors that
 * name a node ("<model>: node '<name>' (<op>): <what>").
 *
 * Calls nothing of compile.c: only pb.c (attributes, tensor values) and
 * op_attrs.c (an operator's attribute list). What it allocates into the
 * plan is freed by ap__onnx_plan_free (compile.c); the context's own value
 * table by whoever owns the context.
 */
#include "onnx/plan.h"
#include "forest/ir.h"
#include "common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ap__onnx_add_slot(ap_onnx_ctx *c, int width, int dbl, ap_error *err)
{
    ap_onnx_plan *p = c->p;
    if (width < 1 || width > AP_PLAN_MAX_WIDTH || p->row_width + width > AP_PLAN_MAX_WIDTH)
        return ap__error_set(err, AP_EUNSUPPORTED,
                            "%s: intermediate tensors wider than %d values per row in all are "
                            "not supported natively", c->name, AP_PLAN_MAX_WIDTH);
    if (p->nslots == c->cap_slots) {
        int cap = c->cap_slots ? 2 * c->cap_slots : 16;
        int *w = realloc(p->width, (size_t)cap * sizeof *w);
        if (!w)
            return ap__error_set(err, AP_ENOMEM, "%s: out of memory", c->name);
        p->width = w;
        int *o = realloc(p->off, (size_t)cap * sizeof *o);
        if (!o)
            return ap__error_set(err, AP_ENOMEM, "%s: out of memory", c->name);
        p->off = o;
        unsigned char *d = realloc(p->dbl, (size_t)cap * sizeof *d);
        if (!d)
            return ap__error_set(err, AP_ENOMEM, "%s: out of memory", c->name);
        p->dbl = d;
        c->cap_slots = cap;
    }
    p->dbl[p->nslots] = (unsigned char)dbl;
    p->width[p->nslots] = width;
    p->off[p->nslots] = p->row_width;
    p->row_width += width;
    return p->nslots++;
}

int ap__onnx_bind_value(ap_onnx_ctx *c, const char *name, int slot, ap_error *err)
{
    if (c->nvals == c->capvals) {
        int cap = c->capvals ? 2 * c->capvals : 16;
        ap_onnx_value *v = realloc(c->vals, (size_t)cap * sizeof *v);
        if (!v)
            return ap__error_set(err, AP_ENOMEM, "%s: out of memory", c->name);
        c->vals = v;
        c->capvals = cap;
    }
    c->vals[c->nvals++] = (ap_onnx_value){name, slot};
    return AP_OK;
}

int ap__onnx_lookup_value(const ap_onnx_ctx *c, const char *name)
{
    for (int i = c->nvals - 1; i >= 0; i--)
        if (!strcmp(c->vals[i].name, name))
            return c->vals[i].slot;
    return -1;
}

stage *ap__onnx_new_stage(ap_onnx_ctx *c, int kind, ap_error *err)
{
    ap_onnx_plan *p = c->p;
    if (p->nst == c->cap_st) {
        int cap = c->cap_st ? 2 * c->cap_st : 8;
        stage *s = realloc(p->st, (size_t)cap * sizeof *s);
        if (!s) {
            ap__error_set(err, AP_ENOMEM, "%s: out of memory", c->name);
            return NULL;
        }
        p->st = s;
        c->cap_st = cap;
    }
    stage *s = &p->st[p->nst++];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->in = s->in2 = s->out = -1;
    return s;
}

/* A constant: an initializer or a Constant node's value. */
const Onnx__TensorProto *ap__onnx_find_const(const ap_onnx_ctx *c, const char *name)
{
    for (size_t i = 0; i < c->g->n_initializer; i++)
        if (c->g->initializer[i]->name && !strcmp(c->g->initializer[i]->name, name))
            return c->g->initializer[i];
    for (size_t i = 0; i < c->g->n_node; i++) {
        const Onnx__NodeProto *n = c->g->node[i];
        if (n->op_type && !strcmp(n->op_type, "Constant") && n->n_output == 1 &&
            (!n->domain || !n->domain[0] || !strcmp(n->domain, "ai.onnx")) &&
            !strcmp(n->output[0], name)) {
            const Onnx__AttributeProto *a = ap__onnx_attr(n, "value");
            return a && a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR ? a->t : NULL;
        }
    }
    return NULL;
}

const char *ap__onnx_node_label(const Onnx__NodeProto *n)
{
    return n->name && n->name[0] ? n->name : (n->n_output ? n->output[0] : "?");
}

int ap__onnx_node_err(const ap_onnx_ctx *c, const Onnx__NodeProto *n, int code, const char *what,
                     ap_error *err)
{
    return ap__error_set(err, code, "%s: node '%s' (%s): %s", c->name, ap__onnx_node_label(n),
                        n->op_type, what);
}

/* Input i of node n as a slot; error if it is not a computed value. */
int ap__onnx_input_slot(const ap_onnx_ctx *c, const Onnx__NodeProto *n, size_t i, ap_error *err)
{
    if (i >= n->n_input || !n->input[i][0])
        return ap__onnx_node_err(c, n, AP_EFORMAT, "missing input", err);
    int s = ap__onnx_lookup_value(c, n->input[i]);
    if (s < 0) {
        char msg[300];
        snprintf(msg, sizeof msg, "input '%.200s' is %s", n->input[i],
                 ap__onnx_find_const(c, n->input[i])
                     ? "a constant where a computed value is expected"
                     : "not defined before this node");
        return ap__onnx_node_err(c, n,
                                ap__onnx_find_const(c, n->input[i]) ? AP_EUNSUPPORTED : AP_EFORMAT,
                                msg, err);
    }
    return s;
}

/* d (cnt doubles, malloc'd, consumed) as a malloc'd float vector */
static int doubles_to_floats(const ap_onnx_ctx *c, double *d, size_t cnt, float **v, int *nv,
                             ap_error *err)
{
    *v = malloc((cnt ? cnt : 1) * sizeof **v);
    if (!*v) {
        free(d);
        return ap__error_set(err, AP_ENOMEM, "%s: out of memory", c->name);
    }
    for (size_t i = 0; i < cnt; i++)
        (*v)[i] = (float)ap__ir_round_f32(d[i]);
    free(d);
    *nv = (int)cnt;
    return AP_OK;
}

/* constant as a float vector: *v malloc'd */
int ap__onnx_const_floats(const ap_onnx_ctx *c, const Onnx__NodeProto *n, const char *name,
                         float **v, int *nv, int64_t dims[4], int *nd, ap_error *err)
{
    const Onnx__TensorProto *t = ap__onnx_find_const(c, name);
    if (!t)
        return ap__onnx_node_err(c, n, AP_EUNSUPPORTED, "operand must be a constant", err);
    double *d;
    size_t cnt;
    int rc = ap__onnx_tensor_values(t, &d, &cnt, dims, nd, c->name, err);
    if (rc != AP_OK)
        return rc;
    return doubles_to_floats(c, d, cnt, v, nv, err);
}

/* constant as doubles, rounded to float unless dbl: *v malloc'd */
int ap__onnx_const_reals(const ap_onnx_ctx *c, const Onnx__NodeProto *n, const char *name, int dbl,
                        double **v, int *nv, ap_error *err)
{
    const Onnx__TensorProto *t = ap__onnx_find_const(c, name);
    if (!t)
        return ap__onnx_node_err(c, n, AP_EUNSUPPORTED, "operand must be a constant", err);
    size_t cnt;
    int64_t dims[4];
    int nd;
    int rc = ap__onnx_tensor_values(t, v, &cnt, dims, &nd, c->name, err);
    if (rc != AP_OK)
        return rc;
    if (!dbl)
        for (size_t i = 0; i < cnt; i++)
            (*v)[i] = ap__ir_round_f32((*v)[i]);
    *nv = (int)cnt;
    return AP_OK;
}

int ap__onnx_reals_as_floats(const ap_onnx_ctx *c, const Onnx__NodeProto *n, const char *attr,
                            float **v, int *nv, ap_error *err)
{
    double *d;
    size_t cnt;
    int rc = ap__onnx_attr_reals(n, attr, &d, &cnt, NULL, c->name, err);
    if (rc != AP_OK)
        return rc;
    return doubles_to_floats(c, d, cnt, v, nv, err);
}

/* a new slot of `width` values (dbl: a double tensor) for output i */
int ap__onnx_output_slot(ap_onnx_ctx *c, const Onnx__NodeProto *n, size_t i, int width, int dbl,
                        ap_error *err)
{
    if (i >= n->n_output || !n->output[i][0])
        return ap__onnx_node_err(c, n, AP_EFORMAT, "missing output", err);
    int s = ap__onnx_add_slot(c, width, dbl, err);
    if (s < 0)
        return s;
    int rc = ap__onnx_bind_value(c, n->output[i], s, err);
    return rc < 0 ? rc : s;
}

/* Operators whose kernels here are float-only: ORT runs them on double
   tensors in double (or with float attributes on double rows), which these
   kernels do not reproduce, so such graphs go to ORT. */
int ap__onnx_float_only(const ap_onnx_ctx *c, const Onnx__NodeProto *n, int x, ap_error *err)
{
    if (c->p->dbl[x])
        return ap__onnx_node_err(c, n, AP_EUNSUPPORTED,
                                "operator on a double tensor is not supported natively", err);
    return AP_OK;
}

/* n's attributes against its operator's list (op_attrs.c) */
int ap__onnx_node_check_attrs(const ap_onnx_ctx *c, const Onnx__NodeProto *n, int ml,
                             ap_error *err)
{
    char msg[200];
    int code = ap__onnx_check_attrs(n, ml, msg, sizeof msg);
    return code == AP_OK ? AP_OK : ap__onnx_node_err(c, n, code, msg, err);
}
