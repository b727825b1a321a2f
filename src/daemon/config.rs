//! `custodyd`'s configuration file (TOML). Every key is documented in `packaging/custody.toml`
//! and `docs/daemon.md`; unknown keys are refused, so a typo is never silently ignored.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::server::ServerLimits;
use super::state::DaemonOptions;
use crate::token::attestation::TrustAnchors;

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
    /// Not TOML at all: nothing further can be checked.
    #[error("{path}: {source}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// TOML, but keys that are unknown, missing, of the wrong type or outside their range:
    /// every one of them, each once, in the order of the file's documentation.
    #[error("{path}: {}", problem_list(.problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found (at least one).
        problems: Vec<ConfigProblem>,
    },
}

impl ConfigError {
    /// Every problem, each once (the syntax or read error as the one problem of the file).
    pub fn problems(&self) -> Vec<String> {
        match self {
            ConfigError::Invalid { problems, .. } => {
                problems.iter().map(ToString::to_string).collect()
            }
            other => vec![other.to_string()],
        }
    }
}

/// One thing wrong with one key of a configuration file, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The key as written in the file (`max_connections`, `policy.approvals`).
    pub key: String,
    /// What is wrong with its value and what to set instead.
    pub problem: String,
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

fn problem_list(problems: &[ConfigProblem]) -> String {
    match problems {
        [one] => one.to_string(),
        many => {
            let mut text = format!("{} problems:", many.len());
            for p in many {
                text.push_str("\n  ");
                text.push_str(&p.to_string());
            }
            text
        }
    }
}

/// The keys of the file's top level and of its `[policy]` table, as documented.
const TOP_KEYS: &[&str] = &[
    "ledger_dir",
    "socket",
    "socket_group",
    "max_connections",
    "max_connections_per_uid",
    "idle_timeout_secs",
    "request_deadline_secs",
    "session_idle_secs",
    "session_absolute_secs",
    "touch_timeout_secs",
    "allowed_readers",
    "watch_readers",
    "piv_attestation_test_ca",
    "policy",
];
const POLICY_KEYS: &[&str] = &[
    "approvals",
    "approval_ttl_secs",
    "request_ttl_secs",
    "ticket_prefixes",
    "ticket_max_digits",
    "min_reason_chars",
    "passphrase_kdf_iterations",
    "refuse_unlocked_devices",
    "require_attested_devices",
    "min_code_seconds",
    "approval_proof",
];

/// Takes the typed values out of one TOML table, noting every problem: a value of the wrong
/// type, and (at [`Fields::finish`]) every key left over, which no one reads.
struct Fields<'a> {
    table: toml::Table,
    /// `""` for the top level, `"policy."` for the `[policy]` table.
    prefix: &'static str,
    problems: &'a mut Vec<ConfigProblem>,
}

