/*
 * api.c: the public ap_onnx functions (include/alphapulse/onnx.h): options,
 * sniffing, loading with the backend choice, accessors, predict, free.
 *
 * Backends (ap_onnx_options.backend, ONNX_ENABLED): NATIVE refuses what it
 * cannot import (naming the operator), AUTO hands such graphs to ONNX
 * Runtime when the library loads, ORT always uses ONNX Runtime. The native
 * backend compiles the graph into a plan (compile.c) and runs it (run.c);
 * ONNX Runtime gets the graph without its output ZipMap (to_ort.c).
 */
#include "onnx/plan.h"
#include "ort/ort.h"
#include "common/csv.h"
#include "common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct ap_onnx {
    int nf, nout;
    ap_onnx_plan plan;     /* native backend */
    ap_ort *ort;           /* ONNX Runtime backend, or NULL */
    char backend[64];
};

void ap_onnx_options_default(ap_onnx_options *o)
{
    o->backend = AP_ONNX_AUTO;
    o->ort_library = NULL;
    o->ort_threads = 1;
}

int ap_onnx_options_parse(ap_onnx_options *o, const char *e, const char *lib, ap_error *err)
{
    ap_onnx_options_default(o);
    if (!e || !*e || !strcmp(e, "1") || !strcasecmp(e, "on") || !strcasecmp(e, "true") ||
        !strcasecmp(e, "auto"))
        o->backend = AP_ONNX_AUTO;
    else if (!strcmp(e, "0") || !strcasecmp(e, "off") || !strcasecmp(e, "false") ||
             !strcasecmp(e, "native"))
        o->backend = AP_ONNX_NATIVE;
    else if (!strcasecmp(e, "ort"))
        o->backend = AP_ONNX_ORT;
    else
        return ap__error_set(err, AP_EINVAL,
                            "ONNX backend '%s': expected 0/off/native, 1/auto or ort", e);
    if (lib && *lib)
        o->ort_library = lib;
    return AP_OK;
}

int ap_onnx_sniff(const void *buf, size_t len)
{
    const uint8_t *b = buf;
    /* field 1 (ir_version, varint) comes first in every writer we know */
    return len >= 2 && b[0] == 0x08 && b[1] >= 1 && b[1] < 0x40;
}

void ap_onnx_free(ap_onnx *m)
{
    if (!m)
        return;
    ap__onnx_plan_free(&m->plan);
    ap__ort_close(m->ort);
    free(m);
}

static int open_ort(ap_onnx *m, Onnx__ModelProto *mp, const ap_onnx_io *r,
                    const ap_onnx_options *o, const char *name, ap_error *err)
{
    int rc = ap__onnx_open_ort(mp, r, o, name, &m->ort, err);
    if (rc != AP_OK)
        return rc;
    m->nf = r->nf;
    m->nout = ap__ort_num_outputs(m->ort);
    snprintf(m->backend, sizeof m->backend, "%s", ap__ort_version(m->ort));
    return AP_OK;
}

