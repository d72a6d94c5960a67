//! The daemon: startup order, the core loop that owns all daemon state,
//! status building, shutdown. See docs/daemon.md for the thread map.
//!
//! Start order: config (by the caller) -> probe the control path (a live
//! daemon is reported before anything binds) -> bind the proxy port ->
//! bind the control socket (mode/owner applied) -> start the supervisor,
//! control and signal threads -> `control socket listening` -> READY=1.

pub mod activation;
pub mod adopt;
pub mod bootstrap;
pub mod core;
pub mod deploy;
pub mod handover;
pub mod liveness;
pub mod notify;
pub mod ops;
pub mod orphans;
pub mod persist;
pub mod pgroup;
pub mod portwatch;
pub mod procinfo;
pub mod proxy_port;
pub mod recover;
pub mod replace;
mod resume;
mod startup;
pub mod state;
pub mod statefile;
pub mod status;
pub mod takeover;

use crossbeam_channel::unbounded;

use self::core::{Core, CoreMsg};
use self::proxy_port::ProxyPort;
use crate::config::Config;
use crate::control::bind;
use crate::control::server::{ControlServer, IncomingSink};
use crate::events::{Data, Event, EventRing};
use crate::supervisor::{Sink, Supervisor, spawn};
use crate::{log, runtime};

/// How the daemon was asked to start.
#[derive(Default)]
pub struct Start {
    /// The file the config came from (reloaded before each deploy).
    pub config_path: Option<String>,
    /// Descriptors passed by socket activation: the proxy listener is
    /// taken from them instead of bound.
    pub inherited: Option<activation::Inherited>,
    /// Foreground bootstrap or takeover of a release.
    pub boot: Option<bootstrap::Boot>,
    /// Started by `upgrade`: the previous program's world.
    pub handover: Option<handover::Handover>,
}

/// Runs a foreground daemon until shutdown. Startup errors come back as
/// `Err(message)` (nothing left bound); otherwise the exit code.
///
/// Plain start: proxy, control socket, ready. Bootstrap: proxy (503 until
/// the release is active), deploy, then the control socket. Takeover:
/// nothing bound and no orphan report; deploy, retire the current owner
/// (its listener comes along), then proxy and control socket.
pub fn run(config: Config, start: Start) -> Result<i32, String> {
    if let Some(doc) = start.handover {
        return resume::run(config, doc, start.config_path);
    }
    let mut events = EventRing::default();
    let mut record = |e: Event| {
        log::event(&e);
        events.push(e);
    };
    let takeover = start.boot.as_ref().is_some_and(|b| b.takeover);

    // A manifest that does not verify fails the start before anything binds.
    let runtime = runtime::for_daemon()?;
    // A live daemon on the control path is reported first; then the lock
    // and the state file: never start beside living orphans. A takeover
    // starts beside the live owner on purpose: it checks nothing here and
    // takes the lock once the owner has let it go (upkeep).
    let location = statefile::location(&config);
    let (lock, orphans, adoption) = if takeover {
        (None, Vec::new(), None)
    } else {
        startup::refuse_live_socket(&config.control.path)?;
        let guard = startup::check_state(&config, start.config_path.as_deref(), &location)?;
        for e in guard.events {
            record(e);
        }
        (guard.lock, guard.orphans, guard.adoption)
    };
    for o in &orphans {
        record(Event::new(
            "orphaned managed process detected",
            Data::new()
                .with("pid", o.pid)
                .with("processId", o.id.as_str())
                .with(
                    "releaseId",
                    o.release_id
                        .as_deref()
                        .map(serde_json::Value::from)
                        .unwrap_or_default(),
                ),
        ));
    }
    if !orphans.is_empty() {
        record(Event::new(
            "orphaned processes from a previous daemon",
            Data::new()
                .with("count", orphans.len())
                .with("hint", orphans::HINT),
        ));
    }

    raise_nofile_limit();
    let (mut proxy, proxy_events) = ProxyPort::prepare(&config.proxy, config.admin.as_ref())?;
    if !takeover {
        bind::clear_path(&config.control.path)?;
        let listener = match start.inherited {
            Some(fds) => {
                let want = crate::proxy::resolve(&config.proxy.host, config.proxy.port)
                    .map_err(|e| format!("cannot resolve proxy.host {}: {e}", config.proxy.host))?;
                activation::select(&fds, want)?
            }
            None => proxy_port::bind_listener(&config.proxy)?,
        };
        proxy.attach(listener)?;
        record(Event::new(
            "proxy listening",
            Data::new()
                .with("host", config.proxy.host.as_str())
                .with("port", proxy.port()),
        ));
        if let Some(addr) = proxy.handle().admin_addr() {
            record(Event::new(
                "admin listening",
                Data::new()
                    .with("host", addr.ip().to_string())
                    .with("port", addr.port()),
            ));
        }
    }
    let budget = proxy.handle().budget();
    if let Some(configured) = budget.clamped_from {
        record(Event::new(
            "proxy maxConnections clamped",
            Data::new()
                .with("configured", configured)
                .with("maxConnections", budget.max_connections)
                .with("fileLimit", crate::proxy::budget::nofile_limit()),
        ));
    }
    // A bootstrap exposes the control socket only once its release is up.
    let listener = match start.boot {
        None => Some(bind::bind(&config.control)?),
        Some(_) => None,
    };

    spawn::become_subreaper();
    let (tx, rx) = unbounded::<CoreMsg>();
    let sup_tx = tx.clone();
    let sink: Sink = std::sync::Arc::new(move |n| {
        let _ = sup_tx.send(CoreMsg::Supervisor(n));
    });
    let supervisor =
        Supervisor::start(sink).map_err(|e| format!("Cannot start the supervisor: {e}"))?;

    let ctl_tx = tx.clone();
    let incoming: IncomingSink = std::sync::Arc::new(move |i| {
        let _ = ctl_tx.send(CoreMsg::Control(i));
    });
    let path = config.control.path.clone();
    let control = match listener {
        Some(listener) => match ControlServer::start(listener, path.clone(), incoming.clone()) {
            Ok(c) => Some(c),
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Err(format!("Cannot serve the control socket: {e}"));
            }
        },
        None => None,
    };
    start_signal_thread(tx.clone()).map_err(|e| format!("Cannot install signal handlers: {e}"))?;

    if control.is_some() {
        record(Event::new(
            "control socket listening",
            Data::new().with("path", path.as_str()),
        ));
    }
    forward_proxy_events(proxy_events, tx.clone())?;
    let boot_config = start.boot.as_ref().map(|_| config.clone());
    let mut core = Core::new(
        config,
        events,
        supervisor.handle(),
        proxy,
        tx.clone(),
        orphans,
    );
    core.set_config_path(start.config_path);
    core.set_started_from(started_from());
    core.set_runtime(runtime);
    core.set_lock(lock);
    if let Some(plan) = adoption {
        // Before the first state write: the adopted processes are in it.
        core.adopt(plan);
    }
    match (control, start.boot) {
        (Some(control), _) => {
            core.set_control(control);
            if let Err(e) = core.start_persistence(&location.path) {
                core.record(Event::new(
                    "state persist failed",
                    Data::new().with("error", format!("cannot start the state writer: {e}")),
                ));
            }
            notify::ready();
        }
        (None, Some(boot)) => {
            core.set_bootstrap(boot.tuple.to_status());
            let config = boot_config.ok_or("bootstrap without a config")?;
            bootstrap::spawn(boot, config, incoming, tx)
                .map_err(|e| format!("Cannot start the bootstrap thread: {e}"))?;
        }
        (None, None) => return Err("no control socket to serve".into()),
    }
    let code = core.run(rx);
    supervisor.shutdown();
    log::flush(std::time::Duration::from_secs(2));
    Ok(code)
}

