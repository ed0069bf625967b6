/*
 * Compiled tree engine: the fast predict path of ap_forest.
 * docs/ENGINE.md has the measurements behind each choice.
 *
 * Layout. All trees' nodes live in a few parallel arrays (structure of
 * arrays: an indexed load needs no multiply): thr, feat, right (the right
 * child; the left one is right - 1, children are adjacent), per tree in
 * breadth-first order so its top levels share cache lines.
 *
 * One comparison for both precisions. Every numeric split is rewritten at
 * compile time as "x < thr -> left" on the row's double value:
 *     F32 (XGBoost)   (float)x < t  <=>  x < f32_bound(t)   (exact)
 *     F64 (LightGBM)  x <= t        <=>  x < nextafter(t, +inf)
 * so a step is  next = right - (x < thr). NaN compares false and would go
 * right: rows holding NaN also send NaN to each node's precomputed side
 * (nan_left), and forests with SPECIAL nodes (categorical, zero-as-missing,
 * a LightGBM +inf threshold) take the "checked" walk, where NaN values and
 * SPECIAL nodes go through slow_next(), the IR's own rules applied to the
 * IR node.
 *
 * No branch on the data. Leaves are nodes with thr = NaN and right = self,
 * so they step to themselves: a tree is walked with exactly depth(tree)
 * steps; rows that reach a shallow leaf early spin there. The contribution
 * of each leaf (weight * value, rounded as the reference does) sits in a
 * parallel array, added in tree order. Vector trees (group AP_GROUP_ALL,
 * ONNX classifiers) keep their leaves' num_groups contributions in vec32 /
 * vec64 at voff[leaf] and add all of them after the same single walk.
 *
 * Three walks, all the same steps:
 *  - tiles (batches of numeric-only forests): 16 rows copied feature-major,
 *    one tree at a time over the block, 16 node indices in registers:
 *    7 instructions a step (walk_tiles_t); tiles holding NaN use a variant
 *    that also sends NaN to each node's precomputed side (nan_left).
 *  - rows (blocks with NaN, categorical/linear forests, leftovers): one tree
 *    over up to BLOCK rows, indices in a small array (walk_rows).
 *  - one row: ROW_TREES trees at once, so their chains overlap (walk_one).
 * Row-major walks come in three modes (FAST, NANS, CHECKED) and with or
 * without vector trees, each compiled with its constants.
 *
 * The predict path allocates nothing (scratch on the stack, ~60 KB), takes
 * no lock and only reads the engine: any number of threads may share one.
 * The engine keeps a pointer to the IR for the rare paths and for the
 * objective transform, so the IR must outlive it (ap_forest owns both).
 */
#include "forest/forest_internal.h"
#include "forest/transform.h"
#include "forest/quant.h"
#include "common/error.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SPECIAL 0x80000000u   /* feat flag: node needs slow_next() for every row */
#define FEAT_MASK 0x7fffffffu

#define BLOCK 96        /* rows per block of a batch call */
#define TILE 16         /* rows per tile of the tile walk */
#define ACC_MAX 2048    /* accumulators on the stack: block rows * groups */
#define XT_BYTES 32768  /* stack buffer for a block's tiles */
#define ROW_TREES 16    /* trees walked together for a single row */
/* Output groups we accept: bounded by the stack scratch above. */
#define MAX_GROUPS AP_IR_MAX_GROUPS_ROW

typedef struct etree {
    uint32_t root;
    int32_t depth;   /* steps from the root to its deepest leaf */
    int32_t group;   /* or AP_GROUP_ALL: a vector tree */
} etree;

