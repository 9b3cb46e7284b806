//! The `workload` section and a policy's principal patterns: where ward
//! learns a calling workload's identity (its principal, the SPIFFE ID or
//! other name Envoy reports for a peer's certificate), and which header
//! carries it to the backend. Parsing and field checks only;
//! `workload.rs` reads the principal, `policy/principals.rs` matches it.

use super::validate::Problems;
use serde::Deserialize;

/// The header an allow carries the principal in, by default.
pub const DEFAULT_PRINCIPAL_HEADER: &str = "x-ward-principal";

/// The `workload` section.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct WorkloadConfig {
    /// The managed header an allow carries the checked principal in.
    pub header: String,
    /// A client certificate forwarded by a trusted hop, if any.
    pub forwarded_cert: Option<ForwardedCertConfig>,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        Self {
            header: DEFAULT_PRINCIPAL_HEADER.into(),
            forwarded_cert: None,
        }
    }
}

/// `workload.forwarded_cert`: the header a proxy in front puts the
/// client's certificate in, and which peers are trusted to set it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ForwardedCertConfig {
    /// `xfcc` (Envoy's `x-forwarded-client-cert`) or `client_cert`
    /// (RFC 9440 `Client-Cert`).
    pub header: CertHeader,
    /// The principals of the hops trusted to set it (their own
    /// `source.principal`).
    #[serde(default)]
    pub trusted_peers: Vec<PrincipalPattern>,
    /// Every peer is a trusted hop: the Envoy that calls ward sets the
    /// header itself (`SANITIZE_SET`) and nothing else reaches ward.
    #[serde(default)]
    pub any_peer: bool,
}

/// Which forwarded-certificate header a trusted hop sets.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CertHeader {
    Xfcc,
    ClientCert,
}

/// One principal pattern: a plain string is exact; `{prefix: ...}`
/// matches it and what continues it after a `/`; `{glob: ...}` matches
/// `/`-separated segments (`*` within one, `**` across).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum PrincipalPattern {
    Exact(String),
    Form(PatternForm),
}

/// The object forms of [`PrincipalPattern`].
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PatternForm {
    Exact(String),
    Prefix(String),
    Glob(String),
}

/// A policy's `workload` block: the principals that must call, beside
/// the user credential.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WorkloadRequirement {
    pub principals: Vec<PrincipalPattern>,
}

impl WorkloadConfig {
    pub(super) fn check(&self, p: &mut Problems) {
        if !super::is_valid_header_name(&self.header) {
            p.add(
                "workload.header",
                "must be a lowercase HTTP header name (a-z, 0-9, `-`, `_`)",
            );
        }
        let Some(fwd) = &self.forwarded_cert else {
            return;
        };
        if fwd.any_peer != fwd.trusted_peers.is_empty() {
            p.add(
                "workload.forwarded_cert",
                "set exactly one of `trusted_peers` (the principals of the hops that set the header) and `any_peer: true`",
            );
        }
        check_principal_patterns(
            "workload.forwarded_cert.trusted_peers",
            &fwd.trusted_peers,
            p,
        );
    }
}

/// Every pattern of a list is non-empty printable ASCII, a glob's `**`
/// a whole segment.
pub fn check_principal_patterns(path: &str, patterns: &[PrincipalPattern], p: &mut Problems) {
    for (i, pattern) in patterns.iter().enumerate() {
        let text = pattern.text();
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_graphic()) {
            p.add(
                format!("{path}[{i}]"),
                "must be non-empty printable ASCII without spaces",
            );
        }
    }
}

impl PrincipalPattern {
    /// The pattern's text, whatever its form.
    pub fn text(&self) -> &str {
        match self {
            PrincipalPattern::Exact(s)
            | PrincipalPattern::Form(PatternForm::Exact(s) | PatternForm::Prefix(s))
            | PrincipalPattern::Form(PatternForm::Glob(s)) => s,
        }
    }
}
