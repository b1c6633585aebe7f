//! mpapi: five WeChat mini-program backends served from their OpenAPI contracts.
//!
//! The contracts live in `openapi/`; `generated/` holds the types, handler traits and routers
//! generated from them. This crate runs them: [`mock`] answers every operation with its
//! documented examples; [`server`] adds the documentation routes and listeners; [`cli`] is the
//! `mpapi` command.

pub mod apis;
pub mod auth;
pub mod cli;
pub mod heating;
pub mod clock;
pub mod config;
pub mod logging;
pub mod mock;
pub mod money;
pub mod pii;
pub mod providers;
pub mod random;
pub mod ratelimit;
pub mod sandbox;
pub mod storage;
pub mod serve;
pub mod server;
