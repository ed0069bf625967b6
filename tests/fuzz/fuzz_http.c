/*
 * libFuzzer target: the HTTP surface in-process. Each input is one request,
 *
 *   METHOD SP URL LF (Header: value LF)* LF body
 *
 * driven through the same request life as libmicrohttpd drives it
 * (ap__srv_req_begin / headers / body / complete / resumed / free, see
 * src/server/server_internal.h) with a fake transport: the router and every
 * handler, on a server core with the demo repository and a GOOG/1d series,
 * no sockets. The URL is cut at '?' and %XX-unescaped up to a NUL, as
 * libmicrohttpd hands it over. Checked: every request is answered exactly
 * once, with a status in 100..599, and nothing crashes or leaks (ASan).
 * Run from the repository root (the repository path is relative).
 */
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "server/server_internal.h"

#define MAX_HEADERS 32

#define MAX_ARGS 16

typedef struct fake_conn {
    const char *hname[MAX_HEADERS], *hval[MAX_HEADERS];
    int nh;
    char *aname[MAX_ARGS], *aval[MAX_ARGS]; /* the URL's query, split (not unescaped) */
    int na;
    int responses;
    unsigned code;
    atomic_int suspended, resumed;
} fake_conn;

static const char *f_header(void *c, const char *name)
{
    fake_conn *fc = c;
    for (int i = 0; i < fc->nh; i++)
        if (!strcasecmp(fc->hname[i], name))
            return fc->hval[i];
    return NULL;
}

static unsigned f_header_count(void *c, const char *name)
{
    fake_conn *fc = c;
    unsigned n = 0;
    for (int i = 0; i < fc->nh; i++)
        n += !strcasecmp(fc->hname[i], name);
    return n;
}

static enum MHD_Result f_respond(void *c, unsigned code, jbuf *body, const char *ctype,
                                 int close, const char *const *headers)
{
    fake_conn *fc = c;
    fc->responses++;
    fc->code = code;
    if (!body->failed && body->len && body->p[body->len] != 0)
        abort(); /* a response body is always NUL-terminated text */
    ap__jb_free(body);
    return MHD_YES;
}

static void f_suspend(void *c) { atomic_store(&((fake_conn *)c)->suspended, 1); }
static void f_resume(void *c) { atomic_store(&((fake_conn *)c)->resumed, 1); }

static const char *f_query(void *c, const char *name)
{
    fake_conn *fc = c;
    for (int i = 0; i < fc->na; i++)
        if (!strcmp(fc->aname[i], name))
            return fc->aval[i];
    return NULL;
}

static unsigned f_query_count(void *c) { return (unsigned)((fake_conn *)c)->na; }

/* A streamed body: read it a few times (a read that finds nothing parks,
   as libmicrohttpd would suspend), then the connection goes away. */
static enum MHD_Result f_stream(void *c, unsigned code, const char *ctype,
                                const ap_srv_body_source *src)
{
    fake_conn *fc = c;
    fc->responses++;
    fc->code = code;
    char buf[512];
    for (int i = 0; i < 3 && src->read(src->ctx, buf, sizeof buf) > 0; i++)
        ;
    src->done(src->ctx);
    return MHD_YES;
}

static const ap_srv_io fake_io = {f_header, f_header_count, f_respond, f_suspend, f_resume,
                                  f_query, f_query_count, f_stream};

static ap_server *srv;
/* the same server core with auth_tokens_file: inputs that carry an
   Authorization header go to it (the token parse, roles, the 401/403
   answers); FUZZ_TOKEN is its admin token, in the seeds */
static ap_server *srv_auth;
#define FUZZ_TOKEN "fuzz-admin-0123456789abcdef"
static ap_service_pass pass;

