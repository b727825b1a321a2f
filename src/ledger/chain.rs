//! Hash chain and signed checkpoints.
//!
//! ```text
//! body_hash = SHA-256("mfa-custody/ledger/body/v1\0" ‖ body bytes)
//! hash      = SHA-256("mfa-custody/ledger/event/v1\0"
//!                     ‖ seq u64 BE ‖ prev (32 bytes) ‖ time i64 BE (ms, UTC)
//!                     ‖ len(actor) u32 BE ‖ actor UTF-8 ‖ len(kind) u32 BE ‖ kind UTF-8
//!                     ‖ body_hash (32 bytes))
//! checkpoint signature = Ed25519("mfa-custody/ledger/checkpoint/v1\0"
//!                     ‖ ledger id (16 bytes) ‖ seq u64 BE ‖ head (32 bytes) ‖ time i64 BE)
//! ```
//! The hash covers the body only through `body_hash`, so a stub without its body still links.

use std::fmt;

use data_encoding::HEXLOWER;
use ring::digest::{Context, SHA256};
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use zeroize::Zeroizing;

use super::event::{Actor, Kind, Timestamp};

const BODY_TAG: &[u8] = b"mfa-custody/ledger/body/v1\0";
const EVENT_TAG: &[u8] = b"mfa-custody/ledger/event/v1\0";
const CHECKPOINT_TAG: &[u8] = b"mfa-custody/ledger/checkpoint/v1\0";

/// A SHA-256 value in the chain.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The `prev` of the first event.
    pub const ZERO: Hash = Hash([0; 32]);

    /// Parses 64 lower-case hex digits.
    pub fn from_hex(s: &str) -> Option<Self> {
        let bytes = HEXLOWER.decode(s.as_bytes()).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }

    /// Parses a 32-byte slice.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        Some(Self(bytes.try_into().ok()?))
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        HEXLOWER.encode(&self.0)
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The 16-byte random identity of a ledger.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LedgerId(pub [u8; 16]);

impl LedgerId {
    /// Parses 32 lower-case hex digits.
    pub fn from_hex(s: &str) -> Option<Self> {
        let bytes = HEXLOWER.decode(s.as_bytes()).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        HEXLOWER.encode(&self.0)
    }
}

impl fmt::Debug for LedgerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Display for LedgerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Hash of a body's bytes.
pub fn body_hash(body: &[u8]) -> Hash {
    let mut ctx = Context::new(&SHA256);
    ctx.update(BODY_TAG);
    ctx.update(body);
    digest32(ctx)
}

/// Hash of an event from its fields (see the module docs for the encoding).
pub fn event_hash(
    seq: u64,
    prev: &Hash,
    time: Timestamp,
    actor: &Actor,
    kind: &Kind,
    body_hash: &Hash,
) -> Hash {
    event_hash_of(seq, prev, time, actor.as_str(), kind.as_str(), body_hash)
}

/// [`event_hash`] of an actor and a kind read as text (checked by [`Actor::check`] and
/// [`Kind::check`] before their event counts as valid).
pub(crate) fn event_hash_of(
    seq: u64,
    prev: &Hash,
    time: Timestamp,
    actor: &str,
    kind: &str,
    body_hash: &Hash,
) -> Hash {
    let mut ctx = Context::new(&SHA256);
    ctx.update(EVENT_TAG);
    ctx.update(&seq.to_be_bytes());
    ctx.update(&prev.0);
    ctx.update(&time.0.to_be_bytes());
    update_prefixed(&mut ctx, actor.as_bytes());
    update_prefixed(&mut ctx, kind.as_bytes());
    ctx.update(&body_hash.0);
    digest32(ctx)
}

fn update_prefixed(ctx: &mut Context, bytes: &[u8]) {
    // Actors and kinds are at most 128 bytes (checked by their parsers), so this never saturates.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    ctx.update(&len.to_be_bytes());
    ctx.update(bytes);
}

