//! Retiring WebSocket tunnels: a Close 1001 to the client (at a frame
//! boundary) and to the app at the drain deadline and at a graceful stop,
//! never before, spread over `websocketCloseSpreadMs`.
mod proxy_support;

use crossbeam_channel::{Receiver, Sender, unbounded};
use proxy_support::*;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

/// What the app saw: the code of each Close frame it received.
struct App {
    addr: SocketAddr,
    closes: Receiver<Option<CloseCode>>,
}

/// A tungstenite echo app (one thread per connection) that reports the
/// Close frames it receives. Its threads end with their connections.
fn echo_app() -> App {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, closes) = unbounded();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(T));
                let Ok(mut ws) = tungstenite::accept(s) else {
                    return;
                };
                while let Ok(m) = ws.read() {
                    if let Message::Close(frame) = m {
                        let _ = tx.send(frame.map(|f| f.code));
                        let _ = ws.flush();
                        continue;
                    }
                    if ws.send(m).is_err() {
                        break;
                    }
                }
            });
        }
    });
    App { addr, closes }
}

fn ws_connect(addr: SocketAddr) -> WebSocket<TcpStream> {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let (ws, resp) = tungstenite::client(format!("ws://{addr}/ws"), s).expect("ws handshake");
    assert_eq!(resp.status(), 101);
    ws
}

fn echo(ws: &mut WebSocket<TcpStream>, text: &str) {
    ws.send(Message::text(text)).unwrap();
    let m = ws.read().unwrap();
    assert_eq!(m.into_text().unwrap().as_str(), text);
}

