//! The community API's seed: the documented address tree (晨曦家园, 交运里 … with the ids of the
//! document's examples) on every fresh database, and demo households while the demo data is on
//! (every person fictional: the document's own examples carry a real ID number).
//!
//! Demo accounts log in with `weapp/authorizations {code}` under the sandbox login: code
//! [`DEMO_CODE`] is 王建国, owner of 晨曦家园1栋1单元1楼101号 (household: 父亲 unactivated,
//! 妻子 and 儿子 activated), with a pending and a refused review and unpaid and paid fees.

use crate::pii::{IdNumber, Vault};
use crate::providers::wechat_login::SandboxLogin;
use crate::providers::wechat_pay::Merchant;
use crate::storage::community::{
    Building, Community, Floor, House, NewBinding, NewReview, PersonData, ReviewStatus, SeedBill,
    SeedDemo, SeedOrder, SeedTree, Unit, User,
};
use crate::storage::{Db, StorageError};

/// The sandbox login code of the demo owner 王建国.
pub const DEMO_CODE: &str = "demo";
/// The demo owner's phone (the document's owner phone, 176****1130).
pub const DEMO_PHONE: &str = "17600381130";
/// The phone the sandbox security platform knows (李秀英): a verify code for it auto-binds.
pub const PLATFORM_PHONE: &str = "13900000001";

fn tree() -> SeedTree {
    let community = |id: i64, identifier: &str, name: &str, pinyin: &str| Community {
        id,
        identifier: identifier.into(),
        name: name.into(),
        pinyin: pinyin.into(),
        community_type: 0,
        sort_order: 0,
    };
    let building = |id, ci: &str, number, name: &str| Building { id, community_identifier: ci.into(), number, name: name.into() };
    let unit = |id, building_id, ci: &str, number, name: &str| Unit { id, building_id, community_identifier: ci.into(), number, name: name.into() };
    let floor = |id, unit_id, ci: &str, number, name: &str| Floor { id, unit_id, community_identifier: ci.into(), number, name: name.into() };
    let house = |id, floor_id, ci: &str, number, name: &str| House {
        id,
        floor_id,
        community_identifier: ci.into(),
        number,
        name: name.into(),
        house_type: "单元楼".into(),
    };
    SeedTree {
        communities: vec![
            community(1, "1", "晨曦家园", "ChenXiJiaYuan"),
            community(2, "2", "交运里", "JiaoYunLi"),
            community(3, "3", "秦皇小区", "QinHuangXiaoQu"),
        ],
        buildings: vec![
            building(1, "1", 1, "1栋"),
            building(2, "1", 10, "10栋"),
            building(3, "1", 3, "3栋"),
            building(4, "2", 1, "1栋"),
        ],
        units: vec![unit(1, 1, "1", 1, "1单元"), unit(2, 1, "1", 2, "2单元"), unit(3, 4, "2", 1, "1单元"), unit(4, 3, "1", 2, "2单元")],
        floors: vec![
            floor(1, 1, "1", 1, "1楼"),
            floor(2, 1, "1", 2, "2楼"),
            floor(3, 3, "2", 1, "1楼"),
            floor(4, 4, "1", 4, "4楼"),
        ],
        houses: vec![
            house(1, 1, "1", 101, "101号"),
            house(2, 1, "1", 102, "102号"),
            house(3, 2, "1", 201, "201号"),
            house(4, 2, "1", 202, "202号"),
            house(5, 3, "2", 101, "101号"),
            house(6, 4, "1", 401, "401号"),
        ],
    }
}

fn person(vault: &Vault, name: &str, phone: &str, idcard: &str, sex: &str, job: &str) -> PersonData {
    let id = IdNumber::parse(idcard, chrono::NaiveDate::MAX).map(|id| id.expose().to_owned()).unwrap_or_else(|_| idcard.to_owned());
    PersonData {
        name: name.into(),
        phone: phone.into(),
        idcard_cipher: vault.encrypt(&id, "community_person.idcard"),
        idcard_digest: vault.digest("community.idcard", &id),
        sex: sex.into(),
        birth: Some(id[6..14].to_owned()),
        nation: "汉".into(),
        address: "河北省秦皇岛市海港区建设大街128号".into(),
        zzmm: "群众".into(),
        tyjr: 0,
        dibao: 0,
        shangfang: 0,
        job: job.into(),
        company: "万家灯火".into(),
        photo_key: None,
    }
}

