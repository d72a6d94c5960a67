//! Control requests: parsing and validation in the contract's order, and
//! the response line format. Pure functions: no input can panic.

use serde_json::Value;

/// Longest accepted request line (bytes, without the newline).
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Deploy {
        release_path: String,
        release_id: Option<String>,
        revision: Option<String>,
        /// `"progress":true`: stream `{"progress":…}` lines before the reply.
        progress: bool,
        /// `deploy --canary P`: start the release as the canary taking
        /// P % of new clients instead of switching to it.
        canary: Option<u8>,
    },
    Rollback {
        release_id: Option<String>,
        progress: bool,
    },
    Status,
    Events {
        limit: Option<f64>,
    },
    /// `events` with `"follow":true`: the usual reply, then one line per
    /// new event until the client closes.
    FollowEvents {
        limit: Option<f64>,
    },
    /// `logs`: answered with the status object; with `"follow":true`, then
    /// one line per new output line (of `process` only, when given).
    Logs {
        process: Option<String>,
        follow: bool,
    },
    /// Who answers: pid, version, start time and uptime of the daemon.
    DaemonInfo,
    Stop {
        release_id: Option<String>,
    },
    Restart {
        process_id: Option<String>,
        policy: Option<String>,
    },
    Shutdown,
    RetireOwner {
        attestation: String,
    },
    /// Maintenance on (with its page) or off.
    Maintenance {
        enabled: bool,
        message: Option<String>,
        retry_after: Option<u64>,
    },
    /// Hold new requests; `timeout_ms` bounds how long each waits.
    Pause {
        timeout_ms: Option<u64>,
    },
    Resume,
    /// The canary becomes the active release.
    Promote {
        progress: bool,
    },
    /// The canary drains and stops.
    Abort,
    /// Replace the daemon's program in place with `binary` (default: the
    /// file it was started from).
    Upgrade {
        binary: Option<String>,
        timeout_ms: Option<u64>,
        progress: bool,
    },
}

impl Request {
    pub fn name(&self) -> &'static str {
        match self {
            Request::Deploy { .. } => "deploy",
            Request::Rollback { .. } => "rollback",
            Request::Status => "status",
            Request::Events { .. } | Request::FollowEvents { .. } => "events",
            Request::Logs { .. } => "logs",
            Request::DaemonInfo => "daemon-info",
            Request::Stop { .. } => "stop",
            Request::Restart { .. } => "restart",
            Request::Shutdown => "shutdown",
            Request::RetireOwner { .. } => "retire-owner",
            Request::Maintenance { .. } => "maintenance",
            Request::Pause { .. } => "pause",
            Request::Resume => "resume",
            Request::Promote { .. } => "promote",
            Request::Abort => "abort",
            Request::Upgrade { .. } => "upgrade",
        }
    }

    /// After replying to these the daemon closes the connection.
    pub fn closes_connection(&self) -> bool {
        matches!(self, Request::Shutdown | Request::RetireOwner { .. })
    }

    /// Requests whose connection stays open for pushed lines.
    pub fn follows(&self) -> bool {
        matches!(
            self,
            Request::FollowEvents { .. } | Request::Logs { follow: true, .. }
        )
    }
}

/// A successful payload: a compact JSON object whose members are merged
/// after `"status":"success"`.
pub type Reply = Result<String, String>;

