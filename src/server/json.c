/* JSON request helpers of the handlers: the body as an object, unknown
   keys refused, string fields, timestamps in answers. */
#include "server/json.h"

#include <inttypes.h>
#include <string.h>


/* Parse the body as a JSON object; on failure the error response is queued
   (*ret) and NULL returned. */
json_t *ap__srv_json_body(ap_srv_req *r, enum MHD_Result *ret)
{
    json_error_t je;
    json_t *j = json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        *ret = ap__srv_error(r, MHD_HTTP_BAD_REQUEST, "malformed JSON body: line %d column %d: %s",
                         je.line, je.column, je.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        *ret = ap__srv_error(r, MHD_HTTP_BAD_REQUEST, "the body must be a JSON object");
        return NULL;
    }
    return j;
}

const char *ap__srv_json_unknown(json_t *o, const char *const *allowed)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        int ok = 0;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = !strcmp(k, *a);
        if (!ok)
            return k;
    }
    return NULL;
}

/* Refuse keys not in allowed (typos are errors); 0 when all are known. */
int ap__srv_json_unknown_key(ap_srv_req *r, json_t *o, const char *const *allowed, enum MHD_Result *ret)
{
    const char *k = ap__srv_json_unknown(o, allowed);
    if (k)
        *ret = ap__srv_error(r, MHD_HTTP_BAD_REQUEST, "unknown field '%s'", k);
    return k != NULL;
}

const char *ap__srv_json_string(json_t *o, const char *key, int required, const char **why)
{
    json_t *v = json_object_get(o, key);
    *why = NULL;
    if (!v && !required)
        return NULL;
    if (!v || !json_is_string(v) || !json_string_length(v)) {
        *why = v ? "must be a non-empty string" : "is required";
        return NULL;
    }
    return json_string_value(v);
}

/* A string field: NULL when absent (and not required); on a type error the
   response is queued and *bad set. */
const char *ap__srv_json_str(ap_srv_req *r, json_t *o, const char *key, int required, int *bad,
                             enum MHD_Result *ret)
{
    const char *why, *v = ap__srv_json_string(o, key, required, &why);
    if (why) {
        *bad = 1;
        *ret = ap__srv_error(r, MHD_HTTP_BAD_REQUEST, "field '%s' %s", key, why);
    }
    return v;
}

int ap__srv_json_async_timeout(ap_srv_req *r, json_t *o, int *async, uint64_t *timeout_us,
                               enum MHD_Result *ret)
{
    json_t *a = json_object_get(o, "async"), *t = json_object_get(o, "timeout_ms");
    if (a && !json_is_boolean(a)) {
        *ret = ap__srv_error(r, MHD_HTTP_BAD_REQUEST, "field 'async' must be true or false");
        return 1;
    }
    if (t && (!json_is_number(t) || !(json_number_value(t) > 0) ||
              json_number_value(t) > 3.6e6)) {
        *ret = ap__srv_error(r, MHD_HTTP_BAD_REQUEST,
                             "field 'timeout_ms' must be a number of milliseconds > 0");
        return 1;
    }
    *async = a && json_is_true(a);
    *timeout_us = t ? (uint64_t)(json_number_value(t) * 1000) : 0;
    return 0;
}

void ap__srv_json_time(jbuf *b, const char *key, int64_t t_us)
{
    char t[40];
    ap__jb_str(b, key);
    ap__jb_puts(b, ": ");
    ap__jb_str(b, ap_format_timestamp(t_us, t, sizeof t));
    ap__jb_puts(b, ", \"");
    ap__jb_puts(b, key);
    ap__jb_puts(b, "_ms\": ");
    ap__jb_i64(b, t_us / 1000);
}
