//! Device fingerprints: SHA-256 over a canonical encoding of configured
//! client attributes, bound to a session when the login service stores it.
//!
//! The encoding must be unambiguous (no two attribute lists hash alike)
//! and easy to reproduce in any language, because the login service
//! computes the same value at login. A domain string, then, for each
//! attribute in order, two netstrings (`<len>:<bytes>,`): the attribute's
//! name and its value; the hash in lowercase hex.
//!
//! Two versions, told apart by the stored value ([`Version::of`]):
//!
//! - **v1** (`ward-fp-v1`, stored as bare hex) hashes every value byte for
//!   byte. A browser that only re-spaces `accept-language`
//!   (`en-US, en;q=0.9` for `en-US,en;q=0.9`, the same list under RFC 9110
//!   §5.6.1) changed its fingerprint and was logged out.
//! - **v2** (`ward-fp-v2`, stored as `fp2:<hex>`) first puts the headers
//!   of a fixed table, [`LIST_HEADERS`], in list normal form
//!   ([`normalize`]); every other value (`user-agent`, `client_ip`, any
//!   header not in the table) is still hashed byte for byte.
//!
//! Sessions written with v1 keep verifying with v1. `ward fingerprint`
//! prints v2 (`--v1` for v1), and `docs/redis-contract.md` has the steps
//! and test vectors of both.
//!
//! Which attributes, in which order, with which IP mask, is config:
//! [`of_request`] (a check: the peer and `x-forwarded-for`) and
//! [`of_client`] (`ward fingerprint`: the client IP given) apply it, from
//! a header lookup rather than a request, so the CLI computes exactly
//! what a check computes without pretending to be one.

use crate::config::FingerprintConfig;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::net::IpAddr;

/// The attribute that stands for the client's masked IP.
pub use crate::config::CLIENT_IP;

/// How a v2 fingerprint is stored: this prefix, then the hex digest.
pub const V2_PREFIX: &str = "fp2:";

/// The headers v2 hashes as RFC 9110 lists, and whether their elements are
/// case-insensitive (then ASCII-lower-cased). Fixed: a header added or
/// removed here changes fingerprints, so it needs a new version.
pub const LIST_HEADERS: &[(&str, bool)] = &[
    // media ranges: parameter values may be case-sensitive
    ("accept", false),
    // content-codings are case-insensitive (RFC 9110 §8.4.1)
    ("accept-encoding", true),
    // language ranges are case-insensitive (RFC 4647 §2.1)
    ("accept-language", true),
    // a structured-field list of quoted brand strings
    ("sec-ch-ua", false),
];

/// The algorithm a fingerprint is computed or was stored with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `ward-fp-v1`: values byte for byte; bare hex.
    V1,
    /// `ward-fp-v2`: list headers normalized; `fp2:` + hex.
    V2,
}

impl Version {
    /// The version a stored fingerprint was written with: `fp2:` (any
    /// case, surrounding whitespace ignored) is v2, anything else v1.
    pub fn of(stored: &str) -> Version {
        let prefix = stored.trim_start().get(..V2_PREFIX.len());
        if prefix.is_some_and(|p| p.eq_ignore_ascii_case(V2_PREFIX)) {
            Version::V2
        } else {
            Version::V1
        }
    }

    /// The fingerprint of `(name, value)` pairs, in order, as stored.
    pub fn compute<'a>(self, attributes: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
        let mut hasher = Sha256::new();
        match self {
            Version::V1 => {
                hasher.update(b"ward-fp-v1");
                for (name, value) in attributes {
                    netstring(&mut hasher, name);
                    netstring(&mut hasher, value);
                }
                hex::encode(hasher.finalize())
            }
            Version::V2 => {
                hasher.update(b"ward-fp-v2");
                for (name, value) in attributes {
                    netstring(&mut hasher, name);
                    netstring(&mut hasher, &normalize(name, value));
                }
                format!("{V2_PREFIX}{}", hex::encode(hasher.finalize()))
            }
        }
    }
}

/// The fingerprint of a request under `config` with `version`: the
/// client IP resolved from the peer Envoy saw (`source_ip`) and
/// `x-forwarded-for` with `config.trusted_hops` ([`client_ip`]), then
/// [`of_client`]. `header` looks a header up by its lowercase name.
pub fn of_request<'h>(
    config: &FingerprintConfig,
    version: Version,
    source_ip: Option<IpAddr>,
    header: impl Fn(&str) -> Option<&'h str>,
) -> String {
    let client = client_ip(header("x-forwarded-for"), source_ip, config.trusted_hops);
    of_client(config, version, client, header)
}

/// The fingerprint of a client at `client` (already resolved; none: the
/// empty string) under `config` with `version`: for each configured
/// attribute in order, the masked IP for [`CLIENT_IP`], else the header's
/// value (a missing header: the empty string).
pub fn of_client<'h>(
    config: &FingerprintConfig,
    version: Version,
    client: Option<IpAddr>,
    header: impl Fn(&str) -> Option<&'h str>,
) -> String {
    let ip = client
        .map(|ip| masked(ip, config.ipv4_prefix, config.ipv6_prefix))
        .unwrap_or_default();
    let values: Vec<(&str, &str)> = config
        .attributes
        .iter()
        .map(|a| {
            let v = if a == CLIENT_IP {
                ip.as_str()
            } else {
                header(a).unwrap_or("")
            };
            (a.as_str(), v)
        })
        .collect();
    version.compute(values)
}

