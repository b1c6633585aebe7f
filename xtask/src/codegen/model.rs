//! The generator's model of one spec: named Rust types for its schemas, and its operations with
//! typed parameters, bodies and responses. Emission (`emit.rs`) only reads this model.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, anyhow, bail};
use heck::{ToSnakeCase, ToUpperCamelCase};
use serde_json::{Map, Value};

use crate::spec::{Spec, status_rank};

/// A Rust type a field, parameter or body has.
#[derive(Debug, Clone, PartialEq)]
pub enum Ty {
    /// `String`.
    String,
    /// `i32` (`format: int32`).
    I32,
    /// `i64` (integers without `format: int32`).
    I64,
    /// `f64` (numbers that are not money).
    F64,
    /// `bool`.
    Bool,
    /// `rust_decimal::Decimal` travelling as a JSON number (`format: decimal`, money in yuan).
    DecimalNumber,
    /// `rust_decimal::Decimal` travelling as a JSON string (`type: string, format: decimal`).
    DecimalString,
    /// An uploaded file (`format: binary` in a multipart body).
    Upload,
    /// Any JSON (schemas with no type, or several non-null types).
    Json,
    /// A JSON object with no declared properties (`serde_json::Map`).
    JsonObject,
    /// Always `null` (`type: "null"`).
    Null,
    /// `Vec<T>`.
    Vec(Box<Ty>),
    /// `BTreeMap<String, T>` (`additionalProperties`).
    Map(Box<Ty>),
    /// A generated type, by its Rust name.
    Named(String),
}

/// The JSON Schema constraints the router checks after deserialisation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Constraints {
    /// `minLength`.
    pub min_length: Option<u64>,
    /// `maxLength`.
    pub max_length: Option<u64>,
    /// `pattern`.
    pub pattern: Option<String>,
    /// What a value that breaks `pattern` should look like, for the refusal message (never the
    /// regex): the schema's `x-pattern-description`, else its `description`.
    pub pattern_hint: String,
    /// `minimum` (or `exclusiveMinimum`, then `exclusive_minimum` is set).
    pub minimum: Option<f64>,
    /// Whether `minimum` is exclusive.
    pub exclusive_minimum: bool,
    /// `maximum` (or `exclusiveMaximum`).
    pub maximum: Option<f64>,
    /// Whether `maximum` is exclusive.
    pub exclusive_maximum: bool,
    /// `minItems`.
    pub min_items: Option<u64>,
    /// `maxItems`.
    pub max_items: Option<u64>,
    /// `format` on strings (`date-time`, `date`, `local-date-time`, `email`, ...).
    pub format: Option<String>,
    /// The JSON types allowed, when a schema allows several (`[string, integer]`): such values
    /// stay untyped JSON and are checked against this list.
    pub json_types: Vec<String>,
    /// The `enum` of such a schema, each value as JSON text (`"\"业主\""`, `"2"`): no Rust enum
    /// can hold both kinds, so the value is checked against this list.
    pub json_enum: Vec<String>,
}

/// One property of a struct.
#[derive(Debug, Clone)]
pub struct Field {
    /// The name on the wire.
    pub wire: String,
    /// The Rust field name (snake_case, raw identifier for keywords).
    pub ident: String,
    /// The value's type, without `Option`.
    pub ty: Ty,
    /// Listed in `required`.
    pub required: bool,
    /// Allows `null`.
    pub nullable: bool,
    /// Documentation: the spec's description, unit, enum meanings, constraints.
    pub doc: String,
    /// Constraints checked by `Validate`.
    pub constraints: Constraints,
    /// Constraints on array items, when `ty` is a `Vec` of scalars.
    pub item_constraints: Constraints,
    /// The schema's `format`, as utoipa should publish it.
    pub format: Option<String>,
    /// The schema's `default`, when it has one.
    pub default: Option<Value>,
    /// The property's schema as the spec states it (inline ones only).
    pub schema: Option<Value>,
}

/// A generated type.
#[derive(Debug, Clone)]
pub enum TypeDef {
    /// An object: a struct.
    Struct {
        /// Rust name.
        name: String,
        /// Doc comment.
        doc: String,
        /// Properties, in the spec's order.
        fields: Vec<Field>,
        /// The XML root element name, for `application/xml` bodies.
        xml_name: Option<String>,
        /// The type of properties not listed (`additionalProperties` beside `properties`).
        additional: Option<Ty>,
        /// `additionalProperties: false`: properties not listed are refused.
        closed: bool,
    },
    /// A string enum.
    StringEnum {
        /// Rust name.
        name: String,
        /// Doc comment.
        doc: String,
        /// (wire value, Rust variant, meaning).
        variants: Vec<(String, String, String)>,
    },
    /// An integer enum.
    IntEnum {
        /// Rust name.
        name: String,
        /// Doc comment.
        doc: String,
        /// (wire value, Rust variant, meaning).
        variants: Vec<(i64, String, String)>,
    },
    /// A constrained scalar used as array items: a validated newtype (utoipa can only publish
    /// item constraints on a type of their own).
    Newtype {
        /// Rust name.
        name: String,
        /// Doc comment.
        doc: String,
        /// The wrapped scalar.
        ty: Ty,
        /// Its constraints.
        constraints: Constraints,
        /// Its format.
        format: Option<String>,
    },
    /// A named scalar or collection schema: a type alias.
    Alias {
        /// Rust name.
        name: String,
        /// Doc comment.
        doc: String,
        /// The aliased type.
        ty: Ty,
    },
}

