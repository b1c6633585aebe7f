//! Demo data written on a fresh database so a new user can walk the whole journey (000):
//! account `H202400001` (张三) with bills over three heating seasons — two paid, the current one
//! unpaid — a second account `H202400002`, a registered user `13800138000`, the agreements and
//! the system configuration, all taken from the document's examples. Seasons are placed around the first start's date, so
//! the current season always has its bill.

use chrono::{NaiveDate, TimeZone, Utc};

use super::service::{OWNER_ID_DOMAIN, late_fee_fen, season_of};
use crate::pii::Vault;
use crate::storage::heating::reference::{SeedAccount, SeedBill, SeedUser};
use crate::storage::heating::{Agreement, Season, SeedData};
use crate::storage::{Db, StorageError};

fn utc_midnight(year: i32, month: u32, day: u32) -> i64 {
    let date = NaiveDate::from_ymd_opt(year, month, day).expect("seed dates exist");
    Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight exists")).timestamp_millis()
}

struct Owner {
    heat_account: &'static str,
    name: &'static str,
    id_number: &'static str,
    address: &'static str,
    area_centi: i64,
}

const OWNERS: [Owner; 2] = [
    Owner {
        heat_account: "H202400001",
        name: "张三",
        id_number: "610102199001011231",
        address: "天山区xx小区xx号楼xx单元xx室",
        area_centi: 8550,
    },
    Owner {
        heat_account: "H202400002",
        name: "李四",
        id_number: "11010519491231002X",
        address: "沙依巴克区yy小区yy号楼yy单元yy室",
        area_centi: 9630,
    },
];

/// The demo user's phone (registered, not bound).
pub const DEMO_PHONE: &str = "13800138000";
/// The demo user's password.
pub const DEMO_PASSWORD: &str = "12345678";
/// [`DEMO_PASSWORD`] hashed once (argon2id, the default parameters [`crate::identity::passwords`]
/// uses): a public password needs no fresh salt, and hashing at start cost tens of
/// milliseconds of a fresh database's cold start. A test checks that it verifies.
pub const DEMO_PASSWORD_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$rHRQH/c3s54fuZ+M8zOoNw$H1JzwnTXtVw1KDCy8OzLr5h818dsZVDevdABKpamoRg";

