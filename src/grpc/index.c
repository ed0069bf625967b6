/*
 * The repository index and the server's readiness as data, for the gRPC
 * RPCs. The same walk as the REST index (server/handlers_v2.c, which writes
 * JSON as it goes): the catalog read again, then models served that are no
 * longer in the repository.
 */
#include "grpc/rpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "server/server_internal.h"

int ap__grpc_server_ready(ap_server *s)
{
    return !atomic_load(&s->draining) && ap__service_resident(s->svc) > 0;
}

int ap__grpc_index_read(ap_server *s, int only_ready, ap__grpc_index *out, ap_error *err)
{
    out->e = NULL;
    out->n = 0;
    ap_repo_model *cat = NULL;
    int nc = 0;
    int rc = ap__service_catalog(s->svc, 1, &cat, &nc, err);
    if (rc)
        return rc;
    ap_registry *reg = ap__service_registry(s->svc);
    int nslots = ap__service_slots(s->svc);
    out->e = calloc((size_t)(nc + nslots) + 1, sizeof *out->e);
    if (!out->e) {
        ap_registry_listing_free(cat);
        return ap__error_set(err, AP_ENOMEM, "out of memory for the index");
    }
    for (int i = 0; i < nc + nslots; i++) {
        const char *name;
        if (i < nc)
            name = cat[i].name;
        else {
            name = ap__service_slot_name(s->svc, i - nc);
            int seen = 0;
            for (int k = 0; k < nc && !seen; k++)
                seen = !strcmp(cat[k].name, name);
            if (seen)
                continue;
        }
        ap_model *m = ap__service_slot_model(s->svc, ap__service_slot_find(s->svc, name));
        uint32_t v = 0;
        if (m) {
            ap_model_info in;
            ap_model_describe(m, &in);
            v = in.version;
            ap_model_release(m);
        }
        if (only_ready && !v)
            continue;
        ap__grpc_index_entry *e = &out->e[out->n++];
        snprintf(e->name, sizeof e->name, "%s", name);
        if (v) {
            e->ready = 1;
            snprintf(e->version, sizeof e->version, "%u", v);
            continue;
        }
        if (!ap_registry_failure(reg, name, e->reason, sizeof e->reason))
            snprintf(e->reason, sizeof e->reason, "%s",
                     i < nc && !cat[i].ok ? "manifest.json cannot be read or parsed"
                                          : "not loaded");
    }
    ap_registry_listing_free(cat);
    return AP_OK;
}

void ap__grpc_index_free(ap__grpc_index *idx)
{
    free(idx->e);
    idx->e = NULL;
    idx->n = 0;
}
