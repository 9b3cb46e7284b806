//! What a Check call sends back: an [`Answer`], either Envoy's own
//! message or an allow written as bytes. An identity's allow (its headers
//! with `OVERWRITE_IF_EXISTS_OR_ADD`, its metadata) is encoded once and
//! kept in the identity, so a cache hit encodes only the request's edits;
//! on the wire it is the same `CheckResponse` (a test decodes one and
//! compares).

use super::{OK_STATUS, header};
use crate::decision::IdentityToken;
use crate::forward::Edits;
use crate::identity::{EncodedAllow, Identity};
use envoy_types::ext_authz::v3::pb::{CheckResponse, HeaderAppendAction, HeaderValueOption};
use prost::Message;
use prost::bytes::{Buf, BufMut};
use prost::encoding::{self, DecodeContext, WireType};
use std::sync::Arc;

/// What ward answers, encoded as a `CheckResponse`.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // boxing the message would cost every deny an allocation
pub(in crate::server) enum Answer {
    /// An allow for an identity: its headers and metadata as encoded once
    /// per identity ([`Encoder`]), and what this request must lose
    /// (forged headers, credentials not forwarded) or have rewritten.
    Allow {
        identity: Arc<Identity>,
        /// The policy's identity token: kept in the identity too, but it
        /// changes more often than the encoded allow (a re-sign), so it
        /// is written per check, straight from the kept token.
        token: Option<IdentityToken>,
        edits: Edits,
    },
    /// Any other answer (deny, public route), as Envoy's message.
    Message(CheckResponse),
}

/// `CheckResponse` fields and `OkHttpResponse` fields ward writes by hand.
const STATUS_FIELD: u32 = 1;
const OK_RESPONSE_FIELD: u32 = 3;
const METADATA_FIELD: u32 = 4;
const HEADERS_FIELD: u32 = 2;
const HEADERS_TO_REMOVE_FIELD: u32 = 5;
const QUERY_TO_REMOVE_FIELD: u32 = 8;

/// An identity's allow, encoded once and kept in the identity
/// ([`Identity::encoded`]): `OkHttpResponse.headers` (each with
/// `OVERWRITE_IF_EXISTS_OR_ADD`; the body of an `OkHttpResponse` that has
/// only headers) and `CheckResponse.dynamic_metadata` (field 4, key and
/// length included). Only the request's [`Edits`] (`headers_to_remove`,
/// most often alone; a rewritten `cookie`; `query_parameters_to_remove`)
/// are encoded per check, between the two.
struct Encoder<'e>(&'e EncodedAllow);

