//! Prometheus metrics, read at `/metrics` on every port ([`crate::ops`]): requests by API,
//! operation and status with their latency, the database pool, and the real providers' calls.
//!
//! Kept with the `prometheus` crate (TiKV's rust-prometheus; its text format only, without
//! protobuf): a counter or histogram looked up once is a handle over plain atomics, so counting a
//! request is a few atomic adds, without a lock or an allocation, and a histogram's buckets are
//! fixed (its memory does not grow between scrapes). prometheus-client's histogram takes a mutex
//! for every observation; metrics-exporter-prometheus keeps every observation until a scrape (or
//! its upkeep) folds it into buckets, and looks a handle up by its labels on every call unless
//! the caller keeps the handles, as [`ApiRequests`] does anyway.
//!
//! The series are the process's: every port answers all of them (one Prometheus target per
//! process is enough), except the database pool, which is the port's own database, read when
//! scraped.

use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

use axum::http::StatusCode;
use prometheus::core::Collector as _;
use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

use crate::apis::{APIS, Api, OperationTable};
use crate::storage::Db;

/// The `operation` label of a request for no operation of the API's contract (the docs, `/`,
/// `/_sandbox/*`, routes outside the contract such as o2o's pay notifies, unknown paths).
pub const NO_OPERATION: &str = "-";

/// `mpapi_http_requests_total{api, operation, status}`: requests answered.
pub const REQUESTS: &str = "mpapi_http_requests_total";
/// `mpapi_http_request_duration_seconds{api, operation}`: the time to the response head.
pub const REQUEST_DURATION: &str = "mpapi_http_request_duration_seconds";
/// `mpapi_provider_requests_total{provider, outcome}`: requests the real providers sent.
pub const PROVIDER_REQUESTS: &str = "mpapi_provider_requests_total";
/// `mpapi_provider_request_duration_seconds{provider}`: the time to the provider's answer head.
pub const PROVIDER_REQUEST_DURATION: &str = "mpapi_provider_request_duration_seconds";
/// `mpapi_db_pool_connections{backend}`: the connections the pool holds open.
pub const DB_POOL_CONNECTIONS: &str = "mpapi_db_pool_connections";
/// `mpapi_db_pool_idle_connections{backend}`: of those, the idle ones.
pub const DB_POOL_IDLE: &str = "mpapi_db_pool_idle_connections";
/// `mpapi_db_pool_max_connections{backend}`: the most the pool opens.
pub const DB_POOL_MAX: &str = "mpapi_db_pool_max_connections";

/// Request latency buckets, seconds: from a mock answer (a tenth of a millisecond) to a request
/// waiting on a slow provider.
const REQUEST_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Provider latency buckets, seconds (their timeouts are a few seconds).
const PROVIDER_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Every series of the process but the pool's.
struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    provider_requests: IntCounterVec,
    provider_duration: HistogramVec,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let registry = Registry::new();
    let requests = IntCounterVec::new(
        Opts::new(REQUESTS, "HTTP requests answered, by API, operationId (- for none) and status"),
        &["api", "operation", "status"],
    )
    .expect("valid names");
    let request_duration = HistogramVec::new(
        HistogramOpts::new(REQUEST_DURATION, "Time to answer an HTTP request (to the response head), by API and operationId")
            .buckets(REQUEST_BUCKETS.to_vec()),
        &["api", "operation"],
    )
    .expect("valid names");
    let provider_requests = IntCounterVec::new(
        Opts::new(PROVIDER_REQUESTS, "Requests the real providers sent, by provider and outcome (ok, http_error, transport_error)"),
        &["provider", "outcome"],
    )
    .expect("valid names");
    let provider_duration = HistogramVec::new(
        HistogramOpts::new(PROVIDER_REQUEST_DURATION, "Time to a provider's answer head (or its failure), by provider")
            .buckets(PROVIDER_BUCKETS.to_vec()),
        &["provider"],
    )
    .expect("valid names");
    for collector in [
        Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
        Box::new(request_duration.clone()),
        Box::new(provider_requests.clone()),
        Box::new(provider_duration.clone()),
    ] {
        registry.register(collector).expect("each series is registered once");
    }
    Metrics { registry, requests, request_duration, provider_requests, provider_duration }
});

/// How many distinct statuses of one operation keep a handle; more are looked up by label.
const STATUS_SLOTS: usize = 8;

