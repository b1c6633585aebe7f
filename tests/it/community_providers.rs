//! Community's external services (002 §2.2, §2.3): Aliyun ID-card OCR and the 安防平台's signed
//! JSON adapter against wiremock, private files in an S3 bucket at wiremock, and the sandbox
//! 安防平台 on a fresh database.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use mpapi::clock::Clock;
use mpapi::config::{
    Config, FilesConfig, FilesProvider, OcrConfig, ProviderKind, SecurityPlatformConfig,
};
use mpapi::pii::Vault;
use mpapi::providers::files::FileStore;
use mpapi::providers::ocr::{AliyunOcr, IdCardOcr as _, OcrError};
use mpapi::providers::security_platform::{
    self, HouseAddress, HttpSecurityPlatform, PlatformBinding, PlatformOwner, SANDBOX_FAULT,
    SandboxSecurity, SecurityPlatform,
};
use mpapi::providers::{ProviderError, hmac_sha256_hex};
use mpapi::storage::Db;
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, header_exists, method, path};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

use crate::app::fresh_database;

// ---------------------------------------------------------------- Aliyun ID-card OCR

const APPCODE: &str = "test-appcode-0123456789";
const OCR_PATH: &str = "/rest/160601/ocr/ocr_idcard.json";

fn aliyun_ocr(server: &MockServer) -> AliyunOcr {
    AliyunOcr::new(&OcrConfig {
        provider: ProviderKind::Real,
        base_url: server.uri(),
        appcode: Some(APPCODE.into()),
    })
    .expect("configured")
}

#[tokio::test]
async fn aliyun_ocr_reads_the_face_side() {
    let server = MockServer::start().await;
    let image = b"\xff\xd8\xff\xe0 a photo of an ID card".to_vec();
    Mock::given(method("POST"))
        .and(path(OCR_PATH))
        .and(header(
            "Authorization",
            format!("APPCODE {APPCODE}").as_str(),
        ))
        .and(body_json(
            json!({ "image": B64.encode(&image), "configure": "{\"side\":\"face\"}" }),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "success": true,
            "config_str": "{\"side\":\"face\"}",
            "name": "张伟",
            "num": "31010419900315123x",
            "sex": "男",
            "nationality": "汉",
            "birth": "19900315",
            "address": "上海市徐汇区示例路88号",
            "request_id": "20261203-0001"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let face = aliyun_ocr(&server).recognize(&image).await.expect("read");
    assert_eq!(face.name, "张伟");
    assert_eq!(face.idcard, "31010419900315123X", "x is uppercased");
    assert_eq!(
        (
            face.gender.as_str(),
            face.nation.as_str(),
            face.birthday.as_str()
        ),
        ("男", "汉", "19900315")
    );
    assert_eq!(face.address, "上海市徐汇区示例路88号");
}

#[tokio::test]
async fn aliyun_ocr_tells_the_images_fault_from_the_services() {
    let cases: Vec<(&str, ResponseTemplate, bool)> = vec![
        (
            "success false",
            ResponseTemplate::new(200).set_body_json(json!({ "success": false })),
            true,
        ),
        (
            "400 wrong category",
            ResponseTemplate::new(400)
                .insert_header("X-Ca-Error-Message", "Invalid Input - wrong category"),
            true,
        ),
        (
            "403 quota",
            ResponseTemplate::new(403).insert_header("X-Ca-Error-Message", "Quota Exhausted"),
            false,
        ),
        (
            "403 appcode",
            ResponseTemplate::new(403).insert_header("X-Ca-Error-Message", "Invalid AppCode"),
            false,
        ),
        ("500", ResponseTemplate::new(500), false),
        (
            "not JSON",
            ResponseTemplate::new(200).set_body_string("<html>"),
            false,
        ),
    ];
    for (name, template, unreadable) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(OCR_PATH))
            .respond_with(template)
            .mount(&server)
            .await;
        match aliyun_ocr(&server).recognize(b"image").await {
            Err(OcrError::Unreadable) => {
                assert!(unreadable, "{name}: the service's fault, not the image's")
            }
            Err(OcrError::Provider(e)) => {
                assert!(!unreadable, "{name}: the image's fault, got {e}");
                assert!(!e.to_string().contains(APPCODE), "{name}: {e}");
            }
            Ok(face) => panic!("{name}: read {face:?}"),
        }
    }
}