impl TypeDef {
    /// The Rust name of the type.
    pub fn name(&self) -> &str {
        match self {
            TypeDef::Struct { name, .. }
            | TypeDef::StringEnum { name, .. }
            | TypeDef::IntEnum { name, .. }
            | TypeDef::Newtype { name, .. }
            | TypeDef::Alias { name, .. } => name,
        }
    }
}

/// Where a parameter travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// In the path template.
    Path,
    /// In the query string.
    Query,
    /// In a header.
    Header,
}

/// One parameter of an operation.
#[derive(Debug, Clone)]
pub struct Param {
    /// The name on the wire.
    pub wire: String,
    /// The Rust field name in the input struct.
    pub ident: String,
    /// Where it travels.
    pub location: Location,
    /// Required by the spec (path parameters always are).
    pub required: bool,
    /// Its type (scalars and enums).
    pub ty: Ty,
    /// Its default, applied when absent.
    pub default: Option<Value>,
    /// Constraints on its value.
    pub constraints: Constraints,
    /// Doc comment.
    pub doc: String,
    /// The schema's format.
    pub format: Option<String>,
    /// The parameter's documented `example`, published with it.
    pub example: Option<Value>,
}

/// How a request body travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/json`.
    Json,
    /// `application/xml` / `text/xml`.
    Xml,
    /// `multipart/form-data`.
    Multipart,
}

/// An operation's request body.
#[derive(Debug, Clone)]
pub struct Body {
    /// How it travels.
    pub kind: BodyKind,
    /// Every media type the spec accepts for it.
    pub media_types: Vec<String>,
    /// Its type (a generated struct).
    pub ty: Ty,
    /// Required by the spec.
    pub required: bool,
    /// Doc comment.
    pub doc: String,
    /// The documented examples, per media type: name → `{summary, description, value}`, in the
    /// spec's order, references resolved.
    pub examples: Vec<(String, Map<String, Value>)>,
}

/// How a response body travels.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// No body.
    Empty,
    /// JSON of the given type.
    Json(Ty),
    /// Text (HTML or XML written by the implementation) with this media type, and the schema
    /// the spec gives the text's structure (XML), if any.
    Text(String, Option<Ty>),
}

/// One documented response: a status and (at most) one media type.
#[derive(Debug, Clone)]
pub struct Response {
    /// The HTTP status.
    pub status: u16,
    /// The variant name in the operation's output enum.
    pub variant: String,
    /// The media type, when there is a body.
    pub media_type: Option<String>,
    /// The body.
    pub payload: Payload,
    /// The headers the response declares, when it declares any.
    pub headers: Option<ResponseHeaders>,
    /// The documented examples of this status and media type: name → `{summary, description,
    /// value}`, in the spec's order, references resolved.
    pub examples: Map<String, Value>,
    /// The spec's description.
    pub doc: String,
}

/// The headers one response declares: their generated struct, and what the spec says of each.
#[derive(Debug, Clone)]
pub struct ResponseHeaders {
    /// The generated struct (a [`HeadersDef`]) that carries them.
    pub ty: String,
    /// Each header: wire name, description, example (when the spec gives one).
    pub headers: Vec<(String, String, Option<Value>)>,
}

/// A struct of typed response headers, one per distinct set of declared headers (responses that
/// declare the same headers share it).
#[derive(Debug, Clone)]
pub struct HeadersDef {
    /// Rust name (`RetryAfterHeaders`).
    pub name: String,
    /// One optional field per header; `wire` is the header's name.
    pub fields: Vec<Field>,
}

/// How an operation is secured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Security {
    /// `security: []`.
    Public,
    /// One scheme required.
    Required(Scheme),
    /// One scheme, or none (`[{scheme: []}, {}]`).
    Optional(Scheme),
}

/// A security scheme the specs use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheme {
    /// The scheme's name in `components.securitySchemes`.
    pub name: String,
    /// Where the credential travels.
    pub carrier: Carrier,
    /// A bearer scheme's `bearerFormat`, published as the spec states it (points' API key is
    /// `sk_live_…`, not a JWT).
    pub bearer_format: Option<String>,
}

/// Where a credential travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Carrier {
    /// `Authorization: Bearer`.
    Bearer,
    /// An apiKey in the query (o2o's `token`), or in the JSON body on operations marked
    /// `x-token-in: body` (which publish `security: []`).
    ApiKeyQuery {
        /// The parameter name.
        name: String,
        /// Carried in the JSON body instead of the query.
        in_body: bool,
    },
}

/// One operation.
#[derive(Debug, Clone)]
pub struct Operation {
    /// The operationId.
    pub id: String,
    /// PascalCase of the operationId (type name prefix).
    pub pascal: String,
    /// Lower-case method.
    pub method: String,
    /// The path template.
    pub path: String,
    /// The spec's summary.
    pub summary: String,
    /// The spec's description.
    pub description: String,
    /// `x-source`.
    pub source: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Security.
    pub security: Security,
    /// Parameters, path first, in spec order.
    pub params: Vec<Param>,
    /// Request body.
    pub body: Option<Body>,
    /// Responses, by ascending status.
    pub responses: Vec<Response>,
    /// The operation's own `x-rejections`, by kind, used instead of the document's (a WeChat Pay
    /// notify is refused in WeChat Pay's answer format, not the API's envelope).
    pub rejections: BTreeMap<String, RejectionRule>,
}

