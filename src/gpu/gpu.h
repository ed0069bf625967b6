/*
 * Private: the GPU backend of the forest engine (docs/GPU.md).
 *
 * layout.c flattens a validated IR into one blob the kernel body
 * (kernel_body.h) walks; gforest.c owns a model on a device: the blob
 * uploaded once, bounded pinned buffers, one mutex (a device model serves one
 * batch at a time), chunking and the host-side transform. The device itself
 * is behind ap_gpu_backend: cuda.cu when the build found nvcc, nocuda.c
 * otherwise (says why), or a test's fake. No CUDA header is included here.
 */
#ifndef AP_GPU_GPU_H
#define AP_GPU_GPU_H

#include <stddef.h>
#include "alphapulse/common.h"
#include "forest/ir.h"
#include "gpu/kernel_body.h"

typedef struct ap_gpu_layout {
    ap_gpu_hdr hdr;
    unsigned char *blob;   /* hdr.bytes, malloc'd; 8-aligned sections */
} ap_gpu_layout;

/* Flatten ir (validated). AP_EUNSUPPORTED with the reason for what the
   kernel does not take (linear leaves): the model then stays on the CPU. */
int ap__gpu_layout_build(const ap_forest_ir *ir, ap_gpu_layout *out, ap_error *err);
void ap__gpu_layout_free(ap_gpu_layout *l);
/* The kernel body on the host: margins of nrows rows (nrows * groups). */
void ap__gpu_layout_run_host(const ap_gpu_layout *l, const double *X, size_t nrows, int raw,
                            double *margins);

/* A device. Messages go to msg (cap bytes); the hooks never print. */
typedef struct ap_gpu_backend {
    const char *name;
    /* Number of usable devices; 0 with the reason in why ("built without
       CUDA", "no CUDA device", the driver's message). */
    int (*probe)(char *why, size_t cap);
    /* Upload the blob, allocate buffers for batches of up to max_rows rows
       (pinned host and device). *dev: the backend's handle. 0 or -1. */
    int (*upload)(const ap_gpu_hdr *h, const void *blob, size_t max_rows, void **dev, char *msg,
                  size_t cap);
    /* Margins of nrows <= max_rows rows. 0 or -1 (msg says why). */
    int (*run)(void *dev, const double *X, size_t nrows, int raw, double *margins, char *msg,
               size_t cap);
    void (*release)(void *dev);
    size_t max_rows;       /* rows per device call at most (0: AP_GPU_MAX_CHUNK_ROWS) */
} ap_gpu_backend;

/* The build's backend: CUDA (cuda.cu) or the one that has no device. */
const ap_gpu_backend *ap__gpu_default_backend(void);

/* Pinned + device memory one model may hold for its batch buffers. */
#define AP_GPU_BUFFER_BYTES ((size_t)32 << 20)
#define AP_GPU_MAX_CHUNK_ROWS ((size_t)1 << 17)

typedef struct ap_gforest ap_gforest;

/* Upload ir to backend be's device (probe first). On failure *out is NULL
   and err says why (AP_EUNSUPPORTED: no device / not taken; AP_EIO: the
   device failed; AP_ENOMEM). */
int ap__gforest_open(const ap_forest_ir *ir, const ap_gpu_backend *be, ap_gforest **out,
                     ap_error *err);
void ap__gforest_free(ap_gforest *g);
/* Outputs as ap_forest_predict writes them (flags: AP_PREDICT_RAW), in
   chunks under the model's mutex. AP_OK, or AP_EIO when the device failed
   (out then holds nothing useful: the caller runs the CPU). */
int ap__gforest_predict(ap_gforest *g, const double *X, size_t nrows, double *out,
                        unsigned flags);
size_t ap__gforest_device_bytes(const ap_gforest *g);
/* Calls that failed on the device and went to the CPU instead. */
unsigned long ap__gforest_failures(const ap_gforest *g);

/* The calibration's decision (pure, tested with made-up timings): sizes[]
   ascending, cpu_s[i] / gpu_s[i] seconds for sizes[i] rows. The smallest
   size from which the GPU is faster at every larger measured size, or 0
   when it never is. */
size_t ap__gpu_pick_threshold(const size_t *sizes, const double *cpu_s, const double *gpu_s,
                              int n);

#endif
