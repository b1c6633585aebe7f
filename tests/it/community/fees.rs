//! 4 订单支付: the fee orders and paid bills a member may see (Laravel pages), one WeChat Pay v2
//! order over several fee orders (each order held by one live bill), and the v2 notify that pays
//! them: verified by its MD5 sign, applied once however often it arrives, never paying an order
//! twice.

use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::app::{md5_sign, xml_fields, xml_of};

/// POST a v2 notify: (HTTP status, return_code).
async fn notify(app: &TestApp, body: Vec<u8>) -> (u16, String) {
    crate::app::post_v2_notify(app, NOTIFY, body).await
}

/// Create a payment of `ids` as `token`; the bill's out_trade_no (read where the orders record
/// which bill holds them).
async fn pay(app: &TestApp, token: &str, ids: &str) -> (Reply, Option<String>) {
    let reply = app.post(PAY, Some(token), json!({ "ids": ids })).await;
    let held = match ids.split('A').next().and_then(|id| id.parse::<i64>().ok()) {
        Some(first) if reply.status == 200 => stored_order(app, first).await.out_trade_no,
        _ => None,
    };
    (reply, held)
}

/// With `apis.community.public_url` set, the page links of both lists start there, not at the
/// request's `Host`.
#[tokio::test]
async fn page_links_start_at_the_configured_public_url() {
    let app = community_at("https://community.example.com", None).await;
    let owner = token(&app, DEMO_CODE).await;
    for list in [ORDERS, PAYMENTS] {
        let page = app.post(list, Some(&owner), json!({ "per_page": 1 })).await;
        let pages = &page.body["pages"];
        let base = format!("https://community.example.com{list}");
        assert_eq!((&pages["path"], &pages["first_page_url"]), (&json!(base), &json!(format!("{base}?page=1"))), "{}", page.body);
    }
}

#[tokio::test]
async fn order_list_pages_the_orders_of_the_members_houses() {
    let app = TestApp::community().await;
    let owner = token(&app, DEMO_CODE).await;
    let all = app.post(ORDERS, Some(&owner), json!({})).await;
    assert_eq!((all.status, all.flat_code()), (200, 0), "{}", all.body);
    insta::assert_json_snapshot!("community_orders_demo", all.body["data"]);
    // Order 3 is house 2's: not his.
    assert_eq!(order_ids(&app, &owner, json!({})).await, [1, 2, 4, 5]);
    assert_eq!(order_ids(&app, &owner, json!({ "paied": true })).await, [4, 5]);
    assert_eq!(order_ids(&app, &owner, json!({ "paied": false, "title": "供暖" })).await, [2]);
    // The document's 0/1 ("0未支付1已支付") read the same.
    assert_eq!(order_ids(&app, &owner, json!({ "paied": 1 })).await, [4, 5]);
    assert_eq!(order_ids(&app, &owner, json!({ "paied": 0, "title": "供暖" })).await, [2]);
    assert_eq!(order_ids(&app, &owner, json!({ "house_id": 2 })).await, Vec::<i64>::new());
    // Laravel's pages, links on the request's own host.
    let page = app.post(ORDERS, Some(&owner), json!({ "per_page": 3, "page": 2 })).await;
    let pages = &page.body["pages"];
    let base = app.url(ORDERS);
    assert_eq!(
        pages,
        &json!({ "current_page": 2, "first_page_url": format!("{base}?page=1"), "from": 4, "last_page": 2,
                 "last_page_url": format!("{base}?page=2"), "next_page_url": null, "path": base, "per_page": 3,
                 "prev_page_url": format!("{base}?page=1"), "to": 4, "total": 4 }),
        "{}",
        page.body
    );
    assert_eq!(page.body["data"].as_array().unwrap().len(), 1);
    let bad = app.post(ORDERS, Some(&owner), json!({ "per_page": 0 })).await;
    assert_eq!((bad.status, bad.flat_code()), (400, 1), "{}", bad.body);
}

