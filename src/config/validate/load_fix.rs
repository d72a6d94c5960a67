//! The fix that goes with a config load error: a syntax error points at
//! its line and column, a missing file at the path, a throwing config at
//! its own code, a module without a default export at `export default`.

/// The `Fix:` text for a load error `message` of the config at `path`.
pub fn load_error_fix(message: &str, path: &str) -> String {
    let lower = message.to_ascii_lowercase();
    if lower.contains("syntaxerror") || lower.contains("invalid json") {
        return match line_column(message) {
            Some((line, column)) => format!(
                "Fix the syntax in {path} at line {line}, column {column} (look for a missing or \
                 extra comma, bracket or quote there or just before it), then run `rollbridge validate` again."
            ),
            None => format!(
                "Fix the syntax error in {path} (a missing or extra comma, bracket or quote), then \
                 run `rollbridge validate` again; `node --check {path}` shows where it is."
            ),
        };
    }
    if lower.contains("no such file") || lower.contains("enoent") || lower.contains("not found") {
        return format!(
            "Make sure {path} exists (pass --config <path> to use another file) and default-exports \
             a config object."
        );
    }
    if lower.contains("permission denied") || lower.contains("eacces") {
        return format!("Make {path} readable by this user (e.g. chmod a+r {path}).");
    }
    if lower.contains("must default-export") {
        return "Default-export the config: export default {...} (ESM) or module.exports = {...} (CommonJS).".into();
    }
    if lower.contains("timed out") {
        return "Make the config finish on its own: do not wait for servers, timers or input while it loads.".into();
    }
    if lower.contains("starting `") || lower.contains("node exited") {
        return "Install Node.js (the `node` binary must be on PATH, or set ROLLBRIDGE_NODE) to load \
                JavaScript configs, or write the config as plain JSON (rollbridge.json)."
            .into();
    }
    format!(
        "Fix the error raised while evaluating {path} (shown above), so that it default-exports a \
         config object (export default {{...}} or module.exports = {{...}})."
    )
}

/// `line 3, column 2` (also `line 3 column 2`) in a parser message.
fn line_column(message: &str) -> Option<(u64, u64)> {
    let at = message.find("line ")?;
    let rest = &message[at + 5..];
    let line: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let rest = &rest[line.len()..];
    let col_at = rest.find("column ")?;
    if col_at > 3 {
        return None;
    }
    let rest = &rest[col_at + 7..];
    let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((line.parse().ok()?, column.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_error_points_at_line_and_column() {
        let fix = load_error_fix(
            "Failed to load /a/rollbridge.js: SyntaxError at line 2, column 20: unexpected token ','",
            "/a/rollbridge.js",
        );
        assert!(
            fix.starts_with("Fix the syntax in /a/rollbridge.js at line 2, column 20"),
            "{fix}"
        );
        assert!(!fix.contains("exists"), "{fix}");
        let fix = load_error_fix(
            "Invalid JSON in c.json at line 3, column 2: expected `,`",
            "c.json",
        );
        assert!(fix.contains("line 3, column 2"), "{fix}");
    }

    #[test]
    fn syntax_error_without_position_still_says_syntax() {
        let fix = load_error_fix(
            "Failed to load x.js: SyntaxError: Unexpected token ','",
            "x.js",
        );
        assert!(fix.starts_with("Fix the syntax error in x.js"), "{fix}");
    }

    #[test]
    fn missing_file_says_make_sure_it_exists() {
        let fix = load_error_fix(
            "Cannot read config x.js: No such file or directory (os error 2)",
            "x.js",
        );
        assert!(fix.starts_with("Make sure x.js exists"), "{fix}");
    }
}
