/*
 * The Open Inference Protocol (KServe v2 / Triton), transport-neutral: what a
 * model looks like to the protocol (metadata and configuration as data), the
 * input tensor check, converting a tensor's elements of any datatype into the
 * engine's double rows, the outputs, and the per-model statistics (Triton's
 * schema) gathered from the counters the service keeps. The REST handlers
 * (handlers_v2*.c) and the gRPC service both build on it; nothing here knows
 * JSON, HTTP or protobuf. Functions return 0 or -1 with a message in why.
 *
 * A model takes one input tensor "input" of shape [N, F] (the manifest's F
 * features in order, before the pipeline; for an ensemble its member
 * predictions) and answers up to three output tensors: "prediction" [N],
 * "confidence" [N] and "outputs" [N, K], all FP64.
 */
#ifndef AP_SERVER_V2_CORE_H
#define AP_SERVER_V2_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "alphapulse.h"
#include "serve/service.h"

/* ---- datatypes ---------------------------------------------------------------- */

typedef enum ap_v2_dtype {
    AP_V2_INVALID = -1,
    AP_V2_BOOL = 0,
    AP_V2_UINT8,
    AP_V2_UINT16,
    AP_V2_UINT32,
    AP_V2_UINT64,
    AP_V2_INT8,
    AP_V2_INT16,
    AP_V2_INT32,
    AP_V2_INT64,
    AP_V2_FP16,
    AP_V2_FP32,
    AP_V2_FP64,
    AP_V2_BYTES, /* known to the protocol, refused as a model input here */
    AP_V2_NDTYPES
} ap_v2_dtype;

/* "FP32" -> AP_V2_FP32; AP_V2_INVALID for anything else (names are exact,
   upper case, as the protocol spells them). */
int ap__v2_dtype_parse(const char *name);
const char *ap__v2_dtype_name(int dt); /* "?" when out of range */
/* Bytes of one element in the binary / raw form (BOOL: 1); 0 for BYTES. */
size_t ap__v2_dtype_size(int dt);

/* ---- a model as the protocol sees it -------------------------------------------- */

#define AP_V2_INPUT_NAME "input"
enum { AP_V2_OUT_PRED = 1, AP_V2_OUT_CONF = 2, AP_V2_OUT_OUTS = 4, AP_V2_OUT_ALL = 7 };
#define AP_V2_MAX_OUTPUTS 3

typedef struct ap_v2_tensor_meta {
    const char *name;     /* static */
    const char *datatype; /* static, "FP64" */
    int rank;             /* 1 or 2 */
    int64_t shape[2];     /* -1: any (the batch dimension) */
} ap_v2_tensor_meta;

typedef struct ap_v2_model_meta {
    const char *name;     /* the version's (valid while it is held) */
    uint32_t version;
    char version_str[12]; /* the version as the protocol's string */
    char platform[48];    /* "alphapulse_<format>" */
    int max_batch_size;   /* the manifest's batching cap (0: none declared) */
    uint32_t max_queue_delay_us;
    ap_v2_tensor_meta input;
    int noutputs;
    ap_v2_tensor_meta outputs[AP_V2_MAX_OUTPUTS]; /* prediction, confidence, outputs */
} ap_v2_model_meta;

/* The metadata of a loaded version (in: ap_model_describe's, held). */
void ap__v2_model_meta(const ap_model_info *in, ap_v2_model_meta *out);

/* ---- the input tensor ------------------------------------------------------------- */

/* An input tensor as the request names it (any transport). */
typedef struct ap_v2_input {
    const char *name;
    const char *datatype;
    const int64_t *shape;
    size_t rank;
} ap_v2_input;

/* What the check settled: the datatype, rows and the element count. */
typedef struct ap_v2_input_plan {
    int dtype;      /* ap_v2_dtype */
    size_t nrows;   /* N */
    size_t ncols;   /* F */
    size_t count;   /* N * F elements */
} ap_v2_input_plan;

/*
 * Check an input against the model's metadata: the name ("input"), the
 * datatype (a numeric one: BOOL, UINT*, INT*, FP16, FP32, FP64), the shape
 * [N, F] with N >= 1 and F the model's width, and N within max_rows.
 * Fills plan. Messages name the tensor ("inputs[0]") and what was expected.
 */
int ap__v2_check_input(const ap_v2_model_meta *m, const ap_v2_input *in, size_t max_rows,
                       ap_v2_input_plan *plan, char *why, size_t whysize);
/* Check the byte size of a binary / raw tensor: count elements of the
   plan's datatype need exactly count * size bytes. */
int ap__v2_check_raw_size(const ap_v2_input_plan *plan, size_t nbytes, char *why, size_t whysize);

/* ---- elements into double rows ---------------------------------------------------- */

/*
 * One element given as a number (a JSON value, a typed protobuf field) into
 * its double, exactly as the JSON path has always done for FP32/FP64: FP32
 * rounds through float and refuses a finite value beyond the float range
 * (it would silently become infinite); FP64 as is. For the other types the
 * value must be representable: integers integral and within the type's
 * range, BOOL 0 or 1, FP16 within the half range (rounded through half).
 * is_null: the value is missing (JSON null), NaN. where: the element's
 * position for the message, e.g. "[3]" or "[1][2]".
 */
int ap__v2_elem_from_number(int dtype, double x, int is_null, double *out, const char *where,
                            char *why, size_t whysize);
/* The same for an integer value (exact for INT64/UINT64 beyond 2^53 in the
   range check; the double is the nearest). is_unsigned: v is a uint64. */
