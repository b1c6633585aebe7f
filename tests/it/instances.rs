//! Several instances on one database (issue 17): two `serve`s over one database — a fresh
//! PostgreSQL schema on CI's second pass, a SQLite file otherwise — behave as one server: the
//! per-IP limit holds across both (in the database, or in Redis when configured), a code sent
//! through one verifies on the other, a logout on one ends the session on the other, duplicate
//! notifies split across both change state once, and a port is claimed once.

use mpapi::config::{Config, RateLimitConfig};
use serde_json::json;

use crate::app::{TestApp, fresh_database};

/// Two servers of `api` on one fresh database, `configure`d alike (the second starts on the
/// database the first migrated and seeded, as a second instance behind a load balancer would).
async fn pair(api: &'static str, configure: impl FnOnce(&mut Config)) -> (TestApp, TestApp) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut config = Config { database_url: fresh_database(&dir).await, ..Config::default() };
    configure(&mut config);
    let first = TestApp::start(api, config.clone(), dir).await;
    let second = TestApp::start(api, config, tempfile::tempdir().expect("a temporary folder")).await;
    (first, second)
}

fn limit_to(requests: u32) -> impl FnOnce(&mut Config) {
    move |c: &mut Config| c.apis.get_mut("heating").unwrap().rate_limit = Some(RateLimitConfig { requests, window_seconds: 900 })
}

/// `requests` spread over both instances are admitted, then both refuse (1008 with
/// `Retry-After`).
async fn the_limit_is_shared(a: &TestApp, b: &TestApp, requests: usize) {
    for n in 0..requests {
        let app = if n % 2 == 0 { a } else { b };
        let reply = app.get("/api/config/system", None).await;
        assert_eq!(reply.status, 200, "request {n}: {}", reply.body);
    }
    for app in [a, b] {
        let limited = app.get("/api/config/system", None).await;
        assert_eq!((limited.status, limited.code()), (429, 1008), "{}", limited.body);
        let wait: u64 = limited.headers["retry-after"].to_str().unwrap().parse().unwrap();
        // The budget comes back when the requests have left the 15-minute window (within a 30 s slice).
        assert!((870..=930).contains(&wait), "{wait}");
    }
}

#[tokio::test]
async fn the_ip_limit_holds_across_instances() {
    let (a, b) = pair("heating", limit_to(6)).await;
    the_limit_is_shared(&a, &b, 6).await;
}

#[tokio::test]
async fn the_ip_limit_races_across_instances_without_overshooting() {
    let (a, b) = pair("heating", limit_to(10)).await;
    the_limit_races_without_overshooting(&a, &b).await;
}

/// 30 requests at once, split over both instances: exactly 10 admitted.
async fn the_limit_races_without_overshooting(a: &TestApp, b: &TestApp) {
    let replies = futures_util::future::join_all((0..30).map(|n| {
        let app = if n % 2 == 0 { a } else { b };
        app.get("/api/config/system", None)
    }))
    .await;
    let admitted = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(admitted, 10, "{:?}", replies.iter().map(|r| r.status).collect::<Vec<_>>());
    assert!(replies.iter().all(|r| r.status == 200 || r.status == 429));
}

/// Many clients at once (behind a trusted proxy: 12 addresses in `X-Forwarded-For`, 5 requests
/// each, all 60 at once, each client's split over both instances): each client gets exactly its
/// own 3, counted in the turns that read and write every client's budget together, whichever
/// instance's turn writes a budget first.
#[tokio::test]
async fn many_clients_racing_across_instances_each_get_their_own_limit() {
    let (a, b) = pair("heating", |c: &mut Config| {
        limit_to(3)(c);
        c.trust_forwarded_for = true;
    })
    .await;
    let requests = (0..60).map(|n| {
        let app = if n / 12 % 2 == 0 { &a } else { &b };
        let client = format!("198.51.100.{}", n % 12);
        async move {
            let reply = app.client.get(app.url("/api/config/system")).header("x-forwarded-for", &client).send().await.expect("an answer");
            (client, reply.status().as_u16())
        }
    });
    let replies = futures_util::future::join_all(requests).await;
    for n in 0..12 {
        let client = format!("198.51.100.{n}");
        let statuses: Vec<u16> = replies.iter().filter(|(c, _)| *c == client).map(|(_, status)| *status).collect();
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 3, "{client}: {statuses:?}");
        assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 2, "{client}: {statuses:?}");
    }
}

