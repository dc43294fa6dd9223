//! Where log lines go: standard error, with the stream server's request lines batched.
//!
//! A player or a benchmark can send thousands of requests a second, and writing each request's
//! line with its own system call cost the stream server about a third of its throughput. Those
//! lines (target `offload::stream`, level INFO and below) are collected in a buffer written out
//! when it fills or at most [`FLUSH_INTERVAL`] later, as nginx's `access_log … buffer= flush=`
//! does; every other line is written at once, so warnings and errors are never held back.

use std::io::{BufWriter, Stderr, Write};
use std::sync::{LazyLock, Mutex, MutexGuard, Once};
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

const FLUSH_INTERVAL: Duration = Duration::from_millis(200);
const BUFFER: usize = 64 * 1024;
const BATCHED_TARGET: &str = "offload::stream";

static OUTPUT: LazyLock<Mutex<BufWriter<Stderr>>> =
    LazyLock::new(|| Mutex::new(BufWriter::with_capacity(BUFFER, std::io::stderr())));
static FLUSHER: Once = Once::new();

/// Give this to `tracing_subscriber::fmt().with_writer(…)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogOutput;

pub struct LogLine {
    batched: bool,
}

fn output() -> MutexGuard<'static, BufWriter<Stderr>> {
    OUTPUT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Writes out what is buffered; call before the process exits.
pub fn flush() {
    let _ = output().flush();
}

impl Write for LogLine {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut output = output();
        output.write_all(bytes)?;
        if !self.batched {
            output.flush()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        output().flush()
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
            FLUSHER.call_once(|| {
                let _ = std::thread::Builder::new()
                    .name("log-flush".into())
                    .spawn(|| loop {
                        std::thread::sleep(FLUSH_INTERVAL);
                        flush();
                    });
            });
        }
        LogLine { batched }
    }
}
