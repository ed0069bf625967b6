/* Configuration of the server: the settings table and its three text sources. */
#include "server/config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/csv.h"
#include "common/error.h"

typedef enum { T_INT, T_I64, T_DOUBLE, T_BOOL, T_STR, T_REPLAY, T_ONNX } stype;

typedef struct setting {
    const char *key, *env, *env_alt;
    stype type;
    size_t off, size; /* field offset; for T_STR its capacity */
    double min, max;
    const char *def, *help;
} setting;

#define F(field) offsetof(ap_server_config, field)
#define S(field) sizeof(((ap_server_config *)0)->field)

static const setting settings[] = {
    {"host", "AP_HOST", NULL, T_STR, F(host), S(host), 0, 0, "127.0.0.1",
     "address to listen on (name or IP; 0.0.0.0 or :: for every interface)"},
    {"port", "AP_PORT", NULL, T_INT, F(port), 0, 0, 65535, "8080", "TCP port (0: any free port)"},
    {"repository", "AP_REPOSITORY", NULL, T_STR, F(repository), S(repository), 0, 0, "examples/models",
     "model repository folder (docs/MODEL_REPOSITORY.md)"},
    {"grpc_port", "AP_GRPC_PORT", NULL, T_INT, F(grpc_port), 0, 0, 65535, "8001",
     "TCP port of the gRPC service (inference.GRPCInferenceService, plaintext HTTP/2) on host; "
     "0: no gRPC"},
    {"grpc_max_message_bytes", "AP_GRPC_MAX_MESSAGE_BYTES", NULL, T_I64, F(grpc_max_message_bytes),
     0, 1024, 1073741824, "4194304",
     "largest gRPC request message (bigger ones: RESOURCE_EXHAUSTED, not read)"},
    {"http_threads", "AP_HTTP_THREADS", NULL, T_INT, F(http_threads), 0, 1, 64, "2",
     "HTTP event loops, one thread each (requests that arrive together batch on it)"},
    {"workers", "AP_WORKERS", NULL, T_INT, F(workers), 0, 0, 1024, "0",
     "inference worker threads shared by every model (0: one per core)"},
    {"batch_size", "AP_BATCH_SIZE", "BATCH_SIZE", T_INT, F(batch_size), 0, 1, 65536, "64",
     "most rows per batch; a model's manifest max_batch_size applies when smaller"},
    {"max_queue_delay_us", "AP_MAX_QUEUE_DELAY_US", NULL, T_I64, F(max_queue_delay_us), 0, -1, 10000000, "0",
     "how long a batch waits for companions, us (-1: each model's manifest value)"},
    {"inline_inference", "AP_INLINE_INFERENCE", NULL, T_BOOL, F(inline_inference), 0, 0, 1,
     "false", "synchronous predictions run on the HTTP thread without the batcher (no "
     "queue or batching; deadlines checked before and after; docs/SERVER.md)"},
    {"caller_runs", "AP_CALLER_RUNS", NULL, T_BOOL, F(caller_runs), 0, 0, 1, "true",
     "HTTP threads run batches themselves: the first prediction of an event-loop pass at once, "
     "the ones that arrived with it as one batch at the end of the pass (docs/SERVER.md)"},
    {"adaptive_target_us", "AP_ADAPTIVE_TARGET_US", NULL, T_I64, F(adaptive_target_us), 0, 0, 10000000, "0",
     "adaptive batch delay target, us (0: off; see docs/SERVER.md)"},
    {"max_queue_rows", "AP_MAX_QUEUE_ROWS", NULL, T_INT, F(max_queue_rows), 0, 1, 1 << 24, "4096",
     "rows queued per model beyond which requests are refused (429)"},
    {"max_batch_items", "AP_MAX_BATCH_ITEMS", NULL, T_INT, F(max_batch_items), 0, 1, 1 << 20, "4096",
     "most items of one POST /v1/predict/batch (after expanding \"symbols\"; beyond: 400)"},
    {"inference_timeout", "AP_INFERENCE_TIMEOUT", "INFERENCE_TIMEOUT", T_DOUBLE, F(inference_timeout), 0, 0.001, 3600,
     "1", "default request deadline, seconds (a request may ask for less)"},
    {"model_cache_size", "AP_MODEL_CACHE_SIZE", "MODEL_CACHE_SIZE", T_INT, F(model_cache_size), 0, 1, 256, "64",
     "model versions kept loaded (least recently used unloaded first; others load on first use)"},
    {"max_async_results", "AP_MAX_ASYNC_RESULTS", NULL, T_INT, F(max_async_results), 0, 1, 1 << 22, "4096",
     "async prediction results kept (oldest evicted first)"},
    {"result_ttl", "AP_RESULT_TTL", NULL, T_DOUBLE, F(result_ttl), 0, 0.001, 86400, "60",
     "seconds an async result is kept after it completes"},
    {"onnx_enabled", "AP_ONNX_ENABLED", "ONNX_ENABLED", T_ONNX, F(onnx_enabled), 0, 0, 0, "auto",
     "ONNX models: auto (native import, ONNX Runtime for what it lacks; also true/1), "
     "native (also false/0) or ort (docs/ONNX.md)"},
    {"onnxruntime_lib", "AP_ONNXRUNTIME_LIB", "ONNXRUNTIME_LIB", T_STR, F(onnxruntime_lib),
     S(onnxruntime_lib), 0, 0, "", "ONNX Runtime library for ONNX models that need it (empty: "
     "libonnxruntime.so.1 from the library path)"},
    {"mixed_precision_enabled", "AP_MIXED_PRECISION_ENABLED", "MIXED_PRECISION_ENABLED", T_BOOL, F(mixed_precision_enabled),
     0, 0, 1, "false", "manifest precision \"auto\" means reduced (quantized trees, FP16 "
     "dense layers) for every model that qualifies; false: auto means full"},
    {"gpu_min_batch_rows", "AP_GPU_MIN_BATCH_ROWS", "GPU_MIN_BATCH_ROWS", T_I64, F(gpu_min_batch_rows),
     0, 0, 1 << 30, "0", "manifest device \"auto\": batches of at least this many rows run on "
     "the GPU where there is one (0: the threshold is measured at load, docs/GPU.md)"},
    {"history", "AP_HISTORY", NULL, T_INT, F(history), 0, 1, 1 << 24, "1000", "bars kept per series"},
    {"max_series", "AP_MAX_SERIES", NULL, T_INT, F(max_series), 0, 1, 1 << 22, "10000",
     "series the store holds (roll-up series count)"},
    {"max_body_bytes", "AP_MAX_BODY_BYTES", NULL, T_I64, F(max_body_bytes), 0, 64, 1 << 30, "1048576",
     "largest request body accepted (beyond: 413)"},
    {"max_connections", "AP_MAX_CONNECTIONS", NULL, T_INT, F(max_connections), 0, 1, 1000000, "1024",
     "simultaneous connections"},
    {"connection_timeout", "AP_CONNECTION_TIMEOUT", NULL, T_INT, F(connection_timeout), 0, 0, 86400, "30",
     "seconds an idle connection is kept open (0: for ever)"},
    {"request_timeout", "AP_REQUEST_TIMEOUT", NULL, T_DOUBLE, F(request_timeout), 0, 0.01, 3600, "10",
     "seconds a request's headers and body may take to arrive, from its first byte (beyond: closed)"},
    {"reserve_connections", "AP_RESERVE_CONNECTIONS", NULL, T_INT, F(reserve_connections), 0, 0, 100000, "16",
     "connections accepted beyond max_connections for health checks and metrics only"},
    {"max_future_s", "AP_MAX_FUTURE_S", NULL, T_I64, F(max_future_s), 0, 0, 366 * 86400, "86400",
     "a posted bar may start at most this many seconds after the server's clock"},
    {"shutdown_timeout", "AP_SHUTDOWN_TIMEOUT", NULL, T_DOUBLE, F(shutdown_timeout), 0, 0, 3600, "5",
     "seconds in-flight requests get to finish on SIGTERM"},
    {"access_log", "AP_ACCESS_LOG", NULL, T_BOOL, F(access_log), 0, 0, 1, "false",
     "log one line per request to stderr"},
    {"auth_tokens_file", "AP_AUTH_TOKENS_FILE", NULL, T_STR, F(auth_tokens_file),
     S(auth_tokens_file), 0, 0, "", "bearer tokens, one `TOKEN ROLE [NAME]` per line (roles read, "
     "predict, ingest, admin); empty: no authentication (docs/SERVER.md, Security)"},
    {"allow_insecure", "AP_ALLOW_INSECURE", NULL, T_BOOL, F(allow_insecure), 0, 0, 1, "false",
     "listen on a non-loopback address without auth_tokens_file (refused otherwise)"},
    {"rate_limit_rps", "AP_RATE_LIMIT_RPS", NULL, T_DOUBLE, F(rate_limit_rps), 0, 0, 1e6, "0",
     "requests per second per token (token bucket; beyond: 429 with Retry-After); 0: no limit; "
     "needs auth_tokens_file"},
    {"tls_cert_file", "AP_TLS_CERT_FILE", NULL, T_STR, F(tls_cert_file), S(tls_cert_file), 0, 0,
     "", "TLS certificate chain (PEM); with tls_key_file the server speaks HTTPS only"},
    {"tls_key_file", "AP_TLS_KEY_FILE", NULL, T_STR, F(tls_key_file), S(tls_key_file), 0, 0, "",
     "TLS private key (PEM, unencrypted)"},
    {"stream_buffer", "AP_STREAM_BUFFER", NULL, T_INT, F(stream_buffer), 0, 1, 1 << 20, "1024",
     "events a /v1/stream subscriber may have waiting; a slower one gets event: overflow and "
     "is closed"},
    {"stream_history", "AP_STREAM_HISTORY", NULL, T_INT, F(stream_history), 0, 1, 1 << 16, "256",
     "events kept per series for streams that reconnect with Last-Event-ID"},
    {"stream_keepalive", "AP_STREAM_KEEPALIVE", NULL, T_DOUBLE, F(stream_keepalive), 0, 0.05, 3600,
     "15", "seconds between keep-alive comments on an idle stream"},
    {"stream_linger", "AP_STREAM_LINGER", NULL, T_DOUBLE, F(stream_linger), 0, 0, 86400, "30",
     "seconds a disconnected stream's models are still predicted, so that a reconnect with "
     "Last-Event-ID finds what it missed (0: not at all)"},
    {"stream_max_subscribers", "AP_STREAM_MAX_SUBSCRIBERS", NULL, T_INT, F(stream_max_subscribers),
     0, 1, 1 << 20, "1024", "simultaneous /v1/stream subscriptions"},
    {"stream_queue", "AP_STREAM_QUEUE", NULL, T_INT, F(stream_queue), 0, 1, 1 << 24, "65536",
     "closed bars waiting for their stream predictions (beyond: dropped and counted, "
     "ingestion never waits)"},
    {"replay", "AP_REPLAY", NULL, T_REPLAY, F(replay), 0, 0, 0, "",
     "bar replay: SYMBOL/TF=FILE.csv[,...] e.g. GOOG/1d=examples/data/goog_daily.csv"},
    {"replay_speed", "AP_REPLAY_SPEED", NULL, T_DOUBLE, F(replay_speed), 0, 0, 1e6, "10",
     "replayed bars per second per source (0: as fast as possible)"},
    {"replay_warmup", "AP_REPLAY_WARMUP", NULL, T_INT, F(replay_warmup), 0, 0, 1 << 24, "200",
     "bars of each source fed at once at start, before pacing"},
    {"replay_loop", "AP_REPLAY_LOOP", NULL, T_BOOL, F(replay_loop), 0, 0, 1, "true",
     "at the end of a file start again, times shifted past the last bar"},
    /* `alphapulse worker` only (docs/SCALE_OUT.md); `serve` refuses redis */
    {"redis", "AP_REDIS", NULL, T_STR, F(redis), S(redis), 0, 0, "",
     "worker: redis://HOST:PORT[/DB] of the bar and signal streams"},
    {"node_name", "AP_NODE_NAME", NULL, T_STR, F(node_name), S(node_name), 0, 0, "",
     "worker: this node's name in leases and signals (\"\": HOSTNAME-PID)"},
    {"partitions", "AP_PARTITIONS", NULL, T_INT, F(partitions), 0, 1, 4096, "8",
     "worker: partition streams ap:bars:{0..P-1} (every node and publisher agrees)"},
    {"lease_ms", "AP_LEASE_MS", NULL, T_INT, F(lease_ms), 0, 300, 600000, "5000",
     "worker: a partition lease (and node heartbeat) lasts this long unless renewed"},
    {"maxlen", "AP_MAXLEN", NULL, T_I64, F(maxlen), 0, 0, (double)(1LL << 40), "1000000",
     "worker/publish: each stream kept to about this many entries (XADD MAXLEN ~; 0: all)"},
    {"dedup_ttl_ms", "AP_DEDUP_TTL_MS", NULL, T_I64, F(dedup_ttl_ms), 0, 1000,
     (double)(1LL << 40), "86400000",
     "worker: how long a published signal's key suppresses a replayed duplicate"},
    {"redis_batch", "AP_REDIS_BATCH", NULL, T_INT, F(redis_batch), 0, 1, 65536, "256",
     "worker: entries read per partition per XREADGROUP (then flushed and XACKed)"},
};

