/* alphapulse: status codes and the error struct shared by every module. */
#ifndef ALPHAPULSE_COMMON_H
#define ALPHAPULSE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the public API. The shared library (libalphapulse.so) is built with
   -fvisibility=hidden, so it exports these symbols and nothing else. */
#if defined(__GNUC__) || defined(__clang__)
#define AP_API __attribute__((visibility("default")))
#else
#define AP_API
#endif

/* The library version; ap_version() returns it. */
#define AP_VERSION "0.1.0"

typedef enum ap_status {
    AP_OK = 0,
    AP_EINVAL = -1,     /* bad argument or bad input value */
    AP_ENOMEM = -2,     /* allocation failed */
    AP_EIO = -3,        /* file could not be opened or read */
    AP_EFORMAT = -4,    /* malformed file or record */
    AP_ENOTFOUND = -5,  /* unknown name / id */
    AP_ETIMEDOUT = -6,  /* deadline passed */
    AP_EOVERLOAD = -7,  /* queue full: rejected at once */
    AP_ECANCELLED = -8, /* cancelled by the caller */
    AP_ERANGE = -9,     /* value or size out of the allowed range */
    AP_EUNSUPPORTED = -10, /* valid input using a feature we do not support */
    AP_EFULL = -11,       /* no room: a store or cache is at its capacity */
    AP_ECONFLICT = -12    /* not now: the state of what it names forbids it */
} ap_status;

#define AP_ERROR_MSG_MAX 512

/*
 * The one latency bucket scheme of every histogram (model predict time,
 * batch queue and compute time, HTTP request time): bucket i counts values
 * <= its bound and > the bound of bucket i-1 ("le"); the last is +Inf.
 * Bounds: 1 2.5 5 10 25 50 100 250 500 us, 1 2.5 5 10 25 100 250 ms, 1 s.
 */
#define AP_LATENCY_BUCKETS 18
/* Bound of bucket i in seconds (INFINITY for the last, NAN out of range). */
AP_API double ap_latency_bucket_bound(int i);
/* The bucket of a latency in nanoseconds. */
AP_API int ap_latency_bucket(uint64_t ns);

/* Caller-owned error. Filled on failure; untouched on success. */
typedef struct ap_error {
    int code;                   /* an ap_status */
    char msg[AP_ERROR_MSG_MAX]; /* human-readable, names what and where */
} ap_error;

/* Name of a status code, e.g. "EFORMAT". */
AP_API const char *ap_status_name(int code);

/*
 * Engine precision (issue 12). FULL: the training library's own arithmetic.
 * REDUCED: tree ensembles run on quantized inputs (each feature mapped once
 * per row to the index of its split bound: small integers, identical
 * results by construction) and dense layers (linear models, MLPs) keep
 * their weights in IEEE half (float accumulation; deviation measured and
 * bounded at load). AUTO: the model's own choice (registry: reduced when
 * mixed precision is enabled and the model qualifies, else full).
 */
typedef enum ap_precision {
    AP_PRECISION_AUTO = 0,
    AP_PRECISION_FULL = 1,
    AP_PRECISION_REDUCED = 2
} ap_precision;
/* "auto", "full", "reduced" ("?" out of range). */
AP_API const char *ap_precision_name(ap_precision p);
/* The inverse; anything else is AP_EINVAL naming the text. */
AP_API int ap_precision_parse(const char *s, ap_precision *out, ap_error *err);

/*
 * Where a forest's batches run (issue 17, docs/GPU.md). CPU: always the CPU
 * engine. GPU: every batch of at least the threshold (default 1 row) on a
 * CUDA device, refused when there is none. AUTO: the GPU where a device is
 * present and a batch reaches the threshold (configured, or measured at load
 * by a short calibration of both paths), else the CPU, saying why.
 */
typedef enum ap_device {
    AP_DEVICE_AUTO = 0,
    AP_DEVICE_CPU = 1,
    AP_DEVICE_GPU = 2
} ap_device;
/* "auto", "cpu", "gpu" ("?" out of range). */
AP_API const char *ap_device_name(ap_device d);
/* The inverse; anything else is AP_EINVAL naming the text. */
AP_API int ap_device_parse(const char *s, ap_device *out, ap_error *err);
/* Number of usable CUDA devices; 0 with the reason in why ("built without
   CUDA", "no CUDA device"). */
AP_API int ap_gpu_available(char *why, size_t cap);

/* Library version string: AP_VERSION of the build. */
AP_API const char *ap_version(void);

#ifdef __cplusplus
}
#endif
#endif
