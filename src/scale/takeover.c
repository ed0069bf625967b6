/*
 * Making a partition live on this node (its lease was just won).
 *
 *   1. XGROUP CREATE (once per stream), XINFO GROUPS -> L, the last entry
 *      the group delivered to anyone; XPENDING -> P0, the oldest entry
 *      delivered and not acked (none: every delivered entry was acked).
 *   2. XAUTOCLAIM ... NODE 0 0-0 JUSTID until the cursor is 0-0: the pending
 *      entries (a dead owner's) are ours now (counted: claimed).
 *   3. XRANGE - .. L, in pages: entries before P0 are fed quietly (the
 *      partition is muted: their signals were published by an earlier
 *      owner, and a refused one was dead-lettered then); from P0 on they
 *      are fed as new ones (unmuted after a flush), flushed and XACKed —
 *      their signals may or may not have been published, and the signal
 *      keys make publication idempotent.
 * Then the consumer reads the partition from ">" as usual. The series state
 * after step 3 is what the previous owner had after L: the same bars in the
 * same order through the same code, so the next signals are bitwise its
 * (as long as the stream still holds every bar since the series began:
 * maxlen, docs/SCALE_OUT.md).
 */
#include "scale/scale_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE 512

static int group_info(ap_worker *w, ap_rconn *c, const char *key, char *last, size_t size)
{
    redisReply *r = ap__rconn_cmdf(c, "XINFO GROUPS %s", key);
    if (!r)
        return -1;
    int found = 0;
    for (size_t g = 0; r->type == REDIS_REPLY_ARRAY && g < r->elements; g++) {
        redisReply *e = r->element[g];
        const char *name = NULL, *ld = NULL;
        for (size_t i = 0; e->type == REDIS_REPLY_ARRAY && i + 1 < e->elements; i += 2) {
            if (!e->element[i]->str)
                continue;
            if (!strcmp(e->element[i]->str, "name"))
                name = e->element[i + 1]->str;
            else if (!strcmp(e->element[i]->str, "last-delivered-id"))
                ld = e->element[i + 1]->str;
        }
        if (name && ld && !strcmp(name, AP_SCALE_GROUP)) {
            snprintf(last, size, "%s", ld);
            found = 1;
        }
    }
    freeReplyObject(r);
    return found ? 0 : -1;
}

/* The oldest pending id into *p0; 1 if there is one, 0 if none, -1: failed. */
static int oldest_pending(ap_rconn *c, const char *key, ap_scale_id *p0)
{
    redisReply *r = ap__rconn_cmdf(c, "XPENDING %s " AP_SCALE_GROUP, key);
    if (!r)
        return -1;
    int rc = -1;
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
        rc = r->element[1]->type == REDIS_REPLY_STRING
                 ? (ap__scale_id_parse(r->element[1]->str, p0) ? -1 : 1)
                 : 0;
    }
    freeReplyObject(r);
    return rc;
}

static int claim(ap_worker *w, ap_rconn *c, const char *key)
{
    char cursor[48] = "0-0";
    do {
        redisReply *r = ap__rconn_cmdf(c, "XAUTOCLAIM %s " AP_SCALE_GROUP " %s 0 %s COUNT 1000 "
                                       "JUSTID", key, w->node, cursor);
        if (!r)
            return -1;
        int ok = r->type == REDIS_REPLY_ARRAY && r->elements >= 2 && r->element[0]->str;
        if (ok) {
            snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
            if (r->element[1]->type == REDIS_REPLY_ARRAY)
                atomic_fetch_add(&w->n.claimed, r->element[1]->elements);
        }
        freeReplyObject(r);
        if (!ok)
            return -1;
    } while (strcmp(cursor, "0-0"));
    return 0;
}

int ap__scale_takeover(ap_worker *w, ap_rconn *c, uint32_t p)
{
    char key[24], last[48], start[56] = "-";
    snprintf(key, sizeof key, "ap:bars:%u", p);
    ap_scale_id L, p0;
    int has_p0;
    if (ap__scale_group(w, c, key) || group_info(w, c, key, last, sizeof last) ||
        ap__scale_id_parse(last, &L) || (has_p0 = oldest_pending(c, key, &p0)) < 0 ||
        claim(w, c, key))
        return AP_EIO;
    ap_scale_part *pt = &w->parts[p];
    atomic_store(&pt->muted, 1);
    int rc = AP_OK;
    uint64_t replayed = 0;
    while (!atomic_load(&w->stop) && (L.ms || L.seq)) {
        redisReply *r = ap__rconn_cmdf(c, "XRANGE %s %s %s COUNT %d", key, start, last, PAGE);
        if (!r || r->type != REDIS_REPLY_ARRAY) {
            if (r)
                freeReplyObject(r);
            rc = AP_EIO;
            break;
        }
        const char **ids = malloc((r->elements + 1) * sizeof *ids);
        size_t nids = 0;
        for (size_t i = 0; ids && i < r->elements; i++) {
            redisReply *e = r->element[i];
            ap_scale_id id;
            if (e->type != REDIS_REPLY_ARRAY || !e->elements || !e->element[0]->str ||
                ap__scale_id_parse(e->element[0]->str, &id))
                continue;
            int live = has_p0 && ap__scale_id_cmp(id, p0) >= 0;
            if (live && atomic_load(&pt->muted)) {
                ap__stream_flush(w->srv->stream); /* the quiet part's closes are through */
                atomic_store(&pt->muted, 0);
            }
            ap__scale_entry(w, c, p, e, !live);
            replayed++;
            if (live)
                ids[nids++] = e->element[0]->str;
        }
        ap__stream_flush(w->srv->stream);
        if (nids)
            ap__scale_ack(w, c, key, ids, nids);
        free(ids);
        size_t n = r->elements;
        if (n)
            snprintf(start, sizeof start, "(%s", r->element[n - 1]->element[0]->str);
        freeReplyObject(r);
        if (n < PAGE)
            break;
    }
    ap__stream_flush(w->srv->stream);
    atomic_store(&pt->muted, 0);
    atomic_fetch_add(&w->n.replayed, replayed);
    if (rc == AP_OK)
        ap__worker_log(w, "partition %u: live (%llu entries replayed, up to %s)", p,
                       (unsigned long long)replayed, last);
    return rc;
}
