//! Listeners and what every port serves besides its API: `/openapi.json`, Swagger UI at
//! `/docs`, an index page at `/`, the operations routes ([`crate::ops`]), CORS,
//! `X-HTTP-Method-Override`, one log line and the metrics per request.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Poll, ready};
use std::time::Instant;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, Uri, header};
use axum::response::{Html, Response};
use futures_util::future::Either;
use tower::Layer as _;
use tower::util::{MapRequest, MapResponse};
use tower_http::cors::CorsLayer;

use crate::apis::Api;
use crate::metrics::ApiRequests;
use crate::mock::{EXAMPLE, EXAMPLE_HEADER, MockLayer, MockService, VALIDATION_HEADER};
use crate::start::StartHere;

/// One API in mock mode: the generated router over the mocks with the documentation routes and
/// the operations routes (ready without a database), behind the mock middleware. `served` is
/// every API the process serves, with its port: the index page points at the others.
pub fn mock_app(layer: MockLayer, served: &[(Api, u16)]) -> MockService<Router> {
    let api = layer.api();
    let router = with_docs((api.mock_router)(layer.source().clone()), api, crate::start::mock(api, served));
    layer.layer(router.merge(crate::ops::routes(None)))
}

/// Add `/openapi.json`, Swagger UI at `/docs` and the index page at `/`, which says where to
/// `start`.
pub fn with_docs(router: Router, api: Api, start: StartHere) -> Router {
    // Built on the first request, then served as built (utoipa's own type would sort each
    // examples map by name) and never serialised again. Not at start: utoipa's model and the
    // `Value` of five documents were freed allocator pages an idle server kept resident, and
    // their code was pages of the executable touched — idle `serve` 54 MB, 38 MB without (release
    // build, `/proc/PID/status`) — for documents most servers are never asked for.
    let document: Arc<tokio::sync::OnceCell<bytes::Bytes>> = Arc::default();
    let openapi_json = move || {
        let document = document.clone();
        async move {
            let json = document
                .get_or_init(|| async move {
                    let build = move || bytes::Bytes::from(serde_json::to_vec(&(api.published)()).expect("a JSON value serialises"));
                    // Building takes milliseconds of CPU: off the request threads.
                    tokio::task::spawn_blocking(build).await.expect("building the OpenAPI document does not panic")
                })
                .await;
            ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], json.clone())
        }
    };
    let swagger = utoipa_swagger_ui::SwaggerUi::new("/docs").config(utoipa_swagger_ui::Config::from("/openapi.json"));
    let start = Arc::new(start);
    // Rendered per request: its commands and links use the host the browser asked for.
    let index = move |headers: axum::http::HeaderMap| {
        let start = start.clone();
        async move { Html(start.page(api, api.title, &headers)) }
    };
    router.merge(swagger).route("/openapi.json", axum::routing::get(openapi_json)).route("/", axum::routing::get(index))
}

/// A port's whole service: an API's router behind method override, CORS and the request log.
///
/// A concrete type rather than a boxed service: hyper clones the service for every request, and
/// a boxed one allocates for each clone and each response future. The layers here clone
/// without allocating (function pointers, CORS settings without a `Vary` list, an API id, the
/// router's `Arc`).
pub type App<S = Router> =
    MapRequest<MapResponse<CorsForOrigins<RequestLog<S>>, fn(Response) -> Response>, fn(Request) -> Request>;

/// A port's whole service in mock mode.
pub type MockApp = App<MockService<Router>>;

/// Which browser origins may call a port (CORS).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Cors {
    /// Any origin, mirrored, never with credentials (mock mode; `serve` unless configured):
    /// mini-programs are no browsers, and the tokens are bearer tokens rather than cookies.
    #[default]
    AnyOrigin,
    /// Only these origins (`https://admin.example.com`).
    Origins(Vec<HeaderValue>),
}

impl Cors {
    /// The configured origins (`serve`'s `cors_origins`); none means any origin. An origin that is
    /// no valid header value is an error at start.
    pub fn from_origins(origins: &[String]) -> Result<Cors> {
        if origins.is_empty() {
            return Ok(Cors::AnyOrigin);
        }
        let values = origins
            .iter()
            .map(|o| HeaderValue::from_str(o.trim_end_matches('/')).with_context(|| format!("cors_origins: {o:?} is no origin")))
            .collect::<Result<_>>()?;
        Ok(Cors::Origins(values))
    }

