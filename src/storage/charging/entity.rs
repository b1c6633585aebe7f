//! The charging API's tables as sea-orm entities (see the migration `m20261203_000009_charging`
//! for the column conventions: ms, fen, Wh, W, 0.1 V, 0.01 A, 0.1 ℃, micro-degrees).

#![allow(missing_docs)] // derive-generated items; each entity's module is documented

entity!(
    /// `charging_user`: an account (003 §1), WeChat or username/password.
    user, "charging_user", i64, false, {
    username: Option<String>, password_hash: Option<String>, openid: Option<String>, nickname: String, avatar: String,
    gender: i32, country: String, province: String, city: String, language: String, balance_fen: i64, points: i64,
    role: String, last_login_at: Option<i64>, created_at: i64, updated_at: i64,
});
entity!(
    /// `charging_station`: 充电站 (003 §2).
    station, "charging_station", String, false, {
    name: String, address: String, latitude_e6: i64, longitude_e6: i64, status: i32, description: String, updated_at: i64,
});
entity!(
    /// `charging_pile`: 充电桩 (003 §3).
    pile, "charging_pile", String, false, {
    station_id: String, pile_no: String, pile_type: i32, power_rate_w: i64, manufacturer: String, imei: String,
    device_address: String, qr_code: String, ccid: String, floating_power_w: i64, auto_stop_enabled: bool,
    plugin_wait_seconds: i32, removal_wait_seconds: i32, supports_new_protocol: bool, protocol_version: String,
    software_version: String, hardware_version: String, rated_voltage: String, rated_ampere: String, status: i32,
    online: bool, signal_strength: i32, temperature_dc: i64, last_heartbeat_at: Option<i64>, installation_date: String,
    last_maintenance_date: String, description: String, updated_at: i64,
});
entity!(
    /// `charging_port`: 充电端口 (003 §4); `current_order_id` is unique (one live order a port).
    port, "charging_port", String, false, {
    pile_id: String, port_no: i32, port_type: i32, status: i32, fault_type: i32, disabled: bool,
    current_order_id: Option<String>, last_order_id: Option<String>, voltage_dv: i64, current_ca: i64, power_w: i64,
    temperature_dc: i64, energy_wh: i64, total_times: i64, total_seconds: i64, total_wh: i64,
    last_check_at: Option<i64>, updated_at: i64,
});
entity!(
    /// `charging_order`: 充电订单 (003 §5) with its tariff snapshot and time-of-use bill.
    order, "charging_order", String, false, {
    order_no: String, user_id: i64, pile_id: String, port_id: String, station_name: String, pile_no: String,
    port_no: i32, device_address: String, charging_mode: i32, charging_parameter: String, payment_method: i32,
    status: i32, payment_status: i32, billing_mode: i32, tariff: String, limit_fen: i64, started_at: Option<i64>,
    ended_at: Option<i64>, energy_wh: i64, charging_seconds: i64, power_w: i64, voltage_dv: i64, current_ca: i64,
    stop_reason: Option<i32>, sharp_wh: i64, sharp_fen: i64, peak_wh: i64, peak_fen: i64, flat_wh: i64, flat_fen: i64,
    valley_wh: i64, valley_fen: i64, deep_valley_wh: i64, deep_valley_fen: i64, amount_fen: i64, service_fee_fen: i64,
    total_fen: i64, paid_at: Option<i64>, transaction_id: Option<String>, remark: String, last_read_at: Option<i64>,
    created_at: i64, updated_at: i64,
});
entity!(
    /// `charging_meter_sample`: an order's cumulative energy as read from the charger.
    meter_sample, "charging_meter_sample", i64, true, {
    order_id: String, at_ms: i64, energy_wh: i64, power_w: i64,
});
entity!(
    /// `charging_payment`: a payment of an order (003 §6.1, §6.2).
    payment, "charging_payment", String, false, {
    order_id: String, user_id: i64, method: i32, status: i32, amount_fen: i64, paid_at: Option<i64>,
    transaction_id: Option<String>, created_at: i64, updated_at: i64,
});
entity!(
    /// `charging_recharge`: a balance top-up (003 §6.3).
    recharge, "charging_recharge", String, false, {
    user_id: i64, method: i32, status: i32, amount_fen: i64, paid_at: Option<i64>, transaction_id: Option<String>,
    created_at: i64, updated_at: i64,
});
entity!(
    /// `charging_billing_rule`: 计费规则 (003 §8.2); `slots` is JSON of [`crate::charging::tariff::Slot`]s.
    billing_rule, "charging_billing_rule", String, false, {
    name: String, description: String, pile_type: Option<i32>, service_fee_percent: String, flat_rate: Option<String>,
    slots: String, effective_date: String, is_active: bool, is_default: bool,
});
entity!(
    /// `charging_config`: the system configuration document (003 §8.1), one row.
    config, "charging_config", i32, false, {
    document: String, updated_at: i64,
});
