//! `cargo xtask`: code generation, contract lint and the `mocks/` projection.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use xtask::lint::{lint_all, mock_drift};
use xtask::spec::{APIS, Spec, workspace_root};

/// mpapi's project automation.
#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure `mpapi mock` (target 80%), `mpapi serve`'s charging nearby search (`--suite
    /// nearby`: ≥ 5000 requests/s, p99 ≤ 20 ms) beside a bare axum handler with wrk, or the real
    /// server (`--suite serve`: authenticated read ≥ 40% of bare on SQLite and PostgreSQL,
    /// ≥ 1000 payment flows/s on PostgreSQL, all five APIs up in ≤ 150 ms with ≤ 40 MiB idle).
    Bench(xtask::bench::BenchOpts),
    /// Write the generated/ crate from openapi/.
    Codegen {
        /// Write nothing; exit non-zero when generated/ differs from what openapi/ generates.
        #[arg(long)]
        check: bool,
    },
    /// Check every spec in openapi/ and every file in mocks/ (what the contract tests check).
    Lint,
    /// Write mocks/ from the examples embedded in openapi/.
    Mocks {
        /// Write nothing; exit non-zero when mocks/ differs from the specs.
        #[arg(long)]
        check: bool,
    },
}

fn main() -> Result<ExitCode> {
    let root = workspace_root();
    match Cli::parse().command {
        Command::Lint => lint(&root),
        Command::Codegen { check } => codegen(&root, check),
        Command::Mocks { check } => mocks(&root, check),
        Command::Bench(opts) => Ok(exit(xtask::bench::run(&root, &opts)?)),
    }
}

fn exit(success: bool) -> ExitCode {
    if success { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn lint(root: &Path) -> Result<ExitCode> {
    let findings = lint_all(root);
    for finding in &findings {
        println!("{finding}");
    }
    println!("{} specs, {} findings", APIS.len(), findings.len());
    Ok(exit(findings.is_empty()))
}

fn codegen(root: &Path, check: bool) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    if !check {
        let changed = xtask::codegen::write(root)?;
        println!("{} files written ({:.1?})", changed.len(), started.elapsed());
        return Ok(ExitCode::SUCCESS);
    }
    let drift = xtask::codegen::drift(root)?;
    for line in &drift {
        println!("{line}");
    }
    if drift.is_empty() {
        println!("generated/ matches openapi/ ({:.1?})", started.elapsed());
    } else {
        println!("generated/ is out of date: run `cargo xtask codegen` and commit the result");
    }
    Ok(exit(drift.is_empty()))
}

fn mocks(root: &Path, check: bool) -> Result<ExitCode> {
    let specs = Spec::load_all(root)?;
    if check {
        let stale: Vec<_> = specs.iter().flat_map(|spec| mock_drift(spec, root)).collect();
        for finding in &stale {
            println!("{finding}");
        }
        return Ok(exit(stale.is_empty()));
    }
    for spec in &specs {
        let changed = xtask::mocks::write(root, spec)?;
        println!("{}: {} mock files written or removed", spec.api, changed.len());
    }
    Ok(ExitCode::SUCCESS)
}
