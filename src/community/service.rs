//! The community API's application logic (002): accounts and tokens on the shared identity
//! blocks, the address tree, the security platform (auto-bind, owner lookup, owner consent),
//! uploads, forms and their review, the household and its grants, fee orders paid with WeChat
//! Pay v2. Answers are the contract's types; storage is reached only through `crate::storage`.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use generated::community::types::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::error::{CommunityError, MSG_RETRY, Told};
use crate::clock::{BEIJING, Clock, beijing_local};
use crate::identity::{CodePolicy, Codes, Principal, Sessions, Subject, Ticket, Wechat};
use crate::payments::Payments;
use crate::pii::{IdNumber, Vault, mask_phone, valid_phone};
use crate::providers::files::{FileError, FileStore};
use crate::providers::ocr::{IdCardOcr, OcrError};
use crate::providers::security_platform::{HouseAddress, SecurityPlatform};
use crate::storage::Db;
use crate::storage::community::{AutoBind, HouseAt, LookupClaim, NewBinding, PersonData, User};

/// Codes of types register / login / verify: six digits never starting with 0 (1.2.2 and
/// 2.2.1 send them back as JSON integers), 5 minutes (1.1.2 “过期时间，默认5分钟”), one a
/// minute per phone, 5 tries, 10 a day per phone, 30 an hour per client address (the document
/// states no limit; 1.1 sends codes to anyone who asks, unauthenticated).
pub const CODE_POLICY: CodePolicy = CodePolicy {
    length: 6,
    no_leading_zero: true,
    ttl: Duration::from_secs(300),
    resend_interval: Duration::from_secs(60),
    max_attempts: 5,
    daily_cap: 10,
    per_client: Some(crate::identity::codes::ClientCap::STANDARD),
};

/// yezhu (owner) codes: as [`CODE_POLICY`] but 30 minutes (1.1.4 “默认30分钟”).
pub const OWNER_CODE_POLICY: CodePolicy =
    CodePolicy { ttl: Duration::from_secs(1800), ..CODE_POLICY };

/// How long an owner lookup (2.2.2) and the owner's consent (2.2.3) count: the yezhu code's
/// lifetime.
const OWNER_WINDOW_MS: i64 = 30 * 60 * 1000;

/// Houses whose owner one account may look up in 24 hours (2.2.2 answers the owner's phone).
pub const OWNER_LOOKUPS_PER_DAY: usize = 5;

const DAY_MS: i64 = 24 * 3_600_000;

/// The prefix of the `key` 1.1 answers (the document's `verificationCode_qaFUTv8034G29I5`).
const KEY_PREFIX: &str = "verificationCode_";

/// The largest ID-card photo 2.3.2 decodes, bytes.
const MAX_IDCARD_IMAGE: usize = 4 * 1024 * 1024;

/// 前言 居民角色, in the table's order (integer codes 1…14 name them by row, see
/// `x-transcription-notes`).
pub const ROLES: [&str; 14] = [
    "家属", "业主", "租客", "丈夫", "妻子", "父亲", "母亲", "爷爷", "奶奶", "姥爷", "姥姥", "儿子",
    "女儿", "其他",
];
/// 前言 房屋用途.
pub const USES: [&str; 9] = ["住宅", "生产", "经营", "仓储", "教育", "文化", "办公", "商业", "其他"];
/// 前言 房屋性质.
pub const XINGZHI: [&str; 3] = ["私有", "公有", "其他"];
/// 前言 房屋状态.
pub const STATUSES: [&str; 7] = ["自用", "闲置", "借用", "空挂", "租用", "拆迁", "其他"];
/// 前言 住户类型.
pub const ZHUHU_TYPES: [&str; 3] = ["业主", "租户", "其他"];

/// Who calls an operation that needs a token.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A valid access token's account.
    User(Principal),
    /// 1.4.2 presents the old token itself (expired or not): the operation checks it.
    Renewal(String),
    /// 1.1 with a token that did not authenticate, and why (the refusal's message): a stale
    /// token must not stop a register code, and an owner code answers this refusal.
    Stale(String),
}

/// The community API over the shared blocks and its providers.
pub struct CommunityService {
    /// Storage.
    pub db: Db,
    /// ID numbers sealed and blind-indexed.
    pub vault: Arc<Vault>,
    /// 1-hour tokens, refreshable by the old token for 14 days.
    pub sessions: Arc<Sessions>,
    /// register / login / verify codes ([`CODE_POLICY`]).
    pub codes: Codes,
    /// yezhu codes ([`OWNER_CODE_POLICY`]).
    pub owner_codes: Codes,
    /// WeChat login for the mini-program's appid.
    pub wechat: Wechat,
    /// Bills paid with WeChat Pay (v2 by default).
    pub payments: Arc<Payments>,
    /// Face photos (private; signed URLs).
    pub files: Arc<FileStore>,
    /// ID-card OCR.
    pub ocr: Arc<dyn IdCardOcr>,
    /// The 安防平台.
    pub platform: Arc<dyn SecurityPlatform>,
    /// How a request's client address is found (the code sends' [`crate::identity::codes::ClientCap`]).
    pub clients: crate::ratelimit::ClientAddresses,
    /// The clock.
    pub clock: Clock,
}

