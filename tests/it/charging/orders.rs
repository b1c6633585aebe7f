//! 订单 and 充电控制: one live order a port however many users race for it, idempotent starts,
//! the five-minute start window, stopping before and during a session (by order, by order and
//! device, by device and port), the operator's pile configuration, the money and time limits,
//! and the refusals (balance, 支付宝, an unpaid order, a live order of the same user, a disabled
//! port, bad parameters).

use serde_json::{Value, json};

use super::*;

#[tokio::test]
async fn of_a_hundred_concurrent_orders_on_one_port_exactly_one_is_placed() {
    let app = TestApp::charging().await;
    let mut tokens = Vec::new();
    for n in 0..100 {
        tokens.push(driver(&app, &format!("racer-{n}")).await);
    }
    let replies = join_all(tokens.iter().map(|token| create(&app, token, DC_PILE, DC_PORT, 1, json!(0), 1)).collect()).await;
    let winners: Vec<usize> = (0..replies.len()).filter(|i| replies[*i].status == 200).collect();
    assert_eq!(winners.len(), 1, "{:?}", replies.iter().map(|r| &r.body).collect::<Vec<_>>());
    for (i, reply) in replies.iter().enumerate() {
        if i != winners[0] {
            refused(reply, 409, 2005);
        }
    }
    let winner = &tokens[winners[0]];
    let order = created(&replies[winners[0]], DC_DEVICE);
    let held = port(&app, winner, DC_PORT).await;
    assert_eq!((&held["status"], &held["currentOrderId"]), (&json!(2), &json!(order)), "{held}");
    let listed = ok(&app.get(&format!("/api/ChargingPort?pileId={DC_PILE}"), Some(winner)).await);
    assert_eq!((&listed[0]["id"], &listed[0]["currentOrderId"], &listed[0]["status"]), (&json!(DC_PORT), &json!(order), &json!(2)));
    assert_eq!((&listed[1]["currentOrderId"], &listed[1]["status"]), (&json!(null), &json!(1)));
    // Only the winner has an order.
    for (i, token) in tokens.iter().enumerate() {
        let total = ok(&app.get(ORDERS, Some(token)).await)["total"].as_i64().unwrap();
        assert_eq!(total, i64::from(i == winners[0]), "user {i}");
    }
    // The other port of the pile is still free.
    created(&create(&app, &tokens[(winners[0] + 1) % 100], DC_PILE, DC_PORT_2, 1, json!(0), 1).await, DC_DEVICE);
}

/// One user, one live order: of one user's concurrent orders on four ports exactly one is
/// placed; a later one, on another pile, is refused (3002, naming the live order) and holds no
/// port, while the order is created and while it charges; other users are not held back; once
/// it has ended the user orders again.
#[tokio::test]
async fn a_start_and_a_stop_at_once_leave_no_charger_charging_for_an_ended_order() {
    // Whichever wins, the order ends either cancelled with its charger idle, or started and
    // then stopped: never cancelled while the charger charges for it, nor answered "started"
    // and then found cancelled. (A stop landing between the start's write and its read-back
    // completes the order; the start then answers 3003. Rare here, seen once on a loaded CI.)
    let app = TestApp::charging().await;
    for round in 0..8 {
        let token = driver(&app, &format!("start-stop-{round}")).await;
        let order = created(&create(&app, &token, DC_PILE, DC_PORT, 1, json!(0), 1).await, DC_DEVICE);
        let stop = format!("/api/order/{order}/stop");
        let (started, stopped) = tokio::join!(start(&app, &token, &order, DC_DEVICE), app.post(&stop, Some(&token), json!({ "stopReason": 1 })));
        assert_eq!(stopped.status, 200, "round {round}: {}", stopped.body);
        let device = device_state(&app, DC_DEVICE).await;
        let charging_it = device["ports"][0]["state"] == "charging" && device["ports"][0]["orderId"] == json!(order);
        let detail = order_detail(&app, &token, &order).await;
        match (started.status, detail["status"].as_i64()) {
            (200, Some(2)) => assert!(!charging_it, "round {round}: {device}"),
            (400, Some(3)) => {
                assert_eq!(started.code(), 3004, "round {round}: {}", started.body);
                assert!(!charging_it, "round {round}: cancelled, its charger charging: {device}");
            }
            // The start took the charger, then the stop completed the order before the start
            // read it back: "订单已完成", as any later start of it is answered.
            (400, Some(2)) => {
                assert_eq!(started.code(), 3003, "round {round}: {}", started.body);
                assert!(!charging_it, "round {round}: completed, its charger charging: {device}");
            }
            other => panic!("round {round}: start {} {}, order {detail}", other.0, started.body),
        }
    }
}

