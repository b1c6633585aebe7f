//! Mock mode: every operation answers a documented example from `mocks/`, chosen by the
//! client with Prism's `Prefer: code=N, example=NAME, delay=MS` or `__code` / `__example`.
//!
//! The generated router still validates requests and checks credentials (presence only), so
//! refusals look exactly like the real server's. `--validation warn|off` turns refusals of
//! invalid requests back into the chosen example.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Poll, ready};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Uri};
use axum::response::Response;
use generated::runtime::{
    AnswerCache, Context as RequestContext, Example, ExampleRef, ExampleSource, Prepared, Rejection, RejectionKind,
};

use crate::apis::{Api, OperationTable};

/// What mock mode does with a request that breaks the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Validation {
    /// Refuse it in the API's envelope, as the real server does.
    Enforce,
    /// Answer the chosen example anyway; report the violations in `X-Mpapi-Validation` and the log.
    Warn,
    /// Answer the chosen example; say nothing.
    Off,
}

/// Added latency: fixed, or uniformly random in a range (milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Latency {
    /// Least delay, ms.
    pub min_ms: u64,
    /// Most delay, ms.
    pub max_ms: u64,
}

impl std::str::FromStr for Latency {
    type Err = String;

    /// `MS` or `MIN-MAX` (milliseconds).
    fn from_str(text: &str) -> Result<Latency, String> {
        let parse = |t: &str| t.trim().parse::<u64>().map_err(|_| format!("not milliseconds: {t:?}"));
        let (min_ms, max_ms) = match text.split_once('-') {
            Some((a, b)) => (parse(a)?, parse(b)?),
            None => (parse(text)?, parse(text)?),
        };
        if min_ms > max_ms {
            return Err(format!("{min_ms} is more than {max_ms}"));
        }
        Ok(Latency { min_ms, max_ms })
    }
}

/// Example bodies, in the order of the API's `EXAMPLES`.
type Files = Vec<Arc<str>>;

/// The example files of one API, read from `mocks/<api>/` (and re-read on change with `--watch`).
#[derive(Clone)]
pub struct MockSource {
    api: Api,
    dir: PathBuf,
    /// The files and the generation they belong to (bumped on every reload).
    files: Arc<RwLock<(u64, Files)>>,
    answers: Arc<AnswerCache>,
}

impl MockSource {
    /// Read every example file of `api` under `mocks_dir`; every documented example must have one.
    pub fn load(api: Api, mocks_dir: &Path) -> Result<MockSource> {
        let source = MockSource {
            api,
            dir: mocks_dir.join(api.id),
            files: Arc::new(RwLock::new((0, Vec::new()))),
            answers: Arc::new(AnswerCache::default()),
        };
        source.reload()?;
        Ok(source)
    }

    /// Re-read the files (after an edit under `--watch`). On error the old files stay.
    pub fn reload(&self) -> Result<()> {
        let mut files = Vec::with_capacity(self.api.examples.len());
        for example in self.api.examples {
            let path = self.dir.join(example.operation_id).join(example.file_name());
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            files.push(Arc::from(text));
        }
        {
            let mut current = self.files.write().expect("the lock is never poisoned: writers do not panic");
            *current = (current.0 + 1, files);
        }
        // Answers read from the old files carry the old generation and are never served again.
        self.answers.clear();
        Ok(())
    }

    /// The folder this source reads.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The example at `index` in the API's `EXAMPLES`.
    fn example(&self, index: usize) -> Example {
        let example = &self.api.examples[index];
        let files = self.files.read().expect("the lock is never poisoned");
        let (generation, files) = &*files;
        Example {
            status: example.status,
            media_type: Some(example.media_type.into()),
            body: files[index].clone(),
            key: Some((index, *generation)),
        }
    }

    /// The index of `operation_id`'s default example.
    fn default_index(&self, operation_id: &str) -> usize {
        self.api
            .examples
            .iter()
            .position(|e| e.operation_id == operation_id && e.is_default)
            .expect("every operation has a default example")
    }
}

impl ExampleSource for MockSource {
    fn choose<P>(&self, _: &'static str, ctx: &RequestContext<P>) -> Example {
        // The mock middleware hands over the example it picked (and refuses impossible
        // choices before the route runs); without the middleware, read the choice here.
        let handed = CHOSEN.try_with(|index| *index).ok();
        let index = match handed.filter(|&index| self.api.examples[index].operation_id == ctx.operation_id) {
            Some(index) => index,
            None => {
                let choice = Choice::from_request(&ctx.uri, &ctx.headers).unwrap_or_default();
                pick(self.api.examples, ctx.operation_id, &choice).unwrap_or_else(|_| self.default_index(ctx.operation_id))
            }
        };
        self.example(index)
    }

