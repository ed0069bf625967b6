/*
 * export.c: a loaded XGBoost / LightGBM forest (its IR, forest/ir.h) as an
 * ONNX-ML graph that ONNX Runtime loads and predicts as the source library
 * does. Written with the protobuf-c code generated from onnx.proto.
 *
 * Graph: input `input` [N, F] -> ai.onnx.ml.TreeEnsembleRegressor (SUM,
 * n_targets = groups, post_transform NONE) -> the objective's transform as
 * standard operators (Sigmoid, Softmax, Exp, Softplus, Abs+Mul) -> `output`.
 * A regressor rather than a classifier because ORT's classifier post
 * transforms do not match the libraries' (ORT ignores LOGISTIC on one score,
 * XGBoost's softmax sums in double, ...); standard operators on the margins
 * are the transforms themselves.
 *
 * export_walk.c writes the trees' nodes and weights (its header says how
 * precision and missing values are matched); this file makes them the
 * node's attributes (float or double as the IR's precision), adds the
 * transform's operators, and packs the model.
 */
#include "onnx/export.h"
#include "common/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int oom(exporter *x) { return ap__error_set(x->err, AP_ENOMEM, "ONNX export: out of memory"); }

/* ---- protobuf assembly ---- */

#define MAX_ATTRS 16

typedef struct graph_parts {
    Onnx__AttributeProto attr[MAX_ATTRS], *attrp[MAX_ATTRS];
    size_t nattr;
    Onnx__TensorProto tens[3];
    int64_t tdims[3];
    size_t ntens;
    float *fvalues, *fweights;   /* float copies for AP_PREC_F32 */
    double *base;                /* LightGBM base values (scaled) */
} graph_parts;

static Onnx__AttributeProto *attr_new(graph_parts *p, const char *name,
                                      Onnx__AttributeProto__AttributeType type)
{
    Onnx__AttributeProto *a = &p->attr[p->nattr];
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1;
    a->type = type;
    p->attrp[p->nattr++] = a;
    return a;
}

