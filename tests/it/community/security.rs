//! 2.2 查询安防数据库数据 and the owner's consent: the phone check needs a verify code, the
//! owner lookup needs a checked phone, a yezhu code goes only to an owner just looked up, a
//! tenant or family member of a house with an owner needs that owner's code, and the platform's
//! outage is answered in the API's envelope.

use serde_json::json;

use super::*;

/// Owner lookups an account has a day (`community::service::OWNER_LOOKUPS_PER_DAY`).
const OWNER_LOOKUPS: usize = mpapi::community::service::OWNER_LOOKUPS_PER_DAY;

/// A newcomer with a checked phone (not on the platform); its token.
async fn checked(app: &TestApp, wx_code: &str, phone: &str) -> String {
    let token = new_user(app, wx_code, phone, "钱新人").await;
    next_minute(app);
    let check = phone_check(app, &token, phone, 1).await;
    assert_eq!((check.status, &check.body["code"]), (200, &json!("2")), "{}", check.body);
    token
}

/// A complete form of `token`'s newcomer for `house_id` with `role`/`choice`.
async fn newcomer_form(app: &TestApp, token: &str, phone: &str, house_id: i64, role: Value, choice: i64) -> Value {
    let url = photo(app, token, house_id).await;
    form(phone, &id_number("13030219900101001"), "钱新人", &url, house_id, role, choice)
}

#[tokio::test]
async fn security_phone_verify_needs_a_verify_code_of_that_phone() {
    let app = TestApp::community().await;
    let token = new_user(&app, "wx-phone", "13812340011", "钱新人").await;
    next_minute(&app);
    // A register code is not a verify code.
    let sent = send_code(&app, json!("13812340011"), "login", None).await;
    let code = app.sms_code("13812340011").await;
    let refused = app
        .post(PHONE_CHECK, Some(&token), json!({ "verification_key": sent.body["key"], "verification_code": code.parse::<i64>().unwrap(), "id": 1 }))
        .await;
    assert_eq!((refused.status, refused.body["msg"].as_str()), (400, Some("验证码已失效")), "{}", refused.body);
    // Without a checked phone the owner lookup is refused.
    let owner = app.post(OWNER, Some(&token), json!({ "id": 1 })).await;
    assert_eq!((owner.status, owner.flat_code()), (400, 1), "{}", owner.body);
    // A community 2.1.1 does not list is refused before the code is checked: the code still works.
    next_minute(&app);
    let (key, code) = code_for(&app, "13812340011", "verify").await;
    let body = |id: i64| json!({ "verification_key": key, "verification_code": code.parse::<i64>().unwrap(), "id": id });
    let unknown = app.post(PHONE_CHECK, Some(&token), body(999)).await;
    assert_eq!((unknown.status, unknown.flat_code(), unknown.body["msg"].as_str()), (400, 1, Some("小区不存在，请重新选择")), "{}", unknown.body);
    let checked = app.post(PHONE_CHECK, Some(&token), body(1)).await;
    assert_eq!((checked.status, &checked.body["code"]), (200, &json!("2")), "{}", checked.body);
}

#[tokio::test]
async fn security_owner_get_answers_code_2_for_a_house_without_owner() {
    let app = TestApp::community().await;
    let token = checked(&app, "wx-owner2", "13812340012").await;
    let none = app.post(OWNER, Some(&token), json!({ "id": 2 })).await;
    assert_eq!((none.status, &none.body["code"], none.body.get("data")), (200, &json!("2"), None), "{}", none.body);
    let unknown = app.post(OWNER, Some(&token), json!({ "id": 999 })).await;
    assert_eq!((unknown.status, unknown.flat_code()), (400, 1), "{}", unknown.body);
    // The platform's owner of house 3 (李秀英, not registered here) is found on the platform.
    let platform = app.post(OWNER, Some(&token), json!({ "id": 3 })).await;
    assert_eq!((platform.status, platform.data()["people_phone"].as_str()), (200, Some(PLATFORM_PHONE)), "{}", platform.body);
}