impl Encoder<'_> {
    /// Writes the bytes directly, as prost would from the messages
    /// (`HeaderValueOption`, `Struct`), without building those messages
    /// of owned strings first: a credential seen once (a cache miss) pays
    /// for this encoding and uses it once. Headers and metadata share one
    /// buffer (one heap block per cached identity).
    fn encode_allow(identity: &Identity) -> EncodedAllow {
        let mut buf = Vec::with_capacity(Self::headers_len(identity) + metadata_len(identity));
        Self::encode_headers(identity, &mut buf);
        let headers_len = buf.len();
        encode_metadata(identity, &mut buf);
        EncodedAllow::new(buf, headers_len)
    }

    /// What `encode_headers` writes, exactly.
    fn headers_len(identity: &Identity) -> usize {
        identity
            .headers()
            .map(|(key, value)| header_len(key, value))
            .sum()
    }

    /// `OkHttpResponse.headers`, each with `OVERWRITE_IF_EXISTS_OR_ADD`.
    fn encode_headers(identity: &Identity, headers: &mut Vec<u8>) {
        for (key, value) in identity.headers() {
            encode_header(key, value, headers);
        }
    }

    fn ok_response_len(&self, token: Option<(&str, &str)>, edits: &Edits) -> usize {
        self.0.headers().len()
            + token.map_or(0, |(key, value)| header_len(key, value))
            + encoding::message::encoded_len_repeated(HEADERS_FIELD, &per_check_headers(edits))
            + encoding::string::encoded_len_repeated(HEADERS_TO_REMOVE_FIELD, &edits.remove)
            + encoding::string::encoded_len_repeated(QUERY_TO_REMOVE_FIELD, &edits.remove_query)
    }

    fn encoded_len(&self, token: Option<(&str, &str)>, edits: &Edits) -> usize {
        let ok = self.ok_response_len(token, edits);
        encoding::message::encoded_len(STATUS_FIELD, &OK_STATUS)
            + encoding::key_len(OK_RESPONSE_FIELD)
            + encoding::encoded_len_varint(ok as u64)
            + ok
            + self.0.metadata().len()
    }

    /// Fields in the order prost writes them: status, ok_response
    /// (headers: the identity's, its token's, then this request's;
    /// headers_to_remove; query_parameters_to_remove), dynamic_metadata.
    fn encode(&self, token: Option<(&str, &str)>, edits: &Edits, buf: &mut impl BufMut) {
        encoding::message::encode(STATUS_FIELD, &OK_STATUS, buf);
        encoding::encode_key(OK_RESPONSE_FIELD, WireType::LengthDelimited, buf);
        encoding::encode_varint(self.ok_response_len(token, edits) as u64, buf);
        buf.put_slice(self.0.headers());
        if let Some((key, value)) = token {
            encode_header(key, value, buf);
        }
        encoding::message::encode_repeated(HEADERS_FIELD, &per_check_headers(edits), buf);
        encoding::string::encode_repeated(HEADERS_TO_REMOVE_FIELD, &edits.remove, buf);
        encoding::string::encode_repeated(QUERY_TO_REMOVE_FIELD, &edits.remove_query, buf);
        buf.put_slice(self.0.metadata());
    }
}

/// One `OkHttpResponse.headers` entry with `OVERWRITE_IF_EXISTS_OR_ADD`.
fn encode_header(key: &str, value: &str, buf: &mut impl BufMut) {
    let overwrite = HeaderAppendAction::OverwriteIfExistsOrAdd as u64;
    // HeaderValueOption { header = 1, append_action = 3 }
    put_len_prefix(2, header_option_len(key, value), buf); // OkHttpResponse.headers
    put_len_prefix(1, header_value_len(key, value), buf);
    put_str_field(1, key, buf);
    put_str_field(2, value, buf);
    encoding::encode_key(3, WireType::Varint, buf);
    encoding::encode_varint(overwrite, buf);
}

/// What `encode_header` writes, exactly.
fn header_len(key: &str, value: &str) -> usize {
    let option = header_option_len(key, value);
    encoding::key_len(2) + encoding::encoded_len_varint(option as u64) + option
}

/// `HeaderValue { key = 1, value = 2 }`'s size.
fn header_value_len(key: &str, value: &str) -> usize {
    str_field_len(1, key) + str_field_len(2, value)
}

/// `HeaderValueOption { header = 1, append_action = 3 }`'s size, the
/// action `OVERWRITE_IF_EXISTS_OR_ADD`.
fn header_option_len(key: &str, value: &str) -> usize {
    let overwrite = HeaderAppendAction::OverwriteIfExistsOrAdd as u64;
    let header_value = header_value_len(key, value);
    encoding::key_len(1)
        + encoding::encoded_len_varint(header_value as u64)
        + header_value
        + encoding::key_len(3)
        + encoding::encoded_len_varint(overwrite)
}

