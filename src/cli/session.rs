//! `custody login`, `logout` and `whoami`, and the session every read command uses.
//!
//! `custody login --as NAME` authenticates once (passphrase, and for officers their
//! second-factor code) and keeps the daemon's session token in a file only its owner can read:
//! `$XDG_RUNTIME_DIR/custody/` when that is set (a per-user tmpfs, gone at logout from the
//! machine), else `~/.cache/custody/`, the directory mode 0700, the file mode 0600, created
//! with `O_EXCL` and never followed through a symbolic link, one file per daemon socket. The
//! token is never on a command line or in the environment. Read commands send it; without
//! one they are refused with what to do. `--as NAME` on a read command instead logs in for
//! that one command and logs out after it, keeping nothing.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;

use clap::Args;
use serde_json::json;
use zeroize::Zeroizing;

use super::client::{call, AuthArgs};
use super::exit;
use super::ledger::{finish, Failure};
use crate::custody::Role;
use crate::daemon::protocol::{Op, Reply, SessionReply};
use crate::daemon::Secret;

/// The session sent with every request of this run.
static CURRENT: Mutex<Option<Secret>> = Mutex::new(None);

/// The session token requests of this run carry, when there is one.
/// Roles as a person reads them: `officer, auditor`.
fn roles(held: &[Role]) -> String {
    held.iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn current() -> Option<Secret> {
    CURRENT.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

fn set_current(token: Option<Secret>) {
    *CURRENT.lock().unwrap_or_else(|p| p.into_inner()) = token;
}

/// How a read command is authenticated: the session of `custody login`, or `--as NAME` for
/// this command alone.
#[derive(Debug, Clone, Args)]
pub struct ReadAuthArgs {
    /// Authenticate as NAME for this command only (passphrase, and the second-factor code when
    /// NAME has one), instead of the session of `custody login`.
    #[arg(long = "as", value_name = "NAME", value_parser = super::client::parse_user_name)]
    pub user: Option<String>,
    /// With --as: read the passphrase from this file descriptor (first line) instead of
    /// prompting.
    #[arg(long, value_name = "N", requires = "user")]
    pub passphrase_fd: Option<u32>,
    /// With --as: read the second-factor code, when custodyd asks for one after the
    /// passphrase, from this file descriptor instead of prompting.
    #[arg(long, value_name = "N", requires = "user")]
    pub totp_fd: Option<u32>,
    /// With --as: never ask for a second-factor code. No longer needed: custody asks for a
    /// code only when custodyd, after a right passphrase, says NAME has a second factor.
    #[arg(long, requires = "user")]
    pub no_totp: bool,
}

/// A read command's session, for as long as the command runs: the login's token, or one
/// opened for this command (`--as`) and closed when this is dropped.
pub(crate) struct ReadSession {
    socket: PathBuf,
    ephemeral: bool,
}

impl Drop for ReadSession {
    fn drop(&mut self) {
        if self.ephemeral {
            // Best effort: the session ends by itself at its idle lifetime anyway.
            let _ = call(&self.socket, Op::Logout);
        }
        set_current(None);
    }
}

/// Sets up the session `what` (a command, for messages) runs with: `--as` logs in for this
/// command; otherwise the token `custody login` kept for this socket is used.
pub(crate) fn for_reads(
    socket: &Path,
    args: &ReadAuthArgs,
    what: &str,
) -> Result<ReadSession, Failure> {
    if let Some(user) = &args.user {
        let auth = AuthArgs {
            user: user.clone(),
            passphrase_fd: args.passphrase_fd,
            totp_fd: args.totp_fd,
            no_totp: args.no_totp,
        };
        let s = login_call(socket, &auth)?;
        set_current(s.token);
        return Ok(ReadSession {
            socket: socket.to_path_buf(),
            ephemeral: true,
        });
    }
    match load(socket)? {
        Some(token) => {
            set_current(Some(token));
            Ok(ReadSession {
                socket: socket.to_path_buf(),
                ephemeral: false,
            })
        }
        None => Err(Failure::new(
            exit::FAILED,
            format!(
                "{what} needs an authenticated user: run custody login first, or pass --as USER"
            ),
        )),
    }
}

/// Opens a session for this command alone with `by`, credentials already read (a command
/// that needs the same passphrase again afterwards); the code is asked for as by `--as`.
pub(crate) fn login_with(
    socket: &Path,
    auth: &AuthArgs,
    by: crate::daemon::protocol::Auth,
) -> Result<ReadSession, Failure> {
    set_current(None);
    match auth.call(socket, Op::Login { by })? {
        Reply::Session(s) if s.token.is_some() => {
            set_current(s.token);
            Ok(ReadSession {
                socket: socket.to_path_buf(),
                ephemeral: true,
            })
        }
        other => Err(Failure::new(
            exit::IO,
            format!("custodyd answered login with {other:?}, not a session"),
        )),
    }
}

/// Uses the kept session for this run if there is one (commands that may use it but also
/// take `--as` credentials of their own).
pub(crate) fn use_kept(socket: &Path) -> Result<bool, Failure> {
    let token = load(socket)?;
    let found = token.is_some();
    set_current(token);
    Ok(found)
}

fn login_call(socket: &Path, auth: &AuthArgs) -> Result<SessionReply, Failure> {
    set_current(None);
    match auth.call(socket, Op::Login { by: auth.read()? })? {
        Reply::Session(s) if s.token.is_some() => Ok(s),
        other => Err(Failure::new(
            exit::IO,
            format!("custodyd answered login with {other:?}, not a session"),
        )),
    }
}

/// Where the session of `socket` is kept: a directory only we can enter, and a file named
/// after the socket.
fn location(socket: &Path) -> Result<(PathBuf, PathBuf), Failure> {
    let base = match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if Path::new(&d).is_absolute() => PathBuf::from(d).join("custody"),
        _ => match std::env::var_os("HOME") {
            Some(h) if Path::new(&h).is_absolute() => {
                PathBuf::from(h).join(".cache").join("custody")
            }
            _ => {
                return Err(Failure::new(
                    exit::IO,
                    "neither XDG_RUNTIME_DIR nor HOME is set to an absolute path: there is \
                     nowhere private to keep a session; pass --as USER to each command instead",
                ))
            }
        },
    };
    let full = std::path::absolute(socket).unwrap_or_else(|_| socket.to_path_buf());
    let d = ring::digest::digest(&ring::digest::SHA256, full.as_os_str().as_encoded_bytes());
    let name: String = d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
    Ok((base.clone(), base.join(format!("session-{name}"))))
}

fn io(path: &Path, e: impl std::fmt::Display) -> Failure {
    Failure::new(exit::IO, format!("{}: {e}", path.display()))
}

/// Creates (or checks) the private directory: ours, mode 0700, not a symbolic link.
fn private_dir(dir: &Path) -> Result<(), Failure> {
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(dir, e)),
    }
    let m = std::fs::symlink_metadata(dir).map_err(|e| io(dir, e))?;
    let me = rustix::process::geteuid().as_raw();
    if !m.is_dir() || m.uid() != me || m.permissions().mode() & 0o077 != 0 {
        return Err(Failure::new(
            exit::IO,
            format!(
                "{} must be a directory of uid {me} with mode 0700 (it holds session tokens); \
                 fix or remove it",
                dir.display()
            ),
        ));
    }
    Ok(())
}

