//! The shared payment store (`storage::payments`) below the APIs: a refund names only its order,
//! so its API is the order's; a payment the API cannot apply keeps none of the API's writes
//! and is stored paid, needing a refund; a payment of another API or amount changes no order.

use mpapi::storage::payments::{
    NewPayOrder, Notified, PayOrder, PayStatus, RefundRowStatus, RefundState, Reported, Settle, Settled, Settlement, TradeType,
};
use mpapi::storage::{Db, StorageError};
use sea_orm::{ConnectionTrait, DatabaseTransaction};

use crate::app::fresh_database;

/// A pending order `out_trade_no` of `api` for 5.00 yuan (500 fen), placed at 1,000 ms.
fn refund_test_order<'a>(out_trade_no: &'a str, api: &'a str) -> NewPayOrder<'a> {
    NewPayOrder {
        out_trade_no,
        api,
        appid: "wx0000000000000001",
        mchid: "1900000001",
        user_id: None,
        payer_openid: None,
        description: "退款测试",
        amount_fen: 500,
        created_at: 1_000,
        expires_at: 1_800_000,
    }
}

#[tokio::test]
async fn a_refund_is_found_only_through_the_api_of_its_order() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let db = Db::connect(&fresh_database(&dir).await).await.expect("the database");
    let payments = db.payments();
    for (no, api) in [("O2O_ORDER_1", "o2o"), ("HEATING_ORDER_1", "heating")] {
        payments.insert(refund_test_order(no, api)).await.expect("inserted");
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

/// An API's settle that writes one of its rows (another order's description, here) and then
/// applies the payment or, with `conflict`, refuses it.
struct WritesThen {
    conflict: bool,
}

#[async_trait::async_trait]
impl Settle for WritesThen {
    async fn paid(&self, tx: &DatabaseTransaction, _: &PayOrder, _: i64) -> Result<Settled, StorageError> {
        tx.execute_unprepared("UPDATE pay_order SET description = 'written by the API' WHERE out_trade_no = 'API_ROW'").await?;
        Ok(if self.conflict { Settled::Conflict("taken meanwhile".into()) } else { Settled::Applied })
    }

    async fn released(&self, _: &DatabaseTransaction, _: &PayOrder) -> Result<(), StorageError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_payment_the_api_cannot_apply_keeps_none_of_its_writes_and_needs_a_refund() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let db = Db::connect(&fresh_database(&dir).await).await.expect("the database");
    let payments = db.payments();
    for no in ["CONFLICT_1", "APPLIED_1", "API_ROW"] {
        let new = NewPayOrder {
            out_trade_no: no,
            api: "heating",
            appid: "wx0000000000000001",
            mchid: "1900000001",
            user_id: None,
            payer_openid: None,
            description: "结算测试",
            amount_fen: 500,
            created_at: 1_000,
            expires_at: 1_800_000,
        };
        payments.insert(new).await.expect("inserted");
    }
    let notified = |notify_id, out_trade_no, transaction_id| Notified {
        notify_id,
        api: "heating",
        event_type: "TRANSACTION.SUCCESS",
        out_trade_no,
        amount_fen: 500,
        reported: Reported::Paid { transaction_id, paid_at: 2_000 },
    };
    let api_row = || async { db.payments().get("API_ROW").await.expect("read").expect("the API's row").description };

    let conflicting = notified("EV-CONFLICT", "CONFLICT_1", "4200000000000000000000000001");
    let settled = payments.settle(&conflicting, &WritesThen { conflict: true }, 3_000).await.expect("settled");
    assert_eq!(settled, Settlement::RefundNeeded);
    let order = payments.get("CONFLICT_1").await.expect("read").expect("the order");
    assert_eq!(
        (order.status, order.transaction_id.as_deref(), order.refund_state, order.refund_reason.as_deref()),
        (PayStatus::Paid, Some("4200000000000000000000000001"), RefundState::Needed, Some("taken meanwhile")),
        "the money is taken and goes back: {order:?}"
    );
    assert_eq!(api_row().await, "结算测试", "the API's write was rolled back with its conflict");
    // A redelivery changes nothing.
    assert_eq!(payments.settle(&conflicting, &WritesThen { conflict: true }, 4_000).await.expect("settled"), Settlement::Duplicate);
    assert_eq!(payments.get("CONFLICT_1").await.expect("read").expect("the order"), order);

    // An API that applies the payment keeps its writes.
    let applied = notified("EV-APPLIED", "APPLIED_1", "4200000000000000000000000002");
    assert_eq!(payments.settle(&applied, &WritesThen { conflict: false }, 3_000).await.expect("settled"), Settlement::Paid);
    let order = payments.get("APPLIED_1").await.expect("read").expect("the order");
    assert_eq!((order.status, order.refund_state), (PayStatus::Paid, RefundState::None), "{order:?}");
    assert_eq!(api_row().await, "written by the API");
}

#[tokio::test]
async fn a_late_outcome_of_an_earlier_refund_leaves_the_one_under_way() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let db = Db::connect(&fresh_database(&dir).await).await.expect("the database");
    let payments = db.payments();
    payments.insert(refund_test_order("LATE_REFUND_1", "o2o")).await.expect("inserted");
    payments.mark_reported("LATE_REFUND_1", Reported::Paid { transaction_id: "4200000000000000000000000001", paid_at: 2_000 }).await.expect("paid");
    let settle = WritesThen { conflict: false };
    let state = || async { payments.get("LATE_REFUND_1").await.expect("read").map(|o| (o.refund_state, o.refunded_fen)) };
    assert!(payments.start_refund("LATE_REFUND_1", "R_LATE_1", 200, "用户申请", 3_000).await.expect("recorded"));
    assert!(!payments.start_refund("LATE_REFUND_1", "R_LATE_X", 100, "用户申请", 3_000).await.expect("refused"), "one at a time");
    assert!(payments.refund_outcome("R_LATE_1", RefundRowStatus::Closed, None, &settle, 4_000).await.expect("closed"));
    assert_eq!(state().await, Some((RefundState::Failed, 0)));
    // A second refund is under way when the first turns out to have succeeded after all: the
    // money is counted, and the order's refund stays under way (a third cannot start).
    assert!(payments.start_refund("LATE_REFUND_1", "R_LATE_2", 200, "用户申请", 5_000).await.expect("recorded"));
    assert!(payments.refund_outcome("R_LATE_1", RefundRowStatus::Success, Some("503000000000001"), &settle, 6_000).await.expect("late"));
    assert_eq!(state().await, Some((RefundState::Processing, 200)));
    assert!(!payments.start_refund("LATE_REFUND_1", "R_LATE_3", 100, "用户申请", 6_000).await.expect("refused"), "R_LATE_2 is under way");
    assert!(payments.refund_outcome("R_LATE_2", RefundRowStatus::Success, Some("503000000000002"), &settle, 7_000).await.expect("done"));
    assert_eq!(state().await, Some((RefundState::Refunded, 400)));
    // Past the paid amount nothing more starts.
    assert!(!payments.start_refund("LATE_REFUND_1", "R_LATE_4", 101, "用户申请", 8_000).await.expect("refused"), "400 + 101 > 500");
}

