//! Fuzz the parsers of what people type at the edge: the provider's seed (Base32 or an
//! `otpauth://totp/` URI), seal (tamper-evident bag) numbers, locations, serials, names, ids,
//! tickets, reasons and notes. Nothing may panic, whatever parses must parse again from its own
//! text form to the same value, no free text that parses holds a character that could make a
//! screen lie, and the escaped form of any text is safe to show.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mfa_custody::custody::{
    check_display_safe, escape_unsafe, is_display_safe, AccountId, Alias, Email, IncidentId,
    Location, Note, Provider, ProviderSeed, Reason, RequestId, SealNumber, Serial, TicketPattern,
    TicketRef, UserName,
};

/// Free text that parsed shows as typed: every character safe, nothing to escape.
fn shown_as_typed(text: &str) {
    assert!(text.chars().all(is_display_safe), "{text:?} parsed");
    assert_eq!(escape_unsafe(text), text);
}

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

    // The display rule: one check, one escape, and every free-text parser behind it.
    let safe = s.chars().all(is_display_safe);
    match check_display_safe("reason", s) {
        Ok(()) => assert!(safe),
        Err(e) => {
            assert!(!safe);
            assert!(e.to_string().chars().all(is_display_safe), "{e}");
        }
    }
    let escaped = escape_unsafe(s);
    assert!(escaped.chars().all(is_display_safe), "{escaped:?}");
    assert_eq!(safe, escaped == s);
    if let Ok(r) = Reason::parse(s, 0) {
        shown_as_typed(r.as_str());
    }
    if let Ok(n) = Note::parse("note", s) {
        shown_as_typed(n.as_str());
    }
    if let Ok(a) = Alias::parse(s) {
        shown_as_typed(a.as_str());
    }
    if let Ok(l) = Location::parse(s) {
        shown_as_typed(l.as_str());
    }
    let open = TicketPattern {
        prefixes: vec![s.split('-').next().unwrap_or_default().to_owned()],
        max_digits: 10,
    };
    if let Ok(t) = TicketRef::parse(s, &open) {
        shown_as_typed(t.as_str());
    }
});
