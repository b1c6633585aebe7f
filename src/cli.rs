//! The `mpapi` command line: `mpapi serve` (the real server) and `mpapi mock` (documented examples).

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand};

use crate::apis::{self, APIS, Api};
use crate::mock::{Latency, MockLayer, MockSource, Validation};
use crate::server;

/// Five WeChat mini-program backends served from their OpenAPI contracts.
#[derive(Parser)]
#[command(name = "mpapi", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The real server: implemented APIs over a database, sandbox providers by default.
    Serve(ServeArgs),
    /// Answer every documented operation with its documented examples (mock mode).
    Mock(MockArgs),
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    listen: Listen,
    /// A TOML configuration file (default: `$MPAPI_CONFIG`, else `mpapi.toml` when present).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// heating's port, the one its document names for development; the others follow it.
pub const DEFAULT_PORT_BASE: u16 = 3000;

/// Which APIs, and where they listen.
#[derive(Args, Clone)]
pub struct Listen {
    /// Serve only this API (repeatable): heating, points, community, charging, o2o.
    #[arg(long = "api", value_name = "NAME")]
    pub apis: Vec<String>,
    /// The first port: heating listens on N, points N+1, community N+2, charging N+3, o2o N+4.
    #[arg(long, default_value_t = DEFAULT_PORT_BASE, value_name = "N")]
    pub port_base: u16,
    /// The address to listen on; 0.0.0.0 lets a phone on the same network reach mpapi.
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDR")]
    pub bind: IpAddr,
}

impl Listen {
    /// The APIs selected with `--api` (all five when none is given), in port order.
    pub fn selected(&self) -> Result<Vec<Api>> {
        if self.apis.is_empty() {
            return Ok(APIS.to_vec());
        }
        let mut selected = Vec::new();
        for name in &self.apis {
            match apis::by_id(name) {
                Some(api) if !selected.iter().any(|a: &Api| a.id == api.id) => selected.push(api),
                Some(_) => {}
                None => bail!("unknown API {name:?}; the APIs are heating, points, community, charging, o2o"),
            }
        }
        selected.sort_by_key(|a| a.offset);
        Ok(selected)
    }
}

#[derive(Args)]
struct MockArgs {
    #[command(flatten)]
    listen: Listen,
    /// What to do with a request that breaks the contract.
    #[arg(long, value_enum, default_value_t = Validation::Enforce)]
    validation: Validation,
    /// Added latency per response, in ms: `200` or a range `100-500`.
    #[arg(long, value_name = "MS|MIN-MAX")]
    latency: Option<Latency>,
    /// Reload mocks/ files when they change, without a restart.
    #[arg(long)]
    watch: bool,
    /// The mocks folder (default: ./mocks, else the one this binary was built from).
    #[arg(long, value_name = "DIR")]
    mocks: Option<PathBuf>,
}

/// The mocks folder: `--mocks`, else `./mocks`, else the source tree's.
fn mocks_dir(explicit: Option<PathBuf>) -> PathBuf {
    explicit.unwrap_or_else(|| {
        let here = PathBuf::from("mocks");
        if here.is_dir() { here } else { PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mocks") }
    })
}

/// Run the command line.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Mock(args) => mock(args).await,
        Command::Serve(args) => {
            let config = crate::config::Config::load(args.config.as_deref())?;
            crate::serve::run(config, args.listen).await
        }
    }
}

async fn mock(args: MockArgs) -> Result<()> {
    let dir = mocks_dir(args.mocks);
    let mut apps = Vec::new();
    let mut sources = Vec::new();
    let listeners = server::bind_all(&args.listen.selected()?, args.listen.bind, args.listen.port_base).await?;
    let served = listeners.iter().map(|(api, listener)| Ok((*api, listener.local_addr()?.port()))).collect::<Result<Vec<_>>>()?;
    for (api, listener) in listeners {
        let source = MockSource::load(api, &dir)?;
        sources.push(source.clone());
        let layer = MockLayer::new(api, source, args.validation, args.latency.unwrap_or_default());
        apps.push((api, listener, server::mock_app(layer, &served)));
    }
    let _watcher = if args.watch { Some(crate::mock::watch(&dir, sources)?) } else { None };
    println!("mpapi mock — examples from {} (validation: {:?}); each port's / says where to start", dir.display(), args.validation);
    // How to pick an example is the same on every port: said once.
    if let Some((api, _)) = served.first() {
        for note in crate::start::mock(*api, &served).notes {
            println!("  {note}");
        }
    }
    server::run(apps, args.listen.bind, server::PeerAddresses::Omit, &server::Cors::AnyOrigin).await
}
