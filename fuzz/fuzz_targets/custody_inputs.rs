//! Fuzz the parsers of what people type at the edge: the provider's seed (Base32 or an
//! `otpauth://totp/` URI), seal (tamper-evident bag) numbers, locations, serials, names, ids,
//! tickets and reasons. Nothing may panic, and whatever parses must parse again from its own
//! text form to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mfa_custody::custody::{
    AccountId, Alias, Email, IncidentId, Location, Provider, ProviderSeed, Reason, RequestId,
    SealNumber, Serial, TicketPattern, TicketRef, UserName,
};

macro_rules! round_trip {
    ($t:ty, $s:expr) => {
        if let Ok(v) = <$t>::parse($s) {
            let again = <$t>::parse(&v.to_string()).expect("a parsed value parses again");
            assert_eq!(v, again);
        }
    };
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = ProviderSeed::parse(s);
    round_trip!(SealNumber, s);
    round_trip!(Location, s);
    round_trip!(UserName, s);
    round_trip!(AccountId, s);
    round_trip!(RequestId, s);
    round_trip!(IncidentId, s);
    round_trip!(Alias, s);
    round_trip!(Email, s);
    round_trip!(Serial, s);
    let _ = Provider::parse(s);
    let _ = TicketRef::parse(s, &TicketPattern::default());
    let _ = Reason::parse(s, 20);
});
