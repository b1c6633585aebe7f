//! The o2o API (004, 用户端小程序): WORK IN PROGRESS (issue 16) — its error type and the area
//! operations so far; the login, catalogue, orders, refunds and the bridge page follow, then the
//! `O2oApi` implementation and its wiring in `serve`.

pub mod areas;
pub mod error;
