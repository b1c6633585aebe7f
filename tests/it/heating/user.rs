//! 000 §3: `user_profile_get`, `user_profile_update`, `user_password_update`.

use std::time::Duration;

use serde_json::json;

use super::{code, user};
use crate::app::TestApp;

#[tokio::test]
async fn user_profile_update_and_user_password_update() {
    let app = TestApp::heating().await;
    let phone = "13900000003";
    let (token, _) = user(&app, phone).await;
    let bad = app.put("/api/user/profile", Some(&token), json!({"id_card": "610102199001011234"})).await;
    assert_eq!((bad.status, bad.code()), (400, 400));
    // Text past the contract's bounds (昵称 32 characters, 姓名 50, 地址 200) is refused.
    for (field, length) in [("nickname", 33), ("real_name", 51), ("address", 201)] {
        let long = app.put("/api/user/profile", Some(&token), json!({ field: "长".repeat(length) })).await;
        assert_eq!((long.status, long.code()), (400, 400), "{field}: {}", long.body);
    }
    let longest = app.put("/api/user/profile", Some(&token), json!({"nickname": "长".repeat(32)})).await;
    assert_eq!(longest.status, 200, "{}", longest.body);
    let updated =
        app.put("/api/user/profile", Some(&token), json!({"nickname": "新昵称", "id_card": "11010519491231002x", "address": "新地址"})).await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.data()["updated_fields"], json!(["nickname", "id_card", "address"]));
    let same = app.put("/api/user/profile", Some(&token), json!({"nickname": "新昵称"})).await;
    assert_eq!(same.data()["updated_fields"], json!([]));
    let profile = app.get("/api/user/profile", Some(&token)).await;
    assert_eq!(profile.data()["id_card"], "110105********002X");
    // Password: the reset code first — without one, the old password is not even compared, so
    // a token alone cannot try passwords — then the old password (1005), which spends the code.
    let change = |old: &str, code: &str| {
        json!({"old_password": old, "new_password": "abcdef123", "phone": phone, "code": code})
    };
    for old in ["nope-nope", "123456789"] {
        let guessed = app.put("/api/user/password", Some(&token), change(old, "123456")).await;
        assert_eq!((guessed.status, guessed.code()), (400, 1002), "{old}: {}", guessed.body);
    }
    app.server.clock.advance(Duration::from_secs(61));
    let spent = code(&app, phone, "reset_password").await;
    let wrong = app.put("/api/user/password", Some(&token), change("nope-nope", &spent)).await;
    assert_eq!((wrong.status, wrong.code()), (400, 1005));
    let after_wrong = app.put("/api/user/password", Some(&token), change("123456789", &spent)).await;
    assert_eq!(after_wrong.code(), 1002, "a wrong old password spent the code: {}", after_wrong.body);
    app.server.clock.advance(Duration::from_secs(61));
    let reset_code = code(&app, phone, "reset_password").await;
    // A second device signed in before the change is signed out by it; this one stays.
    let other_device = {
        app.server.clock.advance(Duration::from_secs(61));
        let login_code = code(&app, phone, "login").await;
        let login = app.post("/api/auth/login", None, json!({"phone": phone, "code": login_code})).await;
        login.data()["token"].as_str().unwrap().to_owned()
    };
    let changed = app.put("/api/user/password", Some(&token), change("123456789", &reset_code)).await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(app.get("/api/user/profile", Some(&other_device)).await.status, 401);
    assert_eq!(app.get("/api/user/profile", Some(&token)).await.status, 200);
    let reused = app.put("/api/user/password", Some(&token), change("abcdef123", &reset_code)).await;
    assert_eq!(reused.code(), 1002, "the code was used up");
}

/// A string holding U+0000 in a JSON body is the field's fault (400 naming it), never a
/// database error: PostgreSQL's text cannot store it. Nothing of the request is written. A
/// backslash followed by `u0000` is text like any other.
#[tokio::test]
async fn a_string_holding_nul_is_refused_naming_its_field() {
    let app = TestApp::heating().await;
    let (token, _) = user(&app, "13900000013").await;
    let nul = app.put("/api/user/profile", Some(&token), json!({"nickname": "a\u{0}b"})).await;
    assert_eq!((nul.status, nul.code()), (400, 400), "{}", nul.body);
    let message = nul.body["message"].as_str().unwrap();
    assert!(message.contains("nickname") && message.contains("U+0000"), "{message}");
    let beside = app.put("/api/user/profile", Some(&token), json!({"address": "新地址", "real_name": "\u{0}"})).await;
    assert_eq!(beside.status, 400, "{}", beside.body);
    assert!(beside.body["message"].as_str().unwrap().contains("real_name"), "{}", beside.body);
    assert_eq!(app.get("/api/user/profile", Some(&token)).await.data()["address"], json!(null), "nothing written");
    // A field serde would skip unread (a number past a float's range, no field of the
    // operation) does not hide it.
    let hidden = app
        .client
        .put(app.url("/api/user/profile"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(r#"{"nickname":"a\u0000b","x":1e400}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(hidden.status(), 400);
    let text = app.put("/api/user/profile", Some(&token), json!({"nickname": "a\\u0000b"})).await;
    assert_eq!(text.status, 200, "{}", text.body);
    assert_eq!(app.get("/api/user/profile", Some(&token)).await.data()["nickname"], json!("a\\u0000b"));
}

/// Profile reads in flight together are read together (`mpapi::coalesce`): each still answers
/// its own caller's user, and a session revoked before the reads is refused among live ones.
#[tokio::test]
async fn user_profile_get_concurrently_answers_each_caller_their_own() {
    let app = TestApp::heating().await;
    let phones = ["13900000031", "13900000032", "13900000033"];
    let mut callers = Vec::new();
    for phone in phones {
        let (token, _) = user(&app, phone).await;
        callers.push((token, Some(phone)));
    }
    // A second session of the first user, ended before the reads.
    let (ended, _) = super::login(&app, phones[0]).await;
    assert_eq!(app.post("/api/auth/logout", Some(&ended), json!({})).await.status, 200);
    callers.push((ended, None));

    let reads: Vec<_> = (0..48).map(|n| &callers[n % callers.len()]).collect();
    let replies = super::futures_join_all(reads.iter().map(|(token, _)| app.get("/api/user/profile", Some(token))).collect()).await;
    for ((_, phone), reply) in reads.iter().zip(&replies) {
        match phone {
            Some(phone) => {
                assert_eq!(reply.status, 200, "{}", reply.body);
                assert_eq!(reply.data()["phone"], *phone, "{}", reply.body);
            }
            None => assert_eq!((reply.status, reply.code()), (401, 401), "{}", reply.body),
        }
    }
}
