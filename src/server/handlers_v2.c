/*
 * KServe v2 / Open Inference Protocol (REST, JSON tensors): health, server and
 * model metadata, readiness, infer, and the model repository extension
 * (index, load, unload). A model takes one input tensor "input" of shape
 * [N, F]: the manifest's F features in order, before the pipeline (for an
 * ensemble: its member predictions). docs/SERVER.md.
 */
#include <jansson.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
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
static int served(ap_srv_req *r, ap_lease *l, enum MHD_Result *ret, int on_demand)
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
              "[\"model_repository\"]}\n", ap_version());
    return ap__srv_respond(r, MHD_HTTP_OK, &b, NULL);
}

static enum MHD_Result health(ap_srv_req *r, int ready)
{
    char store[64];
    jbuf b;
    ap__jb_init(&b, store, sizeof store);
    /* live while the process answers; ready when serving and not draining */
    int ok = !ready || (!atomic_load(&r->srv->draining) && ap__service_resident(r->srv->svc) > 0);
    ap__jb_printf(&b, "{\"%s\": %s}\n", ready ? "ready" : "live", ok ? "true" : "false");
    return ap__srv_respond(r, ok ? MHD_HTTP_OK : MHD_HTTP_BAD_REQUEST, &b, NULL);
}

enum MHD_Result ap__srv_h_v2_live(ap_srv_req *r) { return health(r, 0); }
enum MHD_Result ap__srv_h_v2_ready(ap_srv_req *r) { return health(r, 1); }

enum MHD_Result ap__srv_h_v2_model_ready(ap_srv_req *r)
{
    enum MHD_Result ret = MHD_YES;
    ap_lease l;
    if (served(r, &l, &ret, 0)) /* readiness never loads a model */
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
    if (served(r, &l, &ret, 1))
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

/* ---- infer ------------------------------------------------------------------- */

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

/* Parse the infer request; fills r->client_id, r->fp32, r->out_mask and the
   rows (*X, *n; *X may be the caller's small buffer). Returns 0 or -1 with why. */
static int parse_infer(ap_srv_req *r, json_t *j, const ap_v2_model_meta *meta, double *small, size_t small_n, double **X,
                       size_t *n, char *why, size_t whysize)
{
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v) {
        if (strcmp(k, "id") && strcmp(k, "inputs") && strcmp(k, "outputs") &&
            strcmp(k, "parameters")) {
            snprintf(why, whysize, "unknown field '%s'", k);
            return -1;
        }
    }
    json_t *id = json_object_get(j, "id");
    if (id) {
        if (!json_is_string(id) || json_string_length(id) >= sizeof r->client_id) {
            snprintf(why, whysize, "'id' must be a string of at most %zu bytes",
                     sizeof r->client_id - 1);
            return -1;
        }
        strcpy(r->client_id, json_string_value(id));
    }
    json_t *outs = json_object_get(j, "outputs");
    r->out_mask = AP_V2_OUT_ALL;
    if (outs) {
        if (!json_is_array(outs) || !json_array_size(outs)) {
            snprintf(why, whysize, "'outputs' must be a non-empty array of {\"name\": ...}");
            return -1;
        }
        r->out_mask = 0;
        for (size_t i = 0; i < json_array_size(outs); i++) {
            const char *nm = json_string_value(json_object_get(json_array_get(outs, i), "name"));
            int bit = ap__v2_output_bit(nm);
            if (!bit) {
                ap__v2_output_unknown(nm, i, why, whysize);
                return -1;
            }
            r->out_mask |= bit;
        }
    }
    json_t *inputs = json_object_get(j, "inputs");
    if (!json_is_array(inputs) || json_array_size(inputs) != 1) {
        snprintf(why, whysize, "'inputs' must be an array of one tensor \"input\" of shape "
                 "[N, %lld]", (long long)meta->input.shape[1]);
        return -1;
    }
    json_t *t = json_array_get(inputs, 0), *shape = json_object_get(t, "shape");
    if (!json_is_object(t) || !json_is_string(json_object_get(t, "name"))) {
        snprintf(why, whysize, "inputs[0] must be an object with a 'name'");
        return -1;
    }
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
    r->fp32 = plan.dtype == AP_V2_FP32;
    *n = plan.nrows;
    size_t total = plan.count;
    *X = total <= small_n ? small : malloc(total * sizeof **X);
    if (!*X) {
        snprintf(why, whysize, "out of memory for %zu values", total);
        return -1;
    }
    if (tensor_data(json_object_get(t, "data"), *n, plan.ncols, plan.dtype, *X, why, whysize)) {
        if (*X != small)
            free(*X);
        return -1;
    }
    return 0;
}

