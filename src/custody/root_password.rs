//! The root user's console password, held under the same dual control as its MFA keys: two
//! officers set it (`set_root_password`, typed or generated), it is stored only sealed in the
//! ledger (AES-256-GCM under a key derived from the master secret for this purpose, bound to the
//! account), and a code release for a task that needs it hands it to the requester beside the
//! code, once, recorded as `credential.released` (never the value). After such a release the
//! account is `password_rotation_due` until a new password is set.
//!
//! The password rules are AWS's for the root user ("Change the password for the AWS account root
//! user", <https://docs.aws.amazon.com/accounts/latest/reference/root-user-password.html>): 8 to
//! 128 characters, at least three of uppercase, lowercase, numbers and the symbols
//! `! @ # $ % ^ & * ( ) < > [ ] { } | _ + - =`, and not identical to the account name or e-mail
//! address. A generated password has 32 characters and all four kinds.

use std::fmt;

use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use serde_json::json;
use zeroize::Zeroizing;

use super::error::CustodyError;
use super::ids::AccountId;
use super::records::{AccountRecord, AccountStatus};
use super::service::{pair, Custody, Session};
use super::store::{self, entity, kinds, Put};

/// The ledger purpose label of the key that seals root passwords.
pub const ROOT_PASSWORD_PURPOSE: &str = "custody/root-passwords/v1";

/// The symbols AWS names in its root password rules.
pub const SYMBOLS: &str = "!@#$%^&*()<>[]{}|_+-=";
/// Fewest characters of a root password.
pub const MIN_LEN: usize = 8;
/// Most characters of a root password.
pub const MAX_LEN: usize = 128;
/// Length of a generated password.
pub const GENERATED_LEN: usize = 32;

/// A root user's console password: zeroized on drop, never shown by `Debug`.
pub struct RootPassword(Zeroizing<String>);

impl fmt::Debug for RootPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RootPassword(<redacted>)")
    }
}

/// The kinds of character a password holds: uppercase, lowercase, digit, one of [`SYMBOLS`].
fn kinds_of(s: &str) -> [bool; 4] {
    let mut k = [false; 4];
    for c in s.chars() {
        k[0] |= c.is_ascii_uppercase();
        k[1] |= c.is_ascii_lowercase();
        k[2] |= c.is_ascii_digit();
        k[3] |= SYMBOLS.contains(c);
    }
    k
}

impl RootPassword {
    /// A password typed by an officer, checked against AWS's root password rules for
    /// `account` (errors name the rule, never the password).
    pub fn parse(text: Zeroizing<String>, account: &AccountRecord) -> Result<Self, CustodyError> {
        let bad = |reason: &str| CustodyError::invalid("root password", "<hidden>", reason);
        let n = text.chars().count();
        if !(MIN_LEN..=MAX_LEN).contains(&n) {
            return Err(bad(&format!(
                "has {n} characters; it must have {MIN_LEN} to {MAX_LEN}"
            )));
        }
        if text.chars().any(|c| !c.is_ascii_graphic()) {
            return Err(bad(
                "may hold only printable ASCII characters without spaces",
            ));
        }
        if kinds_of(&text).iter().filter(|k| **k).count() < 3 {
            return Err(bad(&format!(
                "must mix at least three of: uppercase, lowercase, numbers, symbols ({SYMBOLS})"
            )));
        }
        let same = |other: &str| text.eq_ignore_ascii_case(other);
        if same(account.root_email.as_str())
            || same(account.alias.as_str())
            || same(&account.account.to_string())
        {
            return Err(bad("must not be the account's name, id or e-mail address"));
        }
        Ok(Self(text))
    }

    /// A new random password of [`GENERATED_LEN`] characters holding all four kinds, from the
    /// system generator (each character uniform over the alphabet).
    pub fn generate() -> Result<Self, CustodyError> {
        let alphabet: Vec<char> = ('A'..='Z')
            .chain('a'..='z')
            .chain('0'..='9')
            .chain(SYMBOLS.chars())
            .collect();
        let n = alphabet.len();
        // The largest multiple of n below 256: bytes at or above it are drawn again.
        let limit = 256 - 256 % n;
        let rng = SystemRandom::new();
        let crypto = || CustodyError::Crypto {
            operation: "generate root password",
        };
        loop {
            let mut out = Zeroizing::new(String::with_capacity(GENERATED_LEN));
            while out.len() < GENERATED_LEN {
                let mut b = Zeroizing::new([0u8; 64]);
                rng.fill(b.as_mut_slice()).map_err(|_| crypto())?;
                for &x in b.iter() {
                    let x = usize::from(x);
                    if x < limit && out.len() < GENERATED_LEN {
                        out.push(alphabet[x % n]);
                    }
                }
            }
            if kinds_of(&out).iter().all(|k| *k) {
                return Ok(Self(out));
            }
        }
    }