int ap_onnx_load_mem(const void *buf, size_t len, const char *name, const ap_onnx_options *opt,
                     ap_onnx **out, ap_error *err)
{
    *out = NULL;
    if (!name)
        name = "model";
    ap_onnx_options def;
    if (!opt) {
        ap_onnx_options_default(&def);
        opt = &def;
    }
    Onnx__ModelProto *mp;
    int rc = ap__onnx_pb_parse(buf, len, name, &mp, err);
    if (rc != AP_OK)
        return rc;
    ap_onnx *m = calloc(1, sizeof *m);
    if (!m) {
        ap__onnx_pb_free(mp);
        return ap__error_set(err, AP_ENOMEM, "%s: out of memory", name);
    }
    ap_onnx_io r;
    rc = ap__onnx_find_io(mp, name, &r, err);
    if (rc == AP_OK && opt->backend != AP_ONNX_ORT) {
        m->nf = r.nf;
        rc = ap__onnx_plan_compile(&m->plan, mp, &r, name, err);
        if (rc == AP_OK) {
            m->nout = m->plan.nout;
            snprintf(m->backend, sizeof m->backend, "native");
        }
        if (rc == AP_EUNSUPPORTED && opt->backend == AP_ONNX_AUTO) {
            /* keep the native reason: it is what the user must know when
               ONNX Runtime is missing too */
            ap_error why = *err;
            ap_onnx_free(m);
            m = calloc(1, sizeof *m);
            if (!m) {
                ap__onnx_pb_free(mp);
                return ap__error_set(err, AP_ENOMEM, "%s: out of memory", name);
            }
            rc = open_ort(m, mp, &r, opt, name, err);
            if (rc != AP_OK) {
                ap_error ort_why = *err; /* err->msg cannot be read while written */
                rc = ap__error_set(err, rc, "%s; ONNX Runtime fallback failed: %s", why.msg,
                                  ort_why.msg);
            }
        }
    } else if (rc == AP_OK) {
        rc = open_ort(m, mp, &r, opt, name, err);
    }
    ap__onnx_pb_free(mp);
    if (rc != AP_OK) {
        ap_onnx_free(m);
        return rc;
    }
    *out = m;
    return AP_OK;
}

int ap_onnx_load(const char *path, const ap_onnx_options *opt, ap_onnx **out, ap_error *err)
{
    char *buf;
    size_t len;
    *out = NULL;
    int rc = ap__read_file(path, AP_ONNX_MAX_FILE, &buf, &len, err);
    if (rc != AP_OK)
        return rc;
    rc = ap_onnx_load_mem(buf, len, path, opt, out, err);
    free(buf);
    return rc;
}

int ap_onnx_num_features(const ap_onnx *m) { return m->nf; }
int ap_onnx_num_outputs(const ap_onnx *m) { return m->nout; }
int ap_onnx_is_float32(const ap_onnx *m) { return 1; }
const char *ap_onnx_backend_name(const ap_onnx *m) { return m->backend; }
const char *ap_onnx_summary(const ap_onnx *m) { return m->ort ? "onnxruntime" : m->plan.summary; }
int ap_onnx_num_trees(const ap_onnx *m) { return m->plan.ntrees; }

int ap_onnx_predict(const ap_onnx *m, const double *X, size_t nrows, double *out, ap_error *err)
{
    if (m->ort)
        return ap__ort_run(m->ort, X, nrows, out, err);
    ap__onnx_plan_run(&m->plan, X, nrows, out);
    return AP_OK;
}

/* Precision: see onnx.h; the plan's part is precision.c. */
int ap_onnx_set_precision(ap_onnx *m, ap_precision p, double tolerance, const double *X,
                          size_t nrows, double *max_dev, ap_error *err)
{
    double dev = 0;
    if (max_dev)
        *max_dev = 0;
    if (p != AP_PRECISION_AUTO && p != AP_PRECISION_FULL && p != AP_PRECISION_REDUCED)
        return ap__error_set(err, AP_EINVAL, "precision %d: expected auto, full or reduced", (int)p);
    if (p != AP_PRECISION_REDUCED)  /* AUTO is FULL here, as for ap_forest */
        return m->ort ? AP_OK : ap__onnx_plan_full(&m->plan, err);
    if (m->ort)
        return ap__error_set(err, AP_EUNSUPPORTED,
                            "reduced precision needs the native backend (this model runs on %s)",
                            m->backend);
    int rc = ap__onnx_plan_reduce(&m->plan, tolerance, X, nrows, &dev, err);
    if (max_dev)
        *max_dev = dev;
    return rc;
}

ap_precision ap_onnx_precision(const ap_onnx *m)
{
    return m->ort ? AP_PRECISION_FULL : m->plan.prec;
}

size_t ap_onnx_model_bytes(const ap_onnx *m, ap_precision p)
{
    return m->ort ? 0 : ap__onnx_plan_bytes(&m->plan, p);
}
