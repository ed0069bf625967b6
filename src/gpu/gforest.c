/* A forest on a device: upload once, bounded pinned buffers, chunked batches
   under one mutex, the objective's transform on the host (gpu.h). */
#include "gpu/gpu.h"
#include "common/error.h"
#include "forest/transform.h"
#include "alphapulse/forest.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct ap_gforest {
    const ap_gpu_backend *be;
    const ap_forest_ir *ir;   /* the forest's, outlives this */
    ap_gpu_layout lay;
    void *dev;
    size_t chunk;             /* rows per device call */
    double *margins;          /* chunk * groups, for transformed outputs */
    pthread_mutex_t mu;       /* one batch at a time on this model's buffers */
    atomic_ulong failures;
};

int ap__gforest_open(const ap_forest_ir *ir, const ap_gpu_backend *be, ap_gforest **out,
                     ap_error *err)
{
    char msg[AP_ERROR_MSG_MAX] = "";
    *out = NULL;
    if (be->probe(msg, sizeof msg) <= 0)
        return ap__error_set(err, AP_EUNSUPPORTED, "%s", msg[0] ? msg : "no CUDA device");
    ap_gforest *g = calloc(1, sizeof *g);
    if (!g)
        return ap__error_set(err, AP_ENOMEM, "GPU: out of memory");
    g->be = be;
    g->ir = ir;
    int rc = ap__gpu_layout_build(ir, &g->lay, err);
    if (rc != AP_OK) {
        free(g);
        return rc;
    }
    /* a row costs its features in and its margins out, pinned and on the
       device: the chunk keeps both within AP_GPU_BUFFER_BYTES */
    size_t per_row = 2 * 8 * ((size_t)g->lay.hdr.nfeat + (size_t)g->lay.hdr.groups);
    g->chunk = AP_GPU_BUFFER_BYTES / per_row;
    size_t most = be->max_rows ? be->max_rows : AP_GPU_MAX_CHUNK_ROWS;
    if (g->chunk > most)
        g->chunk = most;
    if (g->chunk < 1)
        g->chunk = 1;
    g->margins = malloc(g->chunk * (size_t)g->lay.hdr.groups * sizeof *g->margins);
    if (!g->margins) {
        ap__gpu_layout_free(&g->lay);
        free(g);
        return ap__error_set(err, AP_ENOMEM, "GPU: out of memory");
    }
    if (be->upload(&g->lay.hdr, g->lay.blob, g->chunk, &g->dev, msg, sizeof msg) != 0) {
        free(g->margins);
        ap__gpu_layout_free(&g->lay);
        free(g);
        return ap__error_set(err, AP_EIO, "GPU upload: %s", msg[0] ? msg : "failed");
    }
    pthread_mutex_init(&g->mu, NULL);
    atomic_init(&g->failures, 0);
    *out = g;
    return AP_OK;
}

void ap__gforest_free(ap_gforest *g)
{
    if (!g)
        return;
    g->be->release(g->dev);
    pthread_mutex_destroy(&g->mu);
    free(g->margins);
    ap__gpu_layout_free(&g->lay);
    free(g);
}

int ap__gforest_predict(ap_gforest *g, const double *X, size_t nrows, double *out,
                        unsigned flags)
{
    const int raw = (flags & AP_PREDICT_RAW) != 0;
    const size_t F = (size_t)g->lay.hdr.nfeat, G = (size_t)g->lay.hdr.groups;
    const size_t nout = raw ? G : (size_t)ap__forest_ir_num_outputs(g->ir);
    char msg[AP_ERROR_MSG_MAX];
    int rc = AP_OK;
    pthread_mutex_lock(&g->mu);
    for (size_t r0 = 0; r0 < nrows && rc == AP_OK; r0 += g->chunk) {
        size_t nb = nrows - r0 < g->chunk ? nrows - r0 : g->chunk;
        double *m = raw ? out + r0 * G : g->margins;
        if (g->be->run(g->dev, X + r0 * F, nb, raw, m, msg, sizeof msg) != 0) {
            rc = AP_EIO;
            break;
        }
        if (raw)
            continue;
        for (size_t r = 0; r < nb; r++) {
            if (g->ir->precision == AP_PREC_F32)
                ap__transform_xgboost(g->ir, m + r * G, out + (r0 + r) * nout);
            else
                ap__transform_lightgbm(g->ir, m + r * G, out + (r0 + r) * nout);
        }
    }
    pthread_mutex_unlock(&g->mu);
    if (rc != AP_OK)
        atomic_fetch_add(&g->failures, 1);
    return rc;
}

size_t ap__gforest_device_bytes(const ap_gforest *g)
{
    return (size_t)g->lay.hdr.bytes +
           g->chunk * 8 * ((size_t)g->lay.hdr.nfeat + (size_t)g->lay.hdr.groups);
}

unsigned long ap__gforest_failures(const ap_gforest *g) { return atomic_load(&g->failures); }

size_t ap__gpu_pick_threshold(const size_t *sizes, const double *cpu_s, const double *gpu_s,
                              int n)
{
    size_t pick = 0;
    for (int i = n - 1; i >= 0; i--) {
        if (!(gpu_s[i] < cpu_s[i]))
            break;
        pick = sizes[i];
    }
    return pick;
}
