//! Differential test of the static `rollbridge.js` reader: every config of
//! the corpus is read natively and by Node, and the results must be equal.
//! Files outside the static subset must fall back to Node; files the reader
//! rejects must be rejected by Node too. Runs wherever `node` is present.

mod cli_support;
use cli_support::*;

use rollbridge::config::raw::Raw;
use rollbridge::config::static_js::{self, ModuleKind, Outcome};

fn kind(name: &str) -> ModuleKind {
    if name.ends_with(".mjs") {
        ModuleKind::Esm
    } else if name.ends_with(".cjs") {
        ModuleKind::CommonJs
    } else {
        ModuleKind::Either {
            allow_commonjs: true,
        }
    }
}

/// Inline corpus: (file name, source).
const INLINE: &[(&str, &str)] = &[
    ("a.js", "export default {}"),
    ("b.js", "module.exports = {a: 1};"),
    (
        "c.js",
        "// c\nexport default {\"proxy\": {}, \"processes\": []};\n",
    ),
    (
        "d.js",
        "export default {a: 'x', b: \"y\", c: `z`, d: [1,2,3,], e: {f: null,},}",
    ),
    (
        "e.js",
        "export default {n: -2, m: +3, o: 0o777, p: 1_0.0_1}",
    ),
    (
        "f.js",
        "export default {s: 'a\\\r\nb', t: '\\u{1F600}\\x7e'}",
    ),
    ("g.js", "export default 'just a string'"),
    ("h.js", "export default null"),
    ("i.js", "export default {a: 1}\n;"),
    ("j.mjs", "export default {application: 'mjs'}"),
    ("k.cjs", "module.exports = {application: 'cjs'}"),
    ("l.js", "export default {a: 1e400, b: -1e400}"),
    (
        "m.js",
        "/** doc */\nexport default /* x */ {\n  // y\n  a: 1 // z\n}\n// end",
    ),
    // Fallback triggers: must still load identically through Node.
    (
        "fb1.js",
        "export default {a: process.env.HOME ? 'home' : 'none'}",
    ),
    (
        "fb2.js",
        "const base = {a: 1};\nexport default {...base, b: 2}",
    ),
    ("fb3.js", "export default () => ({fn: true})"),
    ("fb4.js", "export default async () => ({asyncFn: true})"),
    ("fb5.js", "export default {a: `x${1 + 1}`}"),
    (
        "fb6.js",
        "import path from 'node:path';\nexport default {sep: path.sep}",
    ),
    ("fb7.js", "export default {1: 'one', b: 'b', 0: 'zero'}"),
    ("fb8.js", "export default {a: undefined, b: 1}"),
    ("fb9.js", "export default {a: NaN, b: Infinity}"),
    ("fb10.js", "module.exports = {a: 0660}"),
    ("fb11.js", "export default {__proto__: {x: 1}, y: 2}"),
    ("fb12.js", "export default {s: '\\uD83D\\uDE00'}"),
    ("fb13.js", "export default {a: 'x'.toUpperCase()}"),
    ("fb14.js", "'use strict';\nmodule.exports = {a: 1};"),
    ("fb15.js", "export default {get a() { return 1 }}"),
    ("fb16.js", "export default {a: [1, , 2]}"),
    (
        "fb17.js",
        "export default {a: true}\nconsole.error('side effect')",
    ),
    // Malformed: both must reject.
    ("bad1.js", "export default {\n  a: 'unterminated\n}"),
    ("bad2.js", "export default {\n  a: 1\n  b: 2\n}"),
    ("bad3.js", "export default {a: 1,, b: 2}"),
    ("bad4.js", "export default {a: [1, 2"),
    ("bad5.js", "export default {a: 1 /* never closed"),
    ("bad6.js", "export default {a: '\\x4'}"),
];

fn corpus() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = INLINE
        .iter()
        .map(|(n, s)| (n.to_string(), s.to_string()))
        .collect();
    let root = env!("CARGO_MANIFEST_DIR");
    for dir in ["tests/fixtures/static-js", "tests/fixtures/configs"] {
        for entry in std::fs::read_dir(format!("{root}/{dir}")).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            out.push((name, std::fs::read_to_string(&path).unwrap()));
        }
    }
    for ex in [
        "examples/plain-web/rollbridge.js",
        "examples/velocious/rollbridge.js",
    ] {
        out.push((
            ex.replace('/', "-"),
            std::fs::read_to_string(format!("{root}/{ex}")).unwrap(),
        ));
    }
    out
}

#[test]
fn static_reader_agrees_with_node_on_the_corpus() {
    if !have_node() {
        eprintln!("skipped: node is not installed");
        return;
    }
    let dir = TempDir::new("diff");
    let (mut same, mut fell_back, mut both_rejected) = (0, 0, 0);
    for (name, src) in corpus() {
        let path = dir.write(&name, &src);
        let node = rollbridge::config::node::evaluate(&path);
        match static_js::read(&src, kind(&name)) {
            Outcome::Value(v) => {
                let n: Raw =
                    node.unwrap_or_else(|e| panic!("{name}: node failed but static read it: {e}"));
                assert_eq!(v, n, "{name}: static and node results differ");
                same += 1;
            }
            Outcome::Error(e) => {
                assert!(
                    node.is_err(),
                    "{name}: static rejected ({e}) but node accepted"
                );
                both_rejected += 1;
            }
            Outcome::Fallback(_) => {
                assert!(name.starts_with("fb"), "{name}: unexpected fallback");
                fell_back += 1;
            }
        }
    }
    eprintln!("identical: {same}, fell back: {fell_back}, both rejected: {both_rejected}");
    assert!(same >= 15 && fell_back >= 17 && both_rejected >= 6);
}

#[test]
fn validate_reports_the_loader_and_node_can_be_forced() {
    let dir = TempDir::new("loader");
    let path = dir.write("rollbridge.js", &format!("export default {MINIMAL}"));
    let r = run_in(dir.path(), &["validate", "--json", "-c", &path], &[]);
    let static_out = json(&r.stdout);
    assert_eq!(static_out["loader"], "static");
    if !have_node() {
        return;
    }
    let forced = json(
        &run_in(
            dir.path(),
            &["validate", "--json", "--node", "-c", &path],
            &[],
        )
        .stdout,
    );
    assert_eq!(forced["loader"], "node");
    let by_env = json(
        &run_in(
            dir.path(),
            &["validate", "--json", "-c", &path],
            &[("ROLLBRIDGE_CONFIG_LOADER", "node")],
        )
        .stdout,
    );
    assert_eq!(by_env["loader"], "node");
    assert_eq!(static_out["config"], forced["config"]);
}

#[test]
fn static_config_needs_no_node() {
    let dir = TempDir::new("nonode-static");
    let path = dir.write(
        "rollbridge.js",
        &format!("// plain data\nexport default {MINIMAL};\n"),
    );
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let r = run_in(
        dir.path(),
        &["validate", "-c", &path],
        &[("PATH", bin.to_str().unwrap())],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn commonjs_under_type_module_goes_to_node() {
    if !have_node() {
        return;
    }
    let dir = TempDir::new("typemodule");
    dir.write("package.json", r#"{"type": "module"}"#);
    let path = dir.write("rollbridge.js", &format!("module.exports = {MINIMAL};"));
    let r = run_in(dir.path(), &["validate", "--json", "-c", &path], &[]);
    let v = json(&r.stdout);
    // Node throws (module is not defined in ES module scope); so must we.
    assert_eq!(v["valid"], false, "{}", r.stdout);
    assert!(
        v["issues"][0]["message"]
            .as_str()
            .unwrap()
            .contains("module")
    );
}
