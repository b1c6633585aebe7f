//! What every port answers for its operators, outside the contracts: `/metrics`, `/health/live`, `/health/ready`.
//!
//! None of the five contracts documents these paths (heating's `GET /health` is its own
//! operation, answered as documented), they are not in the published documents, and the request
//! log neither logs nor counts them ([`is_ops_path`]): a scrape or a probe every few seconds is
//! no API traffic.

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::storage::Db;

/// Prometheus text of the process's metrics ([`crate::metrics`]).
pub const METRICS: &str = "/metrics";
/// The process is up: always 200.
pub const LIVE: &str = "/health/live";
/// The port can serve: 200 while its database answers (mock mode: always), else 503.
pub const READY: &str = "/health/ready";

/// Whether `path` is one of these routes (the request log leaves them out).
pub fn is_ops_path(path: &str) -> bool {
    matches!(path, METRICS | LIVE | READY)
}

/// The routes, over the port's database (`serve`) or none (mock mode).
pub fn routes(db: Option<Db>) -> Router {
    let scrape_db = db.clone();
    let metrics = move || {
        let db = scrape_db.clone();
        async move { no_store((StatusCode::OK, [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], crate::metrics::render(db.as_ref()))) }
    };
    let ready = move || {
        let db = db.clone();
        async move {
            let Some(db) = db else { return status(true) };
            let answers = db.ping().await;
            if !answers {
                tracing::warn!(timeout_ms = crate::storage::PING_TIMEOUT.as_millis() as u64, "not ready: the database does not answer");
            }
            status(answers)
        }
    };
    Router::new().route(METRICS, get(metrics)).route(LIVE, get(|| async { status(true) })).route(READY, get(ready))
}

/// `{"status":"ok"}` (200), or `{"status":"unavailable"}` (503).
fn status(ok: bool) -> Response {
    let (code, body) = if ok { (StatusCode::OK, r#"{"status":"ok"}"#) } else { (StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"unavailable"}"#) };
    no_store((code, [(header::CONTENT_TYPE, "application/json")], body))
}

/// The answer, never cached (each one says how things are now).
fn no_store(answer: impl IntoResponse) -> Response {
    let mut response = answer.into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use axum::body::Body;
    use axum::extract::Request;
    use tower::ServiceExt as _;

    use crate::mock::{Latency, MockLayer, MockSource, Validation};

    /// charging's requests counted so far, by the process's metrics.
    fn charging_requests() -> f64 {
        let text = crate::metrics::render(None);
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).expect("Prometheus text");
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == crate::metrics::REQUESTS && s.labels.get("api") == Some("charging"))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) => v,
                ref other => panic!("a counter: {other:?}"),
            })
            .sum()
    }

    /// Nothing else in this test binary serves charging, so its counts are this test's own.
    #[tokio::test]
    async fn the_operations_routes_are_answered_but_not_counted() {
        let api = crate::apis::by_id("charging").expect("charging");
        let source = MockSource::load(api, &Path::new(env!("CARGO_MANIFEST_DIR")).join("mocks")).expect("mocks");
        let layer = MockLayer::new(api, source, Validation::Enforce, Latency::default());
        let app = crate::server::outer(crate::server::mock_app(layer, &[(api, 3003)]), api.id, &crate::server::Cors::AnyOrigin);
        let status = |path: &'static str| {
            let app = app.clone();
            async move { app.oneshot(Request::get(path).body(Body::empty()).expect("a request")).await.expect("infallible").status().as_u16() }
        };
        assert_eq!(charging_requests(), 0.0);
        for path in [super::METRICS, super::LIVE, super::READY, super::METRICS] {
            assert_eq!(status(path).await, 200, "{path}");
        }
        assert_eq!(charging_requests(), 0.0, "the operations routes are not counted");
        assert_eq!(status("/api/config").await, 401, "no credential");
        assert_eq!(status("/no/such/path").await, 404);
        assert_eq!(charging_requests(), 2.0, "API requests are, once each");
    }
}
