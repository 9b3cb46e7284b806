//! The part of Envoy's `CheckRequest` ward reads, decoded without copying.
//!
//! envoy-types' `CheckRequest` decodes everything Envoy sends into owned
//! strings and hash maps: every header name and value is allocated and
//! hashed, and so are the addresses, the TLS session, the metadata, none
//! of which ward reads. That decode was the largest single cost of a
//! cache-hit check after HTTP/2 itself.
//!
//! [`CheckView::parse`] walks the message's bytes instead (one buffer, as
//! received) and keeps, for the fields ward reads, where they are: the
//! field numbers of `envoy/service/auth/v3/attribute_context.proto`, with
//! prost's wire-format primitives; every other field is skipped. A
//! protobuf `map<string, string>` is a repeated `{key = 1, value = 2}`
//! message on the wire, so maps are lists of pairs. The decoding rules
//! are protobuf's: a string field seen twice keeps the last value, a
//! message field seen twice is merged, a `oneof` keeps its last member.
//! [`CheckView::attributes`] then borrows the strings, checked to be
//! UTF-8; a request whose strings are not text is malformed (Envoy's own
//! `CheckRequest` would not decode either). Tests compare what this reads
//! with what envoy-types decodes, on generated and on mangled messages.

use crate::request::{Headers, fold_headers};
use prost::bytes::Bytes;
use prost::encoding::{self, DecodeContext, WireType};
use std::net::IpAddr;

/// Where a field's bytes are in the message: `start..end`.
type Span = (usize, usize);

/// The fields of a `CheckRequest` ward reads, as spans of its bytes.
#[derive(Debug, Clone, Default)]
pub struct CheckView {
    buf: Bytes,
    /// `attributes.request.http`, if present.
    http: Option<HttpSpans>,
    /// `attributes.context_extensions`.
    extensions: Vec<(Span, Span)>,
    /// `attributes.source.address.socket_address.address`.
    source: Option<Span>,
    /// `attributes.source.principal`.
    principal: Option<Span>,
}

#[derive(Debug, Clone, Default)]
struct HttpSpans {
    method: Span,
    path: Span,
    host: Span,
    headers: Vec<(Span, Span)>,
    /// `header_map` (`encode_raw_headers: true`): key, value, raw_value.
    header_map: Option<Vec<(Span, Span, Span)>>,
}

/// Why a `CheckRequest`'s bytes are not a protobuf message of its shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("invalid protobuf: {0}")]
    Protobuf(String),
    #[error("field {0} has the wrong wire type")]
    WireType(&'static str),
    #[error("field {0} is longer than its message")]
    Truncated(&'static str),
}

impl From<prost::DecodeError> for WireError {
    fn from(e: prost::DecodeError) -> Self {
        WireError::Protobuf(e.to_string())
    }
}

/// A cursor over one message (or sub-message) of the buffer.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8], (pos, end): Span) -> Self {
        Self { data, pos, end }
    }

    /// The next field's number and wire type, or `None` at the end.
    fn field(&mut self) -> Result<Option<(u32, WireType)>, WireError> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let mut rest = &self.data[self.pos..self.end];
        let key = encoding::decode_key(&mut rest)?;
        self.pos = self.end - rest.len();
        Ok(Some(key))
    }

    /// A length-delimited field's span.
    fn span(&mut self, wire_type: WireType, name: &'static str) -> Result<Span, WireError> {
        if wire_type != WireType::LengthDelimited {
            return Err(WireError::WireType(name));
        }
        let mut rest = &self.data[self.pos..self.end];
        let len = encoding::decode_varint(&mut rest)?;
        let start = self.end - rest.len();
        let len = usize::try_from(len).map_err(|_| WireError::Truncated(name))?;
        if len > self.end - start {
            return Err(WireError::Truncated(name));
        }
        self.pos = start + len;
        Ok((start, start + len))
    }

    /// A sub-message field, to read with its own cursor.
    fn message(
        &mut self,
        wire_type: WireType,
        name: &'static str,
    ) -> Result<Reader<'a>, WireError> {
        let span = self.span(wire_type, name)?;
        Ok(Reader::new(self.data, span))
    }

    fn skip(&mut self, tag: u32, wire_type: WireType) -> Result<(), WireError> {
        let mut rest = &self.data[self.pos..self.end];
        encoding::skip_field(wire_type, tag, &mut rest, DecodeContext::default())?;
        self.pos = self.end - rest.len();
        Ok(())
    }
}

