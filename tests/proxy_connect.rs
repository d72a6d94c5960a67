//! Connecting to the app: a connect stalled by the app's full accept
//! queue is started again instead of waiting out the kernel's one-second
//! SYN retransmission.
mod proxy_support;

use proxy_support::*;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// How long the app is too busy to accept in the test.
const BUSY: Duration = Duration::from_millis(300);

/// A listener whose accept queue holds one connection, and a connection
/// that fills it.
fn full_listener() -> (TcpListener, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    // SAFETY: listen() again on a listening socket only changes its backlog.
    assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
    let filler = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    (listener, filler)
}

#[test]
fn connect_stalled_by_a_full_accept_queue_is_started_again() {
    let (listener, _filler) = full_listener();
    let addr = listener.local_addr().unwrap();
    let p = Proxy::start();
    p.handle.set_active("v1", addr).unwrap();
    // The app accepts nothing for a while, then catches up.
    let app = std::thread::spawn(move || {
        std::thread::sleep(BUSY);
        let handler: Handler = std::sync::Arc::new(|_r, s| {
            respond(s, 200, &[], b"late");
            After::KeepAlive
        });
        Backend::on(listener, handler)
    });
    let t = Instant::now();
    let r = p.connect().get("/");
    let took = t.elapsed();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "late");
    // The kernel alone resends the dropped SYN after one second.
    assert!(
        took < Duration::from_millis(800),
        "answered after {took:?}: the stalled connect waited for the kernel"
    );
    drop(app.join().unwrap());
}

#[test]
fn connect_to_a_listener_that_never_accepts_ends_in_the_response_timeout() {
    let (listener, _filler) = full_listener();
    let p = Proxy::with(|o| o.upstream_response_timeout = Duration::from_millis(700));
    p.handle
        .set_active("v1", listener.local_addr().unwrap())
        .unwrap();
    let t = Instant::now();
    let r = p.connect().get("/");
    assert_eq!(r.status, 504);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    drop(listener);
}
