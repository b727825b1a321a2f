//! The PIV management key: 3DES or, from firmware 5.4, AES (Yubico, "PIV extensions", SET
//! MANAGEMENT KEY). Its bytes are zeroized on drop and never appear in `Debug`.

use std::fmt;

use des::cipher::{Block, BlockDecrypt, BlockEncrypt, KeyInit};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use super::codec::PivError;

/// The factory default management key of every YubiKey (3DES before 5.7, AES-192 from 5.7,
/// the same bytes; Yubico, "PIV Introduction", default values).
pub const FACTORY_DEFAULT: [u8; 24] = [
    1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8,
];

/// A management key's algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManagementAlgorithm {
    /// Three-key 3DES (`03`, 24 bytes, 8-byte blocks).
    TripleDes,
    /// AES-128 (`08`).
    Aes128,
    /// AES-192 (`0A`).
    Aes192,
    /// AES-256 (`0C`).
    Aes256,
}

impl ManagementAlgorithm {
    /// The algorithm byte.
    pub fn to_byte(self) -> u8 {
        match self {
            Self::TripleDes => 0x03,
            Self::Aes128 => 0x08,
            Self::Aes192 => 0x0A,
            Self::Aes256 => 0x0C,
        }
    }

    /// The algorithm of a byte, if it is one.
    pub fn from_byte(b: u8) -> Result<Self, PivError> {
        match b {
            0x03 => Ok(Self::TripleDes),
            0x08 => Ok(Self::Aes128),
            0x0A => Ok(Self::Aes192),
            0x0C => Ok(Self::Aes256),
            other => Err(PivError::UnknownAlgorithm(other)),
        }
    }

    /// The key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Self::Aes128 => 16,
            Self::TripleDes | Self::Aes192 => 24,
            Self::Aes256 => 32,
        }
    }

    /// The cipher's block length in bytes.
    pub fn block_len(self) -> usize {
        match self {
            Self::TripleDes => 8,
            _ => 16,
        }
    }

    /// The algorithm a new custody management key gets on `firmware`: AES-192 from 5.4 (where
    /// AES management keys exist), 3DES before.
    pub fn for_firmware(firmware: [u8; 3]) -> Self {
        if firmware >= [5, 4, 0] {
            Self::Aes192
        } else {
            Self::TripleDes
        }
    }
}

/// Why a management key could not be built or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The bytes are not a key of the algorithm.
    #[error("a {algorithm:?} management key is {expected} bytes, got {got}")]
    Length {
        /// The algorithm.
        algorithm: ManagementAlgorithm,
        /// Bytes it needs.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// The system random generator failed.
    #[error("the system random generator failed; no management key or challenge was made")]
    Random,
}

/// A management key. No `Debug` of its bytes, no `Display`, zeroized on drop.
#[derive(Clone)]
pub struct ManagementKey {
    algorithm: ManagementAlgorithm,
    key: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for ManagementKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagementKey")
            .field("algorithm", &self.algorithm)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl ManagementKey {
    /// A key of `algorithm` from its bytes.
    pub fn new(algorithm: ManagementAlgorithm, key: Zeroizing<Vec<u8>>) -> Result<Self, KeyError> {
        if key.len() != algorithm.key_len() {
            return Err(KeyError::Length {
                algorithm,
                expected: algorithm.key_len(),
                got: key.len(),
            });
        }
        Ok(Self { algorithm, key })
    }

    /// The factory default key with `algorithm` (3DES before 5.7, AES-192 from 5.7).
    pub fn factory_default(algorithm: ManagementAlgorithm) -> Result<Self, KeyError> {
        Self::new(algorithm, Zeroizing::new(FACTORY_DEFAULT.to_vec()))
    }

    /// A fresh random key of `algorithm`.
    pub fn random(algorithm: ManagementAlgorithm) -> Result<Self, KeyError> {
        let mut key = Zeroizing::new(vec![0u8; algorithm.key_len()]);
        SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| KeyError::Random)?;
        Self::new(algorithm, key)
    }

    /// The algorithm.
    pub fn algorithm(&self) -> ManagementAlgorithm {
        self.algorithm
    }

    /// The key bytes, for sealing into the ledger and for SET MANAGEMENT KEY.
    pub fn expose(&self) -> &[u8] {
        &self.key
    }

    /// Encrypts one block (`block.len()` must be the block length, checked by the caller).
    pub(crate) fn encrypt(&self, block: &[u8]) -> Zeroizing<Vec<u8>> {
        self.cipher(block, true)
    }

    /// Decrypts one block.
    pub(crate) fn decrypt(&self, block: &[u8]) -> Zeroizing<Vec<u8>> {
        self.cipher(block, false)
    }

    fn cipher(&self, block: &[u8], encrypt: bool) -> Zeroizing<Vec<u8>> {
        fn run<C: BlockEncrypt + BlockDecrypt + KeyInit>(
            key: &[u8],
            block: &[u8],
            encrypt: bool,
        ) -> Zeroizing<Vec<u8>> {
            let mut out = Zeroizing::new(block.to_vec());
            // The key length was checked at construction and the block length by the caller;
            // a mismatch leaves the block as it was, which the card then refuses.
            if let Ok(c) = C::new_from_slice(key) {
                if out.len() == Block::<C>::default().len() {
                    let b = Block::<C>::from_mut_slice(&mut out);
                    if encrypt {
                        c.encrypt_block(b);
                    } else {
                        c.decrypt_block(b);
                    }
                }
            }
            out
        }
        match self.algorithm {
            ManagementAlgorithm::TripleDes => run::<des::TdesEde3>(&self.key, block, encrypt),
            ManagementAlgorithm::Aes128 => run::<aes::Aes128>(&self.key, block, encrypt),
            ManagementAlgorithm::Aes192 => run::<aes::Aes192>(&self.key, block, encrypt),
            ManagementAlgorithm::Aes256 => run::<aes::Aes256>(&self.key, block, encrypt),
        }
    }
}
