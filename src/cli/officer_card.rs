//! An officer's own YubiKey, through PC/SC: finding it (`--reader`, `--serial`, or the one
//! YubiKey present), reading its approval key in slot `9c`, generating one, and signing an
//! approval digest after VERIFY PIN. The card only moves bytes; custodyd checks everything.

use clap::Args;
use der::{Decode, Encode};

use super::client::read_secret;
use super::exit;
use super::ledger::Failure;
use crate::token::identity::yubikey_serial_and_version;
use crate::token::pcsc::{PcscCard, PcscContext};
use crate::token::piv::signing::{self, Evidence};
use crate::token::piv::{ManagementKey, Pin, PivSession};

/// Which YubiKey: `--reader` or `--serial`, or the only one present.
#[derive(Debug, Clone, Args)]
pub struct CardArgs {
    /// The PC/SC reader of your YubiKey (as `custody token scan` lists it).
    #[arg(long, value_name = "NAME", conflicts_with = "serial")]
    pub reader: Option<String>,
    /// The serial of your YubiKey (printed on it; `custody token scan` lists it).
    #[arg(long, value_name = "N", value_parser = super::client::parse_serial)]
    pub serial: Option<u32>,
}

/// An officer's YubiKey, connected.
pub(crate) struct OfficerCard {
    card: PcscCard,
    /// Its reader.
    pub(crate) reader: String,
    /// Its serial (the management applet's).
    pub(crate) serial: u32,
}

fn token_failure(what: &str, reader: &str, e: impl std::fmt::Display) -> Failure {
    Failure::new(
        exit::TOKEN,
        format!("{what} on the YubiKey in {reader}: {e}"),
    )
}

impl CardArgs {
    /// Finds and connects the YubiKey these arguments name.
    pub(crate) fn open(&self) -> Result<OfficerCard, Failure> {
        let pcscd = |e: crate::token::transport::TransportError| {
            Failure::new(
                exit::TOKEN,
                format!("pcscd: {e} (is pcscd running and your YubiKey plugged in?)"),
            )
        };
        let ctx = PcscContext::establish().map_err(pcscd)?;
        let readers = ctx.readers().map_err(pcscd)?;
        let mut found = Vec::new();
        for r in readers {
            if self.reader.as_ref().is_some_and(|want| *want != r) {
                continue;
            }
            // The `yubikey` crate opens its own connection: before ours.
            let Some((serial, _)) = yubikey_serial_and_version(&r) else {
                continue;
            };
            if self.serial.is_some_and(|s| s != serial) {
                continue;
            }
            found.push((r, serial));
        }
        let (reader, serial) = match found.len() {
            1 => found.remove(0),
            0 => {
                let which = match (&self.reader, self.serial) {
                    (Some(r), _) => format!("in reader {r}"),
                    (None, Some(s)) => format!("with serial {s}"),
                    (None, None) => "in any reader".to_owned(),
                };
                return Err(Failure::new(
                    exit::TOKEN,
                    format!(
                        "no YubiKey {which}: plug in your own YubiKey (custody token scan lists \
                         what pcscd sees)"
                    ),
                ));
            }
            _ => {
                let list: Vec<String> = found.iter().map(|(r, s)| format!("{s} in {r}")).collect();
                return Err(Failure::new(
                    exit::USAGE,
                    format!(
                        "more than one YubiKey is present ({}): name yours with --serial N or \
                         --reader NAME",
                        list.join(", ")
                    ),
                ));
            }
        };
        let card = ctx
            .connect(&reader)
            .map_err(|e| token_failure("connecting", &reader, e))?;
        Ok(OfficerCard {
            card,
            reader,
            serial,
        })
    }
}

/// The SubjectPublicKeyInfo (DER) an attestation certificate names.
fn certified_spki(reader: &str, cert: &[u8]) -> Result<Vec<u8>, Failure> {
    let c = x509_cert::Certificate::from_der(cert)
        .map_err(|e| token_failure("reading the slot 9c attestation", reader, e))?;
    c.tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| token_failure("reading the slot 9c attestation", reader, e))
}

