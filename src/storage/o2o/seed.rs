//! The o2o demo catalogue (004 §商家模块, the contract's example world): a category tree, the
//! merchants 蜀大侠火锅(海岸城店) (operator 3) and 茶颜小筑(南山书城店) (operator 5) near the
//! examples' user in 深圳市南山区 with their goods, a few merchants in 广州 and 北京 for developers
//! elsewhere, and one disabled category, merchant and delisted goods to show what is hidden.
//! Fictional data; goods are valid from the seeding year to the end of the next.

use chrono::Datelike;
use sea_orm::{EntityTrait, IntoActiveModel};

use super::entity::*;
use super::{Category, Goods, Merchant};
use crate::storage::{Db, StorageError, claim_seed, write};

/// 蜀大侠火锅(海岸城店), operator 3 (the default sandbox operator: `isOperSelf` 1 there).
pub const DEMO_MERCHANT_OWN: i64 = 1024;
/// 茶颜小筑(南山书城店), operator 5 (another operator's mini-program: `isOperSelf` 0 from 3).
pub const DEMO_MERCHANT_OTHER: i64 = 1031;
/// 蜀大侠(福田COCO Park店), operator 3: in 深圳 (no 火锅 in its name, address or brand, as the
/// contract's keyword example has one match) but beyond 5 km of the examples' user.
pub const DEMO_MERCHANT_FUTIAN: i64 = 1025;
/// A disabled (禁用) merchant in 南山区 with a listed goods: neither is ever shown.
pub const DEMO_MERCHANT_DISABLED: i64 = 1026;
/// 双人超值火锅套餐 at [`DEMO_MERCHANT_OWN`], 128.00 (198.00).
pub const DEMO_GOODS_SET: i64 = 2048;
/// 1分钱体验券（酸梅汤1杯） at [`DEMO_MERCHANT_OWN`], 0.01: a real payment for one fen.
pub const DEMO_GOODS_PENNY: i64 = 2051;
/// 芋圆鲜奶茶双杯券 at [`DEMO_MERCHANT_OTHER`], 26.00: the cross-operator purchase.
pub const DEMO_GOODS_OTHER: i64 = 3107;
/// 手作鲜奶茶单杯券 at [`DEMO_MERCHANT_OTHER`], 15.00 (that merchant's `lowestAmount`).
pub const DEMO_GOODS_OTHER_CHEAP: i64 = 3102;
/// A delisted (下架) goods at [`DEMO_MERCHANT_OTHER`], 9.00: hidden, and not its lowest price.
pub const DEMO_GOODS_DELISTED: i64 = 3105;
/// The listed goods of [`DEMO_MERCHANT_DISABLED`]: hidden with its merchant.
pub const DEMO_GOODS_OF_DISABLED: i64 = 2070;

/// The examples' picture host.
const PICS: &str = "https://o2o.niucha.ren/storage";

fn category(id: i64, pid: i64, name: &str, status: i32, sort: i32) -> Category {
    Category { id, pid, name: name.into(), icon: format!("{PICS}/category/{id}.png"), status, sort }
}

/// What differs between the demo merchants (the rest follows from the id).
struct M {
    id: i64,
    oper_id: i64,
    category: i64,
    name: &'static str,
    brand: &'static str,
    address: &'static str,
    /// (province, city, county) area_ids.
    areas: (i32, i32, i32),
    /// GCJ-02 (lng, lat), degrees.
    at: (f64, f64),
    hours: (&'static str, &'static str),
    desc: &'static str,
    contact: (&'static str, &'static str),
    status: i32,
}

fn merchant(m: M) -> Merchant {
    Merchant {
        id: m.id,
        oper_id: m.oper_id,
        merchant_category_id: m.category,
        name: m.name.into(),
        brand: m.brand.into(),
        region: 1,
        address: m.address.into(),
        province_id: m.areas.0,
        city_id: m.areas.1,
        area_id: m.areas.2,
        lng_e6: (m.at.0 * 1e6).round() as i64,
        lat_e6: (m.at.1 * 1e6).round() as i64,
        open_time: m.hours.0.into(),
        close_time: m.hours.1.into(),
        logo: format!("{PICS}/merchant/{}/logo.png", m.id),
        desc_pic: format!("{PICS}/merchant/{}/desc.jpg", m.id),
        desc: m.desc.into(),
        contacter: m.contact.0.into(),
        contacter_phone: m.contact.1.into(),
        status: m.status,
    }
}

