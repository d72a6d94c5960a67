//! `promote` on an operation thread: the canary becomes the active release
//! exactly as at the switch of a normal deploy (the core switches the
//! proxy and adopts the canary's config; then service definitions follow
//! it, singletons swap and the previous release drains).

use crossbeam_channel::bounded;

use super::build::ReleaseIds;
use super::{DeployMsg, Outcome, Plan, after_switch, send};
use crate::config::Config;
use crate::control::server::ReplyTo;
use crate::daemon::state::Release;

/// The switch the core made for a promote.
pub struct Switched {
    pub previous: Option<String>,
    /// The promoted release (now active).
    pub release: Box<Release>,
    /// The config it was started with (now adopted).
    pub config: Box<Config>,
}

/// Runs the promote on its own thread (the op slot's), then replies with
/// the same object as `deploy`.
pub fn spawn(plan: Plan, reply: ReplyTo) {
    let core = plan.core.clone();
    crate::daemon::ops::spawn_op("promote", core, reply, move || {
        run(&plan).map(Outcome::json)
    });
}

fn run(plan: &Plan) -> Result<Outcome, String> {
    let (tx, rx) = bounded(1);
    send(&plan.core, DeployMsg::Promote { reply: tx });
    let switched = rx
        .recv()
        .map_err(|_| "Rollbridge is shutting down".to_owned())??;
    let r = &switched.release;
    let ids = ReleaseIds {
        id: &r.id,
        path: &r.path,
        revision: &r.revision,
        ports: &r.ports,
    };
    after_switch(
        plan,
        &switched.config,
        &ids,
        &plan.services,
        switched.previous,
    )
}
