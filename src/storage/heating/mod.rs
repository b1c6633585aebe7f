//! The heating API's own storage (000), one store per aggregate: [`HeatingUsers`] (users),
//! [`HeatingAccounts`] (heat accounts, seasons, bills), [`HeatingOrders`] (which bills a payment
//! order pays, the payment history, settling), [`HeatingReference`] (agreements, configuration,
//! seeding). Sessions, codes and payment orders are in the shared identity and payment stores.
//!
//! Every "only if still …" change is a conditional `UPDATE` whose affected-row count decides, so
//! two requests racing for the same account or bill cannot both win.

pub mod entity;
mod accounts;
mod orders;
pub mod reference;
mod users;

pub use accounts::{Account, Bill, HeatingAccounts, Season};
pub use entity::BillStatus;
pub use orders::{Created, HeatingOrder, HeatingOrders, NewOrder, OrderLine, PaidTotals, Record, Settler};
pub use reference::{Agreement, HeatingReference, SeedData};
pub use users::{HeatingUsers, NewUser, Profile, ProfileChange, User};

use super::Db;

impl Db {
    /// Heating's users.
    pub fn heating_users(&self) -> HeatingUsers<'_, sea_orm::DatabaseConnection> {
        HeatingUsers(self.conn())
    }

    /// Heating's accounts, seasons and bills.
    pub fn heating_accounts(&self) -> HeatingAccounts<'_, sea_orm::DatabaseConnection> {
        HeatingAccounts(self.conn())
    }

    /// Heating's orders.
    pub fn heating_orders(&self) -> HeatingOrders<'_, sea_orm::DatabaseConnection> {
        HeatingOrders(self.conn())
    }

    /// Heating's agreements, configuration and seed.
    pub fn heating_reference(&self) -> HeatingReference<'_, sea_orm::DatabaseConnection> {
        HeatingReference(self.conn())
    }
}