enum MHD_Result ap__srv_h_v2_infer(ap_srv_req *r)
{
    enum MHD_Result ret = MHD_YES;
    /* the server's deadline, from the request's arrival; a request that
       already waited past it is refused before its body is parsed */
    r->deadline_ns = r->t0_ns + (uint64_t)(r->srv->cfg.inference_timeout * 1e9);
    if (ap__srv_past_deadline(r, ap__clock_ns()))
        return ap__srv_deadline_error(r, "before");
    json_error_t je;
    json_t *j = json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        return ap__srv_error(r, MHD_HTTP_BAD_REQUEST, "malformed JSON body: line %d column %d: %s",
                         je.line, je.column, je.text);
    if (!json_is_object(j)) {
        json_decref(j);
        return ap__srv_error(r, MHD_HTTP_BAD_REQUEST, "the body must be a JSON object");
    }
    ap_lease l;
    if (served(r, &l, &ret, 1)) {
        json_decref(j);
        return ret;
    }
    double small[256], *X = NULL;
    size_t n = 0;
    char why[256];
    ap_v2_model_meta meta;
    ap__v2_model_meta(&l.info, &meta);
    if (parse_infer(r, j, &meta, small, 256, &X, &n, why, sizeof why)) {
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

static void column(jbuf *b, const char *name, const double *out, size_t nrows, size_t nout,
                   size_t col, size_t ncols)
{
    ap__jb_printf(b, "{\"name\": \"%s\", \"datatype\": \"FP64\", \"shape\": [%zu", name, nrows);
    if (ncols > 1 || !strcmp(name, "outputs"))
        ap__jb_printf(b, ", %zu", ncols);
    ap__jb_puts(b, "], \"data\": [");
    for (size_t i = 0; i < nrows; i++)
        for (size_t k = 0; k < ncols; k++) {
            ap__jb_num(b, out[i * nout + col + k]);
            ap__jb_raw(b, ",", 1);
        }
    ap__jb_uncomma(b);
    ap__jb_puts(b, "]},");
}

enum MHD_Result ap__srv_v2_finish(ap_srv_req *r)
{
    if (r->status == AP_ETIMEDOUT)
        return ap__srv_deadline_error(r, "before");
    if (r->status == AP_OK && ap__srv_past_deadline(r, ap__clock_ns()))
        return ap__srv_deadline_error(r, "after");
    if (r->status)
        return ap__srv_error(r, ap__srv_compute_status(r->status), "%s", r->msg);
    char store[2048];
    jbuf b;
    ap__jb_init(&b, store, sizeof store);
    ap__jb_puts(&b, "{\"model_name\": ");
    ap__jb_str(&b, r->info.name);
    ap__jb_printf(&b, ", \"model_version\": \"%u\"", r->version);
    if (r->client_id[0]) {
        ap__jb_puts(&b, ", \"id\": ");
        ap__jb_str(&b, r->client_id);
    }
    ap__jb_puts(&b, ", \"outputs\": [");
    if (r->out_mask & AP_V2_OUT_PRED)
        column(&b, "prediction", r->out, r->nrows, r->nout, 0, 1);
    if (r->out_mask & AP_V2_OUT_CONF)
        column(&b, "confidence", r->out, r->nrows, r->nout, 1, 1);
    if (r->out_mask & AP_V2_OUT_OUTS)
        column(&b, "outputs", r->out, r->nrows, r->nout, 2, r->nout - 2);
    ap__jb_uncomma(&b);
    ap__jb_puts(&b, "]}\n");
    return ap__srv_respond(r, MHD_HTTP_OK, &b, NULL);
}

/* ---- repository extension ------------------------------------------------------- */

/* Every model of the repository (read again now) and every model served:
   READY with its version, or UNAVAILABLE with the reason (the last failed
   load, "not loaded" when none was tried or it was unloaded). The body may
   be {"ready": true}: only the ready ones. */
enum MHD_Result ap__srv_h_v2_repo_index(ap_srv_req *r)
{
    ap_server *s = r->srv;
    int only_ready = 0;
    if (r->len) {
        json_error_t je;
        json_t *j = json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, &je);
        json_t *rd = json_object_get(j, "ready");
        int bad = !json_is_object(j) || (rd && !json_is_boolean(rd)) ||
                  json_object_size(j) > (rd ? 1u : 0u);
        only_ready = rd && json_is_true(rd);
        json_decref(j);
        if (bad)
            return ap__srv_error(r, MHD_HTTP_BAD_REQUEST,
                                "index body must be {} or {\"ready\": true|false}");
    }
    ap_repo_model *cat = NULL;
    int nc = 0;
    ap_error err;
    if (ap__service_catalog(s->svc, 1, &cat, &nc, &err) != AP_OK)
        return ap__srv_fail(r, &err);
    ap_registry *reg = ap__service_registry(s->svc);
    jbuf b;
    ap__jb_init(&b, NULL, 0);
    ap__jb_puts(&b, "[");
    int nslots = ap__service_slots(s->svc);
    for (int i = 0; i < nc + nslots; i++) {
        /* the catalog, then served models no longer in the repository */
        const char *name;
        if (i < nc)
            name = cat[i].name;
        else {
            name = ap__service_slot_name(s->svc, i - nc);
            int seen = 0;
            for (int k = 0; k < nc && !seen; k++)
                seen = !strcmp(cat[k].name, name);
            if (seen)
                continue;
        }
        ap_model *m = ap__service_slot_model(s->svc, ap__service_slot_find(s->svc, name));
        uint32_t v = 0;
        if (m) {
            ap_model_info in;
            ap_model_describe(m, &in);
            v = in.version;
            ap_model_release(m);
        }
        if (only_ready && !v)
            continue;
        ap__jb_puts(&b, "{\"name\": ");
        ap__jb_str(&b, name);
        if (v) {
            ap__jb_printf(&b, ", \"version\": \"%u\", \"state\": \"READY\"},", v);
            continue;
        }
        char why[AP_ERROR_MSG_MAX];
        if (!ap_registry_failure(reg, name, why, sizeof why))
            snprintf(why, sizeof why, "%s", i < nc && !cat[i].ok
                                                ? "manifest.json cannot be read or parsed"
                                                : "not loaded");
        ap__jb_puts(&b, ", \"state\": \"UNAVAILABLE\", \"reason\": ");
        ap__jb_str(&b, why);
        ap__jb_puts(&b, "},");
    }
    ap_registry_listing_free(cat);
    ap__jb_uncomma(&b);
    ap__jb_puts(&b, "]\n");
    return ap__srv_respond(r, MHD_HTTP_OK, &b, NULL);
}

static int name_ok(const char *s)
{
    if (!*s || *s == '.' || strlen(s) >= 65)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '.' || *s == '-'))
            return 0;
    return 1;
}

