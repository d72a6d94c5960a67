//! `rollbridge doctor` through the real binary (cli.md §2.12): every check,
//! its wording, human and JSON output, exit codes; next to a real daemon, a
//! foreign daemon and foreign listeners.

mod daemon_support;

use std::net::{TcpListener, TcpStream};
use std::ops::Deref;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use daemon_support::*;

/// A unique temp dir removed on drop, also when an assertion fails.
struct Tmp(PathBuf);

impl Tmp {
    fn new(tag: &str) -> Tmp {
        Tmp(temp_dir(tag))
    }
}

impl Deref for Tmp {
    type Target = PathBuf;
    fn deref(&self) -> &PathBuf {
        &self.0
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// `rollbridge doctor <args>` in `cwd`.
fn doctor(cwd: &Path, args: &[&str]) -> Run {
    let out = Command::new(BIN)
        .arg("doctor")
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("run rollbridge doctor");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `(name, ok, detail)` of every check of a `--json` run.
fn checks(run: &Run) -> Vec<(String, bool, String)> {
    let v: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", run.stdout));
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["ok"].as_bool().unwrap(),
                c["detail"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn check<'a>(list: &'a [(String, bool, String)], name: &str) -> &'a (String, bool, String) {
    list.iter()
        .find(|c| c.0 == name)
        .unwrap_or_else(|| panic!("no check {name}: {list:?}"))
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes `rollbridge.json` with the control socket `dir/c.sock`.
fn write(dir: &Path, app: &str, port: u16, extra: &str, processes: &str) -> String {
    let text = format!(
        r#"{{"application":"{app}","control":{{"path":"{}"}},"proxy":{{"port":{port}}}{extra},"processes":{processes}}}"#,
        dir.join("c.sock").display()
    );
    let path = dir.join("rollbridge.json");
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

const ONE: &str =
    r#"[{"id":"web","command":"sleep 1000","policy":"proxied","port":{"from":0,"to":0}}]"#;

#[test]
fn invalid_config_reports_only_the_config_check() {
    let dir = Tmp::new("doc-inv");
    let cfg = write(&dir, "app", 0, "", "[]");
    let run = doctor(&dir, &["-c", &cfg, "--json"]);
    assert_eq!(run.code, 1);
    let list = checks(&run);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0].0, "config");
    assert!(!list[0].1);
    assert!(
        list[0]
            .2
            .ends_with("1 issue — run \"rollbridge validate\" for details"),
        "{}",
        list[0].2
    );
    let human = doctor(&dir, &["-c", &cfg]);
    assert_eq!(human.code, 1);
    assert!(human.stdout.starts_with("✗ config: "), "{}", human.stdout);
    assert_eq!(human.stdout.lines().count(), 1);
    assert_eq!(human.stderr, "\n1 check failed.\n");
}

#[test]
fn unresolvable_config_path_is_one_failed_check() {
    let dir = Tmp::new("doc-none");
    let run = doctor(&dir, &["--json"]);
    assert_eq!(run.code, 1);
    let list = checks(&run);
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].0.as_str(), list[0].1), ("config", false));
    assert!(list[0].2.contains("No config file found"), "{}", list[0].2);
    let human = doctor(&dir, &[]);
    assert_eq!(human.code, 1);
    assert!(human.stdout.is_empty());
    assert!(human.stderr.contains("No config file found"));
}