impl std::fmt::Debug for CommunityService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommunityService").finish_non_exhaustive()
    }
}

// ---- wire helpers ------------------------------------------------------------------------------

/// A value as one of the contract's types (its enums travel as the strings or numbers the
/// document shows): `wire("业主")`, `wire(0)`.
pub fn wire<T: DeserializeOwned>(value: impl Serialize) -> Result<T, CommunityError> {
    crate::api_support::wire(value).map_err(CommunityError::Internal)
}

/// An operation's success `code`: `"0"` or `0`, whichever the operation's examples use.
pub(super) fn ok_code<T: DeserializeOwned>() -> Result<T, CommunityError> {
    wire::<T>("0").or_else(|_| wire::<T>(0))
}

/// An operation's `token_expired` for a valid token: `"1"` or `1`.
pub(super) fn live<T: DeserializeOwned>() -> Result<T, CommunityError> {
    wire::<T>("1").or_else(|_| wire::<T>(1))
}

/// Fen as the orders' wire amount: `"0.01元"`.
pub fn yuan_label(fen: i64) -> String {
    format!("{}元", crate::money::yuan(fen))
}


/// One of a 前言 table's names, from the Chinese name or its 1-based row number; `default`
/// when absent. Refusals list the allowed values.
pub(super) fn enumeration(
    field: &str,
    what: &str,
    table: &[&str],
    value: Option<&Value>,
    default: &str,
) -> Result<String, CommunityError> {
    let refuse = || {
        CommunityError::invalid(
            format!("{what}取值无效"),
            format!("{field}取值无效，可选值为{}（或按前言表行序的编号1至{}）", table.join("、"), table.len()),
        )
    };
    match value {
        None | Some(Value::Null) => Ok(default.to_owned()),
        Some(Value::String(s)) => table.iter().find(|t| **t == s.trim()).map(|t| (*t).to_owned()).ok_or_else(refuse),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| table.get(i as usize))
            .map(|t| (*t).to_owned())
            .ok_or_else(refuse),
        Some(_) => Err(refuse()),
    }
}

/// A value the security platform wrote, as one of a 前言 table's names: 其他 (every table's
/// last row) when it is none of them — the platform's data is not the client's to refuse.
fn known(table: &[&str], value: &str) -> String {
    let value = value.trim();
    if table.contains(&value) { value.to_owned() } else { "其他".to_owned() }
}

/// 审核类型 of a submission: 替换业主 (choice 2), 业主绑定, 租客绑定 or 家属绑定.
pub(super) fn review_kind(role: &str, zhuhu_type: &str, choice: Option<i32>) -> &'static str {
    if choice == Some(2) {
        "替换业主"
    } else if role == "业主" {
        "业主绑定"
    } else if role == "租客" || zhuhu_type == "租户" {
        "租客绑定"
    } else {
        "家属绑定"
    }
}

/// The 审核状态 word the lists use.
pub(super) fn status_word(status: i32) -> &'static str {
    match status {
        1 => "审核通过",
        2 => "待审核",
        _ => "未通过",
    }
}

impl CommunityService {
    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The account behind an access token.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, CommunityError> {
        Ok(self.sessions.authenticate(token).await?)
    }

    pub(super) async fn account(&self, who: &Principal) -> Result<User, CommunityError> {
        self.db
            .community_users()
            .get(&who.user_id)
            .await?
            .ok_or_else(|| CommunityError::Unauthorized("账号不存在，请重新获取token".into()))
    }

