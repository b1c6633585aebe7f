//! The charging API's application logic (003), part one: the service, accounts (WeChat and
//! username/password, 24 h tokens), the configuration and billing rules, statistics, and the
//! conversions every part shares. Stations and devices are in `catalogue.rs`, orders, their
//! charger and the watchdog in `orders.rs`, payments in `pay.rs`. Each public method is named
//! after the operationId it serves and refuses with [`ChargingError`].

use std::sync::Arc;
use std::time::Duration;

use chrono::{Datelike, NaiveDate};
use generated::charging::types::*;
use rust_decimal::Decimal;
use serde::Deserialize;

use super::error::ChargingError;
use super::tariff::{Slot, Tariff, Tier};
use crate::clock::{Clock, beijing_date, beijing_day_start, iso_s};
use crate::identity::wechat::{ANONYMOUS_NICKNAME, DEFAULT_AVATAR};
use crate::identity::{Passwords, Principal, Sessions, Wechat};
use crate::money::yuan;
use crate::payments::Payments;
use crate::providers::charger::ChargerDriver;
use crate::ratelimit::{Budgets, Window};
use crate::storage::Db;
use crate::storage::charging::{BillingRuleRow, NewUser, NotCreated, ProfileChange, User};

/// The largest page (the contract's `pageSize` maximum).
pub const MAX_PAGE_SIZE: u64 = 100;
/// The role that may configure piles (003 §9.7) and drive any order's charger.
pub const ADMIN_ROLE: &str = "admin";
/// An order never started is cancelled after this (the document is silent; the port is held
/// meanwhile).
pub const START_WINDOW: Duration = Duration::from_secs(5 * 60);
/// A charging order whose charger has not answered for this long ends abnormal (4) on the last
/// meter reading.
pub const LOST_AFTER: Duration = Duration::from_secs(60);
/// A WeChat payment or recharge can be paid for 2 hours (the code_url's lifetime).
pub const PAY_TTL: Duration = Duration::from_secs(2 * 3600);
/// The largest recharge, fen: 5,000.00 yuan (the document is silent).
pub const MAX_RECHARGE_FEN: i64 = 500_000;
/// Password logins one client address may attempt for one username in [`LOGIN_WINDOW`] (the
/// document is silent): an operator's password, which may configure piles and stop any
/// session, cannot be guessed at the server's speed — and a stranger who keeps trying locks out
/// only their own address.
pub const LOGIN_ATTEMPTS: u32 = 10;
/// Password logins of one username from all addresses together in [`LOGIN_WINDOW`]: what a
/// guesser spread over many addresses gets.
pub const LOGIN_ATTEMPTS_ALL: u32 = 100;
/// The window of [`LOGIN_ATTEMPTS`]: 15 minutes.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The charging application: storage, the shared blocks, the charger driver, the clock.
pub struct ChargingService {
    /// The database.
    pub db: Db,
    /// Sessions (24 h access tokens, no refresh: log in again).
    pub sessions: Arc<Sessions>,
    /// WeChat login for charging's appid.
    pub wechat: Wechat,
    /// argon2 password hashing (username accounts).
    pub passwords: Passwords,
    /// WeChat Pay orders and notifies (v2, NATIVE: the pay page shows the same code_url).
    pub payments: Arc<Payments>,
    /// The chargers (the simulated ones, or the device gateway).
    pub driver: Arc<dyn ChargerDriver>,
    /// The clock.
    pub clock: Clock,
    /// The stations' positions for the radius search (a copy of the database's, reloaded).
    pub positions: Arc<super::positions::StationPositions>,
    /// Where password login attempts are counted ([`LOGIN_ATTEMPTS`]), shared by every instance.
    pub budgets: Budgets,
    /// The client address of a request (for [`LOGIN_ATTEMPTS`]).
    pub clients: crate::ratelimit::ClientAddresses,
}

/// Seconds → the wire's `i32` seconds (saturating: no session lasts 68 years).
pub(super) fn seconds_i32(seconds: i64) -> i32 {
    seconds.clamp(0, i32::MAX as i64) as i32
}

/// Wh → kWh as the wire's number (energy is no money: a float on the wire).
pub(super) fn kwh_f64(wh: i64) -> f64 {
    wh as f64 / 1000.0
}

