//! Codegen tests: `generated/` matches `openapi/`; every documented example reads into its
//! generated response type and writes back unchanged; every operation is routed; and the
//! generated routers refuse bad requests in each API's own envelope, naming the field.
//!
//! The requests are derived from the specs themselves: each operation's documented request
//! example is sent as is (it must pass), then broken one way at a time.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};
use xtask::lint::ExampleValidator;
use xtask::mocks;
use xtask::spec::{Operation, Spec, default_example, workspace_root};

use crate::support::{Plan, Reply, parameters, per_api, router, same_json, send, valid_plan};
use generated::runtime::{ErrorAnswer, FromErrorAnswer, OperationOutput, Rejection};

#[test]
fn generated_code_matches_openapi() {
    let drift = xtask::codegen::drift(&workspace_root()).expect("the specs generate");
    assert!(drift.is_empty(), "run `cargo xtask codegen` and commit:\n{}", drift.join("\n"));
}

#[test]
fn every_mock_example_round_trips_through_its_generated_type() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for spec in Spec::load_all(&workspace_root()).expect("specs load") {
        let files = mocks::project(&spec);
        for example in spec.response_examples() {
            let id = example.operation.id();
            let text = &files[&format!("{id}/{}.{}", example.name, example.extension())].contents;
            let status: u16 = example.status.parse().expect("numeric status");
            let result = per_api!(spec.api.id, |m| m::Operation::from_id(id)
                .expect("every operationId has an Operation")
                .roundtrip_example(status, Some(example.media_type), text));
            let label = format!("{} {id} {}", spec.api, example.name);
            checked += 1;
            match result {
                Err(e) => failures.push(format!("{label}: does not read as the generated type: {e}")),
                Ok(None) => failures.push(format!("{label}: the generated type dropped the body")),
                Ok(Some(back)) if example.is_json() => {
                    let (original, back): (Value, Value) =
                        (serde_json::from_str(text).expect("mock JSON"), serde_json::from_str(&back).expect("written JSON"));
                    if !same_json(&original, &back) {
                        failures.push(format!("{label}: written back differently:\n  was {original}\n  now {back}"));
                    }
                }
                Ok(Some(back)) => {
                    if &back != text {
                        failures.push(format!("{label}: text written back differently"));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {checked} examples fail:\n{}", failures.len(), failures.join("\n"));
    assert!(checked > 700, "only {checked} examples were checked");
}

/// The rejection rule of `kind` in the spec's `x-rejections`: (status, body template).
fn rejection(spec: &Spec, kind: &str) -> u16 {
    spec.doc["x-rejections"][kind]["status"].as_u64().expect("x-rejections status") as u16
}

/// A broken request and what the router must say about it.
struct Case {
    label: String,
    kind: &'static str,
    plan: Plan,
    /// The field the message must name.
    field: String,
}

/// A value of the wrong JSON type for `schema`.
fn wrong_type(schema: &Value) -> Value {
    match xtask::codegen::model::base_type(schema).0.as_deref() {
        Some("string") => json!(12345),
        Some("array") => json!("not-an-array"),
        Some("object") => json!([1, 2]),
        _ => json!("not-a-number"),
    }
}

/// Values breaking each constraint `schema` states, labelled by constraint.
fn constraint_breakers(schema: &Value) -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    if schema.get("pattern").is_some() {
        out.push(("pattern", json!("!!不匹配!!")));
    }
    if let Some(n) = schema.get("minLength").and_then(Value::as_u64).filter(|n| *n > 0) {
        out.push(("min_length", json!("x".repeat(n as usize - 1))));
    }
    if let Some(n) = schema.get("maxLength").and_then(Value::as_u64) {
        out.push(("max_length", json!("x".repeat(n as usize + 1))));
    }
    if let Some(n) = schema.get("minimum").and_then(Value::as_f64) {
        out.push(("minimum", json!(n - 1.0)));
    }
    if let Some(n) = schema.get("maximum").and_then(Value::as_f64) {
        out.push(("maximum", json!(n + 1.0)));
    }
    if let Some(n) = schema.get("minItems").and_then(Value::as_u64).filter(|n| *n > 0) {
        out.push(("min_items", Value::Array(vec![json!(null); n as usize - 1])));
    }
    if schema.get("enum").is_some_and(Value::is_array) {
        out.push(("enum", json!("__不是枚举值__")));
    }
    out
}

fn integer_valued(schema: &Value, value: Value) -> Value {
    // An integer field broken by a fractional bound would fail on type, not on the bound.
    match (xtask::codegen::model::base_type(schema).0.as_deref(), value.as_f64()) {
        (Some("integer"), Some(f)) => json!(f as i64),
        _ => value,
    }
}

fn cases(spec: &Spec, op: &Operation<'_>, plan: &Plan) -> Vec<Case> {
    let mut out = Vec::new();
    let label = |what: &str| format!("{} {}: {what}", spec.api, op.id());
    if let Some(body) = plan.json_body() {
        out.push(Case {
            label: label("bad JSON"),
            kind: "invalid_request",
            plan: Plan { body: Some(("application/json".into(), b"{\"broken\": ".to_vec())), ..plan.clone() },
            field: "body".into(),
        });
        // A JSON array is not an object, even one whose fields are all optional (where the
        // body carries the credential, it has none: security first).
        let token_in_body = op.op.get("x-token-in") == Some(&json!("body"));
        out.push(Case {
            label: label("array for an object"),
            kind: if token_in_body { "unauthenticated" } else { "invalid_request" },
            plan: plan.with_json_body(&json!([])),
            field: if token_in_body { String::new() } else { "body".into() },
        });
        out.push(Case {
            label: label("unsupported media type"),
            kind: "unsupported_media_type",
            plan: Plan { body: Some(("text/plain".into(), body.to_string().into_bytes())), ..plan.clone() },
            field: "Content-Type".into(),
        });
        let schema = op
            .op
            .pointer("/requestBody/content/application~1json/schema")
            .and_then(|s| spec.resolve(s).ok())
            .cloned()
            .unwrap_or_default();
        let required: BTreeSet<&str> = schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        for (name, prop) in schema["properties"].as_object().into_iter().flatten() {
            if name == "token" {
                continue;
            }
            let prop = spec.resolve(prop).expect("property resolves");
            if required.contains(name.as_str()) {
                let mut broken = body.clone();
                broken.as_object_mut().expect("object body").remove(name);
                out.push(Case { label: label(&format!("missing {name}")), kind: "invalid_request", plan: plan.with_json_body(&broken), field: name.clone() });
            }
            let nullable = xtask::codegen::model::base_type(prop).1 || xtask::codegen::model::nullable_ref(prop).is_some();
            if !nullable {
                let mut broken = body.clone();
                broken[name] = wrong_type(prop);
                out.push(Case { label: label(&format!("wrong type of {name}")), kind: "invalid_request", plan: plan.with_json_body(&broken), field: name.clone() });
                // `null` is not absent: a field that is optional but not nullable refuses it too.
                let mut broken = body.clone();
                broken[name] = Value::Null;
                out.push(Case { label: label(&format!("null of {name}")), kind: "invalid_request", plan: plan.with_json_body(&broken), field: name.clone() });
            }
            for (constraint, value) in constraint_breakers(prop) {
                let mut broken = body.clone();
                broken[name] = integer_valued(prop, value);
                out.push(Case { label: label(&format!("{constraint} of {name}")), kind: "invalid_request", plan: plan.with_json_body(&broken), field: name.clone() });
            }
        }
    }
    for param in parameters(spec, op) {
        let name = param["name"].as_str().expect("named").to_owned();
        if param["in"] != json!("query") {
            continue;
        }
        let schema = param.get("schema").map(|s| spec.resolve(s).expect("resolves")).cloned().unwrap_or_default();
        let mut breakers: Vec<(&str, Value)> = constraint_breakers(&schema);
        if matches!(xtask::codegen::model::base_type(&schema).0.as_deref(), Some("integer" | "number")) {
            breakers.push(("wrong type", json!("abc")));
        }
        for (constraint, value) in breakers {
            let value = integer_valued(&schema, value);
            let text = value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string());
            if text.is_empty() {
                continue;
            }
            let mut broken = plan.clone();
            broken.query.retain(|(k, _)| k != &name);
            broken.query.push((name.clone(), text));
            out.push(Case { label: label(&format!("query {constraint} of {name}")), kind: "invalid_request", plan: broken, field: name.clone() });
        }
    }
    let secured = op.op["security"].as_array().is_some_and(|r| !r.is_empty() && r.iter().all(|r| r.as_object().is_some_and(|o| !o.is_empty())))
        || op.op.get("x-token-in") == Some(&json!("body"));
    if secured {
        let mut broken = plan.clone();
        broken.headers.retain(|(k, _)| k != "authorization");
        broken.query.retain(|(k, _)| k != "token");
        if let Some(mut body) = broken.json_body().filter(|b| b.get("token").is_some()) {
            body.as_object_mut().expect("object").remove("token");
            broken = broken.with_json_body(&body);
        }
        out.push(Case { label: label("missing credentials"), kind: "unauthenticated", plan: broken, field: String::new() });
    }
    out
}

#[tokio::test]
async fn generated_routers_serve_documented_requests_and_refuse_broken_ones() {
    let mut failures = Vec::new();
    let mut exercised: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    let (mut operations, mut documented_sent, mut broken_sent) = (0, 0, 0);
    for spec in Spec::load_all(&workspace_root()).expect("specs load") {
        let router = router(&spec);
        let errors = ExampleValidator::new(&spec).expect("validator");
        let examples = spec.response_examples();
        for op in spec.operations() {
            operations += 1;
            let Some(plan) = valid_plan(&spec, &op) else { continue };
            documented_sent += 1;
            let expected = default_example(&examples, op.id()).expect("default").status.parse::<u16>().unwrap();
            let reply = send(&router, plan.request()).await;
            if reply.status != expected {
                failures.push(format!("{} {}: the documented request got {}: {}", spec.api, op.id(), reply.status, reply.body));
                continue;
            }
            exercised.entry(spec.api.id).or_default().insert("documented request".into());
            // JSON Schema counts 79.0 as an integer: the same request with every whole number
            // written with a fraction is served alike.
            if let Some(body) = plan.json_body().filter(has_integer) {
                let reply = send(&router, plan.with_json_body(&as_floats(body)).request()).await;
                if reply.status != expected {
                    failures.push(format!("{} {}: integers written as 79.0 got {}: {}", spec.api, op.id(), reply.status, reply.body));
                }
                exercised.entry(spec.api.id).or_default().insert("integers as floats".into());
            }
            for case in cases(&spec, &op, &plan) {
                broken_sent += 1;
                let reply = send(&router, case.plan.request()).await;
                match check_rejection(&spec, &op, &errors, &case, &reply) {
                    Ok(()) => {
                        exercised.entry(spec.api.id).or_default().insert(case_kind(&case.label));
                    }
                    Err(problem) => failures.push(format!("{}: {problem}", case.label)),
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    for (api, kinds) in &exercised {
        for needed in ["documented request", "bad JSON", "array for an object", "unsupported media type", "missing", "wrong type", "null", "missing credentials"] {
            assert!(kinds.contains(needed), "{api}: no {needed:?} case was exercised (got {kinds:?})");
        }
        assert!(
            kinds.iter().any(|k| ["pattern", "min_length", "max_length", "minimum", "maximum", "enum", "min_items"].contains(&k.as_str())),
            "{api}: no constraint case was exercised (got {kinds:?})"
        );
    }
    assert_eq!(exercised.len(), 5, "every API is exercised");
    println!("{documented_sent} of {operations} operations answered their documented request; {broken_sent} broken requests refused");
    // Only multipart bodies (community's photo upload) are left to their own test.
    assert!(operations - documented_sent <= 1, "{} operations could not be sent", operations - documented_sent);
}

/// Whether a JSON value holds an integer anywhere.
fn has_integer(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.is_i64() || n.is_u64(),
        Value::Array(items) => items.iter().any(has_integer),
        Value::Object(map) => map.values().any(has_integer),
        _ => false,
    }
}

/// The value with every integer written as a float (`79` → `79.0`).
fn as_floats(value: Value) -> Value {
    match value {
        Value::Number(n) if n.is_i64() || n.is_u64() => json!(n.as_f64().expect("a number")),
        Value::Array(items) => Value::Array(items.into_iter().map(as_floats).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, as_floats(v))).collect()),
        other => other,
    }
}

/// The kind of a case label (`"heating sms_send: missing phone"` → `"missing"`).
fn case_kind(label: &str) -> String {
    let what = label.split(": ").nth(1).unwrap_or_default();
    let what = what.strip_prefix("query ").unwrap_or(what);
    match what.split(" of ").next().unwrap_or(what) {
        w if w.starts_with("missing ") && w != "missing credentials" => "missing".into(),
        w => w.into(),
    }
}

/// How `op` refuses a request of `kind`: its own `x-rejections` rule (answered as its documented
/// response of that status: JSON Pointer to the schema), else the API's (its `ErrorResponse`).
fn refusal(spec: &Spec, op: &Operation<'_>, kind: &str) -> (u16, String) {
    match op.op["x-rejections"][kind]["status"].as_u64() {
        Some(status) => {
            let response = spec.resolve(&op.op["responses"][status.to_string()]).expect("the status is documented");
            let schema = response["content"]["application/json"]["schema"]["$ref"].as_str().expect("a JSON answer").trim_start_matches('#');
            (status as u16, schema.to_owned())
        }
        None => (rejection(spec, kind), "/components/schemas/ErrorResponse".to_owned()),
    }
}

fn check_rejection(spec: &Spec, op: &Operation<'_>, errors: &ExampleValidator, case: &Case, reply: &Reply) -> Result<(), String> {
    let (status, schema) = refusal(spec, op, case.kind);
    if reply.status != status {
        return Err(format!("expected {status} ({}), got {}: {}", case.kind, reply.status, reply.body));
    }
    if reply.content_type.as_deref() != Some("application/json") {
        return Err(format!("content type {:?}", reply.content_type));
    }
    let body = reply.json();
    let problems = errors.errors(&schema, &body);
    if !problems.is_empty() {
        return Err(format!("the answer is not the documented refusal ({schema}): {problems:?}: {body}"));
    }
    let message = body["message"].as_str().unwrap_or_default();
    // A field with a `by_field` rule of its own is answered in the document's words (community
    // 1.1.3: "必须是正确的手机号"), which need not name it: exactly those.
    if let Some(words) = by_field_message(op, case) {
        return if message == words { Ok(()) } else { Err(format!("{:?}'s own rule says {words:?}, got {message:?}", case.field)) };
    }
    if !message.contains(&case.field) {
        return Err(format!("the message does not name {:?}: {message}", case.field));
    }
    one_language(message)
}

/// The fixed message of `op`'s `by_field` rule selecting `case` (`when: missing` only for a
/// missing field), if it has one; a rule whose message is the generic `{message}` has none.
fn by_field_message<'a>(op: &'a Operation<'_>, case: &Case) -> Option<&'a str> {
    let rules = op.op["x-rejections"][case.kind]["by_field"].as_array()?;
    let missing = case.label.contains(&format!("missing {}", case.field));
    rules
        .iter()
        .find(|rule| rule["field"] == case.field.as_str() && (rule["when"] != "missing" || missing))
        .and_then(|rule| rule["body"]["message"].as_str())
        .filter(|words| !words.contains('{'))
}

/// A refusal's message is Chinese throughout: none of serde's English (`invalid type: …`), no
/// regex, and no prefix said twice. (ASCII that is the contract's own — field names, enum values,
/// identifiers in descriptions — is fine.)
fn one_language(message: &str) -> Result<(), String> {
    let serde_words = [
        "invalid type", "invalid value", "expected", "unknown variant", "unknown field", "missing field", "floating point",
        "at line", "EOF", "trailing characters", "out of range", "invalid length", "duplicate field", "JSON object",
        "sequence", "struct ",
    ];
    if let Some(word) = serde_words.iter().find(|w| message.contains(*w)) {
        return Err(format!("English in the message ({word:?}): {message}"));
    }
    if message.contains('^') || message.contains("\\d") {
        return Err(format!("a regex in the message: {message}"));
    }
    if let Some((prefix, rest)) = message.split_once('：')
        && rest.starts_with(prefix)
    {
        return Err(format!("the prefix {prefix:?} twice: {message}"));
    }
    Ok(())
}


/// The document the generated code publishes (utoipa), as JSON.
fn published(api: &str) -> Value {
    per_api!(api, |m| m::openapi::published())
}

/// A schema reduced to what the contract fixes: type and nullability, format, enum values,
/// properties with their requiredness, items, and constraints. `$ref`s are followed.
fn normal_schema(doc: &Value, schema: &Value, depth: usize) -> Value {
    if depth > 12 {
        return json!("…");
    }
    let deref = |s: &Value| -> Value {
        let mut s = s.clone();
        for _ in 0..16 {
            match s.get("$ref").and_then(Value::as_str) {
                Some(r) => s = doc.pointer(r.trim_start_matches('#')).cloned().unwrap_or(json!({"unresolved": r})),
                None => break,
            }
        }
        s
    };
    let mut schema = deref(schema);
    let mut nullable = false;
    // utoipa writes a nullable reference as oneOf [null, $ref]; the spec as type [T, "null"].
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array).cloned() {
        let (nulls, rest): (Vec<Value>, Vec<Value>) = options.into_iter().partition(|o| o.get("type") == Some(&json!("null")));
        if !nulls.is_empty() && rest.len() == 1 {
            nullable = true;
            schema = deref(&rest[0]);
        }
    }
    let (base, null_in_type) = xtask::codegen::model::base_type(&schema);
    nullable |= null_in_type;
    let base = base.or_else(|| (schema.get("type") == Some(&json!("null"))).then(|| "null".to_owned()));
    let mut out = serde_json::Map::new();
    out.insert("type".into(), json!(base));
    out.insert("nullable".into(), json!(nullable));
    for key in ["format", "pattern", "minLength", "maxLength", "minItems", "maxItems"] {
        if let Some(v) = schema.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    for key in ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"] {
        if let Some(v) = schema.get(key).and_then(Value::as_f64) {
            out.insert(key.into(), json!(v));
        }
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let mut values: Vec<String> = values.iter().filter(|v| !v.is_null()).map(Value::to_string).collect();
        values.sort();
        out.insert("enum".into(), json!(values));
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        let props: serde_json::Map<String, Value> =
            props.iter().map(|(k, v)| (k.clone(), normal_schema(doc, v, depth + 1))).collect();
        out.insert("properties".into(), Value::Object(props));
        let mut required: Vec<&str> = schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        required.sort();
        out.insert("required".into(), json!(required));
    }
    if let Some(items) = schema.get("items") {
        out.insert("items".into(), normal_schema(doc, items, depth + 1));
    }
    if let Some(extra) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        out.insert("additionalProperties".into(), normal_schema(doc, extra, depth + 1));
    }
    Value::Object(out)
}

/// An operation reduced to what the contract fixes.
fn normal_operation(doc: &Value, op: &Value) -> Value {
    let deref = |v: &Value| match v.get("$ref").and_then(Value::as_str) {
        Some(r) => doc.pointer(r.trim_start_matches('#')).cloned().unwrap_or_default(),
        None => v.clone(),
    };
    let mut params: Vec<Value> = op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let p = deref(p);
            json!({
                "name": p["name"], "in": p["in"],
                "required": p.get("required").cloned().unwrap_or(json!(false)),
                "schema": p.get("schema").map(|s| normal_schema(doc, s, 0)),
                "example": p.get("example"),
            })
        })
        .collect();
    params.sort_by_key(|p| format!("{}:{}", p["in"], p["name"]));
    // Each media type: its schema, and its examples by name (summary, description, value; a
    // `$ref` followed) with the names in the order given (the first is what Swagger UI shows).
    let content = |c: &Value| -> Value {
        let map: serde_json::Map<String, Value> = c
            .as_object()
            .into_iter()
            .flatten()
            .map(|(media, m)| {
                let examples: serde_json::Map<String, Value> = m["examples"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, e)| {
                        let e = deref(e);
                        (name.clone(), json!({"summary": e["summary"], "description": e["description"], "value": e["value"]}))
                    })
                    .collect();
                let names: Vec<&String> = examples.keys().collect();
                let normal = json!({
                    "schema": m.get("schema").map(|s| normal_schema(doc, s, 0)),
                    "example names": names,
                    "examples": examples,
                });
                (media.clone(), normal)
            })
            .collect();
        Value::Object(map)
    };
    let body = op.get("requestBody").map(|b| {
        let b = deref(b);
        json!({ "required": b.get("required").cloned().unwrap_or(json!(false)), "content": content(&b["content"]) })
    });
    let responses: serde_json::Map<String, Value> = op["responses"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(status, r)| {
            let r = deref(r);
            // Header names compare case-insensitively (HTTP); each header by its schema.
            let headers: serde_json::Map<String, Value> = r["headers"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, h)| {
                    let h = deref(h);
                    let schema = h.get("schema").map(|s| normal_schema(doc, s, 0));
                    (name.to_ascii_lowercase(), json!({"schema": schema, "description": h["description"], "example": h["example"]}))
                })
                .collect();
            (status.clone(), json!({"content": content(&r["content"]), "headers": headers}))
        })
        .collect();
    let mut security: Vec<String> = op["security"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>().join("+")).unwrap_or_default())
        .collect();
    security.sort();
    // `[{}]` (utoipa) and `[]` (the specs) both say: no credential needed.
    if security.iter().all(String::is_empty) {
        security.clear();
    }
    json!({
        "operationId": op["operationId"],
        "parameters": params,
        "requestBody": body,
        "responses": responses,
        "security": security,
    })
}

