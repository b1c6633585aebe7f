//! The charging API's seed: the billing rules and the configuration on every fresh database
//! (the API reads both from storage), and — while demo data is on — stations around the
//! document's Shenzhen examples and in Guangzhou (WeChat DevTools' default position), Beijing and
//! Shanghai, their piles and ports (one faulty, one disabled, one station in maintenance), a
//! username demo user with a balance and past orders, and an operator. Also the bench's
//! generated stations ([`bench_catalogue`]).

use rust_decimal::Decimal;

use super::service::ConfigDocument;
use super::tariff::{Sample, Slot, Tariff, Tier};
use crate::storage::charging::{BillingRuleRow, Catalogue, Order, Pile, Port, Station, User};
use crate::storage::{Db, StorageError};

/// The demo user's name and password (a username account, 003 §1.1.1).
pub const DEMO_USERNAME: &str = "demo_driver";
/// See [`DEMO_USERNAME`].
pub const DEMO_PASSWORD: &str = "demo-pass-2026";
/// The operator (role admin: may configure piles, 003 §9.7).
pub const OPERATOR_USERNAME: &str = "operator";
/// See [`OPERATOR_USERNAME`].
pub const OPERATOR_PASSWORD: &str = "operator-pass-2026";
/// The seeded accounts' passwords hashed once (argon2id, the default parameters
/// [`crate::identity::passwords`] uses): public passwords need no fresh salt, and hashing them at
/// start cost tens of milliseconds each of a fresh database's cold start. A test checks them.
const PASSWORD_HASHES: [(&str, &str); 2] = [
    (DEMO_PASSWORD, "$argon2id$v=19$m=19456,t=2,p=1$n7Jn0BaDMlQXWwn9oxPpNg$yY/NbXX25moyIoRJYNRL2xQ/R7TCPl48kPCJYsVf5to"),
    (OPERATOR_PASSWORD, "$argon2id$v=19$m=19456,t=2,p=1$AbaADwNyaQdmlMbRtlYq4g$LUbX0BWtCIJaRTWfA7UT0i7h5YRNCLlwLzZP/SgENjg"),
];
/// The demo DC pile's device address and QR code (the document's examples).
pub const DEMO_DEVICE: &str = "20230001";

/// A seeded pile: id, station, pile number, type (1 DC, 2 AC), rated power W, device address.
pub struct SeedPile {
    /// Pile id (`CP0001`).
    pub id: &'static str,
    /// Station id.
    pub station: &'static str,
    /// 编号 (`CP001`).
    pub pile_no: &'static str,
    /// 1 直流快充, 2 交流慢充.
    pub pile_type: i32,
    /// Rated power, W.
    pub power_w: i64,
    /// Device address (8 digits).
    pub device: &'static str,
}

/// The demo piles (each has 2 ports).
pub const PILES: &[SeedPile] = &[
    SeedPile { id: "CP0001", station: "ST0001", pile_no: "CP001", pile_type: 1, power_w: 60_000, device: "20230001" },
    SeedPile { id: "CP0002", station: "ST0001", pile_no: "CP002", pile_type: 1, power_w: 60_000, device: "20230002" },
    SeedPile { id: "CP0003", station: "ST0001", pile_no: "CP003", pile_type: 2, power_w: 7_000, device: "20230003" },
    SeedPile { id: "CP0004", station: "ST0001", pile_no: "CP004", pile_type: 2, power_w: 7_000, device: "20230004" },
    SeedPile { id: "CP0005", station: "ST0002", pile_no: "CP005", pile_type: 1, power_w: 120_000, device: "20230005" },
    SeedPile { id: "CP0006", station: "ST0002", pile_no: "CP006", pile_type: 2, power_w: 7_000, device: "20230006" },
    SeedPile { id: "CP0007", station: "ST0003", pile_no: "CP007", pile_type: 1, power_w: 60_000, device: "20230007" },
    SeedPile { id: "CP0101", station: "ST0101", pile_no: "CP101", pile_type: 1, power_w: 60_000, device: "20230101" },
    SeedPile { id: "CP0102", station: "ST0101", pile_no: "CP102", pile_type: 2, power_w: 7_000, device: "20230102" },
    SeedPile { id: "CP0103", station: "ST0102", pile_no: "CP103", pile_type: 1, power_w: 120_000, device: "20230103" },
    SeedPile { id: "CP0201", station: "ST0201", pile_no: "CP201", pile_type: 1, power_w: 60_000, device: "20230201" },
    SeedPile { id: "CP0202", station: "ST0201", pile_no: "CP202", pile_type: 2, power_w: 7_000, device: "20230202" },
    SeedPile { id: "CP0301", station: "ST0301", pile_no: "CP301", pile_type: 1, power_w: 60_000, device: "20230301" },
    SeedPile { id: "CP0302", station: "ST0301", pile_no: "CP302", pile_type: 2, power_w: 7_000, device: "20230302" },
];

