//! Test support: the five generated routers behind one `Examples` implementation that answers
//! every operation with its default example, and helpers to send requests in-process.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request};
use serde_json::json;
use generated::runtime::{Context, Example, ExampleSource};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;
use xtask::spec::{Operation, Spec, default_example};

/// Run `$body` with `$m` bound to the generated module of the API named `$api`.
macro_rules! per_api {
    ($api:expr, |$m:ident| $body:expr) => {
        match $api {
            "heating" => {
                use generated::heating as $m;
                $body
            }
            "points" => {
                use generated::points as $m;
                $body
            }
            "community" => {
                use generated::community as $m;
                $body
            }
            "charging" => {
                use generated::charging as $m;
                $body
            }
            "o2o" => {
                use generated::o2o as $m;
                $body
            }
            other => panic!("unknown api {other}"),
        }
    };
}
pub(crate) use per_api;

/// Answers every operation with its default example, read from the spec.
#[derive(Clone)]
pub struct DefaultExamples(Arc<BTreeMap<String, Example>>);

impl DefaultExamples {
    /// The default example of every operation of `spec`.
    pub fn of(spec: &Spec) -> DefaultExamples {
        let examples = spec.response_examples();
        let files = xtask::mocks::project(spec);
        let mut map = BTreeMap::new();
        for op in spec.operations() {
            let example = default_example(&examples, op.id()).expect("every operation has a default example");
            let file = format!("{}/{}.{}", op.id(), example.name, example.extension());
            map.insert(
                op.id().to_owned(),
                Example {
                    status: example.status.parse().expect("numeric status"),
                    media_type: Some(std::borrow::Cow::Owned(example.media_type.to_string())),
                    body: files[&file].contents.as_str().into(),
                    key: None,
                },
            );
        }
        DefaultExamples(Arc::new(map))
    }
}

impl ExampleSource for DefaultExamples {
    fn choose<P>(&self, api: &'static str, ctx: &Context<P>) -> Example {
        self.default_example(api, ctx.operation_id)
    }

    fn default_example(&self, _: &'static str, operation_id: &'static str) -> Example {
        self.0[operation_id].clone()
    }
}

/// The generated router of `spec`'s API over [`DefaultExamples`].
pub fn router(spec: &Spec) -> axum::Router {
    let source = DefaultExamples::of(spec);
    per_api!(spec.api.id, |m| m::router(Arc::new(m::examples::Examples(source))))
}

/// A response as the tests look at it.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`, if any.
    pub content_type: Option<String>,
    /// All response headers.
    pub headers: HeaderMap,
    /// The body text.
    pub body: String,
}

impl Reply {
    /// The body as JSON (panics with the body when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Send one request through `router` in-process.
pub async fn send<S>(service: &S, request: Request<Body>) -> Reply
where
    S: tower::Service<Request<Body>, Response = axum::response::Response, Error = std::convert::Infallible> + Clone,
{
    reply(service.clone().oneshot(request).await.expect("routers are infallible")).await
}

/// A response as the tests look at it.
pub async fn reply(response: axum::response::Response) -> Reply {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.expect("body reads").to_bytes();
    Reply { status, content_type, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
}

/// JSON equality where numbers compare by value (`2500` equals `2500.0`).
pub fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// A request as the tests build it, before it becomes an `http::Request`.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Lower-case method.
    pub method: String,
    /// The path with its parameters filled in.
    pub path: String,
    /// Query parameters.
    pub query: Vec<(String, String)>,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Media type and bytes of the body.
    pub body: Option<(String, Vec<u8>)>,
}

impl Plan {
    /// The request this plan describes.
    pub fn request(&self) -> Request<Body> {
        let mut uri = self.path.clone();
        if !self.query.is_empty() {
            let query: Vec<String> = self
                .query
                .iter()
                .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                .collect();
            uri = format!("{uri}?{}", query.join("&"));
        }
        let mut builder = Request::builder().method(self.method.to_uppercase().as_str()).uri(uri);
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        match &self.body {
            Some((media_type, bytes)) => builder.header("content-type", media_type).body(Body::from(bytes.clone())),
            None => builder.body(Body::empty()),
        }
        .expect("test requests are well formed")
    }

    /// The body as JSON, when it is JSON.
    pub fn json_body(&self) -> Option<Value> {
        let (media, bytes) = self.body.as_ref()?;
        (media == "application/json").then(|| serde_json::from_slice(bytes).ok()).flatten()
    }

