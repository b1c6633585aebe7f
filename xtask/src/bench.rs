//! `cargo xtask bench`: a server's requests/s and p99 beside a bare axum handler answering the
//! same bytes, measured with wrk in one run. Three suites (`--suite mock|nearby|serve|all`):
//!
//! - `mock` (the default): `mpapi mock --api heating` on a public GET and a validated POST; the
//!   target is [`TARGET_RATIO`] of the bare handler's throughput.
//! - `nearby`: `mpapi serve --api charging` on a fresh SQLite file under `target/bench/` holding
//!   `--stations` generated stations (loaded with the hidden `mpapi bench-data`), asked
//!   [`NEARBY`] (`GET /api/station/nearby`, 5 km around 22.65 N 114.05 E, first page of 10) with
//!   the demo driver's bearer token; the target is [`NEARBY_TARGET`], an absolute one (≥ 5,000
//!   requests/s with p99 ≤ 20 ms), the bare handler being the machine's ceiling beside it.
//! - `serve` (issue 17, [`serve`]): the real server's authenticated read (heating's
//!   `GET /api/user/profile` with a bearer token from the SMS login, beside the bare handler, on
//!   a fresh SQLite file and on a fresh PostgreSQL schema of `--pg-url`; target
//!   [`serve::READ_TARGET`]), points' payment flows on PostgreSQL (order create → sandbox pay →
//!   signed notify → paid, driven by concurrent workers of this process; target
//!   [`serve::PAY_TARGET`] flows/s), and the cold start and idle RSS of all five APIs (`serve` on
//!   a fresh and on an existing SQLite file, `mock`; targets [`serve::START_TARGET`] and
//!   [`serve::RSS_TARGET_KIB`]). The PostgreSQL parts are skipped, saying so, when `psql` cannot
//!   reach `--pg-url`.
//! - `all`: the three, one after the other.
//!
//! Each wrk measurement: the server and the bare handler answer once and their answers are
//! compared, each side gets a warm-up per request, then rounds of (server, bare) back to back, the
//! side going first alternating; the verdict takes the median round.

use std::fmt;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

pub mod serve;

/// The share of the bare handler's throughput mock mode must reach (the issue's target).
pub const TARGET_RATIO: f64 = 0.80;

/// What `mpapi serve` must reach on [`NEARBY`] (the issue's target, on SQLite).
pub const NEARBY_TARGET: Target = Target::Absolute { requests_per_sec: 5_000.0, p99: Duration::from_millis(20) };

/// The API mock mode serves during the benchmark.
const API: &str = "heating";

/// Set on the release xtask a debug xtask hands the benchmark to, so it never hands it on again.
const RELEASE_MARKER: &str = "MPAPI_BENCH_RELEASE";

/// How long mock mode, `serve` and the bare server get to answer their first request.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Which benchmark to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SuiteName {
    /// `mpapi mock` on heating's GET and POST, against 80% of the bare handler.
    Mock,
    /// `mpapi serve`'s charging `GET /api/station/nearby` over generated stations on SQLite.
    Nearby,
    /// `mpapi serve`: heating's authenticated read on SQLite and PostgreSQL, points' payment
    /// flows on PostgreSQL, cold start and idle RSS of all five APIs.
    Serve,
    /// All three, one after the other.
    All,
}

impl SuiteName {
    fn selected(self) -> &'static [SuiteName] {
        match self {
            SuiteName::Mock => &[SuiteName::Mock],
            SuiteName::Nearby => &[SuiteName::Nearby],
            SuiteName::Serve => &[SuiteName::Serve],
            SuiteName::All => &[SuiteName::Mock, SuiteName::Nearby, SuiteName::Serve],
        }
    }

    fn name(self) -> &'static str {
        match self {
            SuiteName::Mock => "mock",
            SuiteName::Nearby => "nearby",
            SuiteName::Serve => "serve",
            SuiteName::All => "all",
        }
    }
}

/// Options of `cargo xtask bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchOpts {
    /// Seconds each measured wrk run lasts.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
    pub duration: u64,
    /// Connections wrk keeps open (and the serve suite's concurrent payment flows).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub connections: u32,
    /// Rounds of (server, bare) per request; the verdict takes the median round, so one
    /// disturbed run on a shared machine does not decide it.
    #[arg(long, default_value_t = 21, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// Which benchmark: mock mode, the charging API's nearby search on SQLite, the real server
    /// (`serve`), or all three.
    #[arg(long, value_enum, default_value_t = SuiteName::Mock)]
    pub suite: SuiteName,
    /// Generated stations in the nearby suite's database.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub stations: u64,
    /// The PostgreSQL of the serve suite (reached with `psql`): each measurement gets a fresh
    /// schema `mpapi_bench_…` in it, dropped afterwards.
    #[arg(long, default_value = serve::DEFAULT_PG_URL, value_name = "URL")]
    pub pg_url: String,
    /// The cargo profile `mpapi` and the bare server are built with: `dist` (the deployed build,
    /// fat LTO: the verdicts are set on it) or `release` (no LTO, built in a fraction of the
    /// time: for comparing two commits quickly). The report says which.
    #[arg(long, value_enum, default_value_t = BuildProfile::Dist)]
    pub profile: BuildProfile,
}

/// A cargo profile the benchmark builds with ([`BenchOpts::profile`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BuildProfile {
    /// `[profile.dist]`: release with fat LTO and one codegen unit.
    Dist,
    /// `[profile.release]`.
    Release,
}

impl BuildProfile {
    fn name(self) -> &'static str {
        match self {
            BuildProfile::Dist => "dist",
            BuildProfile::Release => "release",
        }
    }
}

/// wrk threads: one per core of the 2-core machines the target was set on.
const WRK_THREADS: u32 = 2;
/// Seconds of warm-up wrk runs against each side before a request's first round (connections,
/// caches, allocator).
const WARMUP_SECS: u64 = 1;
/// Worker threads of the bare server's tokio runtime.
const BARE_WORKERS: usize = 2;

/// One benchmarked request and where the bare handler's answer to it comes from.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The request path, with its query.
    pub path: &'static str,
    /// The JSON request body, sent with `Content-Type: application/json`.
    pub body: Option<&'static str>,
    /// The answer's mock file, relative to `mocks/<api>/` (mock mode); `None`: the bare handler
    /// answers what the measured server answered first.
    pub mock: Option<&'static str>,
    /// Whether it carries `Authorization: Bearer` with the suite's token (both sides get it).
    pub bearer: bool,
}

impl Probe {
    /// `METHOD /path`, without the query (the table's first column).
    pub fn label(&self) -> String {
        format!("{} {}", self.method, self.route())
    }

    /// The path without its query (the bare server's route).
    fn route(&self) -> &'static str {
        self.path.split_once('?').map_or(self.path, |(route, _)| route)
    }
}

/// The two requests of the issue: a public GET, and a public POST whose body mock mode validates.
pub const PROBES: [Probe; 2] = [
    Probe { method: "GET", path: "/api/config/system", body: None, mock: Some("config_system_get/success.json"), bearer: false },
    Probe {
        method: "POST",
        path: "/api/sms/send",
        body: Some(r#"{"phone":"13888888888","type":"login"}"#),
        mock: Some("sms_send/success.json"),
        bearer: false,
    },
];

/// The charging request of the issue: stations within 5 km of a point amid the generated ones
/// (greater Shenzhen, 22.45–22.85 N, 113.75–114.35 E), nearest first, the first page of 10.
pub const NEARBY: Probe = Probe {
    method: "GET",
    path: "/api/station/nearby?latitude=22.65&longitude=114.05&radius=5000&pageNum=1&pageSize=10",
    body: None,
    mock: None,
    bearer: true,
};

/// The demo driver's login (`mpapi serve` seeds it with the demo data), for the bearer token.
const DEMO_LOGIN: Probe = Probe {
    method: "POST",
    path: "/api/user/login",
    body: Some(r#"{"username":"demo_driver","password":"demo-pass-2026"}"#),
    mock: None,
    bearer: false,
};

/// What a suite's measured server must reach on each request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// The median round's server/bare throughput ratio at least this.
    Ratio(f64),
    /// The median of the server's requests/s at least `requests_per_sec`, and the median of its
    /// p99s at most `p99`.
    Absolute {
        /// Requests per second.
        requests_per_sec: f64,
        /// The 99th percentile latency.
        p99: Duration,
    },
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Ratio(ratio) => write!(f, "{:.0}% of the bare handler's throughput", ratio * 100.0),
            Target::Absolute { requests_per_sec, p99 } => {
                write!(f, "≥ {requests_per_sec:.0} requests/s with p99 ≤ {}", format_latency(*p99))
            }
        }
    }
}

