/*
 * The async result store: a ring of model_cache_size entries (the oldest is
 * overwritten when full, pending or not: a request whose entry was evicted
 * still runs, its result is dropped) with a chained hash index by id.
 * Completed entries expire result_ttl after completion. One mutex; every
 * operation is O(1) apart from a hash chain walk.
 */
#include "server/server_internal.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"

int ap_srv_results_init(ap_srv_results *rs, size_t cap, uint64_t ttl_ns, ap_error *err)
{
    memset(rs, 0, sizeof *rs);
    size_t nb = 16;
    while (nb < 2 * cap)
        nb *= 2;
    rs->e = calloc(cap, sizeof *rs->e);
    rs->buckets = malloc(nb * sizeof *rs->buckets);
    if (!rs->e || !rs->buckets) {
        free(rs->e);
        free(rs->buckets);
        return ap_error_set(err, AP_ENOMEM, "result store: out of memory for %zu entries", cap);
    }
    for (size_t i = 0; i < nb; i++)
        rs->buckets[i] = -1;
    rs->cap = cap;
    rs->nbuckets = nb;
    rs->ttl_ns = ttl_ns;
    pthread_mutex_init(&rs->mu, NULL);
    return AP_OK;
}

void ap_srv_results_free(ap_srv_results *rs)
{
    if (!rs->e)
        return;
    for (size_t i = 0; i < rs->cap; i++)
        ap_srv_version_unref(rs->e[i].ver);
    pthread_mutex_destroy(&rs->mu);
    free(rs->e);
    free(rs->buckets);
    rs->e = NULL;
}

static size_t bucket_of(const ap_srv_results *rs, uint64_t id)
{
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdULL;
    id ^= id >> 33;
    return (size_t)(id & (rs->nbuckets - 1));
}

void ap_srv_results_remove_locked(ap_srv_results *rs, ap_srv_result *e)
{
    if (e->state == RES_FREE)
        return;
    int32_t *p = &rs->buckets[bucket_of(rs, e->id)];
    int32_t idx = (int32_t)(e - rs->e);
    while (*p != -1 && *p != idx)
        p = &rs->e[*p].next;
    if (*p == idx)
        *p = e->next;
    e->state = RES_FREE;
    ap_srv_version_unref(e->ver);
    e->ver = NULL;
}

ap_srv_result *ap_srv_results_insert_locked(ap_srv_results *rs, uint64_t id)
{
    ap_srv_result *e = &rs->e[rs->head++ % rs->cap];
    if (e->state != RES_FREE) {
        rs->evicted++;
        ap_srv_results_remove_locked(rs, e);
    }
    memset(e, 0, sizeof *e);
    e->id = id;
    e->state = RES_PENDING;
    size_t b = bucket_of(rs, id);
    e->next = rs->buckets[b];
    rs->buckets[b] = (int32_t)(e - rs->e);
    return e;
}

ap_srv_result *ap_srv_results_find_locked(ap_srv_results *rs, uint64_t id, uint64_t now_ns)
{
    for (int32_t i = rs->buckets[bucket_of(rs, id)]; i != -1; i = rs->e[i].next) {
        ap_srv_result *e = &rs->e[i];
        if (e->id != id)
            continue;
        if (e->state != RES_PENDING && now_ns - e->t_done_ns > rs->ttl_ns) {
            ap_srv_results_remove_locked(rs, e);
            return NULL;
        }
        return e;
    }
    return NULL;
}

size_t ap_srv_results_count(ap_srv_results *rs)
{
    size_t n = 0;
    pthread_mutex_lock(&rs->mu);
    for (size_t i = 0; i < rs->cap; i++)
        n += rs->e[i].state != RES_FREE;
    pthread_mutex_unlock(&rs->mu);
    return n;
}
