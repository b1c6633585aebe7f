//! The real 小程序码 provider (`stable_token` + `getwxacodeunlimit`) against a wiremock WeChat:
//! the token fetched once and reused, refetched once on 40001, WeChat's errcodes kept, and neither
//! the AppSecret nor the token in any error.

use std::time::Duration;

use mpapi::config::{ProviderKind, WechatLoginConfig};
use mpapi::providers::ProviderError;
use mpapi::providers::wxacode::{MiniProgramCode as _, WxaCodeHttp, WxaCodeRequest, from_config};
use serde_json::json;
use wiremock::matchers::{body_json, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const APPID: &str = "wx_target_oper_01";
const SECRET: &str = "target-app-secret-0123456789";
const TOKEN: &str = "ACCESS_TOKEN_one_0123456789";
const TOKEN_2: &str = "ACCESS_TOKEN_two_9876543210";
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR-not-really-a-png";
const JPEG: &[u8] = b"\xff\xd8\xff\xe0\0\x10JFIF\0-not-really-a-jpeg";

fn config(server: &MockServer) -> WechatLoginConfig {
    WechatLoginConfig { provider: ProviderKind::Real, base_url: server.uri(), secret: Some(SECRET.into()) }
}

fn provider(server: &MockServer) -> WxaCodeHttp {
    WxaCodeHttp::new(APPID, &config(server)).expect("configured")
}

fn request() -> WxaCodeRequest {
    WxaCodeRequest {
        scene: "sc_7f3a9c01".into(),
        page: "pages/severs/index/index".into(),
        check_path: false,
        env_version: "trial".into(),
        width: 430,
    }
}

/// A `stable_token` call in normal mode for [`APPID`].
fn stable_token_call() -> wiremock::MockBuilder {
    Mock::given(method("POST"))
        .and(path("/cgi-bin/stable_token"))
        .and(body_json(json!({
            "grant_type": "client_credential", "appid": APPID, "secret": SECRET, "force_refresh": false
        })))
}

/// `stable_token` answering `token`, valid for `expires_in` seconds.
fn stable_token(token: &str, expires_in: u64) -> Mock {
    stable_token_call().respond_with(ResponseTemplate::new(200).set_body_json(json!({ "access_token": token, "expires_in": expires_in })))
}

/// `getwxacodeunlimit` called with `token` and [`request`]'s body.
fn unlimited(token: &str) -> wiremock::MockBuilder {
    Mock::given(method("POST"))
        .and(path("/wxa/getwxacodeunlimit"))
        .and(query_param("access_token", token))
        .and(body_json(json!({
            "scene": "sc_7f3a9c01", "page": "pages/severs/index/index", "check_path": false, "env_version": "trial", "width": 430
        })))
}

fn image(bytes: &[u8], content_type: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(bytes.to_vec(), content_type)
}

fn wechat_error(errcode: i64, errmsg: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(json!({ "errcode": errcode, "errmsg": errmsg }).to_string(), "application/json; encoding=utf-8")
}

/// Neither the AppSecret nor a token in the error's Display or Debug.
fn assert_clean(error: &ProviderError) {
    for text in [error.to_string(), format!("{error:?}")] {
        for secret in [SECRET, TOKEN, TOKEN_2] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}

#[tokio::test]
async fn the_token_is_fetched_once_for_several_codes() {
    let server = MockServer::start().await;
    stable_token(TOKEN, 7200).expect(1).mount(&server).await;
    unlimited(TOKEN).respond_with(image(PNG, "image/png")).expect(3).mount(&server).await;
    let provider = provider(&server);
    let first = provider.unlimited(&request()).await.expect("image");
    assert_eq!((first.content_type, first.bytes.as_slice()), ("image/png", PNG));
    // Two at once wait for the one cached token.
    let request = request();
    let (a, b) = tokio::join!(provider.unlimited(&request), provider.unlimited(&request));
    assert_eq!(a.expect("image"), first);
    assert_eq!(b.expect("image"), first);
    assert!(!format!("{provider:?}").contains(SECRET));
}

#[tokio::test]
async fn a_token_about_to_expire_is_not_kept() {
    let server = MockServer::start().await;
    // stable_token never hands out less than 300 s; with 300 s left we already want a new one.
    stable_token(TOKEN, 300).expect(2).mount(&server).await;
    unlimited(TOKEN).respond_with(image(JPEG, "image/jpeg")).expect(2).mount(&server).await;
    let provider = provider(&server);
    for _ in 0..2 {
        let code = provider.unlimited(&request()).await.expect("image");
        assert_eq!((code.content_type, code.bytes.as_slice()), ("image/jpeg", JPEG));
    }
}

#[tokio::test]
async fn wechat_errcodes_are_vendor_errors() {
    for content_type in ["application/json", ""] {
        let server = MockServer::start().await;
        stable_token(TOKEN, 7200).expect(1).mount(&server).await;
        // WeChat's own refusal; the message echoing the token must not leak it.
        let answer = format!("{{\"errcode\":41030,\"errmsg\":\"invalid page rid: 6650a1 token {TOKEN}\"}}");
        unlimited(TOKEN)
            .respond_with(ResponseTemplate::new(200).set_body_raw(answer, content_type))
            .expect(1)
            .mount(&server)
            .await;
        let error = provider(&server).unlimited(&request()).await.expect_err("refused");
        match &error {
            ProviderError::Vendor { code, message, .. } => {
                assert_eq!(code, "41030", "content type {content_type:?}");
                assert!(message.starts_with("invalid page"), "{message}");
            }
            other => panic!("expected 41030, got {other:?}"),
        }
        assert_clean(&error);
    }
}

#[tokio::test]
async fn a_refused_token_is_fetched_again_once() {
    let server = MockServer::start().await;
    stable_token(TOKEN, 7200).up_to_n_times(1).expect(1).mount(&server).await;
    stable_token(TOKEN_2, 7200).expect(1).mount(&server).await;
    unlimited(TOKEN).respond_with(wechat_error(40001, "invalid credential, access_token is invalid or not latest")).expect(1).mount(&server).await;
    unlimited(TOKEN_2).respond_with(image(PNG, "image/png")).expect(2).mount(&server).await;
    let provider = provider(&server);
    assert_eq!(provider.unlimited(&request()).await.expect("image").bytes, PNG);
    // The new token is the cached one now.
    assert_eq!(provider.unlimited(&request()).await.expect("image").bytes, PNG);
}

#[tokio::test]
async fn a_token_refused_twice_is_an_error() {
    let server = MockServer::start().await;
    stable_token(TOKEN, 7200).expect(2).mount(&server).await;
    unlimited(TOKEN).respond_with(wechat_error(42001, "access_token expired")).expect(2).mount(&server).await;
    let error = provider(&server).unlimited(&request()).await.expect_err("refused");
    assert!(matches!(&error, ProviderError::Vendor { code, .. } if code == "42001"), "{error:?}");
    assert_clean(&error);
}

#[tokio::test]
async fn a_bad_secret_is_a_vendor_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/cgi-bin/stable_token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "errcode": 40125, "errmsg": "invalid appsecret" })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/wxa/getwxacodeunlimit")).respond_with(image(PNG, "image/png")).expect(0).mount(&server).await;
    let error = provider(&server).unlimited(&request()).await.expect_err("refused");
    assert!(matches!(&error, ProviderError::Vendor { code, .. } if code == "40125"), "{error:?}");
    assert_clean(&error);
}

