//! The sandbox 安防平台's tables (002 §2.2): people (ID numbers sealed by the caller), their house
//! bindings, and the fault switch. Only the sandbox provider uses them.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, Set, TransactionTrait,
};

use super::{Db, StorageError, affected, claim_seed, write};

/// The tables as sea-orm entities (see the migration `m20261203_000008_security_platform`).
#[allow(missing_docs)] // derive-generated items; each entity's module is documented
pub mod entity {
    /// `sandbox_platform_person`: a resident the platform knows.
    pub mod person {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "sandbox_platform_person")]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub id: String,
            pub name: String,
            pub idcard_cipher: String,
            pub idcard_index: String,
            pub phone: String,
            pub sex: String,
            pub nation: String,
            pub birth: Option<String>,
            pub address: String,
            pub created_at: i64,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    /// `sandbox_platform_binding`: a person's tie to a house, by the platform's numbers.
    pub mod binding {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "sandbox_platform_binding")]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub id: String,
            pub person_id: String,
            pub community_identifier: String,
            pub building_number: i64,
            pub unit_number: i64,
            pub floor_number: i64,
            pub house_number: i64,
            pub role: String,
            pub house_use: String,
            pub xingzhi: String,
            pub status: String,
            pub zhuhu_type: String,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    /// `sandbox_platform_state`: one row (id 1), whether the platform is down.
    pub mod state {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "sandbox_platform_state")]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub id: i32,
            pub fault: bool,
            pub updated_at: i64,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }
}

use entity::{binding, person, state};

/// A house as the platform numbers it: community identifier, then building (楼号), unit (单元号),
/// floor (楼层号) and house (房屋号) numbers.
pub type HouseNumbers = (String, [i64; 4]);

/// A binding row: which house, and the person's place in it (Chinese enumerations of 002 前言).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingRow {
    /// The house.
    pub house: HouseNumbers,
    /// 居民角色 (`业主`, `租客`, …).
    pub role: String,
    /// 房屋用途 (`住宅`, …).
    pub house_use: String,
    /// 房屋性质 (`私有`, …).
    pub xingzhi: String,
    /// 房屋状态 (`自用`, …).
    pub status: String,
    /// 住户类型 (`业主`, `租户`, `其他`).
    pub zhuhu_type: String,
}

/// A person row with the bindings asked for. The ID number stays sealed
/// ([`crate::pii::Vault::encrypt`] under `sandbox_platform_person.idcard:{id}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonRow {
    /// `sp_…`.
    pub id: String,
    /// Name.
    pub name: String,
    /// The sealed ID number.
    pub idcard_cipher: String,
    /// Its blind index ([`crate::pii::Vault::digest`]).
    pub idcard_index: String,
    /// Phone, 11 digits.
    pub phone: String,
    /// `男` or `女`.
    pub sex: String,
    /// Nation (`汉`).
    pub nation: String,
    /// `YYYYMMDD`.
    pub birth: Option<String>,
    /// Address.
    pub address: String,
    /// Bindings.
    pub bindings: Vec<BindingRow>,
}

/// The owner of a house: the person and the owner binding's details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRow {
    /// The owner's name.
    pub name: String,
    /// The owner's phone.
    pub phone: String,
    /// The binding.
    pub binding: BindingRow,
}

impl From<binding::Model> for BindingRow {
    fn from(row: binding::Model) -> BindingRow {
        BindingRow {
            house: (
                row.community_identifier,
                [
                    row.building_number,
                    row.unit_number,
                    row.floor_number,
                    row.house_number,
                ],
            ),
            role: row.role,
            house_use: row.house_use,
            xingzhi: row.xingzhi,
            status: row.status,
            zhuhu_type: row.zhuhu_type,
        }
    }
}

/// The sandbox platform's store.
#[derive(Debug, Clone, Copy)]
pub struct SandboxPlatformStore<'c, C>(pub &'c C);

impl Db {
    /// The sandbox 安防平台's store on the pool.
    pub fn sandbox_platform(&self) -> SandboxPlatformStore<'_, sea_orm::DatabaseConnection> {
        SandboxPlatformStore(self.conn())
    }
}

