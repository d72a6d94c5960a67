//! Typed, validated arguments, as handed to every command handler.
//!
//! [`Args::from_low`] turns the raw strings of [`LowArgs`] into typed values
//! once, at parse time, so no command parses its own numbers. Errors carry
//! the exact wording of the contract and are printed alone (no help text),
//! exit 1. One value is checked here but reported later: the contract has
//! `ensure-daemon` load the config before it judges its timeout, so that
//! error waits in a [`Checked`] until the command reaches that step.

use super::low::LowArgs;
use super::table::{Cmd, RESTART_POLICIES, SHELLS};

/// The default of `--daemon-start-timeout-ms`.
pub const DEFAULT_START_TIMEOUT_MS: f64 = 10_000.0;

/// A value validated at parse time whose error the command reports at the
/// step where its contract checks it.
#[derive(Debug, Clone, PartialEq)]
pub enum Checked<T> {
    Valid(T),
    Invalid(String),
}

impl<T: Copy> Checked<T> {
    pub fn get(&self) -> Result<T, String> {
        match self {
            Checked::Valid(v) => Ok(*v),
            Checked::Invalid(e) => Err(e.clone()),
        }
    }
}

/// Every option any command takes; a command only reads its own.
#[derive(Debug, Clone, PartialEq)]
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
    /// `--daemon-start-timeout-ms`: a finite number >= 1, default 10000.
    pub daemon_start_timeout_ms: Checked<f64>,
    pub boot_attestation: Option<String>,
    pub takeover_owner: bool,
    pub process: Option<String>,
    /// `restart --policy`: one of [`RESTART_POLICIES`].
    pub policy: Option<&'static str>,
    /// `events --limit`: at least 1.
    pub limit: Option<u64>,
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
    pub port: Option<u16>,
    /// `maintenance <on|off>`: `Some(true)` for on.
    pub enable: Option<bool>,
    /// `completion <shell>`: one of [`SHELLS`].
    pub shell: Option<&'static str>,
    /// `maintenance on --message/--retry-after`.
    pub message: Option<String>,
    pub retry_after: Option<u64>,
    /// `pause`/`upgrade --timeout-ms`: at least 1.
    pub timeout_ms: Option<u64>,
    /// `deploy --canary <percent>`: 1 to 99.
    pub canary: Option<u8>,
    /// `upgrade --binary`.
    pub binary: Option<String>,
    /// `__handover-probe <version>`: passed through as given; answering an
    /// unreadable version is part of the probe's protocol (exit 2).
    pub handover_version: Option<String>,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            config: None,
            release_path: None,
            release_id: None,
            revision: None,
            ensure_daemon: false,
            daemon_log_path: None,
            daemon_pid_path: None,
            daemon_runtime_path: None,
            daemon_start_timeout_ms: Checked::Valid(DEFAULT_START_TIMEOUT_MS),
            boot_attestation: None,
            takeover_owner: false,
            process: None,
            policy: None,
            limit: None,
            json: false,
            follow: false,
            progress: false,
            force: false,
            node: false,
            host: None,
            port: None,
            enable: None,
            shell: None,
            message: None,
            retry_after: None,
            timeout_ms: None,
            canary: None,
            binary: None,
            handover_version: None,
        }
    }
}

