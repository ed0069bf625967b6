/*
 * op_attrs.c: the attributes each operator imported natively may carry.
 *
 * An attribute that can change a prediction and is not understood is never
 * ignored: each operator imported natively lists the attributes it reads
 * (and the few it may skip, with the reason); any other attribute, one
 * given twice, or a function-attribute reference makes the native import
 * refuse the node with AP_EUNSUPPORTED naming node, operator and attribute,
 * so the AUTO backend hands the graph to ONNX Runtime, whose schema check
 * knows every attribute of its opsets. Values the kernels here do not
 * implement (Gemm transA=1, Reshape allowzero=1, ...) are refused where the
 * attribute is read (compile.c, trees_import.c), the same way.
 */
#include "onnx/onnx_internal.h"

#include <stdio.h>
#include <string.h>

typedef struct op_attrs {
    const char *op;
    int ml;                    /* domain ai.onnx.ml */
    const char *const *names;  /* NULL-terminated */
} op_attrs;

#define TREE_NODE_ATTRS                                                                          \
    "nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_modes", "nodes_values",         \
        "nodes_values_as_tensor", "nodes_truenodeids", "nodes_falsenodeids",                     \
        "nodes_missing_value_tracks_true", "base_values", "base_values_as_tensor",               \
        "post_transform",                                                                        \
        /* not needed: how often each node is taken, a hint for ORT's tree layout   \
           that never changes a score */                                                         \
        "nodes_hitrates", "nodes_hitrates_as_tensor"

static const char *const a_tec[] = {TREE_NODE_ATTRS, "class_treeids", "class_nodeids",
                                    "class_ids", "class_weights", "class_weights_as_tensor",
                                    "classlabels_int64s", "classlabels_strings", NULL};
static const char *const a_ter[] = {TREE_NODE_ATTRS, "target_treeids", "target_nodeids",
                                    "target_ids", "target_weights", "target_weights_as_tensor",
                                    "n_targets", "aggregate_function", NULL};
/* multi_class: ONNX Runtime reads it and never uses it (linearclassifier.cc,
   1.30): it cannot change a score */
static const char *const a_lincls[] = {"coefficients", "intercepts", "post_transform",
                                       "classlabels_ints", "classlabels_strings", "multi_class",
                                       NULL};
static const char *const a_linreg[] = {"coefficients", "intercepts", "post_transform", "targets",
                                       NULL};
static const char *const a_scaler[] = {"offset", "scale", NULL};
static const char *const a_norm[] = {"norm", NULL};
static const char *const a_zipmap[] = {"classlabels_int64s", "classlabels_strings", NULL};
static const char *const a_gemm[] = {"alpha", "beta", "transA", "transB", NULL};
static const char *const a_axis[] = {"axis", NULL};
static const char *const a_reshape[] = {"allowzero", NULL};
static const char *const a_cast[] = {"to", "saturate", NULL};
static const char *const a_const[] = {"value", NULL};
static const char *const a_none[] = {NULL};

static const op_attrs op_table[] = {
    {"TreeEnsembleClassifier", 1, a_tec}, {"TreeEnsembleRegressor", 1, a_ter},
    {"LinearClassifier", 1, a_lincls},    {"LinearRegressor", 1, a_linreg},
    {"Scaler", 1, a_scaler},              {"Normalizer", 1, a_norm},
    {"ZipMap", 1, a_zipmap},              {"Gemm", 0, a_gemm},
    {"MatMul", 0, a_none},                {"Add", 0, a_none},
    {"Sub", 0, a_none},                   {"Mul", 0, a_none},
    {"Div", 0, a_none},                   {"Relu", 0, a_none},
    {"Sigmoid", 0, a_none},               {"Tanh", 0, a_none},
    {"Softmax", 0, a_axis},               {"Exp", 0, a_none},
    {"Softplus", 0, a_none},              {"Abs", 0, a_none},
    {"Neg", 0, a_none},                   {"Flatten", 0, a_axis},
    {"Reshape", 0, a_reshape},            {"Concat", 0, a_axis},
    {"Identity", 0, a_none},              {"Cast", 0, a_cast},
    {"Constant", 0, a_const},
};

/* n's attributes against its operator's list; operators not in the table
   pass here and are refused later, by name. */
int ap__onnx_check_attrs(const Onnx__NodeProto *n, int ml, char *msg, size_t size)
{
    const op_attrs *oa = NULL;
    for (size_t i = 0; i < sizeof op_table / sizeof op_table[0] && !oa; i++)
        if (op_table[i].ml == ml && !strcmp(op_table[i].op, n->op_type))
            oa = &op_table[i];
    if (!oa)
        return AP_OK;
    for (size_t i = 0; i < n->n_attribute; i++) {
        const Onnx__AttributeProto *a = n->attribute[i];
        const char *an = a->name ? a->name : "";
        if (a->ref_attr_name && a->ref_attr_name[0]) {
            snprintf(msg, size, "attribute '%.64s' refers to a function attribute", an);
            return AP_EUNSUPPORTED;
        }
        size_t k;
        for (k = 0; oa->names[k] && strcmp(oa->names[k], an); k++)
            ;
        if (!oa->names[k]) {
            snprintf(msg, size,
                     "unknown attribute '%.64s' (not imported natively; refusing rather than "
                     "ignoring it)", an);
            return AP_EUNSUPPORTED;
        }
        for (size_t j = 0; j < i; j++)
            if (n->attribute[j]->name && !strcmp(n->attribute[j]->name, an)) {
                snprintf(msg, size, "attribute '%.64s' given twice", an);
                return AP_EFORMAT;
            }
    }
    return AP_OK;
}
