//! Running out of descriptors delays accepts but never crashes the proxy
//! or disturbs open connections. Alone in its binary: it lowers the
//! process's RLIMIT_NOFILE (the late client is a child process, so its
//! socket does not count against our limit).
mod proxy_support;

use proxy_support::*;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

fn set_nofile(n: u64) -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls on a local struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
        let old = rl.rlim_cur;
        rl.rlim_cur = n.min(rl.rlim_max);
        libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        old
    }
}

#[test]
fn descriptor_exhaustion_delays_accepts_only() {
    let b = Backend::named("v1");
    let p = Proxy::start();
    p.handle.set_active("v1", b.addr).unwrap();
    let mut a = p.connect();
    assert_eq!(a.get("/").text(), "v1");
    // A client in another process that connects when told to.
    let script = format!(
        "read go; exec 3<>/dev/tcp/127.0.0.1/{}; \
         printf 'GET / HTTP/1.1\\r\\nHost: a\\r\\nConnection: close\\r\\n\\r\\n' >&3; cat <&3",
        p.addr.port()
    );
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("bash");
    let mut go = child.stdin.take().unwrap();
    let mut out = child.stdout.take().unwrap();

    let old = set_nofile(open_fds()); // not one descriptor to spare
    go.write_all(b"go\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // the open keep-alive connection still works (pooled upstream)
    let r = a.get("/");
    set_nofile(old);
    assert_eq!(r.text(), "v1");
    // accepting resumes and the waiting client is served
    let mut answer = String::new();
    out.read_to_string(&mut answer).unwrap();
    let _ = child.wait();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("v1"), "{answer}");
}