/// What one wrk run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct WrkRun {
    /// `Requests/sec:`.
    pub requests_per_sec: f64,
    /// The 99th percentile of the latency distribution.
    pub p99: Duration,
    /// Requests completed.
    pub requests: u64,
    /// Answers with a status outside 2xx/3xx.
    pub non_2xx: u64,
    /// Connect, read, write and timeout errors together.
    pub socket_errors: u64,
}

/// The measured server and the bare handler back to back on one request.
#[derive(Debug, Clone)]
pub struct Round {
    /// The measured server (`mpapi mock`, `mpapi serve`).
    pub server: WrkRun,
    /// The bare axum handler.
    pub bare: WrkRun,
    /// The CPU time (user and system, all its threads) the server's process took during its
    /// run; `None` where `/proc` does not tell.
    pub server_cpu: Option<Duration>,
    /// The share (0–1) of the machine's CPU time the hypervisor gave to other guests over the
    /// round, both runs ([`MachineTicks`]); `None` where `/proc/stat` does not tell.
    pub steal: Option<f64>,
}

impl Round {
    /// The server's throughput as a share of the bare handler's.
    pub fn ratio(&self) -> f64 {
        self.server.requests_per_sec / self.bare.requests_per_sec
    }

    /// The server's CPU time per request answered in its run, µs: what a request costs the
    /// server whatever the machine's other work (wrk, PostgreSQL) takes.
    pub fn server_cpu_per_request_us(&self) -> Option<f64> {
        let cpu = self.server_cpu?;
        (self.server.requests > 0).then(|| cpu.as_secs_f64() * 1e6 / self.server.requests as f64)
    }

    fn clean(&self) -> bool {
        [&self.server, &self.bare].iter().all(|run| run.non_2xx == 0 && run.socket_errors == 0)
    }
}

/// Every round of one request.
#[derive(Debug, Clone)]
pub struct Pair {
    /// The request.
    pub probe: Probe,
    /// The rounds, in the order they ran.
    pub rounds: Vec<Round>,
}

impl Pair {
    /// The median of the rounds' server/bare throughput ratios (the lower middle one for an even
    /// number of rounds).
    pub fn ratio(&self) -> f64 {
        self.quantile(1, 2, Round::ratio)
    }

    /// The first and third quartiles of the rounds' ratios (how far the rounds spread).
    pub fn quartiles(&self) -> (f64, f64) {
        (self.quantile(1, 4, Round::ratio), self.quantile(3, 4, Round::ratio))
    }

    /// The median of the server's requests/s over the rounds.
    pub fn server_requests_per_sec(&self) -> f64 {
        self.quantile(1, 2, |round| round.server.requests_per_sec)
    }

    /// The median of the server's p99s over the rounds.
    pub fn server_p99(&self) -> Duration {
        Duration::from_secs_f64(self.quantile(1, 2, |round| round.server.p99.as_secs_f64()))
    }

    /// The median of the bare handler's requests/s and of its p99s over the rounds.
    pub fn bare_medians(&self) -> (f64, Duration) {
        let p99 = self.quantile(1, 2, |round| round.bare.p99.as_secs_f64());
        (self.quantile(1, 2, |round| round.bare.requests_per_sec), Duration::from_secs_f64(p99))
    }

    /// The median of the server's CPU µs per request over the rounds that tell it.
    pub fn server_cpu_per_request_us(&self) -> Option<f64> {
        quantile_of(self.rounds.iter().filter_map(Round::server_cpu_per_request_us).collect(), 1, 2)
    }

    /// The figure `key` `numerator/denominator` of the way up the sorted rounds (rounding down).
    fn quantile(&self, numerator: usize, denominator: usize, key: impl Fn(&Round) -> f64) -> f64 {
        quantile_of(self.rounds.iter().map(key).collect(), numerator, denominator).unwrap_or(0.0)
    }

    /// Whether the pair meets `target`, with every answer a success.
    pub fn passed(&self, target: Target) -> bool {
        let reached = match target {
            Target::Ratio(ratio) => self.ratio() >= ratio,
            Target::Absolute { requests_per_sec, p99 } => {
                self.server_requests_per_sec() >= requests_per_sec && self.server_p99() <= p99
            }
        };
        reached && self.clean()
    }

    fn clean(&self) -> bool {
        !self.rounds.is_empty() && self.rounds.iter().all(Round::clean)
    }
}

/// The benchmark's figures for one suite, printed as a table.
#[derive(Debug, Clone)]
pub struct Report {
    /// The options the runs used.
    pub opts: BenchOpts,
    /// The measured server as the header names it (`mpapi mock --api heating`).
    pub server: String,
    /// The measured side in the table and the verdict (`mock`, `serve`).
    pub side: &'static str,
    /// What the server must reach on every request.
    pub target: Target,
    /// Lines printed under the header (the nearby suite's data and answer).
    pub notes: Vec<String>,
    /// One pair per probe, in the suite's order.
    pub pairs: Vec<Pair>,
    /// Differences between the answers of the server and the bare handler (empty when equal).
    pub answer_mismatches: Vec<String>,
}