    fn layer(&self) -> CorsLayer {
        // Never `Access-Control-Allow-Credentials`: the tokens are bearer tokens, not cookies,
        // and a page of any origin allowed to send credentials is what scanners rightly flag.
        let layer = match self {
            Cors::AnyOrigin => CorsLayer::new().allow_origin(tower_http::cors::AllowOrigin::mirror_request()),
            Cors::Origins(origins) => CorsLayer::new().allow_origin(origins.clone()),
        };
        let layer = layer
            .allow_methods(tower_http::cors::AllowMethods::mirror_request())
            .allow_headers(tower_http::cors::AllowHeaders::mirror_request());
        layer.expose_headers([HeaderName::from_static(EXAMPLE_HEADER), HeaderName::from_static(VALIDATION_HEADER)])
    }
}

/// Wrap a port's router in what runs before routing: method override (so the overridden
/// method is the one routed), CORS (preflights are answered for every path), the request log
/// with the metrics of API `api_id`. The layers wrap the router as a service, so every request
/// is routed once.
pub fn outer<S>(router: S, api_id: &'static str, cors: &Cors) -> App<S>
where
    S: Routed + Clone,
{
    // `Vary: Origin` is added to every answer below, CORS or not; tower-http would build it
    // anew (and clone its list) for every request.
    let cors = cors.layer().vary([]);
    // tower-http checks the settings when it builds a CORS service, and panics on unusable ones:
    // build one now, so that a bad setting stops the start rather than a request.
    drop(cors.layer(()));
    let api = crate::apis::by_id(api_id).unwrap_or_else(|| panic!("{api_id} is none of the APIs"));
    let logged = RequestLog { requests: ApiRequests::of(api), inner: router };
    let cors = CorsForOrigins { cors: Arc::new(cors), inner: logged };
    let varied = MapResponse::new(cors, vary_origin as fn(Response) -> Response);
    MapRequest::new(varied, method_override as fn(Request) -> Request)
}

/// tower-http's CORS for the requests that carry `Origin` (a browser's cross-origin requests) and
/// for every `OPTIONS` (preflights); the others (mini-programs, curl, servers) skip it: CORS
/// headers mean nothing to a request without `Origin`, and building them for every request cost
/// as much as routing it.
///
/// The CORS service is put together for the requests that need it: hyper clones the whole
/// service for every request, and a ready-made one doubled what that clone cost.
#[derive(Clone)]
pub struct CorsForOrigins<S> {
    cors: Arc<CorsLayer>,
    inner: S,
}

impl<S> tower::Service<Request> for CorsForOrigins<S>
where
    S: tower::Service<Request, Response = Response> + Clone,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<tower_http::cors::ResponseFuture<S::Future>, S::Future>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if request.method() == Method::OPTIONS || request.headers().contains_key(header::ORIGIN) {
            // The service `poll_ready` prepared goes to CORS; a clone stays for the next call.
            let clone = self.inner.clone();
            let ready = std::mem::replace(&mut self.inner, clone);
            Either::Left(self.cors.layer(ready).call(request))
        } else {
            Either::Right(self.inner.call(request))
        }
    }
}

/// Every answer varies with `Origin` (CORS mirrors it), so a shared cache must not hand one
/// client's answer to a browser on another origin.
fn vary_origin(mut response: Response) -> Response {
    response.headers_mut().append(header::VARY, HeaderValue::from_static("origin"));
    response
}

const METHOD_OVERRIDE: HeaderName = HeaderName::from_static("x-http-method-override");

/// `POST` with `X-HTTP-Method-Override: PUT|DELETE|PATCH` is served as that method (clients
/// and proxies that only speak GET and POST).
fn method_override(mut request: Request) -> Request {
    if request.method() == Method::POST
        && let Some(method) = request
            .headers()
            .get(METHOD_OVERRIDE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Method::from_bytes(v.trim().to_ascii_uppercase().as_bytes()).ok())
    {
        *request.method_mut() = method;
    }
    request
}

/// A port's routed service, told which operation of the API's [`crate::apis::OperationTable`]
/// a request is for: [`RequestLog`] finds it once for the log and the metrics, and mock mode,
/// which picks the operation's example, takes it from there rather than matching the path again.
pub trait Routed: tower::Service<Request, Response = Response> {
    /// Serve `request`, which is for operation `operation` (its index in the table; `None`: no
    /// operation).
    fn call_operation(&mut self, request: Request, operation: Option<usize>) -> Self::Future;
}

