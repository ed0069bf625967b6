/* The CUDA backend (gpu.h): built only when the Makefile finds nvcc (it then
   defines AP_HAVE_CUDA for the C files too). Thin on purpose: the traversal
   and accumulation are kernel_body.h, tested on the CPU; this file probes,
   uploads, copies and launches. Compiled with --fmad=false (docs/GPU.md). */
#include <cuda_runtime.h>
#include <math.h>
#include <new>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

extern "C" {
#include "gpu/gpu.h"
}

namespace {

struct dev_model {
    ap_gpu_hdr hdr;
    unsigned char *blob;   /* device */
    double *dX, *dM;       /* device batch buffers, max_rows rows */
    double *hX, *hM;       /* pinned host copies of the same */
    size_t max_rows;
    cudaStream_t stream;
};

__global__ void forest_rows(ap_gpu_hdr h, const unsigned char *blob, const double *X,
                            size_t nrows, int raw, double *M)
{
    size_t r = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= nrows)
        return;
    ap_gpu_view v = ap__gpu_view_at(&h, blob);
    ap__gpu_row(&h, &v, X + r * (size_t)h.nfeat, raw, M + r * (size_t)h.groups);
}

int say(cudaError_t e, const char *what, char *msg, size_t cap)
{
    if (e == cudaSuccess)
        return 0;
    snprintf(msg, cap, "%s: %s", what, cudaGetErrorString(e));
    return -1;
}

int cuda_probe(char *why, size_t cap)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e == cudaErrorNoDevice || (e == cudaSuccess && n == 0)) {
        snprintf(why, cap, "no CUDA device");
        return 0;
    }
    if (e != cudaSuccess) {
        /* no driver, or a driver older than the runtime: no usable device */
        snprintf(why, cap, "no CUDA device: %s", cudaGetErrorString(e));
        return 0;
    }
    return n;
}

void cuda_release(void *p)
{
    dev_model *d = (dev_model *)p;
    if (!d)
        return;
    if (d->stream)
        cudaStreamDestroy(d->stream);
    cudaFree(d->blob);
    cudaFree(d->dX);
    cudaFree(d->dM);
    cudaFreeHost(d->hX);
    cudaFreeHost(d->hM);
    delete d;
}

int cuda_upload(const ap_gpu_hdr *h, const void *blob, size_t max_rows, void **out, char *msg,
                size_t cap)
{
    *out = NULL;
    dev_model *d = new (std::nothrow) dev_model();
    if (!d) {
        snprintf(msg, cap, "out of memory");
        return -1;
    }
    d->hdr = *h;
    d->max_rows = max_rows;
    size_t xb = max_rows * (size_t)h->nfeat * sizeof(double);
    size_t mb = max_rows * (size_t)h->groups * sizeof(double);
    if (say(cudaStreamCreateWithFlags(&d->stream, cudaStreamNonBlocking), "stream", msg, cap) ||
        say(cudaMalloc((void **)&d->blob, h->bytes), "model memory", msg, cap) ||
        say(cudaMemcpy(d->blob, blob, h->bytes, cudaMemcpyHostToDevice), "model upload", msg,
            cap) ||
        /* a copy from pageable memory may return before its DMA is done, and
           the kernels run on a non-blocking stream that does not wait for
           the legacy one: finish the upload here */
        say(cudaDeviceSynchronize(), "model upload", msg, cap) ||
        say(cudaMalloc((void **)&d->dX, xb ? xb : 8), "batch memory", msg, cap) ||
        say(cudaMalloc((void **)&d->dM, mb), "batch memory", msg, cap) ||
        say(cudaMallocHost((void **)&d->hX, xb ? xb : 8), "pinned memory", msg, cap) ||
        say(cudaMallocHost((void **)&d->hM, mb), "pinned memory", msg, cap)) {
        cuda_release(d);
        return -1;
    }
    *out = d;
    return 0;
}

int cuda_run(void *p, const double *X, size_t nrows, int raw, double *margins, char *msg,
             size_t cap)
{
    dev_model *d = (dev_model *)p;
    if (nrows > d->max_rows) {
        snprintf(msg, cap, "%zu rows: more than the buffers hold (%zu)", nrows, d->max_rows);
        return -1;
    }
    if (nrows == 0)
        return 0;
    size_t xb = nrows * (size_t)d->hdr.nfeat * sizeof(double);
    size_t mb = nrows * (size_t)d->hdr.groups * sizeof(double);
    memcpy(d->hX, X, xb);
    const unsigned threads = 128;
    unsigned blocks = (unsigned)((nrows + threads - 1) / threads);
    if (say(cudaMemcpyAsync(d->dX, d->hX, xb, cudaMemcpyHostToDevice, d->stream), "copy in", msg,
            cap))
        return -1;
    forest_rows<<<blocks, threads, 0, d->stream>>>(d->hdr, d->blob, d->dX, nrows, raw, d->dM);
    if (say(cudaGetLastError(), "kernel launch", msg, cap) ||
        say(cudaMemcpyAsync(d->hM, d->dM, mb, cudaMemcpyDeviceToHost, d->stream), "copy out",
            msg, cap) ||
        say(cudaStreamSynchronize(d->stream), "kernel", msg, cap))
        return -1;
    memcpy(margins, d->hM, mb);
    return 0;
}

const ap_gpu_backend cuda_backend = {"cuda", cuda_probe, cuda_upload, cuda_run, cuda_release, 0};

} // namespace

extern "C" const ap_gpu_backend *ap__gpu_default_backend(void) { return &cuda_backend; }
