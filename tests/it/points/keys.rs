//! 001 §3: `api_key_list`, `api_key_create`, `api_key_delete`, `api_key_status_update` — the
//! secret shown once, expiry in calendar months, a bound on keys per user, and nobody touching
//! another user's keys.

use chrono::{DateTime, Months};
use serde_json::{Value, json};

use super::*;
use crate::app::TestApp;

#[tokio::test]
async fn api_key_create_expires_after_the_months_asked() {
    let app = TestApp::points().await;
    let token = login(&app, "key-months").await;
    for (months, expected) in [(Some(1), 1), (Some(3), 3), (Some(6), 6), (Some(12), 12), (None, 6)] {
        let mut body = json!({"name": format!("k{expected}")});
        if let Some(months) = months {
            body["expiryMonths"] = json!(months);
        }
        let created = app.post(KEY_CREATE, Some(&token), body).await;
        assert_eq!(created.status, 200, "{}", created.body);
        let at = |name: &str| DateTime::parse_from_rfc3339(created.data()[name].as_str().unwrap()).unwrap();
        assert_eq!(at("expiresAt"), at("createdAt").checked_add_months(Months::new(expected)).unwrap(), "{months:?}");
    }
    for months in [2, 0, 24] {
        let refused = app.post(KEY_CREATE, Some(&token), json!({"name": "bad", "expiryMonths": months})).await;
        assert_eq!((refused.status, refused.code()), (422, 422), "{months}: {}", refused.body);
    }
    for name in ["", "   "] {
        let refused = app.post(KEY_CREATE, Some(&token), json!({"name": name})).await;
        assert_eq!((refused.status, refused.code()), (422, 422), "{name:?}: {}", refused.body);
    }
    // Names are trimmed; every secret is different and never listed.
    app.server.clock.advance(std::time::Duration::from_secs(1));
    let (_, a) = create_key(&app, &token, "  前后空格  ", None).await;
    let listed = keys(&app, &token).await;
    assert_eq!(listed.len(), 6);
    assert_eq!(listed[0]["name"], "前后空格");
    let (_, b) = create_key(&app, &token, "另一个", None).await;
    assert_ne!(a, b);
    let text = Value::Array(keys(&app, &token).await).to_string();
    assert!(!text.contains(&a) && !text.contains(&b) && !text.contains("sk_live_"), "{text}");
}

#[tokio::test]
async fn api_key_create_at_most_twenty_per_user() {
    let app = TestApp::points().await;
    let token = login(&app, "key-bound").await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(create_key(&app, &token, &format!("key {i}"), None).await.0);
    }
    let refused = app.post(KEY_CREATE, Some(&token), json!({"name": "one too many"})).await;
    assert_eq!((refused.status, refused.code()), (422, 422), "{}", refused.body);
    assert!(refused.body["message"].as_str().unwrap().contains("上限"), "{}", refused.body);
    // A deleted key no longer counts.
    assert_eq!(app.post(KEY_DELETE, Some(&token), json!({"id": ids[0]})).await.status, 200);
    create_key(&app, &token, "one more", None).await;
    assert_eq!(keys(&app, &token).await.len(), 20);
}

#[tokio::test]
async fn api_key_delete_and_status_update_of_another_users_key_are_404() {
    let app = TestApp::points().await;
    let owner = login(&app, "key-owner").await;
    buy(&app, &owner, "pkg_basic_1000").await;
    let (id, secret) = create_key(&app, &owner, "mine", Some(12)).await;
    let stranger = login(&app, "key-stranger").await;
    let attempts = [
        (KEY_DELETE, json!({"id": id})),
        (KEY_STATUS, json!({"id": id, "status": "inactive"})),
        (KEY_DELETE, json!({"id": "ak_3f9c2e71d04b"})),
        (KEY_STATUS, json!({"id": "ak_unknown", "status": "active"})),
    ];
    for (path, body) in attempts {
        let refused = app.post(path, Some(&stranger), body.clone()).await;
        assert_eq!((refused.status, refused.code(), refused.body["message"].as_str()), (404, 404, Some("API Key不存在")), "{path} {body}");
    }
    // The owner's key is untouched and works; the stranger sees none of it.
    assert_eq!(keys(&app, &owner).await[0]["status"], "active");
    assert_eq!(consume(&app, &secret, 1, "still-mine", "调用").await.status, 200);
    assert_eq!(keys(&app, &stranger).await, Vec::<Value>::new());
    // Setting the status a key has succeeds; a status the contract does not know is refused.
    assert_eq!(app.post(KEY_STATUS, Some(&owner), json!({"id": id, "status": "active"})).await.status, 200);
    let unknown = app.post(KEY_STATUS, Some(&owner), json!({"id": id, "status": "deleted"})).await;
    assert_eq!((unknown.status, unknown.code()), (422, 422));
    // Deleted once; then it is unknown to both operations.
    assert_eq!(app.post(KEY_DELETE, Some(&owner), json!({"id": id})).await.status, 200);
    for (path, body) in [(KEY_DELETE, json!({"id": id})), (KEY_STATUS, json!({"id": id, "status": "active"}))] {
        assert_eq!(app.post(path, Some(&owner), body).await.status, 404, "{path}");
    }
    assert_eq!(consume(&app, &secret, 1, "gone", "调用").await.status, 401);
    // The consumption record keeps the key's name.
    assert_eq!(consumption(&app, &owner).await["list"][0]["apiKeyName"], "mine");
}

#[tokio::test]
async fn api_key_create_at_once_never_passes_the_limit() {
    let app = TestApp::points().await;
    let token = login(&app, "keys-race").await;
    let body = json!({"name": "并发"});
    let replies = join_all((0..30).map(|_| app.post(KEY_CREATE, Some(&token), body.clone())).collect()).await;
    assert_eq!((count(&replies, 200), count(&replies, 422)), (20, 10));
    assert_eq!(keys(&app, &token).await.len(), 20);
}
