/* The worker's one log call (its parts all log through it). */
#include "scale/scale_internal.h"

#include <stdarg.h>
#include <stdio.h>

void ap__worker_log(ap_worker *w, const char *fmt, ...)
{
    if (!w->log)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    w->log(w->log_ctx, msg);
}

