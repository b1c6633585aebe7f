//! 000 §2: `auth_register`, `auth_login`, `auth_refresh`, `auth_logout`, and what every secured
//! operation does with its token (signature, audience, algorithm, expiry, revocation, storage
//! outages).

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::{code, login, user};
use crate::app::TestApp;

#[tokio::test]
async fn auth_refresh_rotates_and_reuse_revokes_the_session() {
    let app = TestApp::heating().await;
    let (token, refresh) = user(&app, "13900000002").await;
    let first = app.post("/api/auth/refresh", None, json!({"refresh_token": refresh})).await;
    assert_eq!(first.status, 200);
    // The old token again, later than a retry would come: refused, and the session it belonged
    // to is over (whoever holds a copy loses it too).
    app.server.clock.advance(Duration::from_secs(11));
    let reuse = app.post("/api/auth/refresh", None, json!({"refresh_token": refresh})).await;
    assert_eq!((reuse.status, reuse.code()), (401, 401));
    let rotated = app.post("/api/auth/refresh", None, json!({"refresh_token": first.data()["refresh_token"]})).await;
    assert_eq!(rotated.status, 401);
    assert_eq!(app.get("/api/user/profile", Some(&token)).await.status, 401);
    // Access tokens expire after 2 hours.
    let (token, _) = {
        app.server.clock.advance(Duration::from_secs(61));
        let login_code = code(&app, "13900000002", "login").await;
        let login = app.post("/api/auth/login", None, json!({"phone": "13900000002", "code": login_code})).await;
        assert_eq!(login.data()["user_info"]["is_first_login"], false);
        (login.data()["token"].as_str().unwrap().to_owned(), ())
    };
    assert_eq!(app.get("/api/user/profile", Some(&token)).await.status, 200);
    app.server.clock.advance(Duration::from_secs(7201));
    assert_eq!(app.get("/api/user/profile", Some(&token)).await.status, 401);
    assert_eq!(app.get("/api/user/profile", Some("not-a-token")).await.status, 401);
}

#[tokio::test]
async fn auth_refresh_tokens_die_with_their_session_and_after_thirty_days() {
    let app = TestApp::heating().await;
    let phone = "13900000030";
    let (token, refresh) = user(&app, phone).await;
    // Logout ends the refresh token too.
    assert_eq!(app.post("/api/auth/logout", Some(&token), json!({})).await.status, 200);
    let after_logout = app.post("/api/auth/refresh", None, json!({"refresh_token": refresh})).await;
    assert_eq!((after_logout.status, after_logout.code()), (401, 401));
    // A password change signs the other devices out: their refresh tokens are dead as well.
    let (this_device, _) = login(&app, phone).await;
    let (_, other_refresh) = login(&app, phone).await;
    app.server.clock.advance(Duration::from_secs(61));
    let reset = code(&app, phone, "reset_password").await;
    let changed = app
        .put("/api/user/password", Some(&this_device), json!({"old_password": "123456789", "new_password": "abcdef123", "phone": phone, "code": reset}))
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    let other = app.post("/api/auth/refresh", None, json!({"refresh_token": other_refresh})).await;
    assert_eq!((other.status, other.code()), (401, 401));
    // A refresh token lives 30 days: a day before, it rotates; after, it is refused.
    let (_, refresh) = login(&app, phone).await;
    app.server.clock.advance(Duration::from_secs(29 * 86_400));
    let rotated = app.post("/api/auth/refresh", None, json!({"refresh_token": refresh})).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    app.server.clock.advance(Duration::from_secs(30 * 86_400 + 1));
    let expired = app.post("/api/auth/refresh", None, json!({"refresh_token": rotated.data()["refresh_token"]})).await;
    assert_eq!((expired.status, expired.code()), (401, 401));
}

/// The master token secret the test server generated, and heating's key derived from it.
async fn token_keys(app: &TestApp) -> (Vec<u8>, Vec<u8>) {
    let master = hex::decode(app.server.db.secret("jwt", String::new).await.unwrap()).unwrap();
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &master);
    let mut context = aws_lc_rs::hmac::Context::with_key(&key);
    context.update(b"mpapi access token key\0heating");
    let heating = context.sign().as_ref().to_vec();
    (master, heating)
}

