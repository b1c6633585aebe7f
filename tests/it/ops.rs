//! What every port answers operators: `/metrics` read back with a Prometheus text parser (the
//! request counter and latency histogram of an operation, the database pool, a provider's
//! calls), `/health/live` and `/health/ready` in both modes, JSON logs from the binary, and a
//! SQLite file's write-ahead log kept short.


use axum::body::Body;
use axum::http::Request;
use mpapi::apis::{self, Api};
use mpapi::mock::{Latency, MockLayer, MockSource, Validation};
use mpapi::server;
use prometheus_parse::{Sample, Scrape, Value as Metric};
use serde_json::{Value, json};
use xtask::spec::workspace_root;

use crate::app::TestApp;
use crate::support::{first_answer, send, sigterm, spawn_mock};

/// `api` in mock mode, through the same stack a listener serves.
fn mock_app(api: &str) -> server::MockApp {
    let api: Api = apis::by_id(api).expect("known api");
    let source = MockSource::load(api, &workspace_root().join("mocks")).expect("mocks load");
    let layer = MockLayer::new(api, source, Validation::Enforce, Latency::default());
    server::outer(server::mock_app(layer, &[(api, 3000 + api.offset)]), api.id, &server::Cors::AnyOrigin)
}

/// `/metrics` text as Prometheus reads it.
fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).expect("Prometheus text format")
}

fn labelled<'a>(scrape: &'a Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    scrape.samples.iter().find(|s| s.metric == metric && labels.iter().all(|(name, value)| s.labels.get(name) == Some(*value)))
}

/// A counter's or gauge's value (0 when the series is not there yet).
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    match labelled(scrape, metric, labels).map(|s| &s.value) {
        None => 0.0,
        Some(Metric::Counter(v) | Metric::Gauge(v) | Metric::Untyped(v)) => *v,
        Some(other) => panic!("{metric} is no counter or gauge: {other:?}"),
    }
}

/// A histogram's observations (its `+Inf` bucket; 0 when the series is not there yet).
fn observations(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    match labelled(scrape, metric, labels).map(|s| &s.value) {
        None => 0.0,
        Some(Metric::Histogram(buckets)) => {
            assert!(buckets.windows(2).all(|w| w[0].count <= w[1].count), "{metric} buckets are cumulative: {buckets:?}");
            buckets.iter().find(|b| b.less_than == f64::INFINITY).expect("a +Inf bucket").count
        }
        Some(other) => panic!("{metric} is no histogram: {other:?}"),
    }
}

async fn scrape<S>(app: &S) -> Scrape
where
    S: tower::Service<Request<Body>, Response = axum::response::Response, Error = std::convert::Infallible> + Clone,
{
    let reply = send(app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.content_type.as_deref(), Some(mpapi::metrics::CONTENT_TYPE));
    parse(&reply.body)
}

#[tokio::test]
async fn mock_requests_are_counted_by_api_operation_and_status() {
    let app = mock_app("heating");
    let before = scrape(&app).await;
    let system = [("api", "heating"), ("operation", "config_system_get"), ("status", "200")];
    let refused = [("api", "heating"), ("operation", "sms_send"), ("status", "400")];
    for _ in 0..3 {
        let reply = send(&app, Request::get("/api/config/system").body(Body::empty()).unwrap()).await;
        assert_eq!(reply.status, 200);
    }
    // HEAD is the GET operation's, as the router answers it.
    send(&app, Request::head("/api/config/system").body(Body::empty()).unwrap()).await;
    let sms = Request::post("/api/sms/send").header("content-type", "application/json").body(Body::from("{}")).unwrap();
    assert_eq!(send(&app, sms).await.status, 400);
    let after = scrape(&app).await;

    let counted = value(&after, mpapi::metrics::REQUESTS, &system) - value(&before, mpapi::metrics::REQUESTS, &system);
    // Other tests may count the same series meanwhile (the metrics are the process's): at least.
    assert!(counted >= 4.0, "4 requests for config_system_get, counted {counted}");
    assert!(value(&after, mpapi::metrics::REQUESTS, &refused) - value(&before, mpapi::metrics::REQUESTS, &refused) >= 1.0);
    let latency = [("api", "heating"), ("operation", "config_system_get")];
    let observed = observations(&after, mpapi::metrics::REQUEST_DURATION, &latency) - observations(&before, mpapi::metrics::REQUEST_DURATION, &latency);
    assert!(observed >= 4.0, "4 latencies observed, {observed}");
    assert!(after.docs.contains_key(mpapi::metrics::REQUEST_DURATION), "the histogram is documented");
    // Mock mode has no database.
    assert!(!after.samples.iter().any(|s| s.metric.starts_with("mpapi_db_pool")), "no pool in mock mode");
}