/// A scaled integer (0.1 V, 0.01 A, …) as the wire's number.
pub(super) fn scaled(value: i64, per_unit: i64) -> f64 {
    value as f64 / per_unit as f64
}

/// Convert to a contract type (its integer enums), or answer 9999 (a bug of ours).
pub(super) fn wire<T: serde::de::DeserializeOwned>(value: impl serde::Serialize) -> Result<T, ChargingError> {
    crate::api_support::wire(value).map_err(ChargingError::internal)
}

/// A success envelope's `code` (0).
pub(super) fn ok<T: serde::de::DeserializeOwned>() -> Result<T, ChargingError> {
    wire(0)
}

/// The configuration document as stored (003 §8.1 without what the server knows itself:
/// `wechatAppId`, `jwtExpiryInMinutes`, `apiVersion`).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigDocument {
    /// 应用名称.
    pub app_name: String,
    /// 应用版本.
    pub app_version: String,
    /// 公司名称.
    pub company_name: String,
    /// 联系电话.
    pub contact_phone: String,
    /// 联系邮箱.
    pub contact_email: String,
    /// 服务协议 (body text).
    pub service_agreement: String,
    /// 隐私政策.
    pub privacy_policy: String,
    /// 关于我们.
    pub about_us: String,
    /// 帮助中心.
    pub help_center: String,
    /// 常见问题.
    pub faq: String,
    /// 公告: `(id, title, content, publish time ms)`.
    pub notices: Vec<(String, String, String, i64)>,
    /// 轮播图: `(id, imageUrl, linkUrl, title)`.
    pub banners: Vec<(String, String, String, String)>,
}

/// A billing rule's tariff as stored: the slots (JSON) and the service fee percentage.
pub fn rule_tariff(rule: &BillingRuleRow) -> Result<Tariff, ChargingError> {
    let fee: Decimal = rule.service_fee_percent.parse().map_err(|_| ChargingError::internal(format!("rule {}: fee", rule.id)))?;
    match &rule.flat_rate {
        Some(rate) => {
            let rate: Decimal = rate.parse().map_err(|_| ChargingError::internal(format!("rule {}: rate", rule.id)))?;
            Tariff::flat(rate, fee).map_err(|e| ChargingError::internal(format!("rule {}: {e}", rule.id)))
        }
        None => {
            let slots: Vec<Slot> = serde_json::from_str(&rule.slots).map_err(|e| ChargingError::internal(format!("rule {}: {e}", rule.id)))?;
            Tariff::new(slots, fee).map_err(|e| ChargingError::internal(format!("rule {}: {e}", rule.id)))
        }
    }
}

