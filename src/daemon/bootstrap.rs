//! Foreground bootstrap and owner takeover: `daemon --config <abs>
//! --release-path <abs> --release-id <id> --revision <rev>
//! [--boot-attestation sha256:…] [--takeover-owner]`.
//!
//! [`validate`] checks the options before anything is loaded or bound.
//! [`spawn`] runs the activation on its own thread once the core runs: the
//! normal deploy (through the core, as a request with a local reply), then
//! for a takeover the `retire-owner` handshake that brings the previous
//! owner's proxy listener along (or binds the moment the port frees), then
//! the control socket. The core exposes everything in one step
//! ([`BootMsg::Expose`]); any failure is [`BootMsg::Failed`].

use std::net::TcpListener;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use mio::net::UnixListener;
use serde_json::Value;

use super::core::CoreMsg;
use super::portwatch::{self, PortWatch};
use super::takeover;
use crate::config::Config;
use crate::control::protocol::{Request, is_attestation};
use crate::control::server::{Incoming, IncomingSink, ReplyTo};

/// How long a takeover waits for the previous owner to answer and for the
/// proxy port to free.
pub const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(10);

/// The release a bootstrap activates (echoed as `status.bootstrap`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tuple {
    pub release_path: String,
    pub release_id: String,
    pub revision: String,
    pub attestation: Option<String>,
}

impl Tuple {
    /// `status.bootstrap`: `{attestation?, releaseId, releasePath, revision}`.
    pub fn to_status(&self) -> Value {
        let mut m = serde_json::Map::new();
        if let Some(a) = &self.attestation {
            m.insert("attestation".into(), a.as_str().into());
        }
        m.insert("releaseId".into(), self.release_id.as_str().into());
        m.insert("releasePath".into(), self.release_path.as_str().into());
        m.insert("revision".into(), self.revision.as_str().into());
        Value::Object(m)
    }
}

/// A bootstrap start: the tuple, and whether to take over from a running
/// owner instead of binding first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boot {
    pub tuple: Tuple,
    pub takeover: bool,
}

/// The daemon's bootstrap options as given on the command line.
#[derive(Debug, Default, Clone, Copy)]
pub struct Options<'a> {
    pub config: Option<&'a str>,
    pub release_path: Option<&'a str>,
    pub release_id: Option<&'a str>,
    pub revision: Option<&'a str>,
    pub attestation: Option<&'a str>,
}

/// The checks that run before the config is loaded, in the documented
/// order. `Ok(None)`: no tuple, a plain start.
pub fn validate(o: Options) -> Result<Option<Tuple>, String> {
    let any = o.release_path.is_some() || o.release_id.is_some() || o.revision.is_some();
    if !any {
        if o.attestation.is_some() {
            return Err(
                "--boot-attestation is only accepted together with --config, \
                        --release-path, --release-id and --revision."
                    .into(),
            );
        }
        return Ok(None);
    }
    let (Some(config), Some(release_path), Some(release_id), Some(revision)) =
        (o.config, o.release_path, o.release_id, o.revision)
    else {
        return Err(
            "--config, --release-path, --release-id and --revision must be provided together."
                .into(),
        );
    };
    check_path("--config", config)?;
    check_path("--release-path", release_path)?;
    check_identifier("--release-id", release_id)?;
    check_identifier("--revision", revision)?;
    if let Some(a) = o.attestation {
        if !is_attestation(a) {
            return Err(
                "--boot-attestation must use the canonical sha256:<64 lowercase hex> form.".into(),
            );
        }
    }
    match std::fs::metadata(release_path) {
        Err(e) => return Err(format!("--release-path is not accessible: {e}")),
        Ok(m) if !m.is_dir() => {
            return Err(format!(
                "--release-path must name a directory: {release_path}"
            ));
        }
        Ok(_) => {}
    }
    Ok(Some(Tuple {
        release_path: release_path.into(),
        release_id: release_id.into(),
        revision: revision.into(),
        attestation: o.attestation.map(str::to_owned),
    }))
}

/// `--takeover-owner` (checked after the config loaded) needs the tuple
/// and the attestation.
pub fn check_takeover(tuple: Option<&Tuple>) -> Result<(), String> {
    match tuple {
        Some(t) if t.attestation.is_some() => Ok(()),
        _ => Err(
            "--takeover-owner needs --release-path, --release-id, --revision and \
                  --boot-attestation."
                .into(),
        ),
    }
}

