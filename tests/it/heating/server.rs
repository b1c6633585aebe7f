//! What the server around heating does: the per-IP limit (000 §7) and whom it trusts for the
//! client IP, restarts and concurrent starts on one database, the production guard, CORS, and
//! what the index page and the start-up banner tell a new user.

use std::time::Duration;

use mpapi::config::{Config, Environment, RateLimitConfig};
use mpapi::serve::Server;
use serde_json::{Value, json};

use super::{login, user};
use crate::app::{TestApp, fresh_database};
use crate::support::page_commands;

fn limit_to(requests: u32, trust_forwarded_for: bool) -> impl FnOnce(&mut Config) {
    move |c: &mut Config| {
        c.apis.get_mut("heating").unwrap().rate_limit = Some(RateLimitConfig { requests, window_seconds: 900 });
        c.trust_forwarded_for = trust_forwarded_for;
    }
}

/// Pruning forgets exactly the budgets whose admissions have all left the window (a scan of the
/// table: it has no index but its key) and keeps a client's spent budget, which still holds.
#[tokio::test]
async fn rate_limit_budgets_whole_again_are_pruned() {
    use mpapi::ratelimit::{Budgets, Window};
    use mpapi::storage::rate_limit::{BudgetWrite, RateLimitStore};
    let app = TestApp::spawn("heating", |_| {}).await;
    let store = RateLimitStore::new(app.server.db.clone());
    let budgets = Budgets::Database(store.clone());
    let window = Window::new(100, Duration::from_secs(900));
    let now = app.server.clock.now().timestamp_micros();
    // A client that spent a single request, and 10 minutes later one that spent its whole 100.
    assert_eq!(budgets.admit("test:ip", "10.0.0.2", now, &window, 1).await.unwrap().admitted, 1);
    let later = now + 600_000_000;
    assert_eq!(budgets.admit("test:ip", "10.0.0.1", later, &window, 100).await.unwrap().admitted, 100);
    // 15.5 minutes (and a second) after the first, its request has left the window (its 30 s
    // slice with it); the second's have not.
    let after = now + 931_000_000;
    let stale = store.load_many("test:ip", &["10.0.0.2"]).await.unwrap().remove("10.0.0.2").expect("its row");
    assert_eq!(store.prune(after).await.unwrap(), 1);
    assert_eq!(store.prune(after).await.unwrap(), 0, "nothing left to prune");
    let kept = budgets.admit("test:ip", "10.0.0.1", after, &window, 2).await.unwrap();
    assert_eq!(kept.admitted, 0, "the spent budget was kept");
    assert!(kept.wait_us > 0);
    // The pruned client comes back: its new row's first version is its time, so a counting that
    // read the pruned row cannot write over it.
    assert_eq!(budgets.admit("test:ip", "10.0.0.2", after, &window, 1).await.unwrap().admitted, 1);
    let overwrite = BudgetWrite { client: "10.0.0.2", read: Some(stale.version), next: stale.version + 1, spent: String::new(), seen_us: after, expires_us: after };
    assert!(store.update_many("test:ip", &[overwrite]).await.unwrap().is_empty());
    assert_eq!(store.load_many("test:ip", &["10.0.0.2"]).await.unwrap()["10.0.0.2"].version, after);
}