/// How the router answers a request it refuses before calling the implementation
/// (`x-rejections` in the spec).
#[derive(Debug, Clone)]
pub struct RejectionRule {
    /// The HTTP status.
    pub status: u16,
    /// The body's media type: JSON (the body is a JSON template) unless the rule names another
    /// (`application/xml`: the body is a text template).
    pub media_type: Option<String>,
    /// The body template (strings `{message}`, `{now_ms}` are substituted).
    pub body: Value,
    /// `by_field`: a violation at one of these fields is answered with its own status and body
    /// instead (heating's malformed phone number is code 1001, not 400). First match wins.
    pub by_field: Vec<FieldRule>,
}

/// A field-specific answer to an invalid request (`x-rejections.invalid_request.by_field`).
#[derive(Debug, Clone)]
pub struct FieldRule {
    /// The violation path that selects it (`phone`).
    pub field: String,
    /// `when: missing`: only a violation saying the field is absent (a required body field or
    /// file not sent) selects it; any violation at the field otherwise.
    pub missing: bool,
    /// The HTTP status.
    pub status: u16,
    /// The body template.
    pub body: Value,
}

/// Everything the emitter needs about one spec.
#[derive(Debug, Clone)]
pub struct Model {
    /// The API id.
    pub api: &'static str,
    /// The trait name (`HeatingApi`).
    pub trait_name: String,
    /// `info.title`.
    pub title: String,
    /// `info.version`.
    pub version: String,
    /// `info.description`.
    pub description: String,
    /// Generated types, components first then inline ones, each name once.
    pub types: Vec<TypeDef>,
    /// Typed response headers (not schemas of the document: published on their responses).
    pub headers: Vec<HeadersDef>,
    /// Operations, in spec order.
    pub operations: Vec<Operation>,
    /// Security schemes used.
    pub schemes: Vec<Scheme>,
    /// The rejection rules, by kind (`invalid_request`, `unauthenticated`, ...).
    pub rejections: BTreeMap<String, RejectionRule>,
    /// Tag names with their descriptions.
    pub tags: Vec<(String, String)>,
    /// Every response example: (operationId, name, status, media type, is the default).
    pub examples: Vec<(String, String, u16, String, bool)>,
}

/// The Rust trait name of an API (`o2o` → `O2oApi`).
pub fn trait_name(api: &str) -> String {
    format!("{}Api", api.to_upper_camel_case())
}

