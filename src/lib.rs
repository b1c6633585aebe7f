//! mpapi: five WeChat mini-program backends served from their OpenAPI contracts.
//!
//! The contracts live in `openapi/`; `generated/` holds the types, handler traits and routers
//! generated from them. This crate runs them two ways: [`mock`] answers every operation with its
//! documented examples; [`serve`] runs the real implementations (one folder per API, such as
//! [`heating`]) on the shared blocks — [`identity`] (tokens, sessions, codes, passwords, WeChat
//! login), [`payments`] (orders, notifies, refunds), [`api_support`] (errors, paging) — over
//! [`storage`] and the [`providers`]. [`server`] adds the documentation routes, CORS, the request
//! log and the listeners; [`ops`] what every port answers operators (`/metrics` from
//! [`metrics`], health); [`start`] what the start-up banner and every index page say to a new
//! user; [`cli`] is the `mpapi` command.

pub mod api_support;
pub mod apis;
pub mod areas;
pub mod charging;
pub mod cli;
pub mod coalesce;
pub mod clock;
pub mod community;
pub mod config;
pub mod geo;
pub mod heating;
pub mod identity;
pub mod listener;
pub mod logging;
pub mod metrics;
pub mod mock;
pub mod money;
pub mod o2o;
pub mod ops;
pub mod payments;
pub mod pii;
pub mod points;
pub mod providers;
pub mod random;
pub mod ratelimit;
pub mod sandbox;
pub mod storage;
pub mod serve;
pub mod server;
pub mod start;
