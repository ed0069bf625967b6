/*
 * `alphapulse worker`: a node of the Redis Streams scale-out
 * (docs/SCALE_OUT.md). It runs the server of `serve` (series store,
 * features, service, batchers, the stream hub; HTTP only with http = 1) and
 * feeds it from the partitions it leases, publishing every closed bar's
 * signals through the hub's sink.
 *
 *   ap_worker *w;
 *   ap__worker_create(&cfg, http, log, ctx, &w, &err);
 *   ... until SIGTERM ...
 *   ap__worker_stop(w);   // finish the batch in hand, give the leases back
 *   ap__worker_free(w);
 */
#ifndef AP_SCALE_SCALE_H
#define AP_SCALE_SCALE_H

#include "alphapulse/common.h"
#include "server/config.h"

typedef struct ap_worker ap_worker;
typedef void (*ap_worker_log_fn)(void *ctx, const char *msg);

int ap__worker_create(const ap_server_config *cfg, int http, ap_worker_log_fn log, void *ctx,
                      ap_worker **out, ap_error *err);
const char *ap__worker_node(const ap_worker *w);
int ap__worker_port(const ap_worker *w);
int ap__worker_models(ap_worker *w);
void ap__worker_stop(ap_worker *w);
void ap__worker_free(ap_worker *w);

#endif
