/* alphapulse convert --to onnx MODEL [-o OUT.onnx] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "alphapulse.h"
#include "alphapulse/onnx.h"
#include "cli/commands.h"

static void convert_usage(FILE *fp)
{
    fprintf(fp,
            "usage: alphapulse convert --to onnx MODEL [-o OUT.onnx]\n"
            "\n"
            "  MODEL           XGBoost JSON/UBJSON or LightGBM text model\n"
            "  --to onnx       the only target format: an ONNX-ML tree-ensemble graph\n"
            "                  that ONNX Runtime predicts as the library does\n"
            "  -o, --output    where to write (default: MODEL with its extension\n"
            "                  replaced by .onnx; never the model file itself)\n"
            "\n"
            "Categorical splits, linear trees and multi:softmax are refused\n"
            "(docs/ONNX.md, \"Export\").\n");
}

/* MODEL with the extension of its last path component replaced by .onnx */
static char *default_output(const char *model)
{
    size_t n = strlen(model);
    const char *base = strrchr(model, '/');
    base = base ? base + 1 : model;
    const char *dot = strrchr(base, '.');
    size_t keep = dot && dot != base ? (size_t)(dot - model) : n;
    char *out = malloc(keep + 6);
    if (out) {
        memcpy(out, model, keep);
        memcpy(out + keep, ".onnx", 6);
    }
    return out;
}

/* 1 if both paths name the same existing file */
static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

int ap_cmd_convert(int argc, char **argv)
{
    const char *to = NULL, *model = NULL, *output = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            convert_usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--to") && i + 1 < argc) {
            to = argv[++i];
        } else if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) && i + 1 < argc) {
            output = argv[++i];
        } else if (argv[i][0] != '-' && !model) {
            model = argv[i];
        } else {
            fprintf(stderr, "alphapulse convert: unknown or incomplete option '%s'\n", argv[i]);
            convert_usage(stderr);
            return 2;
        }
    }
    if (!to || !model) {
        convert_usage(stderr);
        return 2;
    }
    if (strcmp(to, "onnx")) {
        fprintf(stderr, "alphapulse convert: unknown target format '%s' (only 'onnx')\n", to);
        return 2;
    }
    char *def = output ? NULL : default_output(model);
    if (!output && !def) {
        fprintf(stderr, "alphapulse convert: out of memory\n");
        return 1;
    }
    const char *out = output ? output : def;
    int rc = 1;
    ap_forest *f = NULL;
    ap_error err;
    if (!strcmp(out, model) || same_file(out, model)) {
        fprintf(stderr, "alphapulse convert: %s: refusing to overwrite the input model (use -o)\n",
                out);
    } else if (ap_forest_load(model, AP_FORMAT_AUTO, &f, &err) != AP_OK) {
        fprintf(stderr, "alphapulse convert: %s\n", err.msg);
    } else if (ap_onnx_export_forest(f, out, &err) != AP_OK) {
        fprintf(stderr, "alphapulse convert: %s: %s\n", model, err.msg);
    } else {
        printf("wrote %s (%s %s, %d trees, %d features, %d outputs)\n", out, ap_forest_source(f),
               ap_forest_objective(f), ap_forest_num_trees(f), ap_forest_num_features(f),
               ap_forest_num_outputs(f, 0));
        rc = 0;
    }
    ap_forest_free(f);
    free(def);
    return rc;
}
