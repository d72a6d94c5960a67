//! Byte buffers in two sizes and the pool they come from.
//!
//! A connection checks a buffer out only while bytes are actually waiting in
//! it and hands it back as soon as it is empty, so idle keep-alive
//! connections, pooled upstream connections and quiet WebSocket tunnels hold
//! no buffer memory at all. A burst of input is first read into the pool's
//! scratch buffer and then kept in a [`SMALL_SIZE`] buffer when it fits (a
//! slow client's partial head costs 2 KiB, not 16), or the scratch itself
//! becomes the connection's buffer (no copy) when it does not. A small buffer
//! that fills up is swapped for a [`BUF_SIZE`] one. The one exception to the
//! two sizes is a request or response head larger than [`BUF_SIZE`]: its
//! buffer is enlarged up to the head limit and dropped (not pooled) when
//! returned.
//!
//! The pool also lends the pipes long bodies are spliced through (see
//! `splice.rs`), under the same rule: held only while not empty.

use super::splice::Pipe;

/// Size of a full buffer. Four of them is the worst case per active
/// connection; in practice two are held while a response streams.
pub const BUF_SIZE: usize = 16 * 1024;

/// Size of the buffer a short burst of input is kept in.
pub const SMALL_SIZE: usize = 2 * 1024;

/// Most buffers of each size kept on the free lists while busy.
const POOL_MAX: usize = 64;
const SMALL_POOL_MAX: usize = 256;
/// What the free lists are trimmed to when nothing is checked out.
const IDLE_KEEP: usize = 8;
/// Copies of request heads (kept to replay a request) larger than this
/// are not pooled.
const COPY_KEEP: usize = 4 * 1024;

/// A byte buffer with a read cursor (`start`) and a write cursor (`end`).
#[derive(Debug)]
pub struct Buf {
    mem: Box<[u8]>,
    start: usize,
    end: usize,
}

