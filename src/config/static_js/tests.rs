use super::*;

fn esm(src: &str) -> Outcome {
    read(
        src,
        ModuleKind::Either {
            allow_commonjs: true,
        },
    )
}

fn value(src: &str) -> Raw {
    match esm(src) {
        Outcome::Value(v) => v,
        other => panic!("expected a value for {src:?}, got {other:?}"),
    }
}

fn json(text: &str) -> Raw {
    Raw::from_json(text).unwrap()
}

#[track_caller]
fn falls_back(src: &str) {
    assert!(
        matches!(esm(src), Outcome::Fallback(_)),
        "{src:?} -> {:?}",
        esm(src)
    );
}

#[track_caller]
fn error_at(src: &str, line: usize, column: usize) {
    match esm(src) {
        Outcome::Error(e) => assert!(
            e.contains(&format!("line {line}, column {column}")),
            "{src:?}: {e}"
        ),
        other => panic!("expected an error for {src:?}, got {other:?}"),
    }
}

#[test]
fn export_default_json_object() {
    assert_eq!(
        value("// rollbridge.js\nexport default {\"a\": 1, \"b\": [true, false, null]}\n"),
        json(r#"{"a":1,"b":[true,false,null]}"#)
    );
}

#[test]
fn module_exports_with_semicolon() {
    assert_eq!(value("module.exports = {a: 'x'};"), json(r#"{"a":"x"}"#));
}

#[test]
fn unquoted_quoted_and_reserved_keys() {
    assert_eq!(
        value("export default {a: 1, 'b-c': 2, \"d\": 3, default: 4, $x_1: 5}"),
        json(r#"{"a":1,"b-c":2,"d":3,"default":4,"$x_1":5}"#)
    );
}

#[test]
fn trailing_commas() {
    assert_eq!(
        value("export default {a: [1, 2,], b: {c: 1,},}"),
        json(r#"{"a":[1,2],"b":{"c":1}}"#)
    );
}

#[test]
fn comments_everywhere() {
    let src = "/* head */ export /* a */ default // b\n{ // c\n a /* d */ : /* e */ 1 /* f */, // g\n} /* h */ ; // end";
    assert_eq!(value(src), json(r#"{"a":1}"#));
}

#[test]
fn string_escapes() {
    assert_eq!(
        value(r#"export default {s: 'it\'s \"q\" \\ \n\t\r\b\f\v\0 \x41 \u0042 \u{1F600} \q'}"#),
        Raw::Object(vec![(
            "s".into(),
            Raw::String("it's \"q\" \\ \n\t\r\u{8}\u{c}\u{b}\0 A B \u{1F600} q".into())
        )])
    );
}

#[test]
fn line_continuation_in_strings() {
    assert_eq!(value("export default {s: 'a\\\nb'}"), json(r#"{"s":"ab"}"#));
}

#[test]
fn template_literal_without_substitution() {
    assert_eq!(
        value("export default {c: `node server.js --port {{port}}\r\nx`}"),
        json(r#"{"c":"node server.js --port {{port}}\nx"}"#)
    );
}

#[test]
fn number_forms() {
    assert_eq!(
        value(
            "export default {a: 0o660, b: 1_000, c: 0x1F, d: 0b101, e: 1.5e3, f: .5, g: -2, h: 5., i: 1e-3, j: +7}"
        ),
        json(r#"{"a":432,"b":1000,"c":31,"d":5,"e":1500,"f":0.5,"g":-2,"h":5,"i":0.001,"j":7}"#)
    );
}

#[test]
fn huge_number_is_non_finite() {
    assert_eq!(
        value("export default {a: 1e400}"),
        Raw::Object(vec![("a".into(), Raw::NonFinite)])
    );
}

#[test]
fn duplicate_keys_keep_first_position_last_value() {
    assert_eq!(
        value("export default {a: 1, b: 2, a: 3}"),
        json(r#"{"a":3,"b":2}"#)
    );
}

#[test]
fn bom_is_ignored() {
    assert_eq!(value("\u{feff}export default {}"), json("{}"));
}

#[test]
fn extension_decides_the_forms() {
    assert!(matches!(
        read("module.exports = {}", ModuleKind::Esm),
        Outcome::Fallback(_)
    ));
    assert!(matches!(
        read("export default {}", ModuleKind::CommonJs),
        Outcome::Fallback(_)
    ));
    assert!(matches!(
        read(
            "module.exports = {}",
            ModuleKind::Either {
                allow_commonjs: false
            }
        ),
        Outcome::Fallback(_)
    ));
    assert!(matches!(
        read("export default {}", ModuleKind::Esm),
        Outcome::Value(_)
    ));
}

#[test]
fn every_fallback_trigger() {
    for src in [
        "import x from './x.js'; export default {}",
        "export default () => ({})",
        "export default async function () { return {} }",
        "export default {a: `x${1}`}",
        "export default {a: process.env.X}",
        "export default {...base}",
        "export default {a: [...xs]}",
        "export default {a: b}",
        "export default {a}",
        "export default {a() {}}",
        "export default {get a() { return 1 }}",
        "export default {[k]: 1}",
        "export default {1: 'x'}",
        "export default {'2': 'x'}",
        "export default {__proto__: {}}",
        "export default {a: 0660}",
        "export default {a: 08}",
        "export default {a: 10n}",
        "export default {a: 1_}",
        "export default {a: 1__0}",
        "export default {a: 'x' + 'y'}",
        "export default {a: 1 + 2}",
        "export default {a: 'x'.length}",
        "export default {a: undefined}",
        "export default {a: NaN}",
        "export default {a: Infinity}",
        "export default {a: -Infinity}",
        "export default {a: [1,,2]}",
        "export default {a: '\\1'}",
        "export default {a: '\\uD83D\\uDE00'}",
        "export default {caf\\u00e9: 1}",
        "export default {a: 1}\nconsole.log('x')",
        "export default {a: 1}\n(foo)",
        "const c = {}; export default c",
        "export const x = 1",
        "'use strict'; module.exports = {}",
        "#!/usr/bin/env node\nexport default {}",
        "module.exports = exports = {}",
        "module.exports.a = 1",
        "exports.a = 1",
        "export default {a: /re/}",
        "export default {a: true && 1}",
        "export default {a: 'x'`y`}",
        "export default true\nfoo()",
        "export default 5\nbar",
    ] {
        falls_back(src);
    }
}

#[test]
fn syntax_errors_node_also_rejects_have_line_and_column() {
    error_at("export default {\n  a: 'unterminated\n}", 2, 6);
    error_at("export default {\n  a: 1\n  b: 2\n}", 3, 3);
    error_at("export default {a: 1,, b: 2}", 1, 22);
    error_at("export default {\n  a: [1, 2\n", 2, 6);
    error_at("export default {a: 1 /* never closed", 1, 22);
    error_at("export default {a: '\\x4'}", 1, 21);
    error_at("export default {\n  a: 1 2\n}", 2, 8);
}
