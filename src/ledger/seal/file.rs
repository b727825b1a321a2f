//! The keyring file: its JSON format (a header, the sealed shares, the MAC), its parser, which
//! checks the shape and refuses weakened parameters, and its durable, private writing.

use std::io::Write;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use data_encoding::HEXLOWER;
use serde::{Deserialize, Serialize};

use super::keyring::Keyring;
use super::officer::OfficerName;
use super::wrap::{KdfParams, SealedShare, MIN_ITERATIONS, SEALED_LEN};
use crate::ledger::chain::LedgerId;
use crate::ledger::error::LedgerError;
use crate::ledger::event::write_canonical;

/// The keyring file format version this build writes and reads.
pub const KEYRING_VERSION: u32 = 1;
const KEYRING_FORMAT: &str = "mfa-custody-keyring";

/// Why keyring bytes do not parse.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringFormatError {
    /// Not JSON of the expected shape.
    #[error("not a keyring document: {source}")]
    Json {
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// Another file format.
    #[error("format is {found:?}, expected {KEYRING_FORMAT:?}")]
    Format {
        /// What the file says.
        found: String,
    },
    /// A version this build does not read.
    #[error("keyring version {found} is not supported (this build reads {KEYRING_VERSION})")]
    Version {
        /// The file's version.
        found: u32,
    },
    /// A field has a wrong value.
    #[error("field {field}: {reason}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn field_err(field: &'static str, reason: impl Into<String>) -> KeyringFormatError {
    KeyringFormatError::Field {
        field,
        reason: reason.into(),
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKdf {
    algorithm: String,
    iterations: u32,
    insecure_test_only: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOfficer {
    name: String,
    share_id: u8,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    format: String,
    version: u32,
    ledger_id: String,
    generation: u64,
    threshold: u8,
    kdf: RawKdf,
    officers: Vec<RawOfficer>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShare {
    share_id: u8,
    salt: String,
    nonce: String,
    sealed: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeyring {
    header: RawHeader,
    shares: Vec<RawShare>,
    mac: String,
}

impl Keyring {
    fn raw_header(&self) -> RawHeader {
        RawHeader {
            format: KEYRING_FORMAT.to_owned(),
            version: KEYRING_VERSION,
            ledger_id: self.ledger_id.to_hex(),
            generation: self.generation,
            threshold: self.threshold,
            kdf: RawKdf {
                algorithm: "pbkdf2-hmac-sha256".to_owned(),
                iterations: self.kdf.iterations(),
                insecure_test_only: self.kdf.insecure_test_only,
            },
            officers: self
                .shares
                .iter()
                .map(|s| RawOfficer {
                    name: s.name.0.clone(),
                    share_id: s.share_id,
                })
                .collect(),
        }
    }

    /// Canonical JSON of the header: the associated data of every share and the MAC's prefix.
    pub(super) fn header_bytes(&self) -> Vec<u8> {
        let value = serde_json::to_value(self.raw_header()).unwrap_or_default();
        let mut out = Vec::new();
        // The header holds no floats, so canonical encoding cannot fail.
        let _ = write_canonical(&value, &mut out);
        out
    }

    /// The file's bytes (pretty JSON).
    pub fn to_bytes(&self) -> Vec<u8> {
        let raw = RawKeyring {
            header: self.raw_header(),
            shares: self
                .shares
                .iter()
                .map(|s| RawShare {
                    share_id: s.share_id,
                    salt: HEXLOWER.encode(&s.salt),
                    nonce: HEXLOWER.encode(&s.nonce),
                    sealed: HEXLOWER.encode(&s.sealed),
                })
                .collect(),
            mac: HEXLOWER.encode(&self.mac),
        };
        let mut out = serde_json::to_vec_pretty(&raw).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Parses keyring file bytes. Checks the shape only; the MAC is checked by [`Keyring::unseal`].
    pub fn parse(bytes: &[u8]) -> Result<Self, KeyringFormatError> {
        let raw: RawKeyring =
            serde_json::from_slice(bytes).map_err(|source| KeyringFormatError::Json { source })?;
        let h = raw.header;
        if h.format != KEYRING_FORMAT {
            return Err(KeyringFormatError::Format { found: h.format });
        }
        if h.version != KEYRING_VERSION {
            return Err(KeyringFormatError::Version { found: h.version });
        }
        let ledger_id = LedgerId::from_hex(&h.ledger_id)
            .ok_or_else(|| field_err("header.ledger_id", "expected 32 lower-case hex digits"))?;
        if h.kdf.algorithm != "pbkdf2-hmac-sha256" {
            return Err(field_err(
                "header.kdf.algorithm",
                format!("unsupported {:?}", h.kdf.algorithm),
            ));
        }
        let iterations = NonZeroU32::new(h.kdf.iterations)
            .ok_or_else(|| field_err("header.kdf.iterations", "must not be 0"))?;
        if iterations.get() < MIN_ITERATIONS && !h.kdf.insecure_test_only {
            return Err(field_err(
                "header.kdf.iterations",
                format!("{} is below the minimum {MIN_ITERATIONS}", iterations),
            ));
        }
        let kdf = KdfParams {
            iterations,
            insecure_test_only: h.kdf.insecure_test_only,
        };
        let n = h.officers.len();
        if h.threshold < 2 || usize::from(h.threshold) > n {
            return Err(field_err(
                "header.threshold",
                format!("{} with {n} officers", h.threshold),
            ));
        }
        if raw.shares.len() != n {
            return Err(field_err(
                "shares",
                format!("{} shares for {n} officers", raw.shares.len()),
            ));
        }
        let mut shares = Vec::with_capacity(n);
        for (i, (o, s)) in h.officers.into_iter().zip(raw.shares).enumerate() {
            let name = OfficerName::parse(&o.name)
                .map_err(|e| field_err("header.officers.name", e.to_string()))?;
            if shares.iter().any(|x: &SealedShare| x.name == name) {
                return Err(field_err(
                    "header.officers.name",
                    format!("{name} appears twice"),
                ));
            }
            if o.share_id == 0
                || s.share_id != o.share_id
                || shares
                    .iter()
                    .any(|x: &SealedShare| x.share_id == o.share_id)
            {
                return Err(field_err(
                    "shares.share_id",
                    format!("share {i} has a bad or repeated id"),
                ));
            }
            let salt = decode_fixed::<16>(&s.salt)
                .ok_or_else(|| field_err("shares.salt", "expected 16 bytes of hex"))?;
            let nonce = decode_fixed::<12>(&s.nonce)
                .ok_or_else(|| field_err("shares.nonce", "expected 12 bytes of hex"))?;
            let sealed = HEXLOWER
                .decode(s.sealed.as_bytes())
                .ok()
                .filter(|v| v.len() == SEALED_LEN)
                .ok_or_else(|| {
                    field_err(
                        "shares.sealed",
                        format!("expected {SEALED_LEN} bytes of hex"),
                    )
                })?;
            shares.push(SealedShare {
                name,
                share_id: o.share_id,
                salt,
                nonce,
                sealed,
            });
        }
        let mac = decode_fixed::<32>(&raw.mac)
            .ok_or_else(|| field_err("mac", "expected 32 bytes of hex"))?;
        Ok(Keyring {
            ledger_id,
            generation: h.generation,
            threshold: h.threshold,
            kdf,
            shares,
            mac,
        })
    }

    /// Reads and parses a keyring file.
    pub fn load(path: &Path) -> Result<Self, LedgerError> {
        let bytes =
            std::fs::read(path).map_err(LedgerError::io_or_missing("read keyring", path))?;
        Self::parse(&bytes).map_err(|source| LedgerError::KeyringMalformed {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Writes the keyring atomically with mode 0600 (temp file, fsync, rename, directory fsync).
    pub fn store(&self, path: &Path) -> Result<(), LedgerError> {
        write_atomic(path, &self.to_bytes())
    }
}

fn decode_fixed<const N: usize>(s: &str) -> Option<[u8; N]> {
    HEXLOWER.decode(s.as_bytes()).ok()?.try_into().ok()
}

/// Writes `bytes` to `path` atomically: a 0600 temp file beside it, fsync, rename, fsync of the
/// directory.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), LedgerError> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp: PathBuf = dir.join(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(LedgerError::io("create", &tmp))?;
    f.write_all(bytes).map_err(LedgerError::io("write", &tmp))?;
    f.sync_all().map_err(LedgerError::io("fsync", &tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(LedgerError::io("rename into place", path))?;
    sync_dir(dir)
}

/// Makes the renames and removals of entries in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), LedgerError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(LedgerError::io("fsync directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::seal::tests::{name, pass, three_officers};

    #[test]
    fn header_edits_are_detected() {
        let (k, _) = three_officers();
        let text = String::from_utf8(k.to_bytes()).expect("utf8");
        // Raising the threshold or renaming an officer changes the associated data of every share.
        for edited in [
            text.replace("\"threshold\": 2", "\"threshold\": 3"),
            text.replace("\"generation\": 1", "\"generation\": 2"),
        ] {
            let parsed = Keyring::parse(edited.as_bytes()).expect("still parses");
            let r = parsed.unseal(
                Path::new("k"),
                &[
                    (name("alice"), pass("alice-pass-1234")),
                    (name("bob"), pass("bob-pass-5678")),
                    (name("carol"), pass("carol-pass-90ab")),
                ],
            );
            assert!(
                matches!(r, Err(LedgerError::WrongPassphrase { .. })),
                "{r:?}"
            );
        }
        // Lowering the threshold below 2 is refused at parse time.
        assert!(Keyring::parse(
            text.replace("\"threshold\": 2", "\"threshold\": 1")
                .as_bytes()
        )
        .is_err());
        // A lowered iteration count without the test marker is refused.
        let weak = text.replace(
            "\"insecure_test_only\": true",
            "\"insecure_test_only\": false",
        );
        assert!(Keyring::parse(weak.as_bytes()).is_err());
    }

    /// The keyring's shares are bound to its content, not to its layout: the same JSON laid out
    /// with other whitespace (a space turned into a newline) is the same keyring.
    #[test]
    fn whitespace_is_layout_not_content() {
        let (k, _) = three_officers();
        let text = String::from_utf8(k.to_bytes()).expect("utf8");
        let relaid = text.replacen("    {", "   \n{", 1).replace("\": ", "\":\t");
        assert_ne!(relaid, text);
        let parsed = Keyring::parse(relaid.as_bytes()).expect("the same JSON");
        assert_eq!(parsed.to_bytes(), k.to_bytes());
        let quorum = [
            (name("alice"), pass("alice-pass-1234")),
            (name("bob"), pass("bob-pass-5678")),
        ];
        assert!(parsed.unseal(Path::new("k"), &quorum).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn keyring_parser_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let _ = Keyring::parse(&bytes);
        }

        #[test]
        fn keyring_parser_survives_edits_of_a_real_keyring(pos in 0usize..2000, byte in proptest::prelude::any::<u8>()) {
            static KEYRING: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
            let mut bytes = KEYRING.get_or_init(|| three_officers().0.to_bytes()).clone();
            let i = pos % bytes.len();
            bytes[i] = byte;
            let _ = Keyring::parse(&bytes);
        }
    }
}
