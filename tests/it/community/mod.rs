//! The community API (002, 一标三实) for real, one module per area of `openapi/community.yaml`:
//! the document's journeys end to end (registering both ways, the address tree, the security
//! platform's phone check and the owner's consent, uploads, the form and its review, the lists,
//! the owner's grants, unbinding, paying fees and WeChat Pay v2's notify) and the fault cases —
//! forged session keys, skipped consent, overlapping payments, replayed and forged notifies, the
//! platform's outage, racing reviews, refresh windows, personal data in answers. Every JSON
//! answer is checked against the contract by `TestApp`.

use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::app::{Reply, TestApp};

mod auth;
mod fees;
mod household;
mod journey;
mod security;
mod uploads;

pub const CODE: &str = "/api/v1/verificationCodes/phone";
pub const EXCHANGE: &str = "/api/v1/weapp/code";
pub const REGISTER: &str = "/api/v1/weapp/users";
pub const LOGIN: &str = "/api/v1/weapp/authorizations";
pub const REFRESH: &str = "/api/v1/authorizations/current";
pub const PERMISSIONS: &str = "/api/v1/people/permissions";
pub const COMMUNITIES: &str = "/api/v1/communities";
pub const BUILDINGS: &str = "/api/v1/buildings";
pub const UNITS: &str = "/api/v1/units";
pub const FLOORS: &str = "/api/v1/floors";
pub const HOUSES: &str = "/api/v1/houses";
pub const PHONE_CHECK: &str = "/api/v1/security/phone";
pub const OWNER: &str = "/api/v1/security/yezhu";
pub const OWNER_CODE: &str = "/api/v1/security/yezhu-code";
pub const PHOTO: &str = "/api/v1/people/photo";
pub const IDCARD: &str = "/api/v1/idcard/photo";
pub const SUBMIT: &str = "/api/v1/weapp/yibiaosanshi";
pub const BIND: &str = "/api/v1/house/bind";
pub const HOUSES_LIST: &str = "/api/v1/user/housesList";
pub const HOUSE: &str = "/api/v1/house/detail";
pub const SHENHE: &str = "/api/v1/shenhe/detail";
pub const SHOUQUAN: &str = "/api/v1/house/shouquan";
pub const CHARGE: &str = "/api/v1/house/charge";
pub const ORDERS: &str = "/api/v1/orders/list";
pub const PAYMENTS: &str = "/api/v1/payments/list";
pub const PAY: &str = "/api/v1/weapp/payment";
pub const NOTIFY: &str = "/api/v1/weapp/payment/notify";

/// The demo owner 王建国's login code, phone and house (晨曦家园1栋1单元1楼101号, id 1).
pub const DEMO_CODE: &str = "demo";
pub const DEMO_PHONE: &str = "17600381130";
pub const DEMO_HOUSE: &str = "晨曦家园1栋1单元1楼101号";
/// His ID number as seeded (fictional); no answer may carry it whole.
pub const DEMO_IDCARD: &str = "130302198506122131";
/// The phone the sandbox 安防平台 knows (李秀英, owner of house 3 = 1栋1单元2楼201号).
pub const PLATFORM_PHONE: &str = "13900000001";
/// The demo bill that paid orders 4 and 5.
pub const DEMO_BILL: &str = "10002C2Y1A2Z5fd62cac34e925fd62ca";

/// `(community_identifier, building, unit, floor, house)` of the seeded houses by id.
pub fn address(house_id: i64) -> (i64, i64, i64, i64, i64) {
    match house_id {
        1 => (1, 1, 1, 1, 101),
        2 => (1, 1, 1, 1, 102),
        3 => (1, 1, 1, 2, 201),
        4 => (1, 1, 1, 2, 202),
        5 => (2, 1, 1, 1, 101),
        6 => (1, 3, 2, 4, 401),
        other => panic!("no seeded house {other}"),
    }
}

/// Move the clock past the one-code-a-minute rule.
pub fn next_minute(app: &TestApp) {
    app.server.clock.advance(Duration::from_secs(61));
}

/// 1.4.1 with a sandbox `wx.login` code.
pub async fn login(app: &TestApp, code: &str) -> Reply {
    app.post(LOGIN, None, json!({ "code": code })).await
}

/// Community reached at `public_url`, its files at `files_base` when given (else there too).
pub async fn community_at(public_url: &str, files_base: Option<&str>) -> TestApp {
    TestApp::community_with(|config| {
        let community = config.apis.get_mut("community").unwrap();
        community.public_url = Some(public_url.into());
        community.files.public_base_url = files_base.map(str::to_owned);
    })
    .await
}