/// One API's request series, as [`crate::server::RequestLog`] counts them: per operation of its
/// [`OperationTable`] (and one for requests for no operation) the latency histogram and a counter
/// per status, each looked up by its labels the first time and kept, so a request costs no
/// lookup, lock or allocation.
pub struct ApiRequests {
    api: &'static str,
    table: &'static OperationTable,
    /// In the table's order, then [`NO_OPERATION`]'s.
    operations: Box<[OperationSeries]>,
}

struct OperationSeries {
    id: &'static str,
    duration: OnceLock<Histogram>,
    /// The statuses seen, each taking the first free slot.
    statuses: [OnceLock<(u16, IntCounter)>; STATUS_SLOTS],
}

impl ApiRequests {
    /// `api`'s series, made on first use and kept for the life of the process.
    pub fn of(api: Api) -> &'static ApiRequests {
        static ALL: [OnceLock<ApiRequests>; APIS.len()] = [const { OnceLock::new() }; APIS.len()];
        let at = APIS.iter().position(|a| a.id == api.id).expect("an API of APIS");
        ALL[at].get_or_init(|| {
            let table = api.table();
            let ids = (0..table.len()).map(|index| table.id(index)).chain([NO_OPERATION]);
            let operations = ids
                .map(|id| OperationSeries { id, duration: OnceLock::new(), statuses: [const { OnceLock::new() }; STATUS_SLOTS] })
                .collect();
            ApiRequests { api: api.id, table, operations }
        })
    }

    /// The API id.
    pub fn api(&self) -> &'static str {
        self.api
    }

    /// The API's operations.
    pub fn table(&self) -> &'static OperationTable {
        self.table
    }

    /// Count a request for `operation` (its index in the table; `None`: no operation) answered
    /// with `status` after `elapsed`.
    pub fn record(&self, operation: Option<usize>, status: StatusCode, elapsed: Duration) {
        let series = &self.operations[operation.unwrap_or(self.operations.len() - 1)];
        let metrics = &*METRICS;
        series
            .duration
            .get_or_init(|| metrics.request_duration.with_label_values(&[self.api, series.id]))
            .observe(elapsed.as_secs_f64());
        let code = status.as_u16();
        let counter = || metrics.requests.with_label_values(&[self.api, series.id, status.as_str()]);
        for slot in &series.statuses {
            let (seen, counter) = slot.get_or_init(|| (code, counter()));
            if *seen == code {
                counter.inc();
                return;
            }
        }
        counter().inc();
    }
}

/// How a provider's request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderOutcome {
    /// A 2xx answer (the vendor may still refuse inside it: WeChat's `errcode`, Aliyun's `Code`).
    Ok,
    /// An answer with another status.
    HttpError,
    /// No answer: connection, TLS, timeout.
    TransportError,
}

impl ProviderOutcome {
    /// The `outcome` label.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderOutcome::Ok => "ok",
            ProviderOutcome::HttpError => "http_error",
            ProviderOutcome::TransportError => "transport_error",
        }
    }
}

/// Count a request `provider` sent, which ended as `outcome` after `elapsed`
/// (`providers::send`).
pub fn provider_request(provider: &'static str, outcome: ProviderOutcome, elapsed: Duration) {
    let metrics = &*METRICS;
    metrics.provider_requests.with_label_values(&[provider, outcome.as_str()]).inc();
    metrics.provider_duration.with_label_values(&[provider]).observe(elapsed.as_secs_f64());
}

/// The Prometheus text exposition (format 0.0.4) of every series of the process, with `db`'s
/// connection pool as it is now when the port has a database (`serve`).
pub fn render(db: Option<&Db>) -> String {
    let mut families = METRICS.registry.gather();
    if let Some(db) = db {
        let pool = db.pool();
        for (name, help, value) in [
            (DB_POOL_CONNECTIONS, "Connections the database pool holds open", pool.open),
            (DB_POOL_IDLE, "Idle connections of the database pool", pool.idle),
            (DB_POOL_MAX, "The most connections the database pool opens", pool.max),
        ] {
            let gauge = IntGauge::with_opts(Opts::new(name, help).const_label("backend", db.backend())).expect("valid names");
            gauge.set(i64::from(value));
            families.extend(gauge.collect());
        }
        families.sort_by(|a, b| a.name().cmp(b.name()));
    }
    let mut text = String::new();
    TextEncoder::new().encode_utf8(&families, &mut text).expect("the registry's series encode");
    text
}

/// The media type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