impl Fields<'_> {
    fn problem(&mut self, key: &str, problem: String) {
        self.problems.push(ConfigProblem {
            key: format!("{}{key}", self.prefix),
            problem,
        });
    }

    /// The value of `key` as a `T` (`want` describes one), or `None` when it is absent or
    /// not a `T` (noted).
    fn take<T: serde::de::DeserializeOwned>(&mut self, key: &str, want: &str) -> Option<T> {
        let value = self.table.remove(key)?;
        let shown = value.to_string();
        let kind = match value.type_str() {
            k @ ("integer" | "array") => format!("an {k}"),
            k => format!("a {k}"),
        };
        match value.try_into::<T>() {
            Ok(v) => Some(v),
            Err(_) => {
                self.problem(
                    key,
                    format!("is {shown} ({kind}); it must be {want}: correct or remove it"),
                );
                None
            }
        }
    }

    /// Notes every key nobody took as unknown, with the key it was probably meant to be.
    fn finish(self, known: &[&str], elsewhere: (&str, &[&str])) {
        let Fields {
            table,
            prefix,
            problems,
        } = self;
        for key in table.keys() {
            let hint = if elsewhere.1.contains(&key.as_str()) {
                format!(" ({key} belongs {})", elsewhere.0)
            } else {
                match known
                    .iter()
                    .map(|k| (strsim::damerau_levenshtein(k, key), k))
                    .min()
                {
                    Some((d, k)) if d <= 3 && d < key.len() => format!(" (did you mean {k}?)"),
                    _ => String::new(),
                }
            };
            problems.push(ConfigProblem {
                key: format!("{prefix}{key}"),
                problem: format!(
                    "unknown key{hint}; correct its spelling or remove it \
                     (every key is listed in packaging/custody.toml)"
                ),
            });
        }
    }
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
#[derive(Debug, Clone)]
pub struct Policy {
    /// Distinct officer approvals a code request needs (at least 2).
    pub approvals: u8,
    /// Seconds an approval stays valid.
    pub approval_ttl_secs: u64,
    /// Seconds a request stays open before it expires.
    pub request_ttl_secs: u64,
    /// Ticket project keys allowed (`SEC` in `SEC-1234`); empty: any 2 to 10 upper-case letters.
    pub ticket_prefixes: Vec<String>,
    /// Most digits after the dash of a ticket reference.
    pub ticket_max_digits: usize,
    /// Fewest characters of a request's reason.
    pub min_reason_chars: usize,
    /// PBKDF2 iterations of users' passphrase verifiers. Unset: the production count. A lower
    /// count is for tests and demos only, and the daemon warns at start.
    pub passphrase_kdf_iterations: Option<u32>,
    /// Whether codes are refused from keys without an OATH access key (enrolled before
    /// enrolment locked keys; `custody device lock` locks them). Unset: as the ledger says (on
    /// for ledgers created since keys are locked at enrolment, off for older ones).
    pub refuse_unlocked_devices: Option<bool>,
    /// Whether every device must have an attested PIV custody key: registration refuses a
    /// key that does not attest, and check-in, enrolment, code release and the inventory
    /// audit refuse an unattested one. Off by default: ledgers written before custody keys
    /// were attested hold unattested devices.
    pub require_attested_devices: bool,
    /// Fewest whole seconds a released code must have left in its step (0 to 29); with fewer,
    /// the release waits for the next step.
    pub min_code_seconds: u64,
    /// What proves an officer at approval time besides the passphrase: `either` (default),
    /// `signature` (their registered YubiKey) or `totp` (their second-factor code).
    pub approval_proof: crate::custody::ApprovalProof,
}

impl Policy {
    /// The `[policy]` table's values, noting every problem (a value with a problem is replaced
    /// by its default).
    fn from_table(table: toml::Table, problems: &mut Vec<ConfigProblem>) -> Self {
        let mut f = Fields {
            table,
            prefix: "policy.",
            problems,
        };
        let d = Policy::default();
        let p = Policy {
            approvals: f
                .take("approvals", "a whole number (at least 2)")
                .unwrap_or(d.approvals),
            approval_ttl_secs: f
                .take("approval_ttl_secs", "a whole number of seconds")
                .unwrap_or(d.approval_ttl_secs),
            request_ttl_secs: f
                .take("request_ttl_secs", "a whole number of seconds")
                .unwrap_or(d.request_ttl_secs),
            ticket_prefixes: f
                .take("ticket_prefixes", "a list of strings")
                .unwrap_or(d.ticket_prefixes),
            ticket_max_digits: f
                .take("ticket_max_digits", "a whole number")
                .unwrap_or(d.ticket_max_digits),
            min_reason_chars: f
                .take("min_reason_chars", "a whole number")
                .unwrap_or(d.min_reason_chars),
            passphrase_kdf_iterations: f.take("passphrase_kdf_iterations", "a whole number"),
            refuse_unlocked_devices: f.take("refuse_unlocked_devices", "true or false"),
            require_attested_devices: f
                .take("require_attested_devices", "true or false")
                .unwrap_or(d.require_attested_devices),
            min_code_seconds: f
                .take("min_code_seconds", "a whole number of seconds")
                .unwrap_or(d.min_code_seconds),
            approval_proof: f
                .take("approval_proof", "\"either\", \"signature\" or \"totp\"")
                .unwrap_or(d.approval_proof),
        };
        f.finish(POLICY_KEYS, ("at the top, before [policy]", TOP_KEYS));
        p
    }
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
            require_attested_devices: false,
            min_code_seconds: crate::custody::policy::DEFAULT_MIN_CODE_SECONDS,
            approval_proof: crate::custody::ApprovalProof::Either,
        }
    }
}