    /// The same request with another JSON body.
    pub fn with_json_body(&self, value: &Value) -> Plan {
        Plan { body: Some(("application/json".into(), value.to_string().into_bytes())), ..self.clone() }
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// A value for a parameter: its example, its default, its first enum value, or one of its type.
fn sample(spec: &Spec, param: &Value) -> String {
    let schema = param.get("schema").map(|s| spec.resolve(s).expect("schema resolves")).cloned().unwrap_or(json!({}));
    let text = |v: &Value| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string());
    if let Some(v) = param.get("example").or(schema.get("example")).or(schema.get("default")) {
        return text(v);
    }
    if let Some(first) = param.pointer("/examples").and_then(Value::as_object).and_then(|e| e.values().next())
        && let Some(v) = spec.resolve(first).ok().and_then(|e| e.get("value"))
    {
        return text(v);
    }
    if let Some(v) = schema.get("enum").and_then(Value::as_array).and_then(|e| e.first()) {
        return text(v);
    }
    let (base, _) = xtask::codegen::model::base_type(&schema);
    match (base.as_deref(), schema.get("format").and_then(Value::as_str)) {
        (Some("integer" | "number"), _) => schema.get("minimum").map(text).unwrap_or_else(|| "1".into()),
        (Some("boolean"), _) => "true".into(),
        (_, Some("date")) => "2024-01-01".into(),
        (_, Some("date-time")) => "2024-01-01T00:00:00Z".into(),
        _ => "1".into(),
    }
}

pub fn parameters<'a>(spec: &'a Spec, op: &Operation<'a>) -> Vec<&'a Value> {
    op.op
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| spec.resolve(p).expect("parameter resolves"))
        .collect()
}

/// The operation's documented request, with a credential where it is secured, or `None` when
/// its body is not JSON or XML (multipart is covered elsewhere).
pub fn valid_plan(spec: &Spec, op: &Operation<'_>) -> Option<Plan> {
    let mut plan = Plan { method: op.method.into(), path: op.path.into(), query: vec![], headers: vec![], body: None };
    for param in parameters(spec, op) {
        let name = param["name"].as_str().expect("named");
        let value = sample(spec, param);
        match param["in"].as_str() {
            Some("path") => plan.path = plan.path.replace(&format!("{{{name}}}"), &encode(&value)),
            Some("query") if param.get("required") == Some(&json!(true)) => plan.query.push((name.into(), value)),
            Some("header") if param.get("required") == Some(&json!(true)) => plan.headers.push((name.into(), value)),
            _ => {}
        }
    }
    let token_in_body = op.op.get("x-token-in") == Some(&json!("body"));
    if let Some(body) = op.op.get("requestBody") {
        let body = spec.resolve(body).ok()?;
        let (media, content) = body.get("content")?.as_object()?.iter().next()?;
        let example = content.get("examples")?.as_object()?.values().next()?;
        let value = spec.resolve(example).ok()?.get("value")?.clone();
        let bytes = match media.as_str() {
            "application/json" => value.to_string().into_bytes(),
            m if m.ends_with("/xml") => value.as_str()?.as_bytes().to_vec(),
            _ => return None,
        };
        plan.body = Some((media.clone(), bytes));
    }
    // A credential in the body is no security scheme (`security: []`); the body carries it.
    if token_in_body {
        let mut body = plan.json_body().unwrap_or(json!({}));
        body["token"] = json!("test-token");
        plan = plan.with_json_body(&body);
    }
    for requirement in op.op["security"].as_array().into_iter().flatten() {
        for scheme in requirement.as_object().into_iter().flatten().map(|(k, _)| k) {
            match spec.doc.pointer(&format!("/components/securitySchemes/{scheme}/type")).and_then(Value::as_str) {
                Some("http") => plan.headers.push(("authorization".into(), "Bearer test-token".into())),
                Some("apiKey") => plan.query.push(("token".into(), "test-token".into())),
                _ => {}
            }
        }
    }
    Some(plan)
}


/// The command lines of an index page (its `<pre>`), HTML entities undone; none without one.
pub fn page_commands(page: &str) -> Vec<String> {
    let Some(start) = page.find("<pre>").map(|at| at + "<pre>".len()) else { return Vec::new() };
    let end = start + page[start..].find("</pre>").expect("a closed <pre>");
    let text = page[start..end].replace("&#39;", "'").replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&");
    text.lines().map(str::to_owned).collect()
}

/// The built binary as `mpapi mock --api heating` on a free port, with `env` set (and `RUST_LOG`
/// removed) and stdout as given: the child and its port.
pub fn spawn_heating_mock(env: &[(&str, &str)], stdout: std::process::Stdio) -> (std::process::Child, u16) {
    spawn_mock(&["heating"], env, stdout)
}

/// The built binary as `mpapi mock --api …` for each of `apis`, on a port base whose first two
/// ports were free (heating listens on the base, points on base + 1), otherwise as
/// [`spawn_heating_mock`]: the child and the port base.
pub fn spawn_mock(apis: &[&str], env: &[(&str, &str)], stdout: std::process::Stdio) -> (std::process::Child, u16) {
    let port = loop {
        let base = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if base < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", base + 1)).is_ok() {
            break base;
        }
    };
    let mut args = vec!["mock".to_owned()];
    for api in apis {
        args.extend(["--api".to_owned(), (*api).to_owned()]);
    }
    args.extend(["--port-base".to_owned(), port.to_string()]);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_mpapi"))
        .args(&args)
        .envs(env.iter().copied())
        .env_remove("RUST_LOG")
        .current_dir(xtask::spec::workspace_root())
        .stdout(stdout)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("mpapi starts");
    (child, port)
}

/// The status of the first answer to `GET http://127.0.0.1:{port}{path}`, asked every 100 ms
/// for 30 s at most (`None`: never answered).
pub async fn first_answer(port: u16, path: &str) -> Option<u16> {
    let client = reqwest::Client::new();
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(30) {
        if let Ok(response) = client.get(format!("http://127.0.0.1:{port}{path}")).send().await {
            return Some(response.status().as_u16());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    None
}

/// Send the process SIGTERM (`kill -TERM`): whether `kill` succeeded.
pub fn sigterm(child: &std::process::Child) -> bool {
    std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs").success()
}
