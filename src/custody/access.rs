//! The domain's seams to the outside: time ([`Clock`], [`TimeWitness`]) and devices
//! ([`DeviceAccess`]). The daemon plugs in the system clock and PC/SC; tests plug in a
//! controlled clock and the in-process software YubiKey.

use std::num::NonZeroU32;

use crate::token::oath::TimeStep;
use crate::token::CardTransport;

use super::ids::Serial;

/// The TOTP period every device credential uses.
pub const PERIOD_SECONDS: u32 = 30;

/// The TOTP period as a non-zero value.
pub fn period() -> NonZeroU32 {
    NonZeroU32::new(PERIOD_SECONDS).unwrap_or(NonZeroU32::MIN)
}

/// Where the domain reads the time.
pub trait Clock: Send {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// Lets time pass until `until_ms` (the system clock sleeps; a test clock jumps).
    fn wait_until(&self, until_ms: i64);
}

impl<C: Clock + Sync + ?Sized> Clock for std::sync::Arc<C> {
    fn now_ms(&self) -> i64 {
        (**self).now_ms()
    }

    fn wait_until(&self, until_ms: i64) {
        (**self).wait_until(until_ms);
    }
}

/// The host's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::ledger::Timestamp::now().0
    }

    fn wait_until(&self, until_ms: i64) {
        let now = self.now_ms();
        if until_ms > now {
            std::thread::sleep(std::time::Duration::from_millis(
                u64::try_from(until_ms - now).unwrap_or(0),
            ));
        }
    }
}

/// The current TOTP step at `ms`.
pub fn step_at(ms: i64) -> TimeStep {
    TimeStep::at(u64::try_from(ms / 1000).unwrap_or(0), period())
}

/// Milliseconds at which `step` begins.
pub fn step_start_ms(step: TimeStep) -> i64 {
    i64::try_from(step.0.saturating_mul(u64::from(PERIOD_SECONDS) * 1000)).unwrap_or(i64::MAX)
}

/// An independent source of time (a radio clock, a second host) the release compares the
/// host clock with when the policy sets `max_clock_skew`.
pub trait TimeWitness: Send {
    /// Milliseconds since the Unix epoch, as the witness sees it.
    fn now_ms(&self) -> Result<i64, String>;
}

/// Why a device could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceAccessError {
    /// No device with that serial is present.
    #[error("no device with serial {serial} is present")]
    NotPresent {
        /// The serial asked for.
        serial: Serial,
    },
    /// Reaching it failed.
    #[error("device {serial}: {detail}")]
    Failed {
        /// The serial asked for.
        serial: Serial,
        /// What failed.
        detail: String,
    },
}

/// Opens a path to the device with a serial (PC/SC in the daemon, software keys in tests).
pub trait DeviceAccess {
    /// A transport to the device with `serial`. The domain still checks what answers.
    fn open(&mut self, serial: Serial) -> Result<Box<dyn CardTransport + '_>, DeviceAccessError>;
}