static int unhex(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                          : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* One request through the whole life; returns the status answered. */
static unsigned one_request(ap_server *srv, const char *method, const char *url, fake_conn *fc,
                            const char *body, size_t len)
{
    memset(&pass, 0, sizeof pass);
    pass.immediate = 1;
    ap_srv_req *r = ap__srv_req_begin(srv, &fake_io, fc, &pass, method, url, 0, 0);
    if (!r)
        return 0;
    ap__srv_req_headers(r);
    for (size_t off = 0; off < len && !fc->responses; off += 4096)
        ap__srv_req_body(r, body + off, len - off < 4096 ? len - off : 4096);
    if (!fc->responses)
        ap__srv_req_complete(r);
    ap__service_pass_end(srv->svc, &pass); /* the end of the event loop's pass */
    for (long spins = 0; !fc->responses && ap__srv_req_waiting(r); spins++) {
        if (atomic_load(&fc->suspended) && !atomic_load(&fc->resumed)) {
            if (spins > 100000000L)
                abort(); /* never resumed */
            sched_yield();
            continue;
        }
        ap__srv_req_resumed(r);
    }
    ap__srv_req_free(r);
    if (fc->responses != 1 || fc->code < 100 || fc->code > 599) {
        fprintf(stderr, "%s %s: %d responses, status %u\n", method, url, fc->responses,
                fc->code);
        abort();
    }
    return fc->code;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ap_server_config cfg;
    ap_error err;
    ap__server_config_default(&cfg);
    snprintf(cfg.repository, sizeof cfg.repository, "examples/models");
    cfg.workers = 1;
    cfg.max_series = 64;
    cfg.history = 300;
    if (ap__srv_create(&cfg, NULL, NULL, 0, NULL, &srv, &err) != AP_OK) {
        fprintf(stderr, "fuzz_http: %s\n", err.msg);
        exit(1);
    }
    snprintf(cfg.auth_tokens_file, sizeof cfg.auth_tokens_file, "/tmp/fuzz_http_tokens_%d",
             (int)getpid());
    FILE *tf = fopen(cfg.auth_tokens_file, "w");
    if (!tf || fprintf(tf, FUZZ_TOKEN " admin fuzz\nfuzz-read-0123456789abcdef read\n") < 0 ||
        fclose(tf)) {
        fprintf(stderr, "fuzz_http: cannot write %s\n", cfg.auth_tokens_file);
        exit(1);
    }
    cfg.rate_limit_rps = 1000;
    int arc = ap__srv_create(&cfg, NULL, NULL, 0, NULL, &srv_auth, &err);
    unlink(cfg.auth_tokens_file);
    if (arc != AP_OK) {
        fprintf(stderr, "fuzz_http: %s\n", err.msg);
        exit(1);
    }
    /* a series to predict on: 300 bars of GOOG/1d as POST /v1/candles */
    FILE *fp = fopen("examples/data/goog_daily.csv", "r");
    if (!fp) {
        fprintf(stderr, "fuzz_http: run from the repository root\n");
        exit(1);
    }
    size_t cap = 1 << 20, n = 0;
    char *body = malloc(cap), line[512];
    n += (size_t)snprintf(body, cap, "{\"symbol\": \"GOOG\", \"timeframe\": \"1d\", \"candles\": [");
    int first = 1, k = 0;
    int64_t t = 1600000000;
    while (fgets(line, sizeof line, fp) && k < 300) {
        double o, h, l, c, v;
        const char *comma = strchr(line, ',');
        if (!comma || sscanf(comma + 1, "%lf,%lf,%lf,%lf,%lf", &o, &h, &l, &c, &v) != 5)
            continue;
        n += (size_t)snprintf(body + n, cap - n, "%s[%lld, %.17g, %.17g, %.17g, %.17g, %.17g]",
                              first ? "" : ",", (long long)t, o, h, l, c, v);
        t += 86400;
        first = 0;
        k++;
    }
    fclose(fp);
    n += (size_t)snprintf(body + n, cap - n, "]}");
    fake_conn fc = {0};
    unsigned code = one_request(srv, "POST", "/v1/candles", &fc, body, n);
    free(body);
    if (code != 200) {
        fprintf(stderr, "fuzz_http: seeding the series answered %u\n", code);
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    /* request line */
    char *nl = memchr(text, '\n', size);
    char *line_end = nl ? nl : text + size;
    char *sp = memchr(text, ' ', (size_t)(line_end - text));
    if (!sp) {
        free(text);
        return 0;
    }
    *sp = 0;
    *line_end = 0;
    const char *method = text;
    char *url = sp + 1;
    char *q = strchr(url, '?');
    fake_conn fc = {0};
    if (q) {
        *q = 0;
        for (char *a = q + 1; a && *a && fc.na < MAX_ARGS;) {
            char *amp = strchr(a, '&'), *eq;
            if (amp)
                *amp = 0;
            fc.aname[fc.na] = a;
            fc.aval[fc.na] = (eq = strchr(a, '=')) ? (*eq = 0, eq + 1) : a + strlen(a);
            fc.na++;
            a = amp ? amp + 1 : NULL;
        }
    }
    char *w = url; /* %XX unescape in place; a NUL ends the URL */
    for (char *p = url; *p; p++) {
        int a, b;
        if (*p == '%' && (a = unhex(p[1])) >= 0 && (b = unhex(p[2])) >= 0) {
            *w++ = (char)(a * 16 + b);
            p += 2;
        } else {
            *w++ = *p;
        }
    }
    *w = 0;
    /* headers */
    char *p = nl ? nl + 1 : text + size;
    char *end = text + size;
    while (p < end) {
        char *e = memchr(p, '\n', (size_t)(end - p));
        if (!e)
            e = end;
        if (e == p) { /* blank line: the body follows */
            p = e + 1;
            break;
        }
        *e = 0;
        char *colon = strchr(p, ':');
        if (colon && fc.nh < MAX_HEADERS) {
            *colon = 0;
            char *v = colon + 1;
            while (*v == ' ')
                v++;
            fc.hname[fc.nh] = p;
            fc.hval[fc.nh++] = v;
        }
        p = e + 1;
    }
    size_t blen = p < end ? (size_t)(end - p) : 0;
    int with_auth = f_header(&fc, "Authorization") != NULL;
    one_request(with_auth ? srv_auth : srv, method, url, &fc, p < end ? p : "", blen);
    free(text);
    return 0;
}
