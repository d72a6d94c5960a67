//! The normalized config: what validation hands to everything downstream.
//!
//! Every default is filled in here, so no other module looks at raw JSON or
//! re-derives a default. Field names follow the config keys.

use std::time::Duration;

/// A validated Rollbridge config with every default filled.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub application: String,
    pub control: ControlConfig,
    pub proxy: ProxyConfig,
    pub release_retention: ReleaseRetention,
    /// `None`: no persistence, no orphan reporting, `recover` refuses to run.
    pub state_path: Option<String>,
    /// `adoptOrphans`: a start re-adopts the living processes of a crashed
    /// daemon instead of refusing (needs `statePath`).
    pub adopt_orphans: bool,
    pub legacy_takeover: Option<LegacyTakeover>,
    pub processes: Vec<ProcessConfig>,
    /// `admin`: probes and metrics on a port of their own (`None`: off).
    pub admin: Option<AdminConfig>,
    /// `autoRollback` (`None`: off).
    pub auto_rollback: Option<AutoRollback>,
}

/// `autoRollback: {windowMs}`: roll back by itself when the newly active
/// release's proxied process fails within the window after the switch.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoRollback {
    pub window_ms: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AdminConfig {
    pub host: String,
    /// 0 = OS-chosen.
    pub port: u16,
}

impl Config {
    /// The single `proxied` process (validation guarantees exactly one).
    pub fn proxied(&self) -> Option<&ProcessConfig> {
        self.processes.iter().find(|p| p.policy == Policy::Proxied)
    }

    pub fn process(&self, id: &str) -> Option<&ProcessConfig> {
        self.processes.iter().find(|p| p.id == id)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ControlConfig {
    pub path: String,
    /// Socket permission bits (0..=0o777).
    pub mode: Option<u32>,
    pub owner: Option<IdOrName>,
    pub group: Option<IdOrName>,
}

/// `control.owner` / `control.group`: resolved against /etc/passwd or
/// /etc/group only when the daemon binds (never by `validate`). A `Name`
/// made of digits (`"1001"`) is an id; it stays a string for status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdOrName {
    Id(u32),
    Name(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProxyConfig {
    pub host: String,
    /// 0 = OS-chosen.
    pub port: u16,
    pub upstream_host: String,
    pub health_path: String,
    pub health_timeout_ms: u64,
    pub drain_timeout_ms: u64,
    pub force_stop_timeout_ms: u64,
    /// Retry window for refused connects to the active release (0 = off).
    pub connect_retry_ms: u64,
    /// Peers whose X-Forwarded-Proto/Host/Port are kept as sent.
    pub trusted_proxies: Vec<String>,
    pub max_header_bytes: usize,
    /// Forward request header fields whose names contain `_`.
    pub underscores_in_headers: bool,
    pub header_timeout_ms: u64,
    pub client_idle_timeout_ms: u64,
    pub upstream_idle_timeout_ms: u64,
    /// Client write progress timeout (0 = off).
    pub client_write_timeout_ms: u64,
    /// Upstream response-head timeout, answered 504 (0 = off).
    pub upstream_response_timeout_ms: u64,
    /// Upstream read-idle timeout for a response body (0 = off).
    pub upstream_read_timeout_ms: u64,
    /// Most open proxy connections; 0 = derived from the descriptor limit.
    pub max_connections: usize,
    /// Most requests held while traffic is paused (beyond: 503 at once).
    pub max_held_requests: usize,
    /// Tunnels' Close 1001 at a drain deadline spread over this (0 = at once).
    pub websocket_close_spread_ms: u64,
    /// Lame duck: how long the proxy keeps serving after shutdown began
    /// (with `/ready` answering 503) before it stops accepting.
    pub shutdown_delay_ms: u64,
    /// Absolute path of the access log (`None`: off).
    pub access_log: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseRetention {
    pub keep: u64,
    /// 0 = off.
    pub max_age_ms: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LegacyTakeover {
    pub screens: Vec<String>,
    pub processes: Vec<LegacyMatcher>,
    pub force_stop_timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LegacyMatcher {
    pub name: String,
    pub includes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    Proxied,
    Companion,
    Singleton,
    Service,
}

impl Policy {
    pub const ALL: [Policy; 4] = [
        Policy::Proxied,
        Policy::Companion,
        Policy::Singleton,
        Policy::Service,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Proxied => "proxied",
            Policy::Companion => "companion",
            Policy::Singleton => "singleton",
            Policy::Service => "service",
        }
    }

    pub fn parse(s: &str) -> Option<Policy> {
        Policy::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeployStrategy {
    Persistent,
    Handoff,
}

impl DeployStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            DeployStrategy::Persistent => "persistent",
            DeployStrategy::Handoff => "handoff",
        }
    }
}

/// An inclusive port range; `from == 0 || to == 0` means "OS-chosen".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub from: u16,
    pub to: u16,
}

impl PortRange {
    pub fn is_ephemeral(&self) -> bool {
        self.from == 0 || self.to == 0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HealthConfig {
    pub path: String,
    pub timeout_ms: u64,
    pub interval_ms: u64,
    pub start_delay_ms: u64,
    /// Live checks of the serving process after the switch.
    pub watch: WatchConfig,
}

/// `health.watchIntervalMs` / `watchTimeoutMs` / `watchFailures`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchConfig {
    /// 0 = off.
    pub interval_ms: u64,
    pub timeout_ms: u64,
    /// Failures in a row that replace the process.
    pub failures: u32,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            interval_ms: 10_000,
            timeout_ms: 2_000,
            failures: 3,
        }
    }
}

/// How long a stop waits before SIGKILL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GracefulStop {
    Ms(u64),
    Indefinite,
}

impl GracefulStop {
    /// `None` = wait forever.
    pub fn duration(self) -> Option<Duration> {
        match self {
            GracefulStop::Ms(ms) => Some(Duration::from_millis(ms)),
            GracefulStop::Indefinite => None,
        }
    }