impl Buf {
    /// A buffer of `size` bytes (tests and oversized heads).
    pub fn with_capacity(size: usize) -> Buf {
        Buf {
            mem: vec![0u8; size].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// Bytes waiting to be consumed.
    pub fn data(&self) -> &[u8] {
        &self.mem[self.start..self.end]
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub fn capacity(&self) -> usize {
        self.mem.len()
    }

    /// Free bytes once compacted.
    pub fn free(&self) -> usize {
        self.mem.len() - self.len()
    }

    /// Marks `n` bytes at the front as consumed.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Writable tail, compacting first when that gains space.
    pub fn space(&mut self) -> &mut [u8] {
        if self.start > 0 && self.end == self.mem.len() {
            self.mem.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.mem[self.end..]
    }

    /// Records `n` bytes written into [`Buf::space`].
    pub fn commit(&mut self, n: usize) {
        self.end = (self.end + n).min(self.mem.len());
    }

    /// Appends `bytes` if they fit; returns false (and writes nothing) if not.
    pub fn push(&mut self, bytes: &[u8]) -> bool {
        if bytes.len() > self.free() {
            return false;
        }
        if self.mem.len() - self.end < bytes.len() {
            self.mem.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        self.mem[self.end..self.end + bytes.len()].copy_from_slice(bytes);
        self.end += bytes.len();
        true
    }

    /// Enlarges the buffer to at least `size` bytes, keeping its contents.
    pub fn grow(&mut self, size: usize) {
        if size <= self.mem.len() {
            return;
        }
        let mut mem = vec![0u8; size].into_boxed_slice();
        let len = self.len();
        mem[..len].copy_from_slice(self.data());
        self.mem = mem;
        self.start = 0;
        self.end = len;
    }
}

/// Most pipes lent out at once (each is two descriptors).
const PIPES_MAX: usize = 128;

/// Free lists of full and small buffers plus the read scratch, owned by
/// the event-loop thread (no lock).
#[derive(Debug, Default)]
pub struct BufPool {
    free: Vec<Buf>,
    small: Vec<Buf>,
    scratch: Option<Buf>,
    /// Buffers currently checked out (for tests and memory reasoning).
    pub out: usize,
    pipes: Vec<Pipe>,
    /// Pipes currently lent out.
    pub pipes_out: usize,
    /// Splicing failed as unsupported: bodies are copied from now on.
    pub splice_off: bool,
    /// Emptied vectors for copies of request heads.
    copies: Vec<Vec<u8>>,
}

impl BufPool {
    /// A full-size buffer.
    pub fn get(&mut self) -> Buf {
        self.out += 1;
        self.free
            .pop()
            .unwrap_or_else(|| Buf::with_capacity(BUF_SIZE))
    }

    fn get_small(&mut self) -> Buf {
        self.out += 1;
        self.small
            .pop()
            .unwrap_or_else(|| Buf::with_capacity(SMALL_SIZE))
    }

    pub fn put(&mut self, mut buf: Buf) {
        self.out = self.out.saturating_sub(1);
        buf.start = 0;
        buf.end = 0;
        match buf.capacity() {
            BUF_SIZE if self.free.len() < POOL_MAX => self.free.push(buf),
            SMALL_SIZE if self.small.len() < SMALL_POOL_MAX => self.small.push(buf),
            _ => {}
        }
    }

    /// The empty full-size buffer a fresh burst is read into (not
    /// checked out; see [`BufPool::adopt_scratch`]).
    pub fn scratch(&mut self) -> &mut Buf {
        self.scratch
            .get_or_insert_with(|| Buf::with_capacity(BUF_SIZE))
    }

    /// Checks out what was read into the scratch: copied into a small
    /// buffer when it fits, else the scratch itself (replaced later).
    pub fn adopt_scratch(&mut self) -> Buf {
        let Some(scratch) = self.scratch.as_mut() else {
            return self.get_small();
        };
        if scratch.len() <= SMALL_SIZE {
            let mut small = self
                .small
                .pop()
                .unwrap_or_else(|| Buf::with_capacity(SMALL_SIZE));
            if let Some(scratch) = self.scratch.as_mut() {
                small.push(scratch.data());
                scratch.start = 0;
                scratch.end = 0;
            }
            self.out += 1;
            return small;
        }
        self.out += 1;
        let next = self.free.pop();
        match next {
            Some(b) => self.scratch.replace(b),
            None => self.scratch.take(),
        }
        .unwrap_or_else(|| Buf::with_capacity(BUF_SIZE))
    }

    /// Swaps a full small buffer in `slot` for a full-size one.
    pub fn upgrade(&mut self, slot: &mut Option<Buf>) {
        if slot.as_ref().is_some_and(|b| b.capacity() < BUF_SIZE) {
            let mut big = self.get();
            if let Some(old) = slot.take() {
                big.push(old.data());
                self.put(old);
            }
            *slot = Some(big);
        }
    }

    /// An empty pipe for a long body, if splicing works here and lending
    /// one keeps within `room` descriptor pairs (what the connection budget
    /// leaves) and [`PIPES_MAX`].
    pub fn take_pipe(&mut self, room: usize) -> Option<Pipe> {
        if self.splice_off || self.pipes_out >= PIPES_MAX.min(room) {
            return None;
        }
        let pipe = match self.pipes.pop() {
            Some(p) => p,
            None => Pipe::new().ok()?,
        };
        self.pipes_out += 1;
        Some(pipe)
    }

    /// Takes a lent pipe back: pooled when empty, closed otherwise (its
    /// bytes belong to a connection that is going away).
    pub fn put_pipe(&mut self, pipe: Pipe) {
        self.pipes_out = self.pipes_out.saturating_sub(1);
        if pipe.is_empty() && self.pipes.len() < PIPES_MAX {
            self.pipes.push(pipe);
        }
    }

    /// A copy of `bytes` in a pooled vector (no allocation once a few
    /// copies came back with [`BufPool::put_copy`]).
    pub fn copy(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut v = self.copies.pop().unwrap_or_default();
        v.extend_from_slice(bytes);
        v
    }

    /// Takes back a vector from [`BufPool::copy`].
    pub fn put_copy(&mut self, mut v: Vec<u8>) {
        if v.capacity() <= COPY_KEEP && self.copies.len() < SMALL_POOL_MAX {
            v.clear();
            self.copies.push(v);
        }
    }

    /// Frees all but a few pooled buffers (called when the loop is idle or
    /// after a flood closed); returns how many bytes were released.
    pub fn trim(&mut self) -> usize {
        let freed = self.free.len().saturating_sub(IDLE_KEEP) * BUF_SIZE
            + self.small.len().saturating_sub(IDLE_KEEP) * SMALL_SIZE;
        self.free.truncate(IDLE_KEEP);
        self.small.truncate(IDLE_KEEP);
        self.free.shrink_to_fit();
        self.small.shrink_to_fit();
        self.pipes.truncate(IDLE_KEEP);
        self.pipes.shrink_to_fit();
        self.copies.truncate(IDLE_KEEP);
        self.copies.shrink_to_fit();
        freed
    }

    /// Buffers waiting on the free lists (tests).
    pub fn pooled(&self) -> usize {
        self.free.len() + self.small.len()
    }

    /// Returns `slot`'s buffer to the pool if it is empty.
    pub fn release_if_empty(&mut self, slot: &mut Option<Buf>) {
        if slot.as_ref().is_some_and(Buf::is_empty) {
            if let Some(b) = slot.take() {
                self.put(b);
            }
        }
    }

    /// Returns `slot`'s buffer to the pool whatever it holds.
    pub fn release(&mut self, slot: &mut Option<Buf>) {
        if let Some(b) = slot.take() {
            self.put(b);
        }
    }

    /// The buffer in `slot`, checking one out if there is none.
    pub fn ensure<'a>(&mut self, slot: &'a mut Option<Buf>) -> &'a mut Buf {
        if slot.is_none() {
            *slot = Some(self.get());
        }
        slot.get_or_insert_with(|| Buf::with_capacity(BUF_SIZE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_compacts_when_tail_is_short() {
        let mut b = Buf::with_capacity(8);
        assert!(b.push(b"abcdef"));
        b.consume(4);
        assert!(b.push(b"ghijk"));
        assert_eq!(b.data(), b"efghijk");
        assert!(!b.push(b"xy"));
    }

    #[test]
    fn consume_all_resets_cursors() {
        let mut b = Buf::with_capacity(4);
        b.push(b"ab");
        b.consume(2);
        assert_eq!(b.space().len(), 4);
    }

    #[test]
    fn oversized_buffers_are_not_pooled() {
        let mut p = BufPool::default();
        let mut b = p.get();
        b.grow(BUF_SIZE * 2);
        p.put(b);
        assert!(p.free.is_empty());
        assert_eq!(p.out, 0);
    }

    #[test]
    fn short_burst_is_kept_in_a_small_buffer() {
        let mut p = BufPool::default();
        assert!(p.scratch().push(b"GET / HTTP/1.1\r\n"));
        let b = p.adopt_scratch();
        assert_eq!(b.capacity(), SMALL_SIZE);
        assert_eq!(b.data(), b"GET / HTTP/1.1\r\n");
        assert!(p.scratch().is_empty());
        assert_eq!(p.out, 1);
        p.put(b);
        assert_eq!((p.out, p.pooled()), (0, 1));
    }

    #[test]
    fn long_burst_keeps_the_scratch_without_copying() {
        let mut p = BufPool::default();
        let big = vec![b'x'; SMALL_SIZE + 1];
        assert!(p.scratch().push(&big));
        let b = p.adopt_scratch();
        assert_eq!(b.capacity(), BUF_SIZE);
        assert_eq!(b.len(), SMALL_SIZE + 1);
        assert!(p.scratch().is_empty());
    }

    #[test]
    fn full_small_buffer_is_upgraded_keeping_contents() {
        let mut p = BufPool::default();
        p.scratch().push(b"abc");
        let mut slot = Some(p.adopt_scratch());
        p.upgrade(&mut slot);
        let b = slot.unwrap();
        assert_eq!(b.capacity(), BUF_SIZE);
        assert_eq!(b.data(), b"abc");
        assert_eq!(p.out, 1);
    }

    #[test]
    fn trim_keeps_only_a_few_buffers() {
        let mut p = BufPool::default();
        let bufs: Vec<Buf> = (0..100).map(|_| p.get_small()).collect();
        for b in bufs {
            p.put(b);
        }
        assert_eq!(p.pooled(), 100);
        assert_eq!(p.trim(), 92 * SMALL_SIZE);
        assert_eq!(p.pooled(), IDLE_KEEP);
    }

    #[test]
    fn pipes_are_lent_within_the_descriptor_room() {
        let mut p = BufPool::default();
        assert!(p.take_pipe(0).is_none());
        let a = p.take_pipe(2).unwrap();
        let b = p.take_pipe(2).unwrap();
        assert!(p.take_pipe(2).is_none());
        p.put_pipe(a);
        p.put_pipe(b);
        assert_eq!((p.pipes_out, p.pipes.len()), (0, 2));
        p.splice_off = true;
        assert!(p.take_pipe(10).is_none());
    }

    #[test]
    fn a_pipe_with_bytes_in_it_is_not_pooled() {
        let mut p = BufPool::default();
        let mut a = p.take_pipe(1).unwrap();
        a.len = 5;
        p.put_pipe(a);
        assert_eq!((p.pipes_out, p.pipes.len()), (0, 0));
    }

    #[test]
    fn copies_reuse_returned_vectors() {
        let mut p = BufPool::default();
        let a = p.copy(b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(a, b"GET / HTTP/1.1\r\n\r\n");
        let at = a.as_ptr();
        p.put_copy(a);
        let b = p.copy(b"HEAD /");
        assert_eq!((b.as_ptr(), &b[..]), (at, &b"HEAD /"[..]));
        p.put_copy(vec![0; COPY_KEEP + 1]);
        assert!(p.copies.is_empty());
    }

    #[test]
    fn grow_keeps_contents() {
        let mut b = Buf::with_capacity(4);
        b.push(b"abcd");
        b.consume(1);
        b.grow(16);
        assert_eq!(b.data(), b"bcd");
        assert_eq!(b.capacity(), 16);
    }
}
