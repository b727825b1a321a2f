//! Why an attestation was refused: one variant per check, each naming the certificate that
//! failed (by its role and its subject, never by its bytes) and what an operator does next.

use std::fmt;

use super::PivSlot;

/// Which certificate of an attestation a check is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertRole {
    /// The slot's attestation certificate (the answer to PIV ATTEST, instruction F9).
    Slot,
    /// The device's attestation certificate, read from slot F9.
    Device,
    /// An intermediate between the device certificate and a trust anchor, by its position in
    /// the `extra_intermediates` given to [`super::verify_attestation`] (0-based); Yubico's
    /// published intermediates, which the anchors carry, are [`CertRole::PublishedIntermediate`].
    Intermediate(usize),
    /// One of the intermediates the trust anchors carry (Yubico's published ones).
    PublishedIntermediate,
    /// A trust anchor.
    Anchor,
}

impl fmt::Display for CertRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Slot => f.write_str("the slot attestation certificate"),
            Self::Device => f.write_str("the device attestation certificate (slot F9)"),
            Self::Intermediate(i) => write!(f, "intermediate certificate #{i}"),
            Self::PublishedIntermediate => f.write_str("a published intermediate certificate"),
            Self::Anchor => f.write_str("a trust anchor"),
        }
    }
}

/// A Yubico attestation extension (OID arc `1.3.6.1.4.1.41482.3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum YubicoExtension {
    /// `.3.3`: firmware version.
    Firmware,
    /// `.3.7`: serial number.
    Serial,
    /// `.3.8`: PIN and touch policy.
    Policy,
    /// `.3.9`: form factor.
    FormFactor,
}

impl YubicoExtension {
    /// The extension's OID in dotted form.
    pub fn oid(self) -> &'static str {
        match self {
            Self::Firmware => "1.3.6.1.4.1.41482.3.3",
            Self::Serial => "1.3.6.1.4.1.41482.3.7",
            Self::Policy => "1.3.6.1.4.1.41482.3.8",
            Self::FormFactor => "1.3.6.1.4.1.41482.3.9",
        }
    }
}

impl fmt::Display for YubicoExtension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Firmware => "firmware version",
            Self::Serial => "serial number",
            Self::Policy => "PIN and touch policy",
            Self::FormFactor => "form factor",
        };
        write!(f, "{name} ({})", self.oid())
    }
}