/// Build the model of a spec.
pub fn build(spec: &Spec) -> Result<Model> {
    let mut builder = Builder { spec, types: Vec::new(), names: BTreeSet::new(), headers: Vec::new() };
    let schemas = spec.doc.pointer("/components/schemas").and_then(Value::as_object).cloned().unwrap_or_default();
    for name in schemas.keys() {
        builder.names.insert(name.to_upper_camel_case());
    }
    for (name, schema) in &schemas {
        builder.component(name, schema).with_context(|| format!("schema {name}"))?;
    }
    let schemes = security_schemes(spec)?;
    let mut operations = Vec::new();
    for op in spec.operations() {
        let built = builder.operation(&op, &schemes).with_context(|| op.to_string())?;
        operations.push(built);
    }
    let rejections = rejections(spec)?;
    let tags = spec
        .doc
        .get("tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|t| (str_of(t, "name"), str_of(t, "description")))
        .collect();
    let response_examples = spec.response_examples();
    let examples = response_examples
        .iter()
        .map(|e| {
            let id = e.operation.id();
            let is_default = crate::spec::default_example(&response_examples, id)
                .is_some_and(|d| d.name == e.name);
            (id.to_owned(), e.name.to_owned(), e.status.parse().unwrap_or(0), e.media_type.to_owned(), is_default)
        })
        .collect();
    Ok(Model {
        examples,
        api: spec.api.id,
        trait_name: trait_name(spec.api.id),
        title: spec.doc.pointer("/info/title").and_then(Value::as_str).unwrap_or_default().to_owned(),
        version: spec.doc.pointer("/info/version").and_then(Value::as_str).unwrap_or_default().to_owned(),
        description: spec.doc.pointer("/info/description").and_then(Value::as_str).unwrap_or_default().to_owned(),
        types: builder.types,
        headers: builder.headers.into_iter().map(|(_, def)| def).collect(),
        operations,
        schemes: schemes.into_values().collect(),
        rejections,
        tags,
    })
}

fn str_of(node: &Value, key: &str) -> String {
    node.get(key).and_then(Value::as_str).unwrap_or_default().to_owned()
}

fn security_schemes(spec: &Spec) -> Result<BTreeMap<String, Scheme>> {
    let mut out = BTreeMap::new();
    let schemes = spec.doc.pointer("/components/securitySchemes").and_then(Value::as_object);
    for (name, scheme) in schemes.into_iter().flatten() {
        let carrier = match (scheme.get("type").and_then(Value::as_str), scheme.get("scheme").and_then(Value::as_str)) {
            (Some("http"), Some(s)) if s.eq_ignore_ascii_case("bearer") => Carrier::Bearer,
            (Some("apiKey"), _) if scheme.get("in").and_then(Value::as_str) == Some("query") => {
                Carrier::ApiKeyQuery { name: str_of(scheme, "name"), in_body: false }
            }
            _ => bail!("security scheme {name}: only http bearer and apiKey in query are supported"),
        };
        let bearer_format = scheme.get("bearerFormat").and_then(Value::as_str).map(str::to_owned);
        out.insert(name.clone(), Scheme { name: name.clone(), carrier, bearer_format });
    }
    Ok(out)
}

fn rejections(spec: &Spec) -> Result<BTreeMap<String, RejectionRule>> {
    let rules = spec
        .doc
        .get("x-rejections")
        .and_then(Value::as_object)
        .ok_or_else(|| anyhow!("the spec needs x-rejections (how the router answers refused requests)"))?;
    let mut out = BTreeMap::new();
    for kind in crate::codegen::REJECTION_KINDS {
        let rule = rules.get(kind).ok_or_else(|| anyhow!("x-rejections has no {kind}"))?;
        out.insert(kind.to_owned(), rejection_rule(kind, rule)?);
    }
    Ok(out)
}

/// An operation's own `x-rejections`: any kind a handler can refuse with (unknown paths and
/// methods never reach one).
fn operation_rejections(node: &Value) -> Result<BTreeMap<String, RejectionRule>> {
    let mut out = BTreeMap::new();
    for (kind, rule) in node.get("x-rejections").and_then(Value::as_object).into_iter().flatten() {
        if kind == "description" {
            continue;
        }
        if !crate::codegen::REJECTION_KINDS.contains(&kind.as_str()) || ["not_found", "method_not_allowed"].contains(&kind.as_str()) {
            bail!("x-rejections.{kind}: an operation can only answer the kinds its handler refuses");
        }
        out.insert(kind.clone(), rejection_rule(kind, rule)?);
    }
    Ok(out)
}

fn rejection_rule(kind: &str, rule: &Value) -> Result<RejectionRule> {
    let status = rule.get("status").and_then(Value::as_u64).ok_or_else(|| anyhow!("x-rejections.{kind}.status"))?;
    let body = rule.get("body").cloned().ok_or_else(|| anyhow!("x-rejections.{kind}.body"))?;
    let media_type = rule.get("media_type").and_then(Value::as_str).map(str::to_owned);
    if media_type.as_deref().is_some_and(|m| !crate::spec::is_json_media(m)) != body.is_string() {
        bail!("x-rejections.{kind}: a text body (a string) goes with a non-JSON media_type, a JSON body without one");
    }
    let mut by_field = Vec::new();
    for (i, field_rule) in rule.get("by_field").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let at = |key: &str| anyhow!("x-rejections.{kind}.by_field[{i}].{key}");
        let missing = match field_rule.get("when") {
            None => false,
            Some(Value::String(when)) if when == "missing" => true,
            Some(_) => return Err(at("when (only `missing`)")),
        };
        by_field.push(FieldRule {
            field: field_rule.get("field").and_then(Value::as_str).ok_or_else(|| at("field"))?.to_owned(),
            missing,
            status: u16::try_from(field_rule.get("status").and_then(Value::as_u64).ok_or_else(|| at("status"))?)?,
            body: field_rule.get("body").cloned().ok_or_else(|| at("body"))?,
        });
    }
    Ok(RejectionRule { status: u16::try_from(status)?, media_type, body, by_field })
}

struct Builder<'a> {
    spec: &'a Spec,
    types: Vec<TypeDef>,
    /// Every Rust type name taken so far.
    names: BTreeSet<String>,
    /// Header structs, by the declaration they were built from (its JSON without examples).
    headers: Vec<(String, HeadersDef)>,
}