#[tokio::test]
async fn a_user_has_one_live_order_at_a_time() {
    let app = TestApp::charging().await;
    let token = driver(&app, "four-cars").await;
    let ports = [(DC_PILE, DC_PORT, DC_DEVICE), (DC_PILE, DC_PORT_2, DC_DEVICE), (DC2_PILE, DC2_PORT, DC2_DEVICE), (AC_PILE, AC_PORT, AC_DEVICE)];
    let replies = join_all(ports.iter().map(|(pile, port, _)| create(&app, &token, pile, port, 1, json!(0), 1)).collect()).await;
    let placed: Vec<usize> = (0..replies.len()).filter(|i| replies[*i].status == 200).collect();
    assert_eq!(placed.len(), 1, "{:?}", replies.iter().map(|r| &r.body).collect::<Vec<_>>());
    for reply in replies.iter().filter(|reply| reply.status != 200) {
        refused(reply, 400, 3002);
    }
    let (_, held_port, device) = ports[placed[0]];
    let first = created(&replies[placed[0]], device);
    for (_, port_id, _) in ports {
        let expected = if port_id == held_port { json!(first) } else { json!(null) };
        assert_eq!(port(&app, &token, port_id).await["currentOrderId"], expected, "{port_id}");
    }
    assert_eq!(ok(&app.get(ORDERS, Some(&token)).await)["total"], json!(1));

    let (free_pile, free_port, free_device) = ports.into_iter().find(|(pile, _, _)| *pile != ports[placed[0]].0).unwrap();
    let number = app.server.db.charging().order(&first).await.unwrap().unwrap().order_no;
    let later = create(&app, &token, free_pile, free_port, 1, json!(0), 1).await;
    refused(&later, 400, 3002);
    assert!(later.body["message"].as_str().unwrap().contains(&number), "{}", later.body);
    started(&app, &token, &first, device).await;
    refused(&create(&app, &token, free_pile, free_port, 1, json!(0), 1).await, 400, 3002);
    assert_eq!(port(&app, &token, free_port).await["currentOrderId"], json!(null));
    // Another user is not held back by it.
    let other = driver(&app, "one-car").await;
    let others = created(&create(&app, &other, free_pile, free_port, 1, json!(0), 1).await, free_device);
    ok(&app.post(&format!("/api/order/{others}/stop"), Some(&other), json!({ "stopReason": 1 })).await);
    // Ended (nothing was billed yet, so nothing is owed): the user orders again.
    ok(&app.post(&format!("/api/order/{first}/stop"), Some(&token), json!({ "stopReason": 1 })).await);
    created(&create(&app, &token, free_pile, free_port, 1, json!(0), 1).await, free_device);
}

/// A driver's stop is recorded as 用户主动停止 (1) or 其他 (7), as the driver says; naming what
/// only the charger or the server observes (2–6) records 1, and a claimed pile fault (6) does
/// not end the order abnormal. An operator's stop keeps the reason given.
#[tokio::test]
async fn a_drivers_stop_is_recorded_as_the_drivers() {
    let app = TestApp::charging().await;
    let cases = [(2, 1), (5, 1), (6, 1), (7, 7), (1, 1)];
    for (n, (asked, recorded)) in cases.into_iter().enumerate() {
        let token = driver(&app, &format!("claims-{n}")).await;
        let order = charging(&app, &token, 1, json!(0), 1).await;
        advance(&app, 2);
        let stopped = ok(&app.post(&format!("/api/order/{order}/stop"), Some(&token), json!({ "stopReason": asked })).await);
        assert_eq!(stopped["status"], json!(2), "asked {asked}: {stopped}");
        let detail = order_detail(&app, &token, &order).await;
        assert_eq!((&detail["status"], &detail["stopReason"]), (&json!(2), &json!(recorded)), "asked {asked}: {detail}");
        assert_eq!(port(&app, &token, DC_PORT).await["status"], json!(1), "asked {asked}: the port is not faulted");
        // Paid, so that the next driver's session is not held behind anything of this one's.
        let payment = ok(&app.post(PAY, Some(&token), json!({ "orderId": order, "paymentMethod": 1 })).await)["paymentId"].as_str().unwrap().to_owned();
        assert_eq!(app.sandbox_pay(&payment, "success").await.body["notify"]["status"], json!(200));
    }
    let admin = operator(&app).await;
    let order = charging(&app, &admin, 1, json!(0), 1).await;
    advance(&app, 2);
    ok(&app.post(&format!("/api/order/{order}/stop"), Some(&admin), json!({ "stopReason": 6 })).await);
    let detail = order_detail(&app, &admin, &order).await;
    assert_eq!((&detail["status"], &detail["stopReason"]), (&json!(4), &json!(6)), "{detail}");
}

#[tokio::test]
async fn an_order_id_drawn_twice_writes_nothing_and_is_drawn_again() {
    use mpapi::storage::charging::{Created, Order};
    let app = TestApp::charging().await;
    let token = driver(&app, "id-twice").await;
    let id = created(&create(&app, &token, DC_PILE, DC_PORT, 1, json!(0), 1).await, DC_DEVICE);
    let store = app.server.db.charging();
    let live = store.order(&id).await.unwrap().unwrap();
    let free = || async { store.port(DC2_PORT).await.unwrap().unwrap().current_order_id.is_none() };
    // Ids are the second and four random digits: another order of the same second may draw the
    // live order's. Its port claim meets the live order's (`current_order_id` is unique).
    // (Another user's: the live order's own user has a live order, which refuses it first.)
    let same_id = Order { user_id: DEMO_USER_ID, pile_id: DC2_PILE.into(), port_id: DC2_PORT.into(), ..live.clone() };
    assert!(matches!(store.create_order(same_id).await.unwrap(), Created::IdTaken));
    assert!(free().await, "nothing written");
    // Its number taken by an order (`order_no` is unique): the port's claim is rolled back.
    let same_number =
        Order { id: "ORD202601010000000001".into(), user_id: DEMO_USER_ID, pile_id: DC2_PILE.into(), port_id: DC2_PORT.into(), ..live };
    assert!(matches!(store.create_order(same_number).await.unwrap(), Created::IdTaken));
    assert!(free().await, "the claim went with the rollback");
    // The service draws again: the port is still free for a real order.
    let other = driver(&app, "id-twice-2").await;
    created(&create(&app, &other, DC2_PILE, DC2_PORT, 1, json!(0), 1).await, DC2_DEVICE);
    assert!(!free().await);
}

