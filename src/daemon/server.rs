//! The socket server: accepts connections on a Unix listener it is given, serves each on its
//! own thread (at most `max_connections` at once, at most `max_connections_per_uid` of them
//! from one peer uid), reads bounded request lines and answers each with one response line.
//! A request line must be complete within `request_deadline` of its first byte, and a
//! connection silent for `idle_timeout` between requests is closed, so slow peers cannot hold
//! slots. It stops accepting when the shutdown flag is raised and returns once the
//! connections in flight have finished their current request.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use zeroize::{Zeroize, Zeroizing};

use super::peer::PeerCred;
use super::protocol::{parse_request, ErrorCode, Progress, Response, MAX_REQUEST_BYTES};
use super::state::Daemon;

/// How often blocked reads and the accept loop look at the shutdown flag.
const POLL: Duration = Duration::from_millis(100);
/// How long writing one response may take before the client is given up on.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The limits that keep slow or numerous peers from holding the server (from the
/// configuration file: `max_connections`, `max_connections_per_uid`, `idle_timeout_secs`,
/// `request_deadline_secs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Most connections served at once; more are answered `busy` and closed.
    pub max_connections: usize,
    /// Most connections one peer uid may hold at once; more from that uid are answered `busy`
    /// and closed, while other uids are still served.
    pub max_connections_per_uid: usize,
    /// How long a connection may stay silent between requests.
    pub idle_timeout: Duration,
    /// How long a request line may take, from its first byte to its newline.
    pub request_deadline: Duration,
}

impl Default for ServerLimits {
    /// The defaults of `packaging/custody.toml`.
    fn default() -> Self {
        Self {
            max_connections: 32,
            max_connections_per_uid: 8,
            idle_timeout: Duration::from_secs(60),
            request_deadline: Duration::from_secs(10),
        }
    }
}

/// Why a connection got no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Full {
    /// Every slot is taken.
    All(usize),
    /// The peer's uid holds as many connections as one uid may.
    Uid(usize),
}

/// The connections being served, in all and by peer uid.
#[derive(Debug, Default)]
struct Slots {
    total: usize,
    by_uid: HashMap<u32, usize>,
}

/// One taken slot; dropping it (when the connection's thread ends, or if it never starts)
/// gives the slot back.
struct Slot {
    slots: Arc<Mutex<Slots>>,
    uid: u32,
}

impl Slot {
    /// Takes a slot for a connection from `uid`, within `limits`.
    ///
    /// Every uid is capped, root and the daemon's own uid included. Those two could stop the
    /// daemon anyway, so the cap is no defence against them; it is there so that one runaway
    /// local process (a monitoring loop, a script run under sudo) cannot take every slot,
    /// including the one an officer needs for an emergency `seal`. People are bound to their
    /// own uids, so an honest person never comes near the cap.
    fn take(slots: &Arc<Mutex<Slots>>, uid: u32, limits: &ServerLimits) -> Result<Self, Full> {
        let mut s = slots.lock().unwrap_or_else(|p| p.into_inner());
        let max = limits.max_connections.max(1);
        let per_uid = limits.max_connections_per_uid.max(1);
        if s.total >= max {
            return Err(Full::All(max));
        }
        let held = s.by_uid.entry(uid).or_insert(0);
        if *held >= per_uid {
            return Err(Full::Uid(per_uid));
        }
        *held += 1;
        s.total += 1;
        Ok(Self {
            slots: slots.clone(),
            uid,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut s = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        s.total = s.total.saturating_sub(1);
        if let Some(held) = s.by_uid.get_mut(&self.uid) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                s.by_uid.remove(&self.uid);
            }
        }
    }
}

