//! One passing and one failing case per validation rule.

use super::*;
use crate::config::model::*;

const PATH: &str = "/srv/apps/shop/rollbridge.json";

fn run(json: &str) -> Validation {
    validate(&Raw::from_json(json).unwrap(), Path::new(PATH))
}

/// A valid config with `web` (proxied) plus the given extra top-level
/// members (`top`) and extra members of the web process (`web`).
fn cfg(top: &str, web: &str) -> String {
    let sep = |s: &str| {
        if s.is_empty() {
            String::new()
        } else {
            format!(",{s}")
        }
    };
    format!(
        r#"{{"proxy":{{}},"processes":[{{"id":"web","policy":"proxied","command":"node s.js","port":{{"from":18000,"to":18099}}{}}}]{}}}"#,
        sep(web),
        sep(top)
    )
}

fn messages(v: &Validation) -> Vec<&str> {
    v.issues.iter().map(|i| i.message.as_str()).collect()
}

#[track_caller]
fn ok(json: &str) -> Config {
    let v = run(json);
    assert!(v.issues.is_empty(), "unexpected issues: {:?}", messages(&v));
    v.config
}

#[track_caller]
fn fails(json: &str, message: &str) {
    let v = run(json);
    assert!(
        messages(&v).contains(&message),
        "expected {message:?} in {:?}",
        messages(&v)
    );
    assert!(v.issues.iter().all(|i| !i.fix.is_empty()));
}

#[test]
fn minimal_config_gets_every_default() {
    let c = ok(&cfg("", ""));
    assert_eq!(c.application, "shop");
    assert_eq!(c.control.path, "/tmp/rollbridge-shop.sock");
    assert_eq!(c.control.mode, None);
    assert_eq!(c.proxy.host, "127.0.0.1");
    assert_eq!(c.proxy.port, 8182);
    assert_eq!(c.proxy.upstream_host, "127.0.0.1");
    assert_eq!(c.proxy.health_path, "/ping");
    assert_eq!(c.proxy.health_timeout_ms, 30000);
    assert_eq!(c.proxy.drain_timeout_ms, 60000);
    assert_eq!(c.proxy.force_stop_timeout_ms, 10000);
    assert_eq!(c.proxy.connect_retry_ms, 5000);
    assert_eq!(c.proxy.max_header_bytes, 65536);
    assert_eq!(
        c.release_retention,
        ReleaseRetention {
            keep: 10,
            max_age_ms: 0
        }
    );
    assert_eq!(c.state_path, None);
    assert_eq!(c.legacy_takeover, None);
    let p = &c.processes[0];
    assert_eq!(p.policy, Policy::Proxied);
    assert_eq!(p.cwd, None);
    assert_eq!(p.stop_signal, Signal::TERM);
    assert_eq!(p.graceful_stop, GracefulStop::Ms(10000));
    assert_eq!(p.restart_delay_ms, 1000);
    assert_eq!(p.restart, RestartConfig::default());
    assert_eq!(p.memory, None);
    assert_eq!(p.lifecycle, LifecycleConfig::default());
    assert_eq!(p.replicas, 1);
    assert_eq!(p.output_lines, 50);
    assert_eq!(p.deploy_strategy, DeployStrategy::Persistent);
    assert_eq!(
        p.health,
        Some(HealthConfig {
            path: "/ping".into(),
            timeout_ms: 30000,
            interval_ms: 250,
            start_delay_ms: 0,
            watch: Default::default()
        })
    );
}

#[test]
fn not_an_object_continues_as_empty() {
    let v = run("[1,2]");
    assert_eq!(
        messages(&v),
        [
            "Config must be an object",
            "proxy is required",
            "processes must be an array",
            "Config must define exactly one proxied process; found 0"
        ]
    );
}