struct ap_engine {
    const ap_forest_ir *ir;
    int prec;
    int32_t nf, G;
    int has_special;             /* some node is SPECIAL: rows always take the checked walk */
    int has_linear;
    int32_t ntrees;
    uint32_t pad;                /* an extra leaf node after all trees: pads tree groups */
    etree *trees;
    /* nodes, structure of arrays (indexed loads need no multiply) */
    double *thr;                 /* go left iff x < thr (NaN for leaves) */
    uint32_t *feat;              /* feature index | SPECIAL */
    uint32_t *right;             /* right child; the left one is right - 1; leaves: self */
    uint32_t *xoff;              /* byte offset of the node's feature in a tile */
    float *thr32;                /* F32 tiles: go left iff (float)x < thr32 (NaN for leaves) */
    uint8_t *nan_left;           /* tiles: where NaN goes (numeric nodes; 0 for leaves) */
    int tiles;                   /* full tiles per block for walk_tiles; 0: not usable */
    const ap_ir_node **src;      /* per node: its IR node (slow paths) */
    float *leaf32;               /* F32: (float)weight * (float)value per leaf */
    double *leaf64;              /* F64: weight * value per leaf */
    uint32_t *voff;              /* vector-tree leaves: first of their G values in vec32/64 */
    float *vec32;                /* F32: (float)weight * (float)leaf_vec[..] per group */
    double *vec64;               /* F64: weight * leaf_vec[..] per group */
    float *w32;                  /* per tree: (float)weight, for linear leaves */
    float *base32;               /* F32: (float)base_score[g] */
    double *count;               /* trees per group (F64 average_output) */
    uint64_t nvec;               /* values in vec32 / vec64 */
};

/* Smallest double x with (float)x >= t: then (float)x < t <=> x < bound for
   every non-NaN double x, since rounding to float is monotonic. The boundary
   is the midpoint m between t and the float below it (exact in double); m
   itself rounds up or down by ties-to-even, which the final test settles. */
static double f32_bound(float t)
{
    if (t == -INFINITY)
        return -INFINITY;
    float lo = nextafterf(t, -INFINITY);
    double m;
    if (t == INFINITY)
        m = (double)FLT_MAX + ldexp(1.0, 103);    /* half an ulp above FLT_MAX */
    else if (lo == -INFINITY)
        m = (double)t - ldexp(1.0, 103);          /* t == -FLT_MAX */
    else
        m = ((double)lo + (double)t) / 2;
    return (float)m >= t ? m : nextafter(m, INFINITY);
}

double ap__engine_split_bound(int prec, double threshold, int *all)
{
    *all = 0;
    if (prec == AP_PREC_F32)
        return f32_bound((float)threshold);
    if (threshold == INFINITY) {   /* x <= +inf: every value */
        *all = 1;
        return INFINITY;
    }
    return nextafter(threshold, INFINITY);
}

static __attribute__((noinline)) uint32_t slow_next(const ap_engine *e, uint32_t i, double x)
{
    const ap_ir_node *n = e->src[i];
    if (n->kind == AP_SPLIT_LEAF)
        return i;
    return e->right[i] - (uint32_t)ap__ir_go_left(e->ir, n, x);
}

/* Walk modes, a compile-time constant at every call site. */
enum { FAST = 0,     /* no SPECIAL node, no NaN in the rows */
       NANS = 1,     /* no SPECIAL node; NaN goes to nan_left[i] without a branch */
       CHECKED = 2   /* SPECIAL nodes: SPECIAL or NaN -> slow_next() */
};

/* One step down. */
static inline __attribute__((always_inline)) uint32_t step(const ap_engine *e, uint32_t i,
                                                          const double *row, int mode)
{
    uint32_t f = e->feat[i];
    double x = row[mode == CHECKED ? f & FEAT_MASK : f];
    if (mode == CHECKED && __builtin_expect((f & SPECIAL) || isnan(x), 0))
        return slow_next(e, i, x);
    if (mode == NANS)   /* as the NaN tiles; leaves: nan_left 0, right self */
        return e->right[i] - ((x < e->thr[i]) | (isnan(x) & e->nan_left[i]));
    return e->right[i] - (x < e->thr[i]);
}

/* A linear leaf's value: ap__ir_leaf_value (ir.h), kept out of line. Inlined
   into the walks it made every forest slower, linear leaves or not
   (callgrind: +0.3% instructions on a depth-6 XGBoost forest, +0.7% on a
   1000-tree LightGBM one), for -1.5% on linear forests only. */
