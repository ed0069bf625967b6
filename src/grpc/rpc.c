/*
 * The RPCs of inference.GRPCInferenceService that need no model tensor
 * work: health, server metadata, model readiness, the repository (index,
 * load, unload). ModelMetadata, ModelStatistics and
 * ModelInfer are in rpc_model.c / rpc_infer.c. Every handler decodes its
 * request with protobuf-c (an undecodable message: INVALID_ARGUMENT) and
 * answers at once (call.h); the semantics are the REST handlers' (server/
 * handlers_v2*.c), so that one client sees one server over both. The
 * method table is methods.c; the answer helpers reply.c.
 */
#include "grpc/call.h"
#include "grpc/framing.h"
#include "grpc/rpc.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc_service.pb-c.h"
#include "server/server_internal.h"
#include "server/routes.h"
#include "server/v2_core.h"

/* ---- health and metadata ----------------------------------------------------------------- */

int ap__grpc_server_live(ap_grpc_call *c, const uint8_t *msg, size_t len)
{
    ProtobufCMessage *rq = ap__grpc_decode(c, &inference__server_live_request__descriptor, msg, len);
    if (!rq)
        return 1;
    protobuf_c_message_free_unpacked(rq, NULL);
    Inference__ServerLiveResponse r = INFERENCE__SERVER_LIVE_RESPONSE__INIT;
    r.live = 1; /* live while the process answers */
    return ap__grpc_reply(c, &r.base);
}

int ap__grpc_server_ready(ap_grpc_call *c, const uint8_t *msg, size_t len)
{
    ProtobufCMessage *rq = ap__grpc_decode(c, &inference__server_ready_request__descriptor, msg, len);
    if (!rq)
        return 1;
    protobuf_c_message_free_unpacked(rq, NULL);
    Inference__ServerReadyResponse r = INFERENCE__SERVER_READY_RESPONSE__INIT;
    char why[AP_ERROR_MSG_MAX];
    r.ready = !ap__v2_not_ready(c->srv->svc, atomic_load(&c->srv->draining), why, sizeof why);
    return ap__grpc_reply(c, &r.base);
}

int ap__grpc_server_metadata(ap_grpc_call *c, const uint8_t *msg, size_t len)
{
    ProtobufCMessage *rq =
        ap__grpc_decode(c, &inference__server_metadata_request__descriptor, msg, len);
    if (!rq)
        return 1;
    protobuf_c_message_free_unpacked(rq, NULL);
    Inference__ServerMetadataResponse r = INFERENCE__SERVER_METADATA_RESPONSE__INIT;
    char *ext[] = {"model_repository", "statistics"};
    r.name = "alphapulse";
    r.version = (char *)ap_version();
    r.n_extensions = 2;
    r.extensions = ext;
    return ap__grpc_reply(c, &r.base);
}

int ap__grpc_model_ready(ap_grpc_call *c, const uint8_t *msg, size_t len)
{
    Inference__ModelReadyRequest *rq = (Inference__ModelReadyRequest *)ap__grpc_decode(
        c, &inference__model_ready_request__descriptor, msg, len);
    if (!rq)
        return 1;
    uint32_t v;
    if (ap__grpc_version(c, rq->version, &v)) {
        protobuf_c_message_free_unpacked(&rq->base, NULL);
        return 1;
    }
    /* readiness never loads a model; an unknown or unloaded one is not ready
       (the protocol answers ready = false rather than an error) */
    ap_selector sel = {rq->name, AP_KIND_ANY, NULL, 1, v, 0};
    ap_lease l;
    ap_error err;
    Inference__ModelReadyResponse r = INFERENCE__MODEL_READY_RESPONSE__INIT;
    if (*rq->name && ap__service_pick(c->srv->svc, &sel, &l, &err) == AP_OK) {
        ap__service_release(&l);
        r.ready = 1;
    }
    protobuf_c_message_free_unpacked(&rq->base, NULL);
    return ap__grpc_reply(c, &r.base);
}

/* ---- repository ------------------------------------------------------------------------------ */

