//! Shamir's secret sharing of the master secret over GF(256): one share per officer, any
//! `threshold` of them reconstruct it, fewer tell nothing. Every share, the polynomial and the
//! reconstructed secret the ledger holds are in memory zeroized on drop.
//!
//! The field arithmetic (random coefficients, evaluation, Lagrange interpolation) is
//! `vsss-rs`'s; this module runs it byte by byte over the 32-byte secret, as
//! `vsss_rs::Gf256::split_array` and `combine_array` do, so shares are interchangeable with
//! theirs (share identifier first, then one evaluation per secret byte; a test checks both
//! directions).
//!
//! What `vsss-rs` 5.4 zeroizes by itself: nothing on drop. Its GF(256) elements implement
//! `Zeroize` (through `DefaultIsZeroes`), so a caller can clear them, but none of its types
//! zeroizes on drop, and `split_array` and `combine_array` return plain `Vec<u8>`s whose share
//! buffers grow by reallocation (capacity `limit + 1` for 33 bytes), leaving copies of the
//! shares in freed heap memory; they are therefore not used. Here the polynomial is a
//! `Zeroizing<Vec<_>>` reused for every byte, the shares are [`Share`]s, and the secret is
//! reconstructed in place in a [`MasterSecret`]; both keep their bytes in a heap box that is
//! zeroized on drop, so moving them (into a `Vec`, out of a function) leaves no copy of a
//! secret byte behind. Out of reach, inside `vsss-rs` calls, are
//! one-byte stack temporaries (the field elements are `Copy`): in `Polynomial::fill` each random
//! coefficient before it is stored; in `Polynomial::evaluate` the Horner accumulator, which
//! ends as the share byte being computed; in the interpolation behind
//! `ReadableShareSet::combine` the copied share values, the Lagrange basis, each term and the
//! running secret byte. They live in registers or in those calls' stack frames until later
//! calls overwrite them, and are never zeroized.

use std::fmt;

use ring::rand::{SecureRandom, SystemRandom};
use vsss_rs::{DefaultShare, Gf256, IdentifierGf256, Polynomial, ReadableShareSet};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::master::MasterSecret;
use crate::ledger::error::LedgerError;

/// Bytes of the secret that is shared.
pub(crate) const SECRET_LEN: usize = 32;
/// Bytes of one share: its identifier, then one evaluation per secret byte.
pub(crate) const SHARE_LEN: usize = 1 + SECRET_LEN;

/// A point of `vsss-rs`'s polynomial over GF(256), and the coefficients it stores.
type Point = DefaultShare<IdentifierGf256, IdentifierGf256>;

/// One officer's share: the identifier (the x coordinate, 1 to 255), then the polynomials'
/// values there. Zeroized on drop; on the heap, so moving it copies a pointer, never the share;
/// Debug shows the identifier only.
pub(crate) struct Share(Box<[u8; SHARE_LEN]>);

impl Zeroize for Share {
    fn zeroize(&mut self) {
        (*self.0).zeroize();
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl ZeroizeOnDrop for Share {}

impl Share {
    /// All zeros but the identifier.
    fn blank(id: u8) -> Self {
        let mut share = Share(Box::new([0; SHARE_LEN]));
        share.0[0] = id;
        share
    }

    /// A share from its bytes: [`SHARE_LEN`] of them, the identifier not 0.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let id = *bytes.first()?;
        if bytes.len() != SHARE_LEN || id == 0 {
            return None;
        }
        let mut share = Share::blank(id);
        share.0.copy_from_slice(bytes);
        Some(share)
    }

    /// The identifier.
    pub(crate) fn id(&self) -> u8 {
        self.0[0]
    }

    /// The bytes: identifier, then values.
    pub(crate) fn as_bytes(&self) -> &[u8; SHARE_LEN] {
        &self.0
    }
}

impl fmt::Debug for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Share {{ id: {}, value: <redacted> }}", self.id())
    }
}

