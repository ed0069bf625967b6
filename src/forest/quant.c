/*
 * Reduced-precision tree engine (issue 12): the same forest on quantized
 * inputs, bitwise identical to the full engine by construction.
 *
 * Bins. Every numeric split is first rewritten as the full engine does
 * ("x < b -> left", ap__engine_split_bound). Per feature, the distinct
 * bounds b_0 < b_1 < ... < b_{k-1} of its splits form a sorted table, and a
 * row value maps once to its code c(x) = #{j : b_j <= x} in [0, k]. Since
 * the table is sorted, x < b_j <=> c(x) < j + 1: the split on bound j keeps
 * u = j + 1 and compares small integers, c < u. Nothing is rounded: the
 * code is computed from the exact double with the very comparison the full
 * engine makes, so every row takes the same path to the same leaf, and the
 * leaves are summed as the full engine sums them (same values, same order).
 *
 * Missing values need no separate walk. A NaN gets the code MISS (the
 * largest code), which no u reaches: it goes right. A node that sends
 * missing values left reads a second column of the same feature, the codes
 * shifted by one modulo MISS + 1 (c + 1; MISS wraps to 0), and keeps
 * u = j + 2: then c + 1 < j + 2 <=> c < j + 1 for values, and the wrapped
 * 0 < u always for NaN. LightGBM's zero-as-missing splits read a third and
 * fourth column where the zero band [-1e-35f, 1e-35f] (two more table
 * bounds) is coded MISS as well. A split that sends every value left (a
 * LightGBM +inf threshold) keeps u = k + 1 (+ 1 when shifted). Leaves keep
 * u = 0: no code is below 0, so they step to themselves, as in the full
 * engine (right = self). Each node is 8 bytes: right child, u, column.
 *
 * Codes are uint8 when every table has at most Q_MAX_K8 bounds, else uint16
 * (one width per model: one compare per step, no per-node width), refused
 * past Q_MAX_K16. Categorical splits keep the full engine's rule on the row
 * value (slow path, checked walk); linear leaves read the row too.
 *
 * Walks: tiles of 16 rows (codes column-major, the 16 node indices in
 * registers, one tree at a time over a block of tiles) and one row (16
 * trees at a time). Binning goes through a cell index over each table
 * (code_of); a feature whose bounds crowd its cells is binary-searched
 * instead, in a tile four rows per instruction with AVX2 (gathers) where
 * the CPU has it, else scalar. The AVX2 choice is stored in the engine at
 * compile time; a test can force the scalar search.
 */
#include "forest/quant.h"
#include "forest/transform.h"
#include "common/error.h"

#include <float.h>
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alphapulse/forest.h"
#include "forest/quant_layout.h"

/* Code of one value: c(x) = #{b <= x}, by a branch-free binary search (the
   number of steps depends on k only; the step is a mask, not a branch: a
   branch here mispredicts half the time). */
static inline uint32_t bin_of(const double *b, uint32_t k, double x)
{
    uint32_t lo = 0, n = k;
    while (n > 1) {
        uint32_t h = n / 2;
        lo += h & (0u - (uint32_t)(b[lo + h] <= x));
        n -= h;
    }
    return lo + (n ? (uint32_t)(b[lo] <= x) : 0u);
}

/* c(x) of a non-NaN value through the cell index: the cell gives the code
   of its lowest value, then its at most win bounds are counted (bounds of
   higher cells, and the NaN padding, compare false). Exact, as the binary
   search, in about half its time on the benchmark models (no chain of
   dependent loads). */
static inline uint32_t code_of(const ap_qengine *q, int32_t u, double x)
{
    const qbin *bn = &q->bins[u];
    const double *b = q->bounds + q->boff[u];
    if (bn->win == 0)
        return bin_of(b, q->bcnt[u], x);
    uint32_t c = q->cells[bn->coff + cell_of(bn, x)];
    const double *p = b + c;
    uint32_t n = 0;
    for (uint32_t t = 0; t < bn->win; t++)
        n += p[t] <= x;
    return c + n;
}

static inline uint32_t col_code(const ap_qengine *q, const qcol *c, const uint32_t *fc)
{
    uint32_t v = fc[c->feat];
    if (c->zero && v - q->zlo[c->feat] <= q->zhi[c->feat] - q->zlo[c->feat])
        v = q->miss;   /* in the band (unsigned: zlo <= v <= zhi); miss is past zhi */
    if (c->shift)
        v = (v + 1) & q->miss;
    return v;
}