#[tokio::test]
async fn a_path_parameter_and_an_unknown_path_name_their_operation() {
    let app = mock_app("heating");
    let status = [("api", "heating"), ("operation", "payment_status_get"), ("status", "401")];
    let none = [("api", "heating"), ("operation", mpapi::metrics::NO_OPERATION), ("status", "404")];
    let before = scrape(&app).await;
    let reply = send(&app, Request::get("/api/payment/status/ORD123").body(Body::empty()).unwrap()).await;
    assert_eq!(reply.status, 401, "no credential: {}", reply.body);
    assert_eq!(send(&app, Request::get("/api/no/such/path").body(Body::empty()).unwrap()).await.status, 404);
    let after = scrape(&app).await;
    assert!(value(&after, mpapi::metrics::REQUESTS, &status) - value(&before, mpapi::metrics::REQUESTS, &status) >= 1.0);
    assert!(value(&after, mpapi::metrics::REQUESTS, &none) - value(&before, mpapi::metrics::REQUESTS, &none) >= 1.0);
}

#[tokio::test]
async fn mock_health_is_live_and_ready_and_heatings_own_health_is_its_example() {
    let app = mock_app("heating");
    for path in ["/health/live", "/health/ready"] {
        let reply = send(&app, Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!((reply.status, reply.json()), (200, json!({"status": "ok"})), "{path}");
        assert_eq!(reply.headers.get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
    }
    // The documented operation is untouched: its default example, named.
    let health = send(&app, Request::get("/health").body(Body::empty()).unwrap()).await;
    let example: Value = serde_json::from_str(&std::fs::read_to_string(workspace_root().join("mocks/heating/health_check/success.json")).unwrap()).unwrap();
    assert_eq!((health.status, health.json()), (200, example));
    assert_eq!(health.headers.get("x-mpapi-example").and_then(|v| v.to_str().ok()), Some("success"));
}

#[tokio::test]
async fn the_operations_routes_are_on_every_port_and_in_no_published_document() {
    for api in apis::APIS {
        let app = mock_app(api.id);
        for path in ["/metrics", "/health/live", "/health/ready"] {
            let reply = send(&app, Request::get(path).body(Body::empty()).unwrap()).await;
            assert_eq!(reply.status, 200, "{} {path}: {}", api.id, reply.body);
        }
        let document = send(&app, Request::get("/openapi.json").body(Body::empty()).unwrap()).await.json();
        let paths = document["paths"].as_object().expect("paths");
        assert!(paths.keys().all(|p| p != "/metrics" && !p.starts_with("/health/")), "{}: {:?}", api.id, paths.keys());
    }
}

/// Neither logged nor counted: the request log leaves the operations routes out (the counting is
/// the same step as the line; `mpapi::ops`'s unit test checks the counts themselves, in a test
/// binary where nothing else counts).
#[tokio::test]
async fn the_operations_routes_are_not_logged() {
    let (buffer, _guard) = crate::mock::LogBuffer::capture();
    let app = mock_app("points");
    for path in ["/metrics", "/health/live", "/health/ready", "/api/v1/system/status"] {
        send(&app, Request::get(path).body(Body::empty()).unwrap()).await;
    }
    let text = buffer.text();
    let lines: Vec<&str> = text.lines().filter(|line| line.contains(" request=")).collect();
    assert_eq!(lines.len(), 1, "only the API request is logged:\n{text}");
    assert!(lines[0].contains("request=points GET /api/v1/system/status 200"), "{}", lines[0]);
}

#[tokio::test]
async fn serve_counts_its_requests_and_shows_its_database_pool() {
    let app = TestApp::heating().await;
    let system = [("api", "heating"), ("operation", "config_system_get"), ("status", "200")];
    let before = parse(&app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap());
    for _ in 0..2 {
        assert_eq!(app.get("/api/config/system", None).await.status, 200);
    }
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.headers()["content-type"], mpapi::metrics::CONTENT_TYPE);
    let after = parse(&response.text().await.unwrap());
    assert!(value(&after, mpapi::metrics::REQUESTS, &system) - value(&before, mpapi::metrics::REQUESTS, &system) >= 2.0);
    let latency = [("api", "heating"), ("operation", "config_system_get")];
    assert!(observations(&after, mpapi::metrics::REQUEST_DURATION, &latency) >= 2.0);
    let backend = [("backend", app.server.db.backend())];
    let max = value(&after, mpapi::metrics::DB_POOL_MAX, &backend);
    let open = value(&after, mpapi::metrics::DB_POOL_CONNECTIONS, &backend);
    let idle = value(&after, mpapi::metrics::DB_POOL_IDLE, &backend);
    assert!(max >= 1.0 && (1.0..=max).contains(&open) && idle <= open, "pool: max {max}, open {open}, idle {idle}");
}

#[tokio::test]
async fn serve_is_ready_while_its_database_answers() {
    let app = TestApp::heating().await;
    let get = |path: &'static str| {
        let request = app.client.get(app.url(path));
        async move {
            let response = request.send().await.expect("answered");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("JSON"))
        }
    };
    assert_eq!(get("/health/live").await, (200, json!({"status": "ok"})));
    assert_eq!(get("/health/ready").await, (200, json!({"status": "ok"})));
    // The contract's own health check answers as documented (checked against heating.yaml).
    assert_eq!(app.get("/health", None).await.status, 200);
    app.server.db.close().await;
    assert_eq!(get("/health/ready").await, (503, json!({"status": "unavailable"})));
    assert_eq!(get("/health/live").await, (200, json!({"status": "ok"})), "the process is still up");
}

