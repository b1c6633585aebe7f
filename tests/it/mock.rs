//! Mock mode through the same stack a listener serves: every operation answers its default
//! example; clients pick examples; validation modes; credentials; CORS; method override;
//! latency; `--watch`; and whole payloads pinned with insta.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use mpapi::apis::{self, Api};
use mpapi::mock::{EXAMPLE_HEADER, Latency, MockLayer, MockSource, VALIDATION_HEADER, Validation};
use mpapi::server;
use serde_json::{Value, json};
use xtask::spec::{APIS, Spec, default_example, workspace_root};

use crate::support::{Reply, first_answer, page_commands, same_json, send, sigterm, spawn_heating_mock, valid_plan};

/// Every API on its default port, as `mpapi mock` serves them.
fn default_ports() -> Vec<(Api, u16)> {
    apis::APIS.iter().map(|api| (*api, 3000 + api.offset)).collect()
}

fn mock_app(api: &str, validation: Validation) -> (server::MockApp, MockSource) {
    let api: Api = apis::by_id(api).expect("known api");
    let source = MockSource::load(api, &workspace_root().join("mocks")).expect("mocks load");
    let layer = MockLayer::new(api, source.clone(), validation, Latency::default());
    (server::outer(server::mock_app(layer, &default_ports()), api.id, &server::Cors::AnyOrigin), source)
}

fn mock_file(api: &str, operation: &str, name: &str) -> String {
    std::fs::read_to_string(workspace_root().join(format!("mocks/{api}/{operation}/{name}.json"))).expect("mock file")
}

fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply.headers.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn every_operation_answers_its_default_example() {
    let mut failures = Vec::new();
    let mut answered = 0;
    for api in APIS {
        let spec = Spec::load(&workspace_root(), api).expect("spec");
        let (app, _) = mock_app(api.id, Validation::Enforce);
        let examples = spec.response_examples();
        let files = xtask::mocks::project(&spec);
        for op in spec.operations() {
            let Some(plan) = valid_plan(&spec, &op) else { continue };
            let default = default_example(&examples, op.id()).expect("default");
            let reply = send(&app, plan.request()).await;
            let file = &files[&format!("{}/{}.{}", op.id(), default.name, default.extension())].contents;
            let body_matches = if default.is_json() {
                serde_json::from_str::<Value>(&reply.body).is_ok_and(|b| same_json(&b, &serde_json::from_str(file).unwrap()))
            } else {
                &reply.body == file
            };
            if reply.status.to_string() != default.status || !body_matches || header(&reply, EXAMPLE_HEADER) != Some(default.name) {
                failures.push(format!("{} {}: got {} {:?}: {}", api.id, op.id(), reply.status, header(&reply, EXAMPLE_HEADER), reply.body));
            }
            answered += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(answered, 118, "every operation but the multipart upload is sent");
}

fn sms_send(extra: &[(&str, &str)], uri: &str, body: Value) -> Request<Body> {
    let mut builder = Request::post(uri).header("content-type", "application/json");
    for (name, value) in extra {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::from(body.to_string())).unwrap()
}

fn valid_sms() -> Value {
    json!({"phone": "13888888888", "type": "login"})
}

#[tokio::test]
async fn clients_pick_examples_by_name_or_code() {
    let (app, _) = mock_app("heating", Validation::Enforce);

    let reply = send(&app, sms_send(&[("prefer", "example=rate_limited")], "/api/sms/send", valid_sms())).await;
    assert_eq!((reply.status, header(&reply, EXAMPLE_HEADER)), (429, Some("rate_limited")));
    assert!(same_json(&reply.json(), &serde_json::from_str(&mock_file("heating", "sms_send", "rate_limited")).unwrap()));
    // The response declares Retry-After; its documented example goes with the answer.
    assert_eq!(header(&reply, "retry-after"), Some("60"));

    let reply = send(&app, sms_send(&[("prefer", "code=400")], "/api/sms/send", valid_sms())).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["code"], json!(1001), "the first 400 example is the document's 手机号格式不正确");

    let reply = send(&app, sms_send(&[], "/api/sms/send?__example=sms_send_failed", valid_sms())).await;
    assert_eq!((reply.status, header(&reply, EXAMPLE_HEADER)), (502, Some("sms_send_failed")));

    // Header and query together: the code from one, the example from the other.
    let reply = send(&app, sms_send(&[("prefer", "code=400")], "/api/sms/send?__example=invalid_params", valid_sms())).await;
    assert_eq!((reply.status, header(&reply, EXAMPLE_HEADER)), (400, Some("invalid_params")));
}

#[tokio::test]
async fn an_unknown_example_or_code_lists_the_ones_that_exist() {
    let (app, _) = mock_app("heating", Validation::Enforce);
    for choice in ["example=nope", "code=418", "example=rate_limited, code=200"] {
        let reply = send(&app, sms_send(&[("prefer", choice)], "/api/sms/send", valid_sms())).await;
        assert_eq!(reply.status, 400, "{choice}: {}", reply.body);
        let message = reply.json()["message"].as_str().unwrap().to_owned();
        for name in ["success", "phone_invalid", "rate_limited", "sms_send_failed"] {
            assert!(message.contains(name), "{choice}: {message}");
        }
    }
}

#[tokio::test]
async fn validation_modes() {
    let invalid = json!({"phone": "123", "type": "login"});

    let (app, _) = mock_app("heating", Validation::Enforce);
    let reply = send(&app, sms_send(&[], "/api/sms/send", invalid.clone())).await;
    assert_eq!(reply.status, 400);
    assert!(reply.json()["message"].as_str().unwrap().contains("phone"));

    let (app, _) = mock_app("heating", Validation::Warn);
    let reply = send(&app, sms_send(&[], "/api/sms/send", invalid.clone())).await;
    assert_eq!((reply.status, header(&reply, EXAMPLE_HEADER)), (200, Some("success")));
    assert!(header(&reply, VALIDATION_HEADER).is_some_and(|v| v.contains("phone")), "{:?}", reply.headers);

    let (app, _) = mock_app("heating", Validation::Off);
    let reply = send(&app, sms_send(&[], "/api/sms/send", invalid.clone())).await;
    assert_eq!(reply.status, 200);
    assert!(header(&reply, VALIDATION_HEADER).is_none());
    // Answered without the typed response, a chosen example still carries its documented headers.
    let reply = send(&app, sms_send(&[("prefer", "example=rate_limited")], "/api/sms/send", invalid)).await;
    assert_eq!((reply.status, header(&reply, "retry-after")), (429, Some("60")));

    // Each API refuses in its own envelope.
    let (app, _) = mock_app("o2o", Validation::Enforce);
    let reply = send(&app, Request::get("/api/user/merchant/detail?token=t&id=abc").body(Body::empty()).unwrap()).await;
    assert_eq!((reply.status, reply.json()["code"].clone()), (400, json!(10001)), "{}", reply.body);
}

#[tokio::test]
async fn missing_credentials_get_the_documented_unauthenticated_answer() {
    let (app, _) = mock_app("heating", Validation::Enforce);
    let reply = send(&app, Request::get("/api/user/profile").body(Body::empty()).unwrap()).await;
    assert_eq!((reply.status, reply.json()["code"].clone()), (401, json!(401)));
    // Presence only: any bearer token is accepted.
    let request = Request::get("/api/user/profile").header("authorization", "Bearer anything").body(Body::empty()).unwrap();
    assert_eq!(send(&app, request).await.status, 200);

    let (app, _) = mock_app("community", Validation::Enforce);
    let request = Request::post("/api/v1/user/housesList").header("content-type", "application/json").body(Body::from("{}")).unwrap();
    let reply = send(&app, request).await;
    assert_eq!((reply.status, reply.json()["code"].clone()), (401, json!("9")), "{}", reply.body);
}

#[tokio::test]
async fn cors_preflight_and_method_override() {
    let (app, _) = mock_app("heating", Validation::Enforce);
    let preflight = Request::options("/api/sms/send")
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type,authorization")
        .body(Body::empty())
        .unwrap();
    let reply = send(&app, preflight).await;
    assert_eq!(reply.status, 200);
    assert_eq!(header(&reply, "access-control-allow-origin"), Some("http://localhost:5173"));
    assert!(header(&reply, "access-control-allow-methods").is_some_and(|m| m.contains("POST")));
    assert!(header(&reply, "access-control-allow-headers").is_some_and(|h| h.contains("authorization")));
    // Bearer tokens, no cookies: no page is allowed to send credentials.
    assert_eq!(header(&reply, "access-control-allow-credentials"), None);

    // A browser's cross-origin request gets its origin back and may read mpapi's headers.
    let request = Request::get("/api/config/system").header("origin", "http://localhost:5173").body(Body::empty()).unwrap();
    let reply = send(&app, request).await;
    assert_eq!(header(&reply, "access-control-allow-origin"), Some("http://localhost:5173"));
    assert!(header(&reply, "access-control-expose-headers").is_some_and(|h| h.contains(EXAMPLE_HEADER)), "{:?}", reply.headers);
    assert_eq!(header(&reply, "vary"), Some("origin"));
    // Without `Origin` (a mini-program, curl) no CORS headers, but caches still learn it varies.
    let reply = send(&app, Request::get("/api/config/system").body(Body::empty()).unwrap()).await;
    assert_eq!((reply.status, header(&reply, "access-control-allow-origin")), (200, None));
    assert_eq!(header(&reply, "vary"), Some("origin"));
    // Any OPTIONS is answered as a preflight, as before the split.
    let reply = send(&app, Request::options("/api/sms/send").body(Body::empty()).unwrap()).await;
    assert_eq!(reply.status, 200);
    // HEAD is the GET operation's answer, named like it.
    let reply = send(&app, Request::head("/api/config/system").body(Body::empty()).unwrap()).await;
    assert_eq!((reply.status, header(&reply, EXAMPLE_HEADER)), (200, Some("success")));

    // PUT /api/user/profile reached through POST + X-HTTP-Method-Override.
    let request = Request::post("/api/user/profile")
        .header("x-http-method-override", "PUT")
        .header("authorization", "Bearer t")
        .header("content-type", "application/json")
        .body(Body::from(json!({"nickname": "新昵称"}).to_string()))
        .unwrap();
    let reply = send(&app, request).await;
    assert_eq!((reply.status, header(&reply, EXAMPLE_HEADER)), (200, Some("success")), "{}", reply.body);
}

#[tokio::test]
async fn prefer_delay_holds_the_answer() {
    let (app, _) = mock_app("heating", Validation::Enforce);
    let started = Instant::now();
    let reply = send(&app, Request::get("/health").header("prefer", "delay=150").body(Body::empty()).unwrap()).await;
    assert_eq!(reply.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(150), "{:?}", started.elapsed());
}

#[tokio::test]
async fn docs_and_index_are_served_on_every_port() {
    for api in APIS {
        let (app, _) = mock_app(api.id, Validation::Enforce);
        // Not an operation: the mock middleware lets it through, even with a choice attached.
        let reply = send(&app, Request::get("/openapi.json?__example=nope").body(Body::empty()).unwrap()).await;
        assert_eq!((reply.status, header(&reply, EXAMPLE_HEADER)), (200, None), "{}", api.id);
        let published = reply.json();
        let spec = Spec::load(&workspace_root(), api).unwrap();
        assert_eq!(published["info"]["title"], spec.doc["info"]["title"]);
        // What is served is the document the round-trip test compares with the contract (examples
        // included, in the spec's order), not utoipa's own serialisation of it.
        assert_eq!(published, (apis::by_id(api.id).unwrap().published)(), "{}", api.id);
        let reply = send(&app, Request::get("/docs/").body(Body::empty()).unwrap()).await;
        assert_eq!(reply.status, 200, "{}", api.id);
        assert!(reply.body.contains("swagger"), "{}", api.id);
        let reply = send(&app, Request::get("/").body(Body::empty()).unwrap()).await;
        assert!(reply.body.contains("/docs") && reply.body.contains(api.id), "{}", api.id);
    }
}

#[tokio::test]
async fn the_index_page_says_how_to_pick_an_example_and_where_the_other_ports_are() {
    let mut tried = Vec::new();
    for api in apis::APIS {
        let (app, _) = mock_app(api.id, Validation::Enforce);
        let host = format!("127.0.0.1:{}", 3000 + api.offset);
        let page = send(&app, Request::get("/").header("host", &host).body(Body::empty()).unwrap()).await.body;
        for expected in ["mpapi mock", "Prefer: example=NAME", "__example=NAME", "X-Mpapi-Example"] {
            assert!(page.contains(expected), "{}: {expected} missing from {page}", api.id);
        }
        // Nothing of serve mode: no sandbox, no demo data.
        assert!(!page.contains("_sandbox") && !page.contains("13800138000"), "{}: {page}", api.id);
        for other in apis::APIS.iter().filter(|other| other.id != api.id) {
            let link = format!("<a href=\"http://127.0.0.1:{}/\">{}</a>", 3000 + other.offset, other.id);
            assert!(page.contains(&link), "{}: {link} missing from {page}", api.id);
        }
        // The command it shows picks the example it names.
        let Some(command) = page_commands(&page).into_iter().next() else { continue };
        let rest = command.strip_prefix("curl -si -H 'Prefer: example=").unwrap_or_else(|| panic!("{}: {command}", api.id));
        let (example, url) = rest.split_once("' ").unwrap_or_else(|| panic!("{}: {command}", api.id));
        let path = url.strip_prefix(&format!("http://{host}")).unwrap_or_else(|| panic!("{}: {command}", api.id));
        let reply = send(&app, Request::get(path).header("prefer", format!("example={example}")).body(Body::empty()).unwrap()).await;
        assert_eq!(header(&reply, EXAMPLE_HEADER), Some(example), "{}: {command}\n{}", api.id, reply.body);
        tried.push(api.id);
    }
    assert!(tried.contains(&"heating") && tried.contains(&"points"), "{tried:?}");
}

#[tokio::test]
async fn watch_reloads_edited_mock_files() {
    let dir = tempfile::tempdir().unwrap();
    let api = apis::by_id("heating").unwrap();
    let from = workspace_root().join("mocks/heating");
    for example in api.examples {
        let target = dir.path().join("heating").join(example.operation_id);
        std::fs::create_dir_all(&target).unwrap();
        std::fs::copy(from.join(example.operation_id).join(example.file_name()), target.join(example.file_name())).unwrap();
    }
    let source = MockSource::load(api, dir.path()).unwrap();
    let _watcher = mpapi::mock::watch(dir.path(), vec![source.clone()]).unwrap();
    let layer = MockLayer::new(api, source.clone(), Validation::Enforce, Latency::default());
    let app = server::outer(server::mock_app(layer, &default_ports()), api.id, &server::Cors::AnyOrigin);
    let health = || Request::get("/health").body(Body::empty()).unwrap();
    // Answered once before the edit, so the typed answer is cached.
    assert_eq!(send(&app, health()).await.json()["message"], json!("success"));
    let file = dir.path().join("heating/health_check/success.json");
    std::fs::write(&file, r#"{"code":200,"message":"edited","data":{"status":"OK","timestamp":"2024-12-18T07:51:08.024Z","mongodb":"connected"},"timestamp":1}"#).unwrap();
    use generated::runtime::ExampleSource as _;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !source.default_example("heating", "health_check").body.contains("edited") {
        assert!(Instant::now() < deadline, "the edit was not picked up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The cached answer of the old file is not served again.
    assert_eq!(send(&app, health()).await.json()["message"], json!("edited"));
}

#[tokio::test]
async fn whole_payloads() {
    let (heating, _) = mock_app("heating", Validation::Enforce);
    let reply = send(&heating, Request::get("/api/config/system").body(Body::empty()).unwrap()).await;
    insta::assert_json_snapshot!("heating_config_system_get", reply.json());

    let (community, _) = mock_app("community", Validation::Enforce);
    let request = Request::post("/api/v1/user/housesList").header("content-type", "application/json").body(Body::from("{}")).unwrap();
    insta::assert_json_snapshot!("community_missing_token", send(&community, request).await.json());

    let (o2o, _) = mock_app("o2o", Validation::Enforce);
    let reply = send(&o2o, Request::get("/api/user/nothing-here").body(Body::empty()).unwrap()).await;
    insta::assert_json_snapshot!("o2o_unknown_path", reply.json());

    let (charging, _) = mock_app("charging", Validation::Enforce);
    let reply = send(&charging, Request::get("/api/payment/wechat/pay?paymentId=1").header("authorization", "Bearer t").body(Body::empty()).unwrap()).await;
    insta::assert_snapshot!("charging_wechat_pay_page", format!("{} {}\n{}", reply.status, reply.content_type.unwrap_or_default(), reply.body));
}

/// Collects what the log formatter writes.
#[derive(Clone, Default)]
pub(crate) struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    /// Capture this thread's log lines while the guard lives (the test runtime polls on this
    /// thread, so the requests' events reach it).
    pub(crate) fn capture() -> (LogBuffer, tracing::subscriber::DefaultGuard) {
        let buffer = LogBuffer::default();
        let writer = buffer.clone();
        // While a single subscriber is registered, tracing works out the interest of a callsite
        // reached for the first time from the calling thread's subscriber alone: a callsite first
        // reached by a test running without one (in parallel) would be cached as never, and this
        // capture would miss its lines. A second subscriber, idle and kept for the whole run,
        // makes tracing ask every registered subscriber instead.
        static SECOND: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();
        SECOND.get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
        let subscriber = mpapi::logging::builder(false).with_writer(move || writer.clone()).finish();
        let guard = tracing::subscriber::set_default(subscriber);
        // A callsite first hit by another test while this subscriber was being registered can
        // keep the interest it computed without it ("never": nothing logged, seen once in five
        // runs of the suite); computing every callsite's interest again now includes it.
        tracing::callsite::rebuild_interest_cache();
        (buffer, guard)
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[tokio::test]
async fn one_log_line_per_request() {
    let (buffer, _guard) = LogBuffer::capture();
    let (app, _) = mock_app("heating", Validation::Enforce);
    send(&app, Request::get("/api/config/system?__example=success").body(Body::empty()).unwrap()).await;
    send(&app, Request::get("/no/such/path").body(Body::empty()).unwrap()).await;
    let sms = Request::post("/api/sms/send").header("content-type", "application/json").body(Body::from("{}")).unwrap();
    send(&app, sms).await;

    let text = buffer.text();
    let lines: Vec<&str> = text.lines().filter(|line| line.contains(" request=")).collect();
    assert_eq!(lines.len(), 3, "one line per request:\n{text}");
    let expected = [
        "request=heating GET /api/config/system 200 example=success ",
        "request=heating GET /no/such/path 404 example=- ",
        "request=heating POST /api/sms/send 400 example=- ",
    ];
    for (line, expected) in lines.iter().zip(expected) {
        assert!(line.contains(expected), "{line:?} does not say {expected:?}");
        assert!(line.ends_with("ms"), "{line:?} gives no latency");
    }
}

#[tokio::test]
async fn a_path_with_control_characters_is_logged_escaped() {
    let (buffer, _guard) = LogBuffer::capture();
    let (app, _) = mock_app("heating", Validation::Enforce);
    // U+009B is CSI for terminals that read C1 controls; a URI may carry it as raw UTF-8.
    let uri = axum::http::Uri::from_maybe_shared(axum::body::Bytes::from("/x\u{9b}31m")).unwrap();
    send(&app, Request::get(uri).body(Body::empty()).unwrap()).await;
    let text = buffer.text();
    assert!(!text.contains('\u{9b}'), "the control character reached the log: {text:?}");
    assert!(text.contains("GET /x\\u{9b}31m 404"), "{text:?}");
}

#[tokio::test]
async fn a_port_in_use_suggests_another_port_base() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let port = taken.local_addr().unwrap().port();
    let heating = apis::by_id("heating").unwrap();
    let Err(error) = server::bind_all(&[heating], [127, 0, 0, 1].into(), port).await else {
        panic!("port {port} is taken, yet it bound");
    };
    let text = format!("{error:#}");
    assert!(text.contains("heating") && text.contains(&port.to_string()), "{text}");
    assert!(text.contains("--port-base"), "{text}");
}

/// SIGTERM (what a container runtime or systemd sends) stops the binary gracefully: its
/// listeners close and it exits with success, not killed by the signal.
#[cfg(unix)]
#[tokio::test]
async fn sigterm_stops_the_binary_gracefully() {
    let (mut child, port) = spawn_heating_mock(&[], std::process::Stdio::null());
    let up = first_answer(port, "/").await;
    if up != Some(200) {
        let _ = child.kill();
        panic!("mpapi mock did not answer on {port}: {up:?}");
    }
    assert!(sigterm(&child));
    let stopped = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waitable") {
            break status;
        }
        if stopped.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("mpapi did not stop within 10 s of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exited {status:?}, not gracefully");
    assert!(reqwest::Client::new().get(format!("http://127.0.0.1:{port}/")).send().await.is_err(), "the listener is closed");
}

/// SIGTERM under load loses no accepted request: requests the binary has accepted and is still
/// answering (each held 1.5 s by `__delay`, each on its own connection) are all answered in
/// full after the signal, and only then does the process exit, with success.
#[cfg(unix)]
#[tokio::test]
async fn sigterm_under_load_answers_every_accepted_request() {
    let (mut child, port) = spawn_heating_mock(&[], std::process::Stdio::null());
    let up = first_answer(port, "/").await;
    if up != Some(200) {
        let _ = child.kill();
        panic!("mpapi mock did not answer on {port}: {up:?}");
    }
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let in_flight: Vec<_> = (0..40)
        .map(|_| {
            let request = client.get(format!("http://127.0.0.1:{port}/api/config/system?__delay=1500")).send();
            tokio::spawn(async move {
                let response = request.await?;
                let status = response.status().as_u16();
                let body = response.bytes().await?;
                Ok::<_, reqwest::Error>((status, body))
            })
        })
        .collect();
    // Every request is accepted and waiting in its delay when the signal comes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(sigterm(&child));
    let signalled = Instant::now();
    for task in in_flight {
        let (status, body) = task.await.unwrap().expect("an accepted request is answered after SIGTERM");
        assert_eq!(status, 200);
        let json: serde_json::Value = serde_json::from_slice(&body).expect("the whole body");
        assert_eq!(json["code"], 200, "{json}");
    }
    assert!(signalled.elapsed() >= Duration::from_millis(500), "the answers waited for their delay");
    let status = loop {
        if let Some(status) = child.try_wait().expect("waitable") {
            break status;
        }
        if signalled.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("mpapi did not stop within 10 s of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exited {status:?}, not gracefully");
}

/// `GET /api/config/system`, as an HTTP/1.1 client writes it.
const CONFIG_REQUEST: &[u8] = b"GET /api/config/system HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

/// One [`CONFIG_REQUEST`] written on `stream` and its whole answer read back (by
/// `Content-Length`): `(status line, whether it says Connection: close)`, or what went wrong.
async fn exchange(stream: &mut tokio::net::TcpStream) -> std::io::Result<(String, bool)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(CONFIG_REQUEST).await?;
    let mut raw = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        if let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse().ok())
                .expect("a Content-Length");
            if raw.len() >= split + 4 + length {
                let status = head.lines().next().unwrap_or_default().to_owned();
                return Ok((status, head.lines().any(|line| line == "connection: close")));
            }
        }
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("the connection ended after {} bytes", raw.len())));
        }
        raw.extend_from_slice(&buffer[..read]);
    }
}