#[tokio::test]
async fn a_reopened_order_keeps_its_prepay_but_never_reuses_it() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let db = Db::connect(&fresh_database(&dir).await).await.expect("the database");
    let payments = db.payments();
    let no = "O2O_REOPENED_1";
    payments.insert(refund_test_order(no, "o2o")).await.expect("inserted");
    assert!(payments.set_prepay(no, "wx_attempt_1", TradeType::Jsapi, Some("o_payer"), 2_000).await.expect("recorded"));
    let placed = payments.get(no).await.expect("read").expect("the order").prepay.expect("placed");
    assert_eq!((placed.id.as_str(), placed.at, placed.trade, placed.payer_openid.as_deref()), ("wx_attempt_1", 2_000, Some(TradeType::Jsapi), Some("o_payer")));
    // The attempt fails (PAYERROR); the order is reopened for another.
    payments.mark_reported(no, Reported::Failed).await.expect("failed");
    assert!(payments.reopen_failed("o2o", no, 3_000).await.expect("reopened"));
    let reopened = payments.get(no).await.expect("read").expect("the order");
    let prepay = reopened.prepay.expect("still counts as placed");
    assert_eq!((reopened.status, prepay.id.as_str(), prepay.trade, prepay.payer_openid), (PayStatus::Pending, "wx_attempt_1", None, None));
    // Placed again, the new placing is described and reusable.
    assert!(payments.set_prepay(no, "wx_attempt_2", TradeType::Jsapi, Some("o_payer"), 4_000).await.expect("recorded"));
    let again = payments.get(no).await.expect("read").expect("the order").prepay.expect("placed");
    assert_eq!((again.id.as_str(), again.trade), ("wx_attempt_2", Some(TradeType::Jsapi)));
}