    fn default_example(&self, _: &'static str, operation_id: &'static str) -> Example {
        self.example(self.default_index(operation_id))
    }

    fn answer_cache(&self) -> Option<&AnswerCache> {
        Some(&self.answers)
    }
}

tokio::task_local! {
    /// The example the mock middleware picked for the request whose route is being polled (its
    /// index in the API's `EXAMPLES`), for [`MockSource::choose`]. Set around each poll of the
    /// route rather than left in the request's extensions: a fourth extension made axum's
    /// extension map grow on every request.
    static CHOSEN: usize;
}

/// What the client asked for: `Prefer: code=404, example=not_found, delay=100`, or the query
/// parameters `__code`, `__example`, `__delay` (the query wins where both are given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Choice {
    /// A response status.
    pub code: Option<u16>,
    /// An example name.
    pub example: Option<String>,
    /// A delay for this request, ms.
    pub delay_ms: Option<u64>,
}

impl Choice {
    /// Read the choice from the `Prefer` header and the query string.
    pub fn from_request(uri: &Uri, headers: &HeaderMap) -> Result<Choice, String> {
        let mut choice = Choice::default();
        if uri.query().is_none() && !headers.contains_key(PREFER) {
            // Most requests choose nothing.
            return Ok(choice);
        }
        let mut set = |key: &str, value: &str| -> Result<(), String> {
            let value = value.trim().trim_matches('"');
            match key.trim().to_ascii_lowercase().as_str() {
                "code" | "__code" => {
                    choice.code = Some(value.parse().map_err(|_| format!("code={value} is not a status code"))?)
                }
                "example" | "__example" => choice.example = Some(value.to_owned()),
                "delay" | "__delay" => {
                    choice.delay_ms = Some(value.parse().map_err(|_| format!("delay={value} is not milliseconds"))?)
                }
                _ => {}
            }
            Ok(())
        };
        for prefer in headers.get_all(PREFER) {
            let prefer = prefer.to_str().map_err(|_| "the Prefer header is not text".to_owned())?;
            for part in prefer.split([',', ';']) {
                if let Some((key, value)) = part.split_once('=') {
                    set(key, value)?;
                }
            }
        }
        let query = uri.query().unwrap_or_default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            if key.starts_with("__") {
                set(&key, &value)?;
            }
        }
        Ok(choice)
    }

    /// Whether the choice names neither a code nor an example (the operation's default).
    pub fn is_default(&self) -> bool {
        self.example.is_none() && self.code.is_none()
    }
}

/// The example `choice` selects among an operation's examples, as its index in `examples`, or
/// an explanation listing the ones that exist.
pub fn pick(examples: &[ExampleRef], operation_id: &str, choice: &Choice) -> Result<usize, String> {
    let mut own = examples.iter().enumerate().filter(|(_, e)| e.operation_id == operation_id);
    let found = match (&choice.example, choice.code) {
        (Some(name), code) => own.find(|(_, e)| e.name == name && code.is_none_or(|c| c == e.status)),
        (None, Some(code)) => own.find(|(_, e)| e.status == code),
        (None, None) => own.find(|(_, e)| e.is_default),
    };
    found.map(|(index, _)| index).ok_or_else(|| {
        let wanted = match (&choice.example, choice.code) {
            (Some(name), Some(code)) => format!("example={name} with code={code}"),
            (Some(name), None) => format!("example={name}"),
            (None, code) => format!("code={}", code.unwrap_or_default()),
        };
        let available: Vec<String> = examples
            .iter()
            .filter(|e| e.operation_id == operation_id)
            .map(|e| format!("{} ({})", e.name, e.status))
            .collect();
        format!("{operation_id} has no {wanted}; available: {}", available.join(", "))
    })
}

/// The mock middleware's settings for one API: a tower layer around the API's router.
#[derive(Clone)]
pub struct MockLayer {
    shared: Arc<Settings>,
}

struct Settings {
    api: Api,
    source: MockSource,
    validation: Validation,
    latency: Latency,
    /// The API's operations, found from method and path.
    table: &'static OperationTable,
    /// The index of each operation's default example in the API's `EXAMPLES`, in the table's
    /// order.
    defaults: Vec<usize>,
}

impl MockLayer {
    /// The middleware of `api`'s mock mode, answering from `source`.
    pub fn new(api: Api, source: MockSource, validation: Validation, latency: Latency) -> MockLayer {
        let table = api.table();
        let defaults = (0..table.len()).map(|index| source.default_index(table.id(index))).collect();
        MockLayer { shared: Arc::new(Settings { api, source, validation, latency, table, defaults }) }
    }

    /// The API.
    pub fn api(&self) -> Api {
        self.shared.api
    }

    /// The example files.
    pub fn source(&self) -> &MockSource {
        &self.shared.source
    }
}

