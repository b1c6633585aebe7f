//! mpapi's one integration-test binary.

mod codegen;
mod contract;
mod mock;
mod providers;
mod support;