/// Parses one request line (without its `\n`).
pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    let value: Value = serde_json::from_slice(line).map_err(json_error)?;
    let obj = match &value {
        Value::Object(map) => map,
        // Arrays pass JavaScript's object check, then have no `command`.
        Value::Array(_) => return Err("Unknown command: undefined".into()),
        _ => return Err("Control command must be an object".into()),
    };
    let command = match obj.get("command") {
        None => return Err("Unknown command: undefined".into()),
        Some(Value::String(s)) => s.as_str(),
        Some(other) => return Err(format!("Unknown command: {}", js_string(other))),
    };
    let optional = |field: &str| -> Result<Option<String>, String> {
        match obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err("Expected string value".into()),
        }
    };
    let flag = |field: &str| obj.get(field).and_then(Value::as_bool) == Some(true);
    let required = |field: &str| -> Result<String, String> {
        match obj.get(field) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            _ => Err(format!("{field} is required")),
        }
    };
    match command {
        "deploy" => {
            let release_id = optional("releaseId")?;
            let revision = optional("revision")?;
            let release_path = required("releasePath")?;
            if !release_path.starts_with('/') {
                // Relative to what? The daemon's cwd is not the caller's.
                return Err(format!(
                    "releasePath must be an absolute path, got {}",
                    serde_json::to_string(&release_path).unwrap_or_default()
                ));
            }
            let canary = whole(obj.get("canary"), "canary", 1, 99)?.map(|p| p as u8);
            Ok(Request::Deploy {
                release_path,
                release_id,
                revision,
                progress: flag("progress"),
                canary,
            })
        }
        "rollback" => Ok(Request::Rollback {
            release_id: optional("releaseId")?,
            progress: flag("progress"),
        }),
        "status" => Ok(Request::Status),
        "events" => {
            let limit = obj.get("limit").and_then(Value::as_f64);
            Ok(if flag("follow") {
                Request::FollowEvents { limit }
            } else {
                Request::Events { limit }
            })
        }
        "logs" => Ok(Request::Logs {
            process: optional("process")?,
            follow: flag("follow"),
        }),
        "daemon-info" => Ok(Request::DaemonInfo),
        "stop" => Ok(Request::Stop {
            release_id: optional("releaseId")?,
        }),
        "restart" => {
            let process_id = optional("processId")?;
            let policy = optional("policy")?;
            Ok(Request::Restart { process_id, policy })
        }
        "shutdown" => Ok(Request::Shutdown),
        "retire-owner" => {
            let attestation = required("attestation")?;
            if !is_attestation(&attestation) {
                return Err(
                    "attestation must use the canonical sha256:<64 lowercase hex> form".into(),
                );
            }
            Ok(Request::RetireOwner { attestation })
        }
        "maintenance" => {
            let enabled = match obj.get("enabled") {
                Some(Value::Bool(b)) => *b,
                _ => return Err("enabled must be true or false".into()),
            };
            let message = optional("message")?;
            if message
                .as_ref()
                .is_some_and(|m| m.len() > MAX_MESSAGE_BYTES)
            {
                return Err(format!("message must be at most {MAX_MESSAGE_BYTES} bytes"));
            }
            let retry_after = whole(obj.get("retryAfter"), "retryAfter", 0, MAX_RETRY_AFTER)?;
            Ok(Request::Maintenance {
                enabled,
                message,
                retry_after,
            })
        }
        "pause" => Ok(Request::Pause {
            timeout_ms: whole(obj.get("timeoutMs"), "timeoutMs", 1, MAX_PAUSE_TIMEOUT_MS)?,
        }),
        "resume" => Ok(Request::Resume),
        "promote" => Ok(Request::Promote {
            progress: flag("progress"),
        }),
        "abort" => Ok(Request::Abort),
        "upgrade" => {
            let binary = optional("binary")?;
            if let Some(b) = binary.as_deref().filter(|b| !b.starts_with('/')) {
                return Err(format!(
                    "binary must be an absolute path, got {}",
                    serde_json::to_string(b).unwrap_or_default()
                ));
            }
            Ok(Request::Upgrade {
                binary,
                timeout_ms: whole(obj.get("timeoutMs"), "timeoutMs", 1, MAX_PAUSE_TIMEOUT_MS)?,
                progress: flag("progress"),
            })
        }
        other => Err(format!("Unknown command: {other}")),
    }
}

/// Longest maintenance message accepted.
pub const MAX_MESSAGE_BYTES: usize = 4096;
/// Largest `retryAfter` (seconds): one week.
pub const MAX_RETRY_AFTER: u64 = 7 * 24 * 3600;
/// Largest pause `timeoutMs`: one day.
pub const MAX_PAUSE_TIMEOUT_MS: u64 = 24 * 3600 * 1000;

/// An optional whole number in `min..=max` (absent or null: `None`).
fn whole(v: Option<&Value>, field: &str, min: u64, max: u64) -> Result<Option<u64>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f >= min as f64 && f <= max as f64 => Ok(Some(f as u64)),
            _ => Err(format!(
                "{field} must be a whole number from {min} to {max}"
            )),
        },
        Some(_) => Err(format!(
            "{field} must be a whole number from {min} to {max}"
        )),
    }
}

/// `sha256:` + 64 lowercase hex digits.
pub fn is_attestation(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn json_error(e: serde_json::Error) -> String {
    if e.is_eof() {
        "Unexpected end of JSON input".into()
    } else {
        format!("Invalid JSON in control request: {e}")
    }
}

/// JavaScript's `String(value)` for the `Unknown command:` message.
fn js_string(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => js_number(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::Null => String::new(),
                other => js_string(other),
            })
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(_) => "[object Object]".into(),
    }
}