#[test]
fn application_rules() {
    assert_eq!(ok(&cfg(r#""application":"tb""#, "")).application, "tb");
    assert_eq!(ok(&cfg(r#""application":"""#, "")).application, "");
    fails(
        &cfg(r#""application":5"#, ""),
        "application must be a string",
    );
}

#[test]
fn proxy_presence_and_type() {
    fails(r#"{"processes":[]}"#, "proxy is required");
    fails(r#"{"proxy":[],"processes":[]}"#, "proxy must be an object");
    fails(r#"{"proxy":null,"processes":[]}"#, "proxy is required");
}

#[test]
fn processes_must_be_an_array() {
    fails(
        r#"{"proxy":{},"processes":{}}"#,
        "processes must be an array",
    );
}

#[test]
fn proxy_fields() {
    let c = ok(&cfg("", "").replace(
        r#""proxy":{}"#,
        r#""proxy":{"host":"0.0.0.0","port":0,"healthPath":"/up","healthTimeoutMs":5,"drainTimeoutMs":6,"forceStopTimeoutMs":7,"connectRetryMs":0,"trustedProxies":["10.0.0.0/8"],"maxHeaderBytes":1024,"headerTimeoutMs":9,"clientIdleTimeoutMs":10,"upstreamIdleTimeoutMs":11}"#,
    ));
    assert_eq!(c.proxy.upstream_host, "127.0.0.1");
    assert_eq!(c.proxy.port, 0);
    assert_eq!(
        (
            c.proxy.health_timeout_ms,
            c.proxy.drain_timeout_ms,
            c.proxy.force_stop_timeout_ms
        ),
        (5, 6, 7)
    );
    assert_eq!(c.processes[0].graceful_stop, GracefulStop::Ms(7));
    assert_eq!(c.processes[0].health.as_ref().unwrap().path, "/up");
    assert_eq!(c.processes[0].health.as_ref().unwrap().timeout_ms, 5);
    assert_eq!(c.proxy.trusted_proxies, ["10.0.0.0/8"]);
    let with = |p: &str| cfg("", "").replace(r#""proxy":{}"#, &format!(r#""proxy":{{{p}}}"#));
    assert_eq!(ok(&with(r#""host":"::""#)).proxy.upstream_host, "127.0.0.1");
    assert_eq!(ok(&with(r#""host":"::1""#)).proxy.upstream_host, "::1");
    fails(&with(r#""host":1"#), "proxy.host must be a string");
    fails(&with(r#""port":"8182""#), "proxy.port must be a number");
    fails(
        &with(r#""port":70000"#),
        "proxy.port must be a whole port number between 0 and 65535",
    );
    fails(
        &with(r#""upstreamHost":false"#),
        "proxy.upstreamHost must be a string",
    );
    fails(
        &with(r#""healthPath":[]"#),
        "proxy.healthPath must be a string",
    );
    fails(
        &with(r#""healthTimeoutMs":"1""#),
        "proxy.healthTimeoutMs must be a number",
    );
    fails(
        &with(r#""drainTimeoutMs":{}"#),
        "proxy.drainTimeoutMs must be a number",
    );
    fails(
        &with(r#""forceStopTimeoutMs":true"#),
        "proxy.forceStopTimeoutMs must be a number",
    );
    fails(
        &with(r#""connectRetryMs":-1"#),
        "proxy.connectRetryMs must be a non-negative number",
    );
    fails(
        &with(r#""trustedProxies":"127.0.0.1""#),
        "proxy.trustedProxies must be an array",
    );
    fails(
        &with(r#""trustedProxies":["nope"]"#),
        "proxy.trustedProxies[0] must be an IP address or CIDR range",
    );
    fails(
        &with(r#""maxHeaderBytes":0"#),
        "proxy.maxHeaderBytes must be a positive integer",
    );
    fails(
        &with(r#""headerTimeoutMs":0"#),
        "proxy.headerTimeoutMs must be a positive number",
    );
}

#[test]
fn underscores_in_headers_is_a_boolean_off_by_default() {
    assert!(!ok(&cfg("", "")).proxy.underscores_in_headers);
    let with = |p: &str| cfg("", "").replace(r#""proxy":{}"#, &format!(r#""proxy":{{{p}}}"#));
    assert!(
        ok(&with(r#""underscoresInHeaders":true"#))
            .proxy
            .underscores_in_headers
    );
    fails(
        &with(r#""underscoresInHeaders":"yes""#),
        "proxy.underscoresInHeaders must be a boolean",
    );
}

#[test]
fn control_fields() {
    let c = ok(&cfg(
        r#""control":{"path":"/run/x.sock","mode":"0o660","owner":"deploy","group":"1001"}"#,
        "",
    ));
    assert_eq!(c.control.path, "/run/x.sock");
    assert_eq!(c.control.mode, Some(0o660));
    assert_eq!(c.control.owner, Some(IdOrName::Name("deploy".into())));
    assert_eq!(c.control.group, Some(IdOrName::Name("1001".into())));
    fails(&cfg(r#""control":5"#, ""), "control must be an object");
    fails(
        &cfg(r#""control":{"path":1}"#, ""),
        "control.path must be a string",
    );
    fails(
        &cfg(r#""control":{"owner":""}"#, ""),
        "control.owner must be a non-negative integer id or a name",
    );
    fails(
        &cfg(r#""control":{"group":-1}"#, ""),
        "control.group must be a non-negative integer id or a name",
    );
}

#[test]
fn control_mode_forms() {
    let mode = |m: &str| {
        run(&cfg(&format!(r#""control":{{"mode":{m}}}"#), ""))
            .config
            .control
            .mode
    };
    assert_eq!(mode(r#""660""#), Some(0o660));
    assert_eq!(mode(r#""0660""#), Some(0o660));
    assert_eq!(mode(r#""0o660""#), Some(0o660));
    assert_eq!(mode(r#""0""#), Some(0));
    assert_eq!(mode("432"), Some(432));
    for bad in [
        r#""1777""#,
        r#""abc""#,
        "660",
        "1.5",
        r#""0O660""#,
        r#""""#,
        "true",
    ] {
        fails(
            &cfg(&format!(r#""control":{{"mode":{bad}}}"#), ""),
            "control.mode must be an octal file mode between 0 and 0o777",
        );
    }
}

#[test]
fn process_must_be_an_object() {
    let v = run(&cfg("", "").replace(r#""processes":["#, r#""processes":["x","#));
    assert_eq!(messages(&v), ["processes[0] must be an object"]);
}

#[test]
fn id_and_command_are_required_strings() {
    fails(
        r#"{"proxy":{},"processes":[{"policy":"proxied","command":"x","port":1}]}"#,
        "processes[0].id is required",
    );
    fails(
        r#"{"proxy":{},"processes":[{"id":7,"policy":"proxied","command":"x","port":1}]}"#,
        "processes[0].id must be a string",
    );
    fails(
        r#"{"proxy":{},"processes":[{"id":"w","policy":"proxied","port":1}]}"#,
        "processes[0].command is required",
    );
    fails(
        r#"{"proxy":{},"processes":[{"id":"w","policy":"proxied","command":["x"],"port":1}]}"#,
        "processes[0].command must be a string",
    );
}

#[test]
fn cwd_is_optional_and_null_reads_as_required() {
    assert_eq!(
        ok(&cfg("", r#""cwd":"{{releasePath}}/b""#)).processes[0]
            .cwd
            .as_deref(),
        Some("{{releasePath}}/b")
    );
    assert_eq!(ok(&cfg("", r#""cwd":"""#)).processes[0].cwd, None);
    fails(&cfg("", r#""cwd":null"#), "processes[0].cwd is required");
    fails(&cfg("", r#""cwd":1"#), "processes[0].cwd must be a string");
}

#[test]
fn env_values_must_be_strings() {
    let c = ok(&cfg("", r#""env":{"Z":"1","A":"{{port}}"}"#));
    assert_eq!(
        c.processes[0].env,
        vec![("Z".into(), "1".into()), ("A".into(), "{{port}}".into())]
    );
    fails(
        &cfg("", r#""env":[]"#),
        "processes[0].env must be an object",
    );
    fails(
        &cfg("", r#""env":{"N":3}"#),
        "processes[0].env.N must be a string",
    );
    fails(
        &cfg("", r#""env":{"N":null}"#),
        "processes[0].env.N is required",
    );
}

#[test]
fn policy_rules() {
    fails(
        &cfg("", r#""policy":"web""#),
        "processes[0].policy must be one of: proxied, companion, singleton, service",
    );
    fails(
        &cfg("", r#""policy":1"#),
        "processes[0].policy must be a string",
    );
}

#[test]
fn port_forms() {
    let port = |p: &str| {
        ok(&cfg("", "").replace(
            r#""port":{"from":18000,"to":18099}"#,
            &format!(r#""port":{p}"#),
        ))
        .processes[0]
            .port
    };
    assert_eq!(
        port("7330"),
        Some(PortRange {
            from: 7330,
            to: 7330
        })
    );
    assert_eq!(port(r#"{"from":5}"#), Some(PortRange { from: 5, to: 5 }));
    assert_eq!(
        port(r#"{"from":0,"to":0}"#).map(|p| p.is_ephemeral()),
        Some(true)
    );
    let msg = "processes[0].port must be a positive port or valid {from, to} range";
    for bad in [
        "-1",
        r#""7330""#,
        r#"{"from":10,"to":5}"#,
        r#"{"from":-2}"#,
        "70000",
        "1.5",
        "true",
    ] {
        fails(
            &cfg("", "").replace(
                r#""port":{"from":18000,"to":18099}"#,
                &format!(r#""port":{bad}"#),
            ),
            msg,
        );
    }
}

#[test]
fn health_rules() {
    assert_eq!(ok(&cfg("", r#""health":false"#)).processes[0].health, None);
    assert_eq!(ok(&cfg("", r#""health":null"#)).processes[0].health, None);
    let h = ok(&cfg(
        "",
        r#""health":{"path":"/h","timeoutMs":100,"intervalMs":10,"startDelayMs":5}"#,
    ))
    .processes[0]
        .health
        .clone();
    assert_eq!(
        h,
        Some(HealthConfig {
            path: "/h".into(),
            timeout_ms: 100,
            interval_ms: 10,
            start_delay_ms: 5,
            watch: Default::default()
        })
    );
    fails(
        &cfg("", r#""health":true"#),
        "processes[0].health must be an object",
    );
    fails(
        &cfg("", r#""health":{"path":1}"#),
        "processes[0].health.path must be a string",
    );
    fails(
        &cfg("", r#""health":{"timeoutMs":"1"}"#),
        "processes[0].health.timeoutMs must be a number",
    );
    fails(
        &cfg("", r#""health":{"intervalMs":0}"#),
        "processes[0].health.intervalMs must be a positive number",
    );
    fails(
        &cfg("", r#""health":{"startDelayMs":-1}"#),
        "processes[0].health.startDelayMs must be a non-negative number",
    );
}

#[test]
fn stop_signal_rules() {
    assert_eq!(
        ok(&cfg("", r#""stopSignal":"SIGINT""#)).processes[0]
            .stop_signal
            .number,
        libc::SIGINT
    );
    assert_eq!(
        ok(&cfg("", r#""stopSignal":"SIGPWR""#)).processes[0]
            .stop_signal
            .name,
        "SIGPWR"
    );
    fails(
        &cfg("", r#""stopSignal":"TERM""#),
        "processes[0].stopSignal must be a valid signal name",
    );
    fails(
        &cfg("", r#""stopSignal":15"#),
        "processes[0].stopSignal must be a valid signal name",
    );
}

#[test]
fn graceful_stop_rules() {
    assert_eq!(
        ok(&cfg("", r#""gracefulStopMs":"indefinite""#)).processes[0].graceful_stop,
        GracefulStop::Indefinite
    );
    assert_eq!(
        ok(&cfg("", r#""gracefulStopMs":0"#)).processes[0].graceful_stop,
        GracefulStop::Ms(0)
    );
    fails(
        &cfg("", r#""gracefulStopMs":-1"#),
        "processes[0].gracefulStopMs must be a non-negative number",
    );
    fails(
        &cfg("", r#""gracefulStopMs":"forever""#),
        "processes[0].gracefulStopMs must be a number",
    );
}

#[test]
fn restart_delay_rules() {
    assert_eq!(
        ok(&cfg("", r#""restartDelayMs":250"#)).processes[0].restart_delay_ms,
        250
    );
    fails(
        &cfg("", r#""restartDelayMs":"250""#),
        "processes[0].restartDelayMs must be a number",
    );
}

#[test]
fn restart_policy_rules() {
    let r = ok(&cfg(
        "",
        r#""restart":{"maxRestarts":0,"windowMs":60000,"backoffFactor":2,"maxDelayMs":30000}"#,
    ))
    .processes[0]
        .restart
        .clone();
    assert_eq!(
        r,
        RestartConfig {
            max_restarts: Some(0),
            window_ms: 60000,
            backoff_factor: 2.0,
            max_delay_ms: 30000
        }
    );
    assert_eq!(
        ok(&cfg("", r#""restart":{"maxRestarts":null}"#)).processes[0]
            .restart
            .max_restarts,
        None
    );
    fails(
        &cfg("", r#""restart":1"#),
        "processes[0].restart must be an object",
    );
    fails(
        &cfg("", r#""restart":{"maxRestarts":1.5}"#),
        "processes[0].restart.maxRestarts must be a non-negative integer",
    );
    fails(
        &cfg("", r#""restart":{"maxRestarts":-1}"#),
        "processes[0].restart.maxRestarts must be a non-negative integer",
    );
    fails(
        &cfg("", r#""restart":{"windowMs":-1}"#),
        "processes[0].restart.windowMs must be a non-negative number",
    );
    fails(
        &cfg("", r#""restart":{"backoffFactor":0.5}"#),
        "processes[0].restart.backoffFactor must be a number greater than or equal to 1",
    );
    fails(
        &cfg("", r#""restart":{"maxDelayMs":"x"}"#),
        "processes[0].restart.maxDelayMs must be a number",
    );
}

#[test]
fn memory_rules() {
    let m = ok(&cfg(
        "",
        r#""memory":{"limitBytes":536870912,"warnBytes":400000000,"checkIntervalMs":1000}"#,
    ))
    .processes[0]
        .memory
        .clone();
    assert_eq!(
        m,
        Some(MemoryConfig {
            limit_bytes: 536870912,
            warn_bytes: 400000000,
            check_interval_ms: 1000
        })
    );
    fails(
        &cfg("", r#""memory":"1G""#),
        "processes[0].memory must be an object",
    );
    fails(
        &cfg("", r#""memory":{}"#),
        "processes[0].memory.limitBytes must be a positive integer",
    );
    fails(
        &cfg("", r#""memory":{"limitBytes":1.5}"#),
        "processes[0].memory.limitBytes must be a positive integer",
    );
    fails(
        &cfg("", r#""memory":{"limitBytes":10,"warnBytes":-1}"#),
        "processes[0].memory.warnBytes must be a non-negative integer",
    );
    fails(
        &cfg("", r#""memory":{"limitBytes":10,"warnBytes":10}"#),
        "processes[0].memory.warnBytes must be less than processes[0].memory.limitBytes",
    );
    fails(
        &cfg("", r#""memory":{"limitBytes":10,"checkIntervalMs":0}"#),
        "processes[0].memory.checkIntervalMs must be a positive number",
    );
}

#[test]
fn lifecycle_rules() {
    let l = ok(&cfg("", r#""lifecycle":{"quietCommand":"q","drainCommand":"d","stopCommand":"s","drainTimeoutMs":100}"#)).processes[0].lifecycle.clone();
    assert_eq!(l.quiet_command.as_deref(), Some("q"));
    assert_eq!(l.drain_timeout_ms, 100);
    fails(
        &cfg("", r#""lifecycle":[]"#),
        "processes[0].lifecycle must be an object",
    );
    fails(
        &cfg("", r#""lifecycle":{"quietCommand":null}"#),
        "processes[0].lifecycle.quietCommand is required",
    );
    fails(
        &cfg("", r#""lifecycle":{"stopCommand":5}"#),
        "processes[0].lifecycle.stopCommand must be a string",
    );
    fails(
        &cfg("", r#""lifecycle":{"drainTimeoutMs":-5}"#),
        "processes[0].lifecycle.drainTimeoutMs must be a non-negative number",
    );
    fails(
        &cfg("", r#""lifecycle":{"drainCommand":"d"}"#),
        "processes[0].lifecycle.drainCommand requires a positive processes[0].lifecycle.drainTimeoutMs",
    );
}

#[test]
fn boolean_and_positive_integer_fields() {
    fails(
        &cfg("", r#""nonBlockingDrain":"yes""#),
        "processes[0].nonBlockingDrain must be a boolean",
    );
    assert_eq!(
        ok(&cfg("", r#""outputLines":200"#)).processes[0].output_lines,
        200
    );
    fails(
        &cfg("", r#""outputLines":0"#),
        "processes[0].outputLines must be a positive integer",
    );
    fails(
        &cfg("", r#""replicas":2.5"#),
        "processes[0].replicas must be a positive integer",
    );
}

#[test]
fn deploy_strategy_rules() {
    fails(
        &cfg("", r#""deployStrategy":"blue-green""#),
        "processes[0].deployStrategy must be one of: persistent, handoff",
    );
}

fn two(second: &str) -> String {
    format!(
        r#"{{"proxy":{{}},"processes":[{{"id":"web","policy":"proxied","command":"x","port":18000}},{second}]}}"#
    )
}

#[test]
fn cross_rules_pass_for_good_processes() {
    ok(&two(
        r#"{"id":"worker","command":"w","replicas":4,"nonBlockingDrain":true}"#,
    ));
    ok(&two(
        r#"{"id":"jobs","policy":"service","command":"j","deployStrategy":"handoff","port":{"from":7400,"to":7499}}"#,
    ));
    ok(&two(
        r#"{"id":"w","command":"w","stopSignal":"SIGTERM","lifecycle":{"stopCommand":"s"}}"#,
    ));
}

#[test]
fn duplicate_ids_are_rejected() {
    fails(
        &two(r#"{"id":"web","command":"x"}"#),
        "Duplicate process id: web",
    );
}

#[test]
fn empty_ids_skip_id_rules() {
    let v = run(&two(r#"{"id":"","command":"x"}"#));
    assert!(v.issues.is_empty(), "{:?}", messages(&v));
}

#[test]
fn hash_in_id_is_rejected() {
    fails(
        &two(r#"{"id":"w#1","command":"x"}"#),
        "Process \"w#1\" must not contain \"#\"",
    );
}

#[test]
fn replicas_need_a_portless_companion() {
    fails(
        &two(r#"{"id":"s","policy":"service","command":"x","replicas":2}"#),
        "Process \"s\" can only set replicas > 1 on a companion process without a port",
    );
    fails(
        &two(r#"{"id":"c","command":"x","replicas":2,"port":9000}"#),
        "Process \"c\" can only set replicas > 1 on a companion process without a port",
    );
}

#[test]
fn non_blocking_drain_needs_a_companion() {
    fails(
        &two(r#"{"id":"s","policy":"singleton","command":"x","nonBlockingDrain":true}"#),
        "Process \"s\" can only set nonBlockingDrain on a companion process",
    );
}

#[test]
fn handoff_rules() {
    fails(
        &two(r#"{"id":"c","command":"x","deployStrategy":"handoff"}"#),
        "Process \"c\" can only set deployStrategy: \"handoff\" on a service process",
    );
    fails(
        &two(r#"{"id":"s","policy":"service","command":"x","deployStrategy":"handoff"}"#),
        "Handoff service \"s\" must define a port range",
    );
    fails(
        &two(
            r#"{"id":"s","policy":"service","command":"x","deployStrategy":"handoff","port":7400}"#,
        ),
        "Handoff service \"s\" must use a multi-port range",
    );
}

#[test]
fn stop_command_conflicts_with_custom_signal() {
    let v = run(&two(
        r#"{"id":"w","command":"x","stopSignal":"SIGINT","lifecycle":{"stopCommand":"s"}}"#,
    ));
    let m = messages(&v);
    assert_eq!(m.len(), 1);
    assert!(
        m[0].contains("sets both lifecycle.stopCommand and a custom stopSignal"),
        "{m:?}"
    );
    assert!(m[0].contains("\"w\""));
}

#[test]
fn exactly_one_proxied_process() {
    fails(
        &two(r#"{"id":"web2","policy":"proxied","command":"x","port":1}"#),
        "Config must define exactly one proxied process; found 2",
    );
    fails(
        r#"{"proxy":{},"processes":[]}"#,
        "Config must define exactly one proxied process; found 0",
    );
}

#[test]
fn proxied_process_needs_a_port() {
    fails(
        r#"{"proxy":{},"processes":[{"id":"web","policy":"proxied","command":"x"}]}"#,
        "Proxied process web must define a port range",
    );
    fails(
        r#"{"proxy":{},"processes":[{"policy":"proxied","command":"x"}]}"#,
        "Proxied process (unnamed) must define a port range",
    );
}

#[test]
fn retention_and_state_path() {
    let c = ok(&cfg(
        r#""releaseRetention":{"keep":0,"maxAgeMs":1000},"statePath":"/var/lib/x.json""#,
        "",
    ));
    assert_eq!(
        c.release_retention,
        ReleaseRetention {
            keep: 0,
            max_age_ms: 1000
        }
    );
    assert_eq!(c.state_path.as_deref(), Some("/var/lib/x.json"));
    assert_eq!(ok(&cfg(r#""statePath":null"#, "")).state_path, None);
    fails(
        &cfg(r#""releaseRetention":3"#, ""),
        "releaseRetention must be an object",
    );
    fails(
        &cfg(r#""releaseRetention":{"keep":1.5}"#, ""),
        "releaseRetention.keep must be a non-negative integer",
    );
    fails(
        &cfg(r#""releaseRetention":{"maxAgeMs":-1}"#, ""),
        "releaseRetention.maxAgeMs must be a non-negative number",
    );
    fails(&cfg(r#""statePath":5"#, ""), "statePath must be a string");
}

#[test]
fn adopt_orphans_needs_state_path() {
    assert!(!ok(&cfg("", "")).adopt_orphans);
    let c = ok(&cfg(
        r#""statePath":"/var/lib/x.json","adoptOrphans":true"#,
        "",
    ));
    assert!(c.adopt_orphans);
    fails(
        &cfg(r#""adoptOrphans":true"#, ""),
        "adoptOrphans needs statePath",
    );
    fails(
        &cfg(r#""statePath":"/s","adoptOrphans":"yes""#, ""),
        "adoptOrphans must be a boolean",
    );
}

#[test]
fn legacy_takeover_rules() {
    let c = ok(&cfg(
        r#""legacyTakeover":{"screens":["web"],"processes":[{"includes":["puma"]}]}"#,
        "",
    ));
    let l = c.legacy_takeover.unwrap();
    assert_eq!(l.screens, ["web"]);
    assert_eq!(l.processes[0].name, "legacy process 1");
    assert_eq!(l.force_stop_timeout_ms, 10000);
    fails(
        &cfg(r#""legacyTakeover":[]"#, ""),
        "legacyTakeover must be an object",
    );
    fails(
        &cfg(r#""legacyTakeover":{"screens":"web"}"#, ""),
        "legacyTakeover.screens must be an array",
    );
    fails(
        &cfg(r#""legacyTakeover":{"screens":["a",""]}"#, ""),
        "legacyTakeover.screens[1] must be a non-empty string",
    );
    fails(
        &cfg(r#""legacyTakeover":{"screens":["a"],"processes":{}}"#, ""),
        "legacyTakeover.processes must be an array",
    );
    fails(
        &cfg(r#""legacyTakeover":{"processes":[1]}"#, ""),
        "legacyTakeover.processes[0] must be an object",
    );
    fails(
        &cfg(r#""legacyTakeover":{"processes":[{"includes":[]}]}"#, ""),
        "legacyTakeover.processes[0].includes must contain at least one matcher",
    );
    fails(
        &cfg(r#""legacyTakeover":{}"#, ""),
        "legacyTakeover must define at least one screen or process matcher",
    );
    fails(
        &cfg(
            r#""legacyTakeover":{"screens":["a"],"forceStopTimeoutMs":-1}"#,
            "",
        ),
        "legacyTakeover.forceStopTimeoutMs must be a non-negative number",
    );
}

#[test]
fn issues_come_in_contract_order() {
    let v = run(
        r#"{"application":1,"statePath":2,"releaseRetention":{"keep":-1},"processes":[{"stopSignal":"X","command":1,"id":"a"}],"control":{"path":1},"proxy":{"port":"x"}}"#,
    );
    assert_eq!(
        messages(&v),
        [
            "application must be a string",
            "proxy.port must be a number",
            "control.path must be a string",
            "processes[0].command must be a string",
            "processes[0].stopSignal must be a valid signal name",
            "releaseRetention.keep must be a non-negative integer",
            "statePath must be a string",
            "Config must define exactly one proxied process; found 0",
        ]
    );
}

#[test]
fn unknown_keys_warn_with_did_you_mean_but_stay_valid() {
    let v = run(&cfg(
        r#""proxi":{}"#,
        r#""gracefullStopMs":5,"healthcheck":{"path":"/"}"#,
    ));
    assert!(v.issues.is_empty());
    let w: Vec<_> = v
        .warnings
        .iter()
        .map(|w| (w.message.as_str(), w.fix.as_str()))
        .collect();
    assert_eq!(w.len(), 3, "{w:?}");
    assert_eq!(w[0].0, "proxi is not a known field and is ignored");
    assert!(w[0].1.contains("Did you mean proxy?"));
    assert!(w[1].1.contains("Did you mean processes[0].gracefulStopMs?"));
    assert!(w[2].1.contains("Did you mean processes[0].health?"));
}

#[test]
fn invalid_config_message_lists_every_issue() {
    let v = run(r#"{"proxy":{},"processes":[]}"#);
    assert_eq!(
        invalid_config_message(&v.issues),
        "Invalid Rollbridge config:\n  - Config must define exactly one proxied process; found 0"
    );
}

#[test]
fn proxy_stream_timeouts_default_accept_zero_and_reject_negatives() {
    let with = |p: &str| cfg("", "").replace(r#""proxy":{}"#, &format!(r#""proxy":{{{p}}}"#));
    let d = ok(&cfg("", "")).proxy;
    assert_eq!(
        (
            d.client_write_timeout_ms,
            d.upstream_response_timeout_ms,
            d.upstream_read_timeout_ms
        ),
        (60000, 60000, 60000)
    );
    let c = ok(&with(
        r#""clientWriteTimeoutMs":0,"upstreamResponseTimeoutMs":1500,"upstreamReadTimeoutMs":2.5"#,
    ))
    .proxy;
    assert_eq!(
        (
            c.client_write_timeout_ms,
            c.upstream_response_timeout_ms,
            c.upstream_read_timeout_ms
        ),
        (0, 1500, 3)
    );
    for key in [
        "clientWriteTimeoutMs",
        "upstreamResponseTimeoutMs",
        "upstreamReadTimeoutMs",
    ] {
        fails(
            &with(&format!(r#""{key}":-1"#)),
            &format!("proxy.{key} must be a non-negative number"),
        );
        fails(
            &with(&format!(r#""{key}":"5""#)),
            &format!("proxy.{key} must be a number"),
        );
    }
    let v = run(&with(r#""upstreamReadTimeoutMS":5"#));
    assert!(
        v.warnings
            .iter()
            .any(|w| w.fix.contains("Did you mean proxy.upstreamReadTimeoutMs?")),
        "{:?}",
        v.warnings.iter().map(|w| &w.fix).collect::<Vec<_>>()
    );
}

#[test]
fn max_connections_is_a_bounded_whole_number() {
    let with = |p: &str| cfg("", "").replace(r#""proxy":{}"#, &format!(r#""proxy":{{{p}}}"#));
    assert_eq!(ok(&cfg("", "")).proxy.max_connections, 0);
    assert_eq!(
        ok(&with(r#""maxConnections":4096"#)).proxy.max_connections,
        4096
    );
    fails(
        &with(r#""maxConnections":-1"#),
        "proxy.maxConnections must be a non-negative integer",
    );
    fails(
        &with(r#""maxConnections":1.5"#),
        "proxy.maxConnections must be a non-negative integer",
    );
    fails(
        &with(r#""maxConnections":2000000"#),
        "proxy.maxConnections must be at most 1000000",
    );
}

#[test]
fn max_held_requests_is_a_bounded_whole_number() {
    let with = |p: &str| cfg("", "").replace(r#""proxy":{}"#, &format!(r#""proxy":{{{p}}}"#));
    assert_eq!(ok(&cfg("", "")).proxy.max_held_requests, 10000);
    assert_eq!(
        ok(&with(r#""maxHeldRequests":50"#)).proxy.max_held_requests,
        50
    );
    fails(
        &with(r#""maxHeldRequests":-1"#),
        "proxy.maxHeldRequests must be a non-negative integer",
    );
    fails(
        &with(r#""maxHeldRequests":2000000"#),
        "proxy.maxHeldRequests must be at most 1000000",
    );
}

#[test]
fn websocket_close_spread_is_a_non_negative_number() {
    let with = |p: &str| cfg("", "").replace(r#""proxy":{}"#, &format!(r#""proxy":{{{p}}}"#));
    assert_eq!(ok(&cfg("", "")).proxy.websocket_close_spread_ms, 1000);
    assert_eq!(
        ok(&with(r#""websocketCloseSpreadMs":0"#))
            .proxy
            .websocket_close_spread_ms,
        0
    );
    fails(
        &with(r#""websocketCloseSpreadMs":-5"#),
        "proxy.websocketCloseSpreadMs must be a non-negative number",
    );
}

#[test]
fn shutdown_delay_is_bounded() {
    let with = |p: &str| cfg("", "").replace(r#""proxy":{}"#, &format!(r#""proxy":{{{p}}}"#));
    assert_eq!(ok(&cfg("", "")).proxy.shutdown_delay_ms, 0);
    assert_eq!(
        ok(&with(r#""shutdownDelayMs":15000"#))
            .proxy
            .shutdown_delay_ms,
        15000
    );
    fails(
        &with(r#""shutdownDelayMs":700000"#),
        "proxy.shutdownDelayMs must be at most 600000",
    );
}

#[test]
fn admin_section_needs_a_port_of_its_own() {
    assert_eq!(ok(&cfg("", "")).admin, None);
    let a = ok(&cfg(r#""admin":{"port":9180}"#, "")).admin.unwrap();
    assert_eq!((a.host.as_str(), a.port), ("127.0.0.1", 9180));
    fails(&cfg(r#""admin":{}"#, ""), "admin.port is required");
    fails(&cfg(r#""admin":[]"#, ""), "admin must be an object");
    fails(
        &cfg(r#""admin":{"port":70000}"#, ""),
        "admin.port must be a whole port number between 0 and 65535",
    );
}

#[test]
fn live_health_checks_default_and_accept_their_range() {
    let c = ok(&cfg("", ""));
    let w = c.processes[0].health.as_ref().unwrap().watch;
    assert_eq!((w.interval_ms, w.timeout_ms, w.failures), (10000, 2000, 3));
    let c = ok(&cfg(
        "",
        r#""health":{"watchIntervalMs":0,"watchTimeoutMs":500,"watchFailures":5}"#,
    ));
    let w = c.processes[0].health.as_ref().unwrap().watch;
    assert_eq!((w.interval_ms, w.timeout_ms, w.failures), (0, 500, 5));
}

#[test]
fn live_health_check_values_out_of_range_are_rejected() {
    fails(
        &cfg("", r#""health":{"watchIntervalMs":50}"#),
        "processes[0].health.watchIntervalMs must be 0 (off) or between 100 and 86400000",
    );
    fails(
        &cfg("", r#""health":{"watchTimeoutMs":0}"#),
        "processes[0].health.watchTimeoutMs must be a positive number",
    );
    fails(
        &cfg("", r#""health":{"watchTimeoutMs":600001}"#),
        "processes[0].health.watchTimeoutMs must be at most 600000",
    );
    fails(
        &cfg("", r#""health":{"watchFailures":0}"#),
        "processes[0].health.watchFailures must be a positive integer",
    );
    fails(
        &cfg("", r#""health":{"watchFailures":101}"#),
        "processes[0].health.watchFailures must be at most 100",
    );
}

#[test]
fn auto_rollback_is_off_by_default_and_needs_a_window() {
    assert_eq!(ok(&cfg("", "")).auto_rollback, None);
    let c = ok(&cfg(r#""autoRollback":{"windowMs":60000}"#, ""));
    assert_eq!(c.auto_rollback, Some(AutoRollback { window_ms: 60000 }));
    fails(
        &cfg(r#""autoRollback":{}"#, ""),
        "autoRollback.windowMs is required",
    );
    fails(
        &cfg(r#""autoRollback":true"#, ""),
        "autoRollback must be an object",
    );
    fails(
        &cfg(r#""autoRollback":{"windowMs":0}"#, ""),
        "autoRollback.windowMs must be a positive number",
    );
    fails(
        &cfg(r#""autoRollback":{"windowMs":604800001}"#, ""),
        "autoRollback.windowMs must be at most 604800000",
    );
}

#[test]
fn misspelt_live_check_and_rollback_keys_get_a_did_you_mean() {
    let v = run(&cfg(
        r#""autoRollback":{"windowMS":1000}"#,
        r#""health":{"watchFailure":2}"#,
    ));
    let fixes: Vec<&str> = v.warnings.iter().map(|w| w.fix.as_str()).collect();
    assert!(
        fixes
            .iter()
            .any(|f| f.contains("processes[0].health.watchFailures")),
        "{fixes:?}"
    );
    assert!(
        fixes.iter().any(|f| f.contains("autoRollback.windowMs")),
        "{fixes:?}"
    );
}

#[test]
fn access_log_must_be_an_absolute_path() {
    let with = |p: &str| cfg("", "").replace(r#""proxy":{}"#, &format!(r#""proxy":{{{p}}}"#));
    assert_eq!(ok(&cfg("", "")).proxy.access_log, None);
    assert_eq!(ok(&with(r#""accessLog":null"#)).proxy.access_log, None);
    assert_eq!(
        ok(&with(r#""accessLog":"/var/log/app/access.log""#))
            .proxy
            .access_log
            .as_deref(),
        Some("/var/log/app/access.log")
    );
    let relative = "proxy.accessLog must be an absolute file path (at most 4096 bytes)";
    fails(&with(r#""accessLog":"logs/access.log""#), relative);
    fails(&with(r#""accessLog":"""#), relative);
    fails(&with(r#""accessLog":"/var/log/""#), relative);
    fails(
        &with(r#""accessLog":true"#),
        "proxy.accessLog must be a string",
    );
    assert!(run(&with(r#""accessLog":"/x.log""#)).warnings.is_empty());
}