/// A TCP relay to PostgreSQL that can be cut: its connections closed and its port refusing, as
/// when the database host goes away.
struct Relay {
    address: std::net::SocketAddr,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Relay {
    async fn to(upstream: &str) -> Relay {
        Relay::on("127.0.0.1:0", upstream).await
    }

    /// A relay listening on `address`.
    async fn on(address: &str, upstream: &str) -> Relay {
        let listener = tokio::net::TcpListener::bind(address).await.expect("the relay's port binds");
        let address = listener.local_addr().expect("bound");
        let tasks = std::sync::Arc::new(std::sync::Mutex::new(Vec::<tokio::task::AbortHandle>::new()));
        let upstream = upstream.to_owned();
        let registry = tasks.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let relay = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                registry.lock().unwrap().push(relay.abort_handle());
            }
        });
        tasks.lock().unwrap().push(accepting.abort_handle());
        Relay { address, tasks }
    }

    /// Close every relayed connection and the listening port.
    async fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
        // An aborted task drops its sockets when it is next polled.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(tokio::net::TcpStream::connect(self.address).await.is_err(), "the relay's port still accepts");
    }
}

/// With its PostgreSQL gone (every connection closed, the port refusing), requests are answered
/// in seconds, not after sqlx's 30 s default: readiness and heating's documented `GET /health`
/// (503 数据库未连接) within about `PING_TIMEOUT` (the per-IP budget's counting gives up after
/// `BUDGET_ACQUIRE_TIMEOUT`, letting the request through), a read needing the database with a 500
/// in heating's envelope after `BUDGET_ACQUIRE_TIMEOUT` + `POSTGRES_ACQUIRE_TIMEOUT`. PostgreSQL only
/// (`.ci/run`'s second pass): a SQLite file cannot go away.
#[tokio::test]
async fn a_lost_database_is_answered_within_seconds() {
    use mpapi::storage::{BUDGET_ACQUIRE_TIMEOUT, PING_TIMEOUT, POSTGRES_ACQUIRE_TIMEOUT};
    use std::time::{Duration, Instant};
    let Some(upstream) = postgres_address() else {
        eprintln!("a_lost_database_is_answered_within_seconds: skipped (DATABASE_URL does not name PostgreSQL)");
        return;
    };
    let relay = Relay::to(&upstream).await;
    let through = relay.address;
    let app = TestApp::spawn("heating", move |c| c.database_url = via(&c.database_url, through)).await;
    assert_eq!(app.get("/api/config/system", None).await.status, 200);
    assert_eq!(app.get("/health", None).await.status, 200);

    relay.cut().await;
    let slack = Duration::from_millis(3000);
    let started = Instant::now();
    let ready = app.client.get(app.url("/health/ready")).send().await.expect("answered");
    assert_eq!(ready.status(), 503);
    assert!(started.elapsed() < PING_TIMEOUT + slack, "{:?}", started.elapsed());

    // Checked against heating.yaml by `get`, as is every answer below.
    let started = Instant::now();
    let health = app.get("/health", None).await;
    assert_eq!((health.status, health.code()), (503, 500), "{}", health.body);
    assert!(health.body["message"].as_str().unwrap().contains("数据库未连接"), "{}", health.body);
    assert!(started.elapsed() < BUDGET_ACQUIRE_TIMEOUT + PING_TIMEOUT + slack, "{:?}", started.elapsed());

    // At most: the counting's wait, then the read's (a dead connection still idle in the pool
    // fails it at once instead).
    let started = Instant::now();
    let read = app.get("/api/config/system", None).await;
    assert_eq!(read.status, 500, "{}", read.body);
    assert!(started.elapsed() < BUDGET_ACQUIRE_TIMEOUT + POSTGRES_ACQUIRE_TIMEOUT + slack, "{:?}", started.elapsed());
}