/// Formats are compared where the spec states one: a format the published document adds for
/// its Rust type (`double` for `f64`), or on an enum whose values already fix everything, is
/// not a difference in the contract.
fn align_formats(ours: &mut Value, theirs: &mut Value) {
    if let (Value::Object(a), Value::Object(b)) = (&mut *ours, &mut *theirs) {
        if !a.contains_key("format") || a.contains_key("enum") {
            a.remove("format");
            b.remove("format");
        }
        for (key, value) in a.iter_mut() {
            if let Some(other) = b.get_mut(key) {
                align_formats(value, other);
            }
        }
    } else if let (Value::Array(a), Value::Array(b)) = (ours, theirs) {
        for (x, y) in a.iter_mut().zip(b.iter_mut()) {
            align_formats(x, y);
        }
    }
}

/// The fields of a security scheme the contract fixes.
fn normal_schemes(doc: &Value) -> Value {
    let schemes = doc.pointer("/components/securitySchemes").and_then(Value::as_object).cloned().unwrap_or_default();
    let fixed: serde_json::Map<String, Value> = schemes
        .into_iter()
        .map(|(name, s)| {
            let keep = ["type", "scheme", "bearerFormat", "in", "name"];
            let s: serde_json::Map<String, Value> =
                s.as_object().into_iter().flatten().filter(|(k, _)| keep.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
            (name, Value::Object(s))
        })
        .collect();
    Value::Object(fixed)
}

/// Paths where two JSON values differ.
fn differences(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for key in x.keys().chain(y.keys()).collect::<BTreeSet<_>>() {
                match (x.get(key), y.get(key)) {
                    (Some(v), Some(w)) => differences(&format!("{path}.{key}"), v, w, out),
                    (v, w) => out.push(format!("{path}.{key}: spec {} / published {}", short(v), short(w))),
                }
            }
        }
        (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => {}
        _ if a == b => {}
        _ => out.push(format!("{path}: spec {} / published {}", short(Some(a)), short(Some(b)))),
    }
}

