//! `TestApp`: the real server (`mpapi serve`'s router, sandbox providers) on port 0 over a fresh
//! database — a SQLite file in a temporary folder, or, when `DATABASE_URL` names PostgreSQL (as
//! `.ci/run` does on its second pass), a fresh schema there — and a client that checks every
//! JSON answer against `openapi/<api>.yaml`.

use std::net::SocketAddr;

use mpapi::config::Config;
use mpapi::providers::wechat_pay::sandbox::SandboxPay;
use mpapi::serve::Server;
use serde_json::Value;
use xtask::lint::ExampleValidator;
use xtask::spec::{APIS, Spec, escape_pointer, workspace_root};

/// One answer: status, headers, body (parsed when JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The envelope's `data`.
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }

    /// The envelope's `code`.
    pub fn code(&self) -> i64 {
        self.body["code"].as_i64().unwrap_or_else(|| panic!("no numeric code in {}", self.body))
    }

    /// The flat envelope's `code` as community writes it: the string `"0"` on some operations,
    /// the integer `0` on others (each as its examples show; the contract check pins which).
    pub fn flat_code(&self) -> i64 {
        match &self.body["code"] {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
        .unwrap_or_else(|| panic!("no code in {}", self.body))
    }
}

/// A running real server for one API.
pub struct TestApp {
    pub address: SocketAddr,
    pub server: Server,
    pub client: reqwest::Client,
    spec: Spec,
    validator: ExampleValidator,
    _dir: tempfile::TempDir,
}

/// How old a test schema must be before a later run may drop it as left over: no test run lasts
/// that long, so a live schema of a concurrent run (another `cargo test`, nextest's process per
/// test) is never dropped.
const STALE_SCHEMA_SECONDS: u64 = 3600;

/// A fresh database URL: a SQLite file, or a new PostgreSQL schema when `DATABASE_URL` is set.
/// Schemas are named `mpapi_t<unix seconds>_<random>`; schemas of runs older than an hour are
/// dropped first, so the database does not grow run after run.
pub async fn fresh_database(dir: &tempfile::TempDir) -> String {
    match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs();
            let schema = format!("mpapi_t{now}_{}", mpapi::random::hex(12));
            let admin = sea_orm::Database::connect(&url).await.expect("DATABASE_URL connects");
            use sea_orm::ConnectionTrait;
            let existing = admin
                .query_all_raw(sea_orm::Statement::from_string(
                    admin.get_database_backend(),
                    "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'mpapi\\_t%'".to_owned(),
                ))
                .await
                .expect("listing schemas");
            for row in existing {
                let name: String = row.try_get("", "nspname").expect("nspname");
                let created = name.strip_prefix("mpapi_t").and_then(|rest| rest.split('_').next()).and_then(|s| s.parse::<u64>().ok());
                if created.is_some_and(|at| at + STALE_SCHEMA_SECONDS < now) {
                    let _ = admin.execute_unprepared(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE")).await;
                }
            }
            admin.execute_unprepared(&format!("CREATE SCHEMA \"{schema}\"")).await.expect("creating a schema");
            let separator = if url.contains('?') { '&' } else { '?' };
            format!("{url}{separator}options=-c%20search_path%3D{schema}")
        }
        _ => format!("sqlite://{}?mode=rwc", dir.path().join("mpapi.db").display()),
    }
}

impl TestApp {
    /// The heating API with default configuration.
    pub async fn heating() -> TestApp {
        TestApp::spawn("heating", |_| {}).await
    }

    /// The points API with default configuration (sandbox providers, demo data).
    pub async fn points() -> TestApp {
        TestApp::spawn("points", |_| {}).await
    }

    /// The charging API with default configuration (sandbox providers and simulated chargers,
    /// demo data).
    pub async fn charging() -> TestApp {
        TestApp::spawn("charging", |_| {}).await
    }

    /// The community API with default configuration (sandbox providers, demo data), its face
    /// photos kept in the test's temporary folder.
    pub async fn community() -> TestApp {
        TestApp::community_with(|_| {}).await
    }

    /// The community API with its files in the test's temporary folder and the configuration
    /// adjusted by `configure`.
    pub async fn community_with(configure: impl FnOnce(&mut Config)) -> TestApp {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let mut config = Config { database_url: fresh_database(&dir).await, ..Config::default() };
        config.apis.entry("community".into()).or_insert_with(|| mpapi::config::ApiConfig::defaults("community")).files.local_dir =
            dir.path().join("files");
        configure(&mut config);
        TestApp::start("community", config, dir).await
    }

