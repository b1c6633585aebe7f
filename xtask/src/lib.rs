//! Project automation for mpapi: code generation, contract lint and the `mocks/` projection
//! of `openapi/`.
//!
//! Used by the `cargo xtask` binary and by the contract tests in `tests/it/`.

pub mod bench;
pub mod codegen;
pub mod lint;
pub mod mocks;
pub mod spec;
