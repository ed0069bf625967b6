/* Replay of CSV bar files into the store, paced (replay.c). */
#ifndef AP_SERVER_REPLAY_H
#define AP_SERVER_REPLAY_H

#include <pthread.h>
#include <stdatomic.h>

#include "server/config.h"
#include "server/jbuf.h"
#include "series/bars_csv.h"

typedef struct ap_server ap_server;

typedef struct ap_srv_replay_src {
    const ap_replay_source *cfg;
    ap_series *series;
    ap_bars_csv csv;
    int open, done;
    int64_t offset_us, first_t, last_t, last_fed_t;
    uint64_t fed, rejected, loops;
    char error[AP_ERROR_MSG_MAX];
} ap_srv_replay_src;

typedef struct ap_srv_replay {
    pthread_t thread;
    int started;
    atomic_int stop;
    pthread_mutex_t mu; /* guards every source's progress fields */
    pthread_cond_t cv;
    int n;
    ap_srv_replay_src src[AP_REPLAY_MAX_SOURCES];
} ap_srv_replay;

int ap__srv_replay_start(ap_server *s, ap_error *err);
void ap__srv_replay_stop(ap_server *s);
void ap__srv_replay_json(ap_server *s, jbuf *b);

/* Append a bar to a base series (the store serialises appends) and count it
   in the ingest metrics. */
int ap__srv_ingest(ap_server *s, ap_series *series, const ap_bar *bar, ap_error *err);

#endif
