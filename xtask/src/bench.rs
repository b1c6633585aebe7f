//! `cargo xtask bench`: mock mode's requests/s and p99 against a bare axum handler, measured with wrk.

use std::fmt;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

/// The share of the bare handler's throughput mock mode must reach (the issue's target).
pub const TARGET_RATIO: f64 = 0.80;

/// The API mock mode serves during the benchmark.
const API: &str = "heating";

/// Set on the release xtask a debug xtask hands the benchmark to, so it never hands it on again.
const RELEASE_MARKER: &str = "MPAPI_BENCH_RELEASE";

/// How long mock mode and the bare server get to answer their first request.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Options of `cargo xtask bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchOpts {
    /// Seconds each measured wrk run lasts.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
    pub duration: u64,
    /// Connections wrk keeps open.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub connections: u32,
    /// Rounds of (mock, bare) per request; the verdict takes the median round's ratio, so one
    /// disturbed run on a shared machine does not decide it.
    #[arg(long, default_value_t = 21, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
}

/// wrk threads: one per core of the 2-core machines the target was set on.
const WRK_THREADS: u32 = 2;
/// Seconds of warm-up wrk runs against each side before a request's first round (connections,
/// caches, allocator).
const WARMUP_SECS: u64 = 1;
/// Worker threads of the bare server's tokio runtime.
const BARE_WORKERS: usize = 2;

/// One benchmarked request and the mock file holding the answer mock mode gives it.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The request path.
    pub path: &'static str,
    /// The JSON request body, sent with `Content-Type: application/json`.
    pub body: Option<&'static str>,
    /// The answer's mock file, relative to `mocks/<api>/`.
    pub mock: &'static str,
}

