//! The one table of commands and options, as plain data. Parsing, `--help`,
//! the shell completion scripts, the man page and the CLI reference are all
//! generated from it, so they cannot drift. Nothing here runs a command: the
//! parser yields a [`Cmd`] and the caller dispatches on it.

/// Every command, as the parser hands it to the dispatcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmd {
    Daemon,
    Deploy,
    Rollback,
    EnsureDaemon,
    Status,
    Stop,
    Restart,
    Shutdown,
    Maintenance,
    Pause,
    Resume,
    Promote,
    Abort,
    Upgrade,
    HandoverProbe,
    Validate,
    Doctor,
    Logs,
    Events,
    PredeployCleanup,
    Recover,
    Completion,
    Man,
    Demo,
    DemoApp,
}

/// Every option, by what it sets. Two commands may spell one option with
/// different help (`--release-path` of `deploy` and of `doctor`); they share
/// the [`Opt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opt {
    Config,
    ReleasePath,
    ReleaseId,
    Revision,
    EnsureDaemon,
    DaemonLogPath,
    DaemonPidPath,
    DaemonRuntimePath,
    DaemonStartTimeoutMs,
    BootAttestation,
    TakeoverOwner,
    Process,
    Policy,
    Limit,
    Json,
    Follow,
    Progress,
    Force,
    Node,
    Host,
    Port,
    Message,
    RetryAfter,
    TimeoutMs,
    Canary,
    Binary,
}

/// A long option. `value` names its argument (`<path>`), `None` for a flag.
pub struct OptSpec {
    pub long: &'static str,
    pub value: Option<&'static str>,
    pub help: &'static str,
    /// What the option sets.
    pub id: Opt,
    pub required: bool,
    /// The values a shell completes for this option (empty: file names).
    pub values: &'static [&'static str],
}

pub struct CommandSpec {
    pub cmd: Cmd,
    pub name: &'static str,
    /// Positional arguments, e.g. `<shell>`.
    pub positional: Option<&'static str>,
    /// The values a shell completes for the positional argument.
    pub positional_values: &'static [&'static str],
    pub summary: &'static str,
    pub about: &'static str,
    /// What the command prints and when it exits non-zero (the CLI
    /// reference and the man page show it).
    pub output: &'static str,
    pub options: &'static [OptSpec],
    /// Internal commands: runnable, but not listed in help or completions.
    pub hidden: bool,
}

/// The policies `restart --policy` accepts.
pub const RESTART_POLICIES: [&str; 4] = ["proxied", "companion", "singleton", "service"];
/// The shells `completion` writes scripts for.
pub const SHELLS: [&str; 3] = ["bash", "zsh", "fish"];

impl CommandSpec {
    pub fn takes_config(&self) -> bool {
        self.options.iter().any(|o| o.long == "config")
    }

    pub fn option(&self, long: &str) -> Option<&OptSpec> {
        self.options.iter().find(|o| o.long == long)
    }
}

impl OptSpec {
    /// The flags as commander prints them: `-c, --config <path>`.
    pub fn flags(&self) -> String {
        let short = if self.long == "config" { "-c, " } else { "" };
        match self.value {
            Some(v) => format!("{short}--{} {v}", self.long),
            None => format!("{short}--{}", self.long),
        }
    }
}

macro_rules! opt {
    ($long:literal, $value:expr, $help:literal, $id:ident) => {
        OptSpec {
            long: $long,
            value: $value,
            help: $help,
            id: Opt::$id,
            required: false,
            values: &[],
        }
    };
}

macro_rules! flag {
    ($long:literal, $help:literal, $id:ident) => {
        OptSpec {
            long: $long,
            value: None,
            help: $help,
            id: Opt::$id,
            required: false,
            values: &[],
        }
    };
}

