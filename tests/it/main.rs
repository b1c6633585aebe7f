//! mpapi's one integration-test binary.

mod app;
mod charger_driver;
mod charging;
mod codegen;
mod community;
mod community_providers;
mod contract;
mod geocoder;
mod heating;
mod identity;
mod instances;
mod mock;
mod o2o;
mod o2o_catalogue;
mod o2o_storage;
mod ops;
mod payments_storage;
mod points;
mod providers;
mod support;
mod wechat_pay_v2;
mod wxacode;