/// A card's refusal in words: a wrong PIV PIN says the tries left and what to do, a blocked
/// one how to unblock it, an empty slot 9c which YubiKey to use; anything else is
/// [`token_failure`]. The PIN is never in it.
fn card_failure(what: &str, reader: &str, serial: u32, e: crate::token::TokenError) -> Failure {
    use crate::token::apdu::StatusWord;
    const VERIFY: u8 = 0x20;
    const ATTEST: u8 = 0xF9;
    let blocked = || {
        Failure::new(
            exit::TOKEN,
            format!(
                "the PIV PIN of YubiKey {serial} is blocked (too many wrong PINs): {what} was not \
                 done; unblock it with its PUK (ykman piv access unblock-pin), then run this again"
            ),
        )
    };
    match &e {
        crate::token::TokenError::Refused {
            ins: VERIFY,
            sw: StatusWord::TriesLeft(0) | StatusWord::AuthMethodBlocked,
            ..
        } => blocked(),
        crate::token::TokenError::Refused {
            ins: VERIFY,
            sw: StatusWord::TriesLeft(n),
            ..
        } => Failure::new(
            exit::TOKEN,
            format!(
                "wrong PIV PIN for YubiKey {serial}: {n} tries left before it is blocked; {what} \
                 was not done: run this again with the PIN of YubiKey {serial}"
            ),
        )
        .with(PIN_TRIES_LEFT, *n),
        crate::token::TokenError::Refused {
            ins: ATTEST,
            sw: StatusWord::ReferencedDataNotFound,
            ..
        } => Failure::new(
            exit::TOKEN,
            format!(
                "YubiKey {serial} (in {reader}) holds no approval key in slot 9c: use the \
                 YubiKey you registered with custody user key register, or make a key on this \
                 one with custody user key register OFFICER --witness OFFICER --generate"
            ),
        ),
        _ => token_failure(what, reader, e),
    }
}

/// The field of a wrong PIV PIN's failure (and of its `--json` error object) that holds the
/// tries left before the PIN is blocked.
const PIN_TRIES_LEFT: &str = "pin_tries_left";

/// The tries left when `f` is a wrong PIV PIN that did not block the PIN: the PIN may be
/// asked again.
pub(crate) fn pin_tries_left(f: &Failure) -> Option<u64> {
    f.detail
        .get(PIN_TRIES_LEFT)
        .and_then(serde_json::Value::as_u64)
        .filter(|n| *n > 0)
}

/// A PIV PIN typed as `text`; `whose` names it in the error ("carol's PIV PIN").
pub(crate) fn pin_from(text: &str, whose: &str) -> Result<Pin, Failure> {
    Pin::new(zeroize::Zeroizing::new(text.as_bytes().to_vec()))
        .map_err(|e| Failure::new(exit::USAGE, format!("{whose}: {e}")))
}

/// SHA-256 hex of a SubjectPublicKeyInfo: the id custodyd gives an approval key.
pub(crate) fn key_id(spki: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(ring::digest::digest(&ring::digest::SHA256, spki).as_ref())
}

/// What registration sends of an approval key.
pub(crate) struct KeyShown {
    /// The key's SubjectPublicKeyInfo (DER), as its attestation names it.
    pub(crate) spki: Vec<u8>,
    /// ATTEST of `9c` and the F9 certificate.
    pub(crate) evidence: Evidence,
}

impl OfficerCard {
    fn session<R>(
        &mut self,
        what: &str,
        f: impl FnOnce(
            &mut PivSession<&mut crate::token::pcsc::PcscTransaction<'_>>,
        ) -> Result<R, crate::token::TokenError>,
    ) -> Result<R, Failure> {
        let reader = self.reader.clone();
        self.card
            .with_transaction(|tx| {
                let mut s = PivSession::select(tx)?;
                f(&mut s)
            })
            .map_err(|e| token_failure(what, &reader, e))?
            .map_err(|e| card_failure(what, &reader, self.serial, e))
    }

