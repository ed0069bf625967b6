/*
 * One bar entry into the series store, or into ap:bars:dead with its
 * reason; XACK; the consumer group; dropping a partition's series. Used by
 * the consumer (consume.c) and the take-over (takeover.c).
 */
#include "scale/scale_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

static void dead_letter_args(const char **argv, size_t *lens, int *argc, const char *pstr,
                             const char *id, const char *reason, const char *node,
                             const char *maxlen, const redisReply *fields)
{
    int a = 0;
    argv[a++] = "XADD";
    argv[a++] = AP_SCALE_DEAD;
    if (strcmp(maxlen, "0")) {
        argv[a++] = "MAXLEN";
        argv[a++] = "~";
        argv[a++] = maxlen;
    }
    argv[a++] = "*";
    argv[a++] = "partition";
    argv[a++] = pstr;
    argv[a++] = "id";
    argv[a++] = id;
    argv[a++] = "reason";
    argv[a++] = reason;
    argv[a++] = "node";
    argv[a++] = node;
    for (int i = 0; i < a; i++)
        lens[i] = strlen(argv[i]);
    /* the entry's own fields, as they were (names prefixed: f_) are kept
       verbatim after ours; at most 32 of them */
    for (size_t i = 0; fields && i + 1 < fields->elements && i < 64; i += 2) {
        argv[a] = fields->element[i]->str ? fields->element[i]->str : "";
        lens[a] = fields->element[i]->str ? fields->element[i]->len : 0;
        a++;
        argv[a] = fields->element[i + 1]->str ? fields->element[i + 1]->str : "";
        lens[a] = fields->element[i + 1]->str ? fields->element[i + 1]->len : 0;
        a++;
    }
    *argc = a;
}

int ap__scale_entry(ap_worker *w, ap_rconn *c, uint32_t p, const redisReply *e, int quiet)
{
    ap_error err;
    int rc = AP_OK;
    const redisReply *fields = e->type == REDIS_REPLY_ARRAY && e->elements == 2 ? e->element[1]
                                                                                : NULL;
    const char *id = e->type == REDIS_REPLY_ARRAY && e->elements >= 1 && e->element[0]->str
                         ? e->element[0]->str
                         : "?";
    if (!fields || fields->type != REDIS_REPLY_ARRAY) {
        rc = ap__error_set(&err, AP_EINVAL, "the entry has no fields");
        fields = NULL;
    } else {
        const char *f[64];
        size_t len[64], n = fields->elements;
        if (n > 64)
            rc = ap__error_set(&err, AP_EINVAL, "%zu field strings (a bar has 16)", n);
        for (size_t i = 0; !rc && i < n; i++) {
            f[i] = fields->element[i]->str ? fields->element[i]->str : "";
            len[i] = fields->element[i]->str ? fields->element[i]->len : 0;
        }
        ap_scale_bar b;
        ap_series *s;
        if (!rc && !(rc = ap__scale_bar_parse(f, len, n, &b, &err))) {
            uint32_t q = ap__scale_partition(b.symbol, w->P);
            if (q != p)
                rc = ap__error_set(&err, AP_EINVAL, "symbol %s belongs to partition %u, not %u",
                                   b.symbol, q, p);
        }
        if (!rc)
            rc = ap__srv_bar_time_ok(w->srv, b.bar.t, &err);
        if (!rc)
            rc = ap_series_open(w->srv->store, b.symbol, b.tf_s, AP_SERIES_ROLLUP, &s, &err);
        if (!rc)
            rc = ap__srv_ingest(w->srv, s, &b.bar, &err);
        if (!rc)
            atomic_fetch_add(&w->n.ingested, 1);
    }
    if (!rc || quiet)
        return AP_OK; /* a rebuild refuses what was dead-lettered already */
    ap__worker_log(w, "partition %u: entry %s refused: %s", p, id, err.msg);
    const char *argv[96];
    size_t lens[96];
    int argc;
    char pstr[16], maxlen[24];
    snprintf(pstr, sizeof pstr, "%u", p);
    snprintf(maxlen, sizeof maxlen, "%lld", (long long)w->cfg.maxlen);
    dead_letter_args(argv, lens, &argc, pstr, id, err.msg, w->node, maxlen, fields);
    for (;;) {
        if (!ap__rconn_ready(c))
            return AP_EIO;
        redisReply *r = ap__rconn_cmd(c, argc, argv, lens);
        if (r) {
            freeReplyObject(r);
            break;
        }
    }
    atomic_fetch_add(&w->n.dead, 1);
    return AP_OK;
}

