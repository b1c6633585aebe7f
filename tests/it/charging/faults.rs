//! What the chargers can do wrong, with the sandbox's controls (`/_sandbox/devices/{address}`):
//! a pile going offline (before an order, and for good in the middle of one), a port fault
//! (before and during a session), the vehicle unplugged or full, a pile that does not answer or
//! refuses starts — and the device interface (§10) that shows the connections.

use serde_json::json;

use super::*;

/// The IMEI of `pile` at ST0001, from the station's pile list.
async fn imei(app: &TestApp, token: &str, pile: &str) -> String {
    let piles = ok(&app.get("/api/ChargingPile/station/ST0001", Some(token)).await);
    let found = piles.as_array().unwrap().iter().find(|p| p["id"] == pile).unwrap_or_else(|| panic!("{pile}: {piles}"));
    found["imei"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_offline_pile_takes_no_order_and_shows_as_disconnected_until_it_is_back() {
    let app = TestApp::charging().await;
    let token = driver(&app, "offline-watcher").await;
    let dc2 = imei(&app, &token, DC2_PILE).await;
    // Every seeded pile is connected.
    let devices = ok(&app.get(DEVICES, Some(&token)).await);
    let connected: Vec<&str> = devices.as_array().unwrap().iter().map(|d| d["imei"].as_str().unwrap()).collect();
    assert_eq!(connected.len(), 14, "{devices}");
    assert!(connected.contains(&dc2.as_str()));
    let status = ok(&app.get(&format!("/api/devices/{dc2}/status"), Some(&token)).await);
    assert_eq!((&status["imei"], &status["isConnected"]), (&json!(dc2), &json!(true)));
    let endpoint = status["endpoint"].as_str().unwrap().to_owned();
    assert!(endpoint.contains(':'), "{status}");
    let listed = devices.as_array().unwrap().iter().find(|d| d["imei"] == dc2.as_str()).unwrap();
    assert_eq!(listed["endpoint"], endpoint.as_str());

    let state = device_event(&app, DC2_DEVICE, "offline", None).await;
    assert_eq!(state["online"], false, "{state}");
    refused(&create(&app, &token, DC2_PILE, DC2_PORT, 1, json!(0), 1).await, 400, 2004);
    let status = ok(&app.get(&format!("/api/devices/{dc2}/status"), Some(&token)).await);
    assert_eq!((&status["isConnected"], &status["endpoint"]), (&json!(false), &json!(null)), "{status}");
    let devices = ok(&app.get(DEVICES, Some(&token)).await);
    assert_eq!(devices.as_array().unwrap().len(), 13);
    assert!(devices.as_array().unwrap().iter().all(|d| d["imei"] != dc2.as_str()));
    let pile = ok(&app.get(&format!("/api/pile/{DC2_PILE}"), Some(&token)).await);
    assert_eq!((&pile["onlineStatus"], &pile["status"], &pile["ports"][0]["status"]), (&json!(0), &json!(0), &json!(0)), "{pile}");
    // §9.3 and §9.6 say 0 离线 (its ports too, nothing flowing), not a timeout: nobody is
    // waiting for an answer from a charger that is not connected.
    let offline = ok(&app.get(&format!("{PILE_STATUS}?deviceAddress={DC2_DEVICE}"), Some(&token)).await);
    assert_eq!((&offline["status"], &offline["ports"][0]["status"], &offline["ports"][1]["status"]), (&json!(0), &json!(0), &json!(0)), "{offline}");
    assert_eq!((&offline["ports"][0]["power"], &offline["ports"][0]["currentAmpere"]), (&json!(0.0), &json!(0.0)), "{offline}");
    let port = ok(&app.get(&format!("/api/ChargingPile/{DC2_DEVICE}/status?port=1"), Some(&token)).await);
    assert_eq!((&port["status"], &port["port"], &port["power"], &port["chargingTime"]), (&json!(0), &json!(1), &json!(0.0), &json!(0)), "{port}");
    // The other piles are unaffected.
    created(&create(&app, &token, DC_PILE, DC_PORT, 1, json!(0), 1).await, DC_DEVICE);

    device_event(&app, DC2_DEVICE, "online", None).await;
    let status = ok(&app.get(&format!("/api/devices/{dc2}/status"), Some(&token)).await);
    assert_eq!((&status["isConnected"], &status["endpoint"]), (&json!(true), &json!(endpoint)));
    assert_eq!(ok(&app.get(DEVICES, Some(&token)).await).as_array().unwrap().len(), 14);
    let other = driver(&app, "offline-watcher-2").await;
    created(&create(&app, &other, DC2_PILE, DC2_PORT, 1, json!(0), 1).await, DC2_DEVICE);
    let pile = ok(&app.get(&format!("/api/pile/{DC2_PILE}"), Some(&token)).await);
    assert_eq!((&pile["onlineStatus"], &pile["ports"][0]["status"], &pile["ports"][1]["status"]), (&json!(1), &json!(2), &json!(1)), "{pile}");
    // An IMEI no pile has; not an IMEI.
    refused(&app.get("/api/devices/865328061299999/status", Some(&token)).await, 404, 2002);
    assert_eq!(app.get("/api/devices/12345/status", Some(&token)).await.status, 400);
}

#[tokio::test]
async fn a_faulty_port_takes_no_order_until_repaired() {
    let app = TestApp::charging().await;
    let token = driver(&app, "fault-finder").await;
    let state = device_event(&app, DC2_DEVICE, "fault&faultType=2", Some(1)).await;
    assert_eq!((&state["ports"][0]["state"], &state["ports"][0]["faultType"]), (&json!("fault"), &json!(2)), "{state}");
    refused(&create(&app, &token, DC2_PILE, DC2_PORT, 1, json!(0), 1).await, 400, 2006);
    let faulty = port(&app, &token, DC2_PORT).await;
    assert_eq!((&faulty["status"], &faulty["faultType"]), (&json!(3), &json!(2)), "{faulty}");
    // The pile's other port still works.
    created(&create(&app, &token, DC2_PILE, "PT000202", 1, json!(0), 1).await, DC2_DEVICE);
    // Repaired (the device reports no fault): the port is idle again.
    device_event(&app, DC2_DEVICE, "online", None).await;
    let repaired = port(&app, &token, DC2_PORT).await;
    assert_eq!((&repaired["status"], &repaired["faultType"]), (&json!(1), &json!(0)), "{repaired}");
    let other = driver(&app, "fault-finder-2").await;
    created(&create(&app, &other, DC2_PILE, DC2_PORT, 1, json!(0), 1).await, DC2_DEVICE);
}

#[tokio::test]
async fn a_port_fault_mid_session_ends_the_order_abnormal_and_faults_the_port() {
    let app = TestApp::charging().await;
    let token = driver(&app, "fault-mid-session").await;
    let order = charging(&app, &token, 1, json!(0), 1).await;
    let live = live_after(&app, &token, &order, 3).await;
    device_event(&app, DC_DEVICE, "fault", Some(1)).await;
    advance(&app, 2);
    let status = order_status(&app, &token, &order).await;
    assert_eq!((&status["status"], &status["power"]), (&json!(4), &json!(0.0)), "{status}");
    let detail = order_detail(&app, &token, &order).await;
    assert_eq!(detail["stopReason"], 6, "{detail}");
    // Billed on what it delivered until the fault.
    let energy = wh(&detail["powerConsumption"]);
    assert!(energy >= wh(&live["powerConsumption"]) && energy > 0, "{detail}");
    let device = device_state(&app, DC_DEVICE).await;
    assert_eq!(device["ports"][0]["energyWh"], energy, "{device}");
    let (amount, fee, total) = rebill(&detail, BR001_FEN_PER_KWH, BR001_FEE_PERCENT);
    assert_eq!((fen(&detail["amount"]), fen(&detail["serviceFee"]), fen(&detail["totalAmount"])), (amount, fee, total));
    assert!(total > 0);
    // The port is faulted (保险丝熔断) and free of the order; the session counts.
    let faulted = port(&app, &token, DC_PORT).await;
    assert_eq!(
        (&faulted["status"], &faulted["faultType"], &faulted["currentOrderId"], &faulted["lastOrderId"], &faulted["totalChargingTimes"]),
        (&json!(3), &json!(1), &json!(null), &json!(order), &json!(1)),
        "{faulted}"
    );
    let status = ok(&app.get(&format!("/api/port/{DC_PORT}/status"), Some(&token)).await);
    assert_eq!((&status["status"], &status["faultType"]), (&json!(3), &json!(1)), "{status}");
    // An abnormal order is paid like a completed one; the faulty port takes no order.
    let payment = ok(&app.post(PAY, Some(&token), json!({ "orderId": order, "paymentMethod": 1 })).await)["paymentId"].as_str().unwrap().to_owned();
    assert_eq!(app.sandbox_pay(&payment, "success").await.body["notify"]["status"], json!(200));
    refused(&create(&app, &token, DC_PILE, DC_PORT, 1, json!(0), 1).await, 400, 2006);
    // A stop of the ended order says how it ended.
    refused(&app.post(&format!("/api/order/{order}/stop"), Some(&token), json!({ "stopReason": 1 })).await, 400, 3002);
}

#[tokio::test]
async fn the_vehicle_unplugged_completes_the_order_with_reason_7() {
    let app = TestApp::charging().await;
    let token = driver(&app, "unplugger").await;
    let order = charging(&app, &token, 1, json!(0), 1).await;
    advance(&app, 3);
    device_event(&app, DC_DEVICE, "unplug", Some(1)).await;
    let detail = until_ended(&app, &token, &order, 1).await;
    assert_eq!((&detail["status"], &detail["stopReason"]), (&json!(2), &json!(7)), "{detail}");
    assert!(wh(&detail["powerConsumption"]) > 0);
    assert_eq!(tier_wh(&detail), wh(&detail["powerConsumption"]));
    let freed = port(&app, &token, DC_PORT).await;
    assert_eq!((&freed["status"], &freed["currentOrderId"]), (&json!(1), &json!(null)));
}

#[tokio::test]
async fn a_full_vehicle_completes_the_order_with_reason_2() {
    let app = TestApp::charging().await;
    let token = driver(&app, "full-early").await;
    let order = charging(&app, &token, 1, json!(0), 1).await;
    advance(&app, 3);
    device_event(&app, DC_DEVICE, "full", Some(1)).await;
    let detail = until_ended(&app, &token, &order, 1).await;
    assert_eq!((&detail["status"], &detail["stopReason"]), (&json!(2), &json!(2)), "{detail}");
    let energy = wh(&detail["powerConsumption"]);
    assert!(energy > 0 && energy < 40_000, "{detail}");
    // Left alone, a DC vehicle is full at 40 kWh.
    let other = driver(&app, "full-by-itself").await;
    let second = created(&create(&app, &other, DC_PILE, DC_PORT_2, 1, json!(0), 1).await, DC_DEVICE);
    started(&app, &other, &second, DC_DEVICE).await;
    let detail = until_ended(&app, &other, &second, 10).await;
    assert_eq!((&detail["status"], &detail["stopReason"], &detail["powerConsumption"]), (&json!(2), &json!(2), &json!(40.0)), "{detail}");
    let (_, _, total) = rebill(&detail, BR001_FEN_PER_KWH, BR001_FEE_PERCENT);
    assert_eq!(fen(&detail["totalAmount"]), total);
}

#[tokio::test]
async fn a_pile_that_does_not_answer_is_a_timeout_and_one_that_refuses_a_control_failure() {
    let app = TestApp::charging().await;
    let token = driver(&app, "no-answer").await;
    let order = created(&create(&app, &token, DC_PILE, DC_PORT, 1, json!(0), 1).await, DC_DEVICE);
    let state = device_event(&app, DC_DEVICE, "no_answer", None).await;
    assert_eq!(state["noAnswer"], true);
    refused(&start(&app, &token, &order, DC_DEVICE).await, 502, 5002);
    assert_eq!(order_status(&app, &token, &order).await["status"], 0, "not started");
    refused(&app.get(&format!("{PILE_STATUS}?deviceAddress={DC_DEVICE}"), Some(&token)).await, 502, 5002);
    refused(&app.get(&format!("/api/ChargingPile/{DC_DEVICE}/status?port=1"), Some(&token)).await, 502, 5002);
    let operator = operator(&app).await;
    device_event(&app, DC2_DEVICE, "no_answer", None).await;
    refused(&app.post(&format!("/api/ChargingPile/{DC2_DEVICE}/config"), Some(&operator), json!({ "config": [1] })).await, 502, 5002);
    // A pile that does not answer takes no new order either.
    let other = driver(&app, "no-answer-2").await;
    refused(&create(&app, &other, DC_PILE, DC_PORT_2, 1, json!(0), 1).await, 400, 2004);

    // Refusing starts: 5001; reads still work.
    device_event(&app, DC_DEVICE, "online", None).await;
    let state = device_event(&app, DC_DEVICE, "reject", None).await;
    assert_eq!((&state["reject"], &state["noAnswer"]), (&json!(true), &json!(false)));
    refused(&start(&app, &token, &order, DC_DEVICE).await, 502, 5001);
    assert_eq!(order_status(&app, &token, &order).await["status"], 0);
    assert_eq!(ok(&app.get(&format!("{PILE_STATUS}?deviceAddress={DC_DEVICE}"), Some(&token)).await)["ports"][0]["currentOrderId"], order.as_str());

    // Back to normal: the same order starts.
    device_event(&app, DC_DEVICE, "online", None).await;
    started(&app, &token, &order, DC_DEVICE).await;
}

#[tokio::test]
async fn a_pile_lost_mid_session_ends_the_order_abnormal_on_its_last_reading() {
    let app = TestApp::charging().await;
    let token = driver(&app, "lost-pile").await;
    let order = charging(&app, &token, 1, json!(0), 1).await;
    let live = live_after(&app, &token, &order, 3).await;
    device_event(&app, DC_DEVICE, "offline", None).await;
    // Silent for less than a minute: still charging as far as the server knows, frozen.
    let frozen = order_status(&app, &token, &order).await;
    assert_eq!(frozen["status"], 1, "{frozen}");
    assert!(wh(&frozen["powerConsumption"]) >= wh(&live["powerConsumption"]));
    advance(&app, 30);
    assert_eq!(order_status(&app, &token, &order).await["status"], 1);
    // 61 s after the last reading: abnormal (故障), billed on that reading.
    advance(&app, 31);
    let detail = order_detail(&app, &token, &order).await;
    assert_eq!((&detail["status"], &detail["stopReason"]), (&json!(4), &json!(6)), "{detail}");
    let samples = app.server.db.charging().samples(&order).await.unwrap();
    let (last_at, last_wh) = *samples.last().unwrap();
    assert_eq!(wh(&detail["powerConsumption"]), last_wh, "{samples:?}");
    assert!(last_wh >= wh(&frozen["powerConsumption"]) && last_wh > 0);
    let ended = chrono::DateTime::parse_from_rfc3339(detail["endTime"].as_str().unwrap()).unwrap().timestamp();
    assert!((last_at.div_euclid(1000) - ended).abs() <= 1, "ended at the last reading ({last_at}): {detail}");
    let (amount, fee, total) = rebill(&detail, BR001_FEN_PER_KWH, BR001_FEE_PERCENT);
    assert_eq!((fen(&detail["amount"]), fen(&detail["serviceFee"]), fen(&detail["totalAmount"])), (amount, fee, total));
    assert_eq!(tier_wh(&detail), last_wh);
    // Back online, the charger reports how much the session delivered before it lost its
    // connection: the order is billed on that final reading, the port is free.
    device_event(&app, DC_DEVICE, "online", None).await;
    let freed = port(&app, &token, DC_PORT).await;
    assert_eq!((&freed["status"], &freed["currentOrderId"]), (&json!(1), &json!(null)), "{freed}");
    let device = device_state(&app, DC_DEVICE).await;
    let final_wh = device["ports"][0]["energyWh"].as_i64().unwrap();
    assert!(final_wh >= last_wh, "{device}");
    let corrected = order_detail(&app, &token, &order).await;
    assert_eq!((&corrected["status"], &corrected["stopReason"]), (&json!(4), &json!(6)), "{corrected}");
    assert_eq!(wh(&corrected["powerConsumption"]), final_wh, "{corrected}");
    assert_eq!(tier_wh(&corrected), final_wh);
    let (amount, fee, total) = rebill(&corrected, BR001_FEN_PER_KWH, BR001_FEE_PERCENT);
    assert_eq!((fen(&corrected["amount"]), fen(&corrected["serviceFee"]), fen(&corrected["totalAmount"])), (amount, fee, total));
    // Read again: billed once.
    assert_eq!(order_detail(&app, &token, &order).await["totalAmount"], corrected["totalAmount"]);
}

/// A new driver's order charging on the AC pile (its vehicle not yet full after the minute, as
/// the DC one's would be), whose charger then stops answering for 61 s: (token, order id, the
/// order's detail, ended abnormal 6 on the last reading).
async fn lost_on_ac(app: &TestApp, code: &str) -> (String, String, serde_json::Value) {
    let token = driver(app, code).await;
    let order = charging_on(app, &token, (AC_PILE, AC_PORT, AC_DEVICE), 1, json!(0), 1).await;
    advance(app, 3);
    order_status(app, &token, &order).await;
    device_event(app, AC_DEVICE, "no_answer", None).await;
    advance(app, 61);
    let detail = order_detail(app, &token, &order).await;
    assert_eq!((&detail["status"], &detail["stopReason"]), (&json!(4), &json!(6)), "{detail}");
    (token, order, detail)
}

/// A charger silent for a minute while it kept charging: the order ends abnormal on its last
/// reading, and once the charger answers again the session it still runs for that order is
/// stopped (7 其他) and what it delivered meanwhile billed to the order (still unpaid), so
/// that nothing flows unbilled, and the port takes a new order.
#[tokio::test]
async fn a_session_outliving_its_order_is_stopped_once_the_charger_answers() {
    let app = TestApp::charging().await;
    let (token, order, detail) = lost_on_ac(&app, "silent-pile").await;
    // The charger never stopped: it still charges for the ended order.
    device_event(&app, AC_DEVICE, "online", None).await;
    // (Unless the device sweep, every ten seconds, looked at the pile in between: then it is
    // already stopped, as below.)
    let still = device_state(&app, AC_DEVICE).await;
    let swept = still["ports"][0]["state"] == "finished" && still["ports"][0]["stopReason"] == 7;
    assert!(swept || still["ports"][0]["state"] == "charging", "{still}");
    assert_eq!(still["ports"][0]["orderId"], json!(order), "{still}");
    // The next look at the pile (the device sweep's, every ten seconds, or a reader's) stops it.
    let freed = port(&app, &token, AC_PORT).await;
    assert_eq!((&freed["status"], &freed["currentOrderId"]), (&json!(1), &json!(null)), "{freed}");
    let stopped = device_state(&app, AC_DEVICE).await;
    assert_eq!((&stopped["ports"][0]["state"], &stopped["ports"][0]["stopReason"]), (&json!("finished"), &json!(7)), "{stopped}");
    let corrected = order_detail(&app, &token, &order).await;
    assert_eq!((&corrected["status"], &corrected["stopReason"]), (&json!(4), &json!(6)), "{corrected}");
    assert_eq!(wh(&corrected["powerConsumption"]), stopped["ports"][0]["energyWh"].as_i64().unwrap(), "billed on the final reading: {corrected} {stopped}");
    assert!(fen(&corrected["totalAmount"]) > fen(&detail["totalAmount"]), "{corrected} {detail}");
    // The port takes a new order, and its charger starts it.
    let next = driver(&app, "after-silence").await;
    charging_on(&app, &next, (AC_PILE, AC_PORT, AC_DEVICE), 1, json!(0), 1).await;
}

/// An order ended while its charger was silent, with a WeChat payment of it waiting when the
/// charger answers again: the session is stopped, but the bill stays as it was — the payment
/// placed for that total can still be made, and must then pay it, not be refunded.
#[tokio::test]
async fn a_waiting_payment_keeps_the_bill_it_was_made_for() {
    let app = TestApp::charging().await;
    let (token, order, detail) = lost_on_ac(&app, "silent-paying").await;
    let payment = ok(&app.post(PAY, Some(&token), json!({ "orderId": order, "paymentMethod": 1 })).await);
    device_event(&app, AC_DEVICE, "online", None).await;
    port(&app, &token, AC_PORT).await;
    let stopped = device_state(&app, AC_DEVICE).await;
    assert_eq!(stopped["ports"][0]["state"], "finished", "{stopped}");
    assert!(stopped["ports"][0]["energyWh"].as_i64().unwrap() > wh(&detail["powerConsumption"]), "{stopped} {detail}");
    let kept = order_detail(&app, &token, &order).await;
    assert_eq!((&kept["totalAmount"], &kept["powerConsumption"]), (&detail["totalAmount"], &detail["powerConsumption"]), "{kept}");
    let paid = app.sandbox_pay(payment["paymentId"].as_str().unwrap(), "success").await;
    assert_eq!(paid.body["notify"]["status"], json!(200), "{}", paid.body);
    assert_eq!(order_detail(&app, &token, &order).await["paymentStatus"], 1);
}

#[tokio::test]
async fn a_pile_back_within_the_minute_reports_how_the_session_ended() {
    let app = TestApp::charging().await;
    let token = driver(&app, "flaky-pile").await;
    let order = charging(&app, &token, 1, json!(0), 1).await;
    advance(&app, 3);
    device_event(&app, DC_DEVICE, "offline", None).await;
    advance(&app, 10);
    device_event(&app, DC_DEVICE, "online", None).await;
    // The charger ended the session when it lost its connection: a fault, billed on what it
    // delivered until then.
    let detail = until_ended(&app, &token, &order, 1).await;
    assert_eq!((&detail["status"], &detail["stopReason"]), (&json!(4), &json!(6)), "{detail}");
    let device = device_state(&app, DC_DEVICE).await;
    assert_eq!(device["ports"][0]["energyWh"], wh(&detail["powerConsumption"]), "{device}");
    assert_eq!(port(&app, &token, DC_PORT).await["status"], 1);
}

#[tokio::test]
async fn a_station_under_maintenance_takes_no_order_and_its_piles_say_so() {
    let app = TestApp::charging().await;
    let token = driver(&app, "maintenance-watcher").await;
    // ST0003 (海岸城) is seeded 维护中 (status 2) with one online DC pile, CP0007.
    let station = ok(&app.get("/api/station/ST0003", Some(&token)).await);
    assert_eq!((&station["status"], &station["availablePorts"]), (&json!(2), &json!(0)), "{station}");
    assert_eq!(station["piles"][0]["status"], 3, "none usable: {station}");
    let pile = ok(&app.get("/api/pile/CP0007", Some(&token)).await);
    assert_eq!((&pile["onlineStatus"], &pile["status"]), (&json!(1), &json!(3)), "{pile}");
    let piles = ok(&app.get("/api/ChargingPile/station/ST0003", Some(&token)).await);
    assert_eq!(piles[0]["status"], 3, "{piles}");
    let refusal = create(&app, &token, "CP0007", "PT000701", 1, json!(0), 1).await;
    refused(&refusal, 400, 2006);
    assert!(refusal.body["message"].as_str().unwrap().contains("维护中"), "{}", refusal.body);
}
