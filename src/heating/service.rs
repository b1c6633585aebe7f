//! The heating API's application logic (000): SMS codes, accounts and sessions, heat accounts,
//! bills and late fees, payments and their notifies, statistics. It speaks the contract's data
//! types, calls storage for every read and write and the providers for SMS and WeChat Pay, and
//! refuses with [`HeatingError`].

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{Datelike, FixedOffset, NaiveDate, TimeZone};
use generated::heating::types;
use rust_decimal::Decimal;

use super::error::HeatingError;
use crate::auth::{self, Tokens};
use crate::clock::{Clock, iso_ms};
use crate::money::{fen, yuan};
use crate::pii::{IdNumber, Vault, mask_phone};
use crate::providers::wechat_pay::{NotifyError, NotifyEvent, PrepayRequest, WechatPay};
use crate::providers::{SmsProvider, SmsPurpose};
use crate::storage::heating::{
    Bill, NewOrder, Notified, Order, ProfileChange, Rotation, Settlement, User, bill_status, order_status,
};
use crate::storage::Db;

/// A verification code lives 5 minutes (000 §1.1 `expire_time`: 300).
pub const CODE_TTL_SECONDS: u32 = 300;
/// One code per phone per minute (000 §7).
pub const CODE_INTERVAL_MS: i64 = 60_000;
/// Wrong guesses allowed per code before it is dead (domain.md §6).
pub const CODE_MAX_ATTEMPTS: i32 = 5;
/// Refresh tokens live 30 days (the document is silent; access tokens live 2 h).
pub const REFRESH_TTL_MS: i64 = 30 * 24 * 3600 * 1000;
/// An unpaid order holds its bills, and can be paid, for 30 minutes (WeChat Pay `time_expire`).
pub const ORDER_TTL_MS: i64 = 30 * 60 * 1000;
/// Late fee: 0.05 % (万分之五) of the bill per full day past its due date…
pub const LATE_FEE_PER_DAY_BASIS_POINTS: i64 = 5;
/// …never more than the bill itself.
pub const LATE_FEE_CAP_PERCENT: i64 = 100;

/// Beijing time: the business day of Urumqi's heating company (date filters are its dates).
fn beijing() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset")
}

/// What became of a WeChat Pay notify (000 §5.5); the adapter answers each as the contract says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyOutcome {
    /// Applied, or already applied before: 200 SUCCESS.
    Applied,
    /// The signature, serial or timestamp does not verify: 401 FAIL (WeChat retries).
    BadSignature,
    /// The body is no notify or does not decrypt: 400 FAIL.
    Unreadable,
    /// Verified, but not ours to apply (unknown order, other merchant, other amount): 400 FAIL.
    Refused(&'static str),
    /// Our fault (storage): 500 FAIL, WeChat retries.
    Failed,
}

/// Who is calling: the user and the session of their access token.
#[derive(Debug, Clone)]
pub struct HeatingUser {
    /// The user id.
    pub user_id: String,
    /// The session (`sid`); logout revokes it.
    pub session_id: String,
}

/// The heating application: storage, keys, providers, clock.
pub struct HeatingService {
    /// The database.
    pub db: Db,
    /// Personal-data keys.
    pub vault: Arc<Vault>,
    /// Access tokens.
    pub tokens: Arc<Tokens>,
    /// SMS sending.
    pub sms: Arc<dyn SmsProvider>,
    /// WeChat Pay.
    pub pay: Arc<dyn WechatPay>,
    /// The URL WeChat Pay sends notifies to (this API's `/api/payment/notify`).
    pub notify_url: String,
    /// The clock.
    pub clock: Clock,
}

/// The end of a bill's due day: the Beijing calendar day `due_ms` falls on, until midnight
/// Beijing time (the document writes due dates as `2024-11-30T00:00:00.000Z`, i.e. 08:00 that
/// day in Urumqi's business time; the whole day counts as on time).
pub fn due_day_end(due_ms: i64) -> i64 {
    let offset = i64::from(beijing().local_minus_utc()) * 1000;
    ((due_ms + offset).div_euclid(86_400_000) + 1) * 86_400_000 - offset
}

/// The late fee in fen of a bill of `amount_fen` due at `due_ms`, unpaid at `now_ms`:
/// 0.05 % per full day after its due day ended, rounded half up to the fen, capped at the bill.
pub fn late_fee_fen(amount_fen: i64, due_ms: i64, now_ms: i64) -> i64 {
    let days = (now_ms - due_day_end(due_ms)).max(0) / 86_400_000;
    let fee = (amount_fen * LATE_FEE_PER_DAY_BASIS_POINTS * days + 5_000) / 10_000;
    fee.min(amount_fen * LATE_FEE_CAP_PERCENT / 100)
}

/// The heating season a moment falls in: from August on it is `Y-(Y+1)`, before that `(Y-1)-Y`.
pub fn season_of(ms: i64) -> String {
    let date = beijing().timestamp_millis_opt(ms).single().map(|t| t.date_naive()).unwrap_or_default();
    let start = if date.month() >= 8 { date.year() } else { date.year() - 1 };
    format!("{start}-{}", start + 1)
}

fn purpose(kind: &types::SmsSendRequestType) -> SmsPurpose {
    match kind {
        types::SmsSendRequestType::Login => SmsPurpose::Login,
        types::SmsSendRequestType::Register => SmsPurpose::Register,
        types::SmsSendRequestType::ResetPassword => SmsPurpose::ResetPassword,
    }
}

