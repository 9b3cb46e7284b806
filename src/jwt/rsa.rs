//! The size of an RSA public key, read from its DER or JWK form.
//!
//! The signature library refuses to verify with an RSA key under 2048 bits
//! (aws-lc's `RSA_PKCS1_2048_8192_*` parameters) but loads one silently,
//! so a weak key would fail every token as `bad_signature`. ward measures
//! the modulus itself at load and refuses the key by name instead: a
//! static key fails the config, a JWKS entry is skipped.
//!
//! A minimal DER reader is enough: only the outer structure is walked
//! (SubjectPublicKeyInfo, RFC 5280 §4.1; RSAPublicKey, RFC 8017 A.1.1) to
//! the modulus INTEGER. The signature library parses the key for real.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The smallest RSA modulus ward accepts, in bits (RFC 7518 §3.3, NIST
/// SP 800-131A).
pub(super) const MIN_RSA_BITS: usize = 2048;

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;

/// Modulus bits of a SubjectPublicKeyInfo (`PUBLIC KEY` PEM) holding an
/// RSA key; `None` when the DER is not shaped like one.
pub(super) fn spki_modulus_bits(der: &[u8]) -> Option<usize> {
    let spki = expect(der, SEQUENCE)?;
    let (_algorithm, rest) = element(spki, SEQUENCE)?;
    let key = expect(rest, BIT_STRING)?;
    // A BIT STRING starts with its count of unused bits: zero here.
    match key.split_first()? {
        (0, rsa_public_key) => pkcs1_modulus_bits(rsa_public_key),
        _ => None,
    }
}

/// Modulus bits of a PKCS#1 RSAPublicKey (`RSA PUBLIC KEY` PEM).
pub(super) fn pkcs1_modulus_bits(der: &[u8]) -> Option<usize> {
    let key = expect(der, SEQUENCE)?;
    let (modulus, _exponent) = element(key, INTEGER)?;
    Some(bit_length(modulus))
}

/// Modulus bits of a JWK's `n` (base64url, big-endian); `None` when `n`
/// is not base64url.
pub(super) fn jwk_modulus_bits(n: &str) -> Option<usize> {
    URL_SAFE_NO_PAD.decode(n).ok().map(|n| bit_length(&n))
}

/// Bits in an unsigned big-endian integer, leading zero bytes (DER's sign
/// byte, or a JWK's padding) not counted.
fn bit_length(be: &[u8]) -> usize {
    let start = be.iter().position(|&b| b != 0).unwrap_or(be.len());
    match be.get(start) {
        Some(&top) => (be.len() - start) * 8 - top.leading_zeros() as usize,
        None => 0,
    }
}

/// The contents of the single element `der` must be, of type `tag`.
fn expect(der: &[u8], tag: u8) -> Option<&[u8]> {
    match element(der, tag)? {
        (contents, []) => Some(contents),
        _ => None,
    }
}

/// The first element of `input`, of type `tag`: its contents and what
/// follows it. Definite lengths only, as DER requires.
fn element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, rest) = input.split_first()?;
    if found != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        let len = bytes.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b));
        (len, rest)
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    fn der(file: &str) -> Vec<u8> {
        let text = std::fs::read_to_string(format!("tests/fixtures/keys/{file}")).unwrap();
        let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        STANDARD.decode(body).unwrap()
    }

    #[test]
    fn measures_fixture_keys() {
        assert_eq!(spki_modulus_bits(&der("rsa.pub")), Some(2048));
        assert_eq!(spki_modulus_bits(&der("rsa2.pub")), Some(2048));
        assert_eq!(spki_modulus_bits(&der("rsa1024.pub")), Some(1024));
        assert_eq!(pkcs1_modulus_bits(&der("rsa.pkcs1.pub")), Some(2048));
        assert_eq!(pkcs1_modulus_bits(&der("rsa1024.pkcs1.pub")), Some(1024));
        // Each form refuses the other, and non-RSA keys.
        assert_eq!(spki_modulus_bits(&der("rsa.pkcs1.pub")), None);
        assert_eq!(pkcs1_modulus_bits(&der("rsa.pub")), None);
        assert_eq!(spki_modulus_bits(&der("ed25519.pub")), None);
    }

    #[test]
    fn refuses_truncated_or_padded_der() {
        let good = der("rsa.pub");
        for cut in [0, 1, 2, 10, good.len() - 1] {
            assert_eq!(spki_modulus_bits(&good[..cut]), None, "cut at {cut}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert_eq!(spki_modulus_bits(&longer), None);
    }

    #[test]
    fn counts_bits_not_bytes() {
        assert_eq!(bit_length(&[]), 0);
        assert_eq!(bit_length(&[0, 0]), 0);
        assert_eq!(bit_length(&[1]), 1);
        assert_eq!(bit_length(&[0, 0x80, 0]), 16);
        assert_eq!(bit_length(&[0x7f; 256]), 2047);
        // A JWK `n` with a leading zero byte is still 2048 bits.
        let mut n = vec![0u8];
        n.extend([0xff; 256]);
        assert_eq!(jwk_modulus_bits(&URL_SAFE_NO_PAD.encode(&n)), Some(2048));
        assert_eq!(jwk_modulus_bits("AQAB"), Some(17));
        assert_eq!(jwk_modulus_bits("not base64!"), None);
    }
}
