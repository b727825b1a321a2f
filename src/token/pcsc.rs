//! PC/SC readers and cards through pcscd: contexts, reader lists, T=1 shared connections,
//! exclusive transactions, and reader/card hot-plug events.
//!
//! Every pcsc error becomes a [`TransportError`] naming the reader, so callers can tell
//! "pcscd is not running" from "the card was pulled" from "the card said no".

use std::collections::BTreeMap;
use std::ffi::CString;
use std::time::Duration;

use zeroize::Zeroizing;

use super::transport::{CardTransport, TransportError};

/// The largest response a card can send (extended APDU plus status word).
const RECV_MAX: usize = pcsc::MAX_BUFFER_SIZE_EXTENDED;

/// Maps a pcsc error to a [`TransportError`] for `reader` (empty when no reader is involved).
pub fn map_error(e: pcsc::Error, reader: &str) -> TransportError {
    let reader = reader.to_owned();
    match e {
        pcsc::Error::NoService | pcsc::Error::ServiceStopped | pcsc::Error::Shutdown => {
            TransportError::ServiceUnavailable {
                detail: e.to_string(),
            }
        }
        pcsc::Error::RemovedCard | pcsc::Error::ResetCard => TransportError::CardRemoved { reader },
        pcsc::Error::NoSmartcard | pcsc::Error::UnpoweredCard => TransportError::NoCard { reader },
        pcsc::Error::ReaderUnavailable
        | pcsc::Error::UnknownReader
        | pcsc::Error::NoReadersAvailable => TransportError::ReaderGone { reader },
        pcsc::Error::Timeout | pcsc::Error::UnresponsiveCard => TransportError::Timeout { reader },
        other => TransportError::Failed {
            reader,
            detail: other.to_string(),
        },
    }
}

/// A connection to pcscd.
#[derive(Clone)]
pub struct PcscContext {
    ctx: pcsc::Context,
}

impl std::fmt::Debug for PcscContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PcscContext")
    }
}

impl PcscContext {
    /// Connects to pcscd. [`TransportError::ServiceUnavailable`] when it is not running.
    pub fn establish() -> Result<Self, TransportError> {
        pcsc::Context::establish(pcsc::Scope::User)
            .map(|ctx| Self { ctx })
            .map_err(|e| map_error(e, ""))
    }

    /// The names of the readers pcscd knows (empty when there are none).
    pub fn readers(&self) -> Result<Vec<String>, TransportError> {
        match self.ctx.list_readers_owned() {
            Ok(names) => Ok(names
                .into_iter()
                .map(|n| n.to_string_lossy().into_owned())
                .collect()),
            Err(pcsc::Error::NoReadersAvailable) => Ok(Vec::new()),
            Err(e) => Err(map_error(e, "")),
        }
    }

    /// Connects to the card in `reader`: shared, T=1 (as a YubiKey needs).
    pub fn connect(&self, reader: &str) -> Result<PcscCard, TransportError> {
        let name = c_name(reader)?;
        let card = self
            .ctx
            .connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::T1)
            .map_err(|e| map_error(e, reader))?;
        let atr = card
            .status2_owned()
            .map(|s| s.atr().to_vec())
            .map_err(|e| map_error(e, reader))?;
        Ok(PcscCard {
            card,
            reader: reader.to_owned(),
            atr,
        })
    }

    /// A watcher of reader and card events, starting from what is there now.
    pub fn watcher(&self) -> Result<ReaderWatcher, TransportError> {
        ReaderWatcher::new(self.clone())
    }
}

fn c_name(reader: &str) -> Result<CString, TransportError> {
    CString::new(reader).map_err(|_| TransportError::Failed {
        reader: reader.to_owned(),
        detail: "reader name contains a NUL byte".into(),
    })
}

fn transmit(
    card: &pcsc::Card,
    reader: &str,
    command: &[u8],
) -> Result<Zeroizing<Vec<u8>>, TransportError> {
    let mut buf = Zeroizing::new(vec![0u8; RECV_MAX]);
    let n = card
        .transmit(command, &mut buf)
        .map_err(|e| map_error(e, reader))?
        .len();
    if n == 0 {
        // A card always answers at least a status word. No bytes at all means the card went
        // away during the exchange (the vpcd driver reports a dropped card this way, before
        // pcscd's next presence poll notices the removal).
        return Err(match card.status2_owned() {
            Err(e) => map_error(e, reader),
            Ok(_) => TransportError::CardRemoved {
                reader: reader.to_owned(),
            },
        });
    }
    buf.truncate(n);
    Ok(buf)
}

