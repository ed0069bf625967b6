/* The alphapulse-v1 names: the public contract, in spec (column) order. */
#include <string.h>

#include "alphapulse/features.h"
#include "common/error.h"
#include "features/features_internal.h"

static const char *const names[AP_FEATURE_COUNT] = {
#define X(id, name) name,
    AP_FEATURE_LIST(X)
#undef X
};

int ap_feature_count(void)
{
    return AP_FEATURE_COUNT;
}

const char *ap_feature_name(int i)
{
    return i >= 0 && i < AP_FEATURE_COUNT ? names[i] : NULL;
}

/*
 * A linear scan of 101 short strings: models resolve their names once at load
 * time, so a hash table here would buy nothing measurable.
 */
int ap_feature_index(const char *name)
{
    if (!name)
        return -1;
    for (int i = 0; i < AP_FEATURE_COUNT; i++)
        if (!strcmp(names[i], name))
            return i;
    return -1;
}

int ap_feature_resolve(const char *const *want, size_t n, int *idx, ap_error *err)
{
    for (size_t i = 0; i < n; i++) {
        idx[i] = ap_feature_index(want[i]);
        if (idx[i] < 0)
            return ap__error_set(err, AP_ENOTFOUND,
                                "feature '%s' (name %zu of %zu) is not in alphapulse-v1",
                                want[i] ? want[i] : "(null)", i + 1, n);
    }
    return AP_OK;
}