impl HeatingService {
    fn code_domain(phone: &str, purpose: SmsPurpose) -> String {
        format!("heating.sms:{phone}:{}", purpose.as_str())
    }

    fn id_context(user_id: &str) -> String {
        format!("heating_user.id_card:{user_id}")
    }

    fn today(&self) -> NaiveDate {
        self.clock.now().with_timezone(&beijing()).date_naive()
    }

    // ---- 000 §1 SMS ---------------------------------------------------------------------------

    /// 000 §1.1: send a 6-digit code (stored hashed, 5 minutes, one per phone per minute).
    /// Whether the phone is registered is not checked here (§1.1 documents no 1003/1004): the
    /// operation the code is for answers that (§2.1 login → 1004, §2.2 register → 1003).
    pub async fn send_code(
        &self,
        phone: &str,
        kind: &types::SmsSendRequestType,
    ) -> Result<types::SmsSendData, HeatingError> {
        let purpose = purpose(kind);
        let now = self.clock.now_ms();
        if !self.db.heating_sms_take_slot(phone, now, CODE_INTERVAL_MS).await? {
            let wait = self.db.heating_sms_slot_taken_at(phone).await?.map_or(CODE_INTERVAL_MS, |at| at + CODE_INTERVAL_MS - now);
            return Err(HeatingError::TooFrequent((wait.max(1000) as u64).div_ceil(1000)));
        }
        let code = crate::random::digits(6);
        let hash = self.vault.digest(&Self::code_domain(phone, purpose), &code);
        let stored =
            self.db.heating_sms_insert(phone, purpose.as_str(), &hash, now, now + i64::from(CODE_TTL_SECONDS) * 1000).await;
        let sent = match stored {
            Ok(()) => self.sms.send_code("heating", phone, &code, purpose, CODE_TTL_SECONDS).await.map_err(|error| {
                tracing::warn!(api = "heating", phone = mask_phone(phone), %error, "SMS provider failed");
                HeatingError::SmsFailed
            }),
            Err(error) => Err(error.into()),
        };
        if let Err(error) = sent {
            // Nothing was sent: the phone may try again at once, and an earlier code still works.
            self.db.heating_sms_withdraw(phone, purpose.as_str(), now).await?;
            return Err(error);
        }
        Ok(types::SmsSendData { phone: phone.to_owned(), expire_time: CODE_TTL_SECONDS as i32 })
    }

    /// Check `code` against the newest code sent to `phone` for `purpose`; answers the code's id
    /// (for [`HeatingService::use_code`]). Wrong → 1002 (the 5th wrong guess kills the code; each
    /// check is claimed before comparing, so parallel guesses cannot exceed that), expired → 1006.
    pub async fn check_code(&self, phone: &str, purpose: SmsPurpose, code: &str) -> Result<i64, HeatingError> {
        let Some(sent) = self.db.heating_sms_latest(phone, purpose.as_str()).await? else {
            return Err(HeatingError::CodeWrong("验证码错误"));
        };
        if self.clock.now_ms() >= sent.expires_at {
            return Err(HeatingError::CodeExpired);
        }
        if !self.db.heating_sms_take_attempt(sent.id, CODE_MAX_ATTEMPTS).await? {
            return Err(HeatingError::CodeWrong("验证码错误次数过多，请重新获取"));
        }
        if !self.vault.digest_matches(&Self::code_domain(phone, purpose), code, &sent.code_hash) {
            return Err(HeatingError::CodeWrong("验证码错误"));
        }
        self.db.heating_sms_return_attempt(sent.id).await?;
        Ok(sent.id)
    }

    /// Use a checked code up (codes are single-use); 1002 when another request used it meanwhile.
    pub async fn use_code(&self, id: i64) -> Result<(), HeatingError> {
        if self.db.heating_sms_consume(id, self.clock.now_ms()).await? { Ok(()) } else { Err(HeatingError::CodeWrong("验证码错误")) }
    }

    /// 000 §1.2: whether a code is right, without using it up.
    pub async fn verify_code(
        &self,
        phone: &str,
        kind: &types::SmsSendRequestType,
        code: &str,
    ) -> Result<types::SmsVerifyData, HeatingError> {
        self.check_code(phone, purpose(kind), code).await?;
        Ok(types::SmsVerifyData { is_valid: true })
    }

    // ---- 000 §2 accounts and sessions -----------------------------------------------------------

    /// 000 §2.2: register with a `register` code; the password is stored as argon2id.
    pub async fn register(
        &self,
        phone: &str,
        code: &str,
        password: &str,
        nickname: Option<&str>,
    ) -> Result<types::RegisterData, HeatingError> {
        // The code first: without it nobody learns whether a phone is registered.
        let code_id = self.check_code(phone, SmsPurpose::Register, code).await?;
        if self.db.heating_user_by_phone(phone).await?.is_some() {
            return Err(HeatingError::UserExists);
        }
        self.use_code(code_id).await?;
        let password_hash = hash_password(password).await?;
        let now = self.clock.now_ms();
        let user = User {
            id: crate::random::hex(24),
            phone: phone.to_owned(),
            password_hash,
            nickname: nickname.map(str::trim).filter(|n| !n.is_empty()).unwrap_or(phone).to_owned(),
            avatar: String::new(),
            real_name: None,
            id_card_cipher: None,
            id_card_masked: None,
            address: None,
            last_login_at: None,
            created_at: now,
            updated_at: now,
        };
        if !self.db.heating_user_insert(user.clone()).await? {
            return Err(HeatingError::UserExists);
        }
        Ok(types::RegisterData {
            user_id: user.id,
            phone: user.phone,
            nickname: user.nickname,
            created_at: iso_ms(now),
        })
    }