/// A card in a reader, connected shared over T=1.
pub struct PcscCard {
    card: pcsc::Card,
    reader: String,
    atr: Vec<u8>,
}

impl std::fmt::Debug for PcscCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcscCard")
            .field("reader", &self.reader)
            .field("atr", &super::apdu::hex(&self.atr))
            .finish()
    }
}

impl PcscCard {
    /// The card's ATR at connection time.
    pub fn atr(&self) -> &[u8] {
        &self.atr
    }

    /// Runs `f` inside an exclusive PC/SC transaction: no other application's APDUs interleave
    /// with `f`'s. The transaction ends (leaving the card as it is) when `f` returns.
    pub fn with_transaction<R>(
        &mut self,
        f: impl FnOnce(&mut PcscTransaction<'_>) -> R,
    ) -> Result<R, TransportError> {
        let reader = self.reader.clone();
        let tx = self.card.transaction().map_err(|e| map_error(e, &reader))?;
        let mut tx = PcscTransaction { tx, reader };
        Ok(f(&mut tx))
    }

    /// Disconnects, resetting the card (volatile state such as OATH authentication is lost)
    /// when `reset` is true.
    pub fn disconnect(self, reset: bool) -> Result<(), TransportError> {
        let d = if reset {
            pcsc::Disposition::ResetCard
        } else {
            pcsc::Disposition::LeaveCard
        };
        let reader = self.reader;
        self.card
            .disconnect(d)
            .map_err(|(_, e)| map_error(e, &reader))
    }
}

impl CardTransport for PcscCard {
    fn transmit(&mut self, command: &[u8]) -> Result<Zeroizing<Vec<u8>>, TransportError> {
        transmit(&self.card, &self.reader, command)
    }

    fn reader(&self) -> &str {
        &self.reader
    }
}

/// An exclusive transaction on a [`PcscCard`] (see [`PcscCard::with_transaction`]).
pub struct PcscTransaction<'a> {
    tx: pcsc::Transaction<'a>,
    reader: String,
}

impl CardTransport for PcscTransaction<'_> {
    fn transmit(&mut self, command: &[u8]) -> Result<Zeroizing<Vec<u8>>, TransportError> {
        transmit(&self.tx, &self.reader, command)
    }

    fn reader(&self) -> &str {
        &self.reader
    }
}

/// A change seen by a [`ReaderWatcher`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReaderEvent {
    /// A reader appeared.
    ReaderAdded {
        /// Its name.
        reader: String,
    },
    /// A reader went away (with any card in it).
    ReaderRemoved {
        /// Its name.
        reader: String,
    },
    /// A card was inserted (or was present when its reader appeared).
    CardInserted {
        /// The reader.
        reader: String,
        /// The card's ATR.
        atr: Vec<u8>,
    },
    /// A card was removed.
    CardRemoved {
        /// The reader.
        reader: String,
    },
}

/// Watches readers and cards through `SCardGetStatusChange`, with the `\\?PnP?\Notification`
/// pseudo-reader for readers coming and going.
#[derive(Debug)]
pub struct ReaderWatcher {
    ctx: PcscContext,
    /// Reader name → its last state (and whether a card was present).
    readers: BTreeMap<String, (pcsc::State, bool)>,
    pnp: pcsc::State,
}

impl ReaderWatcher {
    fn new(ctx: PcscContext) -> Result<Self, TransportError> {
        let mut w = Self {
            ctx,
            readers: BTreeMap::new(),
            pnp: pcsc::State::UNAWARE,
        };
        for r in w.ctx.readers()? {
            w.readers.insert(r, (pcsc::State::UNAWARE, false));
        }
        // Learn the current card states without reporting them.
        let _ = w.poll(Duration::ZERO)?;
        Ok(w)
    }

