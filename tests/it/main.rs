//! mpapi's one integration-test binary.

mod contract;
