//! What every API's HTTP adapter needs besides identity and payments: turning its application
//! errors into its documented answers ([`errors`]) and paging ([`paging`]).

pub mod errors;
pub mod paging;

pub use errors::{ApiError, auth_error, error_output};
pub use paging::{Page, PageRequest};
