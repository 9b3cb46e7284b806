//! An identity as the caches keep it: every string in one block of text,
//! so a million cached tokens fit in well under a gigabyte.
//!
//! An identity built field by field ([`IdentityParts`]) costs a heap block
//! per string (a header name, a header value, each role): fourteen blocks
//! for a typical JWT, about 630 bytes before the allocator's own overhead.
//! Packed, it is three: the [`Identity`] itself (in its `Arc`), its text,
//! and the ends of the pieces in that text (`tests/footprint.rs` counts
//! them). The pieces are read back as `&str` slices; nothing is copied on
//! a cache hit.

use super::IdentityParts;
use super::signed::TokenSlots;
use crate::credential_kind::CredentialKind;
use std::sync::OnceLock;

/// A verified caller and the headers to send upstream.
///
/// Not `Clone`: an identity is shared (`Arc`) once built, so the allow
/// encoded from it once (`encoded`) can never go stale by a change to a
/// copy. Built from [`IdentityParts`] (`Identity::from`).
#[derive(Debug)]
pub struct Identity {
    pub method: CredentialKind,
    /// The user id, each header's name and value, the `jti`, the `sid`,
    /// each role and each scope, one after the other.
    text: Box<str>,
    /// Where each piece of `text` ends, in that order.
    ends: Box<[u32]>,
    headers: u16,
    roles: u16,
    /// This identity's allow as the transport sends it, encoded on first
    /// use (the gRPC adapter's pre-encoded `CheckResponse` fields), so a
    /// cached identity shared by thousands of checks is encoded once; it
    /// goes with the identity when the cache drops it.
    pub encoded: OnceLock<EncodedAllow>,
    /// When the credential stops being valid (unix seconds; 0: no
    /// expiry known): an identity token never outlives it.
    expires_at: u64,
    /// The identity tokens signed for this identity, one slot per token
    /// profile (`signed.rs`), so a cache hit reuses them.
    pub tokens: TokenSlots,
}

/// An allow's fixed part as encoded bytes: plain bytes, so the pure core
/// carries them without knowing the transport's types. The gRPC adapter
/// writes `OkHttpResponse.headers` and `CheckResponse.dynamic_metadata`
/// here (`server/grpc/answer.rs`), in one block; the parts a check adds
/// are encoded per check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedAllow {
    bytes: Box<[u8]>,
    split: usize,
}

impl EncodedAllow {
    /// `headers` then `metadata`, given as one buffer and where the first
    /// ends.
    pub fn new(bytes: Vec<u8>, headers_len: usize) -> Self {
        Self {
            split: headers_len.min(bytes.len()),
            bytes: bytes.into_boxed_slice(),
        }
    }

    /// The encoded `OkHttpResponse.headers`.
    pub fn headers(&self) -> &[u8] {
        &self.bytes[..self.split]
    }

    /// The encoded `CheckResponse.dynamic_metadata`, key and length included.
    pub fn metadata(&self) -> &[u8] {
        &self.bytes[self.split..]
    }
}

/// Pieces before the first header: the user id.
const HEADERS_START: usize = 1;

impl From<IdentityParts> for Identity {
    fn from(parts: IdentityParts) -> Self {
        let IdentityParts {
            user_id,
            method,
            headers,
            jti,
            session_id,
            roles,
            scopes,
        } = parts;
        // Walked twice (sizes, then copies) rather than collected: one
        // allocation fewer per identity built, which a cache miss pays.
        let pieces = || {
            std::iter::once(user_id.as_str())
                .chain(headers.iter().flat_map(|(n, v)| [n.as_str(), v.as_str()]))
                .chain([
                    jti.as_deref().unwrap_or_default(),
                    session_id.as_deref().unwrap_or_default(),
                ])
                .chain(roles.iter().chain(&scopes).map(String::as_str))
        };
        let (count, len) = pieces().fold((0, 0), |(n, len), p| (n + 1, len + p.len()));
        let mut text = String::with_capacity(len);
        let mut ends = Vec::with_capacity(count);
        for piece in pieces() {
            // Cannot saturate: the pieces come from a JWT capped by
            // `jwt.max_token_bytes` or a store record (Redis caps a value
            // at 512 MB), so the text stays far below 4 GiB.
            text.push_str(piece);
            ends.push(u32::try_from(text.len()).unwrap_or(u32::MAX));
        }
        Identity {
            method,
            text: text.into_boxed_str(),
            ends: ends.into_boxed_slice(),
            headers: u16::try_from(headers.len()).unwrap_or(u16::MAX),
            roles: u16::try_from(roles.len()).unwrap_or(u16::MAX),
            encoded: OnceLock::new(),
            expires_at: 0,
            tokens: TokenSlots::default(),
        }
    }
}

impl Identity {
    /// The piece at `index`; empty if there is none.
    fn piece(&self, index: usize) -> &str {
        let start = match index.checked_sub(1) {
            Some(before) => self.ends.get(before).copied().unwrap_or(0),
            None => 0,
        };
        let end = self.ends.get(index).copied().unwrap_or(start);
        self.text
            .get(start as usize..end as usize)
            .unwrap_or_default()
    }