/// `host:port` of the PostgreSQL that `DATABASE_URL` names (`None`: not PostgreSQL).
fn postgres_address() -> Option<String> {
    let url = reqwest::Url::parse(&std::env::var("DATABASE_URL").ok()?).ok()?;
    url.scheme().starts_with("postgres").then(|| format!("{}:{}", url.host_str().unwrap_or("localhost"), url.port().unwrap_or(5432)))
}

/// `database_url` with its host and port replaced by `relay`'s.
fn via(database_url: &str, relay: std::net::SocketAddr) -> String {
    let mut url = reqwest::Url::parse(database_url).expect("a database URL");
    url.set_host(Some(&relay.ip().to_string())).expect("a host");
    url.set_port(Some(relay.port())).expect("a port");
    url.to_string()
}

/// A start whose PostgreSQL accepts no connection yet (its port refusing) waits for it past the
/// pools' `POSTGRES_ACQUIRE_TIMEOUT`, up to `START_WAIT`, and then starts. PostgreSQL only.
#[tokio::test]
async fn a_start_waits_for_a_database_still_starting() {
    use mpapi::storage::{Db, POSTGRES_ACQUIRE_TIMEOUT, START_WAIT};
    use std::time::{Duration, Instant};
    let Some(upstream) = postgres_address() else {
        eprintln!("a_start_waits_for_a_database_still_starting: skipped (DATABASE_URL does not name PostgreSQL)");
        return;
    };
    // A port nothing listens on (yet): bound, then let go.
    let address = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("port 0 binds").local_addr().expect("bound");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let url = via(&crate::app::fresh_database(&dir).await, address);
    let late = POSTGRES_ACQUIRE_TIMEOUT + Duration::from_secs(1);
    let started = Instant::now();
    let relay = tokio::spawn(async move {
        tokio::time::sleep(late).await;
        Relay::on(&address.to_string(), &upstream).await
    });
    let db = Db::connect(&url).await.expect("the start waited for the database");
    let waited = started.elapsed();
    assert!(waited >= late && waited < START_WAIT, "{waited:?}");
    assert!(db.ping().await);
    db.close().await;
    drop(relay.await.expect("the relay started"));
}