#[tokio::test]
async fn payment_list_shows_the_payers_bills() {
    let app = TestApp::community().await;
    let owner = token(&app, DEMO_CODE).await;
    let bills = app.post(PAYMENTS, Some(&owner), json!({})).await;
    assert_eq!((bills.status, bills.flat_code()), (200, 0), "{}", bills.body);
    insta::assert_json_snapshot!("community_payments_demo", redacted(&bills.body["data"], &["/0/paid_at"]));
    assert_eq!(bills.body["pages"]["total"], json!(1));
    assert_eq!(bills.body["data"][0]["payment_shop_number"], DEMO_BILL);
    assert_eq!(app.post(PAYMENTS, Some(&owner), json!({ "title": "物业费" })).await.body["data"], json!([]));
    // A title filter past 100 characters is refused (a LIKE pattern that long is past what
    // SQLite takes).
    let long = app.post(PAYMENTS, Some(&owner), json!({ "title": "_".repeat(25_001) })).await;
    assert_eq!((long.status, long.flat_code()), (400, 1), "{}", long.body);
    assert_eq!(app.post(PAYMENTS, Some(&owner), json!({ "title": "费".repeat(100) })).await.body["data"], json!([]));
    // Every bill is paid: `paied` true (or 1) lists them, false (or 0) none.
    for paied in [json!(true), json!(1)] {
        let listed = app.post(PAYMENTS, Some(&owner), json!({ "paied": paied })).await;
        assert_eq!(listed.body["data"], bills.body["data"], "{paied}");
    }
    for paied in [json!(false), json!(0)] {
        let listed = app.post(PAYMENTS, Some(&owner), json!({ "paied": paied })).await;
        assert_eq!((listed.status, &listed.body["data"], &listed.body["pages"]["total"]), (200, &json!([]), &json!(0)), "{paied}");
    }
    // The wife may pay, but paid none of these.
    let wife = token(&app, "demo-wife").await;
    assert_eq!(app.post(PAYMENTS, Some(&wife), json!({})).await.body["data"], json!([]));
}

#[tokio::test]
async fn payment_create_answers_v2_pay_params_and_holds_the_orders() {
    let app = TestApp::community().await;
    let owner = token(&app, DEMO_CODE).await;
    let (first, bill) = pay(&app, &owner, "1A2").await;
    assert_eq!((first.status, first.flat_code()), (200, 0), "{}", first.body);
    let params = &first.body["data"];
    assert_eq!((params["signType"].as_str(), params["appId"].as_str()), (Some("MD5"), Some(app.parts("community").pay.merchant().appid.as_str())));
    let bill = bill.expect("the orders are held");
    assert_eq!(stored_order(&app, 2).await.out_trade_no.as_deref(), Some(bill.as_str()));
    // The same set, in another order: the live bill again (its prepay_id, placed a moment ago,
    // answered again).
    let (again, again_bill) = pay(&app, &owner, "2A1").await;
    assert_eq!((again.status, again_bill.as_deref()), (200, Some(bill.as_str())), "{}", again.body);
    assert_eq!(again.body["data"]["package"], first.body["data"]["package"], "the sandbox answers each placing a new prepay_id");
    assert_eq!(app.pay_platform("community").order(&bill).await.unwrap().expect("placed").amount_fen, 2);
    // An overlapping set while the bill is live: refused; a disjoint one is fine.
    let fresh = issue_order(&app, 1, "停车费", 500).await;
    for ids in ["2".to_owned(), format!("1A{fresh}"), format!("{fresh}A2")] {
        let (overlap, _) = pay(&app, &owner, &ids).await;
        assert_eq!((overlap.status, overlap.flat_code()), (400, 1), "{ids}: {}", overlap.body);
    }
    assert_eq!(stored_order(&app, fresh).await.out_trade_no, None, "a refused bill holds nothing");
    assert_eq!(pay(&app, &owner, &fresh.to_string()).await.0.status, 200);
    // Not his, not there, paid, malformed.
    for (ids, status) in [("3", 404), ("99", 404), ("4", 400), ("1B2", 400), ("0", 400), ("A", 400)] {
        let (refused, _) = pay(&app, &owner, ids).await;
        assert_eq!((refused.status, refused.flat_code()), (status, 1), "{ids}: {}", refused.body);
    }
    // After the bill's 30 minutes the orders are free again: a new bill takes them.
    app.server.clock.advance(std::time::Duration::from_secs(31 * 60));
    let owner = token(&app, DEMO_CODE).await;
    let (later, later_bill) = pay(&app, &owner, "2").await;
    assert_eq!(later.status, 200, "{}", later.body);
    assert_ne!(later_bill.as_deref(), Some(bill.as_str()));
}

