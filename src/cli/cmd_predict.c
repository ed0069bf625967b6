/* alphapulse predict --model FILE --input X.csv [--output Y.csv] [--raw] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alphapulse.h"
#include "alphapulse/onnx.h"
#include "cli/commands.h"
#include "common/csv.h"

#define CHUNK 1024

static void predict_usage(FILE *fp)
{
    fprintf(fp,
            "usage: alphapulse predict --model FILE --input X.csv [--output Y.csv] [--raw]\n"
            "\n"
            "  --model FILE    XGBoost JSON/UBJSON, LightGBM text or ONNX (.onnx) model\n"
            "  --input X.csv   header of feature names, one row per prediction;\n"
            "                  an empty field, nan or NaN is a missing value\n"
            "  --output Y.csv  where to write predictions (default: stdout)\n"
            "  --raw           margins instead of transformed outputs\n"
            "\n"
            "Columns are matched to the model's features by name when the model\n"
            "carries names and the header has them all; otherwise by position.\n"
            "ONNX models: ONNX_ENABLED=0 (native only), 1 (default: native, else ONNX\n"
            "Runtime) or ort; ONNXRUNTIME_LIB=path of libonnxruntime.so.1 (docs/ONNX.md).\n");
}

/* A tree model file or an ONNX graph: what predict needs of either. */
typedef struct model {
    ap_forest *forest;
    ap_onnx *onnx;
} model;

static int model_nf(const model *m)
{
    return m->forest ? ap_forest_num_features(m->forest) : ap_onnx_num_features(m->onnx);
}

static const char *model_feature(const model *m, int i)
{
    return m->forest ? ap_forest_feature_name(m->forest, i) : NULL;
}

static int is_onnx_file(const char *path)
{
    size_t n = strlen(path);
    if (n >= 5 && !strcmp(path + n - 5, ".onnx"))
        return 1;
    unsigned char head[2];
    FILE *fp = fopen(path, "rb");
    size_t got = fp ? fread(head, 1, sizeof head, fp) : 0;
    if (fp)
        fclose(fp);
    return ap_onnx_sniff(head, got);
}

/* Map CSV columns to model features: col_of[f] = CSV column of feature f. */
static int map_columns(const model *f, const ap_csv *csv, int *col_of, const char *input)
{
    int nf = model_nf(f);
    int by_name = model_feature(f, 0) != NULL;
    for (int i = 0; by_name && i < nf; i++) {
        const char *want = model_feature(f, i);
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

int ap_cmd_predict(int argc, char **argv)
{
    const char *model_path = NULL, *input = NULL, *output = NULL;
    unsigned flags = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc)
            model_path = argv[++i];
        else if (!strcmp(argv[i], "--input") && i + 1 < argc)
            input = argv[++i];
        else if (!strcmp(argv[i], "--output") && i + 1 < argc)
            output = argv[++i];
        else if (!strcmp(argv[i], "--raw"))
            flags |= AP_PREDICT_RAW;
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

    ap_error err;
    model mdl = {NULL, NULL}, *f = &mdl;
    if (is_onnx_file(model_path)) {
        ap_onnx_options opt;
        if (flags & AP_PREDICT_RAW) {
            fprintf(stderr, "alphapulse predict: --raw is not available for ONNX models\n");
            return 2;
        }
        if (ap_onnx_options_parse(&opt, getenv("ONNX_ENABLED"), getenv("ONNXRUNTIME_LIB"), &err) !=
                AP_OK ||
            ap_onnx_load(model_path, &opt, &mdl.onnx, &err) != AP_OK) {
            fprintf(stderr, "alphapulse predict: %s\n", err.msg);
            return 1;
        }
    } else if (ap_forest_load(model_path, AP_FORMAT_AUTO, &mdl.forest, &err) != AP_OK) {
        fprintf(stderr, "alphapulse predict: %s\n", err.msg);
        return 1;
    }
    int rc = 1;
    int nf = model_nf(f);
    int nout = mdl.forest ? ap_forest_num_outputs(mdl.forest, flags) : ap_onnx_num_outputs(mdl.onnx);
    int f32 = mdl.forest ? ap_forest_is_float32(mdl.forest) : ap_onnx_is_float32(mdl.onnx);
    int *col_of = malloc((size_t)nf * sizeof *col_of);
    double *X = malloc((size_t)CHUNK * (size_t)nf * sizeof *X);
    double *Y = malloc((size_t)CHUNK * (size_t)nout * sizeof *Y);
    FILE *out = NULL;
    ap_csv csv;
    int csv_open = 0;
    if (!col_of || !X || !Y) {
        fprintf(stderr, "alphapulse predict: out of memory\n");
        goto done;
    }
    if (ap_csv_open(&csv, input, &err) != AP_OK) {
        fprintf(stderr, "alphapulse predict: %s\n", err.msg);
        goto done;
    }
    csv_open = 1;
    int got = ap_csv_next(&csv, &err);
    if (got < 0) {
        fprintf(stderr, "alphapulse predict: %s\n", err.msg);
        goto done;
    }
    if (got == 0) {
        fprintf(stderr, "alphapulse predict: %s: empty file (expected a header row)\n", input);
        goto done;
    }
    size_t ncols = csv.nfields;
    if (map_columns(f, &csv, col_of, input) != 0)
        goto done;

    out = output ? fopen(output, "w") : stdout;
    if (!out) {
        fprintf(stderr, "alphapulse predict: %s: cannot open for writing\n", output);
        goto done;
    }
    write_header(out, nout);
    int tty = isatty(2) && output != NULL;
    size_t n = 0, total = 0;
    for (;;) {
        got = ap_csv_next(&csv, &err);
        if (got < 0) {
            fprintf(stderr, "alphapulse predict: %s\n", err.msg);
            goto done;
        }
        if (got == 1) {
            if (csv.nfields != ncols) {
                fprintf(stderr, "alphapulse predict: %s:%ld: %zu fields, header has %zu\n", input,
                        csv.line, csv.nfields, ncols);
                goto done;
            }
            double *row = X + n * (size_t)nf;
            for (int i = 0; i < nf; i++) {
                if (ap_parse_double(csv.fields[col_of[i]], &row[i]) != AP_OK) {
                    fprintf(stderr, "alphapulse predict: %s:%ld: column %d: '%s' is not a number\n",
                            input, csv.line, col_of[i] + 1, csv.fields[col_of[i]]);
                    goto done;
                }
            }
            n++;
        }
        if (n == CHUNK || (got == 0 && n > 0)) {
            if (mdl.forest) {
                ap_forest_predict(mdl.forest, X, n, Y, flags);
            } else if (ap_onnx_predict(mdl.onnx, X, n, Y, &err) != AP_OK) {
                fprintf(stderr, "alphapulse predict: %s\n", err.msg);
                goto done;
            }
            write_rows(out, Y, n, nout, f32);
            total += n;
            n = 0;
            if (tty && total % (CHUNK * 64) == 0)
                fprintf(stderr, "\rpredicted %zu rows", total);
        }
        if (got == 0)
            break;
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
    if (csv_open)
        ap_csv_close(&csv);
    free(col_of);
    free(X);
    free(Y);
    ap_forest_free(mdl.forest);
    ap_onnx_free(mdl.onnx);
    return rc;
}
