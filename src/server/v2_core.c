/*
 * The Open Inference Protocol's transport-neutral pieces (v2_core.h): the
 * REST handlers and the gRPC service read a model, check and convert its
 * input and write its outputs through these, so both transports answer the
 * same tensors with the same messages.
 */
#include "server/v2_core.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "dense/half.h"

static const char *const dtype_names[AP_V2_NDTYPES] = {
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16",
    "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"};
static const unsigned char dtype_sizes[AP_V2_NDTYPES] = {1, 1, 2, 4, 8, 1, 2, 4, 8, 2, 4, 8, 0};

int ap__v2_dtype_parse(const char *name)
{
    for (int i = 0; name && i < AP_V2_NDTYPES; i++)
        if (!strcmp(name, dtype_names[i]))
            return i;
    return AP_V2_INVALID;
}

const char *ap__v2_dtype_name(int dt)
{
    return dt >= 0 && dt < AP_V2_NDTYPES ? dtype_names[dt] : "?";
}

size_t ap__v2_dtype_size(int dt)
{
    return dt >= 0 && dt < AP_V2_NDTYPES ? dtype_sizes[dt] : 0;
}

/* ---- metadata --------------------------------------------------------------- */

void ap__v2_model_meta(const ap_model_info *in, ap_v2_model_meta *out)
{
    memset(out, 0, sizeof *out);
    out->name = in->name;
    out->version = in->version;
    snprintf(out->version_str, sizeof out->version_str, "%u", in->version);
    snprintf(out->platform, sizeof out->platform, "alphapulse_%s", in->format);
    out->max_batch_size = in->max_batch_size;
    out->max_queue_delay_us = in->max_queue_delay_us;
    out->input = (ap_v2_tensor_meta){AP_V2_INPUT_NAME, "FP64", 2, {-1, in->num_inputs}};
    out->noutputs = 3;
    out->outputs[0] = (ap_v2_tensor_meta){"prediction", "FP64", 1, {-1, 0}};
    out->outputs[1] = (ap_v2_tensor_meta){"confidence", "FP64", 1, {-1, 0}};
    out->outputs[2] = (ap_v2_tensor_meta){"outputs", "FP64", 2, {-1, in->num_outputs}};
}

/* ---- the input check ---------------------------------------------------------- */

int ap__v2_check_input(const ap_v2_model_meta *m, const ap_v2_input *in, size_t max_rows,
                       ap_v2_input_plan *plan, char *why, size_t whysize)
{
    int64_t f = m->input.shape[1];
    if (!in->name || strcmp(in->name, m->input.name)) {
        snprintf(why, whysize, "inputs[0]: unknown input '%s' (model '%s' takes one input "
                 "'%s' of shape [N, %lld])", in->name ? in->name : "(no name)", m->name,
                 m->input.name, (long long)f);
        return -1;
    }
    int dt = ap__v2_dtype_parse(in->datatype);
    if (dt == AP_V2_INVALID || dt == AP_V2_BYTES) {
        snprintf(why, whysize, "inputs[0]: datatype must be one of BOOL, UINT8, UINT16, UINT32, "
                 "UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64%s%s",
                 in->datatype ? ", not " : "", in->datatype ? in->datatype : "");
        return -1;
    }
    if (!in->shape || in->rank != 2 || in->shape[0] < 1 || in->shape[1] != f) {
        snprintf(why, whysize, "inputs[0]: shape must be [N, %lld] with N >= 1", (long long)f);
        return -1;
    }
    if ((uint64_t)in->shape[0] > max_rows) {
        snprintf(why, whysize, "inputs[0]: %lld rows is more than max_queue_rows (%zu)",
                 (long long)in->shape[0], max_rows);
        return -1;
    }
    plan->dtype = dt;
    plan->nrows = (size_t)in->shape[0];
    plan->ncols = (size_t)f;
    plan->count = plan->nrows * plan->ncols;
    return 0;
}

int ap__v2_check_raw_size(const ap_v2_input_plan *plan, size_t nbytes, char *why, size_t whysize)
{
    size_t es = ap__v2_dtype_size(plan->dtype);
    if (!es || nbytes / es != plan->count || nbytes % es) {
        snprintf(why, whysize, "inputs[0]: %zu bytes of binary data, shape [%zu, %zu] of %s "
                 "needs %zu", nbytes, plan->nrows, plan->ncols, ap__v2_dtype_name(plan->dtype),
                 plan->count * es);
        return -1;
    }
    return 0;
}