#[tokio::test]
async fn the_ip_limit_answers_1008_and_spares_notifies() {
    let app = TestApp::spawn("heating", limit_to(5, false)).await;
    for _ in 0..5 {
        assert_eq!(app.get("/api/config/system", None).await.status, 200);
    }
    let limited = app.get("/api/config/system", None).await;
    assert_eq!((limited.status, limited.code()), (429, 1008));
    let wait: u64 = limited.headers["retry-after"].to_str().unwrap().parse().unwrap();
    // The budget comes back when the five have left the 15-minute window (within a 30 s slice).
    assert!((870..=930).contains(&wait), "{wait}");
    // WeChat Pay's notifies are not counted: this one reaches verification (and fails there).
    let notify = app
        .client
        .post(app.url("/api/payment/notify"))
        .header("Wechatpay-Timestamp", "1")
        .header("Wechatpay-Nonce", "n")
        .header("Wechatpay-Signature", "c2ln")
        .header("Wechatpay-Serial", "PUB_KEY_ID_X")
        .json(&json!({"id": "EV-1", "create_time": "2024-12-18T15:55:28+08:00", "event_type": "TRANSACTION.SUCCESS",
            "resource_type": "encrypt-resource", "summary": "支付成功",
            "resource": {"algorithm": "AEAD_AES_256_GCM", "ciphertext": "eA==", "associated_data": "transaction", "original_type": "transaction", "nonce": "n"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(notify.status(), 401);
}

#[tokio::test]
async fn only_the_apis_operations_count_against_the_ip_limit() {
    let app = TestApp::spawn("heating", limit_to(2, false)).await;
    // Documentation, the operations routes, the sandbox and paths of no operation never reach
    // the budget: the two operations after them are still admitted.
    for path in ["/openapi.json", "/health/live", "/_sandbox/sms?phone=13800138000", "/api/no/such/path", "/"] {
        for _ in 0..3 {
            let status = app.client.get(app.url(path)).send().await.unwrap().status().as_u16();
            assert_ne!(status, 429, "{path}");
        }
    }
    assert_eq!(app.get("/api/config/system", None).await.status, 200);
    assert_eq!(app.get("/api/config/system", None).await.status, 200);
    let limited = app.get("/api/config/system", None).await;
    assert_eq!((limited.status, limited.code()), (429, 1008));
    // A HEAD is its GET operation, and counts.
    let head = app.client.head(app.url("/api/config/system")).send().await.unwrap();
    assert_eq!(head.status().as_u16(), 429);
    // Called without the request log (which hands it the operation), the service finds the
    // operation itself: the same client (127.0.0.1) on a second router of the same database is
    // refused, and an unknown path is still not counted.
    use tower::ServiceExt as _;
    let router = app.server.router(mpapi::apis::by_id("heating").unwrap(), 1).await.unwrap().unwrap();
    let request = |path: &str| axum::extract::Request::get(path).body(axum::body::Body::empty()).unwrap();
    assert_eq!(router.clone().oneshot(request("/api/no/such/path")).await.unwrap().status(), 404);
    assert_eq!(router.oneshot(request("/api/config/system")).await.unwrap().status(), 429);
}

async fn status_from(app: &TestApp, forwarded_for: String) -> u16 {
    let response = app.client.get(app.url("/api/config/system")).header("X-Forwarded-For", forwarded_for).send().await.unwrap();
    response.status().as_u16()
}

#[tokio::test]
async fn x_forwarded_for_counts_only_behind_a_trusted_proxy() {
    // Untrusted (the default): a client cannot escape its limit by inventing addresses.
    let app = TestApp::spawn("heating", limit_to(3, false)).await;
    let statuses: Vec<u16> = futures_util::future::join_all((0..5).map(|i| status_from(&app, format!("10.0.0.{i}")))).await;
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 2, "{statuses:?}");
    // Trusted: the last X-Forwarded-For entry (what the proxy appended) is the client.
    let app = TestApp::spawn("heating", limit_to(3, true)).await;
    for i in 0..5 {
        assert_eq!(status_from(&app, format!("spoofed, 10.0.0.{i}")).await, 200);
    }
    for _ in 0..3 {
        assert_eq!(status_from(&app, "10.0.0.9".into()).await, 200);
    }
    assert_eq!(status_from(&app, "10.0.0.9".into()).await, 429);
    assert_eq!(status_from(&app, "10.0.0.10".into()).await, 200);
}

#[tokio::test]
async fn a_restart_on_an_existing_database_keeps_everything() {
    let app = TestApp::heating().await;
    let (token, refresh) = user(&app, "13900000050").await;
    let bound = app.post("/api/heat/bind", Some(&token), super::bind_body("张三", super::OWNER_ID)).await;
    assert_eq!(bound.status, 200);
    let config = app.server.config.clone();
    let offset = Duration::from_millis((app.server.clock.now_ms() - chrono::Utc::now().timestamp_millis()).max(0) as u64);
    let dir = app.into_dir();
    // A second start on the same database: migrations run again (nothing to do), nothing is
    // seeded twice, the generated keys are the same, so tokens issued before still verify.
    let again = TestApp::start("heating", config, dir).await;
    again.server.clock.advance(offset);
    assert_eq!(again.get("/api/user/profile", Some(&token)).await.data()["heat_account"], "H202400001");
    let refreshed = again.post("/api/auth/refresh", None, json!({"refresh_token": refresh})).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let history = again.get("/api/payment/history", Some(&token)).await;
    assert_eq!(history.data()["total"], 2, "the seeded history once: {}", history.body);
    let account = again.get("/api/heat/account", Some(&token)).await;
    assert_eq!(account.data()["paid_fee"], json!(2499.0), "{}", account.body);
    login(&again, "13900000050").await;
}

#[tokio::test]
async fn two_instances_starting_at_once_seed_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config { database_url: fresh_database(&dir).await, ..Config::default() };
    let (a, b) = tokio::join!(Server::new(config.clone()), Server::new(config.clone()));
    let (a, b) = (a.expect("first instance"), b.expect("second instance"));
    let api = mpapi::apis::by_id("heating").unwrap();
    let (ra, rb) = tokio::join!(a.router(api, 1), b.router(api, 2));
    let _ = ra.expect("first router").expect("implemented");
    let _ = rb.expect("second router").expect("implemented");
    let records = a.db.heating_orders().records("H202400001", None, None, mpapi::api_support::PageRequest::new(1, 10, 10)).await.unwrap();
    assert_eq!(records.total, 2, "the demo history exists once");
    assert_eq!(a.db.heating_accounts().seasons().await.unwrap().len(), 3);
    // Both hold the same keys.
    assert_eq!(a.db.secret("jwt", String::new).await.unwrap(), b.db.secret("jwt", String::new).await.unwrap());
}

#[tokio::test]
async fn production_refuses_sandbox_providers_and_generated_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config { env: Environment::Production, database_url: fresh_database(&dir).await, ..Config::default() };
    let error = Server::new(config).await.expect_err("refused").to_string();
    for expected in ["secrets.jwt", "sms.provider is the sandbox", "apis.heating.wechat_pay.provider is the sandbox"] {
        assert!(error.contains(expected), "{expected}: {error}");
    }
}

#[tokio::test]
async fn cors_for_serve_allows_only_configured_origins() {
    use tower::ServiceExt as _;
    let cors = mpapi::server::Cors::from_origins(&["https://admin.example.com".to_owned()]).unwrap();
    let router = axum::Router::new().route("/x", axum::routing::get(|| async { "ok" }));
    let app = mpapi::server::outer(router, "heating", &cors);
    let ask = |origin: &'static str| {
        let request = axum::http::Request::builder().uri("/x").header("Origin", origin).body(axum::body::Body::empty()).unwrap();
        app.clone().oneshot(request)
    };
    let allowed = ask("https://admin.example.com").await.unwrap();
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://admin.example.com");
    let other = ask("https://evil.example.com").await.unwrap();
    assert!(!other.headers().contains_key("access-control-allow-origin"));
    assert!(mpapi::server::Cors::from_origins(&["bad\norigin".to_owned()]).is_err());
}

