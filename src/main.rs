//! The `mpapi` binary.

use clap::Parser as _;

// glibc's allocator serialises the many small allocations of concurrent requests on a lock
// (seen in `perf`); mimalloc keeps them per thread.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logging starts once the command knows its configuration (`log_format`).
    mpapi::cli::run(mpapi::cli::Cli::parse()).await
}
