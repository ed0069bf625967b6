/*
 * alphapulse predict --model FILE --input X.csv [--output Y.csv] [--raw]
 *                    [--precision full|reduced [--precision-tolerance T]]
 *                    [--device cpu|gpu|auto]
 *   one model file, no repository: its format from its name and content
 *   (the predictor table, pipeline/predictor.h), rows from a CSV, one output
 *   row per input row. Reduced precision asked and refused is an error (the
 *   engine's message, exit 1): an explicit request never runs full.
 *   --device gpu where there is no usable CUDA device (or for a model the GPU
 *   kernel does not take) exits 2 naming the reason: it never runs on the CPU.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alphapulse.h"
#include "cli/commands.h"
#include "common/csv.h"
#include "common/error.h"
#include "pipeline/predictor.h"

#define CHUNK 1024

static void predict_usage(FILE *fp)
{
    fprintf(fp,
            "usage: alphapulse predict --model FILE --input X.csv [--output Y.csv] [--raw]\n"
            "                          [--precision full|reduced] [--precision-tolerance T]\n"
            "                          [--device cpu|gpu|auto]\n"
            "\n"
            "  --model FILE    XGBoost JSON/UBJSON, LightGBM text or ONNX (.onnx) model\n"
            "  --input X.csv   header of feature names, one row per prediction;\n"
            "                  an empty field, nan or NaN is a missing value\n"
            "  --output Y.csv  where to write predictions (default: stdout)\n"
            "  --raw           margins instead of transformed outputs\n"
            "  --precision P   full (default) or reduced: quantized trees (the same outputs)\n"
            "                  and, in ONNX graphs, dense layers with half weights; refused\n"
            "                  (exit 1, saying why) when the model cannot be reduced\n"
            "  --precision-tolerance T  ONNX: the largest absolute output difference\n"
            "                  reduced may make on the input's first rows (default 1e-3)\n"
            "  --device D      cpu (default), gpu (every batch on a CUDA device; exit 2 with\n"
            "                  the reason where there is none) or auto (the GPU from a batch\n"
            "                  size measured now; the choice is printed on stderr). The\n"
            "                  outputs are the same bits on either (docs/GPU.md)\n"
            "\n"
            "Columns are matched to the model's features by name when the model\n"
            "carries names and the header has them all; otherwise by position.\n"
            "ONNX models: ONNX_ENABLED=0 (native only), 1 (default: native, else ONNX\n"
            "Runtime) or ort; ONNXRUNTIME_LIB=path of libonnxruntime.so.1 (docs/ONNX.md).\n");
}

/* A loaded model file: its table entry and what it loaded. */
typedef struct model {
    const ap_predictor_ops *ops;
    void *impl;
    ap_predictor_desc desc;
} model;

/* Map CSV columns to model features: col_of[f] = CSV column of feature f. */
static int map_columns(const model *m, const ap_csv *csv, int *col_of, const char *input)
{
    int nf = m->desc.num_features;
    int by_name = m->ops->feature_name(m->impl, 0) != NULL;
    for (int i = 0; by_name && i < nf; i++) {
        const char *want = m->ops->feature_name(m->impl, i);
        col_of[i] = -1;
        for (size_t c = 0; c < csv->nfields; c++)
            if (!strcmp(csv->fields[c], want)) {
                col_of[i] = (int)c;
                break;
            }
        if (col_of[i] < 0)
            by_name = 0;
    }
    if (by_name)
        return 0;
    if ((int)csv->nfields != nf) {
        fprintf(stderr,
                "alphapulse predict: %s: header has %zu columns but the model reads %d features "
                "(and the header does not name them all)\n",
                input, csv->nfields, nf);
        return -1;
    }
    for (int i = 0; i < nf; i++)
        col_of[i] = i;
    return 0;
}

static void write_header(FILE *out, int nout)
{
    if (nout == 1) {
        fputs("prediction\n", out);
        return;
    }
    for (int k = 0; k < nout; k++)
        fprintf(out, "%sclass_%d", k ? "," : "", k);
    fputc('\n', out);
}

static void write_rows(FILE *out, const double *y, size_t n, int nout, int f32)
{
    for (size_t r = 0; r < n; r++) {
        for (int k = 0; k < nout; k++) {
            double v = y[r * (size_t)nout + (size_t)k];
            if (k)
                fputc(',', out);
            if (isnan(v))
                fputs("nan", out);
            else
                fprintf(out, f32 ? "%.9g" : "%.17g", v);
        }
        fputc('\n', out);
    }
}