/// The Redis the tests use, `MPAPI_TEST_REDIS_URL` (default the local one), and a connection to
/// it that answered a PING; `None` (said on stderr, so the test skips) when there is none.
async fn test_redis() -> Option<(String, redis::aio::ConnectionManager)> {
    let url = std::env::var("MPAPI_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let connect = async {
        let mut connection = redis::aio::ConnectionManager::new(redis::Client::open(url.as_str()).ok()?).await.ok()?;
        redis::cmd("PING").query_async::<String>(&mut connection).await.ok()?;
        Some(connection)
    };
    match tokio::time::timeout(std::time::Duration::from_secs(2), connect).await {
        Ok(Some(connection)) => Some((url, connection)),
        _ => {
            eprintln!("skipped: no Redis at {url} (set MPAPI_TEST_REDIS_URL)");
            None
        }
    }
}

/// The same with the budgets in Redis (`redis_url`): `MPAPI_TEST_REDIS_URL`, default the local
/// Redis; a machine without one says so and skips.
#[tokio::test]
async fn the_ip_limit_holds_across_instances_in_redis() {
    let Some((url, _)) = test_redis().await else { return };
    let (a, b) = pair("heating", |c| {
        limit_to(6)(c);
        c.redis_url = Some(url.clone().into());
    })
    .await;
    assert!(matches!(a.server.budgets, mpapi::ratelimit::Budgets::Redis { .. }));
    the_limit_is_shared(&a, &b, 6).await;
}

#[tokio::test]
async fn the_ip_limit_races_across_instances_in_redis_without_overshooting() {
    let Some((url, _)) = test_redis().await else { return };
    let (a, b) = pair("heating", |c| {
        limit_to(10)(c);
        c.redis_url = Some(url.clone().into());
    })
    .await;
    the_limit_races_without_overshooting(&a, &b).await;
}

#[tokio::test]
async fn a_code_sent_through_one_verifies_on_the_other_and_a_logout_on_one_ends_the_session_on_both() {
    let (a, b) = pair("heating", |_| {}).await;
    let phone = "13900000071";
    // Register with a code sent through A, verified by B; read from B's outbox.
    let sent = a.post("/api/sms/send", None, json!({"phone": phone, "type": "register"})).await;
    assert_eq!((sent.status, sent.code()), (200, 200), "{}", sent.body);
    let code = b.sms_code(phone).await;
    let registered = b.post("/api/auth/register", None, json!({"phone": phone, "code": code, "password": "123456789"})).await;
    assert_eq!(registered.status, 200, "{}", registered.body);
    // The code was used up on B: A refuses it.
    let again = a.post("/api/auth/register", None, json!({"phone": phone, "code": code, "password": "123456789"})).await;
    assert_ne!(again.status, 200, "{}", again.body);
    // A login code sent through B a minute later (codes are one a minute per phone), used on A;
    // the session works on both.
    for app in [&a, &b] {
        app.server.clock.advance(std::time::Duration::from_secs(61));
    }
    let sent = b.post("/api/sms/send", None, json!({"phone": phone, "type": "login"})).await;
    assert_eq!((sent.status, sent.code()), (200, 200), "{}", sent.body);
    let code = a.sms_code(phone).await;
    let login = a.post("/api/auth/login", None, json!({"phone": phone, "code": code})).await;
    assert_eq!(login.status, 200, "{}", login.body);
    let token = login.data()["token"].as_str().unwrap().to_owned();
    for app in [&a, &b] {
        assert_eq!(app.get("/api/user/profile", Some(&token)).await.status, 200);
    }
    // Logged out on B: A refuses the token at once.
    let out = b.post("/api/auth/logout", Some(&token), json!({})).await;
    assert_eq!(out.status, 200, "{}", out.body);
    for app in [&a, &b] {
        let refused = app.get("/api/user/profile", Some(&token)).await;
        assert_eq!(refused.status, 401, "{}", refused.body);
    }
}