#[tokio::test]
async fn concurrent_starts_of_one_order_all_succeed_with_one_session() {
    let app = TestApp::charging().await;
    let token = driver(&app, "double-tapper").await;
    let order = created(&create(&app, &token, DC_PILE, DC_PORT, 1, json!(0), 1).await, DC_DEVICE);
    let replies = join_all((0..8).map(|_| start(&app, &token, &order, DC_DEVICE)).collect()).await;
    for reply in &replies {
        assert_eq!(ok(reply), json!({ "success": true, "orderId": order, "status": 1 }));
    }
    let started_at = order_detail(&app, &token, &order).await["startTime"].clone();
    // Started again later: the same session, not a new one.
    advance(&app, 2);
    started(&app, &token, &order, DC_DEVICE).await;
    let detail = order_detail(&app, &token, &order).await;
    assert_eq!((&detail["status"], &detail["startTime"]), (&json!(1), &started_at));
    let device = device_state(&app, DC_DEVICE).await;
    assert_eq!((&device["ports"][0]["orderId"], &device["ports"][0]["state"]), (&json!(order), &json!("charging")), "{device}");
    let session_start = device["ports"][0]["startedAt"].clone();
    started(&app, &token, &order, DC_DEVICE).await;
    assert_eq!(device_state(&app, DC_DEVICE).await["ports"][0]["startedAt"], session_start);
    // Another user's start of it: 403.
    let other = driver(&app, "not-the-owner").await;
    refused(&start(&app, &other, &order, DC_DEVICE).await, 403, 403);
}

#[tokio::test]
async fn an_order_not_started_in_five_minutes_is_cancelled_and_frees_its_port() {
    let app = TestApp::charging().await;
    let token = driver(&app, "forgetful").await;
    let order = created(&create(&app, &token, DC_PILE, DC_PORT, 1, json!(0), 1).await, DC_DEVICE);
    advance(&app, 4 * 60);
    assert_eq!(order_status(&app, &token, &order).await["status"], 0);
    advance(&app, 2 * 60);
    let status = order_status(&app, &token, &order).await;
    assert_eq!((&status["status"], &status["powerConsumption"], &status["amount"]), (&json!(3), &json!(0.0), &json!(0.0)), "{status}");
    let detail = order_detail(&app, &token, &order).await;
    assert_eq!((&detail["stopReason"], &detail["totalAmount"], &detail["paymentStatus"]), (&json!(null), &json!(0.0), &json!(0)), "{detail}");
    let freed = port(&app, &token, DC_PORT).await;
    assert_eq!((&freed["status"], &freed["currentOrderId"], &freed["lastOrderId"], &freed["totalChargingTimes"]), (&json!(1), &json!(null), &json!(order), &json!(0)));
    // Too late to start; nothing to pay; the port takes a new order.
    refused(&start(&app, &token, &order, DC_DEVICE).await, 400, 3004);
    refused(&app.post(PAY, Some(&token), json!({ "orderId": order, "paymentMethod": 1 })).await, 400, 3004);
    created(&create(&app, &token, DC_PILE, DC_PORT, 1, json!(0), 1).await, DC_DEVICE);
}

#[tokio::test]
async fn an_order_stopped_before_it_starts_is_cancelled() {
    let app = TestApp::charging().await;
    let token = driver(&app, "changed-my-mind").await;
    let order = created(&create(&app, &token, DC_PILE, DC_PORT, 1, json!(0), 1).await, DC_DEVICE);
    let stopped = ok(&app.post(&format!("/api/order/{order}/stop"), Some(&token), json!({ "stopReason": 1 })).await);
    assert_eq!((&stopped["orderId"], &stopped["status"], &stopped["powerConsumption"], &stopped["amount"]), (&json!(order), &json!(3), &json!(0.0), &json!(0.0)));
    assert_eq!(order_detail(&app, &token, &order).await["stopReason"], json!(null));
    assert_eq!(port(&app, &token, DC_PORT).await["status"], 1);
    // Once cancelled: stopping or starting again says so.
    refused(&app.post(&format!("/api/order/{order}/stop"), Some(&token), json!({ "stopReason": 1 })).await, 400, 3004);
    refused(&start(&app, &token, &order, DC_DEVICE).await, 400, 3004);
    // charging_stop cancels a created order the same way.
    let second = created(&create(&app, &token, DC_PILE, DC_PORT, 1, json!(0), 1).await, DC_DEVICE);
    let data = ok(&app.post(STOP, Some(&token), json!({ "orderId": second, "deviceAddress": DC_DEVICE, "stopReason": 1 })).await);
    assert_eq!(data, json!({ "success": true, "orderId": second, "status": 3 }));
}

