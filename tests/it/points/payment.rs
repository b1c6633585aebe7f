//! 001 §2.1–§2.4: `points_package_list`, `points_order_create`, `points_payment_check`,
//! `points_purchase_history_list` — one pending order per package, orders running out, failed
//! payments, the notify that never came (the order query finds the payment), another user's
//! order.

use std::time::Duration;

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::app::TestApp;

#[tokio::test]
async fn points_order_create_answers_the_pending_order_again() {
    let app = TestApp::points().await;
    let token = login(&app, "order-again").await;
    let first = order(&app, &token, "pkg_basic_1000").await;
    // The same package while it is pending: the same order, freshly signed.
    assert_eq!(order(&app, &token, "pkg_basic_1000").await, first);
    let other = order(&app, &token, "pkg_pro_12000").await;
    assert_ne!(other, first);
    let history = purchases(&app, &token).await;
    assert_eq!(history["total"], 2);
    // Unknown packages, another user's pending order of the same package.
    for package in ["pkg_nope", "PKG_BASIC_1000"] {
        let missing = app.post(CREATE_ORDER, Some(&token), json!({"packageId": package})).await;
        assert_eq!((missing.status, missing.code(), missing.body["message"].as_str()), (404, 404, Some("套餐不存在或已下架")), "{package}");
    }
    let stranger = login(&app, "order-again-2").await;
    assert_ne!(order(&app, &stranger, "pkg_basic_1000").await, first);
    // Paid, the package is ordered anew.
    app.sandbox_pay(&first, "success").await;
    assert_ne!(order(&app, &token, "pkg_basic_1000").await, first);
    assert_eq!(balance(&app, &token).await, 1000);
}

#[tokio::test]
async fn points_order_create_for_a_user_gone_behind_a_live_session_is_401() {
    use sea_orm::ConnectionTrait as _;
    let app = TestApp::points().await;
    let token = login(&app, "order-gone").await;
    let id = user_info(&app, &token).await["userInfo"]["userId"].as_str().unwrap().to_owned();
    // Removed by an operator, straight in the database; the session lives on.
    let raw = sea_orm::Database::connect(&app.server.config.database_url).await.unwrap();
    assert_eq!(raw.execute_unprepared(&format!("DELETE FROM points_user WHERE id = '{id}'")).await.unwrap().rows_affected(), 1);
    let created = app.post(CREATE_ORDER, Some(&token), json!({"packageId": "pkg_basic_1000"})).await;
    assert_eq!((created.status, created.code()), (401, 401), "{}", created.body);
    let placed = raw.query_one_raw(sea_orm::Statement::from_string(raw.get_database_backend(), format!("SELECT COUNT(*) FROM pay_order WHERE user_id = '{id}'"))).await.unwrap().unwrap();
    assert_eq!(placed.try_get_by_index::<i64>(0).unwrap(), 0, "nothing was placed");
}