    /// The approval key in `9c` (ATTEST, so no PIN): its SubjectPublicKeyInfo and evidence.
    pub(crate) fn approval_key(&mut self) -> Result<KeyShown, Failure> {
        let evidence = self.session("reading the approval key in slot 9c", |s| {
            signing::evidence(s)
        })?;
        let spki = certified_spki(&self.reader, &evidence.slot_cert)?;
        Ok(KeyShown { spki, evidence })
    }

    /// Generates a new approval key in `9c`, authenticating with `management_key` (the card's
    /// own algorithm; the factory key when none), then reads it as
    /// [`OfficerCard::approval_key`].
    pub(crate) fn generate(
        &mut self,
        management_key: Option<zeroize::Zeroizing<Vec<u8>>>,
    ) -> Result<KeyShown, Failure> {
        let algorithm = self.session("reading the PIV management key's algorithm", |s| {
            s.management_algorithm()
        })?;
        let key = match management_key {
            Some(bytes) => ManagementKey::new(algorithm, bytes),
            None => ManagementKey::factory_default(algorithm),
        }
        .map_err(|e| {
            Failure::new(
                exit::USAGE,
                format!("the PIV management key for YubiKey {}: {e}", self.serial),
            )
        })?;
        let point = self.session("generating an approval key in slot 9c", |s| {
            signing::generate(s, &key)
        })?;
        let shown = self.approval_key()?;
        let same = crate::token::piv::custody::spki_point(&shown.spki) == Some(&point[..]);
        if !same {
            return Err(Failure::new(
                exit::TOKEN,
                format!(
                    "the YubiKey in {} attests another key than the one it just generated: \
                     generate again, or use another YubiKey",
                    self.reader
                ),
            ));
        }
        Ok(shown)
    }

    /// VERIFYs `pin` and signs `digest` with the key in `9c` (the card waits for a touch);
    /// `verified` runs once the PIN is accepted, before the card waits (to ask for the touch).
    pub(crate) fn sign(
        &mut self,
        pin: &Pin,
        digest: &[u8; 32],
        verified: impl FnOnce(),
    ) -> Result<Vec<u8>, Failure> {
        self.session("signing the approval", |s| {
            signing::sign_when_verified(s, pin, digest, verified)
        })
    }
}

/// Reads the PIV PIN from `--pin-fd` or a no-echo prompt.
pub(crate) fn read_pin(fd: Option<u32>, serial: u32) -> Result<Pin, Failure> {
    let text = read_secret(fd, &format!("PIV PIN of YubiKey {serial}: "))?;
    Pin::new(zeroize::Zeroizing::new(text.as_bytes().to_vec()))
        .map_err(|e| Failure::new(exit::USAGE, e.to_string()))
}

/// Reads a PIV management key (hex digits on one line) from `fd`.
pub(crate) fn read_management_key(fd: u32) -> Result<zeroize::Zeroizing<Vec<u8>>, Failure> {
    let text = read_secret(Some(fd), "PIV management key: ")?;
    data_encoding::HEXLOWER_PERMISSIVE
        .decode(text.trim().as_bytes())
        .map(zeroize::Zeroizing::new)
        .map_err(|_| {
            Failure::new(
                exit::USAGE,
                format!(
                    "file descriptor {fd}: the PIV management key is not hex; give it as hex \
                     digits on one line (48 for a 24-byte key)"
                ),
            )
        })
}

/// The officer's own YubiKey holding approval key `key_id` in `9c`, among every YubiKey
/// present (each officer of a two-officer operation signs on their own, plugged in side by
/// side). `by_totp` says how the officer proves themselves by TOTP instead, for the error
/// when no YubiKey present holds the key.
pub(crate) fn open_holding(
    officer: &str,
    key_id: &str,
    by_totp: &str,
) -> Result<OfficerCard, Failure> {
    let ctx = PcscContext::establish().map_err(|e| {
        Failure::new(
            exit::TOKEN,
            format!("pcscd: {e} (is pcscd running and {officer}'s YubiKey plugged in?)"),
        )
    })?;
    let readers = ctx
        .readers()
        .map_err(|e| Failure::new(exit::TOKEN, format!("pcscd: {e} (listing readers)")))?;
    drop(ctx);
    let mut seen = Vec::new();
    for reader in readers {
        let args = CardArgs {
            reader: Some(reader),
            serial: None,
        };
        let Ok(mut card) = args.open() else {
            continue;
        };
        match card.approval_key() {
            Ok(k) if self::key_id(&k.spki) == key_id => return Ok(card),
            _ => seen.push(card.serial.to_string()),
        }
    }
    Err(Failure::refused(
        exit::FAILED,
        crate::daemon::protocol::RefusalCode::SigningKeyNotRegistered,
        format!(
            "no YubiKey present holds {officer}'s registered approval key {key_id} (YubiKeys \
             present: {}): plug in the YubiKey {officer} registered, or {by_totp}",
            if seen.is_empty() {
                "none".to_owned()
            } else {
                seen.join(", ")
            }
        ),
    ))
}

