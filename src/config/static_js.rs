//! A native reader for configs that are plain data: `export default` or
//! `module.exports =` around a literal. Starting `node` costs 50–100 ms per
//! CLI call; most `rollbridge.js` files need no JavaScript at all.
//!
//! The reader accepts a strict subset and must produce exactly what Node
//! would. Anything outside the subset — an identifier, a call, a spread,
//! `${}`, a computed or numeric key, a legacy octal — is a [`Outcome::Fallback`]
//! and the file goes to Node unchanged. Only input that Node certainly
//! rejects too (an unterminated string or comment, a missing comma between
//! two literals, a premature end of file) is reported as an error here.

use super::raw::Raw;

/// Which top-level forms a file may use, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleKind {
    /// `.mjs`: ESM only (`module` is not defined there).
    Esm,
    /// `.cjs`: CommonJS only (`export` is a syntax error there).
    CommonJs,
    /// `.js`: either; the caller decides whether `module.exports` is
    /// allowed (not when the nearest package.json says `"type": "module"`).
    Either { allow_commonjs: bool },
}

#[derive(Debug, PartialEq)]
pub enum Outcome {
    Value(Raw),
    /// Not in the static subset; evaluate with Node. The reason is for
    /// debugging only.
    Fallback(&'static str),
    /// A syntax error Node would report too: message with line and column.
    Error(String),
}

/// Reads `src` if it is a static config.
pub fn read(src: &str, kind: ModuleKind) -> Outcome {
    let mut p = Parser {
        src: src.strip_prefix('\u{feff}').unwrap_or(src),
        pos: 0,
        depth: 0,
    };
    match p.module(kind) {
        Ok(raw) => Outcome::Value(raw),
        Err(Stop::Fallback(why)) => Outcome::Fallback(why),
        Err(Stop::Error(at, what)) => {
            let (line, column) = p.line_col(at);
            Outcome::Error(format!(
                "SyntaxError at line {line}, column {column}: {what}"
            ))
        }
    }
}

enum Stop {
    Fallback(&'static str),
    Error(usize, String),
}

type Res<T> = Result<T, Stop>;

fn fallback<T>(why: &'static str) -> Res<T> {
    Err(Stop::Fallback(why))
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    /// Nesting inside `{}`/`[]`. At depth 0 a newline may end the
    /// statement (ASI), so what follows a value is left to `module`.
    depth: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn error<T>(&self, at: usize, what: impl Into<String>) -> Res<T> {
        Err(Stop::Error(at, what.into()))
    }

    fn line_col(&self, at: usize) -> (usize, usize) {
        let before = &self.src[..at.min(self.src.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    }

    /// Skips whitespace and comments.
    fn skip(&mut self) -> Res<()> {
        loop {
            let rest = self.rest();
            if let Some(c) = rest.chars().next().filter(|c| is_js_space(*c)) {
                self.pos += c.len_utf8();
            } else if rest.starts_with("//") {
                let end = rest
                    .find(['\n', '\r', '\u{2028}', '\u{2029}'])
                    .unwrap_or(rest.len());
                self.pos += end;
            } else if let Some(body) = rest.strip_prefix("/*") {
                match body.find("*/") {
                    Some(end) => self.pos += end + 4,
                    None => return self.error(self.pos, "unterminated comment"),
                }
            } else {
                return Ok(());
            }
        }
    }

    fn eat(&mut self, s: &str) -> Res<bool> {
        self.skip()?;
        if self.rest().starts_with(s) {
            self.pos += s.len();
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Eats the word `w` if it is followed by a non-identifier character.
    fn eat_word(&mut self, w: &str) -> Res<bool> {
        self.skip()?;
        let rest = self.rest();
        if rest.starts_with(w) && !rest[w.len()..].chars().next().is_some_and(is_ident_char) {
            self.pos += w.len();
            return Ok(true);
        }
        Ok(false)
    }

    fn module(&mut self, kind: ModuleKind) -> Res<Raw> {
        self.skip()?;
        let esm_ok = !matches!(kind, ModuleKind::CommonJs);
        let cjs_ok = match kind {
            ModuleKind::CommonJs => true,
            ModuleKind::Esm => false,
            ModuleKind::Either { allow_commonjs } => allow_commonjs,
        };
        if self.eat_word("export")? {
            if !esm_ok || !self.eat_word("default")? {
                return fallback("export form outside the static subset");
            }
        } else if self.eat_word("module")? {
            if !cjs_ok || !self.eat(".")? || !self.eat_word("exports")? || !self.eat("=")? {
                return fallback("module form outside the static subset");
            }
            // `module.exports == x` / `=>` are not assignments.
            if self.rest().starts_with(['=', '>']) {
                return fallback("not a plain assignment");
            }
        } else {
            return fallback("no leading export default / module.exports");
        }
        let value = self.value()?;
        self.eat(";")?;
        self.skip()?;
        if self.pos != self.src.len() {
            return fallback("more statements after the export");
        }
        Ok(value)
    }

    fn value(&mut self) -> Res<Raw> {
        self.skip()?;
        let start = self.pos;
        match self.peek() {
            Some('{') | Some('[') => {
                self.depth += 1;
                let v = if self.peek() == Some('{') {
                    self.object()
                } else {
                    self.array()
                };
                self.depth -= 1;
                v
            }
            Some('"') | Some('\'') => Ok(Raw::String(self.string()?)),
            Some('`') => Ok(Raw::String(self.template()?)),
            Some(c) if c.is_ascii_digit() || c == '.' => self.number(1.0),
            Some('-') | Some('+') => {
                let sign = if self.peek() == Some('-') { -1.0 } else { 1.0 };
                self.pos += 1;
                self.skip()?;
                match self.peek() {
                    Some(c) if c.is_ascii_digit() || c == '.' => self.number(sign),
                    _ => fallback("unary operator on a non-number"),
                }
            }
            Some(c) if is_ident_start(c) => {
                let word = self.ident();
                let v = match word {
                    "true" => Raw::Bool(true),
                    "false" => Raw::Bool(false),
                    "null" => Raw::Null,
                    _ => return fallback("identifier"),
                };
                self.after_value()?;
                Ok(v)
            }
            None => self.error(start, "unexpected end of input"),
            Some(_) => fallback("expression outside the static subset"),
        }
    }

    /// After `true`/`false`/`null`, a `.`, `(` or `[` would make an
    /// expression; leave those to Node.
    fn after_value(&mut self) -> Res<()> {
        if self.depth == 0 {
            return Ok(());
        }
        self.skip()?;
        match self.peek() {
            Some(',') | Some('}') | Some(']') | Some(';') | None => Ok(()),
            Some(c)
                if c.is_ascii_alphanumeric() || matches!(c, '"' | '\'' | ':' | '{' | '_' | '$') =>
            {
                self.unexpected_after_value(c)
            }
            _ => fallback("expression continues after a literal"),
        }
    }

    fn ident(&mut self) -> &'a str {
        let rest = self.rest();
        let len = rest
            .char_indices()
            .find(|(_, c)| !is_ident_char(*c))
            .map_or(rest.len(), |(i, _)| i);
        self.pos += len;
        &rest[..len]
    }

    fn object(&mut self) -> Res<Raw> {
        let open = self.pos;
        self.pos += 1;
        let mut members: Vec<(String, Raw)> = Vec::new();
        loop {
            self.skip()?;
            let key_at = self.pos;
            let key = match self.peek() {
                Some('}') => {
                    self.pos += 1;
                    break;
                }
                Some('"') | Some('\'') => self.string()?,
                Some(c) if is_ident_start(c) => {
                    let k = self.ident().to_owned();
                    if !k.is_ascii() || k.contains('\\') {
                        return fallback("escaped or non-ASCII identifier");
                    }
                    // `get x() {}`, `async x() {}` and friends.
                    self.skip()?;
                    if !matches!(self.peek(), Some(':')) {
                        return fallback("shorthand, method or accessor property");
                    }
                    k
                }
                Some(',') => return self.error(key_at, "unexpected token ','"),
                None => return self.error(open, "unterminated object literal"),
                Some(_) => return fallback("computed, numeric or spread key"),
            };
            if key == "__proto__" {
                return fallback("__proto__ sets the prototype");
            }
            if is_array_index(&key) {
                // Integer-like keys are enumerated first in JavaScript.
                return fallback("integer-like key");
            }
            if !self.eat(":")? {
                return fallback("shorthand, method or accessor property");
            }
            let value = self.value_in_container()?;
            match members.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => members.push((key, value)),
            }
            self.skip()?;
            match self.peek() {
                Some(',') => self.pos += 1,
                Some('}') => {
                    self.pos += 1;
                    break;
                }
                None => return self.error(open, "unterminated object literal"),
                Some(c) => return self.unexpected_after_value(c),
            }
        }
        Ok(Raw::Object(members))
    }

    fn array(&mut self) -> Res<Raw> {
        let open = self.pos;
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            self.skip()?;
            match self.peek() {
                Some(']') => {
                    self.pos += 1;
                    break;
                }
                Some(',') => return fallback("array hole"),
                None => return self.error(open, "unterminated array literal"),
                _ => {}
            }
            items.push(self.value_in_container()?);
            self.skip()?;
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(']') => {
                    self.pos += 1;
                    break;
                }
                None => return self.error(open, "unterminated array literal"),
                Some(c) => return self.unexpected_after_value(c),
            }
        }
        Ok(Raw::Array(items))
    }

    fn value_in_container(&mut self) -> Res<Raw> {
        self.skip()?;
        if self.rest().starts_with("...") {
            return fallback("spread");
        }
        self.value()
    }

    /// A token right after a complete value inside `{}`/`[]`: a literal is
    /// a certain syntax error; anything else may be an operator.
    fn unexpected_after_value<T>(&self, c: char) -> Res<T> {
        match c {
            '"' | '\'' | '{' | ':' => self.error(self.pos, format!("unexpected token '{c}'")),
            c if c.is_ascii_digit() => self.error(self.pos, "unexpected number"),
            c if is_ident_start(c) => {
                let rest = self.rest();
                let len = rest.find(|c: char| !is_ident_char(c)).unwrap_or(rest.len());
                match &rest[..len] {
                    // Binary operators spelled as words.
                    "in" | "instanceof" => fallback("operator after a value"),
                    word => self.error(self.pos, format!("unexpected identifier '{word}'")),
                }
            }
            _ => fallback("expression continues after a value"),
        }
    }

    fn string(&mut self) -> Res<String> {
        let open = self.pos;
        let quote = self.peek().unwrap_or('"');
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return self.error(open, "unterminated string");
            };
            self.pos += c.len_utf8();
            match c {
                c if c == quote => return Ok(out),
                '\n' | '\r' => return self.error(open, "unterminated string"),
                '\\' => self.escape(&mut out, false)?,
                c => out.push(c),
            }
        }
    }

