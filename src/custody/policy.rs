//! The custody policy: thresholds, lifetimes, the ticket pattern, the root-task
//! catalogue and the passphrase verifier's cost.

use std::num::NonZeroU32;
use std::time::Duration;

use super::error::CustodyError;
use super::ids::TicketPattern;

/// The fewest approvals a request ever needs.
pub const MIN_APPROVALS: usize = 2;
/// The fewest PBKDF2 iterations outside tests.
pub const MIN_PASSPHRASE_ITERATIONS: u32 = 600_000;

/// How many distinct officer approvals release a code: never below 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Threshold(usize);

impl Threshold {
    /// A threshold of `n` approvals; refuses fewer than two.
    pub fn new(n: usize) -> Result<Self, CustodyError> {
        if n < MIN_APPROVALS {
            return Err(CustodyError::invalid(
                "approval threshold",
                &n.to_string(),
                "must be at least 2",
            ));
        }
        Ok(Self(n))
    }

    /// The number.
    pub fn get(self) -> usize {
        self.0
    }
}

impl Default for Threshold {
    fn default() -> Self {
        Self(MIN_APPROVALS)
    }
}

/// PBKDF2-HMAC-SHA256 cost of users' passphrase verifiers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PassphraseKdf {
    iterations: NonZeroU32,
    insecure: bool,
}

impl PassphraseKdf {
    /// 600,000 iterations.
    pub fn production() -> Self {
        Self {
            iterations: NonZeroU32::new(MIN_PASSPHRASE_ITERATIONS).unwrap_or(NonZeroU32::MIN),
            insecure: false,
        }
    }

    /// A lower count for tests only; verifiers made with it are marked insecure.
    pub fn insecure_for_tests(iterations: NonZeroU32) -> Self {
        Self {
            iterations,
            insecure: true,
        }
    }

    /// The iteration count.
    pub fn iterations(self) -> NonZeroU32 {
        self.iterations
    }

    /// True for the test-only cost.
    pub fn is_insecure_test_only(self) -> bool {
        self.insecure
    }
}

/// One root-only task a request may name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootTask {
    /// Stable id (`close-account`, ...).
    pub id: String,
    /// What it is, for people.
    pub description: String,
    /// Whether the request's reason must describe it in full (`other`).
    pub free_text: bool,
    /// Whether it needs the root user's console password beside the MFA code: the release
    /// then hands out the password the ledger holds for the account. Recovering a forgotten
    /// password signs in without it.
    pub needs_password: bool,
}

/// The default catalogue of tasks that need the root user.
pub fn default_catalogue() -> Vec<RootTask> {
    [
        (
            "change-contact",
            "Change account contact details",
            false,
            true,
        ),
        ("change-payment", "Change payment details", false, true),
        (
            "change-support-plan",
            "Change the support plan",
            false,
            true,
        ),
        ("close-account", "Close the account", false, true),
        (
            "create-root-access-keys",
            "Create root access keys",
            false,
            true,
        ),
        (
            "delete-root-access-keys",
            "Delete root access keys",
            false,
            true,
        ),
        (
            "change-root-password",
            "Change the root password",
            false,
            true,
        ),
        (
            "recover-root-password",
            "Recover the root password",
            false,
            false,
        ),
        (
            "create-cloudfront-key-pair",
            "Create a CloudFront key pair",
            false,
            true,
        ),
        (
            "unlock-s3-bucket-policy",
            "Restore an S3 bucket policy that locks everyone out",
            false,
            true,
        ),
        (
            "unlock-sqs-queue-policy",
            "Restore an SQS queue policy that locks everyone out",
            false,
            true,
        ),
        (
            "seller-or-tax-settings",
            "Register as a seller or change tax settings",
            false,
            true,
        ),
        (
            "other",
            "Another root-only task (describe it in the reason)",
            true,
            true,
        ),
    ]
    .into_iter()
    .map(|(id, d, f, p)| RootTask {
        id: id.to_owned(),
        description: d.to_owned(),
        free_text: f,
        needs_password: p,
    })
    .collect()
}

