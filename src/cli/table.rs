//! The one table of commands and options. Parsing, `--help` and the shell
//! completion scripts are all generated from it, so they cannot drift.

use super::Args;
use crate::commands;

/// A long option. `value` names its argument (`<path>`), `None` for a flag.
pub struct OptSpec {
    pub long: &'static str,
    pub value: Option<&'static str>,
    pub help: &'static str,
    /// Stores a parsed value (or `"true"` for a flag) into [`Args`].
    pub set: fn(&mut Args, String),
    pub required: bool,
    /// The values a shell completes for this option (empty: file names).
    pub values: &'static [&'static str],
}

pub struct CommandSpec {
    pub name: &'static str,
    /// Positional arguments, e.g. `<shell>`.
    pub positional: Option<&'static str>,
    pub summary: &'static str,
    pub about: &'static str,
    pub options: &'static [OptSpec],
    pub run: fn(&Args) -> i32,
    /// Internal commands: runnable, but not listed in help or completions.
    pub hidden: bool,
}

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
    ($long:literal, $value:expr, $help:literal, $field:ident) => {
        OptSpec {
            long: $long,
            value: $value,
            help: $help,
            set: |a, v| a.$field = Some(v),
            required: false,
            values: &[],
        }
    };
}

macro_rules! flag {
    ($long:literal, $help:literal, $field:ident) => {
        OptSpec {
            long: $long,
            value: None,
            help: $help,
            set: |a, _| a.$field = true,
            required: false,
            values: &[],
        }
    };
}

