//! The OATH applet's wire constants: its AID, instruction bytes, TLV tags, property bits and
//! the limits it keeps to.

/// The OATH applet's AID.
pub const AID: [u8; 7] = [0xA0, 0x00, 0x00, 0x05, 0x27, 0x21, 0x01];

/// Instruction bytes.
pub mod ins {
    /// PUT: add or overwrite a credential.
    pub const PUT: u8 = 0x01;
    /// DELETE a credential.
    pub const DELETE: u8 = 0x02;
    /// SET CODE: set or remove the access key.
    pub const SET_CODE: u8 = 0x03;
    /// RESET the applet (P1 P2 = `DE AD`).
    pub const RESET: u8 = 0x04;
    /// RENAME a credential (firmware 5.3 and later).
    pub const RENAME: u8 = 0x05;
    /// LIST credentials.
    pub const LIST: u8 = 0xA1;
    /// CALCULATE one credential.
    pub const CALCULATE: u8 = 0xA2;
    /// VALIDATE the access key (mutual authentication).
    pub const VALIDATE: u8 = 0xA3;
    /// SELECT (P1 `04`) and CALCULATE ALL (P1 `00`) share this instruction.
    pub const SELECT: u8 = 0xA4;
    /// CALCULATE ALL: the same byte as [`SELECT`], with P1 `00`.
    pub const CALCULATE_ALL: u8 = 0xA4;
    /// SEND REMAINING: continue a `61xx` answer.
    pub const SEND_REMAINING: u8 = 0xA5;
}

/// TLV tags.
pub mod tag {
    /// Credential name (also the salt in the SELECT answer).
    pub const NAME: u8 = 0x71;
    /// LIST entry.
    pub const NAME_LIST: u8 = 0x72;
    /// Key: type/algorithm byte, digits, key bytes.
    pub const KEY: u8 = 0x73;
    /// Challenge.
    pub const CHALLENGE: u8 = 0x74;
    /// Full HMAC response.
    pub const RESPONSE: u8 = 0x75;
    /// Truncated response.
    pub const TRUNCATED: u8 = 0x76;
    /// HOTP credential, not calculated by CALCULATE ALL.
    pub const HOTP: u8 = 0x77;
    /// Property byte (bare: no length byte in PUT).
    pub const PROPERTY: u8 = 0x78;
    /// Applet version.
    pub const VERSION: u8 = 0x79;
    /// Initial moving factor (HOTP counter).
    pub const IMF: u8 = 0x7A;
    /// Access key algorithm in the SELECT answer.
    pub const ALGORITHM: u8 = 0x7B;
    /// Touch required, not calculated by CALCULATE ALL.
    pub const TOUCH: u8 = 0x7C;
}

/// Property bits of a credential.
pub mod property {
    /// The challenge (or counter) may only increase.
    pub const INCREASING: u8 = 0x01;
    /// A touch is required to calculate.
    pub const TOUCH: u8 = 0x02;
}

/// The longest credential name the applet stores, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Keys shorter than this are zero-padded by clients.
pub const MIN_KEY_LEN: usize = 14;
/// The TOTP period assumed when a credential name has no `<period>/` prefix.
pub const DEFAULT_PERIOD: u32 = 30;
