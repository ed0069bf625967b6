/*
 * POST /v2/models/{m}[/versions/{v}]/infer: the Open Inference Protocol's
 * inference request over REST, JSON tensors and the binary tensor data
 * extension (Triton's): an Inference-Header-Content-Length header says how
 * many bytes of the body are the JSON header; an input with
 * parameters.binary_data_size takes its raw little-endian bytes from what
 * follows. Outputs are answered binary when an output asks
 * (parameters.binary_data) or the request does (binary_data_output). The
 * checks and conversions are the transport-neutral core's (v2_core.h).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "server/handlers.h"
#include "server/server_internal.h"
#include "server/v2_core.h"

#define V2_HEADER_LEN "Inference-Header-Content-Length"

/* Refuse any key of obj that is not in the NULL-terminated list known. */
static int only_keys(json_t *obj, const char *const *known, const char *what, char *why,
                     size_t whysize)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        int ok = 0;
        for (const char *const *p = known; *p && !ok; p++)
            ok = !strcmp(k, *p);
        if (!ok) {
            size_t n = (size_t)snprintf(why, whysize, "unknown %s '%s' (known:", what, k);
            for (const char *const *p = known; *p && n < whysize; p++)
                n += (size_t)snprintf(why + n, whysize - n, " %s", *p);
            if (n < whysize)
                snprintf(why + n, whysize - n, ")");
            return -1;
        }
    }
    return 0;
}

/* A 'parameters' member: absent, or an object with only known keys. */
static int params_of(json_t *owner, const char *const *known, const char *what, json_t **out,
                     char *why, size_t whysize)
{
    json_t *p = json_object_get(owner, "parameters");
    *out = p;
    if (!p)
        return 0;
    if (!json_is_object(p)) {
        snprintf(why, whysize, "%s 'parameters' must be an object", what);
        return -1;
    }
    char kind[64];
    snprintf(kind, sizeof kind, "%s parameter", what);
    return only_keys(p, known, kind, why, whysize);
}

