/* Reading the TLS certificate and key (tls_cert_file, tls_key_file) for
   libmicrohttpd, which takes them as PEM text in memory. */
#include "server/http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

/* A whole PEM file as a string (what libmicrohttpd's TLS options take). */
int ap__srv_read_pem(const char *path, const char *what, char **out, ap_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ap__error_set(err, AP_EIO, "%s %s: %s", what, path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            if (cap > (1u << 20)) {
                free(buf);
                fclose(f);
                return ap__error_set(err, AP_ERANGE, "%s %s: larger than 1 MB: not a PEM file",
                                    what, path);
            }
            cap = cap ? 2 * cap : 8192;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return ap__error_set(err, AP_ENOMEM, "%s: out of memory", what);
            }
            buf = nb;
        }
        size_t k = fread(buf + n, 1, cap - n - 1, f);
        n += k;
        if (k == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    buf[n] = 0;
    if (bad || !strstr(buf, "-----BEGIN ")) {
        free(buf);
        return ap__error_set(err, AP_EINVAL, "%s %s: %s", what, path,
                            bad ? "read error" : "not a PEM file (no -----BEGIN line)");
    }
    *out = buf;
    return AP_OK;
}
