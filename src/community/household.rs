//! Forms, reviews and the household (002 §2.4, §3): submitting the registration form or
//! binding one more house, the 物业端's decision (sandbox), the lists, and the owner's grants.

use generated::community::types::*;
use serde_json::Value;

use super::error::{CommunityError, Told};
use super::service::{CommunityService, ROLES, STATUSES, USES, XINGZHI, ZHUHU_TYPES, wire};
use crate::identity::Principal;
use crate::pii::IdNumber;
use crate::storage::community::{
    Binding, Decided, HouseAt, NewBinding, NewReview, Person, PersonData, Review, ReviewStatus,
    Submitted, User, person_data,
};

/// How long the owner's consent (2.2.3) counts for a submission: 30 minutes.
const CONSENT_WINDOW_MS: i64 = 30 * 60 * 1000;

/// The house-side fields of 2.4.1 / 2.4.2, as sent.
pub struct HouseFields<'a> {
    /// house_id.
    pub house_id: i64,
    /// role.
    pub role: Option<&'a Value>,
    /// status.
    pub status: Option<&'a Value>,
    /// use.
    pub house_use: Option<&'a Value>,
    /// xingzhi.
    pub xingzhi: Option<&'a Value>,
    /// type.
    pub zhuhu_type: Option<&'a Value>,
    /// choice (1 与业主绑定, 2 替换业主).
    pub choice: Option<i32>,
}

use super::service::enumeration;

/// The house-side fields of a 2.4.1 or 2.4.2 body (both name them alike).
macro_rules! house_fields {
    ($body:expr) => {
        HouseFields {
            house_id: $body.house_id,
            role: $body.role.as_ref(),
            status: $body.status.as_ref(),
            house_use: $body.r#use.as_ref(),
            xingzhi: $body.xingzhi.as_ref(),
            zhuhu_type: $body.r#type.as_ref(),
            choice: $body.choice.map(|c| c as i32),
        }
    };
}

impl CommunityService {
    /// The binding asked for, validated against the 前言 tables; 住户类型 defaults from the
    /// role (业主 → 业主, 租客 → 租户, else 其他), and may not contradict it: an owner is no
    /// 租户, a tenant no 业主 (a family member's type is theirs to say).
    fn binding_asked(&self, fields: &HouseFields<'_>) -> Result<NewBinding, CommunityError> {
        let role = enumeration("role", "居民角色", &ROLES, fields.role, "其他")?;
        let default_type = match role.as_str() {
            "业主" => "业主",
            "租客" => "租户",
            _ => "其他",
        };
        let zhuhu_type = enumeration("type", "住户类型", &ZHUHU_TYPES, fields.zhuhu_type, default_type)?;
        if matches!((role.as_str(), zhuhu_type.as_str()), ("业主", "租户") | ("租客", "业主")) {
            return Err(CommunityError::invalid(
                format!("居民角色为{role}时住户类型不能为{zhuhu_type}"),
                format!("role={role}与type={zhuhu_type}矛盾：业主的住户类型不能为租户，租客的不能为业主"),
            ));
        }
        Ok(NewBinding {
            house_id: fields.house_id,
            house_use: enumeration("use", "房屋用途", &USES, fields.house_use, "住宅")?,
            xingzhi: enumeration("xingzhi", "房屋性质", &XINGZHI, fields.xingzhi, "私有")?,
            house_status: enumeration("status", "房屋状态", &STATUSES, fields.status, "自用")?,
            zhuhu_type,
            role,
        })
    }