impl Report {
    /// Whether the server reached the target on every request.
    pub fn passed(&self) -> bool {
        !self.pairs.is_empty() && self.pairs.iter().all(|pair| pair.passed(self.target))
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.opts;
        writeln!(
            f,
            "{} vs bare axum; wrk -t{WRK_THREADS} -c{} -d{}s --latency (after a {WARMUP_SECS} s warm-up)",
            self.server, o.connections, o.duration
        )?;
        for note in &self.notes {
            writeln!(f, "  {note}")?;
        }
        let side = self.side;
        writeln!(
            f,
            "{:<24} {:>5} {:<5} {:>12} {:>10} {:>7} {:>13} {:>6}",
            "request", "round", "side", "requests/s", "p99", "ratio", "CPU/request", "steal"
        )?;
        for pair in &self.pairs {
            let request = pair.probe.label();
            for (number, round) in pair.rounds.iter().enumerate() {
                for (name, run) in [(side, &round.server), ("bare", &round.bare)] {
                    // The round's figures (ratio, steal) go on its second line.
                    let ratio = if name == "bare" { format!("{:.2}", round.ratio()) } else { String::new() };
                    let steal = match round.steal {
                        Some(share) if name == "bare" => format_steal(share),
                        _ => String::new(),
                    };
                    // The server's own CPU only: the bare handler shares xtask's process.
                    let cpu = match round.server_cpu_per_request_us() {
                        Some(us) if name != "bare" => format!("{us:.1} µs"),
                        _ => String::new(),
                    };
                    let mut line = format!(
                        "{request:<24} {:>5} {name:<5} {:>12.0} {:>10} {ratio:>7} {cpu:>13} {steal:>6}",
                        number + 1,
                        run.requests_per_sec,
                        format_latency(run.p99)
                    );
                    if run.non_2xx > 0 || run.socket_errors > 0 {
                        line += &format!("  ({} non-2xx, {} socket errors)", run.non_2xx, run.socket_errors);
                    }
                    writeln!(f, "{}", line.trim_end())?;
                }
            }
        }
        for pair in &self.pairs {
            let verdict = match (pair.clean(), pair.passed(self.target)) {
                (false, _) => "FAIL (errors during the run)",
                (true, true) => "PASS",
                (true, false) => "FAIL",
            };
            let (first, third) = pair.quartiles();
            let rounds = pair.rounds.len();
            let verdict = match pair.server_cpu_per_request_us() {
                Some(us) => format!("{verdict} ({side}: {us:.1} µs of CPU a request, median)"),
                None => verdict.to_owned(),
            };
            match self.target {
                Target::Ratio(_) => writeln!(
                    f,
                    "{:<5} {side}/bare throughput {:.2} (median of {rounds} rounds; quartiles {first:.2}–{third:.2})  {verdict}",
                    pair.probe.method,
                    pair.ratio(),
                )?,
                Target::Absolute { .. } => {
                    let (bare_rps, bare_p99) = pair.bare_medians();
                    writeln!(
                        f,
                        "{:<5} {side} {:.0} requests/s, p99 {} (medians of {rounds} rounds); bare {bare_rps:.0} requests/s, p99 {}; {side}/bare {:.2} (quartiles {first:.2}–{third:.2})  {verdict}",
                        pair.probe.method,
                        pair.server_requests_per_sec(),
                        format_latency(pair.server_p99()),
                        format_latency(bare_p99),
                        pair.ratio(),
                    )?
                }
            }
            if let Some(note) = steal_note(pair.rounds.iter().map(|round| round.steal)) {
                writeln!(f, "      {note}")?;
            }
        }
        for mismatch in &self.answer_mismatches {
            writeln!(f, "warning: {mismatch}")?;
        }
        let who = match side {
            "mock" => "mock mode",
            other => other,
        };
        write!(
            f,
            "{}: {who} {} {} on every request",
            if self.passed() { "PASS" } else { "FAIL" },
            if self.passed() { "reaches" } else { "does not reach" },
            self.target
        )
    }
}

/// Run the benchmark: build `mpapi`, run the selected suites and print each one's table.
/// `Ok(true)` when every suite's server reaches its target on every request.
///
/// A debug build of xtask (what `cargo xtask` runs) hands the whole benchmark to a release build
/// of itself: an unoptimised bare server would flatter the measured one.
pub fn run(root: &Path, opts: &BenchOpts) -> Result<bool> {
    ensure!(
        opts.connections >= WRK_THREADS,
        "--connections must be at least {WRK_THREADS} (wrk gives each of its threads a connection)"
    );
    let wrk = find_wrk()?;
    if cfg!(debug_assertions) && std::env::var_os(RELEASE_MARKER).is_none() {
        // The release build prints the table, or its own error, and says which by its status.
        return Ok(rerun_in_release(root, opts)?.success());
    }

    eprintln!("bench: cargo build --profile {} -p mpapi", opts.profile.name());
    let mpapi = build(root, "mpapi", opts.profile)?;
    if opts.profile != BuildProfile::Dist {
        println!("(built with --profile {}, not the deployed dist build the targets are set on)\n", opts.profile.name());
    }
    let mut passed = true;
    for (number, suite) in opts.suite.selected().iter().enumerate() {
        let (text, suite_passed) = match suite {
            SuiteName::Nearby => {
                let report = bench_nearby(&wrk, &mpapi, opts)?;
                (report.to_string(), report.passed())
            }
            SuiteName::Serve => {
                let report = serve::bench_serve(&wrk, &mpapi, opts)?;
                (report.to_string(), report.passed())
            }
            _ => {
                let report = bench_mock(root, &wrk, &mpapi, opts)?;
                (report.to_string(), report.passed())
            }
        };
        if number > 0 {
            println!();
        }
        println!("{text}");
        passed &= suite_passed;
    }
    Ok(passed)
}

/// The `mock` suite: `mpapi mock --api heating` on [`PROBES`], answers from `mocks/`.
fn bench_mock(root: &Path, wrk: &Path, mpapi: &Path, opts: &BenchOpts) -> Result<Report> {
    let answers = PROBES.iter().map(|probe| Ok((*probe, mock_answer(root, probe)?))).collect::<Result<Vec<_>>>()?;
    let bare = BareServer::start(&answers)?;
    let mut mock = ServerProcess::mock(mpapi)?;
    wait_until_answering("mpapi mock", mock.port, &PROBES[0], || mock.check_alive())?;
    wait_until_answering("the bare server", bare.port, &PROBES[0], || Ok(()))?;

    let mut answer_mismatches = Vec::new();
    for probe in &PROBES {
        let from_mock = fetch(mock.port, probe, None)?;
        ensure!(
            from_mock.status == 200,
            "mpapi mock answered {} {} with status {}, not 200 (the benchmark measures the success answer): {}",
            probe.method,
            probe.path,
            from_mock.status,
            String::from_utf8_lossy(&from_mock.body)
        );
        let from_bare = fetch(bare.port, probe, None)?;
        answer_mismatches.extend(compare_answers(probe, "mock", &from_mock, &from_bare));
    }

    let pairs = measure_pairs(wrk, opts, "mock", &mock, bare.port, &PROBES, None)?;
    Ok(Report {
        opts: opts.clone(),
        server: format!("mpapi mock --api {API}"),
        side: "mock",
        target: Target::Ratio(TARGET_RATIO),
        notes: Vec::new(),
        pairs,
        answer_mismatches,
    })
}

/// The `nearby` suite: a fresh SQLite database under `target/bench/` with `--stations` generated
/// stations (`mpapi bench-data`), `mpapi serve --api charging` on it, the demo driver's token,
/// and [`NEARBY`] against a bare handler answering what `serve` answered.
fn bench_nearby(wrk: &Path, mpapi: &Path, opts: &BenchOpts) -> Result<Report> {
    let dir = bench_dir(mpapi)?;
    let db = dir.join("nearby.db");
    remove_sqlite(&db)?;
    let url = format!("sqlite://{}?mode=rwc", db.display());
    let stations = opts.stations.to_string();
    eprintln!("bench: DATABASE_URL={url} {} bench-data --stations {stations}", mpapi.display());
    let started = Instant::now();
    let status = Command::new(mpapi)
        .args(["bench-data", "--stations", &stations])
        .env("DATABASE_URL", &url)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("running {} bench-data", mpapi.display()))?;
    ensure!(status.success(), "mpapi bench-data --stations {stations} failed ({status})");
    let loaded = started.elapsed();

    let mut serve = ServerProcess::serve(mpapi, &["charging"], &url, &dir, &[], "serve.log")?;
    let index = Probe { method: "GET", path: "/", body: None, mock: None, bearer: false };
    wait_until_answering("mpapi serve", serve.port, &index, || serve.check_alive())?;
    let login = fetch(serve.port, &DEMO_LOGIN, None)?;
    let token = json_body(&login)
        .ok()
        .and_then(|body| body.pointer("/data/token")?.as_str().map(str::to_owned))
        .with_context(|| {
            format!(
                "the demo driver's login answered status {} without data.token: {}",
                login.status,
                String::from_utf8_lossy(&login.body)
            )
        })?;

    let from_serve = fetch(serve.port, &NEARBY, Some(&token))?;
    let answer = json_body(&from_serve).ok().filter(|body| from_serve.status == 200 && body["code"] == 0);
    let Some(answer) = answer else {
        bail!(
            "mpapi serve answered {} {} with status {}, not 200 with code 0 (the benchmark measures the success answer): {}",
            NEARBY.method,
            NEARBY.path,
            from_serve.status,
            String::from_utf8_lossy(&from_serve.body)
        );
    };
    let bare = BareServer::start(&[(NEARBY, from_serve.body.clone())])?;
    wait_until_answering("the bare server", bare.port, &NEARBY, || Ok(()))?;
    let from_bare = fetch(bare.port, &NEARBY, Some(&token))?;
    let answer_mismatches = compare_answers(&NEARBY, "serve", &from_serve, &from_bare);

    let pairs = measure_pairs(wrk, opts, "serve", &serve, bare.port, &[NEARBY], Some(&token))?;
    let notes = vec![
        format!(
            "{} generated stations (mpapi bench-data, {:.1} s) in {}",
            opts.stations,
            loaded.as_secs_f64(),
            db.display()
        ),
        format!(
            "{} {} with the demo driver's bearer token: {} stations in range, {} bytes answered",
            NEARBY.method,
            NEARBY.path,
            answer.pointer("/data/total").unwrap_or(&serde_json::Value::Null),
            from_serve.body.len()
        ),
    ];
    Ok(Report {
        opts: opts.clone(),
        server: "mpapi serve --api charging (SQLite)".into(),
        side: "serve",
        target: NEARBY_TARGET,
        notes,
        pairs,
        answer_mismatches,
    })
}

