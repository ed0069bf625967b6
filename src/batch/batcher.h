/*
 * Internal to src/batch: batch formation and running (batcher.c), for the
 * request calls (request.c). All take b->mu as noted.
 */
#ifndef AP_BATCH_BATCHER_H
#define AP_BATCH_BATCHER_H

#include "batch/batch_internal.h"

/*
 * Adaptive delay of a new head (b->mu held): call when a request becomes
 * the oldest queued one, so that rescans of the same head agree.
 */
void ap__batcher_decide_delay_locked(ap_batcher *b);

/*
 * Take the batch at the head of the queue into j (b->mu held, j zeroed, the
 * head is ready): whole requests of the head's model context, FIFO, up to
 * max_batch_rows (one larger request alone); expired ones on the way are
 * timed out into j->dead. A non-empty batch counts one runner (b->runners).
 * The caller sets j->b and counts b->active when j holds anything.
 */
void ap__batcher_take_locked(ap_batcher *b, job *j, uint64_t now);

/*
 * Caller runs: run the job j taken on this thread (no lock held; one
 * b->active count and, with a batch, one b->runners count held), then,
 * while requests queued meanwhile and no other batch runs, the next
 * batches, up to AP_BATCH_CALLER_MAX_BATCHES in all; what is left goes to
 * the pool.
 */
void ap__batcher_caller_run(ap_batcher *b, job *j);

#endif
