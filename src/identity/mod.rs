//! Identity, shared by every API: access tokens and sessions in each API's refresh style,
//! verification codes, passwords, WeChat login and encryptedData. Built on domain types and
//! storage only — no generated wire types — so each API words the outcomes in its own envelope.

pub mod codes;
pub mod passwords;
pub mod sessions;
pub mod tokens;
pub mod wechat;

pub use codes::{CodeError, CodePolicy, Codes, Subject, Ticket};
pub use passwords::Passwords;
pub use sessions::{Issued, Principal, SessionError, Sessions};
pub use wechat::{Wechat, WechatError, WechatUser};
