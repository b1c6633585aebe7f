//! What every API's HTTP adapter needs besides identity and payments: turning its application
//! errors into its documented answers ([`errors`]), paging ([`paging`]) and the address its
//! answered URLs start with ([`public_url`]).

pub mod errors;
pub mod paging;
pub mod public_url;

pub use errors::{ApiError, auth_error, error_output};
pub use paging::{Page, PageRequest};
pub use public_url::PublicUrl;

/// A value as one of a contract's types (its enums travel as the strings or numbers the document
/// shows): `wire(2)` for a generated `…Status` enum, `wire("业主")`. The error says which value
/// the contract does not admit (a bug of ours, answered as the API's internal error).
pub fn wire<T: serde::de::DeserializeOwned>(value: impl serde::Serialize) -> Result<T, String> {
    let value = serde_json::to_value(value).map_err(|e| e.to_string())?;
    serde_json::from_value(value.clone()).map_err(|e| format!("{value} is not of the contract's type: {e}"))
}
