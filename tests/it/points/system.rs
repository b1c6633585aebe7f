//! 001 §4: `system_status_get`, `system_notice_get`, and maintenance (the contract's
//! `Maintenance` response): while the stored status says so, the writes of users and metered
//! services answer HTTP 503 with code 500; reads, logins, refreshes and WeChat Pay's notifies go
//! on.

use std::time::Duration;

use mpapi::clock::iso_s;
use mpapi::storage::points::SystemStatus;
use serde_json::json;

use super::*;
use crate::app::TestApp;

#[tokio::test]
async fn system_status_get_in_maintenance_writes_answer_503() {
    let app = TestApp::points().await;
    let token = login(&app, "demo").await;
    let (key_id, secret) = create_key(&app, &token, "维护前", Some(12)).await;
    let pending = order(&app, &token, "pkg_basic_1000").await;
    let now = app.server.clock.now_ms();
    let end = now - now % 1000 + 3_600_000;
    let status = SystemStatus { api_status: "error".into(), message: "系统升级维护中".into(), maintenance: true, maintenance_end_time: Some(end) };
    let _ = app.server.db.points_reference().set_status(&status, now).await.unwrap();
    let shown = app.get(STATUS, None).await;
    assert_eq!(shown.data(), &json!({"apiStatus": "error", "message": "系统升级维护中", "maintenance": true, "maintenanceEndTime": iso_s(end)}));

    // Every write of a user or a metered service waits.
    let writes = [
        (CREATE_ORDER, Some(token.as_str()), json!({"packageId": "pkg_standard_5000"})),
        (KEY_CREATE, Some(token.as_str()), json!({"name": "维护中"})),
        (CONSUME, Some(secret.as_str()), json!({"cost": 1, "idempotencyKey": "maintenance", "title": "调用"})),
        (KEY_STATUS, Some(token.as_str()), json!({"id": key_id, "status": "inactive"})),
        (KEY_DELETE, Some(token.as_str()), json!({"id": key_id})),
    ];
    for (path, credential, body) in &writes {
        let refused = app.post(path, *credential, body.clone()).await;
        assert_eq!((refused.status, refused.code(), &refused.body["data"]), (503, 500, &json!(null)), "{path}: {}", refused.body);
        let message = refused.body["message"].as_str().unwrap();
        assert!(message.starts_with("系统升级维护中") && message.contains(&format!("预计{}恢复", iso_s(end))), "{path}: {message}");
    }
    // Reads, logins and refreshes go on.
    for path in [USER_INFO, PACKAGES, KEYS, PURCHASES, CONSUMPTION] {
        assert_eq!(app.get(path, Some(&token)).await.status, 200, "{path}");
    }
    assert_eq!(app.get(NOTICE, None).await.status, 200);
    assert_eq!(check_payment(&app, &token, &pending).await["isPaid"], false);
    let newcomer = app.post(LOGIN, None, json!({"code": "maintenance-newcomer"})).await;
    assert_eq!((newcomer.status, newcomer.data()["isNewUser"].as_bool()), (200, Some(true)));
    let refreshed = app.post(REFRESH, Some(&token), json!({})).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    // The token was exchanged: its successor goes on.
    let exchanged = token.clone();
    let token = refreshed.data()["token"].as_str().unwrap().to_owned();
    // A payment made before the maintenance is still credited when its notify comes.
    let paid = app.sandbox_pay(&pending, "success").await;
    assert_eq!(paid.body["notify"]["status"], 200, "{}", paid.body);
    assert_eq!(check_payment(&app, &token, &pending).await["points"], 6028);
    // Nothing the refused writes asked for happened.
    let listed = keys(&app, &token).await;
    assert_eq!((listed.len(), listed[0]["id"].as_str(), listed[0]["status"].as_str()), (4, Some(key_id.as_str()), Some("active")));
    assert_eq!(consumption(&app, &token).await["total"], 4);
    assert_eq!(purchases(&app, &token).await["total"], 4);

    // Over: the writes work again.
    let normal = SystemStatus { api_status: "normal".into(), message: "服务运行正常".into(), maintenance: false, maintenance_end_time: None };
    let _ = app.server.db.points_reference().set_status(&normal, app.server.clock.now_ms()).await.unwrap();
    assert_eq!(app.get(STATUS, None).await.data()["maintenance"], false);
    for (path, credential, body) in writes {
        let credential = if credential == Some(exchanged.as_str()) { Some(token.as_str()) } else { credential };
        let reply = app.post(path, credential, body).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    }
    assert_eq!(balance(&app, &token).await, 6027);
}