#[tokio::test]
async fn an_order_stopped_while_charging_is_completed_and_billed_on_what_it_took() {
    let app = TestApp::charging().await;
    let token = driver(&app, "stopper").await;
    let order = charging(&app, &token, 1, json!(0), 1).await;
    let live = live_after(&app, &token, &order, 4).await;
    let stopped = ok(&app.post(&format!("/api/order/{order}/stop"), Some(&token), json!({ "stopReason": 1 })).await);
    assert_eq!((&stopped["orderId"], &stopped["status"]), (&json!(order), &json!(2)), "{stopped}");
    let energy = wh(&stopped["powerConsumption"]);
    assert!(energy >= wh(&live["powerConsumption"]) && energy > 0 && energy < 40_000, "{stopped}");
    let detail = order_detail(&app, &token, &order).await;
    assert_eq!((&detail["status"], &detail["stopReason"], &detail["power"]), (&json!(2), &json!(1), &json!(0.0)), "{detail}");
    assert_eq!((wh(&detail["powerConsumption"]), &detail["amount"], &detail["endTime"]), (energy, &stopped["amount"], &stopped["endTime"]));
    assert_eq!(tier_wh(&detail), energy);
    let (amount, fee, total) = rebill(&detail, BR001_FEN_PER_KWH, BR001_FEE_PERCENT);
    assert_eq!((fen(&detail["amount"]), fen(&detail["serviceFee"]), fen(&detail["totalAmount"])), (amount, fee, total));
    assert!(total > 0);
    // The energy is frozen: time passes, nothing changes; the charger is idle.
    advance(&app, 60);
    let later = order_status(&app, &token, &order).await;
    assert_eq!((&later["status"], wh(&later["powerConsumption"]), &later["power"], &later["currentAmpere"]), (&json!(2), energy, &json!(0.0), &json!(0.0)));
    assert_eq!(order_detail(&app, &token, &order).await["totalAmount"], detail["totalAmount"]);
    let device = device_state(&app, DC_DEVICE).await;
    assert_eq!((&device["ports"][0]["state"], &device["ports"][0]["stopReason"], &device["ports"][0]["energyWh"]), (&json!("finished"), &json!(1), &json!(energy)));
    // Stopped already.
    refused(&app.post(&format!("/api/order/{order}/stop"), Some(&token), json!({ "stopReason": 1 })).await, 400, 3003);
    refused(&start(&app, &token, &order, DC_DEVICE).await, 400, 3003);
}

/// `POST /api/ChargingPile/{device}/start` of `order` on `port` (remote, 充满自停): (path, body).
fn device_start(device: &str, order: &str, port: i64) -> (String, Value) {
    let body = json!({ "port": port, "orderId": order, "startMode": 2, "chargingMode": 1, "chargingParam": 0, "availableAmount": 0 });
    (format!("/api/ChargingPile/{device}/start"), body)
}

