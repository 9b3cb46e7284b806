//! The Envoy dynamic-module ABI, the subset ward uses, declared by hand
//! from Envoy's `source/extensions/dynamic_modules/abi/abi.h` and checked
//! against Envoy 1.40 (ABI `v0.2.0`): every callback declared here is
//! exported by the 1.40 binary (`tests/it/envoy_module.rs` compares the
//! `.so`'s undefined symbols with `nm -D` of Envoy), and the layouts and
//! enum values are proven by the real-Envoy tests, since Envoy checks none
//! of them.
//!
//! The only file of the module with `unsafe`: the hooks Envoy calls (each
//! catches panics: a panic never unwinds into Envoy) and [`Stream`], the
//! safe handle the filter logic (`filter.rs`) uses for one HTTP stream.

#![allow(unsafe_code)]

use crate::filter::{self, Config, Filter, Hold, Host, LogLevel, Resume, Verdict};
use crate::peer::CertField;
use crate::stats::{Commit, ConfigHost, Flush};
use crate::view::RawHeader;
use std::ffi::{c_char, c_void};
use std::net::IpAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

/// The ABI version Envoy 1.40 expects (1.41 accepts it too, per Envoy's
/// compatibility policy).
const ABI_VERSION: &[u8] = b"v0.2.0\0";

// ------------------------------------------------------------------ types

/// `envoy_dynamic_module_type_envoy_buffer`: bytes owned by Envoy.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyBuffer {
    ptr: *const c_char,
    length: usize,
}

/// `envoy_dynamic_module_type_module_buffer`: bytes owned by the module.
#[repr(C)]
#[derive(Clone, Copy)]
struct ModuleBuffer {
    ptr: *const c_char,
    length: usize,
}

impl ModuleBuffer {
    fn of(bytes: &[u8]) -> Self {
        Self {
            ptr: bytes.as_ptr().cast(),
            length: bytes.len(),
        }
    }

    /// Buffers over `texts` (label names or values), for one call.
    fn all(texts: &[&str]) -> Vec<Self> {
        texts.iter().map(|t| Self::of(t.as_bytes())).collect()
    }

    const NULL: Self = Self {
        ptr: std::ptr::null(),
        length: 0,
    };
}

/// `envoy_dynamic_module_type_envoy_http_header`,
/// `envoy_dynamic_module_type_module_http_header` and
/// `envoy_dynamic_module_type_module_key_value_pair` (the same layout).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct HttpHeader {
    key_ptr: *const c_char,
    key_length: usize,
    value_ptr: *const c_char,
    value_length: usize,
}

impl HttpHeader {
    fn of(key: &[u8], value: &[u8]) -> Self {
        Self {
            key_ptr: key.as_ptr().cast(),
            key_length: key.len(),
            value_ptr: value.as_ptr().cast(),
            value_length: value.len(),
        }
    }

    const EMPTY: Self = Self {
        key_ptr: std::ptr::null(),
        key_length: 0,
        value_ptr: std::ptr::null(),
        value_length: 0,
    };
}

/// `envoy_dynamic_module_type_http_header_type_RequestHeader`.
const REQUEST_HEADER: i32 = 0;
/// `envoy_dynamic_module_type_attribute_id_SourceAddress`.
const ATTRIBUTE_SOURCE_ADDRESS: i32 = 24;
/// `..._attribute_id_ConnectionSubjectPeerCertificate`,
/// `_ConnectionDnsSanPeerCertificate`, `_ConnectionUriSanPeerCertificate`
/// (the enum's 34th, 36th and 38th entries; proven against a real 1.40
/// by `tests/it/workload_identity.rs`, whose certificates differ in each
/// field, so a wrong value names another principal or none).
const ATTRIBUTE_SUBJECT_PEER_CERTIFICATE: i32 = 33;
const ATTRIBUTE_DNS_SAN_PEER_CERTIFICATE: i32 = 35;
const ATTRIBUTE_URI_SAN_PEER_CERTIFICATE: i32 = 37;