#define NSETTINGS ((int)(sizeof settings / sizeof settings[0]))

int ap__server_config_count(void)
{
    return NSETTINGS;
}

void ap__server_config_info(int i, ap_config_setting_info *out)
{
    const setting *s = &settings[i];
    out->key = s->key;
    out->env = s->env;
    out->env_alt = s->env_alt;
    out->def = s->def;
    out->help = s->help;
}

static const setting *find(const char *key)
{
    char k[64];
    size_t n = strlen(key);
    if (n >= sizeof k)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        k[i] = key[i] == '-' ? '_' : (char)tolower((unsigned char)key[i]);
    for (int i = 0; i < NSETTINGS; i++)
        if (!strcmp(settings[i].key, k))
            return &settings[i];
    return NULL;
}

static int parse_bool(const char *v, int *out)
{
    static const char *t[] = {"1", "true", "yes", "on"}, *f[] = {"0", "false", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (!strcasecmp(v, t[i]))
            return *out = 1, 0;
        if (!strcasecmp(v, f[i]))
            return *out = 0, 0;
    }
    return -1;
}

static int parse_i64(const char *v, int64_t *out)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (end == v || *end || errno)
        return -1;
    *out = x;
    return 0;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = 0;
    return s;
}

/* replay list: SYMBOL/TF=PATH[,SYMBOL/TF=PATH...] */
static int parse_replay(ap_server_config *c, const char *v, const char *where, ap_error *err)
{
    c->nreplay = 0;
    const char *p = v;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[AP_CONFIG_PATH_MAX + 128];
        if (len >= sizeof item)
            return ap__error_set(err, AP_EINVAL, "%s: replay: entry too long", where);
        memcpy(item, p, len);
        item[len] = 0;
        p += len + (comma ? 1 : 0);
        char *s = item;
        while (isspace((unsigned char)*s))
            s++;
        if (!*s)
            continue;
        char *eq = strchr(s, '='), *slash = strchr(s, '/');
        if (!eq || !slash || slash > eq)
            return ap__error_set(err, AP_EINVAL,
                                "%s: replay: '%s' is not SYMBOL/TIMEFRAME=FILE", where, s);
        if (c->nreplay == AP_REPLAY_MAX_SOURCES)
            return ap__error_set(err, AP_ERANGE, "%s: replay: more than %d sources", where,
                                AP_REPLAY_MAX_SOURCES);
        ap_replay_source *r = &c->replay[c->nreplay];
        *slash = *eq = 0;
        char *path = trim(eq + 1), *tf = trim(slash + 1);
        s = trim(s);
        size_t pl = strlen(path);
        if (!*s || strlen(s) >= sizeof r->symbol)
            return ap__error_set(err, AP_EINVAL, "%s: replay: symbol must be 1..%d bytes", where,
                                (int)sizeof r->symbol - 1);
        if (strlen(tf) >= sizeof r->timeframe || !pl || pl >= sizeof r->path)
            return ap__error_set(err, AP_EINVAL, "%s: replay: bad timeframe or file in '%s'",
                                where, s);
        ap_error e2;
        if (ap_timeframe_parse(tf, &r->tf_s, &e2) != AP_OK)
            return ap__error_set(err, AP_EINVAL, "%s: replay: %s", where, e2.msg);
        strcpy(r->symbol, s);
        strcpy(r->timeframe, tf);
        strcpy(r->path, path);
        c->nreplay++;
    }
    return AP_OK;
}