/// Reads until a Close frame; returns its code.
fn read_close(ws: &mut WebSocket<TcpStream>) -> Option<CloseCode> {
    loop {
        match ws.read().expect("a close frame") {
            Message::Close(frame) => return frame.map(|f| f.code),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// Answers the Close (tungstenite queued it) and waits for the end.
fn answer_close(ws: &mut WebSocket<TcpStream>) {
    let _ = ws.flush();
    while ws.read().is_ok() {}
}

/// The deadline: `force_close` of `id` after `after`, from another thread.
fn deadline_in(p: &Proxy, id: &'static str, after: Duration) -> std::thread::JoinHandle<()> {
    let h = p.handle.clone();
    std::thread::spawn(move || {
        std::thread::sleep(after);
        h.force_close(id).unwrap();
    })
}

#[test]
fn client_and_app_get_close_1001_at_the_deadline_not_before() {
    let app = echo_app();
    let p = Proxy::with(|o| o.websocket_close_spread = Duration::ZERO);
    p.handle.set_active("v1", app.addr).unwrap();
    let mut ws = ws_connect(p.addr);
    echo(&mut ws, "hi");
    p.handle.clear_active().unwrap();
    p.handle.retire("v1").unwrap();
    let retired = Instant::now();
    let deadline = deadline_in(&p, "v1", Duration::from_millis(600));
    echo(&mut ws, "still served while draining");

    assert_eq!(read_close(&mut ws), Some(CloseCode::Away));
    let at = retired.elapsed();
    assert!(at >= Duration::from_millis(600), "closed early: {at:?}");
    assert!(at < Duration::from_millis(1100), "closed late: {at:?}");
    // A tungstenite server rejects an unmasked frame: this one was masked.
    assert_eq!(app.closes.recv_timeout(T), Ok(Some(CloseCode::Away)));

    // The client's answer ends the tunnel without waiting for the grace.
    let answered = Instant::now();
    answer_close(&mut ws);
    p.wait_drained("v1");
    assert!(answered.elapsed() < Duration::from_millis(700));
    deadline.join().unwrap();
}

/// An app that, on request, sends one large binary frame in two parts: the
/// head and the first bytes at once, the rest when told.
struct SlowFrameApp {
    addr: SocketAddr,
    start: Sender<()>,
    finish: Sender<()>,
    closes: Receiver<Option<CloseCode>>,
}

const BIG: usize = 200_000;
const FIRST_PART: usize = 1000;

fn slow_frame_app() -> SlowFrameApp {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (start, start_rx) = unbounded::<()>();
    let (finish, finish_rx) = unbounded::<()>();
    let (close_tx, closes) = unbounded();
    std::thread::spawn(move || {
        let Ok((s, _)) = l.accept() else { return };
        let _ = s.set_read_timeout(Some(T));
        let Ok(mut ws) = tungstenite::accept(s) else {
            return;
        };
        let mut frame = vec![0x82, 127];
        frame.extend_from_slice(&(BIG as u64).to_be_bytes());
        frame.extend(std::iter::repeat_n(0x55u8, BIG));
        let head = 10 + FIRST_PART;
        if start_rx.recv_timeout(T).is_err() {
            return;
        }
        let _ = ws.get_mut().write_all(&frame[..head]);
        if finish_rx.recv_timeout(T).is_err() {
            return;
        }
        let _ = ws.get_mut().write_all(&frame[head..]);
        while let Ok(m) = ws.read() {
            if let Message::Close(f) = m {
                let _ = close_tx.send(f.map(|f| f.code));
                let _ = ws.flush();
            }
        }
    });
    SlowFrameApp {
        addr,
        start,
        finish,
        closes,
    }
}

#[test]
fn tunnel_in_the_middle_of_a_large_frame_gets_the_close_after_it() {
    let app = slow_frame_app();
    let p = Proxy::with(|o| o.websocket_close_spread = Duration::ZERO);
    p.handle.set_active("v1", app.addr).unwrap();
    let mut ws = ws_connect(p.addr);
    p.handle.clear_active().unwrap();
    p.handle.retire("v1").unwrap();
    app.start.send(()).unwrap();
    // The first part crossed the proxy before the deadline.
    p.wait_counts("v1", (0, 1));
    std::thread::sleep(Duration::from_millis(100));
    p.handle.force_close("v1").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    app.finish.send(()).unwrap();

    match ws.read().expect("the large frame, whole") {
        Message::Binary(b) => {
            assert_eq!(b.len(), BIG);
            assert!(b.iter().all(|&x| x == 0x55), "frame corrupted");
        }
        other => panic!("expected the binary frame, got {other:?}"),
    }
    assert_eq!(read_close(&mut ws), Some(CloseCode::Away));
    assert_eq!(app.closes.recv_timeout(T), Ok(Some(CloseCode::Away)));
    answer_close(&mut ws);
    p.wait_drained("v1");
}

#[test]
fn closes_are_spread_over_the_spread() {
    let app = echo_app();
    let p = Proxy::with(|o| o.websocket_close_spread = Duration::from_millis(600));
    p.handle.set_active("v1", app.addr).unwrap();
    let (tx, rx) = unbounded();
    let mut readers = Vec::new();
    for i in 0..3 {
        let mut ws = ws_connect(p.addr);
        echo(&mut ws, &format!("ws {i}"));
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            let code = read_close(&mut ws);
            let _ = tx.send((Instant::now(), code));
            answer_close(&mut ws);
        }));
    }
    p.handle.clear_active().unwrap();
    p.handle.retire("v1").unwrap();
    let deadline = Instant::now();
    p.handle.force_close("v1").unwrap();
    let mut at: Vec<Duration> = (0..3)
        .map(|_| {
            let (when, code) = rx.recv_timeout(T).unwrap();
            assert_eq!(code, Some(CloseCode::Away));
            when - deadline
        })
        .collect();
    at.sort();
    assert!(at[0] < Duration::from_millis(150), "first close: {at:?}");
    for w in at.windows(2) {
        assert!(
            w[1] - w[0] >= Duration::from_millis(120),
            "not spread: {at:?}"
        );
    }
    assert!(
        at[2] < Duration::from_millis(700),
        "last close late: {at:?}"
    );
    for r in readers {
        r.join().unwrap();
    }
    p.wait_drained("v1");
}

#[test]
fn graceful_stop_sends_close_1001() {
    let app = echo_app();
    let p = Proxy::with(|o| o.websocket_close_spread = Duration::ZERO);
    p.handle.set_active("v1", app.addr).unwrap();
    let mut ws = ws_connect(p.addr);
    echo(&mut ws, "hi");
    let h = p.handle.clone();
    let stopped = Instant::now();
    let stopper = std::thread::spawn(move || h.shutdown_within(Duration::from_secs(5)));
    assert_eq!(read_close(&mut ws), Some(CloseCode::Away));
    assert_eq!(app.closes.recv_timeout(T), Ok(Some(CloseCode::Away)));
    answer_close(&mut ws);
    stopper.join().unwrap().unwrap();
    // The client's answer ended the stop, not its 5 s bound.
    assert!(stopped.elapsed() < Duration::from_secs(2));
}
