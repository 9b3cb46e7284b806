/*
 * The Envoy module mode's floor, as noop_authz is the gRPC mode's: a
 * dynamic module (ABI v0.2.0, Envoy 1.40) whose filter reads one request
 * header (`authorization`) and sets one (`x-user-id: noop`), and does
 * nothing else. The bench (scripts/bench/, the envoy phase) compares
 * ward's module with it, so the rows show what ward's checks cost over
 * the bare cost of a module filter in Envoy's chain.
 *
 * Built by scripts/bench.sh only (not by the test command):
 *   cc -O2 -shared -fPIC -o target/release/examples/libward_noop.so \
 *      benches/tools/noop_module.c
 * Envoy loads it as dynamic_module_config.name "ward_noop". The hooks and
 * callbacks are those of envoy-module/src/abi.rs (checked against 1.40).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *ptr;
    size_t length;
} buffer;

typedef struct {
    const char *key;
    size_t key_length;
    const char *value;
    size_t value_length;
} header;

bool envoy_dynamic_module_callback_http_get_header(void *filter, int kind, buffer key,
                                                   buffer *out, size_t index, size_t *count);
bool envoy_dynamic_module_callback_http_set_header(void *filter, int kind, buffer key,
                                                   buffer value);

enum { REQUEST_HEADER = 0, CONTINUE = 0 };

/* Any non-null pointer: the filter keeps no state. */
static const char state = 0;

const char *envoy_dynamic_module_on_program_init(void) { return "v0.2.0"; }

const void *envoy_dynamic_module_on_http_filter_config_new(void *envoy, buffer name,
                                                           buffer config) {
    (void)envoy, (void)name, (void)config;
    return &state;
}
void envoy_dynamic_module_on_http_filter_config_destroy(const void *config) { (void)config; }

const void *envoy_dynamic_module_on_http_filter_new(const void *config, void *envoy) {
    (void)config, (void)envoy;
    return &state;
}
void envoy_dynamic_module_on_http_filter_destroy(const void *filter) { (void)filter; }

int envoy_dynamic_module_on_http_filter_request_headers(void *envoy, const void *filter,
                                                        bool end_of_stream) {
    (void)filter, (void)end_of_stream;
    buffer key = {"authorization", 13}, value = {0, 0};
    size_t count = 0;
    envoy_dynamic_module_callback_http_get_header(envoy, REQUEST_HEADER, key, &value, 0, &count);
    buffer name = {"x-user-id", 9}, user = {"noop", 4};
    if (value.length > 0)
        envoy_dynamic_module_callback_http_set_header(envoy, REQUEST_HEADER, name, user);
    return CONTINUE;
}

/* Every other hook Envoy 1.40 requires: nothing to do. */
int envoy_dynamic_module_on_http_filter_request_body(void *e, const void *f, bool end) {
    (void)e, (void)f, (void)end;
    return CONTINUE;
}
int envoy_dynamic_module_on_http_filter_request_trailers(void *e, const void *f) {
    (void)e, (void)f;
    return CONTINUE;
}
int envoy_dynamic_module_on_http_filter_response_headers(void *e, const void *f, bool end) {
    (void)e, (void)f, (void)end;
    return CONTINUE;
}
int envoy_dynamic_module_on_http_filter_response_body(void *e, const void *f, bool end) {
    (void)e, (void)f, (void)end;
    return CONTINUE;
}
int envoy_dynamic_module_on_http_filter_response_trailers(void *e, const void *f) {
    (void)e, (void)f;
    return CONTINUE;
}
void envoy_dynamic_module_on_http_filter_stream_complete(void *e, const void *f) {
    (void)e, (void)f;
}
void envoy_dynamic_module_on_http_filter_scheduled(void *e, const void *f, uint64_t id) {
    (void)e, (void)f, (void)id;
}
void envoy_dynamic_module_on_http_filter_http_callout_done(void *e, const void *f, uint64_t id,
                                                           int result, const header *h,
                                                           size_t hn, const buffer *b,
                                                           size_t bn) {
    (void)e, (void)f, (void)id, (void)result, (void)h, (void)hn, (void)b, (void)bn;
}
void envoy_dynamic_module_on_http_filter_http_stream_headers(void *e, const void *f,
                                                             uint64_t id, const header *h,
                                                             size_t n, bool end) {
    (void)e, (void)f, (void)id, (void)h, (void)n, (void)end;
}
void envoy_dynamic_module_on_http_filter_http_stream_data(void *e, const void *f, uint64_t id,
                                                          const buffer *d, size_t n, bool end) {
    (void)e, (void)f, (void)id, (void)d, (void)n, (void)end;
}
void envoy_dynamic_module_on_http_filter_http_stream_trailers(void *e, const void *f,
                                                              uint64_t id, const header *h,
                                                              size_t n) {
    (void)e, (void)f, (void)id, (void)h, (void)n;
}
void envoy_dynamic_module_on_http_filter_http_stream_complete(void *e, const void *f,
                                                              uint64_t id) {
    (void)e, (void)f, (void)id;
}
void envoy_dynamic_module_on_http_filter_http_stream_reset(void *e, const void *f, uint64_t id,
                                                           int reason) {
    (void)e, (void)f, (void)id, (void)reason;
}
void envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    void *e, const void *f) {
    (void)e, (void)f;
}
void envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    void *e, const void *f) {
    (void)e, (void)f;
}