#[test]
fn everything_passes_without_a_daemon() {
    let dir = Tmp::new("doc-ok");
    let port = free_port();
    let cfg = write(&dir, "app", port, "", ONE);
    let sock = dir.join("c.sock");
    let run = doctor(&dir, &["-c", &cfg]);
    assert_eq!(run.code, 0, "{} {}", run.stdout, run.stderr);
    let d = dir.display();
    let expected = format!(
        "✓ config: valid: 1 process, proxy on 127.0.0.1:{port}\n\
         ✓ control socket: no daemon running; {} is free to bind\n\
         ✓ control socket directory: {d} is writable\n\
         ✓ proxy port: 127.0.0.1:{port} is available\n\
         \nAll checks passed.\n",
        sock.display()
    );
    assert_eq!(run.stdout, expected);
    assert!(run.stderr.is_empty());

    let json = doctor(&dir, &["-c", &cfg, "--json"]);
    assert_eq!(json.code, 0);
    assert_eq!(top_level_keys(&json.stdout), ["checks", "ok"]);
    assert!(
        json.stdout
            .starts_with("{\n  \"checks\": [\n    {\n      \"detail\"")
    );
    assert!(json.stdout.ends_with("  \"ok\": true\n}\n"));
    let first = json.stdout.find("\"detail\"").unwrap();
    assert!(first < json.stdout.find("\"name\"").unwrap());
    assert!(json.stdout.find("\"name\"").unwrap() < json.stdout.find("\"ok\"").unwrap());
}