#[tokio::test]
async fn points_order_create_at_once_for_one_package() {
    let app = TestApp::points().await;
    let token = login(&app, "order-double-tap").await;
    let replies = join_all((0..4).map(|_| app.post(CREATE_ORDER, Some(&token), json!({"packageId": "pkg_basic_1000"}))).collect()).await;
    assert_eq!(count(&replies, 200), 4, "{:?}", replies.iter().map(|r| &r.body).collect::<Vec<_>>());
    let mut ids: Vec<&str> = replies.iter().map(|r| r.data()["orderId"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 1, "a double tap answers one order: {ids:?}");
    assert_eq!(purchases(&app, &token).await["total"], 1);
}

#[tokio::test]
async fn points_order_create_an_order_past_two_hours_reads_failed() {
    let app = TestApp::points().await;
    let token = login(&app, "order-expired").await;
    let first = order(&app, &token, "pkg_basic_1000").await;
    app.server.clock.advance(Duration::from_secs(2 * 3600 + 1));
    let token = login(&app, "order-expired").await;
    assert_eq!(purchases(&app, &token).await["list"][0]["status"], "failed");
    // The payment platform will not take money for it any more; a new order is made.
    let late = app.sandbox_pay(&first, "success").await;
    assert_eq!(late.status, 409, "{}", late.body);
    let second = order(&app, &token, "pkg_basic_1000").await;
    assert_ne!(second, first);
    let history = purchases(&app, &token).await;
    let statuses: Vec<(&str, &str)> = history["list"].as_array().unwrap().iter().map(|r| (r["orderId"].as_str().unwrap(), r["status"].as_str().unwrap())).collect();
    assert_eq!(statuses, [(second.as_str(), "pending"), (first.as_str(), "failed")]);
    assert_eq!(check_payment(&app, &token, &first).await["isPaid"], false);
    assert_eq!(balance(&app, &token).await, 0);
}

#[tokio::test]
async fn points_payment_check_after_a_failed_payment() {
    let app = TestApp::points().await;
    let token = login(&app, "pay-fail").await;
    let order_id = order(&app, &token, "pkg_standard_5000").await;
    let failed = app.sandbox_pay(&order_id, "fail").await;
    assert_eq!((failed.status, &failed.body["notify"]["status"]), (200, &json!(200)), "{}", failed.body);
    assert_eq!(check_payment(&app, &token, &order_id).await, json!({"isPaid": false, "points": null, "expiryDate": null}));
    assert_eq!(purchases(&app, &token).await["list"][0]["status"], "failed");
    assert_eq!(balance(&app, &token).await, 0);
    // The user tries again: a new order, paid this time.
    let again = buy(&app, &token, "pkg_standard_5000").await;
    assert_ne!(again, order_id);
    assert_eq!(check_payment(&app, &token, &again).await["points"], 5000);
}

#[tokio::test]
async fn points_payment_check_of_another_users_order_is_404() {
    let app = TestApp::points().await;
    let owner = login(&app, "owner").await;
    let order_id = buy(&app, &owner, "pkg_basic_1000").await;
    let stranger = login(&app, "stranger").await;
    for (token, id) in [(&stranger, order_id.as_str()), (&owner, "PT20240618102531000"), (&owner, "unknown")] {
        let reply = app.get(&format!("/api/v1/points/check-payment?orderId={id}"), Some(token)).await;
        assert_eq!((reply.status, reply.code(), reply.body["message"].as_str()), (404, 404, Some("订单不存在")), "{id}");
    }
    let missing = app.get("/api/v1/points/check-payment", Some(&owner)).await;
    assert_eq!((missing.status, missing.code()), (422, 422), "{}", missing.body);
    // U+0000 in a query parameter is the parameter's fault (PostgreSQL's text cannot hold it).
    let nul = app.get(&format!("/api/v1/points/check-payment?orderId={order_id}%00"), Some(&owner)).await;
    assert_eq!((nul.status, nul.code()), (422, 422), "{}", nul.body);
    assert!(nul.body["message"].as_str().unwrap().contains("orderId"), "{}", nul.body);
    // The stranger's history holds nothing of it; the owner's order is paid.
    assert_eq!(purchases(&app, &stranger).await["total"], 0);
    assert_eq!(check_payment(&app, &owner, &order_id).await["points"], 1000);
}

#[tokio::test]
async fn points_payment_check_finds_a_payment_whose_notify_is_late() {
    // The sandbox platform's notifies go to a stand-in that acknowledges them and tells us
    // nothing: the platform holds the order as paid, our server never heard of it.
    let lost = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(NOTIFY))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"code": "SUCCESS", "message": "成功"})))
        .expect(1)
        .mount(&lost)
        .await;
    let base = lost.uri();
    let app = TestApp::spawn("points", |c| c.apis.get_mut("points").unwrap().wechat_pay.notify_base_url = Some(base)).await;
    let token = login(&app, "late-notify").await;
    let order_id = order(&app, &token, "pkg_basic_1000").await;
    let paid = app.sandbox_pay(&order_id, "success").await;
    assert_eq!((paid.status, &paid.body["notify"]["status"]), (200, &json!(200)), "{}", paid.body);
    // Within 5 s of the order the notify is waited for; after, WeChat Pay is asked.
    assert_eq!(check_payment(&app, &token, &order_id).await["isPaid"], false);
    app.server.clock.advance(Duration::from_secs(6));
    assert_eq!(check_payment(&app, &token, &order_id).await, json!({"isPaid": true, "points": 1000, "expiryDate": year_end(&app)}));
    // Credited once, however often it is asked, and when the notify finally comes.
    assert_eq!(check_payment(&app, &token, &order_id).await["points"], 1000);
    let (headers, body) = sandbox_notify(&app, &order_id, true).await;
    assert_eq!(post_notify(&app, &headers, body).await.0, 200);
    assert_eq!(balance(&app, &token).await, 1000);
    assert_eq!(purchases(&app, &token).await["list"][0]["status"], "paid");
}

#[tokio::test]
async fn points_purchase_history_list_pages_newest_first() {
    let app = TestApp::points().await;
    let token = login(&app, "history-pages").await;
    let mut orders = Vec::new();
    for package in ["pkg_basic_1000", "pkg_standard_5000", "pkg_pro_12000", "pkg_enterprise_50000"] {
        orders.push(order(&app, &token, package).await);
        app.server.clock.advance(Duration::from_secs(1));
    }
    let page = app.get(&format!("{PURCHASES}?page=2&size=3"), Some(&token)).await;
    assert_eq!(page.status, 200);
    assert_eq!((page.data()["total"].as_i64(), page.data()["list"].as_array().unwrap().len()), (Some(4), 1));
    assert_eq!(page.data()["list"][0]["orderId"], orders[0].as_str());
    let first = app.get(PURCHASES, Some(&token)).await;
    let ids: Vec<&str> = first.data()["list"].as_array().unwrap().iter().map(|r| r["orderId"].as_str().unwrap()).collect();
    assert_eq!(ids, orders.iter().rev().map(String::as_str).collect::<Vec<_>>(), "newest first, 10 by default");
    assert_eq!(first.data()["list"][0]["price"], 34650);
    for query in ["page=0", "size=101", "size=0", "page=x"] {
        let refused = app.get(&format!("{PURCHASES}?{query}"), Some(&token)).await;
        assert_eq!((refused.status, refused.code()), (422, 422), "{query}: {}", refused.body);
    }
}
