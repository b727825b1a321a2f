//! `custody audit cloudtrail`'s reading and matching on 1,000,000 CloudTrail records: a trail's
//! log file produced as a stream (never held in memory), plain and gzipped, read by
//! `read_records` into a `Reconciler`. Most records are other identities' calls, as in a real
//! trail; one in a thousand is root (sign-ins after releases, calls in their sessions, a few
//! outside any session). Prints the process's peak resident memory after the runs.
#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use mfa_custody::custody::cloudtrail::{
    read_records, Held, HeldAccount, Reconciler, Record, RecordProblem, Release, Windows,
};
use mfa_custody::custody::report::utc;

const RECORDS: u64 = 1_000_000;
const ACCOUNT: &str = "123456789012";
const T0: i64 = 1_796_040_000_000;

fn iso(ms: i64) -> String {
    utc(ms).replace(' ', "T")
}

/// Record `i` of the trail, as CloudTrail writes one (about 900 bytes for a role's call).
fn record(i: u64) -> String {
    let t = T0 + i as i64 * 10; // 1,000,000 records over about three hours
    if i % 1000 == 0 {
        let signin = i % 4000 == 0;
        let (source, name, extra) = if signin {
            (
                "signin.amazonaws.com",
                "ConsoleLogin",
                r#","responseElements":{"ConsoleLogin":"Success"},"additionalEventData":{"LoginTo":"https://console.aws.amazon.com/console/home","MobileVersion":"No","MFAUsed":"Yes"}"#,
            )
        } else {
            (
                "iam.amazonaws.com",
                "GetAccountSummary",
                r#","responseElements":null"#,
            )
        };
        return format!(
            r#"{{"eventVersion":"1.10","userIdentity":{{"type":"Root","principalId":"{ACCOUNT}","arn":"arn:aws:iam::{ACCOUNT}:root","accountId":"{ACCOUNT}","accessKeyId":""}},"eventTime":"{}","eventSource":"{source}","eventName":"{name}","awsRegion":"us-east-1","sourceIPAddress":"192.0.2.10","userAgent":"Mozilla/5.0","requestParameters":null{extra},"eventID":"root-{i:012}","readOnly":false,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"{ACCOUNT}","eventCategory":"Management"}}"#,
            iso(t)
        );
    }
    format!(
        r#"{{"eventVersion":"1.10","userIdentity":{{"type":"AssumedRole","principalId":"AROAEXAMPLE:session-{s}","arn":"arn:aws:sts::{ACCOUNT}:assumed-role/app/session-{s}","accountId":"{ACCOUNT}","accessKeyId":"ASIAEXAMPLE{s:06}","sessionContext":{{"sessionIssuer":{{"type":"Role","principalId":"AROAEXAMPLE","arn":"arn:aws:iam::{ACCOUNT}:role/app","accountId":"{ACCOUNT}","userName":"app"}},"attributes":{{"creationDate":"{}","mfaAuthenticated":"false"}}}}}},"eventTime":"{}","eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","awsRegion":"eu-west-1","sourceIPAddress":"198.51.100.{o}","userAgent":"aws-sdk-go-v2/1.30.0 os/linux","requestParameters":{{"instancesSet":{{}},"filterSet":{{"items":[{{"name":"tag:app","valueSet":{{"items":[{{"value":"web"}}]}}}}]}}}},"responseElements":null,"requestID":"req-{i:012}","eventID":"ev-{i:012}","readOnly":true,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"{ACCOUNT}","eventCategory":"Management","tlsDetails":{{"tlsVersion":"TLSv1.3","cipherSuite":"TLS_AES_128_GCM_SHA256","clientProvidedHostHeader":"ec2.eu-west-1.amazonaws.com"}}}}"#,
        iso(t - 60_000),
        iso(t),
        s = i % 997,
        o = i % 250,
    )
}

/// `{"Records":[ ... ]}` of `n` records, produced as it is read.
struct Trail {
    next: u64,
    n: u64,
    buf: Vec<u8>,
    at: usize,
    done: bool,
}