static int set_one(ap_server_config *c, const setting *s, const char *v, const char *where,
                   ap_error *err)
{
    char *field = (char *)c + s->off;
    switch (s->type) {
    case T_INT:
    case T_I64: {
        int64_t x;
        if (parse_i64(v, &x) || x < (int64_t)s->min || x > (int64_t)s->max)
            return ap__error_set(err, AP_EINVAL, "%s: %s: '%s' is not an integer in %.0f..%.0f",
                                where, s->key, v, s->min, s->max);
        if (s->type == T_INT)
            *(int *)field = (int)x;
        else
            *(int64_t *)field = x;
        return AP_OK;
    }
    case T_DOUBLE: {
        double x;
        if (!*v || ap__parse_double(v, &x) || isnan(x) || x < s->min || x > s->max)
            return ap__error_set(err, AP_EINVAL, "%s: %s: '%s' is not a number in %g..%g", where,
                                s->key, v, s->min, s->max);
        *(double *)field = x;
        return AP_OK;
    }
    case T_BOOL:
        if (parse_bool(v, (int *)field))
            return ap__error_set(err, AP_EINVAL, "%s: %s: '%s' is not a boolean "
                                "(true/false, yes/no, on/off, 1/0)", where, s->key, v);
        return AP_OK;
    case T_STR:
        if (strlen(v) >= s->size)
            return ap__error_set(err, AP_ERANGE, "%s: %s: value longer than %zu bytes", where,
                                s->key, s->size - 1);
        if (!*v) /* host and repository: neither may be empty */
            return ap__error_set(err, AP_EINVAL, "%s: %s: empty value", where, s->key);
        strcpy(field, v);
        return AP_OK;
    case T_REPLAY:
        return parse_replay(c, v, where, err);
    case T_ONNX: {
        /* the values src/onnx reads from ONNX_ENABLED, normalised */
        int b;
        const char *mode = !strcasecmp(v, "auto") ? "auto"
                           : !strcasecmp(v, "native") ? "native"
                           : !strcasecmp(v, "ort") ? "ort"
                           : parse_bool(v, &b) ? NULL
                           : b ? "auto" : "native";
        if (!mode)
            return ap__error_set(err, AP_EINVAL, "%s: %s: '%s' is not auto, native, ort or a "
                                "boolean", where, s->key, v);
        strcpy(field, mode);
        return AP_OK;
    }
    }
    return AP_OK;
}