fn digest32(ctx: Context) -> Hash {
    let d = ctx.finish();
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    Hash(out)
}

/// What a checkpoint asserts: this ledger's chain had this head at this seq.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The ledger.
    pub ledger_id: LedgerId,
    /// Seq of the head event.
    pub seq: u64,
    /// Hash of the head event.
    pub head: Hash,
    /// When the checkpoint was made.
    pub time: Timestamp,
}

impl Checkpoint {
    /// The exact bytes that are signed.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut m = Vec::with_capacity(CHECKPOINT_TAG.len() + 16 + 8 + 32 + 8);
        m.extend_from_slice(CHECKPOINT_TAG);
        m.extend_from_slice(&self.ledger_id.0);
        m.extend_from_slice(&self.seq.to_be_bytes());
        m.extend_from_slice(&self.head.0);
        m.extend_from_slice(&self.time.0.to_be_bytes());
        m
    }
}

/// A checkpoint with its Ed25519 signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// What is asserted.
    pub checkpoint: Checkpoint,
    /// Ed25519 signature over [`Checkpoint::signed_bytes`].
    pub signature: [u8; 64],
}

impl SignedCheckpoint {
    /// Checks the signature against a public key.
    pub fn verify(&self, key: &CheckpointPublicKey) -> bool {
        UnparsedPublicKey::new(&ED25519, &key.0)
            .verify(&self.checkpoint.signed_bytes(), &self.signature)
            .is_ok()
    }
}

/// The Ed25519 public key auditors pin to verify checkpoints.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CheckpointPublicKey(pub [u8; 32]);

impl CheckpointPublicKey {
    /// Parses 64 hex digits or unpadded/padded base64 of 32 bytes.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let bytes = HEXLOWER
            .decode(s.to_ascii_lowercase().as_bytes())
            .ok()
            .or_else(|| data_encoding::BASE64.decode(s.as_bytes()).ok())
            .or_else(|| data_encoding::BASE64_NOPAD.decode(s.as_bytes()).ok())?;
        Some(Self(bytes.try_into().ok()?))
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        HEXLOWER.encode(&self.0)
    }

    /// Padded base64.
    pub fn to_base64(&self) -> String {
        data_encoding::BASE64.encode(&self.0)
    }

    /// First 16 bytes of SHA-256 of the key, as eight colon-separated groups of four hex digits.
    pub fn fingerprint(&self) -> String {
        let d = ring::digest::digest(&SHA256, &self.0);
        let hex = HEXLOWER.encode(d.as_ref().get(..16).unwrap_or_default());
        hex.as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(":")
    }
}

impl fmt::Debug for CheckpointPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CheckpointPublicKey({})", self.to_hex())
    }
}

/// The checkpoint signing key, derived from the ledger master secret.
pub struct CheckpointSigner {
    pair: Ed25519KeyPair,
}

impl CheckpointSigner {
    /// Builds the key pair from a 32-byte seed.
    pub(crate) fn from_seed(seed: &Zeroizing<[u8; 32]>) -> Option<Self> {
        Ed25519KeyPair::from_seed_unchecked(seed.as_ref())
            .ok()
            .map(|pair| Self { pair })
    }

    /// The public half.
    pub fn public_key(&self) -> CheckpointPublicKey {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.pair.public_key().as_ref());
        CheckpointPublicKey(out)
    }

    /// Signs domain-tagged bytes (export headers).
    pub(crate) fn sign_raw(&self, msg: &[u8]) -> [u8; 64] {
        let mut signature = [0u8; 64];
        signature.copy_from_slice(self.pair.sign(msg).as_ref());
        signature
    }

    /// Checks a signature made by [`CheckpointSigner::sign_raw`].
    pub(crate) fn verify_raw(key: &CheckpointPublicKey, msg: &[u8], signature: &[u8; 64]) -> bool {
        UnparsedPublicKey::new(&ED25519, &key.0)
            .verify(msg, signature)
            .is_ok()
    }

    /// Signs a checkpoint.
    pub fn sign(&self, checkpoint: Checkpoint) -> SignedCheckpoint {
        let sig = self.pair.sign(&checkpoint.signed_bytes());
        let mut signature = [0u8; 64];
        signature.copy_from_slice(sig.as_ref());
        SignedCheckpoint {
            checkpoint,
            signature,
        }
    }
}

