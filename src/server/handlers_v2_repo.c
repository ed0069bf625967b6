/*
 * The Open Inference Protocol's model repository extension (Triton's):
 * POST /v2/repository/index (every model of the repository and every one
 * served: READY with its version, or UNAVAILABLE with the reason; the body
 * {"ready": true} lists only the ready ones), load and unload.
 * docs/SERVER.md.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/handlers.h"
#include "server/server_internal.h"
#include "server/v2_core.h"

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
    ap_v2_repo_entry *e = NULL;
    int n = 0;
    ap_error err;
    if (ap__v2_repo_index(s->svc, only_ready, &e, &n, &err) != AP_OK)
        return ap__srv_fail(r, &err);
    jbuf b;
    ap__jb_init(&b, NULL, 0);
    ap__jb_puts(&b, "[");
    for (int i = 0; i < n; i++) {
        ap__jb_puts(&b, "{\"name\": ");
        ap__jb_str(&b, e[i].name);
        if (e[i].version) {
            ap__jb_printf(&b, ", \"version\": \"%u\", \"state\": \"READY\"},", e[i].version);
            continue;
        }
        ap__srv_scrub_paths(s, e[i].reason);
        ap__jb_puts(&b, ", \"state\": \"UNAVAILABLE\", \"reason\": ");
        ap__jb_str(&b, e[i].reason);
        ap__jb_puts(&b, "},");
    }
    free(e);
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
