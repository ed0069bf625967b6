/*
 * Private: building one version of a model completely (load.c) — manifest,
 * version spec, predictor or ensemble members, widths, names, warm-up — so
 * that the registry only has to publish it.
 */
#ifndef AP_REGISTRY_LOAD_H
#define AP_REGISTRY_LOAD_H

#include "registry/registry_internal.h"

/* Under reg->admin: build version `version` (0: by the manifest's policy)
   of `name` for entry e. *out has one reference (the registry's); on error
   nothing is left. */
int ap__version_build(const ap_registry *reg, const char *name, uint32_t version, ap_entry *e,
                     ap_model **out, ap_error *err);

#endif