static __attribute__((noinline)) double linear_value(const ap_engine *e, const ap_ir_node *n,
                                                     const double *row)
{
    return ap__ir_leaf_value(e->ir, n, row);
}

/* Add a vector leaf's G contributions to one row's accumulators. */
static inline __attribute__((always_inline)) void add_vec(const ap_engine *e, uint32_t i,
                                                          void *acc_row)
{
    const int32_t G = e->G;
    if (e->prec == AP_PREC_F32) {
        const float *v = e->vec32 + e->voff[i];
        for (int32_t g = 0; g < G; g++)
            ((float *)acc_row)[g] += v[g];
    } else {
        const double *v = e->vec64 + e->voff[i];
        for (int32_t g = 0; g < G; g++)
            ((double *)acc_row)[g] += v[g];
    }
}

static void init_acc(const ap_engine *e, int nb, void *acc)
{
    for (int r = 0; r < nb; r++)
        for (int32_t g = 0; g < e->G; g++) {
            if (e->prec == AP_PREC_F32)
                ((float *)acc)[r * e->G + g] = e->base32[g];
            else
                ((double *)acc)[r * e->G + g] = 0.0;
        }
}

/* Walk trees [t0, t1) for nb <= NB rows, KT trees at a time: KT * nb
   independent chains of loads the CPU overlaps. The trees of a group take
   the deepest one's number of steps (leaves loop on themselves). Leaves are
   added in tree order, the reference's summation order. Compile-time flags:
   PAD: t1 - t0 may not be a multiple of KT; the last group fills its empty
   slots with the pad leaf (it spins in place, in L1) and adds only its real
   trees. VEC: the forest has vector trees. Both cost per-tree instructions
   (+9% on a depth-6 single row, callgrind), so forests without them and
   full groups are compiled without. */
static inline __attribute__((always_inline)) void walk_trees(const ap_engine *e, const double *X,
                                                             int nb, void *acc, int mode,
                                                             int32_t t0, int32_t t1, int KT,
                                                             int NB, int PAD, int VEC)
{
    const int32_t G = e->G, nf = e->nf;
    const size_t row_bytes = (size_t)G * (e->prec == AP_PREC_F32 ? sizeof(float) : sizeof(double));
    for (int32_t t = t0; t < t1; t += KT) {
        uint32_t idx[KT][NB];
        int32_t depth = 0;
        const int kreal = PAD && t1 - t < KT ? (int)(t1 - t) : KT;
        for (int k = 0; k < KT; k++) {
            if (PAD && k >= kreal) {
                for (int r = 0; r < nb; r++)
                    idx[k][r] = e->pad;
                continue;
            }
            const etree *tr = &e->trees[t + k];
            depth = tr->depth > depth ? tr->depth : depth;
            for (int r = 0; r < nb; r++)
                idx[k][r] = tr->root;
        }
        for (int32_t d = 0; d < depth; d++)
#pragma GCC unroll 16
            for (int k = 0; k < KT; k++)
                for (int r = 0; r < nb; r++)
                    idx[k][r] = step(e, idx[k][r], X + (size_t)r * nf, mode);
        for (int k = 0; k < kreal; k++) {
            int32_t g = e->trees[t + k].group;
            if (VEC && g == AP_GROUP_ALL) {
                for (int r = 0; r < nb; r++)
                    add_vec(e, idx[k][r], (char *)acc + (size_t)r * row_bytes);
                continue;
            }
            for (int r = 0; r < nb; r++) {
                uint32_t i = idx[k][r];
                const ap_ir_node *n = e->has_linear ? e->src[i] : NULL;
                if (e->prec == AP_PREC_F32) {
                    float v = e->leaf32[i];
                    if (n && n->lin_len)
                        v = e->w32[t + k] * (float)linear_value(e, n, X + (size_t)r * nf);
                    ((float *)acc)[r * G + g] += v;
                } else {
                    double v = e->leaf64[i];
                    if (n && n->lin_len)
                        v = e->ir->trees[t + k].weight * linear_value(e, n, X + (size_t)r * nf);
                    ((double *)acc)[r * G + g] += v;
                }
            }
        }
    }
}

