/*
 * The hub's sink: a round's signals to ap:signals, each at most once.
 *
 * One EVAL per chunk of signals: for each, SET its key
 * ap:sig:{symbol}/{tf}/{bar_time_ms}/{model} NX PX dedup_ttl_ms and, only if
 * that set it, XADD the signal. A script runs whole or not at all, so a
 * signal is in the stream exactly when its key is (within the key's TTL): a
 * bar replayed after a take-over, or a chunk sent again after a lost
 * connection, finds the key and publishes nothing (counted as a duplicate).
 * Runs on the hub thread; a failure is retried (with the connection's
 * backoff) until it succeeds: the hub waits, ingestion waits behind it, and
 * no entry is acked meanwhile. Only stopping gives up (sink_gave_up: the
 * consumer then acks nothing more; the entries stay pending for the next
 * owner).
 */
#include "scale/scale_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 128
#define SIG_FIELDS 8

static const char script[] =
    "local n = 0\n"
    "for i = 2, #KEYS do\n"
    "  if redis.call('SET', KEYS[i], '1', 'NX', 'PX', ARGV[1]) then\n"
    "    local b = 2 + (i - 2) * 8\n"
    "    local f = {'symbol', ARGV[b + 1], 'timeframe', ARGV[b + 2], 'bar_time_ms', ARGV[b + 3],\n"
    "               'model', ARGV[b + 4], 'version', ARGV[b + 5], 'prediction', ARGV[b + 6],\n"
    "               'confidence', ARGV[b + 7], 'node', ARGV[b + 8]}\n"
    "    if ARGV[2] ~= '0' then\n"
    "      redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(f))\n"
    "    else\n"
    "      redis.call('XADD', KEYS[1], '*', unpack(f))\n"
    "    end\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "return n\n";

typedef struct sigtext {
    char key[AP_SYMBOL_MAX + 128];
    char tf[16], ms[24], ver[16], pred[32], conf[32];
    const char *sym, *model;
} sigtext;

/* EVAL of sig[0..n): 0 when done (published + duplicates counted). */
static int publish_chunk(ap_worker *w, const sigtext *t, size_t n)
{
    enum { FIXED = 3 + 1 + 2 };
    size_t argc = FIXED + n + n * SIG_FIELDS;
    const char **argv = malloc(argc * sizeof *argv);
    size_t *lens = malloc(argc * sizeof *lens);
    if (!argv || !lens) {
        free(argv);
        free(lens);
        return -1;
    }
    char nkeys[16], ttl[24], maxlen[24];
    snprintf(nkeys, sizeof nkeys, "%zu", n + 1);
    snprintf(ttl, sizeof ttl, "%" PRId64, w->cfg.dedup_ttl_ms);
    snprintf(maxlen, sizeof maxlen, "%" PRId64, w->cfg.maxlen);
    size_t a = 0;
    argv[a++] = "EVAL";
    argv[a++] = script;
    argv[a++] = nkeys;
    argv[a++] = AP_SCALE_SIGNALS;
    for (size_t i = 0; i < n; i++)
        argv[a++] = t[i].key;
    argv[a++] = ttl;
    argv[a++] = maxlen;
    for (size_t i = 0; i < n; i++) {
        argv[a++] = t[i].sym;
        argv[a++] = t[i].tf;
        argv[a++] = t[i].ms;
        argv[a++] = t[i].model;
        argv[a++] = t[i].ver;
        argv[a++] = t[i].pred;
        argv[a++] = t[i].conf;
        argv[a++] = w->node;
    }
    for (size_t i = 0; i < a; i++)
        lens[i] = strlen(argv[i]);
    int rc = -1;
    for (int tries = 0; rc && ap__rconn_ready(&w->pub); tries++) {
        redisReply *r = ap__rconn_cmd(&w->pub, (int)a, argv, lens);
        if (r && r->type == REDIS_REPLY_INTEGER) {
            atomic_fetch_add(&w->n.signals, (uint64_t)r->integer);
            atomic_fetch_add(&w->n.duplicates, n - (uint64_t)r->integer);
            rc = 0;
        } else {
            atomic_fetch_add(&w->n.sink_errors, 1);
            if (tries % 20 == 0)
                ap__worker_log(w, "signals: publishing %zu failed (%s); retrying", n,
                               r && r->type == REDIS_REPLY_ERROR ? r->str
                                                                 : w->pub.last_error);
            if (r) /* a reply that is an error (e.g. LOADING): the connection is fine */
                ap__rconn_drop(&w->pub);
        }
        if (r)
            freeReplyObject(r);
    }
    free(argv);
    free(lens);
    return rc;
}

void ap__scale_sink(void *ctx, const ap_srv_signal *sig, size_t n)
{
    ap_worker *w = ctx;
    sigtext *t = malloc(CHUNK * sizeof *t);
    if (!t) {
        ap__worker_log(w, "signals: out of memory; %zu signals not published", n);
        atomic_store(&w->sink_gave_up, 1);
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || k == CHUNK) {
            if (k && publish_chunk(w, t, k)) {
                atomic_store(&w->sink_gave_up, 1);
                break;
            }
            k = 0;
        }
        if (i == n)
            break;
        const ap_srv_signal *s = &sig[i];
        const char *sym = ap_series_symbol(s->series);
        uint32_t p = ap__scale_partition(sym, w->P);
        if (atomic_load(&w->parts[p].muted))
            continue; /* rebuilding: published (or not) by the partition's last owner */
        sigtext *x = &t[k++];
        x->sym = sym;
        x->model = s->model;
        ap__stream_tf_name(ap_series_timeframe(s->series), x->tf, sizeof x->tf);
        snprintf(x->ms, sizeof x->ms, "%" PRId64, s->bar_t / 1000);
        snprintf(x->ver, sizeof x->ver, "%u", s->version);
        snprintf(x->pred, sizeof x->pred, "%.17g", s->prediction);
        snprintf(x->conf, sizeof x->conf, "%.17g", s->confidence);
        snprintf(x->key, sizeof x->key, "ap:sig:%s/%s/%s/%s", sym, x->tf, x->ms, s->model);
    }
    free(t);
}