/// `mpapi mock --api heating` in this process through `server::run` on `listener`, until `stop`
/// resolves; what `run` returned.
fn run_heating_mock(
    listener: tokio::net::TcpListener,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    let api = apis::by_id("heating").unwrap();
    let source = MockSource::load(api, &workspace_root().join("mocks")).expect("mocks load");
    let layer = MockLayer::new(api, source, Validation::Enforce, Latency::default());
    let app = server::mock_app(layer, &default_ports());
    let bind = listener.local_addr().unwrap().ip();
    let stop: server::StopRequested = Box::pin(async move {
        stop.await;
        "test"
    });
    tokio::spawn(server::run(vec![(api, listener, app)], bind, server::PeerAddresses::Omit, &server::Cors::AnyOrigin, stop))
}

/// A body its client stops sending part of the way is refused as unreadable (400 in the API's
/// envelope), not as too large; a body over the limit is still 413.
#[tokio::test]
async fn a_body_cut_short_is_unreadable_and_one_over_the_limit_too_large() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = run_heating_mock(listener, async move {
        let _ = stopped.await;
    });

    // 9 of the 100 bytes announced, then the client closes its side.
    let mut cut = tokio::net::TcpStream::connect(address).await.unwrap();
    cut.write_all(b"POST /api/sms/send HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"phone\":").await.unwrap();
    cut.shutdown().await.unwrap();
    let mut answer = String::new();
    cut.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("请求体未能完整读取"), "{answer}");

    // One byte over the limit, sent whole.
    let limit = generated::runtime::BODY_LIMIT;
    let mut large = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!("POST /api/sms/send HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", limit + 1);
    large.write_all(head.as_bytes()).await.unwrap();
    let (mut reading, mut writing) = large.into_split();
    // The server may answer and close before it has read all of it: send in the background.
    let sender = tokio::spawn(async move {
        let _ = writing.write_all(&vec![b' '; limit + 1]).await;
        writing
    });
    let mut answer = Vec::new();
    let _ = reading.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    drop(sender.await);

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