static enum MHD_Result repo_load(ap_srv_req *r, int load)
{
    ap_server *s = r->srv;
    if (!name_ok(r->arg))
        return ap__srv_error(r, MHD_HTTP_NOT_FOUND, "unknown model '%s'", r->arg);
    uint32_t version = 0;
    if (load && r->len) { /* optional {"parameters": {"version": N}} */
        json_error_t je;
        json_t *j = json_loadb(r->body, r->len, 0, &je);
        json_t *p = json_object_get(j, "parameters"), *v = json_object_get(p, "version");
        int bad = !json_is_object(j) || (p && !json_is_object(p)) ||
                  (v && (!json_is_integer(v) || json_integer_value(v) < 1 ||
                         json_integer_value(v) > UINT32_MAX));
        if (!bad && v)
            version = (uint32_t)json_integer_value(v);
        json_decref(j);
        if (bad)
            return ap__srv_error(r, MHD_HTTP_BAD_REQUEST, "load body must be {} or {\"parameters\": "
                             "{\"version\": N}} with N >= 1");
    }
    ap_error err;
    int rc = load ? ap__service_load(s->svc, r->arg, version, &err)
                  : ap__service_unload(s->svc, r->arg, &err);
    r->model = ap__service_slot_find(s->svc, r->arg);
    if (rc)
        return ap__srv_fail(r, &err);
    char store[160];
    jbuf b;
    ap__jb_init(&b, store, sizeof store);
    ap__jb_puts(&b, "{\"name\": ");
    ap__jb_str(&b, r->arg);
    ap_model *m = load ? ap__service_slot_model(s->svc, r->model) : NULL;
    if (m) {
        ap_model_info in;
        ap_model_describe(m, &in);
        ap__jb_printf(&b, ", \"version\": \"%u\"", in.version);
        ap_model_release(m);
    }
    ap__jb_printf(&b, ", \"state\": \"%s\"}\n", load ? "READY" : "UNAVAILABLE");
    return ap__srv_respond(r, MHD_HTTP_OK, &b, NULL);
}

enum MHD_Result ap__srv_h_v2_load(ap_srv_req *r) { return repo_load(r, 1); }
enum MHD_Result ap__srv_h_v2_unload(ap_srv_req *r) { return repo_load(r, 0); }