/* ---- elements ------------------------------------------------------------------- */

/* The range of an integer datatype (as doubles: exact for the small ones;
   INT64/UINT64 are checked on the integer in ap__v2_elem_from_int). */
static int int_range(int dt, double *lo, double *hi)
{
    switch (dt) {
    case AP_V2_BOOL: *lo = 0, *hi = 1; return 1;
    case AP_V2_UINT8: *lo = 0, *hi = 255; return 1;
    case AP_V2_UINT16: *lo = 0, *hi = 65535; return 1;
    case AP_V2_UINT32: *lo = 0, *hi = 4294967295.0; return 1;
    case AP_V2_UINT64: *lo = 0, *hi = 18446744073709551615.0; return 1;
    case AP_V2_INT8: *lo = -128, *hi = 127; return 1;
    case AP_V2_INT16: *lo = -32768, *hi = 32767; return 1;
    case AP_V2_INT32: *lo = -2147483648.0, *hi = 2147483647.0; return 1;
    case AP_V2_INT64: *lo = -9223372036854775808.0, *hi = 9223372036854775807.0; return 1;
    default: return 0;
    }
}

int ap__v2_elem_from_number(int dtype, double x, int is_null, double *out, const char *where,
                            char *why, size_t whysize)
{
    if (is_null) { /* JSON has no NaN: null is a missing value */
        *out = NAN;
        return 0;
    }
    double lo, hi;
    switch (dtype) {
    case AP_V2_FP64:
        *out = x;
        return 0;
    case AP_V2_FP32:
        if (isinf((float)x) && !isinf(x)) {
            snprintf(why, whysize, "'data'%s = %.17g is beyond the FP32 range (|x| <= %.9g)",
                     where, x, (double)FLT_MAX);
            return -1;
        }
        *out = (double)(float)x;
        return 0;
    case AP_V2_FP16: {
        uint16_t h = ap__half_from_float((float)x);
        float back = ap__half_to_float(h);
        if (isinf(back) && !isinf(x)) {
            snprintf(why, whysize, "'data'%s = %.17g is beyond the FP16 range (|x| <= %.9g)",
                     where, x, (double)AP_HALF_MAX);
            return -1;
        }
        *out = (double)back;
        return 0;
    }
    default:
        if (!int_range(dtype, &lo, &hi))
            break;
        /* hi of the 64-bit types is 2^64 / 2^63 as a double: strictly below */
        if (!(x == floor(x)) || x < lo ||
            (dtype == AP_V2_UINT64 || dtype == AP_V2_INT64 ? x >= hi : x > hi)) {
            snprintf(why, whysize, "'data'%s = %.17g is not a %s value", where, x,
                     ap__v2_dtype_name(dtype));
            return -1;
        }
        *out = x;
        return 0;
    }
    snprintf(why, whysize, "'data'%s: datatype %s is not a number type", where,
             ap__v2_dtype_name(dtype));
    return -1;
}

int ap__v2_elem_from_int(int dtype, int64_t v, int is_unsigned, double *out, const char *where,
                         char *why, size_t whysize)
{
    if (dtype == AP_V2_FP64 || dtype == AP_V2_FP32 || dtype == AP_V2_FP16)
        return ap__v2_elem_from_number(dtype, is_unsigned ? (double)(uint64_t)v : (double)v, 0,
                                       out, where, why, whysize);
    double lo, hi;
    if (!int_range(dtype, &lo, &hi)) {
        snprintf(why, whysize, "'data'%s: datatype %s is not a number type", where,
                 ap__v2_dtype_name(dtype));
        return -1;
    }
    int ok;
    if (is_unsigned)
        ok = dtype == AP_V2_UINT64 || (dtype == AP_V2_INT64 ? (uint64_t)v <= INT64_MAX
                                                            : (double)(uint64_t)v <= hi);
    else
        ok = dtype == AP_V2_INT64 || (dtype == AP_V2_UINT64 ? v >= 0
                                                            : (double)v >= lo && (double)v <= hi);
    if (!ok) {
        if (is_unsigned)
            snprintf(why, whysize, "'data'%s = %llu is not a %s value", where,
                     (unsigned long long)(uint64_t)v, ap__v2_dtype_name(dtype));
        else
            snprintf(why, whysize, "'data'%s = %lld is not a %s value", where, (long long)v,
                     ap__v2_dtype_name(dtype));
        return -1;
    }
    *out = is_unsigned ? (double)(uint64_t)v : (double)v;
    return 0;
}

