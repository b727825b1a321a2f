//! The PIV applet's persistent memory: PIN, PUK and their retry counters, the management key,
//! the slots' private keys with their policies, and the data objects written with PUT DATA.
//!
//! Serde, kept beside the OATH state in the emulator's state file (see
//! [`crate::emulator::state`]). Every secret (PIN, PUK, management key, private keys) is a
//! [`SecretBytes`]: zeroized on drop, redacted in `Debug`. Fields added later take defaults, so
//! older files keep loading.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::emulator::oath::SecretBytes;

/// The factory PIN (Yubico, "PIV PIN and management key defaults": `123456`).
pub const DEFAULT_PIN: &[u8] = b"123456";
/// The factory PUK (`12345678`).
pub const DEFAULT_PUK: &[u8] = b"12345678";
/// The factory management key before firmware 5.7: 3DES
/// `010203040506070801020304050607080102030405060708`.
pub const DEFAULT_MANAGEMENT_KEY: [u8; 24] = [
    1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8,
];
/// The factory number of PIN and PUK tries.
pub const DEFAULT_TRIES: u8 = 3;
/// A PIN or PUK travels padded with `FF` to this many bytes (SP 800-73-4 part 2, 3.2.1).
pub const REFERENCE_LEN: usize = 8;

/// Algorithm byte of a 3DES management key.
pub const ALG_3DES: u8 = 0x03;
/// Algorithm byte of an ECC P-256 key.
pub const ALG_ECCP256: u8 = 0x11;
/// Algorithm byte of an ECC P-384 key.
pub const ALG_ECCP384: u8 = 0x14;

/// Where a slot's key came from (GET METADATA tag `03`).
pub const ORIGIN_GENERATED: u8 = 0x01;
/// Imported with IMPORT KEY.
pub const ORIGIN_IMPORTED: u8 = 0x02;

/// A PIN or the PUK: its padded value and its retry counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    /// The value padded with `FF` to [`REFERENCE_LEN`] bytes.
    pub value: SecretBytes,
    /// Tries after a success.
    pub total: u8,
    /// Tries left; 0 is blocked.
    pub left: u8,
}

impl Reference {
    /// A reference holding `plain` (6 to 8 bytes), with the factory tries.
    pub fn new(plain: &[u8]) -> Self {
        Self {
            value: SecretBytes::new(pad(plain)),
            total: DEFAULT_TRIES,
            left: DEFAULT_TRIES,
        }
    }

    /// True when the value is `plain`.
    pub fn is(&self, plain: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(self.value.expose().ct_eq(&pad(plain)))
    }
}

/// `plain` padded with `FF` to [`REFERENCE_LEN`] bytes (longer input is kept whole).
pub fn pad(plain: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut v = Zeroizing::new(plain.to_vec());
    while v.len() < REFERENCE_LEN {
        v.push(0xFF);
    }
    v
}

/// The management key (slot `9B`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagementKey {
    /// Algorithm byte: [`ALG_3DES`], or AES-128/192/256 `08`/`0A`/`0C` (firmware 5.4 and later).
    pub algorithm: u8,
    /// The key bytes.
    pub key: SecretBytes,
    /// Touch policy: 1 never, 2 always, 3 cached (GET METADATA encoding).
    pub touch: u8,
}

/// A private key in a slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotKey {
    /// The slot (`9A`, `9C`, `9D`, `9E`, `82`-`95`).
    pub slot: u8,
    /// Algorithm byte ([`ALG_ECCP256`] or [`ALG_ECCP384`]).
    pub algorithm: u8,
    /// PIN policy, resolved: 1 never, 2 once, 3 always.
    pub pin_policy: u8,
    /// Touch policy, resolved: 1 never, 2 always, 3 cached.
    pub touch_policy: u8,
    /// [`ORIGIN_GENERATED`] or [`ORIGIN_IMPORTED`].
    pub origin: u8,
    /// The private scalar (big-endian: 32 bytes for P-256, 48 for P-384).
    pub secret: SecretBytes,
}

/// A data object written with PUT DATA: its id (`5FC102`...) and the content of its `53` tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredObject {
    /// The object id, e.g. `0x5FC105`.
    pub id: u32,
    /// The value of the object's `53` TLV, lower-case hex in the file.
    #[serde(with = "hex_bytes")]
    pub data: Vec<u8>,
}

