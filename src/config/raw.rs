//! The raw config value: JSON data in source key order.
//!
//! Parsing and printing are serde_json's, with `preserve_order` (objects
//! keep source order; a repeated key keeps its first position and takes
//! the last value, like `JSON.parse`). What the crate cannot do is the one
//! addition here: `NonFinite` carries NaN/±Infinity out of Node, where JSON
//! would silently turn them into `null`, so validation can name them.

use serde_json::{Map, Number, Value};

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
        serde_json::from_str::<Value>(text).map(Raw::from)
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
        Value::from(self).to_string()
    }
}

impl From<Value> for Raw {
    fn from(v: Value) -> Raw {
        match v {
            Value::Null => Raw::Null,
            Value::Bool(b) => Raw::Bool(b),
            Value::Number(n) => match n.as_f64() {
                Some(f) if f.is_finite() => Raw::Number(f),
                _ => Raw::NonFinite,
            },
            Value::String(s) => Raw::String(s),
            Value::Array(items) => Raw::Array(items.into_iter().map(Raw::from).collect()),
            Value::Object(map) => {
                Raw::Object(map.into_iter().map(|(k, v)| (k, v.into())).collect())
            }
        }
    }
}

impl From<&Raw> for Value {
    fn from(raw: &Raw) -> Value {
        match raw {
            Raw::Null | Raw::NonFinite => Value::Null,
            Raw::Bool(b) => Value::Bool(*b),
            // Integers print without a fraction, as JavaScript does.
            Raw::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => Value::from(*n as i64),
            Raw::Number(n) => Number::from_f64(*n).map_or(Value::Null, Value::Number),
            Raw::String(s) => Value::String(s.clone()),
            Raw::Array(items) => Value::Array(items.iter().map(Value::from).collect()),
            Raw::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::from(v)))
                    .collect::<Map<String, Value>>(),
            ),
        }
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