#[test]
fn same_application_daemon_passes_socket_and_port() {
    let dir = Tmp::new("doc-same");
    let port = free_port();
    let cfg = write(&dir, "shop", port, "", ONE);
    let daemon = TestDaemon::start_with(dir.to_path_buf(), cfg.clone().into(), &[]);
    std::fs::create_dir_all(dir.join("rel")).unwrap();
    let run = doctor(&dir, &["-c", &cfg, "--json", "--release-path", "rel"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let list = checks(&run);
    assert_eq!(
        check(&list, "control socket").2,
        format!(
            "Rollbridge daemon for \"shop\" is running on {}",
            daemon.socket.display()
        )
    );
    assert_eq!(
        check(&list, "proxy port").2,
        format!("127.0.0.1:{port} is already held by the running Rollbridge daemon")
    );
    assert!(list.iter().all(|c| c.1), "{list:?}");
}

#[test]
fn another_applications_daemon_fails() {
    let dir = Tmp::new("doc-other");
    let daemon_cfg = write(&dir, "other", 0, "", ONE);
    let daemon = TestDaemon::start_with(dir.to_path_buf(), daemon_cfg.into(), &[]);
    let mine = dir.join("mine");
    std::fs::create_dir_all(&mine).unwrap();
    let cfg = format!(
        r#"{{"application":"mine","control":{{"path":"{}"}},"proxy":{{"port":0}},"processes":{ONE}}}"#,
        daemon.socket.display()
    );
    let cfg_path = mine.join("rollbridge.json");
    std::fs::write(&cfg_path, cfg).unwrap();
    let run = doctor(&mine, &["--json"]);
    assert_eq!(run.code, 1);
    let list = checks(&run);
    let socket = check(&list, "control socket");
    assert!(!socket.1);
    assert_eq!(
        socket.2,
        format!(
            "a Rollbridge daemon for \"other\" is already running on {}; stop it before starting another",
            daemon.socket.display()
        )
    );
    assert!(check(&list, "proxy port").1);
}

#[test]
fn foreign_listener_on_the_control_path_fails() {
    let dir = Tmp::new("doc-foreign");
    let state = dir.join("state.json");
    let extra = format!(r#","statePath":"{}""#, state.display());
    let cfg = write(&dir, "app", 0, &extra, ONE);
    let sock = dir.join("c.sock");
    // Never accepts or answers: the probe times out after 1 s.
    let _listener = UnixListener::bind(&sock).unwrap();
    let run = doctor(&dir, &["-c", &cfg, "--json"]);
    assert_eq!(run.code, 1);
    let list = checks(&run);
    let socket = check(&list, "control socket");
    assert!(!socket.1);
    assert_eq!(
        socket.2,
        format!(
            "another process is already listening on {}; the daemon would fail to bind it",
            sock.display()
        )
    );
    assert_eq!(
        check(&list, "orphaned processes").2,
        "a daemon is running; its managed processes are not orphans"
    );
}

#[test]
fn unprobeable_control_path_fails() {
    let dir = Tmp::new("doc-enotdir");
    let file = dir.join("file");
    std::fs::write(&file, "x").unwrap();
    let sock = file.join("c.sock");
    let cfg = format!(
        r#"{{"application":"app","control":{{"path":"{}"}},"proxy":{{"port":0}},"processes":{ONE}}}"#,
        sock.display()
    );
    std::fs::write(dir.join("rollbridge.json"), cfg).unwrap();
    let run = doctor(&dir, &["--json"]);
    assert_eq!(run.code, 1);
    let list = checks(&run);
    let s = sock.display();
    assert_eq!(
        check(&list, "control socket").2,
        format!("could not probe {s}: connect ENOTDIR {s}")
    );
    assert_eq!(
        check(&list, "control socket directory").2,
        format!("{} is missing or not writable", file.display())
    );
}

#[test]
fn proxy_port_held_by_a_foreign_listener_fails() {
    let dir = Tmp::new("doc-port");
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let cfg = write(&dir, "app", port, "", ONE);
    let run = doctor(&dir, &["-c", &cfg]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains(&format!(
            "✗ proxy port: 127.0.0.1:{port} is unavailable (EADDRINUSE)\n"
        )),
        "{}",
        run.stdout
    );
    assert_eq!(run.stderr, "\n1 check failed.\n");
    drop(held);
}

#[test]
fn port_in_time_wait_passes() {
    let dir = Tmp::new("doc-tw");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (server, _) = listener.accept().unwrap();
    // The side closing first keeps TIME_WAIT on the listening port.
    drop(server);
    drop(listener);
    std::thread::sleep(std::time::Duration::from_millis(50));
    drop(client);
    let cfg = write(&dir, "app", port, "", ONE);
    let run = doctor(&dir, &["-c", &cfg, "--json"]);
    let list = checks(&run);
    assert_eq!(
        check(&list, "proxy port").2,
        format!("127.0.0.1:{port} is available")
    );
}

#[test]
fn state_path_checks() {
    let dir = Tmp::new("doc-state");
    let missing = dir.join("nope").join("state.json");
    let extra = format!(r#","statePath":"{}""#, missing.display());
    let cfg = write(&dir, "app", 0, &extra, ONE);
    let list = checks(&doctor(&dir, &["-c", &cfg, "--json"]));
    let names: Vec<&str> = list.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "config",
            "control socket",
            "control socket directory",
            "proxy port",
            "state path directory",
            "orphaned processes"
        ]
    );
    let state_dir = check(&list, "state path directory");
    assert!(!state_dir.1);
    assert_eq!(
        state_dir.2,
        format!(
            "{} is missing or not writable; state cannot be persisted",
            dir.join("nope").display()
        )
    );
    assert_eq!(
        check(&list, "orphaned processes").2,
        "no leftover processes from a previous daemon"
    );

    // A snapshot naming a live pid: reported as a possible orphan.
    let mut sleeper = Sleeper::spawn();
    let pid = sleeper.0.id();
    let state = dir.join("state.json");
    std::fs::write(
        &state,
        format!(
            r#"{{"releases":[{{"releaseId":"v1","processes":[{{"id":"web","pid":{pid}}}]}}]}}"#
        ),
    )
    .unwrap();
    // Relative: resolved against the CLI's cwd.
    let cfg = write(&dir, "app", 0, r#","statePath":"state.json""#, ONE);
    let run = doctor(&dir, &["-c", &cfg, "--json"]);
    assert_eq!(run.code, 1);
    let list = checks(&run);
    assert_eq!(
        check(&list, "state path directory").2,
        format!("{} is writable", dir.display())
    );
    let orphans = check(&list, "orphaned processes");
    assert!(!orphans.1);
    assert_eq!(
        orphans.2,
        format!(
            "1 possible orphaned process still running: web (pid {pid}) — verify and stop any leftovers"
        )
    );
    sleeper.stop();
}

/// A `sleep` child killed on drop.
struct Sleeper(Child);

impl Sleeper {
    fn spawn() -> Sleeper {
        Sleeper(Command::new("sleep").arg("30").spawn().unwrap())
    }

    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        self.stop();
    }
}

const TWO: &str = r#"[
  {"id":"web","command":"run {{port}} {{ports.job}} {{releaseId}} {{revision}}","policy":"proxied","port":{"from":18000,"to":18099},"cwd":"{{releaseId}}-{{revision}}"},
  {"id":"job","command":"job {{replicaCount}}","policy":"companion","port":{"from":19000,"to":19009},"cwd":"shared"},
  {"id":"worker","command":"work {{replicaIndex}}/{{replicaCount}}","policy":"companion","replicas":2,"cwd":"shared"}
]"#;

#[test]
fn release_checks_pass_for_a_prepared_release() {
    let dir = Tmp::new("doc-rel");
    let cfg = write(&dir, "app", 0, "", TWO);
    let rel = dir.join("releases").join("v7");
    std::fs::create_dir_all(rel.join("abc-abc")).unwrap();
    std::fs::create_dir_all(rel.join("shared")).unwrap();
    // Release id = --revision when --release-id is absent.
    let run = doctor(
        &dir,
        &[
            "-c",
            &cfg,
            "--json",
            "--release-path",
            "releases/v7",
            "--revision",
            "abc",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    let list = checks(&run);
    assert_eq!(list.len(), 7);
    assert_eq!(
        check(&list, "release path").2,
        format!("{} exists", rel.display())
    );
    assert_eq!(
        check(&list, "process templates").2,
        "all 3 process command/cwd/env templates resolve"
    );
    assert_eq!(
        check(&list, "process working directories").2,
        "all 3 process working directories exist"
    );
    // Without ids the basename is the release id and revision: v7-v7.
    let run = doctor(
        &dir,
        &["-c", &cfg, "--json", "--release-path", "releases/v7"],
    );
    let list = checks(&run);
    assert_eq!(
        check(&list, "process working directories").2,
        format!(
            "missing working directory: web ({})",
            rel.join("v7-v7").display()
        )
    );
}

#[test]
fn single_process_wording_and_missing_release_path() {
    let dir = Tmp::new("doc-miss");
    let cfg = write(&dir, "app", 0, "", ONE);
    let run = doctor(&dir, &["-c", &cfg, "--json", "--release-path", "gone"]);
    assert_eq!(run.code, 1);
    let list = checks(&run);
    let rel = check(&list, "release path");
    assert!(!rel.1);
    assert_eq!(
        rel.2,
        format!(
            "{} is missing or not a directory",
            dir.join("gone").display()
        )
    );
    assert_eq!(
        check(&list, "process templates").2,
        "all 1 process command/cwd/env templates resolve"
    );
    assert_eq!(
        check(&list, "process working directories").2,
        format!(
            "missing working directory: web ({})",
            dir.join("gone").display()
        )
    );
    std::fs::create_dir_all(dir.join("gone")).unwrap();
    let list = checks(&doctor(
        &dir,
        &["-c", &cfg, "--json", "--release-path", "gone"],
    ));
    assert_eq!(
        check(&list, "process working directories").2,
        "all 1 process working directory exists"
    );
}

#[test]
fn unresolved_templates_and_missing_directories() {
    let dir = Tmp::new("doc-tpl");
    let procs = r#"[
      {"id":"web","command":"run {{env.ROLLBRIDGE_DOCTOR_UNSET}}","policy":"proxied","port":{"from":0,"to":0}},
      {"id":"a","command":"a","policy":"companion","cwd":"x"},
      {"id":"b","command":"b","policy":"companion","cwd":"/nonexistent-rb-doctor"},
      {"id":"c","command":"c","policy":"companion","env":{"K":"{{env.ROLLBRIDGE_DOCTOR_UNSET_TOO}}"}}
    ]"#;
    let cfg = write(&dir, "app", 0, "", procs);
    std::fs::create_dir_all(dir.join("rel")).unwrap();
    let run = doctor(&dir, &["-c", &cfg, "--release-path", "rel"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains(
            "✗ process templates: unresolved templates — web: Missing template value for {{env.ROLLBRIDGE_DOCTOR_UNSET}}; c: Missing template value for {{env.ROLLBRIDGE_DOCTOR_UNSET_TOO}}\n"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!(
            "✗ process working directories: missing working directories: a ({}), b (/nonexistent-rb-doctor)\n",
            dir.join("rel").join("x").display()
        )),
        "{}",
        run.stdout
    );
    assert_eq!(run.stderr, "\n2 checks failed.\n");
}

/// A `sleep` leading its own process group (adoptable), killed on drop.
fn group_sleeper() -> Sleeper {
    use std::os::unix::process::CommandExt;
    Sleeper(
        Command::new("sleep")
            .arg("30")
            .process_group(0)
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// `/proc/<pid>/stat` start time.
fn start_time(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &s[s.rfind(')').unwrap() + 1..];
    rest.split_whitespace().nth(19).unwrap().parse().unwrap()
}

#[test]
fn living_orphans_adopt_orphans_would_adopt_are_reported_as_will_be_adopted() {
    let dir = Tmp::new("doc-adopt");
    let mut web = group_sleeper();
    let pid = web.0.id();
    let state = dir.join("state.json");
    let snapshot = |extra: &str| {
        format!(
            r#"{{"activeReleaseId":"v1","releases":[{{"releaseId":"v1","state":"active","processes":[{{"id":"web","pid":{pid},"pgid":{pid},"startTime":{}}}{extra}]}}]}}"#,
            start_time(pid)
        )
    };
    std::fs::write(&state, snapshot("")).unwrap();
    let state_key = format!(r#","statePath":"{}""#, state.display());

    // With adoptOrphans: a pass that says what the next start adopts.
    let cfg = write(
        &dir,
        "app",
        0,
        &format!(r#"{state_key},"adoptOrphans":true"#),
        ONE,
    );
    let run = doctor(&dir, &["-c", &cfg, "--json"]);
    let list = checks(&run);
    let orphans = check(&list, "orphaned processes");
    assert!(orphans.1, "{orphans:?}");
    assert_eq!(
        orphans.2,
        format!(
            "1 process will be adopted by the next daemon start (adoptOrphans): web (pid {pid})"
        )
    );
    assert_eq!(run.code, 0, "{list:?}");

    // Without it: a failure, as before.
    let cfg = write(&dir, "app", 0, &state_key, ONE);
    let run = doctor(&dir, &["-c", &cfg, "--json"]);
    assert_eq!(run.code, 1);
    assert!(!check(&checks(&run), "orphaned processes").1);

    // A living pid recorded without a start time cannot be adopted: it
    // still fails, named alone; the adoptable one is counted apart.
    let mut other = group_sleeper();
    let other_pid = other.0.id();
    std::fs::write(
        &state,
        snapshot(&format!(r#",{{"id":"worker","pid":{other_pid}}}"#)),
    )
    .unwrap();
    let cfg = write(
        &dir,
        "app",
        0,
        &format!(r#"{state_key},"adoptOrphans":true"#),
        ONE,
    );
    let run = doctor(&dir, &["-c", &cfg, "--json"]);
    assert_eq!(run.code, 1);
    let list = checks(&run);
    let orphans = check(&list, "orphaned processes");
    assert!(!orphans.1);
    assert_eq!(
        orphans.2,
        format!(
            "1 possible orphaned process still running: worker (pid {other_pid}) — verify and stop any leftovers; \
             1 process will be adopted by the next daemon start (adoptOrphans): web (pid {pid})"
        )
    );
    other.stop();
    web.stop();
}