/// The real server's router finds the operation itself.
impl Routed for Router {
    fn call_operation(&mut self, request: Request, _: Option<usize>) -> Self::Future {
        tower::Service::call(self, request)
    }
}

/// One log line per request — API, method, path, status, chosen example, latency (ms):
/// `heating GET /api/config/system 200 example=success 0.2ms` (with `log_format = "json"`, the
/// same as fields of one JSON object, with the operationId) — and the request's metrics
/// ([`ApiRequests`]). The operations routes ([`crate::ops`]) are neither logged nor counted.
///
/// A tower service rather than `axum::middleware::from_fn`, which boxes a future, clones the
/// inner service and builds a `Next` for every request.
#[derive(Clone)]
pub struct RequestLog<S> {
    requests: &'static ApiRequests,
    inner: S,
}

impl<S> tower::Service<Request> for RequestLog<S>
where
    S: Routed,
{
    type Response = Response;
    type Error = S::Error;
    type Future = LoggedResponse<S::Future>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if crate::ops::is_ops_path(request.uri().path()) {
            return LoggedResponse { inner: self.inner.call_operation(request, None), line: None };
        }
        let operation = self.requests.table().find(request.method(), request.uri().path());
        let line = Line {
            requests: self.requests,
            operation,
            started: Instant::now(),
            method: request.method().clone(),
            // The URI shares the request head's bytes; cloning it copies nothing.
            uri: request.uri().clone(),
        };
        LoggedResponse { inner: self.inner.call_operation(request, operation), line: Some(line) }
    }
}

/// What a log line and the metrics need of their request.
struct Line {
    requests: &'static ApiRequests,
    /// The operation (index in the API's table), if the request is for one.
    operation: Option<usize>,
    started: Instant,
    method: Method,
    uri: Uri,
}

impl Line {
    /// Log the line: `heating GET /api/config/system 200 example=success 0.2ms`, as one `request`
    /// text field. One field rather than a field each: each field cost the formatter as much as
    /// the line. The text is put together in a buffer the thread keeps, without `format_args!`
    /// (which cost a third of the line); [`crate::logging::LogFields`] escapes what a terminal
    /// would act on.
    fn write(self, response: &Response) {
        let elapsed = self.started.elapsed();
        self.requests.record(self.operation, response.status(), elapsed);
        // The text is put together only for a subscriber that takes it (not under `RUST_LOG=warn`).
        if !tracing::enabled!(tracing::Level::INFO) {
            return;
        }
        if crate::logging::is_json() {
            self.write_fields(response, elapsed);
            return;
        }
        thread_local! {
            static TEXT: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        // Found by going through the answer's few headers: a lookup by name hashes the name,
        // which for a name outside the standard ones cost as much as the rest of this function.
        let example = response.headers().iter().find(|(name, _)| *name == EXAMPLE);
        let example = example.and_then(|(_, v)| v.to_str().ok()).unwrap_or("-");
        // Tenths of a millisecond (rounded), in integers.
        let tenths_ms = (elapsed.as_micros() + 50) / 100;
        let mut number = itoa::Buffer::new();
        TEXT.with_borrow_mut(|text| {
            // Single characters pushed as characters: a one-byte `push_str` still calls `memcpy`.
            text.clear();
            text.push_str(self.requests.api());
            text.push(' ');
            text.push_str(self.method.as_str());
            text.push(' ');
            text.push_str(self.uri.path());
            text.push(' ');
            text.push_str(number.format(response.status().as_u16()));
            text.push_str(" example=");
            text.push_str(example);
            text.push(' ');
            text.push_str(number.format(tenths_ms / 10));
            text.push('.');
            text.push(char::from(b'0' + (tenths_ms % 10) as u8));
            text.push_str("ms");
            tracing::info!(request = text.as_str());
        });
    }

    /// The line as separate fields, for `log_format = "json"` (a log collector reads fields, not
    /// a sentence): `api`, `method`, `path` (without the query, which may carry a token),
    /// `status`, `operation` (`-`: none), `example` (`-`: none), `latency_ms`.
    fn write_fields(&self, response: &Response, elapsed: std::time::Duration) {
        let example = response.headers().get(EXAMPLE).and_then(|v| v.to_str().ok()).unwrap_or("-");
        let operation = self.operation.map_or(crate::metrics::NO_OPERATION, |index| self.requests.table().id(index));
        tracing::info!(
            api = self.requests.api(),
            method = self.method.as_str(),
            path = self.uri.path(),
            status = response.status().as_u16(),
            operation,
            example,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        );
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`RequestLog`]: the inner future, then the log line.
    pub struct LoggedResponse<F> {
        #[pin]
        inner: F,
        line: Option<Line>,
    }
}

impl<F, E> Future for LoggedResponse<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let (Ok(response), Some(line)) = (&result, this.line.take()) {
            line.write(response);
        }
        Poll::Ready(result)
    }
}

