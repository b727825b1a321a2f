//! The `custody` side of the daemon socket: connect, send one request, read one response.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::exit;
use super::ledger::Failure;
use super::secret_input::SecretFd;
use crate::daemon::protocol::{
    encode_request, parse_response, Auth, ErrorBody, ErrorCode, Op, Outcome, Progress, RefusalCode,
    Reply, Request, VERSION,
};
use crate::daemon::Secret;

/// The socket used when neither `--socket` nor `CUSTODY_SOCKET` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/custody/custodyd.sock";

/// Largest response accepted (exports travel in responses).
const MAX_RESPONSE: u64 = 512 * 1024 * 1024;

/// The socket path: `--socket`, else `CUSTODY_SOCKET`, else [`DEFAULT_SOCKET`].
pub fn socket_path(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| std::env::var_os("CUSTODY_SOCKET").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

/// The system user the packaged custodyd runs as (packaging/custodyd.service).
pub const DAEMON_USER: &str = "custody";

/// The uid custodyd must run as: `CUSTODY_DAEMON_UID` (a number or a user name), else the
/// uid of the [`DAEMON_USER`] user, else root's.
pub(crate) fn expected_daemon_uid() -> Result<u32, Failure> {
    if let Some(v) = std::env::var_os("CUSTODY_DAEMON_UID") {
        let v = v.to_string_lossy();
        return crate::daemon::config::resolve_user(&v).ok_or_else(|| {
            Failure::new(
                exit::USAGE,
                format!("CUSTODY_DAEMON_UID {v:?} is neither a uid nor a known user name"),
            )
        });
    }
    Ok(crate::daemon::config::resolve_user(DAEMON_USER).unwrap_or(0))
}

/// Checks that the process serving the socket is custodyd's user (or root, who can read any
/// process's memory anyway), before a single byte is sent: another user's socket, relaying or
/// faking the daemon, never sees a passphrase or a code.
fn check_daemon_peer(stream: &UnixStream, socket: &Path) -> Result<(), Failure> {
    let peer = rustix::net::sockopt::socket_peercred(stream).map_err(|e| {
        Failure::new(
            exit::IO,
            format!(
                "cannot read the credentials of the process behind {}: {e}; nothing was sent",
                socket.display()
            ),
        )
    })?;
    let uid = peer.uid.as_raw();
    let expected = expected_daemon_uid()?;
    if uid == expected || uid == 0 {
        return Ok(());
    }
    Err(Failure::new(
        exit::IO,
        format!(
            "refusing to talk to {}: the process serving it (pid {}) runs as uid {uid}, not \
             custodyd's uid {expected}; nothing was sent. Check --socket and CUSTODY_SOCKET; if \
             custodyd runs as another user, set CUSTODY_DAEMON_UID to it",
            socket.display(),
            peer.pid.as_raw_nonzero()
        ),
    ))
}

/// The ledger id every request names (`--ledger-id`, else `CUSTODY_LEDGER_ID`): custodyd
/// refuses a request meant for another ledger before it looks at it.
static EXPECTED_LEDGER: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// Sets the ledger id requests name, from `--ledger-id` or else `CUSTODY_LEDGER_ID`. Checked
/// to be 32 hex digits (a ledger id as `custody init` and `custody status` print it).
pub(crate) fn pin_ledger(flag: Option<&str>) -> Result<(), Failure> {
    let env = std::env::var("CUSTODY_LEDGER_ID").ok();
    let chosen = flag.map(str::to_owned).or(env).filter(|s| !s.is_empty());
    if let Some(id) = &chosen {
        if crate::ledger::LedgerId::from_hex(&id.to_ascii_lowercase()).is_none() {
            return Err(Failure::new(
                exit::USAGE,
                "the ledger id (--ledger-id or CUSTODY_LEDGER_ID) is 32 hex digits, as `custody \
                 init` and `custody status` print it",
            ));
        }
    }
    let _ = EXPECTED_LEDGER.set(chosen.map(|s| s.to_ascii_lowercase()));
    Ok(())
}

/// Checks a request id on the command line (`req-` and 16 hex digits), so that a mistyped one
/// is a usage error before any passphrase or code is asked for.
pub(crate) fn parse_request_id(s: &str) -> Result<String, String> {
    crate::custody::ids::RequestId::parse(s)
        .map(|id| id.as_str().to_owned())
        .map_err(|e| format!("{e} (as `custody request list` shows it)"))
}

/// Checks a device serial on the command line (1 to 10 digits, not zero), before any secret
/// is asked for.
pub(crate) fn parse_serial(s: &str) -> Result<u32, String> {
    crate::custody::ids::Serial::parse(s)
        .map(|n| n.get())
        .map_err(|e| {
            format!("{e} (the serial printed on the key, as `custody device list` shows it)")
        })
}

/// Checks an incident id on the command line (`inc-` and 16 hex digits), before any secret is
/// asked for.
pub(crate) fn parse_incident_id(s: &str) -> Result<String, String> {
    crate::custody::ids::IncidentId::parse(s)
        .map(|id| id.as_str().to_owned())
        .map_err(|e| format!("{e} (as `custody incident list` shows it)"))
}

/// Checks a user name on the command line (`--as`, `--by`): lower-case letters, digits and
/// `._-`, before any secret is asked for.
pub(crate) fn parse_user_name(s: &str) -> Result<String, String> {
    crate::custody::ids::UserName::parse(s)
        .map(|n| n.as_str().to_owned())
        .map_err(|e| e.to_string())
}

/// Exit status for a daemon error code.
pub fn status_of(code: ErrorCode) -> u8 {
    match code {
        ErrorCode::BadRequest | ErrorCode::UnsupportedVersion | ErrorCode::TooLarge => exit::USAGE,
        ErrorCode::Sealed | ErrorCode::Ledger | ErrorCode::UnsealFailed => exit::LEDGER,
        ErrorCode::Token => exit::TOKEN,
        ErrorCode::Io | ErrorCode::Busy | ErrorCode::ShuttingDown | ErrorCode::WrongLedger => {
            exit::IO
        }
        _ => exit::FAILED,
    }
}

/// Sends one operation and returns the daemon's reply, or a failure naming the daemon's code.
pub(crate) fn call(socket: &Path, op: Op) -> Result<Reply, Failure> {
    call_with_reason(socket, op).map_err(|(f, _)| f)
}

/// As [`call`], and a refusal also gives its own code (`self_approval`, `factor_code_reused`,
/// ...) when the daemon sent one.
pub(crate) fn call_with_reason(
    socket: &Path,
    op: Op,
) -> Result<Reply, (Failure, Option<RefusalCode>)> {
    let req = request(op);
    let r = exchange(socket, &req, &|_| {});
    drop(req);
    answer(r?)
}

/// One request line of this run: the pinned ledger id, the session when there is one.
fn request(op: Op) -> Request {
    Request {
        v: VERSION,
        id: u64::from(std::process::id()),
        ledger: EXPECTED_LEDGER.get().cloned().flatten(),
        op,
        session: super::session::current(),
    }
}

/// A reply, or the refusal as a [`Failure`] with its reason.
fn answer(r: Result<Reply, ErrorBody>) -> Result<Reply, (Failure, Option<RefusalCode>)> {
    r.map_err(|e| {
        let message = match e.reason {
            Some(_) => e.message,
            None => format!("custodyd refused ({}): {}", e.code, e.message),
        };
        let mut f = Failure::new(status_of(e.code), message);
        f.code = Some(e.code);
        f.reason = e.reason;
        (f, e.reason)
    })
}

/// Sends one request on a new connection and reads its answer: the reply, or custodyd's
/// refusal as it came (a continuation in it included). Progress lines before it (which the
/// request asked for) go to `progress`.
fn exchange(
    socket: &Path,
    req: &Request,
    progress: &dyn Fn(&Progress),
) -> Result<Result<Reply, ErrorBody>, (Failure, Option<RefusalCode>)> {
    let plain = |f: Failure| (f, None);
    let stream = UnixStream::connect(socket).map_err(|e| {
        plain(Failure::new(
            exit::IO,
            format!(
                "cannot connect to custodyd at {}: {e} (is it running? --socket or CUSTODY_SOCKET)",
                socket.display()
            ),
        ))
    })?;
    check_daemon_peer(&stream, socket).map_err(plain)?;
    let io = |e: std::io::Error| plain(Failure::new(exit::IO, format!("custodyd socket: {e}")));
    stream
        .set_read_timeout(Some(Duration::from_secs(300)))
        .map_err(io)?;
    let line = encode_request(req);
    (&stream).write_all(&line).map_err(io)?;
    drop(line);
    let mut lines = Lines::new(&stream);
    loop {
        let buf = lines.next().map_err(io)?;
        if buf.is_empty() {
            return Err(plain(Failure::new(
                exit::IO,
                "custodyd closed the connection without answering",
            )));
        }
        let resp = parse_response(&buf).map_err(|e| {
            plain(Failure::new(
                exit::IO,
                format!("unreadable answer from custodyd: {e}"),
            ))
        })?;
        match resp.result {
            Outcome::Ok(r) => return Ok(Ok(*r)),
            Outcome::Err(e) => return Ok(Err(e)),
            Outcome::Progress(p) => progress(&p),
        }
    }
}

/// Sends `op`, whose one person ([`Op::person_mut`]) offered a passphrase and no code, and
/// completes a second round when custodyd asks for one: a right passphrase of a person with a
/// second factor is refused `factor_code_required` with a continuation; `code` then gives the
/// person's current code (a prompt, or `--totp-fd`), and the request goes again with the
/// continuation and the code instead of the passphrase. Nobody is asked for a code custodyd
/// did not ask for, and a wrong passphrase is refused before any code is asked for.
pub(crate) fn call_completing(
    socket: &Path,
    op: Op,
    code: impl FnOnce(&str) -> Result<Secret, Failure>,
    progress: &dyn Fn(&Progress),
) -> Result<Reply, (Failure, Option<RefusalCode>)> {
    let mut req = request(op);
    let first = exchange(socket, &req, progress)?;
    let continuation = match first {
        Err(ErrorBody {
            reason: Some(RefusalCode::FactorCodeRequired),
            continuation: Some(c),
            ..
        }) => c,
        other => return answer(other),
    };
    let Some(person) = req.op.person_mut() else {
        return Err((
            Failure::new(
                exit::IO,
                "custodyd asked for a second round of an operation that authenticates nobody \
                 by itself",
            ),
            None,
        ));
    };
    let factor = code(&person.user).map_err(|f| (f, None))?;
    person.passphrase = None;
    person.factor = Some(factor);
    person.continuation = Some(continuation);
    let second = exchange(socket, &req, progress);
    drop(req);
    answer(second?)
}

/// The daemon's answer lines on one connection (progress lines, then the answer). Answers may
/// carry a code or a seed: they are read into zeroizing buffers sized for them (no copy left
/// behind by growing), without a `BufReader` whose own buffer would keep a copy; bytes read
/// past a line's end are kept, zeroized, for the next line. Larger answers (exports) grow as
/// needed.
struct Lines<'a> {
    stream: &'a UnixStream,
    carry: zeroize::Zeroizing<Vec<u8>>,
}

