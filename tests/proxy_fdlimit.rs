//! Running out of descriptors delays accepts but never crashes the proxy
//! or disturbs open connections. Alone in its binary: it lowers the
//! process's RLIMIT_NOFILE.
mod proxy_support;

use proxy_support::*;

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
    // Room for exactly the two client sockets below, none for the
    // proxy's accepts.
    let old = set_nofile(open_fds() + 4); // each Client is a socket + a clone
    let mut c1 = p.connect();
    c1.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let _c2 = p.connect();
    std::thread::sleep(std::time::Duration::from_millis(200));
    // the open keep-alive connection still works (pooled upstream)
    let r = a.get("/");
    // ... while the new one has not been accepted (no answer yet)
    c1.r.get_ref()
        .set_read_timeout(Some(std::time::Duration::from_millis(50)))
        .unwrap();
    let waiting = std::io::BufRead::fill_buf(&mut c1.r).is_err();
    c1.r.get_ref().set_read_timeout(Some(T)).unwrap();
    set_nofile(old);
    assert!(waiting, "accepted despite the descriptor limit");
    assert_eq!(r.text(), "v1");
    // accepting resumes and the waiting client is served
    assert_eq!(c1.response().text(), "v1");
}