/* little-endian loads (the protocol's byte order, whatever the host's) */
static uint64_t le(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;)
        v = v << 8 | p[i];
    return v;
}

int ap__v2_from_raw(int dtype, const void *bytes, size_t nbytes, size_t count, double *X,
                    char *why, size_t whysize)
{
    size_t es = ap__v2_dtype_size(dtype);
    if (!es) {
        snprintf(why, whysize, "inputs[0]: datatype %s has no binary form here",
                 ap__v2_dtype_name(dtype));
        return -1;
    }
    if (nbytes != count * es) {
        snprintf(why, whysize, "inputs[0]: %zu bytes of binary data, %zu elements of %s need "
                 "%zu", nbytes, count, ap__v2_dtype_name(dtype), count * es);
        return -1;
    }
    const unsigned char *p = bytes;
    for (size_t i = 0; i < count; i++, p += es) {
        uint64_t u = le(p, es);
        switch (dtype) {
        case AP_V2_BOOL:
            if (u > 1) {
                snprintf(why, whysize, "inputs[0]: BOOL element [%zu] is byte %u, not 0 or 1",
                         i, (unsigned)u);
                return -1;
            }
            X[i] = (double)u;
            break;
        case AP_V2_UINT8: case AP_V2_UINT16: case AP_V2_UINT32: case AP_V2_UINT64:
            X[i] = (double)u;
            break;
        case AP_V2_INT8: X[i] = (double)(int8_t)u; break;
        case AP_V2_INT16: X[i] = (double)(int16_t)u; break;
        case AP_V2_INT32: X[i] = (double)(int32_t)u; break;
        case AP_V2_INT64: X[i] = (double)(int64_t)u; break;
        case AP_V2_FP16: X[i] = (double)ap__half_to_float((uint16_t)u); break;
        case AP_V2_FP32: {
            uint32_t w = (uint32_t)u;
            float f;
            memcpy(&f, &w, sizeof f);
            X[i] = (double)f;
            break;
        }
        default: { /* FP64 */
            double d;
            memcpy(&d, &u, sizeof d);
            X[i] = d;
            break;
        }
        }
    }
    return 0;
}

static int count_ok(size_t n, size_t count, int dtype, char *why, size_t whysize)
{
    if (n == count)
        return 1;
    snprintf(why, whysize, "inputs[0]: %zu %s values, the shape needs %zu", n,
             ap__v2_dtype_name(dtype), count);
    return 0;
}

#define TYPED(fn, T, conv)                                                                \
    int fn(int dtype, const T *v, size_t n, size_t count, double *X, char *why,            \
           size_t whysize)                                                                 \
    {                                                                                      \
        if (!count_ok(n, count, dtype, why, whysize))                                      \
            return -1;                                                                     \
        for (size_t i = 0; i < n; i++) {                                                   \
            char where[32];                                                                \
            snprintf(where, sizeof where, "[%zu]", i);                                     \
            if (conv)                                                                      \
                return -1;                                                                 \
        }                                                                                  \
        return 0;                                                                          \
    }

TYPED(ap__v2_from_bools, int, ap__v2_elem_from_int(dtype, v[i] != 0, 0, &X[i], where, why, whysize))
TYPED(ap__v2_from_i32, int32_t, ap__v2_elem_from_int(dtype, v[i], 0, &X[i], where, why, whysize))
TYPED(ap__v2_from_i64, int64_t, ap__v2_elem_from_int(dtype, v[i], 0, &X[i], where, why, whysize))
TYPED(ap__v2_from_u32, uint32_t, ap__v2_elem_from_int(dtype, (int64_t)v[i], 1, &X[i], where, why, whysize))
TYPED(ap__v2_from_u64, uint64_t, ap__v2_elem_from_int(dtype, (int64_t)v[i], 1, &X[i], where, why, whysize))
TYPED(ap__v2_from_f32, float, ap__v2_elem_from_number(dtype, (double)v[i], 0, &X[i], where, why, whysize))
TYPED(ap__v2_from_f64, double, ap__v2_elem_from_number(dtype, v[i], 0, &X[i], where, why, whysize))