/// The metadata's `Struct { fields = 1: map<string, Value { string_value
/// = 3 }> }` entries: the user id and the method.
fn metadata_fields(identity: &Identity) -> [(&'static str, &str); 2] {
    [
        ("user_id", identity.user_id()),
        ("auth_method", identity.method.as_str()),
    ]
}

/// One metadata map entry's size.
fn metadata_entry_len((name, value): (&str, &str)) -> usize {
    let v = encoding::key_len(3) + encoding::encoded_len_varint(value.len() as u64);
    let v = v + value.len();
    str_field_len(1, name) + encoding::key_len(2) + encoding::encoded_len_varint(v as u64) + v
}

/// The metadata's `Struct` body size.
fn metadata_body_len(identity: &Identity) -> usize {
    metadata_fields(identity)
        .iter()
        .map(|&f| {
            let e = metadata_entry_len(f);
            encoding::key_len(1) + encoding::encoded_len_varint(e as u64) + e
        })
        .sum()
}

/// What `encode_metadata` writes, exactly.
fn metadata_len(identity: &Identity) -> usize {
    let body = metadata_body_len(identity);
    encoding::key_len(METADATA_FIELD) + encoding::encoded_len_varint(body as u64) + body
}

/// `CheckResponse.dynamic_metadata`, key and length included.
fn encode_metadata(identity: &Identity, metadata: &mut Vec<u8>) {
    put_len_prefix(METADATA_FIELD, metadata_body_len(identity), metadata);
    for (name, value) in metadata_fields(identity) {
        put_len_prefix(1, metadata_entry_len((name, value)), metadata);
        put_str_field(1, name, metadata);
        let v = encoding::key_len(3) + encoding::encoded_len_varint(value.len() as u64);
        put_len_prefix(2, v + value.len(), metadata);
        // A oneof member is written even when empty.
        put_len_prefix(3, value.len(), metadata);
        metadata.put_slice(value.as_bytes());
    }
}

/// The headers an allow sets for this request only (empty but for a
/// session cookie cut out of `cookie`: no allocation then).
fn per_check_headers(edits: &Edits) -> Vec<HeaderValueOption> {
    edits.set.iter().map(|(k, v)| header(k, v)).collect()
}

/// A proto3 string field's encoded size: nothing when empty (the default).
fn str_field_len(tag: u32, value: &str) -> usize {
    if value.is_empty() {
        return 0;
    }
    encoding::key_len(tag) + encoding::encoded_len_varint(value.len() as u64) + value.len()
}

fn put_str_field(tag: u32, value: &str, buf: &mut impl BufMut) {
    if !value.is_empty() {
        put_len_prefix(tag, value.len(), buf);
        buf.put_slice(value.as_bytes());
    }
}

/// The key and length of a length-delimited field.
fn put_len_prefix(tag: u32, len: usize, buf: &mut impl BufMut) {
    encoding::encode_key(tag, WireType::LengthDelimited, buf);
    encoding::encode_varint(len as u64, buf);
}

impl Answer {
    /// The identity's encoded allow, made on first use and kept in the
    /// identity (a cached identity is shared by every check it allows).
    fn encoder(identity: &Identity) -> Encoder<'_> {
        Encoder(
            identity
                .encoded
                .get_or_init(|| Encoder::encode_allow(identity)),
        )
    }
}

/// Encodes `identity`'s allow now, as its first allow would (a footprint
/// count, `tests/footprint.rs`, wants what a cached identity holds).
pub fn pre_encode(identity: &Identity) {
    Answer::encoder(identity);
}