impl<C: ConnectionTrait + TransactionTrait<Transaction = DatabaseTransaction>>
    SandboxPlatformStore<'_, C>
{
    /// Whether the platform is switched to failing.
    pub async fn fault(&self) -> Result<bool, StorageError> {
        let row = state::Entity::find_by_id(1).one(self.0).await?;
        row.map(|r| r.fault)
            .ok_or_else(|| StorageError::Corrupt("sandbox_platform_state has no row".into()))
    }

    /// Switch the platform to failing (`true`) or answering (`false`) at `now` (ms).
    pub async fn set_fault(&self, fault: bool, now: i64) -> Result<(), StorageError> {
        let updated = state::Entity::update_many()
            .col_expr(state::Column::Fault, Expr::value(fault))
            .col_expr(state::Column::UpdatedAt, Expr::value(now))
            .filter(state::Column::Id.eq(1))
            .exec(self.0)
            .await?;
        if !affected(updated) {
            return Err(StorageError::Corrupt(
                "sandbox_platform_state has no row".into(),
            ));
        }
        Ok(())
    }

    /// The person with `phone` and their bindings in community `community_identifier`; `None`
    /// when nobody has the phone or they have no binding there.
    pub async fn person_by_phone(
        &self,
        community_identifier: &str,
        phone: &str,
    ) -> Result<Option<PersonRow>, StorageError> {
        let Some(row) = person::Entity::find()
            .filter(person::Column::Phone.eq(phone))
            .one(self.0)
            .await?
        else {
            return Ok(None);
        };
        let bindings: Vec<BindingRow> = binding::Entity::find()
            .filter(binding::Column::PersonId.eq(row.id.clone()))
            .filter(binding::Column::CommunityIdentifier.eq(community_identifier))
            .order_by_asc(binding::Column::Id)
            .all(self.0)
            .await?
            .into_iter()
            .map(BindingRow::from)
            .collect();
        if bindings.is_empty() {
            return Ok(None);
        }
        Ok(Some(PersonRow {
            id: row.id,
            name: row.name,
            idcard_cipher: row.idcard_cipher,
            idcard_index: row.idcard_index,
            phone: row.phone,
            sex: row.sex,
            nation: row.nation,
            birth: row.birth,
            address: row.address,
            bindings,
        }))
    }

    /// The owner of `house`: the first binding there whose 住户类型 or 居民角色 is `业主`, and
    /// its person; `None` when the house has no owner.
    pub async fn owner_of(&self, house: &HouseNumbers) -> Result<Option<OwnerRow>, StorageError> {
        let (community, [building, unit, floor, number]) = house;
        let found = binding::Entity::find()
            .filter(binding::Column::CommunityIdentifier.eq(community.as_str()))
            .filter(binding::Column::BuildingNumber.eq(*building))
            .filter(binding::Column::UnitNumber.eq(*unit))
            .filter(binding::Column::FloorNumber.eq(*floor))
            .filter(binding::Column::HouseNumber.eq(*number))
            .filter(
                Condition::any()
                    .add(binding::Column::ZhuhuType.eq("业主"))
                    .add(binding::Column::Role.eq("业主")),
            )
            .order_by_asc(binding::Column::Id)
            .one(self.0)
            .await?;
        let Some(found) = found else { return Ok(None) };
        let owner = person::Entity::find_by_id(found.person_id.clone())
            .one(self.0)
            .await?
            .ok_or_else(|| StorageError::Corrupt(format!("binding {} has no person", found.id)))?;
        Ok(Some(OwnerRow {
            name: owner.name,
            phone: owner.phone,
            binding: BindingRow::from(found),
        }))
    }

    /// Write `people` once per database (marker `security_platform.demo`: the seeded ID
    /// numbers are public, so a production database must not hold them); true when written now.
    pub async fn seed(&self, people: &[PersonRow], now: i64) -> Result<bool, StorageError> {
        let tx = write(self.0).await?;
        if !claim_seed(&tx, "security_platform.demo", now).await? {
            return Ok(false);
        }
        for p in people {
            person::Entity::insert(person::ActiveModel {
                id: Set(p.id.clone()),
                name: Set(p.name.clone()),
                idcard_cipher: Set(p.idcard_cipher.clone()),
                idcard_index: Set(p.idcard_index.clone()),
                phone: Set(p.phone.clone()),
                sex: Set(p.sex.clone()),
                nation: Set(p.nation.clone()),
                birth: Set(p.birth.clone()),
                address: Set(p.address.clone()),
                created_at: Set(now),
            })
            .exec_without_returning(&tx)
            .await?;
            for (i, b) in p.bindings.iter().enumerate() {
                let (community, [building, unit, floor, number]) = &b.house;
                binding::Entity::insert(binding::ActiveModel {
                    id: Set(format!("{}_{i}", p.id)),
                    person_id: Set(p.id.clone()),
                    community_identifier: Set(community.clone()),
                    building_number: Set(*building),
                    unit_number: Set(*unit),
                    floor_number: Set(*floor),
                    house_number: Set(*number),
                    role: Set(b.role.clone()),
                    house_use: Set(b.house_use.clone()),
                    xingzhi: Set(b.xingzhi.clone()),
                    status: Set(b.status.clone()),
                    zhuhu_type: Set(b.zhuhu_type.clone()),
                })
                .exec_without_returning(&tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    }
}
