//! One non-blocking socket with its readiness flags and (lazily checked
//! out) buffers.
//!
//! Sockets are registered once, edge-triggered, for both directions. The
//! flags remember what the last event said; a read or write that hits
//! `WouldBlock` clears them. Backpressure is simply not reading: a
//! connection whose output is full (or whose peer's is) is not read from,
//! so the kernel window closes and nothing grows without bound.

use super::buf::{BUF_SIZE, Buf, BufPool};
use mio::net::TcpStream;
use std::io::{self, Read, Write};

#[derive(Debug)]
pub struct Conn {
    pub sock: TcpStream,
    pub readable: bool,
    pub writable: bool,
    /// The peer sent FIN (read returned 0).
    pub eof: bool,
    /// An event said the peer closed (or the socket failed): keep reading
    /// to the end instead of trusting a short read.
    pub hup: bool,
    /// We shut down our write side.
    pub write_shut: bool,
    /// Bytes read from this socket, not yet consumed.
    pub input: Option<Buf>,
    /// Bytes waiting to be written to this socket.
    pub output: Option<Buf>,
    /// Bytes written to this socket so far (the access log's byte count).
    pub sent: u64,
}

impl Conn {
    pub fn new(sock: TcpStream) -> Conn {
        Conn {
            sock,
            readable: true,
            writable: true,
            eof: false,
            hup: false,
            write_shut: false,
            input: None,
            output: None,
            sent: 0,
        }
    }

    /// Reads into `input` until `WouldBlock`, EOF or the buffer is full.
    /// A fresh burst is read into the pool's scratch first, so a connection
    /// only keeps a buffer sized to what actually arrived.
    pub fn fill(&mut self, bufs: &mut BufPool) -> io::Result<usize> {
        if !self.readable || self.eof {
            return Ok(0);
        }
        let mut total = 0;
        loop {
            let fresh = self.input.is_none();
            let buf = match self.input.as_mut() {
                Some(b) => b,
                None => bufs.scratch(),
            };
            let space = buf.space();
            let want = space.len();
            if want == 0 {
                if buf.capacity() < BUF_SIZE {
                    bufs.upgrade(&mut self.input);
                    continue;
                }
                break;
            }
            match self.sock.read(space) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => {
                    buf.commit(n);
                    total += n;
                    if fresh {
                        self.input = Some(bufs.adopt_scratch());
                    }
                    // A short read drained the socket: skip the extra
                    // read that would only say WouldBlock. Data or a FIN
                    // arriving later raises a new edge; a FIN that came
                    // with this data was flagged by the event (`hup`).
                    if n < want && !self.hup {
                        self.readable = false;
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    bufs.release_if_empty(&mut self.input);
                    return Err(e);
                }
            }
        }
        bufs.release_if_empty(&mut self.input);
        Ok(total)
    }

    /// Writes `output` until it is empty or `WouldBlock`.
    pub fn flush(&mut self, bufs: &mut BufPool) -> io::Result<usize> {
        let n = write_buf(&mut self.sock, &mut self.writable, &mut self.output, bufs)?;
        self.sent += n as u64;
        Ok(n)
    }

    /// Writes `output` then `extra` with as few syscalls as possible
    /// (writev). Returns (output bytes, extra bytes) written.
    pub fn write_with(&mut self, extra: &[u8], bufs: &mut BufPool) -> io::Result<(usize, usize)> {
        let (mut head_n, mut extra_n) = (0, 0);
        while self.writable {
            let head = self.output.as_ref().map_or(&[][..], |b| b.data());
            let rest = &extra[extra_n..];
            if head.is_empty() && rest.is_empty() {
                break;
            }
            let want = head.len() + rest.len();
            let res = if head.is_empty() {
                self.sock.write(rest)
            } else {
                self.sock
                    .write_vectored(&[io::IoSlice::new(head), io::IoSlice::new(rest)])
            };
            match res {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    let from_head = n.min(head.len());
                    if let Some(b) = self.output.as_mut() {
                        b.consume(from_head);
                    }
                    head_n += from_head;
                    extra_n += n - from_head;
                    if n < want {
                        self.writable = false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        bufs.release_if_empty(&mut self.output);
        self.sent += (head_n + extra_n) as u64;
        Ok((head_n, extra_n))
    }

    /// Bytes waiting in `output`.
    pub fn pending_out(&self) -> usize {
        self.output.as_ref().map_or(0, Buf::len)
    }

    pub fn pending_in(&self) -> usize {
        self.input.as_ref().map_or(0, Buf::len)
    }

    /// Queues `bytes` for writing, enlarging the buffer for big heads.
    pub fn queue(&mut self, bufs: &mut BufPool, bytes: &[u8]) {
        let buf = bufs.ensure(&mut self.output);
        if buf.free() < bytes.len() {
            buf.grow(buf.len() + bytes.len());
        }
        buf.push(bytes);
    }

    /// Half-closes our side once everything queued is written.
    pub fn shutdown_write(&mut self) {
        if !self.write_shut {
            self.write_shut = true;
            let _ = self.sock.shutdown(std::net::Shutdown::Write);
        }
    }

    pub fn release_bufs(&mut self, bufs: &mut BufPool) {
        bufs.release(&mut self.input);
        bufs.release(&mut self.output);
    }
}

/// Writes `slot`'s bytes to `sock` until empty or `WouldBlock`; returns the
/// buffer to the pool once empty.
pub fn write_buf(
    sock: &mut TcpStream,
    writable: &mut bool,
    slot: &mut Option<Buf>,
    bufs: &mut BufPool,
) -> io::Result<usize> {
    let mut total = 0;
    if let Some(buf) = slot.as_mut() {
        while *writable && !buf.is_empty() {
            match sock.write(buf.data()) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    let short = n < buf.len();
                    buf.consume(n);
                    total += n;
                    if short {
                        // The send buffer is full: wait for the next edge.
                        *writable = false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => *writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    bufs.release_if_empty(slot);
    Ok(total)
}
