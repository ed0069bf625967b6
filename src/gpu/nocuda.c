/* The backend of a build without nvcc: no device, and it says so. cuda.cu
   replaces this file's definition when the Makefile found nvcc. */
#include "gpu/gpu.h"

#include <stdio.h>

#ifndef AP_HAVE_CUDA
static int none_probe(char *why, size_t cap)
{
    snprintf(why, cap, "built without CUDA");
    return 0;
}
static int none_upload(const ap_gpu_hdr *h, const void *blob, size_t max_rows, void **dev,
                       char *msg, size_t cap)
{
    snprintf(msg, cap, "built without CUDA");
    return -1;
}
static int none_run(void *dev, const double *X, size_t nrows, int raw, double *margins, char *msg,
                    size_t cap)
{
    snprintf(msg, cap, "built without CUDA");
    return -1;
}
static void none_release(void *dev) {}

static const ap_gpu_backend none = {"none", none_probe, none_upload, none_run, none_release, 0};

const ap_gpu_backend *ap__gpu_default_backend(void) { return &none; }
#endif