impl CheckView {
    /// Reads a `CheckRequest`'s bytes. Fails only if they are not a
    /// protobuf message of its shape; missing fields are for
    /// [`CheckView::attributes`] to judge.
    pub fn parse(buf: Bytes) -> Result<CheckView, WireError> {
        let mut view = CheckView::default();
        let mut r = Reader::new(&buf, (0, buf.len()));
        while let Some((tag, wt)) = r.field()? {
            match tag {
                1 => view.attribute_context(r.message(wt, "attributes")?)?,
                _ => r.skip(tag, wt)?,
            }
        }
        view.buf = buf;
        Ok(view)
    }

    /// `AttributeContext`: `source` (1), `request` (4), `context_extensions` (10).
    fn attribute_context(&mut self, mut r: Reader<'_>) -> Result<(), WireError> {
        while let Some((tag, wt)) = r.field()? {
            match tag {
                1 => self.peer(r.message(wt, "attributes.source")?)?,
                4 => self.request(r.message(wt, "attributes.request")?)?,
                10 => {
                    let entry = entry(r.message(wt, "attributes.context_extensions")?)?;
                    self.extensions.push(entry);
                }
                _ => r.skip(tag, wt)?,
            }
        }
        Ok(())
    }

    /// `Peer.principal` (4): the peer certificate's principal (downstream
    /// mTLS); `Peer.address` (1) → `Address`: the `socket_address` member
    /// (1) of its `oneof` (a later `pipe` (2) or internal address (3)
    /// replaces it) → `SocketAddress.address` (2).
    fn peer(&mut self, mut r: Reader<'_>) -> Result<(), WireError> {
        while let Some((tag, wt)) = r.field()? {
            if tag == 4 {
                self.principal = Some(r.span(wt, "source.principal")?);
                continue;
            }
            if tag != 1 {
                r.skip(tag, wt)?;
                continue;
            }
            let mut address = r.message(wt, "source.address")?;
            while let Some((tag, wt)) = address.field()? {
                match tag {
                    1 => {
                        let mut sa = address.message(wt, "source.address.socket_address")?;
                        // A oneof member seen again is merged into.
                        let mut ip = self.source.take().unwrap_or_default();
                        while let Some((tag, wt)) = sa.field()? {
                            match tag {
                                2 => ip = sa.span(wt, "socket_address.address")?,
                                _ => sa.skip(tag, wt)?,
                            }
                        }
                        self.source = Some(ip);
                    }
                    2 | 3 => {
                        address.skip(tag, wt)?;
                        self.source = None;
                    }
                    _ => address.skip(tag, wt)?,
                }
            }
        }
        Ok(())
    }

    /// `Request.http` (2).
    fn request(&mut self, mut r: Reader<'_>) -> Result<(), WireError> {
        while let Some((tag, wt)) = r.field()? {
            match tag {
                2 => self.http(r.message(wt, "attributes.request.http")?)?,
                _ => r.skip(tag, wt)?,
            }
        }
        Ok(())
    }

    /// `HttpRequest`: `method` (2), `headers` (3), `path` (4), `host` (5),
    /// `header_map` (13).
    fn http(&mut self, mut r: Reader<'_>) -> Result<(), WireError> {
        let http = self.http.get_or_insert_with(HttpSpans::default);
        while let Some((tag, wt)) = r.field()? {
            match tag {
                2 => http.method = r.span(wt, "http.method")?,
                3 => http.headers.push(entry(r.message(wt, "http.headers")?)?),
                4 => http.path = r.span(wt, "http.path")?,
                5 => http.host = r.span(wt, "http.host")?,
                13 => {
                    let mut map = r.message(wt, "http.header_map")?;
                    let raw = http.header_map.get_or_insert_with(Vec::new);
                    while let Some((tag, wt)) = map.field()? {
                        if tag != 1 {
                            map.skip(tag, wt)?;
                            continue;
                        }
                        let mut h = map.message(wt, "header_map.headers")?;
                        let (mut key, mut value, mut raw_value) = Default::default();
                        while let Some((tag, wt)) = h.field()? {
                            match tag {
                                1 => key = h.span(wt, "header_map.headers.key")?,
                                2 => value = h.span(wt, "header_map.headers.value")?,
                                3 => raw_value = h.span(wt, "header_map.headers.raw_value")?,
                                _ => h.skip(tag, wt)?,
                            }
                        }
                        raw.push((key, value, raw_value));
                    }
                }
                _ => r.skip(tag, wt)?,
            }
        }
        Ok(())
    }

