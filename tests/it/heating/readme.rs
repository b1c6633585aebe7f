//! The README as a reader follows it: its walks of heating's, points', community's, charging's and o2o's journeys, each pasted
//! into bash against a fresh server of its API, and its configuration example, loaded as the
//! server loads it.

use mpapi::config::{Config, Environment, ProviderKind};
use xtask::spec::workspace_root;

use crate::app::TestApp;

/// The first ```` ```lang ```` block after the line `heading` in README.md.
fn readme_block(heading: &str, lang: &str) -> String {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).expect("README.md");
    let section = &readme[readme.find(&format!("\n{heading}\n")).unwrap_or_else(|| panic!("{heading} in README.md"))..];
    let open = format!("```{lang}\n");
    let start = section.find(&open).unwrap_or_else(|| panic!("a {lang} block under {heading}")) + open.len();
    let end = start + section[start..].find("```").expect("a closed block");
    section[start..end].to_owned()
}

/// The walk under `heading`, pasted into bash against `app` (its `BASE=` line, `base`, pointed at
/// the app): its output, `None` on a machine without curl (the walk is for a reader's shell;
/// cargo test needs none of it otherwise).
async fn walk(heading: &str, base: &str, app: &TestApp) -> Option<std::process::Output> {
    if std::process::Command::new("curl").arg("--version").output().is_err() {
        eprintln!("the README walk under {heading} was not run: no curl on this machine");
        return None;
    }
    let walk = readme_block(heading, "sh");
    // Pasted into an interactive bash, `!` in double quotes would expand history.
    assert!(!walk.contains('!'), "the walk must paste into an interactive bash");
    let walk = walk.replacen(&format!("BASE={base}\n"), &format!("BASE={}\n", app.url("")), 1);
    assert!(walk.contains(&app.url("")), "the walk under {heading} starts by setting BASE={base}");
    let output = tokio::task::spawn_blocking(move || std::process::Command::new("bash").arg("-c").arg(walk).output())
        .await
        .expect("bash ran")
        .expect("bash starts");
    Some(output)
}

