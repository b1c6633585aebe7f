//! The `mpapi` binary.

use clap::Parser as _;

// glibc's allocator serialises the many small allocations of concurrent requests on a lock
// (seen in `perf`); mimalloc keeps them per thread.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs go through a non-blocking writer so that one line per request does not hold up
    // the request that writes it. Its worker drains every line waiting, then flushes: the
    // buffer turns a burst of lines into one write instead of one write per line.
    let (writer, _guard) = tracing_appender::non_blocking(std::io::BufWriter::new(std::io::stdout()));
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