/* Codes of feature u for the QTILE rows of a tile (row stride nf): 16
   independent searches, so their chains of loads overlap. Scalar. */
static void bin_tile_scalar(const ap_qengine *q, const double *X, int32_t u, uint32_t *v)
{
    const int32_t f = q->ufeat[u];
    for (int r = 0; r < QTILE; r++) {
        double x = X[(size_t)r * q->nf + f];
        v[r] = isnan(x) ? q->miss : code_of(q, u, x);
    }
}

/* The same with AVX2: four rows per instruction, the binary search's loads
   as gathers. */
__attribute__((target("avx2"))) static void bin_tile_avx2(const ap_qengine *q, const double *X,
                                                          int32_t u, uint32_t *out)
{
    const double *b = q->bounds + q->boff[u];
    const uint32_t k = q->bcnt[u];
    const size_t nf = (size_t)q->nf;
    const double *x0 = X + q->ufeat[u];
    const __m128i vmiss = _mm_set1_epi32((int)q->miss);
    __m256d x[QTILE / 4];
    __m128i pos[QTILE / 4];
    for (int j = 0; j < QTILE / 4; j++) {
        const double *p = x0 + (size_t)(4 * j) * nf;
        x[j] = _mm256_set_pd(p[3 * nf], p[2 * nf], p[nf], p[0]);
        pos[j] = _mm_setzero_si128();
    }
    uint32_t n = k;
    while (n > 1) {
        uint32_t h = n / 2;
        const __m128i vh = _mm_set1_epi32((int)h);
        for (int j = 0; j < QTILE / 4; j++) {
            __m256d v = _mm256_i32gather_pd(b, _mm_add_epi32(pos[j], vh), 8);
            __m256d le = _mm256_cmp_pd(v, x[j], _CMP_LE_OQ);
            /* the 64-bit masks packed to 32 bits, ANDed with h */
            __m128i m = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(
                _mm256_castpd_si256(le), _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7)));
            pos[j] = _mm_add_epi32(pos[j], _mm_and_si128(m, vh));
        }
        n -= h;
    }
    for (int j = 0; j < QTILE / 4; j++) {
        __m128i c = pos[j];
        if (n) {
            __m256d v = _mm256_i32gather_pd(b, pos[j], 8);
            __m256d le = _mm256_cmp_pd(v, x[j], _CMP_LE_OQ);
            __m128i m = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(
                _mm256_castpd_si256(le), _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7)));
            c = _mm_sub_epi32(c, m);   /* mask -1: +1 */
        }
        __m256d isn = _mm256_cmp_pd(x[j], x[j], _CMP_UNORD_Q);
        __m128i nm = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(
            _mm256_castpd_si256(isn), _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7)));
        c = _mm_blendv_epi8(c, vmiss, nm);
        _mm_storeu_si128((__m128i *)(out + 4 * j), c);
    }
}

/* Code tiles of ntiles tiles of rows: per used feature and tile, its 16
   codes, then each of its columns (at most four: zero band or not, shifted
   or not) written from them. */
static void fill_tiles(const ap_qengine *q, const double *X, int ntiles, void *ct)
{
    const uint32_t miss = q->miss;
    const int w = q->wide ? 2 : 1;
    const size_t tile_bytes = (size_t)q->ncols * QTILE * (size_t)w;
    for (int tile = 0; tile < ntiles; tile++) {
        const double *Xt = X + (size_t)tile * QTILE * q->nf;
        char *ctt = (char *)ct + (size_t)tile * tile_bytes;
        for (int32_t u = 0; u < q->nused; u++) {
            uint32_t c0[QTILE];
            /* the cell index where it works; features whose bounds crowd
               are searched, four rows per instruction where AVX2 is there */
            if (q->scalar || q->bins[u].win)
                bin_tile_scalar(q, Xt, u, c0);
            else
                bin_tile_avx2(q, Xt, u, c0);
            const uint32_t zlo = q->zlo[u], zhi = q->zhi[u];
            for (int var = 0; var < 4; var++) {
                int32_t c = q->colid[u * 4 + var];
                if (c < 0)
                    continue;
                uint32_t v[QTILE];
                if (var & 2)   /* the zero band is missing too */
                    for (int r = 0; r < QTILE; r++)
                        v[r] = c0[r] - zlo <= zhi - zlo ? miss : c0[r];
                else
                    for (int r = 0; r < QTILE; r++)
                        v[r] = c0[r];
                if (var & 1)   /* shifted: missing wraps to 0 */
                    for (int r = 0; r < QTILE; r++)
                        v[r] = (v[r] + 1) & miss;
                char *dst = ctt + (size_t)c * QTILE * (size_t)w;
                if (q->wide)
                    for (int r = 0; r < QTILE; r++)
                        ((uint16_t *)dst)[r] = (uint16_t)v[r];
                else
                    for (int r = 0; r < QTILE; r++)
                        ((uint8_t *)dst)[r] = (uint8_t)v[r];
            }
        }
    }
}