/* The model file through its table entry; 0, or the exit status. */
static int load_model(const char *path, int raw, model *m)
{
    ap_error err;
    ap_registry_options opt;
    m->ops = ap__predictor_for_file(path);
    m->impl = NULL;
    if (raw && !m->ops->predict_raw) {
        fprintf(stderr, "alphapulse predict: --raw is not available for %s models\n",
                m->ops->title);
        return 2;
    }
    ap_registry_options_default(&opt);
    /* the ONNX setting is read (and checked) only for a format that uses it */
    if ((m->ops->uses_onnx_options &&
         ap_onnx_options_parse(&opt.onnx, getenv("ONNX_ENABLED"), getenv("ONNXRUNTIME_LIB"),
                               &err) != AP_OK) ||
        m->ops->load(path, &opt, &m->impl, &err) != AP_OK) {
        fprintf(stderr, "alphapulse predict: %s\n", err.msg);
        return 1;
    }
    m->ops->describe(m->impl, &m->desc);
    return 0;
}

/* --device (after precision, before any predict). 0, or the exit status. */
static int place(model *m, ap_device d)
{
    ap_error err = {0};
    if (!m->ops->set_device) {
        fprintf(stderr, "alphapulse predict: --device %s is not available for %s models\n",
                ap_device_name(d), m->ops->title);
        return 2;
    }
    if (m->ops->set_device(m->impl, d, 0, &err) != AP_OK) {
        const char *msg = err.msg;
        if (!strncmp(msg, "device gpu: ", 12))
            msg += 12;
        fprintf(stderr, "alphapulse predict: --device %s: %s\n", ap_device_name(d), msg);
        return 2;
    }
    if (d == AP_DEVICE_AUTO) {
        size_t rows;
        const char *note;
        ap_device got = m->ops->device(m->impl, &rows, &note);
        fprintf(stderr, "alphapulse predict: device %s (%s)\n", ap_device_name(got), note);
    }
    return 0;
}

/* Reduced precision (before any predict). An ONNX graph's dense layers
   are checked on the rows to predict themselves (the first chunk of the
   input; a zero row when it is empty): a zero row alone would test only the
   biases. 0, or the exit status. */
static int reduce(model *m, double tolerance, const char *input)
{
    ap_error err = {0};
    double dev = 0.0;
    if (!m->ops->set_precision) {
        fprintf(stderr, "alphapulse predict: --precision reduced is not available for %s models\n",
                m->ops->title);
        return 2;
    }
    const int nf = m->desc.num_features > 0 ? m->desc.num_features : 1;
    ap_csv_rows rows;
    size_t n = 0;
    if (ap__csv_rows_open(&rows, input, nf, CHUNK, &err) != AP_OK) {
        fprintf(stderr, "alphapulse predict: %s\n", err.msg);
        return 1;
    }
    if (map_columns(m, &rows.csv, rows.col_of, input) != 0) {
        ap__csv_rows_close(&rows);
        return 1;
    }
    int rc = ap__csv_rows_next(&rows, &n, &err);
    double *zero = rc == AP_OK && n == 0 ? calloc((size_t)nf, sizeof *zero) : NULL;
    if (rc == AP_OK && n == 0 && !zero)
        rc = ap__error_set(&err, AP_ENOMEM, "out of memory");
    if (rc == AP_OK)
        rc = m->ops->set_precision(m->impl, AP_PRECISION_REDUCED, tolerance, zero ? zero : rows.X,
                                   zero ? 1 : n, &dev, &err);
    free(zero);
    ap__csv_rows_close(&rows);
    if (rc == AP_OK && m->ops->precision && m->ops->precision(m->impl) != AP_PRECISION_REDUCED)
        rc = ap__error_set(&err, AP_EUNSUPPORTED, "the engine stayed at full precision");
    if (rc != AP_OK) {
        fprintf(stderr, "alphapulse predict: --precision reduced: %s\n", err.msg);
        return 1;
    }
    return 0;
}