void ap__server_config_default(ap_server_config *c)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < NSETTINGS; i++)
        set_one(c, &settings[i], settings[i].def, "default", NULL); /* cannot fail */
}

int ap__server_config_set(ap_server_config *c, const char *key, const char *value,
                         const char *where, ap_error *err)
{
    const setting *s = find(key);
    if (!s)
        return ap__error_set(err, AP_ENOTFOUND, "%s: unknown setting '%s' (alphapulse serve "
                            "--help lists them)", where, key);
    return set_one(c, s, value, where, err);
}

int ap__server_config_load_file(ap_server_config *c, const char *path, ap_error *err)
{
    char *text;
    size_t len;
    int rc = ap__read_file(path, 1 << 20, &text, &len, err);
    if (rc)
        return rc;
    if (strlen(text) != len) {
        free(text);
        return ap__error_set(err, AP_EFORMAT, "%s: contains a NUL byte", path);
    }
    char *line = text;
    for (long ln = 1; line && rc == AP_OK; ln++) {
        char *nl = strchr(line, '\n'), where[AP_CONFIG_PATH_MAX + 32];
        if (nl)
            *nl = 0;
        snprintf(where, sizeof where, "%s:%ld", path, ln);
        char *s = trim(line);
        line = nl ? nl + 1 : NULL;
        if (!*s || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            rc = ap__error_set(err, AP_EFORMAT, "%s: expected 'key = value', got '%s'", where, s);
            break;
        }
        *eq = 0;
        char *key = trim(s), *val = trim(eq + 1);
        if (*val == '"') { /* quoted: up to the closing quote, then only a comment */
            char *q = strchr(val + 1, '"');
            char *rest = q ? trim(q + 1) : NULL;
            if (!q || (*rest && *rest != '#')) {
                rc = ap__error_set(err, AP_EFORMAT, "%s: %s: unterminated quote or text after "
                                  "it", where, key);
                break;
            }
            *q = 0;
            val++;
        } else { /* a comment starts at '#' preceded by whitespace */
            for (char *h = val; *h; h++)
                if (*h == '#' && h > val && isspace((unsigned char)h[-1])) {
                    *h = 0;
                    val = trim(val);
                    break;
                }
        }
        if (!*key) {
            rc = ap__error_set(err, AP_EFORMAT, "%s: missing key before '='", where);
            break;
        }
        rc = ap__server_config_set(c, key, val, where, err);
    }
    free(text);
    return rc;
}