    /// The password's text, to show it once or type it at the provider.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A root password as stored: Base64 of nonce ‖ AES-256-GCM ciphertext ‖ tag, bound to the
/// account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedRootPassword {
    /// Base64 of nonce ‖ ciphertext ‖ tag.
    pub sealed: String,
}

fn aad(account: &AccountId) -> Vec<u8> {
    format!("root-password/{account}").into_bytes()
}

impl Custody {
    fn root_password_key(&self) -> Result<Zeroizing<[u8; 32]>, CustodyError> {
        self.ledger
            .derive_key(ROOT_PASSWORD_PURPOSE)
            .map_err(super::service::op_err(
                "derive the root-password sealing key",
            ))
    }

    /// Stores `password` as `account`'s root password (two officers; an active account),
    /// sealed, recorded as `account.password_set` (never the value); the account is no longer
    /// `password_rotation_due`. `generated` says whether custodyd generated it.
    pub fn set_root_password(
        &mut self,
        a: &Session,
        b: &Session,
        account: &AccountId,
        password: &RootPassword,
        generated: bool,
    ) -> Result<AccountRecord, CustodyError> {
        self.guarded(&pair(a.user(), b.user()), "set_root_password", |c| {
            let (x, y) = c.officer_pair(a, b, "set_root_password")?;
            let mut rec = c.account(account)?;
            if rec.status != AccountStatus::Active {
                return Err(CustodyError::AccountNotActive {
                    account: account.clone(),
                    status: rec.status.as_str(),
                    operation: "set the root password",
                });
            }
            let key = c.root_password_key()?;
            let sealed = super::sealed::seal(
                &key,
                &aad(account),
                Zeroizing::new(password.expose().as_bytes().to_vec()),
                "seal root password",
            )?;
            let replaced = rec.root_password;
            rec.root_password = true;
            rec.password_rotation_due = false;
            c.append(
                kinds::ACCOUNT_PASSWORD_SET,
                &pair(&x.name, &y.name),
                json!({"account": account, "generated": generated, "replaced": replaced}),
                &[
                    Put::new(
                        entity::ROOT_PASSWORD,
                        account,
                        &SealedRootPassword { sealed },
                    )?,
                    Put::new(entity::ACCOUNT, account, &rec)?,
                ],
            )?;
            Ok(rec)
        })
    }

    /// The root password the ledger holds for `account`, if any.
    pub(super) fn root_password(
        &self,
        account: &AccountId,
    ) -> Result<Option<RootPassword>, CustodyError> {
        let id = account.to_string();
        let Some(sealed) =
            store::get::<SealedRootPassword>(&self.ledger, entity::ROOT_PASSWORD, &id)?
        else {
            return Ok(None);
        };
        let corrupt = || CustodyError::CorruptRecord {
            entity: entity::ROOT_PASSWORD,
            id: id.clone(),
            reason: "does not decrypt".into(),
        };
        let key = self.root_password_key()?;
        let plain = super::sealed::open(&key, &aad(account), &sealed.sealed).ok_or_else(corrupt)?;
        let text = std::str::from_utf8(&plain).map_err(|_| corrupt())?;
        Ok(Some(RootPassword(Zeroizing::new(text.to_owned()))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_meet_the_rules_and_differ() {
        let a = RootPassword::generate().expect("generate");
        let b = RootPassword::generate().expect("generate");
        assert_eq!(a.expose().chars().count(), GENERATED_LEN);
        assert!(kinds_of(a.expose()).iter().all(|k| *k), "all four kinds");
        assert!(a
            .expose()
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || SYMBOLS.contains(c)));
        assert_ne!(a.expose(), b.expose());
        assert!(!format!("{a:?}").contains(a.expose()));
    }
}
