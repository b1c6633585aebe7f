//! The heating API's application logic (000): codes, accounts and sessions (on the shared
//! identity block), heat accounts, bills and late fees, payments (on the shared payments block),
//! statistics. Each public method is named after the operationId it serves; it speaks the
//! contract's data types, calls storage and the shared blocks, and refuses with [`HeatingError`].

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{Datelike, NaiveDate};
use generated::heating::types;
use rust_decimal::Decimal;

use super::error::HeatingError;
use crate::api_support::PageRequest;
use crate::clock::{Clock, beijing_date, beijing_day_start, iso_ms};
use crate::coalesce::ReadsById;
use crate::identity::{CodePolicy, Codes, Passwords, Principal, Sessions, Subject, Wechat, WechatError};
use crate::money::{fen, yuan};
use crate::payments::{NotifyOutcome, Payments};
use crate::pii::{IdNumber, Vault};
use crate::ratelimit::{Budgets, Window};
use crate::storage::Db;
use crate::storage::heating::{Bill, BillStatus, Created, NewOrder, NewUser, OrderLine, Profile, ProfileChange, User};
use crate::storage::payments::{PayOrder, PayStatus, RefundState};

/// Heating's verification codes (000 §1.1 `expire_time` 300; §7 one per phone per minute; five
/// wrong guesses kill a code, domain.md §6; ten codes per phone a day against SMS pumping — the
/// document is silent on a daily cap), with the client cap too: the per-IP limit (000 §7, 100
/// requests per 15 minutes) alone would let one address have 400 codes an hour sent, to phone
/// after phone, at the SMS account's cost.
pub const CODE_POLICY: CodePolicy = CodePolicy::STANDARD;

/// An unpaid order holds its bills, and can be paid, for 30 minutes (WeChat Pay `time_expire`).
pub const ORDER_TTL_MS: i64 = 30 * 60 * 1000;
/// Late fee: 0.05 % (万分之五) of the bill per full day past its due date…
pub const LATE_FEE_PER_DAY_BASIS_POINTS: i64 = 5;
/// …never more than the bill itself.
pub const LATE_FEE_CAP_PERCENT: i64 = 100;
/// The largest page of the payment history (000 §5.4 `size` maximum).
pub const MAX_PAGE_SIZE: u64 = 100;
/// `heat_bind` attempts a user has in any 24 hours (the document is silent). A binding proves
/// ownership by the owner's name and ID number; once the name, birth date and region are known,
/// a few hundred valid ID numbers remain, so guesses are limited per user (each needs a phone
/// that received an SMS code). A number failing its checksum, or an unknown account, is refused
/// before it counts.
pub const BIND_ATTEMPTS_PER_DAY: u32 = 5;
/// The blind-index domain of heat-account owners' ID numbers.
pub const OWNER_ID_DOMAIN: &str = "heating.owner_id";

/// The heating application: storage, keys, the shared blocks, the clock.
pub struct HeatingService {
    /// The database.
    pub db: Db,
    /// Personal-data keys.
    pub vault: Arc<Vault>,
    /// Sessions and access tokens (rotating refresh tokens).
    pub sessions: Arc<Sessions>,
    /// SMS verification codes.
    pub codes: Codes,
    /// Password hashing.
    pub passwords: Passwords,
    /// WeChat login, for the payer's openid.
    pub wechat: Wechat,
    /// WeChat Pay orders and notifies.
    pub payments: Arc<Payments>,
    /// How a request's client address is found (what a code send is counted against, were
    /// [`CODE_POLICY`] to cap it per client).
    pub clients: crate::ratelimit::ClientAddresses,
    /// The clock.
    pub clock: Clock,
    /// Budgets of per-user limits beside the per-IP one (the binding attempts of
    /// [`BIND_ATTEMPTS_PER_DAY`]): in the database, or Redis when configured, so every instance
    /// counts together.
    pub budgets: Budgets,
    /// The profile reads in flight (`user_profile_get`, the most read operation): those that
    /// arrive while one read is out go together in the next, one statement
    /// ([`ReadsById`]; each still reads the database after its request arrived). Made by
    /// [`HeatingService::profile_reads`].
    pub profiles: ReadsById<Profile>,
}

