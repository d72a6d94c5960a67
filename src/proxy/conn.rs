//! One non-blocking socket with its readiness flags and (lazily checked
//! out) buffers.
//!
//! Sockets are registered once, edge-triggered, for both directions. The
//! flags remember what the last event said; a read or write that hits
//! `WouldBlock` clears them. Backpressure is simply not reading: a
//! connection whose output is full (or whose peer's is) is not read from,
//! so the kernel window closes and nothing grows without bound.
//!
//! A long body of known length bypasses the buffers: it is spliced from
//! the sending socket into the receiving connection's `pipe` and from
//! there into its socket ([`Conn::pipe_from`]).

use super::buf::{BUF_SIZE, Buf, BufPool};
use super::splice::{self, Pipe};
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
    /// Spliced bytes waiting to be written to this socket (after `output`).
    pub pipe: Option<Pipe>,
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
            pipe: None,
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

    /// Writes `output`, then the pipe's bytes, until both are empty or
    /// `WouldBlock`.
    pub fn flush(&mut self, bufs: &mut BufPool) -> io::Result<usize> {
        let n = write_buf(&mut self.sock, &mut self.writable, &mut self.output, bufs)?;
        self.sent += n as u64;
        if self.output.is_some() {
            return Ok(n);
        }
        let spliced = self.drain_pipe(bufs)?;
        self.sent += spliced as u64;
        Ok(n + spliced)
    }

    /// Splices the pipe's bytes into the socket until the pipe is empty
    /// (then it goes back to the pool) or the socket is full.
    fn drain_pipe(&mut self, bufs: &mut BufPool) -> io::Result<usize> {
        let mut total = 0;
        if let Some(pipe) = self.pipe.as_mut() {
            while self.writable && !pipe.is_empty() {
                match pipe.drain_to(&self.sock) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => total += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable = false,
                    Err(e) => return Err(e),
                }
            }
            if pipe.is_empty() {
                if let Some(p) = self.pipe.take() {
                    bufs.put_pipe(p);
                }
            }
        }
        Ok(total)
    }

    /// Moves up to `max` bytes of a body from `src`'s socket into this
    /// connection's pipe (borrowed from the pool within `room` descriptor
    /// pairs), to be written by [`Conn::flush`]. `None` when splicing is
    /// not possible: the caller copies instead. Only ever called with
    /// `src`'s input buffer empty, so bytes stay in order.
    pub fn pipe_from(
        &mut self,
        src: &mut Conn,
        max: usize,
        bufs: &mut BufPool,
        room: usize,
    ) -> Option<io::Result<usize>> {
        if self.pipe.is_none() {
            if bufs.splice_off {
                return None;
            }
            if !src.readable || src.eof || max == 0 {
                return Some(Ok(0)); // nothing to move: no pipe taken
            }
            self.pipe = Some(bufs.take_pipe(room)?);
        }
        let pipe = self.pipe.as_mut()?;
        if !src.readable || src.eof || max == 0 || pipe.room() == 0 {
            return Some(Ok(0));
        }
        let res = match pipe.fill_from(&src.sock, max) {
            Ok(0) => {
                src.eof = true;
                Ok(0)
            }
            Ok(n) => Ok(n),
            // An empty pipe proves the socket is drained; with bytes in
            // it the pipe may be what is full: try again once it drains.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if pipe.is_empty() {
                    src.readable = false;
                }
                Ok(0)
            }
            Err(e) if pipe.is_empty() && splice::unsupported(&e) => {
                bufs.splice_off = true;
                if let Some(p) = self.pipe.take() {
                    bufs.put_pipe(p);
                }
                return None;
            }
            Err(e) => Err(e),
        };
        if self.pipe.as_ref().is_some_and(Pipe::is_empty) {
            if let Some(p) = self.pipe.take() {
                bufs.put_pipe(p);
            }
        }
        Some(res)
    }

    /// Writes `output` then `extra` with as few syscalls as possible
    /// (writev). Returns (output bytes, extra bytes) written.
    pub fn write_with(&mut self, extra: &[u8], bufs: &mut BufPool) -> io::Result<(usize, usize)> {
        if self.pipe.is_some() {
            // Spliced bytes go first: `extra` waits until they are out.
            let mut n = write_buf(&mut self.sock, &mut self.writable, &mut self.output, bufs)?;
            if self.output.is_none() {
                n += self.drain_pipe(bufs)?;
            }
            self.sent += n as u64;
            if self.pipe.is_some() || self.output.is_some() {
                return Ok((n, 0));
            }
            let (h, e) = self.write_with(extra, bufs)?;
            return Ok((n + h, e));
        }
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

    /// Bytes waiting in `output` and the pipe.
    pub fn pending_out(&self) -> usize {
        self.output.as_ref().map_or(0, Buf::len) + self.pipe.as_ref().map_or(0, |p| p.len)
    }

    /// Bytes waiting in `output` alone (not the pipe).
    pub fn output_len(&self) -> usize {
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
        if let Some(p) = self.pipe.take() {
            bufs.put_pipe(p);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream as StdStream};

    /// (our non-blocking end, the peer's blocking end)
    fn pair() -> (Conn, StdStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = StdStream::connect(l.local_addr().unwrap()).unwrap();
        let (ours, _) = l.accept().unwrap();
        ours.set_nonblocking(true).unwrap();
        (Conn::new(TcpStream::from_std(ours)), peer)
    }

    #[test]
    fn long_body_bypasses_the_buffers() {
        let (mut up, mut app) = pair();
        let (mut client, mut reader) = pair();
        let mut bufs = BufPool::default();
        let body = vec![b'z'; 40_000];
        app.write_all(&body).unwrap();
        client.queue(&mut bufs, b"HEAD;");
        let mut moved = 0;
        let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while moved < body.len() {
            assert!(std::time::Instant::now() < end, "only {moved} bytes moved");
            up.readable = true;
            match client.pipe_from(&mut up, body.len() - moved, &mut bufs, 10) {
                Some(Ok(n)) => moved += n,
                other => panic!("{other:?}"),
            }
            // No buffer holds the body: only the queued head is checked out.
            assert!(up.input.is_none());
            assert!(bufs.out <= 1);
            client.flush(&mut bufs).unwrap();
        }
        while client.pending_out() > 0 {
            client.writable = true;
            client.flush(&mut bufs).unwrap();
        }
        assert_eq!((bufs.out, bufs.pipes_out), (0, 0));
        let mut got = vec![0u8; 5 + body.len()];
        reader.read_exact(&mut got).unwrap();
        assert_eq!(&got[..5], b"HEAD;");
        assert!(got[5..] == body[..]);
    }

    #[test]
    fn spliced_bytes_go_out_before_bytes_written_after_them() {
        let (mut up, mut app) = pair();
        let (mut client, mut reader) = pair();
        let mut bufs = BufPool::default();
        app.write_all(b"first").unwrap();
        let mut n = 0;
        while n < 5 {
            up.readable = true;
            n += client
                .pipe_from(&mut up, 5 - n, &mut bufs, 10)
                .unwrap()
                .unwrap();
            client.writable = false; // keep it in the pipe
        }
        assert_eq!(client.pending_out(), 5);
        client.writable = true;
        let (_, extra) = client.write_with(b"second", &mut bufs).unwrap();
        assert_eq!(extra, 6);
        let mut got = [0u8; 11];
        reader.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"firstsecond");
    }
}