int ap__grpc_repo_index(ap_grpc_call *c, const uint8_t *msg, size_t len)
{
    Inference__RepositoryIndexRequest *rq = (Inference__RepositoryIndexRequest *)ap__grpc_decode(
        c, &inference__repository_index_request__descriptor, msg, len);
    if (!rq)
        return 1;
    int only_ready = rq->ready;
    int named = *rq->repository_name != 0;
    protobuf_c_message_free_unpacked(&rq->base, NULL);
    if (named) /* one repository, unnamed: a name we cannot match is refused, not ignored */
        return ap__grpc_fail(c, AP_GRPC_INVALID_ARGUMENT, "this server has one model "
                             "repository: repository_name must be empty");
    ap_v2_repo_entry *idx = NULL;
    int n = 0;
    ap_error err;
    if (ap__v2_repo_index(c->srv->svc, only_ready, &idx, &n, &err))
        return ap__grpc_fail_err(c, &err);
    Inference__RepositoryIndexResponse r = INFERENCE__REPOSITORY_INDEX_RESPONSE__INIT;
    Inference__RepositoryIndexResponse__ModelIndex *e = calloc(n ? (size_t)n : 1, sizeof *e);
    Inference__RepositoryIndexResponse__ModelIndex **pe = calloc(n ? (size_t)n : 1, sizeof *pe);
    char (*ver)[12] = calloc(n ? (size_t)n : 1, sizeof *ver);
    if (!e || !pe || !ver) {
        free(e);
        free(pe);
        free(ver);
        free(idx);
        return ap__grpc_fail(c, AP_GRPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        inference__repository_index_response__model_index__init(&e[i]);
        e[i].name = idx[i].name;
        if (idx[i].version)
            snprintf(ver[i], sizeof ver[i], "%u", idx[i].version);
        else /* client-facing: no server paths */
            ap__srv_scrub_paths(c->srv, idx[i].reason);
        e[i].version = ver[i];
        e[i].state = (char *)(idx[i].version ? "READY" : "UNAVAILABLE");
        e[i].reason = idx[i].version ? "" : idx[i].reason;
        pe[i] = &e[i];
    }
    r.n_models = (size_t)n;
    r.models = pe;
    ap__grpc_reply(c, &r.base);
    free(e);
    free(pe);
    free(ver);
    free(idx);
    return 1;
}

static int repo_check(ap_grpc_call *c, const char *repo, const char *name)
{
    if (*repo)
        return ap__grpc_fail(c, AP_GRPC_INVALID_ARGUMENT, "this server has one model "
                             "repository: repository_name must be empty"), -1;
    if (!*name)
        return ap__grpc_fail(c, AP_GRPC_INVALID_ARGUMENT, "model_name is empty"), -1;
    return 0;
}

int ap__grpc_repo_load(ap_grpc_call *c, const uint8_t *msg, size_t len)
{
    Inference__RepositoryModelLoadRequest *rq =
        (Inference__RepositoryModelLoadRequest *)ap__grpc_decode(
            c, &inference__repository_model_load_request__descriptor, msg, len);
    if (!rq)
        return 1;
    uint32_t version = 0;
    int bad = repo_check(c, rq->repository_name, rq->model_name);
    for (size_t i = 0; !bad && i < rq->n_parameters; i++) {
        /* the one parameter we know: "version" (int64 >= 1), as the REST body's */
        const char *k = rq->parameters[i]->key;
        Inference__ModelRepositoryParameter *p = rq->parameters[i]->value;
        if (strcmp(k, "version") || !p ||
            p->parameter_choice_case !=
                INFERENCE__MODEL_REPOSITORY_PARAMETER__PARAMETER_CHOICE_INT64_PARAM ||
            p->int64_param < 1 || p->int64_param > UINT32_MAX) {
            ap__grpc_fail(c, AP_GRPC_INVALID_ARGUMENT, "load parameter '%.64s': the only one "
                          "is \"version\" (int64_param >= 1)", k);
            bad = 1;
        } else
            version = (uint32_t)p->int64_param;
    }
    ap_error err;
    if (!bad && ap__service_load(c->srv->svc, rq->model_name, version, &err))
        bad = ap__grpc_fail_err(c, &err);
    protobuf_c_message_free_unpacked(&rq->base, NULL);
    if (bad)
        return 1;
    Inference__RepositoryModelLoadResponse r = INFERENCE__REPOSITORY_MODEL_LOAD_RESPONSE__INIT;
    return ap__grpc_reply(c, &r.base);
}

int ap__grpc_repo_unload(ap_grpc_call *c, const uint8_t *msg, size_t len)
{
    Inference__RepositoryModelUnloadRequest *rq =
        (Inference__RepositoryModelUnloadRequest *)ap__grpc_decode(
            c, &inference__repository_model_unload_request__descriptor, msg, len);
    if (!rq)
        return 1;
    int bad = repo_check(c, rq->repository_name, rq->model_name);
    if (!bad && rq->n_parameters)
        bad = ap__grpc_fail(c, AP_GRPC_INVALID_ARGUMENT, "unload takes no parameters "
                            "('%.64s' given)", rq->parameters[0]->key);
    ap_error err;
    if (!bad && ap__service_unload(c->srv->svc, rq->model_name, &err))
        bad = ap__grpc_fail_err(c, &err);
    protobuf_c_message_free_unpacked(&rq->base, NULL);
    if (bad)
        return 1;
    Inference__RepositoryModelUnloadResponse r = INFERENCE__REPOSITORY_MODEL_UNLOAD_RESPONSE__INIT;
    return ap__grpc_reply(c, &r.base);
}

