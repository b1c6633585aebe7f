//! The document's journeys end to end against the real router: a newcomer registers by phone
//! code, walks the address tree, checks their phone with the security platform, gets the owner's
//! consent with the owner's code, uploads their face and ID card, submits the form, is approved by
//! the 物业端, is granted and pays the house's fees (WeChat Pay v2 and its notify) and leaves; a
//! resident the security platform knows registers with WeChat's phone and is bound at once.

use md5::Digest as _;
use serde_json::json;

use super::*;

/// MD5 `paySign` of wx.requestPayment's five fields under the merchant's v2 key.
fn pay_sign(data: &Value, key: &str) -> String {
    let text = format!(
        "appId={}&nonceStr={}&package={}&signType=MD5&timeStamp={}&key={key}",
        data["appId"].as_str().unwrap(),
        data["nonceStr"].as_str().unwrap(),
        data["package"].as_str().unwrap(),
        data["timeStamp"].as_str().unwrap()
    );
    hex::encode_upper(md5::Md5::digest(text.as_bytes()))
}

#[tokio::test]
async fn a_tenant_registers_is_approved_pays_the_fees_and_leaves() {
    let app = TestApp::community().await;
    let phone = "13812340001";

    // 1.2: register with a phone code.
    let token = new_user(&app, "wx-tenant", phone, "孙租客").await;
    assert_eq!(permission(&app, &token).await, "NewMember");

    // 2.1: the address tree down to 晨曦家园1栋1单元1楼.
    let communities = app.post(COMMUNITIES, None, json!({})).await;
    let names: Vec<&str> = communities.body["data"].as_array().unwrap().iter().map(|c| c["community_name"].as_str().unwrap()).collect();
    assert_eq!(names, ["晨曦家园", "交运里", "秦皇小区"]);
    let identifier = communities.body["data"][0]["community_identifier"].clone();
    assert_eq!(identifier, json!("1"));
    let buildings = app.post(BUILDINGS, Some(&token), json!({ "id": identifier })).await;
    let building = buildings.body["data"].as_array().unwrap().iter().find(|b| b["building_name"] == "1栋").unwrap().clone();
    let units = app.post(UNITS, Some(&token), json!({ "id": building["id"] })).await;
    assert_eq!(units.body["data"][0]["unit_name"], "1单元", "{}", units.body);
    let floors = app.post(FLOORS, Some(&token), json!({ "id": units.body["data"][0]["id"] })).await;
    assert_eq!(floors.body["data"][0]["floor_name"], "1楼", "{}", floors.body);
    let houses = app.post(HOUSES, Some(&token), json!({ "id": floors.body["data"][0]["id"] })).await;
    let rooms: Vec<(i64, &str)> =
        houses.body["data"].as_array().unwrap().iter().map(|h| (h["id"].as_i64().unwrap(), h["house_name"].as_str().unwrap())).collect();
    assert_eq!(rooms, [(1, "101号"), (2, "102号")]);

    // 2.2.1: the platform does not know this phone: code "2", fill the form.
    next_minute(&app);
    let check = phone_check(&app, &token, phone, 1).await;
    assert_eq!((check.status, &check.body["code"]), (200, &json!("2")), "{}", check.body);

    // 2.2.2 / 1.1 yezhu / 2.2.3: house 1's owner is 17600381130; he reads out his code.
    let owner = app.post(OWNER, Some(&token), json!({ "id": 1 })).await;
    assert_eq!((owner.status, &owner.body["code"]), (200, &json!("0")), "{}", owner.body);
    assert_eq!((owner.data()["people_phone"].as_str(), owner.data()["phone"].as_str()), (Some(DEMO_PHONE), Some("176****1130")));
    let sent = send_owner_code(&app, &token, json!(17600381130_i64), DEMO_HOUSE).await;
    assert_eq!((sent.status, sent.body["msg"].as_str()), (200, Some("验证码获取成功,30分钟内有效")), "{}", sent.body);
    let owner_code = app.sms_code(DEMO_PHONE).await;
    let consent =
        app.post(OWNER_CODE, Some(&token), json!({ "verification_key": sent.body["key"], "verification_code": owner_code })).await;
    assert_eq!((consent.status, consent.body["msg"].as_str()), (200, Some("验证成功")), "{}", consent.body);

    // 2.3: the ID card read by OCR, the face photo stored under the house's address.
    let card = idcard(&app, &token, &jpeg(4096, 1)).await;
    assert_eq!((card.status, card.flat_code()), (200, 0), "{}", card.body);
    let read = card.body["data"].clone();
    let photo_url = photo(&app, &token, 1).await;
    assert!(photo_url.starts_with(&app.url("/files/face-photo/1/1/1/1/101/")), "{photo_url}");
    let photo_bytes = app.client.get(&photo_url).send().await.unwrap();
    assert_eq!(photo_bytes.status(), 200);
    assert_eq!(photo_bytes.bytes().await.unwrap().as_ref(), jpeg(2048, 7).as_slice());

    // 2.4.1: a tenant (租客 by its row number 3; 住户类型 defaults to 租户) with the owner's consent.
    let mut body = form(phone, read["idcard"].as_str().unwrap(), read["name"].as_str().unwrap(), &photo_url, 1, json!(3), 1);
    body["status"] = json!(5);
    body["use"] = json!("住宅");
    body.as_object_mut().unwrap().remove("xingzhi");
    // Text past the contract's bounds (姓名 50, 职业 50, 工作单位 100, …) is refused, nothing filed.
    for (field, length) in [("name", 51), ("job", 51), ("company", 101), ("address", 201), ("nation", 21)] {
        let mut long = body.clone();
        long[field] = json!("名".repeat(length));
        let refused = app.post(SUBMIT, Some(&token), long).await;
        assert_eq!((refused.status, refused.flat_code(), refused.body["msg"].as_str()), (400, 1, Some("服务器开小差，请重试")), "{field}: {}", refused.body);
    }
    // Without a name at all: the document's words (2.4.1.4 示例2), as for an empty one.
    let mut nameless = body.clone();
    nameless.as_object_mut().unwrap().remove("name");
    let refused = app.post(SUBMIT, Some(&token), nameless).await;
    assert_eq!((refused.status, refused.flat_code(), refused.body["msg"].as_str()), (400, 1, Some("没有填写姓名")), "{}", refused.body);
    let submitted = app.post(SUBMIT, Some(&token), body.clone()).await;
    assert_eq!((submitted.status, submitted.flat_code()), (200, 0), "{}", submitted.body);
    let filed = &submitted.body["shenhe_data"][0];
    assert_eq!(filed["name"], read["name"]);
    assert_ne!(filed["idcard"], read["idcard"], "the answer masks the ID number: {filed}");
    assert_eq!(permission(&app, &token).await, "Shenheing");
    let duplicate = app.post(SUBMIT, Some(&token), body).await;
    assert_eq!((duplicate.status, duplicate.flat_code()), (400, 1), "{}", duplicate.body);

    // 3.1.1 / 3.1.3: the pending review, the ID number masked.
    let list = houses_list(&app, &token).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!((list[0]["status"].as_str(), list[0]["action"].as_str()), (Some("待审核"), Some("租客正在申请：租客绑定")), "{list:?}");
    let shenhe_id = list[0]["shenhe_id"].as_i64().unwrap();
    let detail = app.post(SHENHE, Some(&token), json!({ "id": shenhe_id })).await;
    assert_eq!((detail.status, detail.flat_code()), (200, 0), "{}", detail.body);
    let d = &detail.body["data"];
    assert_eq!((d["shenhe_status"].clone(), d["shenhe_type"].as_str(), d["house_role"].as_str()), (json!(2), Some("租客绑定"), Some("租客")), "{d}");
    assert_eq!((d["house_status"].as_str(), d["xingzhi"].as_str(), d["zhuhuleixing"].as_str()), (Some("租用"), Some("私有"), Some("租户")), "{d}");
    assert_eq!(d["shenhe_house_introduction"], DEMO_HOUSE);
    let full = read["idcard"].as_str().unwrap();
    assert_eq!(d["idcard"].as_str().unwrap(), format!("{}********{}", &full[..6], &full[14..]));
    assert!(!detail.body.to_string().contains(full), "{}", detail.body);
    assert_eq!(app.client.get(d["photo"].as_str().unwrap()).send().await.unwrap().status(), 200);

    // The 物业端 approves: the account is a HouseMember of house 1.
    let (status, decided) = decide(&app, shenhe_id, "approve", None).await;
    assert_eq!((status, &decided["shenhe_status"]), (200, &json!(1)), "{decided}");
    assert_eq!(permission(&app, &token).await, "HouseMember");
    let list = houses_list(&app, &token).await;
    assert_eq!(list.len(), 1, "the approved review leaves the list: {list:?}");
    assert_eq!((list[0]["house_id"].as_i64(), list[0]["status"].as_str(), list[0]["role"].as_str()), (Some(1), Some("审核通过"), Some("租客")));
    assert_eq!(list[0]["not_register"], json!(1), "王德明 is not activated");
    let binding = list[0]["id"].as_i64().unwrap();

    // 3.1.2: the owner sees the newcomer; the newcomer sees the house.
    let owner_token = super::token(&app, DEMO_CODE).await;
    let detail = house(&app, &owner_token, 1).await;
    assert_eq!(member_id(&detail, read["name"].as_str().unwrap()), binding);
    let mine = house(&app, &token, 1).await;
    assert_eq!((mine["status"].as_str(), mine["zhuhuleixing"].as_str()), (Some("租用"), Some("租户")), "{mine}");

    // 3.2: not granted yet, the tenant sees no fees; the owner grants paying and managing.
    assert_eq!(order_ids(&app, &token, json!({})).await, Vec::<i64>::new());
    let charge = app.put(CHARGE, Some(&owner_token), json!({ "id": binding })).await;
    assert_eq!((charge.status, charge.body["data"].as_str()), (200, Some("禁止支付")), "{}", charge.body);
    let manage = app.put(SHOUQUAN, Some(&owner_token), json!({ "id": binding })).await;
    assert_eq!((manage.status, manage.body["data"].as_str()), (200, Some("禁止管理")), "{}", manage.body);
    let detail = house(&app, &owner_token, 1).await;
    let shown = detail["yibangding"].as_array().unwrap().iter().find(|m| m["id"] == json!(binding)).unwrap().clone();
    assert_eq!(shown["shouquan"], "禁用管理", "{detail}");

    // 4: the tenant pays orders 1 and 2 together.
    assert_eq!(order_ids(&app, &token, json!({})).await, [1, 2, 4, 5]);
    assert_eq!(order_ids(&app, &token, json!({ "paied": false })).await, [1, 2]);
    let pay = app.post(PAY, Some(&token), json!({ "ids": "1A2" })).await;
    assert_eq!((pay.status, pay.flat_code()), (200, 0), "{}", pay.body);
    let params = pay.body["data"].clone();
    assert_eq!(params["signType"], "MD5");
    assert!(params["package"].as_str().unwrap().starts_with("prepay_id="), "{params}");
    let key = app.pay_platform("community").api_key().await.unwrap().expect("v2");
    assert_eq!(params["paySign"].as_str().unwrap(), pay_sign(&params, &key), "{params}");
    let out_trade_no = stored_order(&app, 1).await.out_trade_no.expect("held by the bill");
    assert_eq!(stored_order(&app, 2).await.out_trade_no.as_deref(), Some(out_trade_no.as_str()));
    let paid = app.sandbox_pay(&out_trade_no, "success").await;
    assert_eq!((paid.status, &paid.body["notify"]["status"]), (200, &json!(200)), "{}", paid.body);
    assert!(paid.body["notify"]["body"].as_str().unwrap().contains("SUCCESS"), "{}", paid.body);
    assert_eq!(order_ids(&app, &token, json!({ "paied": false })).await, Vec::<i64>::new());
    let bills = app.post(PAYMENTS, Some(&token), json!({})).await;
    assert_eq!((bills.status, bills.body["data"].as_array().map(Vec::len)), (200, Some(1)), "{}", bills.body);
    let bill = &bills.body["data"][0];
    assert_eq!((bill["payment_shop_number"].as_str(), bill["total_amount"].as_str()), (Some(out_trade_no.as_str()), Some("0.02")));
    let stored = app.server.db.payments().get(&out_trade_no).await.unwrap().expect("the bill");
    assert_eq!(bill["payment_number"].as_str(), stored.transaction_id.as_deref(), "{bill}");
    assert!(bill["payment_number"].as_str().unwrap().starts_with("42000"), "{bill}");
    let ids: Vec<i64> = bill["orders"].as_array().unwrap().iter().map(|o| o["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [1, 2]);
    assert!(bill["orders"].as_array().unwrap().iter().all(|o| o["paied"] == "已付款"), "{bill}");

    // 3.2.2: the tenant leaves; the owner cannot.
    let left = app.delete(SHOUQUAN, Some(&token), json!({ "id": binding })).await;
    assert_eq!((left.status, left.body["msg"].as_str()), (200, Some("解绑成功")), "{}", left.body);
    assert_eq!(houses_list(&app, &token).await, Vec::<Value>::new());
    assert_eq!(permission(&app, &token).await, "NewMember");
    let own = member_id(&house(&app, &owner_token, 1).await, "王建国");
    let refused = app.delete(SHOUQUAN, Some(&owner_token), json!({ "id": own })).await;
    assert_eq!((refused.status, refused.flat_code()), (400, 1), "{}", refused.body);
    assert_eq!(app.post(HOUSE, Some(&token), json!({ "id": 1 })).await.status, 404, "no longer a member");
}

#[tokio::test]
async fn a_resident_the_platform_knows_registers_with_wechats_phone_and_is_bound_at_once() {
    let app = TestApp::community().await;
    let registered = register_weixin(&app, "wx-resident", PLATFORM_PHONE, "李秀英").await;
    assert_eq!((registered.status, registered.flat_code()), (200, 0), "{}", registered.body);
    let token = registered.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(permission(&app, &token).await, "NewMember");

    // 2.2.1: found on the platform: copied and bound (code 0, an integer as in the example).
    let check = phone_check(&app, &token, PLATFORM_PHONE, 1).await;
    assert_eq!((check.status, &check.body["code"], check.body["msg"].as_str()), (200, &json!(0), Some("已自动绑定您的一标三实信息")), "{}", check.body);
    assert_eq!(permission(&app, &token).await, "HouseMember");
    let list = houses_list(&app, &token).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(
        (list[0]["house_id"].as_i64(), list[0]["role"].as_str(), list[0]["introduction"].as_str()),
        (Some(3), Some("业主"), Some("晨曦家园1栋1单元2楼201号"))
    );
    let detail = house(&app, &token, 3).await;
    assert_eq!(detail["yibangding"], json!([{ "shouquan": "管理员", "id": list[0]["id"], "name": "李秀英", "role": "业主" }]), "{detail}");

    // Again: already on record (code "0", a string as in that example).
    next_minute(&app);
    let again = phone_check(&app, &token, PLATFORM_PHONE, 1).await;
    assert_eq!((again.status, &again.body["code"], again.body["msg"].as_str()), (200, &json!("0"), Some("已绑定个人信息，无需二次录入")), "{}", again.body);
    assert_eq!(houses_list(&app, &token).await.len(), 1);

    // As the owner of house 3 she is asked for consent: a newcomer's yezhu code goes to her.
    let newcomer = new_user(&app, "wx-newcomer", "13812340002", "周新").await;
    next_minute(&app);
    assert_eq!(phone_check(&app, &newcomer, "13812340002", 1).await.body["code"], json!("2"));
    let owner = app.post(OWNER, Some(&newcomer), json!({ "id": 3 })).await;
    assert_eq!((owner.status, owner.data()["phone"].as_str()), (200, Some("139****0001")), "{}", owner.body);
    next_minute(&app);
    let sent = send_owner_code(&app, &newcomer, json!(PLATFORM_PHONE), "晨曦家园1栋1单元2楼201号").await;
    assert_eq!(sent.status, 200, "{}", sent.body);
}
