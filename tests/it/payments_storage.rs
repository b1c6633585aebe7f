//! The shared payment store (`storage::payments`) below the APIs: a refund names only its order,
//! so its API is the order's.

use mpapi::storage::Db;
use mpapi::storage::payments::{NewPayOrder, Reported};

use crate::app::fresh_database;

#[tokio::test]
async fn a_refund_is_found_only_through_the_api_of_its_order() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let db = Db::connect(&fresh_database(&dir).await).await.expect("the database");
    let payments = db.payments();
    for (no, api) in [("O2O_ORDER_1", "o2o"), ("HEATING_ORDER_1", "heating")] {
        let new = NewPayOrder {
            out_trade_no: no,
            api,
            appid: "wx0000000000000001",
            mchid: "1900000001",
            user_id: None,
            payer_openid: None,
            description: "退款测试",
            amount_fen: 500,
            created_at: 1_000,
            expires_at: 1_800_000,
        };
        payments.insert(new).await.expect("inserted");
        let transaction_id = format!("4200000000000000000000{no:.6}");
        payments.mark_reported(no, Reported::Paid { transaction_id: &transaction_id, paid_at: 2_000 }).await.expect("paid");
    }
    assert!(payments.start_refund("O2O_ORDER_1", "R_O2O_1", 200, "用户申请", 3_000).await.expect("recorded"));

    let found = payments.refund("o2o", "R_O2O_1").await.expect("read").expect("o2o's refund");
    assert_eq!((found.out_trade_no.as_str(), found.refund_fen), ("O2O_ORDER_1", 200));
    assert!(payments.refund("heating", "R_O2O_1").await.expect("read").is_none(), "another API's refund");
    assert!(payments.refund("o2o", "R_NONE").await.expect("read").is_none());

    // The sweep's list: refunds under way of the API's own orders, asked for before `before`.
    let listed = |api: &'static str, before: i64| {
        let payments = db.payments();
        async move { payments.processing_refunds(api, before, 10).await.expect("listed").into_iter().map(|r| r.out_refund_no).collect::<Vec<_>>() }
    };
    assert_eq!(listed("o2o", 3_001).await, ["R_O2O_1"]);
    assert!(listed("heating", 3_001).await.is_empty(), "another API's refund");
    assert!(listed("o2o", 3_000).await.is_empty(), "asked for at 3,000, not before");
}
