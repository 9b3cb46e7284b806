//! What `ward explain` prints for each step of a check. The steps in
//! `check.rs` know nothing of it: the pipeline hands each step's result
//! here, and the words for every result live in this one file.

use crate::authn::Authenticated;
use crate::credentials::short_hash;
use crate::decision::{Deny, IdentityToken};
use crate::identity::Identity;
use crate::identity_token::Profile;
use crate::policy::{Policy, Principals, Selection, Source};
use crate::presented::Presented;
use crate::reason::Reason;
use crate::workload::Principal;

/// Each step and its result, in order; empty unless enabled.
#[derive(Debug, Default)]
pub struct Trace {
    enabled: bool,
    /// Whether the check may change what later checks see (a rejected
    /// credential counted in the limiter); not for an introspection.
    pub(super) quiet: bool,
    pub steps: Vec<(String, String)>,
}

impl Trace {
    pub fn enabled() -> Self {
        Trace {
            enabled: true,
            quiet: false,
            steps: Vec::new(),
        }
    }

    /// Enabled, and leaving no trace in the limiter: the management API's
    /// `Introspect` asks about a credential, it does not present it.
    pub fn quiet() -> Self {
        Trace {
            quiet: true,
            ..Trace::enabled()
        }
    }

    /// Records `name`; `detail` runs only when tracing. Inlined to one
    /// test: a check that is not traced (every check but `explain`'s)
    /// calls nothing.
    #[inline(always)]
    pub(super) fn step(&mut self, name: &str, detail: impl FnOnce() -> String) {
        if self.enabled {
            self.record(name, detail);
        }
    }

    #[cold]
    #[inline(never)]
    fn record(&mut self, name: &str, detail: impl FnOnce() -> String) {
        self.steps.push((name.to_string(), detail()));
    }
}

pub(super) fn policy(selected: &Result<Selection<'_>, Deny>) -> String {
    let selection = match selected {
        Ok(s) => s,
        Err(deny) => return format!("none: {}", deny.reason.as_str()),
    };
    let from = match &selection.source {
        Source::Envoy => "selected by Envoy (context_extensions ward_policy)".to_string(),
        Source::Route { index, name } => format!("route {name} (routes[{index}])"),
        Source::Default => "no route matched: default_policy".to_string(),
    };
    let policy = selection.policy;
    format!("{} ({from}), mode {}", policy.name, policy.mode.as_str())
}

pub(super) fn credential(presented: &Result<Presented<'_, '_>, Deny>) -> String {
    match presented {
        Ok(p) => format!("{} ({})", p.kind().as_str(), short_hash(p.hash())),
        Err(deny) => deny.reason.as_str().to_string(),
    }
}

pub(super) fn accepted(policy: &Policy) -> String {
    let kinds: Vec<&str> = policy.accepted().map(|m| m.as_str()).collect();
    format!("no: the policy accepts {}", kinds.join(", "))
}

pub(super) fn limiter(secs: u64, result: &Result<Authenticated, Reason>) -> String {
    let why = result.as_ref().err().map_or("no identity", |r| r.as_str());
    format!("blocked for {secs}s more; not answerable from the caches ({why})")
}

/// The step's name: what decided the identity.
pub(super) fn authenticated_step(result: &Result<Authenticated, Deny>) -> &'static str {
    match result {
        Ok(Authenticated::Anonymous) => "on_store_error",
        _ => "authenticate",
    }
}

/// The step's detail (formatted only when tracing: it is not free).
pub(super) fn authenticated(result: &Result<Authenticated, Deny>) -> String {
    match result {
        Ok(Authenticated::Identity(identity)) => describe(identity),
        Ok(Authenticated::Anonymous) => "store unavailable; open: allowed anonymously".into(),
        Err(deny) => deny.reason.as_str().to_string(),
    }
}

fn describe(identity: &Identity) -> String {
    format!(
        "user {} via {}; roles [{}]; scopes [{}]",
        identity.user_id(),
        identity.method.as_str(),
        identity.roles().collect::<Vec<_>>().join(", "),
        identity.scopes().collect::<Vec<_>>().join(", ")
    )
}

pub(super) fn authorized(result: &Result<(), Deny>) -> String {
    match result {
        Ok(()) => "ok".into(),
        Err(deny) => deny.reason.as_str().to_string(),
    }
}

/// The identity token step of a policy that sends one: kept or signed,
/// or why not.
pub(super) fn identity_token(
    profile: &Profile,
    token: &Result<Option<IdentityToken>, Deny>,
) -> String {
    match token {
        Ok(Some(t)) => format!(
            "sent in {} (aud {}, expires at {})",
            t.name, profile.audience, t.signed.exp
        ),
        Ok(None) => "none".into(),
        Err(d) => format!("could not sign one: {}", d.reason.as_str()),
    }
}

/// The workload principal step: who, from where, and whether the
/// policy lets it in.
pub(super) fn principal(
    found: Option<&Principal<'_>>,
    result: Result<(), Reason>,
    allowed: &Principals,
) -> String {
    let name = found.map_or_else(
        || "none".to_string(),
        |p| format!("{} (from {})", p.name, p.origin.as_str()),
    );
    match result {
        Ok(()) => format!("{name}: allowed"),
        Err(reason) => format!(
            "{name}: {}; the policy lets in {}",
            reason.as_str(),
            allowed.written().join(", ")
        ),
    }
}
