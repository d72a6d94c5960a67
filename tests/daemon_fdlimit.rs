//! The descriptor budget through the real daemon: started under a small
//! RLIMIT_NOFILE, a flood of idle clients must not starve the control
//! socket, crash restarts or upstream connects. Clients beyond the
//! proxy's connection cap wait in the kernel backlog and are served later.

mod deploy_support;
use deploy_support::*;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn node_web() -> String {
    format!(
        r#"[{{"id":"web","policy":"proxied","command":"node {} {{{{port}}}}","port":{{"from":0,"to":0}},"restartDelayMs":50,"health":{{"intervalMs":20,"timeoutMs":10000}}}}]"#,
        fixture("app.js")
    )
}

fn web_pid(d: &Deployment) -> Option<u64> {
    let s = d.status();
    let active = s["activeReleaseId"].as_str()?.to_owned();
    let rel = s["releases"]
        .as_array()?
        .iter()
        .find(|r| r["releaseId"] == active.as_str())?
        .clone();
    process(&rel, "web")["pid"].as_u64()
}

/// One request on a keep-alive connection; the status code.
fn request(s: &mut TcpStream) -> std::io::Result<u16> {
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")?;
    read_response(s, &mut Vec::new()).map(|(status, _)| status)
}

#[test]
fn low_limit_daemon_serves_clients_beyond_its_cap_without_502() {
    if !have_node() {
        eprintln!("skipped: node not installed");
        return;
    }
    // 128 descriptors: 64 reserved, cap (128 - 64) / 2 = 32 connections.
    let d = Deployment::start_limited("fdlow", "", &node_web(), Some(128));
    d.deploy_ok("r1");
    let s = d.status();
    assert_eq!(s["proxy"]["maxConnections"], 32, "{s:#}");
    assert_eq!(s["proxy"]["atConnectionLimit"], false, "{s:#}");
    let port = d.proxy_port();

    // 100 concurrent keep-alive clients, each holding its connection
    // across two requests: far more than the cap, and more than the
    // descriptors a client + upstream pair each would need.
    let clients: Vec<_> = (0..100)
        .map(|_| {
            std::thread::spawn(move || -> Vec<String> {
                let mut out = Vec::new();
                let mut s = match TcpStream::connect(("127.0.0.1", port)) {
                    Ok(s) => s,
                    Err(e) => return vec![format!("connect: {e}")],
                };
                let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
                for _ in 0..2 {
                    match request(&mut s) {
                        Ok(200) => {}
                        Ok(code) => out.push(format!("status {code}")),
                        Err(e) => out.push(format!("read: {e}")),
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                out
            })
        })
        .collect();
    let failures: Vec<String> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    let reached = d
        .daemon
        .stdout
        .wait_for("proxy connection limit reached", Duration::from_secs(1));
    assert!(
        reached.is_some_and(|l| l.contains(r#""maxConnections":32"#)),
        "{:?}",
        d.daemon.stdout.all()
    );
    assert!(
        d.daemon
            .stdout
            .wait_for("proxy connection limit cleared", Duration::from_secs(5))
            .is_some()
    );
    let errors: Vec<String> = d
        .daemon
        .stdout
        .all()
        .into_iter()
        .filter(|l| l.contains("Too many open files"))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn flood_leaves_status_restarts_and_service_working() {
    if !have_node() {
        eprintln!("skipped: node not installed");
        return;
    }
    // 256 descriptors: cap (256 - 64) / 2 = 96. The flood is four times that.
    let d = Deployment::start_limited(
        "fdflood",
        r#""headerTimeoutMs":120000"#,
        &node_web(),
        Some(256),
    );
    d.deploy_ok("r1");
    let port = d.proxy_port();
    let before = web_pid(&d).expect("web pid");

    let mut flood = Vec::new();
    for _ in 0..400 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("flood connect");
        s.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        flood.push(s);
    }
    // The cap is reached: status still answers and says so.
    d.wait_status("the connection cap", 20, |s| {
        s["proxy"]["atConnectionLimit"] == true && s["proxy"]["openConnections"] == 96
    });
    assert!(
        d.daemon
            .stdout
            .wait_for("proxy connection limit reached", Duration::from_secs(5))
            .is_some()
    );

    // The app dies during the flood: it is restarted (spawning needs
    // descriptors for its output pipes).
    // SAFETY: signalling the pid the daemon reports for its own child.
    unsafe {
        libc::kill(before as i32, libc::SIGKILL);
    }
    d.wait_status("a restarted web process", 20, |s| {
        let Some(active) = s["activeReleaseId"].as_str() else {
            return false;
        };
        s["releases"].as_array().is_some_and(|rs| {
            rs.iter().any(|r| {
                r["releaseId"] == active
                    && process(r, "web")["state"] == "running"
                    && process(r, "web")["pid"]
                        .as_u64()
                        .is_some_and(|p| p != before)
            })
        })
    });
    let spawn_failures: Vec<String> = d
        .daemon
        .stdout
        .all()
        .into_iter()
        .filter(|l| l.contains("process restart failed"))
        .collect();
    assert!(spawn_failures.is_empty(), "{spawn_failures:?}");

    // The flood ends: the site serves again, from the restarted process.
    drop(flood);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match get(port, "/") {
            Ok((200, body)) if !body.contains(&format!("pid {before}")) => break,
            other if Instant::now() > deadline => panic!("site not back: {other:?}"),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    d.wait_status("the cap cleared", 20, |s| {
        s["proxy"]["atConnectionLimit"] == false
    });
}