fn netstring(hasher: &mut Sha256, s: &str) {
    hasher.update(s.len().to_string().as_bytes());
    hasher.update(b":");
    hasher.update(s.as_bytes());
    hasher.update(b",");
}

/// The value v2 hashes for attribute `name`: for a header of
/// [`LIST_HEADERS`], its list normal form: split on `,`, each element
/// split on `;` (neither splits inside a `"quoted string"`), each part
/// trimmed of spaces and tabs, empty parts and empty elements dropped,
/// parts joined with `;` and elements with `,`, then ASCII-lower-cased
/// when the header's elements are case-insensitive. Any other value as is.
pub fn normalize<'a>(name: &str, value: &'a str) -> Cow<'a, str> {
    let Some(&(_, lower)) = LIST_HEADERS
        .iter()
        .find(|(h, _)| h.eq_ignore_ascii_case(name))
    else {
        return Cow::Borrowed(value);
    };
    let mut out = String::with_capacity(value.len());
    for element in split_unquoted(value, b',') {
        let parts = split_unquoted(element, b';')
            .map(|p| p.trim_matches([' ', '\t']))
            .filter(|p| !p.is_empty());
        // An element with no part writes nothing, not even its comma.
        let mut sep = if out.is_empty() { "" } else { "," };
        for part in parts {
            out.push_str(sep);
            out.push_str(part);
            sep = ";";
        }
    }
    if lower {
        out.make_ascii_lowercase();
    }
    Cow::Owned(out)
}

/// `s` split on `sep`, except inside a double-quoted string (where `\`
/// escapes the next character, as in RFC 9110's `quoted-pair`).
fn split_unquoted(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    let mut start = 0;
    let (mut quoted, mut escaped) = (false, false);
    let mut cuts = Vec::new();
    for (i, &b) in s.as_bytes().iter().enumerate() {
        if escaped {
            escaped = false;
        } else if quoted && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            quoted = !quoted;
        } else if b == sep && !quoted {
            cuts.push(&s[start..i]);
            start = i + 1;
        }
    }
    cuts.push(&s[start..]);
    cuts.into_iter()
}

/// The client's address: with `trusted_hops` = 0, the peer Envoy saw
/// (`source`); with N > 0, the Nth entry of `x-forwarded-for` counted
/// from the right, since only the entries appended by your own N proxies
/// can be trusted (everything further left is whatever the client sent).
/// A header with fewer entries, or an unparsable entry, falls back to
/// `source`.
pub fn client_ip(xff: Option<&str>, source: Option<IpAddr>, trusted_hops: usize) -> Option<IpAddr> {
    if trusted_hops == 0 {
        return source;
    }
    let entry = xff.and_then(|v| v.rsplit(',').nth(trusted_hops - 1));
    entry
        .and_then(|e| e.trim().parse::<IpAddr>().ok())
        .or(source)
}

/// Keeps the first `v4` / `v6` bits of an address (a mobile client's
/// address changes within its carrier's network), in canonical text form:
/// dotted IPv4, RFC 5952 IPv6. An IPv4-mapped IPv6 address is read as IPv4.
pub fn masked(ip: IpAddr, v4_bits: u8, v6_bits: u8) -> String {
    match ip {
        IpAddr::V4(a) => mask_v4(a, v4_bits).to_string(),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => mask_v4(v4, v4_bits).to_string(),
            None => {
                let bits = u32::from(v6_bits.min(128));
                let keep = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                std::net::Ipv6Addr::from(u128::from(a) & keep).to_string()
            }
        },
    }
}

fn mask_v4(a: std::net::Ipv4Addr, bits: u8) -> std::net::Ipv4Addr {
    let bits = u32::from(bits.min(32));
    let keep = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
    std::net::Ipv4Addr::from(u32::from(a) & keep)
}

/// Whether `stored` can ever match a computed fingerprint: 64 hex digits
/// (v1) or `fp2:` and 64 (v2), in any case, surrounding whitespace
/// ignored, as [`matches()`] reads it. Anything else would deny every
/// request of its session as `fingerprint_mismatch`.
pub fn well_formed(stored: &str) -> bool {
    let stored = stored.trim();
    let hex = match Version::of(stored) {
        Version::V2 => stored.get(V2_PREFIX.len()..).unwrap_or(""),
        Version::V1 => stored,
    };
    hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Constant-time comparison of a stored fingerprint with the one computed
/// for this request with the stored one's [`Version`]: case and
/// surrounding whitespace of the stored value are ignored.
pub fn matches(stored: &str, computed: &str) -> bool {
    use subtle::ConstantTimeEq;
    let stored = stored.trim().to_ascii_lowercase();
    stored.len() == computed.len() && bool::from(stored.as_bytes().ct_eq(computed.as_bytes()))
}

#[cfg(test)]
mod tests;
