//! The socket server: accepts connections on a Unix listener it is given, serves each on its
//! own thread (at most `max_connections` at once), reads bounded request lines and answers
//! each with one response line. It stops accepting when the shutdown flag is raised and
//! returns once the connections in flight have finished their current request.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use zeroize::{Zeroize, Zeroizing};

use super::peer::PeerCred;
use super::protocol::{parse_request, ErrorCode, Response, MAX_REQUEST_BYTES};
use super::state::Daemon;

/// How often blocked reads and the accept loop look at the shutdown flag.
const POLL: Duration = Duration::from_millis(100);
/// How long writing one response may take before the client is given up on.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `listener` until `shutdown` is raised, then waits for in-flight requests. Errors
/// from single connections are logged and never end the server; only a failing listener does.
pub fn run(
    listener: UnixListener,
    daemon: Arc<Daemon>,
    shutdown: Arc<AtomicBool>,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let active = Arc::new(AtomicUsize::new(0));
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    let max = daemon.options().max_connections.max(1);
    while !shutdown.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                workers.retain(|w| !w.is_finished());
                if let Err(e) = stream.set_nonblocking(false) {
                    tracing::warn!("connection setup: {e}");
                    continue;
                }
                if active.load(Ordering::SeqCst) >= max {
                    tracing::warn!(max, "connection refused: too many connections");
                    refuse(stream, ErrorCode::Busy, "too many connections; try again");
                    continue;
                }
                active.fetch_add(1, Ordering::SeqCst);
                let (d, s, a) = (daemon.clone(), shutdown.clone(), active.clone());
                let spawned = std::thread::Builder::new()
                    .name("custodyd-conn".into())
                    .spawn(move || {
                        serve(stream, &d, &s);
                        a.fetch_sub(1, Ordering::SeqCst);
                    });
                match spawned {
                    Ok(h) => workers.push(h),
                    Err(e) => {
                        active.fetch_sub(1, Ordering::SeqCst);
                        tracing::error!("cannot start a connection thread: {e}");
                    }
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
        in_flight = active.load(Ordering::SeqCst),
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
/// malformed or oversized line (answered, then closed), the idle timeout or shutdown.
fn serve(mut stream: UnixStream, daemon: &Daemon, shutdown: &AtomicBool) {
    let peer = match PeerCred::of(&stream) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("SO_PEERCRED failed: {e}");
            refuse(stream, ErrorCode::Forbidden, "cannot identify the peer");
            return;
        }
    };
    if stream.set_read_timeout(Some(POLL)).is_err()
        || stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_err()
    {
        return;
    }
    tracing::debug!(uid = peer.uid, pid = peer.pid, "connection");
    let idle_timeout = daemon.options().idle_timeout;
    let mut buf: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::with_capacity(4096));
    let mut chunk = [0u8; 8192];
    let mut last = Instant::now();
    loop {
        if let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Zeroizing<Vec<u8>> = Zeroizing::new(buf.drain(..=pos).collect());
            let (resp, close) = answer(&line, daemon, &peer);
            drop(line);
            if stream.write_all(&resp.to_line()).is_err() {
                break;
            }
            if close {
                break;
            }
            last = Instant::now();
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
        if last.elapsed() > idle_timeout {
            if !buf.is_empty() {
                let _ = stream.write_all(
                    &Response::err(
                        0,
                        ErrorCode::BadRequest,
                        "request line not finished in time",
                    )
                    .to_line(),
                );
            }
            tracing::debug!(uid = peer.uid, "idle connection closed");
            break;
        }
        // Never read more than one byte past the limit.
        let room = (MAX_REQUEST_BYTES + 1 - buf.len()).min(chunk.len());
        match stream.read(&mut chunk[..room]) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                last = Instant::now();
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

/// The answer to one line, and whether to close the connection after it.
fn answer(line: &[u8], daemon: &Daemon, peer: &PeerCred) -> (Response, bool) {
    match parse_request(line) {
        Ok(req) => {
            let (id, name) = (req.id, req.op.name());
            match daemon.handle(req.op, peer) {
                Ok(reply) => {
                    tracing::info!(id, op = name, uid = peer.uid, "ok");
                    (Response::ok(id, reply), false)
                }
                Err(e) => {
                    tracing::info!(id, op = name, uid = peer.uid, code = %e.code, "refused: {}", e.message);
                    let mut r = Response::err(id, e.code, e.message);
                    if let super::protocol::Outcome::Err(body) = &mut r.result {
                        body.reason = e.reason;
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