#[tokio::test]
async fn duplicate_notifies_split_across_instances_change_state_once() {
    use crate::heating::{futures_join_all, order, owner, post_notify, sandbox_notify, status_of};
    let (a, b) = pair("heating", |_| {}).await;
    let token = owner(&a, "13900000072").await;
    let (order_id, _) = order(&a, &token).await;
    // Signed by A's sandbox platform; B verifies it with the same keys (they are the database's).
    let (headers, body) = sandbox_notify(&a, &order_id, true).await;
    let deliveries = futures_join_all((0..6).map(|n| post_notify(if n % 2 == 0 { &a } else { &b }, &headers, body.clone())).collect()).await;
    for (status, ack) in &deliveries {
        assert_eq!((*status, ack["code"].as_str()), (200, Some("SUCCESS")), "{deliveries:?}");
    }
    assert_eq!(status_of(&b, &token, &order_id).await, "paid");
    let status = a.get(&format!("/api/payment/status/{order_id}"), Some(&token)).await;
    let stats = b.get("/api/statistics/user", Some(&token)).await;
    assert_eq!(stats.data()["current_season_paid"], status.data()["amount"], "paid once: {}", stats.body);
}

#[tokio::test]
async fn a_port_is_claimed_once_across_instances() {
    use crate::charging::{CREATE, DC_DEVICE, DC_PILE, DC_PORT, created, driver, refused};
    let (a, b) = pair("charging", |_| {}).await;
    let mut drivers = Vec::new();
    for n in 0..20 {
        let app = if n % 2 == 0 { &a } else { &b };
        drivers.push((app, driver(app, &format!("two-instance-racer-{n}")).await));
    }
    let replies = futures_util::future::join_all(drivers.iter().map(|(app, token)| {
        let body = json!({"pileId": DC_PILE, "portId": DC_PORT, "chargingMode": 1, "chargingParameter": 0, "paymentMethod": 1});
        app.post(CREATE, Some(token), body)
    }))
    .await;
    let winners: Vec<usize> = (0..replies.len()).filter(|i| replies[*i].status == 200).collect();
    assert_eq!(winners.len(), 1, "{:?}", replies.iter().map(|r| &r.body).collect::<Vec<_>>());
    created(&replies[winners[0]], DC_DEVICE);
    for (_, reply) in replies.iter().enumerate().filter(|(n, _)| *n != winners[0]) {
        refused(reply, 409, 2005);
    }
}

/// A configured Redis that does not answer stops the start with a message naming the setting,
/// rather than a server whose limits silently count nothing.
#[tokio::test]
async fn an_unreachable_redis_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let config = Config { database_url: fresh_database(&dir).await, redis_url: Some("redis://127.0.0.1:1/".to_owned().into()), ..Config::default() };
    let Err(error) = mpapi::serve::Server::new(config).await else { panic!("started without the Redis on port 1") };
    assert!(format!("{error:#}").contains("redis_url"), "{error:#}");
}

/// Requests reach a budget out of time order (each instance reads its clock before it waits for
/// the store): a burst's last request stamped before one already counted is still admitted, and
/// no order of stamps admits more than the limit. `budgets` is empty for scope `"t:ip"`.
async fn out_of_order_stamps_are_counted_at_the_newest(budgets: &mpapi::ratelimit::Budgets) {
    use mpapi::storage::rate_limit::Admission;
    const S: i64 = 1_000_000;
    let window = mpapi::ratelimit::Window::new(3, std::time::Duration::from_secs(900)); // 3 per 15 minutes, 30 s slices
    let t0 = 1_800_000_000 * S; // a slice starts here
    // Stamps t0 + 5 ms, t0, t0 + 2 ms: all three within the budget of 3.
    for (n, at) in [t0 + 5_000, t0, t0 + 2_000].into_iter().enumerate() {
        let admission = budgets.admit("t:ip", "198.51.100.7", at, &window, 1).await.expect("the store answers");
        assert_eq!(admission.admitted, 1, "request {n} stamped {at}");
    }
    // A fourth, stamped earlier still, is over the budget: it waits from its own stamp until the
    // slice holding the three has left the window.
    let refused = budgets.admit("t:ip", "198.51.100.7", t0 - 1_000, &window, 1).await.unwrap();
    assert_eq!(refused, Admission { admitted: 0, wait_us: 930 * S + 1_000 });
    // Then three again, and no more.
    let back = t0 + 930 * S;
    assert_eq!(budgets.admit("t:ip", "198.51.100.7", back, &window, 5).await.unwrap().admitted, 3);
    assert_eq!(budgets.admit("t:ip", "198.51.100.7", back, &window, 1).await.unwrap().admitted, 0);
    // Another client's budget is its own.
    assert_eq!(budgets.admit("t:ip", "198.51.100.8", t0, &window, 1).await.unwrap().admitted, 1);
}

