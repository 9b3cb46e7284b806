//! Envoy's `x-forwarded-client-cert` (XFCC): the principal of the
//! client certificate a trusted hop saw.
//!
//! The value is a list of elements separated by `,`, one per hop that
//! added one; an element is `key=value` pairs separated by `;` (`By`,
//! `Hash`, `Cert`, `Chain`, `Subject`, `URI`, `DNS`). A value holding
//! `,`, `;` or `=` is double-quoted, with `\"` for a quote inside. ward
//! reads the **last** element, the one the nearest hop added, and takes
//! its principal as Envoy takes `source.principal`: the first `URI`, else
//! the first `DNS`, else the `Subject`. When the Envoy calling ward
//! appends an element of its own for its peer (`APPEND_FORWARD`) and
//! that peer is the trusted hop, the last element names the hop itself:
//! given the hop's principal, ward then reads the one before it, the last
//! the hop sent. Anything it cannot split cleanly (an unterminated quote,
//! a pair without `=`) is malformed: a trusted hop never writes it, so it
//! is refused, not guessed at.

use super::WorkloadError;
use std::borrow::Cow;

/// The principal of the last element of an XFCC value, or of the one
/// before it when the last names `hop` (the trusted hop itself); none
/// when that element names none.
pub fn principal_of_xfcc<'v>(
    value: &'v str,
    hop: Option<&str>,
) -> Result<Option<Cow<'v, str>>, WorkloadError> {
    let mut elements = split_outside_quotes(value, b',')?;
    let last = elements
        .pop()
        .map(principal_of_element)
        .transpose()?
        .flatten();
    match (last, hop) {
        (Some(p), Some(hop)) if p == hop => {
            let before = elements.pop().map(principal_of_element).transpose()?;
            Ok(before.flatten())
        }
        (last, _) => Ok(last),
    }
}

/// One element's principal: first `URI`, else first `DNS`, else `Subject`.
fn principal_of_element(element: &str) -> Result<Option<Cow<'_, str>>, WorkloadError> {
    let mut found: [Option<Cow<'_, str>>; 3] = [None, None, None];
    for pair in split_outside_quotes(element, b';')? {
        let pair = pair.trim_matches([' ', '\t']);
        if pair.is_empty() {
            continue;
        }
        let (key, raw) = pair
            .split_once('=')
            .ok_or(WorkloadError::Malformed("an XFCC pair without `=`"))?;
        let slot = match key.trim().to_ascii_lowercase().as_str() {
            "uri" => 0,
            "dns" => 1,
            "subject" => 2,
            _ => continue,
        };
        if found[slot].is_none() {
            found[slot] = Some(unquote(raw.trim())?);
        }
    }
    Ok(found.into_iter().flatten().find(|v| !v.is_empty()))
}

/// `s` split at `sep` bytes that are not inside double quotes.
fn split_outside_quotes(s: &str, sep: u8) -> Result<Vec<&str>, WorkloadError> {
    let bytes = s.as_bytes();
    let (mut parts, mut start, mut quoted, mut i) = (Vec::new(), 0, false, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b if b == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if quoted {
        return Err(WorkloadError::Malformed("an unterminated quote in XFCC"));
    }
    parts.push(&s[start..]);
    Ok(parts)
}

/// A value as written: bare, or quoted with `\"` and `\\` escapes.
fn unquote(raw: &str) -> Result<Cow<'_, str>, WorkloadError> {
    let Some(inner) = raw.strip_prefix('"') else {
        if raw.contains('"') {
            return Err(WorkloadError::Malformed("a stray quote in XFCC"));
        }
        return Ok(Cow::Borrowed(raw));
    };
    let inner = inner
        .strip_suffix('"')
        .ok_or(WorkloadError::Malformed("text after a quoted XFCC value"))?;
    if !inner.contains('\\') {
        return Ok(Cow::Borrowed(inner));
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(
                chars
                    .next()
                    .ok_or(WorkloadError::Malformed("a dangling escape in XFCC"))?,
            ),
            '"' => return Err(WorkloadError::Malformed("an unescaped quote in XFCC")),
            c => out.push(c),
        }
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(v: &str) -> Option<String> {
        principal_of_xfcc(v, None).unwrap().map(Cow::into_owned)
    }

    #[test]
    fn the_last_element_names_the_caller() {
        let orders = "spiffe://cluster.local/ns/shop/sa/orders";
        let one = format!("By=spiffe://cluster.local/ns/shop/sa/api;Hash=abc;URI={orders}");
        assert_eq!(principal(&one).as_deref(), Some(orders));
        let two = format!("By=x;URI=spiffe://td/forged,{one}");
        assert_eq!(principal(&two).as_deref(), Some(orders));
        let quoted =
            format!(r#"By=x;Hash=h;Subject="CN=orders,O=shop";URI={orders};DNS=orders.shop"#);
        assert_eq!(principal(&quoted).as_deref(), Some(orders));
        assert_eq!(
            principal("Hash=h;DNS=a.example;DNS=b.example").as_deref(),
            Some("a.example")
        );
        assert_eq!(
            principal(r#"Hash=h;Subject="CN=a \"b\", O=c""#).as_deref(),
            Some(r#"CN=a "b", O=c"#)
        );
        assert_eq!(principal("By=x;Hash=h").as_deref(), None);
        assert_eq!(
            principal("URI=spiffe://a/b;uri=spiffe://c/d").as_deref(),
            Some("spiffe://a/b")
        );
    }

    #[test]
    fn an_element_naming_the_hop_itself_is_passed_over_once() {
        let gw = "spiffe://td/gateway";
        let v = format!("URI=spiffe://td/orders,By=spiffe://td/api;URI={gw}");
        let read = |v: &str, hop| principal_of_xfcc(v, hop).unwrap().map(Cow::into_owned);
        assert_eq!(read(&v, Some(gw)).as_deref(), Some("spiffe://td/orders"));
        assert_eq!(read(&v, None).as_deref(), Some(gw));
        assert_eq!(read(&format!("URI={gw}"), Some(gw)), None);
        let twice = format!("URI={gw},URI={gw}");
        assert_eq!(read(&twice, Some(gw)).as_deref(), Some(gw));
    }

    #[test]
    fn what_a_hop_never_writes_is_malformed() {
        for bad in [
            r#"URI="spiffe://a"#,
            "URI=spiffe://a;nopair",
            r#"URI=spif"fe://a"#,
            r#"URI="spiffe://a"x"#,
            r#"URI="a\"#,
        ] {
            assert!(principal_of_xfcc(bad, None).is_err(), "{bad}");
        }
    }
}
