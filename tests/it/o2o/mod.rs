//! o2o (004) against the real router: both journeys (own operator; another operator through the
//! bridge page and the scene login), refunds and their races, the unpaid timeout and a late
//! payment. Requests carry the token as the document says (query on GET, body on POST) and the
//! mini-program's Referer; every JSON answer is checked against `openapi/o2o.yaml`.

use serde_json::{Value, json};

use crate::app::{Reply, TestApp, read};

mod journey;
mod refunds;

/// Operator 3's and operator 5's sandbox appids (the default configuration).
pub const OPER3: &str = "wx_sandbox_o2o_oper3";
pub const OPER5: &str = "wx_sandbox_o2o_oper5";

/// The user's position in the 004 examples (GCJ-02).
pub const HERE: (f64, f64) = (113.943223, 22.540503);

/// A request from the mini-program `appid`: its Referer, the token in the query (GET) or in the
/// JSON body (POST).
pub async fn call(app: &TestApp, appid: &str, method: reqwest::Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
    let mut url = path.to_owned();
    let mut body = body;
    if let Some(token) = token {
        if method == reqwest::Method::GET {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(&format!("token={token}"));
        } else if let Some(Value::Object(fields)) = body.as_mut() {
            fields.insert("token".into(), json!(token));
        }
    }
    let mut request = app
        .client
        .request(method.clone(), app.url(&url))
        .header(reqwest::header::REFERER, format!("https://servicewechat.com/{appid}/0/page-frame.html"));
    if let Some(body) = &body {
        request = request.json(body);
    }
    let reply = read(request.send().await.expect("answered")).await;
    app.check(&method, &url, &reply);
    reply
}

/// GET from mini-program `appid`.
pub async fn get(app: &TestApp, appid: &str, path: &str, token: &str) -> Reply {
    call(app, appid, reqwest::Method::GET, path, Some(token), None).await
}

/// POST from mini-program `appid`.
pub async fn post(app: &TestApp, appid: &str, path: &str, token: &str, body: Value) -> Reply {
    call(app, appid, reqwest::Method::POST, path, Some(token), Some(body)).await
}

/// The data of a success envelope `{code: 0, message: "请求成功", data}`.
pub fn ok(reply: &Reply) -> Value {
    assert_eq!((reply.status, reply.code(), reply.body["message"].as_str()), (200, 0, Some("请求成功")), "{}", reply.body);
    reply.data().clone()
}

/// Assert a refusal: HTTP status and the envelope's code.
pub fn refused(reply: &Reply, status: u16, code: i64) {
    assert_eq!((reply.status, reply.code()), (status, code), "{}", reply.body);
    assert!(reply.body.get("data").is_none(), "a refusal carries no data: {}", reply.body);
}

/// `/wxLogin` from `appid` with `code`: (token, userInfo).
pub async fn wx_login(app: &TestApp, appid: &str, code: &str) -> (String, Value) {
    let data = ok(&call(app, appid, reqwest::Method::POST, "/api/user/wxLogin", None, Some(json!({"code": code}))).await);
    (data["token"].as_str().expect("a token").to_owned(), data.get("userInfo").cloned().unwrap_or(Value::Null))
}

/// A new WeChat user of `appid` bound to `mobile` by SMS: its token.
pub async fn user_with_phone(app: &TestApp, appid: &str, code: &str, mobile: &str) -> String {
    let (token, info) = wx_login(app, appid, code).await;
    assert_eq!(info, Value::Null, "a new openid is not bound");
    let sent = ok(&post(app, appid, "/api/user/sms/verify_code", &token, json!({"mobile": mobile})).await);
    let verify_code = sent["verify_code"].as_str().expect("the sandbox echoes the code").to_owned();
    let bound = ok(&post(app, appid, "/api/user/login", &token, json!({"mobile": mobile, "verify_code": verify_code})).await);
    assert_eq!(bound["userInfo"]["mobile"], json!(mobile));
    token
}

/// Buy `number` of `goods_id` as the caller of `appid`: the order/buy data.
pub async fn buy(app: &TestApp, appid: &str, token: &str, goods_id: i64, number: i32) -> Value {
    ok(&post(app, appid, "/api/user/order/buy", token, json!({"goods_id": goods_id, "number": number})).await)
}

/// The caller's order `order_no`.
pub async fn order(app: &TestApp, appid: &str, token: &str, order_no: &str) -> Value {
    ok(&get(app, appid, &format!("/api/user/order/detail?order_no={order_no}"), token).await)
}

/// The sandbox platform pays `order_no` (a signed notify reaches the operator's notify route).
pub async fn pay(app: &TestApp, order_no: &str) {
    let reply = app.sandbox_pay(order_no, "success").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["notify"]["status"], json!(200), "{}", reply.body);
}

/// The sandbox merchant verifies a code: (HTTP status, body).
pub async fn verify(app: &TestApp, code: &str) -> (u16, Value) {
    let reply = read(app.client.post(app.url(&format!("/_sandbox/verify?verify_code={code}"))).send().await.unwrap()).await;
    (reply.status, reply.body)
}

/// The verify codes of an order's `items`.
pub fn codes(order: &Value) -> Vec<String> {
    order["items"].as_array().expect("items").iter().map(|i| i["verify_code"].as_str().unwrap().to_owned()).collect()
}

/// The statuses of an order's `items` (1 未核销, 2 已核销, 3 已退款), in order.
pub fn code_statuses(order: &Value) -> Vec<i64> {
    order["items"].as_array().expect("items").iter().map(|i| i["status"].as_i64().unwrap()).collect()
}
