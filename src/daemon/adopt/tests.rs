use super::*;

fn info(pid: i32, pgrp: i32, start: u64) -> ProcInfo {
    ProcInfo {
        pid,
        state: 'S',
        ppid: 1,
        pgrp,
        start,
    }
}

#[test]
fn a_live_process_with_its_start_time_and_group_is_adopted() {
    assert_eq!(
        judge(Some(100), Some(7), Some(100), Some(info(100, 100, 7))),
        Verdict::Adopt { root: 1 }
    );
}

#[test]
fn a_recycled_pid_is_dropped_not_adopted() {
    assert_eq!(
        judge(Some(100), Some(7), Some(100), Some(info(100, 100, 8))),
        Verdict::Reused
    );
}

#[test]
fn a_gone_or_zombie_pid_is_dropped() {
    assert_eq!(judge(Some(100), Some(7), Some(100), None), Verdict::Gone);
    let zombie = ProcInfo {
        state: 'Z',
        ..info(100, 100, 7)
    };
    assert_eq!(
        judge(Some(100), Some(7), Some(100), Some(zombie)),
        Verdict::Gone
    );
}

#[test]
fn without_a_start_time_a_live_pid_stays_a_report_only_orphan() {
    assert_eq!(
        judge(Some(100), None, None, Some(info(100, 100, 7))),
        Verdict::Unverified
    );
}

#[test]
fn a_process_that_left_its_group_is_not_adopted() {
    assert_eq!(
        judge(Some(100), Some(7), Some(100), Some(info(100, 555, 7))),
        Verdict::GroupChanged
    );
}

#[test]
fn no_pid_means_not_running() {
    assert_eq!(judge(None, None, None, None), Verdict::NotRunning);
}

#[test]
fn plan_restores_releases_services_singletons_with_counters() {
    let snap = serde_json::json!({
        "activeReleaseId": "v2",
        "orphans": [{"id": "old", "pid": 900, "releaseId": null}],
        "releases": [
            {"releaseId": "v1", "releasePath": "/r/v1", "revision": "v1", "state": "stopped",
             "ports": {"web": 4001}, "processes": [{"id": "web", "restarts": 1, "state": "stopped"}]},
            {"releaseId": "v2", "releasePath": "/r/v2", "revision": "rev2", "state": "active",
             "activatedAt": "2026-01-01T00:00:00.000Z", "ports": {"web": 4002, "db": 5000},
             "processes": [
                {"id": "worker#0", "pid": 200, "pgid": 200, "startTime": 20, "restarts": 3,
                 "memoryRestarts": 1, "lastStartReason": "crash", "startedAt": "2026-01-01T00:00:01.000Z"},
                {"id": "web", "pid": 201, "pgid": 201, "startTime": 21}]}
        ],
        "services": [{"id": "db", "process": {"id": "db", "pid": 300, "pgid": 300, "startTime": 30}}],
        "singletons": [{"id": "cron", "process": {"id": "cron", "pid": 400, "pgid": 400, "startTime": 99}}],
        "starting": {"releaseId": "v3", "processes": [{"id": "web", "pid": 500, "pgid": 500, "startTime": 50}]}
    });
    let facts = |pid: u32| -> Option<ProcInfo> {
        match pid {
            200 => Some(info(200, 200, 20)),
            201 => Some(info(201, 201, 21)),
            // The db service is gone; the cron pid now belongs to another
            // process (other start time).
            400 => Some(info(400, 400, 41)),
            500 => Some(info(500, 500, 50)),
            900 => Some(info(900, 900, 1)),
            _ => None,
        }
    };
    let p = plan(&snap, &facts);
    assert_eq!(p.active_release_id.as_deref(), Some("v2"));
    assert_eq!(p.releases.len(), 2);
    let v2 = &p.releases[1];
    assert_eq!(
        (v2.state, v2.revision.as_str(), v2.path.as_str()),
        (ReleaseState::Active, "rev2", "/r/v2")
    );
    assert_eq!(
        v2.ports,
        [("web".to_owned(), 4002), ("db".to_owned(), 5000)]
    );
    let worker = &v2.processes[0];
    assert_eq!(
        (
            worker.restarts,
            worker.memory_restarts,
            worker.last_start_reason
        ),
        (3, 1, Some(StartReason::Crash))
    );
    assert_eq!(worker.verdict, Verdict::Adopt { root: 1 });
    assert_eq!(p.releases[0].processes[0].verdict, Verdict::NotRunning);
    let adopted: Vec<_> = p.adopted().into_iter().map(|o| o.pid).collect();
    assert_eq!(adopted, [200, 201, 500]);
    let dropped: Vec<_> = p
        .dropped()
        .into_iter()
        .map(|(o, why)| (o.id, o.pid, why))
        .collect();
    assert_eq!(
        dropped,
        [
            ("db".to_owned(), 300, "gone"),
            ("cron".to_owned(), 400, "pid reused by another process")
        ]
    );
    assert_eq!(p.starting[0].0.as_deref(), Some("v3"));
    assert_eq!(p.orphans.len(), 1);
    assert_eq!(p.orphans[0].pid, 900);
    assert!(p.refused().is_empty());
}