#[tokio::test]
async fn provider_calls_are_counted_by_provider_and_outcome() {
    use mpapi::providers::geocoder::{ReverseGeocoder as _, TencentGeocoder};
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let geocoder = |base_url: String| {
        TencentGeocoder::new(&mpapi::config::GeocoderConfig {
            provider: mpapi::config::ProviderKind::Real,
            base_url,
            key: Some("TEST-KEY".into()),
            secret_key: None,
            timeout_ms: 3000,
        })
        .expect("configured")
    };
    let provider = "tencent-geocoder";
    let counted = |scrape: &Scrape, outcome: &str| value(scrape, mpapi::metrics::PROVIDER_REQUESTS, &[("provider", provider), ("outcome", outcome)]);
    let before = parse(&mpapi::metrics::render(None));
    let failing = MockServer::start().await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(500)).mount(&failing).await;
    assert!(geocoder(failing.uri()).county_of(22.54, 113.94).await.is_err());
    // Nothing listens there: no answer.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    assert!(geocoder(format!("http://{closed}")).county_of(22.54, 113.94).await.is_err());
    let ok = MockServer::start().await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(200).set_body_json(json!({"status": 0, "message": "ok"}))).mount(&ok).await;
    assert_eq!(geocoder(ok.uri()).county_of(22.54, 113.94).await.unwrap(), None);
    let after = parse(&mpapi::metrics::render(None));
    for outcome in ["ok", "http_error", "transport_error"] {
        assert!(counted(&after, outcome) - counted(&before, outcome) >= 1.0, "{outcome}: {}", counted(&after, outcome));
    }
    assert!(observations(&after, mpapi::metrics::PROVIDER_REQUEST_DURATION, &[("provider", provider)]) >= 3.0);
}

/// The binary with `MPAPI_LOG_FORMAT=json`: stdout is one JSON object per line — the start-up
/// lines too — and the request line's parts are fields, the query (which may carry a token) left
/// out.
#[cfg(unix)]
#[tokio::test]
async fn the_binary_logs_json_lines_when_configured() {
    use std::io::Read as _;

    // Two APIs, two listeners: the stop is still said once.
    let (mut child, port) = spawn_mock(&["heating", "points"], &[("MPAPI_LOG_FORMAT", "json")], std::process::Stdio::piped());
    let answered = first_answer(port, "/api/config/system?token=secret-token").await;
    let points = first_answer(port + 1, "/health/live").await;
    let killed = sigterm(&child);
    assert!(killed && answered == Some(200) && points == Some(200), "mpapi mock answered {answered:?} on {port}, {points:?} on {}", port + 1);
    let mut stdout = String::new();
    child.stdout.take().expect("piped").read_to_string(&mut stdout).expect("stdout reads");
    assert!(child.wait().expect("waitable").success());

    let lines: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}\n{stdout}")))
        .collect();
    assert!(!stdout.contains("secret-token"), "the query reached the log:\n{stdout}");
    for line in &lines {
        let time = line["timestamp"].as_str().expect("a timestamp");
        assert!(time.ends_with('Z') && time.len() == "2026-11-21T11:16:11.934Z".len(), "{time}");
        assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{time}");
        assert!(line["level"].is_string() && line["target"].is_string() && line["message"].is_string(), "{line}");
    }
    assert!(lines.iter().any(|l| l["message"].as_str().is_some_and(|m| m.starts_with("mpapi mock"))), "the start-up lines are JSON too:\n{stdout}");
    let request = lines.iter().find(|l| l["message"] == "request").unwrap_or_else(|| panic!("no request line:\n{stdout}"));
    assert_eq!(request["level"], "INFO");
    assert_eq!(request["target"], "mpapi::server");
    for (field, expected) in [
        ("api", json!("heating")),
        ("method", json!("GET")),
        ("path", json!("/api/config/system")),
        ("status", json!(200)),
        ("operation", json!("config_system_get")),
        ("example", json!("success")),
    ] {
        assert_eq!(request[field], expected, "{field} in {request}");
    }
    assert!(request["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{request}");
    // The stop is said once, with its signal, and its end after the listeners closed.
    let said = |prefix: &str| lines.iter().filter(|l| l["message"].as_str().is_some_and(|m| m.starts_with(prefix))).collect::<Vec<_>>();
    let requested = said("stop requested");
    assert_eq!(requested.len(), 1, "{stdout}");
    assert_eq!(requested[0]["signal"], "SIGTERM", "{stdout}");
    assert_eq!(said("stopped").len(), 1, "{stdout}");
    let position = |line: &Value| lines.iter().position(|l| l == line);
    assert!(position(requested[0]) < position(said("stopped")[0]), "{stdout}");
}

