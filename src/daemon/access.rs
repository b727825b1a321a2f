//! Devices through PC/SC for the custody domain, as custodyd opens them: a device is opened by
//! serial, only in a reader the configuration allows, and every command it is sent must be
//! answered within the touch timeout. The domain then checks the device's identity itself.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::Duration;

use zeroize::Zeroizing;

use super::state::DaemonOptions;
use crate::custody::{DeviceAccess, DeviceAccessError, Serial};
use crate::token::identity::{glimpse, yubikey_serial_and_version, Glimpse};
use crate::token::pcsc::{PcscCard, PcscContext};
use crate::token::{CardTransport, TransportError};

/// [`DeviceAccess`] over pcscd, limited to allowed readers; every command a device is sent
/// must be answered within the touch timeout.
///
/// pcscd is first reached when a device is opened, so an inventory in which no known device
/// is presented needs no card and no pcscd. A context does not outlive the pcscd it was made
/// with: when listing the readers fails (pcscd stopped, or restarted since), a new context is
/// made, which reaches a restarted pcscd.
pub struct PcscAccess {
    ctx: Option<PcscContext>,
    allowed: Vec<String>,
    touch_timeout: Duration,
    hints: BTreeMap<String, Option<u32>>,
}

impl std::fmt::Debug for PcscAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcscAccess")
            .field("allowed", &self.allowed)
            .field("touch_timeout", &self.touch_timeout)
            .finish_non_exhaustive()
    }
}

impl PcscAccess {
    /// Access as the daemon's options configure it (`allowed_readers`, `touch_timeout`), not
    /// yet connected to pcscd.
    pub fn new(options: &DaemonOptions) -> Self {
        Self {
            ctx: None,
            allowed: options.allowed_readers.clone(),
            touch_timeout: options.touch_timeout,
            hints: BTreeMap::new(),
        }
    }

    /// The serial last seen in each reader (from reader events): readers known to hold the
    /// serial asked for are tried first, readers known to hold another last. A card busy in
    /// another operation (waiting for its touch) then does not hold up opening this one.
    pub fn with_hints(mut self, hints: BTreeMap<String, Option<u32>>) -> Self {
        self.hints = hints;
        self
    }
}

/// The readers pcscd knows, through the context in `ctx` or, when there is none or listing
/// through it fails, a new one kept in `ctx`. The error names pcscd.
fn list_readers(ctx: &mut Option<PcscContext>) -> Result<(&PcscContext, Vec<String>), String> {
    let (context, readers) = match ctx.take().map(|c| {
        let listed = c.readers();
        (c, listed)
    }) {
        Some((c, Ok(readers))) => (c, readers),
        _ => {
            let pcscd = |e: TransportError| format!("pcscd: {e}");
            let c = PcscContext::establish().map_err(pcscd)?;
            let readers = c.readers().map_err(pcscd)?;
            (c, readers)
        }
    };
    Ok((ctx.insert(context), readers))
}

impl DeviceAccess for PcscAccess {
    fn open(&mut self, serial: Serial) -> Result<Box<dyn CardTransport + '_>, DeviceAccessError> {
        let failed = |detail: String| DeviceAccessError::Failed { serial, detail };
        let (ctx, mut readers) = list_readers(&mut self.ctx).map_err(failed)?;
        // Known to hold this serial, then unknown, then known to hold another (stable order).
        readers.sort_by_key(|r| match self.hints.get(r) {
            Some(Some(s)) if *s == serial.get() => 0,
            Some(Some(_)) => 2,
            _ => 1,
        });
        for reader in readers {
            if !self.allowed.iter().any(|p| reader.starts_with(p)) {
                continue;
            }
            if yubikey_serial_and_version(&reader).map(|(s, _)| s) != Some(serial.get()) {
                continue;
            }
            let card = ctx.connect(&reader).map_err(|e| failed(e.to_string()))?;
            let card = TimedCard::new(card, self.touch_timeout).map_err(failed)?;
            return Ok(Box::new(card));
        }
        Err(DeviceAccessError::NotPresent { serial })
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

/// A card whose commands run on their own thread, so that waiting for an answer (a touch) is
/// bounded: after `timeout` the command fails with [`TransportError::Timeout`] and the card is
/// not used again. The thread ends when the card answers or goes away; the command and its
/// answer travel in zeroizing buffers.
struct TimedCard {
    reader: String,
    timeout: Duration,
    commands: Option<mpsc::Sender<Zeroizing<Vec<u8>>>>,
    answers: mpsc::Receiver<Result<Zeroizing<Vec<u8>>, TransportError>>,
    /// Told once the I/O thread has let go of the card.
    done: mpsc::Receiver<()>,
    timed_out: bool,
}

impl TimedCard {
    fn new(card: PcscCard, timeout: Duration) -> Result<Self, String> {
        Self::spawn(card, timeout)
    }

