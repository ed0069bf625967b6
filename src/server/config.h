/*
 * Configuration of `alphapulse serve`: one table of settings, each with a
 * file key, environment names, a default, a range and a help line.
 *
 * Sources, later ones win: defaults < config file < environment < command
 * line. The file is `key = value` lines; `#` starts a comment (a whole line,
 * or after whitespace following a value); values may be "quoted". Every key
 * has the environment name AP_<KEY in upper case>; the five settings of the
 * original service also answer to their original names (BATCH_SIZE,
 * INFERENCE_TIMEOUT, MODEL_CACHE_SIZE, ONNX_ENABLED, MIXED_PRECISION_ENABLED),
 * with the AP_ name winning when both are set. An unknown key or a bad value
 * is an error naming the key and where it came from (file:line, the variable,
 * or the option).
 */
#ifndef AP_SERVER_CONFIG_H
#define AP_SERVER_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "alphapulse/common.h"
#include "alphapulse/features.h"

#define AP_REPLAY_MAX_SOURCES 16
#define AP_CONFIG_PATH_MAX 1024

typedef struct ap_replay_source {
    char symbol[AP_SYMBOL_MAX];
    char timeframe[16]; /* as written, e.g. "4h" */
    int64_t tf_s;
    char path[AP_CONFIG_PATH_MAX];
} ap_replay_source;

typedef struct ap_server_config {
    char host[256];
    int port;                    /* 0 = any free port */
    char repository[AP_CONFIG_PATH_MAX];
    int grpc_port;               /* gRPC (src/grpc); 0 = none */
    int64_t grpc_max_message_bytes; /* largest gRPC request message */
    int http_threads;            /* libmicrohttpd polling threads */
    int workers;                 /* inference worker threads, 0 = one per core */
    int batch_size;              /* BATCH_SIZE: cap on rows per batch */
    int64_t max_queue_delay_us;  /* -1 = each model's manifest value */
    int64_t adaptive_target_us;  /* 0 = off */
    int max_queue_rows;
    int max_batch_items;         /* items of one /v1/predict/batch request */
    double inference_timeout;    /* INFERENCE_TIMEOUT, seconds */
    int model_cache_size;        /* MODEL_CACHE_SIZE: model versions kept resident (LRU) */
    int max_async_results;       /* async results kept */
    double result_ttl;           /* seconds */
    char onnx_enabled[8];        /* ONNX_ENABLED: "auto", "native" or "ort" (docs/ONNX.md) */
    char onnxruntime_lib[AP_CONFIG_PATH_MAX]; /* ONNXRUNTIME_LIB; "": the default */
    int mixed_precision_enabled; /* MIXED_PRECISION_ENABLED: manifest "auto" means reduced */
    int64_t gpu_min_batch_rows;  /* GPU_MIN_BATCH_ROWS: device "auto" threshold; 0: calibrate */
    int history;                 /* bars kept per series */
    int max_series;
    int64_t max_body_bytes;
    int max_connections;
    int connection_timeout;      /* seconds an idle connection is kept */
    double request_timeout;      /* seconds a request's headers + body may take to arrive */
    int reserve_connections;     /* beyond max_connections, for health checks only */
    int64_t max_future_s;        /* bars may start at most this far ahead of the clock */
    double shutdown_timeout;     /* seconds in-flight requests get on SIGTERM */
    int access_log;
    char auth_tokens_file[AP_CONFIG_PATH_MAX]; /* "": no authentication */
    int allow_insecure;          /* listen beyond loopback without tokens */
    double rate_limit_rps;       /* per token; 0: none */
    char tls_cert_file[AP_CONFIG_PATH_MAX], tls_key_file[AP_CONFIG_PATH_MAX]; /* PEM */
    int stream_buffer;           /* events a stream subscriber may have waiting */
    int stream_history;          /* events kept per series for Last-Event-ID */
    double stream_keepalive;     /* seconds between keep-alive comments on an idle stream */
    double stream_linger;        /* seconds a closed stream's models are still predicted */
    int stream_max_subscribers;
    int stream_queue;            /* closed bars waiting for their predictions */
    int inline_inference;        /* evaluate on the HTTP thread, not the batcher */
    int caller_runs;             /* an idle batcher's batch runs on the HTTP thread */
    ap_replay_source replay[AP_REPLAY_MAX_SOURCES];
    int nreplay;
    double replay_speed;         /* bars per second per source, 0 = no pause */
    int replay_warmup;           /* bars fed at once before pacing */
    int replay_loop;
    /* `alphapulse worker` (docs/SCALE_OUT.md) */
    char redis[AP_CONFIG_PATH_MAX]; /* redis://HOST:PORT[/DB]; "": not a worker */
    char node_name[64];
    int partitions;
    int lease_ms;
    int64_t maxlen;              /* MAXLEN ~ of every stream written; 0: untrimmed */
    int64_t dedup_ttl_ms;
    int redis_batch;
} ap_server_config;

void ap__server_config_default(ap_server_config *c);

/* Set one setting from text. key: file key, any case, '-' same as '_'.
   where: for messages ("alphapulse.conf:12", "environment AP_PORT", "--port"). */
int ap__server_config_set(ap_server_config *c, const char *key, const char *value,
                         const char *where, ap_error *err);

/* Apply a config file (every line; stops at the first bad one). */
int ap__server_config_load_file(ap_server_config *c, const char *path, ap_error *err);

/* Apply the environment: getenv_fn(name) returns the value or NULL (getenv). */
int ap__server_config_load_env(ap_server_config *c, const char *(*getenv_fn)(const char *name),
                              ap_error *err);

/* Cross-setting checks, after every source was applied. */
int ap__server_config_check(const ap_server_config *c, ap_error *err);

/* The settings table, for --help and for reporting the effective values. */
typedef struct ap_config_setting_info {
    const char *key;      /* file key, e.g. "batch_size" */
    const char *env;      /* AP_BATCH_SIZE */
    const char *env_alt;  /* BATCH_SIZE, or NULL */
    const char *def;      /* default, as text */
    const char *help;
} ap_config_setting_info;

int ap__server_config_count(void);
void ap__server_config_info(int i, ap_config_setting_info *out);
/* Current value of setting i as text (replay: the list as written back). */
void ap__server_config_value(const ap_server_config *c, int i, char *buf, size_t size);

#endif