/// The access token of an account that logged in from `code` before (the demo accounts:
/// `demo`, `demo-wife`, `demo-son`).
pub async fn token(app: &TestApp, code: &str) -> String {
    let reply = login(app, code).await;
    assert_eq!((reply.status, reply.flat_code()), (200, 0), "{}", reply.body);
    reply.body["access_token"].as_str().unwrap().to_owned()
}

/// 1.2.1: (openid, the session_key proof).
pub async fn exchange(app: &TestApp, code: &str) -> (String, String) {
    let reply = app.post(EXCHANGE, None, json!({ "code": code })).await;
    assert_eq!((reply.status, reply.flat_code()), (200, 0), "{}", reply.body);
    (reply.body["openid"].as_str().unwrap().to_owned(), reply.body["session_key"].as_str().unwrap().to_owned())
}

/// 1.1: send a code of `kind` to `phone` (string or integer); the answer.
pub async fn send_code(app: &TestApp, phone: Value, kind: &str, house_name: Option<&str>) -> Reply {
    let mut body = json!({ "phone": phone, "type": kind });
    if let Some(name) = house_name {
        body["community_house_name"] = json!(name);
    }
    app.post(CODE, None, body).await
}

/// 1.1 type yezhu to the owner's `phone`, asked by the applicant holding `token` (owner codes
/// go only to an owner that applicant looked up).
pub async fn send_owner_code(app: &TestApp, token: &str, phone: Value, house_name: &str) -> Reply {
    app.post(CODE, Some(token), json!({ "phone": phone, "type": "yezhu", "community_house_name": house_name })).await
}

/// 1.1 for `phone`, read back from the sandbox outbox: (key, code).
pub async fn code_for(app: &TestApp, phone: &str, kind: &str) -> (String, String) {
    let house_name = (kind == "yezhu").then_some(DEMO_HOUSE);
    let sent = send_code(app, json!(phone), kind, house_name).await;
    assert_eq!((sent.status, sent.flat_code()), (200, 0), "{}", sent.body);
    (sent.body["key"].as_str().unwrap().to_owned(), app.sms_code(phone).await)
}

/// 1.2.2 selfPhone after 1.2.1 with `wx_code` and a register code for `phone`; the answer.
pub async fn register_self_phone(app: &TestApp, wx_code: &str, phone: &str, name: &str) -> Reply {
    let (openid, proof) = exchange(app, wx_code).await;
    let (key, code) = code_for(app, phone, "register").await;
    app.post(
        REGISTER,
        None,
        json!({ "type": "selfPhone", "verification_key": key, "verification_code": code.parse::<i64>().unwrap(),
                "openid": openid, "session_key": proof, "name": name, "avatar": "https://thirdwx.qlogo.cn/mmopen/vi_32/a/132" }),
    )
    .await
}

/// 1.2.2 weixin: `phone` sealed by the sandbox for the session of `wx_code`, after 1.2.1.
pub async fn register_weixin(app: &TestApp, wx_code: &str, phone: &str, name: &str) -> Reply {
    let (openid, proof) = exchange(app, wx_code).await;
    let (encrypted_data, iv) = sealed(app, wx_code, &json!({ "phoneNumber": phone, "purePhoneNumber": phone, "countryCode": "86" })).await;
    app.post(
        REGISTER,
        None,
        json!({ "type": "weixin", "encryptedData": encrypted_data, "iv": iv, "openid": openid, "session_key": proof,
                "name": name, "avatar": "https://thirdwx.qlogo.cn/mmopen/vi_32/b/132" }),
    )
    .await
}

/// A new account registered by selfPhone; its access token.
pub async fn new_user(app: &TestApp, wx_code: &str, phone: &str, name: &str) -> String {
    let reply = register_self_phone(app, wx_code, phone, name).await;
    assert_eq!((reply.status, reply.flat_code()), (200, 0), "{}", reply.body);
    reply.body["access_token"].as_str().unwrap().to_owned()
}

/// `{encryptedData, iv}` of `data` as WeChat seals it for the sandbox session of `code`.
pub async fn sealed(app: &TestApp, code: &str, data: &Value) -> (String, String) {
    let response =
        app.client.get(app.url("/_sandbox/wechat/encrypt")).query(&[("code", code), ("data", &data.to_string())]).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let sealed: Value = response.json().await.unwrap();
    (sealed["encryptedData"].as_str().unwrap().to_owned(), sealed["iv"].as_str().unwrap().to_owned())
}