    /// 前言 小程序用户权限: HouseMember (bound to a house), Shenheing (a review waits), or
    /// NewMember.
    async fn permission(&self, user_id: &str) -> Result<&'static str, CommunityError> {
        let household = self.db.household();
        if let Some(person) = household.person_of(user_id).await?
            && !household.bindings_of(person.id).await?.is_empty()
        {
            return Ok("HouseMember");
        }
        Ok(if household.has_pending(user_id).await? { "Shenheing" } else { "NewMember" })
    }

    // ---- 1 授权 ---------------------------------------------------------------------------------

    /// operationId `verification_code_send` (002 §1.1): send a code of `type` to `phone`, filed
    /// under a returned key. register: the phone must be new (409); login: registered (404);
    /// yezhu: only to an owner someone looked up for a house in the last 30 minutes (2.2.2),
    /// for the applicant of `applicant`'s token — none is 400 请先登录, one that did not
    /// authenticate is its refusal (401, code "9", as on every operation needing a token);
    /// verify: any phone.
    pub async fn verification_code_send(
        &self,
        applicant: Result<Option<&Principal>, CommunityError>,
        body: &VerificationCodeSendRequest,
        client: std::net::IpAddr,
    ) -> Result<VerificationCodeSendResponse, CommunityError> {
        let phone = match &body.phone {
            Value::String(s) => s.trim().to_owned(),
            Value::Number(n) => n.to_string(),
            other => other.to_string(),
        };
        let refuse = |e: CommunityError| e.with_phone(&phone);
        if !valid_phone(&phone) {
            return Err(refuse(CommunityError::invalid(MSG_RETRY, "必须是正确的手机号")));
        }
        let users = self.db.community_users();
        let kind = body.r#type.as_str();
        let codes = match body.r#type {
            VerificationCodeSendRequestType::Register => {
                if users.by_phone(&phone).await?.is_some() {
                    return Err(refuse(CommunityError::conflict("该手机号已注册，请直接登录", "手机号已存在")));
                }
                &self.codes
            }
            VerificationCodeSendRequestType::Login => {
                if users.by_phone(&phone).await?.is_none() {
                    return Err(refuse(CommunityError::not_found("该手机号未注册", "该手机号未注册")));
                }
                &self.codes
            }
            VerificationCodeSendRequestType::Verify => &self.codes,
            VerificationCodeSendRequestType::Yezhu => {
                if body.community_house_name.as_deref().is_none_or(|n| n.trim().is_empty()) {
                    return Err(refuse(CommunityError::invalid(
                        "请选择房屋",
                        "type=yezhu时必须传送community_house_name",
                    )));
                }
                let Some(applicant) = applicant? else {
                    return Err(refuse(CommunityError::invalid(
                        "请先登录后再获取业主验证码",
                        "type=yezhu须携带申请人的token（业主验证码只发给申请人在2.2.2查询到的业主）",
                    )));
                };
                let since = self.now() - OWNER_WINDOW_MS;
                if !self.db.household().owner_looked_up(&applicant.user_id, &phone, since).await? {
                    return Err(refuse(CommunityError::invalid(
                        "该手机号不是所选房屋的业主",
                        "业主验证码只发送给30分钟内查询到的房屋业主手机号（见2.2.2）",
                    )));
                }
                &self.owner_codes
            }
        };
        let sent = codes.send(&phone, kind, true, client).await.map_err(|e| refuse(e.into()))?;
        let key = sent.key.ok_or_else(|| CommunityError::Internal("a keyed code without its key".into()))?;
        let minutes = sent.ttl.as_secs() / 60;
        Ok(VerificationCodeSendResponse {
            code: ok_code()?,
            msg: format!("验证码获取成功,{minutes}分钟内有效"),
            key: format!("{KEY_PREFIX}{key}"),
            expired_at: beijing_local(self.now() + sent.ttl.as_millis() as i64),
        })
    }

    /// Check a code sent under `key` (1.1's answer) for one of `purposes`, without using it up
    /// (the caller consumes the ticket once the code has done its work).
    async fn check_code(&self, codes: &Codes, key: &str, purposes: &[&str], code: &str) -> Result<Ticket, CommunityError> {
        let key = key.trim().strip_prefix(KEY_PREFIX).ok_or_else(CommunityError::code_refused)?;
        let mut last = CommunityError::code_refused();
        for purpose in purposes {
            match codes.check(Subject::Key(key), purpose, code.trim()).await {
                Ok(ticket) => return Ok(ticket),
                Err(error) => last = error.into(),
            }
        }
        Err(last)
    }

    /// Check and use up a code sent under `key`; the phone it went to.
    async fn redeem(&self, codes: &Codes, key: &str, purposes: &[&str], code: &str) -> Result<String, CommunityError> {
        let ticket = self.check_code(codes, key, purposes, code).await?;
        codes.consume(&ticket).await?;
        Ok(ticket.phone)
    }

    /// operationId `weapp_code_exchange` (002 §1.2.1): code2Session; the openid, and in place
    /// of the session_key (which never leaves the server) a proof of this login that 1.2.2
    /// checks.
    pub async fn weapp_code_exchange(&self, code: &str) -> Result<WeappCodeExchangeResponse, CommunityError> {
        let (user, _) = self.wechat.login(code, None).await?;
        let proof = self
            .wechat
            .session_proof(&user.openid)
            .await?
            .ok_or_else(|| CommunityError::Internal("a login without its session".into()))?;
        Ok(WeappCodeExchangeResponse {
            code: ok_code()?,
            openid: user.openid,
            msg: "获得open_id和seesion_key".into(),
            session_key: proof,
            message: "成功获取open_id和seesion_key".into(),
        })
    }

    /// operationId `weapp_user_register` (002 §1.2.2): register or log in by phone — weixin:
    /// getPhoneNumber's encryptedData opened with the server's session_key of that openid;
    /// selfPhone: a register or login code. The openid and session_key sent back must be what
    /// 1.2.1 answered for the latest login.
    pub async fn weapp_user_register(&self, body: &WeappUserRegisterRequest) -> Result<WeappUserRegisterResponse, CommunityError> {
        let name = body.name.trim();
        let avatar = body.avatar.trim();
        if name.is_empty() {
            return Err(CommunityError::invalid(MSG_RETRY, "用户的name值未传送"));
        }
        if avatar.is_empty() {
            return Err(CommunityError::invalid(MSG_RETRY, "用户的avatar值未传送"));
        }
        if !self.wechat.check_session_proof(&body.openid, body.session_key.trim()).await? {
            return Err(CommunityError::invalid(
                MSG_RETRY,
                "openid与session_key不匹配或已过期，请重新调用wx.login和1.2.1",
            ));
        }
        let phone = match body.r#type {
            WeappUserRegisterRequestType::Weixin => {
                let (Some(data), Some(iv)) = (body.encrypted_data.as_deref(), body.iv.as_deref()) else {
                    return Err(CommunityError::invalid(MSG_RETRY, "type=weixin时必须传送encryptedData和iv"));
                };
                let opened = self.wechat.decrypt(&body.openid, data, iv).await?;
                let phone = opened
                    .get("purePhoneNumber")
                    .or_else(|| opened.get("phoneNumber"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                if !valid_phone(&phone) {
                    return Err(CommunityError::invalid("手机号获取失败，请重新授权", "encryptedData中没有大陆手机号"));
                }
                phone
            }
            WeappUserRegisterRequestType::SelfPhone => {
                let (Some(key), Some(code)) = (body.verification_key.as_deref(), body.verification_code) else {
                    return Err(CommunityError::invalid(
                        MSG_RETRY,
                        "type=selfPhone时必须传送verification_key和verification_code",
                    ));
                };
                self.redeem(&self.codes, key, &["register", "login"], &code.to_string()).await?
            }
        };
        let new_id = crate::random::hex(24);
        let (user, created, moved) = self
            .db
            .community_users()
            .register_or_login(&new_id, &body.openid, &phone, name, avatar, self.now())
            .await?;
        let issued = self.sessions.start(&user.id).await?;
        if moved {
            // The account now belongs to the WeChat identity that proved the phone last: the
            // sessions of the one it left end.
            self.sessions.revoke_others(&issued.principal).await?;
        }
        let permission = self.permission(&user.id).await?;
        Ok(WeappUserRegisterResponse {
            code: ok_code()?,
            token_expired: live()?,
            msg: if created { "您注册成功！" } else { "您登陆成功！" }.into(),
            access_token: issued.access_token,
            token_type: WeappUserRegisterResponseTokenType::Bearer,
            expires_in: issued.expires_in as i32,
            expired_in: None,
            permissions: vec![wire(permission)?],
            name: user.name,
            avatar: user.avatar,
        })
    }

    /// operationId `weapp_authorization_create` (002 §1.4.1): a fresh wx.login code → the
    /// account last logged in from its openid, a new token; 404 “这只是个游客” when none.
    pub async fn weapp_authorization_create(&self, code: Option<&str>) -> Result<WeappAuthorizationCreateResponse, CommunityError> {
        let Some(code) = code.map(str::trim).filter(|c| !c.is_empty()) else {
            return Err(CommunityError::invalid(MSG_RETRY, "小程序code不正确，请传递新code值"));
        };
        let (wechat_user, _) = self.wechat.login(code, None).await?;
        let Some(user) = self.db.community_users().by_openid(&wechat_user.openid).await? else {
            return Err(CommunityError::not_found(MSG_RETRY, "这只是个游客"));
        };
        let issued = self.sessions.start(&user.id).await?;
        let permission = self.permission(&user.id).await?;
        Ok(WeappAuthorizationCreateResponse {
            code: ok_code()?,
            token_expired: None,
            msg: "token值等用户数据获取成功".into(),
            access_token: issued.access_token,
            token_type: WeappAuthorizationCreateResponseTokenType::Bearer,
            expires_in: issued.expires_in as i32,
            expired_in: None,
            permissions: vec![wire(permission)?],
            name: Some(user.name),
            avatar: Some(user.avatar),
        })
    }

    /// operationId `authorization_refresh` (002 §1.4.2): the old token (expired or not, within
    /// 14 days of its expiry, once) → a new one.
    pub async fn authorization_refresh(&self, old_token: &str) -> Result<AuthorizationRefreshResponse, CommunityError> {
        let issued = self.sessions.refresh_expired(old_token).await?;
        let user = self.account(&issued.principal).await?;
        let permission = self.permission(&user.id).await?;
        Ok(AuthorizationRefreshResponse {
            code: ok_code()?,
            token_expired: None,
            msg: "token值等用户数据获取成功".into(),
            access_token: issued.access_token,
            token_type: AuthorizationRefreshResponseTokenType::Bearer,
            expires_in: issued.expires_in as i32,
            expired_in: None,
            permissions: vec![wire(permission)?],
            name: user.name,
            avatar: user.avatar,
        })
    }

    /// operationId `people_permission_list` (002 §1.5.1).
    pub async fn people_permission_list(&self, who: &Principal) -> Result<PeoplePermissionListResponse, CommunityError> {
        let user = self.account(who).await?;
        let permission = self.permission(&user.id).await?;
        Ok(PeoplePermissionListResponse {
            code: ok_code()?,
            token_expired: live()?,
            msg: "获取用户角色成功".into(),
            data: vec![wire(permission)?],
            message: "获取用户角色成功message编码Yi2048".into(),
        })
    }

    // ---- 2.1 基础数据 ----------------------------------------------------------------------------

    /// operationId `community_list` (002 §2.1.1).
    pub async fn community_list(&self) -> Result<CommunityListResponse, CommunityError> {
        let data = self
            .db
            .community_tree()
            .communities()
            .await?
            .into_iter()
            .map(|c| Community {
                id: c.id,
                city_id: None,
                community_name: c.name,
                community_identifier: c.identifier,
                community_pinyin: c.pinyin,
                community_type: c.community_type,
                community_order: c.sort_order,
                community_value1: None,
                community_value2: None,
                community_value3: None,
                deleted_at: None,
            })
            .collect();
        Ok(CommunityListResponse {
            code: ok_code()?,
            token_expired: live()?,
            msg: "获取到了小区".into(),
            message: "获取到了小区".into(),
            data,
        })
    }

    /// operationId `building_list` (002 §2.1.2): `id` is the community_identifier (string or
    /// integer).
    pub async fn building_list(&self, id: &Value) -> Result<BuildingListResponse, CommunityError> {
        let identifier = match id {
            Value::String(s) => s.trim().to_owned(),
            other => other.to_string(),
        };
        let community: i64 = identifier.parse().unwrap_or_default();
        let data = self
            .db
            .community_tree()
            .buildings(&identifier)
            .await?
            .into_iter()
            .map(|b| Building {
                id: b.id,
                community_identifier: community,
                building_number: b.number as i32,
                building_name: b.name,
                deleted_at: None,
            })
            .collect();
        Ok(BuildingListResponse { code: ok_code()?, token_expired: live()?, msg: "获取到了楼栋".into(), message: "获取到了楼栋".into(), data })
    }

    /// operationId `unit_list` (002 §2.1.3).
    pub async fn unit_list(&self, building_id: i64) -> Result<UnitListResponse, CommunityError> {
        let data = self
            .db
            .community_tree()
            .units(building_id)
            .await?
            .into_iter()
            .map(|u| Unit {
                id: u.id,
                building_id: u.building_id,
                community_identifier: u.community_identifier.parse().unwrap_or_default(),
                unit_number: u.number as i32,
                unit_name: u.name,
                deleted_at: None,
            })
            .collect();
        Ok(UnitListResponse { code: ok_code()?, token_expired: live()?, msg: "获取到了单元".into(), message: "获取到了单元".into(), data })
    }

    /// operationId `floor_list` (002 §2.1.4).
    pub async fn floor_list(&self, unit_id: i64) -> Result<FloorListResponse, CommunityError> {
        let data = self
            .db
            .community_tree()
            .floors(unit_id)
            .await?
            .into_iter()
            .map(|f| Floor {
                id: f.id,
                unit_id: f.unit_id,
                community_identifier: f.community_identifier.parse().unwrap_or_default(),
                floor_number: f.number as i32,
                floor_name: f.name,
                deleted_at: None,
            })
            .collect();
        Ok(FloorListResponse { code: ok_code()?, token_expired: live()?, msg: "获取到了楼层".into(), message: "获取到了楼层".into(), data })
    }

    /// operationId `house_list` (002 §2.1.5).
    pub async fn house_list(&self, floor_id: i64) -> Result<HouseListResponse, CommunityError> {
        let mut data = Vec::new();
        for h in self.db.community_tree().houses(floor_id).await? {
            data.push(House {
                id: h.id,
                floor_id: h.floor_id,
                community_identifier: h.community_identifier.parse().unwrap_or_default(),
                house_number: h.number as i32,
                house_name: h.name,
                house_type: wire(&h.house_type)?,
                house_value1: None,
                house_value2: None,
                house_value3: None,
                deleted_at: None,
            });
        }
        Ok(HouseListResponse {
            code: ok_code()?,
            token_expired: live()?,
            msg: "获取到了房间和业主手机号".into(),
            message: "获取到了房间和业主手机号".into(),
            data,
        })
    }

    pub(super) async fn house_at(&self, house_id: i64) -> Result<HouseAt, CommunityError> {
        self.db
            .community_tree()
            .house(house_id)
            .await?
            .ok_or_else(|| CommunityError::invalid("房屋不存在", format!("没有id为{house_id}的房屋")))
    }

    // ---- 2.2 安防平台 ----------------------------------------------------------------------------

    fn platform_fault(error: impl std::fmt::Display) -> CommunityError {
        tracing::warn!(api = "community", %error, "security platform failed");
        CommunityError::upstream("安防平台接口出现故障，请检查配置信息如安防平台url，message编码Yi652-message编码SeApi55")
    }

    /// operationId `security_phone_verify` (002 §2.2.1): the phone of a verify code, looked up
    /// on the security platform in community `community`: found → the person and their houses
    /// copied and bound to this account (code 0; a house owned here already, or not in the
    /// tree, is left out, and an answer binding none says so); the account already has its
    /// person → "0" already bound; not found → "2" (fill the form). A community `id` that 2.1.1
    /// does not list → 400 code 1.
    pub async fn security_phone_verify(&self, who: &Principal, body: &SecurityPhoneVerifyRequest) -> Result<SecurityPhoneVerifyResponse, CommunityError> {
        let user = self.account(who).await?;
        // Refused before the code is checked, so a wrong pick of the community costs no attempt.
        if !self.db.community_tree().has_community(&body.id.to_string()).await? {
            return Err(CommunityError::invalid("小区不存在，请重新选择", "id不是2.1.1获得小区列出的小区唯一标识编码"));
        }
        // The code is used up only once the platform answered: a platform fault says 请重试,
        // and the same code must work then.
        let ticket = self.check_code(&self.codes, &body.verification_key, &["verify"], &body.verification_code.to_string()).await?;
        let phone = ticket.phone.clone();
        let now = self.now();
        let identifier = body.id.to_string();
        let found = self.platform.person_by_phone(&identifier, &phone).await.map_err(Self::platform_fault)?;
        self.codes.consume(&ticket).await?;
        self.db.community_users().set_verified_phone(&user.id, &phone, now).await?;
        let already = |message: &str| -> Result<SecurityPhoneVerifyResponse, CommunityError> {
            Ok(SecurityPhoneVerifyResponse {
                code: json!("0"),
                token_expired: Some(live()?),
                msg: "已绑定个人信息，无需二次录入".into(),
                message: message.into(),
            })
        };
        if self.db.household().person_of(&user.id).await?.is_some() {
            return already("该账号已录入个人信息");
        }
        let Some(person) = found else {
            return Ok(SecurityPhoneVerifyResponse {
                code: json!("2"),
                token_expired: Some(live()?),
                msg: "该手机号还未绑定业主".into(),
                message: "安防平台没有查找到该手机号绑定的数据,message编码Yi658-message编码SeApi57".into(),
            });
        };
        let today = crate::clock::beijing_date(now);
        let idcard = IdNumber::parse(&person.idcard, today).map_err(|_| {
            Self::platform_fault(format!("the platform's ID number {} is not valid", crate::pii::mask_id_number(&person.idcard)))
        })?;
        let tree = self.db.community_tree();
        let mut bindings = Vec::new();
        for b in &person.bindings {
            let numbers = [b.house.building_number, b.house.unit_number, b.house.floor_number, b.house.house_number];
            if let Some(house_id) = tree.house_at(&b.house.community_identifier, numbers).await? {
                bindings.push(NewBinding {
                    house_id,
                    role: known(&ROLES, &b.role),
                    house_use: known(&USES, &b.house_use),
                    xingzhi: known(&XINGZHI, &b.xingzhi),
                    house_status: known(&STATUSES, &b.status),
                    zhuhu_type: known(&ZHUHU_TYPES, &b.zhuhu_type),
                });
            }
        }
        let data = PersonData {
            name: person.name.clone(),
            phone: phone.clone(),
            idcard_cipher: self.seal_idcard(&idcard),
            idcard_digest: self.idcard_digest(&idcard),
            sex: person.sex.clone(),
            birth: person.birth.clone().or_else(|| Some(idcard.expose()[6..14].to_owned())),
            nation: person.nation.clone(),
            address: person.address.clone(),
            zzmm: "群众".into(),
            tyjr: 0,
            dibao: 0,
            shangfang: 0,
            job: String::new(),
            company: String::new(),
            photo_key: None,
        };
        match self.db.household().auto_bind(&user.id, data, &bindings, now).await? {
            AutoBind::Bound(0) => Ok(SecurityPhoneVerifyResponse {
                // The person is on record now, no house is: each already has an owner here, is
                // not in this server's tree, or the platform names none. Said so; 2.4.2
                // (house/bind) asks for them.
                code: json!(0),
                token_expired: Some(live()?),
                msg: "已录入您的一标三实信息，房屋未能自动绑定，请在房屋绑定中申请".into(),
                message: "在安防平台查找到了数据；其名下房屋已有业主、不在本小区或没有登记，未自动绑定".into(),
            }),
            AutoBind::Bound(_) => Ok(SecurityPhoneVerifyResponse {
                code: json!(0),
                token_expired: Some(live()?),
                msg: "已自动绑定您的一标三实信息".into(),
                message: "在安防平台查找到了数据".into(),
            }),
            AutoBind::AlreadyRegistered => already("该账号已录入个人信息"),
            AutoBind::OtherAccount => Err(CommunityError::invalid(
                "该身份信息已被其他账号绑定，请联系物业",
                "安防平台查找到的人员已绑定其他小程序账号",
            )),
        }
    }

    fn seal_idcard(&self, idcard: &IdNumber) -> String {
        self.vault.encrypt(idcard.expose(), "community_person.idcard")
    }

    fn idcard_digest(&self, idcard: &IdNumber) -> String {
        self.vault.digest("community.idcard", idcard.expose())
    }

    /// The owner of a house: the person bound as 业主 here, else the security platform's.
    pub(super) async fn owner_info(&self, at: &HouseAt) -> Result<Option<(String, OwnerHouseInfo)>, CommunityError> {
        let info = |phone: &str, use_: &str, xingzhi: &str, status: &str, role: &str| -> Result<OwnerHouseInfo, CommunityError> {
            Ok(OwnerHouseInfo {
                people_phone: phone.to_owned(),
                people_house_use: wire(use_)?,
                people_house_xingzhi: wire(xingzhi)?,
                people_house_status: wire(status)?,
                people_house_role: wire(role)?,
                phone: mask_phone(phone),
            })
        };
        if let Some((binding, person)) = self.db.household().owner_of(at.house.id).await? {
            let info = info(&person.phone, &binding.house_use, &binding.xingzhi, &binding.house_status, "业主")?;
            return Ok(Some((person.phone, info)));
        }
        let address = HouseAddress {
            community_identifier: at.community.identifier.clone(),
            building_number: at.building.number,
            unit_number: at.unit.number,
            floor_number: at.floor.number,
            house_number: at.house.number,
        };
        let owner = self.platform.owner_of(&address).await.map_err(Self::platform_fault)?;
        match owner {
            Some(o) if valid_phone(&o.phone) => {
                let info = info(&o.phone, &known(&USES, &o.house_use), &known(&XINGZHI, &o.xingzhi), &known(&STATUSES, &o.status), "业主")?;
                Ok(Some((o.phone, info)))
            }
            _ => Ok(None),
        }
    }

    /// operationId `security_owner_get` (002 §2.2.2): the owner of house `id` — remembered as
    /// this account's owner lookup, so a yezhu code may be sent to that phone (1.1) and its
    /// verification (2.2.3) counts as the owner's consent for this house. Only after the
    /// account verified its own phone (2.2.1).
    pub async fn security_owner_get(&self, who: &Principal, house_id: i64) -> Result<SecurityOwnerGetResponse, CommunityError> {
        let user = self.account(who).await?;
        if user.verified_phone.is_none() {
            return Err(CommunityError::invalid("请先验证手机号", "查询业主前须先通过2.2.1验证本人手机号"));
        }
        let at = self.house_at(house_id).await?;
        // 2.2.2 answers the owner's full phone (the contract's people_phone): a few houses a
        // day per account, so nobody harvests a community's owners. The lookup is taken before
        // the platform is asked, so concurrent requests cannot all pass the count.
        let now = self.now();
        let claim = self.db.household().claim_owner_lookup(&user.id, house_id, now - DAY_MS, now, OWNER_LOOKUPS_PER_DAY).await?;
        if claim == LookupClaim::Refused {
            return Err(CommunityError::invalid(
                "查询业主次数过多，请明天再试或联系物业",
                format!("每个账号每天最多查询{OWNER_LOOKUPS_PER_DAY}套房屋的业主"),
            ));
        }
        let owner = match self.owner_info(&at).await {
            Ok(owner) => owner,
            Err(error) => {
                // The platform did not answer: the lookup is not counted.
                if claim == LookupClaim::Taken {
                    self.db.household().release_owner_lookup(&user.id, house_id, now).await?;
                }
                return Err(error);
            }
        };
        let Some((owner_phone, info)) = owner else {
            // A lookup that found nobody counts toward the day's lookups all the same.
            self.db.household().record_owner_check(&user.id, house_id, "", self.now()).await?;
            return Ok(SecurityOwnerGetResponse {
                code: wire("2")?,
                token_expired: live()?,
                msg: "该房屋尚未绑定业主".into(),
                data: None,
                message: "安防平台没有查找到该房屋下的业主数据,message编码Yi1149-message编码SeApi87".into(),
            });
        };
        self.db.household().record_owner_check(&user.id, house_id, &owner_phone, self.now()).await?;
        Ok(SecurityOwnerGetResponse {
            code: ok_code()?,
            token_expired: live()?,
            msg: "已获取房屋业主手机号码".into(),
            data: Some(info),
            message: "获得了手机号码，还获得了该房屋的基本信息值，一旦业主提供的验证码核实通过，就展现给用户查看".into(),
        })
    }

    /// operationId `security_owner_verify` (002 §2.2.3): the owner's yezhu code, relayed by the
    /// applicant: the consent of every house the applicant looked that owner up for in the
    /// last 30 minutes.
    pub async fn security_owner_verify(&self, who: &Principal, body: &SecurityOwnerVerifyRequest) -> Result<SecurityOwnerVerifyResponse, CommunityError> {
        let user = self.account(who).await?;
        let wrong = || CommunityError::Invalid(Told::same("验证码错误"));
        let ticket = self
            .check_code(&self.owner_codes, &body.verification_key, &["yezhu"], &body.verification_code)
            .await
            .map_err(|error| match error {
                CommunityError::Internal(_) => error,
                _ => wrong(),
            })?;
        let now = self.now();
        // The code is used up only by the applicant it was sent for.
        if !self.db.household().owner_verified(&user.id, &ticket.phone, now - OWNER_WINDOW_MS, now).await? {
            return Err(wrong());
        }
        self.owner_codes.consume(&ticket).await?;
        Ok(SecurityOwnerVerifyResponse {
            code: ok_code()?,
            token_expired: live()?,
            msg: "验证成功".into(),
            message: "验证成功".into(),
            data: None,
        })
    }

    // ---- 2.3 附件上传 ----------------------------------------------------------------------------

    /// operationId `people_photo_upload` (002 §2.3.1): a JPEG or PNG face photo of at most
    /// `files.max_bytes`, stored privately under
    /// `face-photo/{community}/{building}/{unit}/{floor}/{house}/{yyyymm}/{dd}/{account}-{random}.{ext}`;
    /// answers a signed URL (valid `files.url_ttl_seconds`).
    pub async fn people_photo_upload(&self, who: &Principal, body: &PeoplePhotoUploadRequest) -> Result<PeoplePhotoUploadResponse, CommunityError> {
        let user = self.account(who).await?;
        let bytes = &body.file.bytes;
        if bytes.is_empty() {
            return Err(CommunityError::invalid("没有传递任何文件到后台", "传递的file为空"));
        }
        if bytes.len() > self.files.max_bytes() {
            return Err(CommunityError::invalid(
                "图片过大，请压缩后重新上传",
                format!("图片不能超过{}字节", self.files.max_bytes()),
            ));
        }
        let Some(content_type) = crate::providers::files::sniff_image(bytes) else {
            return Err(CommunityError::invalid("只能上传jpg或png格式的照片", "file不是JPEG或PNG图片"));
        };
        let numbers = [body.building_number, body.unit_number, body.floor_number, body.house_number].map(i64::from);
        let identifier = body.community_identifier.to_string();
        if self.db.community_tree().house_at(&identifier, numbers).await?.is_none() {
            return Err(CommunityError::invalid("房屋不存在", "小区、楼号、单元号、楼层号、房屋号没有对应的房屋"));
        }
        let now = self.now();
        let day = chrono::DateTime::from_timestamp_millis(now).unwrap_or_default().with_timezone(&BEIJING);
        let extension = crate::providers::files::image_extension(content_type).unwrap_or("jpg");
        let [b, u, f, h] = numbers;
        let key = format!(
            "face-photo/{identifier}/{b}/{u}/{f}/{h}/{}/{}/{}-{}.{extension}",
            day.format("%Y%m"),
            day.format("%d"),
            user.id,
            crate::random::alphanumeric(24)
        );
        if let Err(error) = self.files.put(&key, bytes.clone(), content_type).await {
            tracing::warn!(api = "community", %error, "face photo not stored");
            return Err(match error {
                FileError::TooLarge { .. } => CommunityError::invalid("图片过大，请压缩后重新上传", error.to_string()),
                _ => CommunityError::upstream("图片上传失败,message编码Yi1326"),
            });
        }
        Ok(PeoplePhotoUploadResponse {
            code: ok_code()?,
            data: self.files.signed_url(&key, now),
            msg: "图片上传成功".into(),
            message: "图片上传成功,message编码Yi1320".into(),
            token_expired: live()?,
        })
    }

    /// operationId `idcard_photo_recognize` (002 §2.3.2): the ID card's face side (base64,
    /// optionally a `data:` URL, at most 4 MiB decoded) read by the OCR provider.
    pub async fn idcard_photo_recognize(&self, who: &Principal, image: &str) -> Result<IdcardPhotoRecognizeResponse, CommunityError> {
        self.account(who).await?;
        let encoded = image.trim();
        let encoded = encoded.split_once(";base64,").map_or(encoded, |(_, data)| data);
        let missing = || CommunityError::invalid("没有传递image的base64码", "传递的image字段为空或不是base64");
        if encoded.is_empty() || encoded.len() > MAX_IDCARD_IMAGE / 3 * 4 + 4 {
            return Err(if encoded.is_empty() {
                missing()
            } else {
                CommunityError::invalid("图片过大，请压缩后重新上传", "image解码后不能超过4MB")
            });
        }
        let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|_| missing())?;
        // One answer for both causes, as the document words it; the status tells them apart:
        // an unreadable photo is the request's (400), a failing service ours (502).
        let told = || Told::new("扫描失败，请重新上传更加清晰的照片或者手动填写个人信息", "照片模糊，或者是接口欠费了");
        let face = match self.ocr.recognize(&bytes).await {
            Ok(face) => face,
            Err(OcrError::Unreadable) => return Err(CommunityError::Invalid(told())),
            Err(OcrError::Provider(error)) => {
                tracing::warn!(api = "community", %error, "ID-card OCR failed");
                return Err(CommunityError::Upstream(told()));
            }
        };
        Ok(IdcardPhotoRecognizeResponse {
            code: ok_code()?,
            token_expired: live()?,
            msg: "获取信息成功！".into(),
            data: IdcardInfo {
                birthday: face.birthday,
                address: face.address,
                gender: wire(if face.gender == "女" { "女" } else { "男" })?,
                nation: face.nation,
                idcard: face.idcard,
                name: face.name,
            },
            message: "获取信息成功".into(),
        })
    }
}