#[tokio::test]
async fn a_payment_of_another_api_or_amount_changes_no_order_and_is_answered_so_again() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let db = Db::connect(&fresh_database(&dir).await).await.expect("the database");
    let payments = db.payments();
    for (no, api) in [("O2O_ORDER_2", "o2o"), ("HEATING_ORDER_2", "heating"), ("API_ROW", "heating")] {
        payments.insert(refund_test_order(no, api)).await.expect("inserted");
    }
    let notified = |notify_id, out_trade_no, amount_fen| Notified {
        notify_id,
        api: "heating",
        event_type: "TRANSACTION.SUCCESS",
        out_trade_no,
        amount_fen,
        reported: Reported::Paid { transaction_id: "4200000000000000000000000003", paid_at: 2_000 },
    };
    let settle = WritesThen { conflict: false };
    let unchanged = |no: &'static str| {
        let payments = db.payments();
        async move {
            let order = payments.get(no).await.expect("read").expect("the order");
            assert_eq!((order.status, order.transaction_id, order.paid_at), (PayStatus::Pending, None, None), "{no}");
        }
    };
    let api_row = || async { db.payments().get("API_ROW").await.expect("read").expect("the API's row").description };
    // Each refusal is answered so again on redelivery, and no order changes.
    for (report, answer) in [
        (notified("EV-OTHER-API", "O2O_ORDER_2", 500), Settlement::UnknownOrder),
        (notified("EV-AMOUNT", "HEATING_ORDER_2", 499), Settlement::AmountMismatch),
        (notified("EV-NONE", "NO_SUCH_ORDER", 500), Settlement::UnknownOrder),
    ] {
        for _ in 0..2 {
            assert_eq!(payments.settle(&report, &settle, 3_000).await.expect("settled"), answer, "{}", report.notify_id);
        }
    }
    unchanged("O2O_ORDER_2").await;
    unchanged("HEATING_ORDER_2").await;
    assert_eq!(api_row().await, "退款测试", "the API's writes ran for no refusal");
    // The order's own payment settles it; then another amount is still refused, the same paid.
    assert_eq!(payments.settle(&notified("EV-PAID", "HEATING_ORDER_2", 500), &settle, 3_000).await.expect("settled"), Settlement::Paid);
    let paid = payments.get("HEATING_ORDER_2").await.expect("read").expect("the order");
    assert_eq!((paid.status, paid.transaction_id.as_deref(), paid.paid_at), (PayStatus::Paid, Some("4200000000000000000000000003"), Some(2_000)));
    assert_eq!(api_row().await, "written by the API");
    assert_eq!(payments.settle(&notified("EV-PAID-LESS", "HEATING_ORDER_2", 1), &settle, 4_000).await.expect("settled"), Settlement::AmountMismatch);
    assert_eq!(payments.settle(&notified("EV-PAID-AGAIN", "HEATING_ORDER_2", 500), &settle, 4_000).await.expect("settled"), Settlement::Duplicate);
    assert_eq!(payments.get("HEATING_ORDER_2").await.expect("read").expect("the order"), paid);
    // Another API's order reported paid by the transaction that paid this one: refused as
    // before, not a failed write of a transaction id two orders would hold.
    let misrouted = notified("EV-OTHER-API-PAID", "O2O_ORDER_2", 500);
    assert_eq!(payments.settle(&misrouted, &settle, 5_000).await.expect("settled"), Settlement::UnknownOrder);
    unchanged("O2O_ORDER_2").await;
}