    fn template(&mut self) -> Res<String> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return self.error(open, "unterminated template literal");
            };
            self.pos += c.len_utf8();
            match c {
                '`' => break,
                '$' if self.peek() == Some('{') => return fallback("template substitution"),
                '\\' => self.escape(&mut out, true)?,
                // Template values normalize CRLF and CR to LF.
                '\r' => {
                    if self.peek() == Some('\n') {
                        self.pos += 1;
                    }
                    out.push('\n');
                }
                c => out.push(c),
            }
        }
        // `tag`x`` and `x`.y` continue the expression.
        self.skip()?;
        if matches!(self.peek(), Some('`') | Some('.') | Some('[') | Some('(')) {
            return fallback("expression continues after a template");
        }
        Ok(out)
    }

    /// One escape sequence after `\`.
    fn escape(&mut self, out: &mut String, template: bool) -> Res<()> {
        let at = self.pos - 1;
        let Some(c) = self.peek() else {
            return self.error(at, "unterminated string");
        };
        self.pos += c.len_utf8();
        match c {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'v' => out.push('\u{b}'),
            '0' if !self.peek().is_some_and(|d| d.is_ascii_digit()) => out.push('\0'),
            '0'..='9' => return fallback("octal escape"),
            'x' => {
                let code = self.hex_digits(2, at)?;
                out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
            }
            'u' => {
                let code = if self.peek() == Some('{') {
                    self.pos += 1;
                    let rest = self.rest();
                    let len = rest.find('}').unwrap_or(0);
                    let digits = &rest[..len];
                    if len == 0 || !digits.chars().all(|d| d.is_ascii_hexdigit()) {
                        return fallback("unusual unicode escape");
                    }
                    self.pos += len + 1;
                    u32::from_str_radix(digits, 16).unwrap_or(u32::MAX)
                } else {
                    self.hex_digits(4, at)?
                };
                if (0xD800..=0xDFFF).contains(&code) {
                    // Surrogate pairs and lone surrogates: let Node decide.
                    return fallback("surrogate escape");
                }
                match char::from_u32(code) {
                    Some(ch) => out.push(ch),
                    None => return fallback("escape beyond Unicode"),
                }
            }
            // Line continuation.
            '\n' | '\u{2028}' | '\u{2029}' => {}
            '\r' => {
                if self.peek() == Some('\n') {
                    self.pos += 1;
                }
            }
            c if template && c == '$' => out.push('$'),
            c => out.push(c),
        }
        Ok(())
    }

    fn hex_digits(&mut self, n: usize, at: usize) -> Res<u32> {
        let rest = self.rest();
        let digits: String = rest.chars().take(n).collect();
        if digits.len() != n || !digits.chars().all(|d| d.is_ascii_hexdigit()) {
            return self.error(at, "invalid hexadecimal escape sequence");
        }
        self.pos += n;
        Ok(u32::from_str_radix(&digits, 16).unwrap_or(0))
    }

    fn number(&mut self, sign: f64) -> Res<Raw> {
        let rest = self.rest();
        let len = rest
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '.' || *c == '$'))
            .map_or(rest.len(), |(i, _)| i);
        let mut text = &rest[..len];
        // An exponent sign: `1e-3`, `2E+5`.
        let mut end = len;
        if (text.ends_with('e') || text.ends_with('E'))
            && !text.starts_with("0x")
            && !text.starts_with("0X")
            && rest[len..].starts_with(['+', '-'])
        {
            let tail = &rest[len + 1..];
            let digits = tail
                .char_indices()
                .find(|(_, c)| !(c.is_ascii_digit() || *c == '_'))
                .map_or(tail.len(), |(i, _)| i);
            end = len + 1 + digits;
            text = &rest[..end];
        }
        self.pos += end;
        let value = parse_number(text).ok_or(Stop::Fallback("number form outside the subset"))?;
        self.after_number()?;
        let v = sign * value;
        Ok(if v.is_finite() {
            Raw::Number(v)
        } else {
            Raw::NonFinite
        })
    }

    fn after_number(&mut self) -> Res<()> {
        if self.depth == 0 {
            return Ok(());
        }
        self.skip()?;
        match self.peek() {
            Some(',') | Some('}') | Some(']') | Some(';') | None => Ok(()),
            Some(c)
                if c.is_ascii_alphanumeric() || matches!(c, '"' | '\'' | ':' | '{' | '_' | '$') =>
            {
                self.unexpected_after_value(c)
            }
            _ => fallback("expression continues after a number"),
        }
    }
}