/// A start that fails (a database file it cannot create) ends the process with a failure, and a
/// JSON log says why in its last line (stderr says it too); every stdout line stays JSON.
#[test]
fn a_failed_start_is_logged_as_json_too() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("no-such-folder").join("mpapi.db").display());
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mpapi"))
        .args(["serve", "--api", "heating", "--port-base", "0", "--bind", "127.0.0.1"])
        .env("DATABASE_URL", &url)
        .env("MPAPI_LOG_FORMAT", "json")
        .env_remove("RUST_LOG")
        .current_dir(dir.path())
        .output()
        .expect("mpapi runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}\n{stdout}")))
        .collect();
    let last = lines.last().unwrap_or_else(|| panic!("nothing logged; stderr: {stderr}"));
    assert_eq!((&last["level"], &last["message"]), (&json!("ERROR"), &json!("mpapi stopped on an error")), "{stdout}");
    let error = last["error"].as_str().expect("the error's text");
    assert!(error.contains("unable to open database file"), "{error}");
    assert!(stderr.contains("unable to open database file"), "{stderr}");
}

/// A SQLite log that a reader kept from starting over grows past the threshold; while the
/// reader holds it, [`mpapi::storage::Db::checkpoint_wal`] gives up within its 100 ms (writers
/// are never held back for long) and the log stays; once the reader is done, one call empties it.
#[tokio::test]
async fn a_long_sqlite_log_is_emptied_once_its_readers_move_on() {
    use sea_orm::{ConnectionTrait, Statement, TransactionTrait};
    let dir = tempfile::tempdir().expect("a temporary folder");
    let file = dir.path().join("wal.db");
    let url = format!("sqlite://{}?mode=rwc", file.display());
    let db = mpapi::storage::Db::connect(&url).await.expect("the database");
    let wal = dir.path().join("wal.db-wal");
    let wal_len = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);

    // A reader on its own connection holds a snapshot from before the writes.
    let reader = sea_orm::Database::connect(url.as_str()).await.expect("a second connection");
    let snapshot = reader.begin().await.expect("a read transaction");
    snapshot
        .query_one_raw(Statement::from_string(sea_orm::DbBackend::Sqlite, "SELECT count(*) FROM rate_window"))
        .await
        .expect("the read");
    let budgets = mpapi::ratelimit::Budgets::Database(mpapi::storage::rate_limit::RateLimitStore::new(db.clone()));
    let window = mpapi::ratelimit::Window::new(100, std::time::Duration::from_secs(900));
    for n in 0..1_500 {
        let admission = budgets.admit("t:ip", &format!("198.51.100.{n}"), 1_800_000_000_000_000, &window, 1).await;
        assert_eq!(admission.expect("the store answers").admitted, 1);
    }
    let grown = wal_len();
    assert!(grown >= 1_000 * 4_096, "the log holds {grown} bytes");

    let started = std::time::Instant::now();
    let frames = db.checkpoint_wal().await.expect("a busy checkpoint is no error").expect("a SQLite file");
    assert!(started.elapsed() < std::time::Duration::from_secs(1), "waited {:?} for the reader", started.elapsed());
    assert!(frames >= mpapi::storage::WAL_TRUNCATE_FRAMES, "{frames}");
    assert!(wal_len() >= grown, "the log went while a reader held it");

    snapshot.commit().await.expect("the reader is done");
    let frames = db.checkpoint_wal().await.expect("the checkpoint").expect("a SQLite file");
    assert!(frames >= mpapi::storage::WAL_TRUNCATE_FRAMES, "{frames}");
    assert_eq!(wal_len(), 0, "the log is emptied");
    // The data is all in the database: the budgets still count.
    let again = budgets.admit("t:ip", "198.51.100.7", 1_800_000_000_000_000, &window, 100).await.unwrap();
    assert_eq!(again.admitted, 99, "one of its 100 was spent above");
    // A closed database ends the server's checkpoints.
    db.close().await;
    assert_eq!(db.checkpoint_wal().await.expect("no query once closed"), None);
}

