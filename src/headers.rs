//! The identity headers ward manages, and which client headers must go.
//!
//! Backends trust `x-user-id` because only ward sets it. That holds only if
//! every header in ward's managed set that the *client* sent is removed
//! before the request reaches the backend, on allow and on routes that need
//! no credential. Envoy applies `headers_to_remove` after the headers ward
//! sets, so a header ward sets must never be listed for removal: it is
//! overwritten instead (`OVERWRITE_IF_EXISTS_OR_ADD`).
//!
//! The forwarded client certificate headers (`x-forwarded-client-cert`,
//! RFC 9440 `client-cert` and `client-cert-chain`) are managed too, per
//! request: only a hop trusted to set them (`workload.forwarded_cert`)
//! may send them on to the backend; from anyone else they are removed,
//! as ward ignores them (`workload.rs`).

use crate::config::Config;
use crate::forward::{Edits, Forwarding};
use crate::request::Request;
use crate::workload::{CERT_HEADERS, Workload};
use std::sync::Arc;

/// Decides whether a header name belongs to ward's managed set.
///
/// Names are compared case-insensitively and with `_` equal to `-`: some
/// proxies and CGI-style backends treat the two alike, so `x_user_id` (or
/// `x-user_id`) would reach them as `x-user-id`.
#[derive(Debug, Clone)]
pub struct ManagedHeaders {
    prefixes: Names,
    /// Exact names ward sets (user id, auth method, mapped claims), but
    /// those a prefix already covers.
    names: Names,
    /// Whether some prefix or name starts with this byte (canonical: lower
    /// case, `-` for `_`). Checked on every header of every allow, and most
    /// headers (`:path`, `accept`, `user-agent`) fail it at once.
    first_bytes: [bool; 256],
    /// The credentials that must not reach the backend.
    forwarding: Forwarding,
    /// Who may send the forwarded certificate headers on (`None`: no one).
    workload: Option<Arc<Workload>>,
}

impl ManagedHeaders {
    pub fn from_config(config: &Config) -> Self {
        let mut names = vec![
            config.headers.user_id.clone(),
            config.headers.auth_method.clone(),
        ];
        names.extend(config.jwt.claims.headers.iter().map(|m| m.header.clone()));
        names.extend(config.sessions.fields.iter().map(|f| f.header.clone()));
        names.push(config.api_keys.id_header.clone());
        // Identity-token headers: a client's copy never reaches the
        // backend, whichever policy the request gets (public ones too).
        names.extend(config.token_profiles().map(|p| p.header.clone()));
        let h = &config.headers;
        names.extend([h.email.clone(), h.roles.clone(), h.scopes.clone()]);
        // The checked principal's header: a client's copy never arrives.
        names.push(config.workload.header.clone());
        let mut managed = Self::new(&config.headers.managed_prefixes, names);
        managed.forwarding = Forwarding::from_config(config);
        managed.workload = Some(Arc::new(Workload::from_config(config)));
        managed
    }

    pub fn new(prefixes: &[String], names: Vec<String>) -> Self {
        let canonical = |s: &String| s.to_ascii_lowercase().replace('_', "-");
        let mut prefixes: Vec<String> = prefixes.iter().map(canonical).collect();
        prefixes.sort();
        prefixes.dedup();
        let mut names: Vec<String> = names.iter().map(canonical).collect();
        names.sort();
        names.dedup();
        names.retain(|n| !prefixes.iter().any(|p| n.starts_with(p.as_str())));
        let mut first_bytes = [false; 256];
        for s in prefixes.iter().chain(&names) {
            match s.as_bytes().first() {
                Some(&b) => first_bytes[usize::from(b)] = true,
                None => first_bytes = [true; 256], // an empty prefix matches all
            }
        }
        Self {
            prefixes: Names::new(&prefixes),
            names: Names::new(&names),
            first_bytes,
            forwarding: Forwarding::default(),
            workload: None,
        }
    }