/// `target/bench/` beside the build (`target/dist/mpapi`, `target/release/mpapi`), created: the suites' databases
/// and server logs.
fn bench_dir(mpapi: &Path) -> Result<PathBuf> {
    let dir = mpapi.parent().and_then(Path::parent).context("the build lies in a target folder")?.join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Remove the SQLite database `db` with its `-wal` and `-shm` files, where they exist.
fn remove_sqlite(db: &Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", db.display()));
        match std::fs::remove_file(&file) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(error).with_context(|| format!("removing {}", file.display()));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Each probe measured on both sides: a warm-up each, then `--rounds` rounds.
fn measure_pairs(
    wrk: &Path,
    opts: &BenchOpts,
    side: &str,
    server: &ServerProcess,
    bare_port: u16,
    probes: &[Probe],
    token: Option<&str>,
) -> Result<Vec<Pair>> {
    let server_port = server.port;
    // The server's CPU time is read just before and after its own run: its warm-up and the bare
    // handler's runs are not counted.
    let measure_server = |probe: &Probe, scripts: &LuaScripts| -> Result<(WrkRun, Option<Duration>)> {
        let before = server.cpu();
        let run = measure(wrk, opts, side, server_port, probe, scripts)?;
        let cpu = before.zip(server.cpu()).map(|(before, after)| after.saturating_sub(before));
        Ok((run, cpu))
    };
    let scripts = LuaScripts::write(probes, token)?;
    let mut pairs = Vec::new();
    for probe in probes {
        for (name, port) in [(side, server_port), ("bare", bare_port)] {
            eprintln!("bench: {name} {} {} ({WARMUP_SECS} s warm-up)", probe.method, probe.path);
            run_wrk(wrk, opts, WARMUP_SECS, port, probe, scripts.script(probe).as_deref())?;
        }
        let mut rounds = Vec::new();
        for number in 0..opts.rounds {
            let ticks = MachineTicks::now();
            // Back to back, so both sides see the machine in the same state; which side goes
            // first alternates, so a machine that speeds up or slows down favours neither.
            let ((server_run, server_cpu), bare_run) = if number % 2 == 0 {
                let server_run = measure_server(probe, &scripts)?;
                (server_run, measure(wrk, opts, "bare", bare_port, probe, &scripts)?)
            } else {
                let bare_run = measure(wrk, opts, "bare", bare_port, probe, &scripts)?;
                (measure_server(probe, &scripts)?, bare_run)
            };
            rounds.push(Round { server: server_run, bare: bare_run, server_cpu, steal: steal_since(ticks) });
        }
        pairs.push(Pair { probe: *probe, rounds });
    }
    Ok(pairs)
}

/// `wrk` on PATH, or an error saying how to install it.
fn find_wrk() -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("wrk"))
        .find(|candidate| candidate.is_file())
        .context("`wrk` is not on PATH: install it (`apt-get install wrk` on Debian or Ubuntu) and run again")
}

/// Build the optimised xtask and run the benchmark there, with the same options.
fn rerun_in_release(root: &Path, opts: &BenchOpts) -> Result<ExitStatus> {
    eprintln!("bench: cargo build --profile {} -p xtask (the bare server must be optimised too)", opts.profile.name());
    // xtask alone: built together with mpapi, shared dependencies would get other features than
    // when each is built alone, and every run would compile them twice.
    let xtask = build(root, "xtask", opts.profile)?;
    Command::new(&xtask)
        .args(["bench", "--duration", &opts.duration.to_string(), "--connections", &opts.connections.to_string()])
        .args(["--rounds", &opts.rounds.to_string()])
        .args(["--suite", opts.suite.name(), "--stations", &opts.stations.to_string()])
        .args(["--pg-url", &opts.pg_url, "--profile", opts.profile.name()])
        .env(RELEASE_MARKER, "1")
        .current_dir(root)
        .status()
        .with_context(|| format!("running {}", xtask.display()))
}

/// `cargo build --profile <profile> -p <package>` (dist: release with fat LTO, the deployed
/// build); the executable of its same-named binary. Cargo reports the path, so
/// `CARGO_TARGET_DIR` and `build.target-dir` are honoured.
fn build(root: &Path, package: &str, profile: BuildProfile) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let profile = profile.name();
    let output = Command::new(cargo)
        .current_dir(root)
        .args(["build", "--profile", profile, "--message-format=json-render-diagnostics", "-p", package])
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running cargo build --profile {profile} -p {package}"))?;
    ensure!(output.status.success(), "cargo build --profile {profile} -p {package} failed ({})", output.status);
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message.pointer("/target/name").and_then(|v| v.as_str()) == Some(package))
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .with_context(|| format!("cargo build --profile {profile} -p {package} reported no `{package}` executable"))
}

/// The bytes mock mode answers `probe` with: its mock file as compact JSON.
///
/// Mock mode reads the example into the operation's typed output and writes it back with
/// `serde_json::to_string`, so the pretty-printed file is not what goes on the wire; compacting it
/// (keys in file order) gives the same bytes, which `compare_answers` confirms against the real
/// answer before anything is measured.
fn mock_answer(root: &Path, probe: &Probe) -> Result<Vec<u8>> {
    let mock = probe.mock.with_context(|| format!("{} {} has no mock file", probe.method, probe.path))?;
    let path = root.join("mocks").join(API).join(mock);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    Ok(serde_json::to_vec(&value).expect("a JSON value serialises"))
}

/// The measured `mpapi` as a child process, killed when dropped (also on every error path).
struct ServerProcess {
    child: Child,
    port: u16,
    /// The command line, to run by hand when it fails.
    command: String,
    /// Where its standard error goes, when kept.
    log: Option<PathBuf>,
}

impl ServerProcess {
    /// The CPU time (user and system, every thread, ended ones included) the process has taken
    /// so far, from `/proc/PID/stat`; `None` off Linux or once it is gone.
    fn cpu(&self) -> Option<Duration> {
        std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok().as_deref().and_then(cpu_of_stat)
    }

    /// `mpapi mock --api heating`. Mock mode logs one line per request; /dev/null keeps the
    /// terminal (and a pipe that nobody drains) out of the measurement.
    fn mock(mpapi: &Path) -> Result<Self> {
        Self::mock_on(mpapi, &[API], free_port()?)
    }

