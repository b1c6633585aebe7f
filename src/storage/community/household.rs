//! People (实有人口), their bindings to houses (人员房屋绑定), the reviews (审核) that create
//! bindings, and the owner lookups that carry an owner's consent (002 §2.2–§3.2).

use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, Set, TransactionTrait,
};

use super::entity::{binding, owner_check, person, review, user};
use super::{Binding, Person, Review};
use crate::storage::{StorageError, affected, is_unique_violation, write};

/// 审核状态 (002 前言): 0 审核未通过, 1 审核通过, 2 等待审核.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewStatus {
    /// 0: refused, with a reason.
    Rejected = 0,
    /// 1: approved; the binding exists.
    Approved = 1,
    /// 2: waiting for the 物业端.
    Pending = 2,
}

/// A person's own data as a form or the security platform gives it. `idcard_cipher` and
/// `idcard_digest` are the ID number sealed and blind-indexed by the service's vault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonData {
    /// 姓名.
    pub name: String,
    /// 手机号 (11 digits).
    pub phone: String,
    /// The ID number, encrypted.
    pub idcard_cipher: String,
    /// The ID number's keyed digest (lookups, uniqueness).
    pub idcard_digest: String,
    /// 男 / 女.
    pub sex: String,
    /// YYYYMMDD, when known.
    pub birth: Option<String>,
    /// 民族.
    pub nation: String,
    /// 户籍地址.
    pub address: String,
    /// 政治面貌: 群众 / 党员.
    pub zzmm: String,
    /// 退役军人 0/1.
    pub tyjr: i32,
    /// 低保 0/1.
    pub dibao: i32,
    /// 上访记录 0/1.
    pub shangfang: i32,
    /// 职业.
    pub job: String,
    /// 工作单位.
    pub company: String,
    /// The face photo's object key.
    pub photo_key: Option<String>,
}

/// How a person lives in a house (the 前言 enumerations, as Chinese names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBinding {
    /// The house.
    pub house_id: i64,
    /// 居民角色.
    pub role: String,
    /// 房屋用途.
    pub house_use: String,
    /// 房屋性质.
    pub xingzhi: String,
    /// 房屋状态.
    pub house_status: String,
    /// 住户类型.
    pub zhuhu_type: String,
}

/// What [`Household::claim_owner_lookup`] took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupClaim {
    /// The house was looked up within the day already: no new lookup is counted.
    Again,
    /// A lookup of the day was taken.
    Taken,
    /// The account has looked up its houses for the day: nothing written.
    Refused,
}

/// A form to review.
#[derive(Debug, Clone)]
pub struct NewReview {
    /// The submitting account.
    pub user_id: String,
    /// 审核类型: 业主绑定 / 租客绑定 / 家属绑定 / 替换业主.
    pub kind: String,
    /// The binding asked for.
    pub binding: NewBinding,
    /// 1 与业主绑定, 2 替换业主.
    pub choice: Option<i32>,
    /// The person already on record (2.4.2 house/bind), else `None` (2.4.1: `person`).
    pub person_id: Option<i64>,
    /// The person's data as submitted (2.4.2: copied from the record).
    pub person: PersonData,
    /// Now, ms.
    pub now: i64,
}

/// What submitting did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// Filed under this id, pending.
    Filed(i64),
    /// The account already has a pending review for this house.
    Duplicate,
    /// The person is already bound to the house.
    AlreadyBound,
}

/// What auto-binding from the security platform did (2.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutoBind {
    /// The person is now the account's, with this many bindings created.
    Bound(usize),
    /// The account already has its person: nothing written.
    AlreadyRegistered,
    /// The platform's person (by ID number) belongs to another account: nothing written.
    OtherAccount,
}

/// What deciding a review did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decided {
    /// Decided now (approved: the binding exists).
    Done(ReviewStatus),
    /// Not pending (decided before, or deleted): nothing changed.
    NotPending,
    /// The approval cannot apply (the house has an owner and the review is no 替换业主):
    /// nothing changed, the review still waits.
    Conflict(&'static str),
}

/// `community_person`, `community_binding`, `community_review`, `community_owner_check`.
#[derive(Debug, Clone, Copy)]
pub struct Household<'c, C>(pub &'c C);