/// Keeps `token` for `socket` in a new file, mode 0600, replacing a previous one.
fn store(socket: &Path, token: &Secret) -> Result<PathBuf, Failure> {
    let (dir, file) = location(socket)?;
    private_dir(&dir)?;
    match std::fs::remove_file(&file) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&file, e)),
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&file)
        .map_err(|e| io(&file, e))?;
    let mut line = Zeroizing::new(token.expose().as_bytes().to_vec());
    line.push(b'\n');
    f.write_all(&line)
        .and_then(|()| f.sync_all())
        .map_err(|e| io(&file, e))?;
    Ok(file)
}

/// The token kept for `socket`, if any. A file that is not ours or that others may read is
/// refused, not used.
fn load(socket: &Path) -> Result<Option<Secret>, Failure> {
    let (_, file) = location(socket)?;
    let mut f = match OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&file)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&file, e)),
    };
    let m = f.metadata().map_err(|e| io(&file, e))?;
    let me = rustix::process::geteuid().as_raw();
    if !m.is_file() || m.uid() != me || m.permissions().mode() & 0o077 != 0 {
        return Err(Failure::new(
            exit::IO,
            format!(
                "{} is not a private file of uid {me} (mode 0600); remove it and run custody \
                 login again",
                file.display()
            ),
        ));
    }
    let mut raw = Zeroizing::new(Vec::with_capacity(80));
    (&mut f)
        .take(256)
        .read_to_end(&mut raw)
        .map_err(|e| io(&file, e))?;
    let text = std::str::from_utf8(&raw).unwrap_or("").trim_end();
    if text.is_empty() {
        return Ok(None);
    }
    Ok(Some(Secret::new(Zeroizing::new(text.to_owned()))))
}