    /// `mpapi mock` with `--api` for each of `apis` (all five when empty), the first on `port`.
    fn mock_on(mpapi: &Path, apis: &[&str], port: u16) -> Result<Self> {
        let offset = apis.first().map_or(Ok(0), |api| port_offset(api))?;
        let base = port.checked_sub(offset).context("a free port below the API's offset")?;
        let mut args = vec!["mock".to_owned()];
        for api in apis {
            args.extend(["--api".to_owned(), (*api).to_owned()]);
        }
        args.extend(["--port-base".to_owned(), base.to_string(), "--bind".to_owned(), "127.0.0.1".to_owned()]);
        Self::start(Command::new(mpapi).args(&args), mpapi, &args, port, None)
    }

    /// `mpapi serve` with `--api` for each of `apis` (all five when empty) on `database_url`,
    /// plus `env`; `port` is the first API's (the others follow their port offsets). Run in
    /// `dir` (no `mpapi.toml` of the work tree applies). Its log lines go to /dev/null as mock
    /// mode's do; its standard error (a failed start) to `dir/<log>`.
    fn serve(mpapi: &Path, apis: &[&str], database_url: &str, dir: &Path, env: &[(&str, &str)], log: &str) -> Result<Self> {
        let port = if apis.len() == 1 { free_port()? } else { free_port_run(5)? };
        Self::serve_on(mpapi, apis, port, database_url, dir, env, log)
    }

    /// [`ServerProcess::serve`] with the first API on `port`.
    fn serve_on(
        mpapi: &Path,
        apis: &[&str],
        port: u16,
        database_url: &str,
        dir: &Path,
        env: &[(&str, &str)],
        log: &str,
    ) -> Result<Self> {
        let offset = apis.first().map_or(Ok(0), |api| port_offset(api))?;
        let base = port.checked_sub(offset).context("a free port below the API's offset")?;
        let mut args = vec!["serve".to_owned()];
        for api in apis {
            args.extend(["--api".to_owned(), (*api).to_owned()]);
        }
        args.extend(["--port-base".to_owned(), base.to_string(), "--bind".to_owned(), "127.0.0.1".to_owned()]);
        let mut command = Command::new(mpapi);
        command.args(&args).env("DATABASE_URL", database_url).current_dir(dir);
        for (key, value) in env {
            command.env(key, value);
        }
        Self::start(&mut command, mpapi, &args, port, Some(dir.join(log)))
    }

    fn start(command: &mut Command, mpapi: &Path, args: &[String], port: u16, log: Option<PathBuf>) -> Result<Self> {
        let command_line = format!("{} {}", mpapi.display(), args.join(" "));
        eprintln!("bench: {command_line}");
        let stderr = match &log {
            Some(log) => Stdio::from(std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?),
            None => Stdio::null(),
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {command_line}"))?;
        Ok(Self { child, port, command: command_line, log })
    }

    /// Fail when the server has exited (a port taken, a missing subcommand, a panic at startup).
    fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait().context("asking whether the server still runs")? {
            None => Ok(()),
            Some(status) => {
                let why = match &self.log {
                    Some(log) => format!("{}:\n{}", log.display(), std::fs::read_to_string(log).unwrap_or_default()),
                    None => "run it by hand to see why".to_owned(),
                };
                bail!("`{}` exited ({status}) before answering; {why}", self.command)
            }
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free on loopback right now (the server binds it a moment later).
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

/// The first of `count` consecutive ports free on loopback right now (all five APIs listen on a
/// port base and the four after it).
fn free_port_run(count: u16) -> Result<u16> {
    for _ in 0..100 {
        let first = free_port()?;
        let Some(last) = first.checked_add(count - 1) else { continue };
        if (first..=last).all(|port| TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()) {
            return Ok(first);
        }
    }
    bail!("no {count} consecutive free ports on 127.0.0.1 in 100 tries")
}

/// The API's port offset from the port base (`mpapi serve --help`).
fn port_offset(api: &str) -> Result<u16> {
    match api {
        "heating" => Ok(0),
        "points" => Ok(1),
        "community" => Ok(2),
        "charging" => Ok(3),
        "o2o" => Ok(4),
        other => bail!("unknown API {other:?}"),
    }
}

/// The comparison point: axum routes that answer with fixed bytes, on their own tokio runtime in
/// this process. A POST handler reads the body (as mock mode must) but neither parses nor
/// validates it, and no handler looks at the query or a token: that work is what the benchmark
/// prices.
struct BareServer {
    runtime: Option<tokio::runtime::Runtime>,
    port: u16,
}

impl BareServer {
    fn start(answers: &[(Probe, Vec<u8>)]) -> Result<Self> {
        use axum::body::Bytes;
        use axum::http::header::CONTENT_TYPE;
        use axum::routing::{get, post};

        let mut app = axum::Router::new();
        for (probe, answer) in answers {
            let answer = Bytes::from(answer.clone());
            let route = match probe.method {
                "GET" => get(move || async move { ([(CONTENT_TYPE, "application/json")], answer) }),
                "POST" => post(move |_body: Bytes| async move { ([(CONTENT_TYPE, "application/json")], answer) }),
                other => bail!("the bare server answers GET and POST, not {other}"),
            };
            app = app.route(probe.route(), route);
        }

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(BARE_WORKERS)
            .enable_all()
            .build()
            .context("building the bare server's tokio runtime")?;
        let listener = std::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .context("binding the bare server to 127.0.0.1")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let listener = runtime.block_on(async { tokio::net::TcpListener::from_std(listener) })?;
        runtime.spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                eprintln!("bench: the bare server stopped: {error}");
            }
        });
        eprintln!("bench: bare axum server on 127.0.0.1:{port} ({BARE_WORKERS} workers)");
        Ok(Self { runtime: Some(runtime), port })
    }
}

impl Drop for BareServer {
    fn drop(&mut self) {
        // The server task never ends by itself; do not wait for it.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Wait until `probe` is answered on `port`; `check_alive` fails when the server is gone for good.
fn wait_until_answering(
    name: &str,
    port: u16,
    probe: &Probe,
    mut check_alive: impl FnMut() -> Result<()>,
) -> Result<()> {
    let started = Instant::now();
    loop {
        // No token: any answer (a 401 too) says the server is up.
        let error = match fetch(port, probe, None) {
            Ok(_) => return Ok(()),
            Err(error) => error,
        };
        check_alive()?;
        if started.elapsed() > STARTUP_TIMEOUT {
            return Err(error.context(format!("{name} did not answer on 127.0.0.1:{port} within {STARTUP_TIMEOUT:?}")));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One HTTP answer, as much of it as the benchmark compares.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    status: u16,
    content_type: Option<String>,
    body: Vec<u8>,
}

/// The answer's body as JSON.
fn json_body(answer: &Answer) -> Result<serde_json::Value> {
    serde_json::from_slice(&answer.body).context("an answer that is not JSON")
}

/// Send `probe` once over a fresh connection (std only: no client dependency for a few
/// requests), with `token` as its bearer when it wants one.
fn fetch(port: u16, probe: &Probe, token: Option<&str>) -> Result<Answer> {
    request(port, probe.method, probe.path, probe.body, token.filter(|_| probe.bearer))
}

/// Send one request over a fresh connection: `body` as JSON, `token` as its bearer.
fn request(port: u16, method: &str, path: &str, body: Option<&str>, token: Option<&str>) -> Result<Answer> {
    let mut stream = TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), Duration::from_secs(1))
        .with_context(|| format!("connecting to 127.0.0.1:{port}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(request_text(port, method, path, body, token, false).as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).with_context(|| format!("reading the answer from 127.0.0.1:{port}"))?;
    parse_answer(&raw)
}

/// An HTTP/1.1 request to 127.0.0.1:`port`: `body` with `Content-Type: application/json`,
/// `token` as `Authorization: Bearer`, `Connection: close` unless `keep_alive`.
fn request_text(port: u16, method: &str, path: &str, body: Option<&str>, token: Option<&str>, keep_alive: bool) -> String {
    let content_type = if body.is_some() { "Content-Type: application/json\r\n" } else { "" };
    let authorization = match token {
        Some(token) => format!("Authorization: Bearer {token}\r\n"),
        None => String::new(),
    };
    let connection = if keep_alive { "" } else { "Connection: close\r\n" };
    let body = body.unwrap_or_default();
    format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{content_type}{authorization}Content-Length: {}\r\n{connection}\r\n{body}",
        body.len()
    )
}

fn parse_answer(raw: &[u8]) -> Result<Answer> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").context("an HTTP answer without a blank line")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("an HTTP status line without a status: {status_line:?}"))?;
    let header = |name: &str| {
        head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
        })
    };
    let mut body = raw[split + 4..].to_vec();
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        body = dechunk(&body)?;
    }
    Ok(Answer { status, content_type: header("content-type"), body })
}

fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let end = raw.windows(2).position(|w| w == b"\r\n").context("a chunk without a size line")?;
        let size_text = String::from_utf8_lossy(&raw[..end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or_default().trim(), 16)
            .with_context(|| format!("a chunk size that is not hex: {size_text:?}"))?;
        if size == 0 {
            return Ok(body);
        }
        let chunk = raw.get(end + 2..end + 2 + size).context("a chunk shorter than its size")?;
        body.extend_from_slice(chunk);
        raw = raw.get(end + 4 + size..).unwrap_or_default();
    }
}

/// Where the two answers to `probe` differ in what a client sees (status, Content-Type, body);
/// `side` names the measured server.
fn compare_answers(probe: &Probe, side: &str, server: &Answer, bare: &Answer) -> Vec<String> {
    let request = format!("{} {}", probe.method, probe.path);
    let mut out = Vec::new();
    if server.status != bare.status {
        out.push(format!("{request}: {side} answers status {}, bare {}", server.status, bare.status));
    }
    if server.content_type != bare.content_type {
        out.push(format!(
            "{request}: {side} answers Content-Type {:?}, bare {:?}",
            server.content_type, bare.content_type
        ));
    }
    if server.body != bare.body {
        let source = match probe.mock {
            Some(mock) => format!("mocks/{API}/{mock} compacted"),
            None => "the bare handler's".to_owned(),
        };
        out.push(format!(
            "{request}: {side}'s body ({} bytes) differs from {source} ({} bytes): {}",
            server.body.len(),
            bare.body.len(),
            String::from_utf8_lossy(&server.body)
        ));
    }
    out
}

/// The Lua scripts wrk needs for requests with a body or a bearer token, in a temporary folder
/// removed on drop.
struct LuaScripts {
    dir: PathBuf,
}

impl LuaScripts {
    fn write(probes: &[Probe], token: Option<&str>) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("mpapi-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let scripts = Self { dir };
        for probe in probes.iter().filter(|p| needs_script(p)) {
            ensure!(!probe.bearer || token.is_some(), "{} wants a bearer token and the suite has none", probe.label());
            let path = scripts.path(probe);
            std::fs::write(&path, wrk_script(probe, token)).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(scripts)
    }

    /// The script for `probe`, if it has a body or a bearer token.
    fn script(&self, probe: &Probe) -> Option<PathBuf> {
        needs_script(probe).then(|| self.path(probe))
    }

    fn path(&self, probe: &Probe) -> PathBuf {
        let name: String = probe.label().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        self.dir.join(format!("{name}.lua"))
    }
}

impl Drop for LuaScripts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn needs_script(probe: &Probe) -> bool {
    probe.body.is_some() || probe.bearer
}

/// A wrk script sending `probe`'s method, its body with `Content-Type: application/json`, and
/// `Authorization: Bearer` with `token` when the probe wants it.
fn wrk_script(probe: &Probe, token: Option<&str>) -> String {
    let mut script = format!("wrk.method = \"{}\"\n", probe.method);
    if let Some(body) = probe.body {
        // A Lua long string: the JSON needs no escaping.
        script += &format!("wrk.body = [==[{body}]==]\nwrk.headers[\"Content-Type\"] = \"application/json\"\n");
    }
    if let Some(token) = token.filter(|_| probe.bearer) {
        script += &format!("wrk.headers[\"Authorization\"] = [==[Bearer {token}]==]\n");
    }
    script
}

/// The measured run of `probe` against `port` (the warm-ups are done once per request in
/// [`measure_pairs`]).
fn measure(wrk: &Path, opts: &BenchOpts, side: &str, port: u16, probe: &Probe, scripts: &LuaScripts) -> Result<WrkRun> {
    eprintln!("bench: {side} {} {} ({} s)", probe.method, probe.path, opts.duration);
    run_wrk(wrk, opts, opts.duration, port, probe, scripts.script(probe).as_deref())
}

fn run_wrk(wrk: &Path, opts: &BenchOpts, seconds: u64, port: u16, probe: &Probe, script: Option<&Path>) -> Result<WrkRun> {
    let mut command = Command::new(wrk);
    command.args([
        format!("-t{WRK_THREADS}"),
        format!("-c{}", opts.connections),
        format!("-d{seconds}s"),
        "--latency".to_owned(),
    ]);
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    let url = format!("http://127.0.0.1:{port}{}", probe.path);
    command.arg(&url).stdin(Stdio::null());
    let output = command.output().with_context(|| format!("running wrk against {url}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success(),
        "wrk against {url} failed ({}): {}{}",
        output.status,
        stdout,
        String::from_utf8_lossy(&output.stderr)
    );
    parse_wrk(&stdout).with_context(|| format!("reading wrk's output for {url}:\n{stdout}"))
}

/// Read the figures out of `wrk --latency`'s report.
pub fn parse_wrk(output: &str) -> Result<WrkRun> {
    let mut requests_per_sec = None;
    let mut p99 = None;
    let mut requests = None;
    let mut non_2xx = 0;
    let mut socket_errors = 0;
    for line in output.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            requests_per_sec = Some(rest.trim().parse::<f64>().context("Requests/sec is not a number")?);
        } else if let Some(rest) = line.strip_prefix("99%") {
            p99 = Some(parse_wrk_time(rest.trim())?);
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            non_2xx = rest.trim().parse().context("the non-2xx count is not a number")?;
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            socket_errors = rest
                .split(',')
                .filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
        } else if let Some((count, _)) = line.split_once(" requests in ") {
            requests = Some(count.trim().parse().context("the request count is not a number")?);
        }
    }
    Ok(WrkRun {
        requests_per_sec: requests_per_sec.context("no `Requests/sec:` line")?,
        p99: p99.context("no 99% line (was --latency passed?)")?,
        requests: requests.context("no `… requests in …` line")?,
        non_2xx,
        socket_errors,
    })
}

/// A wrk time (`812.00us`, `1.03ms`, `2.00s`, `1.50m`, `1.00h`).
fn parse_wrk_time(text: &str) -> Result<Duration> {
    // Longest suffixes first: "ms" and "us" also end in "s".
    let units = [("us", 1e-6), ("ms", 1e-3), ("s", 1.0), ("m", 60.0), ("h", 3600.0)];
    let (number, scale) = units
        .iter()
        .find_map(|(unit, scale)| text.strip_suffix(unit).map(|number| (number, *scale)))
        .with_context(|| format!("a wrk time without a unit: {text:?}"))?;
    let value: f64 = number.parse().with_context(|| format!("a wrk time that is not a number: {text:?}"))?;
    Ok(Duration::from_secs_f64(value * scale))
}

/// The value `numerator/denominator` of the way up `values` sorted (rounding down); `None`
/// when there are none.
fn quantile_of(mut values: Vec<f64>, numerator: usize, denominator: usize) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len().saturating_sub(1) * numerator / denominator).copied()
}