int ap__server_config_load_env(ap_server_config *c, const char *(*getenv_fn)(const char *name),
                              ap_error *err)
{
    for (int i = 0; i < NSETTINGS; i++) {
        const setting *s = &settings[i];
        const char *name = s->env, *v = getenv_fn(name);
        char where[96];
        if (!v && s->env_alt)
            v = getenv_fn(name = s->env_alt);
        if (!v)
            continue;
        snprintf(where, sizeof where, "environment %s", name);
        char buf[AP_CONFIG_PATH_MAX * 4];
        if (strlen(v) >= sizeof buf)
            return ap__error_set(err, AP_ERANGE, "%s: value too long", where);
        strcpy(buf, v);
        int rc = set_one(c, s, trim(buf), where, err);
        if (rc)
            return rc;
    }
    return AP_OK;
}

int ap__server_config_check(const ap_server_config *c, ap_error *err)
{
    if (c->rate_limit_rps > 0 && !c->auth_tokens_file[0])
        return ap__error_set(err, AP_EINVAL, "rate_limit_rps is per token: it needs "
                            "auth_tokens_file (without tokens it would do nothing)");
    if (!c->tls_cert_file[0] != !c->tls_key_file[0])
        return ap__error_set(err, AP_EINVAL, "TLS needs both tls_cert_file and tls_key_file "
                            "(%s is set alone)", c->tls_cert_file[0] ? "tls_cert_file" :
                            "tls_key_file");
    if (c->grpc_port && c->grpc_port == c->port)
        return ap__error_set(err, AP_EINVAL, "grpc_port and port are both %d: the gRPC service "
                            "needs a port of its own (or grpc_port = 0: none)", c->port);
    for (int i = 0; i < c->nreplay; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(c->replay[i].symbol, c->replay[j].symbol) &&
                c->replay[i].tf_s == c->replay[j].tf_s)
                return ap__error_set(err, AP_EINVAL, "replay: %s/%s is listed twice",
                                    c->replay[i].symbol, c->replay[i].timeframe);
    return AP_OK;
}

void ap__server_config_value(const ap_server_config *c, int i, char *buf, size_t size)
{
    const setting *s = &settings[i];
    const char *field = (const char *)c + s->off;
    switch (s->type) {
    case T_INT:
        snprintf(buf, size, "%d", *(const int *)field);
        break;
    case T_I64:
        snprintf(buf, size, "%" PRId64, *(const int64_t *)field);
        break;
    case T_DOUBLE:
        snprintf(buf, size, "%g", *(const double *)field);
        break;
    case T_BOOL:
        snprintf(buf, size, "%s", *(const int *)field ? "true" : "false");
        break;
    case T_STR:
    case T_ONNX:
        snprintf(buf, size, "%s", field);
        break;
    case T_REPLAY: {
        size_t n = 0;
        buf[0] = 0;
        for (int k = 0; k < c->nreplay && n < size; k++)
            n += snprintf(buf + n, size - n, "%s%s/%s=%s", k ? "," : "", c->replay[k].symbol,
                          c->replay[k].timeframe, c->replay[k].path);
        break;
    }
    }
}
