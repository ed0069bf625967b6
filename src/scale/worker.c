/*
 * The worker's life cycle (scale.h) and its lines on /metrics. The server
 * is `serve`'s own (ap__srv_create): the worker only adds the hub's sink,
 * its metrics, and the two threads that talk to Redis.
 */
#include "scale/scale_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"

static void server_log(void *ctx, const char *msg)
{
    ap_worker *w = ctx;
    ap__worker_log(w, "%s", msg);
}

static void metrics(void *ctx, jbuf *b)
{
    ap_worker *w = ctx;
    const struct {
        const char *name, *help;
        _Atomic uint64_t *v;
    } k[] = {
        {"alphapulse_redis_entries_total", "bar entries read from the partition streams",
         &w->n.consumed},
        {"alphapulse_redis_dead_lettered_total", "bar entries refused into ap:bars:dead",
         &w->n.dead},
        {"alphapulse_redis_acked_total", "bar entries XACKed (their signals published)",
         &w->n.acked},
        {"alphapulse_redis_signals_total", "signals published to ap:signals", &w->n.signals},
        {"alphapulse_redis_duplicates_suppressed_total",
         "signals not published again: their (series, bar, model) key was there", &w->n.duplicates},
        {"alphapulse_redis_claimed_total", "pending entries taken over with XAUTOCLAIM",
         &w->n.claimed},
        {"alphapulse_redis_replayed_total", "entries read again to rebuild a partition",
         &w->n.replayed},
        {"alphapulse_redis_reconnects_total", "connections to Redis made again after a loss",
         &w->n.reconnects},
        {"alphapulse_redis_takeovers_total", "partitions made live on this node", &w->n.takeovers},
        {"alphapulse_redis_releases_total", "partitions given up to balance", &w->n.releases},
        {"alphapulse_redis_leases_lost_total", "leases found taken or expired on renewal",
         &w->n.lost},
        {"alphapulse_redis_sink_errors_total", "failed publications (retried)", &w->n.sink_errors},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        ap__jb_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", k[i].name, k[i].help,
                      k[i].name, k[i].name, (unsigned long long)atomic_load(k[i].v));
    ap__jb_printf(b, "# HELP alphapulse_redis_takeover_seconds the last take-over: lease won "
                     "to partition live\n# TYPE alphapulse_redis_takeover_seconds gauge\n"
                     "alphapulse_redis_takeover_seconds %.6f\n",
                  (double)atomic_load(&w->last_takeover_us) / 1e6);
    pthread_mutex_lock(&w->mu);
    ap__jb_printf(b, "# HELP alphapulse_redis_live_nodes nodes with a heartbeat\n"
                     "# TYPE alphapulse_redis_live_nodes gauge\nalphapulse_redis_live_nodes %d\n",
                  w->live_nodes);
    ap__jb_puts(b, "# HELP alphapulse_redis_partition_lag entries of an owned partition not "
                   "yet delivered to the group\n# TYPE alphapulse_redis_partition_lag gauge\n");
    for (uint32_t p = 0; p < w->P; p++)
        if (w->parts[p].state == P_ACTIVE)
            ap__jb_printf(b, "alphapulse_redis_partition_lag{partition=\"%u\"} %lld\n", p,
                          (long long)w->parts[p].lag);
    ap__jb_puts(b, "# HELP alphapulse_redis_partition_pending entries of an owned partition "
                   "delivered, not yet acked\n# TYPE alphapulse_redis_partition_pending gauge\n");
    for (uint32_t p = 0; p < w->P; p++)
        if (w->parts[p].state == P_ACTIVE)
            ap__jb_printf(b, "alphapulse_redis_partition_pending{partition=\"%u\"} %lld\n", p,
                          (long long)w->parts[p].pending);
    pthread_mutex_unlock(&w->mu);
}