    /// `api` with the configuration adjusted by `configure`.
    pub async fn spawn(api: &'static str, configure: impl FnOnce(&mut Config)) -> TestApp {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let mut config = Config { database_url: fresh_database(&dir).await, ..Config::default() };
        configure(&mut config);
        TestApp::start(api, config, dir).await
    }

    /// `api` on a server with exactly `config` (its database included: a restart test reuses
    /// one), keeping `dir` alive as long as the app.
    pub async fn start(api: &'static str, config: Config, dir: tempfile::TempDir) -> TestApp {
        let server = Server::new(config).await.expect("the server starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("port 0 binds");
        let address = listener.local_addr().expect("bound");
        let api_entry = *mpapi::apis::APIS.iter().find(|a| a.id == api).expect("known api");
        let router = server.router(api_entry, address.port()).await.expect("router builds").expect("implemented");
        let app = mpapi::server::outer(router, api, &mpapi::server::Cors::AnyOrigin);
        tokio::spawn(async move {
            let app = axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<SocketAddr>(app);
            axum::serve(listener, app).await.expect("serving");
        });
        let spec_api = *APIS.iter().find(|a| a.id == api).expect("known api");
        let spec = Spec::load(&workspace_root(), spec_api).expect("the spec loads");
        let validator = ExampleValidator::new(&spec).expect("validator");
        TestApp { address, server, client: reqwest::Client::new(), spec, validator, _dir: dir }
    }

    /// The API's providers and sandbox as the router uses them.
    pub fn parts(&self, api: &str) -> std::sync::Arc<mpapi::serve::ApiParts> {
        self.server.parts(api).expect("an implemented API")
    }

    /// The sandbox payment platform of `api`.
    pub fn pay_platform(&self, api: &str) -> std::sync::Arc<SandboxPay> {
        self.parts(api).sandbox.pays.first().cloned().expect("the sandbox WeChat Pay is active")
    }

    /// The temporary folder the SQLite file lives in.
    pub fn into_dir(self) -> tempfile::TempDir {
        self._dir
    }

    /// `http://127.0.0.1:PORT` + path.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Send and read the answer; JSON answers of documented operations are checked against the
    /// contract (the operation, the status, the schema).
    pub async fn send(&self, method: reqwest::Method, path: &str, token: Option<&str>, body: Option<&Value>) -> Reply {
        let mut request = self.client.request(method.clone(), self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("the request is answered");
        let reply = read(response).await;
        self.check(&method, path, &reply);
        reply
    }

    /// GET.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(reqwest::Method::GET, path, token, None).await
    }

    /// POST JSON.
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.send(reqwest::Method::POST, path, token, Some(&body)).await
    }

    /// PUT JSON.
    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.send(reqwest::Method::PUT, path, token, Some(&body)).await
    }

    /// DELETE with a JSON body (community's DELETEs carry one).
    pub async fn delete(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.send(reqwest::Method::DELETE, path, token, Some(&body)).await
    }

    /// POST `multipart/form-data` (wx.uploadFile); the answer is checked like any other.
    pub async fn post_multipart(&self, path: &str, token: Option<&str>, form: reqwest::multipart::Form) -> Reply {
        let mut request = self.client.post(self.url(path)).multipart(form);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let reply = read(request.send().await.expect("the request is answered")).await;
        self.check(&reqwest::Method::POST, path, &reply);
        reply
    }

    /// POST raw bytes with a Content-Type (WeChat Pay v2's XML notifies); the answer is checked
    /// like any other.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> Reply {
        let request = self.client.post(self.url(path)).header(reqwest::header::CONTENT_TYPE, content_type).body(body);
        let reply = read(request.send().await.expect("the request is answered")).await;
        self.check(&reqwest::Method::POST, path, &reply);
        reply
    }

    /// Validate a reply against the operation's documented response for its status: JSON
    /// against its schema; a response documented only in other media types (community's XML
    /// notify acknowledgement) must come in one of them.
    pub fn check(&self, method: &reqwest::Method, path: &str, reply: &Reply) {
        let path = path.split('?').next().unwrap_or(path);
        // A literal segment wins over a parameter, as the router matches (`/api/station/search`
        // is not `/api/station/{id}`).
        let Some(op) = self
            .spec
            .operations()
            .into_iter()
            .filter(|op| op.method.eq_ignore_ascii_case(method.as_str()) && template_matches(op.path, path))
            .min_by_key(|op| op.path.matches('{').count())
        else {
            return; // /_sandbox/*, docs: not part of the contract
        };
        let status = reply.status.to_string();
        let response = op.op["responses"]
            .get(&status)
            .unwrap_or_else(|| panic!("{op}: status {status} is not documented; body {}", reply.body));
        if let Some(content) = response.get("content").and_then(Value::as_object)
            && !content.contains_key("application/json")
        {
            let media_type = reply.headers.get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
            let essence = media_type.split(';').next().unwrap_or_default().trim();
            assert!(content.contains_key(essence), "{op} {status}: answered {media_type:?}, documented {:?}", content.keys().collect::<Vec<_>>());
            return;
        }
        let pointer = match response.get("$ref").and_then(Value::as_str) {
            Some(reference) => format!("{}/content/application~1json/schema", reference.trim_start_matches('#')),
            None => format!("{}/responses/{}/content/application~1json/schema", op.pointer(), escape_pointer(&status)),
        };
        let errors = self.validator.errors(&pointer, &reply.body);
        assert!(errors.is_empty(), "{op} {status}: the answer breaks the contract: {errors:?}\n{}", reply.body);
    }

    /// The newest sandbox SMS code sent to `phone`.
    pub async fn sms_code(&self, phone: &str) -> String {
        let reply = read(self.client.get(self.url(&format!("/_sandbox/sms?phone={phone}"))).send().await.unwrap()).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.body["messages"][0]["code"].as_str().unwrap_or_else(|| panic!("no code for {phone}: {}", reply.body)).to_owned()
    }

    /// Have the sandbox payment platform pay (or fail) an order: it sends a signed notify.
    pub async fn sandbox_pay(&self, order_id: &str, result: &str) -> Reply {
        let url = self.url(&format!("/_sandbox/pay/{order_id}?result={result}"));
        read(self.client.post(url).send().await.unwrap()).await
    }
}