#[tokio::test]
async fn a_yezhu_code_goes_only_to_an_owner_just_looked_up() {
    let app = TestApp::community().await;
    // Nobody looked up house 1's owner yet: no yezhu code even to the owner's phone.
    let early = send_code(&app, json!(DEMO_PHONE), "yezhu", Some(DEMO_HOUSE)).await;
    assert_eq!((early.status, early.flat_code()), (400, 1), "{}", early.body);
    let token = checked(&app, "wx-yezhu", "13812340013").await;
    assert_eq!(app.post(OWNER, Some(&token), json!({ "id": 1 })).await.status, 200);
    // Any other phone: refused, however it is named.
    next_minute(&app);
    let other = send_owner_code(&app, &token, json!("13812340013"), DEMO_HOUSE).await;
    assert_eq!((other.status, other.flat_code()), (400, 1), "{}", other.body);
    let sent = send_owner_code(&app, &token, json!(DEMO_PHONE), DEMO_HOUSE).await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    // Half an hour later the lookup no longer counts.
    app.server.clock.advance(std::time::Duration::from_secs(31 * 60));
    let stale = send_owner_code(&app, &token, json!(DEMO_PHONE), DEMO_HOUSE).await;
    assert_eq!((stale.status, stale.flat_code()), (400, 1), "{}", stale.body);
}

#[tokio::test]
async fn security_owner_verify_refuses_a_wrong_or_foreign_code() {
    let app = TestApp::community().await;
    let token = checked(&app, "wx-verify", "13812340014").await;
    assert_eq!(app.post(OWNER, Some(&token), json!({ "id": 1 })).await.status, 200);
    let sent = send_owner_code(&app, &token, json!(DEMO_PHONE), DEMO_HOUSE).await;
    let code = app.sms_code(DEMO_PHONE).await;
    let wrong = if code == "111111" { "222222" } else { "111111" };
    let refused = app.post(OWNER_CODE, Some(&token), json!({ "verification_key": sent.body["key"], "verification_code": wrong })).await;
    assert_eq!((refused.status, refused.body["msg"].as_str()), (400, Some("验证码错误")), "{}", refused.body);
    // A verify code of the applicant's own phone is not the owner's.
    next_minute(&app);
    let (own_key, own_code) = code_for(&app, "13812340014", "verify").await;
    let own = app.post(OWNER_CODE, Some(&token), json!({ "verification_key": own_key, "verification_code": own_code })).await;
    assert_eq!((own.status, own.body["msg"].as_str()), (400, Some("验证码错误")), "{}", own.body);
    // The owner's code relayed by an account that never looked the owner up does not count.
    let stranger = checked(&app, "wx-stranger", "13812340015").await;
    let foreign = app.post(OWNER_CODE, Some(&stranger), json!({ "verification_key": sent.body["key"], "verification_code": code })).await;
    assert_eq!((foreign.status, foreign.body["msg"].as_str()), (400, Some("验证码错误")), "{}", foreign.body);
}

#[tokio::test]
async fn yibiaosanshi_submit_cannot_skip_the_owners_consent() {
    let app = TestApp::community().await;
    let phone = "13812340016";
    let token = checked(&app, "wx-consent", phone).await;
    // A tenant (choice 1) on house 1, which has an owner: refused without consent.
    let tenant = newcomer_form(&app, &token, phone, 1, json!("租客"), 1).await;
    let refused = app.post(SUBMIT, Some(&token), tenant.clone()).await;
    assert_eq!((refused.status, refused.body["msg"].as_str()), (400, Some("请先验证业主手机号")), "{}", refused.body);
    // Looking the owner up is not consent; neither is a yezhu code sent but not verified.
    assert_eq!(app.post(OWNER, Some(&token), json!({ "id": 1 })).await.status, 200);
    assert_eq!(send_owner_code(&app, &token, json!(DEMO_PHONE), DEMO_HOUSE).await.status, 200);
    assert_eq!(app.post(SUBMIT, Some(&token), tenant.clone()).await.status, 400);
    // Claiming to be the owner (业主, choice 1) of an owned house is refused too.
    let mut owner = tenant.clone();
    owner["role"] = json!("业主");
    let claimed = app.post(SUBMIT, Some(&token), owner).await;
    assert_eq!((claimed.status, claimed.flat_code()), (400, 1), "{}", claimed.body);
    assert_eq!(permission(&app, &token).await, "NewMember", "nothing filed");
    // Consent for house 1 is not consent for house 3 (another owner).
    next_minute(&app);
    owner_consent(&app, &token, 1).await;
    let other_house = newcomer_form(&app, &token, phone, 3, json!("租客"), 1).await;
    assert_eq!(app.post(SUBMIT, Some(&token), other_house).await.status, 400);
    // With the owner's consent for house 1 the tenant's form is filed.
    let filed = app.post(SUBMIT, Some(&token), tenant.clone()).await;
    assert_eq!((filed.status, filed.flat_code()), (200, 0), "{}", filed.body);
    assert_eq!(permission(&app, &token).await, "Shenheing");
}