impl<'a> Lines<'a> {
    fn new(stream: &'a UnixStream) -> Self {
        Self {
            stream,
            carry: zeroize::Zeroizing::new(Vec::new()),
        }
    }

    /// The next line, its newline included; what came before the end of the stream when it
    /// ends without one; empty at the end.
    fn next(&mut self) -> std::io::Result<zeroize::Zeroizing<Vec<u8>>> {
        let mut buf = zeroize::Zeroizing::new(Vec::with_capacity(64 * 1024));
        let mut chunk = zeroize::Zeroizing::new([0u8; 8192]);
        let mut pending: zeroize::Zeroizing<Vec<u8>> = std::mem::take(&mut self.carry);
        loop {
            if let Some(end) = pending.iter().position(|b| *b == b'\n') {
                buf.extend_from_slice(pending.get(..=end).unwrap_or(&pending));
                self.carry
                    .extend_from_slice(pending.get(end + 1..).unwrap_or_default());
                return Ok(buf);
            }
            buf.extend_from_slice(&pending);
            pending.clear();
            if buf.len() as u64 > MAX_RESPONSE {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("the answer is larger than {MAX_RESPONSE} bytes"),
                ));
            }
            let n = match self.stream.read(&mut chunk[..]) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            match chunk.get(..n) {
                Some(got) if !got.is_empty() => pending.extend_from_slice(got),
                _ => return Ok(buf),
            }
        }
    }
}

