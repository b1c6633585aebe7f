//! The balance's yearly expiry (001 §1.3 `pointsExpiryDate`, §2.5 the `积分过期` record): points
//! credited in a (Beijing) year expire at 23:59:59Z on its 31 December, the next year's when
//! credited in December — on the first read or debit after it, or by the housekeeping — once,
//! with a consumption record of what expired.

use std::time::Duration;

use chrono::DateTime;
use serde_json::json;

use super::*;
use crate::app::TestApp;

/// Move the clock one second past the end of its year.
fn past_year_end(app: &TestApp) {
    let end = DateTime::parse_from_rfc3339(&year_end(app)).unwrap().to_utc();
    let by = (end - app.server.clock.now()).to_std().unwrap() + Duration::from_secs(1);
    app.server.clock.advance(by);
}

#[tokio::test]
async fn user_info_get_points_expire_at_the_end_of_their_year() {
    let app = TestApp::points().await;
    let token = login(&app, "expiry").await;
    buy(&app, &token, "pkg_basic_1000").await;
    let (_, secret) = create_key(&app, &token, "全年", Some(12)).await;
    assert_eq!(consume(&app, &secret, 300, "before-expiry", "调用").await.status, 200);
    let info = user_info(&app, &token).await;
    assert_eq!((info["points"].as_i64(), info["pointsExpiryDate"].as_str()), (Some(700), Some(year_end(&app).as_str())));
    let expiry = year_end(&app);
    let year = &expiry[..4];

    past_year_end(&app);
    // Four logins at once after the year's end: each sees 0 points; one record is written.
    let logins = join_all((0..4).map(|_| app.post(LOGIN, None, json!({"code": "expiry"}))).collect()).await;
    for login in &logins {
        assert_eq!((login.status, login.data()["points"].as_i64()), (200, Some(0)), "{}", login.body);
    }
    let token = logins[0].data()["token"].as_str().unwrap().to_owned();
    let info = user_info(&app, &token).await;
    assert_eq!((info["points"].as_i64(), &info["pointsExpiryDate"]), (Some(0), &json!(null)));
    let history = consumption(&app, &token).await;
    assert_eq!(history["total"], 2, "{history}");
    let record = &history["list"][0];
    assert_eq!(
        (record["title"].as_str(), record["points"].as_i64(), record["consumeTime"].as_str(), record["description"].as_str()),
        (Some("积分过期"), Some(700), Some(expiry.as_str()), Some(format!("{year}年度积分到期清零").as_str())),
        "{record}"
    );
    assert!(record.get("apiKeyId").is_none_or(|id| id.is_null()), "{record}");
    // A key works, the points are gone (the one made before is past its 12 months: the year's
    // end is next year's when the test runs in December).
    let (_, secret) = create_key(&app, &token, "新年", Some(12)).await;
    let short = consume(&app, &secret, 1, "after-expiry", "调用").await;
    assert_eq!((short.status, short.body["message"].as_str()), (403, Some("积分不足：当前余额0，本次需要1")), "{}", short.body);
    // Points bought in the new year expire at its end.
    let order_id = buy(&app, &token, "pkg_basic_1000").await;
    let next_end = year_end(&app);
    assert_ne!(next_end, expiry);
    assert_eq!(check_payment(&app, &token, &order_id).await, json!({"isPaid": true, "points": 1000, "expiryDate": next_end}));
    assert_eq!(consume(&app, &secret, 1, "new-year", "调用").await.data()["balance"], 999);
    assert_eq!(consumption(&app, &token).await["total"], 3);
}

