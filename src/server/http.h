/*
 * The HTTP front of the server (http.c): libmicrohttpd daemons, one event
 * loop per HTTP thread, the connection guard (bounded request reception,
 * reserve connections for health checks). See the top of http.c.
 */
#ifndef AP_SERVER_HTTP_H
#define AP_SERVER_HTTP_H

#include "server/server_internal.h"

typedef struct ap_srv_http ap_srv_http;


/* Bind host:port and start the http_threads event loops. */
int ap__srv_http_start(ap_server *s, ap_srv_http **out, ap_error *err);
int ap__srv_http_port(const ap_srv_http *h);
/* Stop accepting (open connections go on); returns once every loop did. */
void ap__srv_http_quiesce(ap_srv_http *h);
/* Stop the loops and the daemons (open connections are closed). Every
   suspended connection must have been resumed (the batchers freed). */
void ap__srv_http_stop(ap_srv_http *h);
void ap__srv_http_free(ap_srv_http *h);

/* A whole PEM file as a string (malloc'd), checked to look like PEM;
   what names the setting in messages (pem.c). */
int ap__srv_read_pem(const char *path, const char *what, char **out, ap_error *err);

#endif