/// Profiles read in one statement at most (a power of two).
const PROFILES_PER_READ: usize = 64;

/// The end of a bill's due day: the Beijing calendar day `due_ms` falls on, until midnight
/// Beijing time (the document writes due dates as `2024-11-30T00:00:00.000Z`, i.e. 08:00 that
/// day in Urumqi's business time; the whole day counts as on time).
pub fn due_day_end(due_ms: i64) -> i64 {
    beijing_day_start(beijing_date(due_ms)) + 86_400_000
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
    let date = beijing_date(ms);
    let start = if date.month() >= 8 { date.year() } else { date.year() - 1 };
    format!("{start}-{}", start + 1)
}

/// The code purpose of a wire `type` (000 §1.1).
fn purpose(kind: &types::SmsSendRequestType) -> &'static str {
    match kind {
        types::SmsSendRequestType::Login => "login",
        types::SmsSendRequestType::Register => "register",
        types::SmsSendRequestType::ResetPassword => "reset_password",
    }
}

impl HeatingService {
    /// The shared profile reads of [`HeatingService::profiles`], over `db`.
    pub fn profile_reads(db: Db) -> ReadsById<Profile> {
        let read = move |ids: Vec<String>| {
            let db = db.clone();
            async move { db.heating_users().profiles(&ids).await }
        };
        ReadsById::new("profile read", PROFILES_PER_READ, read, |profile: &Profile| profile.id.as_str())
    }

    fn id_context(user_id: &str) -> String {
        format!("heating_user.id_card:{user_id}")
    }

    fn today(&self) -> NaiveDate {
        beijing_date(self.clock.now_ms())
    }

    // ---- 000 §1 SMS ---------------------------------------------------------------------------

    /// operationId `sms_send` (000 §1.1): send a 6-digit code ([`CODE_POLICY`]). Whether the
    /// phone is registered is not checked here (§1.1 documents no 1003/1004): the operation the
    /// code is for answers that (§2.1 login → 1004, §2.2 register → 1003).
    pub async fn sms_send(&self, phone: &str, kind: &types::SmsSendRequestType, client: std::net::IpAddr) -> Result<types::SmsSendData, HeatingError> {
        let sent = self.codes.send(phone, purpose(kind), false, client).await?;
        Ok(types::SmsSendData { phone: phone.to_owned(), expire_time: sent.ttl.as_secs() as i32 })
    }

    /// operationId `sms_verify` (000 §1.2): whether a code is right, without using it up.
    /// Wrong → 1002 (the 5th wrong guess kills the code), expired → 1006.
    pub async fn sms_verify(&self, phone: &str, kind: &types::SmsSendRequestType, code: &str) -> Result<types::SmsVerifyData, HeatingError> {
        self.codes.check(Subject::Phone(phone), purpose(kind), code).await?;
        Ok(types::SmsVerifyData { is_valid: true })
    }

    // ---- 000 §2 accounts and sessions -----------------------------------------------------------

    /// operationId `auth_register` (000 §2.2): register with a `register` code; the password is
    /// stored as argon2id. The phone's login code may then be sent at once (000 对接注意事项 1:
    /// 发送验证码 → 注册 → 登录), not a minute after the register code.
    pub async fn auth_register(&self, phone: &str, code: &str, password: &str, nickname: Option<&str>) -> Result<types::RegisterData, HeatingError> {
        // The code first: without it nobody learns whether a phone is registered.
        let ticket = self.codes.check(Subject::Phone(phone), "register", code).await?;
        if self.db.heating_users().by_phone(phone).await?.is_some() {
            return Err(HeatingError::UserExists);
        }
        self.codes.consume(&ticket).await?;
        let password_hash = self.passwords.hash(password).await.map_err(|e| HeatingError::Internal(e.to_string()))?;
        let now = self.clock.now_ms();
        let id = crate::random::hex(24);
        let nickname = nickname.map(str::trim).filter(|n| !n.is_empty()).unwrap_or(phone);
        let new = NewUser { id: &id, phone, password_hash: &password_hash, nickname, now };
        if !self.db.heating_users().insert(new).await? {
            return Err(HeatingError::UserExists);
        }
        // The document's flow goes on to 登录, which takes a login code: the phone was just
        // proved, so that code need not wait out the minute the register code started.
        if let Err(error) = self.codes.free_resend(&ticket).await {
            tracing::warn!(api = "heating", %error, "the login code after a registration waits its minute");
        }
        Ok(types::RegisterData { user_id: id, phone: phone.to_owned(), nickname: nickname.to_owned(), created_at: iso_ms(now) })
    }