/// `..._request_headers_status_Continue` / `_StopIteration` /
/// `_StopAllIterationAndWatermark` (the whole request held, body included,
/// while a check waits).
const HEADERS_CONTINUE: i32 = 0;
const HEADERS_STOP_ITERATION: i32 = 1;
const HEADERS_STOP_ALL_AND_WATERMARK: i32 = 4;
/// `..._request_body_status_Continue` (and the response side's),
/// `_StopIterationAndWatermark` (held while a check waits).
const BODY_CONTINUE: i32 = 0;
const BODY_STOP_AND_WATERMARK: i32 = 2;
/// `..._request_body_status_StopIterationNoBuffer`: after a local reply.
const BODY_STOP_NO_BUFFER: i32 = 3;
/// `..._trailers_status_Continue` / `_StopIteration`.
const TRAILERS_CONTINUE: i32 = 0;
const TRAILERS_STOP_ITERATION: i32 = 1;

/// `envoy_dynamic_module_type_log_level`: Trace 0, Debug 1, Info 2, Warn
/// 3, Error 4, Critical 5, Off 6.
fn log_level(level: LogLevel) -> i32 {
    match level {
        LogLevel::Info => 2,
        LogLevel::Warn => 3,
        LogLevel::Error => 4,
    }
}

// -------------------------------------------------------------- callbacks

