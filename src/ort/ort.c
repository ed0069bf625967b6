/*
 * ONNX Runtime through dlopen. No header: the OrtApi struct of
 * onnxruntime_c_api.h is a table of function pointers whose order never
 * changes (new entries are only appended), so we address the entries we use
 * by index. The indices below are the positions of those members in
 * `struct OrtApi` (0 = CreateStatus); they were checked against
 * onnxruntime 1.30.0 by tests/onnx/test_ort.c (a status round trip through
 * CreateStatus/GetErrorCode/GetErrorMessage, then real sessions whose
 * results are compared with the native engine and with sklearn).
 * GetApi(ORT_API_REQUEST) accepts any version up to the library's own, and
 * the table prefix we use has existed since API version 1.
 */
#include "ort/ort.h"
#include "common/error.h"

#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ORT_API_REQUEST 14u
#define ORT_DEFAULT_LIB "libonnxruntime.so.1"

typedef struct OrtStatus OrtStatus;
typedef struct OrtEnv OrtEnv;
typedef struct OrtSession OrtSession;
typedef struct OrtSessionOptions OrtSessionOptions;
typedef struct OrtMemoryInfo OrtMemoryInfo;
typedef struct OrtValue OrtValue;
typedef struct OrtTensorTypeAndShapeInfo OrtTensorTypeAndShapeInfo;

/* FATAL only: every error ONNX Runtime reports comes back to the caller as
   an OrtStatus message, and the library never prints (a kernel refusing its
   rows would otherwise log on stderr at every request). */
enum { ORT_LOGGING_LEVEL_FATAL = 4 };
enum { ORT_ARENA_ALLOCATOR = 1, ORT_MEM_TYPE_DEFAULT = 0 };
enum { ORT_TENSOR_FLOAT = 1, ORT_TENSOR_DOUBLE = 11 };

/* struct OrtApi member positions */
enum {
    I_CreateStatus = 0,
    I_GetErrorCode = 1,
    I_GetErrorMessage = 2,
    I_CreateEnv = 3,
    I_CreateSessionFromArray = 8,
    I_Run = 9,
    I_CreateSessionOptions = 10,
    I_SetIntraOpNumThreads = 24,
    I_SetInterOpNumThreads = 25,
    I_CreateTensorWithDataAsOrtValue = 49,
    I_GetTensorMutableData = 51,
    I_GetTensorElementType = 60,
    I_GetDimensionsCount = 61,
    I_GetDimensions = 62,
    I_GetTensorTypeAndShape = 65,
    I_CreateCpuMemoryInfo = 69,
    I_ReleaseEnv = 92,
    I_ReleaseStatus = 93,
    I_ReleaseMemoryInfo = 94,
    I_ReleaseSession = 95,
    I_ReleaseValue = 96,
    I_ReleaseTensorTypeAndShapeInfo = 99,
    I_ReleaseSessionOptions = 100,
    I_COUNT = 101
};

typedef void (*ort_fn)(void);
typedef struct OrtApiBase {
    const ort_fn *(*GetApi)(uint32_t version);
    const char *(*GetVersionString)(void);
} OrtApiBase;

/* the entries we call, typed */
typedef struct ort_api {
    OrtStatus *(*CreateStatus)(int code, const char *msg);
    int (*GetErrorCode)(const OrtStatus *st);
    const char *(*GetErrorMessage)(const OrtStatus *st);
    OrtStatus *(*CreateEnv)(int level, const char *logid, OrtEnv **out);
    OrtStatus *(*CreateSessionFromArray)(const OrtEnv *env, const void *data, size_t len,
                                         const OrtSessionOptions *opt, OrtSession **out);
    OrtStatus *(*Run)(OrtSession *s, const void *run_options, const char *const *in_names,
                      const OrtValue *const *inputs, size_t nin, const char *const *out_names,
                      size_t nout, OrtValue **outputs);
    OrtStatus *(*CreateSessionOptions)(OrtSessionOptions **out);
    OrtStatus *(*SetIntraOpNumThreads)(OrtSessionOptions *o, int n);
    OrtStatus *(*SetInterOpNumThreads)(OrtSessionOptions *o, int n);
    OrtStatus *(*CreateTensorWithDataAsOrtValue)(const OrtMemoryInfo *info, void *data,
                                                 size_t bytes, const int64_t *shape,
                                                 size_t shape_len, int type, OrtValue **out);
    OrtStatus *(*GetTensorMutableData)(OrtValue *v, void **out);
    OrtStatus *(*GetTensorElementType)(const OrtTensorTypeAndShapeInfo *i, int *out);
    OrtStatus *(*GetDimensionsCount)(const OrtTensorTypeAndShapeInfo *i, size_t *out);
    OrtStatus *(*GetDimensions)(const OrtTensorTypeAndShapeInfo *i, int64_t *dims, size_t n);
    OrtStatus *(*GetTensorTypeAndShape)(const OrtValue *v, OrtTensorTypeAndShapeInfo **out);
    OrtStatus *(*CreateCpuMemoryInfo)(int alloc_type, int mem_type, OrtMemoryInfo **out);
    void (*ReleaseEnv)(OrtEnv *);
    void (*ReleaseStatus)(OrtStatus *);
    void (*ReleaseMemoryInfo)(OrtMemoryInfo *);
    void (*ReleaseSession)(OrtSession *);
    void (*ReleaseValue)(OrtValue *);
    void (*ReleaseTensorTypeAndShapeInfo)(OrtTensorTypeAndShapeInfo *);
    void (*ReleaseSessionOptions)(OrtSessionOptions *);
} ort_api;