#[tokio::test]
async fn aliyun_ocr_quota_keeps_the_gateways_reason() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(403).insert_header("X-Ca-Error-Message", "Quota Exhausted"),
        )
        .mount(&server)
        .await;
    match aliyun_ocr(&server).recognize(b"image").await {
        Err(OcrError::Provider(ProviderError::Vendor { code, message, .. })) => {
            assert_eq!(code, "403");
            assert!(message.contains("Quota Exhausted"), "{message}");
        }
        other => panic!("expected a vendor error, got {other:?}"),
    }
}

// ---------------------------------------------------------------- 安防平台, real adapter

/// Whether `platform` knows nobody with `phone` in community `community`.
async fn knows_nobody(platform: &dyn SecurityPlatform, community: &str, phone: &str) -> bool {
    let person = platform.person_by_phone(community, phone).await;
    person.expect("answered").is_none()
}

/// Whether `platform` knows no owner of house `house_number` (building 1, unit 1, floor 1).
async fn owns_nobody(platform: &dyn SecurityPlatform, house_number: i64) -> bool {
    platform.owner_of(&house(house_number)).await.expect("answered").is_none()
}

const APP_SECRET: &str = "platform-test-secret";

fn platform(server: &MockServer, secret: &str, timeout_seconds: u64) -> HttpSecurityPlatform {
    HttpSecurityPlatform::new(&SecurityPlatformConfig {
        provider: ProviderKind::Real,
        base_url: server.uri(),
        app_key: "mpapi-community".into(),
        app_secret: Some(secret.into()),
        timeout_seconds,
    })
    .expect("configured")
}

/// Recomputes `X-Signature` over `X-Timestamp`, `X-Nonce` and the raw body; the timestamp must
/// be within a minute and the nonce 32 hex characters.
struct PlatformSignature;

impl Match for PlatformSignature {
    fn matches(&self, request: &Request) -> bool {
        let get = |name: &str| {
            request
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let (timestamp, nonce, signature) =
            (get("X-Timestamp"), get("X-Nonce"), get("X-Signature"));
        let fresh = timestamp
            .parse::<i64>()
            .is_ok_and(|t| (chrono::Utc::now().timestamp() - t).abs() < 60);
        let body = String::from_utf8_lossy(&request.body);
        let expected = hmac_sha256_hex(
            APP_SECRET.as_bytes(),
            format!("{timestamp}\n{nonce}\n{body}").as_bytes(),
        );
        fresh
            && nonce.len() == 32
            && nonce.bytes().all(|b| b.is_ascii_hexdigit())
            && signature == expected
    }
}

fn house(house_number: i64) -> HouseAddress {
    HouseAddress {
        community_identifier: "1".into(),
        building_number: 1,
        unit_number: 1,
        floor_number: 1,
        house_number,
    }
}

fn owner_binding(address: HouseAddress) -> PlatformBinding {
    PlatformBinding {
        house: address,
        role: "业主".into(),
        house_use: "住宅".into(),
        xingzhi: "私有".into(),
        status: "自用".into(),
        zhuhu_type: "业主".into(),
    }
}

#[tokio::test]
async fn the_platform_finds_a_person_by_phone_with_signed_requests() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/people/by-phone"))
        .and(header("X-App-Key", "mpapi-community"))
        .and(header("Content-Type", "application/json"))
        .and(body_json(json!({ "community_identifier": "1", "phone": "17600381130" })))
        .and(PlatformSignature)
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "code": 0,
            "data": {
                "name": "王建国",
                "idcard": "130302198506122131",
                "phone": "17600381130",
                "sex": "男",
                "nation": "汉",
                "birth": "19850612",
                "address": "河北省秦皇岛市海港区晨曦家园1栋1单元101号",
                "bindings": [{
                    "house": { "community_identifier": "1", "building_number": 1, "unit_number": 1,
                               "floor_number": 1, "house_number": 101 },
                    "role": "业主", "house_use": "住宅", "xingzhi": "私有", "status": "自用",
                    "zhuhu_type": "业主"
                }]
            }
        })))
        .expect(2)
        .mount(&server)
        .await;
    let platform = platform(&server, APP_SECRET, 5);
    for _ in 0..2 {
        let person = platform
            .person_by_phone("1", "17600381130")
            .await
            .expect("answered")
            .expect("found");
        assert_eq!(
            (person.name.as_str(), person.idcard.as_str()),
            ("王建国", "130302198506122131")
        );
        assert_eq!(person.birth.as_deref(), Some("19850612"));
        assert_eq!(person.bindings, vec![owner_binding(house(101))]);
    }
    let nonces: Vec<String> = server
        .received_requests()
        .await
        .expect("recording")
        .iter()
        .map(|r| {
            r.headers
                .get("X-Nonce")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_ne!(nonces[0], nonces[1], "a fresh nonce per request");
}

#[tokio::test]
async fn the_platform_answers_owners_and_nobody() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/houses/owner"))
        .and(body_json(json!({ "community_identifier": "1", "building_number": 1, "unit_number": 1,
                               "floor_number": 1, "house_number": 101 })))
        .and(PlatformSignature)
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "code": 0,
            "data": { "name": "王建国", "phone": "17600381130", "house_use": "住宅", "xingzhi": "私有",
                      "status": "自用", "role": "业主" }
        })))
        .mount(&server)
        .await;
    // Any other house, any phone: nobody.
    Mock::given(method("POST"))
        .and(PlatformSignature)
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "code": 0, "data": null })))
        .mount(&server)
        .await;
    let platform = platform(&server, APP_SECRET, 5);
    let owner = platform.owner_of(&house(101)).await.expect("answered");
    let expected = PlatformOwner {
        name: "王建国".into(),
        phone: "17600381130".into(),
        house_use: "住宅".into(),
        xingzhi: "私有".into(),
        status: "自用".into(),
        role: "业主".into(),
    };
    assert_eq!(owner, Some(expected));
    assert!(owns_nobody(&platform, 102).await);
    assert!(knows_nobody(&platform, "1", "13800000000").await);
}