    /// operationId `auth_login` (000 §2.1): log in with a `login` code; starts a session (access
    /// token 2 h, rotating refresh token). An unregistered phone is 1004 — after its code checked
    /// out, so the answer reveals nothing to someone without the phone.
    pub async fn auth_login(&self, phone: &str, code: &str) -> Result<types::LoginData, HeatingError> {
        let ticket = self.codes.check(Subject::Phone(phone), "login", code).await?;
        let Some(user) = self.db.heating_users().by_phone(phone).await? else {
            return Err(HeatingError::UserNotFound);
        };
        self.codes.consume(&ticket).await?;
        let is_first_login = self.db.heating_users().mark_login(&user.id, self.clock.now_ms()).await?;
        let issued = self.sessions.start(&user.id).await?;
        Ok(types::LoginData {
            token: issued.access_token,
            refresh_token: issued.refresh_token.unwrap_or_default(),
            expires_in: issued.expires_in as i32,
            user_info: types::UserInfo {
                id: user.id,
                phone: user.phone,
                nickname: user.nickname,
                avatar: user.avatar,
                is_first_login,
                created_at: iso_ms(user.created_at),
                updated_at: iso_ms(user.updated_at),
            },
        })
    }

    /// operationId `auth_refresh` (000 §2.3): exchange a refresh token for new tokens; the old
    /// one dies, and presenting it again revokes the whole session.
    pub async fn auth_refresh(&self, refresh_token: &str) -> Result<types::RefreshData, HeatingError> {
        let issued = self.sessions.refresh_rotating(refresh_token).await?;
        Ok(types::RefreshData {
            token: issued.access_token,
            refresh_token: issued.refresh_token.unwrap_or_default(),
            expires_in: issued.expires_in as i32,
        })
    }

    /// The caller behind an access token (the operations that need Authorization).
    pub async fn authenticate(&self, token: &str) -> Result<Principal, HeatingError> {
        Ok(self.sessions.authenticate(token).await?)
    }

    /// operationId `auth_logout` (000 §2.4): end the session (its access and refresh tokens stop
    /// working).
    pub async fn auth_logout(&self, who: &Principal) -> Result<(), HeatingError> {
        Ok(self.sessions.revoke(who).await?)
    }

    // ---- 000 §3 profile --------------------------------------------------------------------------

    async fn user(&self, who: &Principal) -> Result<User, HeatingError> {
        self.db.heating_users().get(&who.user_id).await?.ok_or(HeatingError::Unauthorized("Token无效"))
    }

    /// operationId `user_profile_get` (000 §3.1): the profile, ID number masked, balance = the
    /// bound account's current balance.
    pub async fn user_profile_get(&self, who: &Principal) -> Result<types::UserProfile, HeatingError> {
        let profile = self.profiles.read(who.user_id.clone()).await?.ok_or(HeatingError::Unauthorized("Token无效"))?;
        Ok(types::UserProfile {
            id: profile.id,
            phone: profile.phone,
            nickname: profile.nickname,
            avatar: profile.avatar,
            real_name: profile.real_name,
            id_card: profile.id_card_masked,
            address: profile.address,
            heat_account: profile.heat_account,
            // Paid minus billed: what the unpaid bills owe, negative.
            balance: yuan(-profile.owed_fen),
            created_at: iso_ms(profile.created_at),
            updated_at: iso_ms(profile.updated_at),
        })
    }