struct ap_ort {
    void *dl;
    ort_api api;
    OrtEnv *env;
    OrtSession *session;
    OrtMemoryInfo *mem;
    char *input, *output;
    int input_is_double;
    int nf, nout;
    char version[48];
};

/* POSIX guarantees object <-> function pointer conversion for dlsym; copy
   the bits to stay clear of -Wpedantic's objection. */
#define TAKE(field, idx) memcpy(&a->field, &tab[idx], sizeof a->field)

static int load_api(const char *library, void **dl_out, ort_api *a, char *version,
                    size_t vlen, ap_error *err)
{
    const char *lib = library ? library : ORT_DEFAULT_LIB;
    void *dl = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        const char *why = dlerror();
        return ap__error_set(err, AP_EIO, "onnxruntime: cannot load %s: %s (run "
                            "tools/fetch-onnxruntime.sh and set ONNXRUNTIME_LIB)",
                            lib, why ? why : "unknown error");
    }
    void *sym = dlsym(dl, "OrtGetApiBase");
    if (!sym) {
        dlclose(dl);
        return ap__error_set(err, AP_EFORMAT, "onnxruntime: %s has no OrtGetApiBase", lib);
    }
    const OrtApiBase *(*get_base)(void);
    memcpy(&get_base, &sym, sizeof get_base);
    const OrtApiBase *base = get_base();
    const ort_fn *tab = base ? base->GetApi(ORT_API_REQUEST) : NULL;
    if (!tab) {
        dlclose(dl);
        return ap__error_set(err, AP_EFORMAT, "onnxruntime: %s does not provide C API version %u",
                            lib, ORT_API_REQUEST);
    }
    snprintf(version, vlen, "onnxruntime %s", base->GetVersionString());
    TAKE(CreateStatus, I_CreateStatus);
    TAKE(GetErrorCode, I_GetErrorCode);
    TAKE(GetErrorMessage, I_GetErrorMessage);
    TAKE(CreateEnv, I_CreateEnv);
    TAKE(CreateSessionFromArray, I_CreateSessionFromArray);
    TAKE(Run, I_Run);
    TAKE(CreateSessionOptions, I_CreateSessionOptions);
    TAKE(SetIntraOpNumThreads, I_SetIntraOpNumThreads);
    TAKE(SetInterOpNumThreads, I_SetInterOpNumThreads);
    TAKE(CreateTensorWithDataAsOrtValue, I_CreateTensorWithDataAsOrtValue);
    TAKE(GetTensorMutableData, I_GetTensorMutableData);
    TAKE(GetTensorElementType, I_GetTensorElementType);
    TAKE(GetDimensionsCount, I_GetDimensionsCount);
    TAKE(GetDimensions, I_GetDimensions);
    TAKE(GetTensorTypeAndShape, I_GetTensorTypeAndShape);
    TAKE(CreateCpuMemoryInfo, I_CreateCpuMemoryInfo);
    TAKE(ReleaseEnv, I_ReleaseEnv);
    TAKE(ReleaseStatus, I_ReleaseStatus);
    TAKE(ReleaseMemoryInfo, I_ReleaseMemoryInfo);
    TAKE(ReleaseSession, I_ReleaseSession);
    TAKE(ReleaseValue, I_ReleaseValue);
    TAKE(ReleaseTensorTypeAndShapeInfo, I_ReleaseTensorTypeAndShapeInfo);
    TAKE(ReleaseSessionOptions, I_ReleaseSessionOptions);
    /* Cheap guard against a wrong table layout: a status must round-trip. */
    OrtStatus *st = a->CreateStatus(2, "alphapulse-probe");
    int ok = st && a->GetErrorCode(st) == 2 && !strcmp(a->GetErrorMessage(st), "alphapulse-probe");
    if (st)
        a->ReleaseStatus(st);
    if (!ok) {
        dlclose(dl);
        return ap__error_set(err, AP_EFORMAT, "onnxruntime: %s: unexpected C API table layout",
                            lib);
    }
    *dl_out = dl;
    return AP_OK;
}