/// The two requests of the issue: a public GET, and a public POST whose body mock mode validates.
pub const PROBES: [Probe; 2] = [
    Probe { method: "GET", path: "/api/config/system", body: None, mock: "config_system_get/success.json" },
    Probe {
        method: "POST",
        path: "/api/sms/send",
        body: Some(r#"{"phone":"13888888888","type":"login"}"#),
        mock: "sms_send/success.json",
    },
];

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

/// Mock mode and the bare handler measured back to back on one request.
#[derive(Debug, Clone)]
pub struct Round {
    /// `mpapi mock`.
    pub mock: WrkRun,
    /// The bare axum handler.
    pub bare: WrkRun,
}

impl Round {
    /// Mock mode's throughput as a share of the bare handler's.
    pub fn ratio(&self) -> f64 {
        self.mock.requests_per_sec / self.bare.requests_per_sec
    }

    fn clean(&self) -> bool {
        [&self.mock, &self.bare].iter().all(|run| run.non_2xx == 0 && run.socket_errors == 0)
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
    /// The median of the rounds' mock/bare throughput ratios (the lower middle one for an even
    /// number of rounds).
    pub fn ratio(&self) -> f64 {
        self.quantile(1, 2)
    }

    /// The first and third quartiles of the rounds' ratios (how far the rounds spread).
    pub fn quartiles(&self) -> (f64, f64) {
        (self.quantile(1, 4), self.quantile(3, 4))
    }

    /// The ratio `numerator/denominator` of the way up the sorted rounds (rounding down).
    fn quantile(&self, numerator: usize, denominator: usize) -> f64 {
        let mut ratios: Vec<f64> = self.rounds.iter().map(Round::ratio).collect();
        ratios.sort_by(f64::total_cmp);
        ratios.get(ratios.len().saturating_sub(1) * numerator / denominator).copied().unwrap_or(0.0)
    }

    /// Whether the pair meets the target, with every answer a success.
    pub fn passed(&self) -> bool {
        self.ratio() >= TARGET_RATIO && self.clean()
    }

    fn clean(&self) -> bool {
        !self.rounds.is_empty() && self.rounds.iter().all(Round::clean)
    }
}

/// The benchmark's figures, printed as a table.
#[derive(Debug, Clone)]
pub struct Report {
    /// The options the runs used.
    pub opts: BenchOpts,
    /// One pair per probe, in [`PROBES`] order.
    pub pairs: Vec<Pair>,
    /// Differences between the answers of mock mode and the bare handler (empty when equal).
    pub answer_mismatches: Vec<String>,
}

impl Report {
    /// Whether mock mode reached [`TARGET_RATIO`] of the bare handler on every request.
    pub fn passed(&self) -> bool {
        !self.pairs.is_empty() && self.pairs.iter().all(Pair::passed)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.opts;
        writeln!(
            f,
            "mpapi mock --api {API} vs bare axum; wrk -t{WRK_THREADS} -c{} -d{}s --latency (after a {WARMUP_SECS} s warm-up)",
            o.connections, o.duration
        )?;
        writeln!(f, "{:<24} {:>5} {:<5} {:>12} {:>10} {:>7}", "request", "round", "side", "requests/s", "p99", "ratio")?;
        for pair in &self.pairs {
            let request = format!("{} {}", pair.probe.method, pair.probe.path);
            for (number, round) in pair.rounds.iter().enumerate() {
                for (side, run) in [("mock", &round.mock), ("bare", &round.bare)] {
                    let ratio = if side == "bare" { format!("{:.2}", round.ratio()) } else { String::new() };
                    let mut line = format!(
                        "{request:<24} {:>5} {side:<5} {:>12.0} {:>10} {ratio:>7}",
                        number + 1,
                        run.requests_per_sec,
                        format_latency(run.p99)
                    );
                    if run.non_2xx > 0 || run.socket_errors > 0 {
                        line += &format!("  ({} non-2xx, {} socket errors)", run.non_2xx, run.socket_errors);
                    }
                    writeln!(f, "{line}")?;
                }
            }
        }
        for pair in &self.pairs {
            let verdict = match (pair.clean(), pair.passed()) {
                (false, _) => "FAIL (errors during the run)",
                (true, true) => "PASS",
                (true, false) => "FAIL",
            };
            let (first, third) = pair.quartiles();
            writeln!(
                f,
                "{:<5} mock/bare throughput {:.2} (median of {} rounds; quartiles {first:.2}–{third:.2})  {verdict}",
                pair.probe.method,
                pair.ratio(),
                pair.rounds.len()
            )?;
        }
        for mismatch in &self.answer_mismatches {
            writeln!(f, "warning: {mismatch}")?;
        }
        write!(
            f,
            "{}: mock mode {} {:.0}% of the bare handler's throughput on every request",
            if self.passed() { "PASS" } else { "FAIL" },
            if self.passed() { "reaches" } else { "does not reach" },
            TARGET_RATIO * 100.0
        )
    }
}

/// Run the benchmark: build `mpapi`, start mock mode and the bare server, measure both with wrk
/// and print the table. `Ok(true)` when mock mode reaches [`TARGET_RATIO`] on every request.
///
/// A debug build of xtask (what `cargo xtask` runs) hands the whole benchmark to a release build
/// of itself: an unoptimised bare server would flatter mock mode.
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

    eprintln!("bench: cargo build --profile dist -p mpapi");
    let mpapi = build_dist(root, "mpapi")?;
    let answers = PROBES.iter().map(|probe| mock_answer(root, probe)).collect::<Result<Vec<_>>>()?;

    let bare = BareServer::start(&answers)?;
    let mut mock = MockMode::start(&mpapi)?;
    wait_until_answering("mpapi mock", mock.port, &PROBES[0], || mock.check_alive())?;
    wait_until_answering("the bare server", bare.port, &PROBES[0], || Ok(()))?;

    let mut answer_mismatches = Vec::new();
    for probe in &PROBES {
        let from_mock = fetch(mock.port, probe)?;
        ensure!(
            from_mock.status == 200,
            "mpapi mock answered {} {} with status {}, not 200 (the benchmark measures the success answer): {}",
            probe.method,
            probe.path,
            from_mock.status,
            String::from_utf8_lossy(&from_mock.body)
        );
        let from_bare = fetch(bare.port, probe)?;
        answer_mismatches.extend(compare_answers(probe, &from_mock, &from_bare));
    }

    let script = LuaScripts::write()?;
    let mut pairs = Vec::new();
    for probe in &PROBES {
        for (side, port) in [("mock", mock.port), ("bare", bare.port)] {
            eprintln!("bench: {side} {} {} ({WARMUP_SECS} s warm-up)", probe.method, probe.path);
            run_wrk(&wrk, opts, WARMUP_SECS, port, probe, script.script(probe).as_deref())?;
        }
        let mut rounds = Vec::new();
        for number in 0..opts.rounds {
            // Back to back, so both sides see the machine in the same state; which side goes
            // first alternates, so a machine that speeds up or slows down favours neither.
            let (mock_run, bare_run) = if number % 2 == 0 {
                let mock_run = measure(&wrk, opts, "mock", mock.port, probe, &script)?;
                (mock_run, measure(&wrk, opts, "bare", bare.port, probe, &script)?)
            } else {
                let bare_run = measure(&wrk, opts, "bare", bare.port, probe, &script)?;
                (measure(&wrk, opts, "mock", mock.port, probe, &script)?, bare_run)
            };
            rounds.push(Round { mock: mock_run, bare: bare_run });
        }
        pairs.push(Pair { probe: *probe, rounds });
    }
    drop(mock);
    drop(bare);

    let report = Report { opts: opts.clone(), pairs, answer_mismatches };
    println!("{report}");
    Ok(report.passed())
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
    eprintln!("bench: cargo build --profile dist -p xtask (the bare server must be optimised too)");
    // xtask alone: built together with mpapi, shared dependencies would get other features than
    // when each is built alone, and every run would compile them twice.
    let xtask = build_dist(root, "xtask")?;
    Command::new(&xtask)
        .args(["bench", "--duration", &opts.duration.to_string(), "--connections", &opts.connections.to_string()])
        .args(["--rounds", &opts.rounds.to_string()])
        .env(RELEASE_MARKER, "1")
        .current_dir(root)
        .status()
        .with_context(|| format!("running {}", xtask.display()))
}

/// `cargo build --profile dist -p <package>` (release with fat LTO, the deployed build); the
/// executable of its same-named binary. Cargo reports the path, so `CARGO_TARGET_DIR` and
/// `build.target-dir` are honoured.
fn build_dist(root: &Path, package: &str) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(root)
        .args(["build", "--profile", "dist", "--message-format=json-render-diagnostics", "-p", package])
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running cargo build --profile dist -p {package}"))?;
    ensure!(output.status.success(), "cargo build --profile dist -p {package} failed ({})", output.status);
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message.pointer("/target/name").and_then(|v| v.as_str()) == Some(package))
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .with_context(|| format!("cargo build --profile dist -p {package} reported no `{package}` executable"))
}

