//! `points_consume` (our metering operation): a conditional debit — concurrent debits never take
//! more than the balance — once per idempotency key, refused for keys that cannot pay.

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::app::TestApp;

#[tokio::test]
async fn points_consume_concurrent_debits_never_exceed_the_balance() {
    let app = TestApp::points().await;
    let token = login(&app, "consume-race").await;
    buy(&app, &token, "pkg_basic_1000").await;
    let (_, secret) = create_key(&app, &token, "并发", Some(12)).await;
    // 50 debits of 100 at once against 1000 points: exactly 10 go through.
    let idempotency_keys: Vec<String> = (0..50).map(|i| format!("race-{i:02}")).collect();
    let replies = join_all(idempotency_keys.iter().map(|key| consume(&app, &secret, 100, key, "批量调用")).collect()).await;
    assert_eq!((count(&replies, 200), count(&replies, 403)), (10, 40), "{:?}", replies.iter().map(|r| (r.status, &r.body)).collect::<Vec<_>>());
    for refused in replies.iter().filter(|r| r.status == 403) {
        assert_eq!(refused.code(), 403);
        assert!(refused.body["message"].as_str().unwrap().starts_with("积分不足"), "{}", refused.body);
    }
    let mut balances: Vec<i64> = replies.iter().filter(|r| r.status == 200).map(|r| r.data()["balance"].as_i64().unwrap()).collect();
    balances.sort_unstable();
    assert_eq!(balances, (0..10).map(|i| i * 100).collect::<Vec<_>>(), "each debit saw its own balance");
    assert_eq!(balance(&app, &token).await, 0);
    let history = consumption(&app, &token).await;
    assert_eq!(history["total"], 10);
    assert_eq!(history["list"].as_array().unwrap().iter().map(|r| r["points"].as_i64().unwrap()).sum::<i64>(), 1000);
    let page = app.get(&format!("{CONSUMPTION}?page=3&size=4"), Some(&token)).await;
    assert_eq!((page.data()["total"].as_i64(), page.data()["list"].as_array().unwrap().len()), (Some(10), 2));
    // Nothing left: the next debit is refused too.
    let short = consume(&app, &secret, 1, "race-50", "批量调用").await;
    assert_eq!((short.status, short.body["message"].as_str()), (403, Some("积分不足：当前余额0，本次需要1")));
}

#[tokio::test]
async fn points_consume_once_per_idempotency_key() {
    let app = TestApp::points().await;
    let token = login(&app, "consume-once").await;
    buy(&app, &token, "pkg_basic_1000").await;
    let (key_id, secret) = create_key(&app, &token, "幂等", Some(12)).await;
    let first = consume(&app, &secret, 132, "gen-20240619-batch-0231", "文本生成接口调用").await;
    assert_eq!((first.status, first.data()["balance"].as_i64()), (200, Some(868)), "{}", first.body);
    // The same request again, later: the first record, the balance now, nothing debited.
    app.server.clock.advance(Duration::from_secs(5));
    let again = consume(&app, &secret, 132, "gen-20240619-batch-0231", "文本生成接口调用").await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.data(), first.data());
    // The same key with another cost or title is another debit: refused.
    for (cost, title) in [(133, "文本生成接口调用"), (132, "图像识别接口调用")] {
        let conflict = consume(&app, &secret, cost, "gen-20240619-batch-0231", title).await;
        assert_eq!((conflict.status, conflict.code(), conflict.body["message"].as_str()), (422, 422, Some("参数错误：idempotencyKey已用于另一笔扣减")), "{cost} {title}");
    }
    // Five copies of a new request at once: one debit, one record, the same answer.
    let replies = join_all((0..5).map(|_| consume(&app, &secret, 10, "gen-20240619-batch-0232", "文本生成接口调用")).collect()).await;
    assert_eq!(count(&replies, 200), 5, "{:?}", replies.iter().map(|r| &r.body).collect::<Vec<_>>());
    let ids: Vec<&Value> = replies.iter().map(|r| &r.data()["id"]).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(balance(&app, &token).await, 858);
    let history = consumption(&app, &token).await;
    assert_eq!(history["total"], 2);
    assert_eq!(history["list"][1]["id"], first.data()["id"]);
    assert_eq!(history["list"][1]["apiKeyId"], key_id.as_str());
    // Idempotency keys are per user: another user's key may use the same one.
    let other = login(&app, "consume-once-2").await;
    buy(&app, &other, "pkg_basic_1000").await;
    let (_, other_secret) = create_key(&app, &other, "幂等", Some(12)).await;
    let theirs = consume(&app, &other_secret, 132, "gen-20240619-batch-0231", "文本生成接口调用").await;
    assert_eq!((theirs.status, theirs.data()["balance"].as_i64()), (200, Some(868)));
    assert_ne!(theirs.data()["id"], first.data()["id"]);
}

