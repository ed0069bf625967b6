/*
 * The route table and the router: every endpoint is spelled once here, and
 * routing, dispatch (r->route->handler) and the metric labels
 * (ap__srv_endpoint_name) all read this table.
 */
#include "server/routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/handlers.h"

static const ap_srv_route routes[] = {
    {EP_ROOT, "GET", "/", "root", ap__srv_h_root, 0, ROLE_PUBLIC},
    {EP_METRICS, "GET", "/metrics", "metrics", ap__srv_h_metrics, 1, ROLE_READ},
    {EP_CANDLES, "POST", "/v1/candles", "candles", ap__srv_h_candles, 0, ROLE_INGEST},
    {EP_PRED_PATTERN, "POST", "/v1/predict/pattern", "predict_pattern", ap__srv_h_predict, 0, ROLE_PREDICT},
    {EP_PRED_REGIME, "POST", "/v1/predict/regime", "predict_regime", ap__srv_h_predict, 0, ROLE_PREDICT},
    {EP_PRED_ENSEMBLE, "POST", "/v1/predict/ensemble", "predict_ensemble", ap__srv_h_predict, 0, ROLE_PREDICT},
    {EP_PRED_BATCH, "POST", "/v1/predict/batch", "predict_batch", ap__srv_h_predict_batch, 0, ROLE_PREDICT},
    {EP_RESULT_GET, "GET", "/v1/results/{id}", "results_get", ap__srv_h_result_get, 0, ROLE_PREDICT},
    {EP_RESULT_DELETE, "DELETE", "/v1/results/{id}", "results_delete", ap__srv_h_result_delete, 0, ROLE_PREDICT},
    {EP_MODELS, "GET", "/v1/models", "models", ap__srv_h_models, 0, ROLE_READ},
    {EP_STATS, "GET", "/v1/stats", "stats", ap__srv_h_stats, 0, ROLE_READ},
    {EP_STATUS, "GET", "/v1/status", "status", ap__srv_h_status, 0, ROLE_READ},
    {EP_SERIES_DELETE, "DELETE", "/v1/series/{symbol}/{timeframe}", "series_delete",
     ap__srv_h_series_delete, 0, ROLE_ADMIN},
    {EP_STREAM, "GET", "/v1/stream", "stream", ap__srv_h_stream, 0, ROLE_PREDICT},
    {EP_V2_SERVER, "GET", "/v2", "v2_server", ap__srv_h_v2_server, 0, ROLE_READ},
    {EP_V2_SERVER, "GET", "/v2/", "v2_server", ap__srv_h_v2_server, 0, ROLE_READ},
    {EP_V2_LIVE, "GET", "/v2/health/live", "v2_health_live", ap__srv_h_v2_live, 1, ROLE_PUBLIC},
    {EP_V2_READY, "GET", "/v2/health/ready", "v2_health_ready", ap__srv_h_v2_ready, 1, ROLE_PUBLIC},
    {EP_V2_REPO_INDEX, "GET POST", "/v2/repository/index", "v2_repository_index",
     ap__srv_h_v2_repo_index, 0, ROLE_READ},
    {EP_V2_LOAD, "POST", "/v2/repository/models/{model}/load", "v2_repository_load",
     ap__srv_h_v2_load, 0, ROLE_ADMIN},
    {EP_V2_UNLOAD, "POST", "/v2/repository/models/{model}/unload", "v2_repository_unload",
     ap__srv_h_v2_unload, 0, ROLE_ADMIN},
    /* before /v2/models/{model}: "stats" is the statistics of every model */
    {EP_V2_STATS, "GET", "/v2/models/stats", "v2_model_stats", ap__srv_h_v2_stats, 0, ROLE_READ},
    {EP_V2_STATS, "GET", "/v2/models/{model}/stats", "v2_model_stats", ap__srv_h_v2_stats, 0,
     ROLE_READ},
    {EP_V2_STATS, "GET", "/v2/models/{model}/versions/{version}/stats", "v2_model_stats",
     ap__srv_h_v2_stats, 0, ROLE_READ},
    {EP_V2_CONFIG, "GET", "/v2/models/{model}/config", "v2_model_config", ap__srv_h_v2_config, 0,
     ROLE_READ},
    {EP_V2_CONFIG, "GET", "/v2/models/{model}/versions/{version}/config", "v2_model_config",
     ap__srv_h_v2_config, 0, ROLE_READ},
    {EP_V2_MODEL, "GET", "/v2/models/{model}", "v2_model_metadata", ap__srv_h_v2_model, 0, ROLE_READ},
    {EP_V2_MODEL, "GET", "/v2/models/{model}/versions/{version}", "v2_model_metadata",
     ap__srv_h_v2_model, 0, ROLE_READ},
    {EP_V2_MODEL_READY, "GET", "/v2/models/{model}/ready", "v2_model_ready",
     ap__srv_h_v2_model_ready, 0, ROLE_READ},
    {EP_V2_MODEL_READY, "GET", "/v2/models/{model}/versions/{version}/ready", "v2_model_ready",
     ap__srv_h_v2_model_ready, 0, ROLE_READ},
    {EP_V2_INFER, "POST", "/v2/models/{model}/infer", "v2_infer", ap__srv_h_v2_infer, 0, ROLE_PREDICT},
    {EP_V2_INFER, "POST", "/v2/models/{model}/versions/{version}/infer", "v2_infer",
     ap__srv_h_v2_infer, 0, ROLE_PREDICT},
};
#define NROUTES (sizeof routes / sizeof routes[0])

