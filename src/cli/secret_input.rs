//! Secrets given on a file descriptor (`--passphrase-fd`, `--totp-fd`, `--seed-fd`, a
//! ceremony's answers): one secret per line, read by [`SecretFd::next_line`].
//!
//! A line is read straight into one zeroizing buffer allocated at its full size
//! ([`MAX_LINE`]) before the first byte arrives: no `BufReader` keeps a copy, and the buffer
//! never grows (growing would leave the old allocation behind, unzeroized). Bytes are read one
//! at a time, so nothing past the line's end is taken from the descriptor and a script may
//! write the next answer only when it is asked for.

use std::fs::File;
use std::io::Read;

use zeroize::{Zeroize, Zeroizing};

use super::exit;
use super::ledger::Failure;

/// The longest line accepted, in bytes, without its line end.
pub(crate) const MAX_LINE: usize = 64 * 1024;

/// Why a line could not be read from a descriptor. Each names the descriptor; none holds a
/// byte of what was read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum SecretInputError {
    /// The descriptor could not be opened (not open in this process, or not readable).
    #[error(
        "cannot read file descriptor {fd}: {source}; open it for reading when running custody \
         (as `{fd}< FILE`), or leave the option out to be asked"
    )]
    Open {
        /// The descriptor number.
        fd: u32,
        /// What the system said.
        source: std::io::Error,
    },
    /// Reading failed.
    #[error("reading file descriptor {fd}: {source}")]
    Read {
        /// The descriptor number.
        fd: u32,
        /// What the system said.
        source: std::io::Error,
    },
    /// The input ended before the line.
    #[error(
        "file descriptor {fd} has no line for: {what}; write each secret on a line of its own, \
         in the order the command asks for them"
    )]
    Ended {
        /// The descriptor number.
        fd: u32,
        /// The answer the line was read for.
        what: String,
    },
    /// The line has nothing before its line end.
    #[error("file descriptor {fd}: the line for {what} is empty; write the secret on that line")]
    Empty {
        /// The descriptor number.
        fd: u32,
        /// The answer the line was read for.
        what: String,
    },
    /// The line is longer than [`MAX_LINE`].
    #[error("file descriptor {fd}: the line for {what} is longer than {MAX_LINE} bytes")]
    TooLong {
        /// The descriptor number.
        fd: u32,
        /// The answer the line was read for.
        what: String,
    },
    /// The line is not UTF-8.
    #[error("file descriptor {fd}: the line for {what} is not UTF-8")]
    NotUtf8 {
        /// The descriptor number.
        fd: u32,
        /// The answer the line was read for.
        what: String,
    },
}

impl From<SecretInputError> for Failure {
    fn from(e: SecretInputError) -> Self {
        let status = match e {
            SecretInputError::Open { .. } | SecretInputError::Read { .. } => exit::IO,
            _ => exit::USAGE,
        };
        Failure::new(status, e.to_string())
    }
}

/// A file descriptor secrets are read from, one per line.
#[derive(Debug)]
pub(crate) struct SecretFd {
    fd: u32,
    file: File,
}

impl SecretFd {
    /// Opens descriptor `fd` of this process (through `/proc/self/fd`).
    pub(crate) fn open(fd: u32) -> Result<Self, SecretInputError> {
        let file = File::open(format!("/proc/self/fd/{fd}"))
            .map_err(|source| SecretInputError::Open { fd, source })?;
        Ok(Self { fd, file })
    }

    /// The descriptor's number.
    #[cfg(test)]
    fn number(&self) -> u32 {
        self.fd
    }