fn person_row(data: PersonData, user_id: Option<String>, now: i64) -> person::ActiveModel {
    person::ActiveModel {
        id: sea_orm::NotSet,
        name: Set(data.name),
        phone: Set(data.phone),
        idcard_cipher: Set(data.idcard_cipher),
        idcard_digest: Set(data.idcard_digest),
        sex: Set(data.sex),
        birth: Set(data.birth),
        nation: Set(data.nation),
        address: Set(data.address),
        zzmm: Set(data.zzmm),
        tyjr: Set(data.tyjr),
        dibao: Set(data.dibao),
        shangfang: Set(data.shangfang),
        job: Set(data.job),
        company: Set(data.company),
        photo_key: Set(data.photo_key),
        user_id: Set(user_id),
        created_at: Set(now),
        updated_at: Set(now),
    }
}

/// The person data a review or a person record holds (the same columns in both tables).
macro_rules! person_data_of {
    ($row:expr) => {{
        let row = $row;
        PersonData {
            name: row.name.clone(),
            phone: row.phone.clone(),
            idcard_cipher: row.idcard_cipher.clone(),
            idcard_digest: row.idcard_digest.clone(),
            sex: row.sex.clone(),
            birth: row.birth.clone(),
            nation: row.nation.clone(),
            address: row.address.clone(),
            zzmm: row.zzmm.clone(),
            tyjr: row.tyjr,
            dibao: row.dibao,
            shangfang: row.shangfang,
            job: row.job.clone(),
            company: row.company.clone(),
            photo_key: row.photo_key.clone(),
        }
    }};
}

/// The person data a review holds.
pub fn review_person(row: &Review) -> PersonData {
    person_data_of!(row)
}

/// The person data a person record holds.
pub fn person_data(row: &Person) -> PersonData {
    person_data_of!(row)
}

