/*
 * GET /v1/stream?models=M1,M2&series=SYM/TF,...: predictions pushed as
 * Server-Sent Events on every closed bar (the hub: stream.h). This file
 * reads the subscription out of the URL, resolves its models against the
 * repository, and hands the connection an event-stream body whose reads
 * are the hub's. docs/SERVER.md.
 */
#include "server/server_internal.h"
#include "server/handlers.h"
#include "server/stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

#define STREAM_MAX_SERIES 4096
#define STREAM_MAX_MODELS 64

static long body_read(void *ctx, char *buf, size_t max) { return ap__stream_read(ctx, buf, max); }
static void body_done(void *ctx) { ap__stream_unsubscribe(ctx); }

/* series=*, or SYM/TF[,SYM/TF...] (a symbol may hold '/': the timeframe is
   after the last one). */
static int parse_series(const char *v, ap_srv_stream_key **out, int *n, ap_error *err)
{
    *out = NULL;
    *n = 0;
    if (!strcmp(v, "*"))
        return AP_OK;
    ap_srv_stream_key *k = NULL;
    int cap = 0, rc = AP_OK;
    for (const char *p = v; rc == AP_OK;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (!len) {
            rc = ap__error_set(err, AP_EINVAL, "series: item %d is empty (expected "
                               "SYMBOL/TIMEFRAME, or * for every series)", *n + 1);
            break;
        }
        if (*n == cap) {
            if (cap == STREAM_MAX_SERIES) {
                rc = ap__error_set(err, AP_ERANGE, "series: more than %d series (use * for "
                                   "every series)", STREAM_MAX_SERIES);
                break;
            }
            cap = cap ? 2 * cap : 16;
            ap_srv_stream_key *nk = realloc(k, (size_t)cap * sizeof *nk);
            if (!nk) {
                rc = ap__error_set(err, AP_ENOMEM, "out of memory");
                break;
            }
            k = nk;
        }
        if ((rc = ap__stream_key_parse(p, len, &k[*n], err)) != AP_OK)
            break;
        (*n)++;
        if (!e)
            break;
        p = e + 1;
    }
    if (rc) {
        free(k);
        *n = 0;
        return rc;
    }
    *out = k;
    return AP_OK;
}

/* models absent or *: every repository model that takes alphapulse-v1
   rows; else NAME or KIND:TARGET (the first model of that kind and target). */
static int resolve_models(ap_server *s, const char *v, char (*names)[65], int *n, ap_error *err);

int ap__srv_stream_models(ap_server *s, const char *v, char (*names)[65], int max, int *n,
                          ap_error *err)
{
    if (max < STREAM_MAX_MODELS)
        return ap__error_set(err, AP_EINVAL, "models: room for %d needed", STREAM_MAX_MODELS);
    return resolve_models(s, v, names, n, err);
}

static int resolve_models(ap_server *s, const char *v, char (*names)[65], int *n, ap_error *err)
{
    ap_repo_model *cat;
    int nc;
    *n = 0;
    int rc = ap__service_catalog(s->svc, 0, &cat, &nc, err);
    if (rc)
        return rc;
    if (!v || !strcmp(v, "*")) {
        for (int i = 0; i < nc && *n < STREAM_MAX_MODELS; i++)
            if (cat[i].ok && cat[i].kind != AP_MODEL_RAW)
                memcpy(names[(*n)++], cat[i].name, sizeof names[0]);
        ap_registry_listing_free(cat);
        if (!*n)
            return ap__error_set(err, AP_ENOTFOUND, "the repository has no model to stream");
        return AP_OK;
    }
    for (const char *p = v; rc == AP_OK;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char tok[140];
        if (!len || len >= sizeof tok) {
            rc = ap__error_set(err, AP_EINVAL, "models: item %d is empty or too long", *n + 1);
            break;
        }
        memcpy(tok, p, len);
        tok[len] = 0;
        char *colon = strchr(tok, ':'); /* KIND:TARGET, else a name */
        const char *target = colon ? colon + 1 : NULL;
        if (colon)
            *colon = 0;
        int hit = -1;
        for (int i = 0; i < nc && hit < 0; i++)
            if (target ? !strcmp(ap__srv_kind_name(cat[i].kind), tok) &&
                             !strcmp(cat[i].target, target)
                       : !strcmp(cat[i].name, tok))
                hit = i;
        if (colon)
            *colon = ':'; /* the messages name the token as written */
        if (hit < 0)
            rc = ap__error_set(err, AP_ENOTFOUND, "models: no model '%s' in the repository "
                               "(a name, or KIND:TARGET such as pattern:reversal)", tok);
        else if (cat[hit].kind == AP_MODEL_RAW)
            rc = ap__error_set(err, AP_EINVAL, "models: '%s' is a raw model (it takes tensors, "
                               "not a series' features): it cannot stream", tok);
        else if (*n == STREAM_MAX_MODELS)
            rc = ap__error_set(err, AP_ERANGE, "models: more than %d", STREAM_MAX_MODELS);
        else {
            int dup = 0;
            for (int j = 0; j < *n && !dup; j++)
                dup = !strcmp(names[j], cat[hit].name);
            if (!dup)
                memcpy(names[(*n)++], cat[hit].name, sizeof names[0]);
        }
        if (!e)
            break;
        p = e + 1;
    }
    ap_registry_listing_free(cat);
    return rc;
}

enum MHD_Result ap__srv_h_stream(ap_srv_req *r)
{
    ap_server *s = r->srv;
    const char *models = r->io->query(r->conn, "models");
    const char *series = r->io->query(r->conn, "series");
    if (r->io->query_count(r->conn) > (unsigned)(models != NULL) + (series != NULL))
        return ap__srv_error(r, MHD_HTTP_BAD_REQUEST, "unknown query parameter: /v1/stream "
                             "takes models and series");
    if (!series)
        return ap__srv_error(r, MHD_HTTP_BAD_REQUEST, "query parameter 'series' is required: "
                             "SYMBOL/TIMEFRAME[,...], or * for every series");
    ap_error err;
    char names[STREAM_MAX_MODELS][65];
    ap_srv_sub_spec spec = {.models = (const char(*)[65])names};
    ap_srv_stream_key *keys = NULL;
    if (parse_series(series, &keys, &spec.nseries, &err) != AP_OK ||
        resolve_models(s, models, names, &spec.nmodels, &err) != AP_OK) {
        free(keys);
        return ap__srv_fail(r, &err);
    }
    spec.series = keys;
    spec.last_event_id = r->io->header(r->conn, "Last-Event-ID");
    ap_srv_sub_io io = {r->io->suspend, r->io->resume, r->conn};
    ap_srv_sub *sub;
    int rc = ap__stream_subscribe(s->stream, &spec, &io, &sub, &err);
    free(keys);
    if (rc)
        return ap__srv_fail(r, &err);
    ap_srv_body_source src = {body_read, body_done, sub};
    return ap__srv_respond_stream(r, MHD_HTTP_OK, "text/event-stream", &src);
}