impl fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CheckpointSigner(public {})", self.public_key().to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(s: &str) -> Actor {
        Actor::parse(s).expect("actor")
    }
    fn kind(s: &str) -> Kind {
        Kind::parse(s).expect("kind")
    }

    /// Known answers; recomputed independently with
    /// `printf 'mfa-custody/ledger/body/v1\0{}' | sha256sum` and a Python encoding of the fields.
    #[test]
    fn known_answer_hashes() {
        assert_eq!(
            body_hash(b"{}").to_hex(),
            "9acf93690f75596c4a4c901767225d095a24b5437cbcddfa72861cf55b443684"
        );
        let bh = body_hash(b"{}");
        let h = event_hash(
            1,
            &Hash::ZERO,
            Timestamp(1_700_000_000_000),
            &actor("alice+bob"),
            &kind("ledger.genesis"),
            &bh,
        );
        assert_eq!(
            h.to_hex(),
            "e17fe6b60f81f2a61919dc169b35c5cf76c49a819b2af392901568ab4414ac60"
        );
    }

    #[test]
    fn every_field_changes_the_hash() {
        let bh = body_hash(b"{}");
        let base = event_hash(1, &Hash::ZERO, Timestamp(5), &actor("a"), &kind("k"), &bh);
        let variants = [
            event_hash(2, &Hash::ZERO, Timestamp(5), &actor("a"), &kind("k"), &bh),
            event_hash(
                1,
                &Hash([1; 32]),
                Timestamp(5),
                &actor("a"),
                &kind("k"),
                &bh,
            ),
            event_hash(1, &Hash::ZERO, Timestamp(6), &actor("a"), &kind("k"), &bh),
            event_hash(1, &Hash::ZERO, Timestamp(5), &actor("b"), &kind("k"), &bh),
            event_hash(1, &Hash::ZERO, Timestamp(5), &actor("a"), &kind("j"), &bh),
            event_hash(
                1,
                &Hash::ZERO,
                Timestamp(5),
                &actor("a"),
                &kind("k"),
                &body_hash(b"{\"a\":1}"),
            ),
            // moving a byte between actor and kind must not collide
            event_hash(1, &Hash::ZERO, Timestamp(5), &actor("ak"), &kind("k"), &bh),
        ];
        for v in variants {
            assert_ne!(v, base);
        }
        assert_ne!(
            event_hash(1, &Hash::ZERO, Timestamp(5), &actor("ab"), &kind("c"), &bh),
            event_hash(1, &Hash::ZERO, Timestamp(5), &actor("a"), &kind("bc"), &bh)
        );
    }

    #[test]
    fn checkpoint_signature_round_trip() {
        let signer = CheckpointSigner::from_seed(&Zeroizing::new([7u8; 32])).expect("seed");
        let cp = Checkpoint {
            ledger_id: LedgerId([3; 16]),
            seq: 9,
            head: Hash([4; 32]),
            time: Timestamp(10),
        };
        let signed = signer.sign(cp);
        assert!(signed.verify(&signer.public_key()));
        let mut other = signed;
        other.checkpoint.seq = 10;
        assert!(!other.verify(&signer.public_key()));
        assert!(!signed.verify(&CheckpointPublicKey([9; 32])));
        let pk = signer.public_key();
        assert_eq!(CheckpointPublicKey::parse(&pk.to_hex()), Some(pk));
        assert_eq!(CheckpointPublicKey::parse(&pk.to_base64()), Some(pk));
        assert_eq!(pk.fingerprint().len(), 39);
        assert!(!format!("{signer:?}").contains(&HEXLOWER.encode(&[7u8; 32])));
    }
}
