//! Test support: the five generated routers behind one `Examples` implementation that answers
//! every operation with its default example, and helpers to send requests in-process.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, Uri};
use generated::runtime::{Example, ExampleSource};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;
use xtask::spec::{Spec, default_example};

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
                    media_type: Some(example.media_type.to_owned()),
                    body: files[&file].contents.clone(),
                },
            );
        }
        DefaultExamples(Arc::new(map))
    }
}

impl ExampleSource for DefaultExamples {
    fn choose(&self, api: &'static str, operation_id: &'static str, _: &Method, _: &Uri, _: &HeaderMap) -> Example {
        self.default_example(api, operation_id)
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
pub async fn send(router: &axum::Router, request: Request<Body>) -> Reply {
    let response = router.clone().oneshot(request).await.expect("routers are infallible");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = response.into_body().collect().await.expect("body reads").to_bytes();
    Reply { status, content_type, body: String::from_utf8_lossy(&bytes).into_owned() }
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
