//! o2o's reverse geocoding (004 §登陆相关 根据经纬度获取所在城市): Tencent LBS's 逆地址解析 against
//! wiremock — the request it sends (location, key, the SK signature) and how it reads answers.

use std::time::Duration;

use md5::{Digest as _, Md5};
use mpapi::config::{GeocoderConfig, ProviderKind};
use mpapi::providers::ProviderError;
use mpapi::providers::geocoder::{ReverseGeocoder as _, TencentGeocoder};
use serde_json::json;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "TEST1-KEY23-45678-90ABC-DEFGH-IJKLM";
const SK: &str = "test-secret-key-0123456789abcdef";
const PATH: &str = "/ws/geocoder/v1/";

fn geocoder(server: &MockServer, secret_key: Option<&str>, timeout_ms: u64) -> TencentGeocoder {
    TencentGeocoder::new(&GeocoderConfig {
        provider: ProviderKind::Real,
        base_url: server.uri(),
        key: Some(KEY.into()),
        secret_key: secret_key.map(Into::into),
        timeout_ms,
    })
    .expect("configured")
}

fn answer(adcode: &str, nation_code: &str) -> serde_json::Value {
    json!({
        "status": 0, "message": "query ok", "request_id": "5f2b7a",
        "result": {
            "location": {"lat": 22.540503, "lng": 113.943223},
            "address": "广东省深圳市南山区深南大道",
            "ad_info": {"nation_code": nation_code, "adcode": adcode, "name": "中国,广东省,深圳市,南山区", "location": {"lat": 22.5, "lng": 113.9}, "nation": "中国", "province": "广东省", "city": "深圳市", "district": "南山区"}
        }
    })
}

#[tokio::test]
async fn a_position_in_nanshan_is_440305() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(PATH))
        .and(query_param("location", "22.540503,113.943223"))
        .and(query_param("key", KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer("440305", "156")))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(geocoder(&server, None, 3000).county_of(22.540503, 113.943223).await.unwrap(), Some(440305));
    let requests = server.received_requests().await.unwrap();
    assert!(requests[0].url.query_pairs().all(|(k, _)| k != "sig"), "unsigned without an SK");
}

#[tokio::test]
async fn with_an_sk_every_request_is_signed() {
    let server = MockServer::start().await;
    // Computed here from Tencent's rule, independently of the provider's code: MD5 of the path,
    // `?`, the parameters sorted by name and unencoded, then the SK.
    let expected = hex::encode(Md5::digest(format!("{PATH}?key={KEY}&location=22.540503,113.943223{SK}").as_bytes()));
    Mock::given(method("GET"))
        .and(path(PATH))
        .and(query_param("location", "22.540503,113.943223"))
        .and(query_param("key", KEY))
        .and(query_param("sig", expected.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer("440305", "156")))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(geocoder(&server, Some(SK), 3000).county_of(22.540503, 113.943223).await.unwrap(), Some(440305));
}

#[tokio::test]
async fn a_vendor_status_is_a_vendor_error_without_the_key() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"status": 310, "message": "请求参数信息有误", "request_id": "x"})))
        .mount(&server)
        .await;
    let error = geocoder(&server, Some(SK), 3000).county_of(22.540503, 113.943223).await.unwrap_err();
    match &error {
        ProviderError::Vendor { code, message, .. } => assert_eq!((code.as_str(), message.as_str()), ("310", "请求参数信息有误")),
        other => panic!("{other:?}"),
    }
    let text = format!("{error} {error:?}");
    assert!(!text.contains(KEY) && !text.contains(SK), "{text}");
}

#[tokio::test]
async fn the_sea_and_abroad_are_no_area() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(query_param("location", "20.000000,125.000000"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer("", "")))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(query_param("location", "35.689500,139.691700"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer("", "392")))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(query_param("location", "22.280000,114.160000"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer("810001", "156")))
        .mount(&server)
        .await;
    let geocoder = geocoder(&server, None, 3000);
    assert_eq!(geocoder.county_of(20.0, 125.0).await.unwrap(), None, "the open sea");
    assert_eq!(geocoder.county_of(35.6895, 139.6917).await.unwrap(), None, "Tokyo");
    assert_eq!(geocoder.county_of(22.28, 114.16).await.unwrap(), None, "Hong Kong is not in the table");
}

#[tokio::test]
async fn outages_and_garbage_are_transport_errors() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(query_param("location", "1.000000,1.000000"))
        .respond_with(ResponseTemplate::new(500).set_body_string("oops"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(query_param("location", "2.000000,2.000000"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>gateway</html>"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(query_param("location", "3.000000,3.000000"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer("440305", "156")).set_delay(Duration::from_millis(1500)))
        .mount(&server)
        .await;
    let geocoder = geocoder(&server, Some(SK), 300);
    for (lat, what) in [(1.0, "HTTP 500"), (2.0, "not JSON"), (3.0, "too slow")] {
        let error = geocoder.county_of(lat, lat).await.unwrap_err();
        assert!(matches!(error, ProviderError::Transport { .. }), "{what}: {error:?}");
        let text = format!("{error} {error:?}");
        assert!(!text.contains(KEY) && !text.contains(SK), "{what}: {text}");
    }
}