/// The seeded port that is faulty (保险丝熔断) and the one disabled.
pub const FAULTY_PORT: (&str, i32) = ("CP0004", 1);
/// See [`FAULTY_PORT`].
pub const DISABLED_PORT: &str = "PT000402";

/// A 15-digit IMEI: 14 digits and the Luhn check digit.
pub fn imei(body: &str) -> String {
    let sum: u32 = body
        .chars()
        .rev()
        .enumerate()
        .map(|(i, c)| {
            let d = c.to_digit(10).unwrap_or(0);
            if i % 2 == 0 {
                let doubled = d * 2;
                doubled / 10 + doubled % 10
            } else {
                d
            }
        })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

fn yuan(text: &str) -> Decimal {
    text.parse().expect("seed rates are decimals")
}

/// The time-of-use slots of the demo rules (Beijing): 尖 11–12, 峰 10–11 and 14–19, 平 08–10,
/// 12–14 and 19–24, 谷 00–02 and 06–08, 深谷 02–06 (003 §8.2's example).
pub fn demo_slots() -> Vec<Slot> {
    let slot = |tier, start: u16, end: u16, rate: &str| Slot { tier, start_min: start * 60, end_min: end * 60, rate: yuan(rate) };
    vec![
        slot(Tier::Valley, 0, 2, "0.30"),
        slot(Tier::DeepValley, 2, 6, "0.22"),
        slot(Tier::Valley, 6, 8, "0.30"),
        slot(Tier::Flat, 8, 10, "0.70"),
        slot(Tier::Peak, 10, 11, "1.05"),
        slot(Tier::Sharp, 11, 12, "1.25"),
        slot(Tier::Flat, 12, 14, "0.70"),
        slot(Tier::Peak, 14, 19, "1.05"),
        slot(Tier::Flat, 19, 24, "0.70"),
    ]
}

fn rules() -> Vec<BillingRuleRow> {
    let slots = serde_json::to_string(&demo_slots()).expect("slots serialise");
    // Checked here so a bad seed fails at start, not at the first order.
    Tariff::new(demo_slots(), yuan("15")).expect("the demo slots cover the day");
    let rule = |id: &str, name: &str, pile_type, fee: &str| BillingRuleRow {
        id: id.into(),
        name: name.into(),
        description: "尖峰11:00-12:00；峰10:00-11:00、14:00-19:00；平08:00-10:00、12:00-14:00、19:00-24:00；谷00:00-02:00、06:00-08:00；深谷02:00-06:00".into(),
        pile_type: Some(pile_type),
        service_fee_percent: fee.into(),
        flat_rate: None,
        slots: slots.clone(),
        effective_date: "2026-01-01".into(),
        is_active: true,
        is_default: false,
    };
    vec![
        rule("BR001", "直流快充分时计费", 1, "15"),
        rule("BR002", "交流慢充分时计费", 2, "10"),
        BillingRuleRow {
            id: "BR000".into(),
            name: "统一费率".into(),
            description: "未配置分时计费规则的充电桩按统一费率计费".into(),
            pile_type: Some(1),
            service_fee_percent: "15".into(),
            flat_rate: Some("0.85".into()),
            slots: "[]".into(),
            effective_date: "2026-01-01".into(),
            is_active: true,
            is_default: true,
        },
    ]
}

fn config(now: i64) -> String {
    let document = ConfigDocument {
        app_name: "易充电".into(),
        app_version: "1.3.2".into(),
        company_name: "深圳市易充新能源科技有限公司".into(),
        contact_phone: "0755-86001234".into(),
        contact_email: "service@charge.example.com".into(),
        service_agreement: "《易充电用户服务协议》：用户通过本小程序扫码充电，应按计费规则支付电费及服务费；充电结束后请及时支付订单。".into(),
        privacy_policy: "《易充电隐私政策》：我们仅为提供充电服务收集您的微信openId、位置信息（用于查找附近充电站）及订单信息，不向第三方提供。".into(),
        about_us: "易充电是深圳市易充新能源科技有限公司运营的电动汽车充电服务平台。".into(),
        help_center: "扫码充电步骤：1.扫描桩身二维码 2.选择充电枪与充电方式 3.插枪后点击开始充电 4.充电结束后支付订单。".into(),
        faq: "Q：充电结束后多久可以拔枪？A：订单结束后即可拔枪，请在30分钟内移车以免产生占位费。".into(),
        notices: vec![("NT0001".into(), "欢迎使用易充电".into(), "分时计费：谷时与深谷时段充电更省钱。".into(), now)],
        banners: vec![(
            "BN001".into(),
            "https://charge.example.com/static/banner/recharge-gift.jpg".into(),
            "/pages/wallet/recharge".into(),
            "充值满100送10".into(),
        )],
    };
    serde_json::to_string(&document).expect("the configuration serialises")
}

fn station(id: &str, name: &str, address: &str, lat: f64, lng: f64, status: i32, now: i64) -> Station {
    Station {
        id: id.into(),
        name: name.into(),
        address: address.into(),
        latitude_e6: (lat * 1e6).round() as i64,
        longitude_e6: (lng * 1e6).round() as i64,
        status,
        description: format!("{name}：地面/地下停车场，24小时开放"),
        updated_at: now,
    }
}

/// A pile row with the document's hardware fields.
pub fn pile_row(p: &SeedPile, imei_body: &str, now: i64) -> Pile {
    let dc = p.pile_type == 1;
    Pile {
        id: p.id.into(),
        station_id: p.station.into(),
        pile_no: p.pile_no.into(),
        pile_type: p.pile_type,
        power_rate_w: p.power_w,
        manufacturer: "深圳市易充新能源设备有限公司".into(),
        imei: imei(imei_body),
        device_address: p.device.into(),
        qr_code: format!("CDZ{}", p.device),
        ccid: format!("898601218012{:0>8}", p.device),
        floating_power_w: if dc { 0 } else { 60 },
        auto_stop_enabled: true,
        plugin_wait_seconds: 60,
        removal_wait_seconds: 120,
        supports_new_protocol: true,
        protocol_version: "V2.1".into(),
        software_version: "SW1.4.7".into(),
        hardware_version: "HW3.0".into(),
        rated_voltage: if dc { "750" } else { "220" }.into(),
        rated_ampere: if dc { "80" } else { "32" }.into(),
        status: 1,
        online: true,
        signal_strength: 28,
        temperature_dc: 300,
        last_heartbeat_at: Some(now),
        installation_date: "2023-03-15".into(),
        last_maintenance_date: "2026-06-01".into(),
        description: if dc { "直流快充桩，双枪" } else { "交流慢充桩，双枪" }.into(),
        updated_at: now,
    }
}

/// A port row, idle.
pub fn port_row(pile_id: &str, port_no: i32, now: i64) -> Port {
    Port {
        id: format!("PT{}{:02}", &pile_id[2..], port_no),
        pile_id: pile_id.into(),
        port_no,
        port_type: 1,
        status: 1,
        fault_type: 0,
        disabled: false,
        current_order_id: None,
        last_order_id: None,
        voltage_dv: 0,
        current_ca: 0,
        power_w: 0,
        temperature_dc: 250,
        energy_wh: 0,
        total_times: 0,
        total_seconds: 0,
        total_wh: 0,
        last_check_at: Some(now),
        updated_at: now,
    }
}

fn demo(now: i64) -> Catalogue {
    let stations = vec![
        station("ST0001", "深圳湾科技生态园充电站", "广东省深圳市南山区高新南十道深圳湾科技生态园10栋B2层停车场", 22.528471, 113.944723, 1, now),
        station("ST0002", "南山科技园北区充电站", "广东省深圳市南山区朗山路16号华瀚创新园地面停车场", 22.555318, 113.950182, 1, now),
        station("ST0003", "海岸城购物中心充电站", "广东省深圳市南山区文心五路33号海岸城B2层停车场", 22.517262, 113.935917, 2, now),
        station("ST0101", "广州越秀公园充电站", "广东省广州市越秀区解放北路988号越秀公园东门停车场", 23.139470, 113.266060, 1, now),
        station("ST0102", "广州天河城充电站", "广东省广州市天河区天河路208号天河城B3层停车场", 23.132190, 113.322390, 1, now),
        station("ST0201", "北京王府井充电站", "北京市东城区王府井大街255号地下停车场", 39.913920, 116.410930, 1, now),
        station("ST0301", "上海人民广场充电站", "上海市黄浦区人民大道120号地下停车场", 31.230416, 121.473701, 1, now),
    ];
    let mut piles = Vec::new();
    let mut ports = Vec::new();
    for (i, p) in PILES.iter().enumerate() {
        piles.push(pile_row(p, &format!("{}", 86532806123456_u64 + i as u64 * 8), now));
        for no in 1..=2 {
            let mut port = port_row(p.id, no, now);
            if port.id == DISABLED_PORT {
                port.disabled = true;
            }
            if (p.id, no) == FAULTY_PORT {
                port.status = 3;
                port.fault_type = 1;
            }
            ports.push(port);
        }
    }
    let user = |id: i64, username: &str, password: &str, nickname: &str, role: &str, balance_fen: i64| User {
        id,
        username: Some(username.into()),
        password_hash: Some(PASSWORD_HASHES.iter().find(|(p, _)| *p == password).map_or_else(|| crate::identity::passwords::hash(password), |(_, h)| (*h).to_owned())),
        openid: None,
        nickname: nickname.into(),
        avatar: crate::identity::wechat::DEFAULT_AVATAR.into(),
        gender: 1,
        country: "中国".into(),
        province: "广东".into(),
        city: "深圳".into(),
        language: "zh_CN".into(),
        balance_fen,
        points: 320,
        role: role.into(),
        last_login_at: None,
        created_at: now,
        updated_at: now,
    };
    let users = vec![
        user(10000, OPERATOR_USERNAME, OPERATOR_PASSWORD, "运维人员", "admin", 0),
        user(10086, DEMO_USERNAME, DEMO_PASSWORD, "阿杰的Model 3", "user", 86_50),
    ];
    // Two past sessions of the demo user (paid), so statistics and the list are not empty.
    let day = 86_400_000;
    // Each started at a Beijing clock time `days` days ago and billed by the tariff itself, so
    // its tier lines agree with when it ran.
    let beijing_midnight = crate::clock::beijing_day_start(crate::clock::beijing_date(now));
    let past = |n: i64, days: i64, start_minute: i64, wh: i64| {
        let tariff = Tariff::new(demo_slots(), yuan("15")).expect("demo tariff");
        let started = beijing_midnight - days * day + start_minute * 60_000;
        let bill = tariff.bill(&[Sample { at_ms: started, energy_wh: 0 }, Sample { at_ms: started + 3_600_000, energy_wh: wh }]);
        Order {
            id: format!("ORD2026DEMO{n:04}"),
            order_no: format!("CD2026DEMO{n:04}"),
            user_id: 10086,
            pile_id: "CP0001".into(),
            port_id: "PT000101".into(),
            station_name: "深圳湾科技生态园充电站".into(),
            pile_no: "CP001".into(),
            port_no: 1,
            device_address: "20230001".into(),
            charging_mode: 1,
            charging_parameter: "0".into(),
            payment_method: 3,
            status: 2,
            payment_status: 1,
            billing_mode: 1,
            tariff: serde_json::to_string(&tariff).expect("tariff serialises"),
            limit_fen: 0,
            started_at: Some(started),
            ended_at: Some(started + 3_600_000),
            energy_wh: wh,
            charging_seconds: 3600,
            power_w: 0,
            voltage_dv: 0,
            current_ca: 0,
            stop_reason: Some(2),
            sharp_wh: bill.line(Tier::Sharp).energy_wh,
            sharp_fen: bill.line(Tier::Sharp).amount_fen,
            peak_wh: bill.line(Tier::Peak).energy_wh,
            peak_fen: bill.line(Tier::Peak).amount_fen,
            flat_wh: bill.line(Tier::Flat).energy_wh,
            flat_fen: bill.line(Tier::Flat).amount_fen,
            valley_wh: bill.line(Tier::Valley).energy_wh,
            valley_fen: bill.line(Tier::Valley).amount_fen,
            deep_valley_wh: bill.line(Tier::DeepValley).energy_wh,
            deep_valley_fen: bill.line(Tier::DeepValley).amount_fen,
            amount_fen: bill.amount_fen,
            service_fee_fen: bill.service_fee_fen,
            total_fen: bill.total_fen,
            paid_at: Some(started + 3_700_000),
            // Paid from the balance: no third-party transaction.
            transaction_id: None,
            remark: String::new(),
            last_read_at: Some(started + 3_600_000),
            created_at: started - 60_000,
            updated_at: started + 3_700_000,
        }
    };
    // 10:30–11:30 three days ago (峰 then 尖), 19:00–20:00 yesterday (平).
    let orders = vec![past(1, 3, 10 * 60 + 30, 30_000), past(2, 1, 19 * 60, 20_000)];
    Catalogue { stations, piles, ports, users, orders, ..Catalogue::default() }
}

/// Seed a fresh database: the rules and configuration always, the demo catalogue when `demo`.
/// Answers what was written (nothing on a database seeded before).
pub async fn seed(db: &Db, demo_data: bool, now: i64) -> Result<Vec<&'static str>, StorageError> {
    let mut written = Vec::new();
    let base = Catalogue { rules: rules(), config: Some(config(now)), ..Catalogue::default() };
    if db.insert_charging_catalogue("charging.base", base, now).await? {
        written.push("the billing rules and configuration");
    }
    if demo_data && db.insert_charging_catalogue("charging.demo", demo(now), now).await? {
        written.push("the demo stations, piles and users");
    }
    Ok(written)
}