fn short(v: Option<&Value>) -> String {
    let text = v.map(Value::to_string).unwrap_or_else(|| "(absent)".into());
    if text.chars().count() > 120 { format!("{}…", text.chars().take(120).collect::<String>()) } else { text }
}

#[test]
fn the_published_document_equals_the_source_contract() {
    let mut problems = Vec::new();
    for spec in Spec::load_all(&workspace_root()).expect("specs load") {
        let published = published(spec.api.id);
        differences(&format!("{} securitySchemes", spec.api), &normal_schemes(&spec.doc), &normal_schemes(&published), &mut problems);
        let mut spec_ops = BTreeSet::new();
        for op in spec.operations() {
            spec_ops.insert((op.path.to_owned(), op.method));
            let Some(theirs) = published.pointer(&format!("/paths/{}/{}", xtask::spec::escape_pointer(op.path), op.method)) else {
                problems.push(format!("{} {op}: not published", spec.api));
                continue;
            };
            let mut ours = normal_operation(&spec.doc, op.op);
            let mut theirs = normal_operation(&published, theirs);
            align_formats(&mut ours, &mut theirs);
            differences(&format!("{} {}", spec.api, op.id()), &ours, &theirs, &mut problems);
        }
        for (path, item) in published["paths"].as_object().into_iter().flatten() {
            for method in item.as_object().into_iter().flatten().map(|(m, _)| m) {
                if !spec_ops.iter().any(|(p, m)| p == path && *m == method) {
                    problems.push(format!("{}: publishes {method} {path}, which the spec does not have", spec.api));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{} differences:\n{}", problems.len(), problems.join("\n"));
}

fn community() -> Spec {
    Spec::load(&workspace_root(), xtask::spec::APIS[2]).expect("community spec")
}

/// A `multipart/form-data` body as `wx.uploadFile` sends it: the form fields, then a JPEG part.
fn upload_body(fields: &[(&str, &str)], file: Option<&[u8]>) -> (String, Vec<u8>) {
    let boundary = "----mpapi-test-boundary";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes());
    }
    if let Some(bytes) = file {
        body.extend(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"face.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n")
                .as_bytes(),
        );
        body.extend(bytes);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn upload(content_type: &str, body: Vec<u8>) -> Request<Body> {
    Request::post("/api/v1/people/photo")
        .header("authorization", "Bearer test-token")
        .header("content-type", content_type)
        .body(Body::from(body))
        .expect("request")
}

const FIELDS: [(&str, &str); 5] = [
    ("community_identifier", "1"),
    ("building_number", "2"),
    ("unit_number", "3"),
    ("floor_number", "4"),
    ("house_number", "401"),
];

/// [`FIELDS`] with `changes`: a listed field's value replaced, any other name added.
fn form(changes: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut fields = FIELDS.to_vec();
    for &(name, value) in changes {
        match fields.iter_mut().find(|(field, _)| *field == name) {
            Some(field) => field.1 = value,
            None => fields.push((name, value)),
        }
    }
    fields
}

/// The upload of `fields` and `file` through `router`, answered.
async fn send_upload(router: &axum::Router, fields: &[(&str, &str)], file: Option<&[u8]>) -> Reply {
    let (content_type, body) = upload_body(fields, file);
    send(router, upload(&content_type, body)).await
}

#[tokio::test]
async fn multipart_uploads_are_read_and_checked() {
    let spec = community();
    let router = router(&spec);
    let jpeg: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F'];

    let (content_type, body) = upload_body(&FIELDS, Some(jpeg));
    let reply = send(&router, upload(&content_type, body)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["code"], json!("0"));

    let (content_type, body) = upload_body(&FIELDS, None);
    let reply = send(&router, upload(&content_type, body)).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.json()["message"].as_str().unwrap().contains("file"), "{}", reply.body);

    let reply = send_upload(&router, &form(&[("building_number", "二号楼")]), Some(jpeg)).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.json()["message"].as_str().unwrap().contains("building_number"), "{}", reply.body);

    // One past int32 (`format: int32`) is refused, named; the bounds themselves are accepted.
    // Schemathesis's negative check is off for this form (.ci/schemathesis.toml says why).
    let reply = send_upload(&router, &form(&[("unit_number", "2147483648")]), Some(jpeg)).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.json()["message"].as_str().unwrap().contains("unit_number"), "{}", reply.body);
    let bounds = form(&[("unit_number", "-2147483648"), ("building_number", "2147483647")]);
    let reply = send_upload(&router, &bounds, Some(jpeg)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    let reply = send(&router, upload("application/json", b"{}".to_vec())).await;
    assert_eq!(reply.status, 415, "{}", reply.body);
    assert_eq!(reply.json()["code"], json!("1"));

    // No body (and no Content-Type, taken as multipart): the documented 400, naming the body.
    let request = Request::post("/api/v1/people/photo").header("authorization", "Bearer test-token").body(Body::empty()).unwrap();
    let reply = send(&router, request).await;
    assert_eq!((reply.status, reply.json()["code"].clone()), (400, json!("1")), "{}", reply.body);
    assert!(reply.json()["message"].as_str().unwrap().contains("body"), "{}", reply.body);

    // A part the form does not list (additionalProperties: false) is refused, named.
    let reply = send_upload(&router, &form(&[("extra", "1")]), Some(jpeg)).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.json()["message"].as_str().unwrap().contains("extra"), "{}", reply.body);
}

