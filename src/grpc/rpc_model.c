/*
 * ModelMetadata and ModelStatistics: the model as the protocol sees it and
 * Triton's statistics, both from server/v2_core (the REST handlers read the
 * same), written as protobuf.
 */
#include "grpc/framing.h"
#include "grpc/rpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc_service.pb-c.h"
#include "server/server_internal.h"
#include "server/v2_core.h"

typedef Inference__ModelMetadataResponse__TensorMetadata tmeta;

static void tensor(tmeta *t, const ap_v2_tensor_meta *m, int64_t *shape)
{
    inference__model_metadata_response__tensor_metadata__init(t);
    t->name = (char *)m->name;
    t->datatype = (char *)m->datatype;
    for (int i = 0; i < m->rank; i++)
        shape[i] = m->shape[i];
    t->n_shape = (size_t)m->rank;
    t->shape = shape;
}

int ap__grpc_model_metadata(ap_grpc_call *c, const uint8_t *msg, size_t len)
{
    Inference__ModelMetadataRequest *rq = (Inference__ModelMetadataRequest *)ap__grpc_decode(
        c, &inference__model_metadata_request__descriptor, msg, len);
    if (!rq)
        return 1;
    uint32_t v;
    if (ap__grpc_version(c, rq->version, &v)) {
        protobuf_c_message_free_unpacked(&rq->base, NULL);
        return 1;
    }
    ap_selector sel = {rq->name, AP_KIND_ANY, NULL, 1, v, 1};
    ap_lease l;
    ap_error err;
    int rc = *rq->name ? ap__service_pick(c->srv->svc, &sel, &l, &err)
                       : ap__error_set(&err, AP_EINVAL, "name is empty");
    protobuf_c_message_free_unpacked(&rq->base, NULL);
    if (rc)
        return ap__grpc_fail_err(c, &err);
    ap__service_unlock(&l);
    ap_v2_model_meta m;
    ap__v2_model_meta(&l.info, &m);
    tmeta in, outs[AP_V2_MAX_OUTPUTS], *pin = &in, *pouts[AP_V2_MAX_OUTPUTS];
    int64_t sh_in[2], sh_out[AP_V2_MAX_OUTPUTS][2];
    tensor(&in, &m.input, sh_in);
    for (int i = 0; i < m.noutputs; i++) {
        tensor(&outs[i], &m.outputs[i], sh_out[i]);
        pouts[i] = &outs[i];
    }
    char *versions[] = {m.version_str};
    Inference__ModelMetadataResponse r = INFERENCE__MODEL_METADATA_RESPONSE__INIT;
    r.name = (char *)m.name;
    r.n_versions = 1;
    r.versions = versions;
    r.platform = m.platform;
    r.n_inputs = 1;
    r.inputs = &pin;
    r.n_outputs = (size_t)m.noutputs;
    r.outputs = pouts;
    ap__grpc_reply(c, &r.base);
    ap__service_release(&l);
    return 1;
}

/* ---- statistics ------------------------------------------------------------------------ */

typedef Inference__StatisticDuration dur;

static dur *duration(dur *d, const ap_v2_duration *v)
{
    inference__statistic_duration__init(d);
    d->count = v->count;
    d->ns = v->ns;
    return d;
}

/* One model's statistics as protobuf, into storage that lives with it. */
typedef struct stat_msg {
    Inference__ModelStatistics ms;
    Inference__InferStatistics is;
    dur d[6];
    char version[12];
    Inference__InferBatchStatistics bs[AP_BATCH_SIZE_BUCKETS];
    Inference__InferBatchStatistics *pbs[AP_BATCH_SIZE_BUCKETS];
    dur bd[AP_BATCH_SIZE_BUCKETS][3];
} stat_msg;