/// Insert a binding unless the person already has one on the house; true when inserted. The
/// owner (业主) manages and pays (管理员); members start with neither. A second owner of a house
/// is refused by the unique `owner_of` (a [`StorageError::Db`] unique violation).
async fn bind<C: ConnectionTrait>(
    conn: &C,
    person_id: i64,
    new: &NewBinding,
    now: i64,
) -> Result<bool, StorageError> {
    let owner = new.role == "业主";
    let inserted = binding::Entity::insert(binding::ActiveModel {
        id: sea_orm::NotSet,
        house_id: Set(new.house_id),
        person_id: Set(person_id),
        role: Set(new.role.clone()),
        house_use: Set(new.house_use.clone()),
        xingzhi: Set(new.xingzhi.clone()),
        house_status: Set(new.house_status.clone()),
        zhuhu_type: Set(new.zhuhu_type.clone()),
        shouquan: Set(owner),
        charge: Set(owner),
        owner_of: Set(owner.then_some(new.house_id)),
        created_at: Set(now),
    })
    .on_conflict(
        OnConflict::columns([binding::Column::HouseId, binding::Column::PersonId])
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(inserted > 0)
}

impl<C: ConnectionTrait + TransactionTrait<Transaction = DatabaseTransaction>> Household<'_, C> {
    /// The person of account `user_id` (activated), if any.
    pub async fn person_of(&self, user_id: &str) -> Result<Option<Person>, StorageError> {
        Ok(person::Entity::find().filter(person::Column::UserId.eq(user_id)).one(self.0).await?)
    }

    /// Person `id`.
    pub async fn person(&self, id: i64) -> Result<Option<Person>, StorageError> {
        Ok(person::Entity::find_by_id(id).one(self.0).await?)
    }

    /// The person with this ID-number digest.
    pub async fn person_by_idcard(&self, digest: &str) -> Result<Option<Person>, StorageError> {
        Ok(person::Entity::find().filter(person::Column::IdcardDigest.eq(digest)).one(self.0).await?)
    }

    /// Bindings of person `person_id`.
    pub async fn bindings_of(&self, person_id: i64) -> Result<Vec<Binding>, StorageError> {
        Ok(binding::Entity::find()
            .filter(binding::Column::PersonId.eq(person_id))
            .order_by_asc(binding::Column::Id)
            .all(self.0)
            .await?)
    }

    /// Binding `id`.
    pub async fn binding(&self, id: i64) -> Result<Option<Binding>, StorageError> {
        Ok(binding::Entity::find_by_id(id).one(self.0).await?)
    }

    /// The binding of `person_id` on `house_id`.
    pub async fn binding_on(&self, house_id: i64, person_id: i64) -> Result<Option<Binding>, StorageError> {
        Ok(binding::Entity::find()
            .filter(binding::Column::HouseId.eq(house_id))
            .filter(binding::Column::PersonId.eq(person_id))
            .one(self.0)
            .await?)
    }

    /// Everyone bound to `house_id`, with their person, oldest binding first.
    pub async fn members(&self, house_id: i64) -> Result<Vec<(Binding, Person)>, StorageError> {
        let bindings = binding::Entity::find()
            .filter(binding::Column::HouseId.eq(house_id))
            .order_by_asc(binding::Column::Id)
            .all(self.0)
            .await?;
        let ids: Vec<i64> = bindings.iter().map(|b| b.person_id).collect();
        let people = person::Entity::find().filter(person::Column::Id.is_in(ids)).all(self.0).await?;
        Ok(bindings
            .into_iter()
            .filter_map(|b| people.iter().find(|p| p.id == b.person_id).cloned().map(|p| (b, p)))
            .collect())
    }

    /// People bound to `house_id` without an account (未激活).
    pub async fn unactivated_on(&self, house_id: i64) -> Result<u64, StorageError> {
        let ids: Vec<i64> = binding::Entity::find()
            .filter(binding::Column::HouseId.eq(house_id))
            .all(self.0)
            .await?
            .into_iter()
            .map(|b| b.person_id)
            .collect();
        Ok(person::Entity::find()
            .filter(person::Column::Id.is_in(ids))
            .filter(person::Column::UserId.is_null())
            .count(self.0)
            .await?)
    }

    /// The owner (居民角色 业主) bound to `house_id`, with the binding.
    pub async fn owner_of(&self, house_id: i64) -> Result<Option<(Binding, Person)>, StorageError> {
        Ok(self.members(house_id).await?.into_iter().find(|(b, _)| b.role == "业主"))
    }

    /// operationId `security_phone_verify`: make the platform's person account `user_id`'s and
    /// bind it to `bindings`, in one transaction: an existing record of the same ID number
    /// without an account is activated (a family member registering), one with another
    /// account refused.
    pub async fn auto_bind(
        &self,
        user_id: &str,
        data: PersonData,
        bindings: &[NewBinding],
        now: i64,
    ) -> Result<AutoBind, StorageError> {
        let tx = write(self.0).await?;
        if person::Entity::find().filter(person::Column::UserId.eq(user_id)).one(&tx).await?.is_some() {
            tx.rollback().await?;
            return Ok(AutoBind::AlreadyRegistered);
        }
        let person_id = match person::Entity::find()
            .filter(person::Column::IdcardDigest.eq(&data.idcard_digest))
            .one(&tx)
            .await?
        {
            Some(existing) if existing.user_id.is_some() => {
                tx.rollback().await?;
                return Ok(AutoBind::OtherAccount);
            }
            Some(existing) => {
                let claimed = person::Entity::update_many()
                    .col_expr(person::Column::UserId, Expr::value(user_id))
                    .col_expr(person::Column::UpdatedAt, Expr::value(now))
                    .filter(person::Column::Id.eq(existing.id))
                    .filter(person::Column::UserId.is_null())
                    .exec(&tx)
                    .await?;
                if !affected(claimed) {
                    tx.rollback().await?;
                    return Ok(AutoBind::OtherAccount);
                }
                existing.id
            }
            None => match person::Entity::insert(person_row(data, Some(user_id.to_owned()), now))
                .exec(&tx)
                .await
            {
                Ok(inserted) => inserted.last_insert_id,
                Err(error) if is_unique_violation(&error) => {
                    tx.rollback().await?;
                    return Ok(AutoBind::AlreadyRegistered);
                }
                Err(error) => return Err(error.into()),
            },
        };
        let mut created = 0;
        for new in bindings {
            // The platform may name an owner where this server already has one: the binding
            // that would make a second owner is left for the 物业端 to sort out.
            if new.role == "业主" && Household(&tx).owner_of(new.house_id).await?.is_some() {
                continue;
            }
            if bind(&tx, person_id, new, now).await? {
                created += 1;
            }
        }
        tx.commit().await?;
        Ok(AutoBind::Bound(created))
    }

    /// Remember that `user_id` looked up `house_id`'s owner, reached at `owner_phone` (2.2.2);
    /// an earlier verification of that house is forgotten when the owner changed.
    pub async fn record_owner_check(
        &self,
        user_id: &str,
        house_id: i64,
        owner_phone: &str,
        now: i64,
    ) -> Result<(), StorageError> {
        // Looking the same owner up again (re-selecting the house) keeps a consent given.
        let again = owner_check::Entity::update_many()
            .col_expr(owner_check::Column::LookedUpAt, Expr::value(now))
            .filter(owner_check::Column::UserId.eq(user_id))
            .filter(owner_check::Column::HouseId.eq(house_id))
            .filter(owner_check::Column::OwnerPhone.eq(owner_phone))
            .exec(self.0)
            .await?;
        if affected(again) {
            return Ok(());
        }
        owner_check::Entity::insert(owner_check::ActiveModel {
            user_id: Set(user_id.to_owned()),
            house_id: Set(house_id),
            owner_phone: Set(owner_phone.to_owned()),
            looked_up_at: Set(now),
            verified_at: Set(None),
        })
        .on_conflict(
            OnConflict::columns([owner_check::Column::UserId, owner_check::Column::HouseId])
                .update_columns([
                    owner_check::Column::OwnerPhone,
                    owner_check::Column::LookedUpAt,
                    owner_check::Column::VerifiedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(self.0)
        .await?;
        Ok(())
    }

    /// operationId `security_owner_get`: take one of `user_id`'s owner lookups of the day for
    /// `house_id` before the security platform is asked — a conditional write under the user's
    /// row lock, so of any number of concurrent lookups (on any instances) no more than
    /// `per_day` distinct houses looked up since `since` (ms) get through. A house already
    /// looked up since then is [`LookupClaim::Again`] (free); at the cap, [`LookupClaim::Refused`]
    /// (nothing written). Otherwise the house's row is written as looked up at `now` with no
    /// owner known yet ([`LookupClaim::Taken`]; [`Household::record_owner_check`] completes it):
    /// an older row's owner phone and consent go, as a consent counts for 30 minutes only and
    /// no code may go to a phone the platform has not just confirmed.
    pub async fn claim_owner_lookup(&self, user_id: &str, house_id: i64, since: i64, now: i64, per_day: usize) -> Result<LookupClaim, StorageError> {
        let tx = write(self.0).await?;
        // Taken before counting: PostgreSQL's READ COMMITTED reads what committed before each
        // statement, so a concurrent claim of this user's has committed, or waits behind this
        // lock, by the time the count runs (SQLite's write transaction holds the whole file).
        user::Entity::update_many()
            .col_expr(user::Column::UpdatedAt, Expr::col(user::Column::UpdatedAt))
            .filter(user::Column::Id.eq(user_id))
            .exec(&tx)
            .await?;
        let looked_up = Household(&tx).owner_lookups(user_id, since).await?;
        if looked_up.contains(&house_id) {
            tx.rollback().await?;
            return Ok(LookupClaim::Again);
        }
        if looked_up.len() >= per_day {
            tx.rollback().await?;
            return Ok(LookupClaim::Refused);
        }
        owner_check::Entity::insert(owner_check::ActiveModel {
            user_id: Set(user_id.to_owned()),
            house_id: Set(house_id),
            owner_phone: Set(String::new()),
            looked_up_at: Set(now),
            verified_at: Set(None),
        })
        .on_conflict(
            OnConflict::columns([owner_check::Column::UserId, owner_check::Column::HouseId])
                .update_columns([owner_check::Column::OwnerPhone, owner_check::Column::LookedUpAt, owner_check::Column::VerifiedAt])
                .to_owned(),
        )
        .exec_without_returning(&tx)
        .await?;
        tx.commit().await?;
        Ok(LookupClaim::Taken)
    }

    /// Give back a [`LookupClaim::Taken`] lookup the security platform could not answer: its
    /// row goes, unless a later lookup of the house completed or took it again meanwhile.
    pub async fn release_owner_lookup(&self, user_id: &str, house_id: i64, claimed_at: i64) -> Result<(), StorageError> {
        owner_check::Entity::delete_many()
            .filter(owner_check::Column::UserId.eq(user_id))
            .filter(owner_check::Column::HouseId.eq(house_id))
            .filter(owner_check::Column::OwnerPhone.eq(""))
            .filter(owner_check::Column::LookedUpAt.eq(claimed_at))
            .exec(self.0)
            .await?;
        Ok(())
    }

    /// The houses whose owner `user_id` looked up since `since`.
    pub async fn owner_lookups(&self, user_id: &str, since: i64) -> Result<Vec<i64>, StorageError> {
        Ok(owner_check::Entity::find()
            .filter(owner_check::Column::UserId.eq(user_id))
            .filter(owner_check::Column::LookedUpAt.gte(since))
            .all(self.0)
            .await?
            .into_iter()
            .map(|row| row.house_id)
            .collect())
    }

    /// Whether `user_id` looked up an owner reached at `phone` since `since` (a yezhu code
    /// goes only to such a phone).
    pub async fn owner_looked_up(&self, user_id: &str, phone: &str, since: i64) -> Result<bool, StorageError> {
        Ok(owner_check::Entity::find()
            .filter(owner_check::Column::UserId.eq(user_id))
            .filter(owner_check::Column::OwnerPhone.eq(phone))
            .filter(owner_check::Column::LookedUpAt.gte(since))
            .count(self.0)
            .await?
            > 0)
    }

    /// operationId `security_owner_verify`: the owner reached at `phone` confirmed (their code
    /// checked): every house `user_id` looked that owner up for since `since` is consented.
    /// True when any was.
    pub async fn owner_verified(
        &self,
        user_id: &str,
        phone: &str,
        since: i64,
        now: i64,
    ) -> Result<bool, StorageError> {
        let result = owner_check::Entity::update_many()
            .col_expr(owner_check::Column::VerifiedAt, Expr::value(now))
            .filter(owner_check::Column::UserId.eq(user_id))
            .filter(owner_check::Column::OwnerPhone.eq(phone))
            .filter(owner_check::Column::LookedUpAt.gte(since))
            .exec(self.0)
            .await?;
        Ok(affected(result))
    }

    /// Whether `user_id` holds the consent of `house_id`'s owner reached at `owner_phone`
    /// (the owner now: a former owner's consent does not count), verified since `since`.
    pub async fn owner_consent(&self, user_id: &str, house_id: i64, owner_phone: &str, since: i64) -> Result<bool, StorageError> {
        Ok(owner_check::Entity::find()
            .filter(owner_check::Column::UserId.eq(user_id))
            .filter(owner_check::Column::HouseId.eq(house_id))
            .filter(owner_check::Column::OwnerPhone.eq(owner_phone))
            .filter(owner_check::Column::VerifiedAt.gte(since))
            .count(self.0)
            .await?
            > 0)
    }

    /// The owner's consent of `user_id` for `house_id` is used up (a submission took it).
    pub async fn use_consent(&self, user_id: &str, house_id: i64) -> Result<(), StorageError> {
        owner_check::Entity::update_many()
            .col_expr(owner_check::Column::VerifiedAt, Expr::value(Option::<i64>::None))
            .filter(owner_check::Column::UserId.eq(user_id))
            .filter(owner_check::Column::HouseId.eq(house_id))
            .exec(self.0)
            .await?;
        Ok(())
    }

    /// operationId `yibiaosanshi_submit` / `house_bind`: file a review, pending. One pending
    /// review per account and house (a unique key, so concurrent submits file one).
    pub async fn submit(&self, new: NewReview) -> Result<Submitted, StorageError> {
        let tx = write(self.0).await?;
        let bound_person = match new.person_id {
            Some(id) => Some(id),
            None => person::Entity::find()
                .filter(person::Column::IdcardDigest.eq(&new.person.idcard_digest))
                .one(&tx)
                .await?
                .map(|p| p.id),
        };
        if let Some(person_id) = bound_person {
            let bound = binding::Entity::find()
                .filter(binding::Column::HouseId.eq(new.binding.house_id))
                .filter(binding::Column::PersonId.eq(person_id))
                .count(&tx)
                .await?;
            if bound > 0 {
                tx.rollback().await?;
                return Ok(Submitted::AlreadyBound);
            }
        }
        let p = new.person;
        let row = review::ActiveModel {
            id: sea_orm::NotSet,
            user_id: Set(new.user_id.clone()),
            house_id: Set(new.binding.house_id),
            kind: Set(new.kind),
            status: Set(ReviewStatus::Pending as i32),
            refuse_reason: Set(None),
            person_id: Set(new.person_id),
            choice: Set(new.choice),
            role: Set(new.binding.role),
            house_use: Set(new.binding.house_use),
            xingzhi: Set(new.binding.xingzhi),
            house_status: Set(new.binding.house_status),
            zhuhu_type: Set(new.binding.zhuhu_type),
            name: Set(p.name),
            phone: Set(p.phone),
            idcard_cipher: Set(p.idcard_cipher),
            idcard_digest: Set(p.idcard_digest),
            sex: Set(p.sex),
            birth: Set(p.birth),
            nation: Set(p.nation),
            address: Set(p.address),
            zzmm: Set(p.zzmm),
            tyjr: Set(p.tyjr),
            dibao: Set(p.dibao),
            shangfang: Set(p.shangfang),
            job: Set(p.job),
            company: Set(p.company),
            photo_key: Set(p.photo_key),
            pending_key: Set(Some(format!("{}:{}", new.user_id, new.binding.house_id))),
            created_at: Set(new.now),
            decided_at: Set(None),
        };
        match review::Entity::insert(row).exec(&tx).await {
            Ok(inserted) => {
                tx.commit().await?;
                Ok(Submitted::Filed(inserted.last_insert_id))
            }
            Err(error) if is_unique_violation(&error) => {
                tx.rollback().await?;
                Ok(Submitted::Duplicate)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Review `id`.
    pub async fn review(&self, id: i64) -> Result<Option<Review>, StorageError> {
        Ok(review::Entity::find_by_id(id).one(self.0).await?)
    }

    /// The reviews of account `user_id` still pending or refused, newest first.
    pub async fn open_reviews_of(&self, user_id: &str) -> Result<Vec<Review>, StorageError> {
        Ok(review::Entity::find()
            .filter(review::Column::UserId.eq(user_id))
            .filter(review::Column::Status.ne(ReviewStatus::Approved as i32))
            .order_by_desc(review::Column::Id)
            .all(self.0)
            .await?)
    }

    /// The reviews of house `house_id` still pending or refused, newest first.
    pub async fn open_reviews_on(&self, house_id: i64) -> Result<Vec<Review>, StorageError> {
        Ok(review::Entity::find()
            .filter(review::Column::HouseId.eq(house_id))
            .filter(review::Column::Status.ne(ReviewStatus::Approved as i32))
            .order_by_desc(review::Column::Id)
            .all(self.0)
            .await?)
    }

    /// Whether account `user_id` has a pending review.
    pub async fn has_pending(&self, user_id: &str) -> Result<bool, StorageError> {
        Ok(review::Entity::find()
            .filter(review::Column::UserId.eq(user_id))
            .filter(review::Column::Status.eq(ReviewStatus::Pending as i32))
            .count(self.0)
            .await?
            > 0)
    }

    /// operationId `shenhe_delete`: delete `user_id`'s review `id` while it is pending or
    /// refused (an approved one is history). True when deleted; a review being approved at the
    /// same moment is either deleted or approved, never both.
    pub async fn delete_review(&self, user_id: &str, id: i64) -> Result<bool, StorageError> {
        let result = review::Entity::delete_many()
            .filter(review::Column::Id.eq(id))
            .filter(review::Column::UserId.eq(user_id))
            .filter(review::Column::Status.ne(ReviewStatus::Approved as i32))
            .exec(self.0)
            .await?;
        Ok(result.rows_affected > 0)
    }

    /// The 物业端's decision on review `id`, in one transaction: pending → refused with
    /// `reason`, or pending → approved with the binding created (the submitter's person
    /// created, or activated when the ID number is on record without an account); 替换业主 first
    /// ends the current owner's binding.
    pub async fn decide(
        &self,
        id: i64,
        approve: bool,
        reason: Option<&str>,
        now: i64,
    ) -> Result<Decided, StorageError> {
        let tx = write(self.0).await?;
        let status = if approve { ReviewStatus::Approved } else { ReviewStatus::Rejected };
        let claimed = review::Entity::update_many()
            .col_expr(review::Column::Status, Expr::value(status as i32))
            .col_expr(review::Column::RefuseReason, Expr::value(reason.map(str::to_owned)))
            .col_expr(review::Column::PendingKey, Expr::value(Option::<String>::None))
            .col_expr(review::Column::DecidedAt, Expr::value(now))
            .filter(review::Column::Id.eq(id))
            .filter(review::Column::Status.eq(ReviewStatus::Pending as i32))
            .exec(&tx)
            .await?;
        if !affected(claimed) {
            tx.rollback().await?;
            return Ok(Decided::NotPending);
        }
        if approve {
            let row = review::Entity::find_by_id(id)
                .one(&tx)
                .await?
                .ok_or_else(|| StorageError::Corrupt(format!("review {id} vanished")))?;
            let person_id = match self.person_for(&tx, &row, now).await? {
                Ok(id) => id,
                Err(why) => {
                    tx.rollback().await?;
                    return Ok(Decided::Conflict(why));
                }
            };
            // The owner a form was filed under must still be the owner (an owner binding's
            // `created_at` is when its person became the owner). A member's form filed while
            // the house had another owner, or none, has no consent of the owner now (2.4.1's
            // rule: a member of an owned house needs the owner's code); a 替换业主 filed before
            // the owner changed (another replacement approved first) would remove an owner it
            // was never filed against. A second owner claim meets the unique owner below.
            let replacing = row.kind == "替换业主";
            if row.role != "业主" || replacing {
                let owner = binding::Entity::find()
                    .filter(binding::Column::HouseId.eq(row.house_id))
                    .filter(binding::Column::Role.eq("业主"))
                    .one(&tx)
                    .await?;
                if owner.is_some_and(|owner| owner.person_id != person_id && owner.created_at > row.created_at) {
                    tx.rollback().await?;
                    return Ok(Decided::Conflict(if replacing {
                        "该房屋在申请提交后业主已变更：替换业主申请须重新提交"
                    } else {
                        "该房屋在申请提交后业主已变更：成员绑定须经现业主同意，请重新提交申请"
                    }));
                }
            }
            let new = NewBinding {
                house_id: row.house_id,
                role: row.role.clone(),
                house_use: row.house_use.clone(),
                xingzhi: row.xingzhi.clone(),
                house_status: row.house_status.clone(),
                zhuhu_type: row.zhuhu_type.clone(),
            };
            if row.kind == "替换业主" {
                binding::Entity::delete_many()
                    .filter(binding::Column::HouseId.eq(row.house_id))
                    .filter(binding::Column::Role.eq("业主"))
                    .filter(binding::Column::PersonId.ne(person_id))
                    .exec(&tx)
                    .await?;
            }
            let bound = match bind(&tx, person_id, &new, now).await {
                // Already on the house (a member becoming its owner by 替换业主, another role):
                // the binding takes what was approved.
                Ok(false) => {
                    let owner = new.role == "业主";
                    let mut update = binding::Entity::update_many();
                    if owner {
                        // Owner from now: what the check above reads.
                        update = update.col_expr(binding::Column::CreatedAt, Expr::value(now));
                    }
                    update
                        .col_expr(binding::Column::Role, Expr::value(new.role.clone()))
                        .col_expr(binding::Column::HouseUse, Expr::value(new.house_use.clone()))
                        .col_expr(binding::Column::Xingzhi, Expr::value(new.xingzhi.clone()))
                        .col_expr(binding::Column::HouseStatus, Expr::value(new.house_status.clone()))
                        .col_expr(binding::Column::ZhuhuType, Expr::value(new.zhuhu_type.clone()))
                        .col_expr(binding::Column::OwnerOf, Expr::value(owner.then_some(new.house_id)))
                        .col_expr(binding::Column::Shouquan, Expr::value(owner))
                        .col_expr(binding::Column::Charge, Expr::value(owner))
                        .filter(binding::Column::HouseId.eq(new.house_id))
                        .filter(binding::Column::PersonId.eq(person_id))
                        .exec(&tx)
                        .await
                        .map(|_| true)
                        .map_err(StorageError::from)
                }
                other => other,
            };
            match bound {
                Ok(_) => {}
                Err(StorageError::Db(error)) if is_unique_violation(&error) => {
                    tx.rollback().await?;
                    return Ok(Decided::Conflict("该房屋已有业主：业主绑定不能通过，替换业主须以“替换业主”申请"));
                }
                Err(error) => return Err(error),
            }
        }
        tx.commit().await?;
        Ok(Decided::Done(status))
    }

    /// The person an approved review binds (a 2.4.1 form is the submitter's own data): the
    /// record it names (2.4.2); else the submitter's record of that ID number; else a record of
    /// that ID number nobody uses yet, activated for the submitter only when it carries the
    /// form's (verified) phone; else a new record of the submitter. Anything else — the number
    /// is another account's, or the submitter is on record with another number — is refused.
    async fn person_for(
        &self,
        tx: &DatabaseTransaction,
        row: &Review,
        now: i64,
    ) -> Result<Result<i64, &'static str>, StorageError> {
        if let Some(id) = row.person_id {
            return Ok(Ok(id));
        }
        let existing =
            person::Entity::find().filter(person::Column::IdcardDigest.eq(&row.idcard_digest)).one(tx).await?;
        let own = person::Entity::find().filter(person::Column::UserId.eq(&row.user_id)).one(tx).await?;
        match (existing, own) {
            (Some(existing), _) if existing.user_id.as_deref() == Some(row.user_id.as_str()) => Ok(Ok(existing.id)),
            (Some(_), Some(_)) | (None, Some(_)) => Ok(Err("该账号已登记其他身份证号的人员信息")),
            (Some(existing), None) if existing.user_id.is_some() => Ok(Err("该身份证号已属于其他账号")),
            (Some(existing), None) if existing.phone != row.phone => {
                Ok(Err("该身份证号已登记，手机号与登记的不一致：须由本人以登记的手机号办理"))
            }
            (Some(existing), None) => {
                let claimed = person::Entity::update_many()
                    .col_expr(person::Column::UserId, Expr::value(row.user_id.clone()))
                    .col_expr(person::Column::UpdatedAt, Expr::value(now))
                    .filter(person::Column::Id.eq(existing.id))
                    .filter(person::Column::UserId.is_null())
                    .exec(tx)
                    .await?;
                Ok(if affected(claimed) { Ok(existing.id) } else { Err("该身份证号已属于其他账号") })
            }
            (None, None) => {
                let inserted =
                    person::Entity::insert(person_row(review_person(row), Some(row.user_id.clone()), now)).exec(tx).await?;
                Ok(Ok(inserted.last_insert_id))
            }
        }
    }

    /// operationId `house_shouquan_update` / `house_charge_update`: flip a member's grant
    /// (`charge`: pay and see bills; otherwise: manage members); the new value.
    pub async fn toggle(&self, binding_id: i64, charge: bool) -> Result<Option<bool>, StorageError> {
        let column = if charge { binding::Column::Charge } else { binding::Column::Shouquan };
        let tx = write(self.0).await?;
        binding::Entity::update_many()
            .col_expr(column, Expr::col(column).not())
            .filter(binding::Column::Id.eq(binding_id))
            .exec(&tx)
            .await?;
        let row = binding::Entity::find_by_id(binding_id).one(&tx).await?;
        tx.commit().await?;
        Ok(row.map(|b| if charge { b.charge } else { b.shouquan }))
    }

    /// operationId `house_unbind`: end binding `binding_id`; true when it existed.
    pub async fn unbind(&self, binding_id: i64) -> Result<bool, StorageError> {
        Ok(binding::Entity::delete_by_id(binding_id).exec(self.0).await?.rows_affected > 0)
    }

    /// Seed: a person (no account) with their bindings; the person's id.
    pub async fn seed_person(
        &self,
        data: PersonData,
        user_id: Option<&str>,
        bindings: &[(NewBinding, bool, bool)],
        now: i64,
    ) -> Result<i64, StorageError> {
        let id = person::Entity::insert(person_row(data, user_id.map(str::to_owned), now))
            .exec(self.0)
            .await?
            .last_insert_id;
        for (new, shouquan, charge) in bindings {
            bind(self.0, id, new, now).await?;
            binding::Entity::update_many()
                .col_expr(binding::Column::Shouquan, Expr::value(*shouquan))
                .col_expr(binding::Column::Charge, Expr::value(*charge))
                .filter(binding::Column::HouseId.eq(new.house_id))
                .filter(binding::Column::PersonId.eq(id))
                .exec(self.0)
                .await?;
        }
        Ok(id)
    }

    /// Seed: a decided review (`status` 0) or a pending one.
    pub async fn seed_review(&self, new: NewReview, status: ReviewStatus, reason: Option<&str>) -> Result<i64, StorageError> {
        let now = new.now;
        let Submitted::Filed(id) = self.submit(new).await? else {
            return Err(StorageError::Corrupt("a seeded review was refused".into()));
        };
        if status != ReviewStatus::Pending {
            review::Entity::update_many()
                .col_expr(review::Column::Status, Expr::value(status as i32))
                .col_expr(review::Column::RefuseReason, Expr::value(reason.map(str::to_owned)))
                .col_expr(review::Column::PendingKey, Expr::value(Option::<String>::None))
                .col_expr(review::Column::DecidedAt, Expr::value(now))
                .filter(review::Column::Id.eq(id))
                .exec(self.0)
                .await?;
        }
        Ok(id)
    }
}