#[tokio::test]
async fn system_status_get_in_maintenance_without_an_end() {
    let app = TestApp::points().await;
    let token = login(&app, "maintenance-open-ended").await;
    let status = SystemStatus { api_status: "normal".into(), message: "维护".into(), maintenance: true, maintenance_end_time: None };
    let _ = app.server.db.points_reference().set_status(&status, app.server.clock.now_ms()).await.unwrap();
    let refused = app.post(KEY_CREATE, Some(&token), json!({"name": "x"})).await;
    assert_eq!((refused.status, refused.body["message"].as_str()), (503, Some("系统升级维护中，期间暂停API调用与积分购买")));
    assert_eq!(app.get(STATUS, None).await.data()["maintenanceEndTime"], json!(null));
}

/// A maintenance announced while the service runs normally is announced only until its expected
/// end; maintenance that is on stays on past its estimate.
#[tokio::test]
async fn an_announced_maintenance_is_no_longer_announced_after_its_end() {
    let app = TestApp::points().await;
    let now = app.server.clock.now_ms();
    let end = now - now % 1000 + 600_000;
    let message = format!("服务运行正常，系统将进行升级维护，预计{}结束", iso_s(end));
    let planned = SystemStatus { api_status: "normal".into(), message: message.clone(), maintenance: false, maintenance_end_time: Some(end) };
    let _ = app.server.db.points_reference().set_status(&planned, now).await.unwrap();
    let shown = app.get(STATUS, None).await;
    assert_eq!(shown.data(), &json!({"apiStatus": "normal", "message": message, "maintenance": false, "maintenanceEndTime": iso_s(end)}));
    app.server.clock.advance(Duration::from_secs(601));
    let over = app.get(STATUS, None).await;
    assert_eq!(over.data(), &json!({"apiStatus": "normal", "message": "服务运行正常", "maintenance": false, "maintenanceEndTime": null}), "{}", over.body);

    let on = SystemStatus { api_status: "error".into(), message: "系统升级维护中".into(), maintenance: true, maintenance_end_time: Some(end + 1_200_000) };
    let _ = app.server.db.points_reference().set_status(&on, app.server.clock.now_ms()).await.unwrap();
    app.server.clock.advance(Duration::from_secs(1_800));
    let late = app.get(STATUS, None).await;
    assert_eq!(late.data(), &json!({"apiStatus": "error", "message": "系统升级维护中", "maintenance": true, "maintenanceEndTime": iso_s(end + 1_200_000)}), "{}", late.body);
}

#[tokio::test]
async fn system_notice_get_shows_a_notice_within_its_window() {
    let app = TestApp::points().await;
    let notice = app.get(NOTICE, None).await;
    assert_eq!((notice.status, notice.code(), notice.data()["hasNotice"].as_bool()), (200, 0, Some(true)));
    let end = chrono::DateTime::parse_from_rfc3339(notice.data()["endTime"].as_str().unwrap()).unwrap();
    let start = chrono::DateTime::parse_from_rfc3339(notice.data()["startTime"].as_str().unwrap()).unwrap();
    assert!(start.to_utc() <= app.server.clock.now() && app.server.clock.now() < end.to_utc(), "{}", notice.body);
    // A year on, the demo notice is over.
    app.server.clock.advance(Duration::from_secs(366 * 86_400));
    let over = app.get(NOTICE, None).await;
    assert_eq!(over.data()["hasNotice"], false, "{}", over.body);
    assert!(over.data().get("content").is_none_or(|c| c.is_null()), "{}", over.body);
}

/// An operator withdraws a notice published by mistake (`mpapi points withdraw-notices`): the one
/// shown and one still to come are never shown again; a notice published afterwards is.
#[tokio::test]
async fn withdrawn_notices_are_not_shown() {
    use mpapi::storage::points::Notice;
    let app = TestApp::points().await;
    let notices = app.server.db.points_reference();
    let now = app.server.clock.now_ms();
    let later = Notice { content: "明日维护".into(), start_time: now + 3_600_000, end_time: now + 7_200_000 };
    notices.add_notice("notice_later", &later).await.unwrap();
    assert_eq!(app.get(NOTICE, None).await.data()["hasNotice"], true);
    // The demo notice and the coming one.
    assert_eq!(notices.withdraw_notices(now).await.unwrap(), 2);
    assert_eq!(app.get(NOTICE, None).await.data()["hasNotice"], false);
    app.server.clock.advance(Duration::from_secs(5_400));
    assert_eq!(app.get(NOTICE, None).await.data()["hasNotice"], false);
    let now = app.server.clock.now_ms();
    let fresh = Notice { content: "维护已完成".into(), start_time: now, end_time: now + 60_000 };
    notices.add_notice("notice_fresh", &fresh).await.unwrap();
    assert_eq!(app.get(NOTICE, None).await.data()["content"], "维护已完成");
}
