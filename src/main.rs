//! The `mpapi` binary.

use clap::Parser as _;

// glibc's allocator serialises the many small allocations of concurrent requests on a lock
// (seen in `perf`); mimalloc keeps them per thread.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs go through a non-blocking writer so that one line per request does not hold up
    // the request that writes it. Its worker drains every line waiting, then flushes.
    let (writer, _guard) = tracing_appender::non_blocking(Batched::new(std::io::stdout()));
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_target(false)
        .with_timer(UtcMillis)
        .init();
    mpapi::cli::run(mpapi::cli::Cli::parse()).await
}

/// The log worker's output: lines gather in a buffer, and each flush writes them in one go and
/// then pauses the worker for [`Batched::PAUSE`], so that under load the lines of a millisecond
/// go out in one write. Without the pause the worker woke, wrote and went back to waiting for
/// nearly every line: a `write`, a `sched_yield` and often a wake-up call per request, which
/// cost as much as answering it. A lone line is written at once; only the next one can wait.
struct Batched<W: std::io::Write> {
    inner: std::io::BufWriter<W>,
}

impl<W: std::io::Write> Batched<W> {
    const PAUSE: std::time::Duration = std::time::Duration::from_millis(1);

    fn new(inner: W) -> Self {
        Batched { inner: std::io::BufWriter::with_capacity(64 * 1024, inner) }
    }
}

impl<W: std::io::Write> std::io::Write for Batched<W> {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        self.inner.write(line)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()?;
        std::thread::sleep(Self::PAUSE);
        Ok(())
    }
}

/// Log timestamps as `2026-11-21T11:16:11.934Z` (UTC, milliseconds). The date and time of day
/// are formatted once per second per thread: formatting them for every line cost more than the
/// rest of a request's log line.
struct UtcMillis;

impl tracing_subscriber::fmt::time::FormatTime for UtcMillis {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        thread_local! {
            static SECOND: std::cell::RefCell<(i64, String)> = const { std::cell::RefCell::new((i64::MIN, String::new())) };
        }
        let now = chrono::Utc::now();
        SECOND.with_borrow_mut(|(second, text)| {
            if *second != now.timestamp() {
                *second = now.timestamp();
                *text = now.format("%Y-%m-%dT%H:%M:%S").to_string();
            }
            // A leap second reads as 1000 ms and more; keep it inside the second.
            write!(w, "{text}.{:03}Z", now.timestamp_subsec_millis().min(999))
        })
    }
}