#[tokio::test]
async fn charging_stop_and_the_device_level_controls() {
    let app = TestApp::charging().await;
    let token = driver(&app, "device-level").await;
    let other = driver(&app, "device-level-other").await;
    let order = created(&create(&app, &token, DC_PILE, DC_PORT, 1, json!(0), 1).await, DC_DEVICE);
    // Not its device, not its port, not his order, no such order, no such device.
    let (path, body) = device_start(DC2_DEVICE, &order, 1);
    refused(&app.post(&path, Some(&token), body).await, 400, 400);
    let (path, body) = device_start(DC_DEVICE, &order, 2);
    refused(&app.post(&path, Some(&token), body).await, 400, 400);
    let (path, body) = device_start(DC_DEVICE, &order, 1);
    refused(&app.post(&path, Some(&other), body).await, 403, 403);
    let (path, body) = device_start(DC_DEVICE, "ORD2099010100000000", 1);
    refused(&app.post(&path, Some(&token), body).await, 404, 3001);
    let (path, body) = device_start("99999999", &order, 1);
    refused(&app.post(&path, Some(&token), body).await, 404, 2002);
    // Another charging mode than the order's; a card start without a card.
    let mismatch = json!({ "port": 1, "orderId": order, "startMode": 2, "chargingMode": 3, "chargingParam": 60, "availableAmount": 0 });
    refused(&app.post(&format!("/api/ChargingPile/{DC_DEVICE}/start"), Some(&token), mismatch).await, 400, 400);
    let no_card = json!({ "port": 1, "orderId": order, "startMode": 1, "chargingMode": 1, "chargingParam": 0, "availableAmount": 0 });
    refused(&app.post(&format!("/api/ChargingPile/{DC_DEVICE}/start"), Some(&token), no_card).await, 400, 400);
    // A device-level stop of an order not yet started: the pile is not charging it.
    let stop_body = json!({ "port": 1, "orderId": order, "stopReason": 1 });
    refused(&app.post(&format!("/api/ChargingPile/{DC_DEVICE}/stop"), Some(&token), stop_body.clone()).await, 400, 5004);
    // charging_start with the wrong device; charging_stop likewise; unknown order; another's order.
    refused(&start(&app, &token, &order, DC2_DEVICE).await, 400, 400);
    refused(&app.post(STOP, Some(&token), json!({ "orderId": order, "deviceAddress": DC2_DEVICE, "stopReason": 1 })).await, 400, 400);
    refused(&app.post(STOP, Some(&token), json!({ "orderId": "ORD2099010100000000", "deviceAddress": DC_DEVICE, "stopReason": 1 })).await, 404, 3001);
    refused(&app.post(STOP, Some(&other), json!({ "orderId": order, "deviceAddress": DC_DEVICE, "stopReason": 1 })).await, 403, 403);
    refused(&start(&app, &token, "ORD2099010100000000", DC_DEVICE).await, 404, 3001);

    // Held by the order but not started: the charger's port is 空闲 (2 here is 充电中), with the order.
    let held = ok(&app.get(&format!("/api/ChargingPile/{DC_DEVICE}/status?port=1"), Some(&token)).await);
    assert_eq!((&held["status"], &held["orderId"], &held["power"]), (&json!(1), &json!(order), &json!(0.0)), "{held}");

    // The device-level start.
    let (path, body) = device_start(DC_DEVICE, &order, 1);
    assert_eq!(ok(&app.post(&path, Some(&token), body).await), json!({ "message": "启动充电命令已发送" }));
    assert_eq!(order_status(&app, &token, &order).await["status"], 1);
    advance(&app, 3);
    // The device-level status of the port, and the pile's status (all ports, or one).
    let port_status = ok(&app.get(&format!("/api/ChargingPile/{DC_DEVICE}/status?port=1"), Some(&token)).await);
    assert_eq!(
        (&port_status["deviceAddress"], &port_status["port"], &port_status["status"], &port_status["orderId"], &port_status["voltage"], &port_status["current"], &port_status["power"]),
        (&json!(DC_DEVICE), &json!(1), &json!(2), &json!(order), &json!(750.0), &json!(80.0), &json!(60.0)),
        "{port_status}"
    );
    assert!(wh(&port_status["electricity"]) > 0 && port_status["chargingTime"].as_i64().unwrap() > 0, "{port_status}");
    let idle = ok(&app.get(&format!("/api/ChargingPile/{DC_DEVICE}/status?port=2"), Some(&token)).await);
    assert_eq!((&idle["status"], &idle["orderId"], &idle["electricity"], &idle["power"]), (&json!(1), &json!(null), &json!(0.0), &json!(0.0)), "{idle}");
    refused(&app.get(&format!("/api/ChargingPile/{DC_DEVICE}/status?port=3"), Some(&token)).await, 404, 2003);
    let pile = ok(&app.get(&format!("{PILE_STATUS}?deviceAddress={DC_DEVICE}"), Some(&token)).await);
    assert_eq!((&pile["deviceAddress"], &pile["status"]), (&json!(DC_DEVICE), &json!(1)), "one port free: {pile}");
    let ports: Vec<(&str, i64)> = pile["ports"].as_array().unwrap().iter().map(|p| (p["portNo"].as_str().unwrap(), p["status"].as_i64().unwrap())).collect();
    assert_eq!(ports, [("1", 2), ("2", 1)]);
    assert_eq!(pile["ports"][0]["currentOrderId"], order.as_str());
    let one = ok(&app.get(&format!("{PILE_STATUS}?deviceAddress={DC_DEVICE}&portNo=1"), Some(&token)).await);
    assert_eq!((one["ports"].as_array().unwrap().len(), &one["ports"][0]["portNo"]), (1, &json!("1")));
    refused(&app.get(&format!("{PILE_STATUS}?deviceAddress={DC_DEVICE}&portNo=9"), Some(&token)).await, 404, 2003);
    refused(&app.get(&format!("{PILE_STATUS}?deviceAddress=99999999"), Some(&token)).await, 404, 2002);

    // The device-level stop: completed with the reason given.
    refused(&app.post(&format!("/api/ChargingPile/{DC_DEVICE}/stop"), Some(&other), stop_body.clone()).await, 403, 403);
    assert_eq!(ok(&app.post(&format!("/api/ChargingPile/{DC_DEVICE}/stop"), Some(&token), stop_body.clone()).await), json!({ "message": "停止充电命令已发送" }));
    let detail = order_detail(&app, &token, &order).await;
    assert_eq!((&detail["status"], &detail["stopReason"]), (&json!(2), &json!(1)), "{detail}");
    assert!(wh(&detail["powerConsumption"]) > 0);
    refused(&app.post(&format!("/api/ChargingPile/{DC_DEVICE}/stop"), Some(&token), stop_body).await, 400, 3003);

    // charging_stop of a charging order (after paying the first), with its own reason.
    let payment = ok(&app.post(PAY, Some(&token), json!({ "orderId": order, "paymentMethod": 1 })).await)["paymentId"].as_str().unwrap().to_owned();
    assert_eq!(app.sandbox_pay(&payment, "success").await.body["notify"]["status"], json!(200));
    let second = charging(&app, &token, 1, json!(0), 1).await;
    advance(&app, 2);
    let data = ok(&app.post(STOP, Some(&token), json!({ "orderId": second, "deviceAddress": DC_DEVICE, "stopReason": 7 })).await);
    assert_eq!(data, json!({ "success": true, "orderId": second, "status": 2 }));
    let detail = order_detail(&app, &token, &second).await;
    assert_eq!((&detail["status"], &detail["stopReason"]), (&json!(2), &json!(7)));
}