/// The bytes mock mode answers `probe` with: its mock file as compact JSON.
///
/// Mock mode reads the example into the operation's typed output and writes it back with
/// `serde_json::to_string`, so the pretty-printed file is not what goes on the wire; compacting it
/// (keys in file order) gives the same bytes, which `compare_answers` confirms against the real
/// answer before anything is measured.
fn mock_answer(root: &Path, probe: &Probe) -> Result<Vec<u8>> {
    let path = root.join("mocks").join(API).join(probe.mock);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    Ok(serde_json::to_vec(&value).expect("a JSON value serialises"))
}

/// `mpapi mock` as a child process, killed when dropped (also on every error path).
struct MockMode {
    child: Child,
    port: u16,
}

impl MockMode {
    fn start(mpapi: &Path) -> Result<Self> {
        let port = free_port()?;
        eprintln!("bench: {} mock --api {API} --port-base {port} --bind 127.0.0.1", mpapi.display());
        // Mock mode logs one line per request; /dev/null keeps the terminal (and a pipe that
        // nobody drains) out of the measurement.
        let child = Command::new(mpapi)
            .args(["mock", "--api", API, "--port-base", &port.to_string(), "--bind", "127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {} mock", mpapi.display()))?;
        Ok(Self { child, port })
    }

    /// Fail when mock mode has exited (a port taken, a missing subcommand, a panic at startup).
    fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait().context("asking whether mpapi mock still runs")? {
            None => Ok(()),
            Some(status) => bail!(
                "mpapi mock exited ({status}) before answering; run it by hand to see why: \
                 target/dist/mpapi mock --api {API} --port-base {} --bind 127.0.0.1",
                self.port
            ),
        }
    }
}

impl Drop for MockMode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free on loopback right now (mock mode binds it a moment later).
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

/// The comparison point: axum routes that answer with fixed bytes, on their own tokio runtime in
/// this process. The POST handler reads the body (as mock mode must) but neither parses nor
/// validates it: that work is what the benchmark prices.
struct BareServer {
    runtime: Option<tokio::runtime::Runtime>,
    port: u16,
}