impl Args {
    /// Validates the raw strings of `cmd`; the error is the message to print.
    /// Checks run in the order the contract gives for each command.
    pub fn from_low(cmd: Cmd, low: LowArgs) -> Result<Args, String> {
        let mut args = Args {
            daemon_start_timeout_ms: start_timeout(low.daemon_start_timeout_ms.as_deref()),
            limit: low.limit.as_deref().map(limit).transpose()?,
            policy: low.policy.as_deref().map(policy).transpose()?,
            ..Args::default()
        };
        match cmd {
            Cmd::Maintenance => {
                args.enable = Some(on_off(low.positional.as_deref())?);
                if args.enable == Some(false)
                    && (low.message.is_some() || low.retry_after.is_some())
                {
                    return Err("--message and --retry-after go with maintenance on.".into());
                }
            }
            Cmd::Completion => args.shell = Some(shell(low.positional.as_deref())?),
            Cmd::HandoverProbe => args.handover_version = low.positional.clone(),
            _ => {}
        }
        args.retry_after = low
            .retry_after
            .as_deref()
            .map(|v| whole(v, "--retry-after", 0))
            .transpose()?;
        args.timeout_ms = low
            .timeout_ms
            .as_deref()
            .map(|v| whole(v, "--timeout-ms", 1))
            .transpose()?;
        args.port = low.port.as_deref().map(port).transpose()?;
        args.canary = low.canary.as_deref().map(canary_percent).transpose()?;
        Ok(Args {
            config: low.config,
            release_path: low.release_path,
            release_id: low.release_id,
            revision: low.revision,
            ensure_daemon: low.ensure_daemon,
            daemon_log_path: low.daemon_log_path,
            daemon_pid_path: low.daemon_pid_path,
            daemon_runtime_path: low.daemon_runtime_path,
            boot_attestation: low.boot_attestation,
            takeover_owner: low.takeover_owner,
            process: low.process,
            json: low.json,
            follow: low.follow,
            progress: low.progress,
            force: low.force,
            node: low.node,
            host: low.host,
            message: low.message,
            binary: low.binary,
            ..args
        })
    }
}

fn start_timeout(raw: Option<&str>) -> Checked<f64> {
    let Some(raw) = raw else {
        return Checked::Valid(DEFAULT_START_TIMEOUT_MS);
    };
    match raw.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 1.0 => Checked::Valid(v),
        _ => Checked::Invalid("--daemon-start-timeout-ms must be a positive number".into()),
    }
}

fn limit(raw: &str) -> Result<u64, String> {
    match raw.trim().parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("--limit must be a positive integer.".into()),
    }
}

fn policy(raw: &str) -> Result<&'static str, String> {
    RESTART_POLICIES
        .iter()
        .find(|p| **p == raw)
        .copied()
        .ok_or_else(|| format!("--policy must be one of: {}.", RESTART_POLICIES.join(", ")))
}

fn on_off(raw: Option<&str>) -> Result<bool, String> {
    match raw {
        Some("on") => Ok(true),
        Some("off") => Ok(false),
        other => Err(format!(
            "maintenance takes on or off, got \"{}\".",
            other.unwrap_or_default()
        )),
    }
}

fn shell(raw: Option<&str>) -> Result<&'static str, String> {
    let raw = raw.unwrap_or_default();
    SHELLS.iter().find(|s| **s == raw).copied().ok_or_else(|| {
        format!(
            "Unsupported shell \"{raw}\". Supported shells: {}.",
            SHELLS.join(", ")
        )
    })
}

/// A whole number of at least `min`.
fn whole(v: &str, flag: &str, min: u64) -> Result<u64, String> {
    match v.parse::<u64>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(format!(
            "{flag} must be a whole number of at least {min}, got \"{v}\"."
        )),
    }
}

/// `--canary`: a whole number from 1 to 99.
fn canary_percent(v: &str) -> Result<u8, String> {
    match v.parse::<u8>() {
        Ok(n) if (1..=99).contains(&n) => Ok(n),
        _ => Err(format!(
            "--canary takes the share of new clients for the canary, a whole number from 1 to 99; got \"{v}\"."
        )),
    }
}

