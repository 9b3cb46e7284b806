//! The route-policy sections of the config: `routes`, `policies`,
//! `default_policy` and `responses`. Parsing only; `policy::Policies`
//! compiles them, and `validate.rs` reports what is wrong with their
//! field paths.

use super::{PrincipalPattern, TokenProfileConfig, WorkloadRequirement};
use crate::credential_kind::CredentialKind;
use serde::Deserialize;
use std::collections::BTreeMap;

/// What a policy asks of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// No credential needed; identity headers the client sent are still
    /// removed, and none is injected.
    Public,
    /// Identity injected when a valid credential is present; anything
    /// else passes anonymously.
    Optional,
    /// A valid credential of an accepted kind, with the required roles
    /// and scopes.
    #[default]
    Required,
    /// Never allowed (403 `route_denied`).
    Deny,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Public => "public",
            Mode::Optional => "optional",
            Mode::Required => "required",
            Mode::Deny => "deny",
        }
    }
}

/// What happens on a route when the store cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnStoreError {
    /// Deny with 503 `store_unavailable`.
    #[default]
    Closed,
    /// Use a record read before, for up to `store.stale_if_error`; then 503.
    Stale,
    /// As `stale`; with nothing usable, allow: a verified JWT keeps its
    /// identity, a session or API key passes anonymously.
    Open,
}

/// Roles or scopes a route requires: every one of `all_of`, and at least
/// one of `any_of` (when given).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Requirement {
    pub any_of: Vec<String>,
    pub all_of: Vec<String>,
}

impl Requirement {
    pub fn is_empty(&self) -> bool {
        self.any_of.is_empty() && self.all_of.is_empty()
    }
}

/// A named policy (`policies.NAME`), selectable by routes and by Envoy's
/// `context_extensions` (`ward_policy: NAME`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    pub mode: Mode,
    /// Credential kinds accepted; empty means every enabled kind.
    pub accept: Vec<CredentialKind>,
    pub roles: Requirement,
    pub scopes: Requirement,
    pub on_store_error: OnStoreError,
    /// Where a browser without a valid credential is sent (302).
    pub login_url: Option<String>,
    /// A signed identity token for the backend on every allow with an
    /// identity (docs/backends.md).
    pub identity_token: Option<TokenProfileConfig>,
    /// The workload principals `accept: [mtls]` lets in (required with it).
    pub principals: Vec<PrincipalPattern>,
    /// The workloads that must call, beside a user credential.
    pub workload: Option<WorkloadRequirement>,
}

/// One entry of `routes`: a match, then either `policy: NAME` or the
/// policy's fields inline.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteConfig {
    /// Shown by `ward explain` and in logs; defaults to `routes[N]`.
    pub name: Option<String>,
    /// `api.example.com`, or `*.example.com` for any subdomain; empty
    /// means any host. A port in the request's host is ignored.
    pub hosts: Vec<String>,
    /// Upper-case HTTP methods; empty means any.
    pub methods: Vec<String>,
    /// Exactly one of the four path forms.
    pub exact: Option<String>,
    /// A segment prefix: `/api` matches `/api` and `/api/...`, never
    /// `/apix`.
    pub prefix: Option<String>,
    /// `*` matches one segment, `**` any number (including none).
    pub glob: Option<String>,
    /// A regular expression over the canonical path, anchored at both ends.
    pub regex: Option<String>,
    /// Match case-sensitively (default: ASCII case is ignored).
    pub case_sensitive: bool,
    pub policy: Option<String>,
    pub mode: Option<Mode>,
    pub accept: Option<Vec<CredentialKind>>,
    pub roles: Option<Requirement>,
    pub scopes: Option<Requirement>,
    pub on_store_error: Option<OnStoreError>,
    pub login_url: Option<String>,
    pub identity_token: Option<TokenProfileConfig>,
    pub principals: Option<Vec<PrincipalPattern>>,
    pub workload: Option<WorkloadRequirement>,
}

impl RouteConfig {
    /// Whether any inline policy field is set.
    pub fn has_inline_policy(&self) -> bool {
        self.mode.is_some()
            || self.accept.is_some()
            || self.roles.is_some()
            || self.scopes.is_some()
            || self.on_store_error.is_some()
            || self.login_url.is_some()
            || self.identity_token.is_some()
            || self.principals.is_some()
            || self.workload.is_some()
    }

    /// The inline policy (defaults for what is not set).
    pub fn inline_policy(&self) -> PolicyConfig {
        PolicyConfig {
            mode: self.mode.unwrap_or_default(),
            accept: self.accept.clone().unwrap_or_default(),
            roles: self.roles.clone().unwrap_or_default(),
            scopes: self.scopes.clone().unwrap_or_default(),
            on_store_error: self.on_store_error.unwrap_or_default(),
            login_url: self.login_url.clone(),
            identity_token: self.identity_token.clone(),
            principals: self.principals.clone().unwrap_or_default(),
            workload: self.workload.clone(),
        }
    }
}

/// How denies are rendered.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponsesConfig {
    /// Per-reason status overrides: `unknown_api_key: 403`.
    pub status: BTreeMap<String, u16>,
    /// The query parameter of a login redirect that carries the original
    /// URL.
    pub return_param: String,
}

impl Default for ResponsesConfig {
    fn default() -> Self {
        Self {
            status: BTreeMap::new(),
            return_param: "return_to".into(),
        }
    }
}

/// The built-in policy names; a `policies` entry may not reuse them.
pub const BUILTIN_POLICIES: [&str; 4] = ["required", "optional", "public", "deny"];