    /// 000 §2.1: log in with a `login` code; starts a session (access token 2 h, refresh token).
    /// An unregistered phone is 1004 — after its code checked out, so the answer reveals nothing to
    /// someone without the phone.
    pub async fn login(&self, phone: &str, code: &str) -> Result<types::LoginData, HeatingError> {
        let code_id = self.check_code(phone, SmsPurpose::Login, code).await?;
        let Some(user) = self.db.heating_user_by_phone(phone).await? else {
            return Err(HeatingError::UserNotFound);
        };
        self.use_code(code_id).await?;
        let now = self.clock.now_ms();
        let previous_login = self.db.heating_user_mark_login(&user.id, now).await?;
        let session_id = crate::random::hex(24);
        let refresh_token = crate::random::opaque_token();
        self.db
            .heating_session_insert(&session_id, &user.id, &auth::token_hash(&refresh_token), now + REFRESH_TTL_MS, now)
            .await?;
        Ok(types::LoginData {
            token: self.tokens.issue(&user.id, &session_id, "heating", now / 1000),
            refresh_token,
            expires_in: self.tokens.ttl.as_secs() as i32,
            user_info: types::UserInfo {
                id: user.id,
                phone: user.phone,
                nickname: user.nickname,
                avatar: user.avatar,
                is_first_login: previous_login.is_none(),
                created_at: iso_ms(user.created_at),
                updated_at: iso_ms(user.updated_at),
            },
        })
    }

    /// 000 §2.3: exchange a refresh token for new tokens; the old one dies, and presenting it
    /// again revokes the whole session.
    pub async fn refresh(&self, refresh_token: &str) -> Result<types::RefreshData, HeatingError> {
        let now = self.clock.now_ms();
        let new_token = crate::random::opaque_token();
        let rotation = self
            .db
            .heating_session_rotate(&auth::token_hash(refresh_token), &auth::token_hash(&new_token), now + REFRESH_TTL_MS, now)
            .await?;
        match rotation {
            Rotation::Rotated { session_id, user_id } => Ok(types::RefreshData {
                token: self.tokens.issue(&user_id, &session_id, "heating", now / 1000),
                refresh_token: new_token,
                expires_in: self.tokens.ttl.as_secs() as i32,
            }),
            Rotation::Reused => {
                tracing::warn!(api = "heating", "a rotated refresh token was presented again; its session is revoked");
                Err(HeatingError::Unauthorized("Token无效"))
            }
            Rotation::Invalid => Err(HeatingError::Unauthorized("Token无效")),
        }
    }

    /// The user behind an access token: valid signature, unexpired, session not revoked.
    pub async fn authenticate(&self, token: &str) -> Result<HeatingUser, HeatingError> {
        let claims = self.tokens.verify(token, "heating").map_err(|_| HeatingError::Unauthorized("Token无效"))?;
        // The signature was checked above; the lifetime is checked here, against our clock.
        if claims.exp * 1000 <= self.clock.now_ms() {
            return Err(HeatingError::Unauthorized("token已过期"));
        }
        if !self.db.heating_session_live(&claims.sid, &claims.sub).await? {
            return Err(HeatingError::Unauthorized("Token无效"));
        }
        Ok(HeatingUser { user_id: claims.sub, session_id: claims.sid })
    }

    /// 000 §2.4: end the session (its access and refresh tokens stop working).
    pub async fn logout(&self, who: &HeatingUser) -> Result<(), HeatingError> {
        self.db.heating_session_revoke(&who.session_id, self.clock.now_ms()).await?;
        Ok(())
    }

    // ---- 000 §3 profile --------------------------------------------------------------------------

    async fn user(&self, who: &HeatingUser) -> Result<User, HeatingError> {
        self.db.heating_user(&who.user_id).await?.ok_or(HeatingError::Unauthorized("Token无效"))
    }

    /// 000 §3.1: the profile, ID number masked, balance = the bound account's current balance.
    pub async fn profile(&self, who: &HeatingUser) -> Result<types::UserProfile, HeatingError> {
        let user = self.user(who).await?;
        let account = self.db.heating_account_of(&user.id).await?;
        let balance = match &account {
            Some(account) => {
                let bills = self.db.heating_bills(&account.heat_account).await?;
                paid_fen(&bills) - total_fen(&bills)
            }
            None => 0,
        };
        Ok(types::UserProfile {
            id: user.id,
            phone: user.phone,
            nickname: user.nickname,
            avatar: user.avatar,
            real_name: user.real_name,
            id_card: user.id_card_masked,
            address: user.address,
            heat_account: account.map(|a| a.heat_account),
            balance: yuan(balance),
            created_at: iso_ms(user.created_at),
            updated_at: iso_ms(user.updated_at),
        })
    }

