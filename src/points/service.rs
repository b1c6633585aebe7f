//! The points API's application logic (001): WeChat login and sessions (on the shared identity
//! block), packages and their orders (on the shared payments block: the points are credited in
//! the notify's transaction by [`crate::storage::points::Settler`]), the balance and its yearly
//! expiry, API keys and the metered debits they make, system status and notices. Each public
//! method is named after the operationId it serves; it speaks the contract's data types, calls
//! storage and the shared blocks, and refuses with [`PointsError`].

use std::sync::Arc;
use std::time::Duration;

use chrono::Months;
use generated::points::types;
use serde_json::Value;

use super::error::{DECRYPT_FAILED, PointsError};
use crate::api_support::PageRequest;
use crate::clock::{BEIJING, Clock, iso_s};
use crate::coalesce::{ReadsById, SharedRead};
use crate::identity::{Principal, Sessions, Wechat};
use crate::payments::{NotifyOutcome, Payments};
use crate::pii::Vault;
use crate::storage::Db;
use crate::storage::payments::{PayOrder, PayStatus, RefundState};
use crate::storage::points::{PointsOrder, Package, SystemStatus,
    ApiKey, Created, Debit, Debited, KeyStatus, NewApiKey, NewOrder,
    ProfileChange, User,
};

/// An unpaid order can be paid for 2 hours, the prepay_id's lifetime (001 notes §2.4).
pub const ORDER_TTL: Duration = Duration::from_secs(2 * 3600);
/// The largest page of the histories (the contract's `size` maximum).
pub const MAX_PAGE_SIZE: u64 = 100;
/// How many API keys (not deleted) a user may hold (the document is silent; a bound keeps one
/// account from filling the table).
pub const MAX_KEYS: u64 = 20;
/// The keyed-digest domain of API key secrets.
pub const KEY_DOMAIN: &str = "points.api_key";
/// An API key's secret: this prefix and 40 letters and digits.
pub const KEY_PREFIX: &str = "sk_live_";
/// The system status message with no maintenance on or announced (001 §4.1's example).
pub const NORMAL_STATUS_MESSAGE: &str = "服务运行正常";
/// `lastUsedAt` resolution: a key's use is written at most once a minute.
pub const LAST_USED_RESOLUTION: Duration = Duration::from_secs(60);
pub use crate::identity::wechat::{ANONYMOUS_NICKNAME, DEFAULT_AVATAR};

/// Who calls a points operation. `Debug` leaves the renewal's token out (a bearer credential).
#[derive(Clone)]
pub enum Caller {
    /// A logged-in user (a valid, unexpired access token with a live session).
    User(Principal),
    /// The refresh operation: the token presented, expired or not, checked there.
    Renewal(String),
    /// A metered service with an API key that exists and is not deleted.
    Key(ApiKey),
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Caller::User(principal) => f.debug_tuple("User").field(principal).finish(),
            Caller::Renewal(_) => f.write_str("Renewal(..)"),
            Caller::Key(key) => f.debug_tuple("Key").field(&key.id).finish(),
        }
    }
}

/// The points application: storage, keys, the shared blocks, the clock.
pub struct PointsService {
    /// The database.
    pub db: Db,
    /// Keys for digests and sealing.
    pub vault: Arc<Vault>,
    /// Sessions (2 h access tokens, the expired token refreshable once within 7 days).
    pub sessions: Arc<Sessions>,
    /// WeChat login for points' appid.
    pub wechat: Wechat,
    /// WeChat Pay orders and notifies.
    pub payments: Arc<Payments>,
    /// The clock.
    pub clock: Clock,
    /// The system status, the reads in flight shared ([`PointsService::shared_reads`]).
    pub status: SharedRead<SystemStatus>,
    /// Packages by id, the reads in flight together ([`PointsService::shared_reads`]).
    pub packages: ReadsById<Package>,
}

/// The most package ids one read asks for (an `IN (…)` list).
const PACKAGES_PER_READ: usize = 16;