fn on(house_id: i64, role: &str, zhuhu_type: &str) -> NewBinding {
    NewBinding {
        house_id,
        role: role.into(),
        house_use: "住宅".into(),
        xingzhi: "私有".into(),
        house_status: "自用".into(),
        zhuhu_type: zhuhu_type.into(),
    }
}

fn demo(vault: &Vault, merchant: &Merchant, now: i64) -> SeedDemo {
    const DAY: i64 = 86_400_000;
    let account = |id: &str, code: &str, phone: &str, name: &str| User {
        id: id.into(),
        openid: Some(SandboxLogin::openid_for(code)),
        phone: phone.into(),
        name: name.into(),
        avatar: "https://thirdwx.qlogo.cn/mmopen/vi_32/demo/132".into(),
        verified_phone: Some(phone.into()),
        created_at: now - 30 * DAY,
        updated_at: now - 30 * DAY,
    };
    let owner = person(vault, "王建国", DEMO_PHONE, "130302198506122131", "男", "工程师");
    let order = |n: u32, house_id, title: &str, remark: Option<&str>, extra: Option<&str>| SeedOrder {
        number: format!("20261201093000{n:06}"),
        house_id: Some(house_id),
        title: title.into(),
        amount_fen: 1,
        manager: "晨曦家园物业有限公司".into(),
        remark: remark.map(str::to_owned),
        extra: extra.map(str::to_owned),
    };
    let review = |house_id, role: &str, zhuhu: &str, kind: &str| NewReview {
        user_id: "demo-owner".into(),
        kind: kind.into(),
        binding: on(house_id, role, zhuhu),
        choice: Some(1),
        person_id: None,
        person: owner.clone(),
        now: now - 2 * DAY,
    };
    SeedDemo {
        users: vec![
            account("demo-owner", DEMO_CODE, DEMO_PHONE, "王建国"),
            account("demo-wife", "demo-wife", "13700000002", "刘芳"),
            account("demo-son", "demo-son", "13700000003", "王小明"),
        ],
        people: vec![
            (owner.clone(), Some("demo-owner".into()), vec![(on(1, "业主", "业主"), true, true)]),
            (person(vault, "王德明", "13700000001", "130302195803150012", "男", "退休"), None, vec![(on(1, "父亲", "业主"), false, false)]),
            (person(vault, "刘芳", "13700000002", "130302198709210027", "女", "教师"), Some("demo-wife".into()), vec![(on(1, "妻子", "业主"), false, true)]),
            (person(vault, "王小明", "13700000003", "130302201205060031", "男", "学生"), Some("demo-son".into()), vec![(on(1, "儿子", "业主"), true, false)]),
        ],
        reviews: vec![
            (review(4, "租客", "租户", "租客绑定"), ReviewStatus::Pending, None),
            (review(5, "家属", "其他", "家属绑定"), ReviewStatus::Rejected, Some("请上传与业主关系证明材料".into())),
        ],
        orders: vec![
            order(1, 1, "物业费2026年", Some("2026年的物业费"), Some("{'单价':'30元/平米'}")),
            order(2, 1, "供暖费2026-2027采暖季", None, None),
            order(3, 2, "物业费2026年", Some("2026年的物业费"), Some("{'单价':'30元/平米'}")),
        ],
        bills: vec![SeedBill {
            out_trade_no: "10002C2Y1A2Z5fd62cac34e925fd62ca".into(),
            user: ("demo-owner".into(), Some(SandboxLogin::openid_for(DEMO_CODE))),
            merchant: (merchant.appid.clone(), merchant.mchid.clone()),
            transaction_id: "4200000848202012131079162905".into(),
            paid_at: now - 10 * DAY,
            orders: vec![order(4, 1, "测试费1", None, None), order(5, 1, "测试费2", None, None)],
        }],
    }
}

/// Seed a database once: the tree always, the demo households when `with_demo`. Answers what
/// was written.
pub async fn seed(db: &Db, vault: &Vault, merchant: &Merchant, with_demo: bool, now: i64) -> Result<Vec<&'static str>, StorageError> {
    let demo = with_demo.then(|| demo(vault, merchant, now));
    db.community_tree().seed_all(tree(), demo, now).await
}
