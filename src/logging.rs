//! Where log lines go: standard error, with the stream server's request lines batched.
//!
//! A player or a benchmark can send thousands of requests a second, and writing each request's
//! line with its own system call cost the stream server about a third of its throughput. Those
//! lines (target `offload::stream`, level INFO and below) are collected in a buffer written out
//! when it fills or at most [`FLUSH_INTERVAL`] later, as nginx's `access_log … buffer= flush=`
//! does; every other line is written at once, so warnings and errors are never held back.
//!
//! The batch is written by the `log-flush` thread, not by the request that fills it: a request
//! only ever waits for another line's append, never for the disk (a write that stalls in the
//! kernel held up every request behind it when the request threads wrote the batch themselves).
//! A line that is written at once takes what is waiting with it, so lines keep their order.
//!
//! The request line itself is written here too ([`RequestLine`]), not by `tracing`'s formatter.

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Condvar, LazyLock, Mutex, MutexGuard, Once};
use std::time::{Duration, SystemTime};

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

const FLUSH_INTERVAL: Duration = Duration::from_millis(200);
/// A batch this large is handed to the `log-flush` thread at once.
const BUFFER: usize = 64 * 1024;
/// A batch this large (the disk far behind) is written by the request that adds to it, so a
/// stalled log holds requests back instead of growing without bound.
const LIMIT: usize = 16 * BUFFER;
const BATCHED_TARGET: &str = "offload::stream";

/// Lines not written yet, and the signal that a batch is full.
static PENDING: LazyLock<(Mutex<Vec<u8>>, Condvar)> =
    LazyLock::new(|| (Mutex::new(Vec::with_capacity(BUFFER)), Condvar::new()));
/// Held while a batch is written, so batches reach the file in the order they were taken; the
/// buffer the next batch is swapped into.
static WRITING: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static FLUSHER: Once = Once::new();

/// Give this to `tracing_subscriber::fmt().with_writer(…)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogOutput;

pub struct LogLine {
    batched: bool,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Writes out what is waiting; call before the process exits.
pub fn flush() {
    let _ = write_out();
}

fn write_out() -> std::io::Result<()> {
    let mut batch = locked(&WRITING);
    std::mem::swap(&mut *batch, &mut *locked(&PENDING.0));
    let written = std::io::stderr().write_all(&batch);
    batch.clear();
    written
}

/// Adds one batched line's bytes: a full batch wakes the `log-flush` thread.
fn append(write: impl FnOnce(&mut Vec<u8>)) {
    let mut pending = locked(&PENDING.0);
    write(&mut pending);
    let len = pending.len();
    drop(pending);
    if len >= LIMIT {
        flush();
    } else if len >= BUFFER {
        PENDING.1.notify_one();
    }
}

impl Write for LogLine {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.batched {
            append(|pending| pending.extend_from_slice(bytes));
        } else {
            locked(&PENDING.0).extend_from_slice(bytes);
            write_out()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        write_out()
    }
}

impl<'a> MakeWriter<'a> for LogOutput {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine { batched: false }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> LogLine {
        // Levels compare by verbosity: INFO and more verbose are batched.
        let batched = meta.target() == BATCHED_TARGET && *meta.level() >= Level::INFO;
        if batched {
            start_flusher();
        }
        LogLine { batched }
    }
}

fn start_flusher() {
    FLUSHER.call_once(|| {
        let _ = std::thread::Builder::new()
            .name("log-flush".into())
            .spawn(|| loop {
                let (pending, full) = &*PENDING;
                let waiting = full
                    .wait_timeout_while(locked(pending), FLUSH_INTERVAL, |pending| {
                        pending.len() < BUFFER
                    })
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                drop(waiting);
                flush();
            });
    });
}

/// The stream server's line for one answered request, in the words `tracing`'s formatter uses:
/// `2026-12-03T18:42:25.123456Z  INFO request method=GET path="/health" status=200 bytes=39 micros=12`.
///
/// Written straight into the batch: through `tracing` the line's timestamp, its field visitor
/// and the `Debug` quoting of the path took about a sixth of a redirect's time. It is written
/// when `OFFLOAD_LOG` enables `offload::stream` at INFO, as the `tracing` line was.
pub struct RequestLine<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub bytes: Option<u64>,
    pub micros: u64,
}

impl RequestLine<'_> {
    pub fn write(&self) {
        if !tracing::enabled!(target: BATCHED_TARGET, Level::INFO) {
            return;
        }
        start_flusher();
        let now = SystemTime::now();
        append(|pending| {
            let _ = self.write_to(pending, now);
        });
    }

    fn write_to(&self, output: &mut impl Write, now: SystemTime) -> std::io::Result<()> {
        let since_epoch = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        SECOND.with_borrow_mut(|(second, text)| {
            if *second != since_epoch.as_secs() || text.is_empty() {
                *second = since_epoch.as_secs();
                *text = chrono::DateTime::<chrono::Utc>::from(now)
                    .format("%Y-%m-%dT%H:%M:%S")
                    .to_string();
            }
            output.write_all(text.as_bytes())
        })?;
        write!(
            output,
            ".{:06}Z  INFO request method={} path=\"",
            since_epoch.subsec_micros(),
            self.method
        )?;
        // A URI's path holds no spaces or control characters; quotes and backslashes are escaped
        // as `Debug` would, so a line always reads back as one field.
        for piece in self.path.split_inclusive(['"', '\\']) {
            match piece.strip_suffix(['"', '\\']) {
                Some(text) => {
                    output.write_all(text.as_bytes())?;
                    output.write_all(b"\\")?;
                    output.write_all(&piece.as_bytes()[piece.len() - 1..])?;
                }
                None => output.write_all(piece.as_bytes())?,
            }
        }
        write!(output, "\" status={}", self.status)?;
        if let Some(bytes) = self.bytes {
            write!(output, " bytes={bytes}")?;
        }
        writeln!(output, " micros={}", self.micros)
    }
}

thread_local! {
    /// The current second as text, formatted once a second rather than once a request.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_line_reads_as_the_tracing_formatter_writes_it() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_micros(1_796_322_145_000_042);
        let mut text = Vec::new();
        RequestLine {
            method: "GET",
            path: "/api/media/7/stream",
            status: 302,
            bytes: Some(0),
            micros: 12,
        }
        .write_to(&mut text, at)
        .unwrap();
        RequestLine {
            method: "HEAD",
            path: r#"/odd"\path"#,
            status: 404,
            bytes: None,
            micros: 3,
        }
        .write_to(&mut text, at + Duration::from_secs(1))
        .unwrap();
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "2026-12-03T18:22:25.000042Z  INFO request method=GET path=\"/api/media/7/stream\" status=302 bytes=0 micros=12\n\
             2026-12-03T18:22:26.000042Z  INFO request method=HEAD path=\"/odd\\\"\\\\path\" status=404 micros=3\n"
        );
    }
}
