//! The multi-host recipe stood up for real on loopback: two daemons as two
//! hosts, HAProxy in front (examples/multi-host/haproxy.cfg), constant load
//! through it while rolling-deploy.sh rolls a release across both hosts and
//! while one host shuts down in lame-duck mode. Skipped without haproxy.

mod deploy_support;
use deploy_support::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn example(name: &str) -> String {
    format!("{}/examples/multi-host/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn have_haproxy() -> bool {
    Command::new("haproxy")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// One Rollbridge "host": a daemon with its own proxy, admin port, control
/// socket and state, serving the demo app.
struct Host {
    d: Deployment,
    admin: u16,
}

impl Host {
    fn start(tag: &str, ports: &str) -> Host {
        let dir = temp_dir(tag);
        let config = dir.join("rollbridge.json");
        let text = format!(
            r#"{{"application":"{tag}","control":{{"path":"{}"}},"proxy":{{"port":0,"shutdownDelayMs":1500}},"admin":{{"port":0}},"processes":[{{"id":"web","policy":"proxied","command":"{BIN} demo-app --port {{{{port}}}}","port":{ports},"health":{{"path":"/ping","intervalMs":20,"timeoutMs":10000}}}}]}}"#,
            dir.join("c.sock").display()
        );
        std::fs::write(&config, text).unwrap();
        let releases = dir.join("releases");
        std::fs::create_dir_all(&releases).unwrap();
        let daemon = TestDaemon::start_with(dir, config, &[]);
        let d = Deployment { daemon, releases };
        let admin = admin_port(&d);
        Host { d, admin }
    }

    fn serving(&self) -> String {
        get(self.d.proxy_port(), "/")
            .map(|r| r.1)
            .unwrap_or_default()
    }
}

fn admin_port(d: &Deployment) -> u16 {
    let line = d
        .daemon
        .stdout
        .wait_for("admin listening", Duration::from_secs(10))
        .expect("admin listener");
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap_or_default();
    v["port"]
        .as_u64()
        .or_else(|| v["data"]["port"].as_u64())
        .unwrap_or_else(|| panic!("no port in {line}")) as u16
}

/// HAProxy as a child in its own process group, killed by its pgid on drop.
struct Haproxy {
    child: Child,
    stats: PathBuf,
    log: PathBuf,
}

impl Haproxy {
    fn start(dir: &Path, bind: u16, a: &Host, b: &Host) -> Haproxy {
        let stats = dir.join("haproxy.sock");
        let template = std::fs::read_to_string(example("haproxy.cfg")).unwrap();
        let cfg = template
            .replace("{{bind}}", &format!("127.0.0.1:{bind}"))
            .replace("{{stats_socket}}", stats.to_str().unwrap())
            .replace("{{a_addr}}", "127.0.0.1")
            .replace("{{b_addr}}", "127.0.0.1")
            .replace("{{a_port}}", &a.d.proxy_port().to_string())
            .replace("{{b_port}}", &b.d.proxy_port().to_string())
            .replace("{{a_admin}}", &a.admin.to_string())
            .replace("{{b_admin}}", &b.admin.to_string());
        let left = cfg
            .lines()
            .any(|l| !l.trim_start().starts_with('#') && l.contains("{{"));
        assert!(!left, "placeholder left: {cfg}");
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, cfg).unwrap();
        let log = dir.join("haproxy.log");
        let child = Command::new("haproxy")
            .arg("-f")
            .arg(&path)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.join("haproxy.err")).unwrap())
            .process_group(0)
            .spawn()
            .expect("spawn haproxy");
        Haproxy { child, stats, log }
    }

    /// Server name -> status ("UP", "DOWN", ...) from `show stat`.
    fn servers(&self) -> Vec<(String, String)> {
        let Ok(mut s) = UnixStream::connect(&self.stats) else {
            return Vec::new();
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut out = String::new();
        if s.write_all(b"show stat\n").is_err() || s.read_to_string(&mut out).is_err() {
            return Vec::new();
        }
        out.lines()
            .filter(|l| l.starts_with("rollbridge,host-"))
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                (f[1].to_owned(), f.get(17).copied().unwrap_or("").to_owned())
            })
            .collect()
    }

    #[track_caller]
    fn wait_states(&self, what: &str, secs: u64, want: &[(&str, &str)]) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let now = self.servers();
            let all = want.iter().all(|(name, st)| {
                now.iter()
                    .any(|(n, s)| n == name && s.split(' ').next() == Some(*st))
            });
            if all {
                return;
            }
            if Instant::now() > deadline {
                let err = std::fs::read_to_string(self.log.with_extension("err"));
                panic!("timed out waiting for {what}: {now:?}; haproxy: {err:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let pgid = self.child.id() as i32;
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[derive(Clone, Default)]
struct Counts {
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    errors: Arc<Mutex<Vec<String>>>,
}

impl Counts {
    /// (ok, failed, errors) since the last call, and starts a new phase.
    fn take(&self) -> (u64, u64, Vec<String>) {
        (
            self.ok.swap(0, Ordering::SeqCst),
            self.failed.swap(0, Ordering::SeqCst),
            std::mem::take(&mut *self.errors.lock().unwrap()),
        )
    }
}

/// A client thread sending requests through HAProxy until `stop`: POSTs
/// on one keep-alive connection, or GETs on a connection each.
fn spawn_load(
    port: u16,
    keep_alive: bool,
    stop: Arc<AtomicBool>,
    c: Counts,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let fail = |e: String| {
            c.failed.fetch_add(1, Ordering::SeqCst);
            c.errors.lock().unwrap().push(e);
        };
        let mut conn: Option<TcpStream> = None;
        let mut buf = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            if !keep_alive {
                match get(port, "/") {
                    Ok((200, _)) => {
                        c.ok.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok((s, b)) => fail(format!("status {s}: {b}")),
                    Err(e) => fail(format!("conn-per-request: {e}")),
                }
                continue;
            }
            if conn.is_none() {
                match TcpStream::connect(("127.0.0.1", port)) {
                    Ok(s) => {
                        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                        conn = Some(s);
                        buf.clear();
                    }
                    Err(e) => {
                        fail(format!("keep-alive connect: {e}"));
                        continue;
                    }
                }
            }
            let Some(s) = conn.as_mut() else { continue };
            let result = s
                // POSTs: HAProxy never resends them to the other host, so
                // only the lame duck (/ready 503 first) keeps them whole.
                .write_all(b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello")
                .and_then(|_| read_response(s, &mut buf).map(|(status, _)| status));
            match result {
                Ok(200) => {
                    c.ok.fetch_add(1, Ordering::SeqCst);
                }
                Ok(status) => fail(format!("keep-alive status {status}")),
                Err(e) => {
                    fail(format!("keep-alive: {e}"));
                    conn = None;
                }
            }
        }
    })
}

#[test]
fn rolling_deploy_and_host_shutdown_behind_haproxy_fail_no_request() {
    if !have_haproxy() {
        eprintln!("skipped: haproxy is not installed (apt-get install haproxy)");
        return;
    }
    let started = Instant::now();
    let a = Host::start("mh-a", &range(24400, 20));
    let b = Host::start("mh-b", &range(24420, 20));
    a.d.deploy_ok("v1");
    b.d.deploy_ok("v1");

    let dir = temp_dir("mh-lb");
    let lb_port = free_port();
    let lb = Haproxy::start(&dir, lb_port, &a, &b);
    lb.wait_states("both hosts UP", 15, &[("host-a", "UP"), ("host-b", "UP")]);

    let counts = Counts::default();
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = [true, false]
        .into_iter()
        .map(|ka| spawn_load(lb_port, ka, stop.clone(), counts.clone()))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let (ok0, failed0, errors0) = counts.take();
    assert_eq!(failed0, 0, "before any change: {errors0:?}");
    assert!(ok0 > 0, "no traffic through haproxy");

    // Phase 1: the release rolls across both hosts, one after the other.
    let release = dir.join("releases/v2");
    std::fs::create_dir_all(&release).unwrap();
    let hosts = format!(
        "{} {}",
        a.d.daemon.config.display(),
        b.d.daemon.config.display()
    );
    let out = Command::new("bash")
        .arg(example("rolling-deploy.sh"))
        .args([
            "--release-path",
            release.to_str().unwrap(),
            "--release-id",
            "v2",
        ])
        .env("RB_HOSTS", hosts)
        .env("RB_BIN", BIN)
        .env(
            "RB_DEPLOY_CMD",
            r#"exec "$RB_BIN" deploy --config "$RB_HOST" "$@""#,
        )
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "rolling deploy: {}",
        stderr(&out)
    );
    assert!(a.serving().contains("v2"), "host a: {}", a.serving());
    assert!(b.serving().contains("v2"), "host b: {}", b.serving());
    std::thread::sleep(Duration::from_millis(300));
    let (ok1, failed1, errors1) = counts.take();
    eprintln!("phase 1 (rolling deploy of 2 hosts): {ok1} requests ok, {failed1} failed");

    // Phase 2: host a shuts down; /ready turns 503 first, HAProxy takes it
    // out, then its proxy stops accepting and drains.
    let out = a.d.daemon.cli(&["shutdown"]);
    assert_eq!(out.status.code(), Some(0), "shutdown: {}", stderr(&out));
    lb.wait_states("host a DOWN", 10, &[("host-a", "DOWN"), ("host-b", "UP")]);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let (ok2, failed2, errors2) = counts.take();
    eprintln!("phase 2 (host a shut down, lame duck 1500 ms): {ok2} requests ok, {failed2} failed");
    eprintln!("total time: {:?}", started.elapsed());

    assert_eq!(failed1, 0, "phase 1 failures: {errors1:?}");
    assert_eq!(failed2, 0, "phase 2 failures: {errors2:?}");
    assert!(ok1 > 50 && ok2 > 50, "too little load: {ok1}, {ok2}");
    assert!(started.elapsed() < Duration::from_secs(60));
    drop(lb);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rolling_deploy_stops_at_the_first_failed_host() {
    let dir = temp_dir("mh-script");
    let log = dir.join("deployed");
    let out = Command::new("bash")
        .arg(example("rolling-deploy.sh"))
        .args(["--release-id", "v9"])
        .env("RB_HOSTS", "web1 web2\nweb3")
        .env("RB_LOG", &log)
        .env(
            "RB_DEPLOY_CMD",
            r#"echo "$RB_HOST $*" >> "$RB_LOG"; [ "$RB_HOST" != web2 ]"#,
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("deploy failed on web2"), "{err}");
    assert!(err.contains("old release: web2 web3"), "{err}");
    let deployed = std::fs::read_to_string(&log).unwrap();
    assert_eq!(deployed, "web1 --release-id v9\nweb2 --release-id v9\n");
    let _ = std::fs::remove_dir_all(&dir);
}