/// 2.2.1 for `phone` in community `community` (a verify code sent, read and relayed).
pub async fn phone_check(app: &TestApp, token: &str, phone: &str, community: i64) -> Reply {
    let (key, code) = code_for(app, phone, "verify").await;
    app.post(PHONE_CHECK, Some(token), json!({ "verification_key": key, "verification_code": code.parse::<i64>().unwrap(), "id": community }))
        .await
}

/// 2.2.2 then 1.1 (yezhu) to the owner and 2.2.3 with the code the owner reads out: the owner's
/// consent for `house_id` (whose owner is the demo owner).
pub async fn owner_consent(app: &TestApp, token: &str, house_id: i64) {
    let owner = app.post(OWNER, Some(token), json!({ "id": house_id })).await;
    assert_eq!((owner.status, owner.flat_code()), (200, 0), "{}", owner.body);
    let phone = owner.data()["people_phone"].as_str().unwrap().to_owned();
    let sent = send_owner_code(app, token, json!(phone), DEMO_HOUSE).await;
    assert_eq!((sent.status, sent.flat_code()), (200, 0), "{}", sent.body);
    let (key, code) = (sent.body["key"].as_str().unwrap().to_owned(), app.sms_code(&phone).await);
    let verified = app.post(OWNER_CODE, Some(token), json!({ "verification_key": key, "verification_code": code })).await;
    assert_eq!((verified.status, verified.flat_code()), (200, 0), "{}", verified.body);
}

/// A JPEG-looking file of `len` bytes (the magic bytes decide).
pub fn jpeg(len: usize, seed: u8) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00];
    bytes.extend((0..len.saturating_sub(bytes.len())).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    bytes
}

/// A PNG-looking file.
pub fn png(len: usize) -> Vec<u8> {
    let mut bytes = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0x0D, b'I', b'H', b'D', b'R'];
    bytes.extend((0..len.saturating_sub(bytes.len())).map(|i| i as u8));
    bytes
}

/// 2.3.1: `bytes` as `file` with the address of `house_id`.
pub async fn upload(app: &TestApp, token: &str, bytes: Vec<u8>, file_name: &str, house_id: i64) -> Reply {
    let (c, b, u, f, h) = address(house_id);
    upload_at(app, token, bytes, file_name, [c, b, u, f, h]).await
}

/// 2.3.1 with an explicit address `[community, building, unit, floor, house]`.
pub async fn upload_at(app: &TestApp, token: &str, bytes: Vec<u8>, file_name: &str, at: [i64; 5]) -> Reply {
    let part = reqwest::multipart::Part::bytes(bytes).file_name(file_name.to_owned());
    let names = ["community_identifier", "building_number", "unit_number", "floor_number", "house_number"];
    let mut form = reqwest::multipart::Form::new().part("file", part);
    for (name, value) in names.into_iter().zip(at) {
        form = form.text(name, value.to_string());
    }
    app.post_multipart(PHOTO, Some(token), form).await
}

/// A face photo of the caller's, uploaded for `house_id`; its signed URL.
pub async fn photo(app: &TestApp, token: &str, house_id: i64) -> String {
    let reply = upload(app, token, jpeg(2048, 7), "face.jpg", house_id).await;
    assert_eq!((reply.status, reply.flat_code()), (200, 0), "{}", reply.body);
    reply.body["data"].as_str().unwrap().to_owned()
}

/// 2.3.2 with a base64 image of `bytes`.
pub async fn idcard(app: &TestApp, token: &str, bytes: &[u8]) -> Reply {
    app.post(IDCARD, Some(token), json!({ "image": base64::engine::general_purpose::STANDARD.encode(bytes) })).await
}

/// An 18-character ID number: `first17` and its GB 11643 check character.
pub fn id_number(first17: &str) -> String {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = first17.bytes().zip(WEIGHTS).map(|(b, w)| u32::from(b - b'0') * w).sum();
    format!("{first17}{}", b"10X98765432"[(sum % 11) as usize] as char)
}

