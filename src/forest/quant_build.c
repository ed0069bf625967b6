/* The quantized engine's compile step: bound tables, code columns, nodes
   (quant.c describes the layout and why it is exact). */
#include "forest/quant.h"
#include "common/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "forest/quant_layout.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* index of b in the sorted table (it is there) */
static uint32_t bound_index(const double *t, uint32_t k, double b)
{
    uint32_t lo = 0, hi = k;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (t[mid] < b)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int is_numeric_split(const ap_ir_node *n) { return n->kind == AP_SPLIT_NUM; }

void ap__qengine_free(ap_qengine *q)
{
    if (!q)
        return;
    free(q->trees);
    free(q->nodes);
    free(q->leaf32);
    free(q->leaf64);
    free(q->voff);
    free(q->vec32);
    free(q->vec64);
    free(q->w32);
    free(q->base32);
    free(q->count);
    free(q->src);
    free(q->ufeat);
    free(q->boff);
    free(q->bcnt);
    free(q->zlo);
    free(q->zhi);
    free(q->bounds);
    free(q->bins);
    free(q->cells);
    free(q->cols);
    free(q->hnodes);
    free(q->hleaf32);
    free(q->hleaf64);
    free(q->hvoff);
    free(q->colid);
    free(q);
}

int ap__qengine_node_bytes(const ap_qengine *q)
{
    if (q->heap)   /* a split; leaf slots hold only their value */
        return (int)sizeof(hnode);
    int b = (int)sizeof(qnode) + (q->prec == AP_PREC_F32 ? 4 : 8);
    if (q->src)
        b += (int)sizeof *q->src;
    if (q->voff)
        b += (int)sizeof *q->voff;
    return b;
}

size_t ap__qengine_bytes(const ap_qengine *q)
{
    size_t b = sizeof *q + (size_t)q->nnodes * (size_t)ap__qengine_node_bytes(q);
    b += (size_t)q->ntrees * (sizeof *q->trees + sizeof *q->w32);
    b += (size_t)q->G * (sizeof *q->base32 + sizeof *q->count);
    b += (size_t)q->nvec * (q->prec == AP_PREC_F32 ? sizeof(float) : sizeof(double));
    b += (size_t)q->nbounds * sizeof *q->bounds + (size_t)q->nused * sizeof *q->bins;
    b += (size_t)q->ncells * sizeof *q->cells;
    b += (size_t)q->nused * (sizeof *q->ufeat + 4 * sizeof(uint32_t));
    if (q->heap) {
        size_t slots = (size_t)q->ntrees << q->hdepth;   /* leaf slots; splits: one fewer */
        b += (slots - (size_t)q->ntrees) * sizeof(hnode);
        b += slots * (q->prec == AP_PREC_F32 ? 4 : 8) + (q->hvoff ? slots * 4 : 0);
    }
    b += (size_t)q->ncols * sizeof *q->cols + (size_t)q->nused * 4 * sizeof *q->colid;
    return b;
}

int ap__qengine_wide(const ap_qengine *q) { return q->wide; }

int ap__qengine_force_scalar(ap_qengine *q, int on)
{
    int was = q->scalar;
    q->scalar = on || !__builtin_cpu_supports("avx2");
    return was;
}

int ap__qengine_uses_avx2(const ap_qengine *q) { return !q->scalar; }

/* The zero band of zero-as-missing splits, |x| <= 1e-35f (LightGBM's
   kZeroThreshold, ir.h), as two bounds: x in the band <=> lo <= x < hi.
   F32 forests test the value rounded to float, so their bounds are the
   float bounds of -1e-35f and of the float after 1e-35f. */
static void zero_band(int prec, double *lo, double *hi)
{
    int all;
    if (prec == AP_PREC_F32) {
        *lo = ap__engine_split_bound(prec, (double)-1e-35f, &all);
        *hi = ap__engine_split_bound(prec, (double)nextafterf(1e-35f, INFINITY), &all);
    } else {
        *lo = -(double)1e-35f;
        *hi = nextafter((double)1e-35f, INFINITY);
    }
}

/* The cell index of every used feature (quant.c, code_of), and the bound
   tables again with each one's padding of win NaN. Same cell_of as the
   predict path (the compile flags keep floating point IEEE: no contraction,
   no excess precision on x86-64). */
static int build_cells(ap_qengine *q)
{
    q->bins = calloc((size_t)q->nused, sizeof *q->bins);
    uint32_t *cnt = malloc(Q_MAX_CELLS * sizeof *cnt);
    if (!q->bins || !cnt) {
        free(cnt);
        return AP_ENOMEM;
    }
    uint64_t ncells = 0, padded = 0;
    for (int32_t u = 0; u < q->nused; u++) {
        qbin *bn = &q->bins[u];
        const double *b = q->bounds + q->boff[u];
        uint32_t k = q->bcnt[u], n = 16;
        while (n < 2 * k && n < Q_MAX_CELLS)
            n *= 2;
        double span = k ? b[k - 1] - b[0] : 0;
        bn->lo = k ? b[0] : 0;
        bn->inv = k >= 2 && isfinite(span) && span > 0 ? (double)n / span : 0;
        if (!isfinite(bn->inv) || !isfinite(bn->lo))
            bn->inv = 0, bn->lo = 0;
        bn->last = n - 1;
        memset(cnt, 0, n * sizeof *cnt);
        uint32_t win = 0;
        for (uint32_t j = 0; j < k; j++) {
            uint32_t c = cell_of(bn, b[j]);
            cnt[c]++;
            win = cnt[c] > win ? cnt[c] : win;
        }
        bn->win = win <= Q_MAX_WIN ? (win ? win : 1) : 0;
        bn->coff = (uint32_t)ncells;
        ncells += bn->win ? n : 0;
        padded += k + (bn->win ? bn->win : 0);
    }
    q->cells = malloc((ncells ? ncells : 1) * sizeof *q->cells);
    double *nb = malloc((padded ? padded : 1) * sizeof *nb);
    if (!q->cells || !nb) {
        free(cnt);
        free(nb);
        return AP_ENOMEM;
    }
    uint32_t at = 0;
    for (int32_t u = 0; u < q->nused; u++) {
        qbin *bn = &q->bins[u];
        const double *b = q->bounds + q->boff[u];
        uint32_t k = q->bcnt[u];
        memcpy(nb + at, b, k * sizeof *b);
        for (uint32_t t = 0; t < bn->win; t++)
            nb[at + k + t] = NAN;   /* compares false with every value */
        if (bn->win) {
            /* cells[i] = bounds in cells below i: the code of a value in cell i
               before its own cell's bounds are counted */
            uint32_t n = bn->last + 1;
            memset(cnt, 0, n * sizeof *cnt);
            for (uint32_t j = 0; j < k; j++)
                cnt[cell_of(bn, b[j])]++;
            uint32_t below = 0;
            for (uint32_t i = 0; i < n; i++) {
                q->cells[bn->coff + i] = (uint16_t)below;
                below += cnt[i];
            }
        }
        q->boff[u] = at;
        at += k + bn->win;
    }
    free(q->bounds);
    q->bounds = nb;
    q->nbounds = at;
    q->ncells = (uint32_t)ncells;
    free(cnt);
    return AP_OK;
}

/* Tree t's pointer node i at heap slot s, depth d (see build_heap). */
static void place(ap_qengine *q, int32_t t, uint32_t i, uint32_t s, int32_t d)
{
    const uint32_t ni = (1u << q->hdepth) - 1;
    const qnode *n = &q->nodes[i];
    if (n->right == i && d == q->hdepth) {   /* a leaf, at the bottom */
        size_t l = (size_t)t * (ni + 1) + (s - ni);
        if (q->voff)
            q->hvoff[l] = q->voff[i];
        if (q->prec == AP_PREC_F32)
            q->hleaf32[l] = q->leaf32[i];
        else
            q->hleaf64[l] = q->leaf64[i];
        return;
    }
    hnode *h = &q->hnodes[(size_t)t * ni + s];
    if (n->right == i) {   /* a shallow leaf: always right, down to the bottom */
        h->xoff = 0;
        h->u = 0;
        place(q, t, i, 2 * s + 2, d + 1);
        return;
    }
    h->xoff = n->xoff;
    h->u = n->u;
    place(q, t, n->right - 1, 2 * s + 1, d + 1);
    place(q, t, n->right, 2 * s + 2, d + 1);
}

/* The heap layout, when it fits: no categorical split or linear leaf (they
   need the IR node), the deepest tree at most Q_HEAP_MAX_DEPTH, and the
   padding (every tree to the deepest one's depth) at most four times the
   nodes. A step then loads 4 bytes and computes the child (2s + 2 - left):
   five instructions instead of seven. Returns AP_OK also when it does not
   fit (the pointer layout stays); AP_ENOMEM. */
static int build_heap(ap_qengine *q)
{
    int32_t D = 0;
    for (int32_t t = 0; t < q->ntrees; t++)
        D = q->trees[t].depth > D ? q->trees[t].depth : D;
    uint64_t slots = (uint64_t)q->ntrees << (D > 30 ? 30 : D);
    if (q->has_special || q->has_linear || D > Q_HEAP_MAX_DEPTH ||
        2 * slots > 4 * (uint64_t)q->nnodes + 4096)
        return AP_OK;
    q->hdepth = D;
    const uint32_t ni = (1u << D) - 1;
    q->hnodes = calloc((size_t)q->ntrees * ni + 1, sizeof *q->hnodes);
    if (q->prec == AP_PREC_F32)
        q->hleaf32 = calloc((size_t)slots, sizeof *q->hleaf32);
    else
        q->hleaf64 = calloc((size_t)slots, sizeof *q->hleaf64);
    if (q->voff)
        q->hvoff = calloc((size_t)slots, sizeof *q->hvoff);
    if (!q->hnodes || (q->prec == AP_PREC_F32 ? !q->hleaf32 : !q->hleaf64) ||
        (q->voff && !q->hvoff))
        return AP_ENOMEM;
    for (int32_t t = 0; t < q->ntrees; t++)
        place(q, t, q->trees[t].root, 0, 0);
    q->heap = 1;
    free(q->nodes);
    free(q->leaf32);
    free(q->leaf64);
    free(q->voff);
    q->nodes = NULL;
    q->leaf32 = NULL;
    q->leaf64 = NULL;
    q->voff = NULL;
    q->nnodes = 0;
    return AP_OK;
}

int ap__qengine_compile(const ap_forest_ir *ir, ap_qengine **out, ap_error *err)
{
    ap_error local;   /* the failure paths read err->code */
    if (!err)
        err = &local;
    *out = NULL;
    const int32_t nf = ir->num_features;
    if (ir->num_groups > Q_MAX_GROUPS)
        return ap__error_set(err, AP_EUNSUPPORTED,
                             "reduced precision: %d output groups, at most %d", ir->num_groups,
                             Q_MAX_GROUPS);
    uint64_t total = 0, nvec = 0, nsplit = 0;
    int32_t maxn = 0;
    for (int32_t t = 0; t < ir->ntrees; t++) {
        const ap_ir_tree *tr = &ir->trees[t];
        total += (uint64_t)tr->nnodes;
        maxn = tr->nnodes > maxn ? tr->nnodes : maxn;
        for (int32_t k = 0; k < tr->nnodes; k++) {
            const ap_ir_node *n = &tr->nodes[k];
            nsplit += is_numeric_split(n) ? 1u + (n->missing == AP_MISS_ZERO ? 2u : 0u) : 0u;
            if (tr->group == AP_GROUP_ALL && n->kind == AP_SPLIT_LEAF)
                nvec += (uint64_t)ir->num_groups;
        }
    }
    if (total >= UINT32_MAX || nvec > UINT32_MAX)
        return ap__error_set(err, AP_ERANGE, "reduced precision: %llu nodes, too many",
                             (unsigned long long)total);

    ap_qengine *q = calloc(1, sizeof *q);
    uint32_t *fcnt = calloc((size_t)nf + 1, sizeof *fcnt);   /* bounds per feature, then offsets */
    uint8_t *fzero = calloc((size_t)nf, 1);
    int32_t *fused = malloc((size_t)nf * sizeof *fused);    /* feature -> used index or -1 */
    double *raw = malloc((nsplit ? nsplit : 1) * sizeof *raw);
    int32_t *queue = malloc(((size_t)maxn + 1) * sizeof *queue);
    int32_t *qdepth = malloc(((size_t)maxn + 1) * sizeof *qdepth);
    int32_t *colid = NULL;
    uint32_t *fill = NULL;
    if (nf < 1)
        return ap__error_set(err, AP_EUNSUPPORTED, "reduced precision: the model has no feature");
    if (!q || !fcnt || !fzero || !fused || !raw || !queue || !qdepth)
        goto nomem;
    q->ir = ir;
    q->prec = ir->precision;
    q->nf = nf;
    q->G = ir->num_groups;
    q->ntrees = ir->ntrees;
    q->nvec = nvec;

    /* 1. bounds per feature (counting pass, then CSR fill) */
    for (int32_t t = 0; t < ir->ntrees; t++)
        for (int32_t k = 0; k < ir->trees[t].nnodes; k++) {
            const ap_ir_node *n = &ir->trees[t].nodes[k];
            if (!is_numeric_split(n))
                continue;
            fcnt[n->feature + 1] += 1u + (n->missing == AP_MISS_ZERO ? 2u : 0u);
            fzero[n->feature] |= n->missing == AP_MISS_ZERO;
        }
    for (int32_t f = 0; f < nf; f++)
        fcnt[f + 1] += fcnt[f];
    fill = malloc(((size_t)nf + 1) * sizeof *fill);
    if (!fill)
        goto nomem;
    memcpy(fill, fcnt, (size_t)nf * sizeof *fill);
    {
        for (int32_t t = 0; t < ir->ntrees; t++)
            for (int32_t k = 0; k < ir->trees[t].nnodes; k++) {
                const ap_ir_node *n = &ir->trees[t].nodes[k];
                if (!is_numeric_split(n))
                    continue;
                int all;
                double b = ap__engine_split_bound(q->prec, n->threshold, &all);
                /* "every value" and "no value" need no table entry (u = k + 1, 0) */
                if (!all && b != -INFINITY)
                    raw[fill[n->feature]++] = b;
                if (n->missing == AP_MISS_ZERO) {
                    double lo, hi;
                    zero_band(q->prec, &lo, &hi);
                    raw[fill[n->feature]++] = lo;
                    raw[fill[n->feature]++] = hi;
                }
            }
    }
    /* sort, drop duplicates, in place; count used features */
    uint32_t kmax = 0, widest = 0;
    q->nused = 0;
    for (int32_t f = 0; f < nf; f++) {
        uint32_t a = fcnt[f], e = fill[f], w = a;
        fused[f] = -1;
        if (a == fcnt[f + 1])
            continue;   /* no numeric split on f */
        qsort(raw + a, e - a, sizeof *raw, cmp_double);
        for (uint32_t i = a; i < e; i++) {
            if (w > a && raw[w - 1] == raw[i])
                continue;
            raw[w++] = raw[i];
        }
        fcnt[f] = w - a;   /* now: distinct bounds of f (its segment starts at the old a) */
        fused[f] = (int32_t)a;   /* temporarily: the segment start */
        if (fcnt[f] > kmax) {
            kmax = fcnt[f];
            widest = (uint32_t)f;
        }
        q->nused++;
    }
    if (kmax > Q_MAX_K16) {
        ap__error_set(err, AP_ERANGE,
                      "reduced precision: feature %u has %u distinct split bounds, more than the "
                      "%u that 16-bit codes hold",
                      widest, kmax, (unsigned)Q_MAX_K16);
        goto fail;
    }
    q->wide = kmax > Q_MAX_K8;
    q->miss = q->wide ? 0xffffu : 0xffu;
    if (q->nused == 0)
        q->nused = 1;   /* a dummy feature 0 with no bound: leaves read column 0 */
    if (q->nused > Q_MAX_COLS) {
        ap__error_set(err, AP_EUNSUPPORTED,
                      "reduced precision: the model splits on %d features, at most %d",
                      (int)q->nused, Q_MAX_COLS);
        goto fail;
    }
    q->ufeat = malloc((size_t)q->nused * sizeof *q->ufeat);
    q->boff = calloc((size_t)q->nused, sizeof *q->boff);
    q->bcnt = calloc((size_t)q->nused, sizeof *q->bcnt);
    q->zlo = calloc((size_t)q->nused, sizeof *q->zlo);
    q->zhi = calloc((size_t)q->nused, sizeof *q->zhi);
    colid = malloc((size_t)q->nused * 4 * sizeof *colid);
    if (!q->ufeat || !q->boff || !q->bcnt || !q->zlo || !q->zhi || !colid)
        goto nomem;
    {
        uint32_t nb = 0;
        for (int32_t f = 0; f < nf; f++)
            nb += fused[f] >= 0 ? fcnt[f] : 0;
        q->bounds = malloc((nb ? nb : 1) * sizeof *q->bounds);
        if (!q->bounds)
            goto nomem;
        int32_t u = 0;
        q->ufeat[0] = 0;
        for (int32_t f = 0; f < nf; f++) {
            if (fused[f] < 0)
                continue;
            memcpy(q->bounds + q->nbounds, raw + fused[f], fcnt[f] * sizeof *raw);
            q->ufeat[u] = f;
            q->boff[u] = q->nbounds;
            q->bcnt[u] = fcnt[f];
            q->zhi[u] = 0;
            q->zlo[u] = 1;   /* empty band */
            if (fzero[f]) {
                const double *b = q->bounds + q->nbounds;
                /* codes of [-Z, Z]: c(-Z) .. c(Z) (quant.c) */
                double lo, hi;
                zero_band(q->prec, &lo, &hi);
                q->zlo[u] = bound_index(b, fcnt[f], lo) + 1;
                q->zhi[u] = bound_index(b, fcnt[f], hi);
            }
            q->nbounds += fcnt[f];
            fused[f] = u++;
        }
    }
    if (build_cells(q) != AP_OK)
        goto nomem;
    for (int32_t i = 0; i < q->nused * 4; i++)
        colid[i] = -1;
    q->cols = malloc((size_t)q->nused * 4 * sizeof *q->cols);
    if (!q->cols)
        goto nomem;

    /* 2. nodes, breadth first per tree (as the full engine) */
    const int32_t max_cols = Q_CODES_BYTES / (QTILE * (q->wide ? 2 : 1));
    q->nnodes = (uint32_t)total + 1;
    q->trees = calloc((size_t)ir->ntrees, sizeof *q->trees);
    q->nodes = calloc(q->nnodes, sizeof *q->nodes);
    q->w32 = calloc((size_t)ir->ntrees ? (size_t)ir->ntrees : 1, sizeof *q->w32);
    q->base32 = calloc((size_t)q->G, sizeof *q->base32);
    q->count = calloc((size_t)q->G, sizeof *q->count);
    if (q->prec == AP_PREC_F32)
        q->leaf32 = calloc(q->nnodes, sizeof *q->leaf32);
    else
        q->leaf64 = calloc(q->nnodes, sizeof *q->leaf64);
    for (int32_t t = 0; t < ir->ntrees; t++)
        for (int32_t k = 0; k < ir->trees[t].nnodes; k++) {
            const ap_ir_node *n = &ir->trees[t].nodes[k];
            q->has_special |= n->kind == AP_SPLIT_CAT;
            q->has_linear |= n->kind == AP_SPLIT_LEAF && n->lin_len;
        }
    if (q->has_special || q->has_linear)
        q->src = calloc(q->nnodes, sizeof *q->src);
    if (nvec) {
        q->voff = calloc(q->nnodes, sizeof *q->voff);
        if (q->prec == AP_PREC_F32)
            q->vec32 = malloc(nvec * sizeof *q->vec32);
        else
            q->vec64 = malloc(nvec * sizeof *q->vec64);
    }
    if (!q->trees || !q->nodes || !q->w32 || !q->base32 || !q->count ||
        (q->prec == AP_PREC_F32 ? !q->leaf32 : !q->leaf64) ||
        ((q->has_special || q->has_linear) && !q->src) ||
        (nvec && (!q->voff || (q->prec == AP_PREC_F32 ? !q->vec32 : !q->vec64))))
        goto nomem;
    for (int32_t g = 0; g < q->G; g++)
        q->base32[g] = (float)ir->base_score[g];

    uint32_t next = 0, vnext = 0;
    for (int32_t t = 0; t < ir->ntrees; t++) {
        const ap_ir_tree *tr = &ir->trees[t];
        const int vec = tr->group == AP_GROUP_ALL;
        qtree *et = &q->trees[t];
        et->root = next;
        et->group = tr->group;
        q->w32[t] = (float)tr->weight;
        for (int32_t g = 0; g < q->G; g++)
            q->count[g] += vec || g == tr->group;
        int32_t head = 0, tail = 0;
        queue[tail] = 0;
        qdepth[tail++] = 0;
        while (head < tail) {
            int32_t s = head, k = queue[head];
            int32_t dep = qdepth[head++];
            uint32_t i = et->root + (uint32_t)s;
            const ap_ir_node *n = &tr->nodes[k];
            qnode *qn = &q->nodes[i];
            if (q->src)
                q->src[i] = n;
            if (n->kind == AP_SPLIT_LEAF) {
                qn->right = i;   /* u = 0, col = 0: steps to itself */
                et->depth = dep > et->depth ? dep : et->depth;
                if (vec) {
                    const double *v = ir->leaf_vec + n->vec_off;
                    q->voff[i] = vnext;
                    for (int32_t g = 0; g < q->G; g++, vnext++) {
                        if (q->prec == AP_PREC_F32)
                            q->vec32[vnext] = (float)tr->weight * (float)v[g];
                        else
                            q->vec64[vnext] = tr->weight * v[g];
                    }
                } else if (q->prec == AP_PREC_F32) {
                    q->leaf32[i] = (float)tr->weight * (float)n->value;
                } else {
                    q->leaf64[i] = tr->weight * n->value;
                }
                continue;
            }
            qn->right = et->root + (uint32_t)tail + 1;
            queue[tail] = n->left;
            qdepth[tail++] = dep + 1;
            queue[tail] = n->right;
            qdepth[tail++] = dep + 1;
            if (n->kind == AP_SPLIT_CAT) {
                qn->xoff = Q_COL_SPECIAL;   /* the IR's rule on the row value */
                continue;
            }
            int32_t uf = fused[n->feature];
            const double *tb = q->bounds + q->boff[uf];
            uint32_t kf = q->bcnt[uf];
            int all;
            double b = ap__engine_split_bound(q->prec, n->threshold, &all);
            uint32_t base = all ? kf + 1 : b == -INFINITY ? 0 : bound_index(tb, kf, b) + 1;
            /* where a missing value goes, as the full engine decides it */
            int nan_left;
            if (n->missing == AP_MISS_NONE)
                nan_left = q->prec == AP_PREC_F32 ? (float)0.0 < (float)n->threshold
                                                  : 0.0 <= n->threshold;
            else
                nan_left = n->default_left;
            int zero = n->missing == AP_MISS_ZERO;
            int slot = uf * 4 + zero * 2 + nan_left;
            if (colid[slot] < 0) {
                if (q->ncols >= max_cols) {
                    ap__error_set(err, AP_EUNSUPPORTED,
                                  "reduced precision: more than %d code columns (features "
                                  "times missing-value rules) for %d-bit codes",
                                  max_cols, q->wide ? 16 : 8);
                    goto fail;
                }
                colid[slot] = q->ncols;
                q->cols[q->ncols].feat = uf;
                q->cols[q->ncols].zero = (uint8_t)zero;
                q->cols[q->ncols].shift = (uint8_t)nan_left;
                q->ncols++;
            }
            qn->xoff = (uint16_t)((uint32_t)colid[slot] * QTILE * (q->wide ? 2u : 1u));
            qn->u = (uint16_t)(base + (uint32_t)nan_left);
        }
        next += (uint32_t)tr->nnodes;
    }
    if (q->ncols == 0) {   /* leaves read column 0: give it one */
        q->cols[0].feat = 0;
        colid[0] = 0;
        q->ncols = 1;
    }
    q->pad = next;
    q->nodes[next].right = next;
    static const ap_ir_node pad_leaf = {.kind = AP_SPLIT_LEAF};
    if (q->src)
        q->src[next] = &pad_leaf;
    if (build_heap(q) != AP_OK)
        goto nomem;
    ap__qengine_force_scalar(q, 0);
    free(fcnt);
    free(fzero);
    free(fused);
    free(raw);
    free(queue);
    free(qdepth);
    q->colid = colid;
    free(fill);
    *out = q;
    return AP_OK;
nomem:
    ap__error_set(err, AP_ENOMEM, "reduced precision: out of memory");
fail:
    free(fcnt);
    free(fzero);
    free(fused);
    free(raw);
    free(queue);
    free(qdepth);
    free(colid);
    free(fill);
    ap__qengine_free(q);
    return err->code;
}
