//! Contract tests: the five specs in `openapi/` and the files in `mocks/` obey the rules in
//! `openapi/README.md`, and each check can in fact fail.

use std::path::Path;

use serde_json::{Value, json};
use xtask::lint::{Finding, lint_all, lint_mocks, lint_spec};
use xtask::spec::{APIS, Spec, workspace_root};

fn render(findings: &[Finding]) -> String {
    findings.iter().map(|f| format!("  {f}\n")).collect()
}

#[test]
fn every_spec_and_mock_passes_lint() {
    let findings = lint_all(&workspace_root());
    assert!(findings.is_empty(), "{} findings:\n{}", findings.len(), render(&findings));
}

/// 113 operations have URLs in the documents (o2o's count includes its H5 bridge page, whose
/// URL sits outside `/api/user`). Operations whose URL we chose carry `x-undocumented-path`:
/// community §2.4.2 and the WeChat Pay v2 notify its payments need, the points WeChat Pay notify
/// the document only mentions, the points metering operation its consumption records imply, and
/// o2o's `order_pay`, which the cross-operator journey's 调起支付 needs.
#[test]
fn every_documented_operation_is_present() {
    let expected = [
        ("heating", 20, 0),
        ("points", 14, 2),
        ("community", 27, 2),
        ("charging", 36, 0),
        ("o2o", 17, 1),
    ];
    let root = workspace_root();
    for (id, documented, undocumented) in expected {
        let api = APIS.iter().copied().find(|a| a.id == id).expect("known api");
        let spec = Spec::load(&root, api).expect("spec loads");
        let chosen = |op: &xtask::spec::Operation<'_>| op.op.get("x-undocumented-path") == Some(&json!(true));
        let operations = spec.operations();
        assert_eq!(operations.iter().filter(|o| !chosen(o)).count(), documented, "{id}: documented operations");
        assert_eq!(operations.iter().filter(|o| chosen(o)).count(), undocumented, "{id}: operations with a chosen URL");
    }
}

// --- The checks themselves, on a small spec that passes, then broken one way at a time. ---

const FIXTURE: &str = r#"
openapi: 3.1.0
info: {title: 夹具, version: "1.0"}
x-api-id: heating
x-source-document: 000_45aeeb9384245282.txt
x-transcription-notes:
  - {section: "§1", finding: "a finding", decision: "a decision"}
tags: [{name: 短信}]
paths:
  /api/sms/send:
    post:
      operationId: sms_send
      summary: 发送验证码
      x-source: "000 §1.1 发送验证码"
      tags: [短信]
      security: []
      requestBody:
        content:
          application/json:
            schema: {$ref: '#/components/schemas/SmsSendRequest'}
            examples:
              default: {value: {phone: "13888888888"}}
      responses:
        '200':
          description: 成功
          content:
            application/json:
              schema: {$ref: '#/components/schemas/SmsSendResponse'}
              examples:
                success: {value: {code: 200, message: 验证码发送成功}}
        '400':
          $ref: '#/components/responses/BadRequest'
components:
  schemas:
    SmsSendRequest:
      type: object
      required: [phone]
      properties:
        phone: {type: string, pattern: '^1[3-9]\d{9}$'}
    SmsSendResponse:
      type: object
      required: [code, message]
      properties:
        code: {type: integer}
        message: {type: string}
  responses:
    BadRequest:
      description: 参数错误
      content:
        application/json:
          schema: {$ref: '#/components/schemas/SmsSendResponse'}
          examples:
            phone_invalid: {value: {code: 1001, message: 手机号格式不正确}}
"#;

fn fixture() -> Spec {
    Spec::parse(APIS[0], FIXTURE).expect("fixture parses")
}

fn lint_with(change: impl FnOnce(&mut Value)) -> Vec<Finding> {
    let mut spec = fixture();
    change(&mut spec.doc);
    lint_spec(&spec)
}

fn assert_found(findings: &[Finding], needle: &str) {
    assert!(
        findings.iter().any(|f| f.to_string().contains(needle)),
        "expected a finding containing {needle:?}, got:\n{}",
        render(findings)
    );
}

fn op(doc: &mut Value) -> &mut Value {
    doc.pointer_mut("/paths/~1api~1sms~1send/post").expect("fixture operation")
}

#[test]
fn fixture_is_clean() {
    let findings = lint_spec(&fixture());
    assert!(findings.is_empty(), "{}", render(&findings));
}

