/* A hiredis connection that comes back (redis.h). */
#include "scale/redis.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"

int ap__redis_url_parse(const char *s, ap_redis_url *u, ap_error *err)
{
    memset(u, 0, sizeof *u);
    u->port = 6379;
    if (strncmp(s, "redis://", 8))
        return ap__error_set(err, AP_EINVAL, "redis: '%s' is not redis://HOST[:PORT][/DB]", s);
    const char *h = s + 8, *e = h + strcspn(h, ":/");
    if (e == h || (size_t)(e - h) >= sizeof u->host)
        return ap__error_set(err, AP_EINVAL, "redis: '%s' has no host (redis://HOST[:PORT][/DB])",
                            s);
    memcpy(u->host, h, (size_t)(e - h));
    if (*e == ':') {
        char *end;
        long p = strtol(e + 1, &end, 10);
        if (end == e + 1 || p < 1 || p > 65535 || (*end && *end != '/'))
            return ap__error_set(err, AP_EINVAL, "redis: '%s': the port must be 1..65535", s);
        u->port = (int)p;
        e = end;
    }
    if (*e == '/' && e[1]) {
        char *end;
        long d = strtol(e + 1, &end, 10);
        if (end == e + 1 || *end || d < 0 || d > 1000000)
            return ap__error_set(err, AP_EINVAL, "redis: '%s': the database must be a number", s);
        u->db = (int)d;
    } else if (*e == '/' && !e[1])
        ;
    else if (*e)
        return ap__error_set(err, AP_EINVAL, "redis: '%s' is not redis://HOST[:PORT][/DB]", s);
    return AP_OK;
}

void ap__rconn_init(ap_rconn *c, const ap_redis_url *u, const atomic_int *stop,
                    _Atomic uint64_t *reconnects, double timeout_s)
{
    memset(c, 0, sizeof *c);
    c->url = *u;
    c->stop = stop;
    c->reconnects = reconnects;
    c->timeout_s = timeout_s;
}

static int try_connect(ap_rconn *c)
{
    struct timeval tv = {(time_t)c->timeout_s,
                         (suseconds_t)((c->timeout_s - (double)(time_t)c->timeout_s) * 1e6)};
    redisContext *x = redisConnectWithTimeout(c->url.host, c->url.port, tv);
    if (!x || x->err) {
        snprintf(c->last_error, sizeof c->last_error, "%s", x ? x->errstr : "out of memory");
        if (x)
            redisFree(x);
        return 0;
    }
    redisSetTimeout(x, tv);
    if (c->url.db) {
        redisReply *r = redisCommand(x, "SELECT %d", c->url.db);
        int ok = r && r->type == REDIS_REPLY_STATUS;
        if (r)
            freeReplyObject(r);
        if (!ok) {
            snprintf(c->last_error, sizeof c->last_error, "SELECT %d failed", c->url.db);
            redisFree(x);
            return 0;
        }
    }
    c->c = x;
    if (c->lost && c->reconnects)
        atomic_fetch_add(c->reconnects, 1);
    c->lost = 0;
    return 1;
}

int ap__rconn_ready(ap_rconn *c)
{
    long wait_ms = 50;
    while (!c->c) {
        if (c->stop && atomic_load(c->stop))
            return 0;
        if (try_connect(c))
            break;
        struct timespec ts = {wait_ms / 1000, (wait_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        wait_ms = wait_ms * 2 > 2000 ? 2000 : wait_ms * 2;
    }
    return 1;
}

void ap__rconn_drop(ap_rconn *c)
{
    if (c->c) {
        snprintf(c->last_error, sizeof c->last_error, "%s", c->c->errstr[0] ? c->c->errstr : "?");
        redisFree(c->c);
        c->c = NULL;
        c->lost = 1;
    }
}

redisReply *ap__rconn_cmd(ap_rconn *c, int argc, const char **argv, const size_t *lens)
{
    if (!c->c)
        return NULL;
    redisReply *r = redisCommandArgv(c->c, argc, argv, lens);
    if (!r)
        ap__rconn_drop(c);
    return r;
}

redisReply *ap__rconn_cmdf(ap_rconn *c, const char *fmt, ...)
{
    if (!c->c)
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c->c, fmt, ap);
    va_end(ap);
    if (!r)
        ap__rconn_drop(c);
    return r;
}

size_t ap__rconn_pipe(ap_rconn *c, size_t n, int *argc, const char ***argv, size_t **lens,
                      redisReply **out)
{
    size_t got = 0;
    for (size_t i = 0; i < n; i++)
        out[i] = NULL;
    if (!c->c)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (redisAppendCommandArgv(c->c, argc[i], argv[i], lens[i]) != REDIS_OK) {
            ap__rconn_drop(c);
            return 0;
        }
    for (; got < n; got++) {
        void *r = NULL;
        if (redisGetReply(c->c, &r) != REDIS_OK || !r) {
            ap__rconn_drop(c);
            break;
        }
        out[got] = r;
    }
    return got;
}

void ap__rconn_close(ap_rconn *c)
{
    if (c->c)
        redisFree(c->c);
    c->c = NULL;
}