/// What differs between the demo goods; `pics` is how many gallery pictures it has.
struct G<'a> {
    id: i64,
    merchant: &'a Merchant,
    name: &'static str,
    desc: &'static str,
    /// (market price, price), fen.
    prices: (i64, i64),
    /// (start, end) dates, `YYYY-MM-DD`.
    valid: (String, String),
    hours: (&'static str, &'static str),
    pics: usize,
    buy_info: &'static str,
    status: i32,
    sell_number: i64,
}

fn goods(g: G<'_>) -> Goods {
    let pic_list: Vec<String> = (1..=g.pics).map(|i| format!("{PICS}/goods/{}/{i}.jpg", g.id)).collect();
    Goods {
        id: g.id,
        // A goods belongs to its merchant's operator.
        oper_id: g.merchant.oper_id,
        merchant_id: g.merchant.id,
        name: g.name.into(),
        desc: g.desc.into(),
        market_price_fen: g.prices.0,
        price_fen: g.prices.1,
        start_date: g.valid.0,
        end_date: g.valid.1,
        open_time: g.hours.0.into(),
        close_time: g.hours.1.into(),
        thumb_url: format!("{PICS}/goods/{}/thumb.jpg", g.id),
        pic: format!("{PICS}/goods/{}/main.jpg", g.id),
        pic_list: serde_json::to_string(&pic_list).unwrap_or_else(|_| "[]".into()),
        buy_info: g.buy_info.into(),
        status: g.status,
        sell_number: g.sell_number,
    }
}

/// The demo categories: 美食 (火锅, 甜品饮品 → 奶茶果汁, 粤菜), 休闲娱乐 (KTV), 丽人 (美发 disabled)
/// and the disabled 宠物 with an enabled child that the tree never reaches.
pub fn categories() -> Vec<Category> {
    vec![
        category(1, 0, "美食", 1, 1),
        category(7, 1, "火锅", 1, 1),
        category(8, 1, "甜品饮品", 1, 2),
        category(16, 8, "奶茶果汁", 1, 1),
        category(10, 1, "粤菜", 1, 3),
        category(2, 0, "休闲娱乐", 1, 2),
        category(12, 2, "KTV", 1, 1),
        category(3, 0, "丽人", 1, 3),
        category(14, 3, "美发", 2, 1),
        category(4, 0, "宠物", 2, 4),
        category(17, 4, "宠物美容", 1, 1),
    ]
}

