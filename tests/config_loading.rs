//! Loading configs through the real binary: JSON natively, every JavaScript
//! module shape through node, and every load failure.

mod cli_support;
use cli_support::*;

/// `validate --json --node` on `file` (written into a fresh dir with
/// `text`): these tests exercise the Node loader, so static files are
/// forced through it too.
fn validate(file: &str, text: &str) -> (Run, serde_json::Value) {
    let dir = TempDir::new("load");
    let path = dir.write(file, text);
    let r = run_in(
        dir.path(),
        &["validate", "--json", "--node", "--config", &path],
        &[],
    );
    let v = json(&r.stdout);
    (r, v)
}

fn js(body: &str) -> String {
    body.replace("@CONFIG@", MINIMAL)
}

macro_rules! need_node {
    () => {
        if !have_node() {
            eprintln!("skipped: node is not installed");
            return;
        }
    };
}

#[test]
fn json_config_loads_natively() {
    let (r, v) = validate("rollbridge.json", MINIMAL);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(v["valid"], true);
    assert_eq!(v["loader"], "json");
    assert_eq!(v["config"]["application"], "demo");
}

#[test]
fn json_syntax_error_reports_line_and_column() {
    let (r, v) = validate(
        "rollbridge.json",
        "{\n  \"proxy\": {},\n  \"processes\": [,]\n}",
    );
    assert_eq!(r.code, 1);
    let msg = v["issues"][0]["message"].as_str().unwrap();
    assert!(msg.contains("line 3, column"), "{msg}");
    assert_eq!(v["config"], serde_json::Value::Null);
}

#[test]
fn esm_export_default_object() {
    need_node!();
    let (r, v) = validate(
        "rollbridge.js",
        &js("// generated\nexport default @CONFIG@;\n"),
    );
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_eq!(v["loader"], "node");
    assert_eq!(v["config"]["processes"], 1);
}

#[test]
fn commonjs_module_exports_object() {
    need_node!();
    let (r, _) = validate("rollbridge.js", &js("module.exports = @CONFIG@;\n"));
    assert_eq!(r.code, 0, "{}", r.stdout);
}

#[test]
fn cjs_and_mjs_extensions_load() {
    need_node!();
    assert_eq!(
        validate("app.cjs", &js("module.exports = @CONFIG@;"))
            .0
            .code,
        0
    );
    assert_eq!(
        validate("app.mjs", &js("export default @CONFIG@;")).0.code,
        0
    );
}

#[test]
fn function_export_is_called() {
    need_node!();
    let (r, v) = validate(
        "staging.js",
        &js(
            "export default () => ({...@CONFIG@, application: process.env.RB_TEST_APP || 'from-fn'});",
        ),
    );
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_eq!(v["config"]["application"], "from-fn");
}

#[test]
fn async_function_export_is_awaited() {
    need_node!();
    let (r, v) = validate(
        "rollbridge.js",
        &js(
            "module.exports = async function () { await new Promise(r => setTimeout(r, 5)); return {...@CONFIG@, application: 'async'}; };",
        ),
    );
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_eq!(v["config"]["application"], "async");
}

#[test]
fn config_sees_the_callers_environment_and_its_own_location() {
    need_node!();
    let dir = TempDir::new("env");
    let path = dir.write(
        "rollbridge.js",
        &js("import path from 'node:path';\nimport {fileURLToPath} from 'node:url';\nconst here = path.basename(path.dirname(fileURLToPath(import.meta.url)));\nexport default {...@CONFIG@, application: process.env.RB_APP + '-' + here.slice(0, 2)};"),
    );
    let r = run_in(
        dir.path(),
        &["validate", "--json", "-c", &path],
        &[("RB_APP", "shop")],
    );
    assert_eq!(json(&r.stdout)["config"]["application"], "shop-rb");
}

#[test]
fn console_output_of_the_config_does_not_confuse_the_loader() {
    need_node!();
    let (r, _) = validate(
        "rollbridge.js",
        &js("console.log('hello @@ROLLBRIDGE'); export default @CONFIG@;"),
    );
    assert_eq!(r.code, 0, "{}", r.stdout);
}

#[test]
fn missing_file_is_a_single_issue() {
    let dir = TempDir::new("missing");
    let r = run_in(
        dir.path(),
        &["validate", "--json", "--config", "nope.js"],
        &[],
    );
    assert_eq!(r.code, 1);
    let v = json(&r.stdout);
    assert_eq!(v["path"], "nope.js");
    let issues = v["issues"].as_array().unwrap();
    assert_eq!(issues.len(), 1);
    assert!(issues[0]["message"].as_str().unwrap().contains("nope.js"));
    assert!(
        issues[0]["fix"]
            .as_str()
            .unwrap()
            .contains("default-exports a config object")
    );
}

#[test]
fn syntax_error_shows_nodes_text() {
    need_node!();
    let (r, v) = validate("rollbridge.js", "export default {\n  proxy: {,\n};\n");
    assert_eq!(r.code, 1);
    let msg = v["issues"][0]["message"].as_str().unwrap();
    assert!(msg.contains("SyntaxError"), "{msg}");
}