const CONFIG: OptSpec = opt!(
    "config",
    Some("<path>"),
    "config file (default: ./rollbridge.js, then ./rollbridge.json)",
    config
);
const RELEASE_PATH: OptSpec = opt!(
    "release-path",
    Some("<path>"),
    "directory of the release to run",
    release_path
);
const RELEASE_ID: OptSpec = opt!(
    "release-id",
    Some("<id>"),
    "release id (default: --revision, else a UTC timestamp)",
    release_id
);
const REVISION: OptSpec = opt!(
    "revision",
    Some("<sha>"),
    "revision deployed (default: the release id)",
    revision
);
const JSON: OptSpec = flag!("json", "print JSON", json);
const DAEMON_LOG: OptSpec = opt!(
    "daemon-log-path",
    Some("<path>"),
    "log file of a started daemon (default: /tmp/rollbridge-<application>.log)",
    daemon_log_path
);
const DAEMON_PID: OptSpec = opt!(
    "daemon-pid-path",
    Some("<path>"),
    "pid file of a started daemon (default: /tmp/rollbridge-<application>.pid)",
    daemon_pid_path
);
const DAEMON_RUNTIME: OptSpec = opt!(
    "daemon-runtime-path",
    Some("<dir>"),
    "directory for the daemon's runtime snapshot",
    daemon_runtime_path
);
const DAEMON_TIMEOUT: OptSpec = opt!(
    "daemon-start-timeout-ms",
    Some("<ms>"),
    "how long to wait for a started daemon to answer (default: 10000)",
    daemon_start_timeout_ms
);
/// `--release-path` of `doctor`: checked, not run.
const CHECK_RELEASE_PATH: OptSpec = opt!(
    "release-path",
    Some("<path>"),
    "release directory to check: its templates and working directories",
    release_path
);
/// `--release-id` of `rollback`: which retained release to re-activate.
const ROLLBACK_RELEASE_ID: OptSpec = opt!(
    "release-id",
    Some("<id>"),
    "retained release to re-activate (default: the most recently activated release other than the active one)",
    release_id
);
/// `--release-id` of `stop`: which release to stop.
const STOP_RELEASE_ID: OptSpec = opt!(
    "release-id",
    Some("<id>"),
    "retained release to stop (default: the active release)",
    release_id
);
const FOLLOW: OptSpec = flag!(
    "follow",
    "keep printing new lines as they happen (Ctrl-C to stop)",
    follow
);
const PROGRESS: OptSpec = flag!(
    "progress",
    "show progress on stderr even when it is not a terminal",
    progress
);
const PROCESS: OptSpec = opt!(
    "process",
    Some("<id>"),
    "only this process (instance id such as worker#0, or base id)",
    process
);

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "daemon",
        positional: None,
        summary: "Run the daemon in the foreground",
        about: "Run the Rollbridge daemon in the foreground: bind the proxy port and the control socket, supervise processes. Events are printed as JSON lines on stdout.",
        options: &[
            CONFIG,
            RELEASE_PATH,
            RELEASE_ID,
            REVISION,
            opt!(
                "boot-attestation",
                Some("<digest>"),
                "opaque sha256:<hex> token echoed in status (bootstrap only)",
                boot_attestation
            ),
            flag!(
                "takeover-owner",
                "activate the release, then retire the daemon currently serving",
                takeover_owner
            ),
        ],
        run: commands::daemon::run,
        hidden: false,
    },
    CommandSpec {
        name: "deploy",
        positional: None,
        summary: "Deploy a release with zero downtime",
        about: "Start a release, health-check it, switch traffic to it and drain the previous release. On failure the previous release keeps serving and the command exits non-zero.",
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
                ensure_daemon
            ),
            DAEMON_LOG,
            DAEMON_PID,
            DAEMON_RUNTIME,
            DAEMON_TIMEOUT,
            PROGRESS,
        ],
        run: commands::deploy::run,
        hidden: false,
    },
    CommandSpec {
        name: "rollback",
        positional: None,
        summary: "Re-activate a retained release",
        about: "Re-activate a retained release (default: the most recently activated one other than the active release) through the normal deploy flow.",
        options: &[CONFIG, ROLLBACK_RELEASE_ID, PROGRESS],
        run: commands::deploy::rollback,
        hidden: false,
    },
    CommandSpec {
        name: "ensure-daemon",
        positional: None,
        summary: "Start the daemon in the background unless it runs",
        about: "Start a detached daemon unless one already answers on the control socket, wait until it is ready and print its status.",
        options: &[
            CONFIG,
            DAEMON_LOG,
            DAEMON_PID,
            DAEMON_RUNTIME,
            DAEMON_TIMEOUT,
        ],
        run: commands::ensure_daemon::run,
        hidden: false,
    },
    CommandSpec {
        name: "status",
        positional: None,
        summary: "Print the daemon status",
        about: "Print the daemon's status: a readable view on a terminal, the status object as JSON otherwise or with --json.",
        options: &[
            CONFIG,
            flag!(
                "json",
                "print the status object as JSON even on a terminal",
                json
            ),
        ],
        run: commands::status::run,
        hidden: false,
    },
    CommandSpec {
        name: "stop",
        positional: None,
        summary: "Stop the active release (or --release-id)",
        about: "Stop every process of the active release, or of the release given with --release-id. With no active release the proxy answers 503.",
        options: &[CONFIG, STOP_RELEASE_ID],
        run: commands::deploy::stop,
        hidden: false,
    },
    CommandSpec {
        name: "restart",
        positional: None,
        summary: "Restart non-proxied processes in place",
        about: "Restart companions, singletons and services in place (graceful stop, then start). The proxied process is replaced with `rollbridge deploy` instead.",
        options: &[
            CONFIG,
            PROCESS,
            OptSpec {
                values: &commands::restart::POLICIES,
                ..opt!(
                    "policy",
                    Some("<policy>"),
                    "only processes of this policy: companion, singleton or service",
                    policy
                )
            },
        ],
        run: commands::restart::run,
        hidden: false,
    },
    CommandSpec {
        name: "shutdown",
        positional: None,
        summary: "Stop every process and the daemon",
        about: "Stop every managed process, close the proxy and the control socket, and end the daemon. Replies once everything is stopped.",
        options: &[CONFIG],
        run: commands::shutdown::run,
        hidden: false,
    },
    CommandSpec {
        name: "maintenance",
        positional: Some("<on|off>"),
        summary: "Answer every new request with a 503 maintenance page, or stop",
        about: "With `on`, the proxy answers every new request (WebSocket upgrades included) itself with 503, the message as an HTML page or text, Retry-After when given; nothing reaches the app. In-flight requests and open tunnels are not touched; deploys keep working. Kept across daemon restarts with statePath. `off` serves traffic again.",
        options: &[
            CONFIG,
            opt!(
                "message",
                Some("<text>"),
                "page text (default: Service temporarily unavailable for maintenance)",
                message
            ),
            opt!(
                "retry-after",
                Some("<seconds>"),
                "send Retry-After: <seconds>",
                retry_after
            ),
        ],
        run: commands::traffic::maintenance,
        hidden: false,
    },
    CommandSpec {
        name: "pause",
        positional: None,
        summary: "Hold new requests until resume",
        about: "Hold every new request (its head is read, nothing is forwarded) until `rollbridge resume`, which forwards them in arrival order to the release active then. A request held longer than --timeout-ms is answered 503; beyond proxy.maxHeldRequests, 503 at once. Requests already forwarded are not affected; deploys work while paused.",
        options: &[
            CONFIG,
            opt!(
                "timeout-ms",
                Some("<n>"),
                "longest a request is held before a 503 (default: 30000)",
                timeout_ms
            ),
        ],
        run: commands::traffic::pause,
        hidden: false,
    },
    CommandSpec {
        name: "resume",
        positional: None,
        summary: "Forward the requests held by pause",
        about: "End a pause: every held request is forwarded, in arrival order, to the release active now.",
        options: &[CONFIG],
        run: commands::traffic::resume,
        hidden: false,
    },
    CommandSpec {
        name: "upgrade",
        positional: None,
        summary: "Replace the daemon's program in place, without a gap",
        about: "Replace the running daemon's program with the binary at --binary (default: the path the daemon was started from, as that file is now), keeping its pid. The proxy listener stays open, connections and WebSocket tunnels are carried over, managed processes keep running and stay supervised, and status, events, maintenance and pause survive. The new binary is tried first; if it is missing, not executable, crashes or refuses the handover, the command fails and the old program serves on.",
        options: &[
            CONFIG,
            opt!(
                "binary",
                Some("<path>"),
                "the new binary (default: the file the daemon was started from)",
                binary
            ),
            opt!(
                "timeout-ms",
                Some("<n>"),
                "longest the new binary may take to answer (default: 10000)",
                timeout_ms
            ),
            PROGRESS,
        ],
        run: commands::upgrade::run,
        hidden: false,
    },
    CommandSpec {
        name: "__handover-probe",
        positional: Some("<version>"),
        summary: "Answer an upgrade's probe",
        about: "Internal: prints this binary's version and the handover formats it reads.",
        options: &[CONFIG],
        run: commands::upgrade::probe,
        hidden: true,
    },
    CommandSpec {
        name: "validate",
        positional: None,
        summary: "Check the config file without a daemon",
        about: "Load and validate the config file and print every issue found, each with a suggested fix. Never contacts a daemon.",
        options: &[
            CONFIG,
            JSON,
            flag!(
                "node",
                "evaluate a JavaScript config with node even if it is plain data",
                node
            ),
        ],
        run: commands::validate::run,
        hidden: false,
    },
    CommandSpec {
        name: "doctor",
        positional: None,
        summary: "Check the config and this host before a deploy",
        about: "Check the config, the control socket, the proxy port, state paths and (with --release-path) the release's templates and working directories.",
        options: &[CONFIG, CHECK_RELEASE_PATH, RELEASE_ID, REVISION, JSON],
        run: commands::doctor::run,
        hidden: false,
    },
    CommandSpec {
        name: "logs",
        positional: None,
        summary: "Print recent output of managed processes",
        about: "Print the recent stdout/stderr lines the daemon keeps for each managed process.",
        options: &[CONFIG, PROCESS, JSON, FOLLOW],
        run: commands::logs::run,
        hidden: false,
    },
    CommandSpec {
        name: "events",
        positional: None,
        summary: "Print the daemon's recent events",
        about: "Print the daemon's recent events (deploys, switches, crashes, restarts), oldest first.",
        options: &[
            CONFIG,
            opt!(
                "limit",
                Some("<count>"),
                "only the newest <count> events",
                limit
            ),
            JSON,
            FOLLOW,
        ],
        run: commands::events::run,
        hidden: false,
    },
    CommandSpec {
        name: "predeploy-cleanup",
        positional: None,
        summary: "Prepare a host migrating from another supervisor",
        about: "Before the first deploy after a migration: stop a stale daemon, recover orphans and stop legacy processes matched by legacyTakeover.",
        options: &[
            CONFIG,
            opt!(
                "release-path",
                Some("<path>"),
                "directory of the release about to be deployed; a daemon with an active release is kept unless this release bundles a different Rollbridge version",
                release_path
            ),
        ],
        run: commands::predeploy::run,
        hidden: false,
    },
    CommandSpec {
        name: "recover",
        positional: None,
        summary: "List or stop processes left by a crashed daemon",
        about: "List processes recorded in statePath that outlived a crashed daemon; with --force, stop them.",
        options: &[CONFIG, flag!("force", "stop the orphaned processes", force)],
        run: commands::recover::run,
        hidden: false,
    },
    CommandSpec {
        name: "completion",
        positional: Some("<shell>"),
        summary: "Print a shell completion script (bash, zsh, fish)",
        about: "Print a completion script for bash, zsh or fish. Enable it with e.g. `source <(rollbridge completion bash)`.",
        options: &[],
        run: commands::completion::run,
        hidden: false,
    },
    CommandSpec {
        name: "man",
        positional: None,
        summary: "Print the manual page (roff)",
        about: "Print the manual page rollbridge.1 in roff format, generated from the same table as this help. Install it with e.g. `rollbridge man > /usr/local/share/man/man1/rollbridge.1`.",
        options: &[],
        run: commands::man::run,
        hidden: false,
    },
    CommandSpec {
        name: "demo",
        positional: None,
        summary: "Run a real zero-downtime deploy on built-in defaults",
        about: "Start a daemon on free local ports with the built-in example app, deploy release one, then release two while clients send requests through the proxy, and report requests, failures, the switch and the drain. Needs no config.",
        options: &[],
        run: commands::demo::run,
        hidden: false,
    },
    CommandSpec {
        name: "demo-app",
        positional: None,
        summary: "Serve the built-in example web app",
        about: "Serve the tiny example HTTP app that `rollbridge demo` deploys: /ping answers pong, every other path names the release (ROLLBRIDGE_RELEASE_ID).",
        options: &[
            OptSpec {
                required: true,
                ..opt!("port", Some("<port>"), "port to listen on", port)
            },
            opt!(
                "host",
                Some("<host>"),
                "address to listen on (default: 127.0.0.1)",
                host
            ),
        ],
        run: commands::demo_app::run,
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
