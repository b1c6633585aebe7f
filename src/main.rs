//! The `mpapi` binary.

use clap::Parser as _;

// glibc's allocator serialises the many small allocations of concurrent requests on a lock
// (seen in `perf`); mimalloc keeps them per thread. Its `override` feature makes it the C code's
// `malloc` too (SQLite, aws-lc): glibc kept an arena per SQLite connection thread, about 4.5 MB
// of an idle `serve`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    // mimalloc asks for transparent huge pages on its arenas, so every 2 MiB region it touches
    // is resident whole: idle `serve` held 75 MB, 50 MB without (mock 48 → 36 MB), at the same
    // throughput (wrk, mock mode). Set before the runtime's threads allocate.
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::thread::disable_transparent_huge_pages(true) {
        eprintln!("mpapi: transparent huge pages stay on ({error})");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    // Logging starts once the command knows its configuration (`log_format`).
    runtime.block_on(mpapi::cli::run(mpapi::cli::Cli::parse()))
}
