//! The generic field rules of the contract, shared by every section.
//!
//! Each rule reads one member of a raw object, records at most one issue,
//! and returns the value to use (the default when the input was bad), so a
//! caller never has to think about the failure path.

use super::super::raw::Raw;
use super::Issue;

/// Collects issues in the order the rules run.
#[derive(Default)]
pub struct Issues {
    pub list: Vec<Issue>,
}

impl Issues {
    pub fn push(&mut self, message: impl Into<String>, fix: impl Into<String>) {
        self.list.push(Issue {
            message: message.into(),
            fix: fix.into(),
        });
    }

    /// Required string: absent and wrong type are both issues.
    pub fn required_string(&mut self, obj: &Raw, key: &str, path: &str, example: &str) -> String {
        match obj.member(key) {
            Some(Raw::String(s)) => s.clone(),
            None => {
                self.push(format!("{path} is required"), string_fix(path, example));
                String::new()
            }
            Some(_) => {
                self.push(
                    format!("{path} must be a string"),
                    string_fix(path, example),
                );
                String::new()
            }
        }
    }

    /// Defaulted string: absent takes the default, a wrong type is an issue.
    pub fn defaulted_string(&mut self, obj: &Raw, key: &str, path: &str, default: &str) -> String {
        match obj.member(key) {
            Some(Raw::String(s)) => s.clone(),
            None => default.to_owned(),
            Some(_) => {
                self.push(
                    format!("{path} must be a string"),
                    string_fix(path, default),
                );
                default.to_owned()
            }
        }
    }

    /// Optional string without a default. A present `null` is reported as
    /// "is required" like the original does, because
    /// `validate` output must match it.
    pub fn optional_string(
        &mut self,
        obj: &Raw,
        key: &str,
        path: &str,
        example: &str,
    ) -> Option<String> {
        match obj.get(key) {
            None => None,
            Some(Raw::String(s)) => Some(s.clone()),
            Some(Raw::Null) => {
                self.push(
                    format!("{path} is required"),
                    format!(
                        "Set {path} to a string, e.g. {key}: {example:?}, or remove the key to leave it unset."
                    ),
                );
                None
            }
            Some(_) => {
                self.push(
                    format!("{path} must be a string"),
                    string_fix(path, example),
                );
                None
            }
        }
    }

    /// Defaulted number: non-numbers, NaN and ±Infinity are issues.
    pub fn number(&mut self, obj: &Raw, key: &str, path: &str, default: f64) -> f64 {
        match obj.member(key) {
            None => default,
            Some(Raw::Number(n)) => *n,
            Some(_) => {
                self.push(
                    format!("{path} must be a number"),
                    format!(
                        "Set {path} to a finite number, e.g. {key}: {}.",
                        fmt_num(default)
                    ),
                );
                default
            }
        }
    }

    /// Number, then the non-negative rule (bad => default).
    pub fn non_negative(&mut self, obj: &Raw, key: &str, path: &str, default: f64) -> f64 {
        let n = self.number(obj, key, path, default);
        if n < 0.0 {
            self.push(
                format!("{path} must be a non-negative number"),
                format!(
                    "Use 0 or a positive number, e.g. {key}: {}.",
                    fmt_num(default)
                ),
            );
            return default;
        }
        n
    }

    /// Number, then the non-negative integer rule (bad => default).
    pub fn non_negative_integer(&mut self, obj: &Raw, key: &str, path: &str, default: f64) -> f64 {
        let n = self.number(obj, key, path, default);
        if n < 0.0 || n.fract() != 0.0 {
            self.push(
                format!("{path} must be a non-negative integer"),
                format!(
                    "Use a whole number of 0 or more, e.g. {key}: {}.",
                    fmt_num(default)
                ),
            );
            return default;
        }
        n
    }

    /// Number, then must be an integer >= 1 (bad => default).
    pub fn positive_integer(
        &mut self,
        obj: &Raw,
        key: &str,
        path: &str,
        default: f64,
        example: &str,
    ) -> f64 {
        let n = self.number(obj, key, path, default);
        if n < 1.0 || n.fract() != 0.0 {
            self.push(
                format!("{path} must be a positive integer"),
                format!("Use a whole number of 1 or more, e.g. {key}: {example}."),
            );
            return default;
        }
        n
    }