#[tokio::test]
async fn the_walk_pays_the_demo_bill_on_a_fresh_database() {
    let app = TestApp::heating().await;
    let Some(output) = walk("### Walk heating's journey", "http://127.0.0.1:3000", &app).await else { return };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let answers: Vec<&str> = stdout.lines().collect();
    let wanted = [
        r#""message":"验证码发送成功""#,
        "code: ",
        r#""message":"登录成功""#,
        r#""phone":"13800138000""#,
        r#""message":"绑定成功""#,
        r#""total_late_fee":"#,
        "amount: ",
        r#""message":"订单创建成功""#,
        r#""result":"success""#,
        r#""status":"paid""#,
        r#""total":3"#,
    ];
    // In this order, each on a line of its own answer.
    let mut rest = answers.iter();
    for want in wanted {
        assert!(rest.any(|line| line.contains(want)), "{want} missing (or out of order) in:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    }
    assert!(output.status.success() && output.stderr.is_empty(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[tokio::test]
async fn the_points_walk_buys_and_spends_points_on_a_fresh_database() {
    let app = TestApp::spawn("points", |_| {}).await;
    let Some(output) = walk("### Walk points' journey", "http://127.0.0.1:3001", &app).await else { return };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && stderr.is_empty(), "{stderr}");
    // Every answer is one line of JSON, in the walk's order; each is checked against the contract
    // (the sandbox's own answer aside).
    let answers: Vec<serde_json::Value> =
        stdout.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}\n{stdout}"))).collect();
    let [login, packages, order, paid, check, consume, history] = &answers[..] else {
        panic!("seven answers expected:\n{stdout}");
    };
    let order_id = order["data"]["orderId"].as_str().expect("an order id");
    let order_path = format!("/api/v1/points/check-payment?orderId={order_id}");
    for (method, path, reply) in [
        (reqwest::Method::POST, "/api/v1/auth/wechat-login", login),
        (reqwest::Method::GET, "/api/v1/points/packages", packages),
        (reqwest::Method::POST, "/api/v1/points/create-order", order),
        (reqwest::Method::GET, order_path.as_str(), check),
        (reqwest::Method::POST, "/api/v1/points/consume", consume),
        (reqwest::Method::GET, "/api/v1/points/consumption-history", history),
    ] {
        assert_eq!(reply["code"], 0, "{path}: {reply}");
        app.check(&method, path, &crate::app::Reply { status: 200, headers: Default::default(), body: reply.clone() });
    }
    assert_eq!(login["data"]["userInfo"]["userId"], mpapi::points::seed::DEMO_USER);
    assert_eq!(paid["result"], "success", "{paid}");
    assert_eq!(check["data"]["isPaid"], true);
    let before = login["data"]["points"].as_i64().expect("points at login");
    let after_purchase = check["data"]["points"].as_i64().expect("points after paying");
    assert_eq!(after_purchase, before + 5000, "标准套餐 credits 5000 points");
    assert_eq!(consume["data"]["balance"].as_i64(), Some(after_purchase - 132), "{consume}");
    assert_eq!(consume["data"]["apiKeyName"], "生产环境");
    assert_eq!(history["data"]["list"][0]["id"], consume["data"]["id"], "the debit heads the history");
    // The key the README publishes is the one the demo data holds.
    assert!(readme_block("### Walk points' journey", "sh").contains(mpapi::points::seed::DEMO_KEY));
}

#[test]
fn the_configuration_example_is_fit_for_production() {
    let example = readme_block("### Configuration", "toml");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mpapi.toml");
    std::fs::write(&file, example).unwrap();
    let config = Config::load(Some(&file)).expect("the example loads");
    assert_eq!(config.env, Environment::Production);
    let heating = config.api("heating");
    assert_eq!((heating.wechat_pay.provider, heating.wechat_login.provider), (ProviderKind::Real, ProviderKind::Real));
    assert_eq!(config.sms.templates.get("register").map(String::as_str), Some("SMS_000000002"));
    // Fit for every API `serve` starts, not only heating.
    assert_eq!(config.production_problems(&mpapi::serve::implemented()), Vec::<String>::new());
}

#[tokio::test]
async fn the_community_walk_pays_a_fee_on_a_fresh_database() {
    let app = TestApp::community().await;
    let Some(output) = walk("### Walk community's journey", "http://127.0.0.1:3002", &app).await else { return };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && stderr.is_empty(), "{stderr}");
    let answers: Vec<serde_json::Value> =
        stdout.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}\n{stdout}"))).collect();
    let [login, houses, detail, fee, pay, paid, bills] = &answers[..] else {
        panic!("seven answers expected:\n{stdout}");
    };
    for (path, reply) in [
        ("/api/v1/weapp/authorizations", login),
        ("/api/v1/user/housesList", houses),
        ("/api/v1/house/detail", detail),
        ("/api/v1/weapp/payment", pay),
        ("/api/v1/payments/list", bills),
    ] {
        assert!(reply["code"] == "0" || reply["code"] == 0, "{path}: {reply}");
        app.check(&reqwest::Method::POST, path, &crate::app::Reply { status: 200, headers: Default::default(), body: reply.clone() });
    }
    assert_eq!(login["name"], "王建国");
    assert_eq!(houses["data"][0]["not_register"], 1, "{houses}");
    assert_eq!(detail["data"]["yibangding"].as_array().map(Vec::len), Some(4), "{detail}");
    assert_eq!(pay["data"]["signType"], "MD5");
    assert_eq!(paid["result"], "success", "{paid}");
    assert_eq!(bills["data"][0]["orders"][0]["id"], fee["id"], "the newest bill paid the fee just issued: {bills}");
    assert_eq!(bills["data"][0]["orders"][0]["paied"], "已付款");
}

#[tokio::test]
async fn the_charging_walk_charges_and_pays_on_a_fresh_database() {
    let app = TestApp::charging().await;
    let Some(output) = walk("### Walk charging's journey", "http://127.0.0.1:3003", &app).await else { return };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && stderr.is_empty(), "{stderr}");
    let answers: Vec<serde_json::Value> =
        stdout.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}\n{stdout}"))).collect();
    let [login, nearby, pile, order, start, detail, paid] = &answers[..] else {
        panic!("seven answers expected:\n{stdout}");
    };
    let order_id = order["data"]["orderId"].as_str().expect("an order id");
    for (method, path, reply) in [
        (reqwest::Method::POST, "/api/user/login".to_owned(), login),
        (reqwest::Method::GET, "/api/station/nearby".to_owned(), nearby),
        (reqwest::Method::GET, "/api/ChargingPile/qrcode/CDZ20230001".to_owned(), pile),
        (reqwest::Method::POST, "/api/order/create".to_owned(), order),
        (reqwest::Method::POST, "/api/ChargingPile/start".to_owned(), start),
        (reqwest::Method::GET, format!("/api/order/{order_id}"), detail),
        (reqwest::Method::POST, "/api/payment/pay".to_owned(), paid),
    ] {
        assert_eq!(reply["code"], 0, "{path}: {reply}");
        app.check(&method, &path, &crate::app::Reply { status: 200, headers: Default::default(), body: reply.clone() });
    }
    assert_eq!(nearby["data"]["list"][0]["id"], "ST0001");
    assert_eq!(pile["data"]["deviceAddress"], "20230001");
    assert_eq!((detail["data"]["status"].as_i64(), detail["data"]["stopReason"].as_i64()), (Some(2), Some(4)), "{detail}");
    assert_eq!(detail["data"]["powerConsumption"], 2.0, "{detail}");
    assert_eq!(paid["data"]["amount"], detail["data"]["totalAmount"], "{paid}");
    assert_eq!(paid["data"]["paymentStatus"], 2);
}