    /// Readers known now, with whether a card is present.
    pub fn snapshot(&self) -> Vec<(String, bool)> {
        self.readers
            .iter()
            .map(|(name, (_, present))| (name.clone(), *present))
            .collect()
    }

    /// Waits up to `timeout` for changes and returns them (empty on timeout).
    pub fn watch(&mut self, timeout: Duration) -> Result<Vec<ReaderEvent>, TransportError> {
        self.poll(timeout)
    }

    fn poll(&mut self, timeout: Duration) -> Result<Vec<ReaderEvent>, TransportError> {
        let mut states = Vec::with_capacity(self.readers.len() + 1);
        states.push(pcsc::ReaderState::new(pcsc::PNP_NOTIFICATION(), self.pnp));
        for (name, (state, _)) in &self.readers {
            states.push(pcsc::ReaderState::new(c_name(name)?, *state));
        }
        match self.ctx.ctx.get_status_change(timeout, &mut states) {
            Ok(()) => {}
            Err(pcsc::Error::Timeout) => return Ok(Vec::new()),
            Err(e) => return Err(map_error(e, "")),
        }
        let mut events = Vec::new();
        let mut pnp_changed = false;
        for rs in &states {
            let name = rs.name().to_string_lossy().into_owned();
            let ev = rs.event_state();
            if rs.name() == pcsc::PNP_NOTIFICATION() {
                pnp_changed = ev.contains(pcsc::State::CHANGED);
                self.pnp = ev & !pcsc::State::CHANGED;
                continue;
            }
            let Some(entry) = self.readers.get_mut(&name) else {
                continue;
            };
            if ev.intersects(pcsc::State::UNKNOWN | pcsc::State::IGNORE) {
                // Reported below when the reader list is compared.
                pnp_changed = true;
                continue;
            }
            let present = ev.contains(pcsc::State::PRESENT);
            if present && !entry.1 {
                events.push(ReaderEvent::CardInserted {
                    reader: name.clone(),
                    atr: rs.atr().to_vec(),
                });
            } else if !present && entry.1 {
                events.push(ReaderEvent::CardRemoved {
                    reader: name.clone(),
                });
            }
            *entry = (ev & !pcsc::State::CHANGED, present);
        }
        if pnp_changed {
            let now = self.ctx.readers()?;
            let gone: Vec<String> = self
                .readers
                .keys()
                .filter(|r| !now.contains(r))
                .cloned()
                .collect();
            for r in gone {
                self.readers.remove(&r);
                events.push(ReaderEvent::ReaderRemoved { reader: r });
            }
            let mut added = false;
            for r in now {
                if let std::collections::btree_map::Entry::Vacant(slot) =
                    self.readers.entry(r.clone())
                {
                    events.push(ReaderEvent::ReaderAdded { reader: r });
                    slot.insert((pcsc::State::UNAWARE, false));
                    added = true;
                }
            }
            if added {
                // Report cards already sitting in the new readers.
                events.extend(self.poll(Duration::ZERO)?);
            }
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_named_transport_failures() {
        let r = "Yubico YubiKey OTP+FIDO+CCID 00 00";
        assert!(matches!(
            map_error(pcsc::Error::NoService, ""),
            TransportError::ServiceUnavailable { .. }
        ));
        assert!(matches!(
            map_error(pcsc::Error::ServiceStopped, ""),
            TransportError::ServiceUnavailable { .. }
        ));
        for e in [pcsc::Error::RemovedCard, pcsc::Error::ResetCard] {
            assert!(
                matches!(map_error(e, r), TransportError::CardRemoved { reader } if reader == r)
            );
        }
        assert!(matches!(
            map_error(pcsc::Error::NoSmartcard, r),
            TransportError::NoCard { reader } if reader == r
        ));
        for e in [pcsc::Error::ReaderUnavailable, pcsc::Error::UnknownReader] {
            assert!(
                matches!(map_error(e, r), TransportError::ReaderGone { reader } if reader == r)
            );
        }
        assert!(matches!(
            map_error(pcsc::Error::Timeout, r),
            TransportError::Timeout { reader } if reader == r
        ));
        let e = map_error(pcsc::Error::SharingViolation, r);
        assert!(matches!(&e, TransportError::Failed { reader, .. } if reader == r));
        assert!(e.to_string().contains(r));
    }
}
