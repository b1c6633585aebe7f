//! The points API's seed: the packages of the contract's examples and the initial system status
//! (every database), and the demo user (sandbox databases): the login code `demo` logs in as
//! 林晓峰 (u10023856), who bought 入门套餐 and 标准套餐, had a 专业套餐 payment fail, holds
//! three API keys (active, inactive, expired) and spent 972 points through them — the
//! contract's example story, dated relative to the first start.

use crate::pii::Vault;
use crate::providers::wechat_login::SandboxLogin;
use crate::providers::wechat_pay::Merchant;
use crate::storage::Db;
use crate::storage::StorageError;
use crate::storage::points::reference::{SeedConsumption, SeedDemo, SeedKey, SeedPurchase};
use crate::storage::points::{KeyStatus, Notice, Package, SystemStatus};

use super::service::{KEY_DOMAIN, NORMAL_STATUS_MESSAGE};

/// The sandbox login code of the demo user.
pub const DEMO_CODE: &str = "demo";
/// The demo user's id (the contract's examples).
pub const DEMO_USER: &str = "u10023856";
/// The secret of the demo user's active API key (`生产环境`), published: sandbox data only.
pub const DEMO_KEY: &str = "sk_live_DemoSandboxKey00000000000000000000000000";

const DAY: i64 = 86_400_000;

/// The packages of 001 §2.1's example, in list order.
pub fn packages() -> Vec<Package> {
    let p = |id: &str, name: &str, points, price, original, hot, description: &str, sort| Package {
        id: id.into(),
        name: name.into(),
        points,
        price_fen: price,
        original_price_fen: original,
        is_hot: hot,
        description: description.into(),
        sort_order: sort,
        active: true,
    };
    vec![
        p(
            "pkg_basic_1000",
            "入门套餐",
            1000,
            990,
            990,
            false,
            "1000积分，适合体验与轻量调用",
            1,
        ),
        p(
            "pkg_standard_5000",
            "标准套餐",
            5000,
            3990,
            4990,
            true,
            "5000积分，适合个人开发者日常调用，限时8折",
            2,
        ),
        p(
            "pkg_pro_12000",
            "专业套餐",
            12000,
            8910,
            11880,
            false,
            "12000积分，适合小团队项目，限时75折",
            3,
        ),
        p(
            "pkg_enterprise_50000",
            "企业套餐",
            50000,
            34650,
            49500,
            false,
            "50000积分，适合企业批量调用，限时7折",
            4,
        ),
    ]
}

/// `months` calendar months after `ms` (how keys expire, 001 §3.2).
fn months_after(ms: i64, months: u32) -> i64 {
    let at = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
    at.checked_add_months(chrono::Months::new(months)).unwrap_or(at).timestamp_millis()
}


/// The demo user's story, dated back from `now` (ms).
fn demo(vault: &Vault, appid: &str, merchant: &Merchant, now: i64) -> SeedDemo {
    let openid = SandboxLogin::openid_for(DEMO_CODE);
    let session_key = SandboxLogin::session_key_for(DEMO_CODE);
    let sealed = vault.encrypt(
        &session_key,
        &crate::identity::wechat::session_key_context(appid, &openid),
    );
    let (basic, pro, standard) = (now - 150 * DAY, now - 8 * DAY, now - 2 * DAY);
    let production = ("ak_3f9c2e71d04b", "生产环境");
    let testing = ("ak_8b21d6e4a9c0", "测试环境");
    let record = |days_ago: i64, title, description, points, key| SeedConsumption {
        id: format!("cr_demo_{days_ago:03}_{points}"),
        title,
        description,
        points,
        consumed_at: now - days_ago * DAY,
        api_key: Some(key),
    };
    SeedDemo {
        user_id: DEMO_USER,
        nick_name: "林晓峰",
        avatar_url: "https://cdn.example.com/avatars/u10023856.png",
        wechat: (appid.to_owned(), openid, sealed),
        // 1000 + 5000 bought, 708 + 132 + 120 + 12 spent.
        balance: 5028,
        points_expire_at: crate::storage::points::year_end(now),
        purchases: vec![
            SeedPurchase { out_trade_no: super::service::order_number(basic, "0007"), package_id: "pkg_basic_1000", created_at: basic, transaction_id: Some("4200000000202401201108150007".into()) },
            SeedPurchase { out_trade_no: super::service::order_number(pro, "0003"), package_id: "pkg_pro_12000", created_at: pro, transaction_id: None },
            SeedPurchase { out_trade_no: super::service::order_number(standard, "0001"), package_id: "pkg_standard_5000", created_at: standard, transaction_id: Some("4200000000202406181025310001".into()) },
        ],
        keys: vec![
            SeedKey {
                id: production.0,
                name: production.1,
                digest: vault.digest(KEY_DOMAIN, DEMO_KEY),
                status: KeyStatus::Active,
                created_at: now - 150 * DAY,
                expires_at: months_after(now - 150 * DAY, 12),
                last_used_at: Some(now),
            },
            SeedKey {
                id: testing.0,
                name: testing.1,
                // Expired: created seven months ago for six.
                digest: vault.digest(KEY_DOMAIN, "sk_live_DemoSandboxKeyExpired0000000000000000000"),
                status: KeyStatus::Active,
                created_at: now - 213 * DAY,
                expires_at: months_after(now - 213 * DAY, 6),
                last_used_at: Some(now - 40 * DAY),
            },
            SeedKey {
                id: "ak_c4e19a07f532",
                name: "旧版集成",
                digest: vault.digest(KEY_DOMAIN, "sk_live_DemoSandboxKeyInactive000000000000000000"),
                status: KeyStatus::Inactive,
                created_at: now - 148 * DAY,
                expires_at: months_after(now - 148 * DAY, 6),
                last_used_at: Some(now - 120 * DAY),
            },
        ],
        consumption: vec![
            record(40, "文本生成接口调用", Some("累计调用 /v1/text/generate 共708次"), 708, testing),
            record(1, "文本生成接口调用", Some("调用 /v1/text/generate 共132次"), 132, production),
            record(1, "图像识别接口调用", Some("调用 /v1/image/recognize 共60次"), 120, production),
            record(0, "数据导出", Some("导出调用明细报表"), 12, production),
        ],
        notice: Notice {
            content: "欢迎使用API积分商城沙箱：登录code填demo即为示例用户，其它code为新用户；支付由沙箱模拟（POST /_sandbox/pay/{orderId}）。".into(),
            start_time: now - DAY,
            end_time: now + 365 * DAY,
        },
        merchant: (merchant.appid.clone(), merchant.mchid.clone()),
    }
}

/// Seed a database once: packages and status always, the demo user when `with_demo`. Answers
/// what was written.
pub async fn seed(
    db: &Db,
    vault: &Vault,
    appid: &str,
    merchant: &Merchant,
    with_demo: bool,
    now: i64,
) -> Result<Vec<&'static str>, StorageError> {
    let initial = SystemStatus {
        api_status: "normal".into(),
        message: NORMAL_STATUS_MESSAGE.into(),
        maintenance: false,
        maintenance_end_time: None,
    };
    let demo = with_demo.then(|| demo(vault, appid, merchant, now));
    db.points_reference()
        .seed(&packages(), &initial, demo, now)
        .await
}
