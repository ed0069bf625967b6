/*
 * alphapulse serve [--config FILE] [--SETTING VALUE ...]
 *   the HTTP server (docs/SERVER.md). Settings: defaults < config file <
 *   environment < command line. Runs until SIGTERM or SIGINT, then stops
 *   gracefully (exit 0).
 */
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "server/server.h"

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: alphapulse serve [--config FILE] [--SETTING VALUE | --SETTING=VALUE ...]\n"
            "\n"
            "  Serves a model repository over HTTP: the AlphaPulse API (/v1), KServe v2\n"
            "  (/v2) and Prometheus metrics (/metrics); see docs/SERVER.md.\n"
            "  Precedence: defaults < config file (--config, or AP_CONFIG) < environment <\n"
            "  command line. Config file lines: key = value (# comments).\n"
            "\n"
            "  %-24s %-18s %-30s %s\n", "setting (--option)", "default", "environment", "");
    for (int i = 0; i < ap__server_config_count(); i++) {
        ap_config_setting_info in;
        ap__server_config_info(i, &in);
        char env[64];
        snprintf(env, sizeof env, "%s%s%s", in.env, in.env_alt ? ", " : "",
                 in.env_alt ? in.env_alt : "");
        fprintf(fp, "  %-24s %-18s %-30s %s\n", in.key, in.def[0] ? in.def : "(none)", env,
                in.help);
    }
    fprintf(fp, "\n  Options may be written with '-' or '_': --http-threads 2, --port=0.\n");
}

static void log_line(void *ctx, const char *msg)
{
    (void)ctx;
    fprintf(stderr, "alphapulse serve: %s\n", msg);
}

static const char *env_get(const char *name)
{
    return getenv(name);
}

/* Settings from every source into cfg (defaults < file < environment <
   command line); aliases maps a worker's short options (--name) to keys.
   0: go on; 1: --help was printed; 2: an error was printed. */
int ap_cli_server_config(int argc, char **argv, const char *cmd, const char *const *aliases,
                         void (*help)(FILE *), ap_server_config *cfg)
{
    const char *config = getenv("AP_CONFIG");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            help(stdout);
            return 1;
        }
        if (!strcmp(argv[i], "--config") && i + 1 < argc)
            config = argv[++i];
        else if (!strncmp(argv[i], "--config=", 9))
            config = argv[i] + 9;
    }
    ap_error err;
    if (config && ap__server_config_load_file(cfg, config, &err) != AP_OK) {
        fprintf(stderr, "alphapulse %s: %s\n", cmd, err.msg);
        return 2;
    }
    if (ap__server_config_load_env(cfg, env_get, &err) != AP_OK) {
        fprintf(stderr, "alphapulse %s: %s\n", cmd, err.msg);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--config")) {
            i++;
            continue;
        }
        if (!strncmp(a, "--config=", 9))
            continue;
        if (strncmp(a, "--", 2) || !a[2]) {
            fprintf(stderr, "alphapulse %s: unexpected argument '%s'\n", cmd, a);
            help(stderr);
            return 2;
        }
        char key[64], where[96];
        const char *eq = strchr(a, '='), *val;
        size_t kl = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (kl >= sizeof key) {
            fprintf(stderr, "alphapulse %s: unknown option '%s'\n", cmd, a);
            return 2;
        }
        memcpy(key, a + 2, kl);
        key[kl] = 0;
        if (eq)
            val = eq + 1;
        else if (i + 1 < argc)
            val = argv[++i];
        else {
            fprintf(stderr, "alphapulse %s: option '%s' needs a value\n", cmd, a);
            return 2;
        }
        snprintf(where, sizeof where, "option --%s", key);
        for (int k = 0; aliases && aliases[k]; k += 2)
            if (!strcmp(key, aliases[k]))
                snprintf(key, sizeof key, "%s", aliases[k + 1]);
        if (ap__server_config_set(cfg, key, val, where, &err) != AP_OK) {
            fprintf(stderr, "alphapulse %s: %s\n", cmd, err.msg);
            return 2;
        }
    }
    return 0;
}

int ap_cmd_serve(int argc, char **argv)
{
    ap_server_config cfg;
    ap_error err;
    ap__server_config_default(&cfg);
    int prc = ap_cli_server_config(argc, argv, "serve", NULL, usage, &cfg);
    if (prc)
        return prc == 1 ? 0 : 2;
    if (cfg.redis[0]) {
        fprintf(stderr, "alphapulse serve: redis is a setting of `alphapulse worker` "
                        "(docs/SCALE_OUT.md); serve reads no Redis stream\n");
        return 2;
    }

    /* Signals are taken by this thread with sigwait: block them before any
       thread exists so every server thread inherits the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP); /* reload auth_tokens_file */
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* Requests like /v1/predict/batch allocate megabytes (rows, the batcher's
       copy, the answer) and free them when answered; by default glibc hands
       that memory back to the kernel at once (mmap over 128 KB, trimming an
       arena's top) and the next request page-faults all of it in again,
       which cost more than the batch itself (docs/BENCHMARKS.md, fan-out).
       The process keeps up to 64 MB free per arena instead. */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);

    ap_server *srv;
    if (ap__server_create(&cfg, log_line, NULL, &srv, &err) != AP_OK) {
        fprintf(stderr, "alphapulse serve: %s\n", err.msg);
        return 1;
    }
    fprintf(stderr, "alphapulse serve: %d model(s) from %s; listening on %s://%s:%d%s\n",
            ap__server_models_loaded(srv), cfg.repository, cfg.tls_cert_file[0] ? "https" : "http",
            strchr(cfg.host, ':') ? "[::1]" : cfg.host, ap__server_port(srv),
            cfg.auth_tokens_file[0] ? " (tokens required)" : "");
    fflush(stderr);
    int sig = 0;
    while (sigwait(&set, &sig) == 0 && sig == SIGHUP) {
        ap_error herr;
        if (ap__server_reload_auth(srv, &herr) != AP_OK && !cfg.auth_tokens_file[0])
            fprintf(stderr, "alphapulse serve: SIGHUP: %s\n", herr.msg);
    }
    fprintf(stderr, "alphapulse serve: %s: shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    ap__server_shutdown(srv);
    ap__server_free(srv);
    fprintf(stderr, "alphapulse serve: stopped\n");
    return 0;
}
