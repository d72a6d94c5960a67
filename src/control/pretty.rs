//! Re-indents compact JSON text the way `JSON.stringify(v, null, 2)` does,
//! keeping key order exactly as received (serde_json's `Value` would sort).

/// Pretty-prints compact (or any valid) JSON text with 2-space indentation.
pub fn pretty(json: &str) -> String {
    let bytes: Vec<char> = json.chars().collect();
    let mut out = String::with_capacity(json.len() * 2);
    let mut indent = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                let mut j = i + 1;
                while j < bytes.len() && bytes[j].is_whitespace() {
                    j += 1;
                }
                if j < bytes.len() && bytes[j] == close {
                    out.push(c);
                    out.push(close);
                    i = j + 1;
                    continue;
                }
                indent += 1;
                out.push(c);
                newline(&mut out, indent);
            }
            '}' | ']' => {
                indent = indent.saturating_sub(1);
                newline(&mut out, indent);
                out.push(c);
            }
            ',' => {
                out.push(',');
                newline(&mut out, indent);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
        i += 1;
    }
    out
}

fn newline(out: &mut String, indent: usize) {
    out.push('\n');
    for _ in 0..indent {
        out.push_str("  ");
    }
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
