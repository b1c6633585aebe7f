//! 000 §6–§8: `config_agreements_get`, `config_system_get`, `health_check` from storage.

use serde_json::Value;

use crate::app::TestApp;

#[tokio::test]
async fn config_and_health_answer_from_storage() {
    let app = TestApp::heating().await;
    let health = app.get("/health", None).await;
    assert_eq!((health.status, health.data()["mongodb"].as_str()), (200, Some("connected")));
    let agreements = app.get("/api/config/agreements", None).await;
    assert_eq!(agreements.data()["user_agreement"]["title"], "用户协议");
    assert_eq!(agreements.data()["privacy_policy"]["version"], "1.0");
    let system = app.get("/api/config/system", None).await;
    assert_eq!(system.data()["customer_service_phone"], "0991-1234567");
    assert_eq!(system.data()["maintenance_notice"], Value::Null);
    insta::assert_json_snapshot!("heating_system_config", system.data());
}
