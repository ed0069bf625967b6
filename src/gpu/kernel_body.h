/*
 * The GPU forest kernel's body: one row through every tree, written once for
 * both compilers. nvcc compiles it as __host__ __device__ (src/gpu/cuda.cu,
 * one thread per row); plain C compiles it with AP_HD empty, so that
 * tests/gpu/test_gpu_body.c runs exactly this traversal and accumulation on
 * the CPU against the engine, bit for bit, on machines without a GPU.
 *
 * The model is a flat copy of the IR (layout.c builds it: one blob, offsets
 * in ap_gpu_hdr, uploaded once). Semantics are the IR's (src/forest/ir.h),
 * not the CPU engine's rewritten bounds: the same rule gives the same leaf,
 * and the engine is itself bitwise the IR's reference. Leaf contributions
 * are precomputed on the host in the reference's rounding (F32:
 * (float)weight * (float)value; F64: weight * value), so the device does
 * only compares and additions: no multiply to contract into an FMA (cuda.cu
 * is compiled with --fmad=false all the same). Sums go in tree order: F32 in
 * float from (float)base_score, F64 in double, then averaged (transformed
 * output) and base added. The objective's transform runs on the host
 * (transform.c), the same code the engine calls.
 *
 * Not taken: linear leaves (layout.c refuses them; the model stays on CPU).
 */
#ifndef AP_GPU_KERNEL_BODY_H
#define AP_GPU_KERNEL_BODY_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __CUDACC__
#define AP_HD __host__ __device__
#else
#define AP_HD
#endif

enum { AP_GK_LEAF = 0, AP_GK_NUM = 1, AP_GK_CAT = 2 };   /* = AP_SPLIT_* */
enum { AP_GM_NAN = 0, AP_GM_NONE = 1, AP_GM_ZERO = 2 };  /* = AP_MISS_* */

/* 40 bytes; children are absolute node indices in the blob. */
typedef struct ap_gpu_node {
    double thr;        /* numeric: the IR threshold (F32 forests: a float value) */
    double leaf;       /* leaf of a scalar tree: its contribution, rounded as the
                          reference (F32: a float value) */
    int32_t feat;
    int32_t left, right;
    uint32_t off;      /* categorical: first word in cat; vector leaf: first of
                          G contributions in vec */
    uint32_t nwords;   /* categorical: words of the bitset */
    uint8_t kind, missing, default_left, cat_oor_left;
} ap_gpu_node;

/* Where each section of the blob starts (bytes, 8-aligned), and the scalars. */
typedef struct ap_gpu_hdr {
    int32_t f32;           /* 1: XGBoost float32 semantics */
    int32_t groups;        /* G margins per row */
    int32_t nfeat;
    int32_t ntrees;
    int32_t average_output;
    int32_t pad_;
    uint64_t off_nodes, off_root, off_group, off_cat, off_vec, off_base, off_count;
    uint64_t bytes;        /* the blob's size */
} ap_gpu_hdr;

/* The blob is written by gcc (layout.c) and read by nvcc's device code: the
   two must agree on these layouts (both follow the x86-64 ABI; checked). */
#ifdef __cplusplus
static_assert(sizeof(ap_gpu_node) == 40 && sizeof(ap_gpu_hdr) == 88, "GPU layout size");
#else
_Static_assert(sizeof(ap_gpu_node) == 40 && sizeof(ap_gpu_hdr) == 88, "GPU layout size");
#endif

typedef struct ap_gpu_view {
    const ap_gpu_node *nodes;
    const int32_t *root;   /* ntrees: first node of each tree */
    const int32_t *group;  /* ntrees: group, or -1 (vector tree) */
    const uint32_t *cat;
    const double *vec;     /* vector leaves: contributions, G per leaf */
    const double *base;    /* G base scores */
    const double *count;   /* G: trees per group (for average_output) */
} ap_gpu_view;

