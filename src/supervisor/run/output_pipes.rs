//! Output pipes: registration, bounded non-blocking reads, lines into the ring and the daemon log.

use super::*;

impl Loop {
    pub(super) fn read_ready(&mut self) {
        let mut tokens = std::mem::take(&mut self.ready);
        tokens.sort_unstable();
        tokens.dedup();
        for t in tokens {
            self.read_pipe(t);
        }
    }

    pub(super) fn read_pipe(&mut self, token: Token) {
        let Some(pipe) = self.pipes.get_mut(&token) else {
            return;
        };
        let mut buf = [0u8; 16 * 1024];
        let mut total = 0;
        let mut lines = Vec::new();
        let mut eof = false;
        loop {
            match pipe.file.read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    pipe.splitter.push(&buf[..n], &mut |l| lines.push(l));
                    total += n;
                    if total >= READ_BUDGET {
                        self.ready.push(token);
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    eof = true;
                    break;
                }
            }
        }
        let (key, stream) = (pipe.key, pipe.stream);
        if eof {
            pipe.splitter.finish(&mut |l| lines.push(l));
            let raw = pipe.file.as_raw_fd();
            let _ = self.poll.registry().deregister(&mut SourceFd(&raw));
            self.pipes.remove(&token);
        }
        let now = Instant::now();
        for line in lines {
            self.record_line(key, stream, line, now);
        }
    }

    pub(super) fn record_line(&mut self, key: ProcKey, stream: Stream, line: String, now: Instant) {
        let Some(p) = self.procs.get_mut(&key) else {
            return;
        };
        let at = iso_now();
        if let Budget::Log(report) = p.budget.take(now) {
            if let Some(n) = report {
                let e = Event {
                    at: at.clone(),
                    data: p.data().with("id", p.spec.id.as_str()).with("lines", n),
                    message: "process output suppressed".into(),
                };
                log::event(&e);
            }
            let e = Event {
                at: at.clone(),
                data: p
                    .data()
                    .with("id", p.spec.id.as_str())
                    .with("line", line.as_str())
                    .with("stream", stream.as_str()),
                message: "process output".into(),
            };
            log::event(&e);
        }
        let entry = LogLine { at, line, stream };
        if let Some(tap) = self.tap.as_ref().filter(|t| t.active()) {
            tap.line(key, &p.spec.id, p.spec.release_id.as_deref(), &entry);
        }
        p.logs.push(entry);
    }
}