/* Margins of nb <= BLOCK rows (acc[r * G + g]), one tree at a time. */
static inline __attribute__((always_inline)) void walk_rows(const ap_engine *e, const double *X,
                                                            int nb, void *acc, int mode, int VEC)
{
    init_acc(e, nb, acc);
    walk_trees(e, X, nb, acc, mode, 0, e->ntrees, 1, BLOCK, 0, VEC);
}

/* Margins of one row, ROW_TREES trees at a time, the leftover trees 4 at a
   time, the last four padded: walked one by one they were serial chains of
   cache misses on deep trees (ONNX depth-10 forest: -5%); padding them to
   ROW_TREES cost shallow forests more dummy steps than it saved. */
static inline __attribute__((always_inline)) void walk_one(const ap_engine *e, const double *X,
                                                           void *acc, int mode, int VEC)
{
    init_acc(e, 1, acc);
    int32_t full = e->ntrees - e->ntrees % ROW_TREES;
    /* NB = BLOCK, not 1: a big index array stays in memory; scalarised into
       16 registers it spills and the walk is 30% slower (measured) */
    walk_trees(e, X, 1, acc, mode, 0, full, ROW_TREES, BLOCK, 0, VEC);
    walk_trees(e, X, 1, acc, mode, full, e->ntrees, 4, BLOCK, 1, VEC);
}

/* The twelve row-major variants (mode x vector trees), each compiled with
   its constants. */
#define ROW_VARIANTS(name, mode, vec)                                                         \
    static void walk_rows_##name(const ap_engine *e, const double *X, int nb, void *acc)      \
    {                                                                                         \
        walk_rows(e, X, nb, acc, mode, vec);                                                  \
    }                                                                                         \
    static void walk_one_##name(const ap_engine *e, const double *X, void *acc)               \
    {                                                                                         \
        walk_one(e, X, acc, mode, vec);                                                       \
    }
ROW_VARIANTS(fast, FAST, 0)
ROW_VARIANTS(nan, NANS, 0)
ROW_VARIANTS(checked, CHECKED, 0)
ROW_VARIANTS(fast_vec, FAST, 1)
ROW_VARIANTS(nan_vec, NANS, 1)
ROW_VARIANTS(checked_vec, CHECKED, 1)

/* The unchecked walk, fastest form: TILE rows (a tile) through one tree
   with the TILE node indices in registers. The tile's rows are copied
   feature-major (xt[f * TILE + r]), so row r's value of the node's feature
   is at the constant displacement r * size from xt + xoff[node]: a step is
   7 instructions (load xoff, thr, right; compare with the row value in
   memory; setcc; sub) and needs no per-row pointer. F32 forests keep the
   rows as float (rounded once, as XGBoost does) and compare with float
   thresholds: half the bytes, twice the rows per block. Tree by tree over
   the block's tiles, so a tree's nodes are fetched once per block. */