#[test]
fn throwing_config_shows_the_error() {
    need_node!();
    let (r, v) = validate(
        "rollbridge.js",
        "throw new Error('secrets file missing');\nexport default {};\n",
    );
    assert_eq!(r.code, 1);
    let msg = v["issues"][0]["message"].as_str().unwrap();
    assert!(msg.contains("secrets file missing"), "{msg}");
}

#[test]
fn throwing_function_shows_the_error() {
    need_node!();
    let (_, v) = validate(
        "rollbridge.js",
        "export default async () => { throw new Error('no DB url'); };",
    );
    assert!(
        v["issues"][0]["message"]
            .as_str()
            .unwrap()
            .contains("no DB url")
    );
}

#[test]
fn esm_without_default_export_says_so() {
    need_node!();
    let (r, v) = validate("rollbridge.mjs", "export const proxy = {};\n");
    assert_eq!(r.code, 1);
    let msg = v["issues"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("must default-export a config object or function"),
        "{msg}"
    );
    assert!(msg.contains("rollbridge.mjs"));
}

#[test]
fn commonjs_named_exports_fail_validation() {
    need_node!();
    let (r, v) = validate("rollbridge.js", "exports.proxy = {};\n");
    assert_eq!(r.code, 1);
    let msgs: Vec<_> = v["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["message"].as_str().unwrap())
        .collect();
    assert!(msgs.contains(&"processes must be an array"), "{msgs:?}");
}

#[test]
fn function_in_a_field_is_an_error_naming_the_field() {
    need_node!();
    let (r, v) = validate(
        "rollbridge.js",
        "export default {proxy: {}, processes: [{id: 'web', command: () => 'x'}]};",
    );
    assert_eq!(r.code, 1);
    let msg = v["issues"][0]["message"].as_str().unwrap();
    assert!(msg.contains("processes[0].command is a function"), "{msg}");
}

#[test]
fn cycle_is_an_error_naming_the_field() {
    need_node!();
    let (_, v) = validate(
        "rollbridge.js",
        "const c = {proxy: {}, processes: []}; c.proxy.self = c; export default c;",
    );
    let msg = v["issues"][0]["message"].as_str().unwrap();
    assert!(msg.contains("proxy.self") && msg.contains("cycle"), "{msg}");
}

#[test]
fn nan_is_reported_as_not_a_number() {
    need_node!();
    let (_, v) = validate(
        "rollbridge.js",
        &js(
            "const c = @CONFIG@; c.proxy.drainTimeoutMs = NaN; c.proxy.port = Infinity; export default c;",
        ),
    );
    let msgs: Vec<_> = v["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        msgs,
        [
            "proxy.port must be a number",
            "proxy.drainTimeoutMs must be a number"
        ]
    );
}

#[test]
fn node_missing_gives_install_advice() {
    let dir = TempDir::new("nonode");
    // A spread needs JavaScript, so the static reader hands it to node.
    let path = dir.write("rollbridge.js", &js("export default {...@CONFIG@};"));
    let empty_path = dir.path().join("bin");
    std::fs::create_dir_all(&empty_path).unwrap();
    let r = run_in(
        dir.path(),
        &["validate", "--config", &path],
        &[("PATH", empty_path.to_str().unwrap())],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("Install Node.js"), "{}", r.stderr);
    assert!(r.stderr.contains("rollbridge.json"), "{}", r.stderr);
}

#[test]
fn slow_config_is_bounded_by_the_timeout() {
    need_node!();
    let dir = TempDir::new("slow");
    let path = dir.write(
        "rollbridge.js",
        "export default await new Promise(() => setInterval(() => {}, 1000));",
    );
    let r = run_in(
        dir.path(),
        &["validate", "--json", "--config", &path],
        &[("ROLLBRIDGE_CONFIG_TIMEOUT_MS", "700")],
    );
    assert_eq!(r.code, 1);
    let msg = json(&r.stdout)["issues"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(msg.contains("timed out after 700 ms"), "{msg}");
}

#[test]
fn default_lookup_prefers_js_then_json() {
    let dir = TempDir::new("lookup");
    dir.write("rollbridge.json", MINIMAL);
    let r = run_in(dir.path(), &["validate"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let json_path = dir.path().join("rollbridge.json");
    assert!(
        r.stdout
            .starts_with(&format!("{} is valid", json_path.display())),
        "{}",
        r.stdout
    );
}

#[test]
fn no_config_found_names_the_directory() {
    let dir = TempDir::new("none");
    let r = run_in(dir.path(), &["validate"], &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("No config file found"), "{}", r.stderr);
    assert!(r.stderr.contains("rollbridge.js"));
    let r = run_in(dir.path(), &["validate", "--json"], &[]);
    let v = json(&r.stdout);
    assert_eq!(v["path"], serde_json::Value::Null);
    assert_eq!(v["config"], serde_json::Value::Null);
    assert_eq!(v["valid"], false);
}