    /// The rules of owner consent (前言 审核类型, 2.2.2–2.2.3): with an owner on the house, a
    /// member or tenant (choice 1) needs the owner's verified code within 30 minutes, and a
    /// second owner must ask to replace (choice 2); without one, there is nobody to replace.
    async fn check_consent(&self, user: &User, at: &HouseAt, binding: &NewBinding, choice: Option<i32>) -> Result<(), CommunityError> {
        let owner = self.owner_phone(at).await?;
        let own_phones = [Some(user.phone.as_str()), user.verified_phone.as_deref()];
        if choice == Some(2) && binding.role != "业主" {
            return Err(CommunityError::invalid("替换业主时角色须为业主", "choice=2（替换业主）须以role=业主申请"));
        }
        match (owner, choice) {
            (None, Some(2)) => Err(CommunityError::invalid("该房屋尚未绑定业主，无需替换业主", "choice=2（替换业主）只能用于已有业主的房屋")),
            (None, _) => Ok(()),
            (Some(_), Some(2)) => Ok(()),
            (Some(phone), _) if own_phones.contains(&Some(phone.as_str())) => Ok(()),
            (Some(_), _) if binding.role == "业主" => Err(CommunityError::invalid(
                "该房屋已有业主，如需替换业主请选择替换业主",
                "已有业主的房屋不能再以业主身份绑定（choice=2为替换业主）",
            )),
            (Some(phone), _) => {
                let since = self.clock.now_ms() - CONSENT_WINDOW_MS;
                if self.db.household().owner_consent(&user.id, at.house.id, &phone, since).await? {
                    Ok(())
                } else {
                    Err(CommunityError::invalid(
                        "请先验证业主手机号",
                        "与业主绑定须先取得业主同意：2.2.2查询业主，1.1向业主发送yezhu验证码，2.2.3校验（30分钟内有效）",
                    ))
                }
            }
        }
    }

    async fn owner_phone(&self, at: &HouseAt) -> Result<Option<String>, CommunityError> {
        if let Some((_, person)) = self.db.household().owner_of(at.house.id).await? {
            return Ok(Some(person.phone));
        }
        Ok(self.owner_info(at).await?.map(|(phone, _)| phone))
    }

    /// The phone in a form: the account's own, or the one it verified (2.2.1).
    fn check_phone(user: &User, phone: &str) -> Result<(), CommunityError> {
        if phone == user.phone || user.verified_phone.as_deref() == Some(phone) {
            Ok(())
        } else {
            Err(CommunityError::invalid("手机号未验证", "表单中的手机号须为注册手机号或经2.2.1验证的手机号"))
        }
    }