    fn spawn<C: CardTransport + Send + 'static>(
        mut card: C,
        timeout: Duration,
    ) -> Result<Self, String> {
        let reader = card.reader().to_owned();
        let (commands, inbox) = mpsc::channel::<Zeroizing<Vec<u8>>>();
        let (outbox, answers) = mpsc::channel();
        let (released, done) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("card-io".into())
            .spawn(move || {
                for command in inbox {
                    let answer = card.transmit(&command);
                    drop(command);
                    if outbox.send(answer).is_err() {
                        break;
                    }
                }
                // Dropping the card disconnects it, resetting it (PC/SC `SCARD_RESET_CARD`):
                // its volatile state (OATH validation, PIV PIN) is gone before `released` is
                // told, and so before whoever dropped this card answers its peer.
                drop(card);
                let _ = released.send(());
            })
            .map_err(|e| format!("cannot start the card's I/O thread: {e}"))?;
        Ok(Self {
            reader,
            timeout,
            commands: Some(commands),
            answers,
            done,
            timed_out: false,
        })
    }
}

/// Dropping the card waits (at most the touch timeout) until the I/O thread has disconnected
/// it. Without the wait the disconnection, which resets the card, could come after the next
/// operation had opened the same card, and reset it under that operation. A card that timed
/// out is not waited for: its thread may be stuck in a command that never ends.
impl Drop for TimedCard {
    fn drop(&mut self) {
        self.commands = None;
        if !self.timed_out {
            let _ = self.done.recv_timeout(self.timeout);
        }
    }
}

impl CardTransport for TimedCard {
    fn transmit(&mut self, command: &[u8]) -> Result<Zeroizing<Vec<u8>>, TransportError> {
        let timeout = || TransportError::Timeout {
            reader: self.reader.clone(),
        };
        if self.timed_out {
            return Err(timeout());
        }
        let gone = || TransportError::Failed {
            reader: self.reader.clone(),
            detail: "the card's I/O thread ended".into(),
        };
        let Some(commands) = &self.commands else {
            return Err(gone());
        };
        commands
            .send(Zeroizing::new(command.to_vec()))
            .map_err(|_| gone())?;
        match self.answers.recv_timeout(self.timeout) {
            Ok(answer) => answer,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                self.timed_out = true;
                // The thread is left to finish (or fail) on its own.
                self.commands = None;
                Err(timeout())
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(gone()),
        }
    }

    fn reader(&self) -> &str {
        &self.reader
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A card that answers `90 00` after `delay`.
    struct Slow {
        delay: Duration,
    }

    impl CardTransport for Slow {
        fn transmit(&mut self, _: &[u8]) -> Result<Zeroizing<Vec<u8>>, TransportError> {
            std::thread::sleep(self.delay);
            Ok(Zeroizing::new(vec![0x90, 0x00]))
        }
        fn reader(&self) -> &str {
            "slow reader"
        }
    }

    #[test]
    fn a_card_answering_in_time_is_unchanged() {
        let mut c = TimedCard::spawn(
            Slow {
                delay: Duration::from_millis(5),
            },
            Duration::from_secs(5),
        )
        .expect("thread");
        for _ in 0..3 {
            assert_eq!(
                c.transmit(&[0, 0xA4, 4, 0]).expect("answer").as_slice(),
                [0x90, 0]
            );
        }
        assert_eq!(c.reader(), "slow reader");
    }

    #[test]
    fn a_card_never_touched_times_out_and_is_not_used_again() {
        let mut c = TimedCard::spawn(
            Slow {
                delay: Duration::from_secs(2),
            },
            Duration::from_millis(100),
        )
        .expect("thread");
        let started = std::time::Instant::now();
        let e = c.transmit(&[0, 0xA2, 0, 1]).expect_err("times out");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "bounded by the timeout"
        );
        assert!(matches!(e, TransportError::Timeout { ref reader } if reader == "slow reader"));
        let e = c.transmit(&[0, 0xA4, 4, 0]).expect_err("stays timed out");
        assert!(matches!(e, TransportError::Timeout { .. }));
        let dropped = std::time::Instant::now();
        drop(c);
        assert!(
            dropped.elapsed() < Duration::from_secs(1),
            "a card stuck in a command is not waited for"
        );
    }

    /// A card whose disconnection (its drop) takes a while, and says when it is done.
    struct SlowToRelease {
        released: std::sync::Arc<std::sync::atomic::AtomicBool>,
    }

    impl CardTransport for SlowToRelease {
        fn transmit(&mut self, _: &[u8]) -> Result<Zeroizing<Vec<u8>>, TransportError> {
            Ok(Zeroizing::new(vec![0x90, 0x00]))
        }
        fn reader(&self) -> &str {
            "reader"
        }
    }

    impl Drop for SlowToRelease {
        fn drop(&mut self) {
            std::thread::sleep(Duration::from_millis(200));
            self.released
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// The disconnection resets the card; the next operation on the same card must not start
    /// before it, or the reset lands in the middle of that operation.
    #[test]
    fn a_dropped_card_is_released_before_the_drop_returns() {
        let released = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut c = TimedCard::spawn(
            SlowToRelease {
                released: released.clone(),
            },
            Duration::from_secs(5),
        )
        .expect("thread");
        c.transmit(&[0, 0xA4, 4, 0]).expect("answer");
        drop(c);
        assert!(released.load(std::sync::atomic::Ordering::SeqCst));
    }
}
