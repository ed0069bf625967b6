/* Private to quant.c and quant_build.c: the quantized engine's layout. */
#ifndef AP_FOREST_QUANT_LAYOUT_H
#define AP_FOREST_QUANT_LAYOUT_H

#include "forest/quant.h"

#define QTILE 16
#define QBLOCK 256
#define QROW_TREES 16
#define QACC_MAX 4096
#define Q_MAX_K8 252        /* u up to k + 2 <= 254 < MISS 255 */
#define Q_MAX_K16 65532
#define Q_COL_SPECIAL 0xffffu
/* code columns: bounded so that one row's codes and feature codes fit the
   stack buffers below */
#define Q_MAX_COLS 4096
/* ... and so that a node's tile offset fits its 16 bits: columns at most
   Q_CODES_BYTES / (QTILE * code bytes), 4096 (uint8) or 2048 (uint16) */
#define Q_MAX_GROUPS AP_IR_MAX_GROUPS_ROW
#define Q_MAX_WIN 16        /* bounds per cell beyond which a feature is searched */
#define Q_MAX_CELLS 4096
#define Q_HEAP_MAX_DEPTH 14
/* the stack buffer of a block's code tiles (uint16 codes, worst case) */
#define Q_CODES_BYTES 65536

typedef struct qnode {
    uint32_t right;   /* right child; the left one is right - 1; leaves: self */
    uint16_t u;       /* go left iff code < u (0 for leaves) */
    uint16_t xoff;    /* byte offset of its code column in a tile (column * QTILE * code
                         bytes), or Q_COL_SPECIAL (categorical: slow path) */
} qnode;

typedef struct qtree {
    uint32_t root;
    int32_t depth;
    int32_t group;
} qtree;

/* The cell index of a feature's bound table (quant.c, code_of). */
typedef struct qbin {
    double lo, inv;           /* cell(x) = clamp((x - lo) * inv, 0, last) */
    uint32_t coff;            /* its cells in ap_qengine.cells */
    uint32_t last;            /* cells - 1 */
    uint32_t win;             /* most bounds in one cell; 0: binary search instead */
} qbin;

/* A split of the heap layout: children of slot s at 2s + 1 (left) and
   2s + 2, so no child index is stored. */
typedef struct hnode {
    uint16_t xoff;    /* as qnode */
    uint16_t u;       /* 0: always right (the way down from a shallow leaf) */
} hnode;

/* A code column: the codes of one feature, shifted or not, with the zero
   band coded MISS or not. */
typedef struct qcol {
    int32_t feat;     /* used-feature index */
    uint8_t zero, shift;
} qcol;

struct ap_qengine {
    const ap_forest_ir *ir;
    int prec;
    int32_t nf, G, ntrees;
    int wide;                 /* uint16 codes */
    uint32_t miss;            /* MISS: 255 or 65535 */
    int has_special, has_linear, scalar;
    uint32_t nnodes;          /* including the pad leaf */
    uint32_t pad;
    qtree *trees;
    qnode *nodes;
    float *leaf32;
    double *leaf64;
    uint32_t *voff;
    float *vec32;
    double *vec64;
    uint64_t nvec;
    float *w32;
    float *base32;
    double *count;
    const ap_ir_node **src;   /* per node, only with categorical or linear */
    /* bins: per used feature */
    int32_t nused;
    int32_t *ufeat;           /* its column in the row */
    uint32_t *boff, *bcnt;    /* its bounds in `bounds` */
    uint32_t *zlo, *zhi;      /* its zero band: codes zlo..zhi (zhi < zlo: none) */
    double *bounds;           /* per feature its bounds, then win NaN (padding) */
    qbin *bins;
    uint16_t *cells;          /* per cell: the code of its lowest value */
    uint32_t ncells;
    uint32_t nbounds;
    int32_t ncols;
    qcol *cols;
    /* the heap layout (build_heap): every tree padded to depth hdepth, its
       2^hdepth - 1 splits in hnodes, its 2^hdepth leaf slots in hleaf32/64
       (hvoff for vector trees); the pointer layout (nodes...) is then freed */
    int heap;
    int32_t hdepth;
    hnode *hnodes;
    float *hleaf32;
    double *hleaf64;
    uint32_t *hvoff;
    int32_t *colid;           /* per used feature, its columns by variant (zero * 2 + shift), or -1 */
};

/* The cell of x: monotone in x (IEEE subtraction, multiplication by a
   positive constant, clamping and truncation all are), so every bound in a
   lower cell is below x and every bound in a higher one above it. */
static inline uint32_t cell_of(const qbin *bn, double x)
{
    double d = (x - bn->lo) * bn->inv;
    d = d > 0 ? d : 0;   /* NaN (inf - inf, inf * 0) too */
    d = d < (double)bn->last ? d : (double)bn->last;
    return (uint32_t)d;
}

#endif