#[tokio::test]
async fn platform_faults_are_provider_errors() {
    let cases: Vec<(&str, ResponseTemplate, &str)> = vec![
        (
            "code 1",
            ResponseTemplate::new(200)
                .set_body_json(json!({ "code": 1001, "msg": "签名错误", "data": null })),
            "vendor",
        ),
        (
            "HTTP 500",
            ResponseTemplate::new(500).set_body_json(json!({ "code": 0, "data": null })),
            "transport",
        ),
        ("HTTP 401", ResponseTemplate::new(401), "transport"),
        (
            "not JSON",
            ResponseTemplate::new(200).set_body_string("<html>"),
            "transport",
        ),
        (
            "no code",
            ResponseTemplate::new(200).set_body_json(json!({ "data": null })),
            "transport",
        ),
        (
            "slow",
            ResponseTemplate::new(200)
                .set_body_json(json!({ "code": 0, "data": null }))
                .set_delay(Duration::from_secs(3)),
            "transport",
        ),
    ];
    for (name, template, kind) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(template)
            .mount(&server)
            .await;
        // A short timeout only where it is the fault: elsewhere a loaded machine's slow answer
        // would be taken for one.
        let platform = platform(&server, APP_SECRET, if name == "slow" { 1 } else { 10 });
        match (platform.owner_of(&house(101)).await, kind) {
            (Err(ProviderError::Vendor { code, message, .. }), "vendor") => {
                assert_eq!(
                    (code.as_str(), message.as_str()),
                    ("1001", "签名错误"),
                    "{name}"
                );
            }
            (Err(ProviderError::Transport { .. }), "transport") => {}
            (other, _) => panic!("{name}: expected {kind}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_request_signed_with_another_secret_does_not_match() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header_exists("X-Signature"))
        .and(PlatformSignature)
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "code": 0, "data": null })))
        .mount(&server)
        .await;
    assert_eq!(
        platform(&server, APP_SECRET, 5)
            .owner_of(&house(101))
            .await
            .expect("signed right"),
        None
    );
    // wiremock answers an unmatched request 404: our transport error.
    let wrong = platform(&server, "another-secret", 5)
        .owner_of(&house(101))
        .await;
    assert!(
        matches!(wrong, Err(ProviderError::Transport { .. })),
        "{wrong:?}"
    );
}

// ---------------------------------------------------------------- 安防平台, sandbox

fn vault() -> Arc<Vault> {
    Arc::new(Vault::new(&[7; 32], &[9; 32]).expect("keys"))
}

