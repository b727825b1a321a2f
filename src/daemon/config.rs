//! `custodyd`'s configuration file (TOML). Every key is documented in `packaging/custody.toml`
//! and `docs/daemon.md`; unknown keys are refused, so a typo is never silently ignored.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::server::ServerLimits;
use super::state::DaemonOptions;

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Not TOML of the expected shape.
    #[error("{path}: {source}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A key has a value outside its range.
    #[error("{path}: {key}: {problem}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key.
        key: &'static str,
        /// What is wrong.
        problem: String,
    },
}

fn d_max_connections() -> usize {
    32
}
/// `max_connections_per_uid` when unset: this, or `max_connections` when that is lower.
const DEFAULT_MAX_CONNECTIONS_PER_UID: usize = 8;
fn d_idle() -> u64 {
    60
}
fn d_request_deadline() -> u64 {
    10
}
fn d_session_idle() -> u64 {
    super::session::DEFAULT_IDLE.as_secs()
}
fn d_session_absolute() -> u64 {
    super::session::DEFAULT_ABSOLUTE.as_secs()
}
fn d_touch() -> u64 {
    30
}
fn d_readers() -> Vec<String> {
    vec!["Yubico YubiKey".to_owned()]
}
fn d_true() -> bool {
    true
}
fn d_approvals() -> u8 {
    2
}
fn d_approval_ttl() -> u64 {
    900
}
fn d_request_ttl() -> u64 {
    3600
}
fn d_ticket_digits() -> usize {
    10
}
fn d_reason() -> usize {
    20
}