/// SIGTERM while `serve` is still starting (its migrations held back by another connection's
/// write lock on the file) ends the start there, before any request is served: the process exits
/// with success and says so once. A start on the same file afterwards migrates and serves:
/// nothing half-done stays behind.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn sigterm_during_the_start_of_serve_ends_it_cleanly() {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().expect("a temporary folder");
    let file = dir.path().join("start.db");
    let url = format!("sqlite://{}?mode=rwc", file.display());
    // The file in WAL mode already (so `serve` needs no exclusive lock to switch it), and its
    // write lock held: `serve`'s migration transaction waits on it (busy timeout 10 s).
    let holder = sea_orm::Database::connect(url.as_str()).await.expect("the test's connection");
    holder.execute_unprepared("PRAGMA journal_mode = WAL").await.expect("WAL");
    let lock = holder.begin().await.expect("a transaction");
    lock.execute_unprepared("CREATE TABLE held (x INTEGER)").await.expect("the write lock");

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_mpapi"))
            .args(["serve", "--api", "heating", "--port-base", &port.to_string(), "--bind", "127.0.0.1"])
            .env("DATABASE_URL", &url)
            .env_remove("RUST_LOG")
            .current_dir(dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("mpapi starts")
    };
    // The exit status within `limit`, or the child killed and the test failed.
    let exited = |child: &mut std::process::Child, limit: Duration| {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().expect("waitable") {
                let mut stdout = String::new();
                std::io::Read::read_to_string(&mut child.stdout.take().expect("piped"), &mut stdout).expect("stdout reads");
                return (status, stdout);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("mpapi did not exit within {limit:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    let mut child = spawn();
    // The database is opened after the signal handlers are installed: once the child holds the
    // file open, it is in its start, waiting for the lock.
    let opened = Instant::now();
    let holds_file = |pid: u32| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|fds| fds.flatten().any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target == file)))
            .unwrap_or(false)
    };
    while !holds_file(child.id()) {
        if opened.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            panic!("mpapi never opened {}", file.display());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(sigterm(&child));
    let (status, stdout) = exited(&mut child, Duration::from_secs(5));
    assert!(status.success(), "{status:?}\n{stdout}");
    assert_eq!(stdout.matches("stop requested during the start").count(), 1, "{stdout}");
    assert!(!stdout.contains("mpapi serve —"), "the start went on:\n{stdout}");
    lock.rollback().await.expect("the lock released");

    let mut again = spawn();
    let answered = first_answer(port, "/health/ready").await;
    assert!(sigterm(&again));
    let (status, stdout) = exited(&mut again, Duration::from_secs(10));
    assert!(status.success() && answered == Some(200), "{answered:?} {status:?}\n{stdout}");
}