/// The seed marker of the bench's generated stations ([`bench()`]).
pub const BENCH_SEED: &str = "charging.bench";

/// Insert [`bench_catalogue`]`(count)` under [`BENCH_SEED`] (`mpapi bench-data`): `false` when
/// the database has it already.
pub async fn bench(db: &Db, count: usize, now: i64) -> Result<bool, StorageError> {
    db.insert_charging_catalogue(BENCH_SEED, bench_catalogue(count, now), now).await
}

/// `count` generated stations (one DC pile with two ports each) spread over greater Shenzhen,
/// for the nearby benchmark (`cargo xtask bench`): not demo data, never seeded by `serve`.
pub fn bench_catalogue(count: usize, now: i64) -> Catalogue {
    let mut catalogue = Catalogue::default();
    // A deterministic spread (a 2-D low-discrepancy sequence) over 22.45–22.85 N, 113.75–114.35 E.
    for i in 0..count {
        let u = (i as f64 * 0.618_033_988_749_895).fract();
        let v = (i as f64 * 0.754_877_666_246_693).fract();
        let id = format!("BS{i:06}");
        catalogue.stations.push(station(&id, &format!("基准测试充电站{i}"), &format!("广东省深圳市测试路{i}号"), 22.45 + 0.4 * u, 113.75 + 0.6 * v, 1, now));
        let pile_id = format!("BP{i:06}");
        let device = format!("9{i:07}");
        let seed_pile = SeedPile { id: "", station: "", pile_no: "", pile_type: 1, power_w: 60_000, device: "" };
        let mut pile = pile_row(&seed_pile, &format!("{}", 35000000000000_u64 + i as u64), now);
        pile.id = pile_id.clone();
        pile.station_id = id;
        pile.pile_no = format!("B{i:06}");
        pile.device_address = device.clone();
        pile.qr_code = format!("CDZ{device}");
        pile.ccid = format!("89860000{i:012}");
        catalogue.piles.push(pile);
        for no in 1..=2 {
            let mut port = port_row("BP", no, now);
            port.id = format!("BT{i:06}{no}");
            port.pile_id = pile_id.clone();
            catalogue.ports.push(port);
        }
    }
    catalogue
}

