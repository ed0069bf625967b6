/*
 * The HTTP server behind `alphapulse serve` (docs/SERVER.md): the AlphaPulse
 * JSON API (/v1), the KServe v2 / Open Inference Protocol (/v2), Prometheus
 * metrics (/metrics) and a replay of bars from CSV files.
 *
 *   ap_server *s;
 *   ap__server_create(&cfg, log, log_ctx, &s, &err);  // load models, bind, serve
 *   ... ap__server_port(s) ...
 *   ap__server_shutdown(s);  // stop accepting, let in-flight requests finish
 *   ap__server_free(s);
 *
 * Nothing is printed: what the server has to say (models refused at start,
 * replay problems, libmicrohttpd errors, the access log) goes to `log`.
 */
#ifndef AP_SERVER_SERVER_H
#define AP_SERVER_SERVER_H

#include "alphapulse/common.h"
#include "server/config.h"

typedef struct ap_server ap_server;

/* One line of text, without a trailing newline. Called from any thread. */
typedef void (*ap_server_log_fn)(void *ctx, const char *msg);

/*
 * Open the repository and load every model (a model that fails is logged and
 * skipped; a repository that cannot be read is an error), create the series
 * store and worker pool, start the replay, bind host:port and serve.
 */
int ap__server_create(const ap_server_config *cfg, ap_server_log_fn log, void *log_ctx,
                     ap_server **out, ap_error *err);
/* The port actually bound (useful with port 0). */
int ap__server_port(const ap_server *s);
/* Models loaded and served now. */
int ap__server_models_loaded(ap_server *s);
/*
 * Graceful stop: stop accepting connections, answer requests already received
 * (new requests on open connections are answered with Connection: close),
 * wait up to shutdown_timeout for them, then stop the replay and HTTP threads.
 */
void ap__server_shutdown(ap_server *s);
/* SIGHUP: read auth_tokens_file again (the old tokens stay on failure);
   the outcome is logged. AP_OK, or why not (no file configured: EINVAL). */
int ap__server_reload_auth(ap_server *s, ap_error *err);
/* Shuts down first if that was not done. */
void ap__server_free(ap_server *s);

#endif