unsafe extern "C" {
    fn envoy_dynamic_module_callback_log(level: i32, message: ModuleBuffer);
    fn envoy_dynamic_module_callback_http_get_headers_size(filter: *mut c_void, kind: i32)
    -> usize;
    fn envoy_dynamic_module_callback_http_get_headers(
        filter: *mut c_void,
        kind: i32,
        result: *mut HttpHeader,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_set_header(
        filter: *mut c_void,
        kind: i32,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_add_header(
        filter: *mut c_void,
        kind: i32,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_clear_route_cache(filter: *mut c_void);
    fn envoy_dynamic_module_callback_http_send_response(
        filter: *mut c_void,
        status: u32,
        headers: *const HttpHeader,
        headers_size: usize,
        body: ModuleBuffer,
        details: ModuleBuffer,
    );
    fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
        filter: *mut c_void,
        id: i32,
        result: *mut EnvoyBuffer,
        result_length: *mut usize,
    ) -> bool;
    fn envoy_dynamic_module_callback_get_most_specific_route_config(
        filter: *mut c_void,
    ) -> *const c_void;
    fn envoy_dynamic_module_callback_http_filter_scheduler_new(filter: *mut c_void) -> *mut c_void;
    fn envoy_dynamic_module_callback_http_filter_scheduler_commit(
        scheduler: *mut c_void,
        event: u64,
    );
    fn envoy_dynamic_module_callback_http_filter_scheduler_delete(scheduler: *mut c_void);
    fn envoy_dynamic_module_callback_http_filter_continue_decoding(filter: *mut c_void);
    // Since 1.39 (`..._string` per key builds and merges a `Struct` per
    // call; this, once for every entry). Returns `void`.
    fn envoy_dynamic_module_callback_http_set_dynamic_metadata_string_batch(
        filter: *mut c_void,
        namespace: ModuleBuffer,
        entries: *const HttpHeader,
        entries_length: usize,
    );
    fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        config: *mut c_void,
        name: ModuleBuffer,
        label_names: *const ModuleBuffer,
        label_names_length: usize,
        id: *mut usize,
    ) -> i32;
    fn envoy_dynamic_module_callback_http_filter_config_define_histogram(
        config: *mut c_void,
        name: ModuleBuffer,
        label_names: *const ModuleBuffer,
        label_names_length: usize,
        id: *mut usize,
    ) -> i32;
    fn envoy_dynamic_module_callback_http_filter_config_define_gauge(
        config: *mut c_void,
        name: ModuleBuffer,
        label_names: *const ModuleBuffer,
        label_names_length: usize,
        id: *mut usize,
    ) -> i32;
    fn envoy_dynamic_module_callback_http_filter_increment_counter(
        filter: *mut c_void,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> i32;
    fn envoy_dynamic_module_callback_http_filter_record_histogram_value(
        filter: *mut c_void,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> i32;
    fn envoy_dynamic_module_callback_http_filter_config_increment_counter(
        config: *mut c_void,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> i32;
    fn envoy_dynamic_module_callback_http_filter_config_set_gauge(
        config: *mut c_void,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> i32;
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_new(
        config: *mut c_void,
    ) -> *mut c_void;
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_commit(
        scheduler: *mut c_void,
        event: u64,
    );
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_delete(scheduler: *mut c_void);
}

/// `envoy_dynamic_module_type_metrics_result_Success`.
const METRICS_SUCCESS: i32 = 0;

/// The signature shared by the three `http_filter_config_define_*`
/// callbacks.
type DefineFn =
    unsafe extern "C" fn(*mut c_void, ModuleBuffer, *const ModuleBuffer, usize, *mut usize) -> i32;

/// Envoy's filter config while `on_http_filter_config_new` runs: the only
/// time Envoy lets a module define stats.
struct ConfigEnvoy(*mut c_void);

impl ConfigEnvoy {
    fn define(&mut self, define: DefineFn, name: &str, labels: &[&str]) -> Result<usize, String> {
        let labels = ModuleBuffer::all(labels);
        let mut id = 0usize;
        // SAFETY: `self.0` is the filter config Envoy passed to the running
        // `config_new` hook; `name` and `labels` (and the strings they point
        // into) outlive the call, and Envoy copies them into its stat names.
        let result = unsafe {
            define(
                self.0,
                ModuleBuffer::of(name.as_bytes()),
                labels.as_ptr(),
                labels.len(),
                &raw mut id,
            )
        };
        if result == METRICS_SUCCESS {
            Ok(id)
        } else {
            Err(format!(
                "Envoy refused to define {name} (metrics result {result})"
            ))
        }
    }
}

impl ConfigHost for ConfigEnvoy {
    fn counter(&mut self, name: &str, labels: &[&str]) -> Result<usize, String> {
        self.define(
            envoy_dynamic_module_callback_http_filter_config_define_counter,
            name,
            labels,
        )
    }

    fn histogram(&mut self, name: &str, labels: &[&str]) -> Result<usize, String> {
        self.define(
            envoy_dynamic_module_callback_http_filter_config_define_histogram,
            name,
            labels,
        )
    }

    fn gauge(&mut self, name: &str) -> Result<usize, String> {
        self.define(
            envoy_dynamic_module_callback_http_filter_config_define_gauge,
            name,
            &[],
        )
    }
    fn warn(&mut self, message: &str) {
        log(LogLevel::Warn, message);
    }

    fn flusher(&mut self) -> Option<Box<dyn Commit>> {
        // SAFETY: `self.0` is the filter config of the running `config_new`
        // hook; the scheduler Envoy returns holds a weak reference to it.
        let scheduler =
            unsafe { envoy_dynamic_module_callback_http_filter_config_scheduler_new(self.0) };
        (!scheduler.is_null()).then(|| Box::new(ConfigScheduler(scheduler)) as Box<dyn Commit>)
    }
}

/// Envoy's filter config on its main thread, in the flush hook
/// (`on_http_filter_config_scheduled`): the counters and gauges change
/// through the config, no stream needed.
impl Flush for ConfigEnvoy {
    fn add_counter(&mut self, id: usize, labels: &[&str], by: u64) {
        let labels = ModuleBuffer::all(labels);
        // SAFETY: `self.0` is the filter config Envoy passed to the running
        // hook, on its main thread; `id` was defined on it; the label
        // buffers outlive the call (Envoy copies them into stat names). A
        // wrong id or label count is a result code, never a crash.
        unsafe {
            envoy_dynamic_module_callback_http_filter_config_increment_counter(
                self.0,
                id,
                labels.as_ptr(),
                labels.len(),
                by,
            );
        }
    }

    fn set_gauge(&mut self, id: usize, value: u64) {
        // SAFETY: as for `add_counter`, with no labels.
        unsafe {
            envoy_dynamic_module_callback_http_filter_config_set_gauge(
                self.0,
                id,
                std::ptr::null(),
                0,
                value,
            );
        }
    }
}

/// The event id of a stats flush (the config's one kind of event).
const FLUSH_STATS: u64 = 1;

/// A filter config's scheduler: commits run the flush hook on Envoy's main
/// thread; Envoy drops them once the config is gone. Deleted when the
/// runtime's flush task ends.
struct ConfigScheduler(*mut c_void);

// SAFETY: as for [`Scheduler`]: commit posts to the main dispatcher from
// any thread, and the object holds only a weak reference to the config;
// commits from several threads at once are posts to a thread-safe queue.
unsafe impl Send for ConfigScheduler {}
// SAFETY: see `Send`; `commit` takes `&self` and Envoy's commit is
// thread-safe.
unsafe impl Sync for ConfigScheduler {}

impl Commit for ConfigScheduler {
    fn commit(&self) {
        // SAFETY: `self.0` came from `config_scheduler_new` and is deleted
        // only in `drop`, after every commit through `&self`.
        unsafe {
            envoy_dynamic_module_callback_http_filter_config_scheduler_commit(self.0, FLUSH_STATS)
        }
    }
}

impl Drop for ConfigScheduler {
    fn drop(&mut self) {
        // SAFETY: `self.0` came from `config_scheduler_new`; deleted once.
        unsafe { envoy_dynamic_module_callback_http_filter_config_scheduler_delete(self.0) }
    }
}

/// The event id ward commits (one kind of event: "the check ended").
const CHECK_DONE: u64 = 1;

/// A stream's scheduler: dropped (on the module's runtime, when the check
/// ends, or when its task panics or is cancelled), it commits the
/// stream's one event, then deletes itself. Envoy drops the event if the
/// stream is gone.
struct Scheduler(*mut c_void);

// SAFETY: Envoy documents the scheduler as usable from any thread: commit
// posts to the stream's worker dispatcher, and delete frees Envoy's object
// holding a weak reference to the stream.
unsafe impl Send for Scheduler {}

impl Resume for Scheduler {}

impl Drop for Scheduler {
    fn drop(&mut self) {
        // SAFETY: `self.0` came from `scheduler_new` and is deleted exactly
        // once, here, after its last commit.
        unsafe {
            envoy_dynamic_module_callback_http_filter_scheduler_commit(self.0, CHECK_DONE);
            envoy_dynamic_module_callback_http_filter_scheduler_delete(self.0);
        }
    }
}

/// Writes `message` to Envoy's log (`[dynamic_modules]`).
fn log(level: LogLevel, message: &str) {
    // SAFETY: the buffer points into `message`, alive for the call; Envoy
    // copies it before returning.
    unsafe {
        envoy_dynamic_module_callback_log(log_level(level), ModuleBuffer::of(message.as_bytes()))
    }
}

/// One HTTP stream, as Envoy hands it to a hook: valid for that hook.
struct Stream {
    ptr: *mut c_void,
}

impl Stream {
    /// A string attribute of the stream (`http_filter_get_attribute_string`),
    /// in Envoy's buffer, borrowed until the next call on the stream; `None`
    /// when Envoy has none (e.g. a certificate field without TLS).
    fn attribute(&mut self, id: i32) -> Option<&[u8]> {
        let mut out = EnvoyBuffer {
            ptr: std::ptr::null(),
            length: 0,
        };
        let length: *mut usize = &raw mut out.length;
        // SAFETY: both out-pointers point into `out`, alive for the call.
        // Envoy versions declare this callback either as (…, char** result,
        // size_t* length) or as (…, envoy_buffer* result): `&out` is both
        // a `char**` (its first field) and an `envoy_buffer*`, and the
        // fourth argument is the length's own address, so either writes
        // the same two fields.
        let ok = unsafe {
            envoy_dynamic_module_callback_http_filter_get_attribute_string(
                self.ptr,
                id,
                &raw mut out,
                length,
            )
        };
        if !ok {
            return None;
        }
        // SAFETY: Envoy's buffer (or null: empty), valid until the hook
        // returns and not changed before the next call on the stream,
        // which the `&mut self` borrow excludes.
        Some(unsafe { bytes(out.ptr, out.length) })
    }
}

impl Host for Stream {
    fn request_headers(&mut self) -> Vec<RawHeader<'_>> {
        // SAFETY: `ptr` is the filter Envoy passed to the running hook.
        let n = unsafe {
            envoy_dynamic_module_callback_http_get_headers_size(self.ptr, REQUEST_HEADER)
        };
        if n == 0 {
            return Vec::new();
        }
        let mut raw = vec![HttpHeader::EMPTY; n];
        // SAFETY: `raw` has room for the `n` headers Envoy just counted;
        // nothing changes the map between the two calls (same thread, same
        // hook).
        let ok = unsafe {
            envoy_dynamic_module_callback_http_get_headers(
                self.ptr,
                REQUEST_HEADER,
                raw.as_mut_ptr(),
            )
        };
        if !ok {
            return Vec::new();
        }
        raw.iter()
            .map(|h| {
                // SAFETY: Envoy filled each entry with buffers of its header
                // map, valid until the hook returns or a header is set. The
                // slices borrow `self` mutably: every call that could set a
                // header needs `&mut self` too, so none can run while they
                // live, and `Stream` does not outlive the hook.
                unsafe {
                    (
                        bytes(h.key_ptr, h.key_length),
                        bytes(h.value_ptr, h.value_length),
                    )
                }
            })
            .collect()
    }

    fn set_header(&mut self, name: &str, value: Option<&str>) {
        let value = value.map_or(ModuleBuffer::NULL, |v| ModuleBuffer::of(v.as_bytes()));
        // SAFETY: both buffers outlive the call; Envoy copies them. A null
        // value removes the header (1.40 has no remove callback).
        unsafe {
            envoy_dynamic_module_callback_http_set_header(
                self.ptr,
                REQUEST_HEADER,
                ModuleBuffer::of(name.as_bytes()),
                value,
            );
        }
    }

    fn add_header(&mut self, name: &str, value: &str) {
        // SAFETY: both buffers outlive the call; Envoy copies them.
        unsafe {
            envoy_dynamic_module_callback_http_add_header(
                self.ptr,
                REQUEST_HEADER,
                ModuleBuffer::of(name.as_bytes()),
                ModuleBuffer::of(value.as_bytes()),
            );
        }
    }

    fn clear_route_cache(&mut self) {
        // SAFETY: `ptr` is the filter of the running hook.
        unsafe { envoy_dynamic_module_callback_http_clear_route_cache(self.ptr) }
    }

    fn send_response(&mut self, status: u16, headers: &[(&str, &str)], body: &str, details: &str) {
        let headers: Vec<HttpHeader> = headers
            .iter()
            .map(|(k, v)| HttpHeader::of(k.as_bytes(), v.as_bytes()))
            .collect();
        // SAFETY: `headers` and the strings it points into, `body` and
        // `details` all outlive the call; Envoy copies them.
        unsafe {
            envoy_dynamic_module_callback_http_send_response(
                self.ptr,
                u32::from(status),
                headers.as_ptr(),
                headers.len(),
                ModuleBuffer::of(body.as_bytes()),
                ModuleBuffer::of(details.as_bytes()),
            );
        }
    }

    fn source_ip(&mut self) -> Option<IpAddr> {
        let text = self.attribute(ATTRIBUTE_SOURCE_ADDRESS)?;
        std::str::from_utf8(text).ok().and_then(filter::parse_ip)
    }

    fn peer_certificate(&mut self, field: CertField) -> Option<&[u8]> {
        self.attribute(match field {
            CertField::UriSan => ATTRIBUTE_URI_SAN_PEER_CERTIFICATE,
            CertField::DnsSan => ATTRIBUTE_DNS_SAN_PEER_CERTIFICATE,
            CertField::Subject => ATTRIBUTE_SUBJECT_PEER_CERTIFICATE,
        })
    }

    fn log(&mut self, level: LogLevel, message: &str) {
        log(level, message);
    }

    fn resumer(&mut self) -> Option<Box<dyn Resume>> {
        // SAFETY: called on the stream's worker, in a hook, as Envoy requires.
        let scheduler =
            unsafe { envoy_dynamic_module_callback_http_filter_scheduler_new(self.ptr) };
        (!scheduler.is_null()).then(|| Box::new(Scheduler(scheduler)) as Box<dyn Resume>)
    }

    fn continue_decoding(&mut self) {
        // SAFETY: `ptr` is the filter of the running (scheduled) hook.
        unsafe { envoy_dynamic_module_callback_http_filter_continue_decoding(self.ptr) }
    }

    fn increment_counter(&mut self, id: usize, labels: &[&str], by: u64) {
        let labels = ModuleBuffer::all(labels);
        // SAFETY: `ptr` is the filter of the running hook (on its worker);
        // `id` came from this filter's config; the label buffers outlive the
        // call (Envoy copies them into stat names). A wrong id or label count
        // is a result code, never a crash.
        unsafe {
            envoy_dynamic_module_callback_http_filter_increment_counter(
                self.ptr,
                id,
                labels.as_ptr(),
                labels.len(),
                by,
            );
        }
    }

    fn record_histogram(&mut self, id: usize, value: u64) {
        // SAFETY: as for `increment_counter`, with no labels.
        unsafe {
            envoy_dynamic_module_callback_http_filter_record_histogram_value(
                self.ptr,
                id,
                std::ptr::null(),
                0,
                value,
            );
        }
    }

    fn set_metadata(&mut self, namespace: &str, entries: &[(&str, &str)]) {
        let all: Vec<HttpHeader> = entries
            .iter()
            .map(|(k, v)| HttpHeader::of(k.as_bytes(), v.as_bytes()))
            .collect();
        // SAFETY: `ptr` is the filter of the running hook; the namespace and
        // the entries (key/value pairs, the layout of
        // `envoy_dynamic_module_type_module_key_value_pair`) point into
        // buffers that outlive the call, and Envoy copies them into the
        // stream's metadata.
        unsafe {
            envoy_dynamic_module_callback_http_set_dynamic_metadata_string_batch(
                self.ptr,
                ModuleBuffer::of(namespace.as_bytes()),
                all.as_ptr(),
                all.len(),
            );
        }
    }

    fn route_policy(&mut self) -> Option<Arc<str>> {
        // SAFETY: `ptr` is the filter of the running hook; the result is
        // null or a pointer this module returned from
        // `on_http_filter_per_route_config_new`, alive until Envoy calls
        // its destroy hook (not before the route, hence the stream, goes).
        let route =
            unsafe { envoy_dynamic_module_callback_get_most_specific_route_config(self.ptr) };
        if route.is_null() {
            return None;
        }
        // SAFETY: see above: a `RouteConfig` this module leaked.
        let route = unsafe { &*route.cast::<filter::RouteConfig>() };
        Some(Arc::clone(&route.policy))
    }
}

/// # Safety
/// `ptr` is null with `len` 0, or points at `len` readable bytes that stay
/// valid for the returned lifetime.
unsafe fn bytes<'a>(ptr: *const c_char, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: the caller's contract.
    unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) }
}

/// Runs a hook body; a panic becomes `fallback` (logged), never an unwind
/// into Envoy.
fn guard<T>(hook: &str, fallback: T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(panic) => {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            // Logging itself must not panic again: `log` only copies.
            let _ = catch_unwind(|| log(LogLevel::Error, &format!("ward: panic in {hook}: {why}")));
            fallback
        }
    }
}

