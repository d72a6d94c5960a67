//! Runs the proxy engine alone for `bench/proxy.sh`: binds, routes every
//! request to one release, and runs until stdin closes or it is killed.
//!
//! Usage: `proxy_bench <listen-port> <backend-port> [--admin] [--access-log <path>]`
//! (prints `listening <port>`). `--admin` adds an admin listener on an
//! ephemeral port, `--access-log` writes the access log to `path`.

use rollbridge::proxy::{self, ProxyOptions};
use std::io::Read;

fn main() -> std::io::Result<()> {
    rollbridge::daemon::raise_nofile_limit();
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let backend: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(8000);
    let mut opts = ProxyOptions {
        port,
        ..ProxyOptions::default()
    };
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--admin" => opts.admin = Some(("127.0.0.1".into(), 0)),
            "--access-log" => opts.access_log = args.next().map(Into::into),
            other => eprintln!("proxy_bench: ignoring {other}"),
        }
    }
    let (handle, events) = proxy::start(opts)?;
    handle.set_active_port("bench", backend)?;
    println!("listening {}", handle.local_addr().port());
    std::thread::spawn(move || {
        for ev in events {
            eprintln!("proxy event: {ev:?}");
        }
    });
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    handle.shutdown_within(std::time::Duration::from_secs(1))
}
