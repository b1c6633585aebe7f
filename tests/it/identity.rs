//! The shared identity block on a real database, for the parts heating does not use and the APIs
//! after it will: renewing an expired access token once within its grace window (points,
//! community), WeChat login per appid with the session key kept server side and encryptedData
//! opened with it, codes filed under a returned key, and passwords on the bounded pool.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use mpapi::clock::Clock;
use mpapi::config::{Config, RefreshStyle, TokenConfig};
use mpapi::identity::wechat::seal;
use mpapi::identity::codes::ClientCap;
use mpapi::identity::{CodeError, CodePolicy, Codes, SessionError, Sessions, Subject, Wechat, WechatError};
use mpapi::pii::Vault;
use mpapi::providers::sms::SandboxSms;
use mpapi::providers::wechat_login::SandboxLogin;
use mpapi::ratelimit::Budgets;
use mpapi::storage::rate_limit::RateLimitStore;
use mpapi::storage::Db;
use secrecy::SecretString;
use serde_json::json;

use crate::app::fresh_database;

async fn db(dir: &tempfile::TempDir) -> Db {
    let config = Config { database_url: fresh_database(dir).await, ..Config::default() };
    Db::connect(&config.database_url).await.expect("the database opens")
}

/// What a `Codes` stands on: a fresh database, its sandbox SMS outbox and its budgets.
async fn code_stores(dir: &tempfile::TempDir) -> (Db, Arc<SandboxSms>, Budgets) {
    let db = db(dir).await;
    let sms = Arc::new(SandboxSms::new(db.clone()));
    let budgets = Budgets::Database(RateLimitStore::new(db.clone()));
    (db, sms, budgets)
}

fn vault() -> Arc<Vault> {
    Arc::new(Vault::new(&[7; 32], &[9; 32]).unwrap())
}

#[tokio::test]
async fn an_expired_access_token_renews_once_within_its_grace_window() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::default();
    let policy = TokenConfig { access_ttl_seconds: 7200, refresh: RefreshStyle::ExpiredAccess, refresh_seconds: 7 * 86_400 };
    let sessions = Sessions::new("points", &[5; 32], policy, db(&dir).await, clock.clone()).unwrap();
    let issued = sessions.start("user-1").await.unwrap();
    assert_eq!((issued.expires_in, issued.refresh_token.as_deref()), (7200, None));
    assert_eq!(sessions.authenticate(&issued.access_token).await.unwrap().user_id, "user-1");
    // Expired: refused as a credential, accepted for renewal — by exactly one of two racers.
    clock.advance(Duration::from_secs(7201));
    assert!(matches!(sessions.authenticate(&issued.access_token).await, Err(SessionError::Expired)));
    let (a, b) = tokio::join!(sessions.refresh_expired(&issued.access_token), sessions.refresh_expired(&issued.access_token));
    let winners: Vec<_> = [a, b].into_iter().filter_map(Result::ok).collect();
    assert_eq!(winners.len(), 1, "exactly one renewal wins");
    let renewed = &winners[0];
    assert_eq!(sessions.authenticate(&renewed.access_token).await.unwrap().session_id, issued.principal.session_id);
    assert!(matches!(sessions.refresh_expired(&issued.access_token).await, Err(SessionError::AlreadyRenewed)), "once");
    // The renewed token, expired for longer than the grace window, is refused for good.
    clock.advance(Duration::from_secs(7200 + 7 * 86_400 + 1));
    assert!(matches!(sessions.refresh_expired(&renewed.access_token).await, Err(SessionError::RefreshExpired)));
    // Renewed before it expired, a token is spent: its successor works, it does not.
    let early = sessions.start("user-3").await.unwrap();
    let successor = sessions.refresh_expired(&early.access_token).await.unwrap();
    assert!(matches!(sessions.authenticate(&early.access_token).await, Err(SessionError::Invalid)));
    assert_eq!(sessions.authenticate(&successor.access_token).await.unwrap().user_id, "user-3");
    // Heating's rotating refresh leaves the access token it was issued beside alone.
    let rotating = TokenConfig { refresh: RefreshStyle::Rotating, ..policy };
    let heating = Sessions::new("heating", &[5; 32], rotating, db(&dir).await, clock.clone()).unwrap();
    let first = heating.start("user-4").await.unwrap();
    heating.refresh_rotating(first.refresh_token.as_deref().unwrap()).await.unwrap();
    assert_eq!(heating.authenticate(&first.access_token).await.unwrap().user_id, "user-4");
    // Revoked sessions renew nothing; another style's call is refused.
    let other = sessions.start("user-2").await.unwrap();
    sessions.revoke(&other.principal).await.unwrap();
    assert!(matches!(sessions.refresh_expired(&other.access_token).await, Err(SessionError::Invalid)));
    assert!(matches!(sessions.refresh_rotating("anything").await, Err(SessionError::Invalid)));
}