// ------------------------------------------------------------------ hooks

/// Envoy calls this once when it loads the module: the ABI version.
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    ABI_VERSION.as_ptr().cast()
}

/// A filter config (one per listener update): ward's YAML in `config`.
/// Null rejects it; Envoy then refuses the listener.
///
/// # Safety
/// Envoy passes buffers valid for this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    config_envoy: *mut c_void,
    _name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    // SAFETY: Envoy's buffer, valid for this call; copied by `Config::new`.
    let text = unsafe { bytes(config.ptr, config.length) };
    guard(
        "http_filter_config_new",
        std::ptr::null(),
        || match Config::new(text, &mut ConfigEnvoy(config_envoy)) {
            Ok(config) => Box::into_raw(Box::new(Loaded {
                config,
                envoy: config_envoy,
            }))
            .cast_const()
            .cast(),
            Err(message) => {
                log(LogLevel::Error, &message);
                std::ptr::null()
            }
        },
    )
}

/// # Safety
/// `config` is a pointer `on_http_filter_config_new` returned, destroyed
/// once, after every filter made from it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(config: *const c_void) {
    if config.is_null() {
        return;
    }
    // SAFETY: the pointer came from `Box::into_raw` in `config_new`.
    let loaded = unsafe { Box::from_raw(config.cast_mut().cast::<Loaded>()) };
    // The counters gained since the last flush reach Envoy before the
    // config goes (a listener update would lose them otherwise): Envoy
    // calls this hook on its main thread, its config still whole.
    guard("http_filter_config_destroy", (), move || {
        loaded.config.flush(&mut ConfigEnvoy(loaded.envoy));
        drop(loaded);
    });
}

