//! Writing a rebuilt head with few copies: a line we would write exactly
//! as the peer sent it (same name, `": "`, same value, CRLF) is not
//! assembled piece by piece but remembered as a range of the input, and
//! ranges that follow each other are copied in one go. Anything else is
//! written as before. The output is byte for byte the same either way;
//! only the number of small copies (a call each) changes.

use super::digits::push_u64;
use std::ops::Range;

/// A head being written to `out`, with `src` the head it is rebuilt from.
pub struct Lines<'a, 'o> {
    src: &'a [u8],
    out: &'o mut Vec<u8>,
    /// Input bytes still to copy (empty: none).
    run: Range<usize>,
}

impl<'a, 'o> Lines<'a, 'o> {
    pub fn new(src: &'a [u8], out: &'o mut Vec<u8>) -> Lines<'a, 'o> {
        Lines {
            src,
            out,
            run: 0..0,
        }
    }

    /// Appends `bytes` as they are.
    pub fn put(&mut self, bytes: &[u8]) {
        self.flush();
        self.out.extend_from_slice(bytes);
    }

    /// Appends `n` in decimal.
    pub fn number(&mut self, n: u64) {
        self.flush();
        push_u64(self.out, n);
    }

    /// Appends `name: value\r\n`.
    pub fn field(&mut self, name: &[u8], value: &[u8]) {
        if let Some(line) = self.field_at(name, value) {
            return self.keep(line);
        }
        self.put(name);
        self.out.extend_from_slice(b": ");
        self.out.extend_from_slice(value);
        self.out.extend_from_slice(b"\r\n");
    }

    /// Appends `first` and `second` separated by `sep` and followed by
    /// `tail`, where `first` and `second` are slices of the input or
    /// literals (a request or status line).
    pub fn line(&mut self, first: &[u8], sep: u8, second: &[u8], tail: &[u8]) {
        if let Some(line) = self.line_at(first, sep, second, tail) {
            return self.keep(line);
        }
        self.put(first);
        self.out.push(sep);
        self.out.extend_from_slice(second);
        self.out.extend_from_slice(tail);
    }

    /// Copies what is pending; the output is complete afterwards.
    pub fn finish(mut self) {
        self.flush();
    }

    fn keep(&mut self, line: Range<usize>) {
        if self.run.is_empty() || self.run.end != line.start {
            self.flush();
            self.run.start = line.start;
        }
        self.run.end = line.end;
    }

    fn flush(&mut self) {
        if !self.run.is_empty() {
            self.out.extend_from_slice(&self.src[self.run.clone()]);
            self.run = 0..0;
        }
    }

    /// Where `part` lies in the input, if it is a slice of it (the same
    /// memory, hence the same bytes).
    fn offset(&self, part: &[u8]) -> Option<usize> {
        let at = (part.as_ptr() as usize).checked_sub(self.src.as_ptr() as usize)?;
        (at.checked_add(part.len())? <= self.src.len()).then_some(at)
    }

    /// The input's line `name: value\r\n`, when `name` and `value` are the
    /// input's own bytes with exactly `": "` between them and CRLF after.
    fn field_at(&self, name: &[u8], value: &[u8]) -> Option<Range<usize>> {
        let start = self.offset(name)?;
        let sep = start + name.len();
        if self.src.get(sep..sep + 2)? != b": " || self.offset(value)? != sep + 2 {
            return None;
        }
        let end = sep + 2 + value.len();
        (self.src.get(end..end + 2)? == b"\r\n").then_some(start..end + 2)
    }

    /// The input's line `first sep second tail`, when `second` is a slice
    /// of the input and `first` one or the bytes just before it.
    fn line_at(&self, first: &[u8], sep: u8, second: &[u8], tail: &[u8]) -> Option<Range<usize>> {
        let at = self.offset(second)?;
        let start = at.checked_sub(first.len() + 1)?;
        if self.src.get(at - 1) != Some(&sep)
            || (self.offset(first) != Some(start) && self.src.get(start..at - 1)? != first)
        {
            return None;
        }
        let end = at + second.len();
        (self.src.get(end..end + tail.len())? == tail).then_some(start..end + tail.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbatim_and_rebuilt_lines_come_out_in_order() {
        let src = b"HTTP/1.1 200 OK\r\nA: 1\r\nB:  2 \r\nC: 3\r\nD: 4\r\n\r\n";
        let (a, b, c) = (&src[17..18], &src[23..24], &src[31..32]);
        let mut out = Vec::new();
        let mut l = Lines::new(src, &mut out);
        l.line(b"HTTP/1.1 200", b' ', &src[13..15], b"\r\n");
        l.field(a, &src[20..21]);
        // Not as sent (value trimmed): written piece by piece.
        l.field(b, b"2");
        l.field(c, &src[34..35]);
        l.put(b"X: y\r\n");
        l.field(b"D", b"4"); // not a slice of the input
        l.finish();
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nX: y\r\nD: 4\r\n"
        );
    }

    #[test]
    fn a_slice_from_elsewhere_is_never_taken_for_the_input() {
        let src = b"Host: a\r\n".to_vec();
        let other = b"Host: a\r\n".to_vec();
        let mut out = Vec::new();
        let mut l = Lines::new(&src, &mut out);
        l.field(&other[..4], &other[6..7]);
        l.finish();
        assert_eq!(out, b"Host: a\r\n");
    }
}
