//! Times as people read them: RFC 3339, in UTC (`2026-12-02T03:04:05Z`) or, with `--local`,
//! in the host's time zone with its offset (`2026-12-02T04:04:05+01:00`). Never raw
//! milliseconds since the epoch in human output (`--json` keeps the `_ms` numbers).

use std::sync::OnceLock;

/// Whether `--local` was given: set once, at the start of a command.
static LOCAL: OnceLock<bool> = OnceLock::new();

/// Shows times in the host's zone from now on (`--local`), else in UTC.
pub(crate) fn set_local(local: bool) {
    let _ = LOCAL.set(local);
}

/// `ms` (since the epoch) as RFC 3339 to the second: UTC, or the host's zone under `--local`.
pub(crate) fn show(ms: i64) -> String {
    if LOCAL.get().copied().unwrap_or(false) {
        local(ms, &jiff::tz::TimeZone::system())
    } else {
        utc(ms)
    }
}

/// `ms` as RFC 3339 UTC to the second (`2026-12-02T03:04:05Z`).
pub(crate) fn utc(ms: i64) -> String {
    crate::custody::error::rfc3339(ms)
}

/// `ms` as RFC 3339 in zone `tz`, with its offset (`2026-12-02T04:04:05+01:00`).
fn local(ms: i64, tz: &jiff::tz::TimeZone) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => t
            .to_zoned_datetime(tz.clone())
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string(),
        Err(_) => format!("{ms} ms since the epoch (out of range)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc_3339_in_utc_or_with_the_zone_offset() {
        // 1796150865877 ms: 2026-12-01T18:47:45.877Z (checked with `date -u -d @1796150865`).
        assert_eq!(utc(1_796_150_865_877), "2026-12-01T18:47:45Z");
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        let paris = jiff::tz::TimeZone::get("Europe/Paris").expect("the zoneinfo database");
        assert_eq!(
            local(1_796_150_865_877, &paris),
            "2026-12-01T19:47:45+01:00"
        );
        // Summer time: +02:00.
        assert_eq!(
            local(1_782_000_000_000, &paris),
            "2026-06-21T02:00:00+02:00"
        );
        assert_eq!(
            local(0, &jiff::tz::TimeZone::UTC),
            "1970-01-01T00:00:00+00:00"
        );
        assert!(utc(i64::MAX).contains("out of range"));
    }
}
