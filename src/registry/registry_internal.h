/*
 * Private: the registry itself, its catalog of entries and why models are
 * not loaded (registry.c), with the entry lookup that load.c needs to
 * resolve ensemble members.
 */
#ifndef AP_REGISTRY_INTERNAL_H
#define AP_REGISTRY_INTERNAL_H

#include <string.h>

#include "registry/model.h"

/* Why a repository folder's model is not loaded (its last failed load). */
typedef struct ap_failure {
    char name[AP_MODEL_NAME_MAX + 1];
    char msg[AP_ERROR_MSG_MAX];
} ap_failure;

struct ap_registry {
    ap_registry_options opt; /* onnx.ort_library points to ort_library */
    char *ort_library;
    char *root;
    char *real_root;        /* realpath(root): files must resolve inside it */
    pthread_mutex_t admin;  /* serialises load, unload, load_all; never taken by readers */
    ap_entry *entries[AP_REGISTRY_MAX_MODELS];
    _Atomic int count;      /* entries[0..count) are published (successful loads only) */
    pthread_mutex_t fail_mu; /* guards failures (read from request threads) */
    ap_failure failures[AP_REGISTRY_MAX_MODELS];
    int nfailures;
};

/* The published entry of a name, or NULL. Any thread. */
static inline ap_entry *ap__registry_find_entry(const ap_registry *reg, const char *name)
{
    int n = atomic_load_explicit(&reg->count, memory_order_acquire);
    for (int i = 0; i < n; i++)
        if (!strcmp(reg->entries[i]->name, name))
            return reg->entries[i];
    return NULL;
}

#endif