#[tokio::test]
async fn tokens_of_another_api_algorithm_or_key_are_refused() {
    let app = TestApp::heating().await;
    let (token, _) = user(&app, "13900000031").await;
    let claims: Value = {
        use base64::Engine as _;
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    };
    assert_eq!(claims["aud"], "heating");
    let (master, heating_key) = token_keys(&app).await;
    let sign = |alg: Algorithm, claims: &Value, key: &[u8]| jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(key)).unwrap();
    // Our own signature over our own claims works (so the refusals below are about one thing each).
    assert_eq!(app.get("/api/user/profile", Some(&sign(Algorithm::HS256, &claims, &heating_key))).await.status, 200);
    let mut points_claims = claims.clone();
    points_claims["aud"] = json!("points");
    let refused = [
        ("another API's audience", sign(Algorithm::HS256, &points_claims, &heating_key)),
        ("another API's key", {
            let points = mpapi::identity::tokens::Tokens::new(&master, "points", Duration::from_secs(7200)).unwrap();
            points.issue(claims["sub"].as_str().unwrap(), claims["sid"].as_str().unwrap(), 0, chrono::Utc::now().timestamp())
        }),
        ("the master key itself", sign(Algorithm::HS256, &claims, &master)),
        ("HS512", sign(Algorithm::HS512, &claims, &heating_key)),
        ("alg none", {
            use base64::Engine as _;
            let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
            format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(&claims))
        }),
        ("no session", {
            let mut stranger = claims.clone();
            stranger["sid"] = json!("0000");
            sign(Algorithm::HS256, &stranger, &heating_key)
        }),
    ];
    for (what, token) in refused {
        let reply = app.get("/api/user/profile", Some(&token)).await;
        assert_eq!((reply.status, reply.code()), (401, 401), "{what}: {}", reply.body);
    }
}

#[tokio::test]
async fn a_database_outage_is_503_never_a_sign_out() {
    let app = TestApp::heating().await;
    let (token, _) = user(&app, "13900000032").await;
    app.server.db.close().await;
    // Authentication could not be checked: 503 in the API's envelope, not 401 (a 401 makes the
    // mini-program drop its token). Read raw: 503 is the runtime's answer, not the operation's.
    let profile = app.client.get(app.url("/api/user/profile")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(profile.status(), 503);
    let body: Value = profile.json().await.unwrap();
    assert_eq!(body["code"], 500, "{body}");
    assert!(body["timestamp"].is_i64(), "{body}");
    let health = app.get("/health", None).await;
    assert_eq!((health.status, health.data()["mongodb"].as_str(), health.data()["status"].as_str()), (503, Some("disconnected"), Some("ERROR")));
    // A public operation whose storage fails answers its documented 500.
    let system = app.get("/api/config/system", None).await;
    assert_eq!((system.status, system.code()), (500, 500));
}

#[tokio::test]
async fn auth_refresh_twice_at_once_keeps_the_session() {
    let app = TestApp::heating().await;
    let (_, refresh) = user(&app, "13900000033").await;
    // A client firing two refreshes (or retrying one whose answer it lost): one wins, the other
    // is refused — and the user stays signed in.
    let body = json!({"refresh_token": refresh});
    let (a, b) = tokio::join!(app.post("/api/auth/refresh", None, body.clone()), app.post("/api/auth/refresh", None, body.clone()));
    let mut statuses = [a.status, b.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 401], "{} {}", a.body, b.body);
    let winner = if a.status == 200 { a } else { b };
    let token = winner.data()["token"].as_str().unwrap().to_owned();
    assert_eq!(app.get("/api/user/profile", Some(&token)).await.status, 200);
    let retry = app.post("/api/auth/refresh", None, body.clone()).await;
    assert_eq!(retry.status, 401);
    assert_eq!(app.get("/api/user/profile", Some(&token)).await.status, 200, "a quick retry is no theft");
    // Presented again later, the rotated token is taken as stolen: the session ends.
    app.server.clock.advance(Duration::from_secs(11));
    assert_eq!(app.post("/api/auth/refresh", None, body).await.status, 401);
    assert_eq!(app.get("/api/user/profile", Some(&token)).await.status, 401);
}