#[tokio::test]
async fn a_session_begun_by_wechat_names_its_openid_through_every_renewal() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::default();
    let db = db(&dir).await;
    let expired = TokenConfig { access_ttl_seconds: 7200, refresh: RefreshStyle::ExpiredAccess, refresh_seconds: 7 * 86_400 };
    let sessions = Sessions::new("points", &[5; 32], expired, db.clone(), clock.clone()).unwrap();
    let issued = sessions.start_wechat("user-1", "o_login").await.unwrap();
    assert_eq!(issued.principal.openid.as_deref(), Some("o_login"));
    assert_eq!(sessions.authenticate(&issued.access_token).await.unwrap().openid.as_deref(), Some("o_login"));
    // Another login's session names none.
    let plain = sessions.start("user-2").await.unwrap();
    assert_eq!((plain.principal.openid.as_deref(), sessions.authenticate(&plain.access_token).await.unwrap().openid), (None, None));
    // Renewed with the expired token: the new token's caller is the same login.
    clock.advance(Duration::from_secs(7201));
    let renewed = sessions.refresh_expired(&issued.access_token).await.unwrap();
    assert_eq!(renewed.principal.openid.as_deref(), Some("o_login"));
    assert_eq!(sessions.authenticate(&renewed.access_token).await.unwrap().openid.as_deref(), Some("o_login"));
    // Rotating refresh tokens carry it as well.
    let rotating = TokenConfig { access_ttl_seconds: 7200, refresh: RefreshStyle::Rotating, refresh_seconds: 30 * 86_400 };
    let sessions = Sessions::new("heating", &[6; 32], rotating, db, clock.clone()).unwrap();
    let issued = sessions.start_wechat("user-3", "o_rotating").await.unwrap();
    let rotated = sessions.refresh_rotating(issued.refresh_token.as_deref().unwrap()).await.unwrap();
    assert_eq!(rotated.principal.openid.as_deref(), Some("o_rotating"));
    assert_eq!(sessions.authenticate(&rotated.access_token).await.unwrap().openid.as_deref(), Some("o_rotating"));
}

#[tokio::test]
async fn wechat_login_creates_one_user_per_openid_and_keeps_the_session_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(&dir).await;
    let wechat = Wechat::new("points", "wx_sandbox_points".into(), Arc::new(SandboxLogin), db.clone(), vault(), Clock::default());
    // Two first logins of one user at once agree on one user; one of them is the first.
    let (a, b) = tokio::join!(wechat.login("code-a", None), wechat.login("code-a", None));
    let ((a, _), (b, _)) = (a.unwrap(), b.unwrap());
    assert_eq!(a.user_id, b.user_id);
    assert_eq!(u8::from(a.is_new) + u8::from(b.is_new), 1);
    assert_eq!(a.openid, SandboxLogin::openid_for("code-a"));
    // encryptedData sealed for this login's session key opens, watermark checked.
    let key = SecretString::from(SandboxLogin::session_key_for("code-a"));
    let (data, iv) = seal(&key, &json!({"nickName": "微信用户"}), "wx_sandbox_points", 1_700_000_000).unwrap();
    let (again, opened) = wechat.login("code-a", Some((&data, &iv))).await.unwrap();
    assert!(!again.is_new);
    assert_eq!(opened.unwrap()["nickName"], "微信用户");
    // Later, with the key kept server side (the client never has it).
    assert_eq!(wechat.decrypt(&again.openid, &data, &iv).await.unwrap()["nickName"], "微信用户");
    // Data sealed for another mini-program, or for another login's key, does not open.
    let (foreign, foreign_iv) = seal(&key, &json!({"a": 1}), "wx_other", 0).unwrap();
    assert!(matches!(wechat.decrypt(&again.openid, &foreign, &foreign_iv).await, Err(WechatError::Decrypt)));
    assert!(matches!(wechat.login("code-b", Some((&data, &iv))).await, Err(WechatError::Decrypt)));
    assert!(matches!(wechat.decrypt("nobody", &data, &iv).await, Err(WechatError::NoSession)));
    // A code WeChat refuses is the client's fault, with WeChat's errcode.
    assert!(matches!(wechat.login("invalid", None).await, Err(WechatError::Code(code)) if code == "40029"));
}

#[tokio::test]
async fn codes_filed_under_a_key_and_without_a_leading_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (db, sms, budgets) = code_stores(&dir).await;
    let policy = CodePolicy {
        length: 4,
        no_leading_zero: true,
        ttl: Duration::from_secs(1800),
        resend_interval: Duration::from_secs(60),
        max_attempts: 3,
        daily_cap: 5,
        per_client: None,
    };
    let clock = Clock::default();
    let codes = Codes::new("community", policy, db, vault(), sms.clone(), budgets, clock.clone());
    let sent = codes.send("13800000001", "yezhu", true, CLIENT).await.unwrap();
    let key = sent.key.expect("a key");
    let code = sms.entries(Some("community"), "13800000001").await.unwrap()[0].code.clone();
    assert_eq!(code.len(), 4);
    assert_ne!(code.as_bytes()[0], b'0');
    // The code is filed under its key, not under the phone.
    assert!(matches!(codes.check(Subject::Phone("13800000001"), "yezhu", &code).await, Err(CodeError::Wrong)));
    let ticket = codes.redeem(Subject::Key(&key), "yezhu", &code).await.unwrap();
    assert_eq!(ticket.phone, "13800000001");
    assert!(matches!(codes.redeem(Subject::Key(&key), "yezhu", &code).await, Err(CodeError::Wrong)), "single use");
    assert!(matches!(codes.send("13800000001", "yezhu", true, CLIENT).await, Err(CodeError::TooSoon(wait)) if (1..=60).contains(&wait)));
}