#[tokio::test]
async fn consent_lapses_after_thirty_minutes() {
    let app = TestApp::community().await;
    let phone = "13812340017";
    let token = checked(&app, "wx-lapse", phone).await;
    owner_consent(&app, &token, 1).await;
    app.server.clock.advance(std::time::Duration::from_secs(31 * 60));
    // The token is still within its hour.
    let tenant = newcomer_form(&app, &token, phone, 1, json!("租客"), 1).await;
    let refused = app.post(SUBMIT, Some(&token), tenant).await;
    assert_eq!((refused.status, refused.body["msg"].as_str()), (400, Some("请先验证业主手机号")), "{}", refused.body);
}

#[tokio::test]
async fn houses_without_an_owner_need_no_consent_and_nobody_to_replace() {
    let app = TestApp::community().await;
    let phone = "13812340018";
    let token = checked(&app, "wx-noowner", phone).await;
    // 替换业主 (choice 2) where there is no owner: refused.
    let replace = newcomer_form(&app, &token, phone, 2, json!("业主"), 2).await;
    assert_eq!(app.post(SUBMIT, Some(&token), replace).await.status, 400);
    let owner = newcomer_form(&app, &token, phone, 2, json!("业主"), 1).await;
    let filed = app.post(SUBMIT, Some(&token), owner).await;
    assert_eq!((filed.status, filed.flat_code()), (200, 0), "{}", filed.body);
    let list = houses_list(&app, &token).await;
    assert_eq!(list[0]["action"], "业主正在申请：业主绑定", "{list:?}");
}

#[tokio::test]
async fn a_platform_outage_is_answered_in_the_envelope() {
    let app = TestApp::community().await;
    let phone = "13812340019";
    let token = new_user(&app, "wx-outage", phone, "钱新人").await;
    let switch = |fail: bool| {
        let request = app.client.post(app.url(&format!("/_sandbox/security?fail={fail}")));
        async move { assert_eq!(request.send().await.unwrap().status(), 200) }
    };
    switch(true).await;
    next_minute(&app);
    let (key, code) = code_for(&app, phone, "verify").await;
    let check_request = json!({ "verification_key": key, "verification_code": code.parse::<i64>().unwrap(), "id": 1 });
    let check = app.post(PHONE_CHECK, Some(&token), check_request.clone()).await;
    assert_eq!((check.status, check.flat_code(), check.body["token_expired"].as_str()), (502, 1, Some("1")), "{}", check.body);
    assert_eq!(check.body["msg"], "系统开小差，请重试或联系工作人员", "{}", check.body);
    assert!(check.body["message"].as_str().unwrap().contains("安防平台接口出现故障"), "{}", check.body);
    // Back up: the very code the outage answered still works (a fault says 请重试; it must not
    // use the code up).
    switch(false).await;
    let retried = app.post(PHONE_CHECK, Some(&token), check_request).await;
    assert_eq!((retried.status, &retried.body["code"]), (200, &json!("2")), "{}", retried.body);
    // Down again: the lookup of an owner the platform keeps (house 2: none registered here)
    // fails the same, and so does a 2.4.1 that must ask the platform about the owner (502, as
    // 2.2.x answer a platform fault) — nothing is filed.
    switch(true).await;
    let owner = app.post(OWNER, Some(&token), json!({ "id": 2 })).await;
    assert_eq!((owner.status, owner.flat_code()), (502, 1), "{}", owner.body);
    let url = photo(&app, &token, 3).await;
    let tenant = form(phone, &id_number("13030219900101005"), "钱新人", &url, 3, json!("租客"), 1);
    let submitted = app.post(SUBMIT, Some(&token), tenant).await;
    assert_eq!((submitted.status, submitted.flat_code()), (502, 1), "{}", submitted.body);
    assert_eq!(permission(&app, &token).await, "NewMember");
    switch(false).await;
    assert_eq!(app.post(OWNER, Some(&token), json!({ "id": 2 })).await.body["code"], json!("2"));
}