impl<S> tower::Layer<S> for MockLayer {
    type Service = MockService<S>;

    fn layer(&self, inner: S) -> MockService<S> {
        MockService { shared: self.shared.clone(), inner }
    }
}

/// Response header naming the example mock mode answered with.
pub const EXAMPLE_HEADER: &str = "x-mpapi-example";
/// Response header carrying the violations `--validation warn` let through.
pub const VALIDATION_HEADER: &str = "x-mpapi-validation";

// Header names as values: looking a `&str` up parses and lowercases it on every request.
/// [`EXAMPLE_HEADER`] as a header name.
pub const EXAMPLE: HeaderName = HeaderName::from_static(EXAMPLE_HEADER);
const VALIDATION: HeaderName = HeaderName::from_static(VALIDATION_HEADER);
const PREFER: HeaderName = HeaderName::from_static("prefer");

/// The mock middleware around an API's router: finds the operation a request is for (the
/// API's [`OperationTable`]; behind the request log, which has found it already, it is told:
/// [`crate::server::Routed`]), refuses impossible choices, applies the validation mode, names
/// the example, and waits the asked latency. Requests for no operation (`/docs`,
/// `/openapi.json`, `/`, the operations routes, unknown paths, a method the path does not have)
/// pass through to the router's answer as they are.
///
/// Around the router rather than around each route (`Router::route_layer`): axum boxes a
/// layered route again and clones it for every request, which cost more than finding the
/// operation here. A tower service rather than `axum::middleware::from_fn`, which boxes a
/// future and builds a `Next` for every request.
#[derive(Clone)]
pub struct MockService<S> {
    shared: Arc<Settings>,
    inner: S,
}

impl<S> tower::Service<Request> for MockService<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = MockResponse<S::Future>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let operation = self.shared.table.find(request.method(), request.uri().path());
        crate::server::Routed::call_operation(self, request, operation)
    }
}

