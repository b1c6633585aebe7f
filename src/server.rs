//! Listeners and what every port serves besides its API: `/openapi.json`, Swagger UI at
//! `/docs`, an index page at `/`, CORS, `X-HTTP-Method-Override`, one log line per request.

use std::net::{IpAddr, SocketAddr};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, Method};
use axum::middleware::Next;
use axum::response::{Html, Response};
use tower_http::cors::CorsLayer;

use crate::apis::Api;
use crate::mock::{EXAMPLE_HEADER, MockLayer, VALIDATION_HEADER};

/// The router of one API in mock mode: the generated router over the mocks, the mock middleware
/// around each operation, and the documentation routes.
pub fn mock_app(layer: MockLayer) -> Router {
    let api = layer.api;
    let router = (api.mock_router)(layer.source.clone())
        .route_layer(axum::middleware::from_fn_with_state(Arc::new(layer), crate::mock::middleware));
    with_docs(router, api, "mock")
}

/// Add `/openapi.json`, Swagger UI at `/docs` and the index page to an API's router.
pub fn with_docs(router: Router, api: Api, mode: &'static str) -> Router {
    let document = (api.document)();
    let title = document.info.title.clone();
    let swagger = utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", document);
    let index = index_page(api, &title, mode);
    router.merge(swagger).route("/", axum::routing::get(move || async move { Html(index) }))
}

fn index_page(api: Api, title: &str, mode: &str) -> String {
    format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>{title} · mpapi</title></head>\
         <body><h1>{title}</h1><p>mpapi {mode} · API <code>{id}</code></p>\
         <ul><li><a href=\"/docs\">Swagger UI</a></li><li><a href=\"/openapi.json\">/openapi.json</a></li></ul></body></html>",
        id = api.id
    )
}

/// `(method, path template, operationId)`, for the middleware that only sees the matched path.
pub fn operation_index(api: Api) -> Arc<Vec<(&'static str, &'static str, &'static str)>> {
    Arc::new((api.operations)())
}

/// A port's whole service: an API's router behind method override, CORS and the request log.
pub type App = tower::util::BoxCloneSyncService<Request, Response, Infallible>;

/// Wrap a port's router in what runs before routing: method override (so the overridden
/// method is the one routed), CORS (preflights are answered for every path), the request log.
/// The layers wrap the router as a service, so every request is routed once.
pub fn outer(router: Router, api_id: &'static str) -> App {
    // Only the mirrored origin varies an actual response; the mirrored methods and headers of
    // a preflight answer go to the browser's preflight cache, which keys them itself.
    let cors = CorsLayer::very_permissive()
        .expose_headers([HeaderName::from_static(EXAMPLE_HEADER), HeaderName::from_static(VALIDATION_HEADER)])
        .vary([axum::http::header::ORIGIN]);
    let service = tower::ServiceBuilder::new()
        .map_request(method_override)
        .layer(cors)
        .layer(axum::middleware::from_fn(move |request: Request, next: Next| log(api_id, request, next)))
        .service(router);
    App::new(service)
}

/// `POST` with `X-HTTP-Method-Override: PUT|DELETE|PATCH` is served as that method (clients
/// and proxies that only speak GET and POST).
fn method_override(mut request: Request) -> Request {
    if request.method() == Method::POST
        && let Some(method) = request
            .headers()
            .get("x-http-method-override")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Method::from_bytes(v.trim().to_ascii_uppercase().as_bytes()).ok())
    {
        *request.method_mut() = method;
    }
    request
}

/// One line per request: API, method, path, status, chosen example, latency.
///
/// One `request` field rather than a field each or a message: each field costs the formatter
/// as much as the line, and a message is re-read character by character for terminal escapes,
/// which the path is escaped for here (the rest is ours).
async fn log(api: &'static str, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    // A path is visible ASCII or UTF-8; escape anything else a terminal could act on (C1 controls).
    let path = request.uri().path();
    let path = if path.is_ascii() { path.to_owned() } else { path.escape_debug().to_string() };
    let response = next.run(request).await;
    let example = response.headers().get(EXAMPLE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("-");
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let status = response.status().as_u16();
    tracing::info!(request = %format_args!("{api} {method} {path} {status} example={example} {latency_ms:.1}ms"));
    response
}

/// Bind every API's port (`port_base` + its offset); the listeners come back in port order. An
/// API whose port is taken fails the whole start, naming it.
pub async fn bind_all(apis: &[Api], bind: IpAddr, port_base: u16) -> Result<Vec<(Api, tokio::net::TcpListener)>> {
    let mut listeners = Vec::new();
    for api in apis {
        let port = port_base.checked_add(api.offset).context("--port-base is too high")?;
        let listener = tokio::net::TcpListener::bind((bind, port))
            .await
            .with_context(|| format!("binding {bind}:{port} for {}", api.id))?;
        listeners.push((*api, listener));
    }
    Ok(listeners)
}

/// Whether requests carry the peer's address (`ConnectInfo<SocketAddr>`): the real server keys
/// its per-IP limit on it; mock mode has no use for it and saves attaching it to every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerAddresses {
    /// Attach the peer address to every request.
    Attach,
    /// Leave it out.
    Omit,
}

/// Serve every API on its listener until Ctrl-C. Prints the URLs (and LAN URLs when bound to
/// all interfaces, so a phone on the same network can reach them).
pub async fn run(apps: Vec<(Api, tokio::net::TcpListener, Router)>, bind: IpAddr, peers: PeerAddresses) -> Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for (api, listener, router) in apps {
        announce(api, listener.local_addr()?, bind);
        let app = outer(router, api.id);
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        tasks.spawn(async move {
            match peers {
                PeerAddresses::Attach => {
                    let app = axum::ServiceExt::<Request>::into_make_service_with_connect_info::<SocketAddr>(app);
                    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
                }
                PeerAddresses::Omit => {
                    axum::serve(listener, axum::ServiceExt::<Request>::into_make_service(app))
                        .with_graceful_shutdown(shutdown)
                        .await
                }
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.context("a listener task failed")?.context("a listener stopped")?;
    }
    Ok(())
}

fn announce(api: Api, address: SocketAddr, bind: IpAddr) {
    let port = address.port();
    let mut urls = vec![format!("http://{address}")];
    if bind.is_unspecified() {
        urls = vec![format!("http://127.0.0.1:{port}")];
        for interface in if_addrs::get_if_addrs().unwrap_or_default() {
            let ip = interface.ip();
            if ip.is_ipv4() && !ip.is_loopback() {
                urls.push(format!("http://{ip}:{port}"));
            }
        }
    }
    println!("{:<10} {}  (docs: {}/docs)", api.id, urls.join("  "), urls[0]);
}

