/*
 * The consumer thread: the only one that touches the series of the
 * partitions this node owns.
 *
 * A batch: XREADGROUP GROUP ap:workers NODE COUNT redis_batch BLOCK 200
 * STREAMS ap:bars:{p}... > ...; every entry goes through the ingestion path
 * of POST /v1/candles (checks, ap_series_open with roll-up, ap__srv_ingest);
 * the series store's close hook hands the bars this closes to the stream
 * hub; ap__stream_flush waits until the hub has published their signals
 * (signals.c); only then is the batch XACKed. So an entry is acked after
 * the signals of every bar its arrival closed — its series' previous bar,
 * and a roll-up bucket (4h -> 1d) that its start ends — are in ap:signals.
 * A refused entry is XADDed to ap:bars:dead with the reason before the ack.
 */
#include "scale/scale_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/error.h"

/* The state changes the consumer makes (scale_internal.h). */
static void settle(ap_worker *w, ap_rconn *c)
{
    for (uint32_t p = 0; p < w->P && !atomic_load(&w->stop); p++) {
        pthread_mutex_lock(&w->mu);
        int st = w->parts[p].state;
        pthread_mutex_unlock(&w->mu);
        if (st == P_LOST || st == P_RELEASE) {
            ap__scale_drop_series(w, p);
            pthread_mutex_lock(&w->mu);
            if (w->parts[p].state == st)
                w->parts[p].state = st == P_LOST ? P_IDLE : P_DROPPED;
            pthread_mutex_unlock(&w->mu);
            ap__worker_log(w, "partition %u: %s", p, st == P_LOST ? "lost" : "given up");
        } else if (st == P_ACQUIRED) {
            ap__scale_drop_series(w, p); /* anything left from an earlier ownership */
            if (ap__scale_takeover(w, c, p) == AP_OK) {
                pthread_mutex_lock(&w->mu);
                uint64_t t0 = w->parts[p].lease_t_ns;
                if (w->parts[p].state == P_ACQUIRED)
                    w->parts[p].state = P_ACTIVE;
                pthread_mutex_unlock(&w->mu);
                atomic_store(&w->last_takeover_us, (ap__clock_ns() - t0) / 1000);
                atomic_fetch_add(&w->n.takeovers, 1);
            }
        }
    }
}

/* One XREADGROUP over the active partitions, ingested, flushed, acked;
   from ">" (new entries) or "0" (ours still pending: a reply lost with the
   connection). Returns the entries read. */
static size_t batch(ap_worker *w, ap_rconn *c, const uint32_t *act, size_t na, const char *from)
{
    size_t got = 0;
    char (*keys)[24] = malloc(na * sizeof *keys);
    const char **argv = malloc((2 * na + 10) * sizeof *argv);
    size_t *lens = malloc((2 * na + 10) * sizeof *lens);
    if (!keys || !argv || !lens)
        goto out;
    char count[16];
    snprintf(count, sizeof count, "%d", w->cfg.redis_batch);
    int a = 0;
    const char *head[] = {"XREADGROUP", "GROUP", AP_SCALE_GROUP, w->node, "COUNT", count,
                          "BLOCK", "200", "STREAMS"};
    for (size_t i = 0; i < sizeof head / sizeof head[0]; i++)
        argv[a++] = head[i];
    for (size_t i = 0; i < na; i++) {
        snprintf(keys[i], sizeof keys[i], "ap:bars:%u", act[i]);
        argv[a++] = keys[i];
    }
    for (size_t i = 0; i < na; i++)
        argv[a++] = from;
    for (int i = 0; i < a; i++)
        lens[i] = strlen(argv[i]);
    redisReply *r = ap__rconn_cmd(c, a, argv, lens);
    if (!r)
        goto out;
    if (r->type == REDIS_REPLY_ERROR) { /* NOGROUP: the stream went (Redis lost its data) */
        ap__worker_log(w, "XREADGROUP: %s", r->str);
        for (size_t i = 0; i < na; i++)
            ap__scale_group(w, c, keys[i]);
        freeReplyObject(r);
        goto out;
    }
    for (size_t s = 0; r->type == REDIS_REPLY_ARRAY && s < r->elements; s++) {
        redisReply *st = r->element[s];
        if (st->type != REDIS_REPLY_ARRAY || st->elements != 2 || !st->element[0]->str)
            continue;
        uint32_t p = (uint32_t)strtoul(st->element[0]->str + 8, NULL, 10);
        redisReply *ents = st->element[1];
        for (size_t i = 0; ents->type == REDIS_REPLY_ARRAY && i < ents->elements; i++) {
            atomic_fetch_add(&w->n.consumed, 1);
            got++;
            ap__scale_entry(w, c, p, ents->element[i], 0);
        }
    }
    ap__stream_flush(w->srv->stream); /* the signals of what closed are published */
    for (size_t s = 0; r->type == REDIS_REPLY_ARRAY && s < r->elements; s++) {
        redisReply *st = r->element[s], *ents;
        if (st->type != REDIS_REPLY_ARRAY || st->elements != 2 ||
            (ents = st->element[1])->type != REDIS_REPLY_ARRAY || !ents->elements)
            continue;
        const char **ids = malloc(ents->elements * sizeof *ids);
        size_t n = 0;
        for (size_t i = 0; ids && i < ents->elements; i++)
            if (ents->element[i]->type == REDIS_REPLY_ARRAY && ents->element[i]->elements &&
                ents->element[i]->element[0]->str)
                ids[n++] = ents->element[i]->element[0]->str;
        if (ids)
            ap__scale_ack(w, c, st->element[0]->str, ids, n);
        free(ids);
    }
    freeReplyObject(r);
out:
    free(keys);
    free(argv);
    free(lens);
    return got;
}

void *ap__scale_consume_main(void *arg)
{
    ap_worker *w = arg;
    ap_rconn c;
    /* the read blocks 200 ms: the timeout is beyond it */
    ap__rconn_init(&c, &w->url, &w->stop, &w->n.reconnects, 5.0);
    uint32_t *act = malloc(w->P * sizeof *act);
    int resync = 0;
    while (act && !atomic_load(&w->stop) && !atomic_load(&w->sink_gave_up)) {
        resync |= !c.c && c.lost; /* a batch's reply may have gone with the connection */
        if (!ap__rconn_ready(&c))
            break;
        settle(w, &c);
        size_t na = 0;
        /* fencing: read a partition only while its lease surely holds (a
           node stalled past it must not read entries its successor owns;
           its lease thread then finds the renewal refused) */
        uint64_t horizon = ap__clock_ns() + (uint64_t)w->cfg.lease_ms * 1000000u / 4;
        pthread_mutex_lock(&w->mu);
        for (uint32_t p = 0; p < w->P; p++)
            if (w->parts[p].state == P_ACTIVE && w->parts[p].valid_ns > horizon)
                act[na++] = p;
        pthread_mutex_unlock(&w->mu);
        if (!na) {
            nanosleep(&(struct timespec){0, 20000000L}, NULL);
            continue;
        }
        if (resync)
            resync = batch(w, &c, act, na, "0") > 0 || !c.c;
        else
            batch(w, &c, act, na, ">");
    }
    free(act);
    ap__rconn_close(&c);
    return NULL;
}