#[tokio::test]
async fn a_database_of_an_older_mpapi_is_named_as_such() {
    use sea_orm::ConnectionTrait as _;
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(&dir).await;
    drop(mpapi::storage::Db::connect(&url).await.unwrap());
    let raw = sea_orm::Database::connect(&url).await.unwrap();
    raw.execute_unprepared("INSERT INTO seaql_migrations (version, applied_at) VALUES ('m20261121_000002_heating', 0)").await.unwrap();
    let error = mpapi::storage::Db::connect(&url).await.expect_err("refused").to_string();
    assert!(error.contains("older mpapi") && error.contains("delete it"), "{error}");
}

#[tokio::test]
async fn production_refuses_a_database_with_demo_data() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(&dir).await;
    let development = Server::new(Config { database_url: url.clone(), ..Config::default() }).await.unwrap();
    let _ = development.router(mpapi::apis::by_id("heating").unwrap(), 1).await.unwrap();
    let mut config = Config { env: Environment::Production, database_url: url, ..Config::default() };
    let secret = || Some(secrecy::SecretString::from("11".repeat(32)));
    config.secrets = mpapi::config::Secrets { jwt: secret(), pii_key: secret(), pepper: secret() };
    config.sms.provider = mpapi::config::ProviderKind::Real;
    config.sms.access_key_id = "id".into();
    config.sms.access_key_secret = Some("secret".into());
    config.sms.sign_name = "s".into();
    config.sms.template_code = "SMS_1".into();
    // Every API serve starts fit for production; only the database is not.
    for (api, appid) in [("heating", "wx1234567890abcdef"), ("points", "wx0fedcba987654321")] {
        let section = config.apis.get_mut(api).unwrap();
        section.appid = appid.into();
        section.wechat_login = mpapi::config::WechatLoginConfig { provider: mpapi::config::ProviderKind::Real, secret: Some("s".into()), ..Default::default() };
        section.wechat_pay.provider = mpapi::config::ProviderKind::Real;
        section.wechat_pay.mchid = "1230000109".into();
        section.wechat_pay.notify_base_url = Some("https://pay.example.com".into());
    }
    let community = config.apis.get_mut("community").unwrap();
    community.appid = "wx1122334455667788".into();
    community.wechat_login = mpapi::config::WechatLoginConfig { provider: mpapi::config::ProviderKind::Real, secret: Some("s".into()), ..Default::default() };
    community.wechat_pay.provider = mpapi::config::ProviderKind::Real;
    community.wechat_pay.mchid = "1230000111".into();
    community.wechat_pay.api_key = Some("k".repeat(32).into());
    community.wechat_pay.notify_base_url = Some("https://pay.example.com".into());
    community.ocr.provider = mpapi::config::ProviderKind::Real;
    community.ocr.appcode = Some("appcode".into());
    community.security_platform.provider = mpapi::config::ProviderKind::Real;
    community.security_platform.base_url = "https://security.example.com".into();
    community.security_platform.app_key = "mpapi".into();
    community.security_platform.app_secret = Some("secret".into());
    community.files.public_base_url = Some("https://tc.example.com".into());
    community.public_url = Some("https://community.example.com".into());
    let charging = config.apis.get_mut("charging").unwrap();
    charging.appid = "wx8a3c5e7f9b1d2046".into();
    charging.wechat_login = mpapi::config::WechatLoginConfig { provider: mpapi::config::ProviderKind::Real, secret: Some("s".into()), ..Default::default() };
    charging.wechat_pay.provider = mpapi::config::ProviderKind::Real;
    charging.wechat_pay.mchid = "1230000222".into();
    charging.wechat_pay.api_key = Some("k".repeat(32).into());
    charging.wechat_pay.notify_base_url = Some("https://pay.example.com".into());
    charging.public_url = Some("https://charging.example.com".into());
    charging.charger.provider = mpapi::config::ProviderKind::Real;
    charging.charger.gateway = Some(mpapi::providers::charger::GatewayConfig {
        base_url: "https://gateway.example.com/api".into(),
        token: "token".into(),
        timeout_ms: 5000,
    });
    let o2o = config.apis.get_mut("o2o").unwrap();
    for (operator, appid, mchid) in o2o.operators.iter_mut().zip(["wx3c5e7a9b1d2f4603", "wx5e7a9b1d2f4c6805"]).zip(["1230000303", "1230000505"]).map(|((o, a), m)| (o, a, m)) {
        operator.appid = appid.into();
        operator.wechat_login = mpapi::config::WechatLoginConfig { provider: mpapi::config::ProviderKind::Real, secret: Some("s".into()), ..Default::default() };
        operator.wechat_pay.provider = mpapi::config::ProviderKind::Real;
        operator.wechat_pay.mchid = mchid.into();
        operator.wechat_pay.notify_base_url = Some("https://pay.example.com".into());
    }
    o2o.geocoder.provider = mpapi::config::ProviderKind::Real;
    o2o.geocoder.key = Some("key".into());
    let problems = config.production_problems(&mpapi::serve::implemented());
    assert!(problems.is_empty(), "{problems:?}");
    let error = Server::new(config).await.expect_err("refused").to_string();
    assert!(error.contains("demo data") && error.contains("heating.demo"), "{error}");
}

