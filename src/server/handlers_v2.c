/*
 * KServe v2 / Open Inference Protocol (REST): health, server and model
 * metadata, readiness, the model configuration extension (the subset a
 * perf_analyzer run reads) and the statistics extension (Triton's schema).
 * Infer is handlers_v2_infer.c, the repository extension handlers_v2_repo.c.
 * A model takes one input tensor "input" of shape [N, F] (v2_core.h).
 * docs/SERVER.md.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"
#include "server/handlers.h"
#include "common/clock.h"
#include "server/v2_core.h"


/* Pick the model named in the URL (loaded on first use when on_demand;
   the version of /versions/{v} when given); on failure the error is
   answered (*ret) and the status returned. */
int ap__srv_v2_pick(ap_srv_req *r, ap_lease *l, enum MHD_Result *ret, int on_demand)
{
    ap_selector sel = {r->arg, AP_KIND_ANY, NULL, 1, r->want_version, on_demand};
    ap_error err;
    int rc = ap__service_pick(r->srv->svc, &sel, l, &err);
    r->model = l->index;
    if (rc)
        *ret = ap__srv_fail(r, &err);
    return rc;
}

enum MHD_Result ap__srv_h_v2_server(ap_srv_req *r)
{
    char store[256];
    jbuf b;
    ap__jb_init(&b, store, sizeof store);
    ap__jb_printf(&b, "{\"name\": \"alphapulse\", \"version\": \"%s\", \"extensions\": "
              "[\"model_repository\", \"model_configuration\", \"binary_tensor_data\", "
              "\"statistics\"]}\n", ap_version());
    return ap__srv_respond(r, MHD_HTTP_OK, &b, NULL);
}

/* live while the process answers; ready when serving, not draining and no
   repository model failed. Not ready is 503 with {"ready": false} (what
   KServe's own server answers; the protocol asks for a non-200 status). */
static enum MHD_Result health(ap_srv_req *r, int ready)
{
    char store[256], why[160] = "";
    jbuf b;
    ap__jb_init(&b, store, sizeof store);
    int ok = !ready || !ap__v2_not_ready(r->srv->svc, atomic_load(&r->srv->draining), why,
                                        sizeof why);
    ap__jb_printf(&b, "{\"%s\": %s", ready ? "ready" : "live", ok ? "true" : "false");
    if (!ok) {
        ap__jb_puts(&b, ", \"error\": ");
        ap__jb_str(&b, why);
    }
    ap__jb_puts(&b, "}\n");
    return ap__srv_respond(r, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, &b, NULL);
}

enum MHD_Result ap__srv_h_v2_live(ap_srv_req *r) { return health(r, 0); }
enum MHD_Result ap__srv_h_v2_ready(ap_srv_req *r) { return health(r, 1); }

enum MHD_Result ap__srv_h_v2_model_ready(ap_srv_req *r)
{
    enum MHD_Result ret = MHD_YES;
    ap_lease l;
    if (ap__srv_v2_pick(r, &l, &ret, 0)) /* readiness never loads a model */
        return ret;
    ap__service_release(&l);
    char store[160];
    jbuf b;
    ap__jb_init(&b, store, sizeof store);
    ap__jb_puts(&b, "{\"name\": ");
    ap__jb_str(&b, r->arg);
    ap__jb_puts(&b, ", \"ready\": true}\n");
    return ap__srv_respond(r, MHD_HTTP_OK, &b, NULL);
}