    /// Everything an allow that sets `set` changes in `req` beside that:
    /// forged managed headers removed, and credentials of kinds not
    /// forwarded removed (see `forward.rs`). Never removes a header it sets.
    /// `set` is `(name, value)` pairs (an identity's `headers()`).
    pub fn edits<'s>(
        &self,
        req: &Request<'_>,
        set: impl Iterator<Item = (&'s str, &'s str)> + Clone,
    ) -> Edits {
        let mut edits = Edits {
            remove: self.to_remove(req.header_names(), set.clone()),
            ..Edits::default()
        };
        self.untrusted_certs(req, &mut edits.remove);
        self.forwarding.apply(req, set, &mut edits);
        let Edits { remove, set, .. } = &mut edits;
        remove.retain(|r| !set.iter().any(|(s, _)| s.eq_ignore_ascii_case(r)));
        edits
    }

    /// The forwarded certificate headers of a request from a peer not
    /// trusted to send them, added to `remove` (each name once).
    fn untrusted_certs(&self, req: &Request<'_>, remove: &mut Vec<String>) {
        let cert = |name: &str| {
            CERT_HEADERS
                .iter()
                .any(|c| same_name(name.as_bytes(), c.as_bytes()))
        };
        let mut names = req.header_names().filter(|n| cert(n)).peekable();
        if names.peek().is_none() || self.workload.as_ref().is_some_and(|w| w.trusted_hop(req)) {
            return;
        }
        for name in names {
            let name = name.to_ascii_lowercase();
            if !remove.contains(&name) {
                remove.push(name);
            }
        }
    }

    /// The exact managed names no prefix covers, each in its `-` and its
    /// `_` spelling, but those `set` sets. HTTP mode lists them all for
    /// removal on every allow: ward sees only the headers the proxy
    /// forwards (Envoy's `allowed_headers`, usually the prefixes), so a
    /// forged `x-tenant-id` it never saw must go all the same.
    pub fn unseen_to_remove<'s>(
        &self,
        set: impl Iterator<Item = (&'s str, &'s str)> + Clone,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for name in self.names.iter() {
            if set.clone().any(|(s, _)| same_name(s.as_bytes(), name)) {
                continue;
            }
            let dashes = String::from_utf8_lossy(name).into_owned();
            let underscores = dashes.replace('-', "_");
            if underscores != dashes {
                out.push(underscores);
            }
            out.push(dashes);
        }
        out
    }

    /// Is `name` one of ward's headers?
    pub fn is_managed(&self, name: &str) -> bool {
        let name = name.as_bytes();
        let first = match name.first() {
            Some(b'_') => b'-',
            Some(b) => b.to_ascii_lowercase(),
            None => {
                return self
                    .prefixes
                    .iter()
                    .chain(self.names.iter())
                    .any(<[u8]>::is_empty);
            }
        };
        if !self.first_bytes[usize::from(first)] {
            return false;
        }
        self.prefixes
            .iter()
            .any(|p| name.len() >= p.len() && same_name(&name[..p.len()], p))
            || (self.names.may_have(name.len()) && self.names.iter().any(|n| same_name(name, n)))
    }

    /// The client headers to remove: every managed one that the response
    /// does not itself set (Envoy removes after setting, so listing a set
    /// header would delete ward's own value).
    pub fn to_remove<'a, 's>(
        &self,
        client_headers: impl Iterator<Item = &'a str>,
        set: impl Iterator<Item = (&'s str, &'s str)> + Clone,
    ) -> Vec<String> {
        client_headers
            .filter(|name| self.is_managed(name))
            .filter(|name| !set.clone().any(|(s, _)| s.eq_ignore_ascii_case(name)))
            .map(|name| name.to_ascii_lowercase())
            .collect()
    }
}

/// Canonical names (lower case, `-` for `_`) in one buffer: checking a
/// request's header against them reads a line or two, not one allocation
/// per name. Every allow checks every header of the request.
#[derive(Debug, Clone, Default)]
struct Names {
    text: Box<[u8]>,
    /// Where each name ends in `text`.
    ends: Box<[usize]>,
    /// Bit `min(len, 63)` set for each name's length.
    lengths: u64,
}

impl Names {
    fn new(names: &[String]) -> Self {
        let mut text = Vec::new();
        let mut ends = Vec::with_capacity(names.len());
        let mut lengths = 0u64;
        for name in names {
            text.extend_from_slice(name.as_bytes());
            ends.push(text.len());
            lengths |= 1 << name.len().min(63);
        }
        Names {
            text: text.into(),
            ends: ends.into(),
            lengths,
        }
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(start, end)| self.text.get(start..end).unwrap_or_default())
    }

    /// Whether some name could be `len` bytes long.
    fn may_have(&self, len: usize) -> bool {
        self.lengths & (1 << len.min(63)) != 0
    }
}

/// Byte-wise equality, ASCII case-insensitive, with `_` equal to `-`.
/// `canonical` is already lowercase with dashes.
fn same_name(name: &[u8], canonical: &[u8]) -> bool {
    name.len() == canonical.len()
        && name.iter().zip(canonical).all(|(a, b)| {
            let a = a.to_ascii_lowercase();
            a == *b || (a == b'_' && *b == b'-')
        })
}

pub use crate::config::is_valid_header_name;