#[tokio::test]
async fn concurrent_payments_of_overlapping_orders_pay_each_order_once() {
    let app = TestApp::community().await;
    let owner = token(&app, DEMO_CODE).await;
    let mut ids = vec![1, 2];
    for n in 0..4 {
        ids.push(issue_order(&app, 1, &format!("杂费{n}"), 100 + n).await);
    }
    let sets: Vec<String> = [
        vec![0, 1], vec![1, 2], vec![2, 3], vec![3, 4], vec![4, 5], vec![5, 0], vec![0, 2, 4], vec![1, 3, 5], vec![0, 1, 2, 3, 4, 5], vec![2], vec![5],
    ]
    .iter()
    .map(|set| set.iter().map(|i| ids[*i].to_string()).collect::<Vec<_>>().join("A"))
    .collect();
    let replies = join_all(sets.iter().map(|set| app.post(PAY, Some(&owner), json!({ "ids": set }))).collect()).await;
    let won: Vec<&String> = sets.iter().zip(&replies).filter(|(_, r)| r.status == 200).map(|(s, _)| s).collect();
    assert!(!won.is_empty(), "{:?}", replies.iter().map(|r| &r.body).collect::<Vec<_>>());
    for (set, reply) in sets.iter().zip(&replies) {
        assert!(reply.status == 200 || (reply.status == 400 && reply.flat_code() == 1), "{set}: {} {}", reply.status, reply.body);
    }
    // No order is in two winning sets, and each winning set is wholly held by one bill.
    let mut holders: BTreeMap<i64, String> = BTreeMap::new();
    for set in &won {
        let members: Vec<i64> = set.split('A').map(|i| i.parse().unwrap()).collect();
        let bill = stored_order(&app, members[0]).await.out_trade_no.expect("held");
        for id in &members {
            assert_eq!(stored_order(&app, *id).await.out_trade_no.as_deref(), Some(bill.as_str()), "{set}");
            assert!(holders.insert(*id, bill.clone()).is_none(), "order {id} is in two bills");
        }
    }
    // The same from the bills' side: one bill per winning set, no order in two bills.
    use sea_orm::EntityTrait as _;
    let db = sea_orm::Database::connect(&app.server.config.database_url).await.unwrap();
    let rows = mpapi::storage::community::entity::bill_order::Entity::find().all(&db).await.unwrap();
    let mut bill_sets: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut bills_of: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for row in rows.iter().filter(|r| ids.contains(&r.order_id)) {
        bill_sets.entry(row.out_trade_no.clone()).or_default().push(row.order_id);
        bills_of.entry(row.order_id).or_default().push(row.out_trade_no.clone());
    }
    assert!(bills_of.values().all(|bills| bills.len() == 1), "an order in two bills: {bills_of:?}");
    assert_eq!(bill_sets.len(), won.len(), "{bill_sets:?} for {won:?}");
    db.close().await.unwrap();
    // Orders of no winning set are held by nobody.
    for id in &ids {
        if !holders.contains_key(id) {
            assert_eq!(stored_order(&app, *id).await.out_trade_no, None, "order {id}");
        }
    }
    // Pay every winning bill; each order ends paid, by the bill that held it.
    let bills: std::collections::BTreeSet<String> = holders.values().cloned().collect();
    for bill in &bills {
        let paid = app.sandbox_pay(bill, "success").await;
        assert_eq!((paid.status, &paid.body["notify"]["status"]), (200, &json!(200)), "{}", paid.body);
    }
    for (id, bill) in &holders {
        let order = stored_order(&app, *id).await;
        assert!(order.paid && order.out_trade_no.as_deref() == Some(bill.as_str()), "{order:?}");
    }
    let listed = app.post(PAYMENTS, Some(&owner), json!({ "per_page": 100 })).await;
    let mut paid_ids: Vec<i64> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["orders"].as_array().unwrap().iter().map(|o| o["id"].as_i64().unwrap()))
        .collect();
    paid_ids.sort_unstable();
    let mut expected: Vec<i64> = holders.keys().copied().chain([4, 5]).collect();
    expected.sort_unstable();
    assert_eq!(paid_ids, expected, "each paid order in exactly one bill");
}

