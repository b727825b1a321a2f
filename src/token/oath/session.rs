//! A thin YKOATH session over any [`CardTransport`]: [`OathSession::select`] returns either a
//! usable [`OathSession`] or, when the applet is protected by an access password, a
//! [`LockedOathSession`] whose only way forward is [`LockedOathSession::validate`]. Operations
//! that need authentication exist only on [`OathSession`], so calling them on a locked applet
//! does not compile.

use std::fmt;

use ring::rand::{SecureRandom, SystemRandom};

use super::*;
use crate::token::apdu::{Command, Response, StatusWord};
use crate::token::error::TokenError;
use crate::token::transport::CardTransport;

/// The applet after SELECT, when it needs no password or has been validated: every operation is
/// available.
pub struct OathSession<T: CardTransport> {
    transport: T,
    info: SelectInfo,
}

/// The applet after SELECT when an access key is set: only [`validate`](Self::validate) and
/// [`reset`](Self::reset) are possible.
pub struct LockedOathSession<T: CardTransport> {
    transport: T,
    info: SelectInfo,
}

/// The outcome of SELECT.
pub enum Selected<T: CardTransport> {
    /// No access key set: ready.
    Ready(OathSession<T>),
    /// An access key is set: VALIDATE first.
    Locked(LockedOathSession<T>),
}

impl<T: CardTransport> fmt::Debug for OathSession<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OathSession")
            .field("reader", &self.transport.reader())
            .field("info", &self.info)
            .finish()
    }
}

impl<T: CardTransport> fmt::Debug for LockedOathSession<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockedOathSession")
            .field("reader", &self.transport.reader())
            .field("info", &self.info)
            .finish()
    }
}

impl<T: CardTransport> fmt::Debug for Selected<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ready(s) => s.fmt(f),
            Self::Locked(s) => s.fmt(f),
        }
    }
}

/// Sends `command` as the session does: chaining, `61xx` followed with SEND REMAINING, and any
/// final status word but `9000` turned into [`TokenError::Refused`] (keeping the named word).
pub fn transact<T: CardTransport + ?Sized>(
    transport: &mut T,
    command: &Command,
) -> Result<Response, TokenError> {
    crate::token::transport::transact(transport, command, ins::SEND_REMAINING)
}

fn malformed<T: CardTransport + ?Sized>(transport: &T, ins: u8, e: OathError) -> TokenError {
    TokenError::Malformed {
        reader: transport.reader().to_owned(),
        ins,
        what: e.to_string(),
    }
}

fn random_challenge<T: CardTransport + ?Sized>(
    transport: &T,
    ins: u8,
) -> Result<[u8; 8], TokenError> {
    let mut c = [0u8; 8];
    SystemRandom::new()
        .fill(&mut c)
        .map_err(|_| TokenError::Malformed {
            reader: transport.reader().to_owned(),
            ins,
            what: "the system random generator failed; no host challenge".to_owned(),
        })?;
    Ok(c)
}

fn do_select<T: CardTransport>(mut transport: T) -> Result<Selected<T>, TokenError> {
    let response = transact(&mut transport, &select())?;
    let info = parse_select(&response.data).map_err(|e| malformed(&transport, ins::SELECT, e))?;
    Ok(if info.locked() {
        Selected::Locked(LockedOathSession { transport, info })
    } else {
        Selected::Ready(OathSession { transport, info })
    })
}

fn do_reset<T: CardTransport>(mut transport: T) -> Result<OathSession<T>, TokenError> {
    transact(&mut transport, &reset())?;
    match do_select(transport)? {
        Selected::Ready(s) => Ok(s),
        Selected::Locked(s) => Err(TokenError::Malformed {
            reader: s.transport.reader().to_owned(),
            ins: ins::SELECT,
            what: "the applet still asks for a password after RESET".to_owned(),
        }),
    }
}

impl<T: CardTransport> Selected<T> {
    /// The SELECT answer.
    pub fn info(&self) -> &SelectInfo {
        match self {
            Self::Ready(s) => &s.info,
            Self::Locked(s) => &s.info,
        }
    }

    /// A usable session: ready as is, or after VALIDATE with `key` when locked (no key given
    /// for a locked applet answers like the card would, with `6982`).
    pub fn unlock(self, key: Option<&AccessKey>) -> Result<OathSession<T>, TokenError> {
        match (self, key) {
            (Self::Ready(s), _) => Ok(s),
            (Self::Locked(s), Some(key)) => s.validate(key),
            (Self::Locked(s), None) => Err(TokenError::Refused {
                reader: s.transport.reader().to_owned(),
                ins: ins::VALIDATE,
                sw: StatusWord::SecurityStatusNotSatisfied,
            }),
        }
    }
}

impl<T: CardTransport> LockedOathSession<T> {
    /// The SELECT answer (salt for the key derivation, challenge).
    pub fn info(&self) -> &SelectInfo {
        &self.info
    }

