/*
 * Pushed predictions (GET /v1/stream): the stream hub.
 *
 *   ingestion ──(series close hook: one copy into a bounded queue)──► hub queue
 *   hub thread: a round = the closed bars queued now (up to 1024); per subscribed model
 *               one submit of all its rows through the service's batchers;
 *               when the round completed, its events in close order:
 *   events ──► per-series ring (Last-Event-ID) ──► each matching
 *              subscriber's bounded queue ──► its reader (the SSE response)
 *
 * A closed bar is predicted once per (series, bar, model) whatever the
 * number of subscribers: the models of a round are the union of the
 * subscriptions that match the bar's series. The ingesting thread only
 * copies the bar's feature vector into the queue (O(1), no lock held across
 * anything else); a full queue drops the closed bar and counts it, it never
 * slows ingestion. A subscriber whose queue is full (a slow consumer) gets a
 * final `event: overflow` and its stream ends.
 *
 * stream.c: subscriptions, rings, delivery, the reader side.
 * stream_round.c: the queue, the hub thread, the rounds of predictions.
 * Threads: on_close from any ingesting thread; subscribe/read/unsubscribe
 * from the HTTP threads; the hub thread. One mutex (the hub's) guards the
 * subscriptions, their queues and the rings; the closed-bar queue has its
 * own so that ingestion never waits for delivery.
 */
#ifndef AP_SERVER_STREAM_H
#define AP_SERVER_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "alphapulse.h"

typedef struct ap_server ap_server;
typedef struct ap_srv_stream ap_srv_stream;
typedef struct ap_srv_sub ap_srv_sub;

typedef struct ap_srv_stream_config {
    size_t buffer;          /* events a subscriber may have waiting (stream_buffer) */
    size_t history;         /* events kept per series for Last-Event-ID (stream_history) */
    size_t max_closed;      /* closed bars waiting for their round (beyond: dropped) */
    double keepalive_s;     /* a comment line after this long without a write */
    double linger_s;        /* a closed stream's models are predicted this long after */
    size_t max_subscribers;
} ap_srv_stream_config;

/* A series a subscription names: symbol and timeframe in seconds. */
typedef struct ap_srv_stream_key {
    char symbol[AP_SYMBOL_MAX];
    int64_t tf;
} ap_srv_stream_key;

typedef struct ap_srv_sub_spec {
    const char (*models)[65]; /* model names, resolved by the caller */
    int nmodels;
    const ap_srv_stream_key *series;
    int nseries;              /* 0: every series */
    const char *last_event_id; /* NULL: a fresh subscription */
} ap_srv_sub_spec;

/* How the hub parks and wakes a subscription's reader: park is called
   inside ap__stream_read, under the hub's lock, when there is nothing to
   read; wake from any thread once there is (never while parked is false). */
typedef struct ap_srv_sub_io {
    void (*park)(void *ctx);
    void (*wake)(void *ctx);
    void *ctx;
} ap_srv_sub_io;

typedef struct ap_srv_stream_counts {
    uint64_t closed_bars;   /* closed bars a subscription wanted */
    uint64_t closed_dropped; /* ... dropped: the queue was full */
    uint64_t events;        /* events made (one per series, bar, model) */
    uint64_t delivered;     /* events queued to subscribers */
    uint64_t overflows;     /* subscribers cut off as too slow */
    uint64_t failed;        /* predictions of closed bars that failed */
    uint64_t rounds;
    size_t subscribers;
} ap_srv_stream_counts;

int ap__stream_new(ap_server *s, const ap_srv_stream_config *cfg, ap_srv_stream **out,
                  ap_error *err);
/* Start the hub thread (after the service exists). */
int ap__stream_start(ap_srv_stream *h, ap_error *err);
/* The series store's close hook (ctx: the hub). */
void ap__stream_on_close(void *ctx, const ap_bar_closed *c);
/* Shutting down: every stream gets `event: shutdown` and ends; new
   subscriptions are refused. */
void ap__stream_end_all(ap_srv_stream *h);
/* Stop the hub thread (its round in flight completes first). Before the
   service stops. */