static void stat_fill(stat_msg *o, const ap_v2_model_stats *st)
{
    inference__model_statistics__init(&o->ms);
    inference__infer_statistics__init(&o->is);
    o->ms.name = (char *)st->name;
    snprintf(o->version, sizeof o->version, "%u", st->version);
    o->ms.version = st->version ? o->version : "";
    o->ms.last_inference = st->last_inference;
    o->ms.inference_count = st->inference_count;
    o->ms.execution_count = st->execution_count;
    o->is.success = duration(&o->d[0], &st->success);
    o->is.fail = duration(&o->d[1], &st->fail);
    o->is.queue = duration(&o->d[2], &st->queue);
    o->is.compute_input = duration(&o->d[3], &st->compute_input);
    o->is.compute_infer = duration(&o->d[4], &st->compute_infer);
    o->is.compute_output = duration(&o->d[5], &st->compute_output);
    o->ms.inference_stats = &o->is;
    for (int k = 0; k < st->nbatch; k++) {
        Inference__InferBatchStatistics *b = &o->bs[k];
        inference__infer_batch_statistics__init(b);
        b->batch_size = st->batch[k].batch_size;
        b->compute_input = duration(&o->bd[k][0], &st->batch[k].compute_input);
        b->compute_infer = duration(&o->bd[k][1], &st->batch[k].compute_infer);
        b->compute_output = duration(&o->bd[k][2], &st->batch[k].compute_output);
        o->pbs[k] = b;
    }
    o->ms.n_batch_stats = (size_t)st->nbatch;
    o->ms.batch_stats = o->pbs;
}

int ap__grpc_model_statistics(ap_grpc_call *c, const uint8_t *msg, size_t len)
{
    Inference__ModelStatisticsRequest *rq = (Inference__ModelStatisticsRequest *)ap__grpc_decode(
        c, &inference__model_statistics_request__descriptor, msg, len);
    if (!rq)
        return 1;
    ap_service *svc = c->srv->svc;
    uint32_t v;
    int from = 0, to = ap__service_slots(svc), one = *rq->name != 0;
    if (ap__grpc_version(c, rq->version, &v)) {
        protobuf_c_message_free_unpacked(&rq->base, NULL);
        return 1;
    }
    if (!one && v) {
        protobuf_c_message_free_unpacked(&rq->base, NULL);
        return ap__grpc_fail(c, AP_GRPC_INVALID_ARGUMENT, "a version needs a model name");
    }
    if (one) {
        from = ap__service_slot_find(svc, rq->name);
        if (from < 0) {
            ap__grpc_fail(c, AP_GRPC_NOT_FOUND, "unknown model '%.128s' (never served)",
                          rq->name);
            protobuf_c_message_free_unpacked(&rq->base, NULL);
            return 1;
        }
        to = from + 1;
    }
    protobuf_c_message_free_unpacked(&rq->base, NULL);
    size_t n = (size_t)(to - from);
    stat_msg *o = calloc(n ? n : 1, sizeof *o);
    Inference__ModelStatistics **po = calloc(n ? n : 1, sizeof *po);
    ap_v2_model_stats *st = malloc(sizeof *st);
    if (!o || !po || !st) {
        free(o);
        free(po);
        free(st);
        return ap__grpc_fail(c, AP_GRPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    /* the names must outlive the packing: each stat_msg keeps its copy */
    char (*names)[128] = calloc(n ? n : 1, sizeof *names);
    int bad = !names;
    for (int i = from; i < to && !bad; i++) {
        ap_error err;
        if (ap__v2_model_stats(svc, i, v, st, &err) != AP_OK) {
            ap__grpc_fail_err(c, &err);
            bad = 1;
            break;
        }
        stat_fill(&o[i - from], st);
        snprintf(names[i - from], sizeof names[i - from], "%s", st->name);
        o[i - from].ms.name = names[i - from];
        po[i - from] = &o[i - from].ms;
    }
    if (!bad) {
        Inference__ModelStatisticsResponse r = INFERENCE__MODEL_STATISTICS_RESPONSE__INIT;
        r.n_model_stats = n;
        r.model_stats = po;
        ap__grpc_reply(c, &r.base);
    } else if (!names)
        ap__grpc_fail(c, AP_GRPC_RESOURCE_EXHAUSTED, "out of memory");
    free(names);
    free(st);
    free(po);
    free(o);
    return 1;
}
