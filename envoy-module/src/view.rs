//! A request's headers as the check reads them, taken from Envoy's own
//! buffers without copying when they are already in ward's form.
//!
//! ward's [`Headers`] wants lowercase names, text, and each name once (a
//! repeated header folded into one value). An HTTP/2 request nearly
//! always arrives that way (HTTP/2 names are lowercase; Envoy lowercases
//! HTTP/1 names), so the check borrows the pairs as Envoy holds them: no
//! string is copied on a cache hit. A request that is not in that form
//! (a repeated name, bytes that are not UTF-8) is folded into owned pairs
//! by [`fold_headers`], as before, so both read alike. A check that has
//! to wait takes owned pairs to the runtime ([`View::into_owned`]).
//!
//! The borrowed pairs point into Envoy's header map: valid until the
//! stream's headers change, which the borrow checker enforces (every
//! change goes through `&mut` [`crate::filter::Host`]).

use ward::request::{Headers, fold_headers};

/// Raw header bytes, name and value, as Envoy hands them over.
pub type RawHeader<'h> = (&'h [u8], &'h [u8]);

/// The request's headers, borrowed or folded.
pub enum View<'h> {
    Borrowed(Vec<(&'h str, &'h str)>),
    Folded(Vec<(String, String)>),
}

impl<'h> View<'h> {
    /// Borrows `raw` if it is in ward's form, else folds a copy.
    pub fn new(raw: &[RawHeader<'h>]) -> View<'h> {
        match borrowed(raw) {
            Some(pairs) => View::Borrowed(pairs),
            None => View::Folded(fold_headers(raw.iter().map(|(k, v)| (text(k), text(v))))),
        }
    }

    pub fn headers(&self) -> Headers<'_> {
        match self {
            View::Borrowed(pairs) => Headers::new(pairs),
            View::Folded(pairs) => Headers::owned(pairs),
        }
    }

    /// Owned pairs (already folded), for a check that outlives Envoy's
    /// buffers.
    pub fn into_owned(self) -> Vec<(String, String)> {
        match self {
            View::Borrowed(pairs) => pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            View::Folded(pairs) => pairs,
        }
    }
}

/// `raw` as text pairs, if every name is lowercase and occurs once and
/// every name and value is UTF-8; `None` if it needs the fold.
fn borrowed<'h>(raw: &[RawHeader<'h>]) -> Option<Vec<(&'h str, &'h str)>> {
    let mut pairs: Vec<(&'h str, &'h str)> = Vec::with_capacity(raw.len());
    for (name, value) in raw {
        let name = lowercase_ascii(name)?;
        // A request's dozen or two names: comparing them in place costs
        // less than hashing them (`fold_headers` does the same).
        if pairs.iter().any(|(seen, _)| *seen == name) {
            return None;
        }
        // A token is most of a request's header bytes: checked a vector
        // at a time, not a byte (simdutf8 accepts exactly what std does).
        pairs.push((name, simdutf8::basic::from_utf8(value).ok()?));
    }
    Some(pairs)
}

/// `name` as text if it is ASCII without an uppercase letter. Every byte
/// is looked at without a branch (names are short; the loop vectorizes).
fn lowercase_ascii(name: &[u8]) -> Option<&str> {
    let odd = name
        .iter()
        .fold(false, |odd, b| odd | b.is_ascii_uppercase() | !b.is_ascii());
    if odd {
        return None;
    }
    std::str::from_utf8(name).ok()
}

/// Header bytes as text: invalid sequences replaced, as the gRPC mode
/// reads them (ward's credential readers refuse U+FFFD like any
/// non-ASCII byte).
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'h>(raw: &'h [(&'h str, &'h str)]) -> View<'h> {
        let raw: Vec<RawHeader<'h>> = raw
            .iter()
            .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
            .collect();
        View::new(&raw)
    }

    #[test]
    fn headers_in_wards_form_are_borrowed() {
        let v = view(&[(":path", "/a"), ("authorization", "Bearer x")]);
        assert!(matches!(v, View::Borrowed(_)));
        assert_eq!(v.headers().get("authorization"), Some("Bearer x"));
    }

    /// A repeated name or an uppercase one is folded as every front end
    /// folds it: the check reads the same request either way.
    #[test]
    fn repeated_or_uppercase_names_are_folded() {
        let v = view(&[("cookie", "a=1"), ("x-a", "1"), ("cookie", "b=2")]);
        assert!(matches!(v, View::Folded(_)));
        assert_eq!(v.headers().get("cookie"), Some("a=1; b=2"));
        let v = view(&[("X-User-Id", "mallory")]);
        assert!(matches!(v, View::Folded(_)));
        assert_eq!(v.headers().get("x-user-id"), Some("mallory"));
        let owned = view(&[("x-a", "1"), ("x-a", "2")]).into_owned();
        assert_eq!(owned, [("x-a".to_string(), "1,2".to_string())]);
    }

    #[test]
    fn bytes_that_are_not_utf8_are_replaced_as_before() {
        let raw: [RawHeader<'_>; 1] = [(b"x-a", b"\xff1")];
        let v = View::new(&raw);
        assert!(matches!(v, View::Folded(_)));
        assert_eq!(v.headers().get("x-a"), Some("\u{fffd}1"));
    }
}