/// Serves `listener` within `limits` until `shutdown` is raised, then waits for in-flight
/// requests. Errors from single connections are logged and never end the server; only a
/// failing listener does.
pub fn run(
    listener: UnixListener,
    daemon: Arc<Daemon>,
    shutdown: Arc<AtomicBool>,
    limits: ServerLimits,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let slots = Arc::new(Mutex::new(Slots::default()));
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    while !shutdown.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                workers.retain(|w| !w.is_finished());
                if let Err(e) = stream.set_nonblocking(false) {
                    tracing::warn!("connection setup: {e}");
                    continue;
                }
                let peer = match PeerCred::of(&stream) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!("SO_PEERCRED failed: {e}");
                        refuse(stream, ErrorCode::Forbidden, "cannot identify the peer");
                        continue;
                    }
                };
                let slot = match Slot::take(&slots, peer.uid, &limits) {
                    Ok(s) => s,
                    Err(Full::All(max)) => {
                        tracing::warn!(
                            uid = peer.uid,
                            max,
                            "connection refused: too many connections"
                        );
                        refuse(
                            stream,
                            ErrorCode::Busy,
                            &format!("too many connections (max_connections {max}); try again"),
                        );
                        continue;
                    }
                    Err(Full::Uid(max)) => {
                        tracing::warn!(
                            uid = peer.uid,
                            max,
                            "connection refused: too many connections from this uid"
                        );
                        refuse(
                            stream,
                            ErrorCode::Busy,
                            &format!(
                                "uid {} already holds {max} connections, the most one uid may \
                                 hold (max_connections_per_uid); close one or try again",
                                peer.uid
                            ),
                        );
                        continue;
                    }
                };
                let (d, s) = (daemon.clone(), shutdown.clone());
                let spawned = std::thread::Builder::new()
                    .name("custodyd-conn".into())
                    .spawn(move || {
                        serve(stream, peer, &d, &s, &limits);
                        drop(slot);
                    });
                // A thread that never started dropped its slot with its closure.
                match spawned {
                    Ok(h) => workers.push(h),
                    Err(e) => tracing::error!("cannot start a connection thread: {e}"),
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) if e.kind() == ErrorKind::ConnectionAborted => {}
            Err(e) => {
                tracing::error!("accept failed: {e}");
                return Err(e);
            }
        }
    }
    tracing::info!(
        in_flight = slots.lock().map_or(0, |s| s.total),
        "shutting down: no new connections"
    );
    drop(listener);
    for w in workers {
        let _ = w.join();
    }
    Ok(())
}

