/* The stream hub's state, shared by stream.c and stream_round.c only. */
#ifndef AP_SERVER_STREAM_HUB_H
#define AP_SERVER_STREAM_HUB_H

#include <pthread.h>
#include <stdatomic.h>

#include "server/stream.h"

/* An event, immutable once made; refcounted under the hub's lock (each
   ring and subscriber queue that holds it). */
typedef struct sev {
    int refs;
    uint64_t seq;           /* publication order, over every series */
    const ap_series *series;
    int64_t bar_ms;
    char model[65];
    size_t len;
    char text[];            /* "event: prediction\nid: ...\ndata: {...}\n\n" */
} sev;

/* The recent events of one series (a ring of cfg.history). */
typedef struct sring {
    const ap_series *series; /* NULL: a free slot of the table */
    sev **ev;
    size_t head, n;
} sring;

/* A closed bar waiting for its round. */
typedef struct closed_item {
    const ap_series *series;
    int64_t t;
    uint64_t bars;
    uint64_t t_ns; /* when it closed */
    double f[AP_FEATURE_COUNT];
} closed_item;

struct ap_srv_stream {
    ap_server *srv;
    ap_srv_stream_config cfg;

    pthread_mutex_t mu; /* everything below up to the queue */
    ap_srv_sub *subs;
    _Atomic size_t nsubs; /* listed, lingering ones too (ingestion's fast path) */
    size_t active;        /* with a reader */
    int closing;
    uint64_t seq;
    sring *rings; /* open addressing on the series pointer */
    size_t rcap, rn;

    pthread_mutex_t qmu; /* the closed-bar queue */
    pthread_cond_t qcv;
    closed_item *q; /* [qhead, qn) waiting */
    size_t qhead, qn, qcap;
    int stop;
    pthread_t th;
    int started;

    _Atomic uint64_t closed_bars, closed_dropped, events, delivered, overflows, failed, rounds;

    /* The internal sink (ap__stream_set_sink; set before the hub starts,
       read-only after): its models are predicted for every closed bar, and
       a full queue makes ingestion wait (qspace) instead of dropping. */
    ap_srv_signal_sink sink;
    void *sink_ctx;
    char (*sink_models)[65];
    int nsink_models;
    pthread_cond_t qspace; /* the hub took bars (a waiting ingester may go on) */
    pthread_cond_t qdone;  /* a round is over (ap__stream_flush) */
    uint64_t queued, done; /* closed bars queued, and finished with (under qmu) */
};

/* Free the rings and any subscription left (stream.c; the hub's end). */
void ap__stream_free_rings(ap_srv_stream *h);

#endif