static inline __attribute__((always_inline)) void walk_tiles_t(const ap_engine *e, const void *xt,
                                                               int ntiles, void *accv, int f32,
                                                               int nan)
{
    const int32_t G = e->G;
    float *acc32 = accv;
    double *acc64 = accv;
    init_acc(e, TILE * ntiles, accv);
    const size_t tile_bytes = (size_t)TILE * e->nf * (f32 ? sizeof(float) : sizeof(double));
    for (int32_t t = 0; t < e->ntrees; t++) {
        const etree *tr = &e->trees[t];
        for (int tile = 0; tile < ntiles; tile++) {
            const char *x = (const char *)xt + tile * tile_bytes;
            uint32_t i[TILE];
            for (int r = 0; r < TILE; r++)
                i[r] = tr->root;
            for (int32_t d = 0; d < tr->depth; d++)
#pragma GCC unroll 16
                for (int r = 0; r < TILE; r++) {
                    /* nan: the tile holds NaN; it goes left where the node
                       sends missing values left (nan_left, 0 for leaves) */
                    if (f32) {
                        float v = ((const float *)(x + e->xoff[i[r]]))[r];
                        i[r] = e->right[i[r]] -
                               ((v < e->thr32[i[r]]) | (nan && (isnan(v) & e->nan_left[i[r]])));
                    } else {
                        double v = ((const double *)(x + e->xoff[i[r]]))[r];
                        i[r] = e->right[i[r]] -
                               ((v < e->thr[i[r]]) | (nan && (isnan(v) & e->nan_left[i[r]])));
                    }
                }
            if (tr->group == AP_GROUP_ALL) {
                for (int r = 0; r < TILE; r++) {
                    if (f32)
                        add_vec(e, i[r], acc32 + (tile * TILE + r) * G);
                    else
                        add_vec(e, i[r], acc64 + (tile * TILE + r) * G);
                }
                continue;
            }
            for (int r = 0; r < TILE; r++) {
                if (f32)
                    acc32[(tile * TILE + r) * G + tr->group] += e->leaf32[i[r]];
                else
                    acc64[(tile * TILE + r) * G + tr->group] += e->leaf64[i[r]];
            }
        }
    }
}

static void walk_tiles_f32(const ap_engine *e, const void *xt, int ntiles, void *acc)
{
    walk_tiles_t(e, xt, ntiles, acc, 1, 0);
}

static void walk_tiles_f32_nan(const ap_engine *e, const void *xt, int ntiles, void *acc)
{
    walk_tiles_t(e, xt, ntiles, acc, 1, 1);
}

static void walk_tiles_f64(const ap_engine *e, const void *xt, int ntiles, void *acc)
{
    walk_tiles_t(e, xt, ntiles, acc, 0, 0);
}

static void walk_tiles_f64_nan(const ap_engine *e, const void *xt, int ntiles, void *acc)
{
    walk_tiles_t(e, xt, ntiles, acc, 0, 1);
}

/* Copy ntiles tiles of rows into the tile layout (float for F32 forests);
   returns whether any value is NaN. */
static int transpose_tiles(const ap_engine *e, const double *X, int ntiles, void *xt)
{
    const int32_t nf = e->nf;
    int bad = 0;
    for (int tile = 0; tile < ntiles; tile++)
        for (int r = 0; r < TILE; r++) {
            const double *row = X + (size_t)(tile * TILE + r) * nf;
            size_t base = (size_t)tile * TILE * nf + (size_t)r;
            for (int32_t f = 0; f < nf; f++) {
                if (e->prec == AP_PREC_F32)
                    ((float *)xt)[base + (size_t)f * TILE] = (float)row[f];
                else
                    ((double *)xt)[base + (size_t)f * TILE] = row[f];
                bad |= isnan(row[f]);
            }
        }
    return bad;
}

static int block_has_nan(const double *X, size_t n)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        bad |= isnan(X[i]);   /* no early exit: the compiler vectorises this */
    return bad;
}

/* Margins of nb rows (nb <= the block size) into acc: full tiles through
   walk_tiles_t when the model allows it and the rows hold no NaN, the rest
   through the row-major walks. */