/// Splits the master secret into `count` shares with identifiers 1, 2, ... `count`, any
/// `threshold` of which reconstruct it. Needs 2 <= `threshold` <= `count` <= 255.
pub(crate) fn split(
    master: &MasterSecret,
    threshold: usize,
    count: usize,
    rng: &SystemRandom,
) -> Result<Vec<Share>, LedgerError> {
    let failed = || LedgerError::Crypto {
        operation: "shamir split",
    };
    if threshold < 2 || threshold > count {
        return Err(failed());
    }
    let mut shares = (1..=count)
        .map(|id| u8::try_from(id).map(Share::blank).map_err(|_| failed()))
        .collect::<Result<Vec<Share>, LedgerError>>()?;
    let mut rr = RingRng { rng, failed: false };
    let mut polynomial: Zeroizing<Vec<Point>> =
        Zeroizing::new(Polynomial::<Point>::create(threshold));
    for (k, byte) in master.bytes().iter().enumerate() {
        let intercept = Zeroizing::new(IdentifierGf256(Gf256(*byte)));
        Polynomial::<Point>::fill(&mut *polynomial, &intercept, &mut rr, threshold)
            .map_err(|_| failed())?;
        for share in &mut shares {
            let x = IdentifierGf256(Gf256(share.id()));
            let y = Zeroizing::new(Polynomial::<Point>::evaluate(&*polynomial, &x, threshold));
            let slot = share.0.get_mut(k + 1).ok_or_else(failed)?;
            *slot = y.0 .0;
        }
    }
    if rr.failed {
        return Err(LedgerError::Crypto {
            operation: "random generator",
        });
    }
    Ok(shares)
}

/// Reconstructs the master secret from shares with distinct, non-zero identifiers, in place in
/// its own storage. With fewer than the threshold, or shares of different secrets, the answer
/// is some other 32 bytes: only a check of the result (the keyring MAC) tells. `None`: fewer
/// than two shares, or repeated identifiers.
pub(crate) fn combine(shares: &[Share]) -> Option<MasterSecret> {
    let mut points: Zeroizing<Vec<Point>> = Zeroizing::new(Vec::with_capacity(shares.len()));
    for share in shares {
        points.push(Point {
            identifier: IdentifierGf256(Gf256(share.id())),
            value: IdentifierGf256(Gf256(0)),
        });
    }
    let mut secret = MasterSecret::zeroed();
    for (k, byte) in secret.bytes_mut().iter_mut().enumerate() {
        for (point, share) in points.iter_mut().zip(shares) {
            point.value = IdentifierGf256(Gf256(*share.0.get(k + 1)?));
        }
        let value = Zeroizing::new(points.as_slice().combine().ok()?);
        *byte = value.0 .0;
    }
    Some(secret)
}

/// Randomness for `vsss-rs`, drawn from ring's system generator. A generator failure is
/// remembered and turned into an error after use (rand_core's `fill_bytes` cannot fail).
struct RingRng<'a> {
    rng: &'a SystemRandom,
    failed: bool,
}

