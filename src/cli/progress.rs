//! A progress line on standard error for long exports and verifications: drawn only when
//! standard error is a terminal and the output is not `--json`, never before a short delay (so
//! quick runs print nothing), at most ten times a second, and erased when the work ends.
//!
//! The ledger knows nothing of it: callers count what passes through a reader or writer
//! ([`CountingReader`], [`LineCounter`]) or receive a per-event callback.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::time::{Duration, Instant};

/// How long a run must last before the line appears.
const DELAY: Duration = Duration::from_millis(300);
/// Least time between two redraws.
const EVERY: Duration = Duration::from_millis(100);

/// What is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Bytes (shown in MiB).
    Bytes,
    /// Ledger events.
    Events,
}

/// A progress line.
pub struct Progress {
    label: &'static str,
    unit: Unit,
    total: Option<u64>,
    done: u64,
    started: Instant,
    last: Option<Instant>,
    delay: Duration,
    out: Option<Box<dyn Write>>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("label", &self.label)
            .field("done", &self.done)
            .field("total", &self.total)
            .field("shown", &self.out.is_some())
            .finish()
    }
}

/// Whether a command shows progress: not in `--json`, and only on a terminal.
pub fn wanted(json: bool, stderr_is_terminal: bool) -> bool {
    !json && stderr_is_terminal
}

impl Progress {
    /// Progress of `label` towards `total` (unknown: `None`), on standard error when
    /// [`wanted`]; otherwise a counter that draws nothing.
    pub fn stderr(json: bool, label: &'static str, unit: Unit, total: Option<u64>) -> Self {
        let out: Option<Box<dyn Write>> = if wanted(json, std::io::stderr().is_terminal()) {
            Some(Box::new(std::io::stderr()))
        } else {
            None
        };
        Self::to(out, label, unit, total, DELAY)
    }

    /// Progress drawn on `out` (none: hidden) once `delay` has passed.
    pub fn to(
        out: Option<Box<dyn Write>>,
        label: &'static str,
        unit: Unit,
        total: Option<u64>,
        delay: Duration,
    ) -> Self {
        Self {
            label,
            unit,
            total,
            done: 0,
            started: Instant::now(),
            last: None,
            delay,
            out,
        }
    }

    /// Sets how much is done, redrawing when due.
    pub fn set(&mut self, done: u64) {
        self.done = done;
        if self.out.is_none() {
            return;
        }
        let now = Instant::now();
        let due = match self.last {
            None => now.duration_since(self.started) >= self.delay,
            Some(t) => now.duration_since(t) >= EVERY,
        };
        if due {
            self.last = Some(now);
            self.draw();
        }
    }

    /// Adds to what is done.
    pub fn add(&mut self, n: u64) {
        self.set(self.done.saturating_add(n));
    }

    /// The line as drawn now (without the leading carriage return).
    pub fn line(&self) -> String {
        let amount = |n: u64| match self.unit {
            Unit::Bytes => format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0)),
            Unit::Events => format!("{n} events"),
        };
        match self.total {
            Some(t) if t > 0 => format!(
                "{}: {} of {} ({}%)",
                self.label,
                amount(self.done.min(t)),
                amount(t),
                self.done.min(t) * 100 / t
            ),
            _ => format!("{}: {}", self.label, amount(self.done)),
        }
    }

    fn draw(&mut self) {
        let line = self.line();
        if let Some(out) = &mut self.out {
            // "\r" returns to the start of the line, ESC[K erases what was left of the last one.
            let _ = write!(out, "\r{line}\x1b[K");
            let _ = out.flush();
        }
    }

    /// Erases the line if it was drawn.
    pub fn finish(&mut self) {
        if self.last.take().is_some() {
            if let Some(out) = &mut self.out {
                let _ = write!(out, "\r\x1b[K");
                let _ = out.flush();
            }
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A reader that reports the bytes consumed through it.
pub struct CountingReader<R> {
    inner: R,
    progress: Progress,
    read: u64,
}

impl<R> CountingReader<R> {
    /// Counts what is read from `inner` into `progress`.
    pub fn new(inner: R, progress: Progress) -> Self {
        Self {
            inner,
            progress,
            read: 0,
        }
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        self.progress.set(self.read);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for CountingReader<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.inner.consume(amt);
        self.read += amt as u64;
        self.progress.set(self.read);
    }
}

/// A writer that counts the lines written through it (one export line per event).
pub struct LineCounter<'a, W: ?Sized> {
    inner: &'a mut W,
    progress: Progress,
    lines: u64,
}

impl<'a, W: Write + ?Sized> LineCounter<'a, W> {
    /// Counts the newlines written to `inner`; `progress` gets the lines after the first
    /// (the export header), that is the events written.
    pub fn new(inner: &'a mut W, progress: Progress) -> Self {
        Self {
            inner,
            progress,
            lines: 0,
        }
    }
}

impl<W: Write + ?Sized> Write for LineCounter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        let written = buf.get(..n).unwrap_or_default();
        self.lines += written.iter().filter(|b| **b == b'\n').count() as u64;
        self.progress.set(self.lines.saturating_sub(1));
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
        }
    }

    #[test]
    fn only_on_a_terminal_and_never_in_json() {
        assert!(wanted(false, true));
        assert!(!wanted(true, true));
        assert!(!wanted(false, false));
        assert!(!wanted(true, false));
    }

    #[test]
    fn draws_after_the_delay_and_erases_itself() {
        let out = Shared::default();
        let mut p = Progress::to(
            Some(Box::new(out.clone())),
            "verifying",
            Unit::Events,
            Some(200),
            Duration::ZERO,
        );
        p.set(50);
        assert_eq!(
            out.text(),
            "\rverifying: 50 events of 200 events (25%)\x1b[K"
        );
        p.set(60);
        assert_eq!(
            out.text().matches('\r').count(),
            1,
            "not redrawn within 100 ms"
        );
        p.finish();
        assert!(out.text().ends_with("\r\x1b[K"), "erased");
        let before = out.text();
        drop(p);
        assert_eq!(out.text(), before, "erased once");
    }

    #[test]
    fn quick_runs_and_hidden_progress_print_nothing() {
        let out = Shared::default();
        let mut p = Progress::to(
            Some(Box::new(out.clone())),
            "exporting",
            Unit::Events,
            None,
            Duration::from_secs(3600),
        );
        p.set(10);
        p.finish();
        assert_eq!(out.text(), "");
        let mut hidden = Progress::to(None, "x", Unit::Bytes, Some(1), Duration::ZERO);
        hidden.set(1);
        assert_eq!(hidden.line(), "x: 0.0 MiB of 0.0 MiB (100%)");
    }

    #[test]
    fn readers_and_writers_count_what_passes() {
        let out = Shared::default();
        let progress = Progress::to(
            Some(Box::new(out.clone())),
            "verifying",
            Unit::Bytes,
            Some(4 * 1024 * 1024),
            Duration::ZERO,
        );
        let data = vec![b'x'; 2 * 1024 * 1024];
        let mut r = CountingReader::new(std::io::BufReader::new(&data[..]), progress);
        let mut sink = Vec::new();
        r.read_to_end(&mut sink).expect("read");
        assert!(out.text().contains("verifying: "), "{}", out.text());
        assert_eq!(r.read, data.len() as u64);

        let mut buf = Vec::new();
        let mut w = LineCounter::new(
            &mut buf,
            Progress::to(None, "exporting", Unit::Events, Some(2), Duration::ZERO),
        );
        w.write_all(b"header\nev1\nev2\n").expect("write");
        assert_eq!(w.progress.done, 2, "events: lines after the header");
    }
}