async fn db(dir: &tempfile::TempDir) -> (Db, String) {
    let url = fresh_database(dir).await;
    (Db::connect(&url).await.expect("the database opens"), url)
}

#[tokio::test]
async fn the_sandbox_platform_answers_from_its_seed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, _) = db(&dir).await;
    let vault = vault();
    assert!(security_platform::seed(&db, &vault).await.expect("seeded"));
    assert!(
        !security_platform::seed(&db, &vault).await.expect("seeded"),
        "once per database"
    );
    assert_eq!(
        db.demo_seeds().await.expect("read"),
        vec!["security_platform.demo".to_owned()]
    );
    let (platform, sandbox) =
        security_platform::from_config(&SecurityPlatformConfig::default(), db.clone(), vault)
            .expect("the sandbox");
    assert!(sandbox.is_some());

    // 李秀英 auto-binds (002 §2.2.1 example 1).
    let li = platform
        .person_by_phone("1", "13900000001")
        .await
        .expect("answered")
        .expect("found");
    assert_eq!(
        (li.name.as_str(), li.idcard.as_str(), li.sex.as_str()),
        ("李秀英", "110105198807070245", "女")
    );
    assert_eq!(li.birth.as_deref(), Some("19880707"));
    assert_eq!(li.bindings.len(), 1);
    assert_eq!(
        li.bindings[0],
        owner_binding(HouseAddress {
            floor_number: 2,
            house_number: 201,
            ..house(0)
        })
    );
    assert!(mpapi::pii::IdNumber::parse(&li.idcard, chrono::Utc::now().date_naive()).is_ok());
    // Nobody with that phone, or not in that community: example 3, code "2".
    assert!(knows_nobody(&*platform, "2", "13900000001").await);
    assert!(knows_nobody(&*platform, "1", "13800000000").await);

    // 王建国 owns 101 (002 §2.2.2 example 1); 102 has no owner (example 2).
    let owner = platform
        .owner_of(&house(101))
        .await
        .expect("answered")
        .expect("an owner");
    assert_eq!(
        (owner.name.as_str(), owner.phone.as_str()),
        ("王建国", "17600381130")
    );
    assert_eq!(
        (
            owner.house_use.as_str(),
            owner.xingzhi.as_str(),
            owner.status.as_str(),
            owner.role.as_str()
        ),
        ("住宅", "私有", "自用", "业主")
    );
    assert!(owns_nobody(&*platform, 102).await);
    let wang = platform
        .person_by_phone("1", "17600381130")
        .await
        .expect("answered")
        .expect("found");
    assert_eq!(wang.idcard, "130302198506122131");
}

#[tokio::test]
async fn the_sandbox_fault_is_seen_by_every_instance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, url) = db(&dir).await;
    let vault = vault();
    security_platform::seed(&db, &vault).await.expect("seeded");
    let one = SandboxSecurity::new(db, vault.clone());
    // A second server on the same database.
    let two = SandboxSecurity::new(Db::connect(&url).await.expect("opens again"), vault);
    assert!(!one.fault().await.expect("read"));
    one.set_fault(true, Clock::default().now_ms())
        .await
        .expect("switched");
    assert!(two.fault().await.expect("read"));
    for result in [
        two.owner_of(&house(101)).await.map(|_| ()),
        two.person_by_phone("1", "13900000001").await.map(|_| ()),
        one.owner_of(&house(102)).await.map(|_| ()),
    ] {
        match result {
            Err(ProviderError::Transport { detail, .. }) => assert_eq!(detail, SANDBOX_FAULT),
            other => panic!("expected the fault, got {other:?}"),
        }
    }
    two.set_fault(false, Clock::default().now_ms())
        .await
        .expect("switched back");
    assert!(
        one.owner_of(&house(101))
            .await
            .expect("answers again")
            .is_some()
    );
}

// ---------------------------------------------------------------- private files in S3