/// The profile WeChat data carries (getUserProfile: `nickName`, `avatarUrl`; getPhoneNumber:
/// `purePhoneNumber`), each only when usable: a nickname of 1–64 characters, an http(s) avatar
/// URL, an 11-digit mainland number.
fn profile_of(data: &Value) -> ProfileChange {
    let nick_name = data["nickName"]
        .as_str()
        .map(str::trim)
        .filter(|n| !n.is_empty() && n.chars().count() <= 64)
        .map(str::to_owned);
    let avatar_url = data["avatarUrl"]
        .as_str()
        .filter(|u| u.len() <= 512)
        .and_then(|u| reqwest::Url::parse(u).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .map(String::from);
    let phone = data["purePhoneNumber"]
        .as_str()
        .filter(|p| p.len() == 11 && p.starts_with('1') && p.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_owned);
    ProfileChange {
        nick_name,
        avatar_url,
        phone,
    }
}

impl PointsService {
    /// The status and package reads of `db` that the requests in flight share: every write
    /// asks the status (maintenance), every order its package, and under load these are the
    /// same rows. Nothing is cached: each answer comes from a read that began after its request.
    pub fn shared_reads(db: &Db) -> (SharedRead<SystemStatus>, ReadsById<Package>) {
        let status = {
            let db = db.clone();
            SharedRead::new("points status read", move || {
                let db = db.clone();
                async move { db.points_reference().status().await }
            })
        };
        let db = db.clone();
        let read = move |ids: Vec<String>| {
            let db = db.clone();
            async move { db.points_reference().packages_by_id(&ids).await }
        };
        (status, ReadsById::new("package read", PACKAGES_PER_READ, read, |package: &Package| package.id.as_str()))
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The user behind a principal, their points expired first if their year is over.
    async fn user(&self, who: &Principal) -> Result<User, PointsError> {
        self.db
            .points_users()
            .current(&who.user_id, self.now())
            .await?
            .ok_or(PointsError::Unauthorized("未登录或登录已过期"))
    }

    /// Refuse a write while the system is in maintenance (001 §4.1; the contract's
    /// `Maintenance` response).
    async fn ensure_open(&self) -> Result<(), PointsError> {
        let status = self.status.read().await?;
        if !status.maintenance {
            return Ok(());
        }
        let until = status
            .maintenance_end_time
            .map(|end| format!("，预计{}恢复", iso_s(end)))
            .unwrap_or_default();
        Err(PointsError::Maintenance(format!(
            "系统升级维护中，期间暂停API调用与积分购买{until}"
        )))
    }

    // ---- 001 §1 login and sessions -----------------------------------------------------------

    /// The caller of a user operation: a valid access token of a live session.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, PointsError> {
        Ok(self.sessions.authenticate(token).await?)
    }

    /// The caller of `points_consume`: the API key with this secret, unless unknown or deleted
    /// (an inactive or expired key is refused by the operation, with 403).
    pub async fn authenticate_key(&self, secret: &str) -> Result<ApiKey, PointsError> {
        let invalid = PointsError::Unauthorized("API Key无效或已删除");
        if !secret.starts_with(KEY_PREFIX) || secret.len() > 64 {
            return Err(invalid);
        }
        self.db
            .points_keys()
            .by_digest(&self.vault.digest(KEY_DOMAIN, secret))
            .await?
            .ok_or(invalid)
    }

    /// operationId `auth_wechat_login` (001 §1.1): `wx.login()` code → code2Session → our user
    /// (created on the first login, `isNewUser`), with the profile from encryptedData/iv (both or
    /// neither) opened server side with the session_key of this very code. The anonymised
    /// placeholders WeChat sends since 2022 never overwrite a profile the user already has.
    pub async fn auth_wechat_login(
        &self,
        code: &str,
        encrypted_data: Option<&str>,
        iv: Option<&str>,
    ) -> Result<types::AuthWechatLoginData, PointsError> {
        let sealed = match (encrypted_data, iv) {
            (Some(data), Some(iv)) => Some((data, iv)),
            (None, None) => None,
            _ => return Err(PointsError::Invalid(DECRYPT_FAILED.into())),
        };
        if code.trim().is_empty() {
            return Err(PointsError::Invalid("参数错误：code不能为空".into()));
        }
        let (wechat_user, data) = self.wechat.login(code, sealed).await?;
        let profile = data.as_ref().map(profile_of).unwrap_or_default();
        let now = self.now();
        let users = self.db.points_users();
        let nick_name = profile
            .nick_name
            .clone()
            .unwrap_or_else(|| ANONYMOUS_NICKNAME.into());
        let avatar_url = profile
            .avatar_url
            .clone()
            .unwrap_or_else(|| DEFAULT_AVATAR.into());
        let inserted = users
            .ensure(&wechat_user.user_id, &nick_name, &avatar_url, now)
            .await?;
        if !inserted {
            let change = ProfileChange {
                nick_name: profile.nick_name.filter(|n| n != ANONYMOUS_NICKNAME),
                avatar_url: profile.avatar_url.filter(|a| a != DEFAULT_AVATAR),
                phone: profile.phone.clone(),
            };
            if change != ProfileChange::default() {
                users
                    .set_profile(&wechat_user.user_id, &change, now)
                    .await?;
            }
        } else if profile.phone.is_some() {
            users
                .set_profile(
                    &wechat_user.user_id,
                    &ProfileChange {
                        phone: profile.phone,
                        ..ProfileChange::default()
                    },
                    now,
                )
                .await?;
        }
        let user = users
            .current(&wechat_user.user_id, now)
            .await?
            .ok_or_else(|| PointsError::Internal("user vanished after login".into()))?;
        let issued = self.sessions.start_wechat(&user.id, &wechat_user.openid).await?;
        Ok(types::AuthWechatLoginData {
            token: issued.access_token,
            expires_in: issued.expires_in as i32,
            user_info: types::LoginUserInfo {
                user_id: user.id,
                nick_name: user.nick_name,
                avatar_url: user.avatar_url,
            },
            points: user.balance,
            // The user row is inserted once: of concurrent first logins exactly one is new.
            is_new_user: inserted,
        })
    }

    /// operationId `auth_token_refresh` (001 §1.2): the token presented, expired or not, within
    /// 7 days after its expiry, exchanged once for a new one (two concurrent refreshes: exactly
    /// one wins, the other is 401).
    pub async fn auth_token_refresh(
        &self,
        token: &str,
    ) -> Result<types::AuthTokenRefreshData, PointsError> {
        let issued = self.sessions.refresh_expired(token).await?;
        Ok(types::AuthTokenRefreshData {
            token: issued.access_token,
            expires_in: issued.expires_in as i32,
        })
    }

    /// operationId `user_info_get` (001 §1.3): profile, binding status, balance and its expiry
    /// (null without points). No email source exists (the document has no binding operation),
    /// so `email` is false; `phone` is true once getPhoneNumber data came with a login.
    pub async fn user_info_get(
        &self,
        who: &Principal,
    ) -> Result<types::UserInfoGetData, PointsError> {
        let user = self.user(who).await?;
        Ok(types::UserInfoGetData {
            user_info: types::UserInfo {
                user_id: user.id,
                nick_name: user.nick_name,
                avatar_url: user.avatar_url,
                binding_status: types::BindingStatus {
                    phone: user.phone.is_some(),
                    email: false,
                },
            },
            points: user.balance,
            points_expiry_date: user
                .points_expire_at
                .filter(|_| user.balance > 0)
                .map(iso_s),
        })
    }

    // ---- 001 §2 packages, orders, histories ----------------------------------------------------

    /// operationId `points_package_list` (001 §2.1): the packages on sale; `discount` is the
    /// percentage off, rounded.
    pub async fn points_package_list(&self) -> Result<types::PointsPackageListData, PointsError> {
        let packages = self.db.points_reference().packages().await?;
        Ok(types::PointsPackageListData {
            packages: packages
                .into_iter()
                .map(|p| types::PointsPackage {
                    discount: discount(p.price_fen, p.original_price_fen),
                    id: p.id,
                    name: p.name,
                    points: p.points,
                    price: p.price_fen,
                    original_price: p.original_price_fen,
                    is_hot: p.is_hot,
                    description: p.description,
                })
                .collect(),
        })
    }

    /// operationId `points_order_create` (001 §2.2): an order of a package on sale, its name,
    /// points and price fixed now, numbered `PT` + Beijing yyyyMMddHHmmss + 4 digits, placed
    /// with WeChat Pay (JSAPI, the payer being the user's WeChat login) and answered with the
    /// `wx.requestPayment` parameters. Asking again for the same package while such an order is
    /// pending answers that order, freshly signed.
    pub async fn points_order_create(
        &self,
        who: &Principal,
        package_id: &str,
    ) -> Result<types::PointsOrderCreateData, PointsError> {
        self.ensure_open().await?;
        let package = self
            .packages
            .read(package_id.to_owned())
            .await?
            .filter(|p| p.active)
            .ok_or(PointsError::NotFound("套餐不存在或已下架"))?;
        // The user is not read first: `create` takes their row's write lock, and finds them
        // gone there (`Created::NoUser`). Likewise a pending order of this package is answered
        // again by `create` (`Created::Pending`), which looks for it under that lock. Asking
        // first as well would cost every new order two statements.
        let user_id = who.user_id.as_str();
        let now = self.now();
        let orders = self.db.points_orders();
        // The payer is the WeChat login the session began with; a session started before
        // sessions recorded it reads the user's WeChat identity instead.
        let payer = match &who.openid {
            Some(openid) => Some(openid.clone()),
            None => self.wechat.openid_of(user_id).await?,
        };
        let description = format!("API积分商城 {}", package.name);
        for _ in 0..5 {
            let out_trade_no = order_number(now, &crate::random::digits(4));
            let pay = self.payments.new_order(
                &out_trade_no,
                Some(user_id),
                payer.as_deref(),
                &description,
                package.price_fen,
                now,
                ORDER_TTL,
            );
            let new = NewOrder {
                pay,
                user_id,
                package_id: &package.id,
                package_name: &package.name,
                points: package.points,
            };
            match orders.create(new).await? {
                Created::Created(order) | Created::Pending(order) => {
                    return self.answer_order(*order).await;
                }
                Created::NumberTaken => continue,
                Created::NoUser => return Err(PointsError::Unauthorized("未登录或登录已过期")),
            }
        }
        Err(PointsError::Internal(
            "no free order number after 5 draws".into(),
        ))
    }

    /// The answer for a pending order: pay parameters signed now, and the package as it was
    /// ordered (what the notify will credit).
    async fn answer_order(&self, order: PointsOrder) -> Result<types::PointsOrderCreateData, PointsError> {
        let PointsOrder { pay: order, package_name, points, .. } = order;
        let params = self.payments.pay_params(&order).await?;
        Ok(types::PointsOrderCreateData {
            order_id: order.out_trade_no,
            payment_info: types::WechatPayParams {
                app_id: Some(params.app_id),
                time_stamp: params.time_stamp,
                nonce_str: params.nonce_str,
                package: params.package,
                sign_type: types::WechatPayParamsSignType::Rsa,
                pay_sign: params.pay_sign,
            },
            order_info: types::PointsOrderInfo {
                package_name,
                points,
                price: order.amount_fen,
                create_time: iso_s(order.created_at),
            },
        })
    }

    /// operationId `points_payment_check` (001 §2.3): whether the caller's order is paid — asking
    /// WeChat Pay when its notify is late — and, once paid, the balance and its expiry. Another
    /// user's order is answered as unknown.
    pub async fn points_payment_check(
        &self,
        who: &Principal,
        order_id: &str,
    ) -> Result<types::PointsPaymentCheckData, PointsError> {
        let not_found = PointsError::NotFound("订单不存在");
        let order = self
            .db
            .points_orders()
            .get(order_id)
            .await?
            .filter(|o| o.user_id == who.user_id)
            .ok_or(not_found)?;
        let pay = self
            .payments
            .current(&order.pay.out_trade_no)
            .await?
            .unwrap_or(order.pay);
        let user = self.user(who).await?;
        let paid = pay.status == PayStatus::Paid && pay.refund_state == RefundState::None;
        Ok(types::PointsPaymentCheckData {
            is_paid: paid,
            points: paid.then_some(user.balance),
            // The account's expiry once paid, even when the points were spent since (null only
            // when they expired).
            expiry_date: if paid {
                user.points_expire_at.map(iso_s)
            } else {
                None
            },
        })
    }

    /// operationId `points_purchase_history_list` (001 §2.4): the caller's orders, newest first;
    /// an order past its 2 hours unpaid (or whose payment failed) reads `failed`.
    pub async fn points_purchase_history_list(
        &self,
        who: &Principal,
        page: i32,
        size: i32,
    ) -> Result<types::PointsPurchaseHistoryListData, PointsError> {
        let request = PageRequest::new(page.into(), size.into(), MAX_PAGE_SIZE);
        let orders = self
            .db
            .points_orders()
            .history(&who.user_id, request)
            .await?;
        let now = self.now();
        Ok(types::PointsPurchaseHistoryListData {
            total: orders.total as i64,
            list: orders
                .items
                .into_iter()
                .map(|o| types::PointsPurchaseRecord {
                    status: purchase_status(&o.pay, now),
                    order_id: o.pay.out_trade_no,
                    package_name: o.package_name,
                    points: o.points,
                    price: o.price_fen,
                    purchase_time: iso_s(o.pay.created_at),
                })
                .collect(),
        })
    }

    /// operationId `points_consumption_history_list` (001 §2.5): the caller's consumption —
    /// metered debits and expiries — newest first.
    pub async fn points_consumption_history_list(
        &self,
        who: &Principal,
        page: i32,
        size: i32,
    ) -> Result<types::PointsConsumptionHistoryListData, PointsError> {
        self.user(who).await?;
        let request = PageRequest::new(page.into(), size.into(), MAX_PAGE_SIZE);
        let records = self
            .db
            .points_ledger()
            .history(&who.user_id, request)
            .await?;
        Ok(types::PointsConsumptionHistoryListData {
            total: records.total as i64,
            list: records
                .items
                .into_iter()
                .map(|r| types::PointsConsumptionRecord {
                    id: r.id,
                    title: r.title,
                    description: r.description,
                    points: r.points,
                    consume_time: iso_s(r.consumed_at),
                    api_key_id: r.api_key_id,
                    api_key_name: r.api_key_name,
                })
                .collect(),
        })
    }

    /// operationId `points_consume` (our metering operation): debit `cost` points for the key's
    /// owner, once per idempotency key, only while the balance covers it. An inactive or expired
    /// key, or a short balance, is 403; maintenance 503.
    pub async fn points_consume(
        &self,
        key: &ApiKey,
        request: &types::PointsConsumeRequest,
    ) -> Result<types::PointsConsumeData, PointsError> {
        self.ensure_open().await?;
        let now = self.now();
        if key.status == KeyStatus::Inactive {
            return Err(PointsError::Forbidden("API Key已停用".into()));
        }
        if key.expires_at <= now {
            return Err(PointsError::Forbidden("API Key已过期".into()));
        }
        let title = request.title.trim();
        if title.is_empty() {
            return Err(PointsError::Invalid("参数错误：title不能为空".into()));
        }
        let description = request
            .description
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty());
        let debit = Debit {
            user_id: &key.user_id,
            api_key_id: &key.id,
            api_key_name: &key.name,
            cost: request.cost,
            idempotency_key: &request.idempotency_key,
            title,
            description,
            now,
            touch_before: now - LAST_USED_RESOLUTION.as_millis() as i64,
        };
        let (record, balance) = match self.db.points_ledger().debit(&debit).await? {
            Debited::Done(record, balance) | Debited::Repeated(record, balance) => {
                (record, balance)
            }
            Debited::KeyReused => {
                return Err(PointsError::Invalid(
                    "参数错误：idempotencyKey已用于另一笔扣减".into(),
                ));
            }
            Debited::KeyUnusable => {
                return Err(PointsError::Forbidden("API Key已停用、已过期或已删除".into()));
            }
            Debited::Short(balance) => {
                return Err(PointsError::Forbidden(format!(
                    "积分不足：当前余额{balance}，本次需要{}",
                    request.cost
                )));
            }
        };
        Ok(types::PointsConsumeData {
            id: record.id,
            title: record.title,
            description: record.description,
            points: record.points,
            balance,
            consume_time: iso_s(record.consumed_at),
            api_key_id: record.api_key_id.unwrap_or_default(),
            api_key_name: record.api_key_name.unwrap_or_default(),
        })
    }

    /// operationId `points_payment_notify`: a WeChat Pay notify, verified over the raw body,
    /// decrypted, checked (merchant, amount) and settled by the shared payments block — the
    /// points credited in the same transaction; a repeat changes nothing.
    pub async fn points_payment_notify(
        &self,
        headers: &axum::http::HeaderMap,
        raw_body: &[u8],
    ) -> NotifyOutcome {
        self.payments.notify(headers, raw_body).await
    }

    // ---- 001 §3 API keys ------------------------------------------------------------------------

    /// operationId `api_key_list` (001 §3.1): the caller's keys that are not deleted, newest
    /// first, never their secrets.
    pub async fn api_key_list(
        &self,
        who: &Principal,
    ) -> Result<types::ApiKeyListData, PointsError> {
        let keys = self.db.points_keys().list(&who.user_id).await?;
        Ok(types::ApiKeyListData {
            list: keys
                .into_iter()
                .map(|k| types::ApiKey {
                    id: k.id,
                    name: k.name,
                    status: match k.status {
                        KeyStatus::Active => types::ApiKeyStatus::Active,
                        KeyStatus::Inactive => types::ApiKeyStatus::Inactive,
                    },
                    created_at: iso_s(k.created_at),
                    expires_at: iso_s(k.expires_at),
                    last_used_at: k.last_used_at.map(iso_s),
                })
                .collect(),
        })
    }

    /// operationId `api_key_create` (001 §3.2): a new active key expiring `expiryMonths`
    /// calendar months from now (default 6); its secret `sk_live_` + 40 letters and digits is
    /// answered this once and stored only as a keyed digest. At most [`MAX_KEYS`] per user.
    pub async fn api_key_create(
        &self,
        who: &Principal,
        request: &types::ApiKeyCreateRequest,
    ) -> Result<types::ApiKeyCreateData, PointsError> {
        self.ensure_open().await?;
        let name = request.name.trim();
        if name.is_empty() {
            return Err(PointsError::Invalid("参数错误：name不能为空".into()));
        }
        if name.chars().any(char::is_control) {
            return Err(PointsError::Invalid("参数错误：name不能包含控制字符".into()));
        }
        let months = match request.expiry_months {
            Some(types::ApiKeyCreateRequestExpiryMonths::Value1) => 1,
            Some(types::ApiKeyCreateRequestExpiryMonths::Value3) => 3,
            None | Some(types::ApiKeyCreateRequestExpiryMonths::Value6) => 6,
            Some(types::ApiKeyCreateRequestExpiryMonths::Value12) => 12,
        };
        let now = self.clock.now();
        let expires = now
            .checked_add_months(Months::new(months))
            .ok_or_else(|| PointsError::Internal("expiry out of range".into()))?;
        let id = format!("ak_{}", crate::random::hex(12));
        let secret = format!("{KEY_PREFIX}{}", crate::random::alphanumeric(40));
        let (created_at, expires_at) = (now.timestamp_millis(), expires.timestamp_millis());
        let created = self
            .db
            .points_keys()
            .create(NewApiKey {
                id: &id,
                user_id: &who.user_id,
                name,
                digest: &self.vault.digest(KEY_DOMAIN, &secret),
                status: KeyStatus::Active,
                created_at,
                expires_at,
                last_used_at: None,
            }, MAX_KEYS)
            .await?;
        if !created {
            return Err(PointsError::Invalid(format!(
                "参数错误：API Key数量已达上限（{MAX_KEYS}个），请先删除不用的Key"
            )));
        }
        Ok(types::ApiKeyCreateData {
            id,
            name: name.to_owned(),
            status: types::ApiKeyCreateDataStatus::Active,
            created_at: iso_s(created_at),
            expires_at: iso_s(expires_at),
            key: secret,
        })
    }

    /// operationId `api_key_delete` (001 §3.3): delete one of the caller's keys; it stops
    /// working at once. Unknown, deleted or another user's: 404.
    pub async fn api_key_delete(&self, who: &Principal, id: &str) -> Result<(), PointsError> {
        self.ensure_open().await?;
        if !self
            .db
            .points_keys()
            .delete(&who.user_id, id, self.now())
            .await?
        {
            return Err(PointsError::NotFound("API Key不存在"));
        }
        Ok(())
    }

    /// operationId `api_key_status_update` (001 §3.4): switch one of the caller's keys on or off
    /// (setting the status it has succeeds). Unknown, deleted or another user's: 404.
    pub async fn api_key_status_update(
        &self,
        who: &Principal,
        id: &str,
        status: &types::ApiKeyStatusUpdateRequestStatus,
    ) -> Result<(), PointsError> {
        self.ensure_open().await?;
        let status = match status {
            types::ApiKeyStatusUpdateRequestStatus::Active => KeyStatus::Active,
            types::ApiKeyStatusUpdateRequestStatus::Inactive => KeyStatus::Inactive,
        };
        if !self
            .db
            .points_keys()
            .set_status(&who.user_id, id, status)
            .await?
        {
            return Err(PointsError::NotFound("API Key不存在"));
        }
        Ok(())
    }

    // ---- 001 §4 system ---------------------------------------------------------------------------

    /// operationId `system_status_get` (001 §4.1): the stored status — but a maintenance
    /// announced while it is off (`mpapi points status --maintenance off --until`) is no longer
    /// announced once its expected end has passed: `maintenanceEndTime` null and the message
    /// "服务运行正常", with nobody having to clear it. Maintenance that is on stays on, with its
    /// estimate, until an operator turns it off.
    pub async fn system_status_get(&self) -> Result<types::SystemStatusGetData, PointsError> {
        let mut status = self.status.read().await?;
        if !status.maintenance && status.maintenance_end_time.is_some_and(|end| end <= self.now()) {
            status.maintenance_end_time = None;
            status.message = NORMAL_STATUS_MESSAGE.to_owned();
        }
        Ok(types::SystemStatusGetData {
            api_status: if status.api_status == "error" {
                types::SystemStatusGetDataApiStatus::Error
            } else {
                types::SystemStatusGetDataApiStatus::Normal
            },
            message: status.message,
            maintenance: status.maintenance,
            maintenance_end_time: status.maintenance_end_time.map(iso_s),
        })
    }

    /// operationId `system_notice_get` (001 §4.2): the newest notice shown now, if any.
    pub async fn system_notice_get(&self) -> Result<types::SystemNoticeGetData, PointsError> {
        Ok(match self.db.points_reference().notice(self.now()).await? {
            Some(notice) => types::SystemNoticeGetData {
                has_notice: true,
                content: Some(notice.content),
                start_time: Some(iso_s(notice.start_time)),
                end_time: Some(iso_s(notice.end_time)),
            },
            None => types::SystemNoticeGetData {
                has_notice: false,
                content: None,
                start_time: None,
                end_time: None,
            },
        })
    }
}