#[test]
fn rejects_a_document_that_is_not_openapi_31() {
    assert_found(&lint_with(|d| d["openapi"] = json!("3.0.3")), "not valid OpenAPI 3.1");
    assert_found(&lint_with(|d| _ = d.as_object_mut().unwrap().remove("info")), "not valid OpenAPI 3.1");
    assert_found(
        &lint_with(|d| op(d)["responses"]["200"]["content"] = json!("text")),
        "not valid OpenAPI 3.1",
    );
}

#[test]
fn rejects_an_invalid_schema_object() {
    let findings = lint_with(|d| d["components"]["schemas"]["SmsSendResponse"]["type"] = json!("map"));
    assert_found(&findings, "not a valid JSON Schema");
}

#[test]
fn rejects_a_dangling_ref() {
    let findings = lint_with(|d| op(d)["responses"]["400"]["$ref"] = json!("#/components/responses/Nope"));
    assert_found(&findings, "$ref does not resolve: #/components/responses/Nope");
}

#[test]
fn rejects_operations_without_id_summary_or_source() {
    for field in ["operationId", "summary", "x-source", "security", "tags"] {
        let findings = lint_with(|d| _ = op(d).as_object_mut().unwrap().remove(field));
        assert_found(&findings, &format!("missing {field}"));
    }
    assert_found(&lint_with(|d| op(d)["operationId"] = json!("sendSms")), "snake_case resource_verb");
}

#[test]
fn rejects_a_response_without_examples() {
    let findings = lint_with(|d| {
        let media = &mut op(d)["responses"]["200"]["content"]["application/json"];
        media.as_object_mut().unwrap().remove("examples");
    });
    assert_found(&findings, "response 200 application/json has no examples");
    assert_found(&findings, "has no example on a 2xx response");
}

#[test]
fn rejects_examples_that_do_not_match_their_schema() {
    let findings = lint_with(|d| {
        op(d)["responses"]["200"]["content"]["application/json"]["examples"]["success"]["value"]["code"] =
            json!("200");
    });
    assert_found(&findings, "example \"success\": does not match its schema");
    let findings = lint_with(|d| {
        op(d)["requestBody"]["content"]["application/json"]["examples"]["default"]["value"]["phone"] =
            json!("1388888888");
    });
    assert_found(&findings, "request example \"default\": does not match its schema");
}

#[test]
fn rejects_a_repeated_example_name() {
    let findings = lint_with(|d| {
        let examples = &mut d["components"]["responses"]["BadRequest"]["content"]["application/json"]["examples"];
        examples["success"] = examples["phone_invalid"].clone();
    });
    assert_found(&findings, "example name \"success\" is used twice");
}

/// A throwaway workspace root holding only `mocks/`.
fn mocks_root(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (relative, text) in files {
        let path = dir.path().join("mocks/heating").join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

const SUCCESS: &str = "{\n  \"code\": 200,\n  \"message\": \"验证码发送成功\"\n}\n";
const PHONE_INVALID: &str = "{\n  \"code\": 1001,\n  \"message\": \"手机号格式不正确\"\n}\n";

fn lint_mock_files(files: &[(&str, &str)]) -> Vec<Finding> {
    let root = mocks_root(files);
    lint_mocks(&fixture(), Path::new(root.path()))
}

#[test]
fn mocks_written_by_xtask_are_clean() {
    let root = tempfile::tempdir().unwrap();
    xtask::mocks::write(root.path(), &fixture()).unwrap();
    let findings = lint_mocks(&fixture(), root.path());
    assert!(findings.is_empty(), "{}", render(&findings));
    let written = std::fs::read_to_string(root.path().join("mocks/heating/sms_send/success.json")).unwrap();
    assert_eq!(written, SUCCESS);
}

#[test]
fn rejects_missing_stale_and_edited_mock_files() {
    let ok = [("sms_send/success.json", SUCCESS), ("sms_send/phone_invalid.json", PHONE_INVALID)];
    assert!(lint_mock_files(&ok).is_empty());

    assert_found(&lint_mock_files(&ok[..1]), "sms_send/phone_invalid.json: is missing");

    let stale = [ok[0], ok[1], ("sms_send/old_name.json", SUCCESS)];
    assert_found(&lint_mock_files(&stale), "old_name.json: belongs to no example");

    let edited = [("sms_send/success.json", "{\"code\": \"200\", \"message\": \"ok\"}"), ok[1]];
    let findings = lint_mock_files(&edited);
    assert_found(&findings, "success.json: differs from the spec's example");
    assert_found(&findings, "success.json: does not match its schema");
}
