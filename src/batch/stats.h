/* Internal to src/batch: the statistics histograms (stats.c). */
#ifndef AP_BATCH_STATS_H
#define AP_BATCH_STATS_H

#include "alphapulse/batch.h"

#include <stdint.h>

void ap__batch_hist_add(ap_batch_hist *h, uint64_t ns);
void ap__batch_hist_merge(ap_batch_hist *into, const ap_batch_hist *from);
void ap__batch_size_add(uint64_t bucket[AP_BATCH_SIZE_BUCKETS], uint64_t rows);

#endif
