//! The start of a program that `upgrade` exec'd into: nothing is bound or
//! spawned. The listeners, the lock, the managed processes with their
//! output pipes and the open proxy connections come from the handover
//! document, and so does the core's world. Then the `upgrade` request that
//! caused it all is answered from here.

use std::io::Write;
use std::os::unix::net::UnixStream;

use crossbeam_channel::unbounded;

use super::core::{Core, CoreMsg};
use super::handover::{Handover, fallback};
use super::liveness::DaemonLock;
use super::proxy_port::ProxyPort;
use super::{forward_proxy_events, notify, start_signal_thread, statefile};
use crate::config::Config;
use crate::control::protocol::response_line;
use crate::control::server::{ControlServer, IncomingSink};
use crate::events::{Data, Event, EventRing};
use crate::inherit::adopt;
use crate::supervisor::{Sink, Supervisor, spawn};
use crate::{log, runtime};

pub fn run(config: Config, doc: Handover, config_path: Option<String>) -> Result<i32, String> {
    let runtime = runtime::for_daemon()?;
    super::raise_nofile_limit();
    let Handover {
        from_version,
        started_from,
        reply_fd,
        listeners,
        core: world,
        proxy_active,
        next_key,
        processes,
        connections,
        ..
    } = doc;
    let reply = reply_fd.and_then(adopt).map(UnixStream::from);
    let location = statefile::location(&config);
    let lock = listeners
        .lock
        .and_then(adopt)
        .map(|fd| DaemonLock::adopt(fd, &location.path));
    let proxy_fd = adopt(listeners.proxy).ok_or("the proxy listener was not handed over")?;
    let admin = listeners
        .admin
        .and_then(adopt)
        .map(std::net::TcpListener::from);
    let control_fd = adopt(listeners.control).ok_or("the control socket was not handed over")?;

    let (mut proxy, proxy_events) = ProxyPort::prepare(&config.proxy, config.admin.as_ref())?;
    // Commands wait for the loop: routing, maintenance and pause are in
    // place before the first connection is accepted.
    if let Some((id, addr)) = proxy_active {
        if let Ok(addr) = addr.parse() {
            let _ = proxy.handle().set_active(id, addr);
        }
    }
    world.apply_traffic(proxy.handle());
    proxy.attach_with(std::net::TcpListener::from(proxy_fd), admin)?;
    let control_listener = std::os::unix::net::UnixListener::from(control_fd);
    control_listener
        .set_nonblocking(true)
        .map_err(|e| format!("Cannot serve the control socket: {e}"))?;
    let control_listener = mio::net::UnixListener::from_std(control_listener);

    spawn::become_subreaper();
    let (tx, rx) = unbounded::<CoreMsg>();
    let sup_tx = tx.clone();
    let sink: Sink = std::sync::Arc::new(move |n| {
        let _ = sup_tx.send(CoreMsg::Supervisor(n));
    });
    let supervisor =
        Supervisor::start(sink).map_err(|e| format!("Cannot start the supervisor: {e}"))?;
    // Children that exited meanwhile are zombies now; the supervisor's
    // first reap finds them among these pids.
    supervisor.handle().import(processes, next_key);

    let ctl_tx = tx.clone();
    let incoming: IncomingSink = std::sync::Arc::new(move |i| {
        let _ = ctl_tx.send(CoreMsg::Control(i));
    });
    let control = ControlServer::start(control_listener, config.control.path.clone(), incoming)
        .map_err(|e| format!("Cannot serve the control socket: {e}"))?;
    start_signal_thread(tx.clone()).map_err(|e| format!("Cannot install signal handlers: {e}"))?;
    forward_proxy_events(proxy_events, tx.clone())?;

    let total = connections.len();
    let carried = proxy.handle().import(connections).unwrap_or(0);

    let mut core = Core::new(
        config,
        EventRing::default(),
        supervisor.handle(),
        proxy,
        tx.clone(),
        Vec::new(),
    );
    core.set_config_path(config_path);
    core.set_runtime(runtime);
    core.set_lock(lock);
    core.set_started_from(started_from);
    core.import_world(world);
    core.set_control(control);
    if let Err(e) = core.start_persistence(&location.path) {
        core.record(Event::new(
            "state persist failed",
            Data::new().with("error", format!("cannot start the state writer: {e}")),
        ));
    }
    fallback::panic_for_tests();
    // Taken over: from here on a failure is this program's own.
    fallback::release();
    let version = env!("CARGO_PKG_VERSION");
    let pid = std::process::id();
    let answer = match fallback::failure() {
        // The new program could not take over and came back here.
        Some(reason) => {
            let error = format!(
                "Upgrade failed: the new program could not take over ({reason}); \
                 rollbridge {version} serves on"
            );
            core.record(Event::new(
                "command failed",
                Data::new().with("error", error.as_str()),
            ));
            Err(error)
        }
        None => {
            core.record(Event::new(
                "daemon upgraded",
                Data::new()
                    .with("previousVersion", from_version.as_str())
                    .with("version", version)
                    .with("pid", pid)
                    .with("connections", carried)
                    .with("connectionsLost", total - carried),
            ));
            Ok(serde_json::json!({
                "message": "upgraded",
                "previousVersion": from_version,
                "version": version,
                "pid": pid,
            })
            .to_string())
        }
    };
    if let Some(mut stream) = reply {
        let mut line = response_line(&answer);
        line.push('\n');
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_write_timeout(Some(std::time::Duration::from_secs(2)));
        let _ = stream.write_all(line.as_bytes());
    }
    notify::ready();
    let code = core.run(rx);
    supervisor.shutdown();
    log::flush(std::time::Duration::from_secs(2));
    Ok(code)
}