static int bool_param(json_t *p, const char *key, int *out, char *why, size_t whysize)
{
    json_t *v = json_object_get(p, key);
    if (!v)
        return 0;
    if (!json_is_boolean(v)) {
        snprintf(why, whysize, "parameter '%s' must be true or false", key);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

/* One JSON element into its double through the core's conversion. */
static int json_elem(json_t *v, int dt, double *out, const char *where, char *why, size_t whysize)
{
    if (json_is_integer(v))
        return ap__v2_elem_from_int(dt, (int64_t)json_integer_value(v), 0, out, where, why,
                                    whysize);
    if (json_is_real(v) || json_is_null(v))
        return ap__v2_elem_from_number(dt, json_is_null(v) ? 0 : json_real_value(v),
                                       json_is_null(v), out, where, why, whysize);
    if (json_is_boolean(v) && dt == AP_V2_BOOL) {
        *out = json_is_true(v);
        return 0;
    }
    snprintf(why, whysize, "'data'%s is not a number", where);
    return -1;
}

/* Fill X (n * f values) from data, flat or nested [n][f]. */
static int tensor_data(json_t *data, size_t n, size_t f, int dt, double *X, char *why,
                       size_t whysize)
{
    if (!json_is_array(data)) {
        snprintf(why, whysize, "'data' must be an array");
        return -1;
    }
    size_t len = json_array_size(data);
    char where[48];
    if (len && json_is_array(json_array_get(data, 0))) {
        if (len != n) {
            snprintf(why, whysize, "'data' has %zu rows, shape says %zu", len, n);
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            json_t *row = json_array_get(data, i);
            if (!json_is_array(row) || json_array_size(row) != f) {
                snprintf(why, whysize, "'data' row %zu must be an array of %zu numbers", i, f);
                return -1;
            }
            for (size_t k = 0; k < f; k++) {
                snprintf(where, sizeof where, "[%zu][%zu]", i, k);
                if (json_elem(json_array_get(row, k), dt, &X[i * f + k], where, why, whysize))
                    return -1;
            }
        }
        return 0;
    }
    if (len != n * f) {
        snprintf(why, whysize, "'data' has %zu values, shape [%zu, %zu] needs %zu", len, n, f,
                 n * f);
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        snprintf(where, sizeof where, "[%zu]", i);
        if (json_elem(json_array_get(data, i), dt, &X[i], where, why, whysize))
            return -1;
    }
    return 0;
}

static const char *const req_keys[] = {"id", "model_name", "model_version", "inputs", "outputs",
                                       "parameters", NULL};
static const char *const req_params[] = {"binary_data_output", "timeout", NULL};
static const char *const in_keys[] = {"name", "shape", "datatype", "parameters", "data", NULL};
static const char *const in_params[] = {"binary_data_size", NULL};
static const char *const out_keys[] = {"name", "parameters", NULL};
static const char *const out_params[] = {"binary_data", NULL};

/* The request's own fields: id, model_name / model_version (must name what
   the URL and the pick did), parameters; the outputs asked and which of
   them binary. */
static int parse_head(ap_srv_req *r, json_t *j, const ap_v2_model_meta *meta, char *why,
                      size_t whysize)
{
    if (only_keys(j, req_keys, "field", why, whysize))
        return -1;
    json_t *id = json_object_get(j, "id");
    if (id) {
        if (!json_is_string(id) || json_string_length(id) >= sizeof r->client_id) {
            snprintf(why, whysize, "'id' must be a string of at most %zu bytes",
                     sizeof r->client_id - 1);
            return -1;
        }
        memcpy(r->client_id, json_string_value(id), json_string_length(id) + 1);
        r->has_id = 1;
    }
    json_t *mn = json_object_get(j, "model_name"), *mv = json_object_get(j, "model_version");
    if (mn && (!json_is_string(mn) || strcmp(json_string_value(mn), r->arg))) {
        snprintf(why, whysize, "'model_name' must be the model of the URL ('%s')", r->arg);
        return -1;
    }
    /* "" is what clients send when they mean no particular version */
    if (mv && (!json_is_string(mv) || (json_string_length(mv) &&
                                       strcmp(json_string_value(mv), meta->version_str)))) {
        snprintf(why, whysize, "'model_version' must be a string naming the version served "
                 "(\"%s\") or \"\"", meta->version_str);
        return -1;
    }
    json_t *p;
    int bin_all = 0;
    if (params_of(j, req_params, "request", &p, why, whysize) ||
        bool_param(p, "binary_data_output", &bin_all, why, whysize))
        return -1;
    json_t *to = json_object_get(p, "timeout");
    if (to) { /* Triton's request timeout, microseconds */
        if (!json_is_integer(to) || json_integer_value(to) < 0) {
            snprintf(why, whysize, "parameter 'timeout' must be a number of microseconds >= 0");
            return -1;
        }
        ap__srv_set_deadline(r, (uint64_t)json_integer_value(to));
    }
    json_t *outs = json_object_get(j, "outputs");
    r->out_mask = AP_V2_OUT_ALL;
    r->out_binary = bin_all ? AP_V2_OUT_ALL : 0;
    if (!outs)
        return 0;
    if (!json_is_array(outs) || !json_array_size(outs)) {
        snprintf(why, whysize, "'outputs' must be a non-empty array of {\"name\": ...}");
        return -1;
    }
    r->out_mask = r->out_binary = 0;
    for (size_t i = 0; i < json_array_size(outs); i++) {
        json_t *o = json_array_get(outs, i), *op;
        const char *nm = json_string_value(json_object_get(o, "name"));
        int bit = ap__v2_output_bit(nm);
        if (!bit) {
            ap__v2_output_unknown(nm, i, why, whysize);
            return -1;
        }
        int bin = bin_all;
        if (only_keys(o, out_keys, "output field", why, whysize) ||
            params_of(o, out_params, "output", &op, why, whysize) ||
            bool_param(op, "binary_data", &bin, why, whysize))
            return -1;
        r->out_mask |= bit;
        if (bin)
            r->out_binary |= bit;
    }
    return 0;
}

/* The one input tensor into rows (*X, *n; *X may be the caller's small
   buffer); its bytes, when binary, are bin[0, nbin) (all of them). */
static int parse_input(ap_srv_req *r, json_t *j, const ap_v2_model_meta *meta, const char *bin,
                       size_t nbin, double *small, size_t small_n, double **X, size_t *n,
                       char *why, size_t whysize)
{
    json_t *inputs = json_object_get(j, "inputs");
    if (!json_is_array(inputs) || json_array_size(inputs) != 1) {
        snprintf(why, whysize, "'inputs' must be an array of one tensor \"input\" of shape "
                 "[N, %lld]", (long long)meta->input.shape[1]);
        return -1;
    }
    json_t *t = json_array_get(inputs, 0), *shape = json_object_get(t, "shape"), *tp;
    if (!json_is_object(t) || !json_is_string(json_object_get(t, "name"))) {
        snprintf(why, whysize, "inputs[0] must be an object with a 'name'");
        return -1;
    }
    if (only_keys(t, in_keys, "input field", why, whysize) ||
        params_of(t, in_params, "input", &tp, why, whysize))
        return -1;
    int64_t dims[2] = {0, 0};
    size_t rank = json_is_array(shape) ? json_array_size(shape) : 0;
    for (size_t i = 0; i < rank && i < 2; i++) {
        json_t *d = json_array_get(shape, i);
        dims[i] = json_is_integer(d) ? (int64_t)json_integer_value(d) : -2;
    }
    ap_v2_input in = {json_string_value(json_object_get(t, "name")),
                      json_string_value(json_object_get(t, "datatype")), dims, rank};
    ap_v2_input_plan plan;
    if (ap__v2_check_input(meta, &in, (size_t)r->srv->cfg.max_queue_rows, &plan, why, whysize))
        return -1;
    json_t *bsz = json_object_get(tp, "binary_data_size"), *data = json_object_get(t, "data");
    if (bsz) {
        if (!json_is_integer(bsz) || json_integer_value(bsz) < 0) {
            snprintf(why, whysize, "inputs[0]: 'binary_data_size' must be a byte count >= 0");
            return -1;
        }
        if (data) {
            snprintf(why, whysize, "inputs[0] has both 'data' and binary_data_size");
            return -1;
        }
        if ((uint64_t)json_integer_value(bsz) != nbin) {
            snprintf(why, whysize, "inputs[0]: binary_data_size is %lld, the body has %zu bytes "
                     "after the %s JSON header", (long long)json_integer_value(bsz), nbin,
                     V2_HEADER_LEN);
            return -1;
        }
        if (ap__v2_check_raw_size(&plan, nbin, why, whysize))
            return -1;
    } else if (nbin) {
        snprintf(why, whysize, "%zu bytes after the JSON header but no input has "
                 "binary_data_size", nbin);
        return -1;
    } else if (!data) {
        snprintf(why, whysize, "inputs[0] needs 'data' (or parameters.binary_data_size)");
        return -1;
    }
    *n = plan.nrows;
    *X = plan.count <= small_n ? small : malloc(plan.count * sizeof **X);
    if (!*X) {
        snprintf(why, whysize, "out of memory for %zu values", plan.count);
        return -1;
    }
    int rc = bsz ? ap__v2_from_raw(plan.dtype, bin, nbin, plan.count, *X, why, whysize)
                 : tensor_data(data, plan.nrows, plan.ncols, plan.dtype, *X, why, whysize);
    if (rc && *X != small)
        free(*X);
    return rc;
}

/* The JSON header's length (Inference-Header-Content-Length), or the whole
   body; -1 with why when the header is not a byte count within the body. */
static int header_length(ap_srv_req *r, size_t *hlen, char *why, size_t whysize)
{
    const char *h = r->io->header(r->conn, V2_HEADER_LEN);
    *hlen = r->len;
    if (!h)
        return 0;
    char *end;
    unsigned long long v = strtoull(h, &end, 10);
    if (!*h || *end || *h < '0' || *h > '9' || v > r->len || !v) {
        snprintf(why, whysize, "%s '%.40s' must be the JSON header's byte count (1 to %zu, "
                 "the body's length)", V2_HEADER_LEN, h, r->len);
        return -1;
    }
    *hlen = (size_t)v;
    return 0;
}

enum MHD_Result ap__srv_h_v2_infer(ap_srv_req *r)
{
    enum MHD_Result ret = MHD_YES;
    /* the server's deadline, from the request's arrival; a request that
       already waited past it is refused before its body is parsed */
    ap__srv_set_deadline(r, 0);
    if (ap__srv_past_deadline(r, ap__clock_ns()))
        return ap__srv_deadline_error(r, "before");
    char why[320];
    size_t hlen;
    if (header_length(r, &hlen, why, sizeof why))
        return ap__srv_error(r, MHD_HTTP_BAD_REQUEST, "%s", why);
    json_error_t je;
    json_t *j = json_loadb(r->body, hlen, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        return ap__srv_error(r, MHD_HTTP_BAD_REQUEST, "malformed JSON body: line %d column %d: %s",
                             je.line, je.column, je.text);
    if (!json_is_object(j)) {
        json_decref(j);
        return ap__srv_error(r, MHD_HTTP_BAD_REQUEST, "the body must be a JSON object");
    }
    ap_lease l;
    if (ap__srv_v2_pick(r, &l, &ret, 1)) {
        json_decref(j);
        return ret;
    }
    double small[256], *X = NULL;
    size_t n = 0;
    ap_v2_model_meta meta;
    ap__v2_model_meta(&l.info, &meta);
    if (parse_head(r, j, &meta, why, sizeof why) ||
        parse_input(r, j, &meta, r->body + hlen, r->len - hlen, small, 256, &X, &n, why,
                    sizeof why)) {
        ap__service_release(&l);
        json_decref(j);
        return ap__srv_error(r, MHD_HTTP_BAD_REQUEST, "%s", why);
    }
    json_decref(j);
    ap__srv_req_hold(r, &l);
    int answered = ap__srv_start_inference(r, &l, X, n);
    if (X != small)
        free(X);
    if (answered) {
        r->phase = PH_DONE;
        return ap__srv_v2_finish(r);
    }
    return MHD_YES;
}

enum MHD_Result ap__srv_v2_finish(ap_srv_req *r)
{
    if (r->status == AP_ETIMEDOUT)
        return ap__srv_deadline_error(r, "before");
    if (r->status == AP_OK && ap__srv_past_deadline(r, ap__clock_ns()))
        return ap__srv_deadline_error(r, "after");
    if (r->status)
        return ap__srv_error(r, ap__srv_compute_status(r->status), "%s", r->msg);
    ap_v2_output outs[AP_V2_MAX_OUTPUTS];
    int no = ap__v2_outputs(r->out_mask, r->nout, outs);
    char store[2048];
    jbuf b;
    ap__jb_init(&b, store, sizeof store);
    ap__jb_puts(&b, "{\"model_name\": ");
    ap__jb_str(&b, r->info.name);
    ap__jb_printf(&b, ", \"model_version\": \"%u\"", r->version);
    if (r->has_id) {
        ap__jb_puts(&b, ", \"id\": ");
        ap__jb_str(&b, r->client_id);
    }
    ap__jb_puts(&b, ", \"outputs\": [");
    for (int i = 0; i < no; i++) {
        const ap_v2_output *o = &outs[i];
        size_t count = ap__v2_output_count(o, r->nrows);
        ap__jb_printf(&b, "{\"name\": \"%s\", \"datatype\": \"FP64\", \"shape\": [%zu", o->name,
                      r->nrows);
        if (o->rank == 2)
            ap__jb_printf(&b, ", %zu", o->ncols);
        if (r->out_binary & o->bit) {
            ap__jb_printf(&b, "], \"parameters\": {\"binary_data_size\": %zu}},", count * 8);
            continue;
        }
        ap__jb_puts(&b, "], \"data\": [");
        for (size_t row = 0; row < r->nrows; row++)
            for (size_t k = 0; k < o->ncols; k++) {
                ap__jb_num(&b, r->out[row * r->nout + o->col + k]);
                ap__jb_raw(&b, ",", 1);
            }
        ap__jb_uncomma(&b);
        ap__jb_puts(&b, "]},");
    }
    ap__jb_uncomma(&b);
    ap__jb_puts(&b, "]}");
    if (!(r->out_binary & r->out_mask)) {
        ap__jb_puts(&b, "\n");
        return ap__srv_respond(r, MHD_HTTP_OK, &b, NULL);
    }
    /* binary: the JSON header, then each binary output's bytes in order */
    snprintf(r->hdr_val, sizeof r->hdr_val, "%zu", b.len);
    r->hdr[0] = V2_HEADER_LEN;
    r->hdr[1] = r->hdr_val;
    r->hdr[2] = NULL;
    for (int i = 0; i < no; i++) {
        const ap_v2_output *o = &outs[i];
        if (!(r->out_binary & o->bit))
            continue;
        size_t nbytes = ap__v2_output_count(o, r->nrows) * 8;
        unsigned char *raw = malloc(nbytes ? nbytes : 1);
        if (!raw) {
            ap__jb_free(&b);
            return ap__srv_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory for %zu "
                                 "bytes of binary output", nbytes);
        }
        ap__v2_output_raw(o, r->out, r->nrows, r->nout, raw);
        ap__jb_raw(&b, (const char *)raw, nbytes);
        free(raw);
    }
    return ap__srv_respond(r, MHD_HTTP_OK, &b, "application/octet-stream");
}