/// A 2.4.1 form for `house_id` (role, choice as given; the rest fixed).
pub fn form(phone: &str, idcard: &str, name: &str, photo: &str, house_id: i64, role: Value, choice: i64) -> Value {
    json!({
        "phone": phone, "idcard": idcard, "name": name, "photo": photo, "sex": "男", "nation": "汉族",
        "address": "河北省秦皇岛市海港区建设大街128号", "zzmm": "群众", "tyjr": 0, "dibao": 0, "shangfang": 0,
        "job": "教师", "company": "秦皇岛市海港区实验小学", "house_id": house_id, "role": role,
        "status": "自用", "use": "住宅", "xingzhi": "私有", "choice": choice,
    })
}

/// The 物业端 decides review `id` (`approve` or `reject`): (status, body).
pub async fn decide(app: &TestApp, id: i64, result: &str, reason: Option<&str>) -> (u16, Value) {
    let mut url = app.url(&format!("/_sandbox/shenhe/{id}?result={result}"));
    if let Some(reason) = reason {
        url.push_str(&format!("&reason={}", form_urlencoded::byte_serialize(reason.as_bytes()).collect::<String>()));
    }
    let response = app.client.post(url).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

/// 1.5.1's permission.
pub async fn permission(app: &TestApp, token: &str) -> String {
    let reply = app.post(PERMISSIONS, Some(token), json!({})).await;
    assert_eq!((reply.status, reply.flat_code()), (200, 0), "{}", reply.body);
    reply.body["data"][0].as_str().unwrap().to_owned()
}

/// 3.1.1's items.
pub async fn houses_list(app: &TestApp, token: &str) -> Vec<Value> {
    let reply = app.post(HOUSES_LIST, Some(token), json!({})).await;
    assert_eq!((reply.status, reply.flat_code()), (200, 0), "{}", reply.body);
    reply.body["data"].as_array().unwrap().clone()
}

/// 3.1.2's data.
pub async fn house(app: &TestApp, token: &str, house_id: i64) -> Value {
    let reply = app.post(HOUSE, Some(token), json!({ "id": house_id })).await;
    assert_eq!((reply.status, reply.flat_code()), (200, 0), "{}", reply.body);
    reply.body["data"].clone()
}

/// The binding id of member `name` in 3.1.2's yibangding.
pub fn member_id(detail: &Value, name: &str) -> i64 {
    detail["yibangding"].as_array().unwrap().iter().find(|m| m["name"] == name).and_then(|m| m["id"].as_i64()).unwrap_or_else(|| {
        panic!("{name} is not a member: {detail}")
    })
}

/// The ids of 4.1.1's orders (first 100, `filter` merged into the request).
pub async fn order_ids(app: &TestApp, token: &str, filter: Value) -> Vec<i64> {
    let mut body = json!({ "per_page": 100 });
    body.as_object_mut().unwrap().extend(filter.as_object().unwrap().clone());
    let reply = app.post(ORDERS, Some(token), body).await;
    assert_eq!((reply.status, reply.flat_code()), (200, 0), "{}", reply.body);
    let mut ids: Vec<i64> = reply.body["data"].as_array().unwrap().iter().map(|o| o["id"].as_i64().unwrap()).collect();
    ids.sort_unstable();
    ids
}

/// The property system issues a fee order of `amount_fen` on `house_id`; its id.
pub async fn issue_order(app: &TestApp, house_id: i64, title: &str, amount_fen: i64) -> i64 {
    let response = app
        .client
        .post(app.url("/_sandbox/orders"))
        .json(&json!({ "house_id": house_id, "title": title, "amount_fen": amount_fen }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
}

/// The fee order `id` as stored.
pub async fn stored_order(app: &TestApp, id: i64) -> mpapi::storage::community::FeeOrder {
    app.server.db.fees().orders(&[id]).await.unwrap().pop().unwrap_or_else(|| panic!("no order {id}"))
}

/// `value` with the members at `pointers` replaced by `"[name]"` (each must exist).
pub fn redacted(value: &Value, pointers: &[&str]) -> Value {
    let mut value = value.clone();
    for pointer in pointers {
        let member = value.pointer_mut(pointer).unwrap_or_else(|| panic!("{pointer} missing"));
        *member = json!(format!("[{}]", pointer.rsplit('/').next().unwrap()));
    }
    value
}

/// Drive `futures` together (every request in flight before any answer is read).
pub async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    futures_util::future::join_all(futures).await
}

/// Every run of `n` or more ASCII digits in `text`.
pub fn digit_runs(text: &str, n: usize) -> Vec<String> {
    let mut runs = Vec::new();
    let mut current = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_digit() {
            current.push(c);
        } else {
            if current.len() >= n {
                runs.push(current.clone());
            }
            current.clear();
        }
    }
    runs
}