/// A username: 5–20 characters (the contract checks the length), no spaces or control
/// characters.
fn valid_username(name: &str) -> bool {
    !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// A profile text: trimmed, no control characters, at most `max` characters.
fn profile_text(value: Option<&String>, what: &str, max: usize) -> Result<Option<String>, ChargingError> {
    let Some(value) = value else { return Ok(None) };
    let value = value.trim();
    if value.chars().any(char::is_control) || value.chars().count() > max {
        return Err(ChargingError::invalid(format!("{what}不能含控制字符且不超过{max}个字符")));
    }
    Ok(Some(value.to_owned()))
}

impl ChargingService {
    /// The caller of a secured operation: the user of a valid token.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, ChargingError> {
        Ok(self.sessions.authenticate(token).await?)
    }

    /// The caller's account (a token whose account is gone: 1001).
    pub(super) async fn account(&self, who: &Principal) -> Result<User, ChargingError> {
        let id: i64 = who.user_id.parse().map_err(|_| ChargingError::new(401, "未授权或认证失败"))?;
        self.db.charging().user(id).await?.ok_or_else(|| ChargingError::new(1001, "用户不存在"))
    }

    /// The `openId` a user is answered with: the WeChat openid, or `user_{userId}` for an account
    /// without one (003 §1.1 注意事项).
    pub(super) fn open_id(user: &User) -> String {
        user.openid.clone().unwrap_or_else(|| format!("user_{}", user.id))
    }

    async fn logged_in(&self, user: &User, message: &str, open_id: String) -> Result<LoginResponse, ChargingError> {
        let issued = self.sessions.start(&user.id.to_string()).await?;
        Ok(LoginResponse {
            code: ok()?,
            message: message.into(),
            data: LoginData {
                token: issued.access_token,
                user_id: user.id,
                open_id,
                balance: yuan(user.balance_fen),
                points: user.points,
            },
        })
    }

    /// operationId `user_wechat_login` (003 §1.1): code2Session → the account of the openid,
    /// created on the first login; `userInfo` updates the profile — but WeChat's anonymised
    /// placeholders (微信用户, the grey avatar) never overwrite what the user has.
    pub async fn user_wechat_login(&self, body: &UserWechatLoginRequest) -> Result<LoginResponse, ChargingError> {
        let (wechat_user, _) = self.wechat.login(body.code.trim(), None).await?;
        // Absent and `null` alike: no profile given.
        let info = body.user_info.as_ref().and_then(Option::as_ref);
        let now = self.clock.now_ms();
        let given = |v: Option<&String>, placeholder: &str| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty() && s != placeholder);
        let nickname = profile_text(info.and_then(|i| i.nick_name.as_ref()), "昵称", 64)?;
        let avatar = profile_text(info.and_then(|i| i.avatar_url.as_ref()), "头像", 512)?;
        let change = ProfileChange {
            nickname: given(nickname.as_ref(), ANONYMOUS_NICKNAME),
            avatar: given(avatar.as_ref(), DEFAULT_AVATAR),
            gender: info.and_then(|i| i.gender).map(|g| g as i32).filter(|g| *g != 0),
            country: profile_text(info.and_then(|i| i.country.as_ref()), "国家", 64)?.filter(|s| !s.is_empty()),
            province: profile_text(info.and_then(|i| i.province.as_ref()), "省份", 64)?.filter(|s| !s.is_empty()),
            city: profile_text(info.and_then(|i| i.city.as_ref()), "城市", 64)?.filter(|s| !s.is_empty()),
            language: profile_text(info.and_then(|i| i.language.as_ref()), "语言", 16)?.filter(|s| !s.is_empty()),
        };
        let store = self.db.charging();
        let user = match store.user_by_openid(&wechat_user.openid).await? {
            Some(user) => {
                store.update_profile(user.id, &change, Some(now), now).await?;
                store.user(user.id).await?.ok_or_else(|| ChargingError::internal("a user vanished"))?
            }
            None => {
                let new = NewUser {
                    openid: Some(wechat_user.openid.clone()),
                    nickname: change.nickname.clone().unwrap_or_else(|| ANONYMOUS_NICKNAME.into()),
                    avatar: change.avatar.clone().unwrap_or_else(|| DEFAULT_AVATAR.into()),
                    gender: change.gender.unwrap_or(0),
                    country: change.country.clone().unwrap_or_default(),
                    province: change.province.clone().unwrap_or_default(),
                    city: change.city.clone().unwrap_or_default(),
                    language: change.language.clone().unwrap_or_default(),
                    role: "user".into(),
                    ..NewUser::default()
                };
                match store.create_user(&new, now).await? {
                    Ok(user) => user,
                    // A concurrent first login of the same openid created it.
                    Err(_) => store.user_by_openid(&wechat_user.openid).await?.ok_or_else(|| ChargingError::internal("openid taken, user missing"))?,
                }
            }
        };
        self.logged_in(&user, "登录成功", Self::open_id(&user)).await
    }

    /// operationId `user_login` (003 §1.1.1): username and password (argon2). An unknown name
    /// and a wrong password are answered alike (1002), so names cannot be probed. Past
    /// [`LOGIN_ATTEMPTS`] attempts of a username from the client's address, or
    /// [`LOGIN_ATTEMPTS_ALL`] from all, in [`LOGIN_WINDOW`]: 1002 (401) saying how many minutes
    /// to wait (the contract has no 429 for it), the password not compared.
    pub async fn user_login(&self, body: &UserLoginRequest, client: std::net::IpAddr) -> Result<LoginResponse, ChargingError> {
        let wrong = || ChargingError::new(1002, "用户名或密码错误");
        let username = body.username.trim();
        // Every attempt counted before any comparing (a guess never goes uncounted), whether
        // the name exists or not (no oracle for names); keyed by digests, of any name's length
        // in a budget's 64 characters.
        let key = |text: &str| hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes()).as_ref());
        let now_us = self.clock.now().timestamp_micros();
        let counts = [
            ("charging.login", key(&format!("{username}\0{}", crate::ratelimit::client_key(client))), LOGIN_ATTEMPTS),
            ("charging.login-all", key(username), LOGIN_ATTEMPTS_ALL),
        ];
        for (scope, key, attempts) in counts {
            match self.budgets.admit(scope, &key, now_us, &Window::new(attempts, LOGIN_WINDOW), 1).await {
                Ok(admission) if admission.admitted == 0 => {
                    let minutes = (admission.wait_us.max(60_000_000) as u64).div_ceil(60_000_000);
                    return Err(ChargingError::new(1002, format!("登录尝试过于频繁，请{minutes}分钟后再试")));
                }
                Ok(_) => {}
                Err(error) => return Err(ChargingError::internal(format!("counting a login attempt: {error}"))),
            }
        }
        let store = self.db.charging();
        let user = store.user_by_username(username).await?;
        let Some((user, hash)) = user.and_then(|u| u.password_hash.clone().map(|h| (u, h))) else {
            // Spend the same time as a real check: no timing oracle for names.
            let _ = self.passwords.verify(&body.password, &crate::identity::passwords::DUMMY_HASH).await;
            return Err(wrong());
        };
        if !self.passwords.verify(&body.password, &hash).await.map_err(|e| ChargingError::internal(e.to_string()))? {
            return Err(wrong());
        }
        let now = self.clock.now_ms();
        store.update_profile(user.id, &ProfileChange::default(), Some(now), now).await?;
        self.logged_in(&user, "登录成功", Self::open_id(&user)).await
    }

    /// operationId `user_register` (003 §1.1.2): username 5–20, password 8–20 (the contract checks
    /// lengths), nickname defaulting to the username; logged in at once. A taken name: 1003.
    pub async fn user_register(&self, body: &UserRegisterRequest) -> Result<LoginResponse, ChargingError> {
        let username = body.username.trim();
        if username.chars().count() < 5 || !valid_username(username) {
            return Err(ChargingError::invalid("用户名长度为5-20个字符，且不能含空白或控制字符"));
        }
        if body.password.chars().any(char::is_control) {
            return Err(ChargingError::invalid("密码不能含控制字符"));
        }
        let store = self.db.charging();
        if store.user_by_username(username).await?.is_some() {
            return Err(ChargingError::new(1003, "用户名已存在"));
        }
        let hash = self.passwords.hash(&body.password).await.map_err(|e| ChargingError::internal(e.to_string()))?;
        let new = NewUser {
            username: Some(username.to_owned()),
            password_hash: Some(hash),
            nickname: profile_text(body.nickname.as_ref(), "昵称", 64)?.filter(|s| !s.is_empty()).unwrap_or_else(|| username.to_owned()),
            avatar: profile_text(body.avatar.as_ref(), "头像", 512)?.filter(|s| !s.is_empty()).unwrap_or_else(|| DEFAULT_AVATAR.into()),
            gender: body.gender.map_or(0, |g| g as i32),
            role: "user".into(),
            ..NewUser::default()
        };
        let user = match store.create_user(&new, self.clock.now_ms()).await? {
            Ok(user) => user,
            Err(NotCreated::UsernameTaken | NotCreated::OpenidTaken) => return Err(ChargingError::new(1003, "用户名已存在")),
        };
        // 003 §1.1.2: "openId … 通常为空".
        self.logged_in(&user, "注册成功", String::new()).await
    }

    /// operationId `user_info_get` (003 §1.2).
    pub async fn user_info_get(&self, who: &Principal) -> Result<UserInfoResponse, ChargingError> {
        let user = self.account(who).await?;
        Ok(UserInfoResponse {
            code: ok()?,
            message: "获取成功".into(),
            data: UserInfo {
                user_id: user.id,
                open_id: Self::open_id(&user),
                nickname: user.nickname.clone(),
                avatar: user.avatar.clone(),
                gender: wire(user.gender)?,
                country: user.country.clone(),
                province: user.province.clone(),
                city: user.city.clone(),
                language: user.language.clone(),
                balance: yuan(user.balance_fen),
                points: user.points,
                last_login_time: iso_s(user.last_login_at.unwrap_or(user.created_at)),
            },
        })
    }

    /// operationId `user_update` (003 §1.3): the fields given, trimmed; an empty nickname is
    /// refused (every account shows one).
    pub async fn user_update(&self, who: &Principal, body: &UserUpdateRequest) -> Result<UserUpdateResponse, ChargingError> {
        let user = self.account(who).await?;
        let nickname = profile_text(body.nickname.as_ref(), "昵称", 64)?;
        if nickname.as_deref() == Some("") {
            return Err(ChargingError::invalid("昵称不能为空"));
        }
        let change = ProfileChange {
            nickname,
            avatar: profile_text(body.avatar.as_ref(), "头像", 512)?,
            gender: body.gender.map(|g| g as i32),
            country: profile_text(body.country.as_ref(), "国家", 64)?,
            province: profile_text(body.province.as_ref(), "省份", 64)?,
            city: profile_text(body.city.as_ref(), "城市", 64)?,
            language: profile_text(body.language.as_ref(), "语言", 16)?,
        };
        let now = self.clock.now_ms();
        self.db.charging().update_profile(user.id, &change, None, now).await?;
        Ok(UserUpdateResponse { code: ok()?, message: "更新成功".into(), data: () })
    }

    /// operationId `config_get` (003 §8.1): the stored document, with the appid and token
    /// lifetime this server runs with.
    pub async fn config_get(&self) -> Result<SystemConfigResponse, ChargingError> {
        let document = self.db.charging().config_document().await?.ok_or_else(|| ChargingError::internal("no configuration stored"))?;
        let doc: ConfigDocument = serde_json::from_str(&document).map_err(|e| ChargingError::internal(format!("configuration: {e}")))?;
        Ok(SystemConfigResponse {
            code: ok()?,
            message: "获取成功".into(),
            data: SystemConfig {
                app_name: doc.app_name,
                app_version: doc.app_version,
                company_name: doc.company_name,
                contact_phone: doc.contact_phone,
                contact_email: doc.contact_email,
                service_agreement: doc.service_agreement,
                privacy_policy: doc.privacy_policy,
                about_us: doc.about_us,
                help_center: doc.help_center,
                faq: doc.faq,
                notice_list: doc
                    .notices
                    .into_iter()
                    .map(|(id, title, content, at)| Notice { id, title, content, publish_time: iso_s(at) })
                    .collect(),
                banner_list: doc
                    .banners
                    .into_iter()
                    .map(|(id, image_url, link_url, title)| Banner { id, image_url, link_url, title })
                    .collect(),
                wechat_app_id: self.wechat.appid().to_owned(),
                jwt_expiry_in_minutes: (self.sessions.policy().access_ttl_seconds / 60).min(i32::MAX as u64) as i32,
                api_version: env!("CARGO_PKG_VERSION").into(),
            },
        })
    }

    /// operationId `billing_rules_get` (003 §8.2): the time-of-use rules per pile type and the
    /// flat default rule.
    pub async fn billing_rules_get(&self) -> Result<BillingRulesResponse, ChargingError> {
        let rows = self.db.charging().billing_rules().await?;
        let mut rules = Vec::new();
        let mut default = None;
        for row in &rows {
            let tariff = rule_tariff(row)?;
            let fee: f64 = tariff.service_fee_percent().try_into().unwrap_or(0.0);
            if row.is_default {
                let rate = tariff.slots().first().map(|s| s.rate).unwrap_or_default();
                default = Some(DefaultBillingRule {
                    id: row.id.clone(),
                    name: row.name.clone(),
                    description: row.description.clone(),
                    pile_type: wire(row.pile_type.unwrap_or(2))?,
                    rate,
                    service_fee_rate: fee,
                    is_active: row.is_active,
                });
                continue;
            }
            rules.push(BillingRule {
                id: row.id.clone(),
                name: row.name.clone(),
                description: row.description.clone(),
                pile_type: wire(row.pile_type.unwrap_or(1))?,
                service_fee_rate: fee,
                time_rates: tariff
                    .slots()
                    .iter()
                    .map(|slot| {
                        Ok(TimeRate { time_type: wire(slot.tier.time_type())?, start_time: slot.hhmm_start(), end_time: slot.hhmm_end(), rate: slot.rate })
                    })
                    .collect::<Result<_, ChargingError>>()?,
                effective_date: row.effective_date.clone(),
                is_active: row.is_active,
            });
        }
        let default_rule = default.ok_or_else(|| ChargingError::internal("no default billing rule stored"))?;
        Ok(BillingRulesResponse { code: ok()?, message: "获取成功".into(), data: BillingRulesData { billing_rules: rules, default_rule } })
    }

    /// The tariff an order on a pile of `pile_type` is billed by: the active rule of that type,
    /// else the active default rule; with its billing mode (1 time-of-use, 2 flat).
    pub(super) async fn tariff_for(&self, pile_type: i32) -> Result<(Tariff, i32), ChargingError> {
        let rows = self.db.charging().billing_rules().await?;
        if let Some(rule) = rows.iter().find(|r| r.is_active && !r.is_default && r.pile_type == Some(pile_type)) {
            return Ok((rule_tariff(rule)?, 1));
        }
        let rule = rows.iter().find(|r| r.is_active && r.is_default).ok_or_else(|| ChargingError::internal("no active default billing rule"))?;
        Ok((rule_tariff(rule)?, 2))
    }

    /// operationId `statistics_charging_get` (003 §7.1): the caller's charged orders (completed
    /// or abnormal) that started this week (from Monday), month, year (Beijing dates) or ever;
    /// averages per order (amount to the fen, half up); the trend per Beijing day with charging.
    pub async fn statistics_charging_get(&self, who: &Principal, period: StatisticsChargingGetPeriod) -> Result<ChargingStatisticsResponse, ChargingError> {
        let user = self.account(who).await?;
        let today = beijing_date(self.clock.now_ms());
        let period: String = wire::<serde_json::Value>(period)?.as_str().unwrap_or("month").to_owned();
        let first: Option<NaiveDate> = match period.as_str() {
            "week" => Some(today - chrono::Days::new(u64::from(today.weekday().num_days_from_monday()))),
            "year" => NaiveDate::from_ymd_opt(today.year(), 1, 1),
            "all" => None,
            _ => today.with_day(1),
        };
        let orders = self.db.charging().charged_since(user.id, first.map(beijing_day_start)).await?;
        let count = orders.len() as i64;
        let seconds: i64 = orders.iter().map(|o| o.charging_seconds).sum();
        let wh: i64 = orders.iter().map(|o| o.energy_wh).sum();
        let fen: i64 = orders.iter().map(|o| o.total_fen).sum();
        let mut trend: Vec<(NaiveDate, i32, i64, i64)> = Vec::new();
        for order in &orders {
            let day = beijing_date(order.started_at.unwrap_or(order.created_at));
            match trend.iter_mut().find(|t| t.0 == day) {
                Some(t) => {
                    t.1 += 1;
                    t.2 += order.energy_wh;
                    t.3 += order.total_fen;
                }
                None => trend.push((day, 1, order.energy_wh, order.total_fen)),
            }
        }
        trend.sort_by_key(|t| t.0);
        let average_fen = if count == 0 { 0 } else { (fen * 2 + count).div_euclid(count * 2) };
        Ok(ChargingStatisticsResponse {
            code: ok()?,
            message: "获取成功".into(),
            data: ChargingStatistics {
                total_charging_times: count,
                total_charging_duration: seconds,
                total_power_consumption: kwh_f64(wh),
                total_amount: yuan(fen),
                average_charging_duration: if count == 0 { 0 } else { seconds / count },
                average_power_consumption: if count == 0 { 0.0 } else { (kwh_f64(wh) / count as f64 * 1000.0).round() / 1000.0 },
                average_amount: yuan(average_fen),
                charging_trend: trend
                    .into_iter()
                    .map(|(day, times, wh, fen)| ChargingTrendItem {
                        date: day.format("%Y-%m-%d").to_string(),
                        charging_times: times,
                        power_consumption: kwh_f64(wh),
                        amount: yuan(fen),
                    })
                    .collect(),
            },
        })
    }

    /// Whether `user` is an operator (003 §9.7, and any order's charger).
    pub(super) fn is_admin(user: &User) -> bool {
        user.role == ADMIN_ROLE
    }
}

/// The tiers in the bill's order with their wire names, for the order's breakdown.
pub(super) const TIERS: [Tier; 5] = Tier::ALL;