    /// 000 §3.2: change the given fields; answers those that actually changed. The ID number
    /// must pass GB 11643 and is stored encrypted.
    pub async fn update_profile(
        &self,
        who: &HeatingUser,
        request: &types::UserProfileUpdateRequest,
    ) -> Result<Vec<types::UserProfileUpdateDataUpdatedFieldItem>, HeatingError> {
        use types::UserProfileUpdateDataUpdatedFieldItem as Field;
        let user = self.user(who).await?;
        let mut change = ProfileChange::default();
        let mut changed = Vec::new();
        let text = |value: &Option<String>, empty: &str| -> Result<Option<String>, HeatingError> {
            match value.as_deref().map(str::trim) {
                Some("") => Err(HeatingError::BadRequest(format!("{empty}不能为空"))),
                other => Ok(other.map(str::to_owned)),
            }
        };
        if let Some(nickname) = text(&request.nickname, "昵称")?
            && nickname != user.nickname
        {
            change.nickname = Some(nickname);
            changed.push(Field::Nickname);
        }
        if let Some(real_name) = text(&request.real_name, "真实姓名")?
            && user.real_name.as_deref() != Some(real_name.as_str())
        {
            change.real_name = Some(real_name);
            changed.push(Field::RealName);
        }
        if let Some(raw) = &request.id_card {
            let id = IdNumber::parse(raw, self.today()).map_err(|e| HeatingError::BadRequest(e.to_string()))?;
            if self.current_id(&user)?.as_deref() != Some(id.expose()) {
                change.id_card = Some((self.vault.encrypt(id.expose(), &Self::id_context(&user.id)), id.masked()));
                changed.push(Field::IdCard);
            }
        }
        if let Some(address) = text(&request.address, "地址")?
            && user.address.as_deref() != Some(address.as_str())
        {
            change.address = Some(address);
            changed.push(Field::Address);
        }
        if !changed.is_empty() {
            self.db.heating_user_set_profile(&user.id, &change, self.clock.now_ms()).await?;
        }
        Ok(changed)
    }

    fn current_id(&self, user: &User) -> Result<Option<String>, HeatingError> {
        user.id_card_cipher
            .as_deref()
            .map(|cipher| self.vault.decrypt(cipher, &Self::id_context(&user.id)))
            .transpose()
            .map_err(|e| HeatingError::Internal(format!("user {}: {e}", user.id)))
    }

    /// 000 §3.3: change the password: the old password (1005), the account's own phone and a
    /// `reset_password` code (1002/1006). Every other session of the user ends.
    pub async fn change_password(
        &self,
        who: &HeatingUser,
        request: &types::UserPasswordUpdateRequest,
    ) -> Result<(), HeatingError> {
        let user = self.user(who).await?;
        if request.phone != user.phone {
            return Err(HeatingError::BadRequest("手机号与当前账号不一致".into()));
        }
        if !verify_password(&request.old_password, &user.password_hash).await? {
            return Err(HeatingError::PasswordWrong);
        }
        let code_id = self.check_code(&user.phone, SmsPurpose::ResetPassword, &request.code).await?;
        self.use_code(code_id).await?;
        let password_hash = hash_password(&request.new_password).await?;
        let now = self.clock.now_ms();
        self.db.heating_user_set_password(&user.id, &password_hash, now).await?;
        // Whoever else was signed in with the old password is signed out; this device stays.
        self.db.heating_sessions_revoke_others(&who.user_id, &who.session_id, now).await?;
        Ok(())
    }

    // ---- 000 §4 heat accounts -----------------------------------------------------------------

    /// 000 §4.1: bind a heat account whose registered owner has this name and ID number; once.
    /// The user's empty profile fields (name, ID, address) are filled from the binding.
    pub async fn bind(&self, who: &HeatingUser, request: &types::HeatBindRequest) -> Result<types::HeatBindData, HeatingError> {
        let id = IdNumber::parse(&request.id_card, self.today()).map_err(|e| HeatingError::BadRequest(e.to_string()))?;
        let Some(account) = self.db.heating_account(request.heat_account.trim()).await? else {
            return Err(HeatingError::NotFound("供热账号不存在"));
        };
        if account.bound_user_id.is_some() {
            return Err(HeatingError::BadRequest("供热账号已被绑定".into()));
        }
        let user = self.user(who).await?;
        if self.db.heating_account_of(&user.id).await?.is_some() {
            return Err(HeatingError::BadRequest("当前用户已绑定其他供热账号".into()));
        }
        if request.real_name.trim() != account.owner_name
            || !self.vault.digest_matches("heating.owner_id", id.expose(), &account.owner_id_index)
        {
            return Err(HeatingError::BadRequest("户主姓名或身份证号与供热账号登记信息不一致".into()));
        }
        let now = self.clock.now_ms();
        // The user's empty profile fields take the owner's (written only where still empty).
        let fill = ProfileChange {
            nickname: None,
            real_name: Some(account.owner_name.clone()),
            id_card: Some((self.vault.encrypt(id.expose(), &Self::id_context(&user.id)), id.masked())),
            address: Some(account.address.clone()),
        };
        if !self.db.heating_account_bind(&account.heat_account, &user.id, &fill, now).await? {
            return Err(HeatingError::BadRequest("供热账号已被绑定".into()));
        }
        let bills = self.db.heating_bills(&account.heat_account).await?;
        let current = season_of(now);
        let heating_fee = bills.iter().filter(|b| b.heating_season == current).map(|b| b.amount_fen).sum();
        Ok(types::HeatBindData {
            heat_account: account.heat_account,
            real_name: account.owner_name,
            address: account.address,
            heating_area: Decimal::new(account.heating_area_centi, 2),
            heating_fee: yuan(heating_fee),
            bind_time: iso_ms(now),
        })
    }

    async fn bound(&self, who: &HeatingUser) -> Result<crate::storage::heating::Account, HeatingError> {
        self.db.heating_account_of(&who.user_id).await?.ok_or(HeatingError::NotFound("未绑定供热账号"))
    }

