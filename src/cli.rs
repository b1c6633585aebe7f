//! The `mpapi` command line: `mpapi serve` (the real server) and `mpapi mock` (documented examples),
//! `mpapi points` (operator commands) and the hidden `mpapi bench-data` (the nearby benchmark's
//! stations).

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
    /// Operate the points API's stored state (001 §4): system status and maintenance, notices.
    #[command(subcommand)]
    Points(PointsCommand),
    /// Load the nearby benchmark's generated stations (`cargo xtask bench --suite nearby` runs
    /// it on a database of its own). Hidden from help: bench data has no place in a real
    /// database, so production is refused.
    #[command(hide = true)]
    BenchData(BenchDataArgs),
}

/// `mpapi bench-data`: the database of `serve` (the same configuration), migrated, gets the
/// generated stations BS000000… over greater Shenzhen, one DC pile with two ports each, under the
/// seed `charging.bench` (once: a database that has them keeps them, whatever `--stations` says).
#[derive(Args)]
struct BenchDataArgs {
    /// How many stations to generate.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    stations: usize,
    /// A TOML configuration file (for the database URL; default as for `serve`).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// `mpapi points …`: what an operator changes while the servers run (every instance reads it
/// from the database).
#[derive(Subcommand)]
enum PointsCommand {
    /// Set the system status (001 §4.1). While maintenance is on, orders, API key changes and
    /// metered debits are refused with HTTP 503.
    Status(PointsStatusArgs),
    /// Publish a notice (001 §4.2).
    Notice(PointsNoticeArgs),
    /// Withdraw every notice shown now or still to come (001 §4.2): `hasNotice` reads false
    /// until another is published.
    WithdrawNotices(PointsConfigArgs),
}

#[derive(Args)]
struct PointsConfigArgs {
    /// A TOML configuration file (for the database URL).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Args)]
struct PointsStatusArgs {
    /// Maintenance on or off.
    #[arg(long, value_name = "on|off", value_parser = ["on", "off"])]
    maintenance: String,
    /// The expected end of the maintenance (RFC 3339, e.g. 2026-12-24T06:00:00+08:00); also
    /// announces a planned one while maintenance is off. An estimate shown to users: the
    /// maintenance ends when an operator turns it off, never by itself.
    #[arg(long, value_name = "TIME")]
    until: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// What users are told (default: the document's wording for the state).
    #[arg(long, value_name = "TEXT")]
    message: Option<String>,
    /// A TOML configuration file (for the database URL).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Args)]
struct PointsNoticeArgs {
    /// The notice's text.
    #[arg(long, value_name = "TEXT")]
    content: String,
    /// Shown from (RFC 3339; default now).
    #[arg(long, value_name = "TIME")]
    from: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// Shown until (RFC 3339).
    #[arg(long, value_name = "TIME")]
    until: chrono::DateTime<chrono::FixedOffset>,
    /// A TOML configuration file (for the database URL).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
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

/// Run the command line, logging as configured (`serve`: its configuration's `log_format`; the
/// others: `MPAPI_LOG_FORMAT`) until it is done.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let config = crate::config::Config::load(args.config.as_deref())?;
            let _log = crate::logging::init(config.log_format);
            // Caught from here on: a stop during the start (migrations, seeding) ends it cleanly.
            let stop = server::stop_requested();
            logged(crate::serve::run(config, args.listen, stop).await)
        }
        command => {
            let _log = crate::logging::init(crate::config::Config::log_format_from_env()?);
            logged(match command {
                Command::Mock(args) => mock(args, server::stop_requested()).await,
                Command::Points(command) => points(command).await,
                Command::BenchData(args) => bench_data(args).await,
                Command::Serve(_) => unreachable!("served above"),
            })
        }
    }
}

/// `result`, its error also logged (level ERROR, the whole chain in `error`) while the log is
/// JSON: a collector reading stdout then sees why the process ended, which `main` prints only on
/// stderr, as plain text. A text log leaves it to that line alone. An error before the log
/// starts (reading the configuration, which names the format) is stderr's only.
fn logged<T>(result: Result<T>) -> Result<T> {
    if let Err(error) = &result
        && crate::logging::is_json()
    {
        tracing::error!(error = format!("{error:#}"), "mpapi stopped on an error");
    }
    result
}

async fn bench_data(args: BenchDataArgs) -> Result<()> {
    let config = crate::config::Config::load(args.config.as_deref())?;
    if config.env == crate::config::Environment::Production {
        bail!("refusing to load bench data into a production database");
    }
    let db = crate::storage::Db::connect(&config.database_url).await?;
    let now = chrono::Utc::now().timestamp_millis();
    let written = crate::charging::seed::bench(&db, args.stations, now).await?;
    let count = db.charging().station_count().await?;
    db.close().await;
    let seed = crate::charging::seed::BENCH_SEED;
    if written {
        println!("{seed}: {} generated stations written ({count} stations in the database)", args.stations);
    } else {
        println!("{seed}: already loaded ({count} stations in the database)");
    }
    Ok(())
}

async fn points(command: PointsCommand) -> Result<()> {
    use crate::storage::points::{Notice, SystemStatus};
    let config_path = match &command {
        PointsCommand::Status(args) => args.config.clone(),
        PointsCommand::Notice(args) => args.config.clone(),
        PointsCommand::WithdrawNotices(args) => args.config.clone(),
    };
    let config = crate::config::Config::load(config_path.as_deref())?;
    let db = crate::storage::Db::connect(&config.database_url).await?;
    let now = chrono::Utc::now().timestamp_millis();
    match command {
        PointsCommand::Status(args) => {
            let maintenance = args.maintenance == "on";
            if args.until.is_some_and(|t| t.timestamp_millis() <= now) {
                bail!("--until must be in the future");
            }
            let until = args.until.map(|t| crate::clock::iso_s(t.timestamp_millis()));
            let message = match (args.message, maintenance, &until) {
                (Some(message), ..) if message.trim().is_empty() => bail!("--message must not be empty"),
                (Some(message), ..) => message.trim().to_owned(),
                (None, true, _) => "系统升级维护中，期间暂停API调用与积分购买".into(),
                (None, false, Some(until)) => format!("服务运行正常，系统将进行升级维护，预计{until}结束"),
                (None, false, None) => crate::points::service::NORMAL_STATUS_MESSAGE.into(),
            };
            let status = SystemStatus {
                api_status: if maintenance { "error".into() } else { "normal".into() },
                message,
                maintenance,
                maintenance_end_time: args.until.map(|t| t.timestamp_millis()),
            };
            if !db.points_reference().set_status(&status, now).await? {
                bail!("this database has no points data yet: start `mpapi serve` on it once first");
            }
            println!("points status: maintenance {}, {}", args.maintenance, status.message);
        }
        PointsCommand::Notice(args) => {
            let start_time = args.from.map_or(now, |t| t.timestamp_millis());
            let end_time = args.until.timestamp_millis();
            if end_time <= start_time || end_time <= now {
                bail!("--until must be after --from and in the future");
            }
            if args.content.trim().is_empty() {
                bail!("--content must not be empty");
            }
            let id = format!("notice_{}", crate::random::hex(12));
            db.points_reference().add_notice(&id, &Notice { content: args.content.trim().to_owned(), start_time, end_time }).await?;
            println!("points notice {id} published");
        }
        PointsCommand::WithdrawNotices(_) => {
            let withdrawn = db.points_reference().withdraw_notices(now).await?;
            println!("points notices withdrawn: {withdrawn}");
        }
    }
    db.close().await;
    Ok(())
}

async fn mock(args: MockArgs, stop: server::StopRequested) -> Result<()> {
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
    crate::logging::say(&format!("mpapi mock — examples from {} (validation: {:?}); each port's / says where to start", dir.display(), args.validation));
    // How to pick an example is the same on every port: said once.
    if let Some((api, _)) = served.first() {
        for note in crate::start::mock(*api, &served).notes {
            crate::logging::say(&format!("  {note}"));
        }
    }
    server::run(apps, args.listen.bind, server::PeerAddresses::Omit, &server::Cors::AnyOrigin, stop).await
}
