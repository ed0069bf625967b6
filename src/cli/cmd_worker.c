/*
 * alphapulse worker --redis redis://HOST:PORT[/DB] --repository DIR [--name NODE]
 *                   [--partitions P] [--port N] [--SETTING VALUE ...]
 *   a scale-out node (docs/SCALE_OUT.md): serve's settings and machinery,
 *   fed from the Redis partition streams it leases; HTTP only with a port
 *   (--port, AP_PORT or the config file). Runs until SIGTERM or SIGINT, then
 *   finishes its batch, gives its leases back and stops (exit 0).
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "scale/scale.h"

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: alphapulse worker --redis redis://HOST:PORT[/DB] [--repository DIR]\n"
            "                         [--name NODE] [--partitions P] [--port N] [--SETTING V ...]\n"
            "\n"
            "  A node of the Redis Streams scale-out (docs/SCALE_OUT.md): consumes bars from\n"
            "  the partitions ap:bars:{p} it leases, keeps series and features as serve does,\n"
            "  predicts every model on every closed bar and publishes to ap:signals.\n"
            "  Settings are serve's (alphapulse serve --help); the worker's own: redis,\n"
            "  node_name (--name), partitions, lease_ms, maxlen, dedup_ttl_ms, redis_batch.\n"
            "  The HTTP API is served only when a port is given.\n");
}

static void log_line(void *ctx, const char *msg)
{
    (void)ctx;
    fprintf(stderr, "alphapulse worker: %s\n", msg);
}

int ap_cmd_worker(int argc, char **argv)
{
    static const char *const aliases[] = {"name", "node_name", NULL};
    ap_server_config cfg;
    ap__server_config_default(&cfg);
    cfg.port = -1; /* no setting gives -1: a port from any source turns HTTP on */
    int prc = ap_cli_server_config(argc, argv, "worker", aliases, usage, &cfg);
    if (prc)
        return prc == 1 ? 0 : 2;
    int http = cfg.port >= 0;
    if (!http)
        cfg.port = 0;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    ap_worker *w;
    ap_error err;
    if (ap__worker_create(&cfg, http, log_line, NULL, &w, &err) != AP_OK) {
        fprintf(stderr, "alphapulse worker: %s\n", err.msg);
        return 1;
    }
    fprintf(stderr, "alphapulse worker: node %s, %d model(s) from %s, %d partitions on %s",
            ap__worker_node(w), ap__worker_models(w), cfg.repository, cfg.partitions, cfg.redis);
    if (http)
        fprintf(stderr, "; listening on http://%s:%d", cfg.host, ap__worker_port(w));
    fprintf(stderr, "\n");
    fflush(stderr);
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "alphapulse worker: %s: stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    ap__worker_free(w);
    fprintf(stderr, "alphapulse worker: stopped\n");
    return 0;
}