    /// 000 §4.2: the bound account, its fees over all seasons (balance = paid − total: negative
    /// while anything is owed) and the current season's dates.
    pub async fn account(&self, who: &HeatingUser) -> Result<types::HeatAccount, HeatingError> {
        let account = self.bound(who).await?;
        let bills = self.db.heating_bills(&account.heat_account).await?;
        let seasons = self.db.heating_seasons().await?;
        let now = self.clock.now_ms();
        let current = season_of(now);
        let season = seasons
            .iter()
            .find(|s| s.season == current)
            .or_else(|| seasons.last())
            .ok_or_else(|| HeatingError::Internal("no heating season is configured".into()))?;
        let (total, paid) = (total_fen(&bills), paid_fen(&bills));
        Ok(types::HeatAccount {
            heat_account: account.heat_account,
            real_name: account.owner_name,
            address: account.address,
            heating_area: Decimal::new(account.heating_area_centi, 2),
            current_balance: yuan(paid - total),
            total_fee: yuan(total),
            paid_fee: yuan(paid),
            unpaid_fee: yuan(total - paid),
            heating_season: season.season.clone(),
            payment_deadline: iso_ms(season.payment_deadline),
            heating_start: iso_ms(season.heating_start),
            heating_end: iso_ms(season.heating_end),
        })
    }

    // ---- 000 §5 payments -------------------------------------------------------------------------

    /// 000 §5.1: the unpaid bills with their late fees as of now.
    pub async fn payment_info(&self, who: &HeatingUser) -> Result<types::PaymentInfo, HeatingError> {
        let account = self.bound(who).await?;
        let now = self.clock.now_ms();
        let bills = self.db.heating_bills(&account.heat_account).await?;
        let unpaid: Vec<&Bill> = bills.iter().filter(|b| b.status == bill_status::UNPAID).collect();
        let fees: Vec<i64> = unpaid.iter().map(|b| late_fee_fen(b.amount_fen, b.due_date, now)).collect();
        Ok(types::PaymentInfo {
            heat_account: account.heat_account,
            unpaid_bills: unpaid
                .iter()
                .zip(&fees)
                .map(|(b, fee)| types::Bill {
                    bill_id: b.bill_id.clone(),
                    heating_season: b.heating_season.clone(),
                    amount: yuan(b.amount_fen),
                    bill_date: iso_ms(b.bill_date),
                    due_date: iso_ms(b.due_date),
                    status: types::BillStatus::Unpaid,
                    late_fee: yuan(*fee),
                })
                .collect(),
            total_unpaid: yuan(unpaid.iter().map(|b| b.amount_fen).sum()),
            total_late_fee: yuan(fees.iter().sum()),
        })
    }

    /// 000 §5.2: order the given unpaid bills of the bound account; `amount` must be their sum
    /// with late fees. The bills are held for this order for 30 minutes; asking again for the
    /// same bills while that order is live answers the same order (freshly signed).
    pub async fn create_payment(
        &self,
        who: &HeatingUser,
        request: &types::PaymentCreateRequest,
    ) -> Result<types::PaymentCreateData, HeatingError> {
        let wrong = || HeatingError::BadRequest("账单信息不正确".into());
        let account = self.db.heating_account_of(&who.user_id).await?.ok_or_else(|| HeatingError::BadRequest("未绑定供热账号".into()))?;
        let ids: BTreeSet<&str> = request.bill_ids.iter().map(|id| id.0.as_str()).collect();
        if ids.len() != request.bill_ids.len() {
            return Err(HeatingError::BadRequest("账单ID重复".into()));
        }
        let now = self.clock.now_ms();
        let bills = self.db.heating_bills(&account.heat_account).await?;
        let mut lines = Vec::new();
        for id in &ids {
            let bill = bills.iter().find(|b| b.bill_id == *id && b.status == bill_status::UNPAID).ok_or_else(wrong)?;
            lines.push((bill.bill_id.clone(), bill.amount_fen, late_fee_fen(bill.amount_fen, bill.due_date, now)));
        }
        let total: i64 = lines.iter().map(|(_, amount, fee)| amount + fee).sum();
        if fen(request.amount) != Some(total) {
            return Err(HeatingError::BadRequest(format!("支付金额不正确：应付{}元（账单金额加滞纳金）", yuan(total))));
        }
        if let Some(order) = self.live_order_for(who, &account.heat_account, &ids, now).await? {
            return self.answer_order(order);
        }
        let order = NewOrder {
            order_id: format!("O{now}{}", crate::random::digits(4)),
            user_id: who.user_id.clone(),
            heat_account: account.heat_account.clone(),
            amount_fen: total,
            created_at: now,
            expires_at: now + ORDER_TTL_MS,
            bills: lines,
        };
        if !self.db.heating_order_create(order.clone()).await? {
            // Lost a race with the same user's identical request: answer the winner's order.
            if let Some(order) = self.live_order_for(who, &account.heat_account, &ids, now).await? {
                return self.answer_order(order);
            }
            return Err(HeatingError::BadRequest("账单已缴清或正在支付中，请刷新后重试".into()));
        }
        let seasons: BTreeSet<&str> =
            bills.iter().filter(|b| ids.contains(b.bill_id.as_str())).map(|b| b.heating_season.as_str()).collect();
        let prepay = PrepayRequest {
            out_trade_no: order.order_id.clone(),
            description: format!("供热费 {} {}", account.heat_account, seasons.into_iter().collect::<Vec<_>>().join(",")),
            amount_fen: total,
            payer_openid: None,
            notify_url: self.notify_url.clone(),
            time_expire: chrono::DateTime::from_timestamp_millis(order.expires_at).unwrap_or_default(),
        };
        let prepay_id = match self.pay.jsapi_prepay(&prepay).await {
            Ok(prepay_id) => prepay_id,
            Err(error) => {
                tracing::warn!(api = "heating", order_id = order.order_id, %error, "WeChat Pay prepay failed");
                self.db.heating_order_fail(&order.order_id).await?;
                return Err(HeatingError::PayFailed);
            }
        };
        self.db.heating_order_set_prepay(&order.order_id, &prepay_id).await?;
        let stored = self.db.heating_order(&order.order_id).await?.ok_or_else(|| HeatingError::Internal("order vanished".into()))?;
        self.answer_order(stored)
    }