impl Builder<'_> {
    /// A component schema becomes a type under its own name.
    fn component(&mut self, name: &str, schema: &Value) -> Result<()> {
        let rust = name.to_upper_camel_case();
        let def = self.define(&rust, schema)?;
        match def {
            Some(def) => self.types.push(def),
            None => {
                let ty = self.ty(schema, &rust)?;
                self.types.push(TypeDef::Alias { name: rust, doc: doc_of(schema), ty });
            }
        }
        Ok(())
    }

    /// The type definition a schema needs of its own (struct or enum), if any.
    fn define(&mut self, name: &str, schema: &Value) -> Result<Option<TypeDef>> {
        let schema = self.spec.resolve(schema)?;
        let doc = doc_of(schema);
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            let meanings = enum_meanings(schema);
            let (base, _) = base_type(schema);
            return Ok(Some(match base.as_deref() {
                Some("integer") => TypeDef::IntEnum {
                    name: name.to_owned(),
                    doc,
                    variants: values
                        .iter()
                        .enumerate()
                        .filter_map(|(i, v)| v.as_i64().map(|n| (i, n)))
                        .map(|(i, n)| (n, int_variant(n), meanings.get(i).cloned().unwrap_or_default()))
                        .collect(),
                },
                Some("string") => {
                    let mut seen = BTreeSet::new();
                    TypeDef::StringEnum {
                        name: name.to_owned(),
                        doc,
                        variants: values
                            .iter()
                            .enumerate()
                            .filter_map(|(i, v)| v.as_str().map(|s| (i, s)))
                            .map(|(i, s)| {
                                let mut variant = string_variant(s, i);
                                if !seen.insert(variant.clone()) {
                                    variant = format!("{variant}{i}");
                                }
                                (s.to_owned(), variant, meanings.get(i).cloned().unwrap_or_default())
                            })
                            .collect(),
                    }
                }
                // An enum over several types (`[string, integer]`) stays untyped JSON.
                _ => return Ok(None),
            }));
        }
        let (base, _) = base_type(schema);
        if base.as_deref() == Some("object") && schema.get("properties").is_some() {
            let required: BTreeSet<&str> =
                schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
            let mut fields = Vec::new();
            let mut idents = BTreeSet::new();
            for (wire, prop) in schema.get("properties").and_then(Value::as_object).into_iter().flatten() {
                let mut ident = field_ident(wire);
                while !idents.insert(ident.clone()) {
                    ident.push('_');
                }
                let field_type_name = format!("{name}{}", wire.to_upper_camel_case());
                let field = self.field(wire, ident, prop, required.contains(wire.as_str()), &field_type_name)?;
                fields.push(field);
            }
            let xml_name = schema.pointer("/xml/name").and_then(Value::as_str).map(str::to_owned);
            let additional = match schema.get("additionalProperties").filter(|a| a.is_object()) {
                Some(extra) => Some(self.ty(extra, &format!("{name}Value"))?),
                None => None,
            };
            let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
            return Ok(Some(TypeDef::Struct { name: name.to_owned(), doc, fields, xml_name, additional, closed }));
        }
        Ok(None)
    }

    fn field(&mut self, wire: &str, ident: String, prop: &Value, required: bool, type_name: &str) -> Result<Field> {
        // `oneOf: [{$ref}, {type: "null"}]` is a referenced type that may be null: the field is
        // that type, nullable (its description stays the field's).
        if let Some(reference) = nullable_ref(prop) {
            let mut field = self.field(wire, ident, reference, required, type_name)?;
            field.nullable = true;
            field.doc = doc_of(prop);
            return Ok(field);
        }
        let resolved = self.spec.resolve(prop)?;
        let (_, nullable) = base_type(resolved);
        let ty = self.ty(prop, type_name)?;
        let item_constraints = match resolved.get("items") {
            Some(items) if !is_ref(items) => constraints(self.spec.resolve(items)?),
            _ => Constraints::default(),
        };
        Ok(Field {
            wire: wire.to_owned(),
            ident,
            // A field whose type is `null` itself is not "nullable" on top of that.
            nullable: nullable && ty != Ty::Null,
            ty,
            required,
            doc: doc_of(prop),
            constraints: if is_ref(prop) { Constraints::default() } else { constraints(resolved) },
            item_constraints,
            format: resolved.get("format").and_then(Value::as_str).map(str::to_owned),
            default: resolved.get("default").cloned(),
            schema: (!is_ref(prop)).then(|| prop.clone()),
        })
    }

    /// The Rust type of a schema used in place; inline objects and enums become new named types
    /// called `suggested` (made unique).
    fn ty(&mut self, schema: &Value, suggested: &str) -> Result<Ty> {
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let name = reference.rsplit('/').next().unwrap_or_default();
            return Ok(Ty::Named(name.to_upper_camel_case()));
        }
        if schema.get("oneOf").is_some() || schema.get("anyOf").is_some() {
            return Ok(Ty::Json);
        }
        let (base, _) = base_type(schema);
        let format = schema.get("format").and_then(Value::as_str).unwrap_or_default();
        if schema.get("enum").is_some() && matches!(base.as_deref(), Some("string" | "integer")) {
            let name = self.fresh_name(suggested);
            let def = self.define(&name, schema)?.expect("an enum defines a type");
            self.types.push(def);
            return Ok(Ty::Named(name));
        }
        Ok(match base.as_deref() {
            Some("string") => match format {
                "binary" => Ty::Upload,
                "decimal" => Ty::DecimalString,
                _ => Ty::String,
            },
            Some("integer") => if format == "int32" { Ty::I32 } else { Ty::I64 },
            Some("number") => if format == "decimal" { Ty::DecimalNumber } else { Ty::F64 },
            Some("boolean") => Ty::Bool,
            Some("array") => {
                let items = schema.get("items").ok_or_else(|| anyhow!("array without items"))?;
                let item_name = suggested.strip_suffix('s').filter(|s| !s.is_empty()).map(|s| format!("{s}Item")).unwrap_or_else(|| format!("{suggested}Item"));
                let item_constraints = constraints(items);
                let scalar = matches!(base_type(items).0.as_deref(), Some("string" | "integer" | "number"));
                if !is_ref(items) && scalar && items.get("enum").is_none() && item_constraints != Constraints::default() {
                    let name = self.fresh_name(&item_name);
                    let inner = self.ty(items, &name)?;
                    self.types.push(TypeDef::Newtype {
                        name: name.clone(),
                        doc: doc_of(items),
                        ty: inner,
                        format: items.get("format").and_then(Value::as_str).map(str::to_owned),
                        constraints: item_constraints,
                    });
                    Ty::Vec(Box::new(Ty::Named(name)))
                } else {
                    Ty::Vec(Box::new(self.ty(items, &item_name)?))
                }
            }
            Some("object") => {
                if schema.get("properties").is_some() {
                    let name = self.fresh_name(suggested);
                    let def = self.define(&name, schema)?.expect("an object with properties defines a struct");
                    self.types.push(def);
                    Ty::Named(name)
                } else if let Some(additional) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                    Ty::Map(Box::new(self.ty(additional, &format!("{suggested}Value"))?))
                } else {
                    Ty::JsonObject
                }
            }
            None if schema.get("type") == Some(&Value::String("null".into())) => Ty::Null,
            _ => Ty::Json,
        })
    }

    fn fresh_name(&mut self, suggested: &str) -> String {
        let mut name = suggested.to_owned();
        let mut n = 2;
        while self.names.contains(&name) {
            name = format!("{suggested}{n}");
            n += 1;
        }
        self.names.insert(name.clone());
        name
    }

    fn operation(&mut self, op: &crate::spec::Operation<'_>, schemes: &BTreeMap<String, Scheme>) -> Result<Operation> {
        let id = op.id().to_owned();
        let pascal = id.to_upper_camel_case();
        let node = op.op;
        let security = self.security(node, schemes)?;
        let mut params = Vec::new();
        let path_item = self.spec.doc.pointer(&format!("/paths/{}", crate::spec::escape_pointer(op.path)));
        let all_params = path_item
            .and_then(|p| p.get("parameters"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .chain(node.get("parameters").and_then(Value::as_array).into_iter().flatten());
        for param in all_params {
            let param = self.spec.resolve(param)?;
            let wire = str_of(param, "name");
            let location = match param.get("in").and_then(Value::as_str) {
                Some("path") => Location::Path,
                Some("query") => Location::Query,
                Some("header") => Location::Header,
                other => bail!("parameter {wire} in {other:?} is not supported"),
            };
            let schema = param.get("schema").cloned().unwrap_or(Value::Object(Map::new()));
            let resolved = self.spec.resolve(&schema)?.clone();
            let ty = self.ty(&schema, &format!("{pascal}{}", wire.to_upper_camel_case()))?;
            params.push(Param {
                ident: field_ident(&wire),
                required: location == Location::Path || param.get("required").and_then(Value::as_bool).unwrap_or(false),
                default: resolved.get("default").cloned(),
                constraints: {
                    let mut c = constraints(&resolved);
                    // A parameter describes itself beside its schema.
                    if c.pattern.is_some() && c.pattern_hint.is_empty() {
                        c.pattern_hint = str_of(param, "description").split(['\n', '。', '；']).next().unwrap_or_default().trim().to_owned();
                    }
                    c
                },
                doc: doc_of(param),
                format: resolved.get("format").and_then(Value::as_str).map(str::to_owned),
                example: param.get("example").cloned(),
                wire,
                location,
                ty,
            });
        }
        params.sort_by_key(|p| match p.location {
            Location::Path => 0,
            Location::Query => 1,
            Location::Header => 2,
        });
        let body = match node.get("requestBody") {
            Some(body) => Some(self.body(self.spec.resolve(body)?, &pascal)?),
            None => None,
        };
        let responses = self.responses(node, &pascal)?;
        let rejections = operation_rejections(node)?;
        Ok(Operation {
            rejections,
            pascal,
            method: op.method.to_owned(),
            path: op.path.to_owned(),
            summary: str_of(node, "summary"),
            description: str_of(node, "description"),
            source: str_of(node, "x-source"),
            tags: node.get("tags").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect(),
            security,
            params,
            body,
            responses,
            id,
        })
    }

    fn security(&self, node: &Value, schemes: &BTreeMap<String, Scheme>) -> Result<Security> {
        let requirements = node.get("security").and_then(Value::as_array).ok_or_else(|| anyhow!("no security"))?;
        if node.get("x-token-in").and_then(Value::as_str) == Some("body") {
            // OpenAPI cannot put an apiKey in the body: such an operation states `security: []`
            // (tools would otherwise send the key in the query and expect it refused without),
            // and the router takes the credential from the body field the apiKey scheme names.
            if !requirements.is_empty() {
                bail!("x-token-in: body needs security: [] (the credential is a body field, which OpenAPI cannot declare as a scheme)");
            }
            let keys: Vec<&Scheme> = schemes.values().filter(|s| matches!(s.carrier, Carrier::ApiKeyQuery { .. })).collect();
            let [scheme] = keys.as_slice() else { bail!("x-token-in: body needs exactly one apiKey security scheme") };
            let Carrier::ApiKeyQuery { name, .. } = &scheme.carrier else { unreachable!("filtered above") };
            return Ok(Security::Required(Scheme {
                name: scheme.name.clone(),
                carrier: Carrier::ApiKeyQuery { name: name.clone(), in_body: true },
                bearer_format: None,
            }));
        }
        let named: Vec<&String> = requirements.iter().filter_map(Value::as_object).flat_map(|r| r.keys()).collect();
        let has_empty = requirements.iter().any(|r| r.as_object().is_some_and(Map::is_empty));
        let scheme = match named.as_slice() {
            [] => return Ok(Security::Public),
            [one] => schemes.get(*one).cloned().ok_or_else(|| anyhow!("unknown security scheme {one}"))?,
            _ => bail!("operations with several security schemes are not supported"),
        };
        Ok(if has_empty { Security::Optional(scheme) } else { Security::Required(scheme) })
    }

    fn body(&mut self, body: &Value, pascal: &str) -> Result<Body> {
        let content = body.get("content").and_then(Value::as_object).ok_or_else(|| anyhow!("request body without content"))?;
        let media_types: Vec<String> = content.keys().cloned().collect();
        let first = media_types.first().ok_or_else(|| anyhow!("request body without media types"))?;
        let kind = if crate::spec::is_json_media(first) {
            BodyKind::Json
        } else if first.ends_with("/xml") {
            BodyKind::Xml
        } else if first == "multipart/form-data" {
            BodyKind::Multipart
        } else {
            bail!("request body media type {first} is not supported");
        };
        let schema = content[first].get("schema").ok_or_else(|| anyhow!("request body without schema"))?;
        let ty = self.ty(schema, &format!("{pascal}Body"))?;
        let mut examples = Vec::new();
        for (media_type, media) in content {
            examples.push((media_type.clone(), self.examples(media)?));
        }
        Ok(Body {
            kind,
            media_types,
            ty,
            required: body.get("required").and_then(Value::as_bool).unwrap_or(false),
            doc: str_of(body, "description"),
            examples,
        })
    }

    fn responses(&mut self, node: &Value, pascal: &str) -> Result<Vec<Response>> {
        let responses = node.get("responses").and_then(Value::as_object).ok_or_else(|| anyhow!("no responses"))?;
        let mut keys: Vec<&String> = responses.keys().collect();
        keys.sort_by_key(|k| status_rank(k));
        let mut out = Vec::new();
        for key in keys {
            let status: u16 = key.parse().with_context(|| format!("response key {key} is not a status code"))?;
            let response = self.spec.resolve(&responses[key])?;
            let doc = str_of(response, "description");
            let headers = self.response_headers(response).with_context(|| format!("headers of response {key}"))?;
            let content = response.get("content").and_then(Value::as_object);
            let Some(content) = content.filter(|c| !c.is_empty()) else {
                let examples = Map::new();
                out.push(Response { status, variant: status_variant(status), media_type: None, payload: Payload::Empty, headers, examples, doc });
                continue;
            };
            let several = content.len() > 1;
            for (media_type, media) in content {
                let payload = if crate::spec::is_json_media(media_type) {
                    let schema = media.get("schema").ok_or_else(|| anyhow!("{key} {media_type} has no schema"))?;
                    Payload::Json(self.ty(schema, &format!("{pascal}{}Body", status_variant(status)))?)
                } else {
                    let structure = match media.get("schema") {
                        Some(schema) if base_type(self.spec.resolve(schema)?).0.as_deref() == Some("object") => {
                            Some(self.ty(schema, &format!("{pascal}{}Body", status_variant(status)))?)
                        }
                        _ => None,
                    };
                    Payload::Text(media_type.clone(), structure)
                };
                let mut variant = status_variant(status);
                if several {
                    variant.push_str(&media_suffix(media_type));
                }
                out.push(Response {
                    status,
                    variant,
                    media_type: Some(media_type.clone()),
                    payload,
                    headers: headers.clone(),
                    examples: self.examples(media)?,
                    doc: doc.clone(),
                });
            }
        }
        Ok(out)
    }

    /// The examples of a media type object: name → `{summary, description, value}` (references
    /// resolved, other keys dropped), in the spec's order.
    fn examples(&self, media: &Value) -> Result<Map<String, Value>> {
        let mut out = Map::new();
        for (name, example) in media.get("examples").and_then(Value::as_object).into_iter().flatten() {
            let example = self.spec.resolve(example).with_context(|| format!("example {name}"))?;
            let kept: Map<String, Value> = ["summary", "description", "value"]
                .iter()
                .filter_map(|key| Some(((*key).to_owned(), example.get(*key)?.clone())))
                .collect();
            out.insert(name.clone(), Value::Object(kept));
        }
        Ok(out)
    }

    /// The headers a response declares, typed: one struct per distinct declaration.
    fn response_headers(&mut self, response: &Value) -> Result<Option<ResponseHeaders>> {
        let Some(declared) = response.get("headers").and_then(Value::as_object).filter(|h| !h.is_empty()) else {
            return Ok(None);
        };
        let mut resolved = Map::new();
        let mut described = Vec::new();
        for (name, header) in declared {
            let header = self.spec.resolve(header)?;
            if header.get("required").and_then(Value::as_bool) == Some(true) {
                // An error answer (`FromErrorAnswer`) could not fill it.
                bail!("header {name}: required response headers are not supported");
            }
            let mut schema = header.get("schema").cloned().ok_or_else(|| anyhow!("header {name} has no schema"))?;
            if let (Some(schema), Some(description)) = (schema.as_object_mut(), header.get("description")) {
                schema.entry("description").or_insert_with(|| description.clone());
            }
            let example = header.get("example").cloned();
            if let Some(example) = &example {
                // Mock mode sends it as it is: it must be a valid header value.
                let text = example.as_str().map(str::to_owned).unwrap_or_else(|| example.to_string());
                if !text.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
                    bail!("header {name}: the example {text:?} is not a header value (visible ASCII)");
                }
            }
            described.push((name.clone(), str_of(header, "description"), example));
            resolved.insert(name.clone(), schema);
        }
        let key = Value::Object(resolved.clone()).to_string();
        if let Some((_, def)) = self.headers.iter().find(|(k, _)| *k == key) {
            return Ok(Some(ResponseHeaders { ty: def.name.clone(), headers: described }));
        }
        let suggested: String = resolved.keys().map(|n| n.to_upper_camel_case()).collect::<String>() + "Headers";
        let name = self.fresh_name(&suggested);
        let mut fields = Vec::new();
        for (wire, schema) in &resolved {
            fields.push(self.field(wire, field_ident(wire), schema, false, &format!("{name}{}", wire.to_upper_camel_case()))?);
        }
        self.headers.push((key, HeadersDef { name: name.clone(), fields }));
        Ok(Some(ResponseHeaders { ty: name, headers: described }))
    }
}