/// Requests counted together are admitted as far as the budget holds, exactly as many as
/// counting them one by one would admit, and the refused learn the wait for the next.
/// `budgets` is empty for scope `"t:batch"`.
async fn requests_counted_together_take_what_the_budget_holds(budgets: &mpapi::ratelimit::Budgets) {
    use mpapi::storage::rate_limit::Admission;
    const S: i64 = 1_000_000;
    let window = mpapi::ratelimit::Window::new(100, std::time::Duration::from_secs(900)); // 100 per 15 minutes
    let t0 = 1_800_000_000 * S;
    let client = "203.0.113.9";
    // A new client: 60 of 60; 40 of 70 a minute later (the wait: until the first 60's slice has
    // left the window, which frees enough for one more).
    assert_eq!(budgets.admit("t:batch", client, t0, &window, 60).await.unwrap(), Admission { admitted: 60, wait_us: 0 });
    let minute = t0 + 60 * S;
    assert_eq!(budgets.admit("t:batch", client, minute, &window, 70).await.unwrap(), Admission { admitted: 40, wait_us: 870 * S });
    // Nothing left: none of 5, told the same wait; 9 minutes later not one has come back.
    assert_eq!(budgets.admit("t:batch", client, minute, &window, 5).await.unwrap(), Admission { admitted: 0, wait_us: 870 * S });
    assert_eq!(budgets.admit("t:batch", client, t0 + 600 * S, &window, 1).await.unwrap().admitted, 0);
    // Once the first slice has left, its 60 are back; the 40 still hold.
    assert_eq!(budgets.admit("t:batch", client, t0 + 930 * S, &window, 100).await.unwrap().admitted, 60);
    // A new client asking for more than the whole budget gets the whole budget.
    assert_eq!(budgets.admit("t:batch", "203.0.113.10", t0, &window, 150).await.unwrap().admitted, 100);
}

/// Clients counted together each keep their own budget: 300 clients (more than one statement
/// carries), some with a budget already spent in part and some new, asking 1 to 5 requests each
/// of a budget of 3; the answers come in the clients' order. `budgets` is empty for scope
/// `"t:many"`.
async fn many_clients_counted_together_keep_their_own_budgets(budgets: &mpapi::ratelimit::Budgets) {
    use mpapi::storage::rate_limit::Admission;
    const S: i64 = 1_000_000;
    let window = mpapi::ratelimit::Window::new(3, std::time::Duration::from_secs(900));
    let t0 = 1_800_000_000 * S;
    let names: Vec<String> = (0..300).map(|n| format!("10.1.{}.{}", n / 256, n % 256)).collect();
    // Every third client has spent 2 of its 3 a minute before.
    let earlier: Vec<(&str, u32)> = names.iter().step_by(3).map(|name| (name.as_str(), 2)).collect();
    for answer in budgets.admit_many("t:many", &earlier, t0 - 60 * S, &window).await {
        assert_eq!(answer.unwrap(), Admission { admitted: 2, wait_us: 0 });
    }
    let asked: Vec<(&str, u32)> = names.iter().enumerate().map(|(n, name)| (name.as_str(), (n % 5) as u32 + 1)).collect();
    let answers = budgets.admit_many("t:many", &asked, t0, &window).await;
    assert_eq!(answers.len(), asked.len());
    for (n, answer) in answers.into_iter().enumerate() {
        let left = if n % 3 == 0 { 1 } else { 3 };
        let admission = answer.unwrap_or_else(|error| panic!("client {n}: {error}"));
        assert_eq!(admission.admitted, asked[n].1.min(left), "client {n} asked {} with {left} left", asked[n].1);
    }
    // What was written holds: one more each is refused where the budget is spent, admitted
    // where it is not (client 1 asked 2 of its 3).
    let again = budgets.admit_many("t:many", &[(names[0].as_str(), 1), (names[1].as_str(), 1), (names[4].as_str(), 1)], t0, &window).await;
    let admitted: Vec<u32> = again.into_iter().map(|answer| answer.unwrap().admitted).collect();
    assert_eq!(admitted, [0, 1, 0]);
}