enum MHD_Result ap__srv_h_v2_model(ap_srv_req *r)
{
    enum MHD_Result ret = MHD_YES;
    ap_lease l;
    if (ap__srv_v2_pick(r, &l, &ret, 1))
        return ret;
    ap__service_unlock(&l);
    const ap_model_info *in = &l.info;
    jbuf b;
    ap__jb_init(&b, NULL, 0);
    ap__jb_puts(&b, "{\"name\": ");
    ap__jb_str(&b, in->name);
    ap__jb_printf(&b, ", \"versions\": [\"%u\"], \"platform\": \"alphapulse_%s\", \"inputs\": "
              "[{\"name\": \"input\", \"datatype\": \"FP64\", \"shape\": [-1, %d]}], "
              "\"outputs\": [{\"name\": \"prediction\", \"datatype\": \"FP64\", \"shape\": [-1]}, "
              "{\"name\": \"confidence\", \"datatype\": \"FP64\", \"shape\": [-1]}, "
              "{\"name\": \"outputs\", \"datatype\": \"FP64\", \"shape\": [-1, %d]}], "
              "\"parameters\": {\"kind\": \"%s\", \"target\": ",
              in->version, in->format, in->num_inputs, in->num_outputs, in->kind_name);
    ap__jb_str(&b, in->target);
    ap__jb_printf(&b, ", \"%s\": [", in->kind == AP_MODEL_ENSEMBLE ? "members" : "features");
    for (int i = 0; i < in->num_inputs; i++) {
        const char *nm = ap_model_input_name(l.model, i);
        if (nm)
            ap__jb_str(&b, nm);
        else
            ap__jb_printf(&b, "\"input_%d\"", i);
        ap__jb_puts(&b, ",");
    }
    ap__jb_uncomma(&b);
    ap__jb_puts(&b, "], \"pipeline\": ");
    ap__jb_str(&b, in->pipeline);
    ap__srv_precision_json(&b, in);
    ap__jb_puts(&b, "}}\n");
    ap__service_release(&l);
    return ap__srv_respond(r, MHD_HTTP_OK, &b, NULL);
}


/* ---- model configuration extension ---------------------------------------------- */

static void config_tensor(jbuf *b, const char *name, int64_t dim, int reshape_scalar)
{
    ap__jb_printf(b, "{\"name\": \"%s\", \"data_type\": \"TYPE_FP64\", \"dims\": [%lld]", name,
                  (long long)dim);
    if (reshape_scalar) /* answered as [N]: one value per row, no second dimension */
        ap__jb_puts(b, ", \"reshape\": {\"shape\": []}");
    ap__jb_puts(b, "},");
}

/* GET /v2/models/{m}[/versions/{v}]/config: Triton's model configuration,
   the subset perf_analyzer reads. max_batch_size is the batcher's cap on rows
   per batch (the manifest's, within the server's batch_size); dims exclude
   the batch dimension, as Triton's do when max_batch_size > 0. */
enum MHD_Result ap__srv_h_v2_config(ap_srv_req *r)
{
    enum MHD_Result ret = MHD_YES;
    ap_lease l;
    if (ap__srv_v2_pick(r, &l, &ret, 1))
        return ret;
    ap__service_unlock(&l);
    ap_v2_model_meta m;
    ap__v2_model_meta(&l.info, &m);
    const ap_server_config *c = &r->srv->cfg;
    int mbs = c->batch_size;
    if (m.max_batch_size > 0 && m.max_batch_size < mbs)
        mbs = m.max_batch_size;
    int64_t delay = c->max_queue_delay_us >= 0 ? c->max_queue_delay_us : m.max_queue_delay_us;
    jbuf b;
    ap__jb_init(&b, NULL, 0);
    ap__jb_puts(&b, "{\"name\": ");
    ap__jb_str(&b, m.name);
    ap__jb_printf(&b, ", \"platform\": \"%s\", \"backend\": \"alphapulse\", "
                  "\"version_policy\": {\"specific\": {\"versions\": [%u]}}, "
                  "\"max_batch_size\": %d, \"input\": [", m.platform, m.version, mbs);
    config_tensor(&b, m.input.name, m.input.shape[1], 0);
    ap__jb_uncomma(&b);
    ap__jb_puts(&b, "], \"output\": [");
    for (int i = 0; i < m.noutputs; i++)
        config_tensor(&b, m.outputs[i].name, m.outputs[i].rank == 2 ? m.outputs[i].shape[1] : 1,
                      m.outputs[i].rank == 1);
    ap__jb_uncomma(&b);
    ap__jb_printf(&b, "], \"dynamic_batching\": {\"max_queue_delay_microseconds\": %lld}}\n",
                  (long long)delay);
    ap__service_release(&l);
    return ap__srv_respond(r, MHD_HTTP_OK, &b, NULL);
}

