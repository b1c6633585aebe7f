//! Contract lint: the checks every spec in `openapi/` and every file in `mocks/` must pass.
//!
//! `cargo xtask lint` prints the findings; the `contract` integration tests fail on any.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use anyhow::{Context, Result};
use jsonschema::{Draft, Registry, Validator};
use serde_json::{Value, json};

use crate::mocks::{self, MockFile};
use crate::spec::{Spec, default_example, escape_pointer, is_json_media};

/// The official OpenAPI 3.1 schema (2022-10-07), vendored from the OpenAPI Initiative's
/// published `schema.json` so that linting needs no network.
const OAS_31_SCHEMA: &str = include_str!("../schemas/oas-3.1-schema-2022-10-07.json");

/// Fields every operation must carry.
const REQUIRED_OPERATION_FIELDS: [&str; 5] = ["operationId", "summary", "x-source", "tags", "security"];

/// One problem found in a spec or a mock file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// The API the problem belongs to.
    pub api: &'static str,
    /// Where: a JSON pointer into the spec, an operation, or a mock file path.
    pub location: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.api, self.location, self.message)
    }
}

/// Collects findings for one API.
struct Findings {
    api: &'static str,
    items: Vec<Finding>,
}

impl Findings {
    fn push(&mut self, location: impl Into<String>, message: impl Into<String>) {
        self.items.push(Finding { api: self.api, location: location.into(), message: message.into() });
    }
}

/// Lint one spec: OpenAPI 3.1 validity, `$ref` resolution, operation metadata, examples present
/// and valid against their schemas.
pub fn lint_spec(spec: &Spec) -> Vec<Finding> {
    let mut findings = Findings { api: spec.api.id, items: Vec::new() };
    check_openapi_31(spec, &mut findings);
    check_refs(spec, &spec.doc, String::new(), &mut findings);
    check_schema_objects(spec, &mut findings);
    check_document_metadata(spec, &mut findings);
    check_operations(spec, &mut findings);
    match ExampleValidator::new(spec) {
        Ok(validator) => check_examples(spec, &validator, &mut findings),
        Err(e) => findings.push("#", format!("cannot build the example validator: {e:#}")),
    }
    findings.items.sort();
    findings.items
}

/// Check `mocks/<api>/` under `root` against the spec: drift (see [`mock_drift`]) plus every
/// JSON file validating against its response schema.
pub fn lint_mocks(spec: &Spec, root: &Path) -> Vec<Finding> {
    let mut findings = Findings { api: spec.api.id, items: mock_drift(spec, root) };
    let (Ok(on_disk), Ok(validator)) = (mocks::read_dir(root, spec.api), ExampleValidator::new(spec))
    else {
        // Both failures are reported by mock_drift and lint_spec.
        return findings.items;
    };
    let expected = mocks::project(spec);
    for (relative, text) in &on_disk {
        let Some(MockFile { schema_pointer: Some(schema_pointer), is_json: true, .. }) =
            expected.get(relative)
        else {
            continue;
        };
        let location = format!("mocks/{}/{relative}", spec.api.id);
        match serde_json::from_str::<Value>(text) {
            Ok(value) => {
                for error in validator.errors(schema_pointer, &value) {
                    findings.push(&location, format!("does not match its schema: {error}"));
                }
            }
            Err(e) => findings.push(&location, format!("is not JSON: {e}")),
        }
    }
    findings.items.sort();
    findings.items
}

/// Drift between `mocks/<api>/` and the spec: a file that belongs to no example, a missing
/// file, or a file whose text differs from the example.
pub fn mock_drift(spec: &Spec, root: &Path) -> Vec<Finding> {
    let mut findings = Findings { api: spec.api.id, items: Vec::new() };
    let on_disk = match mocks::read_dir(root, spec.api) {
        Ok(files) => files,
        Err(e) => {
            findings.push(format!("mocks/{}", spec.api.id), format!("{e:#}"));
            return findings.items;
        }
    };
    let expected = mocks::project(spec);
    for (relative, text) in &on_disk {
        let location = format!("mocks/{}/{relative}", spec.api.id);
        match expected.get(relative) {
            None => findings.push(location, "belongs to no example of any operation in the spec"),
            Some(file) if &file.contents != text => {
                findings.push(location, "differs from the spec's example (run `cargo xtask mocks`)")
            }
            Some(_) => {}
        }
    }
    for relative in expected.keys().filter(|r| !on_disk.contains_key(*r)) {
        findings.push(
            format!("mocks/{}/{relative}", spec.api.id),
            "is missing (run `cargo xtask mocks`)",
        );
    }
    findings.items.sort();
    findings.items
}

/// Lint every spec and its mocks under `root`; an unreadable spec is itself a finding.
pub fn lint_all(root: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    for api in crate::spec::APIS {
        match Spec::load(root, api) {
            Ok(spec) => {
                out.extend(lint_spec(&spec));
                out.extend(lint_mocks(&spec, root));
            }
            Err(e) => out.push(Finding {
                api: api.id,
                location: Spec::path(root, api).display().to_string(),
                message: format!("{e:#}"),
            }),
        }
    }
    out
}