/// The demo merchants (1024 and 1031 exactly as the contract's examples).
pub fn merchants() -> Vec<Merchant> {
    const SZ: (i32, i32) = (440000, 440300);
    const GZ: (i32, i32) = (440000, 440100);
    const BJ: (i32, i32) = (110000, 110100);
    vec![
        merchant(M {
            id: DEMO_MERCHANT_OWN,
            oper_id: 3,
            category: 7,
            name: "蜀大侠火锅(海岸城店)",
            brand: "蜀大侠",
            address: "广东省深圳市南山区文心五路33号海岸城购物中心4楼402号",
            areas: (SZ.0, SZ.1, 440305),
            at: (113.936582, 22.517373),
            hours: ("10:30:00", "22:30:00"),
            desc: "正宗成都老火锅，牛油锅底现炒，毛肚、鸭肠每日新鲜直供。",
            contact: ("李明", "13714268890"),
            status: 1,
        }),
        merchant(M {
            id: DEMO_MERCHANT_FUTIAN,
            oper_id: 3,
            category: 7,
            name: "蜀大侠(福田COCO Park店)",
            brand: "蜀大侠",
            address: "广东省深圳市福田区福华三路268号COCO Park 3楼",
            areas: (SZ.0, SZ.1, 440304),
            at: (114.055312, 22.533415),
            hours: ("11:00:00", "23:00:00"),
            desc: "蜀大侠福田旗舰店，九宫格老火锅，包间可订。",
            contact: ("赵强", "13824519906"),
            status: 1,
        }),
        merchant(M {
            id: DEMO_MERCHANT_DISABLED,
            oper_id: 3,
            category: 7,
            name: "渝味坊火锅(科技园店)",
            brand: "渝味坊",
            address: "广东省深圳市南山区科苑路15号科兴科学园B座1楼",
            areas: (SZ.0, SZ.1, 440305),
            at: (113.943508, 22.528167),
            hours: ("10:00:00", "22:00:00"),
            desc: "已停业。",
            contact: ("周杰", "13600001111"),
            status: 2,
        }),
        merchant(M {
            id: DEMO_MERCHANT_OTHER,
            oper_id: 5,
            category: 8,
            name: "茶颜小筑(南山书城店)",
            brand: "茶颜小筑",
            address: "广东省深圳市南山区南海大道2748号南山书城1楼",
            areas: (SZ.0, SZ.1, 440305),
            at: (113.930046, 22.524952),
            hours: ("09:00:00", "22:00:00"),
            desc: "现煮芋圆、手作鲜奶茶，书城一楼临窗座位。",
            contact: ("王芳", "0755-26653388"),
            status: 1,
        }),
        merchant(M {
            id: 1040,
            oper_id: 5,
            category: 16,
            name: "鲜果茶铺(天河城店)",
            brand: "果然鲜茶",
            address: "广东省广州市天河区天河路208号天河城负一楼B128",
            areas: (GZ.0, GZ.1, 440106),
            at: (113.323568, 23.132191),
            hours: ("10:00:00", "22:00:00"),
            desc: "鲜果现切，少糖可选。",
            contact: ("陈静", "020-38834561"),
            status: 1,
        }),
        merchant(M {
            id: 1041,
            oper_id: 3,
            category: 10,
            name: "粤味小馆(北京路店)",
            brand: "粤味小馆",
            address: "广东省广州市越秀区北京路168号2楼",
            areas: (GZ.0, GZ.1, 440104),
            at: (113.269012, 23.125024),
            hours: ("07:00:00", "21:30:00"),
            desc: "早茶点心、煲仔饭，老广味道。",
            contact: ("梁伟", "13926687745"),
            status: 1,
        }),
        merchant(M {
            id: 1050,
            oper_id: 3,
            category: 7,
            name: "京韵涮肉(三里屯店)",
            brand: "京韵涮肉",
            address: "北京市朝阳区三里屯路19号院5号楼2层",
            areas: (BJ.0, BJ.1, 110105),
            at: (116.455047, 39.937183),
            hours: ("11:00:00", "22:00:00"),
            desc: "铜锅炭火，手切鲜羊肉。",
            contact: ("刘洋", "13701128890"),
            status: 1,
        }),
        merchant(M {
            id: 1051,
            oper_id: 5,
            category: 12,
            name: "星光KTV(望京店)",
            brand: "星光KTV",
            address: "北京市朝阳区望京街10号望京SOHO塔3 B1",
            areas: (BJ.0, BJ.1, 110105),
            at: (116.480881, 39.996794),
            hours: ("12:00:00", "23:59:59"),
            desc: "大中小包房，自助餐饮。",
            contact: ("孙丽", "010-64701234"),
            status: 1,
        }),
    ]
}