/// Reads one secret: the first line of file descriptor `fd`, or a hidden prompt on the
/// terminal. Never from the command line or the environment.
/// A file descriptor number given on the command line (`--pin-fd 5`), refused with what to
/// give instead when it is not one.
pub(crate) fn parse_fd(s: &str) -> Result<u32, String> {
    s.parse::<u32>().map_err(|_| {
        format!(
            "{s:?} is not a file descriptor number: give the number of a descriptor open for \
             reading (5 with `5< FILE`), or leave the option out"
        )
    })
}

pub(crate) fn read_secret(
    fd: Option<u32>,
    prompt: &str,
) -> Result<zeroize::Zeroizing<String>, Failure> {
    let Some(fd) = fd else {
        return rpassword::prompt_password(prompt)
            .map(zeroize::Zeroizing::new)
            .map_err(|e| Failure::new(exit::IO, format!("reading from the terminal: {e}")));
    };
    Ok(SecretFd::open(fd)?.next_line(prompt.trim_end_matches([':', ' ']))?)
}

/// Secrets read from a file descriptor (one per line, each when it is asked for) or, without
/// one, from hidden prompts.
pub(crate) struct SecretLines {
    fd: Option<SecretFd>,
}

impl SecretLines {
    pub(crate) fn new(fd: Option<u32>) -> Result<Self, Failure> {
        Ok(Self {
            fd: fd.map(SecretFd::open).transpose()?,
        })
    }

