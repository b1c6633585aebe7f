//! o2o's rows in its contract's shapes (004): orders with their verify codes, refund records,
//! the bridge page's HTML. Money in yuan strings with two decimals, times in Beijing local time.

use base64::Engine as _;
use generated::o2o::types::{Order as WireOrder, OrderItem, Refund as WireRefund, RefundStatus};

use super::error::O2oError;
use crate::api_support::wire;
use crate::clock::beijing_local;
use crate::money::yuan;
use crate::providers::wxacode::WxaCodeImage;
use crate::storage::o2o::orders::{Order, PAID, Refund, VerifyCode};
use crate::storage::payments::{RefundRow, RefundRowStatus};

/// An order as 004 §订单模块 订单列表 shows it: `items` (its verify codes) from 已付款 on,
/// `isOperSelf` against the caller's operator.
pub fn order(order: &Order, codes: &[VerifyCode], caller_oper_id: i64) -> Result<WireOrder, O2oError> {
    let items = (order.status >= PAID).then(|| {
        codes
            .iter()
            .filter(|c| c.order_id == order.id)
            .map(|c| Ok(OrderItem { id: c.id, order_id: c.order_id, verify_code: c.verify_code.clone(), status: wire(c.status)? }))
            .collect::<Result<Vec<_>, String>>()
    });
    let items = items.transpose().map_err(O2oError::internal)?;
    Ok(WireOrder {
        id: order.id,
        oper_id: order.oper_id,
        order_no: order.order_no.clone(),
        user_id: order.user_id,
        user_name: order.user_name.clone(),
        notify_mobile: order.notify_mobile.clone(),
        merchant_id: order.merchant_id,
        merchant_name: order.merchant_name.clone(),
        goods_id: order.goods_id,
        goods_name: order.goods_name.clone(),
        goods_pic: order.goods_pic.clone(),
        goods_thumb_url: order.goods_thumb_url.clone(),
        price: yuan(order.price_fen),
        buy_number: order.buy_number,
        pay_price: yuan(order.pay_price_fen),
        pay_time: order.pay_time.map(beijing_local),
        refund_price: order.refund_price_fen.map(yuan),
        refund_time: order.refund_time.map(beijing_local),
        status: wire(order.status).map_err(O2oError::internal)?,
        items,
        is_oper_self: wire(i32::from(order.oper_id == caller_oper_id)).map_err(O2oError::internal)?,
    })
}

/// A refund record (004 §订单模块 退款接口): its status and WeChat Pay's refund id from the
/// shared refund row (1 退款中 until WeChat Pay answers; closed or abnormal 3 退款失败).
pub fn refund(refund: &Refund, order: &Order, row: Option<&RefundRow>) -> WireRefund {
    let status = match row.map(|r| r.status) {
        Some(RefundRowStatus::Success) => RefundStatus::Value2,
        Some(RefundRowStatus::Closed | RefundRowStatus::Abnormal) => RefundStatus::Value3,
        _ => RefundStatus::Value1,
    };
    let updated = row.and_then(|r| r.finished_at).unwrap_or(refund.created_at);
    WireRefund {
        id: refund.id,
        order_id: order.id,
        order_no: order.order_no.clone(),
        amount: yuan(refund.amount_fen),
        updated_at: beijing_local(updated),
        created_at: beijing_local(refund.created_at),
        refund_id: row.and_then(|r| r.refund_id.clone()).unwrap_or_default(),
        status,
    }
}

/// The bridge page (004 §订单模块 小程序间跳转h5): the target operator's 小程序码 inline, and the
/// scene in text (DevTools can start the page with it as `scene`).
pub fn bridge_page(image: &WxaCodeImage, scene_id: &str, page: &str, oper_id: i64) -> String {
    let data = base64::engine::general_purpose::STANDARD.encode(&image.bytes);
    let page = crate::start::escape(page);
    format!(
        r#"<!DOCTYPE html>
<html lang="zh-CN">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>长按识别小程序码完成支付</title>
<style>body{{font-family:sans-serif;text-align:center;margin:2em}}img{{width:260px;height:260px}}code{{font-size:1.1em}}</style></head>
<body>
<h1>长按识别小程序码</h1>
<p>进入运营中心 {oper_id} 的小程序完成支付</p>
<img class="wxacode" alt="小程序码" data-scene="{scene_id}" src="data:{content_type};base64,{data}">
<p>场景值 scene：<code>{scene_id}</code>（30 分钟内有效）</p>
<p>页面 page：<code>{page}</code></p>
</body>
</html>
"#,
        content_type = image.content_type,
    )
}