    /// Number, then must be > 0 (bad => default).
    pub fn positive_number(&mut self, obj: &Raw, key: &str, path: &str, default: f64) -> f64 {
        let n = self.number(obj, key, path, default);
        if n <= 0.0 {
            self.push(
                format!("{path} must be a positive number"),
                format!("Use a number above 0, e.g. {key}: {}.", fmt_num(default)),
            );
            return default;
        }
        n
    }

    pub fn boolean(&mut self, obj: &Raw, key: &str, path: &str, default: bool) -> bool {
        match obj.member(key) {
            None => default,
            Some(Raw::Bool(b)) => *b,
            Some(_) => {
                self.push(
                    format!("{path} must be a boolean"),
                    format!("Set {path} to true or false, e.g. {key}: {default}."),
                );
                default
            }
        }
    }

    /// Optional object: absent => `None`, wrong type => issue and `None`.
    pub fn optional_object<'a>(&mut self, obj: &'a Raw, key: &str, path: &str) -> Option<&'a Raw> {
        match obj.member(key) {
            None => None,
            Some(v @ Raw::Object(_)) => Some(v),
            Some(_) => {
                self.push(
                    format!("{path} must be an object"),
                    format!("Make {path} a mapping, e.g. {key}: {{}}."),
                );
                None
            }
        }
    }
}

fn string_fix(path: &str, example: &str) -> String {
    let key = path.rsplit('.').next().unwrap_or(path);
    format!("Set {path} to a string, e.g. {key}: {example:?}.")
}

/// Renders a number the way JavaScript would (no trailing `.0`).
pub fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// Milliseconds as stored downstream: negative => 0, fractions round up.
pub fn ms(n: f64) -> u64 {
    if n <= 0.0 {
        0
    } else {
        n.ceil().min(u64::MAX as f64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(json: &str) -> Raw {
        Raw::from_json(json).unwrap()
    }

    #[test]
    fn numeric_string_is_wrong_type() {
        let mut issues = Issues::default();
        let n = issues.number(&obj(r#"{"port":"8182"}"#), "port", "proxy.port", 8182.0);
        assert_eq!(n, 8182.0);
        assert_eq!(issues.list[0].message, "proxy.port must be a number");
    }

    #[test]
    fn non_finite_is_not_a_number() {
        let mut issues = Issues::default();
        let raw = Raw::Object(vec![("n".into(), Raw::NonFinite)]);
        issues.number(&raw, "n", "x.n", 1.0);
        assert_eq!(issues.list[0].message, "x.n must be a number");
    }

    #[test]
    fn null_optional_string_reads_as_required() {
        let mut issues = Issues::default();
        let v = issues.optional_string(&obj(r#"{"cwd":null}"#), "cwd", "processes[0].cwd", "/srv");
        assert_eq!(v, None);
        assert_eq!(issues.list[0].message, "processes[0].cwd is required");
    }

    #[test]
    fn null_defaulted_string_takes_default() {
        let mut issues = Issues::default();
        let v =
            issues.defaulted_string(&obj(r#"{"host":null}"#), "host", "proxy.host", "127.0.0.1");
        assert_eq!(v, "127.0.0.1");
        assert!(issues.list.is_empty());
    }

    #[test]
    fn fractional_is_not_an_integer() {
        let mut issues = Issues::default();
        let v = issues.non_negative_integer(&obj(r#"{"keep":1.5}"#), "keep", "r.keep", 10.0);
        assert_eq!(v, 10.0);
        assert_eq!(
            issues.list[0].message,
            "r.keep must be a non-negative integer"
        );
    }

    #[test]
    fn every_fix_is_non_empty() {
        let mut issues = Issues::default();
        let raw = obj(r#"{"a":1,"b":"x","c":[]}"#);
        issues.required_string(&raw, "a", "a", "x");
        issues.number(&raw, "b", "b", 1.0);
        issues.boolean(&raw, "b", "b", true);
        issues.optional_object(&raw, "b", "b");
        issues.positive_integer(&raw, "a", "a", 1.0, "1");
        assert!(issues.list.iter().all(|i| !i.fix.is_empty()));
        assert_eq!(issues.list.len(), 4);
    }

    #[test]
    fn ms_rounds_up_and_clamps() {
        assert_eq!(ms(-5.0), 0);
        assert_eq!(ms(0.2), 1);
        assert_eq!(ms(1000.0), 1000);
    }
}
