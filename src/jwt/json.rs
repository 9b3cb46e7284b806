//! Strict JSON for JOSE headers and JWT claims: one parse into a
//! `serde_json` object that refuses a member name repeated at any depth.
//!
//! `serde_json` keeps the last of two members with one name, so
//! `{"sub":"alice","sub":"admin"}` would name `admin`, while another JWT
//! library (or a log pipeline) reading the same signed bytes may see
//! `alice`. RFC 7519 §4 lets a JWT parser reject such a token, and ward
//! does: two readers of one token must never disagree on what it says.
//! Names are compared after unescaping, so `"s\u0075b"` repeats `sub`.
//!
//! The check is built into the one parse (a [`DeserializeSeed`] producing
//! the `Value`), not a second pass over the bytes; `serde_json`'s nesting
//! limit still applies.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::Cell;
use std::fmt;

/// Why bytes are not a strict JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StrictJsonError {
    /// Not JSON, not one object, or trailing bytes after it.
    NotAnObject,
    /// An object, at any depth, names one member twice.
    DuplicateMember,
}

/// Parses `bytes` as one JSON object with no repeated member name at any
/// depth.
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, StrictJsonError> {
    let duplicate = Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = Strict {
        duplicate: &duplicate,
    }
    .deserialize(&mut de)
    .and_then(|value| de.end().map(|()| value));
    match parsed {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(StrictJsonError::NotAnObject),
        Err(_) if duplicate.get() => Err(StrictJsonError::DuplicateMember),
        Err(_) => Err(StrictJsonError::NotAnObject),
    }
}

/// Builds a `Value` like `serde_json`'s own, and flags a repeated name
/// (the error alone could not tell it from a syntax error).
#[derive(Clone, Copy)]
struct Strict<'a> {
    duplicate: &'a Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value without repeated member names")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(name) = access.next_key::<String>()? {
            if map.contains_key(&name) {
                self.duplicate.set(true);
                return Err(de::Error::custom("duplicate member name"));
            }
            let value = access.next_value_seed(self)?;
            map.insert(name, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_like_serde_json_when_names_are_unique() {
        let text = br#"{"sub":"a","n":-1,"u":18446744073709551615,"f":1.5,"e":1e300,
            "b":true,"z":null,"l":[1,"x",{"k":[]}],"o":{"p":{"q":"\u00e9"}}}"#;
        let ours = parse_object(text).unwrap();
        let theirs: Map<String, Value> = serde_json::from_slice(text).unwrap();
        assert_eq!(ours, theirs);
        assert_eq!(parse_object(b" {} ").unwrap(), Map::new());
        // One name in two objects is no repetition.
        let ok = br#"{"a":{"x":1},"b":{"x":2},"c":[{"x":1},{"x":2}]}"#;
        assert_eq!(
            Value::Object(parse_object(ok).unwrap())["c"][1]["x"],
            json!(2)
        );
    }

    #[test]
    fn refuses_a_repeated_name_at_any_depth() {
        let cases: &[&[u8]] = &[
            br#"{"sub":"alice","sub":"admin"}"#,
            br#"{"exp":1,"exp":9999999999}"#,
            br#"{"roles":"user","x":0,"roles":"admin"}"#,
            br#"{"a":{"b":1,"b":1}}"#,
            br#"{"a":[0,[{"c":{"d":null,"d":null}}]]}"#,
            // Equal after unescaping.
            br#"{"sub":"a","s\u0075b":"b"}"#,
            // Same value, still two members.
            br#"{"typ":"JWT","typ":"JWT"}"#,
        ];
        for text in cases {
            assert_eq!(
                parse_object(text),
                Err(StrictJsonError::DuplicateMember),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn refuses_what_is_not_one_object() {
        let cases: &[&[u8]] = &[
            b"",
            b"[]",
            b"\"x\"",
            b"1",
            b"null",
            b"{",
            br#"{"a":1}{"a":1}"#,
            br#"{"a":1} x"#,
            br#"{"a":1,}"#,
            b"\xff",
        ];
        for text in cases {
            assert_eq!(
                parse_object(text),
                Err(StrictJsonError::NotAnObject),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn keeps_serde_json_nesting_limit() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
        assert_eq!(
            parse_object(deep.as_bytes()),
            Err(StrictJsonError::NotAnObject)
        );
    }
}