int ap__ort_available(const char *library)
{
    void *dl = dlopen(library ? library : ORT_DEFAULT_LIB, RTLD_NOW | RTLD_LOCAL);
    if (!dl)
        return 0;
    dlclose(dl);
    return 1;
}

/* Turn an OrtStatus into our error (and release it). */
static int ort_fail(const ort_api *a, OrtStatus *st, const char *name, const char *what,
                    ap_error *err)
{
    int rc = ap__error_set(err, AP_EFORMAT, "%s: onnxruntime %s: %s", name, what,
                          a->GetErrorMessage(st));
    a->ReleaseStatus(st);
    return rc;
}

static char *dupstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static int run_chunk(const ap_ort *s, const double *X, size_t n, double *out, void *in_buf,
                     int *nout, ap_error *err);

int ap__ort_open(const void *model, size_t len, const ap_ort_config *cfg, const char *name,
                ap_ort **out, ap_error *err)
{
    *out = NULL;
    ap_ort *s = calloc(1, sizeof *s);
    if (!s)
        return ap__error_set(err, AP_ENOMEM, "%s: out of memory", name);
    int rc = load_api(cfg->library, &s->dl, &s->api, s->version, sizeof s->version, err);
    if (rc != AP_OK) {
        free(s);
        return rc;
    }
    const ort_api *a = &s->api;
    s->input = dupstr(cfg->input);
    s->output = dupstr(cfg->output);
    s->input_is_double = cfg->input_is_double;
    s->nf = cfg->num_features;
    s->nout = cfg->num_outputs;
    if (!s->input || !s->output) {
        ap__ort_close(s);
        return ap__error_set(err, AP_ENOMEM, "%s: out of memory", name);
    }
    OrtSessionOptions *opt = NULL;
    OrtStatus *st = a->CreateEnv(ORT_LOGGING_LEVEL_FATAL, "alphapulse", &s->env);
    if (!st)
        st = a->CreateSessionOptions(&opt);
    if (!st && cfg->intra_threads > 0)
        st = a->SetIntraOpNumThreads(opt, cfg->intra_threads);
    if (!st)
        st = a->SetInterOpNumThreads(opt, 1);
    if (!st)
        st = a->CreateSessionFromArray(s->env, model, len, opt, &s->session);
    if (!st)
        st = a->CreateCpuMemoryInfo(ORT_ARENA_ALLOCATOR, ORT_MEM_TYPE_DEFAULT, &s->mem);
    if (opt)
        a->ReleaseSessionOptions(opt);
    if (st) {
        rc = ort_fail(a, st, name, "session", err);
        ap__ort_close(s);
        return rc;
    }
    if (s->nout <= 0) {
        /* width not declared in the graph: run one zero row to learn it */
        double zero_row[1] = {0}, *x = s->nf > 1 ? calloc((size_t)s->nf, sizeof *x) : zero_row;
        double *y = malloc((1 << 16) * sizeof *y);
        void *buf = malloc((size_t)s->nf * sizeof(double));
        int nout = -1;
        rc = x && y && buf ? run_chunk(s, x, 1, y, buf, &nout, err)
                           : ap__error_set(err, AP_ENOMEM, "%s: out of memory", name);
        if (x != zero_row)
            free(x);
        free(y);
        free(buf);
        if (rc != AP_OK) {
            ap__error_prefix(err, "%s: ", name);
            ap__ort_close(s);
            return rc;
        }
        s->nout = nout;
    }
    *out = s;
    return AP_OK;
}

/* *nout: the expected output width, or < 0 to accept (and store) whatever
   the model produces (the probe at open) */
