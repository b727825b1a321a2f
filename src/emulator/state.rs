//! The emulator's state file: the OATH applet's credentials and counters and the PIV applet's
//! PIN, PUK, management key, keys and objects, kept across restarts.
//!
//! Written atomically (temporary file in the same directory, fsync, rename, fsync of the
//! directory) with mode 0600, since it holds seeds and keys. JSON, because the applets' states
//! are serde: the OATH state's fields at the top level (the format before PIV), the PIV state
//! under `"piv"`; a file without `"piv"` loads with a factory-fresh PIV applet.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::oath::OathState;
use super::piv::state::PivState;

/// What the state file holds.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Saved {
    /// The OATH applet.
    #[serde(flatten)]
    pub oath: OathState,
    /// The PIV applet; `None` in files written before it was saved.
    #[serde(default)]
    pub piv: Option<PivState>,
}

#[derive(serde::Serialize)]
struct SavedRef<'a> {
    #[serde(flatten)]
    oath: &'a OathState,
    #[serde(skip_serializing_if = "Option::is_none")]
    piv: Option<&'a PivState>,
}

/// Why the state file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Reading or writing failed.
    #[error("state file {path:?}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a saved state.
    #[error("state file {path:?} is not a valid emulator state: {detail}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        detail: String,
    },
}

/// Loads the saved state, or `None` when the file does not exist.
pub fn load(path: &Path) -> Result<Option<Saved>, StateError> {
    let text = match fs::read(path) {
        Ok(t) => Zeroizing::new(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    parse(&text, path).map(Some)
}

/// Reads the bytes of a state file (`path` names it in errors). A PIV state that no card could
/// hold (a PIN of the wrong length, an unknown algorithm, a key that is not one) is refused,
/// naming the field and never its value.
pub fn parse(bytes: &[u8], path: &Path) -> Result<Saved, StateError> {
    let invalid = |detail| StateError::Invalid {
        path: path.to_owned(),
        detail,
    };
    let saved: Saved = serde_json::from_slice(bytes).map_err(|e| {
        // The position only: serde_json's message could quote file contents.
        invalid(format!("line {}, column {}", e.line(), e.column()))
    })?;
    if let Some(piv) = &saved.piv {
        piv.check()
            .map_err(|e| invalid(format!("{e}; delete the file for a factory-fresh key")))?;
    }
    Ok(saved)
}

/// The bytes [`save`] writes for these states (`path` names the file in errors).
pub fn encode(
    oath: &OathState,
    piv: Option<&PivState>,
    path: &Path,
) -> Result<Zeroizing<Vec<u8>>, StateError> {
    let state = SavedRef { oath, piv };
    serde_json::to_vec(&state)
        .map(Zeroizing::new)
        .map_err(|e| StateError::Invalid {
            path: path.to_owned(),
            detail: e.to_string(),
        })
}

/// Saves the OATH state `oath` and the PIV state `piv` (when given) atomically with mode 0600.
pub fn save(path: &Path, oath: &OathState, piv: Option<&PivState>) -> Result<(), StateError> {
    let io = |source| StateError::Io {
        path: path.to_owned(),
        source,
    };
    let bytes = encode(oath, piv, path)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".into());
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn save_load_round_trip_with_mode_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key.state");
        assert!(load(&path).expect("absent is fine").is_none());
        let state = OathState::fresh();
        let mut piv = PivState::factory();
        piv.put_object(0x5F_C102, &[1, 2, 3]);
        save(&path, &state, Some(&piv)).expect("save");
        let mode = fs::metadata(&path).expect("exists").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let back = load(&path).expect("load").expect("present");
        assert_eq!(back.oath, state);
        assert_eq!(back.piv, Some(piv));
        // No temporary files left behind.
        assert_eq!(fs::read_dir(dir.path()).expect("dir").count(), 1);
    }

    /// A file written before the PIV applet was saved (the OATH state's fields alone) still
    /// loads, with no PIV state (the device starts with a factory-fresh PIV applet).
    #[test]
    fn a_state_file_without_piv_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.state");
        let state = OathState::fresh();
        fs::write(&path, serde_json::to_vec(&state).expect("ser")).expect("write");
        let back = load(&path).expect("load").expect("present");
        assert_eq!(back.oath, state);
        assert!(back.piv.is_none());
    }

    #[test]
    fn fail_a_piv_state_no_card_could_hold() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key.state");
        let mut piv = PivState::factory();
        piv.pin.left = 9;
        save(&path, &OathState::fresh(), Some(&piv)).expect("save");
        let e = load(&path).expect_err("invalid");
        assert!(e.to_string().contains("PIN"), "{e}");
        assert!(e.to_string().contains("delete the file"), "{e}");
    }

    #[test]
    fn fail_garbage_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key.state");
        fs::write(&path, b"secret-looking garbage").expect("write");
        let e = load(&path).expect_err("invalid");
        assert!(!e.to_string().contains("secret-looking"));
    }
}
