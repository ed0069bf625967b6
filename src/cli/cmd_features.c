/* alphapulse features --input BARS.csv [--output F.csv]: the streaming engine over a CSV. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alphapulse.h"
#include "cli/commands.h"
#include "series/bars_csv.h"
#include "common/clock.h"

static void features_usage(FILE *fp)
{
    fprintf(fp,
            "usage: alphapulse features --input BARS.csv [--output F.csv]\n"
            "\n"
            "  --input BARS.csv  header timestamp,open,high,low,close,volume ('-' = stdin);\n"
            "                    timestamps strictly increasing (a repeated timestamp\n"
            "                    replaces the previous bar, as a still-forming bar would);\n"
            "                    epoch seconds (below 1e11), epoch milliseconds (from 1e11),\n"
            "                    or ISO-8601 UTC: 2004-08-19, 2004-08-19T13:45:00Z,\n"
            "                    2004-08-19 13:45:00.250, ...+00:00\n"
            "  --output F.csv    where to write (default: stdout): timestamp (as written in\n"
            "                    the input) and the %d alphapulse-v1 features, one row per\n"
            "                    input row, %%.17g, nan for undefined values\n"
            "\n"
            "A bad row stops the run with its line number and reason (exit status 1).\n",
            ap_feature_count());
}

static double now_s(void) { return (double)ap__clock_ns() / 1e9; }

static void write_row(FILE *out, const char *ts, const double *v)
{
    fputs(ts, out);
    for (int i = 0; i < AP_FEATURE_COUNT; i++) {
        if (isnan(v[i]))
            fputs(",nan", out);
        else
            fprintf(out, ",%.17g", v[i]);
    }
    fputc('\n', out);
}

int ap_cmd_features(int argc, char **argv)
{
    const char *input = NULL, *output = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            features_usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--input") && i + 1 < argc) {
            input = argv[++i];
        } else if (!strcmp(argv[i], "--output") && i + 1 < argc) {
            output = argv[++i];
        } else {
            fprintf(stderr, "alphapulse features: unknown or incomplete option '%s'\n", argv[i]);
            features_usage(stderr);
            return 2;
        }
    }
    if (!input) {
        fprintf(stderr, "alphapulse features: --input is required\n");
        features_usage(stderr);
        return 2;
    }

    ap_error err = {0};
    ap_bars_csv rd;
    if (ap__bars_csv_open(&rd, input, &err)) {
        fprintf(stderr, "alphapulse features: %s\n", err.msg);
        return 1;
    }
    ap_features *eng = NULL;
    if (ap_features_new(&eng, &err)) {
        fprintf(stderr, "alphapulse features: %s\n", err.msg);
        ap__bars_csv_close(&rd);
        return 1;
    }
    FILE *out = stdout;
    if (output && !(out = fopen(output, "w"))) {
        fprintf(stderr, "alphapulse features: %s: cannot create: %s\n", output, strerror(errno));
        ap_features_free(eng);
        ap__bars_csv_close(&rd);
        return 1;
    }

    fputs("timestamp", out);
    for (int i = 0; i < AP_FEATURE_COUNT; i++)
        fprintf(out, ",%s", ap_feature_name(i));
    fputc('\n', out);

    /* progress only for a person watching a long run */
    int progress = isatty(STDERR_FILENO);
    double t0 = now_s(), last_report = t0;
    long rows = 0;
    int rc = 0;
    double v[AP_FEATURE_COUNT];
    ap_bar bar;
    int r;
    while ((r = ap__bars_csv_next(&rd, &bar, &err)) == 1) {
        if (ap_features_push(eng, &bar, v, &err)) {
            fprintf(stderr, "alphapulse features: %s:%ld: %s\n", input, rd.csv.line, err.msg);
            rc = 1;
            break;
        }
        write_row(out, rd.ts_field, v);
        rows++;
        if (progress && (rows & 0xffff) == 0) {
            double t = now_s();
            if (t - last_report >= 1.0) {
                fprintf(stderr, "\ralphapulse features: %ld bars, %.1f s", rows, t - t0);
                last_report = t;
            }
        }
    }
    if (r < 0) {
        fprintf(stderr, "alphapulse features: %s\n", err.msg);
        rc = 1;
    }
    if (progress && last_report > t0)
        fprintf(stderr, "\ralphapulse features: %ld bars, %.1f s\n", rows, now_s() - t0);
    if (fflush(out) || ferror(out)) {
        fprintf(stderr, "alphapulse features: %s: write error\n", output ? output : "stdout");
        rc = 1;
    }
    if (out != stdout)
        fclose(out);
    ap_features_free(eng);
    ap__bars_csv_close(&rd);
    return rc;
}
