/* The server's log line (the caller's log function), used by every part. */
#include "server/server_internal.h"

#include <stdarg.h>
#include <stdio.h>

void ap__srv_log(ap_server *s, const char *fmt, ...)
{
    if (!s->log)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s->log(s->log_ctx, msg);
}
