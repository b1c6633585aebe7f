//! The o2o API's tables as sea-orm entities (see the migration `m20261204_000012_o2o` for the
//! column conventions: ms, fen, GCJ-02 micro-degrees).

#![allow(missing_docs)] // derive-generated items; each entity's module is documented

entity!(
    /// `o2o_area`: a GB/T 2260 area (004 §登陆相关 获取地区列表); `hot_rank` > 0 for 热门 cities.
    area, "o2o_area", i64, false, {
    area_id: i32, name: String, parent_id: i32, tier: i32, initial: String, lng_e6: i64, lat_e6: i64, hot_rank: i32,
});
entity!(
    /// `o2o_user`: an account, keyed by its phone (登陆接口(绑定手机号)).
    user, "o2o_user", i64, false, {
    name: String, mobile: String, created_at: i64,
});
entity!(
    /// `o2o_openid`: an (appid, openid) that logged in with `/wxLogin` (`id`: the shared WeChat
    /// identity's user id, the session subject), and the account `/login` or
    /// `/loginWithSceneId` bound it to.
    openid, "o2o_openid", String, false, {
    oper_id: i64, appid: String, openid: String, user_id: Option<i64>, updated_at: i64,
});
entity!(
    /// `o2o_category`: 商家类别 (004 §商家模块 获取商家类别列表).
    category, "o2o_category", i64, false, {
    pid: i64, name: String, icon: String, status: i32, sort: i32,
});
entity!(
    /// `o2o_merchant`: 商家 (004 §商家模块 获取商家列表).
    merchant, "o2o_merchant", i64, false, {
    oper_id: i64, merchant_category_id: i64, name: String, brand: String, region: i32, address: String,
    province_id: i32, city_id: i32, area_id: i32, lng_e6: i64, lat_e6: i64, open_time: String, close_time: String,
    logo: String, desc_pic: String, desc: String, contacter: String, contacter_phone: String, status: i32,
});
entity!(
    /// `o2o_goods`: 商品 (004 §商家模块 商品列表); `pic_list` a JSON array of URLs.
    goods, "o2o_goods", i64, false, {
    oper_id: i64, merchant_id: i64, name: String, desc: String, market_price_fen: i64, price_fen: i64,
    start_date: String, end_date: String, open_time: String, close_time: String, thumb_url: String, pic: String,
    pic_list: String, buy_info: String, status: i32, sell_number: i64,
});
entity!(
    /// `o2o_order`: 订单 (004 §订单模块) with the goods' price snapshot.
    order, "o2o_order", i64, false, {
    order_no: String, oper_id: i64, user_id: i64, user_name: String, notify_mobile: Option<String>, merchant_id: i64,
    merchant_name: String, goods_id: i64, goods_name: String, goods_pic: String, goods_thumb_url: String,
    price_fen: i64, buy_number: i32, pay_price_fen: i64, status: i32, pay_time: Option<i64>,
    refund_price_fen: Option<i64>, refund_time: Option<i64>, out_refund_no: Option<String>, created_at: i64,
    updated_at: i64,
});
entity!(
    /// `o2o_verify_code`: 核销码, one per unit of a paid order (1 未核销, 2 已核销, 3 已退款).
    verify_code, "o2o_verify_code", i64, true, {
    order_id: i64, verify_code: String, status: i32, verified_at: Option<i64>, created_at: i64,
});
entity!(
    /// `o2o_scene`: a bridge page's scene id (≤ 32 chars), what it carries, and the WeChat
    /// identity that redeemed it (one only).
    scene, "o2o_scene", String, false, {
    oper_id: i64, user_id: i64, order_no: String, expires_at: i64, created_at: i64, redeemed_by: Option<String>,
});
entity!(
    /// `o2o_refund`: the one refund of an order (004 §订单模块 退款接口): its record number and
    /// amount; where it stands is the shared `pay_refund` row under `out_refund_no`.
    refund, "o2o_refund", i64, true, {
    order_id: i64, out_refund_no: String, amount_fen: i64, created_at: i64,
});