    /// The next secret, prompting with `prompt` when no descriptor was given.
    pub(crate) fn next(&mut self, prompt: &str) -> Result<Secret, Failure> {
        let Some(fd) = &mut self.fd else {
            return read_secret(None, prompt).map(Secret::new);
        };
        let line = fd.next_line(prompt.trim_end_matches([':', ' ']))?;
        Ok(Secret::new(line))
    }
}

/// How a person authenticates on the command line: `--as NAME`, the passphrase from a hidden
/// prompt or `--passphrase-fd`, and, only when custodyd says after the passphrase that the
/// person has a second factor, its code from a prompt or `--totp-fd`.
#[derive(Debug, Clone, clap::Args)]
pub struct AuthArgs {
    /// Who you are.
    #[arg(long = "as", value_name = "NAME", value_parser = parse_user_name)]
    pub user: String,
    /// Read the passphrase from this file descriptor (first line) instead of prompting.
    #[arg(long, value_name = "N")]
    pub passphrase_fd: Option<u32>,
    /// Read the second-factor code, when custodyd asks for one after the passphrase, from
    /// this file descriptor instead of prompting.
    #[arg(long, value_name = "N")]
    pub totp_fd: Option<u32>,
    /// Never ask for a second-factor code. No longer needed: custody asks for a code only
    /// when custodyd, after a right passphrase, says NAME has a second factor.
    #[arg(long)]
    pub no_totp: bool,
}

impl AuthArgs {
    /// The first round's credentials: the passphrase, no code.
    pub(crate) fn read(&self) -> Result<Auth, Failure> {
        let passphrase = SecretLines::new(self.passphrase_fd)?
            .next(&format!("Passphrase of {}: ", self.user))?;
        Ok(Auth::new(self.user.clone(), passphrase, None))
    }