/* Every node and publisher must cut the symbols into the same P streams. */
static int check_partitions(ap_worker *w, ap_error *err)
{
    ap_rconn c;
    ap__rconn_init(&c, &w->url, NULL, NULL, 2.0);
    redisReply *r = NULL;
    int rc = AP_OK;
    if (!(c.c = redisConnectWithTimeout(w->url.host, w->url.port, (struct timeval){2, 0})) ||
        c.c->err) {
        rc = ap__error_set(err, AP_EIO, "redis: cannot connect to %s:%d: %s", w->url.host,
                          w->url.port, c.c ? c.c->errstr : "out of memory");
        goto out;
    }
    if (w->url.db && (r = ap__rconn_cmdf(&c, "SELECT %d", w->url.db)))
        freeReplyObject(r);
    r = ap__rconn_cmdf(&c, "SET " AP_SCALE_PARTITIONS " %u NX", w->P);
    if (r)
        freeReplyObject(r);
    r = ap__rconn_cmdf(&c, "GET " AP_SCALE_PARTITIONS);
    if (!r || r->type != REDIS_REPLY_STRING)
        rc = ap__error_set(err, AP_EIO, "redis: cannot read %s", AP_SCALE_PARTITIONS);
    else if (strtoul(r->str, NULL, 10) != w->P)
        rc = ap__error_set(err, AP_EINVAL, "partitions is %u here but %s says %s: every node "
                          "and publisher must use the same count", w->P, AP_SCALE_PARTITIONS,
                          r->str);
out:
    if (r)
        freeReplyObject(r);
    ap__rconn_close(&c);
    return rc;
}

int ap__worker_create(const ap_server_config *cfg, int http, ap_worker_log_fn log, void *ctx,
                      ap_worker **out, ap_error *err)
{
    if (!cfg->redis[0])
        return ap__error_set(err, AP_EINVAL, "worker: redis is required (--redis "
                            "redis://HOST:PORT[/DB])");
    ap_worker *w = calloc(1, sizeof *w);
    if (!w)
        return ap__error_set(err, AP_ENOMEM, "worker: out of memory");
    w->cfg = *cfg;
    w->log = log;
    w->log_ctx = ctx;
    w->P = (uint32_t)cfg->partitions;
    pthread_mutex_init(&w->mu, NULL);
    int rc = ap__redis_url_parse(cfg->redis, &w->url, err);
    if (rc)
        goto fail;
    if (cfg->node_name[0])
        snprintf(w->node, sizeof w->node, "%s", cfg->node_name);
    else {
        char host[40] = "node";
        gethostname(host, sizeof host - 1);
        host[sizeof host - 1] = 0;
        snprintf(w->node, sizeof w->node, "%s-%ld", host, (long)getpid());
    }
    w->parts = calloc(w->P, sizeof *w->parts);
    if (!w->parts) {
        rc = ap__error_set(err, AP_ENOMEM, "worker: out of memory");
        goto fail;
    }
    if ((rc = check_partitions(w, err)))
        goto fail;
    ap__rconn_init(&w->pub, &w->url, &w->stop, &w->n.reconnects, 5.0);
    ap_srv_hooks hooks = {ap__scale_sink, w, metrics, w};
    if ((rc = ap__srv_create(cfg, server_log, w, http, &hooks, &w->srv, err)))
        goto fail;
    if (pthread_create(&w->lease_th, NULL, ap__scale_lease_main, w) ||
        !(w->lease_started = 1) ||
        pthread_create(&w->cons_th, NULL, ap__scale_consume_main, w) || !(w->cons_started = 1)) {
        rc = ap__error_set(err, AP_EIO, "worker: cannot start its threads");
        goto fail;
    }
    *out = w;
    return AP_OK;
fail:
    ap__worker_free(w);
    return rc;
}

const char *ap__worker_node(const ap_worker *w) { return w->node; }
int ap__worker_port(const ap_worker *w) { return ap__server_port(w->srv); }
int ap__worker_models(ap_worker *w) { return ap__server_models_loaded(w->srv); }

void ap__worker_stop(ap_worker *w)
{
    atomic_store(&w->stop, 1);
    if (w->cons_started) /* its batch in hand is flushed and acked first */
        pthread_join(w->cons_th, NULL);
    w->cons_started = 0;
    if (w->lease_started) /* gives every lease back, leaves ap:nodes */
        pthread_join(w->lease_th, NULL);
    w->lease_started = 0;
    if (w->srv)
        ap__server_shutdown(w->srv);
}

void ap__worker_free(ap_worker *w)
{
    if (!w)
        return;
    ap__worker_stop(w);
    ap__server_free(w->srv);
    ap__rconn_close(&w->pub);
    free(w->parts);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
