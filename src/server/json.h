/* JSON request helpers shared by the handlers (json.c). On a failure the
   error response is queued (*ret) and the call says so. */
#ifndef AP_SERVER_JSON_H
#define AP_SERVER_JSON_H

#include <jansson.h>

#include "server/request.h"

/* The body as a JSON object, or NULL (error answered). */
json_t *ap__srv_json_body(ap_srv_req *r, enum MHD_Result *ret);
/* 1 (error answered) when o has a key not in allowed (NULL-terminated). */
int ap__srv_json_unknown_key(ap_srv_req *r, json_t *o, const char *const *allowed,
                            enum MHD_Result *ret);
/* A string field: NULL when absent (and not required); on a type error the
   response is queued and *bad set. */
const char *ap__srv_json_str(ap_srv_req *r, json_t *o, const char *key, int required, int *bad,
                            enum MHD_Result *ret);
/* The same checks without an answer (for the items of a batch): the first
   key of o not in allowed, or NULL; a string field, or NULL with *why set
   ("is required", "must be a non-empty string") when it is wrong. */
const char *ap__srv_json_unknown(json_t *o, const char *const *allowed);
const char *ap__srv_json_string(json_t *o, const char *key, int required, const char **why);
/* The "async" (a boolean) and "timeout_ms" (> 0, at most an hour) fields of
   a prediction: *timeout_us 0 when absent. 1 (error answered) when wrong. */
int ap__srv_json_async_timeout(ap_srv_req *r, json_t *o, int *async, uint64_t *timeout_us,
                               enum MHD_Result *ret);
/* "key": ISO time, "key_ms": epoch ms */
void ap__srv_json_time(jbuf *b, const char *key, int64_t t_us);

#endif