#[cfg(test)]
mod tests {
    use super::*;

    fn managed() -> ManagedHeaders {
        ManagedHeaders::new(
            &["x-user-".into(), "x-auth-".into()],
            vec!["x-user-id".into(), "x-tenant".into()],
        )
    }

    #[test]
    fn managed_set_covers_both_spellings_and_exact_names() {
        let m = managed();
        for name in [
            "x-user-id",
            "x_user_id",
            "x-user_id",
            "x-auth-method",
            "x_auth_anything",
            "X-User-Email",
            "x-tenant",
            "x_tenant",
        ] {
            assert!(m.is_managed(name), "{name} should be managed");
        }
        for name in [
            "",
            "x-userid",
            "user-id",
            "authorization",
            "x-request-id",
            "x-use",
        ] {
            assert!(!m.is_managed(name), "{name} should not be managed");
        }
    }

    #[test]
    fn first_byte_filter_follows_case_underscores_and_empty_prefixes() {
        let m = ManagedHeaders::new(&["-internal-".into()], vec!["tenant".into()]);
        for name in ["_internal_x", "-Internal-y", "TENANT", "Tenant"] {
            assert!(m.is_managed(name), "{name} should be managed");
        }
        for name in ["", "internal-x", "x-tenant", "accept"] {
            assert!(!m.is_managed(name), "{name} should not be managed");
        }
        let all = ManagedHeaders::new(&["".into()], vec![]);
        for name in ["", "accept", ":path"] {
            assert!(all.is_managed(name), "an empty prefix matches {name:?}");
        }
    }

    #[test]
    fn removes_forged_headers_but_never_one_it_sets() {
        let m = managed();
        let client = [
            "x-user-id",
            "x-user-admin",
            "x_user_id",
            "accept",
            "x-auth-method",
        ];
        let set = [("x-user-id", "alice"), ("x-auth-method", "jwt")];
        let removed = m.to_remove(client.into_iter(), set.into_iter());
        assert_eq!(removed, vec!["x-user-admin", "x_user_id"]);
    }

    #[test]
    fn the_record_headers_of_the_headers_section_are_managed() {
        let mut config = Config::default();
        config.headers.managed_prefixes = vec![];
        let m = ManagedHeaders::from_config(&config);
        for name in ["x-user-email", "x_user_roles", "X-User-Scopes"] {
            assert!(m.is_managed(name), "{name}");
        }
        config.headers.email = "mail".into();
        config.headers.scopes = "perms".into();
        let m = ManagedHeaders::from_config(&config);
        assert!(m.is_managed("mail") && m.is_managed("perms"));
        // Still set by the default JWT claim mapping.
        assert!(m.is_managed("x-user-email"));
    }

    #[test]
    fn forwarded_certs_go_unless_a_trusted_hop_sent_them() {
        let orders = "spiffe://cluster.local/ns/shop/sa/orders";
        let headers = [
            ("x-forwarded-client-cert", "URI=spiffe://td/forged"),
            ("client_cert", ":AAAA:"),
            ("Client-Cert-Chain", ":AAAA:"),
            ("accept", "*/*"),
        ];
        let req = |principal| Request {
            method: "GET",
            host: "h",
            path: "/",
            headers: crate::request::Headers::new(&headers),
            policy: None,
            source_ip: None,
            principal,
        };
        let removed = |m: &ManagedHeaders, principal| {
            let mut r = m.edits(&req(principal), std::iter::empty()).remove;
            r.sort();
            r
        };
        let all = [
            "client-cert-chain",
            "client_cert",
            "x-forwarded-client-cert",
        ];
        assert_eq!(removed(&managed(), Some(orders)), all);
        let config: Config = serde_yaml_ng::from_str(&format!(
            "workload: {{forwarded_cert: {{header: xfcc, trusted_peers: [\"{orders}\"]}}}}"
        ))
        .unwrap();
        let m = ManagedHeaders::from_config(&config);
        assert_eq!(removed(&m, Some(orders)), Vec::<String>::new());
        assert_eq!(removed(&m, Some("spiffe://td/other")), all);
        assert_eq!(removed(&m, None), all);
        assert!(m.is_managed("x-ward-principal") && m.is_managed("X_Ward_Principal"));
    }

    #[test]
    fn header_name_check() {
        assert!(is_valid_header_name("x-user-id"));
        assert!(is_valid_header_name("x_user_1"));
        assert!(!is_valid_header_name("X-User"));
        assert!(!is_valid_header_name("x user"));
        assert!(!is_valid_header_name(""));
        assert!(!is_valid_header_name("x:y"));
    }
}
