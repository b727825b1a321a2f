//! Devices through PC/SC for the custody domain: a device is opened by serial, only in a
//! reader the configuration allows. The domain then checks the device's identity itself.

use crate::custody::{DeviceAccess, DeviceAccessError, Serial};
use std::time::Duration;

use crate::token::identity::{glimpse, yubikey_serial_and_version, Glimpse};
use crate::token::pcsc::PcscContext;
use crate::token::{CardTransport, TransportError};

/// [`DeviceAccess`] over pcscd, limited to allowed readers.
pub struct PcscAccess {
    ctx: PcscContext,
    allowed: Vec<String>,
}

impl std::fmt::Debug for PcscAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcscAccess")
            .field("allowed", &self.allowed)
            .finish_non_exhaustive()
    }
}

impl PcscAccess {
    /// Connects to pcscd.
    pub fn new(allowed: Vec<String>) -> Result<Self, String> {
        let ctx = PcscContext::establish().map_err(|e| e.to_string())?;
        Ok(Self { ctx, allowed })
    }
}

impl DeviceAccess for PcscAccess {
    fn open(&mut self, serial: Serial) -> Result<Box<dyn CardTransport + '_>, DeviceAccessError> {
        let failed = |detail: String| DeviceAccessError::Failed { serial, detail };
        let readers = self.ctx.readers().map_err(|e| failed(e.to_string()))?;
        for reader in readers {
            if !self.allowed.iter().any(|p| reader.starts_with(p)) {
                continue;
            }
            if yubikey_serial_and_version(&reader).map(|(s, _)| s) != Some(serial.get()) {
                continue;
            }
            let card = self
                .ctx
                .connect(&reader)
                .map_err(|e| failed(e.to_string()))?;
            return Ok(Box::new(card));
        }
        Err(DeviceAccessError::NotPresent { serial })
    }
}

/// [`PcscAccess`] that connects to pcscd only when a device is first opened: an inventory in
/// which no known device is presented needs no card and no pcscd.
#[derive(Debug)]
pub struct LazyPcscAccess {
    allowed: Vec<String>,
    inner: Option<PcscAccess>,
}

impl LazyPcscAccess {
    /// Access limited to `allowed` readers, not yet connected.
    pub fn new(allowed: Vec<String>) -> Self {
        Self {
            allowed,
            inner: None,
        }
    }
}

impl DeviceAccess for LazyPcscAccess {
    fn open(&mut self, serial: Serial) -> Result<Box<dyn CardTransport + '_>, DeviceAccessError> {
        let access = match self.inner.take() {
            Some(a) => a,
            None => {
                PcscAccess::new(self.allowed.clone()).map_err(|e| DeviceAccessError::Failed {
                    serial,
                    detail: format!("pcscd: {e}"),
                })?
            }
        };
        self.inner.insert(access).open(serial)
    }
}

/// Identifies the card that just appeared in `reader`: connects shared, takes one PC/SC
/// transaction for a [`glimpse`] (management READ CONFIG, OATH SELECT; no code, no touch) and
/// leaves the card as it is. Only this card is locked, and only for those three APDUs: an
/// operation on a card in another reader is not held up. A card still powering up is given
/// two more tries, 100 ms apart. The error names the reader and what failed.
pub fn identify_in_reader(ctx: &PcscContext, reader: &str) -> Result<Glimpse, String> {
    let mut tries = 0;
    let mut card = loop {
        match ctx.connect(reader) {
            Ok(c) => break c,
            Err(TransportError::NoCard { .. } | TransportError::Failed { .. }) if tries < 2 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    let seen = card
        .with_transaction(|tx| glimpse(tx))
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    let _ = card.disconnect(false);
    seen
}