/// A number as JavaScript prints it (integers without `.0`).
pub fn js_number(n: f64) -> String {
    if n.is_finite() && n.fract() == 0.0 && n.abs() < 1e21 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// The response line (without newline): success payload merged after
/// `"status":"success"`, or `{"error":...,"status":"error"}`.
pub fn response_line(reply: &Reply) -> String {
    match reply {
        Ok(payload) => {
            let inner = payload
                .trim()
                .strip_prefix('{')
                .and_then(|p| p.strip_suffix('}'))
                .unwrap_or("")
                .trim();
            if inner.is_empty() {
                r#"{"status":"success"}"#.to_string()
            } else {
                format!(r#"{{"status":"success",{inner}}}"#)
            }
        }
        Err(message) => {
            let msg = serde_json::to_string(message).unwrap_or_else(|_| "\"\"".into());
            format!(r#"{{"error":{msg},"status":"error"}}"#)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(line: &str) -> String {
        parse_request(line.as_bytes()).unwrap_err()
    }

    #[test]
    fn invalid_json_mentions_json() {
        assert!(err("{nope").contains("JSON"));
        assert!(err("").contains("JSON"));
        assert!(err("   ").contains("JSON"));
    }

    #[test]
    fn non_objects_are_rejected() {
        for line in ["null", "0", "\"x\"", "true", "1.5"] {
            assert_eq!(err(line), "Control command must be an object", "{line}");
        }
    }

    #[test]
    fn arrays_have_no_command() {
        assert_eq!(err("[]"), "Unknown command: undefined");
        assert_eq!(err(r#"["status"]"#), "Unknown command: undefined");
    }

    #[test]
    fn missing_or_unknown_command_is_named() {
        assert_eq!(err("{}"), "Unknown command: undefined");
        assert_eq!(err(r#"{"command":"fly"}"#), "Unknown command: fly");
        assert_eq!(err(r#"{"command":1}"#), "Unknown command: 1");
        assert_eq!(err(r#"{"command":null}"#), "Unknown command: null");
        assert_eq!(err(r#"{"command":["a","b"]}"#), "Unknown command: a,b");
        assert_eq!(err(r#"{"command":{}}"#), "Unknown command: [object Object]");
    }

    #[test]
    fn optional_field_of_wrong_type_fails_before_required_check() {
        assert_eq!(
            err(r#"{"command":"deploy","releaseId":5}"#),
            "Expected string value"
        );
        assert_eq!(
            err(r#"{"command":"stop","releaseId":true}"#),
            "Expected string value"
        );
    }

    #[test]
    fn required_field_missing_or_empty() {
        assert_eq!(err(r#"{"command":"deploy"}"#), "releasePath is required");
        assert_eq!(
            err(r#"{"command":"deploy","releasePath":""}"#),
            "releasePath is required"
        );
        assert_eq!(
            err(r#"{"command":"deploy","releasePath":3}"#),
            "releasePath is required"
        );
        assert_eq!(
            err(r#"{"command":"retire-owner"}"#),
            "attestation is required"
        );
    }

    #[test]
    fn relative_release_path_is_refused() {
        assert_eq!(
            err(r#"{"command":"deploy","releasePath":"releases/r1"}"#),
            r#"releasePath must be an absolute path, got "releases/r1""#
        );
        assert_eq!(
            err(r#"{"command":"deploy","releasePath":"./a\"b"}"#),
            r#"releasePath must be an absolute path, got "./a\"b""#
        );
        assert!(parse_request(br#"{"command":"deploy","releasePath":"/srv/r1"}"#).is_ok());
    }

    #[test]
    fn deploy_canary_is_a_whole_percent_from_1_to_99() {
        let ok = parse_request(br#"{"command":"deploy","releasePath":"/r","canary":10}"#);
        assert!(matches!(
            ok,
            Ok(Request::Deploy {
                canary: Some(10),
                ..
            })
        ));
        for bad in ["0", "100", "10.5", "\"10\""] {
            let line = format!(r#"{{"command":"deploy","releasePath":"/r","canary":{bad}}}"#);
            assert_eq!(
                err(&line),
                "canary must be a whole number from 1 to 99",
                "{bad}"
            );
        }
        assert_eq!(
            parse_request(br#"{"command":"promote"}"#).unwrap(),
            Request::Promote { progress: false }
        );
        assert_eq!(
            parse_request(br#"{"command":"abort"}"#).unwrap(),
            Request::Abort
        );
    }

    #[test]
    fn null_optional_field_counts_as_absent() {
        assert_eq!(
            parse_request(br#"{"command":"stop","releaseId":null}"#).unwrap(),
            Request::Stop { release_id: None }
        );
    }

    #[test]
    fn events_limit_only_used_when_a_number() {
        assert_eq!(
            parse_request(br#"{"command":"events","limit":"5"}"#).unwrap(),
            Request::Events { limit: None }
        );
        assert_eq!(
            parse_request(br#"{"command":"events","limit":5}"#).unwrap(),
            Request::Events { limit: Some(5.0) }
        );
    }

    #[test]
    fn follow_and_progress_are_opt_in_flags() {
        assert_eq!(
            parse_request(br#"{"command":"events","follow":true}"#).unwrap(),
            Request::FollowEvents { limit: None }
        );
        assert!(!parse_request(br#"{"command":"events"}"#).unwrap().follows());
        let logs = parse_request(br#"{"command":"logs","follow":true,"process":"web"}"#).unwrap();
        assert!(logs.follows());
        assert_eq!(
            logs,
            Request::Logs {
                process: Some("web".into()),
                follow: true
            }
        );
        assert_eq!(
            parse_request(br#"{"command":"rollback","progress":true}"#).unwrap(),
            Request::Rollback {
                release_id: None,
                progress: true
            }
        );
        assert_eq!(
            parse_request(br#"{"command":"rollback","progress":"yes"}"#).unwrap(),
            Request::Rollback {
                release_id: None,
                progress: false
            }
        );
    }

    #[test]
    fn carriage_return_before_newline_is_whitespace() {
        assert_eq!(
            parse_request(b"{\"command\":\"status\"}\r").unwrap(),
            Request::Status
        );
    }

    #[test]
    fn bad_attestation_names_the_format() {
        assert!(
            err(r#"{"command":"retire-owner","attestation":"sha256:ABC"}"#)
                .contains("sha256:<64 lowercase hex>")
        );
    }

    #[test]
    fn response_lines_put_status_first() {
        assert_eq!(
            response_line(&Ok(r#"{"message":"shutdown"}"#.into())),
            r#"{"status":"success","message":"shutdown"}"#
        );
        assert_eq!(response_line(&Ok("{}".into())), r#"{"status":"success"}"#);
        assert_eq!(
            response_line(&Err("boom \"x\"".into())),
            r#"{"error":"boom \"x\"","status":"error"}"#
        );
    }

    #[test]
    fn maintenance_request_is_validated() {
        assert_eq!(
            parse_request(
                br#"{"command":"maintenance","enabled":true,"message":"soon","retryAfter":60}"#
            ),
            Ok(Request::Maintenance {
                enabled: true,
                message: Some("soon".into()),
                retry_after: Some(60),
            })
        );
        assert_eq!(
            parse_request(br#"{"command":"maintenance","enabled":false}"#),
            Ok(Request::Maintenance {
                enabled: false,
                message: None,
                retry_after: None,
            })
        );
        assert_eq!(
            err(r#"{"command":"maintenance"}"#),
            "enabled must be true or false"
        );
        assert_eq!(
            err(r#"{"command":"maintenance","enabled":true,"retryAfter":-1}"#),
            "retryAfter must be a whole number from 0 to 604800"
        );
        assert_eq!(
            err(r#"{"command":"maintenance","enabled":true,"message":7}"#),
            "Expected string value"
        );
    }

    #[test]
    fn upgrade_binary_must_be_absolute() {
        assert_eq!(
            parse_request(br#"{"command":"upgrade","binary":"/usr/bin/rb","timeoutMs":500}"#),
            Ok(Request::Upgrade {
                binary: Some("/usr/bin/rb".into()),
                timeout_ms: Some(500),
                progress: false,
            })
        );
        assert!(err(r#"{"command":"upgrade","binary":"rb"}"#).contains("absolute"));
        assert!(err(r#"{"command":"upgrade","timeoutMs":0}"#).contains("timeoutMs"));
    }

    #[test]
    fn pause_timeout_is_a_positive_whole_number() {
        assert_eq!(
            parse_request(br#"{"command":"pause","timeoutMs":500}"#),
            Ok(Request::Pause {
                timeout_ms: Some(500)
            })
        );
        assert_eq!(
            parse_request(br#"{"command":"pause"}"#),
            Ok(Request::Pause { timeout_ms: None })
        );
        assert_eq!(
            err(r#"{"command":"pause","timeoutMs":0}"#),
            "timeoutMs must be a whole number from 1 to 86400000"
        );
        assert_eq!(
            err(r#"{"command":"pause","timeoutMs":1.5}"#),
            "timeoutMs must be a whole number from 1 to 86400000"
        );
        assert_eq!(
            parse_request(br#"{"command":"resume"}"#),
            Ok(Request::Resume)
        );
    }
}
