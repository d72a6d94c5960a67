//! Shared helpers for the daemon integration tests: a temp dir with a
//! rollbridge.json (unique control socket, proxy port 0), the real binary
//! started in its own process group, readiness by its `control socket
//! listening` line, and cleanup on drop (shutdown, then SIGKILL of the
//! group we started; never anything by name).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_rollbridge");

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh, short temp dir (socket paths must stay under 108 bytes).
/// The first call of a test binary also removes the dirs earlier test
/// binaries left (named after a pid that is no longer running).
pub fn temp_dir(tag: &str) -> PathBuf {
    static SWEEP: std::sync::Once = std::sync::Once::new();
    SWEEP.call_once(sweep_dead_temp_dirs);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = PathBuf::from(format!("/tmp/rbt-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Removes `/tmp/rbt-<pid>-…` entries whose test process has ended.
fn sweep_dead_temp_dirs() {
    let Ok(entries) = std::fs::read_dir("/tmp") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("rbt-")) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Writes a config into `dir` and returns its path.
pub fn write_config(dir: &Path, app: &str, extra_control: &str, proxy_port: u16) -> PathBuf {
    let socket = dir.join("c.sock");
    let config = format!(
        r#"{{"application":"{app}","control":{{"path":"{}"{extra_control}}},"proxy":{{"port":{proxy_port}}},"processes":[{{"id":"web","command":"sleep 1000","policy":"proxied","port":{{"from":0,"to":0}}}}]}}"#,
        socket.display()
    );
    let path = dir.join("rollbridge.json");
    std::fs::write(&path, config).unwrap();
    path
}

/// Lines the daemon printed on stdout, collected by a reader thread.
#[derive(Clone, Default)]
pub struct Lines(Arc<(Mutex<Vec<String>>, Condvar)>);

impl Lines {
    fn spawn_reader(stream: impl Read + Send + 'static) -> Lines {
        let lines = Lines::default();
        let l = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                let (m, c) = &*l.0;
                m.lock().unwrap().push(line);
                c.notify_all();
            }
        });
        lines
    }

    pub fn all(&self) -> Vec<String> {
        self.0.0.lock().unwrap().clone()
    }

    /// Waits until a line contains `needle`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let (m, c) = &*self.0;
        let mut guard = m.lock().unwrap();
        loop {
            if let Some(l) = guard.iter().find(|l| l.contains(needle)) {
                return Some(l.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            guard = c.wait_timeout(guard, left).unwrap().0;
        }
    }
}

pub struct TestDaemon {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub stdout: Lines,
    pub stderr: Lines,
    child: Option<Child>,
}

impl TestDaemon {
    /// Starts `rollbridge daemon` on a fresh config and waits until ready.
    pub fn start(tag: &str) -> TestDaemon {
        let dir = temp_dir(tag);
        let config = write_config(&dir, tag, "", 0);
        TestDaemon::start_with(dir, config, &[])
    }

    pub fn start_with(dir: PathBuf, config: PathBuf, env: &[(&str, &str)]) -> TestDaemon {
        TestDaemon::start_limited(dir, config, env, None)
    }

    /// Same, with RLIMIT_NOFILE (soft and hard) lowered to `nofile`.
    pub fn start_limited(
        dir: PathBuf,
        config: PathBuf,
        env: &[(&str, &str)],
        nofile: Option<u64>,
    ) -> TestDaemon {
        let d = TestDaemon::spawn_limited(dir, config, env, nofile);
        if d.stdout
            .wait_for("control socket listening", Duration::from_secs(10))
            .is_none()
        {
            panic!(
                "daemon did not become ready; stdout {:?} stderr {:?}",
                d.stdout.all(),
                d.stderr.all()
            );
        }
        d
    }

    /// Spawns without waiting for readiness.
    pub fn spawn(dir: PathBuf, config: PathBuf, env: &[(&str, &str)]) -> TestDaemon {
        TestDaemon::spawn_limited(dir, config, env, None)
    }

    fn spawn_limited(
        dir: PathBuf,
        config: PathBuf,
        env: &[(&str, &str)],
        nofile: Option<u64>,
    ) -> TestDaemon {
        let mut cmd = Command::new(BIN);
        if let Some(n) = nofile {
            // SAFETY: setrlimit is async-signal-safe.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        cmd.arg("daemon").arg("--config").arg(&config);
        for (k, v) in env {
            cmd.env(k, v);
        }
        TestDaemon::spawn_command(dir, config, cmd)
    }

    /// Spawns a prepared command (e.g. a wrapper that passes descriptors)
    /// with piped output in its own process group, without waiting.
    pub fn spawn_command(dir: PathBuf, config: PathBuf, mut cmd: Command) -> TestDaemon {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Own process group, so cleanup can reach exactly what we started.
        cmd.process_group(0);
        let mut child = cmd.spawn().expect("spawn rollbridge daemon");
        let stdout = Lines::spawn_reader(child.stdout.take().unwrap());
        let stderr = Lines::spawn_reader(child.stderr.take().unwrap());
        TestDaemon {
            socket: dir.join("c.sock"),
            dir,
            config,
            stdout,
            stderr,
            child: Some(child),
        }
    }

    /// Waits for the `control socket listening` line (panics after 10 s).
    #[track_caller]
    pub fn wait_ready(&self) {
        if self
            .stdout
            .wait_for("control socket listening", Duration::from_secs(10))
            .is_none()
        {
            panic!(
                "daemon did not become ready; stdout {:?} stderr {:?}",
                self.stdout.all(),
                self.stderr.all()
            );
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(-1)
    }

    /// Runs a CLI command against this daemon's config.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli(&self.config, args)
    }

    /// One raw request line over a fresh connection; the response line.
    pub fn request(&self, line: &str) -> String {
        let mut s = UnixStream::connect(&self.socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(line.as_bytes()).unwrap();
        s.write_all(b"\n").unwrap();
        let mut r = BufReader::new(s);
        let mut out = String::new();
        r.read_line(&mut out).unwrap();
        out.trim_end().to_owned()
    }

    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// Waits for the daemon to exit; its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return status.code();
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pgid = child.id() as i32;
            unsafe {
                libc::kill(pgid, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs the CLI with `--config <config>` appended.
pub fn cli(config: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .expect("run rollbridge")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Top-level keys of a JSON object text, in order (depth-1 only).
pub fn top_level_keys(json: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut depth = 0i32;
    let mut in_str = false;
    let mut esc = false;
    let mut cur = String::new();
    let chars: Vec<char> = json.chars().collect();
    for (i, &ch) in chars.iter().enumerate() {
        if in_str {
            if esc {
                esc = false;
            } else if ch == '\\' {
                esc = true;
            } else if ch == '"' {
                in_str = false;
                if depth == 1 {
                    let rest: String = chars[i + 1..].iter().collect();
                    if rest.trim_start().starts_with(':') {
                        keys.push(cur.clone());
                    }
                }
            } else {
                cur.push(ch);
            }
            continue;
        }
        match ch {
            '"' => {
                in_str = true;
                cur.clear();
            }
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            _ => {}
        }
    }
    keys
}
