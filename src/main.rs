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
        .init();
    mpapi::cli::run(mpapi::cli::Cli::parse()).await
}