impl Trail {
    fn new(n: u64) -> Self {
        Self {
            next: 0,
            n,
            buf: b"{\"Records\":[".to_vec(),
            at: 0,
            done: false,
        }
    }
}

impl Read for Trail {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.buf.len() {
            if self.done {
                return Ok(0);
            }
            self.buf.clear();
            self.at = 0;
            if self.next == self.n {
                self.buf.extend_from_slice(b"]}\n");
                self.done = true;
            } else {
                if self.next > 0 {
                    self.buf.push(b',');
                }
                self.buf.extend_from_slice(record(self.next).as_bytes());
                self.next += 1;
            }
        }
        let k = out.len().min(self.buf.len() - self.at);
        out[..k].copy_from_slice(&self.buf[self.at..self.at + k]);
        self.at += k;
        Ok(k)
    }
}

/// One release before each root sign-in of the trail.
fn held() -> Held {
    let mut accounts = BTreeMap::new();
    accounts.insert(
        ACCOUNT.to_owned(),
        HeldAccount {
            account: ACCOUNT.to_owned(),
            removed_since_ms: None,
        },
    );
    let releases = (0..RECORDS / 4000)
        .map(|k| Release {
            request: format!("req-{k}"),
            account: ACCOUNT.to_owned(),
            task: Some("change-contact".into()),
            approvers: vec!["alice".into(), "bob".into()],
            time_ms: T0 + (k * 4000) as i64 * 10 - 30_000,
            seq: k + 1,
        })
        .collect();
    Held { accounts, releases }
}

fn run(input: impl Read) -> (u64, usize, usize) {
    let mut r = Reconciler::new(held(), Windows::default());
    let mut sink = |rec: Record| -> Result<(), RecordProblem> { r.push(rec) };
    let n = read_records(input, &mut sink).unwrap();
    let o = r.finish();
    (n, o.explained.len(), o.findings.len())
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn cloudtrail(c: &mut Criterion) {
    let bytes = std::io::copy(&mut Trail::new(RECORDS), &mut std::io::sink()).unwrap();
    let (n, explained, findings) = run(Trail::new(RECORDS));
    assert_eq!(n, RECORDS);
    // Before the gzipped trail is made: what reading the plain stream took at most.
    let read_peak = peak_rss_kib();
    // Each sign-in is explained, and the calls of its session; the calls of the last hour's
    // sessions too: nothing is unexplained in this trail.
    assert_eq!(findings, 0, "a clean trail");
    println!(
        "cloudtrail bench: {RECORDS} records, {:.0} MiB as JSON, {explained} explained",
        bytes as f64 / 1048576.0
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::copy(&mut Trail::new(RECORDS), &mut gz).unwrap();
    let gz = gz.finish().unwrap();
    println!(
        "cloudtrail bench: gzipped {:.1} MiB",
        gz.len() as f64 / 1048576.0
    );

    let mut g = c.benchmark_group("cloudtrail");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(30))
        .throughput(Throughput::Elements(RECORDS));
    g.bench_function("produce the log file only (the stream's own cost)", |b| {
        b.iter(|| black_box(std::io::copy(&mut Trail::new(RECORDS), &mut std::io::sink()).unwrap()))
    });
    g.bench_function("read + reconcile 1,000,000 records (log file)", |b| {
        b.iter(|| black_box(run(Trail::new(RECORDS))))
    });
    g.bench_function(
        "read + reconcile 1,000,000 records (gzipped log file)",
        |b| b.iter(|| black_box(run(gz.as_slice()))),
    );
    g.finish();
    let mut out = std::io::stdout();
    let kib = |k: Option<u64>| k.map_or_else(|| "?".to_owned(), |k| k.to_string());
    let _ = writeln!(
        out,
        "cloudtrail bench: peak resident memory {} KiB after reading the plain stream once; {} KiB at the end (the gzipped trail, {:.1} MiB, held in memory)",
        kib(read_peak),
        kib(peak_rss_kib()),
        gz.len() as f64 / 1048576.0
    );
}

criterion_group!(benches, cloudtrail);
criterion_main!(benches);
