//! Fixed-size byte buffers and the pool they come from.
//!
//! A connection checks a buffer out only while bytes are actually waiting in
//! it and hands it back as soon as it is empty, so idle keep-alive
//! connections, pooled upstream connections and quiet WebSocket tunnels hold
//! no buffer memory at all. The one exception to the fixed size is a request
//! or response head larger than [`BUF_SIZE`]: its buffer is enlarged up to the
//! head limit and dropped (not pooled) when returned.

/// Size of a pooled buffer. Four of them is the worst case per active
/// connection; in practice two are held while a response streams.
pub const BUF_SIZE: usize = 16 * 1024;

/// Most buffers kept on the free list; the rest are freed.
const POOL_MAX: usize = 128;

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

/// Free list of [`BUF_SIZE`] buffers, owned by the event-loop thread (no lock).
#[derive(Debug, Default)]
pub struct BufPool {
    free: Vec<Buf>,
    /// Buffers currently checked out (for tests and memory reasoning).
    pub out: usize,
}

impl BufPool {
    pub fn get(&mut self) -> Buf {
        self.out += 1;
        self.free
            .pop()
            .unwrap_or_else(|| Buf::with_capacity(BUF_SIZE))
    }

    pub fn put(&mut self, mut buf: Buf) {
        self.out = self.out.saturating_sub(1);
        if buf.capacity() == BUF_SIZE && self.free.len() < POOL_MAX {
            buf.start = 0;
            buf.end = 0;
            self.free.push(buf);
        }
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
    fn grow_keeps_contents() {
        let mut b = Buf::with_capacity(4);
        b.push(b"abcd");
        b.consume(1);
        b.grow(16);
        assert_eq!(b.data(), b"bcd");
        assert_eq!(b.capacity(), 16);
    }
}
