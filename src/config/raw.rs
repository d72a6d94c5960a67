//! The raw config value: JSON data in source key order.
//!
//! serde_json's own `Value` sorts object keys; issue order and `env` order
//! must follow the file, as JavaScript objects do, so objects here are
//! ordered vectors (a repeated key keeps its first position and takes the
//! last value, like `JSON.parse`). `NonFinite` carries NaN/±Infinity out of
//! Node, where JSON would silently turn them into `null`.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

#[derive(Debug, Clone, PartialEq)]
pub enum Raw {
    Null,
    Bool(bool),
    Number(f64),
    /// NaN or ±Infinity (only Node-evaluated configs can produce these).
    NonFinite,
    String(String),
    Array(Vec<Raw>),
    Object(Vec<(String, Raw)>),
}

/// Key used by the Node loader to mark NaN/±Infinity.
pub const NON_FINITE_MARKER: &str = "$rollbridgeNonFinite";

impl Raw {
    /// Parses JSON text; errors carry serde_json's line and column.
    pub fn from_json(text: &str) -> Result<Raw, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Member `key` of an object (`None` for non-objects and absent keys).
    pub fn get(&self, key: &str) -> Option<&Raw> {
        match self {
            Raw::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// `config.md`'s "absent": missing, or `null`.
    pub fn member(&self, key: &str) -> Option<&Raw> {
        match self.get(key) {
            None | Some(Raw::Null) => None,
            Some(v) => Some(v),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Raw::String(s) => Some(s),
            _ => None,
        }
    }

    /// Replaces Node's NaN/Infinity markers (`{"$rollbridgeNonFinite": ..}`)
    /// with [`Raw::NonFinite`].
    pub fn decode_markers(self) -> Raw {
        match self {
            Raw::Object(members) => {
                if members.len() == 1 && members[0].0 == NON_FINITE_MARKER {
                    return Raw::NonFinite;
                }
                Raw::Object(
                    members
                        .into_iter()
                        .map(|(k, v)| (k, v.decode_markers()))
                        .collect(),
                )
            }
            Raw::Array(items) => Raw::Array(items.into_iter().map(Raw::decode_markers).collect()),
            other => other,
        }
    }

    /// Short type name used in diagnostics.
    pub fn type_name(&self) -> &'static str {
        match self {
            Raw::Null => "null",
            Raw::Bool(_) => "boolean",
            Raw::Number(_) | Raw::NonFinite => "number",
            Raw::String(_) => "string",
            Raw::Array(_) => "array",
            Raw::Object(_) => "object",
        }
    }
}

impl Raw {
    /// Compact JSON text with keys in their stored order.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    fn write_json(&self, out: &mut String) {
        match self {
            Raw::Null | Raw::NonFinite => out.push_str("null"),
            Raw::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            // Integers print without a fraction, as JavaScript does.
            Raw::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => {
                out.push_str(&(*n as i64).to_string())
            }
            Raw::Number(n) => out.push_str(
                &serde_json::Number::from_f64(*n).map_or("null".into(), |x| x.to_string()),
            ),
            Raw::String(s) => out.push_str(&serde_json::to_string(s).unwrap_or_default()),
            Raw::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_json(out);
                }
                out.push(']');
            }
            Raw::Object(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(k).unwrap_or_default());
                    out.push(':');
                    v.write_json(out);
                }
                out.push('}');
            }
        }
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Raw, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Number(v as f64))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw::Number(v as f64))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
        Ok(if v.is_finite() {
            Raw::Number(v)
        } else {
            Raw::NonFinite
        })
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::String(v))
    }
    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Raw::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut members: Vec<(String, Raw)> = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Raw>()? {
            match members.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => members.push((key, value)),
            }
        }
        Ok(Raw::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_keep_source_order() {
        let raw = Raw::from_json(r#"{"b":1,"a":2,"c":3}"#).unwrap();
        let Raw::Object(m) = raw else { panic!() };
        let keys: Vec<_> = m.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["b", "a", "c"]);
    }

    #[test]
    fn duplicate_key_keeps_first_position_and_last_value() {
        let raw = Raw::from_json(r#"{"a":1,"b":2,"a":3}"#).unwrap();
        assert_eq!(
            raw,
            Raw::Object(vec![
                ("a".into(), Raw::Number(3.0)),
                ("b".into(), Raw::Number(2.0))
            ])
        );
    }

    #[test]
    fn null_member_counts_as_absent() {
        let raw = Raw::from_json(r#"{"a":null}"#).unwrap();
        assert!(raw.get("a").is_some());
        assert!(raw.member("a").is_none());
    }

    #[test]
    fn non_finite_marker_is_decoded() {
        let raw = Raw::from_json(r#"{"x":{"$rollbridgeNonFinite":"NaN"}}"#)
            .unwrap()
            .decode_markers();
        assert_eq!(raw.get("x"), Some(&Raw::NonFinite));
    }

    #[test]
    fn compact_json_keeps_key_order() {
        let text = r#"{"b":1,"a":[true,null,"x\"y"],"c":1.5}"#;
        assert_eq!(Raw::from_json(text).unwrap().to_json(), text);
    }

    #[test]
    fn syntax_error_reports_line_and_column() {
        let err = Raw::from_json("{\n  \"a\": 1,\n}").unwrap_err();
        assert_eq!(err.line(), 3);
        assert!(err.column() > 0);
    }
}