/// Why an attestation was not accepted. Every variant names the certificate by its role and
/// subject (sanitised, shortened); none carries certificate bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttestationError {
    /// The bytes are not one DER X.509 certificate.
    #[error("{role} is not a DER X.509 certificate ({reason}); read it from the key again")]
    Malformed {
        /// Which certificate.
        role: CertRole,
        /// What the parser found.
        reason: String,
    },
    /// More certificates, or larger ones, than any YubiKey attestation has.
    #[error("{what}: an attestation never needs this much; refusing it")]
    TooLarge {
        /// What was too large.
        what: String,
    },
    /// A PEM bundle of trust anchors could not be read.
    #[error(
        "the trust anchors could not be read as PEM certificates ({reason}); check the anchor file"
    )]
    AnchorPem {
        /// What the parser found.
        reason: String,
    },
    /// The slot certificate was not issued by the device certificate (issuer and subject differ).
    #[error("{role} {subject:?} names {issuer:?} as its issuer, but it was presented with {presented:?}; read both certificates from the same key again")]
    BrokenLink {
        /// The certificate whose issuer does not match.
        role: CertRole,
        /// Its subject.
        subject: String,
        /// The issuer it names.
        issuer: String,
        /// The subject of the certificate presented as its issuer.
        presented: String,
    },
    /// A signature does not verify with its issuer's key.
    #[error("the signature on {role} {subject:?} does not verify with the key of {issuer:?}: it was altered or not issued by it; do not register this key")]
    BadSignature {
        /// The certificate whose signature failed.
        role: CertRole,
        /// Its subject.
        subject: String,
        /// The certificate whose key was used.
        issuer: String,
    },
    /// A signature or key algorithm this verifier does not accept.
    #[error("{role} {subject:?} uses {what} {oid}, which a YubiKey attestation does not use; refusing it")]
    UnsupportedAlgorithm {
        /// Which certificate.
        role: CertRole,
        /// Its subject.
        subject: String,
        /// What kind of algorithm (signature, issuer key).
        what: &'static str,
        /// The algorithm's OID.
        oid: String,
    },
    /// No trust anchor (and no known intermediate) issued this certificate.
    #[error("{role} {subject:?} was issued by {issuer:?}, which is not a trusted anchor and not a known intermediate: this is not a genuine YubiKey attestation (or its F9 certificate was replaced); do not register this key")]
    UntrustedIssuer {
        /// The topmost certificate that could be linked.
        role: CertRole,
        /// Its subject.
        subject: String,
        /// The issuer no anchor matches.
        issuer: String,
    },
    /// The chain goes on longer than any Yubico hierarchy.
    #[error("the chain above {subject:?} is longer than {max} certificates; refusing it")]
    ChainTooLong {
        /// The last certificate reached.
        subject: String,
        /// The most certificates between the device certificate and an anchor.
        max: usize,
    },
    /// An intermediate that is not a certificate authority.
    #[error("{role} {subject:?} signs other certificates but is not a certificate authority (basic constraints); refusing the chain")]
    NotACa {
        /// Which certificate.
        role: CertRole,
        /// Its subject.
        subject: String,
    },
    /// A certificate outside its validity window at `now`.
    #[error("{role} {subject:?} is valid from {not_before} to {not_after}, not at {now}; check the host's clock, then the key")]
    OutsideValidity {
        /// Which certificate.
        role: CertRole,
        /// Its subject.
        subject: String,
        /// Its notBefore.
        not_before: String,
        /// Its notAfter.
        not_after: String,
        /// The time the check was made at.
        now: String,
    },
    /// The same extension appears twice (RFC 5280 section 4.2 forbids it).
    #[error("{role} {subject:?} carries extension {oid} twice; refusing it")]
    DuplicateExtension {
        /// Which certificate.
        role: CertRole,
        /// Its subject.
        subject: String,
        /// The repeated extension.
        oid: String,
    },
    /// A critical extension this verifier does not understand (RFC 5280 section 4.2).
    #[error("{role} {subject:?} carries critical extension {oid}, which this verifier does not understand; refusing it")]
    UnknownCriticalExtension {
        /// Which certificate.
        role: CertRole,
        /// Its subject.
        subject: String,
        /// The extension.
        oid: String,
    },
    /// A Yubico extension every attestation of a custody key must carry is missing.
    #[error("the slot attestation certificate carries no {extension}: it comes from firmware too old to attest it, or it is not a YubiKey attestation")]
    MissingExtension {
        /// The missing extension.
        extension: YubicoExtension,
    },
    /// A Yubico extension whose content does not follow Yubico's documented encoding.
    #[error("the slot attestation certificate's {extension} is not in Yubico's documented encoding: {reason}")]
    GarbledExtension {
        /// The extension.
        extension: YubicoExtension,
        /// What was wrong.
        reason: String,
    },
    /// The slot certificate's subject is not `YubiKey PIV Attestation <slot>`.
    #[error("the slot attestation certificate's subject {subject:?} is not \"CN=YubiKey PIV Attestation <slot>\"; it is not a YubiKey slot attestation")]
    NotASlotAttestation {
        /// The subject found.
        subject: String,
    },
    /// The attestation is for another slot than the one asked about.
    #[error(
        "the attestation is for slot {attested}, not slot {expected}; attest slot {expected} again"
    )]
    SlotMismatch {
        /// The slot asked about.
        expected: PivSlot,
        /// The slot the certificate names.
        attested: PivSlot,
    },
    /// The attested serial is not the one the management applet reported.
    #[error("the attestation names serial {attested}, but the key reports serial {expected}: the attestation belongs to another device; do not register this key")]
    SerialMismatch {
        /// The serial the management applet reported.
        expected: u32,
        /// The serial in the attestation.
        attested: u32,
    },
}

/// A name from a certificate, fit for a screen and a log line: control, bidi and zero-width
/// characters become `\u{..}` escapes and it is cut to 120 characters.
pub(crate) fn printable(name: &str) -> String {
    const MAX: usize = 120;
    let mut out = String::new();
    for (count, c) in name.chars().enumerate() {
        if count == MAX {
            out.push('…');
            break;
        }
        let invisible = c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}');
        if invisible {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}