AP_HD static inline ap_gpu_view ap__gpu_view_at(const ap_gpu_hdr *h, const unsigned char *b)
{
    ap_gpu_view v;
    v.nodes = (const ap_gpu_node *)(const void *)(b + h->off_nodes);
    v.root = (const int32_t *)(const void *)(b + h->off_root);
    v.group = (const int32_t *)(const void *)(b + h->off_group);
    v.cat = (const uint32_t *)(const void *)(b + h->off_cat);
    v.vec = (const double *)(const void *)(b + h->off_vec);
    v.base = (const double *)(const void *)(b + h->off_base);
    v.count = (const double *)(const void *)(b + h->off_count);
    return v;
}

/* x rounded to float as a double (ap__ir_round_f32, which nvcc cannot call):
   past FLT_MAX a plain cast is undefined in C; IEEE gives FLT_MAX up to the
   midpoint 0x1.ffffffp127, infinity from there. NaN passes through. */
AP_HD static inline double ap__gpu_round_f32(double x)
{
    const double fmax = 3.40282346638528859812e+38; /* FLT_MAX */
    double a = x < 0 ? -x : x;
    if (!(a > fmax))
        return (double)(float)x;
    double r = a < 0x1.ffffffp127 ? fmax : (double)INFINITY;
    return x < 0 ? -r : r;
}

/* ap__ir_go_left for one node: 1 = left. x is already rounded (F32). */
AP_HD static inline int ap__gpu_go_left(const ap_gpu_view *m, int f32, const ap_gpu_node *n,
                                        double x)
{
    int nan = x != x;
    if (n->kind == AP_GK_CAT) {
        if (nan)
            return n->default_left;
        if (f32 ? x < 0 : x <= -1.0)
            return n->cat_oor_left;
        double c = trunc(x);
        if (c >= 32.0 * n->nwords)
            return n->cat_oor_left;
        uint32_t ci = (uint32_t)c;
        return (m->cat[n->off + ci / 32] >> (ci % 32)) & 1u;
    }
    if (nan) {
        if (n->missing == AP_GM_NONE)
            x = 0.0;
        else
            return n->default_left;
    }
    if (n->missing == AP_GM_ZERO && (x < 0 ? -x : x) <= (double)1e-35f)
        return n->default_left;
    if (f32)
        return (float)x < (float)n->thr;
    return x <= n->thr;
}

/* One row: writes its G margins to out (F32: float values widened), the
   F64 sums averaged when !raw and average_output, base added. out doubles as
   the accumulator (a float value survives the round trip through double
   exactly), so G is not bounded by a register or stack array. */
AP_HD static inline void ap__gpu_row(const ap_gpu_hdr *h, const ap_gpu_view *m,
                                     const double *row, int raw, double *out)
{
    const int G = h->groups, f32 = h->f32;
    for (int g = 0; g < G; g++)
        out[g] = f32 ? (double)(float)m->base[g] : 0.0;
    for (int32_t t = 0; t < h->ntrees; t++) {
        int32_t i = m->root[t];
        while (m->nodes[i].kind != AP_GK_LEAF) {
            const ap_gpu_node *n = &m->nodes[i];
            double x = row[n->feat];
            if (f32)
                x = ap__gpu_round_f32(x);
            i = ap__gpu_go_left(m, f32, n, x) ? n->left : n->right;
        }
        const ap_gpu_node *leaf = &m->nodes[i];
        int32_t grp = m->group[t];
        if (grp < 0) {
            const double *v = m->vec + leaf->off;
            for (int g = 0; g < G; g++)
                out[g] = f32 ? (double)((float)out[g] + (float)v[g]) : out[g] + v[g];
        } else {
            out[grp] = f32 ? (double)((float)out[grp] + (float)leaf->leaf) : out[grp] + leaf->leaf;
        }
    }
    if (!f32)
        for (int g = 0; g < G; g++) {
            double s = out[g];
            if (h->average_output && !raw && m->count[g] > 0)
                s /= m->count[g];
            out[g] = s + m->base[g];
        }
}

#endif