#[tokio::test]
async fn the_o2o_walk_buys_in_both_mini_programs_on_a_fresh_database() {
    let app = TestApp::spawn("o2o", |_| {}).await;
    let Some(output) = walk("### Walk o2o's journey", "http://127.0.0.1:3004", &app).await else { return };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && stderr.is_empty(), "{stderr}");
    let answers: Vec<serde_json::Value> =
        stdout.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}\n{stdout}"))).collect();
    let [gps, merchants, order, paid, detail, verified, refund, other, scene, pay, paid_other, other_detail] = &answers[..] else {
        panic!("twelve answers expected:\n{stdout}");
    };
    let order_no = order["data"]["order_no"].as_str().expect("an order number");
    let other_no = other["data"]["order_no"].as_str().expect("an order number");
    for (method, path, reply) in [
        (reqwest::Method::GET, "/api/user/area/getByGps", gps),
        (reqwest::Method::GET, "/api/user/merchants", merchants),
        (reqwest::Method::POST, "/api/user/order/buy", order),
        (reqwest::Method::GET, "/api/user/order/detail", detail),
        (reqwest::Method::POST, "/api/user/order/refund", refund),
        (reqwest::Method::POST, "/api/user/order/buy", other),
        (reqwest::Method::POST, "/api/user/loginWithSceneId", scene),
        (reqwest::Method::POST, "/api/user/order/pay", pay),
        (reqwest::Method::GET, "/api/user/order/detail", other_detail),
    ] {
        assert_eq!(reply["code"], 0, "{path}: {reply}");
        let reply = crate::app::Reply { status: 200, headers: Default::default(), body: reply.clone() };
        app.check(&method, path, &reply);
    }
    assert_eq!((gps["data"]["city_id"].as_i64(), gps["data"]["area_id"].as_i64()), (Some(440300), Some(440305)));
    assert_eq!(merchants["data"]["list"][0]["id"], 1031, "nearest first");
    assert_eq!((order["data"]["isOperSelf"].as_i64(), other["data"]["isOperSelf"].as_i64()), (Some(1), Some(0)));
    assert_eq!((paid["order_id"].as_str(), paid_other["order_id"].as_str()), (Some(order_no), Some(other_no)), "{paid} {paid_other}");
    assert_eq!(detail["data"]["items"].as_array().map(Vec::len), Some(2), "{detail}");
    assert_eq!(verified["completed"], false, "{verified}");
    assert_eq!(refund["data"]["amount"], "128.00", "{refund}");
    assert_eq!(scene["data"]["payload"]["order_no"], other_no, "{scene}");
    assert_eq!(pay["data"]["sdk_config"]["appId"], "wx_sandbox_o2o_oper5", "{pay}");
    assert_eq!((other_detail["data"]["status"].as_i64(), other_detail["data"]["isOperSelf"].as_i64()), (Some(4), Some(1)), "{other_detail}");
}