/// The dual-control policy (`[policy]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Distinct officer approvals a code request needs (at least 2).
    #[serde(default = "d_approvals")]
    pub approvals: u8,
    /// Seconds an approval stays valid.
    #[serde(default = "d_approval_ttl")]
    pub approval_ttl_secs: u64,
    /// Seconds a request stays open before it expires.
    #[serde(default = "d_request_ttl")]
    pub request_ttl_secs: u64,
    /// Ticket project keys allowed (`SEC` in `SEC-1234`); empty: any 2 to 10 upper-case letters.
    #[serde(default)]
    pub ticket_prefixes: Vec<String>,
    /// Most digits after the dash of a ticket reference.
    #[serde(default = "d_ticket_digits")]
    pub ticket_max_digits: usize,
    /// Fewest characters of a request's reason.
    #[serde(default = "d_reason")]
    pub min_reason_chars: usize,
    /// PBKDF2 iterations of users' passphrase verifiers. Unset: the production count. A lower
    /// count is for tests and demos only, and the daemon warns at start.
    #[serde(default)]
    pub passphrase_kdf_iterations: Option<u32>,
    /// Whether codes are refused from keys without an OATH access key (enrolled before
    /// enrolment locked keys; `custody device lock` locks them). Unset: as the ledger says (on
    /// for ledgers created since keys are locked at enrolment, off for older ones).
    #[serde(default)]
    pub refuse_unlocked_devices: Option<bool>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            approvals: d_approvals(),
            approval_ttl_secs: d_approval_ttl(),
            request_ttl_secs: d_request_ttl(),
            ticket_prefixes: Vec::new(),
            ticket_max_digits: d_ticket_digits(),
            min_reason_chars: d_reason(),
            passphrase_kdf_iterations: None,
            refuse_unlocked_devices: None,
        }
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The ledger directory (created by `custody init`; never group- or world-writable).
    pub ledger_dir: PathBuf,
    /// The Unix socket the daemon listens on (mode 0660).
    pub socket: PathBuf,
    /// The group given the socket, so its members may connect. Unset: the daemon's own group.
    #[serde(default)]
    pub socket_group: Option<String>,
    /// Most connections served at once.
    #[serde(default = "d_max_connections")]
    pub max_connections: usize,
    /// Most connections one peer uid may hold at once (at most `max_connections`). Unset: 8,
    /// or `max_connections` when that is lower.
    #[serde(default)]
    pub max_connections_per_uid: Option<usize>,
    /// Seconds a connection may stay silent between requests.
    #[serde(default = "d_idle")]
    pub idle_timeout_secs: u64,
    /// Seconds a request line may take from its first byte to its newline.
    #[serde(default = "d_request_deadline")]
    pub request_deadline_secs: u64,
    /// Seconds a login session may go unused before it ends.
    #[serde(default = "d_session_idle")]
    pub session_idle_secs: u64,
    /// Seconds after the login at which a session ends however it is used.
    #[serde(default = "d_session_absolute")]
    pub session_absolute_secs: u64,
    /// Seconds to wait for a touch on a key.
    #[serde(default = "d_touch")]
    pub touch_timeout_secs: u64,
    /// Reader name prefixes the daemon may use; cards in other readers are reported, never used.
    #[serde(default = "d_readers")]
    pub allowed_readers: Vec<String>,
    /// Whether to watch readers for cards coming and going (recorded as events).
    #[serde(default = "d_true")]
    pub watch_readers: bool,
    /// The dual-control policy.
    #[serde(default)]
    pub policy: Policy,
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and checks configuration text; `path` names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let c: Config = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            source: Box::new(e),
        })?;
        let bad = |key, problem: &str| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            problem: problem.to_owned(),
        };
        if !c.ledger_dir.is_absolute() {
            return Err(bad("ledger_dir", "must be an absolute path"));
        }
        if !c.socket.is_absolute() {
            return Err(bad("socket", "must be an absolute path"));
        }
        if !(1..=1024).contains(&c.max_connections) {
            return Err(bad("max_connections", "must be from 1 to 1024"));
        }
        if let Some(n) = c.max_connections_per_uid {
            if !(1..=c.max_connections).contains(&n) {
                return Err(bad(
                    "max_connections_per_uid",
                    &format!(
                        "is {n}; must be from 1 to max_connections ({}); keep it well below \
                         max_connections so that one uid cannot take every connection",
                        c.max_connections
                    ),
                ));
            }
        }
        if !(1..=3600).contains(&c.request_deadline_secs) {
            return Err(bad(
                "request_deadline_secs",
                &format!(
                    "is {}; must be from 1 to 3600 seconds (clients send a request line at \
                     once; the default is {})",
                    c.request_deadline_secs,
                    d_request_deadline()
                ),
            ));
        }
        if c.idle_timeout_secs == 0 || c.touch_timeout_secs == 0 {
            return Err(bad(
                "idle_timeout_secs/touch_timeout_secs",
                "must be at least 1",
            ));
        }
        if !(1..=86_400).contains(&c.session_absolute_secs) {
            return Err(bad(
                "session_absolute_secs",
                &format!(
                    "is {}; must be from 1 to 86400 seconds (a session is short-lived; the \
                     default is {})",
                    c.session_absolute_secs,
                    d_session_absolute()
                ),
            ));
        }
        if !(1..=c.session_absolute_secs).contains(&c.session_idle_secs) {
            return Err(bad(
                "session_idle_secs",
                &format!(
                    "is {}; must be from 1 to session_absolute_secs ({}); the default is {}",
                    c.session_idle_secs,
                    c.session_absolute_secs,
                    d_session_idle()
                ),
            ));
        }
        if c.policy.approvals < 2 {
            return Err(bad(
                "policy.approvals",
                "dual control needs at least 2 approvals",
            ));
        }
        if c.policy.approval_ttl_secs == 0 || c.policy.request_ttl_secs == 0 {
            return Err(bad("policy", "TTLs must be at least 1 second"));
        }
        if !(1..=18).contains(&c.policy.ticket_max_digits) {
            return Err(bad("policy.ticket_max_digits", "must be from 1 to 18"));
        }
        if c.policy.passphrase_kdf_iterations == Some(0) {
            return Err(bad(
                "policy.passphrase_kdf_iterations",
                "must be at least 1",
            ));
        }
        Ok(c)
    }

    /// The run-time options of the daemon.
    pub fn daemon_options(&self) -> DaemonOptions {
        let mut o = DaemonOptions::new(&self.ledger_dir);
        o.allowed_readers = self.allowed_readers.clone();
        o.touch_timeout = Duration::from_secs(self.touch_timeout_secs);
        o.policy = self.custody_policy();
        o.session_idle = Duration::from_secs(self.session_idle_secs);
        o.session_absolute = Duration::from_secs(self.session_absolute_secs);
        o
    }

    /// The socket server's limits.
    pub fn server_limits(&self) -> ServerLimits {
        ServerLimits {
            max_connections: self.max_connections,
            max_connections_per_uid: self
                .max_connections_per_uid
                .unwrap_or(DEFAULT_MAX_CONNECTIONS_PER_UID.min(self.max_connections)),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            request_deadline: Duration::from_secs(self.request_deadline_secs),
        }
    }

    /// The domain policy these settings describe.
    pub fn custody_policy(&self) -> crate::custody::Policy {
        use crate::custody::{PassphraseKdf, Threshold};
        let p = &self.policy;
        let mut out = crate::custody::Policy::default();
        if let Ok(t) = Threshold::new(usize::from(p.approvals)) {
            out.approval_threshold = t;
        }
        out.approval_ttl = Duration::from_secs(p.approval_ttl_secs);
        out.request_ttl = Duration::from_secs(p.request_ttl_secs);
        out.reason_min_chars = p.min_reason_chars;
        out.ticket.prefixes = p.ticket_prefixes.clone();
        out.ticket.max_digits = p.ticket_max_digits;
        out.refuse_unlocked_devices = p.refuse_unlocked_devices;
        if let Some(n) = p
            .passphrase_kdf_iterations
            .and_then(std::num::NonZeroU32::new)
        {
            if n.get() < PassphraseKdf::production().iterations().get() {
                out.kdf = PassphraseKdf::insecure_for_tests(n);
            }
        }
        out
    }
}

