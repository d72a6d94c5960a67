//! Pretty-prints JSON text the way `JSON.stringify(v, null, 2)` does,
//! keeping key order exactly as received (serde_json with
//! `preserve_order`).

use serde_json::Value;

/// Pretty-prints JSON text with 2-space indentation; text that is not
/// JSON is returned as it is.
pub fn pretty(json: &str) -> String {
    serde_json::from_str::<Value>(json)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| json.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_values_are_indented_like_json_stringify() {
        let text = r#"{"status":"success","a":[1,{"b":"x,y:{"}],"e":{},"f":[]}"#;
        assert_eq!(
            pretty(text),
            "{\n  \"status\": \"success\",\n  \"a\": [\n    1,\n    {\n      \"b\": \"x,y:{\"\n    }\n  ],\n  \"e\": {},\n  \"f\": []\n}"
        );
    }

    #[test]
    fn escaped_quotes_do_not_end_strings() {
        assert_eq!(pretty(r#"{"a":"q\"{,"}"#), "{\n  \"a\": \"q\\\"{,\"\n}");
    }

    #[test]
    fn matches_serde_pretty_for_sorted_input() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{"a":[1,2,{"c":null}],"b":{"d":true}}"#).unwrap();
        let compact = serde_json::to_string(&v).unwrap();
        assert_eq!(pretty(&compact), serde_json::to_string_pretty(&v).unwrap());
    }
}
