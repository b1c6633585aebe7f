//! 3 列表页面 and the reviews behind them: the demo household's lists and house page (personal
//! data kept out), review details masked and private to their submitter, withdrawing reviews, the
//! 物业端's decision (and its race with a withdrawal), binding more houses, the owner's grants and
//! unbinding.

use serde_json::json;

use super::*;

#[tokio::test]
async fn house_get_shows_the_demo_household_to_its_members_only() {
    let app = TestApp::community().await;
    let owner = token(&app, DEMO_CODE).await;
    let detail = app.post(HOUSE, Some(&owner), json!({ "id": 1 })).await;
    assert_eq!((detail.status, detail.flat_code()), (200, 0), "{}", detail.body);
    insta::assert_json_snapshot!("community_house_detail_demo", detail.body);
    // The wife sees the same house; nobody else does.
    assert_eq!(house(&app, &token(&app, "demo-wife").await, 1).await["yibangding"], detail.body["data"]["yibangding"]);
    let not_mine = app.post(HOUSE, Some(&owner), json!({ "id": 2 })).await;
    assert_eq!((not_mine.status, not_mine.flat_code()), (404, 1), "{}", not_mine.body);
    let stranger = new_user(&app, "wx-stranger", "13812340031", "外人").await;
    assert_eq!(app.post(HOUSE, Some(&stranger), json!({ "id": 1 })).await.status, 404);
    assert_eq!(app.post(HOUSE, Some(&stranger), json!({ "id": 999 })).await.status, 404);
}