#[tokio::test]
async fn points_payment_notify_after_the_year_end_expires_the_old_balance_before_crediting() {
    let app = TestApp::points().await;
    let token = login(&app, "expiry-notify").await;
    buy(&app, &token, "pkg_basic_1000").await;
    let expiry = year_end(&app);
    let order_id = order(&app, &token, "pkg_standard_5000").await;
    past_year_end(&app);
    // Notified after the year's end (paid a second after it), nothing read in between: the
    // notify finds the old year's 1000 points due, expires them (once, recorded), and credits
    // the 5000 to the new year.
    let (headers, body) = sandbox_notify(&app, &order_id, true).await;
    assert_eq!(post_notify(&app, &headers, body.clone()).await.0, 200);
    assert_eq!(post_notify(&app, &headers, body).await.0, 200, "a redelivery");
    let token = login(&app, "expiry-notify").await;
    let info = user_info(&app, &token).await;
    assert_ne!(year_end(&app), expiry);
    assert_eq!((info["points"].as_i64(), info["pointsExpiryDate"].as_str()), (Some(5000), Some(year_end(&app).as_str())));
    let history = consumption(&app, &token).await;
    assert_eq!(history["total"], 1, "{history}");
    let record = &history["list"][0];
    assert_eq!((record["title"].as_str(), record["points"].as_i64(), record["consumeTime"].as_str()), (Some("积分过期"), Some(1000), Some(expiry.as_str())), "{record}");
}

#[tokio::test]
async fn housekeeping_expires_balances_nobody_reads() {
    let app = TestApp::points().await;
    let keeper = login(&app, "expiry-sweep").await;
    buy(&app, &keeper, "pkg_standard_5000").await;
    // Another user spent everything: nothing of theirs expires, no record of 0 points.
    let spender = login(&app, "expiry-spent").await;
    buy(&app, &spender, "pkg_basic_1000").await;
    let (_, secret) = create_key(&app, &spender, "全部", Some(12)).await;
    assert_eq!(consume(&app, &secret, 1000, "all", "调用").await.data()["balance"], 0);
    let users = app.server.db.points_users();
    assert_eq!(users.expire_due(app.server.clock.now_ms(), 500).await.unwrap(), 0, "nothing is due before the year's end");

    past_year_end(&app);
    let now = app.server.clock.now_ms();
    // The demo user's 5028 points and this user's 5000 expire; a second round finds nothing.
    assert_eq!(users.expire_due(now, 500).await.unwrap(), 2);
    assert_eq!(users.expire_due(now, 500).await.unwrap(), 0);
    for (code, points, records) in [("expiry-sweep", 5000, 1), ("demo", 5028, 5)] {
        let token = login(&app, code).await;
        assert_eq!(balance(&app, &token).await, 0, "{code}");
        let history = consumption(&app, &token).await;
        assert_eq!(history["total"], records, "{code}: {history}");
        assert_eq!((history["list"][0]["title"].as_str(), history["list"][0]["points"].as_i64()), (Some("积分过期"), Some(points)), "{code}");
    }
    let token = login(&app, "expiry-spent").await;
    let history = consumption(&app, &token).await;
    assert_eq!((history["total"].as_i64(), history["list"][0]["title"].as_str()), (Some(1), Some("调用")));
    assert_eq!(user_info(&app, &token).await["pointsExpiryDate"], json!(null));
}

#[tokio::test]
async fn points_consume_first_after_the_year_end_expires_the_balance_and_says_so() {
    let app = TestApp::points().await;
    let token = login(&app, "expiry-debit").await;
    buy(&app, &token, "pkg_basic_1000").await;
    let expiry = year_end(&app);
    // Half a year before the end (keys last at most 12 months), a key; then past the end with
    // no read of the account in between: the debit itself finds the year over.
    let end = DateTime::parse_from_rfc3339(&expiry).unwrap().to_utc();
    let half_year_before = end - chrono::Duration::days(180);
    if half_year_before > app.server.clock.now() {
        app.server.clock.advance((half_year_before - app.server.clock.now()).to_std().unwrap());
    }
    let token = login(&app, "expiry-debit").await;
    let (_, secret) = create_key(&app, &token, "跨年", Some(12)).await;
    past_year_end(&app);
    for attempt in ["first", "again"] {
        let short = consume(&app, &secret, 1, attempt, "调用").await;
        assert_eq!((short.status, short.body["message"].as_str()), (403, Some("积分不足：当前余额0，本次需要1")), "{}", short.body);
    }
    // The expiry stands (it is not undone with the refused debit), recorded once.
    let token = login(&app, "expiry-debit").await;
    let history = consumption(&app, &token).await;
    assert_eq!(history["total"], 1, "{history}");
    assert_eq!((history["list"][0]["points"].as_i64(), history["list"][0]["consumeTime"].as_str()), (Some(1000), Some(expiry.as_str())));
}