static void margins(const ap_engine *e, const double *X, int nb, void *acc, void *xt)
{
    int done = 0, nt = e->tiles ? nb / TILE : 0;
    if (nt > 0) {
        int nan = transpose_tiles(e, X, nt, xt);
        if (e->prec == AP_PREC_F32)
            (nan ? walk_tiles_f32_nan : walk_tiles_f32)(e, xt, nt, acc);
        else
            (nan ? walk_tiles_f64_nan : walk_tiles_f64)(e, xt, nt, acc);
        done = nt * TILE;
    }
    if (done == nb)
        return;
    X += (size_t)done * e->nf;
    acc = (char *)acc +
          (size_t)done * e->G * (e->prec == AP_PREC_F32 ? sizeof(float) : sizeof(double));
    nb -= done;
    int mode = e->has_special ? CHECKED : block_has_nan(X, (size_t)nb * e->nf) ? NANS : FAST;
    static void (*const one[2][3])(const ap_engine *, const double *, void *) = {
        {walk_one_fast, walk_one_nan, walk_one_checked},
        {walk_one_fast_vec, walk_one_nan_vec, walk_one_checked_vec}};
    static void (*const rows[2][3])(const ap_engine *, const double *, int, void *) = {
        {walk_rows_fast, walk_rows_nan, walk_rows_checked},
        {walk_rows_fast_vec, walk_rows_nan_vec, walk_rows_checked_vec}};
    const int vec = e->voff != NULL;
    if (nb == 1)
        one[vec][mode](e, X, acc);
    else
        rows[vec][mode](e, X, nb, acc);
}

void ap__engine_predict(const ap_engine *e, const double *X, size_t nrows, double *out,
                       unsigned flags)
{
    const int raw = (flags & AP_PREDICT_RAW) != 0;
    const int32_t G = e->G, nf = e->nf;
    const int nout = raw ? G : ap__forest_ir_num_outputs(e->ir);
    int bs = e->tiles ? TILE * e->tiles : BLOCK;
    if (ACC_MAX / G < bs)
        bs = ACC_MAX / G;
    double xt[XT_BYTES / sizeof(double)];
    union {
        float f[ACC_MAX];
        double d[ACC_MAX];
    } acc;

    for (size_t r0 = 0; r0 < nrows; r0 += (size_t)bs) {
        int nb = nrows - r0 < (size_t)bs ? (int)(nrows - r0) : bs;
        const double *Xb = X + r0 * (size_t)nf;
        margins(e, Xb, nb, acc.f, xt);
        ap__transform_rows(e->ir, e->count, acc.f, nb, raw, out + r0 * (size_t)nout, nout);
    }
}

/* Every per-node array of the layout: thr, feat, right, xoff, nan_left, src,
   the leaf value (and thr32 for F32), voff with vector trees. */
int ap__engine_node_bytes(const ap_engine *e)
{
    int b = (int)(sizeof *e->thr + sizeof *e->feat + sizeof *e->right + sizeof *e->xoff +
                  sizeof *e->nan_left + sizeof *e->src);
    b += e->prec == AP_PREC_F32 ? (int)(sizeof *e->leaf32 + sizeof *e->thr32)
                                : (int)sizeof *e->leaf64;
    if (e->voff)
        b += (int)sizeof *e->voff;
    return b;
}

size_t ap__engine_bytes(const ap_engine *e)
{
    size_t nodes = (size_t)e->pad + 1;
    size_t b = sizeof *e + nodes * (size_t)ap__engine_node_bytes(e);
    b += (size_t)e->ntrees * (sizeof *e->trees + sizeof *e->w32);
    b += (size_t)e->G * (sizeof *e->base32 + sizeof *e->count);
    b += (size_t)e->nvec * (e->prec == AP_PREC_F32 ? sizeof(float) : sizeof(double));
    return b;
}

void ap__engine_free(ap_engine *e)
{
    if (!e)
        return;
    free(e->trees);
    free(e->thr);
    free(e->feat);
    free(e->right);
    free(e->xoff);
    free(e->thr32);
    free(e->nan_left);
    free(e->src);
    free(e->leaf32);
    free(e->leaf64);
    free(e->voff);
    free(e->vec32);
    free(e->vec64);
    free(e->w32);
    free(e->base32);
    free(e->count);
    free(e);
}