    /// operationId `user_profile_update` (000 §3.2): change the given fields; answers those that
    /// actually changed. The ID number must pass GB 11643 and is stored encrypted.
    pub async fn user_profile_update(
        &self,
        who: &Principal,
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
            self.db.heating_users().set_profile(&user.id, &change, self.clock.now_ms()).await?;
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

    /// operationId `user_password_update` (000 §3.3): change the password: the account's own
    /// phone, a `reset_password` code (1002/1006; checked first and spent, right or wrong
    /// password) and the old password (1005). Every other session of the user ends.
    pub async fn user_password_update(&self, who: &Principal, request: &types::UserPasswordUpdateRequest) -> Result<(), HeatingError> {
        let user = self.user(who).await?;
        if request.phone != user.phone {
            return Err(HeatingError::BadRequest("手机号与当前账号不一致".into()));
        }
        // The code first, spent whatever the old password turns out to be: a stolen token alone
        // is no way to try passwords, and each guess costs a code sent to the owner's phone.
        self.codes.redeem(Subject::Phone(&user.phone), "reset_password", &request.code).await?;
        let matches = self.passwords.verify(&request.old_password, &user.password_hash).await.map_err(|e| HeatingError::Internal(e.to_string()))?;
        if !matches {
            return Err(HeatingError::PasswordWrong);
        }
        let password_hash = self.passwords.hash(&request.new_password).await.map_err(|e| HeatingError::Internal(e.to_string()))?;
        self.db.heating_users().set_password(&user.id, &password_hash, self.clock.now_ms()).await?;
        // Whoever else was signed in with the old password is signed out; this device stays.
        self.sessions.revoke_others(who).await?;
        Ok(())
    }

    // ---- 000 §4 heat accounts -----------------------------------------------------------------

    /// operationId `heat_bind` (000 §4.1): bind a heat account whose registered owner has this
    /// name and ID number; once. Whether the account is already bound is said only to someone
    /// who knows its owner. [`BIND_ATTEMPTS_PER_DAY`] attempts per user in any 24 hours, then
    /// 429 / 1008 with the seconds to wait. The user's empty profile fields (name, ID, address)
    /// are filled from the binding.
    pub async fn heat_bind(&self, who: &Principal, request: &types::HeatBindRequest) -> Result<types::HeatBindData, HeatingError> {
        let id = IdNumber::parse(&request.id_card, self.today()).map_err(|e| HeatingError::BadRequest(e.to_string()))?;
        let accounts = self.db.heating_accounts();
        let Some(account) = accounts.get(request.heat_account.trim()).await? else {
            return Err(HeatingError::NotFound("供热账号不存在"));
        };
        // Counted once the owner is to be compared (a mistyped account number says nothing
        // about an owner, and does not use up the owner's own attempts).
        let attempts = Window::new(BIND_ATTEMPTS_PER_DAY, Duration::from_secs(86_400));
        let counted = self.budgets.admit("heating.bind", &who.user_id, self.clock.now().timestamp_micros(), &attempts, 1).await;
        match counted {
            Ok(admission) if admission.admitted == 0 => {
                return Err(HeatingError::TooFrequent((admission.wait_us.max(1_000_000) as u64).div_ceil(1_000_000)));
            }
            Ok(_) => {}
            // Not counted, not tried: a guess must never go uncounted.
            Err(error) => return Err(HeatingError::Internal(format!("counting a binding attempt: {error}"))),
        }
        if request.real_name.trim() != account.owner_name || !self.vault.digest_matches(OWNER_ID_DOMAIN, id.expose(), &account.owner_id_index) {
            return Err(HeatingError::BadRequest("户主姓名或身份证号与供热账号登记信息不一致".into()));
        }
        if account.bound_user_id.is_some() {
            return Err(HeatingError::BadRequest("供热账号已被绑定".into()));
        }
        let user = self.user(who).await?;
        if accounts.bound_to(&user.id).await?.is_some() {
            return Err(HeatingError::BadRequest("当前用户已绑定其他供热账号".into()));
        }
        let now = self.clock.now_ms();
        // The user's empty profile fields take the owner's (written only where still empty).
        let fill = ProfileChange {
            nickname: None,
            real_name: Some(account.owner_name.clone()),
            id_card: Some((self.vault.encrypt(id.expose(), &Self::id_context(&user.id)), id.masked())),
            address: Some(account.address.clone()),
        };
        if !accounts.bind(&account.heat_account, &user.id, &fill, now).await? {
            return Err(HeatingError::BadRequest("供热账号已被绑定".into()));
        }
        let bills = accounts.bills(&account.heat_account).await?;
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

    async fn bound(&self, who: &Principal) -> Result<crate::storage::heating::Account, HeatingError> {
        self.db.heating_accounts().bound_to(&who.user_id).await?.ok_or(HeatingError::NotFound("未绑定供热账号"))
    }

    /// operationId `heat_account_get` (000 §4.2): the bound account, its fees over all seasons
    /// (balance = paid − total: negative while anything is owed) and the current season's dates.
    pub async fn heat_account_get(&self, who: &Principal) -> Result<types::HeatAccount, HeatingError> {
        let account = self.bound(who).await?;
        let bills = self.db.heating_accounts().bills(&account.heat_account).await?;
        let seasons = self.db.heating_accounts().seasons().await?;
        let current = season_of(self.clock.now_ms());
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

    /// operationId `payment_info_get` (000 §5.1): the unpaid bills with their late fees as of now.
    pub async fn payment_info_get(&self, who: &Principal) -> Result<types::PaymentInfo, HeatingError> {
        let account = self.bound(who).await?;
        let now = self.clock.now_ms();
        let bills = self.db.heating_accounts().bills(&account.heat_account).await?;
        let unpaid: Vec<&Bill> = bills.iter().filter(|b| b.status == BillStatus::Unpaid).collect();
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

    /// The payer's openid for a new order: from `wx_code` (remembered for next time), else the
    /// one remembered; `None` when neither exists (fine for the sandbox, refused by a real
    /// merchant when the order is placed).
    async fn payer_openid(&self, user: &User, wx_code: Option<&str>) -> Result<Option<String>, HeatingError> {
        let Some(code) = wx_code else {
            return Ok(user.payer_openid.clone());
        };
        let openid = self.wechat.openid(code).await.map_err(|error| match error {
            WechatError::Code(_) => HeatingError::BadRequest("wx_code无效".into()),
            other => {
                tracing::warn!(api = "heating", error = %other, "code2Session failed");
                HeatingError::PayFailed
            }
        })?;
        if user.payer_openid.as_deref() != Some(openid.as_str()) {
            self.db.heating_users().set_payer_openid(&user.id, &openid).await?;
        }
        Ok(Some(openid))
    }

    /// operationId `payment_create` (000 §5.2): order the given unpaid bills of the bound
    /// account; `amount` must be their sum with late fees as of now. The bills are held for this
    /// order for 30 minutes; asking again for the same bills while that order is live answers the
    /// same order (freshly signed); asking for another choice that takes in any of them closes
    /// the caller's own order first ([`Payments::cancel`](crate::payments::Payments::cancel)).
    /// The payer is `wx_code`'s openid (our contract extension).
    pub async fn payment_create(&self, who: &Principal, request: &types::PaymentCreateRequest) -> Result<types::PaymentCreateData, HeatingError> {
        let wrong = || HeatingError::BadRequest("账单信息不正确".into());
        // The document's only failure for §5.2 is 400, so "not bound" is a 400 here.
        let account = self.db.heating_accounts().bound_to(&who.user_id).await?.ok_or_else(|| HeatingError::BadRequest("未绑定供热账号".into()))?;
        let ids: BTreeSet<&str> = request.bill_ids.iter().map(|id| id.0.as_str()).collect();
        if ids.len() != request.bill_ids.len() {
            return Err(HeatingError::BadRequest("账单ID重复".into()));
        }
        let now = self.clock.now_ms();
        let bills = self.db.heating_accounts().bills(&account.heat_account).await?;
        let mut lines = Vec::new();
        for id in &ids {
            let bill = bills.iter().find(|b| b.bill_id == *id && b.status == BillStatus::Unpaid).ok_or_else(wrong)?;
            lines.push(OrderLine {
                bill_id: bill.bill_id.clone(),
                amount_fen: bill.amount_fen,
                late_fee_fen: late_fee_fen(bill.amount_fen, bill.due_date, now),
            });
        }
        let total: i64 = lines.iter().map(|l| l.amount_fen + l.late_fee_fen).sum();
        if fen(request.amount) != Some(total) {
            return Err(HeatingError::BadRequest(format!("支付金额不正确：应付{}元（账单金额加滞纳金）", yuan(total))));
        }
        let user = self.user(who).await?;
        let payer = self.payer_openid(&user, request.wx_code.as_deref()).await?;
        let orders = self.db.heating_orders();
        let wanted: Vec<&str> = ids.iter().copied().collect();
        if let Some(order) = orders.live_for(&who.user_id, &account.heat_account, &wanted, now).await? {
            return self.answer_order(order, payer).await;
        }
        // The user's own unpaid order of another choice of these bills is given up for this one
        // (the document has no cancel): closed with WeChat Pay, so it can no longer be paid,
        // and its bills freed. Another user's order keeps its bills until it ends, and then
        // nothing of the caller's is given up (unless a bill is paid or taken between this look
        // and the new order's claim: then that claim is refused as below).
        let holders = orders.holding(&account.heat_account, &wanted, now).await?;
        if !holders.is_empty() {
            // A concurrent request of the user's for these very bills may have placed its order
            // since the first look: that order is this one's answer too, not one to give up.
            if let Some(order) = orders.live_for(&who.user_id, &account.heat_account, &wanted, now).await? {
                return self.answer_order(order, payer).await;
            }
            if holders.iter().any(|order| order.user_id.as_deref() != Some(who.user_id.as_str())) {
                return Err(HeatingError::BadRequest("账单已缴清或正在支付中，请刷新后重试".into()));
            }
        }
        for replaced in holders {
            let cancelled = self.payments.cancel(&replaced).await.inspect_err(|error| {
                tracing::warn!(api = "heating", out_trade_no = replaced.out_trade_no, %error, "the order another choice of bills replaces did not close");
            })?;
            tracing::info!(api = "heating", out_trade_no = replaced.out_trade_no, ?cancelled, "an unpaid order replaced by another choice of bills");
        }
        let seasons: BTreeSet<&str> = bills.iter().filter(|b| ids.contains(b.bill_id.as_str())).map(|b| b.heating_season.as_str()).collect();
        let description = format!("供热费 {} {}", account.heat_account, seasons.into_iter().collect::<Vec<_>>().join(","));
        // `O` + ms + 4 random digits (the document's `O1734502968025` shape); a number already
        // taken (two orders in one millisecond drawing the same digits) is drawn again.
        for _ in 0..5 {
            let out_trade_no = format!("O{now}{}", crate::random::digits(4));
            let pay = self.payments.new_order(&out_trade_no, Some(&who.user_id), payer.as_deref(), &description, total, now, Duration::from_millis(ORDER_TTL_MS as u64));
            match orders.create(NewOrder { pay, heat_account: &account.heat_account, lines: &lines }).await? {
                Created::Created => {
                    let order = self.db.payments().get(&out_trade_no).await?.ok_or_else(|| HeatingError::Internal("order vanished".into()))?;
                    return self.answer_order(order, None).await;
                }
                Created::NumberTaken => continue,
                Created::BillsTaken => {
                    // Lost a race with the same user's identical request: answer the winner's order.
                    if let Some(order) = orders.live_for(&who.user_id, &account.heat_account, &wanted, now).await? {
                        return self.answer_order(order, payer).await;
                    }
                    return Err(HeatingError::BadRequest("账单已缴清或正在支付中，请刷新后重试".into()));
                }
            }
        }
        Err(HeatingError::Internal("no free order number after 5 draws".into()))
    }

    /// The answer for a live order: pay parameters signed now (the order placed with WeChat Pay
    /// first when it has no prepay_id yet).
    async fn answer_order(&self, mut order: PayOrder, payer: Option<String>) -> Result<types::PaymentCreateData, HeatingError> {
        if order.payer_openid.is_none() {
            order.payer_openid = payer;
        }
        let params = self.payments.pay_params(&order).await?;
        Ok(types::PaymentCreateData {
            order_id: order.out_trade_no,
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

    /// operationId `payment_status_get` (000 §5.3): an order's state, of the caller's bound
    /// account or placed by them; a pending order whose notify is late is looked up with WeChat
    /// Pay; one past its 30 minutes reads `canceled`.
    pub async fn payment_status_get(&self, who: &Principal, order_id: &str) -> Result<types::PaymentStatus, HeatingError> {
        let not_found = || HeatingError::NotFound("订单不存在");
        let order = self.db.heating_orders().get(order_id).await?.ok_or_else(not_found)?;
        let account = self.db.heating_accounts().bound_to(&who.user_id).await?;
        let mine = order.pay.user_id.as_deref() == Some(&who.user_id) || account.is_some_and(|a| a.heat_account == order.heat_account);
        if !mine {
            return Err(not_found());
        }
        let pay = self.payments.current(order_id).await?.ok_or_else(not_found)?;
        Ok(types::PaymentStatus {
            order_id: pay.out_trade_no.clone(),
            status: status_of(&pay, self.clock.now_ms()),
            amount: yuan(pay.amount_fen),
            paid_at: pay.paid_at.map(iso_ms),
            payment_method: types::PaymentStatusPaymentMethod::Wechat,
        })
    }

    /// operationId `payment_history_list` (000 §5.4): the bound account's payment records (one
    /// per bill of each order), newest first by the time of payment (an unpaid order's
    /// creation); `start_date`/`end_date` (YYYY-MM-DD, Beijing dates, both inclusive) filter by
    /// that time.
    pub async fn payment_history_list(
        &self,
        who: &Principal,
        page: i32,
        size: i32,
        start_date: Option<&str>,
        end_date: Option<&str>,
    ) -> Result<types::PaymentHistory, HeatingError> {
        let day_start = |date: &str| -> Result<i64, HeatingError> {
            let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| HeatingError::BadRequest(format!("日期格式应为YYYY-MM-DD：{date}")))?;
            Ok(beijing_day_start(date))
        };
        let from = start_date.map(day_start).transpose()?;
        let to = end_date.map(day_start).transpose()?.map(|ms| ms + 86_400_000);
        if let (Some(from), Some(to)) = (from, to)
            && from >= to
        {
            return Err(HeatingError::BadRequest("开始日期不能晚于结束日期".into()));
        }
        let Some(account) = self.db.heating_accounts().bound_to(&who.user_id).await? else {
            return Ok(types::PaymentHistory { total: 0, page, size, records: Vec::new() });
        };
        let request = PageRequest::new(page.into(), size.into(), MAX_PAGE_SIZE);
        let records = self.db.heating_orders().records(&account.heat_account, from, to, request).await?;
        let now = self.clock.now_ms();
        Ok(types::PaymentHistory {
            total: records.total as i64,
            page,
            size,
            records: records
                .items
                .into_iter()
                .map(|r| types::PaymentRecord {
                    order_id: r.order.out_trade_no.clone(),
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
                    // The document's own example is '' (no receipts are issued by this system).
                    receipt_url: String::new(),
                })
                .collect(),
        })
    }

    /// operationId `payment_notify` (000 §5.5): a WeChat Pay notify, verified over the raw body,
    /// decrypted, checked and settled by the shared payments block (bills paid in the same
    /// transaction; bills another order took meanwhile → the payment is refunded).
    pub async fn payment_notify(&self, headers: &axum::http::HeaderMap, raw_body: &[u8]) -> NotifyOutcome {
        self.payments.notify(headers, raw_body).await
    }

    // ---- 000 §6–§8 ------------------------------------------------------------------------------

    /// operationId `config_agreements_get` (000 §6.1): the agreements from storage.
    pub async fn config_agreements_get(&self) -> Result<types::AgreementsData, HeatingError> {
        let rows = self.db.heating_reference().agreements().await?;
        let find = |kind: &str| {
            rows.iter()
                .find(|a| a.kind == kind)
                .map(|a| types::Agreement { title: a.title.clone(), content: a.content.clone(), version: a.version.clone(), updated_at: a.updated_at.clone() })
                .ok_or_else(|| HeatingError::Internal(format!("agreement {kind} is missing")))
        };
        Ok(types::AgreementsData { user_agreement: find("user_agreement")?, privacy_policy: find("privacy_policy")? })
    }

    /// operationId `config_system_get` (000 §6.2): the system configuration from storage.
    pub async fn config_system_get(&self) -> Result<types::SystemConfig, HeatingError> {
        let mut object = serde_json::Map::new();
        for (key, value) in self.db.heating_reference().config().await? {
            let value = match value {
                Some(text) => serde_json::from_str(&text).map_err(|e| HeatingError::Internal(format!("config {key}: {e}")))?,
                None => serde_json::Value::Null,
            };
            object.insert(key, value);
        }
        serde_json::from_value(serde_json::Value::Object(object)).map_err(|e| HeatingError::Internal(format!("system config: {e}")))
    }

    /// operationId `statistics_user_get` (000 §7.1): statistics from the account's bills and
    /// payments. `total_paid_amount`: every paid order (bills and late fees);
    /// `current_season_paid`: the part for this season's bills; `average_monthly_consumption`:
    /// all billed fees over the heating months of those seasons; `on_time_payment_rate`: of the
    /// bills due so far, the share paid by their due date.
    pub async fn statistics_user_get(&self, who: &Principal) -> Result<types::UserStatistics, HeatingError> {
        let account = self.bound(who).await?;
        let now = self.clock.now_ms();
        let bills = self.db.heating_accounts().bills(&account.heat_account).await?;
        let seasons = self.db.heating_accounts().seasons().await?;
        let paid = self.db.heating_orders().paid_totals(&account.heat_account, &season_of(now)).await?;
        let billed_seasons: BTreeSet<&str> = bills.iter().map(|b| b.heating_season.as_str()).collect();
        let months: i64 = seasons
            .iter()
            .filter(|s| billed_seasons.contains(s.season.as_str()))
            .map(|s| ((s.heating_end - s.heating_start) as f64 / (30.4375 * 86_400_000.0)).round() as i64)
            .sum();
        let average = if months > 0 { (total_fen(&bills) + months / 2) / months } else { 0 };
        let due: Vec<&Bill> = bills.iter().filter(|b| b.status == BillStatus::Paid || due_day_end(b.due_date) <= now).collect();
        let on_time = due.iter().filter(|b| b.paid_at.is_some_and(|at| at < due_day_end(b.due_date))).count();
        let rate = if due.is_empty() { 1.0 } else { ((on_time as f64 / due.len() as f64) * 100.0).round() / 100.0 };
        Ok(types::UserStatistics {
            total_heating_seasons: billed_seasons.len() as i32,
            total_paid_amount: yuan(paid.total_fen),
            current_season_paid: yuan(paid.season_fen),
            average_monthly_consumption: yuan(average),
            on_time_payment_rate: rate,
        })
    }

    /// operationId `health_check` (000 §8.1): whether the database answers.
    pub async fn health_check(&self) -> bool {
        self.db.ping().await
    }
}

fn total_fen(bills: &[Bill]) -> i64 {
    bills.iter().map(|b| b.amount_fen).sum()
}

fn paid_fen(bills: &[Bill]) -> i64 {
    bills.iter().filter(|b| b.status == BillStatus::Paid).map(|b| b.amount_fen).sum()
}

/// An order's state on heating's wire (000 §5.3): a pending order past its time, one closed
/// unpaid, and one paid whose bills another order had paid (its money goes back) read
/// `canceled`.
fn status_of(order: &PayOrder, now: i64) -> types::PaymentStatusStatus {
    match order.status {
        PayStatus::Paid if order.refund_state != RefundState::None => types::PaymentStatusStatus::Canceled,
        PayStatus::Paid => types::PaymentStatusStatus::Paid,
        PayStatus::Failed => types::PaymentStatusStatus::Failed,
        PayStatus::Pending if order.expires_at > now => types::PaymentStatusStatus::Pending,
        PayStatus::Pending | PayStatus::Closed => types::PaymentStatusStatus::Canceled,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

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