/// The machine's CPU time so far, all its CPUs together, in `USER_HZ` ticks, from the `cpu` line
/// of `/proc/stat`: all of it (user, nice, system, idle, iowait, irq, softirq, steal) and `steal`,
/// the time a virtual CPU was ready to run while the hypervisor ran another guest. On a shared
/// host steal comes and goes (seen on the eleventh machine of `BENCHMARKS.md`: under 5 % one
/// minute, a quarter of the machine the next), and the figures measured meanwhile are low — so
/// each round says how much was stolen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineTicks {
    /// Every tick of every CPU.
    pub total: u64,
    /// Of those, the ticks stolen.
    pub steal: u64,
}

impl MachineTicks {
    /// The machine's ticks now; `None` off Linux, or where `/proc/stat` cannot be read or has no
    /// steal counter.
    pub fn now() -> Option<MachineTicks> {
        std::fs::read_to_string("/proc/stat").ok().as_deref().and_then(machine_ticks_of)
    }

    /// The share (0–1) of the ticks from `self` to `later` that were stolen; `None` when no tick
    /// passed, or the total went backwards (the idle and iowait counters are not monotonic on some
    /// tickless kernels).
    pub fn steal_until(self, later: MachineTicks) -> Option<f64> {
        let total = later.total.checked_sub(self.total).filter(|&ticks| ticks > 0)?;
        Some(later.steal.saturating_sub(self.steal) as f64 / total as f64)
    }
}

/// The share stolen from `before` until now, where `/proc/stat` tells.
fn steal_since(before: Option<MachineTicks>) -> Option<f64> {
    before.zip(MachineTicks::now()).and_then(|(before, now)| before.steal_until(now))
}

/// The `cpu` line of a `/proc/stat`: its first eight counters (`guest` and `guest_nice`, the
/// ninth and tenth, are already counted in `user` and `nice`).
fn machine_ticks_of(stat: &str) -> Option<MachineTicks> {
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    let ticks: Vec<u64> = line.split_whitespace().skip(1).take(8).map(|field| field.parse().ok()).collect::<Option<_>>()?;
    // Kernels before 2.6.11 had no steal counter.
    let &steal = ticks.get(7)?;
    Some(MachineTicks { total: ticks.iter().sum(), steal })
}

/// From how much steal in a round, in whole percent as the table shows it, a report says the host
/// was shared.
const SHARED_HOST_STEAL_PERCENT: f64 = 5.0;

/// A steal share (0–1) in whole percent, as the table and the note both show it.
fn steal_percent(share: f64) -> f64 {
    (share * 100.0).round()
}

/// A round's steal in the table: whole percent.
fn format_steal(share: f64) -> String {
    format!("{:.0} %", steal_percent(share))
}

/// The line a report adds when one of its rounds (their steal shares, `None` for a round that did
/// not tell) lost [`SHARED_HOST_STEAL_PERCENT`] or more of the machine to other guests, as the
/// table rounds it; `None` below it.
fn steal_note(shares: impl Iterator<Item = Option<f64>>) -> Option<String> {
    let most = shares.flatten().max_by(f64::total_cmp)?;
    (steal_percent(most) >= SHARED_HOST_STEAL_PERCENT).then(|| {
        format!(
            "the hypervisor gave other guests up to {} of this machine's CPU time in a round (steal, /proc/stat): the host was shared, and the figures are low",
            format_steal(most)
        )
    })
}

/// Clock ticks per second of `/proc`'s CPU times: `USER_HZ`, 100 in Linux's ABI on x86_64 and
/// aarch64 whatever the kernel's own tick rate.
const USER_HZ: u64 = 100;

/// `utime` + `stime` (fields 14 and 15) of a `/proc/PID/stat` line. The command name (field 2)
/// is in parentheses and may itself hold spaces and parentheses, so fields are counted from the
/// last `)`.
fn cpu_of_stat(stat: &str) -> Option<Duration> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // The first field after the name is field 3 (state): field 14 is the twelfth.
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / USER_HZ))
}