static void attr_ints(graph_parts *p, const char *name, const int64_t *v, size_t n)
{
    Onnx__AttributeProto *a = attr_new(p, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    a->n_ints = n;
    a->ints = (int64_t *)v;
}

static void attr_int(graph_parts *p, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = attr_new(p, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    a->has_i = 1;
    a->i = v;
}

static void attr_string(graph_parts *p, const char *name, const char *s)
{
    Onnx__AttributeProto *a = attr_new(p, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    a->has_s = 1;
    a->s.data = (uint8_t *)s;
    a->s.len = strlen(s);
}

static void attr_floats(graph_parts *p, const char *name, const float *v, size_t n)
{
    Onnx__AttributeProto *a = attr_new(p, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS);
    a->n_floats = n;
    a->floats = (float *)v;
}

/* a 1-D double tensor attribute (name ends in _as_tensor) */
static void attr_doubles(graph_parts *p, const char *name, const double *v, size_t n)
{
    Onnx__TensorProto *t = &p->tens[p->ntens];
    onnx__tensor_proto__init(t);
    p->tdims[p->ntens] = (int64_t)n;
    t->n_dims = 1;
    t->dims = &p->tdims[p->ntens];
    t->has_data_type = 1;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE;
    t->n_double_data = n;
    t->double_data = (double *)v;
    p->ntens++;
    Onnx__AttributeProto *a = attr_new(p, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR);
    a->t = t;
}

static int tree_attrs(exporter *x, graph_parts *p)
{
    const ap_forest_ir *ir = x->ir;
    attr_int(p, "n_targets", ir->num_groups);
    attr_string(p, "aggregate_function", "SUM");
    attr_string(p, "post_transform", "NONE");
    attr_ints(p, "nodes_treeids", x->treeids, x->nn);
    attr_ints(p, "nodes_nodeids", x->nodeids, x->nn);
    attr_ints(p, "nodes_featureids", x->featureids, x->nn);
    Onnx__AttributeProto *m = attr_new(p, "nodes_modes",
                                       ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS);
    m->n_strings = x->nn;
    m->strings = x->modes;
    attr_ints(p, "nodes_truenodeids", x->trueids, x->nn);
    attr_ints(p, "nodes_falsenodeids", x->falseids, x->nn);
    attr_ints(p, "nodes_missing_value_tracks_true", x->tracks, x->nn);
    attr_ints(p, "target_treeids", x->w_tree, x->nw);
    attr_ints(p, "target_nodeids", x->w_node, x->nw);
    attr_ints(p, "target_ids", x->w_id, x->nw);
    if (x->f64) {
        attr_doubles(p, "nodes_values_as_tensor", x->values, x->nn);
        attr_doubles(p, "target_weights_as_tensor", x->w_val, x->nw);
        int any = 0;
        p->base = malloc((size_t)ir->num_groups * sizeof *p->base);
        if (!p->base)
            return oom(x);
        double scale = ir->transform == AP_TF_SIGMOID ? ir->sigmoid_scale : 1.0;
        for (int g = 0; g < ir->num_groups; g++) {
            p->base[g] = ir->base_score[g] * scale;
            any |= p->base[g] != 0.0;
        }
        if (any)
            attr_doubles(p, "base_values_as_tensor", p->base, (size_t)ir->num_groups);
        return AP_OK;
    }
    p->fvalues = malloc((x->nn ? x->nn : 1) * sizeof *p->fvalues);
    p->fweights = malloc((x->nw ? x->nw : 1) * sizeof *p->fweights);
    if (!p->fvalues || !p->fweights)
        return oom(x);
    for (size_t i = 0; i < x->nn; i++)
        p->fvalues[i] = (float)x->values[i];  /* F32 IR thresholds are floats already */
    for (size_t i = 0; i < x->nw; i++)
        p->fweights[i] = (float)x->w_val[i];
    attr_floats(p, "nodes_values", p->fvalues, x->nn);
    attr_floats(p, "target_weights", p->fweights, x->nw);
    return AP_OK;
}

/* [N, width] tensor value info */
typedef struct vinfo {
    Onnx__ValueInfoProto v;
    Onnx__TypeProto type;
    Onnx__TypeProto__Tensor tensor;
    Onnx__TensorShapeProto shape;
    Onnx__TensorShapeProto__Dimension dim[2], *dimp[2];
} vinfo;

static void vinfo_init(vinfo *vi, const char *name, int elem, int64_t width)
{
    onnx__value_info_proto__init(&vi->v);
    onnx__type_proto__init(&vi->type);
    onnx__type_proto__tensor__init(&vi->tensor);
    onnx__tensor_shape_proto__init(&vi->shape);
    for (int i = 0; i < 2; i++) {
        onnx__tensor_shape_proto__dimension__init(&vi->dim[i]);
        vi->dimp[i] = &vi->dim[i];
    }
    vi->dim[0].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
    vi->dim[0].dim_param = (char *)"N";
    vi->dim[1].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
    vi->dim[1].dim_value = width;
    vi->shape.n_dim = 2;
    vi->shape.dim = vi->dimp;
    vi->tensor.has_elem_type = 1;
    vi->tensor.elem_type = elem;
    vi->tensor.shape = &vi->shape;
    vi->type.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    vi->type.tensor_type = &vi->tensor;
    vi->v.name = (char *)name;
    vi->v.type = &vi->type;
}

typedef struct onode {
    Onnx__NodeProto n;
    char *in[2], *out[1];
    Onnx__AttributeProto attr, *attrp;
} onode;

static Onnx__NodeProto *op_node(onode *o, const char *op, const char *domain, const char *name,
                                const char *in0, const char *in1, const char *out)
{
    onnx__node_proto__init(&o->n);
    o->in[0] = (char *)in0;
    o->in[1] = (char *)in1;
    o->out[0] = (char *)out;
    o->n.n_input = in1 ? 2 : 1;
    o->n.input = o->in;
    o->n.n_output = 1;
    o->n.output = o->out;
    o->n.op_type = (char *)op;
    o->n.domain = (char *)domain;
    o->n.name = (char *)name;
    return &o->n;
}

int ap_onnx_export_forest_mem(const struct ap_forest *f, unsigned char **buf, size_t *len,
                              ap_error *err)
{
    *buf = NULL;
    *len = 0;
    const ap_forest_ir *ir = &f->ir;
    if (ir->transform == AP_TF_ARGMAX)
        return ap__error_set(err, AP_EUNSUPPORTED,
                            "ONNX export: objective %s predicts a class label (argmax), not a "
                            "score; train with multi:softprob to export probabilities",
                            ir->objective);
    exporter x;
    memset(&x, 0, sizeof x);
    x.ir = ir;
    x.f64 = ir->precision == AP_PREC_F64;
    x.err = err;
    graph_parts p;
    memset(&p, 0, sizeof p);
    int rc = ap__onnx_export_walk(&x);
    if (rc == AP_OK)
        rc = tree_attrs(&x, &p);
    if (rc != AP_OK)
        goto out;

    int G = ir->num_groups;
    int in_elem = x.f64 ? ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE
                        : ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    int has_post = ir->transform != AP_TF_IDENTITY;
    onode nodes[3];
    Onnx__NodeProto *np[3];
    size_t nnodes = 0;
    np[nnodes] = op_node(&nodes[nnodes], "TreeEnsembleRegressor", "ai.onnx.ml", "trees", "input",
                         NULL, has_post ? "margin" : "output");
    nodes[nnodes].n.n_attribute = p.nattr;
    nodes[nnodes].n.attribute = p.attrp;
    nnodes++;
    switch (ir->transform) {
    case AP_TF_SIGMOID:  /* the scale is folded into the margins */
        np[nnodes] = op_node(&nodes[nnodes], "Sigmoid", "", "sigmoid", "margin", NULL, "output");
        nnodes++;
        break;
    case AP_TF_SOFTMAX:
        np[nnodes] = op_node(&nodes[nnodes], "Softmax", "", "softmax", "margin", NULL, "output");
        onnx__attribute_proto__init(&nodes[nnodes].attr);
        nodes[nnodes].attr.name = (char *)"axis";
        nodes[nnodes].attr.has_type = 1;
        nodes[nnodes].attr.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
        nodes[nnodes].attr.has_i = 1;
        nodes[nnodes].attr.i = -1;
        nodes[nnodes].attrp = &nodes[nnodes].attr;
        nodes[nnodes].n.n_attribute = 1;
        nodes[nnodes].n.attribute = &nodes[nnodes].attrp;
        nnodes++;
        break;
    case AP_TF_EXP:
        np[nnodes] = op_node(&nodes[nnodes], "Exp", "", "exp", "margin", NULL, "output");
        nnodes++;
        break;
    case AP_TF_LOG1P_EXP:  /* log(1 + exp(x)) */
        np[nnodes] = op_node(&nodes[nnodes], "Softplus", "", "softplus", "margin", NULL,
                             "output");
        nnodes++;
        break;
    case AP_TF_SQUARE_SIGNED:  /* sign(x) * x * x = x * |x| */
        np[nnodes] = op_node(&nodes[nnodes], "Abs", "", "abs", "margin", NULL, "abs_margin");
        nnodes++;
        np[nnodes] = op_node(&nodes[nnodes], "Mul", "", "square_signed", "margin", "abs_margin",
                             "output");
        nnodes++;
        break;
    default:
        break;
    }

    vinfo vin, vout;
    vinfo_init(&vin, "input", in_elem, ir->num_features);
    vinfo_init(&vout, "output", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, G);
    Onnx__ValueInfoProto *vinp = &vin.v, *voutp = &vout.v;
    char doc[160];
    snprintf(doc, sizeof doc, "%s model, objective %s: %s", ir->source, ir->objective,
             has_post ? "transformed outputs" : "margins");
    Onnx__GraphProto graph;
    onnx__graph_proto__init(&graph);
    graph.name = (char *)"alphapulse_export";
    graph.doc_string = doc;
    graph.n_node = nnodes;
    graph.node = np;
    graph.n_input = 1;
    graph.input = &vinp;
    graph.n_output = 1;
    graph.output = &voutp;

    Onnx__OperatorSetIdProto ops[2], *opsp[2] = {&ops[0], &ops[1]};
    onnx__operator_set_id_proto__init(&ops[0]);
    onnx__operator_set_id_proto__init(&ops[1]);
    ops[0].domain = (char *)"";
    ops[0].has_version = 1;
    ops[0].version = 15;
    ops[1].domain = (char *)"ai.onnx.ml";
    ops[1].has_version = 1;
    ops[1].version = 3;  /* TreeEnsembleRegressor with *_as_tensor attributes */

    Onnx__ModelProto model;
    onnx__model_proto__init(&model);
    model.has_ir_version = 1;
    model.ir_version = 8;
    model.n_opset_import = 2;
    model.opset_import = opsp;
    model.producer_name = (char *)"alphapulse";
    model.producer_version = (char *)ap_version();
    model.graph = &graph;

    size_t size = onnx__model_proto__get_packed_size(&model);
    if (size > AP_ONNX_MAX_FILE) {
        rc = ap__error_set(err, AP_ERANGE, "ONNX export: the graph would take %zu bytes, more "
                          "than the %zu an ONNX model may have here", size,
                          (size_t)AP_ONNX_MAX_FILE);
        goto out;
    }
    *buf = malloc(size ? size : 1);
    if (!*buf) {
        rc = oom(&x);
        goto out;
    }
    *len = onnx__model_proto__pack(&model, *buf);
out:
    free(p.fvalues);
    free(p.fweights);
    free(p.base);
    ap__onnx_exporter_free(&x);
    return rc;
}

int ap_onnx_export_forest(const struct ap_forest *f, const char *path, ap_error *err)
{
    unsigned char *buf;
    size_t len;
    int rc = ap_onnx_export_forest_mem(f, &buf, &len, err);
    if (rc != AP_OK)
        return rc;
    /* write beside the target and rename: a failed write never leaves a
       truncated model under the final name */
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 8);
    if (!tmp) {
        free(buf);
        return ap__error_set(err, AP_ENOMEM, "ONNX export: out of memory");
    }
    snprintf(tmp, plen + 8, "%s.tmpXX", path);
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        rc = ap__error_set(err, AP_EIO, "%s: cannot open for writing: %s", tmp, strerror(errno));
    } else {
        int bad = fwrite(buf, 1, len, fp) != len;
        bad |= fclose(fp) != 0;
        if (bad)
            rc = ap__error_set(err, AP_EIO, "%s: write failed: %s", tmp, strerror(errno));
        else if (rename(tmp, path) != 0)
            rc = ap__error_set(err, AP_EIO, "%s: cannot rename to %s: %s", tmp, path,
                              strerror(errno));
        if (rc != AP_OK)
            remove(tmp);
    }
    free(tmp);
    free(buf);
    return rc;
}
