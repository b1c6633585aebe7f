//! The sandbox: stand-ins for SMS, WeChat login and WeChat Pay, and the `/_sandbox/*` routes that
//! let a developer or a test see and drive them.

/// The sandbox providers' shared state (being written).
#[derive(Clone)]
pub struct Sandbox {}
