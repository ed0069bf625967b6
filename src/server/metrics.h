/* Request metrics and the Prometheus page (metrics.c). */
#ifndef AP_SERVER_METRICS_H
#define AP_SERVER_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "alphapulse/registry.h"
#include "server/jbuf.h"
#include "server/routes.h"

#define SRV_MAX_MODELS AP_REGISTRY_MAX_MODELS
typedef struct ap_server ap_server;

/* HTTP statuses counted by value; anything else is counted as "other". */
#define SRV_NCODES 14

typedef struct ap_srv_metrics {
    /* [model slot + 1 (0: none)][endpoint][status] */
    _Atomic uint64_t requests[SRV_MAX_MODELS + 1][EP_COUNT][SRV_NCODES];
    _Atomic uint64_t lat_bucket[EP_COUNT][AP_LATENCY_BUCKETS]; /* non-cumulative */
    _Atomic uint64_t lat_sum_ns[EP_COUNT];
    _Atomic uint64_t lat_count[EP_COUNT];
    const char *_Atomic ep_name[EP_COUNT]; /* labels, from the route table */
    _Atomic uint64_t body_bytes;
    _Atomic uint64_t bars_ingested, bars_rejected;
    /* inference requests answered 504 because of their deadline: before any
       work (they waited too long to be read), or after (finished too late) */
    _Atomic uint64_t deadline_before, deadline_after;
    _Atomic uint64_t batch_items; /* items of /v1/predict/batch requests (after "symbols") */
} ap_srv_metrics;

/* The HTTP status counted at index ci of requests[][][] (0: "other"). */
int ap__srv_metrics_code(int ci);
/* Count one answer; ep_name: the route's name (the label; NULL: unknown). */
void ap__srv_metrics_record(ap_srv_metrics *m, int model, int ep, const char *ep_name, int code,
                           uint64_t latency_ns);
void ap__srv_metrics_render(ap_server *s, jbuf *out);

#endif
