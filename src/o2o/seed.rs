//! o2o's data on a fresh database: the GB/T 2260 areas always; with `demo`, the catalogue of the
//! 004 example world and the test user's orders (paid, refunded, unpaid at operator 5), their
//! payments placed with the operators' merchants.

use std::time::Duration;

use super::service::O2oService;
use crate::storage::o2o::demo::{DEMO_PAID_ORDER, DEMO_REFUNDED_ORDER, DEMO_UNPAID_ORDER, DEMO_USER, DemoOrder};
use crate::storage::o2o::orders::{CODE_REFUNDED, CODE_UNUSED, CODE_VERIFIED, Order, PAID, REFUNDED, unpaid_order};
use crate::storage::o2o::seed::{DEMO_GOODS_OTHER, DEMO_GOODS_PENNY, DEMO_GOODS_SET};
use crate::storage::StorageError;

const DAY_MS: i64 = 86_400_000;

/// Seed what is missing; answers what was written (for the start-up log).
pub async fn seed(service: &O2oService, demo: bool) -> Result<Vec<&'static str>, StorageError> {
    let db = &service.db;
    let now = service.clock.now_ms();
    let mut written = Vec::new();
    if db.seed_o2o_areas(now).await? {
        written.push("the areas");
    }
    if !demo {
        return Ok(written);
    }
    if db.seed_o2o_catalogue(now).await? {
        written.push("the demo catalogue");
    }
    // The demo orders need both example operators (3 and 5).
    let (Some(own), Some(other)) = (service.operator(3), service.operator(5)) else {
        return Ok(written);
    };
    let (user_id, name, mobile) = DEMO_USER;
    let user = user_id.to_string();
    let store = db.o2o();
    // The orders snapshot the demo catalogue's goods, as a purchase would.
    let snapshot = async |id: i64, order_no: &str, goods_id: i64, number: i32, at: i64| -> Result<Option<Order>, StorageError> {
        let Some(goods) = store.goods(goods_id).await? else { return Ok(None) };
        let Some(merchant) = store.merchant(goods.merchant_id).await? else { return Ok(None) };
        let notify_mobile = (goods.oper_id == 3).then_some(mobile);
        Ok(Some(unpaid_order(id, order_no, (user_id, name), notify_mobile, &merchant.name, &goods, number, at)))
    };
    let (Some(mut refunded), Some(mut paid), Some(unpaid)) = (
        snapshot(893_846_835, DEMO_REFUNDED_ORDER, DEMO_GOODS_PENNY, 1, now - 2 * DAY_MS).await?,
        snapshot(893_847_012, DEMO_PAID_ORDER, DEMO_GOODS_SET, 2, now - DAY_MS).await?,
        snapshot(893_847_105, DEMO_UNPAID_ORDER, DEMO_GOODS_OTHER, 1, now).await?,
    ) else {
        return Ok(written);
    };
    refunded.pay_time = Some(refunded.created_at + 60_000);
    refunded.refund_time = Some(now - DAY_MS);
    refunded.refund_price_fen = Some(refunded.pay_price_fen);
    refunded.status = REFUNDED;
    let out_refund_no = crate::payments::refund_number(DEMO_REFUNDED_ORDER);
    refunded.out_refund_no = Some(out_refund_no.clone());
    paid.pay_time = Some(paid.created_at + 60_000);
    paid.status = PAID;
    // Open for a day rather than the usual 15 minutes: the bridge page's demo stays walkable.
    let day = Duration::from_millis(DAY_MS as u64);
    let names = [refunded.goods_name.clone(), paid.goods_name.clone(), unpaid.goods_name.clone()];
    let pays = [
        own.payments.new_order(DEMO_REFUNDED_ORDER, Some(&user), None, &names[0], refunded.pay_price_fen, refunded.created_at, day),
        own.payments.new_order(DEMO_PAID_ORDER, Some(&user), None, &names[1], paid.pay_price_fen, paid.created_at, day),
        other.payments.new_order(DEMO_UNPAID_ORDER, Some(&user), None, &names[2], unpaid.pay_price_fen, now, day),
    ];
    let [refund_pay, paid_pay, unpaid_pay] = pays;
    let orders = vec![
        DemoOrder {
            order: refunded,
            pay: refund_pay,
            codes: vec![(5317, "209384751163", CODE_REFUNDED)],
            refund: Some((16, out_refund_no, "50000206712018041604196575582")),
        },
        DemoOrder {
            order: paid,
            pay: paid_pay,
            codes: vec![(5501, "836251904417", CODE_UNUSED), (5502, "471906385220", CODE_VERIFIED)],
            refund: None,
        },
        DemoOrder { order: unpaid, pay: unpaid_pay, codes: Vec::new(), refund: None },
    ];
    if db.seed_o2o_demo(orders, now).await? {
        written.push("the demo user 10086 and its orders");
    }
    Ok(written)
}