#[tokio::test]
async fn a_replayed_notify_changes_the_state_once() {
    let app = TestApp::community().await;
    let owner = token(&app, DEMO_CODE).await;
    let (_, bill) = pay(&app, &owner, "1A2").await;
    let bill = bill.unwrap();
    let (_, body) = app.pay_platform("community").build_notify(&bill, true).await.unwrap();
    let transaction = xml_fields(&body)["transaction_id"].clone();
    // The same notify four times at once, then twice more.
    let acks = join_all((0..4).map(|_| notify(&app, body.clone())).collect()).await;
    assert!(acks.iter().all(|ack| *ack == (200, "SUCCESS".to_owned())), "{acks:?}");
    for _ in 0..2 {
        assert_eq!(notify(&app, body.clone()).await, (200, "SUCCESS".to_owned()));
    }
    let stored = app.server.db.payments().get(&bill).await.unwrap().unwrap();
    assert_eq!(stored.transaction_id.as_deref(), Some(transaction.as_str()));
    let first_paid_at = stored_order(&app, 1).await.paid_at;
    assert!(stored_order(&app, 1).await.paid && stored_order(&app, 2).await.paid);
    let bills = app.post(PAYMENTS, Some(&owner), json!({})).await;
    assert_eq!(bills.body["pages"]["total"], json!(2), "the demo bill and this one: {}", bills.body);
    // A later replay (WeChat retries for hours) changes nothing either.
    app.server.clock.advance(std::time::Duration::from_secs(600));
    assert_eq!(notify(&app, body).await, (200, "SUCCESS".to_owned()));
    assert_eq!(stored_order(&app, 1).await.paid_at, first_paid_at);
}

#[tokio::test]
async fn a_forged_notify_is_refused_and_pays_nothing() {
    let app = TestApp::community().await;
    let owner = token(&app, DEMO_CODE).await;
    let (_, bill) = pay(&app, &owner, "1A2").await;
    let bill = bill.unwrap();
    let (_, body) = app.pay_platform("community").build_notify(&bill, true).await.unwrap();
    let genuine = xml_fields(&body);
    let key = app.pay_platform("community").api_key().await.unwrap().expect("v2");
    assert_eq!(md5_sign(&genuine, &key), genuine["sign"], "the test's signing agrees with WeChat's");
    let mut forgeries = Vec::new();
    // A field changed after signing.
    let mut cheaper = genuine.clone();
    cheaper.insert("total_fee".into(), "1".into());
    forgeries.push(("changed total_fee", cheaper));
    // Signed with another key.
    let mut wrong_key = genuine.clone();
    wrong_key.insert("sign".into(), md5_sign(&genuine, "0123456789abcdef0123456789abcdef"));
    forgeries.push(("another key", wrong_key));
    // No sign.
    let mut unsigned = genuine.clone();
    unsigned.remove("sign");
    forgeries.push(("unsigned", unsigned));
    // Signed with the merchant's key (as only WeChat can), but not this bill's amount, or not
    // this merchant: other transactions, refused on their merits.
    let mut amount = genuine.clone();
    amount.insert("total_fee".into(), "1".into());
    amount.insert("cash_fee".into(), "1".into());
    amount.insert("transaction_id".into(), "4200000000000000000000000001".into());
    amount.insert("sign".into(), md5_sign(&amount, &key));
    forgeries.push(("another amount", amount));
    let mut merchant = genuine.clone();
    merchant.insert("mch_id".into(), "1230000999".into());
    merchant.insert("transaction_id".into(), "4200000000000000000000000002".into());
    merchant.insert("sign".into(), md5_sign(&merchant, &key));
    forgeries.push(("another merchant", merchant));
    for (what, fields) in forgeries {
        let (status, code) = notify(&app, xml_of(&fields)).await;
        assert_eq!((status, code.as_str()), (400, "FAIL"), "{what}");
        assert!(!stored_order(&app, 1).await.paid, "{what} paid the order");
    }
    // Not XML, or an entity attack.
    for junk in [b"{\"not\":\"xml\"}".to_vec(), b"<!DOCTYPE xml [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><xml><a>&x;</a></xml>".to_vec()] {
        let reply = app.post_raw(NOTIFY, "text/xml", junk).await;
        assert_eq!(reply.status, 400, "{}", reply.body);
        assert!(reply.body.as_str().unwrap().contains("FAIL"), "{}", reply.body);
    }
    // The genuine one still pays.
    assert_eq!(notify(&app, body).await, (200, "SUCCESS".to_owned()));
    assert!(stored_order(&app, 1).await.paid);
}

#[tokio::test]
async fn a_failed_payment_leaves_the_orders_payable() {
    let app = TestApp::community().await;
    let owner = token(&app, DEMO_CODE).await;
    let (_, bill) = pay(&app, &owner, "1").await;
    let bill = bill.unwrap();
    let failed = app.sandbox_pay(&bill, "fail").await;
    assert_eq!((failed.status, &failed.body["notify"]["status"]), (200, &json!(200)), "{}", failed.body);
    assert!(!stored_order(&app, 1).await.paid);
    assert_eq!(app.sandbox_pay(&bill, "success").await.body["notify"]["status"], json!(200));
    assert!(stored_order(&app, 1).await.paid);
    assert_eq!(order_ids(&app, &owner, json!({ "paied": false })).await, [2]);
}