typedef struct drop_ctx {
    ap_worker *w;
    uint32_t p;
    char (*sym)[AP_SYMBOL_MAX];
    int64_t *tf;
    size_t n, cap;
} drop_ctx;

static int drop_visit(void *ctx, const ap_series *s)
{
    drop_ctx *d = ctx;
    ap_series_info_t in;
    if (ap_series_info(s, &in) != AP_OK || in.deleted || in.rolled_up ||
        ap__scale_partition(ap_series_symbol(s), d->w->P) != d->p)
        return 0;
    if (d->n == d->cap) {
        size_t nc = d->cap ? 2 * d->cap : 64;
        void *a = realloc(d->sym, nc * sizeof *d->sym), *b = a ? realloc(d->tf, nc * sizeof *d->tf)
                                                              : NULL;
        if (a)
            d->sym = a;
        if (!b)
            return 1;
        d->tf = b;
        d->cap = nc;
    }
    snprintf(d->sym[d->n], AP_SYMBOL_MAX, "%s", ap_series_symbol(s));
    d->tf[d->n++] = in.timeframe_s;
    return 0;
}

void ap__scale_drop_series(ap_worker *w, uint32_t p)
{
    drop_ctx d = {w, p, NULL, NULL, 0, 0};
    ap_series_store_list(w->srv->store, drop_visit, &d);
    ap_error err;
    for (size_t i = 0; i < d.n; i++)
        ap_series_delete(w->srv->store, d.sym[i], d.tf[i], &err);
    free(d.sym);
    free(d.tf);
}

int ap__scale_ack(ap_worker *w, ap_rconn *c, const char *key, const char **ids, size_t n)
{
    if (!n)
        return 0;
    if (atomic_load(&w->sink_gave_up))
        return -1; /* their signals may be unpublished: leave them pending */
    const char **argv = malloc((n + 3) * sizeof *argv);
    size_t *lens = malloc((n + 3) * sizeof *lens);
    int rc = -1;
    if (!argv || !lens)
        goto out;
    argv[0] = "XACK";
    argv[1] = key;
    argv[2] = AP_SCALE_GROUP;
    for (size_t i = 0; i < n; i++)
        argv[3 + i] = ids[i];
    for (size_t i = 0; i < n + 3; i++)
        lens[i] = strlen(argv[i]);
    while (rc && ap__rconn_ready(c)) {
        redisReply *r = ap__rconn_cmd(c, (int)n + 3, argv, lens);
        if (r) {
            rc = 0;
            atomic_fetch_add(&w->n.acked, n);
            freeReplyObject(r);
        }
    }
out:
    free(argv);
    free(lens);
    return rc;
}

int ap__scale_group(ap_worker *w, ap_rconn *c, const char *key)
{
    redisReply *r = ap__rconn_cmdf(c, "XGROUP CREATE %s " AP_SCALE_GROUP " 0 MKSTREAM", key);
    if (!r)
        return -1;
    int ok = r->type == REDIS_REPLY_STATUS ||
             (r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "BUSYGROUP", 9));
    if (!ok)
        ap__worker_log(w, "%s: XGROUP CREATE: %s", key, r->str ? r->str : "?");
    freeReplyObject(r);
    return ok ? 0 : -1;
}