fn format_latency(latency: Duration) -> String {
    format!("{:.2} ms", latency.as_secs_f64() * 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK_OUTPUT: &str = "Running 10s test @ http://127.0.0.1:40000/api/sms/send
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.21ms  310.45us  12.01ms   88.10%
    Req/Sec    26.70k     1.52k   29.88k    71.00%
  Latency Distribution
     50%    1.15ms
     75%    1.32ms
     90%    1.52ms
     99%    2.31ms
  531417 requests in 10.00s, 118.58MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:  53139.84
Transfer/sec:     11.86MB
";

    #[test]
    fn reads_wrk_output() {
        let run = parse_wrk(WRK_OUTPUT).unwrap();
        assert_eq!(run.requests_per_sec, 53139.84);
        assert_eq!(run.p99, Duration::from_micros(2310));
        assert_eq!(run.requests, 531_417);
        assert_eq!((run.non_2xx, run.socket_errors), (7, 3));
        assert!(parse_wrk("Requests/sec: 1\n").is_err());
    }

    #[test]
    fn the_verdict_takes_the_median_round() {
        let target = Target::Ratio(TARGET_RATIO);
        let run = |requests_per_sec| WrkRun { requests_per_sec, p99: Duration::ZERO, requests: 1, non_2xx: 0, socket_errors: 0 };
        let round = |server, bare| Round { server: run(server), bare: run(bare), server_cpu: None, steal: None };
        let pair = Pair { probe: PROBES[0], rounds: vec![round(90.0, 100.0), round(10.0, 100.0), round(85.0, 100.0)] };
        assert_eq!(pair.ratio(), 0.85);
        assert!(pair.passed(target));
        let five: Vec<Round> = [50.0, 95.0, 70.0, 80.0, 90.0].into_iter().map(|server| round(server, 100.0)).collect();
        let pair = Pair { probe: PROBES[0], rounds: five };
        assert_eq!((pair.quartiles(), pair.ratio()), ((0.70, 0.90), 0.80));
        // An even number of rounds takes the lower middle one.
        let pair = Pair { probe: PROBES[0], rounds: vec![round(90.0, 100.0), round(10.0, 100.0)] };
        assert_eq!(pair.ratio(), 0.10);
        assert!(!pair.passed(target));
        let mut failing = round(90.0, 100.0);
        failing.server.non_2xx = 1;
        assert!(!Pair { probe: PROBES[0], rounds: vec![failing] }.passed(target));
    }

    #[test]
    fn cpu_time_is_read_from_proc_stat() {
        // A command name with a space and a parenthesis; utime 250, stime 37 ticks.
        let stat = "4242 (mpapi (x) y) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 37 0 0 20 0 3 0 1000 0 0";
        assert_eq!(cpu_of_stat(stat), Some(Duration::from_millis(2_870)));
        assert_eq!(cpu_of_stat("4242 (mpapi) S 1 2"), None, "cut short");
        assert_eq!(cpu_of_stat("no name here"), None);
        // This process has taken some CPU, and reads it the same way.
        let own = std::fs::read_to_string("/proc/self/stat").ok();
        if let Some(own) = own {
            assert!(cpu_of_stat(&own).is_some(), "{own}");
        }

        let run = |requests| WrkRun { requests_per_sec: 1.0, p99: Duration::ZERO, requests, non_2xx: 0, socket_errors: 0 };
        let round = |cpu_ms: Option<u64>, requests| Round { server: run(requests), bare: run(1), server_cpu: cpu_ms.map(Duration::from_millis), steal: None };
        assert_eq!(round(Some(3_000), 100_000).server_cpu_per_request_us(), Some(30.0));
        assert_eq!(round(None, 100_000).server_cpu_per_request_us(), None);
        assert_eq!(round(Some(3_000), 0).server_cpu_per_request_us(), None, "no request answered");
        let pair = Pair { probe: PROBES[0], rounds: vec![round(Some(4_000), 100_000), round(Some(2_000), 100_000), round(None, 1), round(Some(3_000), 100_000)] };
        assert_eq!(pair.server_cpu_per_request_us(), Some(30.0), "the median of the rounds that tell it");
        let even = Pair { probe: PROBES[0], rounds: vec![round(Some(4_000), 100_000), round(Some(2_000), 100_000)] };
        assert_eq!(even.server_cpu_per_request_us(), Some(20.0), "the lower middle, as the other medians");
        assert_eq!(Pair { probe: PROBES[0], rounds: vec![round(None, 1)] }.server_cpu_per_request_us(), None);
    }

    #[test]
    fn steal_is_read_from_proc_stat() {
        // user nice system idle iowait irq softirq steal guest guest_nice
        let stat = "cpu  100 5 40 800 10 0 5 40 30 0\ncpu0 50 2 20 400 5 0 2 20 15 0\nintr 1 2 3\n";
        assert_eq!(machine_ticks_of(stat), Some(MachineTicks { total: 1_000, steal: 40 }), "guest is not counted twice");
        assert_eq!(machine_ticks_of("cpu  100 5 40 800 10 0 5\n"), None, "a kernel without steal");
        assert_eq!(machine_ticks_of("cpu0 1 2 3 4 5 6 7 8\n"), None, "only the machine's line counts");
        assert_eq!(machine_ticks_of("cpu  1 2 3 x 5 6 7 8\n"), None);
        let before = MachineTicks { total: 1_000, steal: 40 };
        assert_eq!(before.steal_until(MachineTicks { total: 1_400, steal: 140 }), Some(0.25));
        assert_eq!(before.steal_until(MachineTicks { total: 1_200, steal: 40 }), Some(0.0));
        assert_eq!(before.steal_until(before), None, "no tick passed");
        if std::path::Path::new("/proc/stat").exists() {
            assert!(MachineTicks::now().is_some(), "this machine's /proc/stat is read");
        }
        let note = |shares: &[Option<f64>]| steal_note(shares.iter().copied());
        assert!(note(&[Some(0.01), None, Some(0.26), Some(0.02)]).is_some_and(|note| note.contains("up to 26 % of this machine's CPU time")));
        assert_eq!(note(&[None, None]), None);
        assert_eq!(note(&[Some(0.044)]), None, "shown as 4 %");
        assert!(note(&[Some(0.046)]).is_some_and(|note| note.contains("up to 5 %")), "shown as 5 %: the line agrees with the table");
        assert_eq!((format_steal(0.046), format_steal(0.044)), ("5 %".to_owned(), "4 %".to_owned()));
    }

    #[test]
    fn the_report_shows_each_rounds_steal_and_says_when_the_host_was_shared() {
        let run = |requests_per_sec| WrkRun { requests_per_sec, p99: Duration::from_millis(2), requests: 1, non_2xx: 0, socket_errors: 0 };
        let round = |steal| Round { server: run(45_000.0), bare: run(100_000.0), server_cpu: None, steal };
        let report = |rounds| Report {
            opts: BenchOpts {
                duration: 2,
                connections: 64,
                rounds: 3,
                suite: SuiteName::Mock,
                stations: 10_000,
                pg_url: serve::DEFAULT_PG_URL.into(),
                profile: BuildProfile::Dist,
            },
            server: "mpapi mock --api heating".into(),
            side: "mock",
            target: Target::Ratio(TARGET_RATIO),
            notes: Vec::new(),
            pairs: vec![Pair { probe: PROBES[0], rounds }],
            answer_mismatches: Vec::new(),
        };
        let shared = report(vec![round(Some(0.02)), round(Some(0.31)), round(None)]).to_string();
        let words = |line: usize| shared.lines().nth(line).unwrap_or_default().split_whitespace().rev().take(3).collect::<Vec<_>>();
        assert_eq!(words(1), ["steal", "CPU/request", "ratio"], "{shared}");
        assert_eq!(words(3), ["%", "2", "0.45"], "the round's steal on its bare line: {shared}");
        assert_eq!(words(2), ["ms", "2.00", "45000"], "not on the server's: {shared}");
        assert_eq!(words(5), ["%", "31", "0.45"], "{shared}");
        assert_eq!(words(7), ["0.45", "ms", "2.00"], "a round that does not tell shows none: {shared}");
        let width = |line: usize| shared.lines().nth(line).unwrap_or_default().chars().count();
        assert_eq!(width(1), width(3), "the steal column lines up with its header: {shared}");
        assert!(shared.contains("\n      the hypervisor gave other guests up to 31 % of this machine's CPU time in a round"), "{shared}");
        let calm = report(vec![round(Some(0.01)), round(Some(0.04))]).to_string();
        assert!(!calm.contains("hypervisor"), "{calm}");
    }

    #[test]
    fn the_absolute_verdict_takes_the_medians() {
        let run = |requests_per_sec, p99_ms| WrkRun {
            requests_per_sec,
            p99: Duration::from_millis(p99_ms),
            requests: 1,
            non_2xx: 0,
            socket_errors: 0,
        };
        let round = |rps, p99_ms| Round { server: run(rps, p99_ms), bare: run(40_000.0, 2), server_cpu: None, steal: None };
        // Requests/s and p99 are medians taken apart: 6000 requests/s and 15 ms here.
        let pair = Pair { probe: NEARBY, rounds: vec![round(7_000.0, 30), round(6_000.0, 10), round(4_000.0, 15)] };
        assert_eq!((pair.server_requests_per_sec(), pair.server_p99()), (6_000.0, Duration::from_millis(15)));
        assert_eq!(pair.bare_medians(), (40_000.0, Duration::from_millis(2)));
        assert!(pair.passed(NEARBY_TARGET));
        let slow = Pair { probe: NEARBY, rounds: vec![round(7_000.0, 30), round(6_000.0, 21), round(4_000.0, 15)] };
        assert!(!slow.passed(NEARBY_TARGET));
        let few = Pair { probe: NEARBY, rounds: vec![round(7_000.0, 5), round(4_999.0, 5), round(4_000.0, 5)] };
        assert!(!few.passed(NEARBY_TARGET));
        assert_eq!(NEARBY_TARGET.to_string(), "≥ 5000 requests/s with p99 ≤ 20.00 ms");
    }

    #[test]
    fn wrk_scripts_carry_the_body_and_the_token() {
        assert_eq!(
            wrk_script(&PROBES[1], Some("ignored")),
            "wrk.method = \"POST\"\nwrk.body = [==[{\"phone\":\"13888888888\",\"type\":\"login\"}]==]\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
        );
        assert_eq!(wrk_script(&NEARBY, Some("a.b.c")), "wrk.method = \"GET\"\nwrk.headers[\"Authorization\"] = [==[Bearer a.b.c]==]\n");
        assert!(!needs_script(&PROBES[0]) && needs_script(&PROBES[1]) && needs_script(&NEARBY));
        assert_eq!(NEARBY.label(), "GET /api/station/nearby");
        assert_eq!(NEARBY.route(), "/api/station/nearby");
        assert_eq!(PROBES[1].route(), "/api/sms/send");
    }

    #[test]
    fn reads_wrk_times() {
        assert_eq!(parse_wrk_time("812.00us").unwrap(), Duration::from_micros(812));
        assert_eq!(parse_wrk_time("2.00s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_wrk_time("1.50m").unwrap(), Duration::from_secs(90));
        assert!(parse_wrk_time("12").is_err());
    }

    #[test]
    fn reads_chunked_answers() {
        let raw = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n3\r\n{\"a\r\n3\r\n\":1\r\n1\r\n}\r\n0\r\n\r\n";
        let answer = parse_answer(raw).unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.content_type.as_deref(), Some("application/json"));
        assert_eq!(answer.body, b"{\"a\":1}");
    }
}