/// A filter config as Envoy holds it: ward's, and Envoy's side of it (for
/// the stats flushes on Envoy's main thread).
struct Loaded {
    config: Config,
    envoy: *mut c_void,
}

/// Envoy's main thread runs a flush the config's runtime asked for
/// (`stats.rs`): ward's counters are copied into Envoy's.
///
/// # Safety
/// `config` is a pointer `on_http_filter_config_new` returned, still alive
/// (Envoy drops the event of a destroyed config); `config_envoy` is its
/// Envoy side.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
    config_envoy: *mut c_void,
    config: *const c_void,
    _event: u64,
) {
    if config.is_null() {
        return;
    }
    // SAFETY: the pointer came from `Box::into_raw` in `config_new` and the
    // config is alive for this hook (above).
    let config = unsafe { &(*config.cast::<Loaded>()).config };
    guard("http_filter_config_scheduled", (), || {
        config.flush(&mut ConfigEnvoy(config_envoy));
    });
}

/// A per-route config: the name of the ward policy the route selects (the
/// module's `ward_policy`).
///
/// # Safety
/// Envoy passes buffers valid for this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_new(
    _name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    // SAFETY: Envoy's buffer, valid for this call; copied below.
    let text = unsafe { bytes(config.ptr, config.length) };
    guard(
        "http_filter_per_route_config_new",
        std::ptr::null(),
        || match filter::RouteConfig::new(text) {
            Ok(route) => Box::into_raw(Box::new(route)).cast_const().cast(),
            Err(message) => {
                log(LogLevel::Error, &message);
                std::ptr::null()
            }
        },
    )
}

