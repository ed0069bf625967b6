/*
 * The route table: every endpoint once — method, path pattern, metric name,
 * handler, whether a reserve connection may use it. Routing, dispatch and
 * the metrics' endpoint labels all read it (routes.c).
 */
#ifndef AP_SERVER_ROUTES_H
#define AP_SERVER_ROUTES_H

#include <microhttpd.h>

typedef enum ap_srv_endpoint {
    EP_ROOT,
    EP_CANDLES,
    EP_PRED_PATTERN,
    EP_PRED_REGIME,
    EP_PRED_ENSEMBLE,
    EP_RESULT_GET,
    EP_RESULT_DELETE,
    EP_MODELS,
    EP_STATS,
    EP_V2_LIVE,
    EP_V2_READY,
    EP_V2_SERVER,
    EP_V2_MODEL,
    EP_V2_MODEL_READY,
    EP_V2_INFER,
    EP_V2_REPO_INDEX,
    EP_V2_LOAD,
    EP_V2_UNLOAD,
    EP_V2_CONFIG,
    EP_V2_STATS,
    EP_METRICS,
    EP_SERIES_DELETE,
    EP_STREAM,
    EP_PRED_BATCH,
    EP_STATUS,
    EP_UNKNOWN,
    EP_COUNT
} ap_srv_endpoint;

typedef struct ap_srv_req ap_srv_req;
typedef enum MHD_Result (*ap_srv_handler)(ap_srv_req *r);

/* Who may call an endpoint once auth_tokens_file is set (a token's role
   must be at least this one); ROLE_PUBLIC: anyone (health, the page shell). */
typedef enum ap_srv_role {
    ROLE_PUBLIC = 0,
    ROLE_READ,    /* models, stats, metrics, status */
    ROLE_PREDICT, /* predictions, results, streams */
    ROLE_INGEST,  /* bars */
    ROLE_ADMIN    /* repository load/unload, series delete */
} ap_srv_role;

typedef struct ap_srv_route {
    int ep;               /* ap_srv_endpoint */
    const char *methods;  /* "GET", "POST", "DELETE", "GET POST" (GET also takes HEAD) */
    const char *path;     /* literal segments, {model}, {version} (a number >= 1),
                             {id}, {symbol} (one or more segments), {timeframe} */
    const char *name;     /* the endpoint label in /metrics */
    ap_srv_handler handler;
    int reserve_ok;       /* served on a reserve connection (health, metrics) */
    int role;             /* ap_srv_role: the least role that may call it */
} ap_srv_route;

/* The endpoint's metric label ("unknown" for EP_UNKNOWN). */
const char *ap__srv_endpoint_name(int ep);
/* Route r (method, url): sets r->ep, r->route and the path arguments (r->arg:
   model, id or symbol; r->arg2: timeframe; r->want_version). Returns 0, 404
   (no such path) or 405 (the path exists, not with this method). */
int ap__srv_route_match(ap_srv_req *r, const char *method, const char *url);



#endif