    /// The second-factor code of this person, when custodyd asks for it.
    fn code(&self, user: &str) -> Result<Secret, Failure> {
        if self.no_totp {
            return Err(Failure::refused(
                exit::FAILED,
                RefusalCode::FactorCodeRequired,
                format!(
                    "the passphrase of {user} is right, and {user} has a second factor: run the \
                     command again without --no-totp, and custody asks for its code"
                ),
            ));
        }
        SecretLines::new(self.totp_fd)?.next(&format!("Second-factor code of {user}: "))
    }

    /// Sends `op`, built around this person's first-round credentials ([`AuthArgs::read`]),
    /// and completes the second round with the code when custodyd asks for it.
    pub(crate) fn call(&self, socket: &Path, op: Op) -> Result<Reply, Failure> {
        self.call_with_reason(socket, op).map_err(|(f, _)| f)
    }

    /// As [`AuthArgs::call`], with the refusal's own code.
    pub(crate) fn call_with_reason(
        &self,
        socket: &Path,
        op: Op,
    ) -> Result<Reply, (Failure, Option<RefusalCode>)> {
        call_completing(socket, op, |user| self.code(user), &|_| {})
    }

    /// As [`AuthArgs::call`], telling `progress` what custodyd waits for before it answers
    /// (an operation that asked for it: the touch of `code`).
    pub(crate) fn call_with_progress(
        &self,
        socket: &Path,
        op: Op,
        progress: &dyn Fn(&Progress),
    ) -> Result<Reply, Failure> {
        call_completing(socket, op, |user| self.code(user), progress).map_err(|(f, _)| f)
    }
}

/// Prints a reply: JSON (`{"ok":true,...reply}`) or through `human`.
pub(crate) fn print_reply(json: bool, reply: &Reply, human: impl FnOnce(&Reply)) {
    if json {
        let mut v = serde_json::to_value(reply).unwrap_or(serde_json::Value::Null);
        if let Some(m) = v.as_object_mut() {
            m.insert("ok".into(), serde_json::Value::Bool(true));
        }
        outln!("{v}");
    } else {
        human(reply);
    }
}

/// Several officers authenticating together (`--by` repeated): one passphrase line and one
/// second-factor line per officer, in order. Returns the remaining passphrase lines.
pub(crate) fn read_officers(
    by: &[String],
    passphrase_fd: Option<u32>,
    totp_fd: Option<u32>,
) -> Result<(Vec<crate::daemon::protocol::Auth>, SecretLines), Failure> {
    read_officers_signing(by, &[], passphrase_fd, totp_fd)
}

/// [`read_officers`], asking no second-factor code of the `signers` (`--sign`), who prove
/// presence by their YubiKey's signature instead ([`with_signatures`]).
pub(crate) fn read_officers_signing(
    by: &[String],
    signers: &[String],
    passphrase_fd: Option<u32>,
    totp_fd: Option<u32>,
) -> Result<(Vec<crate::daemon::protocol::Auth>, SecretLines), Failure> {
    if let Some(stranger) = signers.iter().find(|s| !by.contains(s)) {
        return Err(Failure::new(
            exit::USAGE,
            format!(
                "--sign {stranger}: {stranger} is not one of the --by officers ({}); name an \
                 officer who acts",
                by.join(", ")
            ),
        ));
    }
    let mut pass = SecretLines::new(passphrase_fd)?;
    let mut codes = SecretLines::new(totp_fd)?;
    let mut out = Vec::with_capacity(by.len());
    for o in by {
        let passphrase = pass.next(&format!("Passphrase of {o}: "))?;
        let factor = if signers.contains(o) {
            None
        } else {
            Some(codes.next(&format!("Second-factor code of {o}: "))?)
        };
        out.push(Auth::new(o.clone(), passphrase, factor));
    }
    Ok((out, pass))
}

