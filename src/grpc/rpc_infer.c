/*
 * ModelInfer: the request's one input tensor (raw_input_contents, or the
 * typed contents field its datatype names) checked and converted by
 * server/v2_core exactly as the REST infer does, submitted to the model's
 * raw-row batcher through the service (the loop's pass defers it to the
 * pass's batch), answered when the completion comes back to the loop.
 * Outputs are FP64: raw_output_contents when the inputs came raw (as
 * Triton does), else contents.fp64_contents.
 */
#include "grpc/framing.h"
#include "grpc/rpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "grpc_service.pb-c.h"
#include "server/server_internal.h"
#include "server/v2_core.h"

#define ID_MAX 256

typedef struct infer_state {
    ap_model *held;          /* the version answered for (its name, version) */
    ap_model_info info;
    char id[ID_MAX + 1];
    int mask;                /* AP_V2_OUT_* */
    int raw;                 /* inputs came raw: answer raw */
    /* the completion's copy */
    int status;
    char msg[AP_GRPC_MSG_MAX];
    double *out;
    size_t nrows, nout;
} infer_state;

void ap__grpc_call_clear(ap_grpc_call *c)
{
    infer_state *s = c->infer;
    if (!s)
        return;
    ap_model_release(s->held);
    free(s->out);
    free(s);
    c->infer = NULL;
}

static void on_done(void *user, const ap_batch_completion *b)
{
    ap_grpc_call *c = user;
    infer_state *s = c->infer;
    s->status = b->status;
    if (b->status == AP_OK) {
        size_t n = b->nrows * b->nout;
        s->out = malloc((n ? n : 1) * sizeof *s->out);
        if (s->out) {
            memcpy(s->out, b->out, n * sizeof *s->out);
            s->nrows = b->nrows;
            s->nout = b->nout;
        } else {
            s->status = AP_ENOMEM;
            snprintf(s->msg, sizeof s->msg, "out of memory for %zu outputs", n);
        }
    } else
        snprintf(s->msg, sizeof s->msg, "%s", b->message);
    c->on_complete(c);
}

/* The typed contents into X: the field the datatype names; any other field
   with elements is refused rather than ignored. */
static int typed(int dt, const Inference__InferTensorContents *t, size_t count, double *X,
                 char *why, size_t whysize)
{
    if (!t) {
        snprintf(why, whysize, "inputs[0] has no contents and there is no raw_input_contents");
        return -1;
    }
    size_t nfields = !!t->n_bool_contents + !!t->n_int_contents + !!t->n_int64_contents +
                     !!t->n_uint_contents + !!t->n_uint64_contents + !!t->n_fp32_contents +
                     !!t->n_fp64_contents + !!t->n_bytes_contents;
    if (nfields > 1) {
        snprintf(why, whysize, "inputs[0]: contents has elements in %zu fields; a %s tensor "
                 "uses one", nfields, ap__v2_dtype_name(dt));
        return -1;
    }
    switch (dt) {
    case AP_V2_BOOL:
        return ap__v2_from_bools(dt, t->bool_contents, t->n_bool_contents, count, X, why,
                                 whysize);
    case AP_V2_INT8:
    case AP_V2_INT16:
    case AP_V2_INT32:
        return ap__v2_from_i32(dt, t->int_contents, t->n_int_contents, count, X, why, whysize);
    case AP_V2_INT64:
        return ap__v2_from_i64(dt, t->int64_contents, t->n_int64_contents, count, X, why,
                               whysize);
    case AP_V2_UINT8:
    case AP_V2_UINT16:
    case AP_V2_UINT32:
        return ap__v2_from_u32(dt, t->uint_contents, t->n_uint_contents, count, X, why, whysize);
    case AP_V2_UINT64:
        return ap__v2_from_u64(dt, t->uint64_contents, t->n_uint64_contents, count, X, why,
                               whysize);
    case AP_V2_FP32:
        return ap__v2_from_f32(dt, t->fp32_contents, t->n_fp32_contents, count, X, why,
                               whysize);
    case AP_V2_FP64:
        return ap__v2_from_f64(dt, t->fp64_contents, t->n_fp64_contents, count, X, why,
                               whysize);
    default: /* FP16 has no typed field in the protocol */
        snprintf(why, whysize, "inputs[0]: %s elements must come as raw_input_contents",
                 ap__v2_dtype_name(dt));
        return -1;
    }
}