    /// operationId `yibiaosanshi_submit` (002 §2.4.1): the account's own registration form,
    /// filed for review (the account becomes Shenheing until the 物业端 decides).
    pub async fn yibiaosanshi_submit(&self, who: &Principal, body: &YibiaosanshiSubmitRequest) -> Result<YibiaosanshiSubmitResponse, CommunityError> {
        let user = self.account(who).await?;
        let required = |value: &str, what: &str| -> Result<String, CommunityError> {
            let value = value.trim();
            if value.is_empty() {
                Err(CommunityError::Invalid(Told::same(format!("没有填写{what}"))))
            } else {
                Ok(value.to_owned())
            }
        };
        let name = required(&body.name, "姓名")?;
        let nation = required(&body.nation, "民族")?;
        let address = required(&body.address, "户籍地址")?;
        let job = required(&body.job, "职业")?;
        let company = required(&body.company, "工作单位")?;
        Self::check_phone(&user, body.phone.trim())?;
        let now = self.clock.now_ms();
        let idcard = IdNumber::parse(&body.idcard, crate::clock::beijing_date(now))
            .map_err(|_| CommunityError::invalid("身份证号不正确", "idcard不是有效的18位公民身份号码（校验位错误或出生日期无效）"))?;
        let photo_key = self
            .files
            .key_of_url(body.photo.trim())
            .filter(|key| key.starts_with("face-photo/") && key.contains(&format!("/{}-", user.id)))
            .ok_or_else(|| CommunityError::invalid("请重新上传人脸照片", "photo须为本账号通过2.3.1上传得到的地址"))?;
        // What the ID number says (GB 11643: digits 7–14 the birth date, the 17th odd for men)
        // the form must not contradict.
        let born = idcard.expose()[6..14].to_owned();
        if body.birth.is_some_and(|birth| birth.to_string() != born) {
            return Err(CommunityError::invalid("出生日期与身份证号不符", "birth须与身份证号中的出生日期一致"));
        }
        let male = idcard.expose().as_bytes()[16] % 2 == 1;
        if (body.sex.as_str() == "男") != male {
            return Err(CommunityError::invalid("性别与身份证号不符", "sex须与身份证号第17位所示的性别一致"));
        }
        let birth = born;
        let fields = house_fields!(body);
        let binding = self.binding_asked(&fields)?;
        let at = self.house_at(body.house_id).await?;
        self.check_consent(&user, &at, &binding, fields.choice).await?;
        let person = PersonData {
            name: name.clone(),
            phone: body.phone.trim().to_owned(),
            idcard_cipher: self.vault.encrypt(idcard.expose(), "community_person.idcard"),
            idcard_digest: self.vault.digest("community.idcard", idcard.expose()),
            sex: body.sex.as_str().to_owned(),
            birth: Some(birth),
            nation,
            address,
            zzmm: body.zzmm.as_str().to_owned(),
            tyjr: body.tyjr as i32,
            dibao: body.dibao as i32,
            shangfang: body.shangfang as i32,
            job: job.clone(),
            company: company.clone(),
            photo_key: Some(photo_key),
        };
        // The form is the account's own person: not someone else's record, and not a second
        // identity for an account on record (the reviewer's approval checks this again).
        if let Some(existing) = self.db.household().person_by_idcard(&person.idcard_digest).await? {
            if existing.user_id.as_deref().is_some_and(|owner| owner != user.id) {
                return Err(CommunityError::invalid("该身份证号已被其他账号登记", "idcard已属于其他小程序账号"));
            }
            if existing.user_id.is_none() && existing.phone != person.phone {
                return Err(CommunityError::invalid(
                    "该身份证号已登记，请使用登记的手机号办理",
                    "idcard已有人员登记，表单手机号须与登记的手机号一致",
                ));
            }
        }
        if let Some(mine) = self.db.household().person_of(&user.id).await?
            && mine.idcard_digest != person.idcard_digest
        {
            return Err(CommunityError::invalid(
                "您已录入一标三实信息，绑定更多房屋请使用绑定房屋",
                "账号已登记其他身份证号的人员信息（绑定更多房屋见2.4.2 house/bind）",
            ));
        }
        let kind = super::service::review_kind(&binding.role, &binding.zhuhu_type, fields.choice);
        let new = NewReview { user_id: user.id.clone(), kind: kind.into(), binding, choice: fields.choice, person_id: None, person, now };
        match self.db.household().submit(new).await? {
            Submitted::Filed(_) => self.db.household().use_consent(&user.id, body.house_id).await?,
            Submitted::Duplicate => return Err(CommunityError::Invalid(Told::same("该房屋已有待审核的申请，请勿重复提交"))),
            Submitted::AlreadyBound => return Err(CommunityError::Invalid(Told::same("您已绑定该房屋"))),
        }
        Ok(YibiaosanshiSubmitResponse {
            code: super::service::ok_code()?,
            msg: "已提交审核".into(),
            message: "已提交审核".into(),
            token_expired: super::service::live()?,
            shenhe_data: Some(vec![ShenheData {
                name,
                idcard: idcard.masked(),
                photo: body.photo.trim().to_owned(),
                phone: body.phone.trim().to_owned(),
                job,
                company,
            }]),
        })
    }

    /// operationId `house_bind` (002 §2.4.2): one more house for the account's person already on
    /// record — no personal data, the same review and consent rules.
    pub async fn house_bind(&self, who: &Principal, body: &HouseBindRequest) -> Result<HouseBindResponse, CommunityError> {
        let user = self.account(who).await?;
        let Some(person) = self.db.household().person_of(&user.id).await? else {
            return Err(CommunityError::invalid("请先录入一标三实信息", "账号还没有人员信息：请先提交2.4.1表单"));
        };
        let phone = body.phone.trim();
        if phone != person.phone {
            Self::check_phone(&user, phone)?;
        }
        let fields = house_fields!(body);
        let binding = self.binding_asked(&fields)?;
        let at = self.house_at(body.house_id).await?;
        if self.db.household().binding_on(at.house.id, person.id).await?.is_some() {
            return Err(CommunityError::conflict("您已绑定该房屋", "已绑定该房屋"));
        }
        self.check_consent(&user, &at, &binding, fields.choice).await?;
        let kind = super::service::review_kind(&binding.role, &binding.zhuhu_type, fields.choice);
        let data = person_data(&person);
        let new = NewReview {
            user_id: user.id.clone(),
            kind: kind.into(),
            binding,
            choice: fields.choice,
            person_id: Some(person.id),
            person: data,
            now: self.clock.now_ms(),
        };
        match self.db.household().submit(new).await? {
            Submitted::Filed(_) => self.db.household().use_consent(&user.id, body.house_id).await?,
            Submitted::Duplicate => return Err(CommunityError::conflict("该房屋已有待审核的申请，请勿重复提交", "已有待审核的申请")),
            Submitted::AlreadyBound => return Err(CommunityError::conflict("您已绑定该房屋", "已绑定该房屋")),
        }
        Ok(HouseBindResponse { code: super::service::ok_code()?, msg: "已提交审核".into(), message: "已提交审核".into(), token_expired: super::service::live()? })
    }