fn port(v: &str) -> Result<u16, String> {
    v.parse::<u16>()
        .map_err(|_| "--port must be a port number between 0 and 65535.".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn low(f: impl FnOnce(&mut LowArgs)) -> LowArgs {
        let mut l = LowArgs::default();
        f(&mut l);
        l
    }

    #[test]
    fn limit_must_be_a_positive_integer() {
        for bad in ["0", "-1", "x", "1.5"] {
            let e = Args::from_low(Cmd::Events, low(|l| l.limit = Some(bad.into())));
            assert_eq!(
                e,
                Err("--limit must be a positive integer.".into()),
                "{bad}"
            );
        }
        let a = Args::from_low(Cmd::Events, low(|l| l.limit = Some(" 7 ".into()))).unwrap();
        assert_eq!(a.limit, Some(7));
    }

    #[test]
    fn unknown_policy_is_refused_before_any_config_is_read() {
        let e = Args::from_low(Cmd::Restart, low(|l| l.policy = Some("web".into())));
        assert_eq!(
            e,
            Err("--policy must be one of: proxied, companion, singleton, service.".into())
        );
        let a = Args::from_low(Cmd::Restart, low(|l| l.policy = Some("proxied".into()))).unwrap();
        assert_eq!(a.policy, Some("proxied"));
        let a = Args::from_low(Cmd::Restart, low(|l| l.policy = Some("service".into()))).unwrap();
        assert_eq!(a.policy, Some("service"));
    }

    #[test]
    fn bad_start_timeout_is_kept_for_the_command_to_report() {
        for bad in ["0", "0.5", "abc", "-5", "inf", "NaN", ""] {
            let a = Args::from_low(
                Cmd::EnsureDaemon,
                low(|l| l.daemon_start_timeout_ms = Some(bad.into())),
            )
            .unwrap();
            assert_eq!(
                a.daemon_start_timeout_ms.get(),
                Err("--daemon-start-timeout-ms must be a positive number".into()),
                "{bad}"
            );
        }
        let a = Args::from_low(
            Cmd::Deploy,
            low(|l| l.daemon_start_timeout_ms = Some("2.5".into())),
        )
        .unwrap();
        assert_eq!(a.daemon_start_timeout_ms.get(), Ok(2.5));
        let a = Args::from_low(Cmd::Deploy, LowArgs::default()).unwrap();
        assert_eq!(a.daemon_start_timeout_ms.get(), Ok(10_000.0));
    }

    #[test]
    fn maintenance_checks_on_off_before_its_options() {
        let e = Args::from_low(
            Cmd::Maintenance,
            low(|l| {
                l.positional = Some("maybe".into());
                l.retry_after = Some("x".into());
            }),
        );
        assert_eq!(e, Err("maintenance takes on or off, got \"maybe\".".into()));
        let e = Args::from_low(
            Cmd::Maintenance,
            low(|l| {
                l.positional = Some("off".into());
                l.message = Some("m".into());
            }),
        );
        assert_eq!(
            e,
            Err("--message and --retry-after go with maintenance on.".into())
        );
        let e = Args::from_low(
            Cmd::Maintenance,
            low(|l| {
                l.positional = Some("on".into());
                l.retry_after = Some("-3".into());
            }),
        );
        assert_eq!(
            e,
            Err("--retry-after must be a whole number of at least 0, got \"-3\".".into())
        );
        let a = Args::from_low(
            Cmd::Maintenance,
            low(|l| {
                l.positional = Some("on".into());
                l.retry_after = Some("120".into());
            }),
        )
        .unwrap();
        assert_eq!((a.enable, a.retry_after), (Some(true), Some(120)));
    }

    #[test]
    fn pause_timeout_must_be_at_least_one() {
        let e = Args::from_low(Cmd::Pause, low(|l| l.timeout_ms = Some("0".into())));
        assert_eq!(
            e,
            Err("--timeout-ms must be a whole number of at least 1, got \"0\".".into())
        );
    }

    #[test]
    fn unsupported_shell_is_named() {
        let e = Args::from_low(Cmd::Completion, low(|l| l.positional = Some("tcsh".into())));
        assert_eq!(
            e,
            Err("Unsupported shell \"tcsh\". Supported shells: bash, zsh, fish.".into())
        );
        let a =
            Args::from_low(Cmd::Completion, low(|l| l.positional = Some("fish".into()))).unwrap();
        assert_eq!(a.shell, Some("fish"));
    }

    #[test]
    fn canary_percent_is_a_whole_number_from_1_to_99() {
        assert_eq!(canary_percent("1"), Ok(1));
        assert_eq!(canary_percent("99"), Ok(99));
        for bad in ["0", "100", "-5", "10.5", "ten", ""] {
            let e = canary_percent(bad).unwrap_err();
            assert!(e.contains("1 to 99") && e.contains(bad), "{e}");
        }
        let a = Args::from_low(Cmd::Deploy, low(|l| l.canary = Some("10".into()))).unwrap();
        assert_eq!(a.canary, Some(10));
    }

    #[test]
    fn port_out_of_range_is_refused() {
        let e = Args::from_low(Cmd::DemoApp, low(|l| l.port = Some("70000".into())));
        assert_eq!(
            e,
            Err("--port must be a port number between 0 and 65535.".into())
        );
    }
}
