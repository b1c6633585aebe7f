//! The identity tables as sea-orm entities (see the migration for the column conventions: times
//! in ms since the epoch).

#![allow(missing_docs)] // derive-generated items; each entity's module is documented

/// `session`: one login session of one API's user. Access tokens name it (`sid`) and carry its
/// `generation`; a rotating session also holds its current refresh token's hash, and one begun
/// by a WeChat login in an API that pays as that login (points) the login's `openid`. After
/// `expires_at` nothing of it can be used any more (its refresh token, or its last access token
/// and grace window, expired).
pub mod session {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "session")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub api: String,
        pub user_id: String,
        pub generation: i32,
        pub refresh_hash: Option<String>,
        pub expires_at: i64,
        pub created_at: i64,
        pub revoked_at: Option<i64>,
        pub openid: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `session_refresh_used`: refresh tokens already rotated away; presenting one again revokes its
/// session. Rows go with their session (foreign key, cascade) and are pruned after the refresh
/// lifetime.
pub mod refresh_used {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "session_refresh_used")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub refresh_hash: String,
        pub session_id: String,
        pub used_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `verification_code`: one code sent, by API, subject (the phone, or the key the API returned)
/// and purpose; stored as a keyed digest, never in clear.
pub mod code {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "verification_code")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub api: String,
        pub subject: String,
        pub phone: String,
        pub purpose: String,
        pub code_hash: String,
        pub attempts: i32,
        pub created_at: i64,
        pub expires_at: i64,
        pub used_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `code_throttle`: when a phone was last sent a code by an API (the resend interval).
pub mod throttle {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "code_throttle")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub api: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub phone: String,
        pub last_sent_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `wechat_identity`: one WeChat user of one mini-program (`appid`, `openid`): the API's user it
/// is, its unionid, and the latest session_key (AES-256-GCM sealed, never sent to a client).
pub mod wechat {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "wechat_identity")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub appid: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub openid: String,
        pub api: String,
        pub user_id: String,
        pub unionid: Option<String>,
        pub session_key_cipher: String,
        pub session_key_at: i64,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