int ap__v2_elem_from_int(int dtype, int64_t v, int is_unsigned, double *out, const char *where,
                         char *why, size_t whysize);

/* Binary / raw tensor bytes (little-endian, row-major, count elements of
   dtype, nbytes == count * size, checked here too) into X[count]. BOOL
   bytes must be 0 or 1; floats keep NaN and infinities as they are. */
int ap__v2_from_raw(int dtype, const void *bytes, size_t nbytes, size_t count, double *X,
                    char *why, size_t whysize);

/* Typed contents (gRPC InferTensorContents): arrays of the protobuf field
   types. Each checks the count and the values like ap__v2_elem_from_*. */
int ap__v2_from_bools(int dtype, const int *v, size_t n, size_t count, double *X, char *why,
                      size_t whysize);
int ap__v2_from_i32(int dtype, const int32_t *v, size_t n, size_t count, double *X, char *why,
                    size_t whysize);
int ap__v2_from_i64(int dtype, const int64_t *v, size_t n, size_t count, double *X, char *why,
                    size_t whysize);
int ap__v2_from_u32(int dtype, const uint32_t *v, size_t n, size_t count, double *X, char *why,
                    size_t whysize);
int ap__v2_from_u64(int dtype, const uint64_t *v, size_t n, size_t count, double *X, char *why,
                    size_t whysize);
int ap__v2_from_f32(int dtype, const float *v, size_t n, size_t count, double *X, char *why,
                    size_t whysize);
int ap__v2_from_f64(int dtype, const double *v, size_t n, size_t count, double *X, char *why,
                    size_t whysize);

/* ---- outputs ------------------------------------------------------------------------- */

/* AP_V2_OUT_* of an output name, 0 when it is none of ours. */
int ap__v2_output_bit(const char *name);
/* The message for an unknown output name. */
void ap__v2_output_unknown(const char *name, size_t index, char *why, size_t whysize);

/* One output tensor of a result: nrows rows of [prediction, confidence,
   outputs...] (nout columns) -> the tensor's columns [col, col + ncols). */
typedef struct ap_v2_output {
    const char *name; /* static */
    int bit;          /* AP_V2_OUT_* */
    size_t col, ncols;
    int rank;         /* 1: shape [N]; 2: [N, ncols] */
} ap_v2_output;

/* The outputs of mask in the protocol's order; returns how many (<= 3). */
int ap__v2_outputs(int mask, size_t nout, ap_v2_output out[AP_V2_MAX_OUTPUTS]);
/* Elements of an output for nrows rows. */
size_t ap__v2_output_count(const ap_v2_output *o, size_t nrows);
/* The output's values, row-major, into dst (ap__v2_output_count doubles). */
void ap__v2_output_values(const ap_v2_output *o, const double *out, size_t nrows, size_t nout,
                          double *dst);
/* The same as little-endian FP64 bytes (8 * count): the binary form. */
void ap__v2_output_raw(const ap_v2_output *o, const double *out, size_t nrows, size_t nout,
                       unsigned char *dst);

/* ---- readiness ------------------------------------------------------------------------ */

/* Server readiness (REST /v2/health/ready, gRPC ServerReady): 0 when ready;
   1 with why when draining (the front end says), nothing is served, or a
   model of the repository failed its last load or has an unreadable
   manifest (the repository as last read). */
int ap__v2_not_ready(ap_service *svc, int draining, char *why, size_t size);

/* ---- the repository index --------------------------------------------------------------- */

typedef struct ap_v2_repo_entry {
    char name[128];
    uint32_t version; /* served now: READY; 0: UNAVAILABLE with reason */
    char reason[AP_ERROR_MSG_MAX]; /* the last failed load's message (not scrubbed of
                                      paths: ap__srv_scrub_paths), "not loaded", or
                                      "manifest.json cannot be read or parsed" */
} ap_v2_repo_entry;

/* Every model of the repository (read again now) and every model served
   that is no longer in it, in that order; only_ready: the READY ones only.
   *out is malloc'd (free it), *n entries. */
int ap__v2_repo_index(ap_service *svc, int only_ready, ap_v2_repo_entry **out, int *n,
                      ap_error *err);

/* ---- statistics (Triton's ModelStatistics) ------------------------------------------- */

typedef struct ap_v2_duration {
    uint64_t count, ns;
} ap_v2_duration;

typedef struct ap_v2_batch_stat {
    uint64_t batch_size; /* the bucket's largest size (1, 2, 4, ... rows) */
    ap_v2_duration compute_input, compute_infer, compute_output;
} ap_v2_batch_stat;

typedef struct ap_v2_model_stats {
    char name[128];
    uint32_t version;          /* 0: none served now */
    uint64_t last_inference;   /* ms since the epoch; 0: not kept / none */
    uint64_t inference_count;  /* rows inferred (every path: /v1, /v2, streams) */
    uint64_t execution_count;  /* model executions (batches) */
    ap_v2_duration success, fail, queue, compute_input, compute_infer, compute_output,
        cache_hit, cache_miss;
    int nbatch;
    ap_v2_batch_stat batch[AP_BATCH_SIZE_BUCKETS];
} ap_v2_model_stats;

/*
 * The statistics of the model in slot (ap__service_slot_find) from what the
 * service keeps: the registry's counters (rows, failed predict calls, time
 * in the predictor) and the slot's two batchers (requests completed,
 * failed, timed out; queue time; batch sizes). AP_ENOTFOUND when the slot
 * does not exist; version: when non-zero, the slot must serve it now.
 */
int ap__v2_model_stats(ap_service *svc, int slot, uint32_t version, ap_v2_model_stats *out,
                       ap_error *err);

#endif