fn check_openapi_31(spec: &Spec, findings: &mut Findings) {
    // Compiled once for all specs.
    static VALIDATOR: std::sync::LazyLock<Validator> = std::sync::LazyLock::new(|| {
        let schema: Value = serde_json::from_str(OAS_31_SCHEMA).expect("vendored schema is JSON");
        jsonschema::options()
            .with_draft(Draft::Draft202012)
            .build(&schema)
            .expect("vendored OpenAPI 3.1 schema compiles")
    });
    for error in VALIDATOR.iter_errors(&spec.doc) {
        findings.push(
            format!("#{}", error.instance_path()),
            format!("not valid OpenAPI 3.1: {error}"),
        );
    }
}

/// Every `$ref` anywhere in the document resolves.
fn check_refs(spec: &Spec, node: &Value, at: String, findings: &mut Findings) {
    match node {
        Value::Object(map) => {
            if let Some(reference) = map.get("$ref").and_then(Value::as_str)
                && let Err(e) = spec.pointer(reference)
            {
                findings.push(format!("#{at}"), format!("{e}"));
            }
            for (key, value) in map {
                check_refs(spec, value, format!("{at}/{}", escape_pointer(key)), findings);
            }
        }
        Value::Array(items) => {
            for (i, value) in items.iter().enumerate() {
                check_refs(spec, value, format!("{at}/{i}"), findings);
            }
        }
        _ => {}
    }
}

/// Every component schema is a valid JSON Schema (2020-12): the OpenAPI schema above only
/// checks the shape of the document around Schema Objects, not their keywords.
fn check_schema_objects(spec: &Spec, findings: &mut Findings) {
    let Some(schemas) = spec.doc.pointer("/components/schemas").and_then(Value::as_object) else {
        return;
    };
    for (name, schema) in schemas {
        let mut schema = schema.clone();
        if let Some(map) = schema.as_object_mut() {
            map.insert("$schema".into(), json!("https://json-schema.org/draft/2020-12/schema"));
        }
        if let Err(e) = jsonschema::meta::validate(&schema) {
            findings.push(
                format!("#/components/schemas/{name}"),
                format!("not a valid JSON Schema: {e}"),
            );
        }
    }
}

fn check_document_metadata(spec: &Spec, findings: &mut Findings) {
    let doc = &spec.doc;
    if doc.get("openapi").and_then(Value::as_str).is_none_or(|v| !v.starts_with("3.1.")) {
        findings.push("#/openapi", "must be 3.1.x");
    }
    if doc.get("x-api-id").and_then(Value::as_str) != Some(spec.api.id) {
        findings.push("#/x-api-id", format!("must be {:?}", spec.api.id));
    }
    if doc.get("x-source-document").and_then(Value::as_str) != Some(spec.api.seed) {
        findings.push("#/x-source-document", format!("must be {:?}", spec.api.seed));
    }
    let notes = doc.get("x-transcription-notes").and_then(Value::as_array);
    match notes {
        None => findings.push("#/x-transcription-notes", "missing"),
        Some(notes) => {
            for (i, note) in notes.iter().enumerate() {
                for field in ["section", "finding", "decision"] {
                    if note.get(field).and_then(Value::as_str).is_none_or(str::is_empty) {
                        findings.push(format!("#/x-transcription-notes/{i}"), format!("needs {field}"));
                    }
                }
            }
        }
    }
}