/// The demo data for a database first started at `now_ms`.
pub fn demo(vault: &Vault, now_ms: i64) -> SeedData {
    let current: i32 = season_of(now_ms)[..4].parse().expect("a season starts with its year");
    let mut data = SeedData::default();
    for year in current - 2..=current {
        data.seasons.push(Season {
            season: format!("{year}-{}", year + 1),
            heating_start: utc_midnight(year, 11, 1),
            heating_end: utc_midnight(year + 1, 3, 31),
            payment_deadline: utc_midnight(year, 11, 30),
        });
    }
    for owner in &OWNERS {
        data.accounts.push(SeedAccount {
            heat_account: owner.heat_account.into(),
            owner_name: owner.name.into(),
            owner_id_index: vault.digest(OWNER_ID_DOMAIN, owner.id_number),
            owner_id_cipher: vault.encrypt(owner.id_number, &format!("heating_account.owner_id:{}", owner.heat_account)),
            address: owner.address.into(),
            heating_area_centi: owner.area_centi,
        });
    }
    // 张三: paid on time two seasons ago, paid 10 days late last season (with the late fee),
    // unpaid this season (the document's 1250.50 bill).
    let history = [(current - 2, 124_950, Some((11, 20))), (current - 1, 124_950, Some((12, 10))), (current, 125_050, None)];
    for (year, amount_fen, paid) in history {
        let bill_date = utc_midnight(year, 10, 15) + 7 * 3_600_000 + 49 * 60_000 + 28_024;
        let due_date = utc_midnight(year, 11, 30);
        let paid = paid.map(|(month, day)| {
            let paid_at = utc_midnight(year, month, day) + 3 * 3_600_000;
            let late_fee = late_fee_fen(amount_fen, due_date, paid_at);
            (format!("O{}", paid_at - 360_000), format!("4200000{paid_at}"), paid_at, late_fee)
        });
        data.bills.push(SeedBill {
            bill_id: format!("B{bill_date}"),
            heat_account: "H202400001".into(),
            heating_season: format!("{year}-{}", year + 1),
            amount_fen,
            bill_date,
            due_date,
            paid,
        });
    }
    // 李四: this season's bill, unpaid.
    let bill_date = utc_midnight(current, 10, 15) + 8 * 3_600_000;
    data.bills.push(SeedBill {
        bill_id: format!("B{bill_date}"),
        heat_account: "H202400002".into(),
        heating_season: format!("{current}-{}", current + 1),
        amount_fen: 140_840,
        bill_date,
        due_date: utc_midnight(current, 11, 30),
        paid: None,
    });
    // A registered user (not bound yet), so a first walk needs one SMS code, not two a minute
    // apart: it logs in, binds H202400001, pays.
    data.users.push(SeedUser {
        id: "demo00000000000000000001".into(),
        phone: DEMO_PHONE.into(),
        password_hash: DEMO_PASSWORD_HASH.into(),
        nickname: "演示用户".into(),
    });
    data.agreements = vec![
        Agreement {
            kind: "user_agreement".into(),
            title: "用户协议".into(),
            content: "欢迎使用精准暖费速办小程序。本协议是您与乌鲁木齐热力集团有限公司之间关于您使用本小程序的法律协议...".into(),
            version: "1.0".into(),
            updated_at: "2024-01-01".into(),
        },
        Agreement {
            kind: "privacy_policy".into(),
            title: "隐私政策".into(),
            content: "乌鲁木齐热力集团有限公司（以下简称\"我们\"）深知个人信息对您的重要性，并会尽全力保护您的个人信息安全可靠...".into(),
            version: "1.0".into(),
            updated_at: "2024-01-01".into(),
        },
    ];
    let text = |s: &str| Some(serde_json::Value::from(s).to_string());
    data.config = vec![
        ("customer_service_phone".into(), text("0991-1234567")),
        ("business_hours".into(), text("周一至周五 9:00-18:00")),
        ("company_name".into(), text("乌鲁木齐热力集团有限公司")),
        ("company_address".into(), text("乌鲁木齐市天山区...")),
        ("app_version".into(), text("1.0.0")),
        ("announcement".into(), text("系统将于12月1日进行维护升级，维护期间服务可能暂时中断，敬请谅解。")),
        ("maintenance_notice".into(), None),
    ];
    data
}

/// Seed what the database has not received yet: the seasons, agreements and system
/// configuration always (once); the demo accounts, bills and payments when `with_demo` (once).
/// Safe when several instances start at once. Answers the sets written (empty on a restart).
pub async fn seed(db: &Db, vault: &Vault, now_ms: i64, with_demo: bool, merchant: &crate::providers::wechat_pay::Merchant) -> Result<Vec<&'static str>, StorageError> {
    // A restart has nothing to write: skip building the data (the demo password's hash costs).
    if db.seeded("heating.reference").await? && (!with_demo || db.seeded("heating.demo").await?) {
        return Ok(Vec::new());
    }
    let mut data = demo(vault, now_ms);
    if !with_demo {
        data.accounts.clear();
        data.bills.clear();
        data.users.clear();
    }
    db.heating_reference().seed(data, &merchant.mchid, &merchant.appid, now_ms).await
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_demo_password_hash_is_the_demo_passwords() {
        let passwords = crate::identity::Passwords::new(1);
        assert!(passwords.verify(super::DEMO_PASSWORD, super::DEMO_PASSWORD_HASH).await.unwrap());
        assert!(!passwords.verify("123456789", super::DEMO_PASSWORD_HASH).await.unwrap());
    }
}