static int run_chunk(const ap_ort *s, const double *X, size_t n, double *out, void *in_buf,
                     int *nout, ap_error *err)
{
    const ort_api *a = &s->api;
    size_t cells = n * (size_t)s->nf;
    if (s->input_is_double)
        memcpy(in_buf, X, cells * sizeof(double));
    else
        for (size_t i = 0; i < cells; i++)
            ((float *)in_buf)[i] = (float)X[i];
    int64_t shape[2] = {(int64_t)n, s->nf};
    OrtValue *in = NULL, *res = NULL;
    OrtTensorTypeAndShapeInfo *info = NULL;
    int rc = AP_OK;
    OrtStatus *st = a->CreateTensorWithDataAsOrtValue(
        s->mem, in_buf, cells * (s->input_is_double ? sizeof(double) : sizeof(float)), shape, 2,
        s->input_is_double ? ORT_TENSOR_DOUBLE : ORT_TENSOR_FLOAT, &in);
    const char *in_names[1] = {s->input}, *out_names[1] = {s->output};
    if (!st)
        st = a->Run(s->session, NULL, in_names, (const OrtValue *const *)&in, 1, out_names, 1,
                    &res);
    if (!st)
        st = a->GetTensorTypeAndShape(res, &info);
    int type = 0;
    size_t nd = 0;
    int64_t dims[2] = {0, 0};
    if (!st)
        st = a->GetTensorElementType(info, &type);
    if (!st)
        st = a->GetDimensionsCount(info, &nd);
    if (!st && nd >= 1 && nd <= 2)
        st = a->GetDimensions(info, dims, nd);
    if (st) {
        rc = ort_fail(a, st, "model", "run", err);
        goto done;
    }
    if (nd == 1)
        dims[1] = 1;
    if (*nout < 0 && nd >= 1 && nd <= 2 && dims[1] >= 1 && dims[1] <= (1 << 16))
        *nout = (int)dims[1];
    if (nd < 1 || nd > 2 || dims[0] != (int64_t)n || dims[1] != *nout ||
        (type != ORT_TENSOR_FLOAT && type != ORT_TENSOR_DOUBLE)) {
        rc = ap__error_set(err, AP_EFORMAT,
                          "onnxruntime: output '%s' has type %d and %zu dims [%lld, %lld], "
                          "expected float [%zu, %d]",
                          s->output, type, nd, (long long)dims[0], (long long)dims[1], n, *nout);
        goto done;
    }
    void *data;
    st = a->GetTensorMutableData(res, &data);
    if (st) {
        rc = ort_fail(a, st, "model", "output", err);
        goto done;
    }
    size_t m = n * (size_t)*nout;
    if (type == ORT_TENSOR_FLOAT)
        for (size_t i = 0; i < m; i++)
            out[i] = (double)((const float *)data)[i];
    else
        memcpy(out, data, m * sizeof(double));
done:
    if (info)
        a->ReleaseTensorTypeAndShapeInfo(info);
    if (res)
        a->ReleaseValue(res);
    if (in)
        a->ReleaseValue(in);
    return rc;
}

int ap__ort_run(const ap_ort *s, const double *X, size_t nrows, double *out, ap_error *err)
{
    /* bounded input buffer: large batches go through in chunks */
    const size_t chunk = 4096;
    size_t rows = nrows < chunk ? nrows : chunk;
    void *buf = malloc((rows ? rows : 1) * (size_t)s->nf * sizeof(double));
    int rc = buf ? AP_OK : ap__error_set(err, AP_ENOMEM, "onnxruntime: out of memory");
    for (size_t r = 0; rc == AP_OK && r < nrows; r += chunk) {
        size_t n = nrows - r < chunk ? nrows - r : chunk;
        int nout = s->nout;
        rc = run_chunk(s, X + r * (size_t)s->nf, n, out + r * (size_t)s->nout, buf, &nout, err);
    }
    free(buf);
    if (rc != AP_OK)
        for (size_t i = 0; i < nrows * (size_t)s->nout; i++)
            out[i] = NAN;
    return rc;
}

void ap__ort_close(ap_ort *s)
{
    if (!s)
        return;
    if (s->mem)
        s->api.ReleaseMemoryInfo(s->mem);
    if (s->session)
        s->api.ReleaseSession(s->session);
    if (s->env)
        s->api.ReleaseEnv(s->env);
    /* The library stays mapped: ORT keeps process-wide state (thread pools,
       registered kernels) that does not survive an unload and reload. */
    free(s->input);
    free(s->output);
    free(s);
}

const char *ap__ort_version(const ap_ort *s) { return s->version; }

int ap__ort_num_outputs(const ap_ort *s) { return s->nout; }
