//! mpapi: five WeChat mini-program backends served from their OpenAPI contracts.
//!
//! The contracts live in `openapi/`; `cargo xtask` lints them and projects their examples
//! into `mocks/`. The server itself arrives with the codegen, mock-mode and serve issues.