    /// The next line, without its line end (exactly one `\n`, or `\r\n`). `what` names the
    /// answer in errors. An input that has ended, an empty line, one longer than [`MAX_LINE`]
    /// and one that is not UTF-8 are refused.
    pub(crate) fn next_line(&mut self, what: &str) -> Result<Zeroizing<String>, SecretInputError> {
        let fd = self.fd;
        // Room for the longest line and its `\r\n`: the buffer is never reallocated.
        let mut raw = Zeroizing::new(Vec::with_capacity(MAX_LINE + 2));
        let mut ended = false;
        loop {
            let len = raw.len();
            if len == raw.capacity() {
                return Err(SecretInputError::TooLong {
                    fd,
                    what: what.to_owned(),
                });
            }
            raw.push(0);
            let Some(slot) = raw.get_mut(len..) else {
                break;
            };
            match self.file.read(slot) {
                Ok(0) => {
                    raw.truncate(len);
                    ended = true;
                    break;
                }
                Ok(_) if raw.last() == Some(&b'\n') => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => raw.truncate(len),
                Err(source) => return Err(SecretInputError::Read { fd, source }),
            }
        }
        if ended && raw.is_empty() {
            return Err(SecretInputError::Ended {
                fd,
                what: what.to_owned(),
            });
        }
        if raw.last() == Some(&b'\n') {
            raw.pop();
            if raw.last() == Some(&b'\r') {
                raw.pop();
            }
        }
        if raw.len() > MAX_LINE {
            return Err(SecretInputError::TooLong {
                fd,
                what: what.to_owned(),
            });
        }
        if raw.is_empty() {
            return Err(SecretInputError::Empty {
                fd,
                what: what.to_owned(),
            });
        }
        // The bytes move into the string: no copy.
        match String::from_utf8(std::mem::take(&mut *raw)) {
            Ok(text) => Ok(Zeroizing::new(text)),
            Err(e) => {
                e.into_bytes().zeroize();
                Err(SecretInputError::NotUtf8 {
                    fd,
                    what: what.to_owned(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Seek, Write};
    use std::os::fd::AsRawFd;

    use super::*;

    /// A descriptor of this process reading `bytes` from a real file.
    fn fd_with(bytes: &[u8]) -> (File, SecretFd) {
        let mut f = tempfile::tempfile().expect("temporary file");
        f.write_all(bytes).expect("write");
        f.rewind().expect("rewind");
        let n = u32::try_from(f.as_raw_fd()).expect("a descriptor number");
        let s = SecretFd::open(n).expect("open through /proc/self/fd");
        (f, s)
    }

    fn lines(bytes: &[u8]) -> Vec<Result<String, String>> {
        let (_keep, mut s) = fd_with(bytes);
        (0..4)
            .map(|_| {
                s.next_line("the passphrase")
                    .map(|l| l.as_str().to_owned())
                    .map_err(|e| e.to_string())
            })
            .collect()
    }

    #[test]
    fn lines_are_read_one_at_a_time_with_exactly_one_line_end_removed() {
        let got = lines(b"first\nsecond \r\n third");
        assert_eq!(got[0], Ok("first".into()));
        assert_eq!(got[1], Ok("second ".into()), "one \\r\\n, no trimming");
        assert_eq!(got[2], Ok(" third".into()), "the last line needs no end");
        assert!(matches!(&got[3], Err(e) if e.contains("has no line for: the passphrase; ")));
        let (_keep, mut s) = fd_with(b"short\n");
        let line = s.next_line("the passphrase").expect("a line");
        assert!(
            line.capacity() >= MAX_LINE + 2,
            "the line sits in the buffer allocated at full size, not in a grown copy"
        );
    }

    #[test]
    fn an_input_that_has_ended_is_refused_naming_the_descriptor_and_the_answer() {
        let (_keep, mut s) = fd_with(b"only\n");
        assert_eq!(
            s.next_line("the passphrase").expect("a line").as_str(),
            "only"
        );
        let e = s.next_line("the code").expect_err("ended");
        assert!(matches!(e, SecretInputError::Ended { .. }));
        assert_eq!(
            e.to_string(),
            format!(
                "file descriptor {} has no line for: the code; write each secret on a line of \
                 its own, in the order the command asks for them",
                s.number()
            )
        );
        assert!(matches!(&lines(b"")[0], Err(e) if e.contains("has no line for")));
        assert_eq!(Failure::from(e).status, exit::USAGE);
    }

    #[test]
    fn an_empty_line_is_refused_naming_the_descriptor() {
        let (_keep, mut s) = fd_with(b"\nnext\n");
        let n = s.number();
        let e = s.next_line("the passphrase").expect_err("empty");
        assert!(matches!(e, SecretInputError::Empty { fd, .. } if fd == n));
        assert_eq!(
            e.to_string(),
            format!(
                "file descriptor {n}: the line for the passphrase is empty; write the secret on \
                 that line"
            )
        );
        assert_eq!(
            s.next_line("the code").expect("a line").as_str(),
            "next",
            "only the empty line was taken"
        );
        assert!(matches!(
            lines(b"\r\n")[0].as_deref(),
            Err(e) if e.contains("is empty; ")
        ));
    }

    #[test]
    fn a_line_longer_than_the_limit_is_refused() {
        let mut long = vec![b'x'; MAX_LINE];
        assert_eq!(
            lines(&long)[0].as_ref().map(String::len),
            Ok(MAX_LINE),
            "the limit itself is accepted"
        );
        long.push(b'x');
        let (_keep, mut s) = fd_with(&long);
        let e = s.next_line("the passphrase").expect_err("too long");
        assert!(matches!(e, SecretInputError::TooLong { .. }), "{e}");
        assert!(e
            .to_string()
            .contains(&format!("file descriptor {}", s.number())));
        let f = Failure::from(e);
        assert_eq!(f.status, exit::USAGE);
    }

    #[test]
    fn a_line_that_is_not_utf8_is_refused_without_its_bytes() {
        let (_keep, mut s) = fd_with(b"caf\xe9\n");
        let e = s.next_line("the passphrase").expect_err("not UTF-8");
        assert!(matches!(e, SecretInputError::NotUtf8 { .. }));
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("caf"), "{shown}");
    }

    #[test]
    fn a_descriptor_not_open_is_refused_naming_it() {
        let e = SecretFd::open(987_654).expect_err("not open");
        assert!(matches!(e, SecretInputError::Open { fd: 987_654, .. }));
        assert!(e
            .to_string()
            .starts_with("cannot read file descriptor 987654: "));
        assert_eq!(Failure::from(e).status, exit::IO);
    }

    #[test]
    fn a_line_at_the_limit_with_its_crlf_is_accepted() {
        let mut input = vec![b'y'; MAX_LINE];
        input.extend_from_slice(b"\r\n");
        let got = lines(&input);
        assert_eq!(got[0].as_ref().map(String::len), Ok(MAX_LINE));
        assert!(got[1].is_err(), "nothing after it");
    }
}