#[tokio::test]
async fn a_house_never_has_two_owners() {
    let app = TestApp::community().await;
    // Two strangers both ask to be the owner of house 2, which has none: both are filed.
    let first = checked(&app, "wx-owner-a", "13812340031").await;
    let second = checked(&app, "wx-owner-b", "13812340032").await;
    let url = photo(&app, &first, 2).await;
    let a = form("13812340031", &id_number("13030219900101003"), "甲业主", &url, 2, json!("业主"), 1);
    assert_eq!(app.post(SUBMIT, Some(&first), a).await.status, 200);
    let url = photo(&app, &second, 2).await;
    let b = form("13812340032", &id_number("13030219900101007"), "乙业主", &url, 2, json!("业主"), 1);
    assert_eq!(app.post(SUBMIT, Some(&second), b).await.status, 200);
    let review = |token: String| {
        let app = &app;
        async move { houses_list(app, &token).await[0]["shenhe_id"].as_i64().expect("a review") }
    };
    let (a_id, b_id) = (review(first.clone()).await, review(second.clone()).await);
    // The reviewer approves both: the first becomes the owner, the second cannot.
    assert_eq!(decide(&app, a_id, "approve", None).await.0, 200);
    let (status, body) = decide(&app, b_id, "approve", None).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(permission(&app, &second).await, "Shenheing", "the second review still waits");
    let detail = house(&app, &first, 2).await;
    let owners: Vec<_> = detail["yibangding"].as_array().unwrap().iter().filter(|m| m["role"] == "业主").collect();
    assert_eq!(owners.len(), 1, "{detail}");
}

#[tokio::test]
async fn an_owners_consent_serves_one_submission() {
    let app = TestApp::community().await;
    let phone = "13812340033";
    let token = checked(&app, "wx-consent-once", phone).await;
    owner_consent(&app, &token, 1).await;
    let tenant = newcomer_form(&app, &token, phone, 1, json!("租客"), 1).await;
    assert_eq!(app.post(SUBMIT, Some(&token), tenant.clone()).await.status, 200);
    // The review is withdrawn; filing again needs the owner again.
    let id = houses_list(&app, &token).await[0]["shenhe_id"].as_i64().unwrap();
    assert_eq!(app.delete(SHENHE, Some(&token), json!({ "id": id })).await.status, 200);
    let again = app.post(SUBMIT, Some(&token), tenant).await;
    assert_eq!((again.status, again.body["msg"].as_str()), (400, Some("请先验证业主手机号")), "{}", again.body);
}

#[tokio::test]
async fn an_owner_code_needs_the_applicants_token() {
    let app = TestApp::community().await;
    let token = checked(&app, "wx-owner-code", "13812340034").await;
    assert_eq!(app.post(OWNER, Some(&token), json!({ "id": 1 })).await.status, 200);
    // Someone else's lookup does not let an anonymous caller, or another account, text the owner.
    let anonymous = send_code(&app, json!(DEMO_PHONE), "yezhu", Some(DEMO_HOUSE)).await;
    assert_eq!((anonymous.status, anonymous.body["msg"].as_str()), (400, Some("请先登录后再获取业主验证码")), "{}", anonymous.body);
    let other = new_user(&app, "wx-other-applicant", "13812340035", "丙").await;
    let foreign = send_owner_code(&app, &other, json!(DEMO_PHONE), DEMO_HOUSE).await;
    assert_eq!(foreign.status, 400, "{}", foreign.body);
    assert_eq!(send_owner_code(&app, &token, json!(DEMO_PHONE), DEMO_HOUSE).await.status, 200);
    // An applicant whose token has expired is told so (401, code "9": refresh it), not to log in.
    app.server.clock.advance(std::time::Duration::from_secs(3601));
    let stale = send_owner_code(&app, &token, json!(DEMO_PHONE), DEMO_HOUSE).await;
    assert_eq!((stale.status, stale.body["code"].as_str(), stale.body["message"].as_str()), (401, Some("9"), Some("token值已过期，请调用刷新token接口")), "{}", stale.body);
}