#[tokio::test]
async fn s3_files_are_private_objects_with_their_content_type() {
    let server = MockServer::start().await;
    let png: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    Mock::given(method("PUT"))
        .and(path("/photos/face/1/a.png"))
        .and(header("Content-Type", "image/png"))
        .and(AwsSigned)
        .respond_with(ResponseTemplate::new(200).insert_header("ETag", "\"e1\""))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/photos/face/1/a.png"))
        .and(AwsSigned)
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Content-Type", "image/png")
                .insert_header("ETag", "\"e1\"")
                .insert_header("Last-Modified", "Thu, 03 Dec 2026 08:00:00 GMT")
                .set_body_bytes(png),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/photos/face/1/none.png"))
        .respond_with(ResponseTemplate::new(404).set_body_string(
            "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>no</Message></Error>",
        ))
        .mount(&server)
        .await;
    let config = FilesConfig {
        provider: FilesProvider::S3,
        endpoint: server.uri(),
        bucket: "photos".into(),
        region: "oss-cn-hangzhou".into(),
        access_key_id: "AKID_TEST".into(),
        secret_access_key: Some("s3-test-secret".into()),
        public_base_url: Some("https://api.example.com/".into()),
        ..FilesConfig::default()
    };
    let files =
        FileStore::from_config(&config, &[5; 32], 3002, Clock::default()).expect("an S3 store");
    files
        .put("face/1/a.png", Bytes::from_static(png), "image/png")
        .await
        .expect("uploaded");
    let (bytes, content_type) = files
        .get("face/1/a.png")
        .await
        .expect("read")
        .expect("there");
    assert_eq!((bytes.as_ref(), content_type.as_str()), (png, "image/png"));
    assert_eq!(files.get("face/1/none.png").await.expect("read"), None);
    let put = server
        .received_requests()
        .await
        .expect("recording")
        .into_iter()
        .find(|r| r.method.as_str() == "PUT");
    let put = put.expect("a PUT");
    assert!(put.headers.get("x-amz-acl").is_none(), "never a public ACL");
    assert!(!format!("{files:?}").contains("s3-test-secret"));
    let url = files.signed_url("face/1/a.png", 0);
    assert!(
        url.starts_with("https://api.example.com/files/face/1/a.png?expires=3600&signature="),
        "{url}"
    );

    let missing = FilesConfig {
        secret_access_key: None,
        ..config.clone()
    };
    assert!(FileStore::from_config(&missing, &[5; 32], 3002, Clock::default()).is_err());
    let no_bucket = FilesConfig {
        bucket: String::new(),
        ..config
    };
    assert!(FileStore::from_config(&no_bucket, &[5; 32], 3002, Clock::default()).is_err());
}

/// An AWS signature V4 `Authorization` header for our access key.
struct AwsSigned;

impl Match for AwsSigned {
    fn matches(&self, request: &Request) -> bool {
        request
            .headers
            .get("Authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("AWS4-HMAC-SHA256 Credential=AKID_TEST/"))
    }
}

// ---------------------------------------------------------------- production

#[test]
fn production_refuses_community_sandboxes_and_a_local_file_url() {
    let config = Config::default();
    let problems = config.production_problems(&["community"]).join("\n");
    for expected in [
        "apis.community.ocr.provider is the sandbox",
        "apis.community.security_platform.provider is the sandbox",
        "apis.community.files.public_base_url must be a public https URL",
        "apis.community.public_url must be a public https URL",
    ] {
        assert!(
            problems.contains(expected),
            "{expected} missing from:\n{problems}"
        );
    }
    let heating = config.production_problems(&["heating"]).join("\n");
    assert!(
        !heating.contains("ocr")
            && !heating.contains("security_platform")
            && !heating.contains("files"),
        "{heating}"
    );
    let mut config = Config::default();
    let community = config.apis.get_mut("community").expect("a section");
    community.ocr.provider = ProviderKind::Real;
    community.security_platform.provider = ProviderKind::Real;
    community.files.public_base_url = Some("https://api.example.com".into());
    community.public_url = Some("http://community.example.com".into());
    let problems = config.production_problems(&["community"]).join("\n");
    assert!(problems.contains("apis.community.public_url"), "not https: {problems}");
    config.apis.get_mut("community").expect("a section").public_url = Some("https://community.example.com".into());
    let problems = config.production_problems(&["community"]).join("\n");
    assert!(
        !problems.contains("public_url") && !problems.contains("ocr")
            && !problems.contains("security_platform")
            && !problems.contains("files"),
        "{problems}"
    );
    let value: Value = serde_json::to_value(&config.apis["community"].files).expect("serializes");
    assert_eq!(
        (value["provider"].as_str(), value["max_bytes"].as_u64()),
        (Some("local"), Some(5 * 1024 * 1024))
    );
}
