//! `custody audit report`: verify a JSON Lines export, then write a self-contained HTML custody
//! report of it (inline CSS, no script, no external resource; every ledger string escaped).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::custody::cloudtrail::Reconciliation;
use crate::custody::escape_unsafe;
use crate::custody::report::{utc, CustodyReport, DeviceReport, Entry, RequestReport};

/// Escapes text for HTML element content and quoted attribute values. Characters that could
/// make the page lie (controls, bidi controls, invisible characters) are shown escaped as on
/// the terminal ([`escape_unsafe`]), so a bad string an older ledger holds is visible as such.
pub fn escape(s: &str) -> String {
    let s = escape_unsafe(s);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:72em;padding:0 1em;color:#1b1b1b;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #ccc;padding-bottom:.2em;margin-top:2em}h3{margin-bottom:.3em}
table{border-collapse:collapse;width:100%;margin:.5em 0 1em;font-size:.92em}
th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f0f0f0}td.n{text-align:right;white-space:nowrap}td.t{white-space:nowrap}
svg.custody{display:block;max-width:100%;height:auto;margin:.3em 0}
code,.h{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em}.h{word-break:break-all}td code{white-space:nowrap}
.ok{background:#e6f4ea;border:1px solid #34a853;padding:.7em 1em;border-radius:4px}
.warn{background:#fff4e5;border:1px solid #f29900;padding:.7em 1em;border-radius:4px}
.bad{background:#fce8e6;border:1px solid #d93025;padding:.7em 1em;border-radius:4px}
.muted{color:#666}dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:600}dd{margin:0}
@media print{body{max-width:none}h2{page-break-after:avoid}table{page-break-inside:auto}tr{page-break-inside:avoid}}
";

fn opt(v: &Option<String>) -> String {
    v.as_deref().map_or_else(|| "\u{2014}".to_owned(), escape)
}

fn time_cell(ms: Option<i64>) -> String {
    ms.map_or_else(|| "\u{2014}".to_owned(), utc)
}

fn timeline(out: &mut String, entries: &[Entry]) {
    if entries.is_empty() {
        out.push_str("<p class=\"muted\">No event in this export.</p>\n");
        return;
    }
    out.push_str(
        "<table><tr><th>seq</th><th>time (UTC)</th><th>by</th><th>event</th><th>what</th></tr>\n",
    );
    for e in entries {
        let _ = writeln!(
            out,
            "<tr><td class=\"n\">{}</td><td class=\"t\">{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            e.seq,
            utc(e.time_ms),
            escape(&e.actor),
            escape(&e.kind),
            escape(&e.what)
        );
    }
    out.push_str("</table>\n");
}

fn filter_text(filter: &Value) -> String {
    let Some(m) = filter.as_object().filter(|m| !m.is_empty()) else {
        return "none: every event carries its body".to_owned();
    };
    m.iter()
        .map(|(k, v)| {
            let shown = match (k.as_str(), v) {
                ("since" | "until", Value::Number(n)) => {
                    n.as_i64().map_or_else(|| n.to_string(), utc)
                }
                (_, Value::String(s)) => s.clone(),
                (_, Value::Array(items)) => items
                    .iter()
                    .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(", "),
                (_, other) => other.to_string(),
            };
            format!("{k} = {shown}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn request_rows(out: &mut String, requests: &[RequestReport]) {
    out.push_str(
        "<table><tr><th>request</th><th>asked</th><th>task, ticket, reason</th><th>approvals</th><th>outcome</th><th>code</th><th>status</th></tr>\n",
    );
    for r in requests {
        let asked = format!("{}<br>{}", opt(&r.requester), time_cell(r.created_ms),);
        let what = format!(
            "<code>{}</code><br>{}<br>{}",
            opt(&r.task),
            opt(&r.ticket),
            opt(&r.reason)
        );
        let approvals = if r.approvals.is_empty() {
            "none".to_owned()
        } else {
            r.approvals
                .iter()
                .map(|a| {
                    let proof = a
                        .proof
                        .as_ref()
                        .map(|p| format!(": {}", escape(p)))
                        .unwrap_or_default();
                    format!(
                        "{} at {} (seq {}){proof}",
                        escape(&a.who),
                        utc(a.time_ms),
                        a.seq
                    )
                })
                .collect::<Vec<_>>()
                .join("<br>")
        };
        let outcome = r.closed.as_ref().map_or_else(
            || "\u{2014}".to_owned(),
            |c| {
                let verb = match c.kind.as_str() {
                    "request.denied" => "denied",
                    "request.cancelled" => "cancelled",
                    "request.expired" => "expired",
                    other => other,
                };
                format!(
                    "{} by {} at {} (seq {}){}",
                    escape(verb),
                    escape(&c.who),
                    utc(c.time_ms),
                    c.seq,
                    c.note
                        .as_deref()
                        .filter(|n| !n.is_empty())
                        .map(|n| format!(": {}", escape(n)))
                        .unwrap_or_default()
                )
            },
        );
        let code = match (&r.issuing, &r.released) {
            (_, Some(c)) => format!(
                "released at {} (seq {}) by device {}, step {}",
                utc(c.time_ms),
                c.seq,
                opt(&c.device),
                opt(&c.step)
            ),
            (Some(c), None) => format!(
                "<strong>computation started at {} (seq {}) on device {}, never released</strong>",
                utc(c.time_ms),
                c.seq,
                opt(&c.device)
            ),
            (None, None) => "not released".to_owned(),
        };
        let _ = writeln!(
            out,
            "<tr id=\"request-{}\"><td class=\"h\">{}</td><td>{asked}</td><td>{what}</td><td>{approvals}</td><td>{outcome}</td><td>{code}</td><td>{}</td></tr>",
            escape(&r.id),
            escape(&r.id),
            opt(&r.status)
        );
    }
    out.push_str("</table>\n");
}

/// Renders the report as one HTML document. `generated_ms` is when the report was made and
/// `after_seq` the seq of a kept checkpoint the export was verified to extend.
pub fn render_html(r: &CustodyReport, generated_ms: i64, after_seq: Option<u64>) -> String {
    render_html_with(r, generated_ms, after_seq, None)
}

/// [`render_html`], with a section of CloudTrail's root activity reconciled against the export
/// (`custody audit report --cloudtrail`).
pub fn render_html_with(
    r: &CustodyReport,
    generated_ms: i64,
    after_seq: Option<u64>,
    cloudtrail: Option<&Reconciliation>,
) -> String {
    let mut o = String::with_capacity(64 * 1024);
    let cp = &r.checkpoint.checkpoint;
    let requests: Vec<&RequestReport> = r.requests().collect();
    let released = requests.iter().filter(|q| q.released.is_some()).count();
    let open: Vec<_> = r.open_incidents().collect();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<title>Custody report: ledger {id}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n\
<h1>Custody report</h1>\n<p class=\"muted\">Ledger <span class=\"h\">{id}</span>, made {gen} by <code>custody audit report</code> from a JSON Lines export.</p>\n",
        id = escape(&r.ledger_id),
        gen = utc(generated_ms),
    );

    // Contents: links within the page only.
    let mut contents = vec![
        ("verification", "Verification"),
        ("scope", "Scope of the export"),
        ("summary", "Summary"),
        ("officers", "People's part"),
        ("open-incidents", "Open incidents"),
    ];
    if cloudtrail.is_some() {
        contents.push(("cloudtrail", "CloudTrail root activity"));
    }
    contents.extend([
        ("devices", "Devices"),
        ("accounts", "Accounts, requests and releases"),
        ("incidents", "All incidents"),
        ("refusals", "Refusals"),
        ("people", "Users, unseals and keyring"),
        ("kinds", "Events by kind"),
    ]);
    o.push_str("<nav aria-label=\"contents\"><h2>Contents</h2>\n<ol>\n");
    for (id, title) in contents {
        let _ = writeln!(o, "<li><a href=\"#{id}\">{title}</a></li>");
    }
    o.push_str("</ol></nav>\n");

    // Verification.
    let _ = write!(
        o,
        "<h2 id=\"verification\">Verification</h2>\n<div class=\"ok\"><strong>Valid.</strong> \
The export holds the ledger's history from seq 1 to seq {seq}: every event's hash and link \
checked, and the final checkpoint is signed by the pinned key with fingerprint \
<span class=\"h\">{fp}</span>.{after}</div>\n\
<dl>\n<dt>ledger id</dt><dd class=\"h\">{id}</dd>\n<dt>checkpoint seq</dt><dd>{seq}</dd>\n\
<dt>checkpoint head</dt><dd class=\"h\">{head}</dd>\n<dt>checkpoint time</dt><dd>{time}</dd>\n\
<dt>checkpoint signature</dt><dd class=\"h\">{sig}</dd>\n<dt>key fingerprint</dt><dd class=\"h\">{fp}</dd>\n</dl>\n\
<p class=\"muted\">Keep the checkpoint (the export's last line) and verify the next export with \
<code>--after</code> it. A valid chain proves the export is what the ledger recorded, not that \
the events are true: compare with the paper sheets and the provider's logs.</p>\n",
        seq = cp.seq,
        fp = escape(&r.key_fingerprint),
        after = after_seq
            .map(|s| format!(" It extends the kept checkpoint at seq {s}: history up to there was not rewritten."))
            .unwrap_or_default(),
        id = escape(&r.ledger_id),
        head = cp.head.to_hex(),
        time = utc(cp.time.0),
        sig = data_encoding::HEXLOWER.encode(&r.checkpoint.signature),
    );

    // Scope.
    let _ = write!(
        o,
        "<h2 id=\"scope\">Scope of the export</h2>\n<dl>\n<dt>filter</dt><dd>{filter}</dd>\n\
<dt>events</dt><dd>{total} (seq 1 to {seq}): {events} with their body, {stubs} as stubs</dd>\n\
<dt>first event</dt><dd>{first}</dd>\n<dt>last event</dt><dd>{last}</dd>\n</dl>\n",
        filter = escape(&filter_text(&r.filter)),
        total = r.events + r.stubs,
        seq = cp.seq,
        events = r.events,
        stubs = r.stubs,
        first = time_cell(r.first_ms),
        last = time_cell(r.last_ms),
    );
    if r.stubs > 0 {
        let kinds = r
            .stub_kinds
            .iter()
            .map(|(k, n)| format!("<code>{}</code> \u{d7} {n}", escape(k)))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            o,
            "<p class=\"warn\">This export was filtered: {} event(s) are stubs, proving only that \
an event of that kind existed at that time. What they record is not in this report: {kinds}.</p>",
            r.stubs
        );
    }

    // Summary.
    let _ = write!(
        o,
        "<h2 id=\"summary\">Summary</h2>\n<table><tr><th>devices</th><th>accounts</th><th>requests</th>\
<th>codes released</th><th>incidents</th><th>open incidents</th><th>refusals</th></tr>\n\
<tr><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
<td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr></table>\n\
<p class=\"muted\">The ledger never records a code; this report contains none.</p>\n",
        r.devices.len(),
        r.accounts.len(),
        requests.len(),
        released,
        r.incidents.len(),
        open.len(),
        r.refusals.len(),
    );

    people_part(&mut o, r);

    // Open incidents first: they need action.
    o.push_str("<h2 id=\"open-incidents\">Open incidents</h2>\n");
    if open.is_empty() {
        o.push_str("<p class=\"ok\">No incident is open at the checkpoint.</p>\n");
    } else {
        o.push_str("<div class=\"bad\"><table><tr><th>incident</th><th>kind</th><th>device</th><th>opened</th><th>by</th><th>detail</th></tr>\n");
        for i in &open {
            let _ = writeln!(
                o,
                "<tr><td class=\"h\">{}</td><td>{}</td><td>{}</td><td class=\"t\">{}</td><td>{}</td><td>{}</td></tr>",
                escape(&i.id),
                opt(&i.kind),
                opt(&i.device),
                time_cell(i.opened.as_ref().map(|e| e.time_ms)),
                i.opened.as_ref().map_or_else(|| "\u{2014}".to_owned(), |e| escape(&e.actor)),
                opt(&i.detail)
            );
        }
        o.push_str("</table></div>\n");
    }

    if let Some(ct) = cloudtrail {
        cloudtrail_section(&mut o, ct);
    }

    // Devices.
    o.push_str("<h2 id=\"devices\">Devices</h2>\n");
    if !r.devices.is_empty() {
        o.push_str(LEGEND);
    }
    if r.devices.is_empty() {
        o.push_str("<p class=\"muted\">No device event in this export.</p>\n");
    }
    for d in r.devices.values() {
        let _ = write!(
            o,
            "<h3 id=\"device-{s}\">Device {s}</h3>\n<dl>\n<dt>role</dt><dd>{}</dd>\n<dt>account</dt><dd>{}</dd>\n\
<dt>firmware</dt><dd>{}</dd>\n<dt>OATH device id</dt><dd class=\"h\">{}</dd>\n<dt>state at the checkpoint</dt><dd><strong>{}</strong>{}</dd>\n",
            opt(&d.role),
            opt(&d.account),
            opt(&d.firmware),
            opt(&d.device_id),
            opt(&d.state),
            d.state_detail
                .as_deref()
                .map(|x| format!(": {}", escape(x)))
                .unwrap_or_default(),
            s = escape(&d.serial),
        );
        if let Some(b) = &d.blocked_by {
            let _ = writeln!(
                o,
                "<dt>blocked by</dt><dd class=\"bad\">incident <span class=\"h\">{}</span></dd>",
                escape(b)
            );
        }
        o.push_str("</dl>\n");
        custody_picture(&mut o, d, r.first_ms, r.last_ms);
        timeline(&mut o, &d.timeline);
    }

    // Accounts and their requests.
    o.push_str("<h2 id=\"accounts\">Accounts, requests and releases</h2>\n");
    if r.accounts.is_empty() {
        o.push_str("<p class=\"muted\">No account event in this export.</p>\n");
    }
    for a in r.accounts.values() {
        let _ = write!(
            o,
            "<h3 id=\"account-{id}\">Account {id}</h3>\n<dl>\n<dt>provider</dt><dd>{}</dd>\n<dt>alias</dt><dd>{}</dd>\n\
<dt>credential</dt><dd>{}</dd>\n<dt>status at the checkpoint</dt><dd><strong>{}</strong></dd>\n\
<dt>root password</dt><dd><strong>{}</strong></dd>\n</dl>\n",
            opt(&a.provider),
            opt(&a.alias),
            opt(&a.credential),
            opt(&a.status),
            a.password.as_deref().unwrap_or("not held"),
            id = escape(&a.account),
        );
        timeline(&mut o, &a.events);
        if a.requests.is_empty() {
            o.push_str("<p class=\"muted\">No request in this export.</p>\n");
        } else {
            let _ = writeln!(o, "<h4>Requests ({})</h4>", a.requests.len());
            request_rows(&mut o, &a.requests);
        }
    }

    // Every incident.
    o.push_str("<h2 id=\"incidents\">All incidents</h2>\n");
    if r.incidents.is_empty() {
        o.push_str("<p class=\"muted\">No incident in this export.</p>\n");
    } else {
        o.push_str("<table><tr><th>incident</th><th>kind</th><th>device</th><th>opened</th><th>detail</th><th>acknowledged</th></tr>\n");
        for i in &r.incidents {
            let ack = i.acknowledged.as_ref().map_or_else(
                || "<strong>open</strong>".to_owned(),
                |d| {
                    format!(
                        "by {} at {} (seq {}){}",
                        escape(&d.who),
                        utc(d.time_ms),
                        d.seq,
                        d.note
                            .as_deref()
                            .map(|n| format!(": {}", escape(n)))
                            .unwrap_or_default()
                    )
                },
            );
            let _ = writeln!(
                o,
                "<tr><td class=\"h\">{}</td><td>{}</td><td>{}</td><td class=\"t\">{}</td><td>{}</td><td>{ack}</td></tr>",
                escape(&i.id),
                opt(&i.kind),
                opt(&i.device),
                time_cell(i.opened.as_ref().map(|e| e.time_ms)),
                opt(&i.detail)
            );
        }
        o.push_str("</table>\n");
    }

    o.push_str("<h2 id=\"refusals\">Refusals</h2>\n");
    timeline(&mut o, &r.refusals);
    o.push_str("<h2 id=\"people\">Users, unseals and keyring</h2>\n");
    timeline(&mut o, &r.people);

    o.push_str("<h2 id=\"kinds\">Events by kind</h2>\n<table><tr><th>kind</th><th>with body</th><th>stubs</th></tr>\n");
    let mut all: Vec<&String> = r.kinds.keys().chain(r.stub_kinds.keys()).collect();
    all.sort();
    all.dedup();
    for k in all {
        let _ = writeln!(
            o,
            "<tr><td><code>{}</code></td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(k),
            r.kinds.get(k).copied().unwrap_or(0),
            r.stub_kinds.get(k).copied().unwrap_or(0)
        );
    }
    o.push_str("</table>\n</body>\n</html>\n");
    o
}

/// Colours of the custody pictures: (state, colour, words).
const STATES: [(&str, &str, &str); 4] = [
    ("registered", "#d0d0d0", "registered, not yet in the safe"),
    ("in_safe", "#34a853", "in the safe"),
    ("checked_out", "#f29900", "checked out"),
    ("ended", "#5f6368", "retired, lost, destroyed or released"),
];
const RELEASE: &str = "#1a73e8";
const INCIDENT: &str = "#d93025";

/// The key to the pictures, drawn once above the devices.
const LEGEND: &str = "<p class=\"muted\">Each device's custody over the export's period, left to right: \
<svg width=\"12\" height=\"12\" role=\"img\" aria-label=\"in the safe\"><rect width=\"12\" height=\"12\" fill=\"#34a853\"/></svg> in the safe, \
<svg width=\"12\" height=\"12\" role=\"img\" aria-label=\"checked out\"><rect width=\"12\" height=\"12\" fill=\"#f29900\"/></svg> checked out, \
<svg width=\"12\" height=\"12\" role=\"img\" aria-label=\"registered\"><rect width=\"12\" height=\"12\" fill=\"#d0d0d0\"/></svg> registered, \
<svg width=\"12\" height=\"12\" role=\"img\" aria-label=\"ended\"><rect width=\"12\" height=\"12\" fill=\"#5f6368\"/></svg> retired, lost, destroyed or released; \
<svg width=\"12\" height=\"12\" role=\"img\" aria-label=\"release\"><rect x=\"5\" width=\"2\" height=\"12\" fill=\"#1a73e8\"/></svg> a code released, \
<svg width=\"12\" height=\"12\" role=\"img\" aria-label=\"incident\"><rect x=\"4\" width=\"4\" height=\"12\" fill=\"#d93025\"/></svg> an incident opened.</p>\n";

/// One device's custody drawn as inline SVG (no script, nothing loaded): its state over the
/// export's period from its timeline, with a mark at each code release and incident.
fn custody_picture(o: &mut String, d: &DeviceReport, first: Option<i64>, last: Option<i64>) {
    const W: f64 = 720.0;
    let (Some(first), Some(last)) = (first, last) else {
        return;
    };
    let span = (last - first).max(1) as f64;
    let x = |t: i64| ((t - first) as f64 / span * W).clamp(0.0, W);
    let mut spans: Vec<(i64, &str)> = Vec::new();
    let mut marks: Vec<(i64, &str, String)> = Vec::new();
    for e in &d.timeline {
        let state = match e.kind.as_str() {
            "device.registered" => Some("registered"),
            "device.checked_in" => Some("in_safe"),
            "device.checked_out" => Some("checked_out"),
            // Every state change recorded is to a terminal state.
            "device.state_changed" => Some("ended"),
            _ => None,
        };
        if let Some(st) = state {
            spans.push((e.time_ms, st));
        }
        match e.kind.as_str() {
            "code.released" => marks.push((e.time_ms, RELEASE, e.what.clone())),
            "incident.opened" => marks.push((e.time_ms, INCIDENT, e.what.clone())),
            _ => {}
        }
    }
    let _ = write!(
        o,
        "<svg class=\"custody\" width=\"{W}\" height=\"22\" viewBox=\"0 0 {W} 22\" role=\"img\" aria-label=\"custody of device {}\">\
<g transform=\"translate(0,4)\"><rect width=\"{W}\" height=\"14\" fill=\"#f0f0f0\"/>",
        escape(&d.serial)
    );
    for (i, (t, st)) in spans.iter().enumerate() {
        let end = spans.get(i + 1).map_or(last, |n| n.0);
        let (x0, x1) = (x(*t), x(end));
        let (colour, words) = STATES
            .iter()
            .find(|(name, _, _)| name == st)
            .map_or(("#f0f0f0", "?"), |(_, c, w)| (*c, *w));
        let _ = write!(
            o,
            "<rect x=\"{x0:.1}\" width=\"{:.1}\" height=\"14\" fill=\"{colour}\"><title>{words} from {}</title></rect>",
            (x1 - x0).max(1.0),
            utc(*t)
        );
    }
    o.push_str("</g>");
    for (t, colour, what) in &marks {
        let _ = write!(
            o,
            "<rect x=\"{:.1}\" width=\"3\" height=\"22\" fill=\"{colour}\"><title>{} {}</title></rect>",
            (x(*t) - 1.5).max(0.0),
            utc(*t),
            escape(what)
        );
    }
    o.push_str("</svg>\n");
}

/// Per person: approvals and denials given, keys checked out and in, refusals met.
fn people_part(o: &mut String, r: &CustodyReport) {
    #[derive(Default)]
    struct Part {
        approvals: u64,
        denials: u64,
        check_outs: u64,
        check_ins: u64,
        refusals: u64,
    }
    let mut people: std::collections::BTreeMap<&str, Part> = Default::default();
    for q in r.requests() {
        for a in &q.approvals {
            people.entry(a.who.as_str()).or_default().approvals += 1;
        }
        if let Some(c) = q.closed.as_ref().filter(|c| c.kind == "request.denied") {
            people.entry(c.who.as_str()).or_default().denials += 1;
        }
    }
    for e in r.devices.values().flat_map(|d| d.timeline.iter()) {
        match e.kind.as_str() {
            "device.checked_out" => people.entry(e.actor.as_str()).or_default().check_outs += 1,
            "device.checked_in" => people.entry(e.actor.as_str()).or_default().check_ins += 1,
            _ => {}
        }
    }
    for e in &r.refusals {
        people.entry(e.actor.as_str()).or_default().refusals += 1;
    }
    o.push_str("<h2 id=\"officers\">People's part</h2>\n");
    if people.is_empty() {
        o.push_str("<p class=\"muted\">No approval, check-out or refusal in this export.</p>\n");
        return;
    }
    o.push_str("<table><tr><th>who</th><th>approvals</th><th>denials</th><th>check-outs</th><th>check-ins</th><th>refusals</th></tr>\n");
    for (who, p) in &people {
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(who),
            p.approvals,
            p.denials,
            p.check_outs,
            p.check_ins,
            p.refusals
        );
    }
    o.push_str(
        "</table>\n<p class=\"muted\">Who did what, counted from the export's events: \
approvals and denials of requests, keys checked out of and into the safe, refusals recorded \
against them (an officer pair counts as one actor).</p>\n",
    );
}

/// CloudTrail's root activity against the export: findings first, then what was explained.
fn cloudtrail_section(o: &mut String, ct: &Reconciliation) {
    let info = ct
        .findings
        .iter()
        .filter(|f| f.kind.informational())
        .count();
    let _ = write!(
        o,
        "<h2 id=\"cloudtrail\">CloudTrail root activity</h2>\n<div class=\"{class}\"><strong>{verdict}</strong> \
{records} CloudTrail record(s){period}: {root} root, {assumed} in AssumeRoot sessions, {other} of other \
identities (not judged). {explained} root event(s) explained by a release; {attention} finding(s) need \
attention, {info} informational.</div>\n",
        class = if ct.clean() { "ok" } else { "bad" },
        verdict = if ct.clean() {
            "Every root sign-in and root call is explained."
        } else {
            "Root activity that no release explains."
        },
        records = ct.records,
        period = ct
            .covered_ms
            .map(|(a, b)| format!(" from {} to {}", utc(a), utc(b)))
            .unwrap_or_default(),
        root = ct.root_records - ct.assume_root,
        assumed = ct.assume_root,
        other = ct.other_identities,
        explained = ct.explained.len(),
        attention = ct.findings.len() - info,
    );
    if !ct.findings.is_empty() {
        o.push_str("<h3>Findings</h3>\n<table><tr><th>time (UTC)</th><th>account</th><th>finding</th><th>CloudTrail event</th><th>what it means</th></tr>\n");
        for f in &ct.findings {
            let _ = writeln!(
                o,
                "<tr><td class=\"t\">{}</td><td>{}</td><td><code>{}</code>{}</td><td class=\"h\">{}</td><td>{}</td></tr>",
                utc(f.time_ms),
                escape(&f.account),
                f.kind.as_str(),
                if f.kind.informational() { " (informational)" } else { "" },
                escape(f.event_id.as_deref().unwrap_or("\u{2014}")),
                escape(&f.sentence)
            );
        }
        o.push_str("</table>\n");
    }
    if !ct.explained.is_empty() {
        o.push_str("<h3>Explained</h3>\n<table><tr><th>time (UTC)</th><th>account</th><th>event</th><th>CloudTrail event</th><th>request</th><th>task</th><th>approved by</th></tr>\n");
        for e in &ct.explained {
            let _ = writeln!(
                o,
                "<tr><td class=\"t\">{}</td><td>{}</td><td><code>{}</code></td><td class=\"h\">{}</td><td class=\"h\">{}</td><td><code>{}</code></td><td>{}</td></tr>",
                utc(e.time_ms),
                escape(&e.account),
                escape(&e.event_name),
                escape(&e.event_id),
                escape(&e.request),
                escape(e.task.as_deref().unwrap_or("?")),
                escape(&e.approvers.join(", "))
            );
        }
        o.push_str("</table>\n");
    }
}

/// The `--json` summary of a written report.
pub fn summary(r: &CustodyReport, path: &Path, after_seq: Option<u64>) -> Value {
    let requests: Vec<&RequestReport> = r.requests().collect();
    json!({
        "ok": true,
        "valid": true,
        "path": path.display().to_string(),
        "ledger_id": r.ledger_id,
        "events": r.events,
        "stubs": r.stubs,
        "checkpoint_seq": r.checkpoint.checkpoint.seq,
        "head": r.checkpoint.checkpoint.head.to_hex(),
        "key_fingerprint": r.key_fingerprint,
        "after_seq": after_seq,
        "devices": r.devices.len(),
        "accounts": r.accounts.len(),
        "requests": requests.len(),
        "released": requests.iter().filter(|q| q.released.is_some()).count(),
        "incidents": r.incidents.len(),
        "open_incidents": r.open_incidents().map(|i| i.id.clone()).collect::<Vec<_>>(),
        "refusals": r.refusals.len(),
        "approvals": r.approval_proofs.as_ref().map(super::audit::approvals_json),
        "attested_keys": r.approval_proofs.as_ref().map(|a| a.attested_keys),
    })
}

/// Writes `content` to `out` atomically with mode 0600: a temporary file beside it, synced,
/// then linked into place (refusing an existing file) or, with `force`, renamed over it.
pub fn write_atomically(out: &Path, content: &[u8], force: bool) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"))?;
    if !force && std::fs::symlink_metadata(out).is_ok() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "already exists (use --force to replace it)",
        ));
    }
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(content)?;
        f.sync_all()?;
        drop(f);
        if force {
            std::fs::rename(&tmp, out)?;
        } else {
            // A hard link never replaces an existing file, even one created meanwhile.
            std::fs::hard_link(&tmp, out).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        "already exists (use --force to replace it)",
                    )
                } else {
                    e
                }
            })?;
            std::fs::remove_file(&tmp)?;
        }
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::custody::report::ReportBuilder;
    use crate::custody::store::kinds;
    use crate::ledger::{
        Actor, CanonicalJson, Checkpoint, EventHeader, ExportLine, Hash, Kind, LedgerId,
        SignedCheckpoint, StoredEvent, Timestamp, VerifiedExport,
    };
    use proptest::prelude::*;

    fn verified() -> VerifiedExport {
        VerifiedExport {
            ledger_id: LedgerId([1; 16]),
            events: 1,
            stubs: 0,
            redacted: 0,
            checkpoint: SignedCheckpoint {
                checkpoint: Checkpoint {
                    ledger_id: LedgerId([1; 16]),
                    seq: 1,
                    head: Hash([2; 32]),
                    time: Timestamp(0),
                },
                signature: [3; 64],
            },
        }
    }

    const FIELDS: &[&str] = &[
        "device",
        "account",
        "request",
        "incident",
        "seal",
        "location",
        "custodian",
        "by",
        "reason",
        "note",
        "detail",
        "task",
        "ticket",
        "requester",
        "officer",
        "kind",
        "from",
        "to",
        "user",
        "operation",
        "refusal",
        "primary",
        "backup",
        "provider",
        "alias",
    ];

    proptest! {
        /// Whatever strings the bodies hold, in whichever fields, the page carries none of
        /// their markup, and nothing panics.
        #[test]
        fn ledger_strings_never_become_markup(
            events in prop::collection::vec(
                (
                    prop::sample::select(kinds::ALL),
                    prop::collection::btree_map(
                        prop::sample::select(FIELDS),
                        "[a-z0-9 ]{0,4}(<x y=\"'&>)?[a-z ]{0,4}",
                        0..8,
                    ),
                    any::<bool>(),
                ),
                1..20,
            )
        ) {
            let mut b = ReportBuilder::new();
            for (seq, (kind, fields, records)) in events.into_iter().enumerate() {
                let mut body: serde_json::Map<String, serde_json::Value> = fields
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v)))
                    .collect();
                if records {
                    let record = serde_json::Value::Object(body.clone());
                    body.insert("records".into(), serde_json::json!([
                        {"entity": "device", "id": "<x>", "record": record},
                        {"entity": "request", "id": "<x>", "record": record},
                        {"entity": "incident", "id": "<x>", "record": record},
                    ]));
                }
                let body = CanonicalJson::from_value(&serde_json::Value::Object(body))
                    .expect("canonical");
                let header = EventHeader {
                    seq: seq as u64 + 1,
                    time: Timestamp(seq as i64 * 1000),
                    actor: Actor::parse("a+b").expect("actor"),
                    kind: Kind::parse(kind).expect("kind"),
                    body_hash: Hash([0; 32]),
                    prev: Hash([0; 32]),
                    hash: Hash([0; 32]),
                };
                b.observe(&ExportLine::Event(StoredEvent { header, body }));
            }
            let html = render_html(&b.finish(&verified(), "fp".into()), 0, Some(1));
            prop_assert!(!html.contains("<x"));
            prop_assert!(!html.contains("y=\""));
        }
    }

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
        assert_eq!(escape("plain é"), "plain é");
    }

    #[test]
    fn escape_shows_controls_bidi_and_invisible_characters() {
        assert_eq!(
            escape("ok\u{1b}[8m<b>\u{202e}gnp.exe\u{200b}\nby alice"),
            "ok\\u{1b}[8m&lt;b&gt;\\u{202e}gnp.exe\\u{200b}\\nby alice"
        );
    }

    /// A deny note and an incident note an older ledger already holds reach the page with
    /// their escape and bidi characters visibly escaped.
    #[test]
    fn a_stored_bad_note_is_shown_escaped_in_the_report() {
        let mut b = ReportBuilder::new();
        let events = [
            (
                kinds::REQUEST_DENIED,
                serde_json::json!({"request": "req-00000000000000a1", "by": "bob",
                                   "note": "fine\u{1b}[2J\u{202e}devorppa"}),
            ),
            (
                kinds::INCIDENT_ACKNOWLEDGED,
                serde_json::json!({"incident": "inc-00000000000000a1",
                                   "note": "bag ok\nacknowledged by carol\u{2066}"}),
            ),
        ];
        for (seq, (kind, body)) in events.into_iter().enumerate() {
            let header = EventHeader {
                seq: seq as u64 + 1,
                time: Timestamp(seq as i64 * 1000),
                actor: Actor::parse("bob").expect("actor"),
                kind: Kind::parse(kind).expect("kind"),
                body_hash: Hash([0; 32]),
                prev: Hash([0; 32]),
                hash: Hash([0; 32]),
            };
            let body = CanonicalJson::from_value(&body).expect("canonical");
            b.observe(&ExportLine::Event(StoredEvent { header, body }));
        }
        let html = render_html(&b.finish(&verified(), "fp".into()), 0, None);
        for bad in ['\u{1b}', '\u{202e}', '\u{2066}'] {
            assert!(!html.contains(bad), "{bad:?} reached the page");
        }
        assert!(html.contains("fine\\u{1b}[2J\\u{202e}devorppa"), "{html}");
        assert!(
            html.contains("bag ok\\nacknowledged by carol\\u{2066}"),
            "{html}"
        );
    }

    #[test]
    fn atomic_write_refuses_an_existing_file_unless_forced() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tmp");
        let out = dir.path().join("r.html");
        write_atomically(&out, b"one", false).expect("first write");
        let mode = std::fs::metadata(&out).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let e = write_atomically(&out, b"two", false).expect_err("refused");
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&out).expect("read"), b"one");
        write_atomically(&out, b"three", true).expect("forced");
        assert_eq!(std::fs::read(&out).expect("read"), b"three");
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
    }
}