impl BareServer {
    fn start(answers: &[Vec<u8>]) -> Result<Self> {
        use axum::body::Bytes;
        use axum::http::header::CONTENT_TYPE;
        use axum::routing::{get, post};

        let [get_answer, post_answer] = answers else { bail!("the bare server serves exactly two answers") };
        let get_answer = Bytes::from(get_answer.clone());
        let post_answer = Bytes::from(post_answer.clone());
        let app = axum::Router::new()
            .route(PROBES[0].path, get(move || async move { ([(CONTENT_TYPE, "application/json")], get_answer) }))
            .route(
                PROBES[1].path,
                post(move |_body: Bytes| async move { ([(CONTENT_TYPE, "application/json")], post_answer) }),
            );

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
        let error = match fetch(port, probe) {
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

/// Send `probe` once over a fresh connection (std only: no client dependency for two requests).
fn fetch(port: u16, probe: &Probe) -> Result<Answer> {
    let mut stream = TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), Duration::from_secs(1))
        .with_context(|| format!("connecting to 127.0.0.1:{port}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let body = probe.body.unwrap_or_default();
    let content_type = if probe.body.is_some() { "Content-Type: application/json\r\n" } else { "" };
    let request = format!(
        "{} {} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{content_type}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        probe.method,
        probe.path,
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).with_context(|| format!("reading the answer from 127.0.0.1:{port}"))?;
    parse_answer(&raw)
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

/// Where the two answers to `probe` differ in what a client sees (status, Content-Type, body).
fn compare_answers(probe: &Probe, mock: &Answer, bare: &Answer) -> Vec<String> {
    let request = format!("{} {}", probe.method, probe.path);
    let mut out = Vec::new();
    if mock.status != bare.status {
        out.push(format!("{request}: mock answers status {}, bare {}", mock.status, bare.status));
    }
    if mock.content_type != bare.content_type {
        out.push(format!(
            "{request}: mock answers Content-Type {:?}, bare {:?}",
            mock.content_type, bare.content_type
        ));
    }
    if mock.body != bare.body {
        out.push(format!(
            "{request}: mock's body ({} bytes) differs from mocks/{API}/{} compacted ({} bytes): {}",
            mock.body.len(),
            probe.mock,
            bare.body.len(),
            String::from_utf8_lossy(&mock.body)
        ));
    }
    out
}

/// The Lua scripts wrk needs for requests with a body, in a temporary folder removed on drop.
struct LuaScripts {
    dir: PathBuf,
}

impl LuaScripts {
    fn write() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("mpapi-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let scripts = Self { dir };
        for probe in PROBES.iter().filter(|p| p.body.is_some()) {
            let path = scripts.path(probe);
            std::fs::write(&path, wrk_script(probe)).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(scripts)
    }

    /// The script for `probe`, if it has a body.
    fn script(&self, probe: &Probe) -> Option<PathBuf> {
        probe.body.map(|_| self.path(probe))
    }

    fn path(&self, probe: &Probe) -> PathBuf {
        self.dir.join(format!("{}.lua", probe.mock.replace('/', "_")))
    }
}

impl Drop for LuaScripts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A wrk script sending `probe`'s method, body and `Content-Type: application/json`.
fn wrk_script(probe: &Probe) -> String {
    let body = probe.body.unwrap_or_default();
    // A Lua long string: the JSON needs no escaping.
    format!(
        "wrk.method = \"{}\"\nwrk.body = [==[{body}]==]\nwrk.headers[\"Content-Type\"] = \"application/json\"\n",
        probe.method
    )
}

/// The measured run of `probe` against `port` (the warm-ups are done once per request in [`run`]).
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
        let run = |requests_per_sec| WrkRun { requests_per_sec, p99: Duration::ZERO, requests: 1, non_2xx: 0, socket_errors: 0 };
        let round = |mock, bare| Round { mock: run(mock), bare: run(bare) };
        let pair = Pair { probe: PROBES[0], rounds: vec![round(90.0, 100.0), round(10.0, 100.0), round(85.0, 100.0)] };
        assert_eq!(pair.ratio(), 0.85);
        assert!(pair.passed());
        let five: Vec<Round> = [50.0, 95.0, 70.0, 80.0, 90.0].into_iter().map(|mock| round(mock, 100.0)).collect();
        let pair = Pair { probe: PROBES[0], rounds: five };
        assert_eq!((pair.quartiles(), pair.ratio()), ((0.70, 0.90), 0.80));
        // An even number of rounds takes the lower middle one.
        let pair = Pair { probe: PROBES[0], rounds: vec![round(90.0, 100.0), round(10.0, 100.0)] };
        assert_eq!(pair.ratio(), 0.10);
        assert!(!pair.passed());
        let mut failing = round(90.0, 100.0);
        failing.mock.non_2xx = 1;
        assert!(!Pair { probe: PROBES[0], rounds: vec![failing] }.passed());
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