    /// The caller's pending, unexpired order for exactly these bills, if any.
    async fn live_order_for(
        &self,
        who: &HeatingUser,
        heat_account: &str,
        ids: &BTreeSet<&str>,
        now: i64,
    ) -> Result<Option<Order>, HeatingError> {
        for order in self.db.heating_orders(heat_account).await? {
            if order.status != order_status::PENDING || order.expires_at <= now || order.user_id.as_deref() != Some(&who.user_id) {
                continue;
            }
            let lines = self.db.heating_order_bills(&order.order_id).await?;
            if lines.iter().map(|l| l.bill_id.as_str()).collect::<BTreeSet<_>>() == *ids {
                return Ok(Some(order));
            }
        }
        Ok(None)
    }

    fn answer_order(&self, order: Order) -> Result<types::PaymentCreateData, HeatingError> {
        let Some(prepay_id) = &order.prepay_id else {
            return Err(HeatingError::BadRequest("订单正在创建，请稍后重试".into()));
        };
        let params = self.pay.pay_params(prepay_id).map_err(|e| HeatingError::Internal(format!("signing pay params: {e}")))?;
        Ok(types::PaymentCreateData {
            order_id: order.order_id,
            amount: yuan(order.amount_fen),
            wechat_pay_params: types::WechatPayParams {
                app_id: params.app_id,
                time_stamp: params.time_stamp,
                nonce_str: params.nonce_str,
                package: params.package,
                sign_type: types::WechatPayParamsSignType::Rsa,
                pay_sign: params.pay_sign,
            },
            created_at: iso_ms(order.created_at),
        })
    }

    /// The order as the caller may see it: of their bound account, or placed by them.
    async fn visible_order(&self, who: &HeatingUser, order_id: &str) -> Result<Order, HeatingError> {
        let order = self.db.heating_order(order_id).await?.ok_or(HeatingError::NotFound("订单不存在"))?;
        let account = self.db.heating_account_of(&who.user_id).await?;
        let mine = order.user_id.as_deref() == Some(&who.user_id)
            || account.is_some_and(|a| a.heat_account == order.heat_account);
        if mine { Ok(order) } else { Err(HeatingError::NotFound("订单不存在")) }
    }

    /// 000 §5.3: an order's state (a pending order past its 30 minutes reads `canceled`).
    pub async fn payment_status(&self, who: &HeatingUser, order_id: &str) -> Result<types::PaymentStatus, HeatingError> {
        let order = self.visible_order(who, order_id).await?;
        Ok(types::PaymentStatus {
            order_id: order.order_id.clone(),
            status: status_of(&order, self.clock.now_ms()),
            amount: yuan(order.amount_fen),
            paid_at: order.paid_at.map(iso_ms),
            payment_method: types::PaymentStatusPaymentMethod::Wechat,
        })
    }

    /// 000 §5.4: the bound account's payment records (one per bill of each order), newest
    /// first; `start_date`/`end_date` (YYYY-MM-DD, Beijing dates, both inclusive) filter by order
    /// time.
    pub async fn history(
        &self,
        who: &HeatingUser,
        page: i32,
        size: i32,
        start_date: Option<&str>,
        end_date: Option<&str>,
    ) -> Result<types::PaymentHistory, HeatingError> {
        let day_start = |date: &str| -> Result<i64, HeatingError> {
            let date = NaiveDate::parse_from_str(date, "%Y-%m-%d")
                .map_err(|_| HeatingError::BadRequest(format!("日期格式应为YYYY-MM-DD：{date}")))?;
            let midnight = date.and_hms_opt(0, 0, 0).expect("midnight exists");
            Ok(beijing().from_local_datetime(&midnight).single().expect("fixed offsets are unambiguous").timestamp_millis())
        };
        let from = start_date.map(day_start).transpose()?;
        let to = end_date.map(day_start).transpose()?.map(|ms| ms + 86_400_000);
        if let (Some(from), Some(to)) = (from, to)
            && from >= to
        {
            return Err(HeatingError::BadRequest("开始日期不能晚于结束日期".into()));
        }
        let Some(account) = self.db.heating_account_of(&who.user_id).await? else {
            return Ok(types::PaymentHistory { total: 0, page, size, records: Vec::new() });
        };
        let offset = (i64::from(page.max(1)) - 1) as u64 * size.max(1) as u64;
        let (total, records) = self.db.heating_records(&account.heat_account, from, to, offset, size.max(1) as u64).await?;
        let now = self.clock.now_ms();
        Ok(types::PaymentHistory {
            total: total as i64,
            page,
            size,
            records: records
                .into_iter()
                .map(|r| types::PaymentRecord {
                    order_id: r.order.order_id.clone(),
                    bill_id: r.line.bill_id,
                    amount: yuan(r.line.amount_fen + r.line.late_fee_fen),
                    heating_season: r.heating_season,
                    payment_method: types::PaymentRecordPaymentMethod::Wechat,
                    status: match status_of(&r.order, now) {
                        types::PaymentStatusStatus::Pending => types::PaymentRecordStatus::Pending,
                        types::PaymentStatusStatus::Paid => types::PaymentRecordStatus::Paid,
                        types::PaymentStatusStatus::Failed => types::PaymentRecordStatus::Failed,
                        types::PaymentStatusStatus::Canceled => types::PaymentRecordStatus::Canceled,
                    },
                    paid_at: r.order.paid_at.map(iso_ms),
                    receipt_url: String::new(),
                })
                .collect(),
        })
    }