fn check_path(flag: &str, path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("{flag} must be an absolute path: {path}"));
    }
    if !is_normalized(path) {
        return Err(format!(
            "{flag} must be normalized, no unsafe traversal (., .., //): {path}"
        ));
    }
    Ok(())
}

/// Equal to its lexically normalized form: no `.`, `..` or empty segment
/// (a trailing slash is allowed).
fn is_normalized(path: &str) -> bool {
    let inner = path.trim_start_matches('/');
    if path.len() - inner.len() > 1 {
        return false;
    }
    let inner = inner.strip_suffix('/').unwrap_or(inner);
    inner.is_empty()
        || inner
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

/// `^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$`
fn check_identifier(flag: &str, value: &str) -> Result<(), String> {
    let b = value.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 200
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{flag} must be a non-empty safe identifier of letters, numbers, dots, \
             underscores, hyphens (at most 200, starting with a letter or number): {value:?}"
        ))
    }
}

/// What the activation thread hands the core.
pub enum BootMsg {
    /// The release is active: start serving. `proxy` is the listener for
    /// a takeover (already serving otherwise), with how it was obtained.
    Expose {
        proxy: Option<(TcpListener, Obtained)>,
        control: UnixListener,
        incoming: IncomingSink,
    },
    /// The activation failed: stop what it started, exit 1.
    Failed { release_id: String, error: String },
}

/// How a takeover got its proxy listener.
pub enum Obtained {
    /// Passed over the control connection: the port never closed.
    HandedOver,
    /// Bound once the previous owner closed it; the port was closed for
    /// at most `gap`.
    Bound { gap: Duration },
}

/// Runs the activation on its own thread.
pub fn spawn(
    boot: Boot,
    config: Config,
    incoming: IncomingSink,
    core: Sender<CoreMsg>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("bootstrap".into())
        .spawn(move || {
            let release_id = boot.tuple.release_id.clone();
            let msg = match activate(&boot, &config, incoming) {
                Ok(msg) => msg,
                Err(error) => BootMsg::Failed { release_id, error },
            };
            let _ = core.send(CoreMsg::Boot(msg));
        })?;
    Ok(())
}

fn activate(boot: &Boot, config: &Config, incoming: IncomingSink) -> Result<BootMsg, String> {
    let t = &boot.tuple;
    let (reply, answer) = ReplyTo::local();
    incoming(Incoming::Request {
        request: Request::Deploy {
            release_path: t.release_path.clone(),
            release_id: Some(t.release_id.clone()),
            revision: Some(t.revision.clone()),
            progress: false,
            canary: None,
        },
        reply,
    });
    answer.wait()?;
    let proxy = if boot.takeover {
        let attestation = t.attestation.as_deref().unwrap_or_default();
        Some(take_over(config, attestation)?)
    } else {
        None
    };
    if boot.takeover {
        // A stale file the previous owner left behind goes; a live
        // listener there is an error.
        crate::control::bind::clear_path(&config.control.path)?;
    }
    let control = crate::control::bind::bind(&config.control)?;
    Ok(BootMsg::Expose {
        proxy,
        control,
        incoming,
    })
}

