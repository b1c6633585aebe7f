//! Rust source for one API from its model: `types.rs`, `mod.rs` (trait, inputs, outputs,
//! rejections), `router.rs` (axum handlers documented with `utoipa::path`) and `openapi.rs`.

use std::collections::BTreeMap;

use heck::{ToShoutySnakeCase, ToSnakeCase, ToUpperCamelCase};
use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::{format_ident, quote};
use serde_json::Value;

use super::model::{
    Body, BodyKind, Carrier, Constraints, Field, HeadersDef, Location, Model, Operation, Param, Payload, Security, Ty,
    TypeDef,
};

fn ident(name: &str) -> Ident {
    match syn::parse_str::<Ident>(name) {
        Ok(ident) => ident,
        Err(_) => Ident::new_raw(name, Span::call_site()),
    }
}

fn docs(text: &str) -> TokenStream {
    let lines: Vec<TokenStream> = text
        .lines()
        .map(|line| {
            let line = format!(" {line}");
            quote! { #[doc = #line] }
        })
        .collect();
    quote! { #(#lines)* }
}

/// What a named type resolves to when used as a field (aliases are looked through, because
/// utoipa cannot document a type alias).
struct Types<'a> {
    defs: BTreeMap<&'a str, &'a TypeDef>,
    headers: BTreeMap<&'a str, &'a HeadersDef>,
}

impl<'a> Types<'a> {
    fn new(model: &'a Model) -> Types<'a> {
        Types {
            defs: model.types.iter().map(|t| (t.name(), t)).collect(),
            headers: model.headers.iter().map(|h| (h.name.as_str(), h)).collect(),
        }
    }

    /// The field of header struct `headers` carrying header `wire` (names compare
    /// case-insensitively, as HTTP header names do).
    fn header_field(&self, headers: &str, wire: &str) -> Option<&'a Field> {
        self.headers.get(headers)?.fields.iter().find(|f| f.wire.eq_ignore_ascii_case(wire))
    }

    fn resolve<'t>(&'t self, ty: &'t Ty) -> &'t Ty {
        match ty {
            Ty::Named(name) => match self.defs.get(name.as_str()) {
                Some(TypeDef::Alias { ty, .. }) => self.resolve(ty),
                _ => ty,
            },
            other => other,
        }
    }

    fn tokens(&self, ty: &Ty) -> TokenStream {
        match self.resolve(ty) {
            Ty::String => quote! { String },
            Ty::I32 => quote! { i32 },
            Ty::I64 => quote! { i64 },
            Ty::F64 => quote! { f64 },
            Ty::Bool => quote! { bool },
            Ty::DecimalNumber | Ty::DecimalString => quote! { rust_decimal::Decimal },
            Ty::Upload => quote! { crate::runtime::Upload },
            Ty::Json => quote! { serde_json::Value },
            Ty::JsonObject => quote! { serde_json::Map<String, serde_json::Value> },
            Ty::Null => quote! { () },
            Ty::Vec(inner) => {
                let inner = self.tokens(inner);
                quote! { Vec<#inner> }
            }
            Ty::Map(inner) => {
                let inner = self.tokens(inner);
                quote! { std::collections::BTreeMap<String, #inner> }
            }
            Ty::Named(name) => {
                let name = ident(name);
                quote! { types::#name }
            }
        }
    }

    /// The text kind a scalar arrives as in a query, path, header or form field.
    fn text_kind(&self, ty: &Ty) -> TokenStream {
        match self.resolve(ty) {
            Ty::I32 | Ty::I64 => quote! { crate::runtime::TextKind::Integer },
            Ty::F64 | Ty::DecimalNumber => quote! { crate::runtime::TextKind::Number },
            Ty::Bool => quote! { crate::runtime::TextKind::Boolean },
            Ty::Named(name) => match self.defs.get(name.as_str()) {
                Some(TypeDef::IntEnum { .. }) => quote! { crate::runtime::TextKind::Integer },
                _ => quote! { crate::runtime::TextKind::String },
            },
            _ => quote! { crate::runtime::TextKind::String },
        }
    }

    /// The generated types `ty` mentions directly.
    fn named_in(&self, ty: &Ty, out: &mut Vec<String>) {
        match self.resolve(ty) {
            Ty::Named(n) => out.push(n.clone()),
            Ty::Vec(inner) | Ty::Map(inner) => self.named_in(inner, out),
            _ => {}
        }
    }

    /// Whether a value of `ty` can contain a value of type `target` (a recursive schema).
    fn reaches(&self, ty: &Ty, target: &str) -> bool {
        let mut stack = Vec::new();
        self.named_in(ty, &mut stack);
        let mut seen = std::collections::BTreeSet::new();
        while let Some(name) = stack.pop() {
            if name == target {
                return true;
            }
            if !seen.insert(name.clone()) {
                continue;
            }
            if let Some(TypeDef::Struct { fields, additional, .. }) = self.defs.get(name.as_str()) {
                for f in fields {
                    self.named_in(&f.ty, &mut stack);
                }
                if let Some(extra) = additional {
                    self.named_in(extra, &mut stack);
                }
            }
        }
        false
    }

    /// Whether values of `ty` validate themselves (structs and constrained newtypes).
    fn is_struct(&self, ty: &Ty) -> bool {
        matches!(self.resolve(ty), Ty::Named(n) if matches!(self.defs.get(n.as_str()), Some(TypeDef::Struct { .. } | TypeDef::Newtype { .. })))
    }
}

fn utoipa_format(format: &str) -> TokenStream {
    let known = match format {
        "int32" => Some("Int32"),
        "int64" => Some("Int64"),
        "float" => Some("Float"),
        "double" => Some("Double"),
        "byte" => Some("Byte"),
        "binary" => Some("Binary"),
        "date" => Some("Date"),
        "date-time" => Some("DateTime"),
        "password" => Some("Password"),
        "email" => Some("Email"),
        _ => None,
    };
    match known {
        Some(name) => {
            let name = format_ident!("{name}");
            quote! { format = #name }
        }
        None => quote! { format = #format },
    }
}

fn number_literal(value: f64) -> Literal {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        Literal::i64_unsuffixed(value as i64)
    } else {
        Literal::f64_unsuffixed(value)
    }
}

fn constraint_attrs(c: &Constraints) -> Vec<TokenStream> {
    let mut out = Vec::new();
    if let Some(n) = c.min_length {
        let n = Literal::u64_unsuffixed(n);
        out.push(quote! { min_length = #n });
    }
    if let Some(n) = c.max_length {
        let n = Literal::u64_unsuffixed(n);
        out.push(quote! { max_length = #n });
    }
    if let Some(p) = &c.pattern {
        out.push(quote! { pattern = #p });
    }
    if let Some(n) = c.minimum {
        let n = number_literal(n);
        out.push(if c.exclusive_minimum { quote! { exclusive_minimum = #n } } else { quote! { minimum = #n } });
    }
    if let Some(n) = c.maximum {
        let n = number_literal(n);
        out.push(if c.exclusive_maximum { quote! { exclusive_maximum = #n } } else { quote! { maximum = #n } });
    }
    if let Some(n) = c.min_items {
        let n = Literal::u64_unsuffixed(n);
        out.push(quote! { min_items = #n });
    }
    if let Some(n) = c.max_items {
        let n = Literal::u64_unsuffixed(n);
        out.push(quote! { max_items = #n });
    }
    out
}

/// `types.rs`: every schema as a Rust type, with serde, utoipa and `Validate`.
pub fn types(model: &Model) -> TokenStream {
    let types = Types::new(model);
    let mut patterns = Vec::new();
    let mut items: Vec<TokenStream> = model.types.iter().map(|def| type_def(&types, def, &mut patterns)).collect();
    items.extend(model.headers.iter().map(|def| headers_def(&types, def, &mut patterns)));
    quote! {
        #![allow(clippy::all, missing_docs, non_camel_case_types, unused_imports)]
        use std::sync::LazyLock;
        use crate::runtime::{Validate, Violation, check, join, index};
        use super::types;
        #(#patterns)*
        #(#items)*
    }
}

fn type_def(types: &Types<'_>, def: &TypeDef, patterns: &mut Vec<TokenStream>) -> TokenStream {
    match def {
        TypeDef::Struct { name, doc, fields, xml_name, additional, closed } => {
            let name_ident = ident(name);
            let doc = docs(doc);
            let is_form = fields.iter().any(|f| matches!(types.resolve(&f.ty), Ty::Upload));
            let mut field_items: Vec<TokenStream> = fields
                .iter()
                .map(|f| field_tokens(types, name, f, is_form, types.reaches(&f.ty, name), patterns))
                .collect();
            if let Some(extra) = additional {
                let ty = types.tokens(extra);
                field_items.push(quote! {
                    /// Properties the spec does not list by name (`additionalProperties`).
                    #[serde(flatten)]
                    #[schema(additional_properties)]
                    pub additional_properties: std::collections::BTreeMap<String, #ty>,
                });
            }
            let checks: Vec<TokenStream> = fields.iter().map(|f| field_checks(types, name, f, patterns)).collect();
            // Objects are read from JSON objects only (`json_object!` around the derived code).
            let (derives, object) = if is_form {
                (quote! { #[derive(Debug, Clone, PartialEq, utoipa::ToSchema)] }, None)
            } else {
                (
                    quote! {
                        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
                        #[serde(remote = "Self")]
                    },
                    Some(quote! { crate::json_object!(#name_ident); }),
                )
            };
            let xml = xml_name.as_ref().map(|n| quote! { #[serde(rename = #n)] #[schema(xml(name = #n))] });
            let closed = closed.then(|| quote! { #[serde(deny_unknown_fields)] });
            quote! {
                #doc
                #derives
                #xml
                #closed
                pub struct #name_ident { #(#field_items)* }
                #object
                impl Validate for #name_ident {
                    #[allow(unused_variables)]
                    fn validate(&self, path: &str, out: &mut Vec<Violation>) { #(#checks)* }
                }
            }
        }
        TypeDef::StringEnum { name, doc, variants } => {
            let name_ident = ident(name);
            let doc = docs(doc);
            let vs = variants.iter().map(|(wire, variant, meaning)| {
                let v = ident(variant);
                let d = docs(&format!("`{wire}`{}", if meaning.is_empty() { String::new() } else { format!(": {meaning}") }));
                quote! { #d #[serde(rename = #wire)] #v, }
            });
            let wires = variants.iter().map(|(wire, variant, _)| {
                let v = ident(variant);
                quote! { Self::#v => #wire, }
            });
            quote! {
                #doc
                #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
                pub enum #name_ident { #(#vs)* }
                impl #name_ident {
                    /// The value as it travels.
                    pub fn as_str(self) -> &'static str { match self { #(#wires)* } }
                }
                impl Validate for #name_ident { fn validate(&self, _: &str, _: &mut Vec<Violation>) {} }
            }
        }
        TypeDef::IntEnum { name, doc, variants } => {
            let name_ident = ident(name);
            let doc = docs(doc);
            let vs = variants.iter().map(|(value, variant, meaning)| {
                let v = ident(variant);
                let lit = Literal::i64_unsuffixed(*value);
                let d = docs(&format!("`{value}`{}", if meaning.is_empty() { String::new() } else { format!(": {meaning}") }));
                quote! { #d #v = #lit, }
            });
            quote! {
                #doc
                #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde_repr::Serialize_repr, serde_repr::Deserialize_repr, utoipa::ToSchema)]
                #[repr(i64)]
                pub enum #name_ident { #(#vs)* }
                impl Validate for #name_ident { fn validate(&self, _: &str, _: &mut Vec<Violation>) {} }
            }
        }
        TypeDef::Newtype { name, doc, ty, constraints, format } => {
            let name_ident = ident(name);
            let doc_tokens = docs(doc);
            let inner = types.tokens(ty);
            let checks = value_checks(types, name, ty, constraints, &Constraints::default(), patterns, &quote! { out });
            let schema_type = match types.resolve(ty) {
                Ty::I32 | Ty::I64 => quote! { utoipa::openapi::schema::Type::Integer },
                Ty::F64 | Ty::DecimalNumber => quote! { utoipa::openapi::schema::Type::Number },
                _ => quote! { utoipa::openapi::schema::Type::String },
            };
            let mut builder = vec![quote! { .schema_type(#schema_type) }];
            if !doc.is_empty() {
                builder.push(quote! { .description(Some(#doc)) });
            }
            if let Some(p) = &constraints.pattern {
                builder.push(quote! { .pattern(Some(#p)) });
            }
            if let Some(n) = constraints.min_length {
                let n = Literal::usize_unsuffixed(n as usize);
                builder.push(quote! { .min_length(Some(#n)) });
            }
            if let Some(n) = constraints.max_length {
                let n = Literal::usize_unsuffixed(n as usize);
                builder.push(quote! { .max_length(Some(#n)) });
            }
            if let Some(n) = constraints.minimum {
                builder.push(quote! { .minimum(Some(#n)) });
            }
            if let Some(n) = constraints.maximum {
                builder.push(quote! { .maximum(Some(#n)) });
            }
            if let Some(f) = format {
                builder.push(quote! { .format(Some(utoipa::openapi::schema::SchemaFormat::Custom(#f.to_owned()))) });
            }
            quote! {
                #doc_tokens
                #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
                #[serde(transparent)]
                pub struct #name_ident(pub #inner);
                impl utoipa::PartialSchema for #name_ident {
                    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                        utoipa::openapi::schema::ObjectBuilder::new() #(#builder)* .build().into()
                    }
                }
                impl utoipa::ToSchema for #name_ident {}
                impl Validate for #name_ident {
                    fn validate(&self, path: &str, out: &mut Vec<Violation>) { let value = &self.0; #checks }
                }
            }
        }
        TypeDef::Alias { name, doc, ty } => {
            let name_ident = ident(name);
            let doc = docs(doc);
            let ty = types.tokens(ty);
            quote! { #doc pub type #name_ident = #ty; }
        }
    }
}

/// A struct of typed response headers: serde reads the spec's header examples into it (mock
/// mode), utoipa publishes each field's schema as its header's, and `ResponseHeaders` writes the
/// headers that have values.
fn headers_def(types: &Types<'_>, def: &HeadersDef, items: &mut Vec<TokenStream>) -> TokenStream {
    let name = ident(&def.name);
    let listed = def.fields.iter().map(|f| format!("`{}`", f.wire)).collect::<Vec<_>>().join(", ");
    let doc = docs(&format!("The response headers {listed}, as a response that declares them carries them."));
    let fields: Vec<TokenStream> = def.fields.iter().map(|f| field_tokens(types, &def.name, f, false, false, items)).collect();
    let pairs = def.fields.iter().map(|f| {
        let field = ident(&f.ident);
        let wire = f.wire.to_ascii_lowercase();
        quote! {
            if let Some(value) = self.#field.as_ref().and_then(crate::runtime::to_header_value) {
                out.push((axum::http::HeaderName::from_static(#wire), value));
            }
        }
    });
    quote! {
        #doc
        #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        pub struct #name { #(#fields)* }
        impl crate::runtime::ResponseHeaders for #name {
            fn to_pairs(&self) -> Vec<(axum::http::HeaderName, axum::http::HeaderValue)> {
                let mut out = Vec::new();
                #(#pairs)*
                out
            }
        }
    }
}

fn field_tokens(
    types: &Types<'_>,
    owner: &str,
    f: &Field,
    is_form: bool,
    recursive: bool,
    items: &mut Vec<TokenStream>,
) -> TokenStream {
    let name = ident(&f.ident);
    let doc = docs(&f.doc);
    let resolved = types.resolve(&f.ty).clone();
    let decimal_string = resolved == Ty::DecimalString;
    let double = !f.required && f.nullable;
    // A decimal string that is both optional and nullable has no serde helper: keep the text.
    let inner = if double && decimal_string { quote! { String } } else { types.tokens(&f.ty) };
    let ty = match (f.required, f.nullable) {
        (true, false) => inner,
        (true, true) | (false, false) => quote! { Option<#inner> },
        (false, true) => quote! { Option<Option<#inner>> },
    };
    let mut serde_attrs = Vec::new();
    if f.ident.trim_start_matches("r#") != f.wire {
        let wire = &f.wire;
        serde_attrs.push(quote! { rename = #wire });
    }
    if !f.required {
        serde_attrs.push(quote! { default, skip_serializing_if = "Option::is_none" });
    }
    // serde's `Option` takes `null` for absent and absent for `null`; the contract tells them
    // apart: an optional field that is not nullable refuses `null` (`present`), a required one
    // that is nullable refuses absence (any `deserialize_with` does).
    match (f.required, f.nullable) {
        (false, true) => serde_attrs.push(quote! { with = "::serde_with::rust::double_option" }),
        (true, false) if decimal_string => serde_attrs.push(quote! { with = "rust_decimal::serde::str" }),
        (true, true) if decimal_string => serde_attrs.push(quote! { with = "rust_decimal::serde::str_option" }),
        (false, false) if decimal_string => serde_attrs.push(quote! {
            serialize_with = "rust_decimal::serde::str_option::serialize", deserialize_with = "crate::runtime::decimal_string_present"
        }),
        // rust_decimal alone also takes "1250.50" for a number field; the contract does not.
        (true, false) if resolved == Ty::DecimalNumber => serde_attrs.push(quote! { deserialize_with = "crate::runtime::decimal_number" }),
        (true, true) if resolved == Ty::DecimalNumber => serde_attrs.push(quote! { deserialize_with = "crate::runtime::decimal_number_opt" }),
        (false, false) if resolved == Ty::DecimalNumber => {
            serde_attrs.push(quote! { deserialize_with = "crate::runtime::decimal_number_present" })
        }
        (true, true) => serde_attrs.push(quote! { deserialize_with = "crate::runtime::nullable" }),
        (false, false) => serde_attrs.push(quote! { deserialize_with = "crate::runtime::present" }),
        (true, false) => {}
    }
    // An amount in yuan is whole fen: written with its two decimal places (`1250.50`), not as
    // the f64 rust_decimal would write (`1250.5`).
    let yuan = f.schema.as_ref().and_then(|s| s.get("x-unit")).and_then(Value::as_str) == Some("yuan");
    if yuan && resolved == Ty::DecimalNumber {
        match (f.required, f.nullable) {
            (true, false) => serde_attrs.push(quote! { serialize_with = "crate::runtime::yuan" }),
            (true, true) | (false, false) => serde_attrs.push(quote! { serialize_with = "crate::runtime::yuan_opt" }),
            // `double_option` writes both ways.
            (false, true) => {}
        }
    }
    let mut schema_attrs = constraint_attrs(&f.constraints);
    if let Some(format) = &f.format {
        schema_attrs.push(utoipa_format(format));
    }
    match &resolved {
        Ty::Upload => schema_attrs.push(quote! { value_type = String }),
        Ty::DecimalString => schema_attrs.push(quote! { value_type = String }),
        Ty::DecimalNumber => schema_attrs.push(quote! { value_type = f64 }),
        Ty::Json => schema_attrs.push(quote! { value_type = Value }),
        Ty::JsonObject => schema_attrs.push(quote! { value_type = Object }),
        Ty::Null => schema_attrs.push(quote! { schema_with = crate::runtime::null_schema }),
        _ => {}
    }
    if f.required && f.nullable {
        schema_attrs.push(quote! { required = true });
    }
    if recursive {
        // utoipa would expand a recursive schema forever.
        schema_attrs.push(quote! { no_recursion });
    }
    if !f.nullable && !f.required {
        schema_attrs.push(quote! { nullable = false });
    }
    if f.nullable {
        // Stated outright: a `value_type` override would otherwise hide the `Option`.
        schema_attrs.push(quote! { nullable });
    }
    if let (Ty::Json, Some(schema)) = (&resolved, &f.schema) {
        // Untyped JSON publishes the schema the spec states for it.
        let json = serde_json::to_string(schema).expect("JSON");
        let function = format_ident!("schema_of_{}_{}", owner.to_snake_case(), f.ident.trim_start_matches("r#"));
        items.push(quote! {
            fn #function() -> utoipa::openapi::schema::Schema { crate::runtime::stated_schema(#json) }
        });
        schema_attrs.retain(|a| a.to_string() != "value_type = Value");
        schema_attrs.push(quote! { schema_with = #function });
    }
    if is_form && !f.ident.eq(&f.wire) {
        let wire = &f.wire;
        schema_attrs.push(quote! { rename = #wire });
    }
    let serde = (!serde_attrs.is_empty() && !is_form).then(|| quote! { #[serde(#(#serde_attrs),*)] });
    let schema = (!schema_attrs.is_empty()).then(|| quote! { #[schema(#(#schema_attrs),*)] });
    quote! { #doc #serde #schema pub #name: #ty, }
}

/// `Validate` statements for one field.
fn field_checks(types: &Types<'_>, owner: &str, f: &Field, patterns: &mut Vec<TokenStream>) -> TokenStream {
    let name = ident(&f.ident);
    let wire = &f.wire;
    let value_checks = value_checks(types, &format!("{owner}_{}", f.ident), &f.ty, &f.constraints, &f.item_constraints, patterns, &quote! { out });
    if value_checks.is_empty() {
        return TokenStream::new();
    }
    let body = quote! { let path = &join(path, #wire); #value_checks };
    match (f.required, f.nullable) {
        (true, false) => quote! { { let value = &self.#name; #body } },
        (true, true) | (false, false) => quote! { if let Some(value) = &self.#name { #body } },
        (false, true) => {
            if types.resolve(&f.ty) == &Ty::DecimalString {
                return TokenStream::new();
            }
            quote! { if let Some(Some(value)) = &self.#name { #body } }
        }
    }
}

/// Checks on `value` (a reference to a value of type `ty`) found at `path`.
fn value_checks(
    types: &Types<'_>,
    // Names the pattern statics: `owner_field`.
    hint: &str,
    ty: &Ty,
    c: &Constraints,
    items: &Constraints,
    patterns: &mut Vec<TokenStream>,
    out_var: &TokenStream,
) -> TokenStream {
    let sink = out_var;
    let mut out = Vec::new();
    match types.resolve(ty) {
        Ty::String => {
            if let Some(n) = c.min_length {
                let n = Literal::u64_unsuffixed(n);
                out.push(quote! { check::min_length(path, value, #n, #sink); });
            }
            if let Some(n) = c.max_length {
                let n = Literal::u64_unsuffixed(n);
                out.push(quote! { check::max_length(path, value, #n, #sink); });
            }
            if let Some(p) = &c.pattern {
                let p = super::rust_pattern(p);
                let stat = format_ident!("PATTERN_{}_{}", hint.trim_start_matches("r#").to_shouty_snake_case(), patterns.len());
                patterns.push(quote! {
                    static #stat: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| regex::Regex::new(#p).expect("spec patterns are checked at generation time"));
                });
                let hint = &c.pattern_hint;
                out.push(quote! { check::pattern(path, value, &#stat, #hint, #sink); });
            }
            if let Some(format) = &c.format {
                out.push(quote! { check::format(path, value, #format, #sink); });
            }
        }
        Ty::I32 | Ty::I64 | Ty::F64 => {
            let cast = match types.resolve(ty) {
                Ty::F64 => quote! { *value },
                _ => quote! { *value as f64 },
            };
            if let Some(n) = c.minimum {
                let excl = c.exclusive_minimum;
                out.push(quote! { check::minimum(path, #cast, #n, #excl, #sink); });
            }
            if let Some(n) = c.maximum {
                let excl = c.exclusive_maximum;
                out.push(quote! { check::maximum(path, #cast, #n, #excl, #sink); });
            }
        }
        Ty::DecimalNumber | Ty::DecimalString => {
            if let Some(n) = c.minimum {
                let lit = n.to_string();
                let excl = c.exclusive_minimum;
                out.push(quote! { check::minimum(path, *value, check::decimal(#lit), #excl, #sink); });
            }
            if let Some(n) = c.maximum {
                let lit = n.to_string();
                let excl = c.exclusive_maximum;
                out.push(quote! { check::maximum(path, *value, check::decimal(#lit), #excl, #sink); });
            }
        }
        Ty::Vec(inner) => {
            if let Some(n) = c.min_items {
                let n = Literal::u64_unsuffixed(n);
                out.push(quote! { check::min_items(path, value.len(), #n, #sink); });
            }
            if let Some(n) = c.max_items {
                let n = Literal::u64_unsuffixed(n);
                out.push(quote! { check::max_items(path, value.len(), #n, #sink); });
            }
            let item_checks = value_checks(types, &format!("{hint}_item"), inner, items, &Constraints::default(), patterns, sink);
            if !item_checks.is_empty() {
                out.push(quote! {
                    for (i, value) in value.iter().enumerate() { let path = &index(path, i); #item_checks }
                });
            }
        }
        Ty::Map(_) | Ty::Named(_) => {
            if types.is_struct(ty) || matches!(types.resolve(ty), Ty::Map(_)) {
                out.push(quote! { value.validate(path, #sink); });
            }
        }
        Ty::Json if !c.json_types.is_empty() => {
            let types = &c.json_types;
            out.push(quote! { check::json_types(path, value, &[#(#types),*], #sink); });
            if !c.json_enum.is_empty() {
                let values = &c.json_enum;
                out.push(quote! { check::json_enum(path, value, &[#(#values),*], #sink); });
            }
            if let Some(p) = &c.pattern {
                let p = super::rust_pattern(p);
                let stat = format_ident!("PATTERN_{}_{}", hint.trim_start_matches("r#").to_shouty_snake_case(), patterns.len());
                patterns.push(quote! {
                    static #stat: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| regex::Regex::new(#p).expect("spec patterns are checked at generation time"));
                });
                let hint = &c.pattern_hint;
                out.push(quote! { if let Some(value) = value.as_str() { check::pattern(path, value, &#stat, #hint, #sink); } });
            }
            if let Some(n) = c.minimum {
                let excl = c.exclusive_minimum;
                out.push(quote! { if let Some(value) = value.as_f64() { check::minimum(path, value, #n, #excl, #sink); } });
            }
            if let Some(n) = c.maximum {
                let excl = c.exclusive_maximum;
                out.push(quote! { if let Some(value) = value.as_f64() { check::maximum(path, value, #n, #excl, #sink); } });
            }
        }
        Ty::Bool | Ty::Upload | Ty::Json | Ty::JsonObject | Ty::Null => {}
    }
    quote! { #(#out)* }
}

/// `mod.rs`: the operation list, the trait, inputs, outputs and the rejection renderer.
pub fn api(model: &Model, spec_file: &str) -> TokenStream {
    let types = Types::new(model);
    let trait_ident = ident(&model.trait_name);
    let count = Literal::usize_unsuffixed(model.operations.len());
    let variants: Vec<Ident> = model.operations.iter().map(|o| ident(&o.pascal)).collect();
    let ids: Vec<&str> = model.operations.iter().map(|o| o.id.as_str()).collect();
    let methods: Vec<String> = model.operations.iter().map(|o| o.method.to_uppercase()).collect();
    let paths: Vec<&str> = model.operations.iter().map(|o| o.path.as_str()).collect();
    let outputs_ty: Vec<Ident> = model.operations.iter().map(|o| format_ident!("{}Output", o.pascal)).collect();
    let variant_docs: Vec<TokenStream> =
        model.operations.iter().map(|o| docs(&format!("`{}` — {} (`{} {}`, {})", o.id, o.summary, o.method.to_uppercase(), o.path, o.source))).collect();
    let trait_methods = model.operations.iter().map(trait_method);
    let inputs = model.operations.iter().map(|o| input_struct(&types, o));
    let outputs = model.operations.iter().map(|o| output_enum(&types, o));
    let rejection_arms = model.rejections.iter().map(|(kind, rule)| rejection_arm(kind, rule));
    let trait_doc = docs(&format!(
        "{}: one method per operation of `openapi/{spec_file}`.\n\nThe real server and mock mode each implement it; `router()` serves any implementation.\nEvery method returns a documented response of its operation; there is no error channel.",
        model.title
    ));
    quote! {
        #![allow(clippy::all, missing_docs, unused_imports)]
        use std::future::Future;
        use axum::http::StatusCode;
        use crate::runtime::{AuthError, Context, Credential, ExampleError, OperationOutput, Rejection, RejectionKind, Upload};

        pub mod types;
        pub mod router;
        pub mod openapi;
        pub mod examples;

        pub use router::router;

        /// Every operation of this API.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Operation { #(#variant_docs #variants,)* }

        impl Operation {
            /// All operations, in the spec's order.
            pub const ALL: [Operation; #count] = [#(Operation::#variants),*];
            /// The operationId.
            pub fn id(self) -> &'static str { match self { #(Operation::#variants => #ids,)* } }
            /// The HTTP method.
            pub fn method(self) -> &'static str { match self { #(Operation::#variants => #methods,)* } }
            /// The path template.
            pub fn path(self) -> &'static str { match self { #(Operation::#variants => #paths,)* } }
            /// The operation with this operationId.
            pub fn from_id(id: &str) -> Option<Operation> { match id { #(#ids => Some(Operation::#variants),)* _ => None } }
            /// Read a documented example as this operation's typed response and write it back:
            /// the body as the generated types serialise it (contract tests compare the two).
            pub fn roundtrip_example(self, status: u16, media_type: Option<&str>, body: &str) -> Result<Option<String>, ExampleError> {
                match self { #(Operation::#variants => #outputs_ty::from_example(status, media_type, body).map(|o| o.body_text()),)* }
            }
        }

        #trait_doc
        pub trait #trait_ident: Send + Sync + 'static {
            /// What a verified credential becomes: a user for the real server, the credential itself for mock mode.
            type Principal: Send + Sync + 'static;
            /// Verify the credential presented to a secured operation. The router calls it before
            /// validating the request; `AuthError::Unauthenticated` is answered with the API's
            /// unauthenticated response, `AuthError::Unavailable` with its unavailable one (503).
            fn authenticate(&self, operation: Operation, credential: Credential) -> impl Future<Output = Result<Self::Principal, AuthError>> + Send;
            #(#trait_methods)*
        }

        #(#inputs)*
        #(#outputs)*

        /// Answer a refused request in this API's own envelope (`x-rejections` in the spec).
        pub fn render_rejection(rejection: &Rejection) -> axum::response::Response {
            match rejection.kind { #(#rejection_arms)* }
        }
    }
}

/// The match arm answering one rejection kind from its rule (`x-rejections`).
fn rejection_arm(kind: &str, rule: &super::model::RejectionRule) -> TokenStream {
    let kind = format_ident!("{}", kind.to_upper_camel_case());
    let render = |status: u16, body: &Value| match (&rule.media_type, body) {
        (Some(media_type), Value::String(template)) => {
            quote! { crate::runtime::render_text_template(#status, #media_type, #template, rejection) }
        }
        _ => {
            let template = serde_json::to_string(body).expect("JSON");
            quote! { crate::runtime::render_template(#status, #template, rejection) }
        }
    };
    let fields = rule.by_field.iter().map(|f| {
        let field = &f.field;
        let answer = render(f.status, &f.body);
        let selects = if f.missing {
            quote! { v.path == #field && (v.message == crate::runtime::MISSING_FIELD || v.message == crate::runtime::MISSING_FILE) }
        } else {
            quote! { v.path == #field }
        };
        quote! { if rejection.violations.iter().any(|v| #selects) { #answer } else }
    });
    let answer = render(rule.status, &rule.body);
    quote! { RejectionKind::#kind => #(#fields)* { #answer }, }
}

fn principal_type(o: &Operation) -> TokenStream {
    match o.security {
        Security::Public => quote! { () },
        Security::Required(_) => quote! { Self::Principal },
        Security::Optional(_) => quote! { Option<Self::Principal> },
    }
}

fn trait_method(o: &Operation) -> TokenStream {
    let name = ident(&o.id);
    let input = format_ident!("{}Input", o.pascal);
    let output = format_ident!("{}Output", o.pascal);
    let principal = principal_type(o);
    let doc = docs(&format!("{}\n\n`{} {}` — {}\n\n{}", o.summary, o.method.to_uppercase(), o.path, o.source, o.description));
    quote! {
        #doc
        fn #name(&self, ctx: Context<#principal>, input: #input) -> impl Future<Output = #output> + Send;
    }
}

fn input_struct(types: &Types<'_>, o: &Operation) -> TokenStream {
    let name = format_ident!("{}Input", o.pascal);
    let fields = o.params.iter().map(|p| {
        let f = ident(&p.ident);
        let ty = types.tokens(&p.ty);
        let ty = if p.required || p.default.is_some() { ty } else { quote! { Option<#ty> } };
        let location = match p.location {
            Location::Path => "path",
            Location::Query => "query",
            Location::Header => "header",
        };
        let default = p.default.as_ref().map(|d| format!(" Default: `{d}`.")).unwrap_or_default();
        let doc = docs(&format!("`{}` ({location}): {}{default}", p.wire, p.doc));
        quote! { #doc pub #f: #ty, }
    });
    let body = o.body.as_ref().map(|b| {
        let ty = types.tokens(&b.ty);
        let ty = if b.required { ty } else { quote! { Option<#ty> } };
        let doc = docs(&format!("The request body ({}). {}", b.media_types.join(", "), b.doc));
        quote! { #doc pub body: #ty, }
    });
    let doc = docs(&format!("Input of `{}` ({}).", o.id, o.summary));
    quote! {
        #doc
        #[derive(Debug, Clone, PartialEq)]
        pub struct #name { #(#fields)* #body }
    }
}

fn output_enum(types: &Types<'_>, o: &Operation) -> TokenStream {
    let name = format_ident!("{}Output", o.pascal);
    let variants = o.responses.iter().map(|r| {
        let v = ident(&r.variant);
        let doc = docs(&format!("{} {}: {}", r.status, r.media_type.as_deref().unwrap_or("(no body)"), r.doc));
        let mut fields = match &r.payload {
            Payload::Empty => Vec::new(),
            Payload::Json(ty) => vec![types.tokens(ty)],
            Payload::Text(..) => vec![quote! { String }],
        };
        if let Some(headers) = &r.headers {
            let h = ident(&headers.ty);
            fields.push(quote! { types::#h });
        }
        if fields.is_empty() { quote! { #doc #v, } } else { quote! { #doc #v(#(#fields),*), } }
    });
    let from_arms = o.responses.iter().map(|r| {
        let v = ident(&r.variant);
        let status = r.status;
        let mut fields = match &r.payload {
            Payload::Empty => Vec::new(),
            Payload::Json(_) => vec![quote! { crate::runtime::example_json(body)? }],
            Payload::Text(..) => vec![quote! { body.to_owned() }],
        };
        if let Some(headers) = &r.headers {
            let examples: serde_json::Map<String, Value> =
                headers.headers.iter().filter_map(|(wire, _, example)| Some((wire.clone(), example.clone()?))).collect();
            let json = Value::Object(examples).to_string();
            fields.push(quote! { crate::runtime::example_headers(#json)? });
        }
        let value = if fields.is_empty() { quote! { Self::#v } } else { quote! { Self::#v(#(#fields),*) } };
        match (&r.payload, &r.media_type) {
            (Payload::Empty, _) => quote! { (#status, None) => Ok(#value), },
            (_, Some(m)) => quote! { (#status, Some(#m)) => Ok(#value), },
            _ => TokenStream::new(),
        }
    });
    let has_fields = |r: &super::model::Response| r.payload != Payload::Empty || r.headers.is_some();
    let mut statuses = Vec::new();
    let mut medias = Vec::new();
    let mut bodies = Vec::new();
    let mut header_arms = Vec::new();
    for r in &o.responses {
        let v = ident(&r.variant);
        let status = r.status;
        let pattern = match (has_fields(r), r.headers.is_some()) {
            (false, _) => quote! { Self::#v },
            (true, false) => quote! { Self::#v(_) },
            (true, true) => quote! { Self::#v(..) },
        };
        statuses.push(quote! { #pattern => crate::runtime::status(#status), });
        let media = match &r.media_type {
            Some(m) => quote! { Some(#m) },
            None => quote! { None },
        };
        medias.push(quote! { #pattern => #media, });
        let bind = if r.headers.is_some() { quote! { Self::#v(body, _) } } else { quote! { Self::#v(body) } };
        bodies.push(match r.payload {
            Payload::Empty => quote! { #pattern => None, },
            Payload::Json(_) => quote! { #bind => Some(crate::runtime::to_json(body)), },
            Payload::Text(..) => quote! { #bind => Some(body.clone()), },
        });
        if r.headers.is_some() {
            let bind = if r.payload == Payload::Empty { quote! { Self::#v(headers) } } else { quote! { Self::#v(_, headers) } };
            header_arms.push(quote! { #bind => crate::runtime::ResponseHeaders::to_pairs(headers), });
        }
    }
    let error_impls = error_answer_impls(types, o, &name);
    let id = &o.id;
    let doc = docs(&format!("The documented responses of `{}` ({}).", o.id, o.summary));
    quote! {
        #doc
        #[derive(Debug, Clone, PartialEq)]
        pub enum #name {
            #(#variants)*
            /// One of the responses above, already rendered (mock mode's answers).
            Prepared(crate::runtime::Prepared),
        }
        impl OperationOutput for #name {
            fn from_example(status: u16, media_type: Option<&str>, body: &str) -> Result<Self, ExampleError> {
                match (status, media_type) {
                    #(#from_arms)*
                    _ => Err(ExampleError(format!("{} documents no {status} {media_type:?} response", #id))),
                }
            }
            fn prepared(prepared: crate::runtime::Prepared) -> Self { Self::Prepared(prepared) }
            fn status(&self) -> StatusCode { match self { #(#statuses)* Self::Prepared(p) => p.status, } }
            fn media_type(&self) -> Option<&'static str> { match self { #(#medias)* Self::Prepared(p) => p.media_type, } }
            #[allow(unused_variables)]
            fn body_text(&self) -> Option<String> { match self { #(#bodies)* Self::Prepared(p) => p.body_text(), } }
            fn headers(&self) -> Vec<(axum::http::HeaderName, axum::http::HeaderValue)> {
                match self {
                    #(#header_arms)*
                    Self::Prepared(p) => p.headers.clone(),
                    _ => Vec::new(),
                }
            }
            fn render(self) -> crate::runtime::Prepared {
                match self {
                    Self::Prepared(p) => p,
                    typed => crate::runtime::Prepared::of(&typed),
                }
            }
        }
        #(#error_impls)*
    }
}

/// `FromErrorAnswer<B>` for every distinct body type `B` among the operation's 4xx/5xx JSON
/// responses: an implementation's error answer becomes the variant documented for its status.
fn error_answer_impls(types: &Types<'_>, o: &Operation, output: &Ident) -> Vec<TokenStream> {
    // By the Rust type the body resolves to: two aliases of one type are one implementation.
    let mut by_type: BTreeMap<String, (TokenStream, Vec<&super::model::Response>)> = BTreeMap::new();
    for r in o.responses.iter().filter(|r| r.status >= 400) {
        if let Payload::Json(ty) = &r.payload {
            let tokens = types.tokens(ty);
            by_type.entry(tokens.to_string()).or_insert_with(|| (tokens, Vec::new())).1.push(r);
        }
    }
    by_type
        .into_values()
        .map(|(body_ty, responses)| {
            let arms = responses.iter().map(|r| {
                let v = ident(&r.variant);
                let status = r.status;
                match &r.headers {
                    None => quote! { #status => Ok(Self::#v(answer.body)), },
                    Some(headers) => {
                        let h = ident(&headers.ty);
                        let retry_after = types.header_field(&headers.ty, "retry-after").map(|f| {
                            let field = ident(&f.ident);
                            match types.resolve(&f.ty) {
                                Ty::I32 | Ty::I64 => quote! { #field: answer.retry_after.map(crate::runtime::retry_after_seconds), },
                                _ => quote! { #field: answer.retry_after.map(|seconds| seconds.to_string()), },
                            }
                        });
                        quote! {
                            #status => Ok(Self::#v(answer.body, types::#h { #retry_after ..Default::default() })),
                        }
                    }
                }
            });
            quote! {
                impl crate::runtime::FromErrorAnswer<#body_ty> for #output {
                    fn from_error_answer(answer: crate::runtime::ErrorAnswer<#body_ty>) -> Result<Self, crate::runtime::ErrorAnswer<#body_ty>> {
                        match answer.status {
                            #(#arms)*
                            _ => Err(answer),
                        }
                    }
                }
            }
        })
        .collect()
}

/// `router.rs`: one axum handler per operation, documented with `utoipa::path`.
pub fn router(model: &Model) -> TokenStream {
    let types = Types::new(model);
    let trait_ident = ident(&model.trait_name);
    let mut by_path: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for o in &model.operations {
        by_path.entry(o.path.as_str()).or_default().push(o);
    }
    // Keep the spec's path order for readability.
    let mut seen = Vec::new();
    for o in &model.operations {
        if !seen.contains(&o.path.as_str()) {
            seen.push(o.path.as_str());
        }
    }
    let routes = seen.iter().map(|path| {
        let ops = &by_path[path];
        let mut chain = ops.iter().map(|o| (format_ident!("{}", o.method), ident(&o.id)));
        let (first_method, first_handler) = chain.next().expect("a path has an operation");
        let rest = chain.map(|(method, handler)| quote! { .#method(#handler::<T>) });
        quote! { .route(#path, axum::routing::#first_method(#first_handler::<T>) #(#rest)*) }
    });
    let handlers = model.operations.iter().map(|o| handler(&types, model, o));
    quote! {
        #![allow(clippy::all, missing_docs, unused_imports, unused_mut, unused_variables)]
        use std::sync::Arc;
        use axum::body::Bytes;
        use axum::extract::{FromRequestParts, RawPathParams, Request, State};
        use axum::http::request::Parts;
        use axum::response::Response;
        use crate::runtime::{self, Context, Credential, Rejection, RejectionKind, Validate, Violation, check};
        use super::{types, #trait_ident, Operation, render_rejection};
        use super::*;

        /// The axum router serving every operation of this API through `api`. Refused requests and
        /// unknown paths are answered in the API's own envelope.
        pub fn router<T: #trait_ident>(api: Arc<T>) -> axum::Router {
            axum::Router::new()
                #(#routes)*
                .fallback(|| async { render_rejection(&Rejection::of(RejectionKind::NotFound, "接口不存在")) })
                .method_not_allowed_fallback(|| async { render_rejection(&Rejection::of(RejectionKind::MethodNotAllowed, "请求方法不被允许")) })
                .with_state(api)
        }

        #(#handlers)*
    }
}

fn handler(types: &Types<'_>, model: &Model, o: &Operation) -> TokenStream {
    let trait_ident = ident(&model.trait_name);
    let name = ident(&o.id);
    let serve = format_ident!("serve_{}", o.id);
    let input = format_ident!("{}Input", o.pascal);
    let variant = ident(&o.pascal);
    let id = &o.id;
    let doc_attr = path_attr(types, o);

    let mut steps = Vec::new();
    // Security first: a missing credential is 401 whatever else is wrong.
    let credential = match &o.security {
        Security::Public => None,
        Security::Required(s) | Security::Optional(s) => Some(match &s.carrier {
            Carrier::Bearer => quote! { runtime::bearer_token(&parts.headers).map(Credential::Bearer) },
            Carrier::ApiKeyQuery { name, in_body: false } => {
                quote! { runtime::Query::parse(parts.uri.query()).get(#name).filter(|v| !v.is_empty()).map(|v| Credential::ApiKey(v.to_owned())) }
            }
            Carrier::ApiKeyQuery { name, in_body: true } => quote! { runtime::json_field(&raw, #name)?.map(Credential::ApiKey) },
        }),
    };
    let principal = match (&o.security, credential) {
        (Security::Public, _) | (_, None) => quote! { () },
        (Security::Required(_), Some(credential)) => {
            steps.push(quote! {
                let credential = #credential.ok_or_else(|| Rejection::unauthenticated("缺少登录凭证"))?;
                let principal = api.authenticate(Operation::#variant, credential).await.map_err(Rejection::from)?;
            });
            quote! { principal }
        }
        (Security::Optional(_), Some(credential)) => {
            steps.push(quote! {
                let principal = match #credential {
                    Some(credential) => Some(api.authenticate(Operation::#variant, credential).await.map_err(Rejection::from)?),
                    None => None,
                };
            });
            quote! { principal }
        }
    };
    steps.push(quote! { let mut violations: Vec<Violation> = Vec::new(); });
    if o.params.iter().any(|p| p.location == Location::Path) {
        steps.push(quote! {
            let path_params = RawPathParams::from_request_parts(&mut parts, &()).await
                .map_err(|_| Rejection::of(RejectionKind::NotFound, "接口不存在"))?;
        });
    }
    if o.params.iter().any(|p| p.location == Location::Query) {
        steps.push(quote! { let query = runtime::Query::parse(parts.uri.query()); });
    }
    let mut assigns = Vec::new();
    for p in &o.params {
        let (step, assign) = param_steps(types, p);
        steps.push(step);
        assigns.push(assign);
    }
    if let Some(body) = &o.body {
        let (step, assign) = body_steps(types, body);
        steps.push(step);
        assigns.push(assign);
    }
    steps.push(quote! { if !violations.is_empty() { return Err(Rejection::invalid(violations)); } });

    // An operation with its own `x-rejections` answers those kinds its way, the rest as the API does.
    let (reject, own_rejections) = if o.rejections.is_empty() {
        (quote! { render_rejection }, TokenStream::new())
    } else {
        let reject = format_ident!("reject_{}", o.id);
        let arms = o.rejections.iter().map(|(kind, rule)| rejection_arm(kind, rule));
        let doc = docs(&format!("Answer a refused `{}` request: the operation's own `x-rejections` first.", o.id));
        let own = quote! {
            #doc
            fn #reject(rejection: &Rejection) -> Response {
                match rejection.kind {
                    #(#arms)*
                    _ => render_rejection(rejection),
                }
            }
        };
        (quote! { #reject }, own)
    };
    quote! {
        #doc_attr
        pub async fn #name<T: #trait_ident>(State(api): State<Arc<T>>, request: Request) -> Response {
            match #serve(api.as_ref(), request).await {
                Ok(response) => response,
                Err(rejection) => #reject(&rejection),
            }
        }

        #own_rejections

        async fn #serve<T: #trait_ident>(api: &T, request: Request) -> Result<Response, Rejection> {
            let (mut parts, body) = request.into_parts();
            let raw = runtime::read_body(body).await?;
            #(#steps)*
            let input = #input { #(#assigns)* };
            let ctx = Context::new(parts, raw, #id).with_principal(#principal);
            Ok(runtime::into_response(api.#name(ctx, input).await))
        }
    }
}

fn param_steps(types: &Types<'_>, p: &Param) -> (TokenStream, TokenStream) {
    let var = format_ident!("param_{}", p.ident.trim_start_matches("r#"));
    let field = ident(&p.ident);
    let wire = &p.wire;
    let ty = types.tokens(&p.ty);
    let kind = types.text_kind(&p.ty);
    let raw = match p.location {
        Location::Path => quote! { path_params.iter().find(|(name, _)| *name == #wire).map(|(_, value)| value) },
        Location::Query => quote! { query.get(#wire) },
        Location::Header => quote! { runtime::header_value(&parts.headers, #wire) },
    };
    let required = p.required && p.default.is_none();
    let mut statics = Vec::new();
    let checks = value_checks(types, &format!("param_{}", p.ident), &p.ty, &p.constraints, &Constraints::default(), &mut statics, &quote! { &mut violations });
    let checks = if checks.is_empty() {
        TokenStream::new()
    } else {
        quote! { if let Some(value) = &#var { #(#statics)* let path = #wire; #checks } }
    };
    let step = quote! {
        let #var: Option<#ty> = runtime::text_param(&mut violations, #wire, #raw, #kind, #required);
        #checks
    };
    let assign = match (&p.default, p.required) {
        (Some(default), _) => {
            let default = default_tokens(types, &p.ty, default);
            quote! { #field: #var.unwrap_or_else(|| #default), }
        }
        (None, true) => quote! { #field: #var.expect("a missing required parameter is rejected above"), },
        (None, false) => quote! { #field: #var, },
    };
    (step, assign)
}

fn default_tokens(types: &Types<'_>, ty: &Ty, default: &Value) -> TokenStream {
    let json = default.to_string();
    let ty = types.tokens(ty);
    quote! { serde_json::from_str::<#ty>(#json).expect("spec defaults match their schema") }
}

fn body_steps(types: &Types<'_>, body: &Body) -> (TokenStream, TokenStream) {
    let ty = types.tokens(&body.ty);
    let media: Vec<&str> = body.media_types.iter().map(String::as_str).collect();
    let required = body.required;
    let parse = match body.kind {
        BodyKind::Json => quote! { runtime::json_body::<#ty>(&raw) },
        BodyKind::Xml => quote! { runtime::xml_body::<#ty>(&raw) },
        BodyKind::Multipart => {
            let form = form_steps(types, &body.ty);
            quote! { { let form = runtime::multipart_form(&parts.headers, raw.clone()).await?; #form } }
        }
    };
    let read = quote! {
        runtime::require_media_type(&parts.headers, &[#(#media),*])?;
        Some(#parse?)
    };
    // An optional body may be absent; a required one is read (and refused when empty).
    let read = if required { read } else { quote! { if raw.is_empty() { None } else { #read } } };
    let step = quote! {
        let body: Option<#ty> = { #read };
        if let Some(body) = &body { body.validate("", &mut violations); }
    };
    let assign = if required {
        quote! { body: body.expect("a required body is parsed or rejected above"), }
    } else {
        quote! { body, }
    };
    (step, assign)
}

/// Build a multipart form struct from its text and file parts.
fn form_steps(types: &Types<'_>, ty: &Ty) -> TokenStream {
    let Ty::Named(name) = types.resolve(ty) else { return quote! { compile_error!("multipart bodies must be objects") } };
    let Some(TypeDef::Struct { fields, closed, .. }) = types.defs.get(name.as_str()) else {
        return quote! { compile_error!("multipart bodies must be objects") };
    };
    let struct_ty = types.tokens(ty);
    let mut lets = Vec::new();
    let mut assigns = Vec::new();
    for f in fields {
        let var = format_ident!("form_{}", f.ident.trim_start_matches("r#"));
        let field = ident(&f.ident);
        let wire = &f.wire;
        let optional = !f.required || f.nullable;
        if types.resolve(&f.ty) == &Ty::Upload {
            lets.push(quote! {
                let #var = form.files.get(#wire).cloned();
                if #var.is_none() && !#optional { violations.push(Violation::new(#wire, crate::runtime::MISSING_FILE)); }
            });
        } else {
            let fty = types.tokens(&f.ty);
            let kind = types.text_kind(&f.ty);
            let required = !optional;
            lets.push(quote! {
                let #var: Option<#fty> = runtime::text_param(&mut violations, #wire, form.text.get(#wire).map(String::as_str), #kind, #required);
            });
        }
        assigns.push(if optional {
            if !f.required && f.nullable {
                quote! { #field: #var.map(Some), }
            } else {
                quote! { #field: #var, }
            }
        } else {
            quote! { #field: match #var { Some(v) => v, None => return Err(Rejection::invalid(violations)) }, }
        });
    }
    // `additionalProperties: false`: a part the form does not list is refused.
    let unknown = closed.then(|| {
        let known = fields.iter().map(|f| f.wire.as_str());
        quote! {
            for part in form.text.keys().chain(form.files.keys()) {
                if ![#(#known),*].contains(&part.as_str()) {
                    violations.push(Violation::new(part.clone(), "不是本表单的字段"));
                }
            }
        }
    });
    quote! {
        #(#lets)*
        #unknown
        Ok::<#struct_ty, Rejection>(#struct_ty { #(#assigns)* })
    }
}

fn path_attr(types: &Types<'_>, o: &Operation) -> TokenStream {
    let method = format_ident!("{}", o.method);
    let path = &o.path;
    let id = &o.id;
    let summary = &o.summary;
    let description = &o.description;
    let tags = &o.tags;
    let params = o.params.iter().map(|p| {
        let wire = &p.wire;
        let ty = types.tokens(&p.ty);
        let ty = if p.required { ty } else { quote! { Option<#ty> } };
        let location = format_ident!(
            "{}",
            match p.location {
                Location::Path => "Path",
                Location::Query => "Query",
                Location::Header => "Header",
            }
        );
        let description = &p.doc;
        let mut features = constraint_attrs(&p.constraints);
        if let Some(format) = &p.format {
            features.push(utoipa_format(format));
        }
        if !p.required {
            // An absent parameter is not a null one.
            features.push(quote! { nullable = false });
        }
        quote! { (#wire = #ty, #location, description = #description #(, #features)*) }
    });
    let body = o.body.as_ref().map(|b| {
        // Published as `T` even when optional (`Contract` marks it not required): `Option<T>`
        // would allow a `null` body.
        let ty = types.tokens(&b.ty);
        let contents = b.media_types.iter().map(|m| quote! { (#ty = #m) });
        let description = &b.doc;
        quote! { request_body(description = #description, content(#(#contents),*)), }
    });
    let mut by_status: BTreeMap<u16, Vec<&super::model::Response>> = BTreeMap::new();
    for r in &o.responses {
        by_status.entry(r.status).or_default().push(r);
    }
    let responses = by_status.iter().map(|(status, rs)| {
        let description = &rs[0].doc;
        let contents: Vec<TokenStream> = rs
            .iter()
            .filter_map(|r| {
                let media = r.media_type.as_ref()?;
                // XML bodies travel as text the implementation writes, but the contract
                // describes their structure, and so does the published document.
                let ty = match &r.payload {
                    Payload::Json(ty) | Payload::Text(_, Some(ty)) => types.tokens(ty),
                    _ => quote! { String },
                };
                Some(quote! { (#ty = #media) })
            })
            .collect();
        if contents.is_empty() {
            quote! { (status = #status, description = #description) }
        } else {
            quote! { (status = #status, description = #description, content(#(#contents),*)) }
        }
    });
    let security = match &o.security {
        // A credential in the body is no security scheme OpenAPI knows (see `x-token-in`).
        Security::Public | Security::Required(super::model::Scheme { carrier: Carrier::ApiKeyQuery { in_body: true, .. }, .. }) => {
            quote! { security(()) }
        }
        Security::Required(s) => {
            let n = &s.name;
            quote! { security((#n = [])) }
        }
        Security::Optional(s) => {
            let n = &s.name;
            quote! { security((#n = []), ()) }
        }
    };
    quote! {
        #[utoipa::path(
            #method,
            path = #path,
            operation_id = #id,
            tags = [#(#tags),*],
            summary = #summary,
            description = #description,
            params(#(#params),*),
            #body
            responses(#(#responses),*),
            #security
        )]
    }
}

/// `openapi.rs`: the utoipa document built from the handlers' `utoipa::path` attributes.
pub fn openapi(model: &Model) -> TokenStream {
    let doc_ident = format_ident!("{}Doc", model.api.to_upper_camel_case());
    let paths = model.operations.iter().map(|o| {
        let h = ident(&o.id);
        quote! { router::#h }
    });
    let schemas = model.types.iter().filter(|t| !matches!(t, TypeDef::Alias { .. })).map(|t| {
        let name = ident(t.name());
        quote! { super::types::#name }
    });
    let title = &model.title;
    let version = &model.version;
    let description = &model.description;
    let tags = model.tags.iter().map(|(name, description)| quote! { (name = #name, description = #description) });
    let schemes = model.schemes.iter().map(|s| {
        let name = &s.name;
        match &s.carrier {
            Carrier::Bearer => {
                let format = s.bearer_format.as_ref().map(|f| quote! { .bearer_format(#f) });
                quote! {
                    components.add_security_scheme(#name, SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer)#format.build()));
                }
            }
            Carrier::ApiKeyQuery { name: param, .. } => quote! {
                components.add_security_scheme(#name, SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::new(#param))));
            },
        }
    });
    let contract = model.operations.iter().map(|o| {
        let (path, method) = (&o.path, &o.method);
        let mut seen = Vec::new();
        let optional_body = o.body.as_ref().filter(|b| !b.required).map(|_| quote! { publish::optional_body(operation); });
        let headers: Vec<TokenStream> = o
            .responses
            .iter()
            .filter_map(|r| {
                let headers = r.headers.as_ref()?;
                // Several media types of one status share its headers: published once.
                if seen.contains(&r.status) {
                    return None;
                }
                seen.push(r.status);
                let status = r.status.to_string();
                let ty = ident(&headers.ty);
                let entries = headers.headers.iter().map(|(wire, description, example)| {
                    let example = match example {
                        Some(e) => {
                            let json = e.to_string();
                            quote! { Some(#json) }
                        }
                        None => quote! { None },
                    };
                    quote! { (#wire, #description, #example) }
                });
                Some(quote! { publish::response_headers::<super::types::#ty>(operation, #status, &[#(#entries),*]); })
            })
            .collect();
        if headers.is_empty() && optional_body.is_none() {
            return TokenStream::new();
        }
        quote! {
            {
                let operation = publish::operation(openapi, #path, #method);
                #optional_body
                #(#headers)*
            }
        }
    });
    let documented = documented_examples(model);
    let doc = docs(&format!("The OpenAPI document of `{}`, built from the generated handlers and types.", model.api));
    quote! {
        #![allow(clippy::all, missing_docs)]
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
        use crate::runtime::publish;
        use super::router;

        #doc
        #[derive(utoipa::OpenApi)]
        #[openapi(
            info(title = #title, version = #version, description = #description, license(name = "MIT OR Apache-2.0")),
            paths(#(#paths),*),
            components(schemas(#(#schemas),*)),
            tags(#(#tags),*),
            modifiers(&SecuritySchemes, &Contract)
        )]
        pub struct #doc_ident;

        /// The document's `info.title`, without building the document.
        pub const TITLE: &str = #title;

        /// The OpenAPI document built from the generated code.
        pub fn document() -> utoipa::openapi::OpenApi {
            <#doc_ident as utoipa::OpenApi>::openapi()
        }

        /// The published OpenAPI document as served at `/openapi.json`: [`document`] with every
        /// `examples` map in the spec's order.
        pub fn published() -> serde_json::Value {
            let json = serde_json::to_value(document()).expect("the document serialises");
            publish::in_spec_order(json, DOCUMENTED)
        }

        /// Every documented example of the spec, where it goes in the document.
        const DOCUMENTED: &[publish::Documented] = &[#(#documented),*];

        /// Adds the spec's security schemes.
        struct SecuritySchemes;

        impl utoipa::Modify for SecuritySchemes {
            fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
                let components = openapi.components.get_or_insert_with(Default::default);
                #(#schemes)*
            }
        }

        /// Adds what the handlers' attributes cannot say: the headers responses declare and the
        /// documented examples.
        struct Contract;

        impl utoipa::Modify for Contract {
            fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
                #(#contract)*
                publish::examples(openapi, DOCUMENTED);
            }
        }
    }
}

/// A string literal of `text` as a raw string (embedded JSON stays readable).
fn raw_string(text: &str) -> Literal {
    let mut hashes = String::from("#");
    while text.contains(&format!("\"{hashes}")) {
        hashes.push('#');
    }
    format!("r{hashes}\"{text}\"{hashes}").parse().expect("a raw string literal")
}

/// The `publish::Documented` entries of a model: every documented example of request bodies,
/// responses and parameters.
fn documented_examples(model: &Model) -> Vec<TokenStream> {
    let mut out = Vec::new();
    for o in &model.operations {
        let (path, method) = (&o.path, &o.method);
        let mut entry = |place: TokenStream, json: String| {
            let json = raw_string(&json);
            out.push(quote! { publish::Documented { path: #path, method: #method, place: #place, json: #json } });
        };
        for p in &o.params {
            if let Some(example) = &p.example {
                let (name, location) = (&p.wire, match p.location {
                    Location::Path => "path",
                    Location::Query => "query",
                    Location::Header => "header",
                });
                entry(quote! { publish::Place::Parameter { name: #name, location: #location } }, example.to_string());
            }
        }
        for (media_type, examples) in o.body.iter().flat_map(|b| &b.examples) {
            if !examples.is_empty() {
                entry(quote! { publish::Place::Request { media_type: #media_type } }, Value::Object(examples.clone()).to_string());
            }
        }
        for r in &o.responses {
            if let (Some(media_type), false) = (&r.media_type, r.examples.is_empty()) {
                let status = r.status.to_string();
                entry(
                    quote! { publish::Place::Response { status: #status, media_type: #media_type } },
                    Value::Object(r.examples.clone()).to_string(),
                );
            }
        }
    }
    out
}

/// `examples.rs`: the trait implemented by answering every operation with a documented example.
pub fn examples(model: &Model) -> TokenStream {
    let trait_ident = ident(&model.trait_name);
    let api = model.api;
    let methods = model.operations.iter().map(|o| {
        let name = ident(&o.id);
        let input = format_ident!("{}Input", o.pascal);
        let output = format_ident!("{}Output", o.pascal);
        let principal = match o.security {
            Security::Public => quote! { () },
            Security::Required(_) => quote! { Credential },
            Security::Optional(_) => quote! { Option<Credential> },
        };
        quote! {
            async fn #name(&self, ctx: Context<#principal>, _input: #input) -> #output {
                crate::runtime::answer(&self.0, #api, &ctx)
            }
        }
    });
    let refs = model.examples.iter().map(|(op, name, status, media, is_default)| {
        let response = model
            .operations
            .iter()
            .find(|o| &o.id == op)
            .and_then(|o| o.responses.iter().find(|r| r.status == *status && r.media_type.as_deref() == Some(media.as_str())));
        let headers = response.and_then(|r| r.headers.as_ref()).map(|h| &h.headers).into_iter().flatten().filter_map(|(wire, _, example)| {
            let text = match example.as_ref()? {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            let wire = wire.to_ascii_lowercase();
            Some(quote! { (#wire, #text) })
        });
        quote! {
            ExampleRef { operation_id: #op, name: #name, status: #status, media_type: #media, is_default: #is_default, headers: &[#(#headers),*] }
        }
    });
    let doc = docs(&format!(
        "Implements [`{}`] by answering every operation with the documented example its\n[`ExampleSource`] picks. Credentials are accepted on presence: nothing is verified.",
        model.trait_name
    ));
    quote! {
        #![allow(clippy::all, missing_docs)]
        use crate::runtime::{AuthError, Context, Credential, ExampleRef, ExampleSource};
        use super::*;

        /// Every documented response example, operation by operation in spec order.
        pub const EXAMPLES: &[ExampleRef] = &[#(#refs),*];

        #doc
        #[derive(Debug, Clone)]
        pub struct Examples<S>(pub S);

        impl<S: ExampleSource> #trait_ident for Examples<S> {
            type Principal = Credential;
            async fn authenticate(&self, _operation: Operation, credential: Credential) -> Result<Credential, AuthError> {
                Ok(credential)
            }
            #(#methods)*
        }
    }
}
