/* build/alphapulse: one binary, one subcommand per front-door job. */
#include <stdio.h>
#include <string.h>

#include "alphapulse.h"
#include "cli/commands.h"

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} command;

static const command commands[] = {
    {"predict", ap_cmd_predict, "predict a CSV of feature rows with an XGBoost/LightGBM model"},
    {"features", ap_cmd_features, "compute the alphapulse-v1 features of a CSV of bars"},
    {"check-repo", ap_cmd_check_repo, "load and validate a model repository; predict with one model"},
    {"convert", ap_cmd_convert, "write an XGBoost/LightGBM model as an ONNX graph (--to onnx)"},
    {"serve", ap_cmd_serve, "serve a model repository over HTTP (JSON API, KServe v2, metrics)"},
    {"worker", ap_cmd_worker, "a scale-out node: bars from Redis Streams, signals back (SCALE_OUT.md)"},
    {"publish", ap_cmd_publish, "write CSV bars into the Redis partition streams of the workers"},
};

static void usage(FILE *fp)
{
    fprintf(fp, "usage: alphapulse <command> [options]   (alphapulse <command> --help)\n\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(fp, "  %-10s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("alphapulse %s\n", ap_version());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "alphapulse: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