    fn bytes(&self, (start, end): Span) -> &[u8] {
        &self.buf[start..end]
    }

    fn text(&self, span: Span) -> Result<&str, Malformed> {
        std::str::from_utf8(self.bytes(span)).map_err(|_| Malformed::NotText)
    }

    fn pairs(&self, spans: &[(Span, Span)]) -> Result<Vec<(&str, &str)>, Malformed> {
        spans
            .iter()
            .map(|&(k, v)| Ok((self.text(k)?, self.text(v)?)))
            .collect()
    }
}

/// A map entry: `key` (1), `value` (2), each empty if absent.
fn entry(mut r: Reader<'_>) -> Result<(Span, Span), WireError> {
    let (mut key, mut value) = ((0, 0), (0, 0));
    while let Some((tag, wt)) = r.field()? {
        match tag {
            1 => key = r.span(wt, "map key")?,
            2 => value = r.span(wt, "map value")?,
            _ => r.skip(tag, wt)?,
        }
    }
    Ok((key, value))
}

/// The request attributes as text, borrowed from a [`CheckView`].
#[derive(Debug)]
pub struct Attributes<'a> {
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    /// `headers`, each pair borrowed; empty when Envoy sent `header_map`.
    pub pairs: Vec<(&'a str, &'a str)>,
    /// `header_map` (raw headers) made into ward's form: lowercase names,
    /// repeated headers joined with `,`.
    pub raw: Option<Vec<(String, String)>>,
    /// `context_extensions`, each pair borrowed.
    pub extensions: Vec<(&'a str, &'a str)>,
    pub source_ip: Option<IpAddr>,
    /// `source.principal`, when Envoy sent a non-empty one.
    pub principal: Option<&'a str>,
}

/// Why a `CheckRequest` cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// No `attributes.request.http`.
    NoHttpAttributes,
    /// A string ward reads is not UTF-8.
    NotText,
}

impl CheckView {
    /// The attributes ward reads, or why they cannot be read.
    pub fn attributes(&self) -> Result<Attributes<'_>, Malformed> {
        let http = self.http.as_ref().ok_or(Malformed::NoHttpAttributes)?;
        let raw = match &http.header_map {
            Some(map) if http.headers.is_empty() => Some(self.raw_headers(map)),
            _ => None,
        };
        Ok(Attributes {
            method: self.text(http.method)?,
            host: self.text(http.host)?,
            path: self.text(http.path)?,
            pairs: self.pairs(&http.headers)?,
            raw,
            extensions: self.pairs(&self.extensions)?,
            source_ip: self
                .source
                .and_then(|span| std::str::from_utf8(self.bytes(span)).ok())
                .and_then(|ip| ip.parse().ok()),
            principal: match self.principal {
                Some(span) if span.0 != span.1 => Some(self.text(span)?),
                _ => None,
            },
        })
    }

    /// `header_map` as ward's headers: names lowercase, a repeated header
    /// folded into one value. `raw_value` (bytes) is preferred, as Envoy
    /// fills it; a value that is not UTF-8 is read lossily (it cannot
    /// match a credential, and dropping it would hide it from the
    /// forged-header check).
    fn raw_headers(&self, map: &[(Span, Span, Span)]) -> Vec<(String, String)> {
        fold_headers(map.iter().map(|&(key, value, raw_value)| {
            let value = if raw_value.0 == raw_value.1 {
                value
            } else {
                raw_value
            };
            let value = String::from_utf8_lossy(self.bytes(value)).into_owned();
            let name = String::from_utf8_lossy(self.bytes(key)).into_owned();
            (name, value)
        }))
    }
}

impl<'a> Attributes<'a> {
    /// The request headers: `headers`, or the raw `header_map`.
    pub fn headers(&self) -> Headers<'_> {
        match &self.raw {
            Some(raw) => Headers::owned(raw),
            None => Headers::new(&self.pairs),
        }
    }

    /// A `context_extensions` value (the last, if a key repeats).
    pub fn extension(&self, key: &str) -> Option<&'a str> {
        let found = self.extensions.iter().rev().find(|(k, _)| *k == key);
        found.map(|(_, v)| *v)
    }
}

#[cfg(test)]
mod tests;