fn refuse(mut stream: UnixStream, code: ErrorCode, message: &str) {
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let _ = stream.write_all(&Response::err(0, code, message).to_line());
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// Serves one connection: request lines in, response lines out, until EOF, an error, a
/// malformed or oversized line (answered, then closed), a line not finished within the
/// request deadline (answered, then closed), the idle timeout or shutdown.
fn serve(
    mut stream: UnixStream,
    peer: PeerCred,
    daemon: &Daemon,
    shutdown: &AtomicBool,
    limits: &ServerLimits,
) {
    if stream.set_read_timeout(Some(POLL)).is_err()
        || stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_err()
    {
        return;
    }
    tracing::debug!(uid = peer.uid, pid = peer.pid, "connection");
    let mut buf: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::with_capacity(4096));
    let mut chunk = [0u8; 8192];
    // The last sign of life: the connection opening, a byte read or an answer sent.
    let mut last = Instant::now();
    // When the line in `buf` began: its first byte read, or, for bytes that came while the
    // previous line was being answered, that answer sent. Later bytes never move it, so a
    // peer trickling one byte at a time is closed at the deadline all the same.
    let mut line_started: Option<Instant> = None;
    loop {
        if let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Zeroizing<Vec<u8>> = Zeroizing::new(buf.drain(..=pos).collect());
            let (resp, close) = answer(&line, daemon, &peer, &stream);
            drop(line);
            if stream.write_all(&resp.to_line()).is_err() {
                break;
            }
            if close {
                break;
            }
            last = Instant::now();
            line_started = (!buf.is_empty()).then_some(last);
            continue;
        }
        if buf.len() > MAX_REQUEST_BYTES {
            tracing::warn!(uid = peer.uid, "request line over the size limit; closing");
            let _ = stream.write_all(
                &Response::err(
                    0,
                    ErrorCode::TooLarge,
                    format!("request line exceeds {MAX_REQUEST_BYTES} bytes"),
                )
                .to_line(),
            );
            break;
        }
        if shutdown.load(Ordering::SeqCst) && buf.is_empty() {
            let _ = stream.write_all(
                &Response::err(0, ErrorCode::ShuttingDown, "the daemon is shutting down").to_line(),
            );
            break;
        }
        let late = line_started.is_some_and(|t| t.elapsed() >= limits.request_deadline);
        if late || last.elapsed() > limits.idle_timeout {
            if buf.is_empty() {
                tracing::debug!(uid = peer.uid, "idle connection closed");
            } else {
                tracing::warn!(
                    uid = peer.uid,
                    pid = peer.pid,
                    "request line not finished in time; closing"
                );
                let _ = stream.write_all(
                    &Response::err(
                        0,
                        ErrorCode::BadRequest,
                        "request line not finished in time",
                    )
                    .to_line(),
                );
            }
            break;
        }
        // Never read more than one byte past the limit.
        let room = (MAX_REQUEST_BYTES + 1 - buf.len()).min(chunk.len());
        match stream.read(&mut chunk[..room]) {
            Ok(0) => break,
            Ok(n) => {
                last = Instant::now();
                if buf.is_empty() {
                    line_started = Some(last);
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => break,
        }
    }
    chunk.zeroize();
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// The answer to one line, and whether to close the connection after it. Progress lines the
/// request asked for are written to `stream` before it.
fn answer(line: &[u8], daemon: &Daemon, peer: &PeerCred, stream: &UnixStream) -> (Response, bool) {
    match parse_request(line) {
        Ok(req) => {
            let (id, name) = (req.id, req.op.name());
            let notify = |p: Progress| {
                // A client gone meanwhile learns nothing; the operation goes on and its
                // answer fails to be written like any other.
                let _ = (&*stream).write_all(&Response::progress(id, p).to_line());
            };
            let handle = |op| daemon.handle_notifying(op, req.session.as_ref(), peer, &notify);
            let handled = match req.ledger.as_deref() {
                Some(expected) => daemon.check_ledger(expected).and_then(|()| handle(req.op)),
                None => handle(req.op),
            };
            match handled {
                Ok(reply) => {
                    tracing::info!(id, op = name, uid = peer.uid, "ok");
                    (Response::ok(id, reply), false)
                }
                Err(e) => {
                    tracing::info!(id, op = name, uid = peer.uid, code = %e.code, "refused: {}", e.message);
                    let mut r = Response::err(id, e.code, e.message);
                    if let super::protocol::Outcome::Err(body) = &mut r.result {
                        body.reason = e.reason;
                        body.continuation = e.continuation;
                    }
                    (r, false)
                }
            }
        }
        Err(e) => {
            tracing::warn!(uid = peer.uid, "bad request line: {e}");
            (Response::err(e.id(), e.code(), e.to_string()), true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, per_uid: usize) -> ServerLimits {
        ServerLimits {
            max_connections: max,
            max_connections_per_uid: per_uid,
            ..ServerLimits::default()
        }
    }

    #[test]
    fn slots_cap_each_uid_and_all_and_come_back_when_dropped() {
        let slots = Arc::new(Mutex::new(Slots::default()));
        let l = limits(3, 2);
        let a1 = Slot::take(&slots, 1000, &l).expect("first of uid 1000");
        let a2 = Slot::take(&slots, 1000, &l).expect("second of uid 1000");
        assert_eq!(Slot::take(&slots, 1000, &l).err(), Some(Full::Uid(2)));
        let b1 = Slot::take(&slots, 0, &l).expect("root is served while 1000 is capped");
        assert_eq!(Slot::take(&slots, 2000, &l).err(), Some(Full::All(3)));
        drop(a1);
        let a3 = Slot::take(&slots, 1000, &l).expect("a slot given back is reused");
        drop((a2, a3, b1));
        let s = slots.lock().expect("lock");
        assert_eq!(s.total, 0);
        assert!(s.by_uid.is_empty(), "{:?}", s.by_uid);
    }

    #[test]
    fn root_is_capped_like_any_uid() {
        let slots = Arc::new(Mutex::new(Slots::default()));
        let l = limits(8, 1);
        let _r = Slot::take(&slots, 0, &l).expect("root");
        assert_eq!(Slot::take(&slots, 0, &l).err(), Some(Full::Uid(1)));
    }
}