fn forget(socket: &Path) -> Result<(), Failure> {
    let (_, file) = location(socket)?;
    match std::fs::remove_file(&file) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(&file, e)),
    }
}

/// Arguments of `custody login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Who logs in.
    #[command(flatten)]
    pub auth: AuthArgs,
}

fn when(ms: i64) -> String {
    super::time::show(ms)
}

/// `custody login`.
pub fn login(json: bool, socket: &Path, args: LoginArgs) -> ExitCode {
    finish(
        json,
        (|| {
            // A session kept from before is ended first, so one person's desk holds one.
            if let Some(old) = load(socket)? {
                set_current(Some(old));
                let _ = call(socket, Op::Logout);
                set_current(None);
                forget(socket)?;
            }
            let s = login_call(socket, &args.auth)?;
            let Some(token) = &s.token else {
                return Err(Failure::new(exit::IO, "custodyd sent no session token"));
            };
            let file = store(socket, token)?;
            if json {
                outln!(
                    "{}",
                    json!({"ok": true, "user": s.user, "roles": s.roles, "uid": s.uid,
                           "idle_expires_at_ms": s.idle_expires_at_ms,
                           "expires_at_ms": s.expires_at_ms, "kept_in": file.display().to_string()})
                );
            } else {
                // Counted on the daemon's clock, as the daemon will end the session.
                let minutes = |at: i64| (at.saturating_sub(s.as_of_ms) + 30_000) / 60_000;
                outln!(
                    "Logged in as {} ({}) for uid {}. Reads use this session for up to {} min \
                     ({} min unused ends it sooner), until custody logout, or until custodyd \
                     seals.",
                    s.user,
                    roles(&s.roles),
                    s.uid,
                    minutes(s.expires_at_ms),
                    minutes(s.idle_expires_at_ms)
                );
                outln!(
                    "Approvals, check-outs, codes and two-officer operations still ask for your \
                     passphrase and second factor each time."
                );
            }
            Ok(())
        })(),
    )
}

/// `custody logout`.
pub fn logout(json: bool, socket: &Path) -> ExitCode {
    finish(
        json,
        (|| {
            let Some(token) = load(socket)? else {
                if json {
                    outln!("{}", json!({"ok": true, "logged_out": null}));
                } else {
                    outln!(
                        "No session is kept for {}; nothing to do.",
                        socket.display()
                    );
                }
                return Ok(());
            };
            set_current(Some(token));
            let r = call(socket, Op::Logout);
            set_current(None);
            forget(socket)?;
            let user = match r {
                Ok(Reply::LoggedOut { user }) => Some(user),
                // Already ended at the daemon (expired, sealed): the file is gone now too.
                _ => None,
            };
            if json {
                outln!("{}", json!({"ok": true, "logged_out": user}));
            } else {
                match user {
                    Some(u) => outln!("Logged out {u}; the session is revoked."),
                    None => outln!("The session had already ended; its file is removed."),
                }
            }
            Ok(())
        })(),
    )
}

/// `custody whoami`.
pub fn whoami(json: bool, socket: &Path) -> ExitCode {
    finish(
        json,
        (|| {
            let Some(token) = load(socket)? else {
                return Err(Failure::new(
                    exit::FAILED,
                    "no session: run custody login first",
                ));
            };
            set_current(Some(token));
            let r = call(socket, Op::Whoami)?;
            set_current(None);
            let Reply::Session(s) = r else {
                return Err(Failure::new(
                    exit::IO,
                    "custodyd did not answer with a session",
                ));
            };
            if json {
                outln!(
                    "{}",
                    json!({"ok": true, "user": s.user, "roles": s.roles, "uid": s.uid,
                           "idle_expires_at_ms": s.idle_expires_at_ms,
                           "expires_at_ms": s.expires_at_ms})
                );
            } else {
                outln!(
                    "{} ({}), uid {}; the session ends at {} (idle: {}).",
                    s.user,
                    roles(&s.roles),
                    s.uid,
                    when(s.expires_at_ms),
                    when(s.idle_expires_at_ms)
                );
            }
            Ok(())
        })(),
    )
}