    /// Mutual authentication: answers the card's challenge with `key` and checks the card's
    /// answer to a fresh host challenge. A wrong key is refused by the card (`6A80`); a card
    /// whose answer is wrong is reported as malformed. The challenge is spent either way: pass
    /// the transport by `&mut` to SELECT again after a failure.
    pub fn validate(mut self, key: &AccessKey) -> Result<OathSession<T>, TokenError> {
        let algorithm = self.info.algorithm.unwrap_or(HashAlgorithm::Sha1);
        let card_challenge = self.info.challenge.unwrap_or_default();
        let host_challenge = random_challenge(&self.transport, ins::VALIDATE)?;
        let response = transact(
            &mut self.transport,
            &validate(key, algorithm, &card_challenge, &host_challenge),
        )?;
        verify_validate(key, algorithm, &host_challenge, &response.data)
            .map_err(|e| malformed(&self.transport, ins::VALIDATE, e))?;
        Ok(OathSession {
            transport: self.transport,
            info: self.info,
        })
    }

    /// RESET (allowed without the password): wipes every credential and the password, then
    /// selects the applet again.
    pub fn reset(self) -> Result<OathSession<T>, TokenError> {
        do_reset(self.transport)
    }

    /// Gives the transport back.
    pub fn into_transport(self) -> T {
        self.transport
    }
}

impl<T: CardTransport> OathSession<T> {
    /// SELECTs the OATH applet.
    pub fn select(transport: T) -> Result<Selected<T>, TokenError> {
        do_select(transport)
    }

    /// The SELECT answer (version, salt, device id).
    pub fn info(&self) -> &SelectInfo {
        &self.info
    }

    /// Gives the transport back.
    pub fn into_transport(self) -> T {
        self.transport
    }

    fn parsed<V>(
        &mut self,
        command: &Command,
        parse: impl FnOnce(&[u8]) -> Result<V, OathError>,
    ) -> Result<V, TokenError> {
        let response = transact(&mut self.transport, command)?;
        parse(&response.data).map_err(|e| malformed(&self.transport, command.ins, e))
    }

    /// LIST.
    pub fn list(&mut self) -> Result<Vec<ListEntry>, TokenError> {
        self.parsed(&list(), parse_list)
    }

    /// PUT (adds, or overwrites a credential of the same name).
    pub fn put(&mut self, request: &PutRequest) -> Result<(), TokenError> {
        transact(&mut self.transport, &request.command()).map(drop)
    }

    /// DELETE.
    pub fn delete(&mut self, name: &CredentialName) -> Result<(), TokenError> {
        transact(&mut self.transport, &delete(name)).map(drop)
    }

    /// RENAME.
    pub fn rename(&mut self, old: &CredentialName, new: &CredentialName) -> Result<(), TokenError> {
        transact(&mut self.transport, &rename(old, new)).map(drop)
    }

    /// CALCULATE with an explicit challenge, truncated to a code.
    pub fn calculate(
        &mut self,
        name: &CredentialName,
        challenge: &[u8],
    ) -> Result<Code, TokenError> {
        self.parsed(&calculate(name, challenge, true), parse_calculate_truncated)
    }

    /// CALCULATE a TOTP credential for time step `step`.
    pub fn calculate_totp(
        &mut self,
        name: &CredentialName,
        step: TimeStep,
    ) -> Result<Code, TokenError> {
        self.calculate(name, &step.challenge())
    }

    /// CALCULATE a HOTP credential (the card uses and advances its counter).
    pub fn calculate_hotp(&mut self, name: &CredentialName) -> Result<Code, TokenError> {
        self.calculate(name, &[])
    }

    /// CALCULATE, full HMAC answer.
    pub fn calculate_full(
        &mut self,
        name: &CredentialName,
        challenge: &[u8],
    ) -> Result<FullResponse, TokenError> {
        self.parsed(&calculate(name, challenge, false), parse_calculate_full)
    }

    /// CALCULATE ALL for time step `step` (TOTP codes; HOTP and touch credentials are only
    /// named).
    pub fn calculate_all(&mut self, step: TimeStep) -> Result<Vec<CalculateAllEntry>, TokenError> {
        self.parsed(&calculate_all(&step.challenge()), parse_calculate_all)
    }

    /// SET CODE: protects the applet with `key` (derive it with [`AccessKey::derive`] from the
    /// password and [`SelectInfo::salt`]). This session stays usable.
    pub fn set_code(&mut self, key: &AccessKey) -> Result<(), TokenError> {
        let challenge = random_challenge(&self.transport, ins::SET_CODE)?;
        transact(&mut self.transport, &set_code(key, &challenge)).map(drop)
    }

    /// SET CODE with no key: removes the password.
    pub fn unset_code(&mut self) -> Result<(), TokenError> {
        transact(&mut self.transport, &unset_code()).map(drop)
    }

    /// RESET: wipes every credential and the password, then selects the applet again (the salt,
    /// and so the device id, changes).
    pub fn reset(self) -> Result<OathSession<T>, TokenError> {
        do_reset(self.transport)
    }
}