/// A turn whose update fails answers only the clients that needed it with the failure (their
/// requests then go through, logged, as with a store that is down): a client over its budget,
/// which needs no write, stays refused, and a new client, whose insert is not asked after the
/// failed update, is answered the failure too — nothing of it written.
#[tokio::test]
async fn a_failed_budget_update_fails_only_the_clients_it_would_have_written() {
    use mpapi::storage::rate_limit::Admission;
    use sea_orm::ConnectionTrait;
    const S: i64 = 1_000_000;
    let dir = tempfile::tempdir().expect("a temporary folder");
    let url = fresh_database(&dir).await;
    let db = mpapi::storage::Db::connect(&url).await.expect("the database");
    let store = mpapi::storage::rate_limit::RateLimitStore::new(db);
    let budgets = mpapi::ratelimit::Budgets::Database(store.clone());
    let window = mpapi::ratelimit::Window::new(2, std::time::Duration::from_secs(900));
    let t0 = 1_800_000_000 * S;
    let (spent, partly) = ("192.0.2.1", "192.0.2.2");
    for answer in budgets.admit_many("t:fail", &[(spent, 2), (partly, 1)], t0, &window).await {
        assert!(answer.unwrap().admitted > 0);
    }
    // From now on every update of a budget fails in the database.
    let conn = sea_orm::Database::connect(url.as_str()).await.expect("the test's connection");
    let refuse_updates = match conn.get_database_backend() {
        sea_orm::DbBackend::Postgres => vec![
            "CREATE FUNCTION refuse_budget_update() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'no update'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_update BEFORE UPDATE ON rate_window FOR EACH ROW EXECUTE FUNCTION refuse_budget_update()",
        ],
        _ => vec!["CREATE TRIGGER refuse_update BEFORE UPDATE ON rate_window BEGIN SELECT RAISE(ABORT, 'no update'); END"],
    };
    for statement in refuse_updates {
        conn.execute_unprepared(statement).await.expect("the trigger");
    }
    let fresh = "192.0.2.3";
    let tried = budgets.try_admit_many("t:fail", &[(spent, 1), (partly, 1), (fresh, 1)], t0 + S, &window).await;
    assert!(matches!(tried[0], Ok(Some(Admission { admitted: 0, .. }))), "the spent client stays refused: {:?}", tried[0]);
    assert!(tried[1].is_err(), "the failed update's client: {:?}", tried[1]);
    assert!(tried[2].is_err(), "the insert is not asked after a failed update: {:?}", tried[2]);
    assert!(store.load_many("t:fail", &[fresh]).await.unwrap().is_empty(), "nothing written for the new client");
}

#[tokio::test]
async fn a_budget_counts_requests_arriving_out_of_time_order_at_the_newest_time() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let db = mpapi::storage::Db::connect(&fresh_database(&dir).await).await.expect("the database");
    let budgets = mpapi::ratelimit::Budgets::Database(mpapi::storage::rate_limit::RateLimitStore::new(db));
    out_of_order_stamps_are_counted_at_the_newest(&budgets).await;
    requests_counted_together_take_what_the_budget_holds(&budgets).await;
    many_clients_counted_together_keep_their_own_budgets(&budgets).await;
}

#[tokio::test]
async fn a_budget_in_redis_counts_requests_arriving_out_of_time_order_at_the_newest_time() {
    let Some((_, connection)) = test_redis().await else { return };
    let budgets = mpapi::ratelimit::Budgets::Redis { connection, namespace: format!("test{}", mpapi::random::hex(8)) };
    out_of_order_stamps_are_counted_at_the_newest(&budgets).await;
    requests_counted_together_take_what_the_budget_holds(&budgets).await;
    many_clients_counted_together_keep_their_own_budgets(&budgets).await;
}