/// The whole configuration file.
#[derive(Debug, Clone)]
pub struct Config {
    /// The ledger directory (created by `custody init`; never group- or world-writable).
    pub ledger_dir: PathBuf,
    /// The Unix socket the daemon listens on (mode 0660).
    pub socket: PathBuf,
    /// The group given the socket, so its members may connect. Unset: the daemon's own group.
    pub socket_group: Option<String>,
    /// Most connections served at once.
    pub max_connections: usize,
    /// Most connections one peer uid may hold at once (at most `max_connections`). Unset: 8,
    /// or `max_connections` when that is lower.
    pub max_connections_per_uid: Option<usize>,
    /// Seconds a connection may stay silent between requests.
    pub idle_timeout_secs: u64,
    /// Seconds a request line may take from its first byte to its newline.
    pub request_deadline_secs: u64,
    /// Seconds a login session may go unused before it ends.
    pub session_idle_secs: u64,
    /// Seconds after the login at which a session ends however it is used.
    pub session_absolute_secs: u64,
    /// Seconds to wait for a touch on a key.
    pub touch_timeout_secs: u64,
    /// Reader name prefixes the daemon may use; cards in other readers are reported, never used.
    pub allowed_readers: Vec<String>,
    /// Whether to watch readers for cards coming and going (recorded as events).
    pub watch_readers: bool,
    /// A PEM file of test PIV attestation CAs trusted *instead of* Yubico's roots (the
    /// emulator's, for tests and demos). Unset: Yubico's published roots.
    pub piv_attestation_test_ca: Option<PathBuf>,
    /// The dual-control policy.
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