#[tokio::test]
async fn yibiaosanshi_submit_refuses_a_sex_or_birth_the_id_number_contradicts() {
    let app = TestApp::community().await;
    let phone = "13812340036";
    let token = checked(&app, "wx-crosscheck", phone).await;
    // House 2 has no owner: nothing but the form itself decides.
    let good = newcomer_form(&app, &token, phone, 2, json!("家属"), 1).await;
    let mut female = good.clone();
    female["sex"] = json!("女");
    let refused = app.post(SUBMIT, Some(&token), female).await;
    assert_eq!((refused.status, refused.body["msg"].as_str()), (400, Some("性别与身份证号不符")), "{}", refused.body);
    let mut born = good.clone();
    born["birth"] = json!(19900102);
    let refused = app.post(SUBMIT, Some(&token), born).await;
    assert_eq!((refused.status, refused.body["msg"].as_str()), (400, Some("出生日期与身份证号不符")), "{}", refused.body);
    let mut right = good;
    right["birth"] = json!(19900101);
    assert_eq!(app.post(SUBMIT, Some(&token), right).await.status, 200);
}

#[tokio::test]
async fn an_account_looks_up_a_few_owners_a_day() {
    let app = TestApp::community().await;
    let token = checked(&app, "wx-harvest", "13812340051").await;
    for house in 1..=OWNER_LOOKUPS as i64 {
        let reply = app.post(OWNER, Some(&token), json!({ "id": house })).await;
        assert_eq!(reply.status, 200, "house {house}: {}", reply.body);
    }
    let sixth = app.post(OWNER, Some(&token), json!({ "id": 6 })).await;
    assert_eq!((sixth.status, sixth.body["msg"].as_str()), (400, Some("查询业主次数过多，请明天再试或联系物业")), "{}", sixth.body);
    // A house already looked up still answers (re-selecting it is the document's flow), and a
    // day later the sixth does.
    assert_eq!(app.post(OWNER, Some(&token), json!({ "id": 1 })).await.status, 200);
    app.server.clock.advance(std::time::Duration::from_secs(24 * 3600 + 60));
    let token = super::token(&app, "wx-harvest").await;
    assert_eq!(app.post(OWNER, Some(&token), json!({ "id": 6 })).await.status, 200);
}

#[tokio::test]
async fn concurrent_owner_lookups_stay_within_the_day() {
    let app = TestApp::community().await;
    let token = checked(&app, "wx-harvest-fast", "13812340053").await;
    // Every house twice, all at once: the count is taken before the platform is asked.
    let lookups = (1..=6).chain(1..=6).map(|house| {
        let (app, token) = (&app, &token);
        async move { (house, app.post(OWNER, Some(token), json!({ "id": house })).await) }
    });
    let replies = futures_util::future::join_all(lookups).await;
    let mut answered = std::collections::BTreeSet::new();
    for (house, reply) in &replies {
        match reply.status {
            200 => {
                answered.insert(*house);
            }
            400 => assert_eq!(reply.body["msg"], "查询业主次数过多，请明天再试或联系物业", "house {house}: {}", reply.body),
            _ => panic!("house {house}: {} {}", reply.status, reply.body),
        }
    }
    assert_eq!(answered.len(), OWNER_LOOKUPS, "{answered:?}");
    // Both requests of an answered house were answered (the second is the same lookup).
    let twice = replies.iter().filter(|(house, reply)| answered.contains(house) && reply.status == 200).count();
    assert_eq!(twice, 2 * OWNER_LOOKUPS);
}