static __attribute__((noinline)) uint32_t slow_next(const ap_qengine *q, uint32_t i,
                                                    const double *row)
{
    const ap_ir_node *n = q->src[i];
    if (n->kind == AP_SPLIT_LEAF)
        return i;
    return q->nodes[i].right - (uint32_t)ap__ir_go_left(q->ir, n, row[n->feature]);
}

static void init_acc(const ap_qengine *q, int nb, void *acc)
{
    for (int r = 0; r < nb; r++)
        for (int32_t g = 0; g < q->G; g++) {
            if (q->prec == AP_PREC_F32)
                ((float *)acc)[r * q->G + g] = q->base32[g];
            else
                ((double *)acc)[r * q->G + g] = 0.0;
        }
}

static __attribute__((noinline)) double linear_value(const ap_qengine *q, const ap_ir_node *n,
                                                     const double *row)
{
    return ap__ir_leaf_value(q->ir, n, row);
}

/* Add leaf i of tree t for one row (row: its values, for linear leaves). */
static inline __attribute__((always_inline)) void add_leaf(const ap_qengine *q, int32_t t,
                                                          uint32_t i, const double *row,
                                                          void *acc_row)
{
    const int32_t g = q->trees[t].group;
    if (g == AP_GROUP_ALL) {
        if (q->prec == AP_PREC_F32) {
            const float *v = q->vec32 + q->voff[i];
            for (int32_t k = 0; k < q->G; k++)
                ((float *)acc_row)[k] += v[k];
        } else {
            const double *v = q->vec64 + q->voff[i];
            for (int32_t k = 0; k < q->G; k++)
                ((double *)acc_row)[k] += v[k];
        }
        return;
    }
    const ap_ir_node *n = q->has_linear ? q->src[i] : NULL;
    if (q->prec == AP_PREC_F32) {
        float v = q->leaf32[i];
        if (n && n->lin_len)
            v = q->w32[t] * (float)linear_value(q, n, row);
        ((float *)acc_row)[g] += v;
    } else {
        double v = q->leaf64[i];
        if (n && n->lin_len)
            v = q->ir->trees[t].weight * linear_value(q, n, row);
        ((double *)acc_row)[g] += v;
    }
}

/* Tiles: ntiles * QTILE rows, codes ct[tile * tile_bytes + xoff + r * size]:
   a step is 7 instructions (load xoff, u, right; load the code; compare;
   sbb), as the full engine's tile step. */
static inline __attribute__((always_inline)) void walk_tiles_t(const ap_qengine *q,
                                                               const void *ct, const double *X,
                                                               int ntiles, void *acc, int wide,
                                                               int checked)
{
    const size_t rb = (size_t)q->G * (q->prec == AP_PREC_F32 ? sizeof(float) : sizeof(double));
    const size_t tile_bytes = (size_t)q->ncols * QTILE * (wide ? 2 : 1);
    const qnode *nd = q->nodes;
    init_acc(q, QTILE * ntiles, acc);
    for (int32_t t = 0; t < q->ntrees; t++) {
        const qtree *tr = &q->trees[t];
        for (int tile = 0; tile < ntiles; tile++) {
            const char *x = (const char *)ct + (size_t)tile * tile_bytes;
            const double *Xt = X + (size_t)tile * QTILE * q->nf;
            uint32_t i[QTILE];
            for (int r = 0; r < QTILE; r++)
                i[r] = tr->root;
            for (int32_t d = 0; d < tr->depth; d++)
#pragma GCC unroll 16
                for (int r = 0; r < QTILE; r++) {
                    const qnode *n = &nd[i[r]];
                    if (checked && __builtin_expect(n->xoff == Q_COL_SPECIAL, 0)) {
                        i[r] = slow_next(q, i[r], Xt + (size_t)r * q->nf);
                        continue;
                    }
                    uint32_t c = wide ? ((const uint16_t *)(x + n->xoff))[r]
                                      : ((const uint8_t *)(x + n->xoff))[r];
                    i[r] = n->right - (c < n->u);
                }
            for (int r = 0; r < QTILE; r++)
                add_leaf(q, t, i[r], Xt + (size_t)r * q->nf,
                         (char *)acc + (size_t)(tile * QTILE + r) * rb);
        }
    }
}

