/*
 * The worker's state, shared by its parts (docs/SCALE_OUT.md):
 *   worker.c   life cycle, the server it runs on, /metrics lines
 *   lease.c    the lease thread: heartbeat, leases, balance
 *   consume.c  the consumer thread: XREADGROUP, ingestion, flush, XACK
 *   takeover.c rebuilding a partition from its stream, XAUTOCLAIM
 *   signals.c  the hub's sink: idempotent publication (one Lua script)
 *   entry.c    one entry in (or dead-lettered), XACK, the group, dropping series
 *   log.c      the log line
 *
 * A partition's state moves under mu: the lease thread makes it ACQUIRED
 * (lease won), RELEASE (an extra to give up) or LOST (renewal refused); the
 * consumer thread, the only one to touch the partition's series, makes
 * ACQUIRED -> ACTIVE (rebuilt), RELEASE -> DROPPED (series dropped; the
 * lease thread then deletes the lease -> IDLE), LOST -> IDLE.
 */
#ifndef AP_SCALE_INTERNAL_H
#define AP_SCALE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "scale/redis.h"
#include "scale/scale.h"
#include "scale/schema.h"
#include "server/server_internal.h"

enum { P_IDLE, P_ACQUIRED, P_ACTIVE, P_RELEASE, P_DROPPED, P_LOST };

typedef struct ap_scale_part {
    int state;           /* under mu */
    atomic_int muted;    /* rebuilding: its signals are not published */
    int64_t lag, pending; /* XINFO GROUPS, by the lease thread (under mu) */
    uint64_t lease_t_ns; /* when it was won (take-over timing) */
    uint64_t valid_ns;   /* the lease surely holds until then (sent before + lease_ms) */
} ap_scale_part;

typedef struct ap_scale_counters {
    _Atomic uint64_t consumed, ingested, dead, acked, signals, duplicates, claimed, reconnects,
        takeovers, releases, lost, sink_errors, replayed;
} ap_scale_counters;

struct ap_worker {
    ap_server_config cfg;
    ap_server *srv;
    ap_worker_log_fn log;
    void *log_ctx;
    ap_redis_url url;
    char node[64];
    uint32_t P;
    atomic_int stop;
    atomic_int sink_gave_up; /* signals were abandoned (stopping): nothing more is acked */

    pthread_mutex_t mu;
    ap_scale_part *parts;
    int live_nodes;

    ap_rconn pub; /* the hub thread's (signals.c) */
    pthread_t lease_th, cons_th;
    int lease_started, cons_started;
    ap_scale_counters n;
    _Atomic uint64_t last_takeover_us; /* lease won -> partition rebuilt and live */
};

void ap__worker_log(ap_worker *w, const char *fmt, ...) AP_PRINTF(2, 3);
void *ap__scale_lease_main(void *arg);
void *ap__scale_consume_main(void *arg);
/* The hub's sink (ap_srv_signal_sink). */
void ap__scale_sink(void *ctx, const ap_srv_signal *sig, size_t n);

/* consume.c: one entry of partition p into the series store; a refused one
   goes to ap:bars:dead unless quiet (a rebuild). AP_OK, or the connection
   failed while dead-lettering (AP_EIO: retry the batch's end later). */
int ap__scale_entry(ap_worker *w, ap_rconn *c, uint32_t p, const redisReply *entry, int quiet);
/* Drop the series of partition p from the store. */
void ap__scale_drop_series(ap_worker *w, uint32_t p);
/* XACK ids of key, retrying until done or stopping; 0 when done. */
int ap__scale_ack(ap_worker *w, ap_rconn *c, const char *key, const char **ids, size_t n);
/* takeover.c: make partition p live on this node (rebuild + claim). */
int ap__scale_takeover(ap_worker *w, ap_rconn *c, uint32_t p);
/* XGROUP CREATE ... MKSTREAM (an existing group is fine). */
int ap__scale_group(ap_worker *w, ap_rconn *c, const char *key);

#endif