#[tokio::test]
async fn only_the_operator_configures_a_pile_and_not_while_it_charges() {
    let app = TestApp::charging().await;
    let token = driver(&app, "would-be-operator").await;
    let operator = operator(&app).await;
    let path = format!("/api/ChargingPile/{DC_DEVICE}/config");
    let config = json!({ "config": [0, 1, 2, 3] });
    refused(&app.post(&path, Some(&token), config.clone()).await, 403, 403);
    let demo = demo(&app).await;
    refused(&app.post(&path, Some(&demo), config.clone()).await, 403, 403);
    assert_eq!(ok(&app.post(&path, Some(&operator), config.clone()).await), json!({ "message": "配置命令已发送" }));
    refused(&app.post("/api/ChargingPile/99999999/config", Some(&operator), config.clone()).await, 404, 2002);
    assert_eq!(app.post(&path, Some(&operator), json!({ "config": [256] })).await.status, 400);
    // While any port holds an order (created, then charging): 5003.
    let order = created(&create(&app, &token, DC_PILE, DC_PORT_2, 1, json!(0), 1).await, DC_DEVICE);
    refused(&app.post(&path, Some(&operator), config.clone()).await, 409, 5003);
    started(&app, &token, &order, DC_DEVICE).await;
    advance(&app, 2);
    refused(&app.post(&path, Some(&operator), config.clone()).await, 409, 5003);
    ok(&app.post(&format!("/api/order/{order}/stop"), Some(&token), json!({ "stopReason": 1 })).await);
    ok(&app.post(&path, Some(&operator), config.clone()).await);
    // An offline pile cannot take it.
    device_event(&app, DC2_DEVICE, "offline", None).await;
    refused(&app.post(&format!("/api/ChargingPile/{DC2_DEVICE}/config"), Some(&operator), config).await, 400, 2004);
}

#[tokio::test]
async fn by_amount_stops_once_the_bill_reaches_the_amount() {
    let app = TestApp::charging().await;
    let token = driver(&app, "five-yuan").await;
    let order = charging(&app, &token, 2, json!(5), 1).await;
    // One second at a time (a kWh at 60 kW and time scale 60), reading as the mini-program polls.
    let detail = until_ended(&app, &token, &order, 1).await;
    assert_eq!((&detail["status"], &detail["stopReason"], &detail["chargingMode"]), (&json!(2), &json!(5), &json!(2)), "{detail}");
    let (amount, fee, total) = rebill(&detail, BR001_FEN_PER_KWH, BR001_FEE_PERCENT);
    assert_eq!((fen(&detail["amount"]), fen(&detail["serviceFee"]), fen(&detail["totalAmount"])), (amount, fee, total));
    // The rule: the server stops the charger at the first reading whose bill (electricity and
    // service fee) reaches the amount, and bills at most the amount — the energy past it (up to
    // one reading's worth) is not charged — so the total is the amount, to within a fen.
    assert!((499..=500).contains(&total), "{detail}");
    assert_eq!(tier_wh(&detail), wh(&detail["powerConsumption"]));
    // The charger stopped with the same reason, at the billed energy.
    let device = device_state(&app, DC_DEVICE).await;
    assert_eq!((&device["ports"][0]["state"], &device["ports"][0]["stopReason"]), (&json!("finished"), &json!(5)), "{device}");
    assert!(device["ports"][0]["energyWh"].as_i64().unwrap() >= wh(&detail["powerConsumption"]));
}

/// A live order whose last reading went past its amount while its charger could not be
/// stopped (offline before the stop reached it): §5.2.1's status shows the kWh and the amount
/// billed so far, both capped where the amount ends, as §5.2's detail shows them — not the
/// meter's kWh beside the capped amount; §5.3's list shows the same.
#[tokio::test]
async fn a_live_order_past_its_amount_shows_the_capped_kwh_in_its_status() {
    let app = TestApp::charging().await;
    let token = driver(&app, "past-the-amount").await;
    // 20 yuan: a slow machine's real seconds (60 simulated ones each) do not reach it first.
    let order = charging(&app, &token, 2, json!(20), 1).await;
    let under = live_after(&app, &token, &order, 1).await;
    assert!(fen(&under["amount"]) < 2000, "{under}");
    device_event(&app, DC_DEVICE, "offline", None).await;
    // The reading the watchdog recorded before its stop found the charger gone: 100 kWh (past
    // 20 yuan at any tier).
    let at = app.server.clock.now_ms() + 1000;
    app.server.db.charging().record_sample(&order, at, 100_000, 60_000, 2200, 27_272, 62).await.unwrap();
    let status = order_status(&app, &token, &order).await;
    let detail = order_detail(&app, &token, &order).await;
    assert_eq!((&status["status"], &detail["status"]), (&json!(1), &json!(1)), "{status}");
    assert_eq!((&status["powerConsumption"], &status["amount"]), (&detail["powerConsumption"], &detail["amount"]), "{status}\n{detail}");
    let listed = ok(&app.get(ORDERS, Some(&token)).await)["list"][0].clone();
    assert_eq!((&listed["id"], &listed["status"]), (&json!(order), &json!(1)), "{listed}");
    assert_eq!((&listed["powerConsumption"], &listed["amount"]), (&detail["powerConsumption"], &detail["amount"]), "§5.3 as §5.2: {listed}");
    assert!(wh(&status["powerConsumption"]) < 100_000 && fen(&detail["totalAmount"]) <= 2000, "{status}\n{detail}");
}