    /// 000 §5.5: a WeChat Pay notify: verified (signature over the raw body, timestamp, serial),
    /// decrypted, checked against our merchant and the order's amount, and applied in one
    /// transaction.
    pub async fn notify(&self, headers: &axum::http::HeaderMap, raw_body: &[u8]) -> NotifyOutcome {
        let now = self.clock.now();
        let notification = match self.pay.verify_notify(headers, raw_body, now) {
            Ok(notification) => notification,
            Err(NotifyError::Signature(reason)) => {
                tracing::warn!(api = "heating", reason, "notify refused: signature");
                return NotifyOutcome::BadSignature;
            }
            Err(NotifyError::Body(reason)) => {
                tracing::warn!(api = "heating", reason, "notify refused: body");
                return NotifyOutcome::Unreadable;
            }
        };
        let transaction = match &notification.event {
            NotifyEvent::Transaction(transaction) => transaction,
            NotifyEvent::Refund(refund) => {
                // Heating never asks for refunds: nothing to apply, and WeChat must stop retrying.
                tracing::warn!(api = "heating", out_refund_no = refund.out_refund_no, "refund notify ignored");
                return NotifyOutcome::Applied;
            }
        };
        let order_id = transaction.out_trade_no.as_str();
        let merchant = self.pay.merchant();
        if transaction.appid != merchant.appid || transaction.mchid != merchant.mchid {
            tracing::error!(api = "heating", order_id, "notify for another merchant");
            return NotifyOutcome::Refused("商户信息不一致");
        }
        // When the payer paid, not when the notify (perhaps a retry hours later) arrived.
        let paid_at = transaction.success_time.unwrap_or(now).timestamp_millis();
        let notified = Notified {
            notify_id: &notification.id,
            event_type: &notification.event_type,
            out_trade_no: order_id,
            trade_state: transaction.trade_state.as_str(),
            transaction_id: transaction.transaction_id.as_deref().unwrap_or_default(),
            amount_fen: transaction.amount_total_fen,
            paid_at,
        };
        match self.db.heating_settle(&notified, now.timestamp_millis()).await {
            Ok(Settlement::Paid) => {
                tracing::info!(api = "heating", order_id, "order paid");
                NotifyOutcome::Applied
            }
            Ok(Settlement::Failed) => {
                tracing::info!(api = "heating", order_id, trade_state = transaction.trade_state.as_str(), "order failed");
                NotifyOutcome::Applied
            }
            Ok(Settlement::Duplicate) => NotifyOutcome::Applied,
            Ok(Settlement::UnknownOrder) => {
                tracing::error!(api = "heating", order_id, "notify for an unknown order");
                NotifyOutcome::Refused("订单不存在")
            }
            Ok(Settlement::AmountMismatch) => {
                tracing::error!(api = "heating", order_id, amount_fen = transaction.amount_total_fen, "notify amount differs from the order");
                NotifyOutcome::Refused("金额不一致")
            }
            Ok(Settlement::BillsTaken) => {
                // Paid, but its bills were settled by another order meanwhile: WeChat must stop
                // retrying (nothing will change); the payment needs a refund by an operator.
                tracing::error!(api = "heating", order_id, "paid order whose bills another order settled: refund needed");
                NotifyOutcome::Applied
            }
            Err(error) => {
                tracing::error!(api = "heating", order_id, %error, "notify not applied");
                NotifyOutcome::Failed
            }
        }
    }

    // ---- 000 §6–§8 ------------------------------------------------------------------------------

    /// 000 §6.1: the agreements from storage.
    pub async fn agreements(&self) -> Result<types::AgreementsData, HeatingError> {
        let rows = self.db.heating_agreements().await?;
        let find = |kind: &str| {
            rows.iter()
                .find(|a| a.kind == kind)
                .map(|a| types::Agreement {
                    title: a.title.clone(),
                    content: a.content.clone(),
                    version: a.version.clone(),
                    updated_at: a.updated_at.clone(),
                })
                .ok_or_else(|| HeatingError::Internal(format!("agreement {kind} is missing")))
        };
        Ok(types::AgreementsData { user_agreement: find("user_agreement")?, privacy_policy: find("privacy_policy")? })
    }

    /// 000 §6.2: the system configuration from storage.
    pub async fn system_config(&self) -> Result<types::SystemConfig, HeatingError> {
        let mut object = serde_json::Map::new();
        for (key, value) in self.db.heating_config().await? {
            let value = match value {
                Some(text) => serde_json::from_str(&text).map_err(|e| HeatingError::Internal(format!("config {key}: {e}")))?,
                None => serde_json::Value::Null,
            };
            object.insert(key, value);
        }
        serde_json::from_value(serde_json::Value::Object(object)).map_err(|e| HeatingError::Internal(format!("system config: {e}")))
    }

