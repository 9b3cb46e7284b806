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
 *
 * With the filter config "shaped" it makes, with constant values, every
 * call into Envoy that ward's module makes on a JWT cache hit: all request
 * headers in one call, the route's per-route config, the source address,
 * one histogram value, two dynamic metadata strings (one call), four identity
 * headers added and the route cache cleared. Its row is what applying
 * ward's answer costs inside Envoy, apart from what ward computes (as the
 * ward-shaped no-op server is for ext_authz).
 *
 * With "jwt_authn_edits" it makes only what Envoy's jwt_authn filter does
 * to a request in the bench (all headers read, `x-user-id` and
 * `x-user-email` added): a module filter doing jwt_authn's job and no
 * more, for scripts/envoy-callgrind (not a bench row).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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
/* The shaped mode's calls (the signatures of envoy-module/src/abi.rs). */
size_t envoy_dynamic_module_callback_http_get_headers_size(void *filter, int kind);
bool envoy_dynamic_module_callback_http_get_headers(void *filter, int kind, header *out);
bool envoy_dynamic_module_callback_http_add_header(void *filter, int kind, buffer key,
                                                   buffer value);
void envoy_dynamic_module_callback_http_clear_route_cache(void *filter);
bool envoy_dynamic_module_callback_http_filter_get_attribute_string(void *filter, int id,
                                                                    buffer *out, size_t *len);
const void *envoy_dynamic_module_callback_get_most_specific_route_config(void *filter);
/* Entries are key/value pairs, a header's layout. */
void envoy_dynamic_module_callback_http_set_dynamic_metadata_string_batch(void *filter, buffer ns,
                                                                          const header *entries,
                                                                          size_t count);
int envoy_dynamic_module_callback_http_filter_config_define_histogram(void *config, buffer name,
                                                                      const buffer *labels,
                                                                      size_t labels_length,
                                                                      size_t *id);
int envoy_dynamic_module_callback_http_filter_record_histogram_value(void *filter, size_t id,
                                                                     const buffer *labels,
                                                                     size_t labels_length,
                                                                     uint64_t value);

enum { REQUEST_HEADER = 0, CONTINUE = 0, ATTRIBUTE_SOURCE_ADDRESS = 24, MAX_HEADERS = 128 };

/* A filter's state is its config's: plain, shaped or jwt_authn_edits. */
enum { PLAIN, SHAPED, JWT_AUTHN_EDITS };
typedef struct {
    int mode;
    size_t histogram;
} noop_config;
static noop_config plain = {PLAIN, 0}, shaped = {SHAPED, 0}, edits = {JWT_AUTHN_EDITS, 0};

const char *envoy_dynamic_module_on_program_init(void) { return "v0.2.0"; }

const void *envoy_dynamic_module_on_http_filter_config_new(void *envoy, buffer name,
                                                           buffer config) {
    (void)name;
    if (config.length == 15 && memcmp(config.ptr, "jwt_authn_edits", 15) == 0)
        return &edits;
    if (config.length != 6 || memcmp(config.ptr, "shaped", 6) != 0)
        return &plain;
    buffer histogram = {"ward_noop_duration", 18};
    envoy_dynamic_module_callback_http_filter_config_define_histogram(envoy, histogram, 0, 0,
                                                                      &shaped.histogram);
    return &shaped;
}

void envoy_dynamic_module_on_http_filter_config_destroy(const void *config) { (void)config; }

const void *envoy_dynamic_module_on_http_filter_new(const void *config, void *envoy) {
    (void)envoy;
    return config;
}

void envoy_dynamic_module_on_http_filter_destroy(const void *filter) { (void)filter; }

static void add(void *envoy, const char *name, const char *value) {
    buffer k = {name, strlen(name)}, v = {value, strlen(value)};
    envoy_dynamic_module_callback_http_add_header(envoy, REQUEST_HEADER, k, v);
}

/* Both of an allow's metadata keys, in one call. */
static void metadata(void *envoy, const char *user, const char *method) {
    buffer ns = {"envoy.filters.http.ext_authz", 28};
    header entries[2] = {{"user_id", 7, user, strlen(user)},
                         {"auth_method", 11, method, strlen(method)}};
    envoy_dynamic_module_callback_http_set_dynamic_metadata_string_batch(envoy, ns, entries, 2);
}

/* ward's calls on a JWT cache hit, in its order (envoy-module/src/plan.rs). */
static void shaped_allow(void *envoy, const noop_config *config) {
    header headers[MAX_HEADERS];
    size_t n = envoy_dynamic_module_callback_http_get_headers_size(envoy, REQUEST_HEADER);
    if (n > MAX_HEADERS)
        return;
    envoy_dynamic_module_callback_http_get_headers(envoy, REQUEST_HEADER, headers);
    envoy_dynamic_module_callback_get_most_specific_route_config(envoy);
    buffer address = {0, 0};
    size_t length = 0;
    envoy_dynamic_module_callback_http_filter_get_attribute_string(
        envoy, ATTRIBUTE_SOURCE_ADDRESS, &address, &length);
    envoy_dynamic_module_callback_http_filter_record_histogram_value(envoy, config->histogram, 0,
                                                                     0, 1);
    metadata(envoy, "user-0", "jwt");
    add(envoy, "x-user-id", "user-0");
    add(envoy, "x-auth-method", "jwt");
    add(envoy, "x-user-email", "user-0@example.com");
    add(envoy, "x-user-roles", "reader");
    envoy_dynamic_module_callback_http_clear_route_cache(envoy);
}

/* jwt_authn's edits in the bench: the headers read, two claims added. */
static void jwt_authn_edits(void *envoy) {
    header headers[MAX_HEADERS];
    size_t n = envoy_dynamic_module_callback_http_get_headers_size(envoy, REQUEST_HEADER);
    if (n > MAX_HEADERS)
        return;
    envoy_dynamic_module_callback_http_get_headers(envoy, REQUEST_HEADER, headers);
    add(envoy, "x-user-id", "user-0");
    add(envoy, "x-user-email", "user-0@example.com");
}

int envoy_dynamic_module_on_http_filter_request_headers(void *envoy, const void *filter,
                                                        bool end_of_stream) {
    (void)end_of_stream;
    const noop_config *config = filter;
    if (config->mode == SHAPED) {
        shaped_allow(envoy, config);
        return CONTINUE;
    }
    if (config->mode == JWT_AUTHN_EDITS) {
        jwt_authn_edits(envoy);
        return CONTINUE;
    }
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
