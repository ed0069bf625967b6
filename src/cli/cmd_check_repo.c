/*
 * alphapulse check-repo DIR
 *   loads and validates every model of a repository, prints what loaded and
 *   why anything did not; exit 1 if any model was refused.
 * alphapulse check-repo DIR --model NAME --input X.csv [--raw] [--output Y.csv]
 *   then predicts the rows of X.csv with that model through its pipeline:
 *   prediction,confidence,output_0.. per row (%.17g). Without --raw the header
 *   must name every alphapulse-v1 feature (as `alphapulse features` writes);
 *   with --raw the rows are the model's inputs (names matched when it has them).
 *   --transform writes the pipeline's output rows instead of predictions.
 * Precision: each manifest's (docs/MODEL_REPOSITORY.md); "auto" means reduced
 * with --mixed-precision or MIXED_PRECISION_ENABLED (AP_MIXED_PRECISION_ENABLED
 * winning), read as `alphapulse serve` reads it.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alphapulse.h"
#include "cli/commands.h"
#include "common/csv.h"
#include "server/config.h"

#define CHUNK 256

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: alphapulse check-repo DIR [--mixed-precision] [--model NAME --input X.csv "
            "[--raw] [--transform] [--output Y.csv]]\n"
            "\n"
            "  Loads every model of the repository DIR (docs/MODEL_REPOSITORY.md) and prints\n"
            "  what loaded and why anything did not. Exit status 1 if any model was refused.\n"
            "  Each model's line ends with its precision (precision=full|reduced, what the\n"
            "  manifest requested, node and model bytes, and why it stayed full if it did).\n"
            "\n"
            "  --mixed-precision  manifest precision \"auto\" means reduced (as serve's\n"
            "                  mixed_precision_enabled; also MIXED_PRECISION_ENABLED=true)\n"
            "  --model NAME    then predict with that model (through its pipeline)\n"
            "  --input X.csv   rows: every alphapulse-v1 feature by name (as written by\n"
            "                  `alphapulse features`), or with --raw the model's inputs\n"
            "  --raw           rows are the model's own inputs (an ensemble's: member\n"
            "                  predictions)\n"
            "  --output Y.csv  prediction,confidence,output_0.. per row (default: stdout)\n"
            "  --transform     write what the predictor sees instead: the rows after\n"
            "                  feature selection and the pipeline (t_0,t_1,..)\n");
}

typedef struct tally {
    FILE *fp; /* where the report goes */
    int ok, failed;
} tally;

static void report(void *ctx, const char *name, const ap_model *m, const ap_error *err)
{
    tally *t = ctx;
    if (!m) {
        t->failed++;
        fprintf(t->fp, "FAIL %-14s %s\n", name, err->msg);
        return;
    }
    t->ok++;
    ap_model_info in;
    ap_model_describe(m, &in);
    fprintf(t->fp, "OK   %-14s kind=%s target=%s format=%s version=%u file=%s inputs=%d outputs=%d "
           "trees=%d pipeline=[%s] steps=%d confidence=%s batch=%d/%uus",
           in.name, in.kind_name, in.target, in.format, in.version, in.file[0] ? in.file : "-",
           in.num_inputs, in.num_outputs, in.num_trees, in.pipeline, in.pipeline_steps,
           in.confidence, in.max_batch_size, in.max_queue_delay_us);
    fprintf(t->fp, " precision=%s requested=%s node_bytes=%d bytes_full=%zu bytes_reduced=%zu",
            in.precision, in.precision_requested, in.node_bytes,
            in.model_bytes_full, in.model_bytes_reduced);
    if (in.precision_deviation != 0)
        fprintf(t->fp, " deviation=%.3g", in.precision_deviation);
    if (in.precision_note[0])
        fprintf(t->fp, " precision_note=\"%s\"", in.precision_note);
    fprintf(t->fp, " device=\"%s\"", in.device);
    fputc('\n', t->fp);
}

/* col_of[i] = CSV column of input i. */
static int map_columns(const ap_model *m, const ap_csv *csv, int raw, int *col_of, int n,
                       const char *input)
{
    for (int i = 0; i < n; i++) {
        const char *want = raw ? ap_model_input_name(m, i) : ap_feature_name(i);
        if (!want) { /* a raw model without names: by position */
            if ((int)csv->nfields != n) {
                fprintf(stderr, "alphapulse check-repo: %s: header has %zu columns, the model "
                        "takes %d\n", input, csv->nfields, n);
                return -1;
            }
            col_of[i] = i;
            continue;
        }
        col_of[i] = -1;
        for (size_t c = 0; c < csv->nfields; c++)
            if (!strcmp(csv->fields[c], want))
                col_of[i] = (int)c;
        if (col_of[i] < 0) {
            fprintf(stderr, "alphapulse check-repo: %s: no column '%s' in the header\n", input,
                    want);
            return -1;
        }
    }
    return 0;
}

static void put(FILE *out, double v, int first)
{
    if (!first)
        fputc(',', out);
    if (isnan(v))
        fputs("nan", out);
    else
        fprintf(out, "%.17g", v);
}