#[tokio::test]
async fn user_house_list_shows_houses_and_open_reviews_without_phones() {
    let app = TestApp::community().await;
    let owner = token(&app, DEMO_CODE).await;
    let reply = app.post(HOUSES_LIST, Some(&owner), json!({})).await;
    assert_eq!((reply.status, reply.flat_code()), (200, 0), "{}", reply.body);
    insta::assert_json_snapshot!("community_houses_list_demo", reply.body);
    let text = reply.body.to_string();
    assert!(digit_runs(&text, 11).is_empty() && !text.contains("****"), "no phone, masked or not: {text}");
    assert!(!text.contains("13700000001") && !text.contains(DEMO_PHONE));
    // The bound house, then the open reviews newest first (the refused 2, the pending 1).
    let statuses: Vec<&str> = reply.body["data"].as_array().unwrap().iter().map(|i| i["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["审核通过", "未通过", "待审核"]);
}

#[tokio::test]
async fn shenhe_get_masks_the_id_number_and_is_private_to_its_submitter() {
    let app = TestApp::community().await;
    let owner = token(&app, DEMO_CODE).await;
    let pending = app.post(SHENHE, Some(&owner), json!({ "id": 1 })).await;
    assert_eq!((pending.status, pending.flat_code()), (200, 0), "{}", pending.body);
    let data = &pending.body["data"];
    assert_eq!(data["idcard"], "130302********2131", "{data}");
    let text = pending.body.to_string();
    assert!(!text.contains(DEMO_IDCARD) && digit_runs(&text, 15).is_empty(), "{text}");
    assert_eq!((data["shenhe_status"].clone(), data["shenhe_type"].as_str()), (json!(2), Some("租客绑定")), "{data}");
    assert_eq!(data["shenhe_house_introduction"], "晨曦家园1栋1单元2楼202号");
    insta::assert_json_snapshot!("community_shenhe_detail_pending", redacted(&pending.body, &["/data/photo"]));
    let refused = app.post(SHENHE, Some(&owner), json!({ "id": 2 })).await;
    assert_eq!(
        (refused.body["data"]["shenhe_status"].clone(), refused.body["data"]["shenhe_refuse_reason"].as_str()),
        (json!(0), Some("请上传与业主关系证明材料")),
        "{}",
        refused.body
    );
    // Someone else's review, or none: 404.
    let wife = token(&app, "demo-wife").await;
    for id in [1, 2, 999] {
        let reply = app.post(SHENHE, Some(&wife), json!({ "id": id })).await;
        assert_eq!((reply.status, reply.flat_code()), (404, 1), "{id}: {}", reply.body);
    }
}

#[tokio::test]
async fn shenhe_delete_withdraws_ones_own_open_reviews_only() {
    let app = TestApp::community().await;
    let owner = token(&app, DEMO_CODE).await;
    let wife = token(&app, "demo-wife").await;
    let foreign = app.delete(SHENHE, Some(&wife), json!({ "id": 1 })).await;
    assert_eq!((foreign.status, foreign.body["msg"].as_str()), (400, Some("删除失败")), "{}", foreign.body);
    // The refused one and the pending one are the owner's to withdraw.
    for id in [2, 1] {
        let deleted = app.delete(SHENHE, Some(&owner), json!({ "id": id })).await;
        assert_eq!((deleted.status, deleted.flat_code()), (200, 0), "{id}: {}", deleted.body);
        assert_eq!(app.post(SHENHE, Some(&owner), json!({ "id": id })).await.status, 404);
    }
    let list = houses_list(&app, &owner).await;
    assert_eq!(list.len(), 1, "only the bound house is left: {list:?}");
    assert_eq!(app.delete(SHENHE, Some(&owner), json!({ "id": 1 })).await.status, 400, "already gone");
    // An approved review is history: it cannot be withdrawn.
    let bound = app.post(BIND, Some(&owner), json!({ "phone": DEMO_PHONE, "house_id": 6, "role": "业主", "choice": 1 })).await;
    assert_eq!(bound.status, 200, "{}", bound.body);
    let review = newest_review(&app, &owner).await;
    assert_eq!(decide(&app, review, "approve", None).await.0, 200);
    let history = app.delete(SHENHE, Some(&owner), json!({ "id": review })).await;
    assert_eq!((history.status, history.flat_code()), (400, 1), "{}", history.body);
}

/// The id of the caller's newest open review in 3.1.1.
async fn newest_review(app: &TestApp, token: &str) -> i64 {
    houses_list(app, token).await.iter().filter_map(|i| i["shenhe_id"].as_i64()).max().expect("an open review")
}

#[tokio::test]
async fn the_reviewer_decides_only_pending_reviews() {
    let app = TestApp::community().await;
    let owner = token(&app, DEMO_CODE).await;
    let (status, body) = decide(&app, 1, "reject", Some("照片不清晰")).await;
    assert_eq!((status, &body["shenhe_status"]), (200, &json!(0)), "{body}");
    let detail = app.post(SHENHE, Some(&owner), json!({ "id": 1 })).await;
    assert_eq!(detail.body["data"]["shenhe_refuse_reason"], "照片不清晰");
    assert_eq!(permission(&app, &owner).await, "HouseMember");
    for id in [1, 2] {
        assert_eq!(decide(&app, id, "approve", None).await.0, 409, "review {id} is decided");
    }
    assert_eq!(decide(&app, 999, "approve", None).await.0, 404);
    assert_eq!(decide(&app, 1, "maybe", None).await.0, 400);
    // A refusal leaves no binding; the house stays the owner's only one.
    assert_eq!(houses_list(&app, &owner).await.iter().filter(|i| i["house_id"].is_i64()).count(), 1);
}

#[tokio::test]
async fn concurrent_approval_and_withdrawal_of_one_review_one_wins() {
    let app = TestApp::community().await;
    let owner = token(&app, DEMO_CODE).await;
    let (mut approved, mut withdrawn, mut rounds) = (0, 0, 0);
    // Review 1 (house 4, seeded), then one more bind at a time on houses without an owner.
    let mut houses = vec![4, 2, 5, 6].into_iter();
    let mut house_id = houses.next().unwrap();
    let mut review = 1;
    loop {
        let (decided, deleted) =
            tokio::join!(decide(&app, review, "approve", None), app.delete(SHENHE, Some(&owner), json!({ "id": review })));
        rounds += 1;
        let bound = houses_list(&app, &owner).await.iter().any(|i| i["house_id"] == json!(house_id));
        let gone = app.post(SHENHE, Some(&owner), json!({ "id": review })).await.status == 404;
        match (decided.0, deleted.status) {
            (200, 400) => {
                assert!(bound && !gone, "round {rounds}: approved, so bound and kept");
                approved += 1;
                match houses.next() {
                    Some(next) => house_id = next,
                    None => break,
                }
            }
            // The reviewer finds it withdrawn: 404 when it was gone before the reviewer looked,
            // 409 when it went between the look and the decision.
            (404 | 409, 200) => {
                assert!(!bound && gone, "round {rounds}: withdrawn, so neither bound nor kept");
                withdrawn += 1;
            }
            other => panic!("round {rounds}: exactly one must win, got {other:?}: {:?} {}", decided.1, deleted.body),
        }
        if rounds == 8 {
            break;
        }
        let filed = app.post(BIND, Some(&owner), json!({ "phone": DEMO_PHONE, "house_id": house_id, "role": "租客", "choice": 1 })).await;
        assert_eq!(filed.status, 200, "round {rounds}: {}", filed.body);
        review = newest_review(&app, &owner).await;
    }
    assert_eq!(approved + withdrawn, rounds);
    // Whatever won, the owner's permission is consistent with the bindings.
    assert_eq!(permission(&app, &owner).await, "HouseMember");
}

#[tokio::test]
async fn house_bind_files_one_more_house_for_a_person_on_record() {
    let app = TestApp::community().await;
    let owner = token(&app, DEMO_CODE).await;
    // Already bound to house 1: 409.
    let again = app.post(BIND, Some(&owner), json!({ "phone": DEMO_PHONE, "house_id": 1, "role": "业主" })).await;
    assert_eq!((again.status, again.flat_code()), (409, 1), "{}", again.body);
    // House 6 by row numbers: 儿子 (12), 闲置 (2), 办公 (7), 公有 (2), 其他 (3).
    let body = json!({ "phone": DEMO_PHONE, "house_id": 6, "role": 12, "status": 2, "use": 7, "xingzhi": 2, "type": 3, "choice": 1 });
    let filed = app.post(BIND, Some(&owner), body.clone()).await;
    assert_eq!((filed.status, filed.flat_code()), (200, 0), "{}", filed.body);
    let duplicate = app.post(BIND, Some(&owner), body).await;
    assert_eq!((duplicate.status, duplicate.flat_code()), (409, 1), "{}", duplicate.body);
    let review = newest_review(&app, &owner).await;
    let detail = app.post(SHENHE, Some(&owner), json!({ "id": review })).await.body["data"].clone();
    assert_eq!(
        [&detail["house_role"], &detail["house_status"], &detail["use"], &detail["xingzhi"], &detail["zhuhuleixing"]],
        [&json!("儿子"), &json!("闲置"), &json!("办公"), &json!("公有"), &json!("其他")],
        "{detail}"
    );
    assert_eq!(decide(&app, review, "approve", None).await.0, 200);
    let houses: Vec<i64> = houses_list(&app, &owner).await.iter().filter_map(|i| i["house_id"].as_i64()).collect();
    assert_eq!(houses, [1, 6]);
    // Values outside the tables are refused.
    for (field, value) in [("role", json!(15)), ("role", json!("表哥")), ("use", json!(0)), ("xingzhi", json!("集体")), ("type", json!(4))] {
        let mut body = json!({ "phone": DEMO_PHONE, "house_id": 2, "role": "租客", "choice": 1 });
        body[field] = value.clone();
        let refused = app.post(BIND, Some(&owner), body).await;
        assert_eq!((refused.status, refused.flat_code()), (400, 1), "{field}={value}: {}", refused.body);
    }
    // A 住户类型 that contradicts the role: an owner as 租户 (2), a tenant as 业主.
    for (role, kind) in [(json!("业主"), json!(2)), (json!("租客"), json!("业主"))] {
        let body = json!({ "phone": DEMO_PHONE, "house_id": 2, "role": role, "type": kind, "choice": 1 });
        let refused = app.post(BIND, Some(&owner), body).await;
        assert_eq!((refused.status, refused.flat_code()), (400, 1), "{role} {kind}: {}", refused.body);
        assert!(refused.body["msg"].as_str().unwrap().starts_with("居民角色为"), "{}", refused.body);
    }
    // An account with no person on record must use 2.4.1 first.
    let newcomer = new_user(&app, "wx-bind", "13812340032", "郑新").await;
    let first = app.post(BIND, Some(&newcomer), json!({ "phone": "13812340032", "house_id": 2, "role": "业主" })).await;
    assert_eq!((first.status, first.flat_code()), (400, 1), "{}", first.body);
}

#[tokio::test]
async fn a_members_review_filed_before_the_house_had_an_owner_is_not_approved_after_one() {
    let app = TestApp::community().await;
    let member = token(&app, DEMO_CODE).await;
    // House 6 has no owner: a tenant's application needs no consent.
    let filed = app.post(BIND, Some(&member), json!({ "phone": DEMO_PHONE, "house_id": 6, "role": "租客", "choice": 1 })).await;
    assert_eq!(filed.status, 200, "{}", filed.body);
    let tenant_review = newest_review(&app, &member).await;
    // Then someone becomes its owner.
    app.server.clock.advance(std::time::Duration::from_secs(1));
    let phone = "13812340035";
    let newcomer = new_user(&app, "wx-later-owner", phone, "褚业主").await;
    let url = photo(&app, &newcomer, 6).await;
    let owned = app.post(SUBMIT, Some(&newcomer), form(phone, &id_number("13030219800101011"), "褚业主", &url, 6, json!("业主"), 1)).await;
    assert_eq!(owned.status, 200, "{}", owned.body);
    assert_eq!(decide(&app, newest_review(&app, &newcomer).await, "approve", None).await.0, 200);
    // The tenant's application had no consent of that owner: it is not approved.
    let (status, body) = decide(&app, tenant_review, "approve", None).await;
    assert_eq!(status, 409, "{body}");
    let detail = house(&app, &newcomer, 6).await;
    assert!(detail["yibangding"].as_array().unwrap().iter().all(|m| m["role"] != "租客"), "{detail}");
}

#[tokio::test]
async fn replacing_the_owner_ends_the_old_owners_binding_on_approval() {
    let app = TestApp::community().await;
    let phone = "13812340033";
    let newcomer = new_user(&app, "wx-replace", phone, "冯新主").await;
    let url = photo(&app, &newcomer, 1).await;
    // 替换业主 needs no consent of the owner being replaced: the 物业端 checks the papers.
    let filed = app.post(SUBMIT, Some(&newcomer), form(phone, &id_number("13030219800101001"), "冯新主", &url, 1, json!("业主"), 2)).await;
    assert_eq!((filed.status, filed.flat_code()), (200, 0), "{}", filed.body);
    let review = newest_review(&app, &newcomer).await;
    let detail = app.post(SHENHE, Some(&newcomer), json!({ "id": review })).await;
    assert_eq!(detail.body["data"]["shenhe_type"], "替换业主");
    assert_eq!(decide(&app, review, "approve", None).await.0, 200);
    let owner = token(&app, DEMO_CODE).await;
    assert!(houses_list(&app, &owner).await.iter().all(|i| i["house_id"] != json!(1)), "the old owner is unbound");
    let detail = house(&app, &newcomer, 1).await;
    let owners: Vec<&str> = detail["yibangding"].as_array().unwrap().iter().filter(|m| m["role"] == "业主").map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(owners, ["冯新主"], "{detail}");
    // The new owner now answers the owner lookup.
    next_minute(&app);
    let checker = new_user(&app, "wx-after", "13812340034", "卫查").await;
    next_minute(&app);
    assert_eq!(phone_check(&app, &checker, "13812340034", 1).await.status, 200);
    let lookup = app.post(OWNER, Some(&checker), json!({ "id": 1 })).await;
    assert_eq!(lookup.data()["people_phone"], phone, "{}", lookup.body);
}

/// The owner's consent is the consent of whoever owns the house when the form is filed: one a
/// former owner gave before a 替换业主 was approved does not count.
#[tokio::test]
async fn a_former_owners_consent_does_not_count() {
    let app = TestApp::community().await;
    let phone = "13812340061";
    let tenant = new_user(&app, "wx-consent-old", phone, "钱租客").await;
    next_minute(&app);
    assert_eq!(phone_check(&app, &tenant, phone, 1).await.status, 200);
    owner_consent(&app, &tenant, 1).await;
    // House 1 changes owner.
    let owner_phone = "13812340062";
    let newcomer = new_user(&app, "wx-replace-after-consent", owner_phone, "冯新主").await;
    let url = photo(&app, &newcomer, 1).await;
    let replace = form(owner_phone, &id_number("13030219800101031"), "冯新主", &url, 1, json!("业主"), 2);
    assert_eq!(app.post(SUBMIT, Some(&newcomer), replace).await.status, 200);
    assert_eq!(decide(&app, newest_review(&app, &newcomer).await, "approve", None).await.0, 200);
    // The consent was 王建国's, who owns it no more.
    let url = photo(&app, &tenant, 1).await;
    let filed = app.post(SUBMIT, Some(&tenant), form(phone, &id_number("13030219800101051"), "钱租客", &url, 1, json!("租客"), 1)).await;
    assert_eq!((filed.status, filed.body["msg"].as_str()), (400, Some("请先验证业主手机号")), "{}", filed.body);
}

/// Two 替换业主 filed against one owner: the first approved replaces that owner; the second
/// would remove an owner it was never filed against, and is not approved.
#[tokio::test]
async fn of_two_replacements_filed_against_one_owner_only_the_first_is_approved() {
    let app = TestApp::community().await;
    let mut reviews = Vec::new();
    for (code, phone, name, idcard) in [("wx-replace-a", "13812340063", "甲新主", "13030219800101071"), ("wx-replace-b", "13812340064", "乙新主", "13030219800101091")] {
        let token = new_user(&app, code, phone, name).await;
        let url = photo(&app, &token, 1).await;
        let filed = app.post(SUBMIT, Some(&token), form(phone, &id_number(idcard), name, &url, 1, json!("业主"), 2)).await;
        assert_eq!(filed.status, 200, "{}", filed.body);
        reviews.push((token.clone(), newest_review(&app, &token).await));
    }
    assert_eq!(decide(&app, reviews[0].1, "approve", None).await.0, 200);
    let (status, body) = decide(&app, reviews[1].1, "approve", None).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.to_string().contains("替换业主申请须重新提交"), "{body}");
    let detail = house(&app, &reviews[0].0, 1).await;
    let owners: Vec<&str> = detail["yibangding"].as_array().unwrap().iter().filter(|m| m["role"] == "业主").map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(owners, ["甲新主"], "{detail}");
    // Refused, it stays pending: the reviewer can still reject it.
    assert_eq!(decide(&app, reviews[1].1, "reject", None).await.0, 200);
}

#[tokio::test]
async fn house_shouquan_and_charge_flip_a_members_grants_for_the_owner_only() {
    let app = TestApp::community().await;
    let owner = token(&app, DEMO_CODE).await;
    let wife = token(&app, "demo-wife").await;
    let son = token(&app, "demo-son").await;
    // 刘芳 (binding 3): may not manage, may pay; 王小明 (4): may manage, may not pay.
    let labels = |detail: &Value| -> Vec<(String, String)> {
        detail["yibangding"].as_array().unwrap().iter().map(|m| (m["name"].as_str().unwrap().to_owned(), m["shouquan"].as_str().unwrap().to_owned())).collect()
    };
    let before = labels(&house(&app, &owner, 1).await);
    assert!(before.contains(&("刘芳".into(), "授权管理".into())) && before.contains(&("王小明".into(), "禁用管理".into())), "{before:?}");
    assert!(before.contains(&("王德明".into(), "邀请激活".into())) && before.contains(&("王建国".into(), "管理员".into())), "{before:?}");
    let flip = |path: &'static str, id: i64| app.put(path, Some(&owner), json!({ "id": id }));
    let manage = flip(SHOUQUAN, 3).await;
    assert_eq!((manage.status, manage.flat_code(), manage.body["data"].as_str()), (200, 0, Some("禁止管理")), "{}", manage.body);
    assert!(manage.body["message"].as_str().unwrap().contains("改为了1"), "{}", manage.body);
    assert_eq!(flip(SHOUQUAN, 3).await.body["data"], "授权管理");
    assert_eq!(flip(SHOUQUAN, 3).await.body["data"], "禁止管理");
    assert!(labels(&house(&app, &owner, 1).await).contains(&("刘芳".into(), "禁用管理".into())));
    // Paying: the son sees no fees until granted; the wife sees them until revoked.
    assert_eq!(order_ids(&app, &son, json!({})).await, Vec::<i64>::new());
    assert_eq!(order_ids(&app, &wife, json!({})).await, [1, 2, 4, 5]);
    let granted = flip(CHARGE, 4).await;
    assert_eq!((granted.status, granted.body["data"].as_str()), (200, Some("禁止支付")), "{}", granted.body);
    assert_eq!(order_ids(&app, &son, json!({})).await, [1, 2, 4, 5]);
    let revoked = flip(CHARGE, 3).await;
    assert_eq!(revoked.body["data"], "授权支付", "{}", revoked.body);
    assert_eq!(order_ids(&app, &wife, json!({})).await, Vec::<i64>::new());
    let pay = app.post(PAY, Some(&wife), json!({ "ids": "1" })).await;
    assert_eq!((pay.status, pay.flat_code()), (404, 1), "{}", pay.body);
    // Not on himself, not by a member, not on another house's binding or none.
    for (token, path, id, who) in [
        (&owner, SHOUQUAN, 1, "the owner himself"),
        (&owner, CHARGE, 1, "the owner himself"),
        (&son, SHOUQUAN, 3, "a member who may manage"),
        (&wife, CHARGE, 4, "a member"),
        (&owner, SHOUQUAN, 999, "no binding"),
    ] {
        let refused = app.put(path, Some(token), json!({ "id": id })).await;
        assert_eq!((refused.status, refused.flat_code()), (400, 1), "{who}: {}", refused.body);
    }
}

#[tokio::test]
async fn house_unbind_by_the_owner_or_the_member_only() {
    let app = TestApp::community().await;
    let owner = token(&app, DEMO_CODE).await;
    let wife = token(&app, "demo-wife").await;
    let son = token(&app, "demo-son").await;
    let stranger = new_user(&app, "wx-unbind", "13812340035", "褚外").await;
    for (token, id, who) in [(&owner, 1, "the owner himself"), (&wife, 4, "a member unbinding another"), (&stranger, 4, "a stranger"), (&owner, 999, "no binding")] {
        let refused = app.delete(SHOUQUAN, Some(token), json!({ "id": id })).await;
        assert_eq!((refused.status, refused.flat_code()), (400, 1), "{who}: {}", refused.body);
    }
    // The owner removes his son; the wife leaves; the unactivated father is removed.
    let removed = app.delete(SHOUQUAN, Some(&owner), json!({ "id": 4 })).await;
    assert_eq!((removed.status, removed.flat_code(), removed.body["message"].as_str()), (200, 0, Some("删除成功")), "{}", removed.body);
    assert_eq!(houses_list(&app, &son).await, Vec::<Value>::new());
    assert_eq!(permission(&app, &son).await, "NewMember");
    assert_eq!(app.delete(SHOUQUAN, Some(&wife), json!({ "id": 3 })).await.status, 200);
    assert_eq!(app.delete(SHOUQUAN, Some(&owner), json!({ "id": 2 })).await.status, 200);
    let detail = house(&app, &owner, 1).await;
    assert_eq!(detail["yibangding"].as_array().unwrap().len(), 1, "{detail}");
    assert_eq!(detail["weijihuo"], json!([]), "{detail}");
    assert_eq!(houses_list(&app, &owner).await[0]["not_register"], json!(0));
    assert_eq!(app.delete(SHOUQUAN, Some(&owner), json!({ "id": 4 })).await.status, 400, "already gone");
}