#[tokio::test]
async fn a_lapsed_bill_paid_late_never_pays_an_order_twice() {
    let app = TestApp::community().await;
    let owner = token(&app, DEMO_CODE).await;
    let (_, old) = pay(&app, &owner, "1").await;
    let old = old.unwrap();
    // WeChat's notify of the old bill, delayed past the bill's 30 minutes.
    let (_, late_notify) = app.pay_platform("community").build_notify(&old, true).await.unwrap();
    app.server.clock.advance(std::time::Duration::from_secs(31 * 60));
    let owner = token(&app, DEMO_CODE).await;
    let (_, new) = pay(&app, &owner, "1A2").await;
    let new = new.expect("the lapsed claim no longer holds order 1");
    let paid = app.sandbox_pay(&new, "success").await;
    assert_eq!(paid.body["notify"]["status"], json!(200), "{}", paid.body);
    // The old bill's money arrives after all: acknowledged (WeChat must stop retrying), but the
    // order stays paid by the new bill, and the old bill is not listed as paying it.
    assert_eq!(notify(&app, late_notify).await, (200, "SUCCESS".to_owned()));
    let order = stored_order(&app, 1).await;
    assert_eq!((order.paid, order.out_trade_no.as_deref()), (true, Some(new.as_str())));
    let listed = app.post(PAYMENTS, Some(&owner), json!({ "per_page": 100 })).await;
    let holders: Vec<&str> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["orders"].as_array().unwrap().iter().any(|o| o["id"] == json!(1)))
        .map(|b| b["payment_shop_number"].as_str().unwrap())
        .collect();
    assert_eq!(holders, [new.as_str()], "{}", listed.body);
    let stored = app.server.db.payments().get(&old).await.unwrap().unwrap();
    assert_ne!(stored.refund_state, mpapi::storage::payments::RefundState::None, "the old bill's money goes back: {stored:?}");
}

#[tokio::test]
async fn title_filters_take_percent_and_underscore_literally() {
    let app = TestApp::community().await;
    let owner = token(&app, "demo").await;
    assert_eq!(order_ids(&app, &owner, json!({ "title": "%" })).await, Vec::<i64>::new());
    assert_eq!(order_ids(&app, &owner, json!({ "title": "_" })).await, Vec::<i64>::new());
    let bills = app.post(PAYMENTS, Some(&owner), json!({ "title": "%" })).await;
    assert_eq!((bills.status, bills.body["pages"]["total"].as_i64()), (200, Some(0)), "{}", bills.body);
    let bills = app.post(PAYMENTS, Some(&owner), json!({ "title": "测试费" })).await;
    assert_eq!(bills.body["pages"]["total"].as_i64(), Some(1), "{}", bills.body);
}

/// A member's bill holds the orders only while she may pay them: once the owner revokes her
/// pay right, his own payment of those orders gives her bill up (closed with WeChat Pay, so it
/// can no longer be paid) rather than waiting out its 30 minutes. A member who may still pay
/// keeps hers.
#[tokio::test]
async fn a_bill_of_a_member_who_may_no_longer_pay_is_given_up_for_the_owners() {
    let app = TestApp::community().await;
    let owner = token(&app, DEMO_CODE).await;
    // 刘芳 (binding 3) may pay house 1's orders.
    let wife = token(&app, "demo-wife").await;
    let (held, hers) = pay(&app, &wife, "1").await;
    assert_eq!(held.status, 200, "{}", held.body);
    let hers = hers.expect("her bill holds order 1");
    let (waiting, _) = pay(&app, &owner, "1").await;
    assert_eq!((waiting.status, waiting.body["msg"].as_str()), (400, Some("订单正在支付中，请稍后再试")), "{}", waiting.body);
    let revoked = app.put(CHARGE, Some(&owner), json!({ "id": 3 })).await;
    assert_eq!(revoked.body["data"], "授权支付", "{}", revoked.body);
    let (paying, his) = pay(&app, &owner, "1").await;
    assert_eq!(paying.status, 200, "{}", paying.body);
    assert_ne!(his.as_deref(), Some(hers.as_str()));
    assert_eq!(app.server.db.payments().get(&hers).await.unwrap().unwrap().status, mpapi::storage::payments::PayStatus::Closed);
    assert_eq!(app.sandbox_pay(&hers, "success").await.status, 409, "her bill can no longer be paid");
    assert_eq!(app.sandbox_pay(&his.unwrap(), "success").await.body["notify"]["status"], json!(200));
    assert!(stored_order(&app, 1).await.paid);
}
