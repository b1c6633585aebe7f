//! mpapi's one integration-test binary.

mod app;
mod codegen;
mod contract;
mod heating;
mod identity;
mod mock;
mod points;
mod providers;
mod support;
