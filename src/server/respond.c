/*
 * Answers: the one status map (library status -> HTTP), responses and
 * error bodies, deadline errors. The bottom of the server's request path:
 * the handlers and the request life call it; it calls only the transport
 * (through ap_srv_io) and the metrics.
 */
#include "server/server_internal.h"

#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/error.h"

/* ---- responses -------------------------------------------------------------- */

/* The one map from library status to HTTP status. */
int ap__srv_http_status(int ap_code)
{
    switch (ap_code) {
    case AP_OK:
        return MHD_HTTP_OK;
    case AP_ENOTFOUND:
        return MHD_HTTP_NOT_FOUND;
    case AP_ETIMEDOUT:
        return MHD_HTTP_GATEWAY_TIMEOUT;
    case AP_EOVERLOAD: /* a queue is full: come back later */
        return MHD_HTTP_TOO_MANY_REQUESTS;
    case AP_ECANCELLED: /* shutting down, or cancelled */
    case AP_EFULL:      /* the series store or the model cache has no room */
        return MHD_HTTP_SERVICE_UNAVAILABLE;
    case AP_ERANGE:     /* a size over a limit */
        return MHD_HTTP_CONTENT_TOO_LARGE;
    case AP_ECONFLICT:
        return MHD_HTTP_CONFLICT;
    case AP_ENOMEM:
    case AP_EIO:
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    default: /* EINVAL, EFORMAT, EUNSUPPORTED: the request is wrong */
        return MHD_HTTP_BAD_REQUEST;
    }
}

int ap__srv_compute_status(int ap_code)
{
    switch (ap_code) {
    case AP_ETIMEDOUT:
    case AP_EOVERLOAD:
    case AP_ECANCELLED:
    case AP_ENOTFOUND:
        return ap__srv_http_status(ap_code);
    default:
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
}

/* Drop every "prefix/" from msg (in place). */
static void drop_prefix(char *msg, const char *prefix)
{
    size_t pl = strlen(prefix);
    if (!pl)
        return;
    for (char *p = msg; (p = strstr(p, prefix));) {
        if (p[pl] != '/') {
            p += pl;
            continue;
        }
        memmove(p, p + pl + 1, strlen(p + pl + 1) + 1);
    }
}

void ap__srv_scrub_paths(const ap_server *s, char *msg)
{
    /* the resolved root first: the configured one may be its prefix */
    char real[PATH_MAX];
    if (realpath(s->cfg.repository, real))
        drop_prefix(msg, real);
    char given[sizeof s->cfg.repository];
    snprintf(given, sizeof given, "%s", s->cfg.repository);
    size_t n = strlen(given);
    while (n > 1 && given[n - 1] == '/')
        given[--n] = 0;
    drop_prefix(msg, given);
}

enum MHD_Result ap__srv_fail(ap_srv_req *r, const ap_error *err)
{
    char msg[AP_ERROR_MSG_MAX];
    snprintf(msg, sizeof msg, "%s", err->msg);
    ap__srv_scrub_paths(r->srv, msg);
    return ap__srv_error(r, ap__srv_http_status(err->code), "%s", msg);
}

enum MHD_Result ap__srv_respond(ap_srv_req *r, int code, jbuf *body, const char *ctype)
{
    ap_server *s = r->srv;
    int close = r->close || atomic_load_explicit(&s->draining, memory_order_relaxed);
    int failed = body->failed;
    enum MHD_Result ret =
        r->io->respond(r->conn, (unsigned)code, body, ctype, close, r->hdr[0] ? r->hdr : NULL);
    if (failed)
        code = MHD_HTTP_INTERNAL_SERVER_ERROR;
    uint64_t now = ap__clock_ns();
    uint64_t lat = now > r->t0_ns ? now - r->t0_ns : 0;
    ap__srv_metrics_record(s->metrics, r->model, r->ep, r->route ? r->route->name : NULL, code,
                          lat);
    if (s->cfg.access_log) /* the token's name, never the token */
        ap__srv_log(s, "%s %s %d %.3f ms%s%s", r->method, r->url, code, (double)lat / 1e6,
                    r->token_name[0] ? " token=" : "", r->token_name);
    r->phase = PH_DONE;
    return ret;
}

enum MHD_Result ap__srv_respond_stream(ap_srv_req *r, int code, const char *ctype,
                                       const ap_srv_body_source *src)
{
    ap_server *s = r->srv;
    enum MHD_Result ret = r->io->stream(r->conn, (unsigned)code, ctype, src);
    uint64_t now = ap__clock_ns();
    uint64_t lat = now > r->t0_ns ? now - r->t0_ns : 0;
    ap__srv_metrics_record(s->metrics, r->model, r->ep, r->route ? r->route->name : NULL, code,
                          lat);
    if (s->cfg.access_log)
        ap__srv_log(s, "%s %s %d (stream)%s%s", r->method, r->url, code,
                    r->token_name[0] ? " token=" : "", r->token_name);
    r->phase = PH_DONE;
    return ret;
}

enum MHD_Result ap__srv_error(ap_srv_req *r, int code, const char *fmt, ...)
{
    char msg[AP_ERROR_MSG_MAX + 256], store[sizeof msg + 32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    jbuf b;
    ap__jb_init(&b, store, sizeof store);
    ap__jb_puts(&b, "{\"error\": ");
    ap__jb_str(&b, msg);
    ap__jb_puts(&b, "}\n");
    return ap__srv_respond(r, code, &b, NULL);
}

int ap__srv_past_deadline(const ap_srv_req *r, uint64_t now)
{
    return r->deadline_ns && now >= r->deadline_ns;
}

enum MHD_Result ap__srv_deadline_error(ap_srv_req *r, const char *when)
{
    uint64_t now = ap__clock_ns();
    double waited = (double)(now - r->t0_ns) / 1e6,
           budget = (double)(r->deadline_ns - r->t0_ns) / 1e6;
    int before = !strcmp(when, "before");
    atomic_fetch_add_explicit(before ? &r->srv->metrics->deadline_before
                                     : &r->srv->metrics->deadline_after, 1,
                              memory_order_relaxed);
    if (before)
        return ap__srv_error(r, MHD_HTTP_GATEWAY_TIMEOUT,
                            "deadline passed before the request could run: it waited %.3f ms "
                            "since it was received, its timeout is %.3f ms", waited, budget);
    return ap__srv_error(r, MHD_HTTP_GATEWAY_TIMEOUT,
                        "deadline passed: the prediction was ready %.3f ms after the request "
                        "was received, its timeout is %.3f ms (result dropped)", waited, budget);
}

