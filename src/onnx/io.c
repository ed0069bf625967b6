/*
 * io.c: the graph's interface, for either backend: its nodes are well
 * formed (op_type, input and output names present, at most MAX_NODES), its
 * one tensor input is [N, F] float or double with F known, and which output
 * is the prediction (the first float/double tensor output, not an integer
 * or string label), with the ZipMap that produces it, if any.
 */
#include "onnx/onnx_internal.h"
#include "forest/ir.h"
#include "common/error.h"

#include <string.h>

#define MAX_NODES 100000
#define TYPE_FLOAT ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT
#define TYPE_DOUBLE ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE

int ap__onnx_tensor_elem(const Onnx__ValueInfoProto *v)
{
    if (!v->type || v->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ||
        !v->type->tensor_type)
        return -1;
    return v->type->tensor_type->elem_type;
}

int ap__onnx_find_io(const Onnx__ModelProto *mp, const char *name, ap_onnx_io *r, ap_error *err)
{
    memset(r, 0, sizeof *r);
    const Onnx__GraphProto *g = mp->graph;
    if (!g)
        return ap__error_set(err, AP_EFORMAT, "%s: ONNX model has no graph", name);
    if (g->n_node > MAX_NODES)
        return ap__error_set(err, AP_ERANGE, "%s: graph has %zu nodes (at most %d)", name,
                            g->n_node, MAX_NODES);
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        if (!n->op_type || !n->op_type[0])
            return ap__error_set(err, AP_EFORMAT, "%s: node %zu has no op_type", name, i);
        for (size_t k = 0; k < n->n_input; k++)
            if (!n->input[k])
                return ap__error_set(err, AP_EFORMAT, "%s: node %zu: bad input", name, i);
        for (size_t k = 0; k < n->n_output; k++)
            if (!n->output[k])
                return ap__error_set(err, AP_EFORMAT, "%s: node %zu: bad output", name, i);
    }
    const Onnx__ValueInfoProto *in = NULL;
    for (size_t i = 0; i < g->n_input; i++) {
        const Onnx__ValueInfoProto *v = g->input[i];
        if (!v->name)
            return ap__error_set(err, AP_EFORMAT, "%s: graph input %zu has no name", name, i);
        int is_init = 0;
        for (size_t k = 0; k < g->n_initializer; k++)
            if (g->initializer[k]->name && !strcmp(g->initializer[k]->name, v->name))
                is_init = 1;
        if (is_init)
            continue;
        if (in)
            return ap__error_set(err, AP_EUNSUPPORTED,
                                "%s: graph has several inputs ('%s', '%s'); one [N, F] tensor "
                                "input is supported", name, in->name, v->name);
        in = v;
    }
    if (!in)
        return ap__error_set(err, AP_EFORMAT, "%s: graph has no input", name);
    r->input = in->name;
    r->elem = ap__onnx_tensor_elem(in);
    if (r->elem != TYPE_FLOAT && r->elem != TYPE_DOUBLE)
        return ap__error_set(err, AP_EUNSUPPORTED,
                            "%s: input '%s' must be a float or double tensor", name, in->name);
    const Onnx__TensorShapeProto *sh = in->type->tensor_type->shape;
    if (!sh || sh->n_dim != 2 ||
        sh->dim[1]->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE ||
        sh->dim[1]->dim_value < 1 || sh->dim[1]->dim_value > AP_IR_MAX_FEATURES)
        return ap__error_set(err, AP_EUNSUPPORTED,
                            "%s: input '%s' must have shape [N, F] with F known", name, in->name);
    r->nf = (int)sh->dim[1]->dim_value;
    /* the prediction: the first output that is not an integer/string label */
    for (size_t i = 0; i < g->n_output && !r->output; i++) {
        const Onnx__ValueInfoProto *v = g->output[i];
        if (!v->name)
            return ap__error_set(err, AP_EFORMAT, "%s: graph output %zu has no name", name, i);
        int e = ap__onnx_tensor_elem(v);
        if (e == TYPE_FLOAT || e == TYPE_DOUBLE || e == -1)
            r->output = v->name;
    }
    if (!r->output)
        return ap__error_set(err, AP_EUNSUPPORTED, "%s: graph has no float output", name);
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        if (!strcmp(n->op_type, "ZipMap") && n->n_output == 1 && n->n_input == 1 &&
            !strcmp(n->output[0], r->output))
            r->zipmap = n;
    }
    return AP_OK;
}