#define TILE_VARIANT(name, wide, checked)                                                   \
    static void walk_tiles_##name(const ap_qengine *q, const void *ct, const double *X,    \
                                  int ntiles, void *acc)                                    \
    {                                                                                       \
        walk_tiles_t(q, ct, X, ntiles, acc, wide, checked);                                 \
    }
TILE_VARIANT(u8, 0, 0)
TILE_VARIANT(u16, 1, 0)
TILE_VARIANT(u8_checked, 0, 1)
TILE_VARIANT(u16_checked, 1, 1)

/* One row, QROW_TREES trees at a time (their chains of loads overlap);
   its codes in the tile layout as row 0 of a tile. Trees past the end are
   padded with the pad leaf. */
static inline __attribute__((always_inline)) void walk_one_t(const ap_qengine *q,
                                                             const void *codes, const double *row,
                                                             void *acc, int wide, int checked)
{
    const qnode *nd = q->nodes;
    init_acc(q, 1, acc);
    for (int32_t t = 0; t < q->ntrees; t += QROW_TREES) {
        uint32_t i[QROW_TREES];
        int32_t depth = 0;
        const int kreal = q->ntrees - t < QROW_TREES ? (int)(q->ntrees - t) : QROW_TREES;
        for (int k = 0; k < QROW_TREES; k++) {
            if (k >= kreal) {
                i[k] = q->pad;
                continue;
            }
            i[k] = q->trees[t + k].root;
            if (q->trees[t + k].depth > depth)
                depth = q->trees[t + k].depth;
        }
        for (int32_t d = 0; d < depth; d++)
#pragma GCC unroll 16
            for (int k = 0; k < QROW_TREES; k++) {
                const qnode *n = &nd[i[k]];
                if (checked && __builtin_expect(n->xoff == Q_COL_SPECIAL, 0)) {
                    i[k] = slow_next(q, i[k], row);
                    continue;
                }
                uint32_t c = wide ? *(const uint16_t *)((const char *)codes + n->xoff)
                                  : *((const uint8_t *)codes + n->xoff);
                i[k] = n->right - (c < n->u);
            }
        for (int k = 0; k < kreal; k++)
            add_leaf(q, t + k, i[k], row, acc);
    }
}

#define ONE_VARIANT(name, wide, checked)                                                    \
    static void walk_one_##name(const ap_qengine *q, const void *codes, const double *row, \
                                void *acc)                                                  \
    {                                                                                       \
        walk_one_t(q, codes, row, acc, wide, checked);                                      \
    }
ONE_VARIANT(u8, 0, 0)
ONE_VARIANT(u16, 1, 0)
ONE_VARIANT(u8_checked, 0, 1)
ONE_VARIANT(u16_checked, 1, 1)

/* GCC's SLP vectoriser turns the heap step (2s + 2 - left, 16 rows) into
   shuffles and lane inserts, 2.3x slower than the scalar steps (perf,
   batch-1k): the heap walks are compiled without it. */
#if defined(__GNUC__) && !defined(__clang__)
#define NO_SLP __attribute__((optimize("no-tree-slp-vectorize", "no-tree-loop-vectorize")))
#else
#define NO_SLP   /* clang has no such attribute (and does not do this) */
#endif