int ap__engine_compile(const ap_forest_ir *ir, ap_engine **out, ap_error *err)
{
    *out = NULL;
    if (ir->num_groups > MAX_GROUPS)
        return ap__error_set(err, AP_EUNSUPPORTED,
                            "model has %d output groups; the engine supports at most %d",
                            ir->num_groups, MAX_GROUPS);
    uint64_t total = 0, nvec = 0;   /* nodes; vector-leaf values */
    int32_t maxn = 0;
    for (int32_t t = 0; t < ir->ntrees; t++) {
        const ap_ir_tree *tr = &ir->trees[t];
        total += (uint64_t)tr->nnodes;
        if (tr->nnodes > maxn)
            maxn = tr->nnodes;
        if (tr->group == AP_GROUP_ALL)
            for (int32_t k = 0; k < tr->nnodes; k++)
                nvec += tr->nodes[k].kind == AP_SPLIT_LEAF ? (uint64_t)ir->num_groups : 0;
    }
    if (total > FEAT_MASK)
        return ap__error_set(err, AP_ERANGE, "model has %llu nodes, more than the engine's %u",
                            (unsigned long long)total, FEAT_MASK);
    if (nvec > UINT32_MAX)
        return ap__error_set(err, AP_ERANGE,
                            "model has %llu vector leaf values, more than the engine's %u",
                            (unsigned long long)nvec, UINT32_MAX);
    ap_engine *e = calloc(1, sizeof *e);
    int32_t *queue = malloc((size_t)maxn * sizeof *queue);   /* IR index per BFS slot */
    int32_t *qdepth = malloc((size_t)maxn * sizeof *qdepth);
    if (!e || !queue || !qdepth)
        goto nomem;
    e->ir = ir;
    e->prec = ir->precision;
    e->nf = ir->num_features;
    e->G = ir->num_groups;
    e->ntrees = ir->ntrees;
    e->nvec = nvec;
    e->trees = calloc((size_t)ir->ntrees, sizeof *e->trees);
    e->thr = calloc(total + 1, sizeof *e->thr);
    e->feat = calloc(total + 1, sizeof *e->feat);
    e->right = calloc(total + 1, sizeof *e->right);
    e->xoff = calloc(total + 1, sizeof *e->xoff);
    e->nan_left = calloc(total + 1, sizeof *e->nan_left);
    e->src = calloc(total + 1, sizeof *e->src);
    e->w32 = calloc((size_t)ir->ntrees, sizeof *e->w32);
    e->base32 = calloc((size_t)e->G, sizeof *e->base32);
    e->count = calloc((size_t)e->G, sizeof *e->count);
    if (e->prec == AP_PREC_F32) {
        e->leaf32 = calloc(total + 1, sizeof *e->leaf32);
        e->thr32 = calloc(total + 1, sizeof *e->thr32);
    } else {
        e->leaf64 = calloc(total + 1, sizeof *e->leaf64);
    }
    if (nvec) {
        e->voff = calloc(total + 1, sizeof *e->voff);
        if (e->prec == AP_PREC_F32)
            e->vec32 = malloc(nvec * sizeof *e->vec32);
        else
            e->vec64 = malloc(nvec * sizeof *e->vec64);
    }
    if (!e->trees || !e->thr || !e->feat || !e->right || !e->xoff || !e->nan_left || !e->src ||
        !e->w32 || !e->base32 || !e->count ||
        (e->prec == AP_PREC_F32 ? !e->leaf32 || !e->thr32 : !e->leaf64) ||
        (nvec && (!e->voff || (e->prec == AP_PREC_F32 ? !e->vec32 : !e->vec64))))
        goto nomem;
    for (int32_t g = 0; g < e->G; g++)
        e->base32[g] = (float)ir->base_score[g];

    uint32_t next = 0, vnext = 0;
    for (int32_t t = 0; t < ir->ntrees; t++) {
        const ap_ir_tree *tr = &ir->trees[t];
        const int vec = tr->group == AP_GROUP_ALL;
        etree *et = &e->trees[t];
        et->root = next;
        et->group = tr->group;
        e->w32[t] = (float)tr->weight;
        for (int32_t g = 0; g < e->G; g++)
            e->count[g] += vec || g == tr->group;
        /* breadth first: slot s of this tree is engine node root + s; the IR
           validated that every node is reached exactly once */
        int32_t head = 0, tail = 0;
        queue[tail] = 0;
        qdepth[tail++] = 0;
        while (head < tail) {
            int32_t s = head, k = queue[head];
            int32_t dep = qdepth[head++];
            uint32_t i = et->root + (uint32_t)s;
            const ap_ir_node *n = &tr->nodes[k];
            e->src[i] = n;
            if (n->kind == AP_SPLIT_LEAF) {
                if (n->lin_len)
                    e->has_linear = 1;
                e->thr[i] = NAN;
                e->feat[i] = 0;
                e->right[i] = i;
                if (dep > et->depth)
                    et->depth = dep;
                if (vec) {
                    /* rounded as the reference: (float)weight * (float)v */
                    const double *v = ir->leaf_vec + n->vec_off;
                    e->voff[i] = vnext;
                    for (int32_t g = 0; g < e->G; g++, vnext++) {
                        if (e->prec == AP_PREC_F32)
                            e->vec32[vnext] = (float)tr->weight * (float)v[g];
                        else
                            e->vec64[vnext] = tr->weight * v[g];
                    }
                    if (e->prec == AP_PREC_F32)
                        e->thr32[i] = NAN;
                    continue;
                }
                if (e->prec == AP_PREC_F32) {
                    e->thr32[i] = NAN;
                    e->leaf32[i] = (float)tr->weight * (float)n->value;
                } else {
                    e->leaf64[i] = tr->weight * n->value;
                }
                continue;
            }
            e->feat[i] = (uint32_t)n->feature;
            e->xoff[i] = (uint32_t)n->feature * TILE *
                         (uint32_t)(e->prec == AP_PREC_F32 ? sizeof(float) : sizeof(double));
            e->right[i] = et->root + (uint32_t)tail + 1;
            queue[tail] = n->left;
            qdepth[tail++] = dep + 1;
            queue[tail] = n->right;
            qdepth[tail++] = dep + 1;
            if (n->kind == AP_SPLIT_CAT || n->missing == AP_MISS_ZERO ||
                (e->prec == AP_PREC_F64 && n->threshold == INFINITY)) {
                e->feat[i] |= SPECIAL; /* thr unused: slow_next decides */
                e->has_special = 1;
            } else if (e->prec == AP_PREC_F32) {
                /* AP_MISS_NONE compares 0.0 instead of NaN: a fixed side */
                e->nan_left[i] = n->missing == AP_MISS_NAN ? n->default_left
                                                           : (float)0.0 < (float)n->threshold;
                e->thr[i] = f32_bound((float)n->threshold);
                e->thr32[i] = (float)n->threshold;
            } else {
                e->nan_left[i] = n->missing == AP_MISS_NAN ? n->default_left : 0.0 <= n->threshold;
                e->thr[i] = nextafter(n->threshold, INFINITY);
            }
        }
        next += (uint32_t)tr->nnodes;
    }
    /* the pad leaf: a leaf of no tree, never added (slow_next sees a leaf) */
    static const ap_ir_node pad_leaf = {.kind = AP_SPLIT_LEAF};
    e->pad = next;
    e->thr[next] = NAN;
    e->right[next] = next;
    e->src[next] = &pad_leaf;
    if (e->prec == AP_PREC_F32)
        e->thr32[next] = NAN;
    /* tiles need numeric splits only (no SPECIAL node, no linear leaf) and
       a block of tiles within the stack budget */
    if (!e->has_special && !e->has_linear) {
        e->tiles = (int)(XT_BYTES / ((size_t)TILE * e->nf * (e->prec == AP_PREC_F32 ? 4 : 8)));
        if (e->tiles > BLOCK / TILE)
            e->tiles = BLOCK / TILE;
        if (e->tiles * TILE * e->G > ACC_MAX)
            e->tiles = ACC_MAX / (TILE * e->G);
    }
    free(queue);
    free(qdepth);
    *out = e;
    return AP_OK;
nomem:
    free(queue);
    free(qdepth);
    ap__engine_free(e);
    return ap__error_set(err, AP_ENOMEM, "out of memory compiling the model");
}
