//! Validated command-line arguments, as handed to every command handler.

/// Every option any command takes; a command only reads its own. Values are
/// kept as typed: each command validates its own numbers (`--limit`,
/// `--daemon-start-timeout-ms`) so it can word the error as `cli.md` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
    /// `-c, --config <path>`.
    pub config: Option<String>,
    pub release_path: Option<String>,
    pub release_id: Option<String>,
    pub revision: Option<String>,
    pub ensure_daemon: bool,
    pub daemon_log_path: Option<String>,
    pub daemon_pid_path: Option<String>,
    pub daemon_runtime_path: Option<String>,
    pub daemon_start_timeout_ms: Option<String>,
    pub boot_attestation: Option<String>,
    pub takeover_owner: bool,
    pub process: Option<String>,
    pub policy: Option<String>,
    pub limit: Option<String>,
    pub json: bool,
    /// `logs`/`events --follow`: keep printing new lines.
    pub follow: bool,
    /// `deploy`/`rollback --progress`: progress on stderr even when it is
    /// not a terminal.
    pub progress: bool,
    pub force: bool,
    /// `--node`: evaluate a `.js` config with node even when it could be
    /// read natively.
    pub node: bool,
    /// `demo-app --host/--port`.
    pub host: Option<String>,
    pub port: Option<String>,
    /// The positional argument: `<shell>` of `completion`, `<on|off>` of
    /// `maintenance`.
    pub positional: Option<String>,
    /// `maintenance on --message/--retry-after`.
    pub message: Option<String>,
    pub retry_after: Option<String>,
    /// `pause --timeout-ms`, `upgrade --timeout-ms`.
    pub timeout_ms: Option<String>,
    /// `upgrade --binary`.
    pub binary: Option<String>,
}
