//! 000 §4: `heat_bind`, `heat_account_get` — an account binds once, only for its registered
//! owner, and says so only to someone who knows the owner.

use super::{OWNER_ID, bind_body, order, user};
use crate::app::TestApp;

#[tokio::test]
async fn heat_bind_once_and_only_for_its_owner() {
    let app = TestApp::heating().await;
    let (first, _) = user(&app, "13900000004").await;
    let (second, _) = user(&app, "13900000005").await;
    let wrong_name = app.post("/api/heat/bind", Some(&first), bind_body("李四", OWNER_ID)).await;
    assert_eq!((wrong_name.status, wrong_name.code()), (400, 400));
    let wrong_id = app.post("/api/heat/bind", Some(&first), bind_body("张三", "11010519491231002X")).await;
    assert_eq!((wrong_id.status, wrong_id.code()), (400, 400));
    let unknown = app
        .post("/api/heat/bind", Some(&first), serde_json::json!({"heat_account": "H999", "real_name": "张三", "id_card": OWNER_ID, "address": "x"}))
        .await;
    assert_eq!((unknown.status, unknown.code()), (404, 404));
    assert_eq!(app.get("/api/heat/account", Some(&first)).await.code(), 404);
    assert_eq!(app.post("/api/heat/bind", Some(&first), bind_body("张三", OWNER_ID)).await.status, 200);
    // Whether an account is bound is said only to someone who knows its owner: a stranger
    // guessing gets the same answer as before it was bound.
    let probe = app.post("/api/heat/bind", Some(&second), bind_body("王五", "11010519491231002X")).await;
    assert_eq!((probe.status, probe.body["message"].as_str()), (400, Some("户主姓名或身份证号与供热账号登记信息不一致")));
    let taken = app.post("/api/heat/bind", Some(&second), bind_body("张三", OWNER_ID)).await;
    assert_eq!((taken.status, taken.code(), taken.body["message"].as_str()), (400, 400, Some("供热账号已被绑定")));
    // The other user sees no order of this account.
    let (order_id, _) = order(&app, &first).await;
    assert_eq!(app.get(&format!("/api/payment/status/{order_id}"), Some(&second)).await.status, 404);
    assert_eq!(app.get("/api/statistics/user", Some(&second)).await.code(), 404);
}