    /// 000 §7.1: statistics from the account's bills and payments. `total_paid_amount`: every paid
    /// order (bills and late fees); `current_season_paid`: the part for this season's bills;
    /// `average_monthly_consumption`: all billed fees over the heating months of those seasons;
    /// `on_time_payment_rate`: of the bills due so far, the share paid by their due date.
    pub async fn statistics(&self, who: &HeatingUser) -> Result<types::UserStatistics, HeatingError> {
        let account = self.bound(who).await?;
        let now = self.clock.now_ms();
        let bills = self.db.heating_bills(&account.heat_account).await?;
        let seasons = self.db.heating_seasons().await?;
        let (_, records) = self.db.heating_records(&account.heat_account, None, None, 0, i64::MAX as u64).await?;
        let current = season_of(now);
        let mut paid_orders = BTreeSet::new();
        let mut total_paid = 0;
        let mut current_paid = 0;
        for record in records.iter().filter(|r| r.order.status == order_status::PAID) {
            if paid_orders.insert(record.order.order_id.clone()) {
                total_paid += record.order.amount_fen;
            }
            if record.heating_season == current {
                current_paid += record.line.amount_fen + record.line.late_fee_fen;
            }
        }
        let billed_seasons: BTreeSet<&str> = bills.iter().map(|b| b.heating_season.as_str()).collect();
        let months: i64 = seasons
            .iter()
            .filter(|s| billed_seasons.contains(s.season.as_str()))
            .map(|s| ((s.heating_end - s.heating_start) as f64 / (30.4375 * 86_400_000.0)).round() as i64)
            .sum();
        let average = if months > 0 { (total_fen(&bills) + months / 2) / months } else { 0 };
        let due: Vec<&Bill> =
            bills.iter().filter(|b| b.status == bill_status::PAID || due_day_end(b.due_date) <= now).collect();
        let on_time = due.iter().filter(|b| b.paid_at.is_some_and(|at| at < due_day_end(b.due_date))).count();
        let rate = if due.is_empty() { 1.0 } else { ((on_time as f64 / due.len() as f64) * 100.0).round() / 100.0 };
        Ok(types::UserStatistics {
            total_heating_seasons: billed_seasons.len() as i32,
            total_paid_amount: yuan(total_paid),
            current_season_paid: yuan(current_paid),
            average_monthly_consumption: yuan(average),
            on_time_payment_rate: rate,
        })
    }

    /// 000 §8.1: whether the database answers.
    pub async fn healthy(&self) -> bool {
        self.db.ping().await
    }
}

fn total_fen(bills: &[Bill]) -> i64 {
    bills.iter().map(|b| b.amount_fen).sum()
}

fn paid_fen(bills: &[Bill]) -> i64 {
    bills.iter().filter(|b| b.status == bill_status::PAID).map(|b| b.amount_fen).sum()
}

fn status_of(order: &Order, now: i64) -> types::PaymentStatusStatus {
    match order.status.as_str() {
        order_status::PAID => types::PaymentStatusStatus::Paid,
        order_status::FAILED => types::PaymentStatusStatus::Failed,
        order_status::PENDING if order.expires_at > now => types::PaymentStatusStatus::Pending,
        _ => types::PaymentStatusStatus::Canceled,
    }
}

async fn hash_password(password: &str) -> Result<String, HeatingError> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| HeatingError::Internal(format!("password hashing: {e}")))
}

async fn verify_password(password: &str, stored: &str) -> Result<bool, HeatingError> {
    let (password, stored) = (password.to_owned(), stored.to_owned());
    tokio::task::spawn_blocking(move || auth::verify_password(&password, &stored))
        .await
        .map_err(|e| HeatingError::Internal(format!("password check: {e}")))
}

/// How long access tokens live (000 "安全建议": 2 hours).
pub const ACCESS_TTL: Duration = Duration::from_secs(7200);

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;
    /// 2024-11-30T00:00:00.000Z, a due date as the document writes it.
    const DUE: i64 = 1_732_924_800_000;

    #[test]
    fn the_due_day_ends_at_beijing_midnight() {
        // 08:00 Beijing on 30 Nov → the day ends at 00:00 Beijing on 1 Dec = 16:00Z on 30 Nov.
        assert_eq!(due_day_end(DUE), DUE + 16 * 3_600_000);
        assert_eq!(due_day_end(DUE + 15 * 3_600_000), DUE + 16 * 3_600_000);
        assert_eq!(due_day_end(DUE + 16 * 3_600_000), DUE + 16 * 3_600_000 + DAY);
    }

    #[test]
    fn late_fees_grow_per_full_day_and_stop_at_the_bill() {
        let end = due_day_end(DUE);
        assert_eq!(late_fee_fen(125_050, DUE, DUE), 0);
        assert_eq!(late_fee_fen(125_050, DUE, end + DAY - 1), 0, "less than a full day late");
        // 0.05 % of 1250.50 yuan = 0.62525 yuan a day: 63 fen after one day (half up), 625 after ten.
        assert_eq!(late_fee_fen(125_050, DUE, end + DAY), 63);
        assert_eq!(late_fee_fen(125_050, DUE, end + 10 * DAY), 625);
        assert_eq!(late_fee_fen(125_050, DUE, end + 100_000 * DAY), 125_050, "capped at the bill");
    }

    #[test]
    fn seasons_turn_in_august() {
        let at = |y, m, d| chrono::Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap().timestamp_millis();
        assert_eq!(season_of(at(2026, 11, 21)), "2026-2027");
        assert_eq!(season_of(at(2027, 3, 31)), "2026-2027");
        assert_eq!(season_of(at(2026, 7, 31)), "2025-2026");
    }
}