/// The file this program was started from, as a path that names the
/// installed binary (not `/proc/self/exe`, which follows the old file once
/// it is replaced): argv[0] made absolute, looked up in `PATH` when bare.
fn started_from() -> String {
    let exe = || {
        std::env::current_exe()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let Some(arg0) = std::env::args_os().next() else {
        return exe();
    };
    let arg0 = std::path::PathBuf::from(arg0);
    if arg0.is_absolute() {
        return arg0.to_string_lossy().into_owned();
    }
    if arg0.components().count() > 1 {
        return std::env::current_dir()
            .map(|d| d.join(&arg0).to_string_lossy().into_owned())
            .unwrap_or_else(|_| exe());
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(&arg0))
                .find(|p| p.is_file())
        })
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(exe)
}

/// A WebSocket tunnel costs two descriptors: raise the soft limit to the
/// hard one so ~10,000 idle tunnels fit. Children inherit it.
/// The bench tools use it too.
pub fn raise_nofile_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Starts the thread that passes the proxy's events on to the core.
pub(super) fn forward_proxy_events(
    events: crossbeam_channel::Receiver<crate::proxy::ProxyEvent>,
    tx: crossbeam_channel::Sender<CoreMsg>,
) -> Result<(), String> {
    std::thread::Builder::new()
        .name("proxy-events".into())
        .spawn(move || {
            for event in events {
                if tx.send(CoreMsg::Proxy(event)).is_err() {
                    return;
                }
            }
        })
        .map(drop)
        .map_err(|e| format!("Cannot start the proxy event thread: {e}"))
}

/// SIGTERM and SIGINT mean "clean shutdown" (repeated signals join the
/// running shutdown instead of killing the daemon mid-way); SIGHUP means
/// "reopen the access log" and never stops the daemon.
pub(super) fn start_signal_thread(tx: crossbeam_channel::Sender<CoreMsg>) -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if tx.send(CoreMsg::Signal(sig)).is_err() {
                    return;
                }
            }
        })?;
    Ok(())
}
