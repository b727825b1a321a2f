//! The vpcd bridge: presents a [`SoftKey`] to a real pcscd through the vsmartcard `vpcd` driver.
//!
//! pcscd's vpcd driver listens on TCP; the virtual card connects to it. Every message, both
//! ways, is a 2-byte big-endian length and a payload. A 1-byte payload from vpcd is a control
//! byte (`00` power off, `01` power on, `02` reset: no reply; `04` get ATR: reply with the ATR);
//! a longer payload is a command APDU, answered with the response APDU. Closing the socket means
//! "card removed". [`serve`] reconnects with backoff when pcscd goes away and comes back.
//!
//! Fault knobs ([`Faults`]) let tests remove the card mid-operation, slow every answer down, or
//! corrupt or garble one answer, or never finish answering (`61xx` forever).

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::SoftKey;

/// Largest payload a frame can carry.
pub const MAX_PAYLOAD: usize = u16::MAX as usize;

/// Control byte: power off.
pub const CTRL_OFF: u8 = 0x00;
/// Control byte: power on.
pub const CTRL_ON: u8 = 0x01;
/// Control byte: reset.
pub const CTRL_RESET: u8 = 0x02;
/// Control byte: get ATR.
pub const CTRL_ATR: u8 = 0x04;

/// One message from vpcd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// Power the card off.
    PowerOff,
    /// Power the card on.
    PowerOn,
    /// Reset the card.
    Reset,
    /// Send the ATR.
    GetAtr,
    /// A control byte this bridge does not know (ignored, no reply).
    UnknownControl(u8),
    /// A command APDU.
    Apdu(&'a [u8]),
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// A frame with an empty payload.
    #[error("vpcd frame with an empty payload")]
    Empty,
    /// A payload too long for the 2-byte length.
    #[error("payload of {len} bytes does not fit a vpcd frame (at most {MAX_PAYLOAD})")]
    TooLong {
        /// The payload's length.
        len: usize,
    },
}

impl<'a> Message<'a> {
    /// Reads a payload (the bytes after the length prefix).
    pub fn parse(payload: &'a [u8]) -> Result<Self, FrameError> {
        match payload {
            [] => Err(FrameError::Empty),
            [CTRL_OFF] => Ok(Self::PowerOff),
            [CTRL_ON] => Ok(Self::PowerOn),
            [CTRL_RESET] => Ok(Self::Reset),
            [CTRL_ATR] => Ok(Self::GetAtr),
            [other] => Ok(Self::UnknownControl(*other)),
            apdu => Ok(Self::Apdu(apdu)),
        }
    }
}

/// Splits one frame off the front of `buf`: `Ok(Some((payload, consumed)))` when a whole frame
/// is there, `Ok(None)` when more bytes are needed.
pub fn split_frame(buf: &[u8]) -> Result<Option<(&[u8], usize)>, FrameError> {
    let Some(([hi, lo], rest)) = buf.split_first_chunk::<2>() else {
        return Ok(None);
    };
    let len = usize::from(u16::from_be_bytes([*hi, *lo]));
    if len == 0 {
        return Err(FrameError::Empty);
    }
    Ok(rest.get(..len).map(|payload| (payload, len + 2)))
}