/* Check the request against the model and build its rows (*X malloc'd). */
static int parse(ap_grpc_call *c, const Inference__ModelInferRequest *rq,
                 const ap_v2_model_meta *meta, infer_state *s, double **X, size_t *n, char *why,
                 size_t whysize)
{
    if (strlen(rq->id) > ID_MAX) {
        snprintf(why, whysize, "id must be at most %d bytes", ID_MAX);
        return -1;
    }
    strcpy(s->id, rq->id);
    if (rq->n_parameters) {
        snprintf(why, whysize, "unknown request parameter '%.64s' (this server takes none)",
                 rq->parameters[0]->key);
        return -1;
    }
    s->mask = rq->n_outputs ? 0 : AP_V2_OUT_ALL;
    for (size_t i = 0; i < rq->n_outputs; i++) {
        int bit = ap__v2_output_bit(rq->outputs[i]->name);
        if (!bit) {
            ap__v2_output_unknown(rq->outputs[i]->name, i, why, whysize);
            return -1;
        }
        if (rq->outputs[i]->n_parameters) {
            snprintf(why, whysize, "outputs[%zu]: unknown parameter '%.64s' (none are taken)", i,
                     rq->outputs[i]->parameters[0]->key);
            return -1;
        }
        s->mask |= bit;
    }
    if (rq->n_inputs != 1) {
        snprintf(why, whysize, "inputs must be one tensor \"%s\" of shape [N, %lld] (got %zu)",
                 AP_V2_INPUT_NAME, (long long)meta->input.shape[1], rq->n_inputs);
        return -1;
    }
    const Inference__ModelInferRequest__InferInputTensor *t = rq->inputs[0];
    if (t->n_parameters) {
        snprintf(why, whysize, "inputs[0]: unknown parameter '%.64s' (none are taken)",
                 t->parameters[0]->key);
        return -1;
    }
    ap_v2_input in = {t->name, t->datatype, t->shape, t->n_shape};
    ap_v2_input_plan plan;
    if (ap__v2_check_input(meta, &in, (size_t)c->srv->cfg.max_queue_rows, &plan, why, whysize))
        return -1;
    s->raw = rq->n_raw_input_contents > 0;
    if (s->raw && rq->n_raw_input_contents != rq->n_inputs) {
        snprintf(why, whysize, "raw_input_contents has %zu entries for %zu inputs",
                 rq->n_raw_input_contents, rq->n_inputs);
        return -1;
    }
    if (s->raw && t->contents) {
        snprintf(why, whysize, "inputs[0] has contents and raw_input_contents: one or the "
                 "other");
        return -1;
    }
    *n = plan.nrows;
    *X = malloc((plan.count ? plan.count : 1) * sizeof **X);
    if (!*X) {
        snprintf(why, whysize, "out of memory for %zu values", plan.count);
        return -1;
    }
    int rc = s->raw ? ap__v2_from_raw(plan.dtype, rq->raw_input_contents[0].data,
                                      rq->raw_input_contents[0].len, plan.count, *X, why, whysize)
                    : typed(plan.dtype, t->contents, plan.count, *X, why, whysize);
    if (rc) {
        free(*X);
        *X = NULL;
    }
    return rc;
}

