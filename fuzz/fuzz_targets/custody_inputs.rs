//! Fuzz the parsers of what people type at the edge: the provider's seed (Base32 or an
//! `otpauth://totp/` URI), seal (tamper-evident bag) numbers, locations, serials, names, ids,
//! tickets, reasons, notes and root passwords. Nothing may panic, whatever parses must parse again from its own
//! text form to the same value, no free text that parses holds a character that could make a
//! screen lie, and the escaped form of any text is safe to show.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mfa_custody::custody::{
    check_display_safe, escape_unsafe, is_display_safe, AccountId, AccountRecord, AccountStatus,
    Alias, Email, IncidentId, Location, Note, Provider, ProviderSeed, Reason, RequestId,
    RootPassword, SealNumber, Serial, TicketPattern, TicketRef, UserName,
};
use zeroize::Zeroizing;

/// The account a typed root password is checked against.
fn account() -> AccountRecord {
    AccountRecord {
        provider: Provider::Aws,
        account: AccountId::parse("123456789012").expect("id"),
        alias: Alias::parse("prod").expect("alias"),
        root_email: Email::parse("root@example.test").expect("email"),
        credential: "AWS:root@example.test".into(),
        status: AccountStatus::Active,
        last_release_step: None,
        root_password: false,
        password_rotation_due: false,
    }
}

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
    // A root password that passes holds 8 to 128 printable ASCII characters, and a refusal
    // never quotes it.
    match RootPassword::parse(Zeroizing::new(s.to_owned()), &account()) {
        Ok(p) => {
            assert!((8..=128).contains(&p.expose().len()));
            assert!(p.expose().chars().all(|c| c.is_ascii_graphic()));
        }
        Err(e) => assert!(e.to_string().contains("\"<hidden>\""), "{e}"),
    }

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
