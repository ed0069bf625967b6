/* The endpoint handlers (the final call of a request, body complete), named
   in the route table (routes.c). */
#ifndef AP_SERVER_HANDLERS_H
#define AP_SERVER_HANDLERS_H

#include "server/request.h"

/* /v1: handlers_v1.c (bars, predictions, results) */
enum MHD_Result ap__srv_h_candles(ap_srv_req *r);
enum MHD_Result ap__srv_h_series_delete(ap_srv_req *r);
enum MHD_Result ap__srv_h_predict(ap_srv_req *r);
enum MHD_Result ap__srv_h_result_get(ap_srv_req *r);
enum MHD_Result ap__srv_h_result_delete(ap_srv_req *r);
enum MHD_Result ap__srv_v1_finish(ap_srv_req *r); /* after an inference completed */
/* The prediction object of /v1 (without its closing brace): the single
   endpoints, /v1/results and each item of /v1/predict/batch. */
void ap__srv_prediction_json(jbuf *b, uint64_t id, const char *symbol, const char *tf,
                             const ap_model *m, const ap_model_info *in, double pred, double conf,
                             const double *outs, int nouts, int64_t bar_time, int undefined,
                             uint64_t bars, uint64_t latency_us, uint64_t queue_us,
                             uint64_t compute_us);
/* POST /v1/predict/batch: handlers_batch.c. _finish after its submits
   completed; _free: the request's batch (NULL is fine). */
enum MHD_Result ap__srv_h_predict_batch(ap_srv_req *r);
enum MHD_Result ap__srv_batch_finish(ap_srv_req *r);
void ap__srv_batch_free(struct ap_srv_batch *b);
/* Warm-up of a feature row for a model (handlers_v1.c; every /v1 path and
   the streams): *undefined = the features it reads that are still NaN;
   AP_ECONFLICT naming series sym/tfs when it has fewer than the manifest's
   min_bars bars (err NULL: no message, sym and tfs unused). */
int ap__srv_warmup(const ap_model_info *in, const unsigned char *used, const double *row,
                   const char *sym, const char *tfs, uint64_t bars, int *undefined,
                   ap_error *err);
/* GET /v1/stream: handlers_stream.c */
enum MHD_Result ap__srv_h_stream(ap_srv_req *r);
/* /v1 views and pages: handlers_info.c */
/* "pattern", "regime", "ensemble", "raw" (a repository listing's kinds) */
const char *ap__srv_kind_name(int kind);
enum MHD_Result ap__srv_h_root(ap_srv_req *r);
enum MHD_Result ap__srv_h_metrics(ap_srv_req *r);
enum MHD_Result ap__srv_h_models(ap_srv_req *r);
enum MHD_Result ap__srv_h_stats(ap_srv_req *r);
/* GET /v1/status: handlers_status.c (the status page's data) */
enum MHD_Result ap__srv_h_status(ap_srv_req *r);
/* A model's precision fields, each after ", " (/v1/models, /v2 metadata
   parameters): precision, precision_requested, precision_note, node_bytes,
   model_bytes_full, model_bytes_reduced, precision_deviation. */
void ap__srv_precision_json(jbuf *b, const ap_model_info *in);
/* KServe v2: handlers_v2.c (health, metadata, configuration, statistics),
   handlers_v2_infer.c (infer), handlers_v2_repo.c (the repository extension) */
enum MHD_Result ap__srv_h_v2_live(ap_srv_req *r);
enum MHD_Result ap__srv_h_v2_ready(ap_srv_req *r);
enum MHD_Result ap__srv_h_v2_server(ap_srv_req *r);
enum MHD_Result ap__srv_h_v2_model(ap_srv_req *r);
enum MHD_Result ap__srv_h_v2_model_ready(ap_srv_req *r);
enum MHD_Result ap__srv_h_v2_infer(ap_srv_req *r);
enum MHD_Result ap__srv_h_v2_config(ap_srv_req *r);
enum MHD_Result ap__srv_h_v2_stats(ap_srv_req *r);
enum MHD_Result ap__srv_h_v2_repo_index(ap_srv_req *r);
enum MHD_Result ap__srv_h_v2_load(ap_srv_req *r);
enum MHD_Result ap__srv_h_v2_unload(ap_srv_req *r);
enum MHD_Result ap__srv_v2_finish(ap_srv_req *r);
/* Pick the model named in the URL (loaded on first use when on_demand; the
   version of /versions/{v} when given); on failure the error is answered
   (*ret) and the status returned. */
int ap__srv_v2_pick(ap_srv_req *r, ap_lease *l, enum MHD_Result *ret, int on_demand);

#endif