#[test]
fn an_active_release_missing_from_the_snapshot_is_not_active() {
    let snap = serde_json::json!({"activeReleaseId": "ghost", "releases": []});
    assert_eq!(plan(&snap, &|_| None).active_release_id, None);
}

#[test]
fn plan_keeps_the_recorded_canary_with_its_percent_and_since() {
    let snap = serde_json::json!({
        "activeReleaseId": "v1",
        "canary": {"releaseId": "v2", "percent": 30, "since": "2026-01-01T00:00:00.000Z"},
        "releases": [
            {"releaseId": "v1", "state": "active", "ports": {"web": 4001},
             "processes": [{"id": "web", "pid": 201, "pgid": 201, "startTime": 21}]},
            {"releaseId": "v2", "state": "canary", "ports": {"web": 4002},
             "processes": [{"id": "web", "pid": 202, "pgid": 202, "startTime": 22}]}
        ]
    });
    let facts = |pid: u32| Some(info(pid as i32, pid as i32, u64::from(pid) - 180));
    let p = plan(&snap, &facts);
    assert_eq!(
        p.canary,
        Some(CanaryRecord {
            release_id: "v2".into(),
            percent: 30,
            since: "2026-01-01T00:00:00.000Z".into(),
        })
    );
    assert_eq!(p.releases[1].state, ReleaseState::Canary);
    assert_eq!(p.adopted().len(), 2);
}

#[test]
fn a_canary_naming_no_recorded_release_or_a_bad_percent_is_ignored() {
    let facts = |_: u32| None;
    for canary in [
        serde_json::json!({"releaseId": "v9", "percent": 30}),
        serde_json::json!({"releaseId": "v2", "percent": 0}),
        serde_json::json!({"releaseId": "v2", "percent": 100}),
        serde_json::json!({"releaseId": "v1", "percent": 30}),
        serde_json::Value::Null,
    ] {
        let snap = serde_json::json!({
            "activeReleaseId": "v1",
            "canary": canary,
            "releases": [{"releaseId": "v1", "state": "active"}, {"releaseId": "v2", "state": "canary"}]
        });
        assert_eq!(plan(&snap, &facts).canary, None, "{canary}");
    }
}

#[test]
fn a_cut_short_replacement_keeps_the_named_instance_and_stops_the_other() {
    // After the switch: the release names the new instance (202); the old
    // one (201), still draining, is listed under `replacing`.
    let snap = serde_json::json!({
        "activeReleaseId": "v1",
        "releases": [{"releaseId": "v1", "state": "active", "ports": {"web": 4002},
            "processes": [{"id": "web", "pid": 202, "pgid": 202, "startTime": 22}]}],
        "replacing": [
            {"releaseId": "v1", "id": "web", "pid": 201, "pgid": 201, "startTime": 21},
            // The same pid as the named instance: never listed twice.
            {"releaseId": "v1", "id": "web", "pid": 202, "pgid": 202, "startTime": 22},
            // Gone meanwhile: dropped, never signalled.
            {"releaseId": "v1", "id": "web", "pid": 203, "pgid": 203, "startTime": 23}
        ]
    });
    let facts = |pid: u32| (pid != 203).then(|| info(pid as i32, pid as i32, u64::from(pid) - 180));
    let p = plan(&snap, &facts);
    assert_eq!(p.releases[0].processes[0].pid, Some(202));
    assert_eq!(
        p.releases[0].processes[0].verdict,
        Verdict::Adopt { root: 1 }
    );
    let replaced: Vec<(Option<&str>, Option<u32>, Verdict)> = p
        .replaced
        .iter()
        .map(|(r, rec)| (r.as_deref(), rec.pid, rec.verdict))
        .collect();
    assert_eq!(
        replaced,
        [
            (Some("v1"), Some(201), Verdict::Adopt { root: 1 }),
            (Some("v1"), Some(203), Verdict::Gone)
        ]
    );
    // Both living ones are taken over (the other only to be stopped).
    assert_eq!(p.adopted().len(), 2);
    assert_eq!(p.dropped().len(), 1);
}