/// A body that stops arriving is refused as unreadable once nothing of it has come for
/// `BODY_IDLE_TIMEOUT`, in the API's envelope: the listener times nothing once a head is whole.
#[tokio::test(start_paused = true)]
async fn a_body_that_stops_arriving_is_refused_after_the_body_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let _server = run_heating_mock(listener, std::future::pending());
    let mut stalled = tokio::net::TcpStream::connect(address).await.unwrap();
    stalled.write_all(b"POST /api/sms/send HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"phone\":").await.unwrap();
    let sent = tokio::time::Instant::now();
    let mut answer = vec![0u8; 4096];
    let read = tokio::time::timeout(generated::runtime::BODY_IDLE_TIMEOUT * 3, stalled.read(&mut answer)).await.expect("answered");
    let answer = String::from_utf8_lossy(&answer[..read.unwrap()]).into_owned();
    assert_eq!(sent.elapsed(), generated::runtime::BODY_IDLE_TIMEOUT);
    assert!(answer.starts_with("HTTP/1.1 400") && answer.contains("请求体未能完整读取"), "{answer}");
}

/// A stop loses no request whose connection the kernel had accepted: the connections still
/// waiting in the listener's queue when the stop comes are taken and answered in full before
/// the listener closes (closing it with them queued would reset them). Then `run` returns, and
/// the port is closed.
#[tokio::test]
async fn a_stop_answers_the_connections_still_queued() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    // Connected and sent before the server takes any connection: they wait in the kernel's queue.
    let mut queued = Vec::new();
    for _ in 0..20 {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut stream, CONFIG_REQUEST).await.unwrap();
        queued.push(stream);
    }
    // The stop is there before the server takes its first connection.
    let served = run_heating_mock(listener, std::future::ready(()));
    for (number, stream) in queued.iter_mut().enumerate() {
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), tokio::io::AsyncReadExt::read_to_end(stream, &mut raw))
            .await
            .unwrap_or_else(|_| panic!("queued connection {number} was neither answered nor closed"))
            .unwrap_or_else(|e| panic!("queued connection {number} was cut off: {e}"));
        let text = String::from_utf8_lossy(&raw);
        assert!(text.starts_with("HTTP/1.1 200 ") && text.ends_with('}'), "queued connection {number}: {text:?}");
    }
    tokio::time::timeout(Duration::from_secs(5), served).await.expect("run returns").unwrap().expect("a clean stop");
    assert!(tokio::net::TcpStream::connect(address).await.is_err(), "the listener is closed");
}

