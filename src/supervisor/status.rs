//! The process entry of the status object, identical for
//! release processes, services and singletons. Field order = key order.

use serde::Serialize;

use super::output::LogLine;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcState {
    Starting,
    Running,
    Stopping,
    Stopped,
    Failed,
}

impl ProcState {
    pub fn as_str(self) -> &'static str {
        match self {
            ProcState::Starting => "starting",
            ProcState::Running => "running",
            ProcState::Stopping => "stopping",
            ProcState::Stopped => "stopped",
            ProcState::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartReason {
    Deploy,
    Crash,
    Manual,
    Memory,
}

impl StartReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StartReason::Deploy => "deploy",
            StartReason::Crash => "crash",
            StartReason::Manual => "manual",
            StartReason::Memory => "memory",
        }
    }
}

/// One member of the last memory sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChildSample {
    pub command: String,
    pub pid: u32,
    #[serde(rename = "rssBytes", skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessStatus {
    pub children: Vec<ChildSample>,
    pub command: String,
    pub cwd: String,
    /// Absent before the first exit and after each (re)start; `Some(None)`
    /// = `null` (exit by signal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<Option<i32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_signal: Option<Option<String>>,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_memory_restart_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_start_reason: Option<StartReason>,
    pub logs: Vec<LogLine>,
    pub memory_restarts: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// `true` for a process taken over from a crashed daemon; else absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adopted: Option<bool>,
    pub restarts: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    pub state: ProcState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::output::Stream;

    #[test]
    fn keys_follow_the_contract_order_and_absent_fields_are_omitted() {
        let s = ProcessStatus {
            children: vec![],
            command: "c".into(),
            cwd: "/".into(),
            exit_code: Some(None),
            exit_signal: Some(Some("SIGTERM".into())),
            id: "web".into(),
            last_memory_restart_at: None,
            last_start_reason: Some(StartReason::Deploy),
            logs: vec![LogLine {
                at: "t".into(),
                line: "l".into(),
                stream: Stream::Stderr,
            }],
            memory_restarts: 0,
            pid: None,
            adopted: None,
            restarts: 2,
            rss_bytes: None,
            started_at: Some("t".into()),
            state: ProcState::Stopped,
            uptime_ms: None,
        };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"children":[],"command":"c","cwd":"/","exitCode":null,"exitSignal":"SIGTERM","id":"web","lastStartReason":"deploy","logs":[{"at":"t","line":"l","stream":"stderr"}],"memoryRestarts":0,"restarts":2,"startedAt":"t","state":"stopped"}"#
        );
    }
}