#[tokio::test]
async fn an_invalid_request_is_refused_before_sending() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(image(PNG, "image/png")).expect(0).mount(&server).await;
    let too_long = WxaCodeRequest { scene: "x".repeat(33), ..request() };
    let error = provider(&server).unlimited(&too_long).await.expect_err("refused");
    assert!(matches!(&error, ProviderError::Config { detail, .. } if detail.contains("scene")), "{error:?}");
}

#[tokio::test]
async fn failures_to_reach_wechat_are_transport_errors() {
    let cases = [
        ("HTTP 500", ResponseTemplate::new(500)),
        ("not an image", ResponseTemplate::new(200).set_body_raw("<html>busy</html>", "text/html")),
        ("unreadable JSON", ResponseTemplate::new(200).set_body_raw("{\"errcode\":", "application/json")),
        ("slow", image(PNG, "image/png").set_delay(Duration::from_secs(3))),
    ];
    for (name, template) in cases {
        let server = MockServer::start().await;
        stable_token(TOKEN, 7200).mount(&server).await;
        unlimited(TOKEN).respond_with(template).mount(&server).await;
        let provider = provider(&server).with_timeout(Duration::from_secs(1)).expect("client");
        let error = provider.unlimited(&request()).await.expect_err(name);
        assert!(matches!(error, ProviderError::Transport { .. }), "{name}: {error:?}");
        assert_clean(&error);
    }

    // stable_token slow, then nothing listening at all.
    let server = MockServer::start().await;
    stable_token_call().respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3))).mount(&server).await;
    let slow = provider(&server).with_timeout(Duration::from_secs(1)).expect("client");
    let gone_config = WechatLoginConfig { base_url: "http://127.0.0.1:9".into(), ..config(&server) };
    let gone = WxaCodeHttp::new(APPID, &gone_config).expect("configured");
    for provider in [slow, gone] {
        let error = provider.unlimited(&request()).await.expect_err("unreachable");
        assert!(matches!(error, ProviderError::Transport { .. }), "{error:?}");
        assert_clean(&error);
    }
}

#[tokio::test]
async fn the_configuration_picks_the_provider() {
    let server = MockServer::start().await;
    stable_token(TOKEN, 7200).expect(1).mount(&server).await;
    unlimited(TOKEN).respond_with(image(PNG, "image/png")).expect(1).mount(&server).await;
    let real = from_config(APPID, &config(&server)).expect("real");
    assert_eq!(real.unlimited(&request()).await.expect("image").bytes, PNG);
    // The sandbox draws its own PNG and asks nobody.
    let sandbox = from_config(APPID, &WechatLoginConfig::default()).expect("sandbox");
    let code = sandbox.unlimited(&request()).await.expect("image");
    assert_eq!(code.content_type, "image/png");
    assert!(code.bytes.starts_with(b"\x89PNG\r\n\x1a\n") && code.bytes != PNG);
    let no_secret = WechatLoginConfig { secret: None, ..config(&server) };
    let error = from_config(APPID, &no_secret).err().expect("no secret");
    assert!(error.to_string().contains("wechat_login.secret"), "{error}");
}
