//! `cargo xtask`: code generation, contract lint and the `mocks/` projection.

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
    /// Measure `mpapi mock` against a bare axum handler with wrk (requests/s, p99; target 80%).
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
    let cli = Cli::parse();
    let root = workspace_root();
    if let Command::Lint = cli.command {
        let findings = lint_all(&root);
        for finding in &findings {
            println!("{finding}");
        }
        println!("{} specs, {} findings", APIS.len(), findings.len());
        return Ok(if findings.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE });
    }
    if let Command::Codegen { check } = cli.command {
        let started = std::time::Instant::now();
        if check {
            let drift = xtask::codegen::drift(&root)?;
            for line in &drift {
                println!("{line}");
            }
            if !drift.is_empty() {
                println!("generated/ is out of date: run `cargo xtask codegen` and commit the result");
                return Ok(ExitCode::FAILURE);
            }
            println!("generated/ matches openapi/ ({:.1?})", started.elapsed());
        } else {
            let changed = xtask::codegen::write(&root)?;
            println!("{} files written ({:.1?})", changed.len(), started.elapsed());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let specs = Spec::load_all(&root)?;
    match cli.command {
        Command::Lint | Command::Codegen { .. } => unreachable!("handled above"),
        Command::Mocks { check: true } => {
            let stale: Vec<_> = specs.iter().flat_map(|spec| mock_drift(spec, &root)).collect();
            for finding in &stale {
                println!("{finding}");
            }
            Ok(if stale.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Bench(opts) => {
            Ok(if xtask::bench::run(&root, &opts)? { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Mocks { check: false } => {
            for spec in &specs {
                let changed = xtask::mocks::write(&root, spec)?;
                println!("{}: {} mock files written or removed", spec.api, changed.len());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