int ap__grpc_model_infer(ap_grpc_call *c, const uint8_t *msg, size_t len)
{
    if (ap__clock_ns() >= c->deadline_ns)
        return ap__grpc_fail(c, AP_GRPC_DEADLINE_EXCEEDED, "deadline passed before the "
                             "request was read");
    Inference__ModelInferRequest *rq = (Inference__ModelInferRequest *)ap__grpc_decode(
        c, &inference__model_infer_request__descriptor, msg, len);
    if (!rq)
        return 1;
    uint32_t v;
    if (ap__grpc_version(c, rq->model_version, &v)) {
        protobuf_c_message_free_unpacked(&rq->base, NULL);
        return 1;
    }
    ap_selector sel = {rq->model_name, AP_KIND_ANY, NULL, 1, v, 1};
    ap_lease l;
    ap_error err;
    int rc = *rq->model_name ? ap__service_pick(c->srv->svc, &sel, &l, &err)
                             : ap__error_set(&err, AP_EINVAL, "model_name is empty");
    if (rc) {
        protobuf_c_message_free_unpacked(&rq->base, NULL);
        return ap__grpc_fail_err(c, &err);
    }
    infer_state *s = calloc(1, sizeof *s);
    if (!s) {
        ap__service_release(&l);
        protobuf_c_message_free_unpacked(&rq->base, NULL);
        return ap__grpc_fail(c, AP_GRPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    c->infer = s;
    ap_v2_model_meta meta;
    ap__v2_model_meta(&l.info, &meta);
    double *X = NULL;
    size_t n = 0;
    char why[AP_GRPC_MSG_MAX];
    rc = parse(c, rq, &meta, s, &X, &n, why, sizeof why);
    protobuf_c_message_free_unpacked(&rq->base, NULL);
    if (rc) {
        ap__service_release(&l);
        return ap__grpc_fail(c, AP_GRPC_INVALID_ARGUMENT, "%s", why);
    }
    ap_model_retain(l.model);
    s->held = l.model;
    s->info = l.info;
    ap_submit_opts o = {c->deadline_ns, c->pass, on_done, c};
    int parked;
    rc = ap__service_submit(c->srv->svc, &l, X, n, &o, &parked, &err);
    free(X); /* the batcher copied the rows */
    if (rc) /* refused: no completion will come */
        return ap__grpc_fail_err(c, &err);
    return 0;
}

void ap__grpc_model_infer_finish(ap_grpc_call *c)
{
    infer_state *s = c->infer;
    if (s->status == AP_ETIMEDOUT || (s->status == AP_OK && ap__clock_ns() > c->deadline_ns)) {
        ap__grpc_fail(c, AP_GRPC_DEADLINE_EXCEEDED, "the deadline (grpc-timeout, or "
                      "inference_timeout %g s) passed %s the model ran",
                      c->srv->cfg.inference_timeout, s->status == AP_OK ? "after" : "before");
        return;
    }
    if (s->status) {
        ap__grpc_fail(c, ap__grpc_code_of(s->status), "%s", s->msg);
        return;
    }
    ap_v2_output outs[AP_V2_MAX_OUTPUTS];
    int no = ap__v2_outputs(s->mask, s->nout, outs);
    Inference__ModelInferResponse r = INFERENCE__MODEL_INFER_RESPONSE__INIT;
    Inference__ModelInferResponse__InferOutputTensor ot[AP_V2_MAX_OUTPUTS], *pot[AP_V2_MAX_OUTPUTS];
    Inference__InferTensorContents tc[AP_V2_MAX_OUTPUTS];
    ProtobufCBinaryData raw[AP_V2_MAX_OUTPUTS];
    int64_t shape[AP_V2_MAX_OUTPUTS][2];
    void *bufs[AP_V2_MAX_OUTPUTS] = {0};
    char ver[12];
    snprintf(ver, sizeof ver, "%u", s->info.version);
    r.model_name = (char *)s->info.name;
    r.model_version = ver;
    r.id = s->id;
    int oom = 0;
    for (int i = 0; i < no; i++) {
        const ap_v2_output *o = &outs[i];
        size_t count = ap__v2_output_count(o, s->nrows);
        inference__model_infer_response__infer_output_tensor__init(&ot[i]);
        ot[i].name = (char *)o->name;
        ot[i].datatype = "FP64";
        shape[i][0] = (int64_t)s->nrows;
        shape[i][1] = (int64_t)o->ncols;
        ot[i].n_shape = (size_t)o->rank;
        ot[i].shape = shape[i];
        bufs[i] = malloc(count ? count * 8 : 1);
        if (!bufs[i]) {
            oom = 1;
            break;
        }
        if (s->raw) {
            ap__v2_output_raw(o, s->out, s->nrows, s->nout, bufs[i]);
            raw[i].data = bufs[i];
            raw[i].len = count * 8;
        } else {
            inference__infer_tensor_contents__init(&tc[i]);
            ap__v2_output_values(o, s->out, s->nrows, s->nout, bufs[i]);
            tc[i].n_fp64_contents = count;
            tc[i].fp64_contents = bufs[i];
            ot[i].contents = &tc[i];
        }
        pot[i] = &ot[i];
    }
    if (oom)
        ap__grpc_fail(c, AP_GRPC_RESOURCE_EXHAUSTED, "out of memory for the outputs");
    else {
        r.n_outputs = (size_t)no;
        r.outputs = pot;
        if (s->raw) {
            r.n_raw_output_contents = (size_t)no;
            r.raw_output_contents = raw;
        }
        ap__grpc_reply(c, &r.base);
    }
    for (int i = 0; i < no; i++)
        free(bufs[i]);
}