void ap__stream_stop(ap_srv_stream *h);
/* Free (after the HTTP front is gone: its streams unsubscribe first). */
void ap__stream_free(ap_srv_stream *h);
void ap__stream_counts(ap_srv_stream *h, ap_srv_stream_counts *out);

/*
 * Subscribe. With spec->last_event_id, the events after it that the rings
 * still hold and the subscription matches are queued first (in their order);
 * an id the rings no longer hold queues an `event: gap` instead. The
 * subscription is live from the same instant (nothing lost, nothing twice).
 * AP_ECANCELLED when shutting down, AP_EFULL past max_subscribers.
 */
int ap__stream_subscribe(ap_srv_stream *h, const ap_srv_sub_spec *spec, const ap_srv_sub_io *io,
                        ap_srv_sub **out, ap_error *err);
/* Copy what is waiting into buf (whole events, a long one over several
   calls). >0: bytes; 0: nothing now, io->park was called; -1: the stream
   is over (overflow, shutdown). */
long ap__stream_read(ap_srv_sub *sub, char *buf, size_t max);
/* The reader is gone (the connection closed): the subscription lingers for
   linger_s (its models are still predicted into the rings, for a reconnect
   with Last-Event-ID), then goes; at once if its stream ended (overflow,
   shutdown). */
void ap__stream_unsubscribe(ap_srv_sub *sub);

/* "SYMBOL/TIMEFRAME" (n bytes; a symbol may hold '/': the timeframe is
   after the last one) into *k; AP_EINVAL naming it. */
int ap__stream_key_parse(const char *spec, size_t n, ap_srv_stream_key *k, ap_error *err);
/* Canonical name of a timeframe: 1d, 4h, 15m, 90s. */
void ap__stream_tf_name(int64_t tf, char *buf, size_t size);

/*
 * The internal sink (`alphapulse worker`, docs/SCALE_OUT.md): every closed
 * bar of every series is predicted by the sink's models, in the same rounds
 * and submits as the subscriptions' (one submit per model per round), and
 * each round's signals are handed to fn on the hub thread, in close order,
 * before the round counts as done. fn may block (publishing to Redis): the
 * hub waits, the queue fills, and ingestion then waits for room instead of
 * dropping closed bars (back-pressure). Set once, before ap__stream_start.
 */
typedef struct ap_srv_signal {
    const ap_series *series;
    int64_t bar_t;          /* the closed bar's start, us */
    const char *model;
    uint32_t version;
    double prediction, confidence;
} ap_srv_signal;
typedef void (*ap_srv_signal_sink)(void *ctx, const ap_srv_signal *sig, size_t n);
int ap__stream_set_sink(ap_srv_stream *h, const char (*models)[65], int nmodels,
                       ap_srv_signal_sink fn, void *ctx, ap_error *err);
/* Wait until every bar that closed before the call has been through its
   round (the sink has been called with its signals). */
void ap__stream_flush(ap_srv_stream *h);

/* ---- between stream.c and stream_round.c ---------------------------------- */

/* One event of a round, before publication (its text is copied). */
typedef struct ap_srv_stream_event {
    const ap_series *series;
    int64_t bar_t;
    const char *model;
    const char *data; /* the JSON object, one line */
    size_t len;
} ap_srv_stream_event;

/* Publish a round's events in order: rings, subscribers, wake-ups. */
void ap__stream_publish(ap_srv_stream *h, const ap_srv_stream_event *ev, size_t n);
/* The models subscribed for series s (names, deduplicated, in the order of
   first subscription), written to names (up to max); returns the count. */
int ap__stream_models_for(ap_srv_stream *h, const ap_series *s, char (*names)[65], int max);
/* Keep-alive scan: a comment for every stream idle for keepalive_s. */
void ap__stream_keepalive(ap_srv_stream *h, uint64_t now_ns);
/* Subscriptions listed now, lingering ones too (ingestion's fast path). */
size_t ap__stream_subscribers(ap_srv_stream *h);
/* Subscriptions with a reader now. */
size_t ap__stream_active(ap_srv_stream *h);

#endif