/// Finds a group's gid in `/etc/group` (a number is taken as a gid).
pub fn resolve_group(name: &str) -> Option<u32> {
    if let Ok(gid) = name.parse() {
        return Some(gid);
    }
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        if f.next()? == name {
            f.nth(1)?.parse().ok()
        } else {
            None
        }
    })
}

/// The uid of a user given by name or number (`/etc/passwd`).
pub fn resolve_user(name: &str) -> Option<u32> {
    if let Ok(uid) = name.parse() {
        return Some(uid);
    }
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        if f.next()? == name {
            f.nth(1)?.parse().ok()
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_config_parses() {
        let text = include_str!("../../packaging/custody.toml");
        let c = Config::parse(text, Path::new("custody.toml")).expect("valid");
        assert_eq!(c.policy.approvals, 2);
        assert_eq!(c.max_connections, 32);
        assert_eq!(c.server_limits(), ServerLimits::default());
    }

    #[test]
    fn server_limits_are_checked_and_named() {
        let p = Path::new("x.toml");
        let base = "ledger_dir = \"/l\"\nsocket = \"/s\"\n";
        let c = Config::parse(base, p).expect("defaults");
        assert_eq!(c.server_limits(), ServerLimits::default());
        let c = Config::parse(
            &format!("{base}max_connections = 4\nmax_connections_per_uid = 4\nrequest_deadline_secs = 2\nidle_timeout_secs = 30\n"),
            p,
        )
        .expect("valid limits");
        let l = c.server_limits();
        assert_eq!((l.max_connections, l.max_connections_per_uid), (4, 4));
        assert_eq!(l.request_deadline, Duration::from_secs(2));
        assert_eq!(l.idle_timeout, Duration::from_secs(30));
        let c = Config::parse(&format!("{base}max_connections = 3\n"), p).expect("valid");
        assert_eq!(
            c.server_limits().max_connections_per_uid,
            3,
            "unset: capped by max"
        );
        for (extra, key) in [
            ("max_connections_per_uid = 0\n", "max_connections_per_uid"),
            (
                "max_connections = 4\nmax_connections_per_uid = 5\n",
                "max_connections_per_uid",
            ),
            ("request_deadline_secs = 0\n", "request_deadline_secs"),
            ("request_deadline_secs = 3601\n", "request_deadline_secs"),
        ] {
            let e = Config::parse(&format!("{base}{extra}"), p).expect_err(extra);
            let text = e.to_string();
            assert!(
                text.contains(key) && text.contains("must be"),
                "{extra}: {text}"
            );
        }
    }

    #[test]
    fn refusals() {
        let p = Path::new("x.toml");
        assert!(Config::parse("ledger_dir = \"rel\"\nsocket = \"/s\"\n", p).is_err());
        assert!(Config::parse("ledger_dir = \"/l\"\nsocket = \"/s\"\ntypo = 1\n", p).is_err());
        assert!(Config::parse(
            "ledger_dir = \"/l\"\nsocket = \"/s\"\n[policy]\napprovals = 1\n",
            p
        )
        .is_err());
        let c = Config::parse("ledger_dir = \"/l\"\nsocket = \"/s\"\n", p).expect("minimal");
        assert_eq!(c.idle_timeout_secs, 60);
        assert_eq!(resolve_group("0"), Some(0));
        assert_eq!(resolve_group("root"), Some(0));
    }
}