#[tokio::test]
async fn a_session_limited_by_the_balance_can_be_paid_from_it() {
    let app = TestApp::charging().await;
    let token = driver(&app, "one-yuan-wallet").await;
    let data = ok(&app.post(RECHARGE, Some(&token), json!({ "amount": 1, "paymentMethod": 1 })).await);
    let recharge = data["rechargeId"].as_str().unwrap();
    assert_eq!(app.sandbox_pay(recharge, "success").await.body["notify"]["status"], json!(200));
    assert_eq!(balance(&app, &token).await, 100);
    // 充满自停 from a balance of 1.00: the server stops it when the money runs out.
    let order = charging(&app, &token, 1, json!(0), 3).await;
    let detail = until_ended(&app, &token, &order, 1).await;
    assert_eq!((&detail["status"], &detail["stopReason"]), (&json!(2), &json!(5)), "{detail}");
    assert!(fen(&detail["totalAmount"]) <= 100, "the bill exceeds the balance it was limited by: {detail}");
    ok(&app.post(PAY, Some(&token), json!({ "orderId": order, "paymentMethod": 3 })).await);
    assert_eq!(balance(&app, &token).await, 100 - fen(&detail["totalAmount"]));
}

#[tokio::test]
async fn by_time_stops_when_the_time_is_up() {
    let app = TestApp::charging().await;
    let token = driver(&app, "one-minute").await;
    let order = charging(&app, &token, 3, json!(1), 1).await;
    let detail = until_ended(&app, &token, &order, 1).await;
    // A simulated minute of a 60 kW charger ramping up over that minute: 0.5 kWh.
    assert_eq!((&detail["status"], &detail["stopReason"], &detail["powerConsumption"]), (&json!(2), &json!(3), &json!(0.5)), "{detail}");
    let (_, _, total) = rebill(&detail, BR001_FEN_PER_KWH, BR001_FEE_PERCENT);
    assert_eq!(fen(&detail["totalAmount"]), total);
}

#[tokio::test]
async fn by_energy_on_the_ac_pile_is_billed_by_its_own_rule() {
    let app = TestApp::charging().await;
    let token = driver(&app, "ac-driver").await;
    let order = charging_on(&app, &token, (AC_PILE, AC_PORT, AC_DEVICE), 4, json!(0.25), 1).await;
    let detail = until_ended(&app, &token, &order, 5).await;
    assert_eq!((&detail["status"], &detail["stopReason"], &detail["powerConsumption"]), (&json!(2), &json!(4), &json!(0.25)), "{detail}");
    let (amount, fee, total) = rebill(&detail, BR001_FEN_PER_KWH, BR002_FEE_PERCENT);
    assert_eq!((fen(&detail["amount"]), fen(&detail["serviceFee"]), fen(&detail["totalAmount"])), (amount, fee, total));
}

#[tokio::test]
async fn a_balance_too_low_is_refused() {
    let app = TestApp::charging().await;
    let broke = driver(&app, "empty-wallet").await;
    refused(&create(&app, &broke, DC_PILE, DC_PORT, 1, json!(0), 3).await, 400, 1005);
    refused(&create(&app, &broke, DC_PILE, DC_PORT, 2, json!(10), 3).await, 400, 1005);
    // The demo driver has 86.50: 100 yuan is more, 80 is fine.
    let demo = demo(&app).await;
    refused(&create(&app, &demo, DC_PILE, DC_PORT, 2, json!(100), 3).await, 400, 1005);
    refused(&create(&app, &demo, DC_PILE, DC_PORT, 2, json!(86.51), 3).await, 400, 1005);
    created(&create(&app, &demo, DC_PILE, DC_PORT, 2, json!(86.5), 3).await, DC_DEVICE);
    // Nothing was held by the refusals.
    assert_eq!(ok(&app.get(ORDERS, Some(&broke)).await)["total"], json!(0));
}

/// 支付宝 cannot be paid inside WeChat: refused as a bad request (order, payment, recharge alike).
#[tokio::test]
async fn alipay_is_refused_as_a_bad_request() {
    let app = TestApp::charging().await;
    let token = driver(&app, "alipay-fan").await;
    let reply = create(&app, &token, DC_PILE, DC_PORT, 1, json!(0), 2).await;
    refused(&reply, 400, 400);
    assert!(reply.body["message"].as_str().unwrap().contains("支付宝"), "{}", reply.body);
    assert_eq!(port(&app, &token, DC_PORT).await["currentOrderId"], json!(null));
    assert_eq!(ok(&app.get(ORDERS, Some(&token)).await)["total"], json!(0));
}