#[tokio::test]
async fn an_owner_lookup_the_platform_failed_is_not_counted() {
    let app = TestApp::community().await;
    let token = checked(&app, "wx-harvest-outage", "13812340054").await;
    let switch = |fail: bool| {
        let request = app.client.post(app.url(&format!("/_sandbox/security?fail={fail}")));
        async move { assert_eq!(request.send().await.unwrap().status(), 200) }
    };
    // Houses 2–6 are asked of the platform (house 1's owner is on this server's record).
    switch(true).await;
    for house in 2..=6 {
        assert_eq!(app.post(OWNER, Some(&token), json!({ "id": house })).await.status, 502, "house {house}");
    }
    switch(false).await;
    // None of the five counted: house 1 and four of the others make the day's five.
    for house in 1..=5 {
        let reply = app.post(OWNER, Some(&token), json!({ "id": house })).await;
        assert_eq!(reply.status, 200, "house {house}: {}", reply.body);
    }
    let sixth = app.post(OWNER, Some(&token), json!({ "id": 6 })).await;
    assert_eq!((sixth.status, sixth.body["msg"].as_str()), (400, Some("查询业主次数过多，请明天再试或联系物业")), "{}", sixth.body);
}

#[tokio::test]
async fn looking_the_owner_up_again_keeps_the_consent() {
    let app = TestApp::community().await;
    let phone = "13812340052";
    let token = checked(&app, "wx-reselect", phone).await;
    owner_consent(&app, &token, 1).await;
    assert_eq!(app.post(OWNER, Some(&token), json!({ "id": 1 })).await.status, 200);
    let tenant = newcomer_form(&app, &token, phone, 1, json!("租客"), 1).await;
    let filed = app.post(SUBMIT, Some(&token), tenant).await;
    assert_eq!(filed.status, 200, "{}", filed.body);
}

#[tokio::test]
async fn a_form_cannot_take_over_someone_elses_record() {
    let app = TestApp::community().await;
    // 王德明 (demo, 父亲 of house 1, no account) is on record with his own phone; a stranger who
    // knows his ID number cannot file his identity from another phone.
    let phone = "13812340053";
    let token = checked(&app, "wx-impostor", phone).await;
    let url = photo(&app, &token, 2).await;
    let impostor = form(phone, "130302195803150012", "王德明", &url, 2, json!("业主"), 1);
    let refused = app.post(SUBMIT, Some(&token), impostor).await;
    assert_eq!((refused.status, refused.body["msg"].as_str()), (400, Some("该身份证号已登记，请使用登记的手机号办理")), "{}", refused.body);
    // 替换业主 is an owner's application only.
    let mut replace = newcomer_form(&app, &token, phone, 1, json!("家属"), 2).await;
    let refused = app.post(SUBMIT, Some(&token), replace.clone()).await;
    assert_eq!((refused.status, refused.body["msg"].as_str()), (400, Some("替换业主时角色须为业主")), "{}", refused.body);
    replace["role"] = json!("业主");
    assert_eq!(app.post(SUBMIT, Some(&token), replace).await.status, 200);
}

/// 2.2.1 for a resident the platform knows whose house already has an owner here: her record
/// is copied, no house is bound, and the answer says so (not 已自动绑定).
#[tokio::test]
async fn a_platform_resident_whose_house_has_an_owner_here_is_told_it_was_not_bound() {
    let app = TestApp::community().await;
    // A newcomer becomes house 3's owner here first, by 替换业主 (the platform names 李秀英).
    let phone = "13812340055";
    let token = checked(&app, "wx-first-owner", phone).await;
    let form = newcomer_form(&app, &token, phone, 3, json!("业主"), 2).await;
    let filed = app.post(SUBMIT, Some(&token), form).await;
    assert_eq!(filed.status, 200, "{}", filed.body);
    let review = houses_list(&app, &token).await[0]["shenhe_id"].as_i64().unwrap();
    assert_eq!(decide(&app, review, "approve", None).await.0, 200);
    // 李秀英, the platform's owner of house 3, checks her phone.
    let registered = register_weixin(&app, "wx-resident-late", PLATFORM_PHONE, "李秀英").await;
    let resident = registered.body["access_token"].as_str().unwrap().to_owned();
    let check = phone_check(&app, &resident, PLATFORM_PHONE, 1).await;
    assert_eq!(
        (check.status, &check.body["code"], check.body["msg"].as_str()),
        (200, &json!(0), Some("已录入您的一标三实信息，房屋未能自动绑定，请在房屋绑定中申请")),
        "{}",
        check.body
    );
    assert_eq!(houses_list(&app, &resident).await, Vec::<Value>::new());
}
