/*
 * One synchronous hiredis connection with reconnect and backoff (each
 * thread of the worker owns one: hiredis contexts are not shared).
 *
 *   ap_rconn c;
 *   ap__rconn_init(&c, &url, &stop, &reconnects);
 *   redisReply *r = ap__rconn_cmd(&c, argc, argv, lens);  // NULL: connection lost
 *   ...freeReplyObject(r)...
 *   ap__rconn_close(&c);
 *
 * A command that fails on the connection (Redis restarting, a reset) drops
 * the context; the next ap__rconn_ready connects again, waiting 50 ms,
 * 100 ms, ... up to 2 s between tries, until *stop is set.
 */
#ifndef AP_SCALE_REDIS_H
#define AP_SCALE_REDIS_H

#include <hiredis/hiredis.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "alphapulse/common.h"

typedef struct ap_redis_url {
    char host[256];
    int port;
    int db;
} ap_redis_url;

/* redis://HOST[:PORT][/DB] (port 6379, db 0 by default); AP_EINVAL naming
   what is wrong. */
int ap__redis_url_parse(const char *s, ap_redis_url *u, ap_error *err);

typedef struct ap_rconn {
    redisContext *c;
    ap_redis_url url;
    const atomic_int *stop;
    _Atomic uint64_t *reconnects; /* counted when a lost connection comes back */
    int lost;                     /* it was up once and failed since */
    double timeout_s;
    char last_error[128];
} ap_rconn;

void ap__rconn_init(ap_rconn *c, const ap_redis_url *u, const atomic_int *stop,
                    _Atomic uint64_t *reconnects, double timeout_s);
/* Connected (1), or 0 once *stop is set; retries with backoff meanwhile. */
int ap__rconn_ready(ap_rconn *c);
/* One command; NULL when the connection failed (it is dropped). */
redisReply *ap__rconn_cmd(ap_rconn *c, int argc, const char **argv, const size_t *lens);
/* printf-style (hiredis' format, %s and %b only). */
redisReply *ap__rconn_cmdf(ap_rconn *c, const char *fmt, ...);
/* Pipelined: n commands, their replies into out[] (NULL on failure: every
   reply not read is NULL and the connection is dropped). Returns replies read. */
size_t ap__rconn_pipe(ap_rconn *c, size_t n, int *argc, const char ***argv, size_t **lens,
                      redisReply **out);
void ap__rconn_drop(ap_rconn *c);
void ap__rconn_close(ap_rconn *c);

#endif
