/*
 * A listening TCP socket for a front (the HTTP port, the gRPC port): bound,
 * non-blocking, close-on-exec, with the port it got and whether the address
 * is loopback (each front has its own rule for non-loopback addresses).
 */
#ifndef AP_SERVER_LISTEN_H
#define AP_SERVER_LISTEN_H

#include "common/error.h"

typedef struct ap_srv_listener {
    int fd;       /* listening, non-blocking */
    int port;     /* the port bound (the one asked for, or the kernel's for 0) */
    int loopback; /* the bound address is 127/8 or ::1 */
} ap_srv_listener;

/* Listen on host:port; `setting` names the port's setting in the error
   ("port", "grpc_port"). Returns AP_OK or an error naming host and port. */
int ap__srv_listen(const char *host, int port, const char *setting, ap_srv_listener *out,
                   ap_error *err);

#endif