/// An order number (`out_trade_no`, 001 notes §2.2): `PT` + the Beijing time of `ms` as
/// yyyyMMddHHmmss + `suffix` (4 random digits).
pub fn order_number(ms: i64, suffix: &str) -> String {
    let stamp = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().with_timezone(&BEIJING).format("%Y%m%d%H%M%S");
    format!("PT{stamp}{suffix}")
}

/// The percentage off, rounded half up: `round((original − price) / original × 100)`, 0 without a
/// discount (the contract's reading of "折扣百分比").
pub fn discount(price_fen: i64, original_fen: i64) -> i32 {
    if original_fen <= 0 || price_fen >= original_fen {
        return 0;
    }
    (((original_fen - price_fen) * 200 + original_fen) / (2 * original_fen)) as i32
}

/// An order's state on points' wire (001 §2.4): paid; pending while it can still be paid;
/// failed when its payment failed, it was closed, or its 2 hours passed.
fn purchase_status(order: &PayOrder, now: i64) -> types::PointsPurchaseRecordStatus {
    match order.status {
        PayStatus::Paid if order.refund_state == RefundState::None => {
            types::PointsPurchaseRecordStatus::Paid
        }
        PayStatus::Pending if order.expires_at > now => types::PointsPurchaseRecordStatus::Pending,
        _ => types::PointsPurchaseRecordStatus::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discounts_are_the_percentage_off() {
        assert_eq!(discount(990, 990), 0);
        assert_eq!(discount(3990, 4990), 20);
        assert_eq!(discount(8910, 11880), 25);
        assert_eq!(discount(34650, 49500), 30);
        assert_eq!(discount(1, 3), 67, "rounded half up");
        assert_eq!(discount(5, 0), 0);
    }

    #[test]
    fn only_usable_profile_fields_are_taken() {
        let profile = profile_of(
            &serde_json::json!({"nickName": " 林晓峰 ", "avatarUrl": "https://cdn.example.com/a.png", "purePhoneNumber": "13800138000"}),
        );
        assert_eq!(profile.nick_name.as_deref(), Some("林晓峰"));
        assert_eq!(
            profile.avatar_url.as_deref(),
            Some("https://cdn.example.com/a.png")
        );
        assert_eq!(profile.phone.as_deref(), Some("13800138000"));
        let bad = profile_of(
            &serde_json::json!({"nickName": "", "avatarUrl": "javascript:alert(1)", "purePhoneNumber": "+8613800138000"}),
        );
        assert_eq!(bad, ProfileChange::default());
        assert_eq!(
            profile_of(&serde_json::json!({"nickName": "x".repeat(65)})).nick_name,
            None
        );
    }
}