impl rand_core::RngCore for RingRng<'_> {
    fn next_u32(&mut self) -> u32 {
        let mut b = Zeroizing::new([0u8; 4]);
        self.fill_bytes(b.as_mut());
        u32::from_le_bytes(*b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = Zeroizing::new([0u8; 8]);
        self.fill_bytes(b.as_mut());
        u64::from_le_bytes(*b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        if self.rng.fill(dest).is_err() {
            self.failed = true;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl rand_core::CryptoRng for RingRng<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(s: &Share) -> Share {
        Share::from_bytes(s.as_bytes()).expect("share")
    }

    fn new_secret(rng: &SystemRandom) -> MasterSecret {
        MasterSecret::generate(rng).expect("rng")
    }

    #[test]
    fn any_threshold_of_the_shares_reconstruct_the_secret() {
        let rng = SystemRandom::new();
        let s = new_secret(&rng);
        let shares = split(&s, 3, 5, &rng).expect("split");
        assert_eq!(
            shares.iter().map(Share::id).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        for pick in [[0, 1, 2], [4, 2, 0], [1, 3, 4]] {
            let some: Vec<Share> = pick.iter().map(|&i| copy(&shares[i])).collect();
            assert_eq!(combine(&some).expect("combine").bytes(), s.bytes());
        }
        let all: Vec<Share> = shares.iter().map(copy).collect();
        assert_eq!(combine(&all).expect("combine").bytes(), s.bytes());
        // Two of three needed: some other secret, not this one.
        let two = [copy(&shares[0]), copy(&shares[1])];
        assert_ne!(combine(&two).expect("combine").bytes(), s.bytes());
        // One share, or one given twice, is not a set to interpolate.
        assert!(combine(&[copy(&shares[0])]).is_none());
        assert!(combine(&[copy(&shares[0]), copy(&shares[0])]).is_none());
    }

    #[test]
    fn shares_are_interchangeable_with_vsss_rs_byte_arrays() {
        let rng = SystemRandom::new();
        let s = new_secret(&rng);
        // Ours, combined by vsss-rs.
        let ours = split(&s, 2, 3, &rng).expect("split");
        let as_vecs: Vec<Vec<u8>> = ours[1..].iter().map(|x| x.as_bytes().to_vec()).collect();
        assert_eq!(
            vsss_rs::Gf256::combine_array(&as_vecs).expect("combine"),
            s.bytes()
        );
        // vsss-rs's (as keyrings hold them), combined by ours.
        let mut rr = RingRng {
            rng: &rng,
            failed: false,
        };
        let theirs = vsss_rs::Gf256::split_array(2, 3, s.bytes(), &mut rr).expect("split");
        let shares: Vec<Share> = theirs
            .iter()
            .map(|v| Share::from_bytes(v).expect("share"))
            .collect();
        assert_eq!(
            shares.iter().map(Share::id).collect::<Vec<_>>(),
            [1, 2, 3],
            "the same identifiers"
        );
        assert_eq!(combine(&shares[..2]).expect("combine").bytes(), s.bytes());
    }

    #[test]
    fn split_refuses_thresholds_it_cannot_meet() {
        let rng = SystemRandom::new();
        let s = new_secret(&rng);
        for (t, n) in [(1, 3), (0, 2), (4, 3), (2, 256)] {
            assert!(split(&s, t, n, &rng).is_err(), "{t} of {n}");
        }
        assert!(Share::from_bytes(&[0; SHARE_LEN]).is_none(), "identifier 0");
        assert!(
            Share::from_bytes(&[1; SHARE_LEN - 1]).is_none(),
            "too short"
        );
        assert!(Share::from_bytes(&[]).is_none(), "empty");
    }

    #[test]
    fn every_carrier_of_a_share_or_the_secret_zeroizes_on_drop() {
        fn zeroized_on_drop<T: ZeroizeOnDrop>() {}
        zeroized_on_drop::<Share>();
        zeroized_on_drop::<Zeroizing<Vec<Point>>>();
        zeroized_on_drop::<Zeroizing<IdentifierGf256>>();
        zeroized_on_drop::<MasterSecret>();
        // What drop runs clears every byte, the identifier included.
        let rng = SystemRandom::new();
        let mut share = split(&new_secret(&rng), 2, 2, &rng)
            .expect("split")
            .remove(1);
        share.zeroize();
        assert_eq!(share.as_bytes(), &[0; SHARE_LEN]);
    }

    #[test]
    fn moving_a_share_or_the_secret_leaves_its_bytes_where_they_are() {
        let rng = SystemRandom::new();
        let secret = new_secret(&rng);
        let at = secret.bytes().as_ptr();
        let mut shares = split(&secret, 2, 3, &rng).expect("split");
        let share_at = shares[2].as_bytes().as_ptr();
        let moved = Box::new(secret);
        assert_eq!(moved.bytes().as_ptr(), at);
        let share = shares.remove(2);
        shares.shrink_to_fit();
        assert_eq!(share.as_bytes().as_ptr(), share_at);
        let again = combine(&shares).expect("combine");
        let again_at = again.bytes().as_ptr();
        let kept = Some(again);
        let kept = kept.as_ref().expect("kept");
        assert_eq!(kept.bytes().as_ptr(), again_at);
        assert_eq!(kept.bytes(), moved.bytes());
    }

    #[test]
    fn debug_of_a_share_shows_its_identifier_only() {
        let rng = SystemRandom::new();
        let shares = split(&new_secret(&rng), 2, 2, &rng).expect("split");
        for share in &shares {
            assert_eq!(
                format!("{share:?}"),
                format!("Share {{ id: {}, value: <redacted> }}", share.id())
            );
        }
    }
}
