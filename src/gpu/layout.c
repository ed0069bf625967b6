/* The GPU copy of a forest: the IR flattened into one blob (kernel_body.h). */
#include "gpu/gpu.h"
#include "common/error.h"

#include <stdlib.h>
#include <string.h>

static uint64_t align8(uint64_t x) { return (x + 7) & ~(uint64_t)7; }

int ap__gpu_layout_build(const ap_forest_ir *ir, ap_gpu_layout *out, ap_error *err)
{
    memset(out, 0, sizeof *out);
    const int G = ir->num_groups;
    uint64_t nnodes = 0, nvec = 0;
    for (int32_t t = 0; t < ir->ntrees; t++) {
        const ap_ir_tree *tr = &ir->trees[t];
        for (int32_t i = 0; i < tr->nnodes; i++) {
            const ap_ir_node *n = &tr->nodes[i];
            if (n->kind == AP_SPLIT_LEAF && n->lin_len)
                return ap__error_set(err, AP_EUNSUPPORTED,
                                    "tree %d: linear leaves are not in the GPU kernel", (int)t);
            if (n->kind == AP_SPLIT_LEAF && tr->group == AP_GROUP_ALL)
                nvec += (uint64_t)G;
        }
        nnodes += (uint64_t)tr->nnodes;
    }
    if (nnodes > INT32_MAX || nvec > UINT32_MAX)
        return ap__error_set(err, AP_ERANGE, "%llu nodes: too many for the GPU layout",
                            (unsigned long long)nnodes);
    ap_gpu_hdr *h = &out->hdr;
    h->f32 = ir->precision == AP_PREC_F32;
    h->groups = G;
    h->nfeat = ir->num_features;
    h->ntrees = ir->ntrees;
    h->average_output = ir->average_output;
    uint64_t o = align8(sizeof(ap_gpu_hdr));
    h->off_nodes = o;
    o = align8(o + nnodes * sizeof(ap_gpu_node));
    h->off_root = o;
    o = align8(o + (uint64_t)ir->ntrees * 4);
    h->off_group = o;
    o = align8(o + (uint64_t)ir->ntrees * 4);
    h->off_cat = o;
    o = align8(o + (uint64_t)ir->ncat_words * 4);
    h->off_vec = o;
    o = align8(o + nvec * 8);
    h->off_base = o;
    o = align8(o + (uint64_t)G * 8);
    h->off_count = o;
    o = align8(o + (uint64_t)G * 8);
    h->bytes = o;
    unsigned char *b = calloc(1, (size_t)o);
    if (!b)
        return ap__error_set(err, AP_ENOMEM, "GPU layout: out of memory (%llu bytes)",
                            (unsigned long long)o);
    memcpy(b, h, sizeof *h); /* the blob carries its own header (for dumps) */
    ap_gpu_node *nodes = (ap_gpu_node *)(void *)(b + h->off_nodes);
    int32_t *root = (int32_t *)(void *)(b + h->off_root);
    int32_t *group = (int32_t *)(void *)(b + h->off_group);
    double *vec = (double *)(void *)(b + h->off_vec);
    double *base = (double *)(void *)(b + h->off_base);
    double *count = (double *)(void *)(b + h->off_count);
    if (ir->ncat_words)
        memcpy(b + h->off_cat, ir->cat_words, (size_t)ir->ncat_words * 4);
    for (int g = 0; g < G; g++)
        base[g] = ir->base_score[g];
    int32_t k = 0;
    uint32_t v = 0;
    for (int32_t t = 0; t < ir->ntrees; t++) {
        const ap_ir_tree *tr = &ir->trees[t];
        root[t] = k;
        group[t] = tr->group == AP_GROUP_ALL ? -1 : tr->group;
        for (int g = 0; g < G; g++)
            if (tr->group == AP_GROUP_ALL || tr->group == g)
                count[g] += 1.0;
        for (int32_t i = 0; i < tr->nnodes; i++) {
            const ap_ir_node *n = &tr->nodes[i];
            ap_gpu_node *d = &nodes[k + i];
            d->kind = n->kind;
            d->missing = n->missing;
            d->default_left = n->default_left;
            d->cat_oor_left = n->cat_oor_left;
            d->feat = n->feature;
            d->thr = n->threshold;
            d->left = k + n->left;
            d->right = k + n->right;
            if (n->kind == AP_SPLIT_CAT) {
                d->off = n->cat_off;
                d->nwords = n->cat_nwords;
            }
            if (n->kind != AP_SPLIT_LEAF)
                continue;
            d->left = d->right = k + i;
            /* the reference's rounding of weight * leaf (ir.c): F32 one
               float multiply, F64 one double multiply */
            if (tr->group == AP_GROUP_ALL) {
                d->off = v;
                for (int g = 0; g < G; g++) {
                    double lv = ir->leaf_vec[n->vec_off + g];
                    vec[v++] = h->f32 ? (double)((float)tr->weight * (float)lv) : tr->weight * lv;
                }
            } else {
                d->leaf = h->f32 ? (double)((float)tr->weight * (float)n->value)
                                 : tr->weight * n->value;
            }
        }
        k += tr->nnodes;
    }
    out->blob = b;
    return AP_OK;
}

void ap__gpu_layout_free(ap_gpu_layout *l)
{
    free(l->blob);
    l->blob = NULL;
}

void ap__gpu_layout_run_host(const ap_gpu_layout *l, const double *X, size_t nrows, int raw,
                            double *margins)
{
    ap_gpu_view v = ap__gpu_view_at(&l->hdr, l->blob);
    for (size_t r = 0; r < nrows; r++)
        ap__gpu_row(&l->hdr, &v, X + r * (size_t)l->hdr.nfeat, raw,
                    margins + r * (size_t)l->hdr.groups);
}