impl Message for Answer {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        match self {
            Answer::Allow {
                identity,
                token,
                edits,
            } => {
                let token = token.as_ref().map(IdentityToken::header);
                Answer::encoder(identity).encode(token, edits, buf)
            }
            Answer::Message(m) => m.encode_raw(buf),
        }
    }

    fn encoded_len(&self) -> usize {
        match self {
            Answer::Allow {
                identity,
                token,
                edits,
            } => {
                let token = token.as_ref().map(IdentityToken::header);
                Answer::encoder(identity).encoded_len(token, edits)
            }
            Answer::Message(m) => m.encoded_len(),
        }
    }

    /// ward only sends answers; it never decodes one.
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn clear(&mut self) {
        *self = Answer::Message(CheckResponse::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential_kind::CredentialKind;
    use crate::server::grpc::{UNAUTHENTICATED, metadata};
    use envoy_types::ext_authz::v3::pb::{HttpResponse, OkHttpResponse};
    use envoy_types::pb::google::protobuf::Struct;
    use envoy_types::pb::google::rpc;

    fn allow_metadata(identity: &Identity) -> Struct {
        metadata(&[
            ("user_id", identity.user_id()),
            ("auth_method", identity.method.as_str()),
        ])
    }

    fn identity(headers: &[(&str, &str)]) -> Arc<Identity> {
        Arc::new(Identity::from(crate::identity::IdentityParts {
            user_id: "alice".into(),
            method: CredentialKind::Session,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            jti: None,
            session_id: None,
            roles: vec![],
            scopes: vec![],
        }))
    }

    /// The allow as a plain `CheckResponse`: what the bytes must decode to.
    fn expected(
        identity: &Identity,
        token: Option<&IdentityToken>,
        edits: &Edits,
    ) -> CheckResponse {
        CheckResponse {
            status: Some(OK_STATUS),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                headers: identity
                    .headers()
                    .chain(token.map(IdentityToken::header))
                    .chain(edits.set.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .map(|(k, v)| header(k, v))
                    .collect(),
                headers_to_remove: edits.remove.clone(),
                query_parameters_to_remove: edits.remove_query.clone(),
                ..Default::default()
            })),
            dynamic_metadata: Some(allow_metadata(identity)),
        }
    }

    #[test]
    fn pre_encoded_allow_is_the_same_check_response() {
        let long = "v".repeat(300); // a length that needs a two-byte varint
        let cases = [
            (
                vec![("x-user-id", "alice"), ("x-auth-method", "session")],
                vec![],
            ),
            (
                vec![("x-user-id", "alice"), ("x-user-email", long.as_str())],
                vec!["x-user-admin".to_string(), "x_user_id".to_string()],
            ),
            (vec![], vec!["x-auth-forged".to_string()]),
            // Never produced by identity.rs, but encoded as prost would.
            (vec![("x-empty", ""), ("", "v")], vec![]),
        ];
        let with_edits = |remove: Vec<String>| {
            [
                Edits {
                    remove: remove.clone(),
                    ..Edits::default()
                },
                Edits {
                    remove,
                    set: vec![("cookie".into(), "theme=dark".into())],
                    remove_query: vec!["access_token".into()],
                },
            ]
        };
        let token = IdentityToken {
            name: "x-ward-identity".into(),
            signed: Arc::new(crate::identity::Signed {
                token: format!("eyJ.{long}.sig").into(),
                profile: 1,
                key: 1,
                iat: 0,
                exp: 60,
            }),
        };
        for (headers, remove) in cases {
            let id = identity(&headers);
            for (edits, token) in with_edits(remove)
                .into_iter()
                .flat_map(|e| [(e.clone(), None), (e, Some(token.clone()))])
            {
                for _ in 0..2 {
                    // The second round encodes from the identity's kept rendering.
                    let answer = Answer::Allow {
                        identity: id.clone(),
                        token: token.clone(),
                        edits: edits.clone(),
                    };
                    let bytes = answer.encode_to_vec();
                    assert_eq!(bytes.len(), answer.encoded_len());
                    let decoded = CheckResponse::decode(bytes.as_slice()).unwrap();
                    let want = expected(&id, token.as_ref(), &edits);
                    assert_eq!(decoded, want);
                    // Same size as prost's own encoding (map order may differ).
                    assert_eq!(bytes.len(), want.encoded_len());
                }
            }
        }
    }

    #[test]
    fn other_answers_encode_as_their_message() {
        let message = CheckResponse {
            status: Some(rpc::Status {
                code: UNAUTHENTICATED,
                ..Default::default()
            }),
            ..Default::default()
        };
        let answer = Answer::Message(message.clone());
        assert_eq!(answer.encode_to_vec(), message.encode_to_vec());
    }
}