/// Everything the domain decides by.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Approvals needed (default and minimum 2).
    pub approval_threshold: Threshold,
    /// How long an approval stays valid (default 15 min).
    pub approval_ttl: Duration,
    /// How long a request stays open (default 1 h).
    pub request_ttl: Duration,
    /// Shortest reason in characters (default 20).
    pub reason_min_chars: usize,
    /// The ticket pattern.
    pub ticket: TicketPattern,
    /// How long a session stays usable (default 10 min).
    pub session_ttl: Duration,
    /// Passphrase verifier cost.
    pub kdf: PassphraseKdf,
    /// Largest allowed difference between the host clock and a time witness, if one is used.
    pub max_clock_skew: Option<Duration>,
    /// The root-task catalogue.
    pub catalogue: Vec<RootTask>,
    /// Whether codes are refused from devices without an OATH access key. `None`: as the
    /// ledger says ([`LedgerPolicy`]: on for ledgers created since devices are locked at
    /// enrolment, off for older ones, whose devices two officers lock one by one).
    pub refuse_unlocked_devices: Option<bool>,
    /// Whether every device must have an attested custody key (default off): registration
    /// then refuses a device that does not attest, and check-in, enrolment, code release and
    /// the inventory audit refuse an unattested device (`device_unattested`).
    pub require_attested_devices: bool,
    /// Fewest whole seconds a released code must have left in its time step (default 10,
    /// at most 29): with fewer, the release waits for the next step, so the operator is never
    /// shown a code that lapses while it is typed. 0: any time left will do.
    pub min_code_seconds: u64,
    /// What proves an officer at approval time besides the passphrase (default
    /// [`ApprovalProof::Either`]).
    pub approval_proof: ApprovalProof,
}

/// What an approval must be proved with, besides the officer's passphrase (`[policy]
/// approval_proof`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalProof {
    /// The TOTP second-factor code or a signature by the officer's registered YubiKey.
    #[default]
    Either,
    /// Only a signature by the officer's registered YubiKey.
    Signature,
    /// Only the TOTP second-factor code.
    Totp,
}

impl ApprovalProof {
    /// Its configuration value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Either => "either",
            Self::Signature => "signature",
            Self::Totp => "totp",
        }
    }

    /// Whether a proof of this kind (`"signature"` or `"totp"`) is taken.
    pub fn takes(self, given: &str) -> bool {
        matches!(
            (self, given),
            (Self::Either, _) | (Self::Signature, "signature") | (Self::Totp, "totp")
        )
    }
}

/// The policy a ledger carries itself, recorded with its first genesis officer (the
/// `policy` record `ledger`). A ledger written before a key existed lacks it, and gets the
/// behaviour it had then.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LedgerPolicy {
    /// Codes are refused from devices without an OATH access key.
    #[serde(default)]
    pub refuse_unlocked_devices: bool,
}

impl LedgerPolicy {
    /// The id of its record.
    pub const ID: &'static str = "ledger";

    /// What a new ledger records.
    pub fn for_new_ledgers() -> Self {
        Self {
            refuse_unlocked_devices: true,
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            approval_threshold: Threshold::default(),
            approval_ttl: Duration::from_secs(15 * 60),
            request_ttl: Duration::from_secs(60 * 60),
            reason_min_chars: 20,
            ticket: TicketPattern::default(),
            session_ttl: Duration::from_secs(10 * 60),
            kdf: PassphraseKdf::production(),
            max_clock_skew: None,
            catalogue: default_catalogue(),
            refuse_unlocked_devices: None,
            require_attested_devices: false,
            min_code_seconds: DEFAULT_MIN_CODE_SECONDS,
            approval_proof: ApprovalProof::Either,
        }
    }
}

/// [`Policy::min_code_seconds`] unless configured.
pub const DEFAULT_MIN_CODE_SECONDS: u64 = 10;

impl Policy {
    /// The catalogue entry for `id`.
    pub fn task(&self, id: &str) -> Result<&RootTask, CustodyError> {
        self.catalogue
            .iter()
            .find(|t| t.id == id)
            .ok_or_else(|| CustodyError::UnknownTask {
                task: id.chars().take(64).collect(),
            })
    }
}

pub(crate) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_never_below_two() {
        assert!(Threshold::new(1).is_err());
        assert!(Threshold::new(0).is_err());
        assert_eq!(Threshold::new(3).expect("ok").get(), 3);
        assert_eq!(Policy::default().approval_threshold.get(), 2);
        assert_eq!(PassphraseKdf::production().iterations().get(), 600_000);
    }
}