/// # Safety
/// `config` came from `on_http_filter_per_route_config_new`, destroyed once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_destroy(
    config: *const c_void,
) {
    if config.is_null() {
        return;
    }
    // SAFETY: the pointer came from `Box::into_raw` in `per_route_config_new`.
    let route = unsafe { Box::from_raw(config.cast_mut().cast::<filter::RouteConfig>()) };
    guard("http_filter_per_route_config_destroy", (), move || {
        drop(route)
    });
}

/// One filter per HTTP stream.
///
/// # Safety
/// `config` is a live pointer from `on_http_filter_config_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: *const c_void,
    _filter_envoy: *mut c_void,
) -> *const c_void {
    if config.is_null() {
        return std::ptr::null();
    }
    // SAFETY: Envoy keeps the config alive while a filter of it exists.
    let config: &'static Config = unsafe { &(*config.cast::<Loaded>()).config };
    guard("http_filter_new", std::ptr::null(), || {
        Box::into_raw(Box::new(Filter::new(config)))
            .cast_const()
            .cast()
    })
}

/// # Safety
/// `filter` came from `on_http_filter_new`, destroyed once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_destroy(filter: *const c_void) {
    if filter.is_null() {
        return;
    }
    // SAFETY: the pointer came from `Box::into_raw` in `filter_new`.
    let filter = unsafe { Box::from_raw(filter.cast_mut().cast::<Filter>()) };
    guard("http_filter_destroy", (), move || drop(filter));
}