/// The text between `open` and the next `close` after it.
fn between<'a>(text: &'a str, open: &str, close: &str) -> &'a str {
    let start = text.find(open).unwrap_or_else(|| panic!("{open} in {text}")) + open.len();
    let end = start + text[start..].find(close).unwrap_or_else(|| panic!("{close} after {open} in {text}"));
    &text[start..end]
}

#[tokio::test]
async fn the_index_page_and_the_banner_say_where_to_start() {
    let app = TestApp::heating().await;
    let page = app.client.get(app.url("/")).send().await.unwrap().text().await.unwrap();
    let port = app.address.port();
    for expected in [
        "mpapi serve",
        "demo user 13800138000 (password 12345678)",
        "H202400001 (户主 张三, ID 610102199001011231",
        "H202400002",
        "GET /_sandbox/sms?phone=NUMBER",
        "GET /_sandbox/wechat/encrypt?code=CODE&amp;data=JSON",
        "POST /_sandbox/pay/{order_id}?result=success|fail",
        "Authorization: Bearer",
    ] {
        assert!(page.contains(expected), "{expected} missing from {page}");
    }
    // The first calls work as written (reqwest sends Host: 127.0.0.1:PORT, the page's base):
    // the code they send and read logs the demo user in.
    let commands = page_commands(&page);
    assert_eq!(commands.len(), 2, "{page}");
    assert!(commands[0].starts_with(&format!("curl -s -X POST {}/api/sms/send ", app.url(""))), "{}", commands[0]);
    let body: Value = serde_json::from_str(between(&commands[0], "-d '", "'")).unwrap();
    assert_eq!(body, json!({"phone": "13800138000", "type": "login"}));
    assert_eq!(app.post("/api/sms/send", None, body).await.status, 200);
    let outbox: Value = app.client.get(between(&commands[1], "curl -s '", "'")).send().await.unwrap().json().await.unwrap();
    let code = outbox["messages"][0]["code"].as_str().unwrap_or_else(|| panic!("{outbox}"));
    let login = app.post("/api/auth/login", None, json!({"phone": "13800138000", "code": code})).await;
    assert_eq!(login.status, 200, "{}", login.body);
    let profile = app.get("/api/user/profile", login.data()["token"].as_str()).await;
    assert_eq!((profile.status, profile.data()["heat_account"].clone()), (200, Value::Null), "not bound yet: {}", profile.body);
    // The banner says the same at the address the server listens on.
    let api = mpapi::apis::by_id("heating").unwrap();
    let banner = mpapi::serve::banner(&app.server, &[(api, port)], [127, 0, 0, 1].into()).join("\n");
    for expected in [commands[0].as_str(), &commands[1], "demo user 13800138000", "POST /_sandbox/pay/{order_id}", "GET /_sandbox/wechat/encrypt"] {
        assert!(banner.contains(expected), "{expected} missing from\n{banner}");
    }
    assert!(!banner.contains("WARNING"), "loopback only: {banner}");
    let open = mpapi::serve::banner(&app.server, &[(api, port)], [0, 0, 0, 0].into()).join("\n");
    assert!(open.contains("WARNING: sandbox providers are active"), "{open}");
}

