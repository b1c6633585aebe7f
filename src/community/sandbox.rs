//! The community API's own sandbox routes, beside the providers' (`crate::sandbox`): the
//! 物业端 reviewer and the property system that issues fee orders, neither of which the
//! document's API has. They exist only while one of the API's providers is the sandbox.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use super::service::CommunityService;
use crate::storage::community::Decided;

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// The routes, with what each does (banner and index page).
pub const ROUTES: &[(&str, &str)] = &[
    (
        "POST /_sandbox/shenhe/{id}?result=approve|reject&reason=TEXT",
        "the 物业端 reviewer decides a pending review (approval creates the binding)",
    ),
    (
        "POST /_sandbox/orders {\"house_id\",\"title\",\"amount_fen\"}",
        "the property system issues a fee order on a house",
    ),
];

/// - `POST /_sandbox/shenhe/{id}?result=approve|reject&reason=` → 200 `{"id","shenhe_status"}`
///   (1 approved, 0 refused); unknown review 404, not pending (decided or deleted) 409, other
///   `result` 400.
/// - `POST /_sandbox/orders {"house_id", "title", "amount_fen", "manager"?}` → 201
///   `{"id","number"}`; unknown house 404, empty title or amount ≤ 0 400.
///
/// Errors are `{"error": "…"}`.
pub fn routes(service: Arc<CommunityService>) -> Router {
    Router::new()
        .route("/_sandbox/shenhe/{id}", post(decide))
        .route("/_sandbox/orders", post(issue_order))
        .with_state(service)
}

async fn decide(State(service): State<Arc<CommunityService>>, Path(id): Path<i64>, Query(query): Query<HashMap<String, String>>) -> Response {
    let approve = match query.get("result").map(String::as_str) {
        Some("approve") | None => true,
        Some("reject") => false,
        Some(other) => return error(StatusCode::BAD_REQUEST, format!("result must be approve or reject, not {other:?}")),
    };
    match service.db.household().review(id).await {
        Ok(Some(_)) => {}
        Ok(None) => return error(StatusCode::NOT_FOUND, format!("no review {id}")),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
    match service.decide_review(id, approve, query.get("reason").map(String::as_str)).await {
        Ok(Decided::Done(status)) => Json(json!({ "id": id, "shenhe_status": status as i32 })).into_response(),
        Ok(Decided::NotPending) => error(StatusCode::CONFLICT, format!("review {id} is not pending")),
        Ok(Decided::Conflict(why)) => error(StatusCode::CONFLICT, why),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(serde::Deserialize)]
struct NewOrder {
    house_id: i64,
    title: String,
    amount_fen: i64,
    manager: Option<String>,
}

async fn issue_order(State(service): State<Arc<CommunityService>>, Json(order): Json<NewOrder>) -> Response {
    if order.title.trim().is_empty() || order.amount_fen <= 0 {
        return error(StatusCode::BAD_REQUEST, "title must not be empty and amount_fen must be positive");
    }
    match service.db.community_tree().house(order.house_id).await {
        Ok(Some(_)) => {}
        Ok(None) => return error(StatusCode::NOT_FOUND, format!("no house {}", order.house_id)),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
    let now = service.clock.now_ms();
    let number = format!(
        "{}{}",
        chrono::DateTime::from_timestamp_millis(now).unwrap_or_default().with_timezone(&crate::clock::BEIJING).format("%Y%m%d%H%M%S"),
        crate::random::digits(6)
    );
    let manager = order.manager.unwrap_or_else(|| "晨曦家园物业有限公司".into());
    let result = service
        .db
        .fees()
        .seed_order(&number, Some(order.house_id), order.title.trim(), order.amount_fen, &manager, None, None, None, now)
        .await;
    match result {
        Ok(id) => (StatusCode::CREATED, Json(json!({ "id": id, "number": number }))).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