/// `op` with the signatures of the `signers` among its officers over what it does
/// ([`Op::intent`]), their PIV PINs read from `pin_fd` or prompts; `op` unchanged without
/// signers.
pub(crate) fn with_signatures(
    socket: &Path,
    signers: &[String],
    pin_fd: Option<u32>,
    mut op: Op,
) -> Result<Op, Failure> {
    if signers.is_empty() {
        return Ok(op);
    }
    let intent = op.intent();
    let (Some(intent), Some(by)) = (intent, op.officers_mut()) else {
        return Err(Failure::new(
            exit::USAGE,
            "--sign: this operation takes no signatures (only two-officer operations do)",
        ));
    };
    let mut pins = SecretLines::new(pin_fd)?;
    super::officer_card::sign_operation(socket, &intent, by, signers, &mut pins)?;
    Ok(op)
}

/// Two officers acting together.
#[derive(Debug, clap::Args)]
pub struct PairArgs {
    /// An officer (give two).
    #[arg(long = "by", required = true, value_name = "OFFICER", value_parser = parse_user_name)]
    pub by: Vec<String>,
    /// Passphrases, one per line, of each --by officer in order.
    #[arg(long, value_name = "N")]
    pub passphrase_fd: Option<u32>,
    /// Second-factor codes, one per line, of each --by officer in order (those who do not
    /// --sign).
    #[arg(long, value_name = "N")]
    pub totp_fd: Option<u32>,
    /// This --by officer proves presence by a signature of their own registered YubiKey
    /// (PIV PIN and touch) instead of a second-factor code (repeat for both officers).
    #[arg(long = "sign", value_name = "OFFICER", value_parser = parse_user_name)]
    pub sign: Vec<String>,
    /// PIV PINs, one per line, of each --sign officer in order, instead of prompting.
    #[arg(long, value_name = "N")]
    pub pin_fd: Option<u32>,
}

impl PairArgs {
    /// The officers' passphrases, and the second-factor codes of those who do not --sign.
    pub(crate) fn read(&self) -> Result<Vec<Auth>, Failure> {
        read_officers_signing(&self.by, &self.sign, self.passphrase_fd, self.totp_fd)
            .map(|(a, _)| a)
    }

    /// `op` with the signatures of the --sign officers ([`with_signatures`]).
    pub(crate) fn signed(&self, socket: &Path, op: Op) -> Result<Op, Failure> {
        with_signatures(socket, &self.sign, self.pin_fd, op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_descriptor_that_is_not_a_number_is_refused_saying_what_to_give() {
        assert_eq!(parse_fd("5"), Ok(5));
        for bad in ["five", "-1", "", "5 ", "4294967296"] {
            let e = parse_fd(bad).expect_err(bad);
            assert!(e.contains(&format!("{bad:?}")), "{e}");
            assert!(e.contains("5< FILE"), "{e}");
        }
    }

    #[test]
    fn an_answer_line_is_read_whole_whatever_its_size() {
        for size in [0usize, 10, 8191, 8192, 70_000, 300_000] {
            let (a, b) = UnixStream::pair().expect("pair");
            let mut line = vec![b'x'; size];
            line.push(b'\n');
            let sent = line.clone();
            let writer = std::thread::spawn(move || {
                (&a).write_all(&line).expect("write");
                (&a).write_all(b"after the line").expect("write");
            });
            let got = Lines::new(&b).next().expect("read");
            writer.join().expect("writer");
            assert_eq!(got.as_slice(), sent.as_slice(), "size {size}");
        }
        let (a, b) = UnixStream::pair().expect("pair");
        (&a).write_all(b"no newline").expect("write");
        drop(a);
        assert_eq!(
            Lines::new(&b).next().expect("read").as_slice(),
            b"no newline"
        );
    }

    #[test]
    fn lines_that_arrive_together_are_read_one_at_a_time() {
        // A progress line and the answer may come in one read: the answer is not lost.
        let (a, b) = UnixStream::pair().expect("pair");
        (&a).write_all(b"{\"progress\"}\n{\"answer\"}\nrest")
            .expect("write");
        drop(a);
        let mut lines = Lines::new(&b);
        for want in [&b"{\"progress\"}\n"[..], b"{\"answer\"}\n", b"rest", b""] {
            assert_eq!(lines.next().expect("read").as_slice(), want);
        }
    }
}