const CONFIG: OptSpec = opt!(
    "config",
    Some("<path>"),
    "config file (default: ./rollbridge.js, then ./rollbridge.json)",
    Config
);
const RELEASE_PATH: OptSpec = opt!(
    "release-path",
    Some("<path>"),
    "directory of the release to run",
    ReleasePath
);
const RELEASE_ID: OptSpec = opt!(
    "release-id",
    Some("<id>"),
    "release id (default: --revision, else a UTC timestamp)",
    ReleaseId
);
const REVISION: OptSpec = opt!(
    "revision",
    Some("<sha>"),
    "revision deployed (default: the release id)",
    Revision
);
const JSON: OptSpec = flag!("json", "print JSON", Json);
const DAEMON_LOG: OptSpec = opt!(
    "daemon-log-path",
    Some("<path>"),
    "log file of a started daemon (default: /tmp/rollbridge-<application>.log)",
    DaemonLogPath
);
const DAEMON_PID: OptSpec = opt!(
    "daemon-pid-path",
    Some("<path>"),
    "pid file of a started daemon (default: /tmp/rollbridge-<application>.pid)",
    DaemonPidPath
);
const DAEMON_RUNTIME: OptSpec = opt!(
    "daemon-runtime-path",
    Some("<dir>"),
    "directory for the daemon's runtime snapshot",
    DaemonRuntimePath
);
const DAEMON_TIMEOUT: OptSpec = opt!(
    "daemon-start-timeout-ms",
    Some("<ms>"),
    "how long to wait for a started daemon to answer (default: 10000)",
    DaemonStartTimeoutMs
);
/// `--release-path` of `doctor`: checked, not run.
const CHECK_RELEASE_PATH: OptSpec = opt!(
    "release-path",
    Some("<path>"),
    "release directory to check: its templates and working directories",
    ReleasePath
);
/// `--release-id` of `rollback`: which retained release to re-activate.
const ROLLBACK_RELEASE_ID: OptSpec = opt!(
    "release-id",
    Some("<id>"),
    "retained release to re-activate (default: the most recently activated release other than the active one)",
    ReleaseId
);
/// `--release-id` of `stop`: which release to stop.
const STOP_RELEASE_ID: OptSpec = opt!(
    "release-id",
    Some("<id>"),
    "retained release to stop (default: the active release)",
    ReleaseId
);
const FOLLOW: OptSpec = flag!(
    "follow",
    "keep printing new lines as they happen (Ctrl-C to stop)",
    Follow
);
const PROGRESS: OptSpec = flag!(
    "progress",
    "show progress on stderr even when it is not a terminal",
    Progress
);
const PROCESS: OptSpec = opt!(
    "process",
    Some("<id>"),
    "only this process (instance id such as worker#0, or base id)",
    Process
);

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        cmd: Cmd::Daemon,
        name: "daemon",
        positional: None,
        positional_values: &[],
        summary: "Run the daemon in the foreground",
        about: "Run the Rollbridge daemon in the foreground: bind the proxy port and the control socket, supervise processes. Events are printed as JSON lines on stdout.",
        output: "Events as JSON lines on stdout (`{\"at\",\"data\",\"message\"}`), until the daemon stops. Exit 0 after a clean shutdown (signal or `shutdown`), 1 when it cannot start.",
        options: &[
            CONFIG,
            RELEASE_PATH,
            RELEASE_ID,
            REVISION,
            opt!(
                "boot-attestation",
                Some("<digest>"),
                "opaque sha256:<hex> token echoed in status (bootstrap only)",
                BootAttestation
            ),
            flag!(
                "takeover-owner",
                "activate the release, then retire the daemon currently serving",
                TakeoverOwner
            ),
        ],
        hidden: false,
    },
    CommandSpec {
        cmd: Cmd::Deploy,
        name: "deploy",
        positional: None,
        positional_values: &[],
        summary: "Deploy a release with zero downtime",
        about: "Start a release, health-check it, switch traffic to it and drain the previous release. On failure the previous release keeps serving and the command exits non-zero.",
        output: "`{\"status\": \"success\", \"activeReleaseId\": \"<id>\", \"previousReleaseId\": \"<id>\" | null}` on stdout; progress on stderr on a terminal or with --progress. Exit 1 on failure (the previous release keeps serving), the reason on stderr.",
        options: &[
            CONFIG,
            OptSpec {
                required: true,
                ..RELEASE_PATH
            },
            RELEASE_ID,
            REVISION,
            flag!(
                "ensure-daemon",
                "start the daemon first if it is not running",
                EnsureDaemon
            ),
            DAEMON_LOG,
            DAEMON_PID,
            DAEMON_RUNTIME,
            DAEMON_TIMEOUT,
            PROGRESS,
            opt!(
                "canary",
                Some("<percent>"),
                "start the release as a canary taking this share (1-99) of new clients; no switch",
                Canary
            ),
        ],
        hidden: false,
    },
    CommandSpec {
        cmd: Cmd::Rollback,
        name: "rollback",
        positional: None,
        positional_values: &[],
        summary: "Re-activate a retained release",
        about: "Re-activate a retained release (default: the most recently activated one other than the active release) through the normal deploy flow.",
        output: "The same object as `deploy` on stdout. Exit 1 when there is no release to roll back to or the rollback fails (the current release stays active).",
        options: &[CONFIG, ROLLBACK_RELEASE_ID, PROGRESS],
        hidden: false,
    },
    CommandSpec {
        cmd: Cmd::EnsureDaemon,
        name: "ensure-daemon",
        positional: None,
        positional_values: &[],
        summary: "Start the daemon in the background unless it runs",
        about: "Start a detached daemon unless one already answers on the control socket, wait until it is ready and print its status.",
        output: "The daemon's status object on stdout, whether it was running or started. Exit 1 when it cannot be started or does not answer within the timeout.",
        options: &[
            CONFIG,
            DAEMON_LOG,
            DAEMON_PID,
            DAEMON_RUNTIME,
            DAEMON_TIMEOUT,
        ],
        hidden: false,
    },
    CommandSpec {
        cmd: Cmd::Status,
        name: "status",
        positional: None,
        positional_values: &[],
        summary: "Print the daemon status",
        about: "Print the daemon's status: a readable view on a terminal, the status object as JSON otherwise or with --json.",
        output: "The status object: a readable view on a terminal, JSON when stdout is not a terminal or with --json. Exit 1 when no daemon answers.",
        options: &[
            CONFIG,
            flag!(
                "json",
                "print the status object as JSON even on a terminal",
                Json
            ),
        ],
        hidden: false,
    },
    CommandSpec {
        cmd: Cmd::Stop,
        name: "stop",
        positional: None,
        positional_values: &[],
        summary: "Stop the active release (or --release-id)",
        about: "Stop every process of the active release, or of the release given with --release-id. With no active release the proxy answers 503.",
        output: "The status object after the stop on stdout. Exit 1 with `Release not found: <id>` when there is no such release.",
        options: &[CONFIG, STOP_RELEASE_ID],
        hidden: false,
    },
    CommandSpec {
        cmd: Cmd::Restart,
        name: "restart",
        positional: None,
        positional_values: &[],
        summary: "Restart processes (the proxied one without downtime)",
        about: "Restart companions, singletons and services in place (graceful stop, then start). The proxied process (`--process <id>` or `--policy proxied`) is replaced without downtime instead: a new instance on a free port, health-checked, traffic switched, the old one drained, then stopped. A plain `restart` leaves it alone.",
        output: "`{\"status\": \"success\", \"restarted\": [\"<instance id>\", …]}` on stdout once every target runs again. Exit 1 when nothing matches, a process cannot be restarted, or a replacement of the proxied process fails its health check (the old instance keeps serving).",
        options: &[
            CONFIG,
            PROCESS,
            OptSpec {
                values: &RESTART_POLICIES,
                ..opt!(
                    "policy",
                    Some("<policy>"),
                    "only processes of this policy: proxied, companion, singleton or service",
                    Policy
                )
            },
        ],
        hidden: false,
    },
    CommandSpec {
        cmd: Cmd::Shutdown,
        name: "shutdown",
        positional: None,
        positional_values: &[],
        summary: "Stop every process and the daemon",
        about: "Stop every managed process, close the proxy and the control socket, and end the daemon. Replies once everything is stopped.",
        output: "`{\"status\": \"success\", \"message\": \"shutdown\"}` on stdout once everything stopped. Exit 1 when no daemon answers.",
        options: &[CONFIG],
        hidden: false,
    },
    CommandSpec {
        cmd: Cmd::Maintenance,
        name: "maintenance",
        positional: Some("<on|off>"),
        positional_values: &["on", "off"],
        summary: "Answer every new request with a 503 maintenance page, or stop",
        about: "With `on`, the proxy answers every new request (WebSocket upgrades included) itself with 503, the message as an HTML page or text, Retry-After when given; nothing reaches the app. In-flight requests and open tunnels are not touched; deploys keep working. Kept across daemon restarts with statePath. `off` serves traffic again.",
        output: "The daemon's answer (the maintenance state) as JSON on stdout.",
        options: &[
            CONFIG,
            opt!(
                "message",
                Some("<text>"),
                "page text (default: Service temporarily unavailable for maintenance)",
                Message
            ),
            opt!(
                "retry-after",
                Some("<seconds>"),
                "send Retry-After: <seconds>",
                RetryAfter
            ),
        ],
        hidden: false,
    },
    CommandSpec {
        cmd: Cmd::Pause,
        name: "pause",
        positional: None,
        positional_values: &[],
        summary: "Hold new requests until resume",
        about: "Hold every new request (its head is read, nothing is forwarded) until `rollbridge resume`, which forwards them in arrival order to the release active then. A request held longer than --timeout-ms is answered 503; beyond proxy.maxHeldRequests, 503 at once. Requests already forwarded are not affected; deploys work while paused.",
        output: "The daemon's answer (the pause state) as JSON on stdout.",
        options: &[
            CONFIG,
            opt!(
                "timeout-ms",
                Some("<n>"),
                "longest a request is held before a 503 (default: 30000)",
                TimeoutMs
            ),
        ],
        hidden: false,
    },
    CommandSpec {
        cmd: Cmd::Resume,
        name: "resume",
        positional: None,
        positional_values: &[],
        summary: "Forward the requests held by pause",
        about: "End a pause: every held request is forwarded, in arrival order, to the release active now.",
        output: "The daemon's answer (how many held requests were forwarded) as JSON on stdout.",
        options: &[CONFIG],
        hidden: false,
    },
    CommandSpec {
        cmd: Cmd::Promote,
        name: "promote",
        positional: None,
        positional_values: &[],
        summary: "Make the canary the active release",
        about: "Switch traffic to the canary started with `deploy --canary`, exactly as a deploy switches: the previous release drains and stops, singletons move to the new release.",
        output: "The same object as `deploy` on stdout: `activeReleaseId` names the promoted release. Exit 1 when there is no canary.",
        options: &[CONFIG, PROGRESS],
        hidden: false,
    },
    CommandSpec {
        cmd: Cmd::Abort,
        name: "abort",
        positional: None,
        positional_values: &[],
        summary: "Drain and stop the canary",
        about: "Stop routing to the canary started with `deploy --canary`: its requests and tunnels drain (proxy.drainTimeoutMs), then it stops. Its clients go back to the active release, which is unchanged.",
        output: "The status object after the canary stopped, as JSON on stdout. Exit 1 when there is no canary.",
        options: &[CONFIG],
        hidden: false,
    },
    CommandSpec {
        cmd: Cmd::Upgrade,
        name: "upgrade",
        positional: None,
        positional_values: &[],
        summary: "Replace the daemon's program in place, without a gap",
        about: "Replace the running daemon's program with the binary at --binary (default: the path the daemon was started from, as that file is now), keeping its pid. The proxy listener stays open, connections and WebSocket tunnels are carried over, managed processes keep running and stay supervised, and status, events, maintenance and pause survive. The new binary is tried first; if it is missing, not executable, crashes or refuses the handover, the command fails and the old program serves on.",
        output: "`{\"status\": \"success\", \"message\": \"upgraded\", \"previousVersion\": \"…\", \"version\": \"…\", \"pid\": N}` on stdout (the pid is unchanged); progress on stderr on a terminal or with --progress. Exit 1 naming the cause when the new binary is missing, not executable, fails its probe or does not come up in time (the old program keeps serving), or while a deploy, rollback, stop or restart runs.",
        options: &[
            CONFIG,
            opt!(
                "binary",
                Some("<path>"),
                "the new binary (default: the file the daemon was started from)",
                Binary
            ),
            opt!(
                "timeout-ms",
                Some("<n>"),
                "longest the new binary may take to answer (default: 10000)",
                TimeoutMs
            ),
            PROGRESS,
        ],
        hidden: false,
    },
    CommandSpec {
        cmd: Cmd::HandoverProbe,
        name: "__handover-probe",
        positional: Some("<version>"),
        positional_values: &[],
        summary: "Answer an upgrade's probe",
        about: "Internal: prints this binary's version and the handover formats it reads.",
        output: "`{\"version\", \"handoverVersions\"}` on stdout, exit 0 when this binary reads that handover format; exit 2 with the reason when not.",
        options: &[CONFIG],
        hidden: true,
    },
    CommandSpec {
        cmd: Cmd::Validate,
        name: "validate",
        positional: None,
        positional_values: &[],
        summary: "Check the config file without a daemon",
        about: "Load and validate the config file and print every issue found, each with a suggested fix. Never contacts a daemon.",
        output: "`<path> is valid: <n> processes, proxy on <host>:<port>.` on stdout, or the numbered issues with a fix each on stderr (exit 1); with --json one object `{config, issues, path, valid}` on stdout.",
        options: &[
            CONFIG,
            JSON,
            flag!(
                "node",
                "evaluate a JavaScript config with node even if it is plain data",
                Node
            ),
        ],
        hidden: false,
    },
    CommandSpec {
        cmd: Cmd::Doctor,
        name: "doctor",
        positional: None,
        positional_values: &[],
        summary: "Check the config and this host before a deploy",
        about: "Check the config, the control socket, the proxy port, state paths and (with --release-path) the release's templates and working directories.",
        output: "One `✓ <check>: <detail>` or `✗ <check>: <detail>` line per check, then `All checks passed.`; with --json one object. Exit 1 when a check failed.",
        options: &[CONFIG, CHECK_RELEASE_PATH, RELEASE_ID, REVISION, JSON],
        hidden: false,
    },
    CommandSpec {
        cmd: Cmd::Logs,
        name: "logs",
        positional: None,
        positional_values: &[],
        summary: "Print recent output of managed processes",
        about: "Print the recent stdout/stderr lines the daemon keeps for each managed process.",
        output: "Per process a section of `<at> [<stream>] <line>` lines; with --json one object per process; with --follow new lines as they come. Exit 0 also when nothing matches.",
        options: &[CONFIG, PROCESS, JSON, FOLLOW],
        hidden: false,
    },
    CommandSpec {
        cmd: Cmd::Events,
        name: "events",
        positional: None,
        positional_values: &[],
        summary: "Print the daemon's recent events",
        about: "Print the daemon's recent events (deploys, switches, crashes, restarts), oldest first.",
        output: "One line per event, `<at>  <message> <data>`, oldest first (`No events recorded yet.` when none); with --json an array of `{at, data, message}`; with --follow new events as they come.",
        options: &[
            CONFIG,
            opt!(
                "limit",
                Some("<count>"),
                "only the newest <count> events",
                Limit
            ),
            JSON,
            FOLLOW,
        ],
        hidden: false,
    },
    CommandSpec {
        cmd: Cmd::PredeployCleanup,
        name: "predeploy-cleanup",
        positional: None,
        positional_values: &[],
        summary: "Prepare a host migrating from another supervisor",
        about: "Before the first deploy after a migration: stop a stale daemon, recover orphans and stop legacy processes matched by legacyTakeover.",
        output: "Three lines: whether a daemon was stopped, how many orphans were recovered, how many legacy processes were stopped. Exit 1 when something could not be stopped.",
        options: &[
            CONFIG,
            opt!(
                "release-path",
                Some("<path>"),
                "directory of the release about to be deployed; a daemon with an active release is kept unless this release bundles a different Rollbridge version",
                ReleasePath
            ),
        ],
        hidden: false,
    },
    CommandSpec {
        cmd: Cmd::Recover,
        name: "recover",
        positional: None,
        positional_values: &[],
        summary: "List or stop processes left by a crashed daemon",
        about: "List processes recorded in statePath that outlived a crashed daemon; with --force, stop them.",
        output: "`No orphaned processes found.`, or the orphans found (dry run, exit 0), or the orphans stopped (--force); with adoptOrphans also what a start would adopt or drop; with --json one object. Exit 1 when some could not be stopped.",
        options: &[
            CONFIG,
            flag!("force", "stop the orphaned processes", Force),
            JSON,
        ],
        hidden: false,
    },
    CommandSpec {
        cmd: Cmd::Completion,
        name: "completion",
        positional: Some("<shell>"),
        positional_values: &SHELLS,
        summary: "Print a shell completion script (bash, zsh, fish)",
        about: "Print a completion script for bash, zsh or fish. Enable it with e.g. `source <(rollbridge completion bash)`.",
        output: "The completion script on stdout. Exit 1 for an unsupported shell.",
        options: &[],
        hidden: false,
    },
    CommandSpec {
        cmd: Cmd::Man,
        name: "man",
        positional: None,
        positional_values: &[],
        summary: "Print the manual page (roff)",
        about: "Print the manual page rollbridge.1 in roff format, generated from the same table as this help. Install it with e.g. `rollbridge man > /usr/local/share/man/man1/rollbridge.1`.",
        output: "The manual page in roff on stdout.",
        options: &[],
        hidden: false,
    },
    CommandSpec {
        cmd: Cmd::Demo,
        name: "demo",
        positional: None,
        positional_values: &[],
        summary: "Run a real zero-downtime deploy on built-in defaults",
        about: "Start a daemon on free local ports with the built-in example app, deploy release one, then release two while clients send requests through the proxy, and report requests, failures, the switch and the drain. Needs no config.",
        output: "What happened as it happens, then requests sent, failed requests, the switch and the drain. Exit 1 when a request failed or the deploy did not complete.",
        options: &[],
        hidden: false,
    },
    CommandSpec {
        cmd: Cmd::DemoApp,
        name: "demo-app",
        positional: None,
        positional_values: &[],
        summary: "Serve the built-in example web app",
        about: "Serve the tiny example HTTP app that `rollbridge demo` deploys: /ping answers pong, every other path names the release (ROLLBRIDGE_RELEASE_ID).",
        output: "Serves until stopped. Exit 1 when it cannot listen.",
        options: &[
            OptSpec {
                required: true,
                ..opt!("port", Some("<port>"), "port to listen on", Port)
            },
            opt!(
                "host",
                Some("<host>"),
                "address to listen on (default: 127.0.0.1)",
                Host
            ),
        ],
        hidden: true,
    },
];