const char *ap__srv_endpoint_name(int ep)
{
    for (size_t i = 0; i < NROUTES; i++)
        if (routes[i].ep == ep)
            return routes[i].name;
    return "unknown";
}

/* 1 when m is one of the space-separated methods (HEAD counts as GET). */
static int method_ok(const char *methods, const char *m)
{
    if (!strcmp(m, "HEAD"))
        m = "GET";
    size_t n = strlen(m);
    for (const char *p = methods; *p;) {
        const char *e = strchr(p, ' ');
        size_t k = e ? (size_t)(e - p) : strlen(p);
        if (k == n && !memcmp(p, m, n))
            return 1;
        p += k + (e != NULL);
    }
    return 0;
}

/* A path argument: a version is a decimal number >= 1 without sign or
   leading zero that fits 32 bits. */
static int version_arg(const char *v, size_t n, uint32_t *out)
{
    if (!n || n > 10 || v[0] == '0')
        return 0;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return 0;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    if (x > UINT32_MAX)
        return 0;
    *out = (uint32_t)x;
    return 1;
}

/* Match url against pattern; fill r's arguments on a match. A {symbol} takes
   every segment up to the last one (libmicrohttpd unescapes %2F, and
   symbols may hold '/'), so it is followed by exactly one more parameter. */
static int match(const char *pat, const char *url, ap_srv_req *r)
{
    while (*pat) {
        if (*pat != '{') {
            if (*pat++ != *url++)
                return 0;
            continue;
        }
        const char *close = strchr(pat, '}');
        size_t plen = (size_t)(close - pat - 1);
        const char *name = pat + 1;
        pat = close + 1;
        const char *end;
        if (plen == 6 && !strncmp(name, "symbol", 6)) {
            end = strrchr(url, '/');
            if (!end || end == url)
                return 0;
        } else {
            end = strchr(url, '/');
            if (!end)
                end = url + strlen(url);
        }
        size_t n = (size_t)(end - url);
        if (!n)
            return 0;
        if (plen == 7 && !strncmp(name, "version", 7)) {
            if (!version_arg(url, n, &r->want_version))
                return 0;
        } else {
            int second = plen == 9 && !strncmp(name, "timeframe", 9);
            char *dst = second ? r->arg2 : r->arg;
            size_t cap = second ? sizeof r->arg2 : sizeof r->arg;
            if (n >= cap)
                return 0;
            memcpy(dst, url, n);
            dst[n] = 0;
        }
        url = end;
    }
    return !*url;
}

/* The Allow header of a 405 (RFC 9110 15.5.6): every method of every
   route of this path, HEAD with GET, into r->hdr_val. */
static void allow(ap_srv_req *r, const char *url)
{
    static const char *const all[] = {"GET", "HEAD", "POST", "DELETE"};
    int has[4] = {0, 0, 0, 0};
    /* match() writes the path arguments: keep the caller's */
    char arg[sizeof r->arg], arg2[sizeof r->arg2];
    uint32_t v = r->want_version;
    memcpy(arg, r->arg, sizeof arg);
    memcpy(arg2, r->arg2, sizeof arg2);
    for (size_t i = 0; i < NROUTES; i++)
        if (match(routes[i].path, url, r))
            for (int k = 0; k < 4; k++)
                has[k] |= method_ok(routes[i].methods, all[k]);
    memcpy(r->arg, arg, sizeof arg);
    memcpy(r->arg2, arg2, sizeof arg2);
    r->want_version = v;
    size_t n = 0;
    r->hdr_val[0] = 0;
    for (int k = 0; k < 4; k++)
        if (has[k])
            n += (size_t)snprintf(r->hdr_val + n, sizeof r->hdr_val - n, "%s%s", n ? ", " : "",
                                  all[k]);
}

int ap__srv_route_match(ap_srv_req *r, const char *method, const char *url)
{
    const ap_srv_route *path_hit = NULL;
    for (size_t i = 0; i < NROUTES; i++) {
        uint32_t v = r->want_version;
        if (!match(routes[i].path, url, r)) {
            r->want_version = v;
            continue;
        }
        if (method_ok(routes[i].methods, method)) {
            r->route = &routes[i];
            r->ep = routes[i].ep;
            return 0;
        }
        if (!path_hit)
            path_hit = &routes[i];
    }
    if (path_hit) { /* the path exists, not with this method */
        r->route = path_hit;
        r->ep = path_hit->ep;
        allow(r, url);
        return 405;
    }
    r->route = NULL;
    r->ep = EP_UNKNOWN;
    return 404;
}