/// A request sent on an idle keep-alive connection just after the stop is answered, saying
/// `Connection: close`, rather than cut off (hyper closes idle connections at once on a graceful
/// shutdown, though a client's next request may already be on its way); the connection then
/// closes and `run` returns.
#[tokio::test]
async fn a_stop_answers_a_request_just_sent_on_an_idle_connection() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = run_heating_mock(listener, async move {
        let _ = stopped.await;
    });
    let mut idle = tokio::net::TcpStream::connect(address).await.unwrap();
    let (status, close) = exchange(&mut idle).await.expect("answered before the stop");
    assert!(status.contains(" 200 ") && !close, "{status}");
    stop.send(()).unwrap();
    // The stop has reached the server (its listener closes) when the next request goes out.
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(address).await.is_ok() {
        assert!(Instant::now() < deadline, "the listener is still open 5 s after the stop");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (status, close) = exchange(&mut idle).await.expect("a request sent just after the stop is answered");
    assert!(status.contains(" 200 ") && close, "{status}: the answer says the connection closes");
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(5), tokio::io::AsyncReadExt::read_to_end(&mut idle, &mut rest)).await;
    assert!(matches!(ended, Ok(Ok(0))), "the connection closes after that answer: {ended:?}");
    tokio::time::timeout(Duration::from_secs(5), served).await.expect("run returns").unwrap().expect("a clean stop");
}