#[tokio::test]
async fn without_demo_data_the_page_offers_no_demo_user() {
    let app = TestApp::spawn("heating", |c| c.demo_data = Some(false)).await;
    let page = app.client.get(app.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("13800138000") && !page.contains("H202400001"), "{page}");
    // A new phone's register code instead: sent and read as shown.
    let commands = page_commands(&page);
    let body: Value = serde_json::from_str(between(&commands[0], "-d '", "'")).unwrap();
    assert_eq!(body["type"], "register", "{page}");
    assert_eq!(app.post("/api/sms/send", None, body).await.status, 200);
    let outbox: Value = app.client.get(between(&commands[1], "curl -s '", "'")).send().await.unwrap().json().await.unwrap();
    assert_eq!(outbox["messages"][0]["type"], "register", "{outbox}");
}

#[tokio::test]
async fn serve_binds_only_the_ports_of_the_apis_it_serves() {
    // Something else (mock mode serving o2o, say) holds port base + 4; serve told to start the
    // other four (`--api` each) starts anyway.
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config { database_url: fresh_database(&dir).await, ..Config::default() };
    config.apis.get_mut("community").unwrap().files.local_dir = dir.path().join("files");
    let four = ["heating", "points", "community", "charging"].map(String::from).to_vec();
    // The four ports are found free by probing, and a test running beside this one can take
    // one of them before serve binds it: serve then stops with its port in use (told by
    // `server::bind_all`'s context, `binding IP:PORT for API`), and the test tries another
    // base. Stopping any other way, or on the held o2o port, fails it. All four ports must
    // answer, so an app of another test answering on a taken base does not pass for serve.
    let mut last_stop = None;
    for _attempt in 0..5 {
        let (base, o2o) = free_base_holding_o2o();
        let ports: Vec<u16> = (0..4).map(|offset| base + offset).collect();
        let listen = mpapi::cli::Listen { apis: four.clone(), port_base: base, bind: [127, 0, 0, 1].into() };
        // Stopped by `abort` at the end, not by a signal.
        let serving = tokio::spawn(mpapi::serve::run(config.clone(), listen, Box::pin(std::future::pending())));
        let client = reqwest::Client::new();
        let mut answered = Vec::new();
        for _ in 0..300 {
            if serving.is_finished() {
                break;
            }
            let Some(&port) = ports.get(answered.len()) else { break };
            if let Ok(response) = client.get(format!("http://127.0.0.1:{port}/health/live")).send().await {
                answered.push(response.status().as_u16());
                continue;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if serving.is_finished() {
            let stopped = serving.await.expect("serve panicked");
            let taken_meanwhile = stopped.as_ref().err().is_some_and(|error| {
                let text = format!("{error:#}");
                error.chain().any(|cause| {
                    cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::AddrInUse)
                }) && ports.iter().any(|port| text.contains(&format!(":{port} for ")))
            });
            assert!(taken_meanwhile, "serve stopped: {stopped:?}");
            last_stop = Some(stopped);
            continue;
        }
        serving.abort();
        drop(o2o);
        assert_eq!(answered, [200, 200, 200, 200], "heating, points, community and charging answer on {ports:?}");
        return;
    }
    panic!("five bases in a row had a port taken between the probe and serve's bind; the last stop: {last_stop:?}");
}

/// A port base whose own port, points' (base + 1), community's (base + 2) and charging's
/// (base + 3) were free when probed, and the listener holding its o2o port (base + 4).
fn free_base_holding_o2o() -> (u16, std::net::TcpListener) {
    loop {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = probe.local_addr().unwrap().port();
        drop(probe);
        let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if base.checked_add(4).is_none() || !free(base + 1) || !free(base + 2) || !free(base + 3) {
            continue;
        }
        if let Ok(held) = std::net::TcpListener::bind(("127.0.0.1", base + 4)) {
            return (base, held);
        }
    }
}