    /// The 物业端's decision on review `id` (the sandbox reviewer, `POST /_sandbox/shenhe/{id}`).
    pub async fn decide_review(&self, id: i64, approve: bool, reason: Option<&str>) -> Result<Decided, CommunityError> {
        let reason = if approve { None } else { Some(reason.filter(|r| !r.trim().is_empty()).unwrap_or("资料不符，请核对后重新提交")) };
        Ok(self.db.household().decide(id, approve, reason, self.clock.now_ms()).await?)
    }

    // ---- 3.1 lists -----------------------------------------------------------------------------

    /// operationId `user_house_list` (002 §3.1.1): the account's bound houses (审核通过, with the
    /// binding id for unbinding and the number of unactivated members), then its pending and
    /// refused reviews.
    pub async fn user_house_list(&self, who: &Principal) -> Result<UserHouseListResponse, CommunityError> {
        let user = self.account(who).await?;
        let household = self.db.household();
        let tree = self.db.community_tree();
        let mut data = Vec::new();
        if let Some(person) = household.person_of(&user.id).await? {
            for binding in household.bindings_of(person.id).await? {
                let Some(at) = tree.house(binding.house_id).await? else { continue };
                data.push(UserHouseListItem {
                    id: Some(binding.id),
                    house_id: Some(binding.house_id),
                    shenhe_id: None,
                    status: wire("审核通过")?,
                    introduction: at.introduction(),
                    action: None,
                    role: Some(wire(&binding.role)?),
                    role_name: Some(wire(&binding.role)?),
                    not_register: Some(household.unactivated_on(binding.house_id).await? as i32),
                });
            }
        }
        for review in household.open_reviews_of(&user.id).await? {
            let Some(at) = tree.house(review.house_id).await? else { continue };
            data.push(UserHouseListItem {
                id: None,
                house_id: None,
                shenhe_id: Some(review.id),
                status: wire(super::service::status_word(review.status))?,
                introduction: at.introduction(),
                action: Some(format!("{}正在申请：{}", review.role, review.kind)),
                role: None,
                role_name: None,
                not_register: None,
            });
        }
        Ok(UserHouseListResponse {
            code: super::service::ok_code()?,
            token_expired: super::service::live()?,
            msg: "成功获取用户一标三实列表".into(),
            data,
            message: "成功获取用户一标三实列表".into(),
        })
    }

    /// The caller's person and binding on a house, or 404: only members see a house.
    async fn membership(&self, user: &User, house_id: i64) -> Result<(Person, Binding), CommunityError> {
        let household = self.db.household();
        let not_found = || CommunityError::not_found("未查找到房屋信息", "您没有绑定该房屋");
        let person = household.person_of(&user.id).await?.ok_or_else(not_found)?;
        let binding = household.binding_on(house_id, person.id).await?.ok_or_else(not_found)?;
        Ok((person, binding))
    }

    /// operationId `house_get` (002 §3.1.2): a house the caller is bound to: its members (the
    /// grant button each shows to the owner), activated or not, and its open reviews.
    pub async fn house_get(&self, who: &Principal, house_id: i64) -> Result<HouseGetResponse, CommunityError> {
        let user = self.account(who).await?;
        let (_, mine) = self.membership(&user, house_id).await?;
        let at = self.house_at(house_id).await?;
        let household = self.db.household();
        let mut yibangding = Vec::new();
        let mut yijihuo = Vec::new();
        let mut weijihuo = Vec::new();
        for (binding, person) in household.members(house_id).await? {
            let shouquan = if binding.role == "业主" {
                "管理员"
            } else if person.user_id.is_none() {
                "邀请激活"
            } else if binding.shouquan {
                "禁用管理"
            } else {
                "授权管理"
            };
            let member = HouseMember { shouquan: wire(shouquan)?, id: Some(binding.id), name: person.name.clone(), role: wire(&binding.role)? };
            if person.user_id.is_some() {
                yijihuo.push(member.clone());
            } else {
                weijihuo.push(member.clone());
            }
            yibangding.push(member);
        }
        let mut weibangding = Vec::new();
        for review in household.open_reviews_on(house_id).await? {
            weibangding.push(HouseShenheItem {
                id: review.id,
                introduction: at.introduction(),
                action: format!("{}正在申请：{}", review.role, review.kind),
                status: wire(if review.status == ReviewStatus::Pending as i32 { "待审核" } else { "未通过" })?,
                r#type: wire(&review.kind)?,
            });
        }
        Ok(HouseGetResponse {
            code: super::service::ok_code()?,
            token_expired: super::service::live()?,
            msg: "成功获取房屋信息".into(),
            data: HouseDetail {
                introduction: at.introduction(),
                house_type: wire(&at.house.house_type)?,
                r#use: wire(&mine.house_use)?,
                xingzhi: wire(&mine.xingzhi)?,
                status: wire(&mine.house_status)?,
                zhuhuleixing: wire(&mine.zhuhu_type)?,
                yibangding,
                weibangding,
                yijihuo,
                weijihuo,
            },
            message: "成功获取房屋信息".into(),
        })
    }