/// Parses a JavaScript numeric literal (no sign). `None` for anything this
/// reader does not handle exactly (legacy octal, BigInt, bad separators).
fn parse_number(text: &str) -> Option<f64> {
    if text.is_empty() || text.ends_with('n') {
        return None;
    }
    let radix = |prefix_len: usize, radix: u32| -> Option<f64> {
        let digits = strip_separators(&text[prefix_len..])?;
        if digits.is_empty() || digits.len() > 32 {
            return None;
        }
        u128::from_str_radix(&digits, radix).ok().map(|n| n as f64)
    };
    let lower = text.to_ascii_lowercase();
    if lower.starts_with("0x") {
        return radix(2, 16);
    }
    if lower.starts_with("0o") {
        return radix(2, 8);
    }
    if lower.starts_with("0b") {
        return radix(2, 2);
    }
    // Legacy octal (`0660`) and `08`: sloppy-mode only; let Node decide.
    let bytes = text.as_bytes();
    if bytes.len() > 1 && bytes[0] == b'0' && bytes[1].is_ascii_digit() {
        return None;
    }
    if bytes.len() > 1 && bytes[0] == b'0' && bytes[1] == b'_' {
        return None;
    }
    // Separators may only sit between two digits.
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'_' {
            let prev = i.checked_sub(1).map(|j| bytes[j]);
            let next = bytes.get(i + 1);
            if !prev.is_some_and(|p| p.is_ascii_digit())
                || !next.is_some_and(|n| n.is_ascii_digit())
            {
                return None;
            }
        }
    }
    let clean: String = text.chars().filter(|c| *c != '_').collect();
    if !clean
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
    {
        return None;
    }
    // Rust accepts forms JavaScript rejects ("1e", "e5" do not reach here,
    // but "1.e5" does and is valid in both).
    clean.parse::<f64>().ok()
}

fn strip_separators(digits: &str) -> Option<String> {
    let b = digits.as_bytes();
    for (i, c) in b.iter().enumerate() {
        if *c == b'_' && (i == 0 || i + 1 == b.len() || b[i - 1] == b'_' || b[i + 1] == b'_') {
            return None;
        }
    }
    Some(digits.chars().filter(|c| *c != '_').collect())
}

/// Canonical array-index strings ("0", "17"): JavaScript enumerates these
/// before every other key, whatever the source order.
fn is_array_index(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 10
        && key.bytes().all(|b| b.is_ascii_digit())
        && (key == "0" || !key.starts_with('0'))
        && key.parse::<u64>().is_ok_and(|n| n < u32::MAX as u64)
}

fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n'
            | '\u{b}'
            | '\u{c}'
            | '\r'
            | ' '
            | '\u{a0}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{feff}'
    ) || (c > '\u{7f}' && c.is_whitespace())
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == '$'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '\\' || (c as u32) > 0x7f
}

#[cfg(test)]
mod tests;