    /// The identity, good until its credential's `expires_at` (unix
    /// seconds), when one is known.
    pub fn with_expiry(mut self, expires_at: Option<u64>) -> Self {
        self.expires_at = expires_at.unwrap_or(0);
        self
    }

    /// When the credential expires (unix seconds), if it does.
    pub fn expires_at(&self) -> Option<u64> {
        Some(self.expires_at).filter(|&e| e > 0)
    }

    fn jti_index(&self) -> usize {
        HEADERS_START + 2 * usize::from(self.headers)
    }

    /// The user id, as sent in the user id header and the metadata.
    pub fn user_id(&self) -> &str {
        self.piece(0)
    }

    /// `(name, value)` pairs, names unique: user id, method, then claims.
    pub fn headers(&self) -> Headers<'_> {
        Headers {
            identity: self,
            next: 0,
            end: usize::from(self.headers),
        }
    }

    /// A JWT's `jti`, kept for revocation checks on every use.
    pub fn jti(&self) -> Option<&str> {
        Some(self.piece(self.jti_index())).filter(|s| !s.is_empty())
    }

    /// A JWT's `sid`, kept for revocation checks on every use.
    pub fn session_id(&self) -> Option<&str> {
        Some(self.piece(self.jti_index() + 1)).filter(|s| !s.is_empty())
    }

    /// Roles, for route policies (`policy.rs`).
    pub fn roles(&self) -> Items<'_> {
        let start = self.jti_index() + 2;
        self.items(start, start + usize::from(self.roles))
    }

    /// Scopes, for route policies (`policy.rs`).
    pub fn scopes(&self) -> Items<'_> {
        let start = self.jti_index() + 2 + usize::from(self.roles);
        self.items(start, self.ends.len())
    }

    fn items(&self, next: usize, end: usize) -> Items<'_> {
        Items {
            identity: self,
            next,
            end,
        }
    }
}

/// An identity's headers, in order (`Identity::headers`).
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    identity: &'a Identity,
    next: usize,
    end: usize,
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.end {
            return None;
        }
        let at = HEADERS_START + 2 * self.next;
        self.next += 1;
        Some((self.identity.piece(at), self.identity.piece(at + 1)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end.saturating_sub(self.next);
        (n, Some(n))
    }
}

impl ExactSizeIterator for Headers<'_> {}

/// An identity's roles or scopes (`Identity::roles`, `Identity::scopes`).
#[derive(Debug, Clone)]
pub struct Items<'a> {
    identity: &'a Identity,
    next: usize,
    end: usize,
}

impl<'a> Iterator for Items<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.next >= self.end {
            return None;
        }
        self.next += 1;
        Some(self.identity.piece(self.next - 1))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end.saturating_sub(self.next);
        (n, Some(n))
    }
}

impl ExactSizeIterator for Items<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)], roles: &[&str], scopes: &[&str]) -> IdentityParts {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        IdentityParts {
            user_id: "alice".into(),
            method: CredentialKind::Jwt,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            jti: Some("j-1".into()),
            session_id: None,
            roles: own(roles),
            scopes: own(scopes),
        }
    }

    #[test]
    fn every_piece_reads_back_as_built() {
        let h = [
            ("x-user-id", "alice"),
            ("x-auth-method", "jwt"),
            ("x-e", ""),
        ];
        for (roles, scopes) in [
            (&["admin", "dev"][..], &["read"][..]),
            (&[], &["read", "write"]),
            (&["r"], &[]),
            (&[], &[]),
        ] {
            let id = Identity::from(parts(&h, roles, scopes));
            assert_eq!(id.user_id(), "alice");
            assert_eq!(id.headers().collect::<Vec<_>>(), h);
            assert_eq!(id.headers().len(), 3);
            assert_eq!(id.jti(), Some("j-1"));
            assert_eq!(id.session_id(), None);
            assert_eq!(id.roles().collect::<Vec<_>>(), roles);
            assert_eq!(id.scopes().collect::<Vec<_>>(), scopes);
            assert_eq!(id.scopes().len(), scopes.len());
        }
        let empty = Identity::from(IdentityParts {
            jti: None,
            session_id: Some("s".into()),
            ..parts(&[], &[], &[])
        });
        assert_eq!(empty.headers().count(), 0);
        assert_eq!((empty.jti(), empty.session_id()), (None, Some("s")));
    }

    #[test]
    fn an_encoded_allow_splits_where_its_headers_end() {
        let e = EncodedAllow::new(vec![1, 2, 3, 4], 1);
        assert_eq!((e.headers(), e.metadata()), (&[1][..], &[2, 3, 4][..]));
        let past = EncodedAllow::new(vec![1], 5);
        assert_eq!((past.headers(), past.metadata()), (&[1][..], &[][..]));
    }
}
