/*
 * Who may call what: bearer tokens from auth_tokens_file, each with a role
 * (read < predict < ingest < admin, routes.h), and a per-token rate limit
 * (rate_limit_rps, a token bucket). auth.c.
 *
 * The file: one `TOKEN ROLE [NAME]` per line, `#` comments and blank lines
 * ignored. A token is 16..256 printable ASCII characters without spaces;
 * NAME (default "line-N") is what the access log shows, never the token.
 * Any malformed line refuses the whole file, naming file:line; a reload
 * (SIGHUP) that fails keeps the tokens in force.
 *
 * Threads: ap__auth_check from any HTTP thread (a read lock around the
 * lookup); ap__auth_reload from the signal-handling thread.
 */
#ifndef AP_SERVER_AUTH_H
#define AP_SERVER_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "alphapulse.h"

typedef struct ap_srv_auth ap_srv_auth;

/* 1 when a and b (lengths na, nb) are equal; the time taken depends on
   the lengths only, never on where the bytes differ. */
int ap__auth_ct_equal(const char *a, size_t na, const char *b, size_t nb);

/* Load path (rps: per-token rate limit, 0 = none). */
int ap__auth_open(const char *path, double rps, ap_srv_auth **out, ap_error *err);
/* Read the file again; on failure the old tokens stay and err says why.
   *count: tokens now. */
int ap__auth_reload(ap_srv_auth *a, int *count, ap_error *err);
void ap__auth_free(ap_srv_auth *a);
int ap__auth_count(ap_srv_auth *a);

enum { AP_AUTH_OK = 0, AP_AUTH_MISSING, AP_AUTH_INVALID, AP_AUTH_FORBIDDEN, AP_AUTH_LIMITED };

/* Check the Authorization header value (NULL: none) against role. Returns
   AP_AUTH_*; name (size bytes) gets the token's name when it is known;
   *retry_s: seconds until the bucket has a token again (AP_AUTH_LIMITED). */
int ap__auth_check(ap_srv_auth *a, const char *header, int role, uint64_t now_ns, char *name,
                  size_t size, int *retry_s);

/* "read", "predict", "ingest", "admin" (or "public"). */
const char *ap__auth_role_name(int role);

#endif