/* ---- outputs ----------------------------------------------------------------------- */

int ap__v2_output_bit(const char *name)
{
    return !name                         ? 0
           : !strcmp(name, "prediction") ? AP_V2_OUT_PRED
           : !strcmp(name, "confidence") ? AP_V2_OUT_CONF
           : !strcmp(name, "outputs")    ? AP_V2_OUT_OUTS
                                         : 0;
}

void ap__v2_output_unknown(const char *name, size_t index, char *why, size_t whysize)
{
    snprintf(why, whysize, "outputs[%zu]: unknown output '%s' (prediction, confidence, outputs)",
             index, name ? name : "(no name)");
}

int ap__v2_outputs(int mask, size_t nout, ap_v2_output out[AP_V2_MAX_OUTPUTS])
{
    int n = 0;
    if (mask & AP_V2_OUT_PRED)
        out[n++] = (ap_v2_output){"prediction", AP_V2_OUT_PRED, 0, 1, 1};
    if (mask & AP_V2_OUT_CONF)
        out[n++] = (ap_v2_output){"confidence", AP_V2_OUT_CONF, 1, 1, 1};
    if (mask & AP_V2_OUT_OUTS)
        out[n++] = (ap_v2_output){"outputs", AP_V2_OUT_OUTS, 2, nout > 2 ? nout - 2 : 0, 2};
    return n;
}

size_t ap__v2_output_count(const ap_v2_output *o, size_t nrows) { return nrows * o->ncols; }

void ap__v2_output_values(const ap_v2_output *o, const double *out, size_t nrows, size_t nout,
                          double *dst)
{
    for (size_t i = 0; i < nrows; i++)
        for (size_t k = 0; k < o->ncols; k++)
            *dst++ = out[i * nout + o->col + k];
}

void ap__v2_output_raw(const ap_v2_output *o, const double *out, size_t nrows, size_t nout,
                       unsigned char *dst)
{
    for (size_t i = 0; i < nrows; i++)
        for (size_t k = 0; k < o->ncols; k++) {
            uint64_t u;
            double d = out[i * nout + o->col + k];
            memcpy(&u, &d, sizeof u);
            for (int b = 0; b < 8; b++)
                *dst++ = (unsigned char)(u >> (8 * b));
        }
}

/* ---- readiness ------------------------------------------------------------------- */

/* Not ready, and why: draining, nothing served, or a repository model
   that failed to load (its last load failed, or its manifest is unreadable)
   — the readiness probe keeps traffic away until it is fixed or removed.
   0: ready. */
int ap__v2_not_ready(ap_service *svc, int draining, char *why, size_t size)
{
    if (draining)
        return snprintf(why, size, "the server is shutting down"), 1;
    if (ap__service_resident(svc) <= 0)
        return snprintf(why, size, "no model is loaded"), 1;
    ap_repo_model *cat = NULL;
    int nc = 0, bad = 0;
    ap_error err;
    if (ap__service_catalog(svc, 0, &cat, &nc, &err) != AP_OK)
        return snprintf(why, size, "the repository cannot be read"), 1;
    ap_registry *reg = ap__service_registry(svc);
    char msg[AP_ERROR_MSG_MAX];
    for (int i = 0; i < nc && !bad; i++)
        if (!cat[i].ok || ap_registry_failure(reg, cat[i].name, msg, sizeof msg)) {
            snprintf(why, size, "model '%s' failed to load", cat[i].name);
            bad = 1;
        }
    ap_registry_listing_free(cat);
    return bad;
}

/* ---- the repository index ------------------------------------------------------------ */