/// Encodes one frame: 2-byte big-endian length, then the payload.
pub fn encode_frame(payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    let len =
        u16::try_from(payload.len()).map_err(|_| FrameError::TooLong { len: payload.len() })?;
    if len == 0 {
        return Err(FrameError::Empty);
    }
    let mut out = Vec::with_capacity(payload.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Faults to inject, for tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// After answering this many APDUs, remove the card: close the socket instead of answering
    /// the next one, and stay out until the process ends.
    pub drop_after: Option<u64>,
    /// Delay every answer by this much.
    pub delay: Duration,
    /// After answering this many APDUs, corrupt the next answer (cut it to its first byte, which
    /// no client can read as a response APDU). Once.
    pub corrupt_after: Option<u64>,
    /// After answering this many APDUs, answer every further APDU (GET RESPONSE included) with
    /// 255 filler bytes and `61FF`: a card that never stops saying "more data".
    pub endless_more_data_after: Option<u64>,
    /// After answering this many APDUs, replace the next answer by well-framed garbage: 32
    /// bytes that are no valid TLV of any applet, then `9000`. Once.
    pub garbage_after: Option<u64>,
}

/// Garbage with a success status word: no applet's answer starts with tag `FF`, and the
/// lengths claimed inside run past the end.
fn garbage() -> Vec<u8> {
    let mut answer: Vec<u8> = (0u8..32).map(|i| 0xFF ^ i.wrapping_mul(37)).collect();
    answer.extend_from_slice(&[0x90, 0x00]);
    answer
}

/// The answer of a card stuck in `61xx` chaining.
fn endless_more_data() -> Vec<u8> {
    let mut answer = vec![0xA5; 255];
    answer.extend_from_slice(&[0x61, 0xFF]);
    answer
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The driver closed the connection (pcscd stopped or restarted).
    PeerClosed,
    /// The card was removed by the `drop_after` fault.
    CardDropped,
    /// vpcd said nothing for [`IDLE_RECONNECT`].
    Idle,
}

/// How long a connection may stay silent before the bridge reconnects.
pub const IDLE_RECONNECT: Duration = Duration::from_secs(3);

/// Counts APDUs across connections, for the fault knobs.
#[derive(Debug, Default)]
pub struct FaultState {
    faults: Faults,
    apdus: u64,
    corrupted: bool,
    garbled: bool,
}

impl FaultState {
    /// Starts counting.
    pub fn new(faults: Faults) -> Self {
        Self {
            faults,
            apdus: 0,
            corrupted: false,
            garbled: false,
        }
    }

    /// APDUs answered so far.
    pub fn apdus(&self) -> u64 {
        self.apdus
    }

    /// True once the card has been removed by the `drop_after` fault.
    pub fn dropped(&self) -> bool {
        self.faults.drop_after.is_some_and(|n| self.apdus >= n)
    }
}

fn read_frame(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
    // vpcd writes a frame's length and payload with separate sends; with Nagle on its side,
    // the payload waits for our ACK of the length, which delayed ACK holds back ~40 ms. ACK at
    // once instead (the kernel clears this flag now and then, so set it before every read).
    let _ = rustix::net::sockopt::set_tcp_quickack(&*stream, true);
    let mut header = [0u8; 2];
    match stream.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = usize::from(u16::from_be_bytes(header));
    buf.clear();
    buf.resize(len, 0);
    let _ = rustix::net::sockopt::set_tcp_quickack(&*stream, true);
    stream.read_exact(buf)?;
    Ok(Some(len))
}

/// Serves one connection to vpcd until it closes or the card is dropped. `on_apdu` runs after
/// every answered APDU (the binary saves changed state there).
pub fn serve_connection(
    stream: &mut TcpStream,
    key: &mut SoftKey,
    faults: &mut FaultState,
    on_apdu: &mut dyn FnMut(&mut SoftKey),
) -> io::Result<Ended> {
    stream.set_nodelay(true)?;
    // vpcd polls a present card with get-ATR several times a second; silence this long means
    // the driver has not taken this connection (it may still hold a dead one): start over.
    stream.set_read_timeout(Some(IDLE_RECONNECT))?;
    let mut buf = zeroize::Zeroizing::new(Vec::new());
    loop {
        let got = match read_frame(stream, &mut buf) {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                tracing::info!("vpcd silent for {IDLE_RECONNECT:?}; reconnecting");
                key.power_off();
                return Ok(Ended::Idle);
            }
            other => other?,
        };
        if got.is_none() {
            key.power_off();
            return Ok(Ended::PeerClosed);
        }
        let msg = Message::parse(&buf);
        match &msg {
            Ok(Message::Apdu(a)) => tracing::debug!(len = a.len(), "vpcd: APDU"),
            other => tracing::debug!(?other, "vpcd: control"),
        }
        let reply = match msg {
            Err(_) => {
                tracing::warn!("vpcd sent an empty frame; ignored");
                None
            }
            Ok(Message::PowerOff) => {
                key.power_off();
                None
            }
            Ok(Message::PowerOn) => {
                key.power_on();
                None
            }
            Ok(Message::Reset) => {
                key.reset();
                None
            }
            Ok(Message::UnknownControl(b)) => {
                tracing::warn!(control = b, "vpcd sent an unknown control byte; ignored");
                None
            }
            Ok(Message::GetAtr) => Some(zeroize::Zeroizing::new(key.atr().to_vec())),
            Ok(Message::Apdu(apdu)) => {
                if faults.dropped() {
                    tracing::info!(
                        apdus = faults.apdus,
                        "fault: removing the card mid-operation"
                    );
                    key.power_off();
                    let _ = stream.shutdown(std::net::Shutdown::Both);
                    return Ok(Ended::CardDropped);
                }
                let mut answer = key.process(apdu);
                on_apdu(key);
                if faults
                    .faults
                    .corrupt_after
                    .is_some_and(|n| faults.apdus >= n && !faults.corrupted)
                {
                    tracing::info!(apdus = faults.apdus, "fault: corrupting this answer");
                    faults.corrupted = true;
                    answer.truncate(1);
                }
                if faults
                    .faults
                    .garbage_after
                    .is_some_and(|n| faults.apdus >= n && !faults.garbled)
                {
                    tracing::info!(apdus = faults.apdus, "fault: answering garbage");
                    faults.garbled = true;
                    *answer = garbage();
                }
                if faults
                    .faults
                    .endless_more_data_after
                    .is_some_and(|n| faults.apdus >= n)
                {
                    tracing::debug!(apdus = faults.apdus, "fault: more data, endlessly");
                    *answer = endless_more_data();
                }
                faults.apdus += 1;
                if !faults.faults.delay.is_zero() {
                    std::thread::sleep(faults.faults.delay);
                }
                Some(answer)
            }
        };
        if let Some(reply) = reply {
            let frame = zeroize::Zeroizing::new(
                encode_frame(&reply)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?,
            );
            stream.write_all(&frame)?;
        }
    }
}