/// Everything the PIV applet keeps across power cycles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PivState {
    /// The PIN.
    pub pin: Reference,
    /// The PUK.
    pub puk: Reference,
    /// The management key.
    pub management: ManagementKey,
    /// Private keys by slot.
    #[serde(default)]
    pub keys: Vec<SlotKey>,
    /// Data objects.
    #[serde(default)]
    pub objects: Vec<StoredObject>,
}

impl Default for PivState {
    fn default() -> Self {
        Self::factory()
    }
}

impl PivState {
    /// A key as it leaves the factory: default PIN, PUK and management key, no keys, no objects.
    pub fn factory() -> Self {
        Self {
            pin: Reference::new(DEFAULT_PIN),
            puk: Reference::new(DEFAULT_PUK),
            management: ManagementKey {
                algorithm: ALG_3DES,
                key: SecretBytes::new(Zeroizing::new(DEFAULT_MANAGEMENT_KEY.to_vec())),
                touch: 1,
            },
            keys: Vec::new(),
            objects: Vec::new(),
        }
    }

    /// Checks that a card could hold this state (a loaded file may not be one the applet
    /// wrote); the error names the field, never its value.
    pub fn check(&self) -> Result<(), String> {
        for (name, r) in [("PIN", &self.pin), ("PUK", &self.puk)] {
            if r.value.expose().len() != REFERENCE_LEN {
                return Err(format!("the PIV {name} is not {REFERENCE_LEN} bytes"));
            }
            if r.total == 0 || r.left > r.total {
                return Err(format!(
                    "the PIV {name} has {} of {} tries left",
                    r.left, r.total
                ));
            }
        }
        let m = &self.management;
        match super::keys::management_lengths(m.algorithm) {
            Some((len, _)) if len == m.key.expose().len() => {}
            _ => {
                return Err(format!(
                    "the PIV management key is not a key of algorithm {:02X}",
                    m.algorithm
                ))
            }
        }
        if !(1..=3).contains(&m.touch) {
            return Err(format!(
                "the PIV management key's touch policy {} is unknown",
                m.touch
            ));
        }
        for k in &self.keys {
            let slot = k.slot;
            if !super::is_key_slot(slot) {
                return Err(format!("PIV slot {slot:02X} holds no keys"));
            }
            if self.keys.iter().filter(|o| o.slot == slot).count() > 1 {
                return Err(format!("PIV slot {slot:02X} holds two keys"));
            }
            if super::keys::public(k.algorithm, k.secret.expose()).is_err() {
                return Err(format!(
                    "the key in PIV slot {slot:02X} is not a key of algorithm {:02X}",
                    k.algorithm
                ));
            }
            if !(1..=3).contains(&k.pin_policy)
                || !(1..=3).contains(&k.touch_policy)
                || !(1..=2).contains(&k.origin)
            {
                return Err(format!(
                    "the key in PIV slot {slot:02X} has an unknown policy or origin"
                ));
            }
        }
        for o in &self.objects {
            if o.data.len() > super::MAX_OBJECT {
                return Err(format!(
                    "PIV object {:06X} is longer than {} bytes",
                    o.id,
                    super::MAX_OBJECT
                ));
            }
        }
        Ok(())
    }

    /// The key in `slot`, if any.
    pub fn key(&self, slot: u8) -> Option<&SlotKey> {
        self.keys.iter().find(|k| k.slot == slot)
    }

    /// Stores `key`, replacing what its slot held.
    pub fn put_key(&mut self, key: SlotKey) {
        self.keys.retain(|k| k.slot != key.slot);
        self.keys.push(key);
    }

    /// The object `id`, if written.
    pub fn object(&self, id: u32) -> Option<&[u8]> {
        self.objects
            .iter()
            .find(|o| o.id == id)
            .map(|o| o.data.as_slice())
    }

    /// Writes object `id`; empty data deletes it (SP 800-73-4 part 2, 3.3.2).
    pub fn put_object(&mut self, id: u32, data: &[u8]) {
        self.objects.retain(|o| o.id != id);
        if !data.is_empty() {
            self.objects.push(StoredObject {
                id,
                data: data.to_vec(),
            });
        }
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&data_encoding::HEXLOWER.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        data_encoding::HEXLOWER_PERMISSIVE
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("object data is not hex: {e}")))
    }
}