fn check_operations(spec: &Spec, findings: &mut Findings) {
    let declared_tags: BTreeSet<&str> = spec
        .doc
        .get("tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("name").and_then(Value::as_str))
        .collect();
    let mut seen_ids: BTreeMap<String, String> = BTreeMap::new();
    for operation in spec.operations() {
        let at = operation.to_string();
        for field in REQUIRED_OPERATION_FIELDS {
            if operation.op.get(field).is_none() {
                findings.push(&at, format!("missing {field}"));
            }
        }
        let id = operation.id();
        if !id.is_empty() {
            if !is_snake_case_resource_verb(id) {
                findings.push(&at, "operationId must be snake_case resource_verb");
            }
            if let Some(other) = seen_ids.insert(id.to_owned(), at.clone()) {
                findings.push(&at, format!("operationId also used by {other}"));
            }
        }
        for tag in operation.op.get("tags").and_then(Value::as_array).into_iter().flatten() {
            if !tag.as_str().is_some_and(|t| declared_tags.contains(t)) {
                findings.push(&at, format!("tag {tag} is not declared in the document's tags"));
            }
        }
        check_responses(spec, &operation, &at, findings);
    }
}

fn check_responses(spec: &Spec, operation: &crate::spec::Operation<'_>, at: &str, findings: &mut Findings) {
    let Some(responses) = operation.op.get("responses").and_then(Value::as_object) else {
        findings.push(at, "has no responses");
        return;
    };
    if !responses.keys().any(|s| s.starts_with('2')) {
        findings.push(at, "documents no 2xx response");
    }
    let mut names = BTreeSet::new();
    for (status, response) in responses {
        let Ok(response) = spec.resolve(response) else { continue };
        let Some(content) = response.get("content").and_then(Value::as_object) else { continue };
        for (media_type, media) in content {
            let examples = media.get("examples").and_then(Value::as_object);
            if examples.is_none_or(|e| e.is_empty()) {
                findings.push(at, format!("response {status} {media_type} has no examples"));
            }
            for (name, example) in examples.into_iter().flatten() {
                if !names.insert(name.as_str()) {
                    findings.push(at, format!("example name {name:?} is used twice"));
                }
                if !is_mock_name(name) {
                    findings.push(at, format!("example name {name:?} must be snake_case"));
                }
                if spec.resolve(example).ok().and_then(|e| e.get("value")).is_none() {
                    findings.push(at, format!("example {name:?} has no value"));
                }
            }
        }
    }
}

fn check_examples(spec: &Spec, validator: &ExampleValidator, findings: &mut Findings) {
    let examples = spec.response_examples();
    for example in &examples {
        let at = format!("{} {} example {:?}", example.operation, example.status, example.name);
        match (example.value, &example.schema_pointer) {
            (Some(value), Some(schema)) if example.is_json() => {
                for error in validator.errors(schema, value) {
                    findings.push(&at, format!("does not match its schema: {error}"));
                }
            }
            (Some(value), _) if !example.is_json() && !value.is_string() => {
                findings.push(&at, format!("a {} example must be a string", example.media_type));
            }
            _ => {}
        }
    }
    for operation in spec.operations() {
        if default_example(&examples, operation.id()).is_none() {
            findings.push(operation.to_string(), "has no example on a 2xx response");
        }
        check_request_examples(spec, validator, &operation, findings);
    }
}

fn check_request_examples(
    spec: &Spec,
    validator: &ExampleValidator,
    operation: &crate::spec::Operation<'_>,
    findings: &mut Findings,
) {
    let Some(body) = operation.op.get("requestBody") else { return };
    let (body, body_pointer) = match body.get("$ref").and_then(Value::as_str) {
        Some(r) => match spec.resolve(body) {
            Ok(b) => (b, r.trim_start_matches('#').to_owned()),
            Err(_) => return,
        },
        None => (body, format!("{}/requestBody", operation.pointer())),
    };
    for (media_type, media) in body.get("content").and_then(Value::as_object).into_iter().flatten() {
        let examples = media.get("examples").and_then(Value::as_object);
        if examples.is_none_or(|e| e.is_empty()) {
            findings.push(operation.to_string(), format!("request body {media_type} has no example"));
        }
        if !is_json_media(media_type) || media.get("schema").is_none() {
            continue;
        }
        let schema = format!("{body_pointer}/content/{}/schema", escape_pointer(media_type));
        for (name, example) in examples.into_iter().flatten() {
            let Some(value) = spec.resolve(example).ok().and_then(|e| e.get("value")) else { continue };
            for error in validator.errors(&schema, value) {
                findings.push(
                    format!("{operation} request example {name:?}"),
                    format!("does not match its schema: {error}"),
                );
            }
        }
    }
}

/// Validates values against schemas at JSON pointers inside one spec, resolving `$ref`s
/// against the whole document.
pub struct ExampleValidator {
    registry: Registry<'static>,
    base: String,
}

impl ExampleValidator {
    /// Register the spec under a `urn:` base so its internal `$ref`s resolve.
    pub fn new(spec: &Spec) -> Result<ExampleValidator> {
        let base = format!("urn:mpapi:openapi:{}", spec.api.id);
        let registry = Registry::new()
            .add(base.as_str(), spec.doc.clone())
            .context("registering the spec")?
            .prepare()
            .context("preparing the registry")?;
        Ok(ExampleValidator { registry, base })
    }

    /// The validation errors of `value` against the schema at `schema_pointer`, as text.
    pub fn errors(&self, schema_pointer: &str, value: &Value) -> Vec<String> {
        let wrapper = json!({ "$ref": format!("{}#{}", self.base, fragment(schema_pointer)) });
        let validator: Validator = match jsonschema::options()
            .with_draft(Draft::Draft202012)
            .with_registry(&self.registry)
            .should_validate_formats(true)
            .build(&wrapper)
        {
            Ok(v) => v,
            Err(e) => return vec![format!("schema does not compile: {e}")],
        };
        validator
            .iter_errors(value)
            .map(|e| format!("at {:?}: {e}", e.instance_path().to_string()))
            .collect()
    }
}

/// A JSON pointer as a URI fragment (RFC 6901 §6): percent-encode what a fragment may not
/// hold, such as the `{}` of path templates.
fn fragment(pointer: &str) -> String {
    let mut out = String::with_capacity(pointer.len());
    for byte in pointer.bytes() {
        let allowed = byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?".contains(&byte);
        if allowed {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn is_snake_case_resource_verb(id: &str) -> bool {
    let mut parts = id.split('_');
    let first_ok = parts.next().is_some_and(|p| p.starts_with(|c: char| c.is_ascii_lowercase()));
    let rest: Vec<&str> = parts.collect();
    first_ok
        && !rest.is_empty()
        && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && rest.iter().all(|p| !p.is_empty())
}

fn is_mock_name(name: &str) -> bool {
    !name.is_empty()
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}