fn template_matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<_>, Vec<_>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len() && t.iter().zip(&p).all(|(t, p)| t == p || (t.starts_with('{') && t.ends_with('}')))
}

/// A six-digit code that is not `right`: a wrong guess at an SMS code.
pub fn wrong_code(right: &str) -> &'static str {
    if right == "000000" { "111111" } else { "000000" }
}

/// Read an answer (JSON parsed, anything else as a string).
pub async fn read(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply { status, headers, body }
}

// WeChat Pay v2's XML, as the notify tests of community and charging build and read it.

/// A flat v2 XML message's fields (`<xml><k><![CDATA[v]]></k>…</xml>` or plain text values).
pub fn xml_fields(body: &[u8]) -> std::collections::BTreeMap<String, String> {
    let text = std::str::from_utf8(body).unwrap();
    let inner = text.trim().strip_prefix("<xml>").and_then(|t| t.strip_suffix("</xml>")).unwrap_or_else(|| panic!("not v2 XML: {text}"));
    let mut fields = std::collections::BTreeMap::new();
    let mut rest = inner.trim();
    while let Some(open) = rest.strip_prefix('<') {
        let (name, after) = open.split_once('>').unwrap();
        let close = format!("</{name}>");
        let end = after.find(&close).unwrap();
        let raw = &after[..end];
        let value = raw.replace("]]><![CDATA[", "").trim_start_matches("<![CDATA[").trim_end_matches("]]>").to_owned();
        fields.insert(name.to_owned(), value);
        rest = after[end + close.len()..].trim();
    }
    fields
}

/// `fields` as v2 XML (CDATA values).
pub fn xml_of(fields: &std::collections::BTreeMap<String, String>) -> Vec<u8> {
    let mut xml = String::from("<xml>");
    for (name, value) in fields {
        xml.push_str(&format!("<{name}><![CDATA[{value}]]></{name}>"));
    }
    xml.push_str("</xml>");
    xml.into_bytes()
}

/// The v2 MD5 sign of `fields` under `key`: non-empty fields but `sign`, sorted, `&key=`.
pub fn md5_sign(fields: &std::collections::BTreeMap<String, String>, key: &str) -> String {
    let mut text = String::new();
    for (name, value) in fields.iter().filter(|(n, v)| !v.is_empty() && *n != "sign") {
        text.push_str(&format!("{name}={value}&"));
    }
    text.push_str(&format!("key={key}"));
    hex::encode_upper(<md5::Md5 as md5::Digest>::digest(text.as_bytes()))
}

/// POST a WeChat Pay v2 notify to `path`: (HTTP status, the ack's return_code).
pub async fn post_v2_notify(app: &TestApp, path: &str, body: Vec<u8>) -> (u16, String) {
    let reply = app.post_raw(path, "text/xml", body).await;
    let text = reply.body.as_str().unwrap_or_else(|| panic!("an XML ack: {}", reply.body)).to_owned();
    (reply.status, xml_fields(text.as_bytes())["return_code"].clone())
}