fn is_ref(schema: &Value) -> bool {
    schema.get("$ref").is_some()
}

/// The `$ref` branch of `oneOf` (or `anyOf`) `[{$ref}, {type: "null"}]`, in either order: how
/// OpenAPI 3.1 writes a referenced schema that may also be null.
pub fn nullable_ref(schema: &Value) -> Option<&Value> {
    let options = schema.get("oneOf").or_else(|| schema.get("anyOf"))?.as_array()?;
    let is_null = |o: &Value| o.get("type") == Some(&Value::String("null".into()));
    match options.as_slice() {
        [a, b] if is_ref(a) && is_null(b) => Some(a),
        [a, b] if is_null(a) && is_ref(b) => Some(b),
        _ => None,
    }
}

/// The non-null type of a schema and whether it allows null.
pub fn base_type(schema: &Value) -> (Option<String>, bool) {
    match schema.get("type") {
        Some(Value::String(t)) if t == "null" => (None, true),
        Some(Value::String(t)) => (Some(t.clone()), false),
        Some(Value::Array(types)) => {
            let names: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
            let nullable = names.contains(&"null");
            let rest: Vec<&str> = names.into_iter().filter(|t| *t != "null").collect();
            match rest.as_slice() {
                [one] => (Some((*one).to_owned()), nullable),
                _ => (None, nullable),
            }
        }
        _ => (None, false),
    }
}