int ap__v2_repo_index(ap_service *svc, int only_ready, ap_v2_repo_entry **out, int *n,
                      ap_error *err)
{
    *out = NULL;
    *n = 0;
    ap_repo_model *cat = NULL;
    int nc = 0;
    if (ap__service_catalog(svc, 1, &cat, &nc, err) != AP_OK)
        return err ? err->code : AP_EIO;
    int nslots = ap__service_slots(svc);
    ap_v2_repo_entry *e = calloc((size_t)(nc + nslots) + 1, sizeof *e);
    if (!e) {
        ap_registry_listing_free(cat);
        return ap__error_set(err, AP_ENOMEM, "out of memory for the repository index");
    }
    ap_registry *reg = ap__service_registry(svc);
    int k = 0;
    for (int i = 0; i < nc + nslots; i++) {
        /* the catalog, then served models no longer in the repository */
        const char *name;
        if (i < nc)
            name = cat[i].name;
        else {
            name = ap__service_slot_name(svc, i - nc);
            int seen = 0;
            for (int c = 0; c < nc && !seen; c++)
                seen = !strcmp(cat[c].name, name);
            if (seen)
                continue;
        }
        ap_model *m = ap__service_slot_model(svc, ap__service_slot_find(svc, name));
        uint32_t v = 0;
        if (m) {
            ap_model_info in;
            ap_model_describe(m, &in);
            v = in.version;
            ap_model_release(m);
        }
        if (only_ready && !v)
            continue;
        ap_v2_repo_entry *x = &e[k++];
        snprintf(x->name, sizeof x->name, "%s", name);
        x->version = v;
        if (!v && !ap_registry_failure(reg, name, x->reason, sizeof x->reason))
            snprintf(x->reason, sizeof x->reason, "%s",
                     i < nc && !cat[i].ok ? "manifest.json cannot be read or parsed"
                                          : "not loaded");
    }
    ap_registry_listing_free(cat);
    *out = e;
    *n = k;
    return AP_OK;
}

/* ---- statistics ------------------------------------------------------------------- */

static void add_batcher(ap_v2_model_stats *o, const ap_batch_stats *b)
{
    o->success.count += b->completed;
    o->fail.count += b->failed + b->timed_out;
    o->queue.count += b->queue_time.count;
    o->queue.ns += b->queue_time.sum_ns;
    for (int k = 0; k < AP_BATCH_SIZE_BUCKETS; k++)
        o->batch[k].compute_infer.count += b->batch_size[k];
}

int ap__v2_model_stats(ap_service *svc, int slot, uint32_t version, ap_v2_model_stats *out,
                       ap_error *err)
{
    memset(out, 0, sizeof *out);
    if (slot < 0 || slot >= ap__service_slots(svc))
        return ap__error_set(err, AP_ENOTFOUND, "no such model");
    const char *name = ap__service_slot_name(svc, slot);
    snprintf(out->name, sizeof out->name, "%s", name);
    ap_model *m = ap__service_slot_model(svc, slot);
    if (m) {
        ap_model_info in;
        ap_model_describe(m, &in);
        out->version = in.version;
        ap_model_release(m);
    }
    if (version && version != out->version)
        return ap__error_set(err, AP_ENOTFOUND, "model '%s' does not serve version %u now", name,
                            version);
    ap_model_stats ms;
    ap_error e2;
    if (ap_registry_stats(ap__service_registry(svc), name, &ms, &e2) == AP_OK) {
        out->inference_count = ms.predictions;
        out->execution_count = ms.latency_count;
        out->compute_infer.count = ms.latency_count;
        out->compute_infer.ns = ms.latency_sum_ns;
    }
    for (int raw = 0; raw < 2; raw++) {
        ap_batch_stats bs;
        if (ap__service_batch_stats(svc, slot, raw, &bs) == AP_OK)
            add_batcher(out, &bs);
    }
    /* the time a request spent in the service: its queue time, plus the
       model's execution (a batch's execution counted once, not per request) */
    out->success.ns = out->queue.ns + out->compute_infer.ns;
    /* no separate input/output phases: the copies are inside compute_infer */
    out->compute_input.count = out->compute_output.count = out->compute_infer.count;
    for (int k = 0; k < AP_BATCH_SIZE_BUCKETS; k++)
        if (out->batch[k].compute_infer.count) {
            ap_v2_batch_stat *b = &out->batch[out->nbatch++];
            *b = out->batch[k];
            b->batch_size = (uint64_t)1 << k;
            b->compute_input.count = b->compute_output.count = b->compute_infer.count;
        }
    for (int k = out->nbatch; k < AP_BATCH_SIZE_BUCKETS; k++)
        memset(&out->batch[k], 0, sizeof out->batch[k]);
    return AP_OK;
}