/* Rows of input through the model into output (NULL: stdout); 0 or 1. */
static int predict_rows(const model *m, int raw, const char *input, const char *output)
{
    ap_error err;
    const int nf = m->desc.num_features;
    const int nout = raw ? m->desc.num_raw_outputs : m->desc.num_outputs;
    int (*predict)(const void *, const double *, size_t, double *, ap_error *) =
        raw ? m->ops->predict_raw : m->ops->predict;
    int rc = 1;
    double *Y = malloc((size_t)CHUNK * (size_t)nout * sizeof *Y);
    FILE *out = NULL;
    ap_csv_rows rows;
    int rows_open = 0;
    if (!Y) {
        fprintf(stderr, "alphapulse predict: out of memory\n");
        goto done;
    }
    if (ap__csv_rows_open(&rows, input, nf, CHUNK, &err) != AP_OK) {
        fprintf(stderr, "alphapulse predict: %s\n", err.msg);
        goto done;
    }
    rows_open = 1;
    if (map_columns(m, &rows.csv, rows.col_of, input) != 0)
        goto done;
    out = output ? fopen(output, "w") : stdout;
    if (!out) {
        fprintf(stderr, "alphapulse predict: %s: cannot open for writing\n", output);
        goto done;
    }
    write_header(out, nout);
    int tty = isatty(2) && output != NULL;
    size_t n, total = 0;
    for (;;) {
        if (ap__csv_rows_next(&rows, &n, &err) != AP_OK ||
            (n > 0 && predict(m->impl, rows.X, n, Y, &err) != AP_OK)) {
            fprintf(stderr, "alphapulse predict: %s\n", err.msg);
            goto done;
        }
        if (n == 0)
            break;
        write_rows(out, Y, n, nout, m->desc.float32);
        total += n;
        if (tty && total % (CHUNK * 64) == 0)
            fprintf(stderr, "\rpredicted %zu rows", total);
    }
    if (tty)
        fprintf(stderr, "\rpredicted %zu rows\n", total);
    if (fflush(out) != 0 || ferror(out)) {
        fprintf(stderr, "alphapulse predict: write error\n");
        goto done;
    }
    rc = 0;
done:
    if (out && out != stdout)
        fclose(out);
    if (rows_open)
        ap__csv_rows_close(&rows);
    free(Y);
    return rc;
}

int ap_cmd_predict(int argc, char **argv)
{
    const char *model_path = NULL, *input = NULL, *output = NULL;
    int raw = 0;
    ap_precision precision = AP_PRECISION_FULL;
    ap_device device = AP_DEVICE_CPU;
    double tolerance = 1e-3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--device") && i + 1 < argc) {
            ap_error err;
            const char *d = argv[++i];
            if (ap_device_parse(d, &device, &err) != AP_OK) {
                fprintf(stderr, "alphapulse predict: --device '%s': expected cpu, gpu or auto\n", d);
                return 2;
            }
        } else if (!strcmp(argv[i], "--precision") && i + 1 < argc) {
            ap_error err;
            const char *p = argv[++i];
            if (ap_precision_parse(p, &precision, &err) != AP_OK ||
                precision == AP_PRECISION_AUTO) {
                fprintf(stderr, "alphapulse predict: --precision '%s': expected full or reduced\n",
                        p);
                return 2;
            }
        } else if (!strcmp(argv[i], "--precision-tolerance") && i + 1 < argc) {
            char *end;
            const char *t = argv[++i];
            tolerance = strtod(t, &end);
            if (end == t || *end || !isfinite(tolerance) || !(tolerance > 0)) {
                fprintf(stderr, "alphapulse predict: --precision-tolerance '%s': expected a "
                        "finite number > 0\n", t);
                return 2;
            }
        } else if (!strcmp(argv[i], "--model") && i + 1 < argc)
            model_path = argv[++i];
        else if (!strcmp(argv[i], "--input") && i + 1 < argc)
            input = argv[++i];
        else if (!strcmp(argv[i], "--output") && i + 1 < argc)
            output = argv[++i];
        else if (!strcmp(argv[i], "--raw"))
            raw = 1;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            predict_usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "alphapulse predict: unknown or incomplete option '%s'\n", argv[i]);
            predict_usage(stderr);
            return 2;
        }
    }
    if (!model_path || !input) {
        predict_usage(stderr);
        return 2;
    }
    model m;
    int rc = load_model(model_path, raw, &m);
    if (rc == 0 && precision == AP_PRECISION_REDUCED)
        rc = reduce(&m, tolerance, input);
    if (rc == 0 && device != AP_DEVICE_CPU)
        rc = place(&m, device);
    if (rc == 0)
        rc = predict_rows(&m, raw, input, output);
    if (m.impl)
        m.ops->free(m.impl);
    return rc;
}