/// Register every pile of the database with the simulated chargers (idempotent: a known device
/// keeps its state) and, on first registration, fault the seeded faulty port.
pub async fn simulate(db: &Db, chargers: &crate::providers::charger::simulated::SimulatedChargers) -> Result<(), StorageError> {
    use crate::providers::charger::simulated::{SimDevice, SimEvent};
    let store = db.charging();
    for pile in store.all_piles().await? {
        // The bench's generated stations are not simulated (they stay offline).
        if pile.id.starts_with("BP") {
            continue;
        }
        let ports = store.ports_of(Some(std::slice::from_ref(&pile.id))).await?;
        let device = SimDevice {
            device_address: pile.device_address.clone(),
            imei: pile.imei.clone(),
            endpoint: format!("10.8.{}.{}:{}", pile.device_address.len(), ports.len(), 40000 + pile.device_address.bytes().map(u32::from).sum::<u32>() % 20000),
            ports: ports.len() as i32,
            rated_power_w: pile.power_rate_w,
            voltage_v: if pile.pile_type == 1 { 750 } else { 220 },
        };
        let fresh = matches!(chargers.state(&pile.device_address).await, Err(crate::providers::charger::DriverError::UnknownDevice));
        chargers.register(&device).await.map_err(|e| StorageError::Corrupt(e.to_string()))?;
        if fresh && pile.id == FAULTY_PORT.0 {
            chargers
                .event(&pile.device_address, SimEvent::Fault, Some(FAULTY_PORT.1), Some(1))
                .await
                .map_err(|e| StorageError::Corrupt(e.to_string()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_seeded_password_hashes_are_the_seeded_passwords() {
        let passwords = crate::identity::Passwords::new(1);
        for (password, hash) in super::PASSWORD_HASHES {
            assert!(passwords.verify(password, hash).await.unwrap(), "{password}");
            assert!(!passwords.verify("not-the-password", hash).await.unwrap());
        }
    }
}
