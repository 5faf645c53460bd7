//! JSON kept as the text it arrived as: a producer's body read field by field, and a `result`
//! stored as compact text.
//!
//! A `serde_json::Value` tree costs about 17 times the JSON it holds, and a result may be 1 MiB,
//! so a body never becomes one: it is read as a map of field names to borrowed raw values, each
//! field is converted to the one type it may have, and the result is checked by walking it
//! (serde_json checks every string, number and the nesting limit on the way and keeps nothing).
//! The result is then stored as its own text with the whitespace between tokens dropped, so it
//! fits the one line of a `data:` field and is sent as it came, key order and number spelling
//! included.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{Deserialize, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use crate::error::{Error, ErrorKind, Result};

/// A JSON value as compact one-line text (no whitespace between tokens) that serde_json reads
/// back as it would any other JSON.
#[derive(Clone)]
pub struct JsonText(Box<RawValue>);

impl JsonText {
    /// `null`.
    pub fn null() -> JsonText {
        JsonText(RawValue::NULL.to_owned())
    }

    /// Checks `text` and keeps it without the whitespace between its tokens.
    pub fn parse(text: &str) -> Result<JsonText> {
        serde_json::from_str::<Walk>(text).map_err(|_| not_json())?;
        RawValue::from_string(compact(text)).map(JsonText).map_err(|_| not_json())
    }

    /// The compact text of `value`.
    pub fn from_value(value: &serde_json::Value) -> JsonText {
        let text = serde_json::to_string(value).expect("a JSON value always serializes");
        JsonText(RawValue::from_string(text).expect("serde_json writes JSON"))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for JsonText {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for JsonText {}

impl fmt::Debug for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for JsonText {
    /// serde_json writes the text as it is; other formats see a string-holding struct.
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

#[cold]
fn not_json() -> Error {
    Error::new(ErrorKind::InvalidJson, "Field `result` is not valid JSON, or nests deeper than 128 levels.")
}

/// Drops the whitespace between tokens of JSON text that is already known to be valid.
///
/// Outside strings, whitespace is only ever the four ASCII bytes of RFC 8259, so cutting around
/// them keeps the text UTF-8; inside strings nothing is touched (JSON strings hold no raw line
/// breaks, so the result is one line).
fn compact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut start, mut in_string, mut escaped) = (0, false, false);
    for (i, &b) in text.as_bytes().iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            out.push_str(&text[start..i]);
            start = i + 1;
        }
    }
    out.push_str(&text[start..]);
    out
}

/// Walks one JSON value through serde_json's checking parser and keeps nothing of it: strings
/// are decoded (so lone surrogates and bad escapes fail), numbers are read (so out-of-range ones
/// fail), and nesting counts against serde_json's limit of 128, exactly as when reading a `Value`.
struct Walk;

impl<'de> Deserialize<'de> for Walk {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Walk, D::Error> {
        deserializer.deserialize_any(WalkVisitor)
    }
}

struct WalkVisitor;

impl<'de> Visitor<'de> for WalkVisitor {
    type Value = Walk;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> std::result::Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_u64<E>(self, _: u64) -> std::result::Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_f64<E>(self, _: f64) -> std::result::Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_str<E>(self, _: &str) -> std::result::Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_unit<E>(self) -> std::result::Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Walk, A::Error> {
        while seq.next_element::<Walk>()?.is_some() {}
        Ok(Walk)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Walk, A::Error> {
        while map.next_entry::<Walk, Walk>()?.is_some() {}
        Ok(Walk)
    }
}

/// A producer's request body: the fields of one JSON object, each value the text it arrived as.
///
/// Fields come in name order (as they did from a `Value` object), so when two fields are wrong
/// the same one is named every time. A name given twice keeps its last value.
#[derive(Debug, Default)]
pub struct Body<'a> {
    fields: BTreeMap<String, &'a RawValue>,
}