    /// Budget for quiet/stop hooks: 30 s when indefinite.
    pub fn hook_budget(self) -> Duration {
        self.duration().unwrap_or(Duration::from_secs(30))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RestartConfig {
    /// `None` = unlimited.
    pub max_restarts: Option<u64>,
    /// 0 = whole lifetime.
    pub window_ms: u64,
    /// >= 1.
    pub backoff_factor: f64,
    /// 0 = no cap.
    pub max_delay_ms: u64,
}

impl Default for RestartConfig {
    fn default() -> Self {
        RestartConfig {
            max_restarts: None,
            window_ms: 0,
            backoff_factor: 1.0,
            max_delay_ms: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MemoryConfig {
    pub limit_bytes: u64,
    /// 0 = off.
    pub warn_bytes: u64,
    pub check_interval_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct LifecycleConfig {
    pub quiet_command: Option<String>,
    pub drain_command: Option<String>,
    pub stop_command: Option<String>,
    pub drain_timeout_ms: u64,
}

/// A signal by name and number (Linux numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal {
    pub name: &'static str,
    pub number: i32,
}

impl Signal {
    pub const TERM: Signal = Signal {
        name: "SIGTERM",
        number: libc::SIGTERM,
    };

    /// Looks up `SIGxxx` among the names the contract lists.
    pub fn from_name(name: &str) -> Option<Signal> {
        SIGNALS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(name, number)| Signal { name, number })
    }
}

const SIGNALS: &[(&str, i32)] = &[
    ("SIGHUP", libc::SIGHUP),
    ("SIGINT", libc::SIGINT),
    ("SIGQUIT", libc::SIGQUIT),
    ("SIGILL", libc::SIGILL),
    ("SIGTRAP", libc::SIGTRAP),
    ("SIGABRT", libc::SIGABRT),
    ("SIGIOT", libc::SIGIOT),
    ("SIGBUS", libc::SIGBUS),
    ("SIGFPE", libc::SIGFPE),
    ("SIGKILL", libc::SIGKILL),
    ("SIGUSR1", libc::SIGUSR1),
    ("SIGSEGV", libc::SIGSEGV),
    ("SIGUSR2", libc::SIGUSR2),
    ("SIGPIPE", libc::SIGPIPE),
    ("SIGALRM", libc::SIGALRM),
    ("SIGTERM", libc::SIGTERM),
    ("SIGCHLD", libc::SIGCHLD),
    ("SIGSTKFLT", libc::SIGSTKFLT),
    ("SIGCONT", libc::SIGCONT),
    ("SIGSTOP", libc::SIGSTOP),
    ("SIGTSTP", libc::SIGTSTP),
    ("SIGTTIN", libc::SIGTTIN),
    ("SIGTTOU", libc::SIGTTOU),
    ("SIGURG", libc::SIGURG),
    ("SIGXCPU", libc::SIGXCPU),
    ("SIGXFSZ", libc::SIGXFSZ),
    ("SIGVTALRM", libc::SIGVTALRM),
    ("SIGPROF", libc::SIGPROF),
    ("SIGWINCH", libc::SIGWINCH),
    ("SIGIO", libc::SIGIO),
    ("SIGPOLL", libc::SIGPOLL),
    ("SIGPWR", libc::SIGPWR),
    ("SIGSYS", libc::SIGSYS),
];

/// Name of a signal number, for `exitSignal` in status (`SIGTERM`, ...).
pub fn signal_name(number: i32) -> Option<&'static str> {
    // SIGIOT/SIGPOLL alias SIGABRT/SIGIO; the first listed name wins.
    SIGNALS.iter().find(|(_, n)| *n == number).map(|(n, _)| *n)
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProcessConfig {
    pub id: String,
    pub command: String,
    pub policy: Policy,
    /// `None` (or empty in the file): the release path.
    pub cwd: Option<String>,
    /// In file order; values are templates.
    pub env: Vec<(String, String)>,
    pub port: Option<PortRange>,
    /// `None` when disabled (`false`/`null`).
    pub health: Option<HealthConfig>,
    pub stop_signal: Signal,
    pub graceful_stop: GracefulStop,
    pub restart_delay_ms: u64,
    pub restart: RestartConfig,
    pub memory: Option<MemoryConfig>,
    pub lifecycle: LifecycleConfig,
    pub non_blocking_drain: bool,
    pub replicas: u32,
    pub output_lines: usize,
    pub deploy_strategy: DeployStrategy,
}

impl ProcessConfig {
    /// Instance ids: `id` for one replica, `id#0..id#n-1` otherwise.
    pub fn instance_ids(&self) -> Vec<String> {
        if self.replicas <= 1 {
            vec![self.id.clone()]
        } else {
            (0..self.replicas)
                .map(|i| format!("{}#{i}", self.id))
                .collect()
        }
    }
}