    async fn own_review(&self, user: &User, id: i64) -> Result<Review, CommunityError> {
        self.db
            .household()
            .review(id)
            .await?
            .filter(|r| r.user_id == user.id)
            .ok_or_else(|| CommunityError::not_found("未查找到审核信息", "未查找到审核信息。message编码Yi1815"))
    }

    /// operationId `shenhe_get` (002 §3.1.3): one of the caller's reviews, the ID number masked,
    /// the photo as a fresh signed URL.
    pub async fn shenhe_get(&self, who: &Principal, id: i64) -> Result<ShenheGetResponse, CommunityError> {
        let user = self.account(who).await?;
        let review = self.own_review(&user, id).await?;
        let at = self.house_at(review.house_id).await?;
        let flag = |v: i32| if v == 1 { "1" } else { "0" };
        let photo = review.photo_key.as_deref().map(|key| self.files.signed_url(key, self.clock.now_ms())).unwrap_or_default();
        Ok(ShenheGetResponse {
            code: super::service::ok_code()?,
            token_expired: super::service::live()?,
            msg: "成功获取用户审核信息".into(),
            data: ShenheDetail {
                shenhe_type: Some(wire(&review.kind)?),
                shenhe_status: wire(review.status)?,
                shenhe_action_introduction: format!("{}正在申请：{}", review.role, review.kind),
                shenhe_house_introduction: at.introduction(),
                shenhe_refuse_reason: Some(review.refuse_reason.clone().unwrap_or_default()),
                name: review.name.clone(),
                sex: wire(&review.sex)?,
                birth: review.birth.clone().unwrap_or_default(),
                nation: review.nation.clone(),
                address: review.address.clone(),
                idcard: self.masked_idcard(&review.idcard_cipher),
                photo,
                zhengzhimianmao: review.zzmm.clone(),
                tuiyijunren: wire(flag(review.tyjr))?,
                shangfang: wire(flag(review.shangfang))?,
                dibao: wire(flag(review.dibao))?,
                job: review.job.clone(),
                company: review.company.clone(),
                house_role: Some(wire(&review.role)?),
                r#use: Some(wire(&review.house_use)?),
                xingzhi: wire(&review.xingzhi)?,
                house_status: wire(&review.house_status)?,
                zhuhuleixing: wire(&review.zhuhu_type)?,
            },
            message: "成功获取审核信息".into(),
        })
    }

    /// operationId `shenhe_delete` (002 §3.1.4): withdraw one of the caller's reviews while it
    /// is pending or refused.
    pub async fn shenhe_delete(&self, who: &Principal, id: i64) -> Result<ShenheDeleteResponse, CommunityError> {
        let user = self.account(who).await?;
        if !self.db.household().delete_review(&user.id, id).await? {
            return Err(CommunityError::invalid("删除失败", "审核删除失败,message编程1879"));
        }
        Ok(ShenheDeleteResponse { code: super::service::ok_code()?, token_expired: super::service::live()?, msg: "删除成功".into(), message: "删除成功".into() })
    }

    // ---- 3.2 grants ----------------------------------------------------------------------------