/// # Safety
/// `filter` came from `on_http_filter_new` and is used by one thread (the
/// stream's worker) at a time.
unsafe fn filter_mut<'a>(filter: *const c_void) -> Option<&'a mut Filter> {
    // SAFETY: the caller's contract; Envoy calls a stream's hooks one at a
    // time on its worker.
    unsafe { filter.cast_mut().cast::<Filter>().as_mut() }
}

/// The request's headers: the whole check.
///
/// # Safety
/// Envoy's pointers for this stream.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    filter_envoy: *mut c_void,
    filter: *const c_void,
    _end_of_stream: bool,
) -> i32 {
    // SAFETY: see `filter_mut`.
    let Some(filter) = (unsafe { filter_mut(filter) }) else {
        return HEADERS_STOP_ITERATION;
    };
    let mut stream = Stream { ptr: filter_envoy };
    let verdict = catch_unwind(AssertUnwindSafe(|| filter.on_request_headers(&mut stream)));
    match verdict {
        Ok(Verdict::Continue) => HEADERS_CONTINUE,
        Ok(Verdict::Answered) => HEADERS_STOP_ITERATION,
        Ok(Verdict::Wait) => HEADERS_STOP_ALL_AND_WATERMARK,
        Err(_) => {
            fail_closed(filter, &mut stream, "request_headers");
            HEADERS_STOP_ITERATION
        }
    }
}