impl<'a> Body<'a> {
    /// Reads a body; an empty (or all-whitespace) body is `{}`. Not JSON: `400 invalid_json`;
    /// JSON but not an object: `422 invalid_field`.
    pub fn parse(bytes: &'a [u8]) -> Result<Body<'a>> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Body::default());
        }
        match serde_json::from_slice(bytes) {
            Ok(fields) => Ok(Body { fields }),
            // JSON of another type, or not JSON at all: the walk (which keeps nothing) tells which.
            Err(e) if e.is_data() => match serde_json::from_slice::<Walk>(bytes) {
                Ok(Walk) => Err(Error::new(ErrorKind::InvalidField, "The body must be a JSON object.")),
                Err(e) => Err(invalid_json(&e)),
            },
            Err(e) => Err(invalid_json(&e)),
        }
    }

    /// The fields, in name order.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &'a RawValue)> + '_ {
        self.fields.iter().map(|(name, value)| (name.as_str(), *value))
    }

    /// Whether the body has a field of this name.
    pub fn has(&self, name: &str) -> bool {
        self.fields.contains_key(name)
    }
}

#[cold]
fn invalid_json(e: &serde_json::Error) -> Error {
    // serde_json's messages quote no input, only positions; still, say it in our words.
    Error::new(
        ErrorKind::InvalidJson,
        format!("The body is not valid JSON (line {}, column {}).", e.line(), e.column()),
    )
}

/// A field's value as the one type it may have, or `None`.
pub(crate) fn typed<T: DeserializeOwned>(value: &RawValue) -> Option<T> {
    serde_json::from_str(value.get()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_drops_whitespace_between_tokens_only() {
        let cases = [
            ("1", "1"),
            (" { \"a b\" :\t[ 1 ,\r\n 2.50 ] } ", r#"{"a b":[1,2.50]}"#),
            (r#"[ "q\" x " , "\\" , "\\\" y" ]"#, r#"["q\" x ","\\","\\\" y"]"#),
            ("{\n  \"é ✓\": \"\u{2028} \"\n}", "{\"é ✓\":\"\u{2028} \"}"),
        ];
        for (text, expected) in cases {
            assert_eq!(compact(text), expected, "{text:?}");
            assert_eq!(JsonText::parse(text).unwrap().as_str(), expected, "{text:?}");
        }
    }

    #[test]
    fn results_are_checked_as_strictly_as_a_value() {
        let deep = format!("{}{}", "[".repeat(129), "]".repeat(129));
        for bad in ["", "1e400", r#""\ud800""#, r#""\x""#, "[1,]", "{} {}", "\"a\u{1}\"", &deep] {
            let err = JsonText::parse(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidJson, "{bad:?}");
            assert!(serde_json::from_str::<serde_json::Value>(bad).is_err(), "a Value takes {bad:?}");
        }
        let nested = format!("{}{}", "[".repeat(127), "]".repeat(127));
        assert_eq!(JsonText::parse(&nested).unwrap().as_str(), nested);
        assert_eq!(JsonText::from_value(&serde_json::json!({"b": [1.5, null]})).as_str(), r#"{"b":[1.5,null]}"#);
        assert_eq!(JsonText::null().as_str(), "null");
    }

    #[test]
    fn bodies_tell_bad_json_from_json_of_another_type() {
        let cases: &[(&[u8], Option<ErrorKind>)] = &[
            (b"", None),
            (b" \r\n", None),
            (br#"{"b":1,"a":[2]}"#, None),
            (b"[1]", Some(ErrorKind::InvalidField)),
            (b"\"text\"", Some(ErrorKind::InvalidField)),
            (b"[1 2]", Some(ErrorKind::InvalidJson)),
            (b"{\"a\":1} x", Some(ErrorKind::InvalidJson)),
            (b"{\"a\":\"\xff\"}", Some(ErrorKind::InvalidJson)),
            (b"\xff\xfe{}", Some(ErrorKind::InvalidJson)),
        ];
        for (bytes, expected) in cases {
            let got = Body::parse(bytes);
            assert_eq!(got.as_ref().err().map(Error::kind), *expected, "{:?}", String::from_utf8_lossy(bytes));
        }
        let body = Body::parse(br#"{"b":1,"a":[ 2 ],"b":3}"#).unwrap();
        let fields: Vec<(&str, &str)> = body.fields().map(|(n, v)| (n, v.get())).collect();
        assert_eq!(fields, [("a", "[ 2 ]"), ("b", "3")], "name order, the last of a name");
    }
}
