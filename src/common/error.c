#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int ap__error_set(ap_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

int ap__error_prefix(ap_error *err, const char *fmt, ...)
{
    if (!err)
        return AP_EINVAL;
    char both[2 * AP_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(both, AP_ERROR_MSG_MAX, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if (n >= AP_ERROR_MSG_MAX)
        n = AP_ERROR_MSG_MAX - 1;
    memcpy(both + n, err->msg, sizeof err->msg);
    both[AP_ERROR_MSG_MAX - 1] = '\0';
    memcpy(err->msg, both, sizeof err->msg);
    return err->code;
}

const char *ap_status_name(int code)
{
    switch (code) {
    case AP_OK: return "OK";
    case AP_EINVAL: return "EINVAL";
    case AP_ENOMEM: return "ENOMEM";
    case AP_EIO: return "EIO";
    case AP_EFORMAT: return "EFORMAT";
    case AP_ENOTFOUND: return "ENOTFOUND";
    case AP_ETIMEDOUT: return "ETIMEDOUT";
    case AP_EOVERLOAD: return "EOVERLOAD";
    case AP_ECANCELLED: return "ECANCELLED";
    case AP_ERANGE: return "ERANGE";
    case AP_EUNSUPPORTED: return "EUNSUPPORTED";
    case AP_EFULL: return "EFULL";
    case AP_ECONFLICT: return "ECONFLICT";
    default: return "EUNKNOWN";
    }
}

const char *ap_version(void) { return AP_VERSION; }

const char *ap_precision_name(ap_precision p)
{
    switch (p) {
    case AP_PRECISION_AUTO: return "auto";
    case AP_PRECISION_FULL: return "full";
    case AP_PRECISION_REDUCED: return "reduced";
    default: return "?";
    }
}

int ap_precision_parse(const char *s, ap_precision *out, ap_error *err)
{
    static const ap_precision all[] = {AP_PRECISION_AUTO, AP_PRECISION_FULL, AP_PRECISION_REDUCED};
    for (size_t i = 0; s && i < sizeof all / sizeof all[0]; i++)
        if (strcmp(s, ap_precision_name(all[i])) == 0) {
            *out = all[i];
            return AP_OK;
        }
    return ap__error_set(err, AP_EINVAL, "precision \"%s\": expected auto, full or reduced",
                         s ? s : "(null)");
}