pub fn command(name: &str) -> Option<&'static CommandSpec> {
    COMMANDS.iter().find(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_in_contract_order() {
        let names: Vec<_> = COMMANDS.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "daemon",
                "deploy",
                "rollback",
                "ensure-daemon",
                "status",
                "stop",
                "restart",
                "shutdown",
                "maintenance",
                "pause",
                "resume",
                "promote",
                "abort",
                "upgrade",
                "__handover-probe",
                "validate",
                "doctor",
                "logs",
                "events",
                "predeploy-cleanup",
                "recover",
                "completion",
                "man",
                "demo",
                "demo-app"
            ]
        );
    }

    #[test]
    fn every_command_but_completion_takes_config_first() {
        for c in COMMANDS {
            if matches!(c.name, "completion" | "man" | "demo" | "demo-app") {
                assert!(!c.takes_config());
            } else {
                assert_eq!(c.options[0].long, "config", "{}", c.name);
            }
        }
    }

    #[test]
    fn only_deploy_requires_release_path() {
        for c in COMMANDS {
            let required: Vec<_> = c
                .options
                .iter()
                .filter(|o| o.required)
                .map(|o| o.long)
                .collect();
            if c.name == "deploy" {
                assert_eq!(required, ["release-path"]);
            } else if c.name == "demo-app" {
                assert_eq!(required, ["port"]);
            } else {
                assert!(required.is_empty(), "{}", c.name);
            }
        }
    }
}