#[tokio::test]
async fn an_unpaid_session_blocks_the_next_order() {
    let app = TestApp::charging().await;
    let token = driver(&app, "owes-money").await;
    let detail = finished_session(&app, &token, 1).await;
    let order = detail["id"].as_str().unwrap().to_owned();
    refused(&create(&app, &token, DC_PILE, DC_PORT, 1, json!(0), 1).await, 400, 3002);
    // The store checks it again under the user's lock: an order that ended after the service's
    // own check (while it asked the charger) is not missed.
    {
        use mpapi::storage::charging::{Created, Order};
        let store = app.server.db.charging();
        let ended = store.order(&order).await.unwrap().unwrap();
        let next = Order { id: "ORD209901010000000001".into(), order_no: "CD209901010000000001".into(), status: 0, ..ended };
        assert!(matches!(store.create_order(next).await.unwrap(), Created::Unpaid(unpaid) if unpaid.id == order));
        assert_eq!(store.port(DC_PORT).await.unwrap().unwrap().current_order_id, None, "nothing written");
    }
    refused(&create(&app, &token, DC2_PILE, DC2_PORT, 1, json!(0), 1).await, 400, 3002);
    // Paid: free to charge again.
    let payment = ok(&app.post(PAY, Some(&token), json!({ "orderId": order, "paymentMethod": 1 })).await)["paymentId"].as_str().unwrap().to_owned();
    refused(&create(&app, &token, DC_PILE, DC_PORT, 1, json!(0), 1).await, 400, 3002);
    assert_eq!(app.sandbox_pay(&payment, "success").await.body["notify"]["status"], json!(200));
    created(&create(&app, &token, DC_PILE, DC_PORT, 1, json!(0), 1).await, DC_DEVICE);
}

#[tokio::test]
async fn a_live_order_cannot_be_paid_yet() {
    let app = TestApp::charging().await;
    let token = driver(&app, "pays-too-early").await;
    let order = created(&create(&app, &token, DC_PILE, DC_PORT, 1, json!(0), 1).await, DC_DEVICE);
    refused(&app.post(PAY, Some(&token), json!({ "orderId": order, "paymentMethod": 1 })).await, 400, 3002);
    started(&app, &token, &order, DC_DEVICE).await;
    advance(&app, 2);
    refused(&app.post(PAY, Some(&token), json!({ "orderId": order, "paymentMethod": 1 })).await, 400, 3002);
    refused(&app.post(PAY, Some(&token), json!({ "orderId": "ORD2099010100000000", "paymentMethod": 1 })).await, 404, 3001);
}

#[tokio::test]
async fn disabled_faulty_and_unknown_ports_are_refused() {
    let app = TestApp::charging().await;
    let token = driver(&app, "picky").await;
    refused(&create(&app, &token, BROKEN_PILE, DISABLED_PORT, 1, json!(0), 1).await, 400, 2006);
    refused(&create(&app, &token, BROKEN_PILE, FAULTY_PORT, 1, json!(0), 1).await, 400, 2006);
    refused(&create(&app, &token, "CP9999", DC_PORT, 1, json!(0), 1).await, 404, 2002);
    refused(&create(&app, &token, DC_PILE, "PT999901", 1, json!(0), 1).await, 404, 2003);
    // A port of another pile.
    refused(&create(&app, &token, DC_PILE, DC2_PORT, 1, json!(0), 1).await, 404, 2003);
    let disabled = port(&app, &token, DISABLED_PORT).await;
    assert_eq!((&disabled["isDisabled"], &disabled["currentOrderId"]), (&json!(true), &json!(null)));
    let faulty = port(&app, &token, FAULTY_PORT).await;
    assert_eq!((&faulty["status"], &faulty["faultType"]), (&json!(3), &json!(1)), "{faulty}");
}

#[tokio::test]
async fn parameters_out_of_range_are_400() {
    let app = TestApp::charging().await;
    let token = driver(&app, "sloppy").await;
    for (mode, parameter) in [
        (3, json!(0.5)),
        (3, json!(0)),
        (3, json!(1441)),
        (2, json!(0)),
        (2, json!(0.001)),
        (4, json!(0)),
        (4, json!(0.0001)),
        (4, json!(1000.001)),
    ] {
        let reply = create(&app, &token, DC_PILE, DC_PORT, mode, parameter.clone(), 1).await;
        refused(&reply, 400, 400);
        assert!(!reply.body["message"].as_str().unwrap().is_empty(), "{mode} {parameter}");
    }
    for body in [
        json!({ "pileId": DC_PILE, "portId": DC_PORT, "chargingMode": 6, "chargingParameter": 0, "paymentMethod": 1 }),
        json!({ "pileId": DC_PILE, "portId": DC_PORT, "chargingMode": 1, "chargingParameter": -1, "paymentMethod": 1 }),
        json!({ "pileId": DC_PILE, "portId": DC_PORT, "chargingMode": 1, "chargingParameter": 0, "paymentMethod": 4 }),
        json!({ "pileId": DC_PILE, "chargingMode": 1, "chargingParameter": 0, "paymentMethod": 1 }),
    ] {
        assert_eq!(app.post(CREATE, Some(&token), body.clone()).await.status, 400, "{body}");
    }
    assert_eq!(app.post("/api/order/ORD1/stop", Some(&token), json!({ "stopReason": 8 })).await.status, 400);
    // None of it held the port.
    assert_eq!(port(&app, &token, DC_PORT).await["currentOrderId"], json!(null));
    assert_eq!(create(&app, &token, DC_PILE, DC_PORT, 1, json!(0), 1).await.status, 200);
}