/// The demo goods, valid from 1 January of `now`'s year (Beijing) to the end of the next year
/// (the 1分钱体验券 to 30 June of the next year), so they are current whenever the demo is
/// seeded.
pub fn goods_of(merchants: &[Merchant], now: i64) -> Vec<Goods> {
    let year = crate::clock::beijing_date(now).year();
    let valid = |end: &str| (format!("{year}-01-01"), format!("{}-{end}", year + 1));
    let at = |id: i64| merchants.iter().find(|m| m.id == id).expect("a demo merchant");
    let hot_pot_info = "1. 有效期内每日10:30-22:00可用；2. 无需预约，高峰期可能需要排队；3. 每张券限2人使用，不与店内其他优惠同享。";
    vec![
        goods(G {
            id: DEMO_GOODS_SET,
            merchant: at(DEMO_MERCHANT_OWN),
            name: "双人超值火锅套餐",
            desc: "鸳鸯锅底1份、精品肥牛1份、鲜毛肚1份、鸭血1份、时蔬拼盘1份、酸梅汤2杯",
            prices: (19800, 12800),
            valid: valid("12-31"),
            hours: ("10:30:00", "22:00:00"),
            pics: 3,
            buy_info: hot_pot_info,
            status: 1,
            sell_number: 326,
        }),
        goods(G {
            id: DEMO_GOODS_PENNY,
            merchant: at(DEMO_MERCHANT_OWN),
            name: "1分钱体验券（酸梅汤1杯）",
            desc: "新用户专享，到店凭核销码兑换冰镇酸梅汤1杯",
            prices: (800, 1),
            valid: valid("06-30"),
            hours: ("10:30:00", "22:00:00"),
            pics: 1,
            buy_info: "每位用户限购1份，仅限堂食使用。",
            status: 1,
            sell_number: 1542,
        }),
        goods(G {
            id: 2060,
            merchant: at(DEMO_MERCHANT_FUTIAN),
            name: "四人欢聚火锅套餐",
            desc: "九宫格锅底1份、雪花肥牛2份、鲜毛肚1份、黄喉1份、手打虾滑1份、时蔬拼盘2份",
            prices: (39800, 26800),
            valid: valid("12-31"),
            hours: ("11:00:00", "22:30:00"),
            pics: 2,
            buy_info: "1. 有效期内每日11:00-22:30可用；2. 每张券限4人使用。",
            status: 1,
            sell_number: 57,
        }),
        goods(G {
            id: DEMO_GOODS_OF_DISABLED,
            merchant: at(DEMO_MERCHANT_DISABLED),
            name: "单人火锅套餐",
            desc: "单人锅底1份、肥牛1份、时蔬1份",
            prices: (8800, 5800),
            valid: valid("12-31"),
            hours: ("10:00:00", "22:00:00"),
            pics: 1,
            buy_info: "商家已停业。",
            status: 1,
            sell_number: 12,
        }),
        goods(G {
            id: DEMO_GOODS_OTHER_CHEAP,
            merchant: at(DEMO_MERCHANT_OTHER),
            name: "手作鲜奶茶单杯券",
            desc: "手作鲜奶茶（大杯）1杯，可选冰/热",
            prices: (2200, 1500),
            valid: valid("12-31"),
            hours: ("09:00:00", "22:00:00"),
            pics: 1,
            buy_info: "到店出示核销码，每券限兑1杯。",
            status: 1,
            sell_number: 208,
        }),
        goods(G {
            id: DEMO_GOODS_DELISTED,
            merchant: at(DEMO_MERCHANT_OTHER),
            name: "芋圆单品加料券",
            desc: "任意饮品加芋圆1份（已下架）",
            prices: (1200, 900),
            valid: valid("12-31"),
            hours: ("09:00:00", "22:00:00"),
            pics: 1,
            buy_info: "已下架。",
            status: 2,
            sell_number: 40,
        }),
        goods(G {
            id: DEMO_GOODS_OTHER,
            merchant: at(DEMO_MERCHANT_OTHER),
            name: "芋圆鲜奶茶双杯券",
            desc: "芋圆鲜奶茶（大杯）2杯，可选冰/热",
            prices: (3600, 2600),
            valid: valid("12-31"),
            hours: ("09:00:00", "22:00:00"),
            pics: 2,
            buy_info: "到店出示核销码，每券限兑2杯，可分次使用。",
            status: 1,
            sell_number: 89,
        }),
        goods(G {
            id: 4001,
            merchant: at(1040),
            name: "招牌鲜果茶双杯券",
            desc: "招牌鲜果茶（中杯）2杯",
            prices: (3800, 2500),
            valid: valid("12-31"),
            hours: ("10:00:00", "22:00:00"),
            pics: 1,
            buy_info: "到店出示核销码使用。",
            status: 1,
            sell_number: 73,
        }),
        goods(G {
            id: 4002,
            merchant: at(1041),
            name: "双人早茶套餐",
            desc: "虾饺、烧卖、肠粉、叉烧包各1份，普洱茶2位",
            prices: (13800, 9900),
            valid: valid("12-31"),
            hours: ("07:00:00", "11:00:00"),
            pics: 2,
            buy_info: "每日07:00-11:00可用，周末需提前预约。",
            status: 1,
            sell_number: 164,
        }),
        goods(G {
            id: 5001,
            merchant: at(1050),
            name: "铜锅涮肉双人餐",
            desc: "清汤铜锅1份、手切鲜羊肉2份、白菜豆腐拼盘1份、芝麻烧饼2个",
            prices: (25800, 16800),
            valid: valid("12-31"),
            hours: ("11:00:00", "21:30:00"),
            pics: 2,
            buy_info: "每张券限2人使用，不与店内其他优惠同享。",
            status: 1,
            sell_number: 95,
        }),
    ]
}

impl Db {
    /// Seed the demo catalogue ([`categories`], [`merchants`], [`goods_of`]) once per database:
    /// `false` when it has it already.
    pub async fn seed_o2o_catalogue(&self, now: i64) -> Result<bool, StorageError> {
        let tx = write(self.conn()).await?;
        if !claim_seed(&tx, "o2o.catalogue", now).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        let merchants = merchants();
        let goods = goods_of(&merchants, now);
        category::Entity::insert_many(categories().into_iter().map(|row| row.into_active_model())).exec_without_returning(&tx).await?;
        merchant::Entity::insert_many(merchants.into_iter().map(|row| row.into_active_model())).exec_without_returning(&tx).await?;
        goods::Entity::insert_many(goods.into_iter().map(|row| row.into_active_model())).exec_without_returning(&tx).await?;
        tx.commit().await?;
        Ok(true)
    }
}