#[tokio::test]
async fn unknown_paths_methods_and_bad_xml_are_answered_in_the_envelope() {
    for spec in Spec::load_all(&workspace_root()).expect("specs") {
        let router = router(&spec);
        let errors = ExampleValidator::new(&spec).expect("validator");
        let reply = send(&router, Request::get("/no/such/path").body(Body::empty()).unwrap()).await;
        assert_eq!(reply.status, rejection(&spec, "not_found"), "{}: {}", spec.api, reply.body);
        assert!(errors.errors("/components/schemas/ErrorResponse", &reply.json()).is_empty(), "{}: {}", spec.api, reply.body);

        // No spec uses PATCH, so it is never allowed on a documented path.
        let op = spec.operations()[0];
        let path = op.path.replace(['{', '}'], "");
        let reply = send(&router, Request::patch(path).body(Body::empty()).unwrap()).await;
        assert_eq!(reply.status, rejection(&spec, "method_not_allowed"), "{}: {}", spec.api, reply.body);
        assert!(errors.errors("/components/schemas/ErrorResponse", &reply.json()).is_empty(), "{}: {}", spec.api, reply.body);
    }

    // WeChat Pay v2 notify (charging) takes XML: a body that is not XML is refused, in WeChat
    // Pay's XML answer (the operation's own x-rejections), the reason escaped.
    let spec = Spec::load(&workspace_root(), xtask::spec::APIS[3]).expect("charging");
    let router = router(&spec);
    for body in ["<xml><return_code>SUCCESS</return_code>", ""] {
        let request = Request::post("/api/payment/wechat/notify").header("content-type", "text/xml").body(Body::from(body)).unwrap();
        let reply = send(&router, request).await;
        assert_eq!(reply.status, 400, "{}", reply.body);
        assert_eq!(reply.content_type.as_deref(), Some("application/xml; charset=utf-8"));
        assert!(reply.body.starts_with("<xml><return_code>FAIL</return_code><return_msg>"), "{}", reply.body);
        assert!(reply.body.contains("body") && !reply.body.contains("<xml><return_code>SUCCESS"), "{}", reply.body);
    }
    // The answer is what the contract documents for a refused notify.
    let reply = send(&router, Request::post("/api/payment/wechat/notify").body(Body::empty()).unwrap()).await;
    let documented = Spec::load(&workspace_root(), xtask::spec::APIS[3]).unwrap().doc["paths"]["/api/payment/wechat/notify"]["post"]["responses"]["400"]["content"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect::<Vec<_>>();
    assert!(documented.iter().any(|m| reply.content_type.as_deref().is_some_and(|c| c.starts_with(m.as_str()))), "{:?} not in {documented:?}", reply.content_type);
}

fn errors_of(spec: &Spec) -> ExampleValidator {
    ExampleValidator::new(spec).expect("validator")
}

#[tokio::test]
async fn an_unavailable_credential_check_is_answered_503_in_each_envelope() {
    for spec in Spec::load_all(&workspace_root()).expect("specs") {
        let errors = errors_of(&spec);
        let response = per_api!(spec.api.id, |m| m::render_rejection(&Rejection::unavailable("服务暂时不可用，请稍后重试")));
        let reply = crate::support::reply(response).await;
        assert_eq!(reply.status, 503, "{}: {}", spec.api, reply.body);
        assert_eq!(reply.status, rejection(&spec, "unavailable"));
        let body = reply.json();
        assert!(errors.errors("/components/schemas/ErrorResponse", &body).is_empty(), "{}: {body}", spec.api);
        assert!(body["message"].as_str().is_some_and(|m| m.contains("服务暂时不可用")), "{}: {body}", spec.api);
        // Not the answer that makes a mini-program drop its token.
        let unauthenticated = &spec.doc["x-rejections"]["unauthenticated"]["body"]["code"];
        assert_ne!(&body["code"], unauthenticated, "{}: {body}", spec.api);
    }
}

#[test]
fn error_answers_become_the_variant_documented_for_their_status() {
    use generated::heating::types::{ErrorResponse, ErrorResponseCode, RetryAfterHeaders};
    use generated::heating::{ConfigSystemGetOutput, SmsSendOutput};
    let body = |code| ErrorResponse { code, message: "操作频繁，请稍后再试".into(), data: (), timestamp: 1734502968024 };

    let limited = ErrorAnswer { status: 429, body: body(ErrorResponseCode::Value1008), retry_after: Some(42) };
    let output = SmsSendOutput::from_error_answer(limited).expect("§1.1 documents 429");
    assert_eq!(output, SmsSendOutput::TooManyRequests(body(ErrorResponseCode::Value1008), RetryAfterHeaders { retry_after: Some(42) }));
    // The declared Retry-After is rendered from the typed output.
    let rendered = output.render().into_response();
    assert_eq!(rendered.status(), 429);
    assert_eq!(rendered.headers()["retry-after"], "42");

    let failed = ErrorAnswer { status: 502, body: body(ErrorResponseCode::Value1007), retry_after: None };
    assert_eq!(SmsSendOutput::from_error_answer(failed), Ok(SmsSendOutput::BadGateway(body(ErrorResponseCode::Value1007))));

    // An operation that documents no 404 hands the answer back.
    let missing = ErrorAnswer { status: 404, body: body(ErrorResponseCode::Value404), retry_after: None };
    assert_eq!(ConfigSystemGetOutput::from_error_answer(missing.clone()), Err(missing));
}

#[tokio::test]
async fn a_number_one_ulp_off_an_integer_is_not_one() {
    // serde_json's default float parser may round 1.9999999999999998 to 2.0; read exactly, it is
    // no integer (JSON Schema, and Schemathesis with it, say so).
    let spec = Spec::load(&workspace_root(), xtask::spec::APIS[3]).expect("charging");
    let router = router(&spec);
    for (method, status) in [("2.0", 200), ("1.9999999999999998", 400), ("-9223372036854775809", 400)] {
        let body = format!(r#"{{"orderId": "ORD000124", "paymentMethod": {method}}}"#);
        let request = Request::post("/api/payment/pay")
            .header("authorization", "Bearer test-token")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        let reply = send(&router, request).await;
        assert_eq!(reply.status, status, "{method}: {}", reply.body);
    }
}

#[test]
fn amounts_in_yuan_are_written_with_two_decimal_places() {
    use rust_decimal::Decimal;
    #[derive(serde::Serialize)]
    struct Amounts {
        #[serde(serialize_with = "generated::runtime::yuan")]
        due: Decimal,
        #[serde(serialize_with = "generated::runtime::yuan_opt", skip_serializing_if = "Option::is_none")]
        absent: Option<Decimal>,
        #[serde(serialize_with = "generated::runtime::yuan_opt")]
        null: Option<Decimal>,
    }
    let written = |due: Decimal| serde_json::to_string(&Amounts { due, absent: None, null: None }).unwrap();
    assert_eq!(written(Decimal::new(125_050, 2)), r#"{"due":1250.50,"null":null}"#);
    assert_eq!(written(Decimal::new(12_505, 1)), r#"{"due":1250.50,"null":null}"#);
    assert_eq!(written(Decimal::new(-3, 0)), r#"{"due":-3.00,"null":null}"#);
    // Finer than a fen: rounded half away from zero; no negative zero.
    assert_eq!(written(Decimal::new(5, 3)), r#"{"due":0.01,"null":null}"#);
    assert_eq!(written(Decimal::new(-1, 3)), r#"{"due":0.00,"null":null}"#);
    assert_eq!(written(-Decimal::ZERO), r#"{"due":0.00,"null":null}"#);
    let some = Amounts { due: Decimal::ZERO, absent: Some(Decimal::new(1, 2)), null: Some(Decimal::new(99_999_999, 0)) };
    assert_eq!(serde_json::to_string(&some).unwrap(), r#"{"due":0.00,"absent":0.01,"null":99999999.00}"#);
}