    /// Parses and checks configuration text; `path` names the file in errors. A file that is
    /// TOML but wrong is refused with every problem found, each once.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            source: Box::new(e),
        })?;
        let mut problems = Vec::new();
        let config = Self::from_table(table, &mut problems);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
            })
        }
    }

    /// The configuration of a TOML table, noting every problem (a value with a problem is
    /// replaced by its default, or by an empty path, so that it is reported once).
    fn from_table(table: toml::Table, problems: &mut Vec<ConfigProblem>) -> Self {
        const PATH: &str = "an absolute path (a string)";
        const SECS: &str = "a whole number of seconds";
        const COUNT: &str = "a whole number";
        let mut f = Fields {
            table,
            prefix: "",
            problems,
        };
        let ledger_dir = f.take::<PathBuf>("ledger_dir", PATH);
        let socket = f.take::<PathBuf>("socket", PATH);
        let socket_group = f.take::<String>("socket_group", "a group name or number (a string)");
        let max_connections = f.take("max_connections", COUNT);
        let max_connections_per_uid = f.take("max_connections_per_uid", COUNT);
        let idle_timeout_secs = f.take("idle_timeout_secs", SECS);
        let request_deadline_secs = f.take("request_deadline_secs", SECS);
        let session_idle_secs = f.take("session_idle_secs", SECS);
        let session_absolute_secs = f.take("session_absolute_secs", SECS);
        let touch_timeout_secs = f.take("touch_timeout_secs", SECS);
        let allowed_readers = f.take("allowed_readers", "a list of strings");
        let watch_readers = f.take("watch_readers", "true or false");
        let piv_attestation_test_ca = f.take::<PathBuf>("piv_attestation_test_ca", PATH);
        let policy_table = f.take::<toml::Table>("policy", "a table ([policy])");
        f.finish(TOP_KEYS, ("under [policy]", POLICY_KEYS));
        let policy = Policy::from_table(policy_table.unwrap_or_default(), problems);
        for (key, value, example) in [
            ("ledger_dir", &ledger_dir, "/var/lib/custody/ledger"),
            ("socket", &socket, "/run/custody/custodyd.sock"),
        ] {
            match value {
                None if !problems.iter().any(|p| p.key == key) => problems.push(ConfigProblem {
                    key: key.to_owned(),
                    problem: format!("missing; it is required: add {key} = \"{example}\""),
                }),
                Some(p) if !p.is_absolute() => problems.push(ConfigProblem {
                    key: key.to_owned(),
                    problem: format!(
                        "is {:?}, a relative path; it must be absolute, such as \"{example}\"",
                        p.display().to_string()
                    ),
                }),
                _ => {}
            }
        }
        if let Some(p) = piv_attestation_test_ca
            .as_ref()
            .filter(|p| !p.is_absolute())
        {
            problems.push(ConfigProblem {
                key: "piv_attestation_test_ca".to_owned(),
                problem: format!(
                    "is {:?}, a relative path; it must be absolute, such as \
                     \"/etc/custody/test-attestation-ca.pem\"",
                    p.display().to_string()
                ),
            });
        }
        let c = Config {
            ledger_dir: ledger_dir.unwrap_or_default(),
            socket: socket.unwrap_or_default(),
            socket_group,
            max_connections: max_connections.unwrap_or_else(d_max_connections),
            max_connections_per_uid,
            idle_timeout_secs: idle_timeout_secs.unwrap_or_else(d_idle),
            request_deadline_secs: request_deadline_secs.unwrap_or_else(d_request_deadline),
            session_idle_secs: session_idle_secs.unwrap_or_else(d_session_idle),
            session_absolute_secs: session_absolute_secs.unwrap_or_else(d_session_absolute),
            touch_timeout_secs: touch_timeout_secs.unwrap_or_else(d_touch),
            allowed_readers: allowed_readers.unwrap_or_else(d_readers),
            watch_readers: watch_readers.unwrap_or_else(d_true),
            piv_attestation_test_ca,
            policy,
        };
        c.check_ranges(problems);
        c
    }

    /// Notes every value outside its range. A key compared with another (the per-uid limit
    /// with `max_connections`) is checked only when the other is itself valid, so that one
    /// mistake is reported once.
    fn check_ranges(&self, problems: &mut Vec<ConfigProblem>) {
        let mut bad = |key: &str, problem: String| {
            problems.push(ConfigProblem {
                key: key.to_owned(),
                problem,
            })
        };
        let max_ok = (1..=1024).contains(&self.max_connections);
        if !max_ok {
            bad(
                "max_connections",
                format!(
                    "is {}; it must be from 1 to 1024 (the default is {})",
                    self.max_connections,
                    d_max_connections()
                ),
            );
        }
        if let (Some(n), true) = (self.max_connections_per_uid, max_ok) {
            if !(1..=self.max_connections).contains(&n) {
                bad(
                    "max_connections_per_uid",
                    format!(
                        "is {n}; it must be from 1 to max_connections ({}); keep it well below \
                         max_connections so that one uid cannot take every connection",
                        self.max_connections
                    ),
                );
            }
        }
        if !(1..=3600).contains(&self.request_deadline_secs) {
            bad(
                "request_deadline_secs",
                format!(
                    "is {}; it must be from 1 to 3600 seconds (clients send a request line at \
                     once; the default is {})",
                    self.request_deadline_secs,
                    d_request_deadline()
                ),
            );
        }
        for (key, value, default) in [
            ("idle_timeout_secs", self.idle_timeout_secs, d_idle()),
            ("touch_timeout_secs", self.touch_timeout_secs, d_touch()),
        ] {
            if value == 0 {
                bad(
                    key,
                    format!("is 0; it must be at least 1 second (the default is {default})"),
                );
            }
        }
        let absolute_ok = (1..=86_400).contains(&self.session_absolute_secs);
        if !absolute_ok {
            bad(
                "session_absolute_secs",
                format!(
                    "is {}; it must be from 1 to 86400 seconds (a session is short-lived; the \
                     default is {})",
                    self.session_absolute_secs,
                    d_session_absolute()
                ),
            );
        }
        if absolute_ok && !(1..=self.session_absolute_secs).contains(&self.session_idle_secs) {
            bad(
                "session_idle_secs",
                format!(
                    "is {}; it must be from 1 to session_absolute_secs ({}); the default is {}",
                    self.session_idle_secs,
                    self.session_absolute_secs,
                    d_session_idle()
                ),
            );
        }
        let p = &self.policy;
        if p.approvals < 2 {
            bad(
                "policy.approvals",
                format!(
                    "is {}; dual control needs at least 2 approvals (the default is {})",
                    p.approvals,
                    d_approvals()
                ),
            );
        }
        for (key, value, default) in [
            (
                "policy.approval_ttl_secs",
                p.approval_ttl_secs,
                d_approval_ttl(),
            ),
            (
                "policy.request_ttl_secs",
                p.request_ttl_secs,
                d_request_ttl(),
            ),
        ] {
            if value == 0 {
                bad(
                    key,
                    format!("is 0; it must be at least 1 second (the default is {default})"),
                );
            }
        }
        if !(1..=18).contains(&p.ticket_max_digits) {
            bad(
                "policy.ticket_max_digits",
                format!(
                    "is {}; it must be from 1 to 18 (the default is {})",
                    p.ticket_max_digits,
                    d_ticket_digits()
                ),
            );
        }
        if p.min_code_seconds > 29 {
            bad(
                "policy.min_code_seconds",
                format!(
                    "is {}; it must be 0 to 29 (a step is 30 s; with 30 no code could ever be \
                     released)",
                    p.min_code_seconds
                ),
            );
        }
        if p.passphrase_kdf_iterations == Some(0) {
            bad(
                "policy.passphrase_kdf_iterations",
                "is 0; it must be at least 1; leave it unset in production (the production \
                 count)"
                    .to_owned(),
            );
        }
    }

    /// What the host must provide for this configuration that the file alone cannot show:
    /// the socket's group must exist. Each problem names its key.
    pub fn host_problems(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        if let Some(group) = &self.socket_group {
            if resolve_group(group).is_none() {
                problems.push(ConfigProblem {
                    key: "socket_group".to_owned(),
                    problem: format!(
                        "is {group:?}, which is not a group of this host (/etc/group); create \
                         it (the Debian package creates \"custody\") or name another"
                    ),
                });
            }
        }
        if let Err(p) = self.trust_anchors() {
            problems.push(p);
        }
        problems
    }

    /// The anchors PIV attestations are verified against: Yubico's published roots, or, when
    /// `piv_attestation_test_ca` is set, only the CAs of that PEM file. A file that cannot be
    /// read or holds no usable certificate is the key's problem.
    pub fn trust_anchors(&self) -> Result<TrustAnchors, ConfigProblem> {
        let Some(path) = &self.piv_attestation_test_ca else {
            return Ok(TrustAnchors::yubico());
        };
        let problem = |what: String| ConfigProblem {
            key: "piv_attestation_test_ca".to_owned(),
            problem: format!(
                "{what}; name a readable PEM file of the test attestation CA, or remove the \
                 key to trust Yubico's roots (production)"
            ),
        };
        let pem = std::fs::read_to_string(path)
            .map_err(|e| problem(format!("cannot read {}: {e}", path.display())))?;
        TrustAnchors::from_pem(&pem).map_err(|e| {
            problem(format!(
                "{} is not a usable CA certificate: {e}",
                path.display()
            ))
        })
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
        out.require_attested_devices = p.require_attested_devices;
        out.min_code_seconds = p.min_code_seconds;
        out.approval_proof = p.approval_proof;
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
    fn the_unlocked_device_policy_is_read_from_the_policy_table() {
        let p = Path::new("x.toml");
        let base = "ledger_dir = \"/l\"\nsocket = \"/s\"\n";
        let c = Config::parse(base, p).expect("defaults");
        assert_eq!(
            c.policy.refuse_unlocked_devices, None,
            "unset: as the ledger says"
        );
        for (v, want) in [("true", Some(true)), ("false", Some(false))] {
            let c = Config::parse(
                &format!("{base}[policy]\nrefuse_unlocked_devices = {v}\n"),
                p,
            )
            .expect("valid");
            assert_eq!(c.policy.refuse_unlocked_devices, want);
        }
        let e = Config::parse(&format!("{base}[policy]\nrefuse_unlocked_devices = 1\n"), p)
            .expect_err("not a boolean");
        assert!(
            e.to_string().contains("policy.refuse_unlocked_devices"),
            "{e}"
        );
    }

    #[test]
    fn the_approval_proof_policy_is_read_from_the_policy_table_and_reaches_the_domain() {
        use crate::custody::ApprovalProof;
        let p = Path::new("x.toml");
        let base = "ledger_dir = \"/l\"\nsocket = \"/s\"\n";
        let c = Config::parse(base, p).expect("defaults");
        assert_eq!(c.policy.approval_proof, ApprovalProof::Either);
        for (text, v) in [
            ("either", ApprovalProof::Either),
            ("signature", ApprovalProof::Signature),
            ("totp", ApprovalProof::Totp),
        ] {
            let c = Config::parse(&format!("{base}[policy]\napproval_proof = \"{text}\"\n"), p)
                .expect("valid");
            assert_eq!(c.custody_policy().approval_proof, v);
        }
        let e = Config::parse(
            &format!("{base}[policy]\napproval_proof = \"yubikey\"\n"),
            p,
        )
        .expect_err("not a proof");
        assert!(
            e.to_string().contains("policy.approval_proof")
                && e.to_string().contains("\"signature\""),
            "{e}"
        );
    }

    #[test]
    fn the_attested_device_policy_is_read_from_the_policy_table_and_reaches_the_domain() {
        let p = Path::new("x.toml");
        let base = "ledger_dir = \"/l\"\nsocket = \"/s\"\n";
        let c = Config::parse(base, p).expect("defaults");
        assert!(!c.policy.require_attested_devices, "off by default");
        assert!(!c.custody_policy().require_attested_devices);
        for v in [true, false] {
            let c = Config::parse(
                &format!("{base}[policy]\nrequire_attested_devices = {v}\n"),
                p,
            )
            .expect("valid");
            assert_eq!(c.policy.require_attested_devices, v);
            assert_eq!(c.custody_policy().require_attested_devices, v);
        }
        let e = Config::parse(
            &format!("{base}[policy]\nrequire_attested_devices = \"yes\"\n"),
            p,
        )
        .expect_err("not a boolean");
        assert!(
            e.to_string().contains("policy.require_attested_devices")
                && e.to_string().contains("true or false"),
            "{e}"
        );
        let e = Config::parse(&format!("{base}require_attested_devices = true\n"), p)
            .expect_err("at the top");
        assert!(e.to_string().contains("belongs under [policy]"), "{e}");
    }

    #[test]
    fn min_code_seconds_is_read_and_kept_below_a_step() {
        let p = Path::new("x.toml");
        let base = "ledger_dir = \"/l\"\nsocket = \"/s\"\n";
        let c = Config::parse(base, p).expect("defaults");
        assert_eq!(c.policy.min_code_seconds, 10);
        let c =
            Config::parse(&format!("{base}[policy]\nmin_code_seconds = 0\n"), p).expect("valid");
        assert_eq!(c.policy.min_code_seconds, 0);
        let e = Config::parse(&format!("{base}[policy]\nmin_code_seconds = 30\n"), p)
            .expect_err("a whole step");
        assert!(e.to_string().contains("policy.min_code_seconds"), "{e}");
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
    fn every_problem_is_listed_once_with_its_key() {
        let text = "socket = \"run/s\"\nmax_connections = 0\nmax_connections_per_uid = 9\n\
                    idle_timeout_secs = \"60\"\nsocket_grup = \"custody\"\napprovals = 3\n\
                    [policy]\napprovals = 1\nrequest_ttl_secs = 0\nwatch_readers = true\n";
        let e = Config::parse(text, Path::new("x.toml")).expect_err("invalid");
        let problems = e.problems();
        let keys: Vec<&str> = problems
            .iter()
            .map(|p| p.split(':').next().unwrap_or_default())
            .collect();
        assert_eq!(
            keys,
            [
                "idle_timeout_secs",
                // Unknown keys in alphabetical order, after the known keys' problems.
                "approvals",
                "socket_grup",
                "policy.watch_readers",
                "ledger_dir",
                "socket",
                "max_connections",
                "policy.approvals",
                "policy.request_ttl_secs",
            ],
            "{problems:#?}"
        );
        let text = problems.join("\n");
        for want in [
            "idle_timeout_secs: is \"60\" (a string); it must be a whole number of seconds",
            "socket_grup: unknown key (did you mean socket_group?)",
            "approvals: unknown key (approvals belongs under [policy])",
            "policy.watch_readers: unknown key (watch_readers belongs at the top, before [policy])",
            "ledger_dir: missing; it is required: add ledger_dir = \"/var/lib/custody/ledger\"",
            "socket: is \"run/s\", a relative path; it must be absolute",
            "max_connections: is 0; it must be from 1 to 1024",
            "policy.approvals: is 1; dual control needs at least 2 approvals",
            "policy.request_ttl_secs: is 0; it must be at least 1 second",
        ] {
            assert!(text.contains(want), "{want:?} in:\n{text}");
        }
        // The per-uid limit is not judged against an invalid max_connections: one mistake,
        // one problem.
        assert!(!text.contains("max_connections_per_uid"), "{text}");
        let shown = e.to_string();
        assert!(
            shown.starts_with("x.toml: 9 problems:\n  idle_timeout_secs: "),
            "{shown}"
        );
        // Syntax errors stop the check: the one problem is the parser's, with its line.
        let e = Config::parse("ledger_dir = \n", Path::new("x.toml")).expect_err("syntax");
        assert_eq!(e.problems().len(), 1);
        assert!(e.problems()[0].contains("line 1"), "{e}");
    }

    #[test]
    fn a_test_attestation_ca_replaces_yubicos_roots_and_a_bad_file_is_named() {
        let base = "ledger_dir = \"/l\"\nsocket = \"/s\"\n";
        let c = Config::parse(base, Path::new("x")).expect("valid");
        let yubico = c.trust_anchors().expect("default anchors");
        assert!(
            yubico
                .anchors()
                .iter()
                .any(|a| a.subject.contains("Yubico")),
            "{yubico:?}"
        );

        let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/hsm-fixtures/piv-test-ca.pem");
        let c = Config::parse(
            &format!("{base}piv_attestation_test_ca = \"{ca}\"\n"),
            Path::new("x"),
        )
        .expect("valid");
        assert_eq!(c.host_problems(), []);
        let test = c.trust_anchors().expect("test CA");
        assert_eq!(test.anchors().len(), 1);
        assert!(
            !test
                .anchors()
                .iter()
                .any(|a| a.subject.contains("CN=Yubico")),
            "only the test CA is trusted: {test:?}"
        );

        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        for (path, says) in [
            (dir.path().join("missing.pem"), "cannot read"),
            (empty, "not a usable CA certificate"),
        ] {
            let c = Config::parse(
                &format!("{base}piv_attestation_test_ca = \"{}\"\n", path.display()),
                Path::new("x"),
            )
            .expect("valid file");
            let p = c.host_problems();
            assert_eq!(p.len(), 1, "{p:?}");
            assert_eq!(p[0].key, "piv_attestation_test_ca");
            assert!(p[0].problem.contains(says), "{}", p[0]);
            assert!(p[0].problem.contains("remove the key"), "{}", p[0]);
        }

        let e = Config::parse(
            &format!("{base}piv_attestation_test_ca = \"ca.pem\"\n"),
            Path::new("x"),
        )
        .expect_err("relative");
        assert!(e.to_string().contains("must be absolute"), "{e}");
    }

    #[test]
    fn host_problems_name_a_missing_socket_group() {
        let base = "ledger_dir = \"/l\"\nsocket = \"/s\"\n";
        let c = Config::parse(&format!("{base}socket_group = \"root\"\n"), Path::new("x"))
            .expect("valid");
        assert_eq!(c.host_problems(), []);
        let c = Config::parse(
            &format!("{base}socket_group = \"no-such-group-here\"\n"),
            Path::new("x"),
        )
        .expect("valid file");
        let p = c.host_problems();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].key, "socket_group");
        assert!(
            p[0].problem.contains("not a group of this host"),
            "{}",
            p[0]
        );
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