/// Has each `--sign` officer of a two-officer operation sign `intent` with their own
/// YubiKey: a challenge from custodyd for the operation's digest (passphrase only), the card
/// holding their registered key found, the PIV PIN read from `pins` (or a prompt naming the
/// officer), a touch. Fills `signed` of each of their `by` entries and clears `factor`.
pub(crate) fn sign_operation(
    socket: &std::path::Path,
    intent: &crate::custody::OperationIntent,
    by: &mut [crate::daemon::protocol::Auth],
    signers: &[String],
    pins: &mut super::client::SecretLines,
) -> Result<(), Failure> {
    use crate::custody::records::{signed_approval_digest, signed_presence_message};
    use crate::daemon::protocol::{Auth, Op, Reply, SignedApproval};

    let digest = intent.digest();
    let shown: Vec<String> = intent
        .parameters()
        .iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    eprintln!(
        "Signing: {} {} (digest {digest})",
        intent.operation(),
        shown.join(" ")
    );
    for auth in by.iter_mut().filter(|a| signers.contains(&a.user)) {
        let officer = auth.user.clone();
        let Some(passphrase) = auth.passphrase.clone() else {
            return Err(Failure::new(
                exit::USAGE,
                format!("{officer}: a signature goes with the passphrase"),
            ));
        };
        let (key_id, nonce) = match super::client::call(
            socket,
            Op::PresenceChallenge {
                by: Auth::new(officer.clone(), passphrase, None),
                digest: digest.clone(),
            },
        )? {
            Reply::PresenceChallenge { key_id, nonce, .. } => (key_id, nonce),
            other => {
                return Err(Failure::new(
                    exit::IO,
                    format!("custodyd answered presence_challenge with {other:?}"),
                ))
            }
        };
        let mut card = open_holding(
            &officer,
            &key_id,
            &format!("prove {officer} by TOTP (leave out --sign {officer})"),
        )?;
        let text = pins.next(&format!("PIV PIN of {officer}'s YubiKey {}: ", card.serial))?;
        let pin = pin_from(text.expose(), &format!("{officer}'s PIV PIN"))?;
        drop(text);
        let message = signed_presence_message(&digest, &officer, &key_id, &nonce);
        let mut to_sign = [0u8; 32];
        to_sign.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, &message).as_ref());
        let (serial, reader) = (card.serial, card.reader.clone());
        let signature = card.sign(&pin, &to_sign, || {
            eprintln!(
                "{officer}: touch your YubiKey {serial} (in {reader}) now to sign (signed digest \
                 {}).",
                signed_approval_digest(&message)
            );
        })?;
        drop(pin);
        auth.factor = None;
        auth.signed = Some(SignedApproval {
            key_id,
            nonce,
            signature: data_encoding::BASE64.encode(&signature),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_is_the_sha256_hex_of_the_spki() {
        // FIPS 180-2, SHA-256 of "abc".
        assert_eq!(
            key_id(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn an_attestation_that_is_not_a_certificate_is_a_token_error_naming_the_reader() {
        let e = certified_spki("Yubico YubiKey 00 00", &[0x30, 0x03, 0x02, 0x01])
            .expect_err("not a certificate");
        assert_eq!(e.status, exit::TOKEN);
        assert!(e.message.contains("Yubico YubiKey 00 00"), "{}", e.message);
        assert!(e.message.contains("slot 9c attestation"), "{}", e.message);
    }
}