/// Retires the current owner; its listener when it hands it over, else
/// the port bound the moment it frees (watched from before the request, as
/// the owner closes its listener before it answers).
fn take_over(config: &Config, attestation: &str) -> Result<(TcpListener, Obtained), String> {
    let path = &config.control.path;
    let want = crate::proxy::resolve(&config.proxy.host, config.proxy.port)
        .map_err(|e| format!("cannot resolve proxy.host {}: {e}", config.proxy.host))?;
    let started = Instant::now();
    // Port 0 is any port: nothing to wait for.
    let watch = if want.port() == 0 {
        None
    } else {
        Some(
            PortWatch::start(want, started + 2 * TAKEOVER_TIMEOUT)
                .map_err(|e| format!("cannot watch the proxy port: {e}"))?,
        )
    };
    let handed = takeover::retire_owner(path, attestation, TAKEOVER_TIMEOUT)?;
    if let Some(fd) = handed {
        match takeover::usable(fd, want) {
            Ok(listener) => return Ok((listener, Obtained::HandedOver)),
            Err(e) => eprintln!("rollbridge: {e}; binding the port instead"),
        }
    }
    let (listener, gap) = match watch {
        Some(w) => w.wait(TAKEOVER_TIMEOUT)?,
        None => portwatch::bind_when_free(
            want,
            Instant::now() + TAKEOVER_TIMEOUT,
            &AtomicBool::new(false),
        )?,
    };
    Ok((listener, Obtained::Bound { gap }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts<'a>(rp: &'a str, id: &'a str, rev: &'a str) -> Options<'a> {
        Options {
            config: Some("/etc/rb.json"),
            release_path: Some(rp),
            release_id: Some(id),
            revision: Some(rev),
            attestation: None,
        }
    }

    #[test]
    fn no_tuple_is_a_plain_start() {
        assert_eq!(validate(Options::default()), Ok(None));
    }

    #[test]
    fn attestation_without_tuple_is_rejected() {
        let e = validate(Options {
            attestation: Some("sha256:x"),
            ..Options::default()
        })
        .unwrap_err();
        assert!(
            e.starts_with("--boot-attestation is only accepted together"),
            "{e}"
        );
    }

    #[test]
    fn partial_tuple_is_rejected() {
        let e = validate(Options {
            release_id: Some("v1"),
            ..Options::default()
        })
        .unwrap_err();
        assert!(e.contains("must be provided together"), "{e}");
        let mut o = opts("/tmp", "v1", "r1");
        o.config = None;
        assert!(
            validate(o)
                .unwrap_err()
                .contains("must be provided together")
        );
    }

    #[test]
    fn relative_or_unnormalized_paths_are_rejected() {
        let e = validate(opts("tmp", "v1", "r1")).unwrap_err();
        assert!(
            e.starts_with("--release-path must be an absolute path"),
            "{e}"
        );
        for bad in ["/tmp/../etc", "/tmp/./x", "//tmp", "/tmp//x"] {
            let e = validate(opts(bad, "v1", "r1")).unwrap_err();
            assert!(
                e.starts_with("--release-path must be normalized"),
                "{bad}: {e}"
            );
        }
        let mut o = opts("/tmp", "v1", "r1");
        o.config = Some("rb.json");
        assert!(
            validate(o)
                .unwrap_err()
                .starts_with("--config must be an absolute")
        );
        assert!(is_normalized("/"));
        assert!(is_normalized("/srv/app/"));
    }

    #[test]
    fn unsafe_identifiers_are_rejected() {
        let e = validate(opts("/tmp", "-v1", "r1")).unwrap_err();
        assert!(
            e.starts_with("--release-id must be a non-empty safe identifier"),
            "{e}"
        );
        let e = validate(opts("/tmp", "v1", "r 1")).unwrap_err();
        assert!(e.starts_with("--revision must be"), "{e}");
        let long = "a".repeat(201);
        assert!(validate(opts("/tmp", &long, "r1")).is_err());
        assert!(check_identifier("x", &"a".repeat(200)).is_ok());
    }

    #[test]
    fn attestation_must_be_canonical() {
        let mut o = opts("/tmp", "v1", "r1");
        let upper = format!("sha256:{}", "A".repeat(64));
        o.attestation = Some(&upper);
        let e = validate(o).unwrap_err();
        assert!(
            e.starts_with("--boot-attestation must use the canonical"),
            "{e}"
        );
    }

    #[test]
    fn release_path_must_be_an_existing_directory() {
        let e = validate(opts("/nonexistent-rb-release", "v1", "r1")).unwrap_err();
        assert!(e.starts_with("--release-path is not accessible: "), "{e}");
        let e = validate(opts("/etc/hostname", "v1", "r1")).unwrap_err();
        assert!(e.starts_with("--release-path must name a directory"), "{e}");
    }

    #[test]
    fn status_echo_keeps_key_order_and_omits_a_missing_attestation() {
        let mut t = validate(opts("/tmp", "v1", "r1")).unwrap().unwrap();
        assert_eq!(
            t.to_status().to_string(),
            r#"{"releaseId":"v1","releasePath":"/tmp","revision":"r1"}"#
        );
        t.attestation = Some("sha256:ab".into());
        let keys: Vec<String> = t.to_status().as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            ["attestation", "releaseId", "releasePath", "revision"]
        );
    }

    #[test]
    fn takeover_needs_tuple_and_attestation() {
        assert!(check_takeover(None).is_err());
        let mut t = validate(opts("/tmp", "v1", "r1")).unwrap().unwrap();
        assert!(check_takeover(Some(&t)).is_err());
        t.attestation = Some("sha256:ab".into());
        assert!(check_takeover(Some(&t)).is_ok());
    }
}
