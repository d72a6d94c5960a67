use super::*;
use crate::config::raw::Raw;
use crate::config::validate;

fn proxy() -> ProxyConfig {
    let raw = Raw::from_json(
        r#"{"proxy":{"host":"0.0.0.0","port":4500},"processes":[{"id":"web","policy":"proxied","command":"x","port":18000}]}"#,
    )
    .unwrap();
    validate(&raw, std::path::Path::new("/srv/app/rollbridge.json"))
        .config
        .proxy
}

fn with_ctx<T>(f: impl FnOnce(&Context) -> T) -> T {
    let proxy = proxy();
    let ports = vec![
        ("beacon".to_owned(), 7330),
        ("web".to_owned(), 18000),
        ("api.v2".to_owned(), 18100),
    ];
    let env = |name: &str| (name == "HOME_DIR").then(|| "/home/app".to_owned());
    let ctx = Context {
        application: "tensorbuzz",
        release_id: "v42",
        release_path: "/srv/releases/42",
        revision: "abc123",
        process_id: "web",
        replica_index: 2,
        replica_count: 4,
        port: Some(18000),
        ports: &ports,
        proxy: &proxy,
        env: &env,
    };
    f(&ctx)
}

fn r(t: &str) -> Result<String, String> {
    with_ctx(|ctx| render(t, ctx))
}

#[test]
fn every_placeholder_renders() {
    let cases = [
        ("{{application}}", "tensorbuzz"),
        ("{{releaseId}}", "v42"),
        ("{{releasePath}}", "/srv/releases/42"),
        ("{{revision}}", "abc123"),
        ("{{processId}}", "web"),
        ("{{replicaIndex}}", "2"),
        ("{{replicaCount}}", "4"),
        ("{{port}}", "18000"),
        ("{{ports.beacon}}", "7330"),
        ("{{ports.web}}", "18000"),
        ("{{proxy.host}}", "0.0.0.0"),
        ("{{proxy.port}}", "4500"),
        ("{{proxy.upstreamHost}}", "127.0.0.1"),
        ("{{env.HOME_DIR}}", "/home/app"),
    ];
    for (t, want) in cases {
        assert_eq!(r(t).unwrap(), want, "{t}");
    }
}

#[test]
fn whitespace_inside_braces_is_allowed() {
    assert_eq!(r("--port {{  port }}").unwrap(), "--port 18000");
}

#[test]
fn non_placeholders_stay_literal() {
    assert_eq!(
        r("{{a b}} {{}} {single} }}").unwrap(),
        "{{a b}} {{}} {single} }}"
    );
}

#[test]
fn triple_brace_renders_inner_placeholder() {
    assert_eq!(r("{{{port}}}").unwrap(), "{18000}");
}

#[test]
fn substituted_text_is_not_rescanned() {
    let proxy = proxy();
    let env = |_: &str| Some("{{port}}".to_owned());
    let ctx = Context {
        application: "a",
        release_id: "r",
        release_path: "/p",
        revision: "r",
        process_id: "web",
        replica_index: 0,
        replica_count: 1,
        port: Some(1),
        ports: &[],
        proxy: &proxy,
        env: &env,
    };
    assert_eq!(render("{{env.X}}", &ctx).unwrap(), "{{port}}");
}

#[test]
fn missing_value_names_the_placeholder_as_written() {
    assert_eq!(
        r("run {{ missingVar }}").unwrap_err(),
        "Missing template value for {{ missingVar }}"
    );
    assert_eq!(
        r("{{env.NOPE}}").unwrap_err(),
        "Missing template value for {{env.NOPE}}"
    );
    assert_eq!(
        r("{{ports.nope}}").unwrap_err(),
        "Missing template value for {{ports.nope}}"
    );
    assert_eq!(
        r("{{application.x}}").unwrap_err(),
        "Missing template value for {{application.x}}"
    );
}

#[test]
fn object_placeholder_is_an_error_not_object_object() {
    assert!(r("{{ports}}").unwrap_err().contains("is an object"));
}

#[test]
fn port_id_with_dot_resolves() {
    assert_eq!(r("{{ports.api.v2}}").unwrap(), "18100");
}

#[test]
fn missing_own_port_is_an_error() {
    let proxy = proxy();
    let env = |_: &str| None;
    let ctx = Context {
        application: "a",
        release_id: "r",
        release_path: "/p",
        revision: "r",
        process_id: "worker",
        replica_index: 0,
        replica_count: 1,
        port: None,
        ports: &[],
        proxy: &proxy,
        env: &env,
    };
    assert_eq!(
        render("{{port}}", &ctx).unwrap_err(),
        "Missing template value for {{port}}"
    );
}