/// A client address that is not the loopback the tests' servers see.
const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 7));

#[tokio::test]
async fn one_client_address_has_codes_sent_to_so_many_phones_an_hour() {
    let dir = tempfile::tempdir().unwrap();
    let (db, sms, budgets) = code_stores(&dir).await;
    let policy = CodePolicy { per_client: Some(ClientCap { codes: 3, window: Duration::from_secs(3600) }), ..CodePolicy::STANDARD };
    let clock = Clock::default();
    let codes = Codes::new("o2o", policy, db.clone(), vault(), sms.clone(), budgets.clone(), clock.clone());
    for n in 1..=3 {
        codes.send(&format!("1380000000{n}"), "login", false, CLIENT).await.unwrap();
    }
    // The fourth phone is refused for the client, for about the hour its first send stays
    // counted; nothing is sent, and the phone's slot is given back.
    let refused = codes.send("13800000004", "login", false, CLIENT).await;
    assert!(matches!(refused, Err(CodeError::ClientCap(wait)) if (3500..=3720).contains(&wait)), "{refused:?}");
    assert!(sms.entries(Some("o2o"), "13800000004").await.unwrap().is_empty());
    // Another address has its own cap, and the phone may have its code at once.
    let other = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 8));
    codes.send("13800000004", "login", false, other).await.unwrap();
    assert_eq!(sms.entries(Some("o2o"), "13800000004").await.unwrap().len(), 1);
    // The count is the shared budgets', not this value's: a second `Codes` (another instance)
    // refuses the first address too.
    let again = Codes::new("o2o", policy, db.clone(), vault(), sms.clone(), budgets.clone(), clock.clone());
    assert!(matches!(again.send("13800000005", "login", false, CLIENT).await, Err(CodeError::ClientCap(_))));
    // Every API's policy has the standard cap; without one nothing is counted.
    for policy in [mpapi::heating::service::CODE_POLICY, mpapi::community::service::CODE_POLICY, mpapi::o2o::service::CODE_POLICY] {
        assert_eq!(policy.per_client, Some(ClientCap::STANDARD));
    }
    let uncapped = Codes::new("heating", CodePolicy { per_client: None, ..policy }, db, vault(), sms, budgets, clock);
    for n in 1..=4 {
        uncapped.send(&format!("1390000000{n}"), "login", false, CLIENT).await.unwrap();
    }
}

#[tokio::test]
async fn a_burst_of_code_sends_from_one_address_stays_within_its_cap() {
    // Many sends at once from one address, each to its own phone, race to write the address's
    // budget: those that keep losing are refused, never sent uncounted.
    let dir = tempfile::tempdir().unwrap();
    let (db, sms, budgets) = code_stores(&dir).await;
    // A cap above the tries a count gets (16), so that some of the burst lose every one of them.
    let policy = CodePolicy { per_client: Some(ClientCap { codes: 40, window: Duration::from_secs(3600) }), ..CodePolicy::STANDARD };
    let codes = Arc::new(Codes::new("o2o", policy, db, vault(), sms.clone(), budgets, Clock::default()));
    let sends = (0..120).map(|n| {
        let codes = codes.clone();
        tokio::spawn(async move { codes.send(&format!("1370000{n:04}"), "login", false, CLIENT).await })
    });
    let answers: Vec<_> = futures_util::future::join_all(sends).await.into_iter().map(Result::unwrap).collect();
    let sent = answers.iter().filter(|a| a.is_ok()).count();
    assert!(answers.iter().all(|a| matches!(a, Ok(_) | Err(CodeError::ClientCap(_)))), "{answers:?}");
    let mut delivered = 0;
    for n in 0..120 {
        delivered += sms.entries(Some("o2o"), &format!("1370000{n:04}")).await.unwrap().len();
    }
    assert_eq!(delivered, sent);
    assert!((1..=40).contains(&sent), "{sent} sent");
}

#[tokio::test]
async fn passwords_hash_and_verify_through_a_pool_of_one() {
    let passwords = mpapi::identity::Passwords::new(1);
    let hashes = futures_util::future::join_all((0..4).map(|i| {
        let passwords = passwords.clone();
        async move { passwords.hash(&format!("password-{i}")).await.unwrap() }
    }))
    .await;
    for (i, hash) in hashes.iter().enumerate() {
        assert!(passwords.verify(&format!("password-{i}"), hash).await.unwrap());
    }
}