/// Connects to vpcd at `addr` and serves `key` forever: reconnects with backoff (100 ms doubling
/// to 2 s) whenever pcscd is not there or goes away. Returns only when the `drop_after` fault
/// removed the card (the caller then keeps the card out), or on a bad address.
pub fn serve(
    addr: &str,
    key: &mut SoftKey,
    faults: Faults,
    on_apdu: &mut dyn FnMut(&mut SoftKey),
) -> io::Result<()> {
    let mut state = FaultState::new(faults);
    let mut backoff = Duration::from_millis(100);
    loop {
        let addrs: Vec<_> = addr.to_socket_addrs()?.collect();
        match TcpStream::connect(&addrs[..]) {
            Ok(mut stream) => {
                tracing::info!(%addr, serial = key.serial(), "card inserted into vpcd");
                backoff = Duration::from_millis(100);
                match serve_connection(&mut stream, key, &mut state, on_apdu) {
                    Ok(Ended::CardDropped) => return Ok(()),
                    Ok(Ended::PeerClosed) => tracing::info!(%addr, "vpcd closed the connection"),
                    Ok(Ended::Idle) => continue,
                    Err(e) => tracing::warn!(%addr, error = %e, "vpcd connection failed"),
                }
            }
            Err(e) => tracing::debug!(%addr, error = %e, "vpcd not reachable yet"),
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        assert_eq!(Message::parse(&[0]), Ok(Message::PowerOff));
        assert_eq!(Message::parse(&[1]), Ok(Message::PowerOn));
        assert_eq!(Message::parse(&[2]), Ok(Message::Reset));
        assert_eq!(Message::parse(&[4]), Ok(Message::GetAtr));
        assert_eq!(Message::parse(&[9]), Ok(Message::UnknownControl(9)));
        assert_eq!(
            Message::parse(&[0, 0xA4, 4, 0]),
            Ok(Message::Apdu(&[0, 0xA4, 4, 0]))
        );
        assert_eq!(Message::parse(&[]), Err(FrameError::Empty));
    }

    use std::net::TcpListener;

    use super::super::oath::{AutoTouch, OathState};
    use crate::token::management::FormFactor;

    fn send(s: &mut TcpStream, payload: &[u8]) {
        s.write_all(&encode_frame(payload).expect("fits"))
            .expect("send");
    }

    fn recv(s: &mut TcpStream) -> Vec<u8> {
        let mut buf = Vec::new();
        read_frame(s, &mut buf).expect("read").expect("a frame");
        buf
    }

    /// A fake vpcd driver on one side, the bridge serving a key on the other.
    fn bridge(faults: Faults) -> (TcpStream, std::thread::JoinHandle<(Ended, u64)>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let handle = std::thread::spawn(move || {
            let mut key = SoftKey::new(
                7,
                [5, 4, 3],
                FormFactor::UsbAKeychain,
                OathState::blank([0; 8]),
                Box::new(AutoTouch),
            );
            let mut stream = TcpStream::connect(addr).expect("connect");
            let mut state = FaultState::new(faults);
            let ended =
                serve_connection(&mut stream, &mut key, &mut state, &mut |_| {}).expect("serve");
            (ended, state.apdus())
        });
        let (driver, _) = listener.accept().expect("accept");
        (driver, handle)
    }

    const SELECT_PIV: [u8; 10] = [0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08];

    #[test]
    fn serves_atr_controls_and_apdus() {
        let (mut d, handle) = bridge(Faults::default());
        send(&mut d, &[CTRL_ATR]);
        assert_eq!(recv(&mut d), super::super::YUBIKEY5_ATR);
        // Power on, reset and off get no reply: the next frame answers the next request.
        send(&mut d, &[CTRL_ON]);
        send(&mut d, &[CTRL_RESET]);
        send(&mut d, &SELECT_PIV);
        let r = recv(&mut d);
        assert_eq!(r[r.len() - 2..], [0x90, 0x00]);
        send(&mut d, &[CTRL_OFF]);
        drop(d);
        assert_eq!(handle.join().expect("bridge"), (Ended::PeerClosed, 1));
    }

    #[test]
    fn drop_after_removes_the_card() {
        let (mut d, handle) = bridge(Faults {
            drop_after: Some(1),
            ..Faults::default()
        });
        send(&mut d, &SELECT_PIV);
        recv(&mut d);
        send(&mut d, &SELECT_PIV);
        let mut buf = Vec::new();
        assert!(matches!(read_frame(&mut d, &mut buf), Ok(None) | Err(_)));
        assert_eq!(handle.join().expect("bridge"), (Ended::CardDropped, 1));
    }

    #[test]
    fn corrupt_after_cuts_one_answer() {
        let (mut d, handle) = bridge(Faults {
            corrupt_after: Some(1),
            ..Faults::default()
        });
        send(&mut d, &SELECT_PIV);
        assert!(recv(&mut d).len() > 2);
        send(&mut d, &SELECT_PIV);
        assert_eq!(recv(&mut d).len(), 1);
        send(&mut d, &SELECT_PIV);
        assert!(recv(&mut d).len() > 2);
        drop(d);
        assert_eq!(handle.join().expect("bridge").1, 3);
    }

    #[test]
    fn endless_more_data_never_finishes_an_answer() {
        let (mut d, handle) = bridge(Faults {
            endless_more_data_after: Some(1),
            ..Faults::default()
        });
        send(&mut d, &SELECT_PIV);
        let first = recv(&mut d);
        assert_eq!(first[first.len() - 2..], [0x90, 0x00]);
        for _ in 0..3 {
            send(&mut d, &[0x00, 0xC0, 0x00, 0x00, 0x00]);
            let r = recv(&mut d);
            assert_eq!(r.len(), 257);
            assert_eq!(r[255..], [0x61, 0xFF]);
        }
        drop(d);
        assert_eq!(handle.join().expect("bridge").1, 4);
    }

    #[test]
    fn garbage_after_replaces_one_answer() {
        let (mut d, handle) = bridge(Faults {
            garbage_after: Some(1),
            ..Faults::default()
        });
        send(&mut d, &SELECT_PIV);
        let good = recv(&mut d);
        send(&mut d, &SELECT_PIV);
        let bad = recv(&mut d);
        assert_eq!(bad.len(), 34);
        assert_eq!(bad[32..], [0x90, 0x00]);
        assert_ne!(bad, good);
        send(&mut d, &SELECT_PIV);
        assert_eq!(recv(&mut d), good);
        drop(d);
        assert_eq!(handle.join().expect("bridge").1, 3);
    }

    #[test]
    fn frames_round_trip() {
        let f = encode_frame(&[1, 2, 3]).expect("fits");
        assert_eq!(f, [0, 3, 1, 2, 3]);
        assert_eq!(split_frame(&f), Ok(Some((&[1u8, 2, 3][..], 5))));
        assert_eq!(split_frame(&f[..4]), Ok(None));
        assert_eq!(split_frame(&[0]), Ok(None));
        assert_eq!(split_frame(&[0, 0]), Err(FrameError::Empty));
        assert!(matches!(
            encode_frame(&vec![0; MAX_PAYLOAD + 1]),
            Err(FrameError::TooLong { .. })
        ));
    }
}