#[tokio::test]
async fn points_consume_refuses_keys_that_cannot_pay() {
    let app = TestApp::points().await;
    let token = login(&app, "consume-refused").await;
    buy(&app, &token, "pkg_basic_1000").await;
    let (inactive_id, inactive) = create_key(&app, &token, "停用", Some(12)).await;
    assert_eq!(app.post(KEY_STATUS, Some(&token), json!({"id": inactive_id, "status": "inactive"})).await.status, 200);
    let (deleted_id, deleted) = create_key(&app, &token, "删除", Some(12)).await;
    assert_eq!(app.post(KEY_DELETE, Some(&token), json!({"id": deleted_id})).await.status, 200);
    let (_, active) = create_key(&app, &token, "正常", Some(12)).await;
    let jwt = token.clone();
    // 403: the key exists but may not pay (inactive, expired — the demo's 测试环境 —, short).
    let forbidden = [
        ("inactive", inactive.as_str(), 1, "API Key已停用".to_owned()),
        ("expired", EXPIRED_KEY, 1, "API Key已过期".to_owned()),
        ("short", active.as_str(), 1001, "积分不足：当前余额1000，本次需要1001".to_owned()),
    ];
    for (what, secret, cost, message) in forbidden {
        let refused = consume(&app, secret, cost, what, "调用").await;
        assert_eq!((refused.status, refused.code(), refused.body["message"].as_str()), (403, 403, Some(message.as_str())), "{what}");
    }
    // 401: no such key (deleted, garbage, a login token, a key one character off), or none.
    let last = if active.ends_with('x') { 'y' } else { 'x' };
    let off_by_one = format!("{}{last}", &active[..active.len() - 1]);
    for (what, secret) in [("deleted", deleted.as_str()), ("garbage", "garbage"), ("a JWT", jwt.as_str()), ("off by one", off_by_one.as_str())] {
        let refused = consume(&app, secret, 1, what, "调用").await;
        assert_eq!((refused.status, refused.code(), refused.body["message"].as_str()), (401, 401, Some("API Key无效或已删除")), "{what}");
    }
    let anonymous = app.post(CONSUME, None, json!({"cost": 1, "idempotencyKey": "none", "title": "调用"})).await;
    assert_eq!((anonymous.status, anonymous.code()), (401, 401));
    // Requests the contract refuses.
    for body in [json!({"cost": 0, "idempotencyKey": "k", "title": "t"}), json!({"cost": 1, "idempotencyKey": "空 格", "title": "t"}), json!({"cost": 1, "idempotencyKey": "k", "title": "  "}), json!({"cost": 1, "title": "t"})] {
        let refused = app.post(CONSUME, Some(&active), body.clone()).await;
        assert_eq!((refused.status, refused.code()), (422, 422), "{body}: {}", refused.body);
    }
    // None of it took a point; a user without points is short from the start.
    assert_eq!(balance(&app, &token).await, 1000);
    assert_eq!(consumption(&app, &token).await["total"], 0);
    let poor = login(&app, "consume-poor").await;
    let (_, poor_key) = create_key(&app, &poor, "无积分", None).await;
    let short = consume(&app, &poor_key, 1, "poor", "调用").await;
    assert_eq!((short.status, short.body["message"].as_str()), (403, Some("积分不足：当前余额0，本次需要1")));
}

#[tokio::test]
async fn points_consume_with_a_key_past_its_expiry_is_403() {
    let app = TestApp::points().await;
    let token = login(&app, "consume-key-expiry").await;
    buy(&app, &token, "pkg_basic_1000").await;
    let created = app.post(KEY_CREATE, Some(&token), json!({"name": "一个月", "expiryMonths": 1})).await;
    let secret = created.data()["key"].as_str().unwrap().to_owned();
    assert_eq!(consume(&app, &secret, 1, "before", "调用").await.status, 200);
    // A month and a day on, the key has expired (the points may have too: the key is refused
    // first).
    app.server.clock.advance(Duration::from_secs(32 * 86_400));
    let refused = consume(&app, &secret, 1, "after", "调用").await;
    assert_eq!((refused.status, refused.body["message"].as_str()), (403, Some("API Key已过期")), "{}", refused.body);
}

#[tokio::test]
async fn points_consume_records_the_keys_use_once_a_minute() {
    let app = TestApp::points().await;
    let token = login(&app, "consume-last-used").await;
    buy(&app, &token, "pkg_basic_1000").await;
    let (_, secret) = create_key(&app, &token, "计量", Some(12)).await;
    let last_used = || async { keys(&app, &token).await[0]["lastUsedAt"].clone() };
    assert_eq!(last_used().await, Value::Null);
    assert_eq!(consume(&app, &secret, 1, "use-1", "调用").await.status, 200);
    let first = last_used().await;
    assert!(first.is_string(), "{first}");
    // Within the minute: not written again.
    app.server.clock.advance(Duration::from_secs(30));
    assert_eq!(consume(&app, &secret, 1, "use-2", "调用").await.status, 200);
    assert_eq!(last_used().await, first);
    // After it: written.
    app.server.clock.advance(Duration::from_secs(31));
    let third = consume(&app, &secret, 1, "use-3", "调用").await;
    assert_eq!(last_used().await, third.data()["consumeTime"]);
    assert_ne!(last_used().await, first);
}
