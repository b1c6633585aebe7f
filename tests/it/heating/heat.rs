//! 000 §4: `heat_bind`, `heat_account_get` — an account binds once, only for its registered
//! owner, and says so only to someone who knows the owner.

use super::{OWNER_ID, bind_body, order, user};
use crate::app::TestApp;

#[tokio::test]
async fn heat_bind_once_and_only_for_its_owner() {
    let app = TestApp::heating().await;
    let (first, _) = user(&app, "13900000004").await;
    let (second, _) = user(&app, "13900000005").await;
    let wrong_name = app.post("/api/heat/bind", Some(&first), bind_body("李四", OWNER_ID)).await;
    assert_eq!((wrong_name.status, wrong_name.code()), (400, 400));
    let wrong_id = app.post("/api/heat/bind", Some(&first), bind_body("张三", "11010519491231002X")).await;
    assert_eq!((wrong_id.status, wrong_id.code()), (400, 400));
    let unknown = app
        .post("/api/heat/bind", Some(&first), serde_json::json!({"heat_account": "H999", "real_name": "张三", "id_card": OWNER_ID, "address": "x"}))
        .await;
    assert_eq!((unknown.status, unknown.code()), (404, 404));
    assert_eq!(app.get("/api/heat/account", Some(&first)).await.code(), 404);
    assert_eq!(app.post("/api/heat/bind", Some(&first), bind_body("张三", OWNER_ID)).await.status, 200);
    // Whether an account is bound is said only to someone who knows its owner: a stranger
    // guessing gets the same answer as before it was bound.
    let probe = app.post("/api/heat/bind", Some(&second), bind_body("王五", "11010519491231002X")).await;
    assert_eq!((probe.status, probe.body["message"].as_str()), (400, Some("户主姓名或身份证号与供热账号登记信息不一致")));
    let taken = app.post("/api/heat/bind", Some(&second), bind_body("张三", OWNER_ID)).await;
    assert_eq!((taken.status, taken.code(), taken.body["message"].as_str()), (400, 400, Some("供热账号已被绑定")));
    // The other user sees no order of this account.
    let (order_id, _) = order(&app, &first).await;
    assert_eq!(app.get(&format!("/api/payment/status/{order_id}"), Some(&second)).await.status, 404);
    assert_eq!(app.get("/api/statistics/user", Some(&second)).await.code(), 404);
}

/// An owner's ID number cannot be guessed: a user has five binding attempts in any 24 hours
/// (a number failing its checksum, or an unknown account, is refused before it counts), then
/// 429 / 1008 with Retry-After — even for the right answer — until the first attempt leaves the
/// window.
#[tokio::test]
async fn heat_bind_attempts_are_limited_per_user() {
    let app = TestApp::heating().await;
    let (guesser, _) = user(&app, "13900000006").await;
    let checksum_wrong = app.post("/api/heat/bind", Some(&guesser), bind_body("张三", "610102199001011234")).await;
    assert_eq!((checksum_wrong.status, checksum_wrong.code()), (400, 400), "{}", checksum_wrong.body);
    // A mistyped account number does not count either.
    let unknown_account = serde_json::json!({"heat_account": "H999", "real_name": "张三", "id_card": OWNER_ID, "address": "x"});
    for _ in 0..mpapi::heating::service::BIND_ATTEMPTS_PER_DAY {
        assert_eq!(app.post("/api/heat/bind", Some(&guesser), unknown_account.clone()).await.status, 404);
    }
    for _ in 0..mpapi::heating::service::BIND_ATTEMPTS_PER_DAY {
        let wrong = app.post("/api/heat/bind", Some(&guesser), bind_body("张三", "11010519491231002X")).await;
        assert_eq!((wrong.status, wrong.body["message"].as_str()), (400, Some("户主姓名或身份证号与供热账号登记信息不一致")), "{}", wrong.body);
    }
    let right = app.post("/api/heat/bind", Some(&guesser), bind_body("张三", OWNER_ID)).await;
    assert_eq!((right.status, right.code()), (429, 1008), "{}", right.body);
    let wait: u64 = right.headers["retry-after"].to_str().unwrap().parse().unwrap();
    // A day, rounded up to the end of the window's slice (a thirtieth of it) holding the first.
    assert!((86_000..=86_400 + 2_880).contains(&wait), "{wait}");
    // Another user is not held back by this one's guesses.
    let (other, _) = user(&app, "13900000007").await;
    let refused = app.post("/api/heat/bind", Some(&other), bind_body("王五", "11010519491231002X")).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    // A day later the guesser may try again.
    app.server.clock.advance(std::time::Duration::from_secs(wait + 1));
    let (guesser, _) = super::login(&app, "13900000006").await;
    assert_eq!(app.post("/api/heat/bind", Some(&guesser), bind_body("张三", OWNER_ID)).await.status, 200);
}
