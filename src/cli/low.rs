//! Raw arguments: what the command line said, option by option, as strings.
//! [`super::args::Args::from_low`] turns them into typed, validated values.

use super::table::Opt;

/// The strings given for one command's options, before validation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LowArgs {
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
    pub follow: bool,
    pub progress: bool,
    pub force: bool,
    pub node: bool,
    pub host: Option<String>,
    pub port: Option<String>,
    pub message: Option<String>,
    pub retry_after: Option<String>,
    pub timeout_ms: Option<String>,
    pub canary: Option<String>,
    pub binary: Option<String>,
    /// The positional argument, e.g. `<shell>` or `<on|off>`.
    pub positional: Option<String>,
}

impl LowArgs {
    /// Records one option. `value` is `None` for a flag. The last occurrence
    /// of a repeated option wins.
    pub fn set(&mut self, opt: Opt, value: Option<String>) {
        let flag = value.is_none();
        match opt {
            Opt::Config => self.config = value,
            Opt::ReleasePath => self.release_path = value,
            Opt::ReleaseId => self.release_id = value,
            Opt::Revision => self.revision = value,
            Opt::EnsureDaemon => self.ensure_daemon = flag,
            Opt::DaemonLogPath => self.daemon_log_path = value,
            Opt::DaemonPidPath => self.daemon_pid_path = value,
            Opt::DaemonRuntimePath => self.daemon_runtime_path = value,
            Opt::DaemonStartTimeoutMs => self.daemon_start_timeout_ms = value,
            Opt::BootAttestation => self.boot_attestation = value,
            Opt::TakeoverOwner => self.takeover_owner = flag,
            Opt::Process => self.process = value,
            Opt::Policy => self.policy = value,
            Opt::Limit => self.limit = value,
            Opt::Json => self.json = flag,
            Opt::Follow => self.follow = flag,
            Opt::Progress => self.progress = flag,
            Opt::Force => self.force = flag,
            Opt::Node => self.node = flag,
            Opt::Host => self.host = value,
            Opt::Port => self.port = value,
            Opt::Message => self.message = value,
            Opt::RetryAfter => self.retry_after = value,
            Opt::TimeoutMs => self.timeout_ms = value,
            Opt::Canary => self.canary = value,
            Opt::Binary => self.binary = value,
        }
    }
}