/* The heap layout's leaf l (tree t's slot) for one row. */
static inline __attribute__((always_inline)) void add_heap_leaf(const ap_qengine *q, int32_t t,
                                                               size_t l, void *acc_row)
{
    const int32_t g = q->trees[t].group;
    if (g == AP_GROUP_ALL) {
        if (q->prec == AP_PREC_F32) {
            const float *v = q->vec32 + q->hvoff[l];
            for (int32_t k = 0; k < q->G; k++)
                ((float *)acc_row)[k] += v[k];
        } else {
            const double *v = q->vec64 + q->hvoff[l];
            for (int32_t k = 0; k < q->G; k++)
                ((double *)acc_row)[k] += v[k];
        }
    } else if (q->prec == AP_PREC_F32) {
        ((float *)acc_row)[g] += q->hleaf32[l];
    } else {
        ((double *)acc_row)[g] += q->hleaf64[l];
    }
}

/* Heap layout, tiles: a step is 5 instructions (load xoff; load the code;
   compare with u in memory; lea 2s + 2; sbb). */
static inline __attribute__((always_inline)) void walk_heap_tiles_t(const ap_qengine *q,
                                                                    const void *ct, int ntiles,
                                                                    void *acc, int wide)
{
    const size_t rb = (size_t)q->G * (q->prec == AP_PREC_F32 ? sizeof(float) : sizeof(double));
    const size_t tile_bytes = (size_t)q->ncols * QTILE * (wide ? 2 : 1);
    const int32_t D = q->hdepth;
    const uint32_t ni = (1u << D) - 1;
    init_acc(q, QTILE * ntiles, acc);
    for (int32_t t = 0; t < q->ntrees; t++) {
        const hnode *hn = q->hnodes + (size_t)t * ni;
        /* one register for the tree's base: left alone, GCC keeps the array
           and t * ni apart and adds them in every step */
        __asm__("" : "+r"(hn));
        for (int tile = 0; tile < ntiles; tile++) {
            const char *x = (const char *)ct + (size_t)tile * tile_bytes;
            uint32_t i[QTILE];
            for (int r = 0; r < QTILE; r++)
                i[r] = 0;
            for (int32_t d = 0; d < D; d++)
#pragma GCC unroll 16
                for (int r = 0; r < QTILE; r++) {
                    const hnode *n = &hn[i[r]];
                    uint32_t c = wide ? ((const uint16_t *)(x + n->xoff))[r]
                                      : ((const uint8_t *)(x + n->xoff))[r];
                    i[r] = 2 * i[r] + 2 - (c < n->u);
                }
            for (int r = 0; r < QTILE; r++)
                add_heap_leaf(q, t, (size_t)t * (ni + 1) + (i[r] - ni),
                              (char *)acc + (size_t)(tile * QTILE + r) * rb);
        }
    }
}

NO_SLP static void walk_heap_tiles_u8(const ap_qengine *q, const void *ct, const double *X, int ntiles,
                               void *acc)
{
    walk_heap_tiles_t(q, ct, ntiles, acc, 0);
}

NO_SLP static void walk_heap_tiles_u16(const ap_qengine *q, const void *ct, const double *X, int ntiles,
                                void *acc)
{
    walk_heap_tiles_t(q, ct, ntiles, acc, 1);
}

/* Heap layout, one row: QROW_TREES trees at a time, then the rest. */
static inline __attribute__((always_inline)) void walk_heap_one_t(const ap_qengine *q,
                                                                  const void *codes, void *acc,
                                                                  int wide)
{
    const int32_t D = q->hdepth;
    const uint32_t ni = (1u << D) - 1;
    init_acc(q, 1, acc);
    int32_t t = 0;
    for (; t + QROW_TREES <= q->ntrees; t += QROW_TREES) {
        uint32_t i[QROW_TREES];
        for (int k = 0; k < QROW_TREES; k++)
            i[k] = 0;
        const hnode *hn = q->hnodes + (size_t)t * ni;
        for (int32_t d = 0; d < D; d++)
#pragma GCC unroll 16
            for (int k = 0; k < QROW_TREES; k++) {
                const hnode *n = &hn[(size_t)k * ni + i[k]];
                uint32_t c = wide ? *(const uint16_t *)((const char *)codes + n->xoff)
                                  : *((const uint8_t *)codes + n->xoff);
                i[k] = 2 * i[k] + 2 - (c < n->u);
            }
        for (int k = 0; k < QROW_TREES; k++)
            add_heap_leaf(q, t + k, (size_t)(t + k) * (ni + 1) + (i[k] - ni), acc);
    }
    for (; t < q->ntrees; t++) {
        const hnode *hn = q->hnodes + (size_t)t * ni;
        uint32_t i = 0;
        for (int32_t d = 0; d < D; d++) {
            const hnode *n = &hn[i];
            uint32_t c = wide ? *(const uint16_t *)((const char *)codes + n->xoff)
                              : *((const uint8_t *)codes + n->xoff);
            i = 2 * i + 2 - (c < n->u);
        }
        add_heap_leaf(q, t, (size_t)t * (ni + 1) + (i - ni), acc);
    }
}

