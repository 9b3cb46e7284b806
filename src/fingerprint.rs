//! Device fingerprints: SHA-256 over a canonical encoding of configured
//! client attributes, bound to a session when the login service stores it.
//!
//! The encoding must be unambiguous (no two attribute lists hash alike)
//! and easy to reproduce in any language, because the login service
//! computes the same value at login. It is the string `ward-fp-v1` followed,
//! for each attribute in order, by two netstrings (`<len>:<bytes>,`): the
//! attribute's name and its value. The result is lowercase hex.
//! `ward fingerprint` prints it for given inputs, and
//! `docs/redis-contract.md` has test vectors.

use sha2::{Digest, Sha256};
use std::net::IpAddr;

/// The attribute name that stands for the client IP address.
pub const CLIENT_IP: &str = "client_ip";

/// Computes the fingerprint of `(name, value)` pairs, in order.
pub fn compute<'a>(attributes: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"ward-fp-v1");
    for (name, value) in attributes {
        netstring(&mut hasher, name);
        netstring(&mut hasher, value);
    }
    hex::encode(hasher.finalize())
}

fn netstring(hasher: &mut Sha256, s: &str) {
    hasher.update(s.len().to_string().as_bytes());
    hasher.update(b":");
    hasher.update(s.as_bytes());
    hasher.update(b",");
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

/// Constant-time comparison of two hex fingerprints.
pub fn matches(stored: &str, computed: &str) -> bool {
    use subtle::ConstantTimeEq;
    let stored = stored.trim().to_ascii_lowercase();
    stored.len() == computed.len() && bool::from(stored.as_bytes().ct_eq(computed.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors() {
        // These vectors are repeated in docs/redis-contract.md.
        assert_eq!(
            compute([]),
            hex::encode(Sha256::digest(b"ward-fp-v1")),
            "no attributes"
        );
        let v1 = compute([
            ("client_ip", "203.0.113.7"),
            ("user-agent", "Mozilla/5.0"),
            ("accept-language", "en-US"),
        ]);
        let manual = hex::encode(Sha256::digest(
            b"ward-fp-v19:client_ip,11:203.0.113.7,10:user-agent,11:Mozilla/5.0,15:accept-language,5:en-US,",
        ));
        assert_eq!(v1, manual);
    }

    #[test]
    fn encoding_is_unambiguous() {
        assert_ne!(compute([("a", "bc")]), compute([("ab", "c")]));
        assert_ne!(compute([("a", "1,2:x")]), compute([("a", "1"), ("2", "x")]));
        assert_ne!(compute([("a", "")]), compute([]));
    }

    #[test]
    fn client_ip_counts_trusted_hops_from_the_right() {
        let src: IpAddr = "10.0.0.1".parse().unwrap();
        let xff = Some("1.1.1.1, 2.2.2.2, 3.3.3.3");
        assert_eq!(client_ip(xff, Some(src), 0), Some(src));
        assert_eq!(client_ip(xff, Some(src), 1), "3.3.3.3".parse().ok());
        assert_eq!(client_ip(xff, Some(src), 2), "2.2.2.2".parse().ok());
        assert_eq!(client_ip(xff, Some(src), 4), Some(src), "too few entries");
        assert_eq!(client_ip(Some("junk"), Some(src), 1), Some(src));
        assert_eq!(client_ip(None, None, 1), None);
        assert_eq!(
            client_ip(Some(" 2001:db8::1 "), None, 1),
            "2001:db8::1".parse().ok()
        );
    }

    #[test]
    fn masking() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(masked(ip("203.0.113.77"), 24, 64), "203.0.113.0");
        assert_eq!(masked(ip("203.0.113.77"), 32, 64), "203.0.113.77");
        assert_eq!(masked(ip("203.0.113.77"), 0, 64), "0.0.0.0");
        assert_eq!(masked(ip("2001:DB8:1:2:3:4:5:6"), 24, 64), "2001:db8:1:2::");
        assert_eq!(masked(ip("2001:db8::1"), 24, 128), "2001:db8::1");
        assert_eq!(masked(ip("::ffff:203.0.113.77"), 24, 128), "203.0.113.0");
    }

    #[test]
    fn comparison_ignores_case_and_whitespace_only() {
        let fp = compute([("a", "b")]);
        assert!(matches(&fp.to_ascii_uppercase(), &fp));
        assert!(matches(&format!(" {fp}\n"), &fp));
        assert!(!matches(&fp[1..], &fp));
        assert!(!matches(&compute([("a", "c")]), &fp));
    }
}