fn process(json: &str) -> ProcessConfig {
    let raw = Raw::from_json(&format!(
        r#"{{"proxy":{{}},"processes":[{json},{{"id":"zz","policy":"proxied","command":"x","port":1}}]}}"#
    ))
    .unwrap();
    let v = validate(&raw, std::path::Path::new("/a/rollbridge.json"));
    // Placeholder issues are what some render tests are about.
    assert!(
        v.issues.iter().all(|i| i.message.contains(" uses ")),
        "{:?}",
        v.issues
    );
    v.config.processes[0].clone()
}

#[test]
fn render_process_fills_cwd_with_release_path() {
    let p =
        process(r#"{"id":"w","command":"run {{releaseId}}","env":{"B":"{{revision}}","A":"x"}}"#);
    let out = with_ctx(|ctx| render_process(&p, ctx)).unwrap();
    assert_eq!(out.command, "run v42");
    assert_eq!(out.cwd, "/srv/releases/42");
    assert_eq!(
        out.env,
        vec![("B".into(), "abc123".into()), ("A".into(), "x".into())]
    );
}

#[test]
fn render_process_error_names_process_and_field() {
    let p = process(r#"{"id":"w","command":"ok","cwd":"{{releasePath}}/{{nope}}"}"#);
    let err = with_ctx(|ctx| render_process(&p, ctx)).unwrap_err();
    assert_eq!(
        err,
        "Missing template value for {{nope}} (process \"w\", cwd)"
    );
    let p = process(r#"{"id":"w","command":"ok","env":{"X":"{{env.UNSET}}"}}"#);
    let err = with_ctx(|ctx| render_process(&p, ctx)).unwrap_err();
    assert!(err.ends_with("(process \"w\", env.X)"), "{err}");
}

#[test]
fn env_id_collapses_runs_and_upper_cases() {
    assert_eq!(env_id("background-jobs-main"), "BACKGROUND_JOBS_MAIN");
    assert_eq!(env_id("a--b..c"), "A_B_C");
    assert_eq!(env_id("web"), "WEB");
}

#[test]
fn injected_env_lists_every_variable() {
    let env = with_ctx(injected_env);
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("ROLLBRIDGE_APPLICATION"), Some("tensorbuzz"));
    assert_eq!(get("ROLLBRIDGE_PROCESS_ID"), Some("web"));
    assert_eq!(get("ROLLBRIDGE_REPLICA_INDEX"), Some("2"));
    assert_eq!(get("ROLLBRIDGE_REPLICA_COUNT"), Some("4"));
    assert_eq!(get("ROLLBRIDGE_RELEASE_ID"), Some("v42"));
    assert_eq!(get("ROLLBRIDGE_RELEASE_PATH"), Some("/srv/releases/42"));
    assert_eq!(get("ROLLBRIDGE_REVISION"), Some("abc123"));
    assert_eq!(get("ROLLBRIDGE_PORT"), Some("18000"));
    assert_eq!(get("ROLLBRIDGE_BEACON_PORT"), Some("7330"));
    assert_eq!(get("ROLLBRIDGE_WEB_PORT"), Some("18000"));
    assert_eq!(get("ROLLBRIDGE_API_V2_PORT"), Some("18100"));
}

#[test]
fn merge_env_later_layers_win() {
    let base = vec![
        ("PATH".into(), "/bin".into()),
        ("ROLLBRIDGE_PORT".into(), "1".into()),
    ];
    let injected = vec![("ROLLBRIDGE_PORT".into(), "2".into())];
    let own = vec![
        ("ROLLBRIDGE_PORT".into(), "3".into()),
        ("X".into(), "y".into()),
    ];
    let merged = merge_env(&[&base, &injected, &own]);
    assert_eq!(
        merged,
        vec![
            ("PATH".into(), "/bin".into()),
            ("ROLLBRIDGE_PORT".into(), "3".into()),
            ("X".into(), "y".into())
        ]
    );
}

#[test]
fn placeholders_are_listed_as_written() {
    assert_eq!(
        placeholders("a {{ port }} {{x y}} {{env.HOME}}{{"),
        [("{{ port }}", "port"), ("{{env.HOME}}", "env.HOME")]
    );
}