fn constraints(schema: &Value) -> Constraints {
    let u = |k: &str| schema.get(k).and_then(Value::as_u64);
    let f = |k: &str| schema.get(k).and_then(Value::as_f64);
    let (base, _) = base_type(schema);
    Constraints {
        min_length: u("minLength"),
        max_length: u("maxLength"),
        pattern: schema.get("pattern").and_then(Value::as_str).map(str::to_owned),
        pattern_hint: ["x-pattern-description", "description"]
            .iter()
            .find_map(|key| schema.get(*key).and_then(Value::as_str))
            .filter(|_| schema.get("pattern").is_some())
            .unwrap_or_default()
            .split(['\n', '。', '；'])
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned(),
        minimum: f("minimum").or(f("exclusiveMinimum")),
        exclusive_minimum: f("exclusiveMinimum").is_some(),
        maximum: f("maximum").or(f("exclusiveMaximum")),
        exclusive_maximum: f("exclusiveMaximum").is_some(),
        min_items: u("minItems"),
        max_items: u("maxItems"),
        format: match base.as_deref() {
            Some("string") => schema.get("format").and_then(Value::as_str).map(str::to_owned),
            _ => None,
        },
        json_types: match schema.get("type") {
            Some(Value::Array(types)) if base.is_none() => types.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            _ => Vec::new(),
        },
        json_enum: match (schema.get("type"), schema.get("enum")) {
            (Some(Value::Array(_)), Some(Value::Array(values))) if base.is_none() => values.iter().map(Value::to_string).collect(),
            _ => Vec::new(),
        },
    }
}