/// Bind every API's port (`port_base` + its offset); the listeners come back in port order. An
/// API whose port is taken fails the whole start, naming it.
pub async fn bind_all(apis: &[Api], bind: IpAddr, port_base: u16) -> Result<Vec<(Api, tokio::net::TcpListener)>> {
    let mut listeners = Vec::new();
    for api in apis {
        let port = port_base.checked_add(api.offset).context("--port-base is too high")?;
        let listener = tokio::net::TcpListener::bind((bind, port)).await.map_err(|error| {
            let hint = if error.kind() == std::io::ErrorKind::AddrInUse {
                format!(
                    " (port {port} is in use: stop what listens there, or choose other ports with --port-base, \
                     e.g. --port-base {}; this API listens on the base + {})",
                    port_base.saturating_add(100),
                    api.offset
                )
            } else {
                String::new()
            };
            anyhow::Error::new(error).context(format!("binding {bind}:{port} for {}{hint}", api.id))
        })?;
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

/// Serve every API on its listener until `stop` resolves (Ctrl-C or SIGTERM, what a container
/// runtime or systemd sends to stop a service: [`stop_requested`]): the listeners close first,
/// once they have taken the connections the kernel had queued ([`crate::listener::Draining`]);
/// the open connections get up to [`crate::listener::LINGER`] to bring what their clients already
/// sent, answered with `Connection: close`; then the idle ones close, the requests in flight
/// finish, and `run` returns. Prints the URLs (and LAN URLs when bound to
/// all interfaces, so a phone on the same network can reach them).
pub async fn run<S>(apps: Vec<(Api, tokio::net::TcpListener, S)>, bind: IpAddr, peers: PeerAddresses, cors: &Cors, stop: StopRequested) -> Result<()>
where
    S: Routed<Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    // One signal for every listener, said once in the log (an operator stopping the service sees
    // when the drain began and when it ended).
    let (stop_all, stopping) = tokio::sync::watch::channel(false);
    // What every answer reads: a flag, not the channel's lock.
    let answers_close = Arc::new(AtomicBool::new(false));
    let signal = {
        let answers_close = answers_close.clone();
        tokio::spawn(async move {
            let signal = stop.await;
            tracing::info!(signal, "stop requested: the listeners close, the requests in flight finish");
            answers_close.store(true, Ordering::Relaxed);
            let _ = stop_all.send(true);
        })
    };
    let mut tasks = tokio::task::JoinSet::new();
    for (api, listener, router) in apps {
        announce(api, listener.local_addr()?, bind);
        let app = closing(outer(router, api.id, cors), answers_close.clone());
        let listener = crate::listener::Draining::new(listener, stopping.clone());
        // The listener closes first (once it has taken what the kernel queued), then the open
        // connections get a moment to bring what their clients already sent, then the idle ones
        // close and the requests in flight finish.
        let drained = listener.drained();
        let settled = listener.settled(crate::listener::LINGER);
        let shutdown = async move {
            drained.await;
            settled.await;
        };
        // `tap_io` is how axum hands a listener of our own's peer address to `ConnectInfo`.
        let listener = axum::serve::ListenerExt::tap_io(listener, |_: &mut crate::listener::Tracked| {});
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
    let served = async {
        while let Some(result) = tasks.join_next().await {
            result.context("a listener task failed")?.context("a listener stopped")?;
        }
        anyhow::Ok(())
    }
    .await;
    signal.abort();
    served?;
    tracing::info!("stopped: every listener closed and every request in flight answered");
    Ok(())
}

/// `app`, whose HTTP/1 answers say `Connection: close` once the process is stopping: a
/// keep-alive client then sends its next request to another instance, not on a connection about
/// to close. (hyper drops the header from HTTP/2 answers, which end with GOAWAY instead.) A 101
/// Switching Protocols keeps its own `Connection: upgrade`.
fn closing<S>(app: S, stopping: Arc<AtomicBool>) -> MapResponse<S, impl FnOnce(Response) -> Response + Clone>
where
    S: tower::Service<Request, Response = Response>,
{
    MapResponse::new(app, move |mut response: Response| {
        if stopping.load(Ordering::Relaxed) && !response.status().is_informational() {
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    })
}

/// A stop asked of the process: resolves with the signal's name ([`stop_requested`]).
pub type StopRequested = Pin<Box<dyn Future<Output = &'static str> + Send>>;

/// Resolves on Ctrl-C (SIGINT) or, on Unix, SIGTERM, answering which. On Unix both are caught
/// from the call on (the handlers are installed now, not when the future is first polled), so a
/// command calls this first thing, before its start-up (a stop during it then ends the start
/// rather than killing the process); a signal that cannot be caught is logged and never
/// resolves it.
pub fn stop_requested() -> StopRequested {
    Box::pin(caught())
}

fn caught() -> impl std::future::Future<Output = &'static str> + Send {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{Signal, SignalKind, signal};
        let catch = |kind: SignalKind, name: &'static str| match signal(kind) {
            Ok(caught) => Some((caught, name)),
            Err(error) => {
                tracing::warn!(%error, signal = name, "this signal cannot be caught; it will not stop the server gracefully");
                None
            }
        };
        let (term, int) = (catch(SignalKind::terminate(), "SIGTERM"), catch(SignalKind::interrupt(), "SIGINT"));
        async fn arrival(caught: Option<(Signal, &'static str)>) -> &'static str {
            match caught {
                Some((mut signal, name)) => {
                    signal.recv().await;
                    name
                }
                None => std::future::pending().await,
            }
        }
        async move {
            tokio::select! {
                name = arrival(term) => name,
                name = arrival(int) => name,
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "Ctrl-C cannot be caught; it will not stop the server gracefully");
            std::future::pending::<()>().await;
        }
        "Ctrl-C"
    }
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
    crate::logging::say(&format!("{:<10} {}  (docs: {}/docs)", api.id, urls.join("  "), urls[0]));
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Mutex;
    use std::time::Duration;

    use axum::http::StatusCode;

    use super::*;

    /// What a subscriber wrote.
    #[derive(Clone, Default)]
    struct Written(Arc<Mutex<Vec<u8>>>);

    impl Write for Written {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The JSON object `write_fields` logs for a request to `uri` answered `status`, naming
    /// `example`, after 1.234 ms.
    fn json_line(uri: &'static str, status: StatusCode, example: Option<&'static str>) -> serde_json::Value {
        let written = Written::default();
        let writer = written.clone();
        let subscriber = crate::logging::json_builder().with_writer(move || writer.clone()).finish();
        let requests = ApiRequests::of(crate::apis::by_id("heating").expect("heating"));
        let uri = Uri::from_static(uri);
        let operation = requests.table().find(&Method::GET, uri.path());
        let line = Line { requests, operation, started: Instant::now(), method: Method::GET, uri };
        let mut response = Response::new(axum::body::Body::empty());
        *response.status_mut() = status;
        if let Some(example) = example {
            response.headers_mut().insert(EXAMPLE, HeaderValue::from_static(example));
        }
        tracing::subscriber::with_default(subscriber, || line.write_fields(&response, Duration::from_micros(1234)));
        let text = String::from_utf8(written.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "one line: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }

    #[test]
    fn in_json_the_request_lines_parts_are_fields_without_the_query() {
        let line = json_line("/api/payment/status/ORD1?token=secret", StatusCode::UNAUTHORIZED, Some("unauthorized"));
        for (field, expected) in [
            ("message", serde_json::json!("request")),
            ("level", serde_json::json!("INFO")),
            ("target", serde_json::json!("mpapi::server")),
            ("api", serde_json::json!("heating")),
            ("method", serde_json::json!("GET")),
            ("path", serde_json::json!("/api/payment/status/ORD1")),
            ("status", serde_json::json!(401)),
            ("operation", serde_json::json!("payment_status_get")),
            ("example", serde_json::json!("unauthorized")),
        ] {
            assert_eq!(line[field], expected, "{field} in {line}");
        }
        assert!((line["latency_ms"].as_f64().expect("a number") - 1.234).abs() < 1e-9, "{line}");
        assert!(!line.to_string().contains("secret"), "{line}");
        let unknown = json_line("/no/such/path", StatusCode::NOT_FOUND, None);
        assert_eq!((&unknown["operation"], &unknown["example"], &unknown["status"]), (&serde_json::json!("-"), &serde_json::json!("-"), &serde_json::json!(404)));
    }
}