NO_SLP static void walk_heap_one_u8(const ap_qengine *q, const void *codes, const double *row, void *acc)
{
    walk_heap_one_t(q, codes, acc, 0);
}

NO_SLP static void walk_heap_one_u16(const ap_qengine *q, const void *codes, const double *row,
                              void *acc)
{
    walk_heap_one_t(q, codes, acc, 1);
}

void ap__qengine_predict(const ap_qengine *q, const double *X, size_t nrows, double *out,
                         unsigned flags)
{
    const int raw = (flags & AP_PREDICT_RAW) != 0;
    const int nout = raw ? q->G : ap__forest_ir_num_outputs(q->ir);
    union {
        float f[QACC_MAX];
        double d[QACC_MAX];
    } acc;
    /* block: whole tiles whose codes fit the buffer */
    static const int code_bytes[2] = {1, 2};
    size_t tile_bytes = (size_t)q->ncols * QTILE * (size_t)code_bytes[q->wide];
    int ntiles = tile_bytes ? (int)(Q_CODES_BYTES / tile_bytes) : QBLOCK / QTILE;
    if (ntiles > QBLOCK / QTILE)
        ntiles = QBLOCK / QTILE;
    if (ntiles * QTILE * q->G > QACC_MAX)
        ntiles = QACC_MAX / (QTILE * q->G);
    uint64_t ct_buf[Q_CODES_BYTES / 8];   /* a block's code tiles, or one row's codes */
    uint32_t fc[Q_MAX_COLS];              /* one row's feature codes */
    size_t r0 = 0;
    if (ntiles > 0) {
        const int bs = ntiles * QTILE;
        static void (*const walk[2][2])(const ap_qengine *, const void *, const double *, int,
                                        void *) = {{walk_tiles_u8, walk_tiles_u8_checked},
                                                   {walk_tiles_u16, walk_tiles_u16_checked}};
        for (; nrows - r0 >= QTILE; r0 += (size_t)bs) {
            int nb = nrows - r0 < (size_t)bs ? (int)((nrows - r0) / QTILE * QTILE) : bs;
            const double *Xb = X + r0 * (size_t)q->nf;
            fill_tiles(q, Xb, nb / QTILE, ct_buf);
            if (q->heap)
                (q->wide ? walk_heap_tiles_u16 : walk_heap_tiles_u8)(q, ct_buf, Xb, nb / QTILE,
                                                                     acc.f);
            else
                walk[q->wide][q->has_special](q, ct_buf, Xb, nb / QTILE, acc.f);
            ap__transform_rows(q->ir, q->count, acc.f, nb, raw, out + r0 * (size_t)nout, nout);
            if (nb < bs) {
                r0 += (size_t)nb;
                break;
            }
        }
    }
    /* the rest, row by row */
    static void (*const one[2][2])(const ap_qengine *, const void *, const double *, void *) = {
        {walk_one_u8, walk_one_u8_checked}, {walk_one_u16, walk_one_u16_checked}};
    for (; r0 < nrows; r0++) {
        const double *row = X + r0 * (size_t)q->nf;
        for (int32_t u = 0; u < q->nused; u++) {
            double x = row[q->ufeat[u]];
            fc[u] = isnan(x) ? q->miss : code_of(q, u, x);
        }
        for (int32_t c = 0; c < q->ncols; c++) {
            uint32_t v = col_code(q, &q->cols[c], fc);
            if (q->wide)
                ((uint16_t *)ct_buf)[(size_t)c * QTILE] = (uint16_t)v;
            else
                ((uint8_t *)ct_buf)[(size_t)c * QTILE] = (uint8_t)v;
        }
        if (q->heap)
            (q->wide ? walk_heap_one_u16 : walk_heap_one_u8)(q, ct_buf, row, acc.f);
        else
            one[q->wide][q->has_special](q, ct_buf, row, acc.f);
        ap__transform_rows(q->ir, q->count, acc.f, 1, raw, out + r0 * (size_t)nout, nout);
    }
}