/// A panic in a hook: a 500 with a reason, as ward's own denies are,
/// counted as one.
fn fail_closed(filter: &mut Filter, stream: &mut Stream, hook: &str) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        log(
            LogLevel::Error,
            &format!("ward: panic in {hook}: denied 500"),
        );
        filter.fail(stream);
    }));
}

/// The check that waited has ended (or its task died): apply it.
///
/// # Safety
/// Envoy's pointers for this stream.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    filter_envoy: *mut c_void,
    filter: *const c_void,
    _event_id: u64,
) {
    // SAFETY: see `filter_mut`.
    let Some(filter) = (unsafe { filter_mut(filter) }) else {
        return;
    };
    let mut stream = Stream { ptr: filter_envoy };
    if catch_unwind(AssertUnwindSafe(|| filter.on_scheduled(&mut stream))).is_err() {
        fail_closed(filter, &mut stream, "scheduled");
    }
}

/// # Safety
/// Envoy's pointers for this stream.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    _filter_envoy: *mut c_void,
    filter: *const c_void,
    _end_of_stream: bool,
) -> i32 {
    // SAFETY: see `filter_mut`.
    match unsafe { filter_mut(filter) }.map(|f| f.holds()) {
        Some(Hold::No) => BODY_CONTINUE,
        // Held until the check ends; a `Continue` here would send the
        // held headers upstream.
        Some(Hold::Pending) => BODY_STOP_AND_WATERMARK,
        Some(Hold::Answered) | None => BODY_STOP_NO_BUFFER,
    }
}

/// # Safety
/// Envoy's pointers for this stream.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    _filter_envoy: *mut c_void,
    filter: *const c_void,
) -> i32 {
    // SAFETY: see `filter_mut`.
    match unsafe { filter_mut(filter) }.map(|f| f.holds()) {
        Some(Hold::No) => TRAILERS_CONTINUE,
        _ => TRAILERS_STOP_ITERATION,
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    _filter_envoy: *mut c_void,
    _filter: *const c_void,
    _end_of_stream: bool,
) -> i32 {
    HEADERS_CONTINUE
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    _filter_envoy: *mut c_void,
    _filter: *const c_void,
    _end_of_stream: bool,
) -> i32 {
    BODY_CONTINUE
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _filter_envoy: *mut c_void,
    _filter: *const c_void,
) -> i32 {
    TRAILERS_CONTINUE
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    _filter_envoy: *mut c_void,
    _filter: *const c_void,
) {
}

/// ward makes no HTTP callouts: the callout and stream hooks are required
/// by Envoy 1.40 and never called.
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    _filter_envoy: *mut c_void,
    _filter: *const c_void,
    _callout_id: u64,
    _result: i32,
    _headers: *const HttpHeader,
    _headers_size: usize,
    _body: *const EnvoyBuffer,
    _body_size: usize,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _filter_envoy: *mut c_void,
    _filter: *const c_void,
    _stream_id: u64,
    _headers: *const HttpHeader,
    _headers_size: usize,
    _end_stream: bool,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _filter_envoy: *mut c_void,
    _filter: *const c_void,
    _stream_id: u64,
    _data: *const EnvoyBuffer,
    _data_count: usize,
    _end_stream: bool,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _filter_envoy: *mut c_void,
    _filter: *const c_void,
    _stream_id: u64,
    _trailers: *const HttpHeader,
    _trailers_size: usize,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _filter_envoy: *mut c_void,
    _filter: *const c_void,
    _stream_id: u64,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _filter_envoy: *mut c_void,
    _filter: *const c_void,
    _stream_id: u64,
    _reason: i32,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _filter_envoy: *mut c_void,
    _filter: *const c_void,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _filter_envoy: *mut c_void,
    _filter: *const c_void,
) {
}