static int predict_csv(ap_registry *reg, const char *name, const char *input,
                       const char *output, int raw, int transform)
{
    ap_error err;
    ap_model *m;
    if (ap_registry_acquire(reg, name, &m, &err) != AP_OK) {
        fprintf(stderr, "alphapulse check-repo: %s\n", err.msg);
        return 1;
    }
    ap_model_info in;
    ap_model_describe(m, &in);
    int width = raw ? in.num_inputs : ap_feature_count(), rc = 1;
    int nout = transform ? ap_model_transform_width(m) : in.num_outputs;
    double *Y = malloc((size_t)CHUNK * (size_t)(nout > 0 ? nout : 1) * sizeof *Y);
    double pred[CHUNK], conf[CHUNK];
    FILE *out = NULL;
    ap_csv_rows rows;
    int rows_open = 0;
    if (!Y) {
        fprintf(stderr, "alphapulse check-repo: out of memory\n");
        goto done;
    }
    if (ap__csv_rows_open(&rows, input, width, CHUNK, &err) != AP_OK) {
        fprintf(stderr, "alphapulse check-repo: %s\n", err.msg);
        goto done;
    }
    rows_open = 1;
    if (map_columns(m, &rows.csv, raw, rows.col_of, width, input) != 0)
        goto done;
    out = output ? fopen(output, "w") : stdout;
    if (!out) {
        fprintf(stderr, "alphapulse check-repo: %s: cannot open for writing\n", output);
        goto done;
    }
    if (transform)
        for (int k = 0; k < nout; k++)
            fprintf(out, "%st_%d", k ? "," : "", k);
    else
        fputs("prediction,confidence", out);
    for (int k = 0; !transform && k < nout; k++)
        fprintf(out, ",output_%d", k);
    fputc('\n', out);
    size_t n;
    for (;;) {
        if (ap__csv_rows_next(&rows, &n, &err) != AP_OK) {
            fprintf(stderr, "alphapulse check-repo: %s\n", err.msg);
            goto done;
        }
        if (n == 0)
            break;
        const double *X = rows.X;
        int prc = transform ? ap_model_transform(m, X, n, !raw, Y, &err)
                  : raw     ? ap_model_predict_raw(m, X, n, pred, conf, Y, &err)
                            : ap_model_predict(m, X, n, pred, conf, Y, &err);
        if (prc != AP_OK) {
            fprintf(stderr, "alphapulse check-repo: %s\n", err.msg);
            goto done;
        }
        for (size_t r = 0; r < n; r++) {
            if (!transform) {
                put(out, pred[r], 1);
                put(out, conf[r], 0);
            }
            for (int k = 0; k < nout; k++)
                put(out, Y[r * (size_t)nout + (size_t)k], transform && k == 0);
            fputc('\n', out);
        }
    }
    if (fflush(out) != 0 || ferror(out)) {
        fprintf(stderr, "alphapulse check-repo: write error\n");
        goto done;
    }
    rc = 0;
done:
    if (out && out != stdout)
        fclose(out);
    if (rows_open)
        ap__csv_rows_close(&rows);
    free(Y);
    ap_model_release(m);
    return rc;
}

/* MIXED_PRECISION_ENABLED as `alphapulse serve` reads it: AP_ name first,
   the same boolean words, a bad value named. */
static int mixed_from_env(int *mixed, ap_error *err)
{
    static const char *const names[] = {"AP_MIXED_PRECISION_ENABLED", "MIXED_PRECISION_ENABLED"};
    for (int i = 0; i < 2; i++) {
        const char *v = getenv(names[i]);
        if (!v)
            continue;
        ap_server_config cfg;
        char where[64];
        ap__server_config_default(&cfg);
        snprintf(where, sizeof where, "environment %s", names[i]);
        int rc = ap__server_config_set(&cfg, "mixed_precision_enabled", v, where, err);
        *mixed = cfg.mixed_precision_enabled;
        return rc;
    }
    return AP_OK;
}

int ap_cmd_check_repo(int argc, char **argv)
{
    const char *dir = NULL, *model = NULL, *input = NULL, *output = NULL;
    int raw = 0, transform = 0, mixed = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--mixed-precision"))
            mixed = 1;
        else if (!strcmp(argv[i], "--model") && i + 1 < argc)
            model = argv[++i];
        else if (!strcmp(argv[i], "--input") && i + 1 < argc)
            input = argv[++i];
        else if (!strcmp(argv[i], "--output") && i + 1 < argc)
            output = argv[++i];
        else if (!strcmp(argv[i], "--raw"))
            raw = 1;
        else if (!strcmp(argv[i], "--transform"))
            transform = 1;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] != '-' && !dir)
            dir = argv[i];
        else {
            fprintf(stderr, "alphapulse check-repo: unknown or incomplete option '%s'\n",
                    argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!dir || !model != !input) {
        usage(stderr);
        return 2;
    }
    ap_error err;
    ap_registry *reg;
    ap_registry_options opt;
    ap_registry_options_default(&opt);
    if (!mixed && mixed_from_env(&mixed, &err) != AP_OK) {
        fprintf(stderr, "alphapulse check-repo: %s\n", err.msg);
        return 2;
    }
    opt.mixed_precision = mixed;
    if (ap_onnx_options_parse(&opt.onnx, getenv("ONNX_ENABLED"), getenv("ONNXRUNTIME_LIB"),
                              &err) != AP_OK ||
        ap_registry_open(dir, &opt, &reg, &err) != AP_OK) {
        fprintf(stderr, "alphapulse check-repo: %s\n", err.msg);
        return 1;
    }
    /* with --model and no --output, stdout carries the predictions */
    tally t = {model && !output ? stderr : stdout, 0, 0};
    int failed = ap_registry_load_all(reg, report, &t, &err);
    int rc;
    if (failed < 0) {
        fprintf(stderr, "alphapulse check-repo: %s\n", err.msg);
        rc = 1;
    } else {
        fprintf(t.fp, "%d model(s): %d loaded, %d refused\n", t.ok + t.failed, t.ok, t.failed);
        rc = failed ? 1 : 0;
        if (model)
            rc = predict_csv(reg, model, input, output, raw, transform) || rc;
    }
    ap_registry_free(reg);
    return rc;
}