/* ---- statistics extension ------------------------------------------------------- */

static void duration(jbuf *b, const char *name, const ap_v2_duration *d)
{
    ap__jb_printf(b, "\"%s\": {\"count\": %" PRIu64 ", \"ns\": %" PRIu64 "},", name, d->count,
                  d->ns);
}

static void model_stats_json(jbuf *b, const ap_v2_model_stats *s)
{
    ap__jb_puts(b, "{\"name\": ");
    ap__jb_str(b, s->name);
    ap__jb_printf(b, ", \"version\": \"%u\", \"last_inference\": %" PRIu64 ", "
                  "\"inference_count\": %" PRIu64 ", \"execution_count\": %" PRIu64 ", "
                  "\"inference_stats\": {", s->version, s->last_inference, s->inference_count,
                  s->execution_count);
    duration(b, "success", &s->success);
    duration(b, "fail", &s->fail);
    duration(b, "queue", &s->queue);
    duration(b, "compute_input", &s->compute_input);
    duration(b, "compute_infer", &s->compute_infer);
    duration(b, "compute_output", &s->compute_output);
    duration(b, "cache_hit", &s->cache_hit);
    duration(b, "cache_miss", &s->cache_miss);
    ap__jb_uncomma(b);
    ap__jb_puts(b, "}, \"batch_stats\": [");
    for (int i = 0; i < s->nbatch; i++) {
        const ap_v2_batch_stat *bs = &s->batch[i];
        ap__jb_printf(b, "{\"batch_size\": %" PRIu64 ", ", bs->batch_size);
        duration(b, "compute_input", &bs->compute_input);
        duration(b, "compute_infer", &bs->compute_infer);
        duration(b, "compute_output", &bs->compute_output);
        ap__jb_uncomma(b);
        ap__jb_puts(b, "},");
    }
    ap__jb_uncomma(b);
    ap__jb_puts(b, "]},");
}

/* GET /v2/models/stats (every model served since start) and
   /v2/models/{m}[/versions/{v}]/stats (404 for a model never served, or
   not serving that version now). */
enum MHD_Result ap__srv_h_v2_stats(ap_srv_req *r)
{
    ap_service *svc = r->srv->svc;
    jbuf b;
    ap__jb_init(&b, NULL, 0);
    ap__jb_puts(&b, "{\"model_stats\": [");
    int one = r->route && strstr(r->route->path, "{model}") != NULL;
    int from = 0, to = ap__service_slots(svc);
    if (one) {
        from = ap__service_slot_find(svc, r->arg);
        r->model = from;
        if (from < 0) {
            ap__jb_free(&b);
            return ap__srv_error(r, MHD_HTTP_NOT_FOUND, "unknown model '%s' (never served)",
                                 r->arg);
        }
        to = from + 1;
    }
    ap_v2_model_stats *st = malloc(sizeof *st);
    if (!st) {
        ap__jb_free(&b);
        return ap__srv_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    for (int i = from; i < to; i++) {
        ap_error err;
        if (ap__v2_model_stats(svc, i, one ? r->want_version : 0, st, &err) != AP_OK) {
            free(st);
            ap__jb_free(&b);
            return ap__srv_fail(r, &err);
        }
        model_stats_json(&b, st);
    }
    free(st);
    ap__jb_uncomma(&b);
    ap__jb_puts(&b, "]}\n");
    return ap__srv_respond(r, MHD_HTTP_OK, &b, NULL);
}