impl<S> crate::server::Routed for MockService<S>
where
    S: tower::Service<Request, Response = Response>,
{
    fn call_operation(&mut self, request: Request, operation: Option<usize>) -> Self::Future {
        let settings = &self.shared;
        let Some(operation) = operation else {
            return MockResponse::passed(settings.clone(), self.inner.call(request));
        };
        let id = settings.table.id(operation);
        let refuse = |message: String| {
            let response = (settings.api.render_rejection)(&Rejection::of(RejectionKind::InvalidRequest, message));
            MockResponse::refused(settings.clone(), response)
        };
        let choice = match Choice::from_request(request.uri(), request.headers()) {
            Ok(choice) => choice,
            Err(message) => return refuse(message),
        };
        let chosen = if choice.is_default() {
            // The common case, no choice made: the default, without a search.
            settings.defaults[operation]
        } else {
            match pick(settings.api.examples, id, &choice) {
                Ok(index) => index,
                Err(message) => return refuse(message),
            }
        };
        let wait_ms = match choice.delay_ms {
            Some(ms) => ms,
            None if settings.latency.max_ms > 0 => fastrand::u64(settings.latency.min_ms..=settings.latency.max_ms),
            None => 0,
        };
        MockResponse {
            inner: Some(self.inner.call(request)),
            shared: settings.clone(),
            chosen: Some(chosen),
            // Bounded so a typo cannot hold a connection for hours.
            deadline: (wait_ms > 0).then(|| tokio::time::Instant::now() + Duration::from_millis(wait_ms.min(60_000))),
            answer: None,
            delay: None,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`MockService`]: the route's answer, adjusted to the validation
    /// mode and named, then held until the asked latency has passed.
    pub struct MockResponse<F> {
        #[pin]
        inner: Option<F>,
        shared: Arc<Settings>,
        chosen: Option<usize>,
        deadline: Option<tokio::time::Instant>,
        // The answer, once there is one (a refusal has one from the start).
        answer: Option<Response>,
        // Boxed only when a request waits: most requests do not.
        delay: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

impl<F> MockResponse<F> {
    fn refused(shared: Arc<Settings>, response: Response) -> Self {
        MockResponse { inner: None, shared, chosen: None, deadline: None, answer: Some(response), delay: None }
    }

    /// A request for no operation, answered as the router answers it.
    fn passed(shared: Arc<Settings>, inner: F) -> Self {
        MockResponse { inner: Some(inner), shared, chosen: None, deadline: None, answer: None, delay: None }
    }
}

impl<F, E> Future for MockResponse<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(inner) = this.inner.as_mut().as_pin_mut() {
            let polled = match *this.chosen {
                Some(index) => CHOSEN.sync_scope(index, || inner.poll(cx)),
                None => inner.poll(cx),
            };
            let response = ready!(polled)?;
            this.inner.set(None);
            *this.answer = Some(finish(this.shared, *this.chosen, response));
            *this.delay = this.deadline.map(|deadline| Box::pin(tokio::time::sleep_until(deadline)));
        }
        if let Some(delay) = this.delay {
            ready!(delay.as_mut().poll(cx));
        }
        Poll::Ready(Ok(this.answer.take().expect("a mock response is polled after it completed")))
    }
}

/// The route's answer as mock mode gives it: a refused invalid request turned back into the
/// chosen example under `--validation warn|off`, and the example named in [`EXAMPLE_HEADER`].
fn finish(settings: &Settings, chosen: Option<usize>, mut response: Response) -> Response {
    let Some(index) = chosen else { return response };
    let example = &settings.api.examples[index];
    if let Some(rejection) = response.extensions().get::<Rejection>() {
        let invalid = matches!(rejection.kind, RejectionKind::InvalidRequest | RejectionKind::UnsupportedMediaType);
        if !invalid || settings.validation == Validation::Enforce {
            return response;
        }
        let warning = (settings.validation == Validation::Warn).then(|| rejection.message.clone());
        response = example_response(&settings.source, index);
        if let Some(message) = warning {
            tracing::warn!(api = settings.api.id, operation = example.operation_id, violations = %message, "answering despite an invalid request");
            if let Ok(value) = HeaderValue::from_str(&ascii_header(&message)) {
                response.headers_mut().insert(VALIDATION, value);
            }
        }
    }
    response.headers_mut().insert(EXAMPLE, HeaderValue::from_static(example.name));
    response
}

/// A header value carries only visible ASCII: non-ASCII is percent-encoded (UTF-8).
fn ascii_header(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_graphic() || b == b' ' { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

fn example_response(source: &MockSource, index: usize) -> Response {
    let example = source.example(index);
    let documented = &source.api.examples[index];
    Prepared {
        status: axum::http::StatusCode::from_u16(example.status).unwrap_or_default(),
        media_type: Some(documented.media_type),
        headers: documented
            .headers
            .iter()
            .map(|(name, value)| (HeaderName::from_static(name), HeaderValue::from_static(value)))
            .collect(),
        body: Bytes::copy_from_slice(example.body.as_bytes()),
    }
    .into_response()
}

/// Watch `mocks/` and reload every source when a file changes. The watcher lives as long as
/// the returned value.
pub fn watch(mocks_dir: &Path, sources: Vec<MockSource>) -> Result<notify::RecommendedWatcher> {
    use notify::Watcher as _;
    if !mocks_dir.is_dir() {
        bail!("{} is not a folder", mocks_dir.display());
    }
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(mocks_dir, notify::RecursiveMode::Recursive)?;
    std::thread::spawn(move || {
        while rx.recv().is_ok() {
            // Editors write in several steps: settle, then reload once.
            std::thread::sleep(Duration::from_millis(150));
            while rx.try_recv().is_ok() {}
            for source in &sources {
                match source.reload() {
                    Ok(()) => tracing::info!(folder = %source.dir().display(), "mocks reloaded"),
                    Err(e) => tracing::warn!(error = %format!("{e:#}"), "mocks not reloaded; keeping the previous files"),
                }
            }
        }
    });
    Ok(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `choose` for a request to `operation_id` that names no example (`Prefer`, `__example`).
    fn choose_plain(source: &MockSource, operation_id: &'static str) -> Example {
        let (parts, ()) = Request::get("/any").body(()).expect("a request").into_parts();
        source.choose("heating", &RequestContext::new(parts, Bytes::new(), operation_id))
    }

    #[test]
    fn the_example_the_middleware_picked_is_the_one_answered() {
        let api = crate::apis::by_id("heating").expect("heating");
        let source = MockSource::load(api, Path::new(env!("CARGO_MANIFEST_DIR")).join("mocks").as_path()).expect("mocks");
        let (index, example) = api
            .examples
            .iter()
            .enumerate()
            .find(|(_, e)| !e.is_default)
            .expect("an operation with more than one example");
        // Handed over: that example, though the request itself chooses nothing.
        let handed = CHOSEN.sync_scope(index, || choose_plain(&source, example.operation_id));
        assert_eq!(handed.key.map(|(i, _)| i), Some(index));
        // Without the middleware, or with an index of another operation: the request's own choice.
        let default = source.default_index(example.operation_id);
        assert_eq!(choose_plain(&source, example.operation_id).key.map(|(i, _)| i), Some(default));
        let other = api.examples.iter().position(|e| e.operation_id != example.operation_id).expect("two operations");
        let mismatched = CHOSEN.sync_scope(other, || choose_plain(&source, example.operation_id));
        assert_eq!(mismatched.key.map(|(i, _)| i), Some(default));
    }
}