    /// A binding the caller (the house's owner) may change: not the owner's own.
    async fn managed_binding(&self, user: &User, binding_id: i64) -> Result<Binding, CommunityError> {
        let household = self.db.household();
        let target = household
            .binding(binding_id)
            .await?
            .ok_or_else(|| CommunityError::invalid("未查找到该家庭成员", format!("没有id为{binding_id}的人员房屋绑定")))?;
        let (person, mine) = self.membership(user, target.house_id).await.map_err(|_| {
            CommunityError::invalid("只有业主可以修改家庭成员的权限", "您没有绑定该房屋")
        })?;
        if mine.role != "业主" {
            return Err(CommunityError::invalid("只有业主可以修改家庭成员的权限", "只有该房屋的业主可以授权或禁用家庭成员"));
        }
        if target.person_id == person.id {
            return Err(CommunityError::invalid("不能修改自己的权限", "业主不能修改自己的权限"));
        }
        Ok(target)
    }

    /// operationId `house_shouquan_update` (002 §3.2.1): the owner flips a member's right to
    /// manage; answers the button's new label (the opposite of the new right).
    pub async fn house_shouquan_update(&self, who: &Principal, binding_id: i64) -> Result<HouseShouquanUpdateResponse, CommunityError> {
        self.flip_grant(who, binding_id, false).await
    }

    /// operationId `house_charge_update` (002 §3.2.3): the owner flips a member's right to pay
    /// and see bills; answers the button's new label.
    pub async fn house_charge_update(&self, who: &Principal, binding_id: i64) -> Result<HouseChargeUpdateResponse, CommunityError> {
        self.flip_grant(who, binding_id, true).await
    }

    /// Flip a member's grant (`charge`: pay and see bills; else manage) and answer as 3.2.1 /
    /// 3.2.3 do: the same fields, the label the button now shows.
    async fn flip_grant<T: serde::de::DeserializeOwned>(&self, who: &Principal, binding_id: i64, charge: bool) -> Result<T, CommunityError> {
        let user = self.account(who).await?;
        self.managed_binding(&user, binding_id).await?;
        let granted = self
            .db
            .household()
            .toggle(binding_id, charge)
            .await?
            .ok_or_else(|| CommunityError::invalid("未查找到该家庭成员", "绑定已被解除"))?;
        let (column, what) = if charge { ("people_house_charge", "支付") } else { ("people_house_shouquan", "管理") };
        let label = if granted { format!("禁止{what}") } else { format!("授权{what}") };
        wire(serde_json::json!({
            "code": 0,
            "token_expired": 1,
            "msg": "修改成功",
            "data": label,
            "message": format!("已经把该家庭成员的{column}改为了{}，0为禁止{what}，1为授权{what}", u8::from(granted)),
        }))
    }

    /// operationId `house_unbind` (002 §3.2.2): the owner removes a member, or a member leaves;
    /// the owner cannot leave their own house (替换业主 is the 物业端's).
    pub async fn house_unbind(&self, who: &Principal, binding_id: i64) -> Result<HouseUnbindResponse, CommunityError> {
        let user = self.account(who).await?;
        let household = self.db.household();
        let target = household
            .binding(binding_id)
            .await?
            .ok_or_else(|| CommunityError::invalid("未查找到该绑定", format!("没有id为{binding_id}的人员房屋绑定")))?;
        let (person, mine) = self
            .membership(&user, target.house_id)
            .await
            .map_err(|_| CommunityError::invalid("无权解绑", "您没有绑定该房屋"))?;
        let own = target.person_id == person.id;
        if target.role == "业主" && !own {
            return Err(CommunityError::invalid("不能解绑业主", "业主的绑定只能由物业端办理替换业主"));
        }
        if own && mine.role == "业主" {
            return Err(CommunityError::invalid("业主不能解绑自己，请联系物业办理替换业主", "业主解绑须由物业端办理"));
        }
        if !own && mine.role != "业主" {
            return Err(CommunityError::invalid("只有业主可以解绑家庭成员", "只能解绑自己，或由业主解绑家庭成员"));
        }
        if !household.unbind(binding_id).await? {
            return Err(CommunityError::invalid("未查找到该绑定", "绑定已被解除"));
        }
        Ok(HouseUnbindResponse { code: super::service::ok_code()?, token_expired: super::service::live()?, msg: "解绑成功".into(), message: "删除成功".into() })
    }

    fn masked_idcard(&self, cipher: &str) -> String {
        match self.vault.decrypt(cipher, "community_person.idcard") {
            Ok(plain) => crate::pii::mask_id_number(&plain),
            Err(_) => "******".into(),
        }
    }
}
