//! Fuzz the custody report: any export lines (parsed by `parse_export_line`) fed to
//! `ReportBuilder`, then rendered to HTML. Nothing may panic, and no raw `<` from the input
//! may reach the page outside the report's own markup.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mfa_custody::cli::report::render_html;
use mfa_custody::custody::report::ReportBuilder;
use mfa_custody::ledger::{
    parse_export_line, Checkpoint, Hash, LedgerId, SignedCheckpoint, Timestamp, VerifiedExport,
};

fuzz_target!(|data: &[u8]| {
    let mut builder = ReportBuilder::new();
    for line in data.split(|b| *b == b'\n') {
        if let Ok(parsed) = parse_export_line(line) {
            builder.observe(&parsed);
        }
    }
    let verified = VerifiedExport {
        ledger_id: LedgerId([0; 16]),
        events: 0,
        stubs: 0,
        redacted: 0,
        checkpoint: SignedCheckpoint {
            checkpoint: Checkpoint {
                ledger_id: LedgerId([0; 16]),
                seq: 1,
                head: Hash([0; 32]),
                time: Timestamp(0),
            },
            signature: [0; 64],
        },
    };
    let report = builder.finish(&verified, "fingerprint".into());
    let html = render_html(&report, 0, None);
    assert!(!html.contains("<script"));
});
