/*
 * to_ort.c: a graph handed to ONNX Runtime (src/ort). The ZipMap on the
 * output is removed from the graph first (its input is the probability
 * tensor we return), so only plain tensors come back; the output width is
 * the ZipMap's label count or the output's declared shape (0: ORT learns it
 * by running one row).
 */
#include "onnx/onnx_internal.h"
#include "ort/ort.h"
#include "common/error.h"

#include <stdlib.h>
#include <string.h>

#define TYPE_FLOAT ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT
#define TYPE_DOUBLE ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE

/* Serialize the model for ONNX Runtime with the output's ZipMap removed and
   the graph output renamed to the ZipMap's input (a float tensor). */
static int pack_for_ort(Onnx__ModelProto *mp, const ap_onnx_io *r, uint8_t **buf, size_t *len,
                        const char **out_name, const char *name, ap_error *err)
{
    Onnx__GraphProto *g = mp->graph;
    Onnx__ValueInfoProto *ov = NULL;
    size_t zi = 0;
    *out_name = r->output;
    Onnx__TypeProto__Tensor tt = ONNX__TYPE_PROTO__TENSOR__INIT;
    Onnx__TypeProto tp = ONNX__TYPE_PROTO__INIT;
    Onnx__TypeProto *saved_type = NULL;
    char *saved_name = NULL;
    if (r->zipmap) {
        for (size_t i = 0; i < g->n_output; i++)
            if (!strcmp(g->output[i]->name, r->output))
                ov = g->output[i];
        for (zi = 0; g->node[zi] != r->zipmap; zi++)
            ;
        /* take the ZipMap node out (moved to the end, count decremented) */
        Onnx__NodeProto *z = g->node[zi];
        memmove(&g->node[zi], &g->node[zi + 1], (g->n_node - zi - 1) * sizeof *g->node);
        g->node[g->n_node - 1] = z;
        g->n_node--;
        tt.has_elem_type = 1;
        tt.elem_type = TYPE_FLOAT;
        tp.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
        tp.tensor_type = &tt;
        saved_type = ov->type;
        saved_name = ov->name;
        ov->type = &tp;
        ov->name = z->input[0];
        *out_name = z->input[0];
    }
    *len = onnx__model_proto__get_packed_size(mp);
    *buf = malloc(*len ? *len : 1);
    if (*buf)
        onnx__model_proto__pack(mp, *buf);
    if (r->zipmap) {
        /* put everything back: free_unpacked walks the original structure */
        ov->type = saved_type;
        ov->name = saved_name;
        g->n_node++;
        Onnx__NodeProto *z = g->node[g->n_node - 1];
        memmove(&g->node[zi + 1], &g->node[zi], (g->n_node - zi - 1) * sizeof *g->node);
        g->node[zi] = z;
    }
    if (!*buf)
        return ap__error_set(err, AP_ENOMEM, "%s: out of memory", name);
    return AP_OK;
}

static int zipmap_width(const ap_onnx_io *r)
{
    const Onnx__AttributeProto *a = ap__onnx_attr(r->zipmap, "classlabels_int64s");
    if (a && a->n_ints)
        return (int)a->n_ints;
    a = ap__onnx_attr(r->zipmap, "classlabels_strings");
    return a ? (int)a->n_strings : 0;
}

static int output_width(const Onnx__GraphProto *g, const char *out)
{
    for (size_t i = 0; i < g->n_output; i++) {
        const Onnx__ValueInfoProto *v = g->output[i];
        if (strcmp(v->name, out) || ap__onnx_tensor_elem(v) < 0)
            continue;
        const Onnx__TensorShapeProto *sh = v->type->tensor_type->shape;
        if (sh && sh->n_dim == 1)
            return 1;
        if (sh && sh->n_dim == 2 &&
            sh->dim[1]->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE)
            return (int)sh->dim[1]->dim_value;
    }
    return 0;
}

int ap__onnx_open_ort(Onnx__ModelProto *mp, const ap_onnx_io *r, const ap_onnx_options *o,
                     const char *name, ap_ort **out, ap_error *err)
{
    uint8_t *buf;
    size_t len;
    const char *out_name;
    int rc = pack_for_ort(mp, r, &buf, &len, &out_name, name, err);
    if (rc != AP_OK)
        return rc;
    ap_ort_config cfg = {
        .library = o->ort_library,
        .input = r->input,
        .output = out_name,
        .input_is_double = r->elem == TYPE_DOUBLE,
        .num_features = r->nf,
        .num_outputs = r->zipmap ? zipmap_width(r) : output_width(mp->graph, r->output),
        .intra_threads = o->ort_threads,
    };
    rc = ap__ort_open(buf, len, &cfg, name, out, err);
    free(buf);
    return rc;
}