fn enum_meanings(schema: &Value) -> Vec<String> {
    schema
        .get("x-enum-descriptions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|v| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()))
        .collect()
}

/// The doc comment of a schema or parameter: its description, unit and enum meanings.
fn doc_of(node: &Value) -> String {
    let mut doc = str_of(node, "description");
    if let Some(unit) = node.get("x-unit").and_then(Value::as_str) {
        doc.push_str(&format!("\n\nUnit: {unit}."));
    }
    doc.trim().to_owned()
}

/// The Rust field name for a wire name.
pub fn field_ident(wire: &str) -> String {
    let snake = wire.to_snake_case();
    let snake = if snake.is_empty() || snake.starts_with(|c: char| c.is_ascii_digit()) { format!("f_{snake}") } else { snake };
    match snake.as_str() {
        "self" | "super" | "crate" | "Self" => format!("{snake}_"),
        _ => snake,
    }
}

fn int_variant(n: i64) -> String {
    if n < 0 { format!("Minus{}", n.unsigned_abs()) } else { format!("Value{n}") }
}

fn string_variant(value: &str, index: usize) -> String {
    let camel = value.to_upper_camel_case();
    let valid = camel.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && camel.chars().all(|c| c.is_alphanumeric() || c == '_');
    if valid && !camel.is_empty() { camel } else { format!("Variant{index}") }
}

/// The variant name of a status (`200` → `Ok`, `429` → `TooManyRequests`).
pub fn status_variant(status: u16) -> String {
    match status {
        200 => "Ok".into(),
        201 => "Created".into(),
        202 => "Accepted".into(),
        204 => "NoContent".into(),
        400 => "BadRequest".into(),
        401 => "Unauthorized".into(),
        403 => "Forbidden".into(),
        404 => "NotFound".into(),
        405 => "MethodNotAllowed".into(),
        409 => "Conflict".into(),
        413 => "PayloadTooLarge".into(),
        415 => "UnsupportedMediaType".into(),
        422 => "UnprocessableEntity".into(),
        429 => "TooManyRequests".into(),
        500 => "InternalServerError".into(),
        502 => "BadGateway".into(),
        503 => "ServiceUnavailable".into(),
        504 => "GatewayTimeout".into(),
        other => format!("Status{other}"),
    }
}

fn media_suffix(media_type: &str) -> String {
    match media_type {
        "application/json" => "Json".into(),
        "application/xml" => "Xml".into(),
        "text/xml" => "TextXml".into(),
        "text/html" => "Html".into(),
        "text/plain" => "Text".into(),
        other => other.to_upper_camel_case(),
    }
}
