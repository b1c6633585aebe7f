//! What the generated routers share: the request context, credentials, body and parameter
//! parsing that names the failing field, constraint checks, and rejections.
//!
//! Each API renders a [`Rejection`] in its own envelope (its `render_rejection`, generated from
//! the spec's `x-rejections`); nothing here writes a response body.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::net::SocketAddr;
use std::str::FromStr;

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header, request::Parts};
use serde::de::DeserializeOwned;

/// The largest request body a generated router reads, in bytes (10 MiB: face photos uploaded
/// through `wx.uploadFile` are the largest bodies the five APIs take).
pub const BODY_LIMIT: usize = 10 * 1024 * 1024;

/// Why a router refused a request before calling the implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectionKind {
    /// Bad JSON, a wrong type, a missing field, a broken constraint.
    InvalidRequest,
    /// No credential where the operation's security scheme requires one, or one the
    /// implementation refused.
    Unauthenticated,
    /// No operation has this path.
    NotFound,
    /// The path exists, but not with this method.
    MethodNotAllowed,
    /// The body's `Content-Type` is not one the operation accepts.
    UnsupportedMediaType,
    /// The body is larger than [`BODY_LIMIT`].
    PayloadTooLarge,
    /// The credential could not be checked now (storage down): HTTP 503, never the
    /// unauthenticated answer, so that clients keep their tokens through an outage.
    Unavailable,
}

/// One broken rule of a request: where (`phone`, `bill_ids[0]`, `query.page`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Path of the failing field: body fields by name (`resource.nonce`, `bill_ids[0]`),
    /// parameters by name.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl Violation {
    /// A violation at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Violation {
        Violation { path: path.into(), message: message.into() }
    }
}

impl Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// A refused request, rendered by the API's `render_rejection` in its own envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// What kind of refusal (chooses the status and the envelope's code).
    pub kind: RejectionKind,
    /// The fields at fault, when there are any.
    pub violations: Vec<Violation>,
    /// The message for the envelope: names every failing field.
    pub message: String,
}

impl Rejection {
    /// A request that breaks the contract; the message names every failing field.
    pub fn invalid(violations: Vec<Violation>) -> Rejection {
        let message = format!("请求参数错误：{}", detail(&violations));
        Rejection { kind: RejectionKind::InvalidRequest, message, violations }
    }

    /// The failing fields and what is wrong with each (the message without its leading
    /// `请求参数错误：`), or the message when no field is at fault: a template that words the
    /// refusal its own way (`手机号格式不正确：{detail}`) takes this, so nothing is said twice.
    pub fn detail(&self) -> String {
        if self.violations.is_empty() { self.message.clone() } else { detail(&self.violations) }
    }

    /// One failing field.
    pub fn field(path: impl Into<String>, message: impl Into<String>) -> Rejection {
        Rejection::invalid(vec![Violation::new(path, message)])
    }

    /// A missing or refused credential.
    pub fn unauthenticated(message: impl Into<String>) -> Rejection {
        Rejection { kind: RejectionKind::Unauthenticated, violations: Vec::new(), message: message.into() }
    }

    /// A credential that could not be checked now.
    pub fn unavailable(message: impl Into<String>) -> Rejection {
        Rejection { kind: RejectionKind::Unavailable, violations: Vec::new(), message: message.into() }
    }

    /// A refusal of the given kind with a plain message.
    pub fn of(kind: RejectionKind, message: impl Into<String>) -> Rejection {
        Rejection { kind, violations: Vec::new(), message: message.into() }
    }
}

fn detail(violations: &[Violation]) -> String {
    violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// A credential as the client presented it, before any verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Bearer <token>` (an http bearer security scheme).
    Bearer(String),
    /// An apiKey security scheme's value (o2o's `token`, from the query or the JSON body).
    ApiKey(String),
}

impl Credential {
    /// The token or key itself.
    pub fn secret(&self) -> &str {
        match self {
            Credential::Bearer(s) | Credential::ApiKey(s) => s,
        }
    }
}

/// Why `authenticate` did not produce a principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// The credential is missing, malformed, expired or revoked: the API's unauthenticated answer (401-class).
    Unauthenticated(String),
    /// The credential could not be checked now (storage down): the API's unavailable answer, HTTP 503.
    Unavailable(String),
}

impl Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthError::Unauthenticated(message) | AuthError::Unavailable(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for AuthError {}

impl From<AuthError> for Rejection {
    fn from(error: AuthError) -> Rejection {
        match error {
            AuthError::Unauthenticated(message) => Rejection::unauthenticated(message),
            AuthError::Unavailable(message) => Rejection::unavailable(message),
        }
    }
}

/// Everything about a request that is not its typed input, passed to every operation.
///
/// `P` is the authenticated principal: the implementation's `Principal` on operations that
/// require a credential, `Option<Principal>` where one is optional, `()` on public ones.
#[derive(Debug, Clone)]
pub struct Context<P> {
    /// Who is calling, as the implementation's `authenticate` established.
    pub principal: P,
    /// The operationId being served.
    pub operation_id: &'static str,
    /// The request method.
    pub method: Method,
    /// The request URI (path and query) as received.
    pub uri: Uri,
    /// The request headers as received.
    pub headers: HeaderMap,
    /// What middleware attached to the request (the peer address, mock mode's chosen example).
    pub extensions: Extensions,
    /// The body bytes as received (signed callbacks verify these, never a re-serialisation).
    pub raw_body: Bytes,
}

impl Context<()> {
    /// The context of a request, before authentication: takes the request's head over once the
    /// router has read its parameters (nothing is copied).
    pub fn new(parts: Parts, raw_body: Bytes, operation_id: &'static str) -> Context<()> {
        let Parts { method, uri, headers, extensions, .. } = parts;
        Context {
            principal: (),
            operation_id,
            method,
            uri,
            headers,
            extensions,
            raw_body,
        }
    }
}

impl<P> Context<P> {
    /// The same context carrying another principal.
    pub fn with_principal<Q>(self, principal: Q) -> Context<Q> {
        Context {
            principal,
            operation_id: self.operation_id,
            method: self.method,
            uri: self.uri,
            headers: self.headers,
            extensions: self.extensions,
            raw_body: self.raw_body,
        }
    }

    /// The peer address, when the server was started with connect info.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)
    }
}

/// The token of an `Authorization: Bearer <token>` header, if there is a non-empty one.
pub fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// How long a request's body may go with no byte arriving before it is refused as unreadable
/// (nginx's `client_body_timeout`). Its head has arrived whole by then, and the listener times
/// nothing while a request is handled (`mpapi::listener`), so the body is timed here, between
/// its frames: a slow upload that keeps moving is read to its end.
pub const BODY_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Read the whole body, refusing more than [`BODY_LIMIT`] bytes ([`RejectionKind::PayloadTooLarge`])
/// and a body that could not be read whole ([`RejectionKind::InvalidRequest`]: its client stopped
/// sending it for [`BODY_IDLE_TIMEOUT`], or closed the connection, part of the way).
pub async fn read_body(body: Body) -> Result<Bytes, Rejection> {
    use http_body_util::BodyExt as _;
    // Most GET requests have no body: nothing to collect.
    if axum::body::HttpBody::is_end_stream(&body) {
        return Ok(Bytes::new());
    }
    let unreadable = || Rejection::of(RejectionKind::InvalidRequest, "请求体未能完整读取");
    let mut body = http_body_util::Limited::new(body, BODY_LIMIT);
    let mut chunks: Vec<Bytes> = Vec::new();
    loop {
        match tokio::time::timeout(BODY_IDLE_TIMEOUT, body.frame()).await {
            Err(_) => return Err(unreadable()),
            Ok(None) => break,
            Ok(Some(Err(error))) if error.is::<http_body_util::LengthLimitError>() => {
                return Err(Rejection::of(RejectionKind::PayloadTooLarge, format!("请求体超过{BODY_LIMIT}字节")));
            }
            Ok(Some(Err(_))) => return Err(unreadable()),
            Ok(Some(Ok(frame))) => chunks.extend(frame.into_data().ok().filter(|data| !data.is_empty())),
        }
    }
    // One chunk, the usual body, is answered as it came, uncopied.
    Ok(match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.swap_remove(0),
        _ => Bytes::from(chunks.concat()),
    })
}

/// Refuse a body whose `Content-Type` is present and none of `accepted` (a missing one is
/// taken as the operation's first media type: `wx.request` always sends one, other clients
/// often do not).
pub fn require_media_type(headers: &HeaderMap, accepted: &[&str]) -> Result<(), Rejection> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    // Most clients send exactly the media type (`application/json`): one comparison of bytes.
    if accepted.iter().any(|a| a.as_bytes() == value.as_bytes()) {
        return Ok(());
    }
    let Ok(value) = value.to_str() else {
        return Ok(());
    };
    let found = value.split(';').next().unwrap_or_default().trim();
    if accepted.iter().any(|a| a.eq_ignore_ascii_case(found)) {
        return Ok(());
    }
    Err(Rejection::of(
        RejectionKind::UnsupportedMediaType,
        format!("不支持的Content-Type：{}，应为{}", found.to_ascii_lowercase(), accepted.join("或")),
    ))
}

/// Deserialise a JSON body, naming the failing field on error (a string holding U+0000
/// included: [`NUL_REFUSED`]).
pub fn json_body<T: DeserializeOwned>(raw: &Bytes) -> Result<T, Rejection> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(Rejection::field("body", "请求体不能为空"));
    }
    // JSON can carry U+0000 only escaped: a body without the escape holds none (a literal
    // `\\u0000`, a backslash and `u0000`, is read and let through).
    // (A body that is no JSON value at all is refused here: serde skips a field the operation
    // does not know without reading it, which could hide a U+0000 from this check.)
    if raw.windows(6).any(|w| w == b"\\u0000") {
        let value: serde_json::Value = serde_json::from_slice(raw).map_err(|e| Rejection::field("body", malformed_json(&e)))?;
        refuse_nul(&value)?;
    }
    // Most bodies are well-formed: read them once, without tracking the path. Only a refused
    // body is read again, to read integers written with a fraction or to say where it is wrong.
    if let Ok(value) = serde_json::from_slice(raw) {
        return Ok(value);
    }
    // Malformed JSON is the body's fault, not the field the parser happened to be in (and
    // serde_json reports some type errors as syntax errors), so check well-formedness first.
    let mut value: serde_json::Value =
        serde_json::from_slice(raw).map_err(|e| Rejection::field("body", malformed_json(&e)))?;
    // JSON Schema counts `79.0` as the integer 79 (JavaScript has one number type, and clients
    // write integers that way); serde's integers refuse a fraction, however zero.
    integral_numbers_as_integers(&mut value);
    // A U+0000 in these bytes was refused above.
    serde_path_to_error::deserialize(value).map_err(|e| serde_rejection(&e))
}

/// Replace every number with a zero fraction that fits an `i64` (`79.0`) by that integer.
fn integral_numbers_as_integers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(n) if n.is_f64() => {
            if let Some(integer) = n.as_f64().and_then(exact_integer) {
                *value = serde_json::Value::from(integer);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_numbers_as_integers),
        serde_json::Value::Object(map) => map.values_mut().for_each(integral_numbers_as_integers),
        _ => {}
    }
}

/// The integer a float is, when it is one exactly: a whole number within ±2^53 (JavaScript's
/// safe integers). Beyond, a float stands for many integers (`-9223372036854775809` reads as
/// the float -2^63): it is left a float, and refused where an integer is wanted.
fn exact_integer(f: f64) -> Option<i64> {
    const SAFE: f64 = 9_007_199_254_740_991.0;
    (f.fract() == 0.0 && f.abs() <= SAFE).then_some(f as i64)
}

/// Deserialise an XML body (WeChat Pay v2 notify), naming the failing field on error.
pub fn xml_body<T: DeserializeOwned>(raw: &Bytes) -> Result<T, Rejection> {
    let text = std::str::from_utf8(raw).map_err(|_| Rejection::field("body", "XML不是UTF-8"))?;
    let mut deserializer = quick_xml::de::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| serde_rejection(&e))
}

/// The violation message of a required body field that was not sent (`x-rejections`
/// `by_field` rules with `when: missing` select it).
pub const MISSING_FIELD: &str = "缺少必填字段";

/// The violation message of a required multipart file that was not sent.
pub const MISSING_FILE: &str = "缺少文件";

/// The violation message of a string holding U+0000: PostgreSQL's text cannot store it (the
/// write would fail as the server's error, a 500), and no field of these APIs has use for it.
pub const NUL_REFUSED: &str = "不能包含空字符（U+0000）";

/// Refuse `value` when a string in it, or a key, holds U+0000, naming the first such field.
fn refuse_nul(value: &serde_json::Value) -> Result<(), Rejection> {
    fn nul_at(value: &serde_json::Value, path: &str) -> Option<String> {
        match value {
            serde_json::Value::String(s) => s.contains('\0').then(|| path.to_owned()),
            serde_json::Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| nul_at(item, &index(path, i))),
            serde_json::Value::Object(map) => map.iter().find_map(|(key, item)| {
                let at = join(path, key);
                if key.contains('\0') { Some(at) } else { nul_at(item, &at) }
            }),
            _ => None,
        }
    }
    match nul_at(value, "") {
        Some(path) => Err(Rejection::field(if path.is_empty() { "body".to_owned() } else { path }, NUL_REFUSED)),
        None => Ok(()),
    }
}

fn serde_rejection<E: Display>(error: &serde_path_to_error::Error<E>) -> Rejection {
    let path = error.path().to_string();
    // `.` is the root; `?` a position the format cannot name (the root of an XML document).
    let path = if path == "." || path == "?" { String::new() } else { path };
    let detail = error.inner().to_string();
    // serde reports a missing or unknown field at its parent; name the field itself.
    for (prefix, message) in [("missing field `", MISSING_FIELD), ("unknown field `", "不是允许的字段")] {
        if let Some(field) = detail.strip_prefix(prefix).and_then(|r| r.split('`').next()) {
            return Rejection::field(join(&path, field), message);
        }
    }
    Rejection::field(if path.is_empty() { "body".to_owned() } else { path }, in_chinese(&detail))
}

/// What is wrong with a body that is not JSON at all, and where (serde_json's own words are
/// English).
fn malformed_json(error: &serde_json::Error) -> String {
    let at = format!("第{}行第{}列", error.line(), error.column());
    match error.classify() {
        serde_json::error::Category::Eof => format!("JSON格式错误：内容不完整（{at}）"),
        _ if error.to_string().starts_with("trailing characters") => format!("JSON格式错误：末尾有多余的字符（{at}）"),
        _ => format!("JSON格式错误（{at}）"),
    }
}

/// serde's message about a value, in the Chinese of the other messages: `invalid type: string
/// "x", expected i32` → `应为整数，收到字符串"x"`. Messages already in Chinese (our own) are kept;
/// one this does not know becomes a plain `取值无效`, never English.
pub fn in_chinese(detail: &str) -> String {
    // Drop serde's " at line 1 column 7" suffix: the path already says where.
    let detail = detail.split(" at line ").next().unwrap_or(detail);
    let split = |rest: &str| -> (String, String) {
        match rest.rsplit_once(", expected ") {
            Some((found, expected)) => (found.to_owned(), expected.to_owned()),
            None => (rest.to_owned(), String::new()),
        }
    };
    if let Some(rest) = detail.strip_prefix("invalid type: ") {
        let (found, expected) = split(rest);
        return format!("类型错误：应为{}，收到{}", expectation(&expected), unexpected(&found));
    }
    if let Some(rest) = detail.strip_prefix("invalid value: ") {
        let (found, expected) = split(rest);
        let expected_text = expectation(&expected);
        if expected_text == "整数" {
            return format!("超出整数范围：{}", unexpected(&found));
        }
        // serde_repr's integer enums: "expected one of: 1, 2, 3".
        let choices = expected.strip_prefix("one of: ").map(|list| list.replace(", ", "、"));
        return match choices {
            Some(list) => format!("取值无效：{}，可选值为{list}", unexpected(&found)),
            None if expected.chars().all(|c| c.is_ascii_digit() || c == ' ' || c == 'o' || c == 'r') => {
                format!("取值无效：{}，可选值为{}", unexpected(&found), expected.replace(" or ", "、"))
            }
            None => format!("取值无效：{}", unexpected(&found)),
        };
    }
    if let Some(rest) = detail.strip_prefix("unknown variant `") {
        let (variant, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let choices: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        return format!("取值无效：\"{variant}\"，可选值为{}", choices.join("、"));
    }
    if let Some(field) = detail.strip_prefix("duplicate field `").and_then(|r| r.split('`').next()) {
        return format!("字段{field}重复");
    }
    if detail.starts_with("invalid length ") {
        return "数组长度不正确".to_owned();
    }
    // Not serde's: one of ours (in Chinese already), or a library's we do not know.
    if detail.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)) { detail.to_owned() } else { "取值无效".to_owned() }
}

/// What a serde `Visitor` expected, in Chinese.
fn expectation(expected: &str) -> &'static str {
    match expected {
        "i8" | "i16" | "i32" | "i64" | "i128" | "u8" | "u16" | "u32" | "u64" | "u128" | "an integer" | "isize" | "usize" => "整数",
        "f32" | "f64" | "a number" => "数字",
        "a string" | "a borrowed string" | "string" | "a character" | "char" => "字符串",
        "a boolean" | "bool" => "布尔值（true或false）",
        "a sequence" | "a vector" | "sequence" => "数组",
        "unit" | "null" => "null",
        e if e.starts_with("struct ") || e.contains("map") || e.contains("object") => "对象",
        e if e.contains("Decimal") || e.contains("decimal") => "金额数字",
        e if e.starts_with("one of") => "枚举值之一",
        _ => "正确的类型",
    }
}

/// What serde found instead (`string "x"`, ``integer `5` ``), in Chinese.
fn unexpected(found: &str) -> String {
    let quoted = |rest: &str| rest.trim_matches('`').to_owned();
    if let Some(rest) = found.strip_prefix("string ") {
        return format!("字符串{rest}");
    }
    if let Some(rest) = found.strip_prefix("integer ") {
        return format!("整数{}", quoted(rest));
    }
    if let Some(rest) = found.strip_prefix("floating point ") {
        return format!("小数{}", quoted(rest));
    }
    if let Some(rest) = found.strip_prefix("boolean ") {
        return format!("布尔值{}", quoted(rest));
    }
    match found {
        "null" | "unit value" | "unit" => "null".to_owned(),
        "sequence" => "数组".to_owned(),
        "map" => "对象".to_owned(),
        // serde_repr writes the bare number of an unknown integer enum value.
        other if other.parse::<f64>().is_ok() => other.to_owned(),
        _ => "其他类型".to_owned(),
    }
}

/// `parent.child`, or `child` at the top.
pub fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() { child.to_owned() } else { format!("{parent}.{child}") }
}

/// `parent[index]`.
pub fn index(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// The query string's parameters, first value of each name.
#[derive(Debug, Clone, Default)]
pub struct Query(BTreeMap<String, String>);

impl Query {
    /// Parse `a=1&b=2` (percent-decoded, `+` as space).
    pub fn parse(query: Option<&str>) -> Query {
        let mut map = BTreeMap::new();
        for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            map.entry(name.into_owned()).or_insert_with(|| value.into_owned());
        }
        Query(map)
    }

    /// The raw value of a parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// Parse one parameter value into its type, or say what was expected.
pub fn parse_param<T: FromStr>(name: &str, raw: &str, expected: &str) -> Result<T, Violation> {
    raw.parse::<T>().map_err(|_| Violation::new(name, format!("类型错误：应为{expected}，收到{raw:?}")))
}

/// A required parameter's raw value, or a violation naming it.
pub fn required<'a>(name: &str, raw: Option<&'a str>) -> Result<&'a str, Violation> {
    raw.filter(|v| !v.is_empty()).ok_or_else(|| Violation::new(name, "缺少必填参数"))
}

/// A header's value as text.
pub fn header_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok())
}

/// One file part of a `multipart/form-data` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// The part's file name as the client sent it.
    pub file_name: Option<String>,
    /// The part's own `Content-Type` (`image/jpeg`).
    pub content_type: Option<String>,
    /// The file's bytes.
    pub bytes: Bytes,
}

/// The parts of a `multipart/form-data` body: text fields and files by name.
#[derive(Debug, Clone, Default)]
pub struct Form {
    /// Text fields, first value of each name.
    pub text: BTreeMap<String, String>,
    /// File parts, first of each name.
    pub files: BTreeMap<String, Upload>,
}

/// Read a `multipart/form-data` body.
pub async fn multipart_form(headers: &HeaderMap, raw: Bytes) -> Result<Form, Rejection> {
    if raw.is_empty() {
        return Err(Rejection::field("body", "请求体不能为空"));
    }
    // The media type was checked before (a missing one is taken as multipart/form-data): a body
    // without its boundary cannot be read, which is the body's fault.
    let content_type = header_value(headers, header::CONTENT_TYPE.as_str()).unwrap_or_default();
    let boundary = multer::parse_boundary(content_type)
        .map_err(|_| Rejection::field("body", "multipart/form-data请求体缺少boundary（Content-Type: multipart/form-data; boundary=…）"))?;
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(raw) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut form = Form::default();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            // multer's reasons are English; where it failed is all a client can act on.
            Err(_) => return Err(Rejection::field("body", "multipart格式错误：无法读取各部分")),
        };
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let content_type = field.content_type().map(ToString::to_string);
        let bytes = field
            .bytes()
            .await
            .map_err(|_| Rejection::field(name.clone(), "读取失败"))?;
        if file_name.is_some() {
            form.files.entry(name).or_insert(Upload { file_name, content_type, bytes });
        } else {
            let text = String::from_utf8(bytes.to_vec())
                .map_err(|_| Rejection::field(name.clone(), "不是UTF-8文本"))?;
            form.text.entry(name).or_insert(text);
        }
    }
    Ok(form)
}

/// Checks on values after deserialisation: the constraints serde cannot express.
pub trait Validate {
    /// Push every broken constraint of `self`, found at `path`, onto `out`.
    fn validate(&self, path: &str, out: &mut Vec<Violation>);
}

/// Scalars carry no constraints of their own; their fields' constraints are checked in place.
macro_rules! no_constraints {
    ($($t:ty),*) => { $(impl Validate for $t { fn validate(&self, _: &str, _: &mut Vec<Violation>) {} })* };
}
no_constraints!(String, i32, i64, f64, bool, rust_decimal::Decimal, serde_json::Value, Upload);

impl<T: Validate> Validate for Option<T> {
    fn validate(&self, path: &str, out: &mut Vec<Violation>) {
        if let Some(value) = self {
            value.validate(path, out);
        }
    }
}

impl<T: Validate> Validate for Vec<T> {
    fn validate(&self, path: &str, out: &mut Vec<Violation>) {
        for (i, value) in self.iter().enumerate() {
            value.validate(&index(path, i), out);
        }
    }
}

impl<T: Validate> Validate for BTreeMap<String, T> {
    fn validate(&self, path: &str, out: &mut Vec<Violation>) {
        for (key, value) in self {
            value.validate(&join(path, key), out);
        }
    }
}

/// Constraint checks, one function per JSON Schema keyword the specs use.
pub mod check {
    use super::{Display, Violation};

    /// `minLength`, counted in characters as JSON Schema does.
    pub fn min_length(path: &str, value: &str, min: usize, out: &mut Vec<Violation>) {
        if value.chars().count() < min {
            out.push(Violation::new(path, format!("长度不能少于{min}个字符")));
        }
    }

    /// `maxLength`, counted in characters.
    pub fn max_length(path: &str, value: &str, max: usize, out: &mut Vec<Violation>) {
        if value.chars().count() > max {
            out.push(Violation::new(path, format!("长度不能超过{max}个字符")));
        }
    }

    /// `pattern` (the regex is compiled once by the caller). The message says what the value
    /// should be, in the spec's words (`hint`: its description), never the regex.
    pub fn pattern(path: &str, value: &str, regex: &regex::Regex, hint: &str, out: &mut Vec<Violation>) {
        if !regex.is_match(value) {
            let message = if hint.is_empty() { "格式不正确".to_owned() } else { format!("格式不正确，应为{hint}") };
            out.push(Violation::new(path, message));
        }
    }

    /// `minimum` / `exclusiveMinimum`.
    pub fn minimum<N: PartialOrd + Display>(path: &str, value: N, min: N, exclusive: bool, out: &mut Vec<Violation>) {
        if value < min || (exclusive && value == min) {
            let op = if exclusive { "大于" } else { "不小于" };
            out.push(Violation::new(path, format!("应{op}{min}")));
        }
    }

    /// `maximum` / `exclusiveMaximum`.
    pub fn maximum<N: PartialOrd + Display>(path: &str, value: N, max: N, exclusive: bool, out: &mut Vec<Violation>) {
        if value > max || (exclusive && value == max) {
            let op = if exclusive { "小于" } else { "不大于" };
            out.push(Violation::new(path, format!("应{op}{max}")));
        }
    }

    /// `minItems`.
    pub fn min_items(path: &str, len: usize, min: usize, out: &mut Vec<Violation>) {
        if len < min {
            out.push(Violation::new(path, format!("至少需要{min}项")));
        }
    }

    /// `maxItems`.
    pub fn max_items(path: &str, len: usize, max: usize, out: &mut Vec<Violation>) {
        if len > max {
            out.push(Violation::new(path, format!("最多{max}项")));
        }
    }

    /// `type: [...]` with several types, for values kept as untyped JSON.
    /// `value` is one of `allowed`, each a JSON text (`"\"业主\""`, `"2"`): the `enum` of a schema
    /// that allows several types. An integral number matches its integer text (`2.0` is `2`).
    pub fn json_enum(path: &str, value: &serde_json::Value, allowed: &[&str], out: &mut Vec<Violation>) {
        let text = match value {
            serde_json::Value::Number(n) if !(n.is_i64() || n.is_u64()) => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => (f as i64).to_string(),
                _ => value.to_string(),
            },
            _ => value.to_string(),
        };
        if !allowed.contains(&text.as_str()) {
            let shown = |t: &str| serde_json::from_str::<serde_json::Value>(t).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_else(|| t.to_owned());
            let choices: Vec<String> = allowed.iter().map(|t| shown(t)).collect();
            out.push(Violation::new(path, format!("取值无效：{}，可选值为{}", shown(&text), choices.join("、"))));
        }
    }

    pub fn json_types(path: &str, value: &serde_json::Value, allowed: &[&str], out: &mut Vec<Violation>) {
        let found = match value {
            serde_json::Value::Null => "null",
            serde_json::Value::Bool(_) => "boolean",
            serde_json::Value::Number(n) if n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0) => {
                "integer"
            }
            serde_json::Value::Number(_) => "number",
            serde_json::Value::String(_) => "string",
            serde_json::Value::Array(_) => "array",
            serde_json::Value::Object(_) => "object",
        };
        let ok = allowed.contains(&found) || (found == "integer" && allowed.contains(&"number"));
        if !ok {
            let name = |t: &str| match t {
                "string" => "字符串",
                "integer" => "整数",
                "number" => "数字",
                "boolean" => "布尔值",
                "array" => "数组",
                "object" => "对象",
                _ => "null",
            };
            let allowed: Vec<&str> = allowed.iter().map(|t| name(t)).collect();
            out.push(Violation::new(path, format!("类型错误：应为{}，收到{}", allowed.join("或"), name(found))));
        }
    }

    /// A decimal bound written in the spec (`0.01`).
    pub fn decimal(literal: &str) -> rust_decimal::Decimal {
        literal.parse().expect("spec bounds are numbers")
    }

    /// `format` for the formats the specs use on strings; other formats are annotations.
    pub fn format(path: &str, value: &str, format: &str, out: &mut Vec<Violation>) {
        let ok = match format {
            "date-time" => chrono::DateTime::parse_from_rfc3339(value).is_ok(),
            "date" => chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").is_ok(),
            // The documents' Beijing-time "2020-11-19 13:34:38".
            "local-date-time" => chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S").is_ok(),
            "email" => value.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.')),
            // RFC 3986 `URI`: a scheme, then the rest (an empty string is none).
            "uri" => fluent_uri::Uri::parse(value).is_ok(),
            _ => true,
        };
        if !ok {
            out.push(Violation::new(path, format!("不是有效的{format}格式")));
        }
    }
}

/// What JSON type a text value (query, path, header, form field) is read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// Kept as a string (strings, string enums, decimal strings).
    String,
    /// Parsed as an integer (integers, integer enums).
    Integer,
    /// Parsed as a number.
    Number,
    /// `true`/`false` (also `1`/`0`).
    Boolean,
}

/// Read a `format: decimal` money field that travels as a JSON number (`1250.50`): a string
/// (`"1250.50"`) is refused, as the contract's `type: number` says. The number's shortest text
/// is parsed exactly, so `1250.5` is 1250.5 and never 1250.49999….
pub fn decimal_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<rust_decimal::Decimal, D::Error> {
    use serde::Deserialize;
    let number = serde_json::Number::deserialize(deserializer)?;
    let text = number.to_string();
    rust_decimal::Decimal::from_str(&text)
        .or_else(|_| rust_decimal::Decimal::from_scientific(&text))
        .ok()
        .or_else(|| {
            // More decimal places than a Decimal keeps (28: `5e-324`): the nearest Decimal, as any
            // decimal reader rounds. A number beyond ±7.9e28 has none.
            let float = number.as_f64()?;
            if float.abs() < 1e-28 {
                return Some(rust_decimal::Decimal::ZERO);
            }
            <rust_decimal::Decimal as rust_decimal::prelude::FromPrimitive>::from_f64(float)
        })
        .ok_or_else(|| serde::de::Error::custom(format!("{text}超出金额数字的范围")))
}

/// Write an amount in yuan (a `format: decimal` number with `x-unit: yuan`) as a JSON number
/// with exactly two decimal places — `1250.50`, `-3.00`, `0.00` — as the documents' examples
/// show it (heating 000 §对接注意事项 5: "保留2位小数"): yuan are whole fen, and the f64
/// rust_decimal would write prints `1250.5`. An amount finer than a fen is rounded to one
/// (half away from zero).
pub fn yuan<S: serde::Serializer>(value: &rust_decimal::Decimal, serializer: S) -> Result<S::Ok, S::Error> {
    use serde::Serialize;
    let mut fen = value.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    fen.rescale(2);
    // A zero that came out of a negative amount prints `-0.00`.
    if fen.is_zero() {
        fen.set_sign_positive(true);
    }
    let text = serde_json::value::RawValue::from_string(fen.to_string()).map_err(serde::ser::Error::custom)?;
    text.serialize(serializer)
}

/// [`yuan`] for a field that may be absent or `null`.
pub fn yuan_opt<S: serde::Serializer>(value: &Option<rust_decimal::Decimal>, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => yuan(value, serializer),
        None => serializer.serialize_none(),
    }
}

/// [`decimal_number`] for a field that may be `null` (`Option`: a missing field is refused
/// unless it also has `#[serde(default)]`).
pub fn decimal_number_opt<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<rust_decimal::Decimal>, D::Error> {
    #[derive(serde::Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "decimal_number")] rust_decimal::Decimal);
    use serde::Deserialize;
    Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|w| w.0))
}

/// [`decimal_number`] for an optional field that may not be `null` (with `#[serde(default)]`:
/// absent is `None`, present is the number).
pub fn decimal_number_present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<rust_decimal::Decimal>, D::Error> {
    decimal_number(deserializer).map(Some)
}

/// A `type: string, format: decimal` field that is optional but may not be `null` (with
/// `#[serde(default)]`).
pub fn decimal_string_present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<rust_decimal::Decimal>, D::Error> {
    rust_decimal::serde::str::deserialize(deserializer).map(Some)
}

/// An optional field that may not be `null` (with `#[serde(default)]`): absent is `None`, and a
/// present value must be a `T` (serde's own `Option` would take `null` as absent).
pub fn present<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(deserializer: D) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// A required field that may be `null`: serde's own `Option` would take a missing field as
/// `null` (through `deserialize_with`, a missing field is refused).
pub fn nullable<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(deserializer: D) -> Result<Option<T>, D::Error> {
    <Option<T> as serde::Deserialize>::deserialize(deserializer)
}

/// `Deserialize` and `Serialize` for a generated object type, whose derived ones are inherent
/// (`#[serde(remote = "Self")]`): it is read from a JSON object only. serde's derived structs
/// also take a sequence of their fields (`[]` would be a struct whose optional fields are all
/// absent), which JSON Schema's `type: object` does not.
#[macro_export]
macro_rules! json_object {
    ($t:ident) => {
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Fields;
                impl<'de> serde::de::Visitor<'de> for Fields {
                    type Value = $t;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("a JSON object")
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<$t, A::Error> {
                        $t::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    }
                }
                deserializer.deserialize_map(Fields)
            }
        }
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                $t::serialize(self, serializer)
            }
        }
    };
}

/// Read a text value as `T`, pushing a violation naming `name` when it is missing but required,
/// or not of its type.
pub fn text_param<T: DeserializeOwned>(
    violations: &mut Vec<Violation>,
    name: &str,
    raw: Option<&str>,
    kind: TextKind,
    required: bool,
) -> Option<T> {
    // An empty value (`?page=`, `Wechatpay-Nonce:`) is a value, the empty string: it is absent
    // only when the name is.
    let Some(raw) = raw else {
        if required {
            violations.push(Violation::new(name, "缺少必填参数"));
        }
        return None;
    };
    let value = match kind {
        TextKind::String if raw.contains('\0') => {
            violations.push(Violation::new(name, NUL_REFUSED));
            return None;
        }
        TextKind::String => serde_json::Value::String(raw.to_owned()),
        TextKind::Integer => match raw.parse::<i64>().ok().or_else(|| raw.parse::<f64>().ok().and_then(exact_integer)) {
            Some(n) => serde_json::Value::from(n),
            None => {
                violations.push(Violation::new(name, format!("类型错误：应为整数，收到{raw:?}")));
                return None;
            }
        },
        TextKind::Number => match serde_json::from_str::<serde_json::Value>(raw) {
            Ok(n) if n.is_number() => n,
            _ => {
                violations.push(Violation::new(name, format!("类型错误：应为数字，收到{raw:?}")));
                return None;
            }
        },
        TextKind::Boolean => match raw {
            "true" | "1" => serde_json::Value::Bool(true),
            "false" | "0" => serde_json::Value::Bool(false),
            _ => {
                violations.push(Violation::new(name, format!("类型错误：应为true或false，收到{raw:?}")));
                return None;
            }
        },
    };
    match serde_json::from_value::<T>(value) {
        Ok(v) => Some(v),
        Err(e) => {
            violations.push(Violation::new(name, in_chinese(&e.to_string())));
            None
        }
    }
}

/// A non-empty string field of a JSON object body (o2o's `token` on POST), if there is one.
/// A body that is not JSON is refused as such, before any credential check.
pub fn json_field(raw: &Bytes, name: &str) -> Result<Option<String>, Rejection> {
    let value: serde_json::Value = json_body(raw)?;
    Ok(value.get(name).and_then(serde_json::Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned))
}

/// Render a rejection from its spec template: the strings `{message}`, `{detail}`
/// ([`Rejection::detail`]), `{now_ms}` and `{now_s}` are replaced by the message, the failing
/// fields and the current time (ms or s since the epoch).
pub fn render_template(status: u16, template: &str, rejection: &Rejection) -> axum::response::Response {
    let mut body: serde_json::Value = serde_json::from_str(template).expect("x-rejections templates are JSON");
    substitute(&mut body, &rejection.message, &rejection.detail());
    let mut response = axum::response::Response::new(Body::from(body.to_string()));
    // Middleware (mock mode's `--validation warn|off`) can see what was refused and why.
    response.extensions_mut().insert(rejection.clone());
    *response.status_mut() = self::status(status);
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Render a rejection from a text template (an operation that answers in XML: WeChat Pay v2's
/// notify ack): `{message}` and `{detail}` are replaced as in [`render_template`], escaped for
/// XML media types, and `{now_ms}` / `{now_s}` by the time.
pub fn render_text_template(status: u16, media_type: &'static str, template: &str, rejection: &Rejection) -> axum::response::Response {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let escape = |text: String| {
        if media_type.ends_with("xml") { text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;") } else { text }
    };
    let body = template
        .replace("{message}", &escape(rejection.message.clone()))
        .replace("{detail}", &escape(rejection.detail()))
        .replace("{now_ms}", &now.as_millis().to_string())
        .replace("{now_s}", &now.as_secs().to_string());
    let mut response = axum::response::Response::new(Body::from(body));
    response.extensions_mut().insert(rejection.clone());
    *response.status_mut() = self::status(status);
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(media_type)));
    response
}

fn substitute(value: &mut serde_json::Value, message: &str, detail: &str) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    match value {
        serde_json::Value::String(s) if s == "{now_ms}" => *value = serde_json::Value::from(now.as_millis() as u64),
        serde_json::Value::String(s) if s == "{now_s}" => *value = serde_json::Value::from(now.as_secs()),
        serde_json::Value::String(s) => *s = s.replace("{message}", message).replace("{detail}", detail),
        serde_json::Value::Object(map) => map.values_mut().for_each(|v| substitute(v, message, detail)),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| substitute(v, message, detail)),
        _ => {}
    }
}

/// The status code of a documented response, as written in the spec.
pub fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).expect("specs only document valid status codes")
}

/// A documented example could not be read as the operation's response type.
#[derive(Debug)]
pub struct ExampleError(pub String);

impl Display for ExampleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ExampleError {}

/// A per-operation response enum: one variant per documented status and media type, and
/// `Prepared` for an answer already rendered from one of them.
pub trait OperationOutput: Sized {
    /// Read a documented example (status, media type, body text) as this response; mock mode
    /// answers with these, and the contract tests round-trip every example through them.
    fn from_example(status: u16, media_type: Option<&str>, body: &str) -> Result<Self, ExampleError>;
    /// Carry an answer rendered earlier from one of this operation's documented responses (mock
    /// mode renders each example once, then answers with its bytes).
    fn prepared(prepared: Prepared) -> Self;
    /// The response's status code.
    fn status(&self) -> StatusCode;
    /// The response's media type, when it has a body.
    fn media_type(&self) -> Option<&'static str>;
    /// The body as it goes on the wire, when there is one.
    fn body_text(&self) -> Option<String>;
    /// The response headers the spec declares for this response, as they go on the wire.
    fn headers(&self) -> Vec<(HeaderName, HeaderValue)>;
    /// The response rendered: status, media type, headers and body bytes.
    fn render(self) -> Prepared;
}

/// An error answer an implementation built: the documented status, the API's error body, and the seconds a client should wait (429s).
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorAnswer<B> {
    /// The HTTP status the error maps to.
    pub status: u16,
    /// The API's error envelope.
    pub body: B,
    /// Seconds to wait before retrying: fills a `Retry-After` header the response declares.
    pub retry_after: Option<u64>,
}

/// Outputs that can carry an error answer with body type `B`.
pub trait FromErrorAnswer<B>: Sized {
    /// The variant documented for `answer.status` with body type `B`; the answer back when the operation documents no such status with that body.
    fn from_error_answer(answer: ErrorAnswer<B>) -> Result<Self, ErrorAnswer<B>>;
}

/// The typed response headers a spec declares on a response (a generated `…Headers` struct).
pub trait ResponseHeaders {
    /// The headers that have a value, as they go on the wire.
    fn to_pairs(&self) -> Vec<(HeaderName, HeaderValue)>;
}

/// A header value written from a typed one; `None` for text a header cannot carry (controls,
/// line breaks), which is then left out rather than sent broken.
pub fn to_header_value<T: Display>(value: &T) -> Option<HeaderValue> {
    HeaderValue::from_str(&value.to_string()).ok()
}

/// A `Retry-After` seconds value in the header's integer type (saturating: no header type the
/// specs use is narrower than `i32`).
pub fn retry_after_seconds<T: TryFrom<u64> + Bounded>(seconds: u64) -> T {
    T::try_from(seconds).unwrap_or(T::MAX)
}

/// Integer types with a largest value.
pub trait Bounded {
    /// The largest value.
    const MAX: Self;
}

impl Bounded for i32 {
    const MAX: i32 = i32::MAX;
}

impl Bounded for i64 {
    const MAX: i64 = i64::MAX;
}

/// A documented response rendered to what goes on the wire: by [`OperationOutput::render`] from a
/// typed response, or by mock mode from a documented example file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The status code.
    pub status: StatusCode,
    /// The media type, when the response has a body.
    pub media_type: Option<&'static str>,
    /// The response headers the spec declares (`Retry-After`), when they have values; most
    /// responses have none (an empty `Vec` clones without allocating).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body (empty when there is none); cloning shares it.
    pub body: Bytes,
}

impl Prepared {
    /// Render a typed response (what generated `render` implementations call).
    pub fn of<O: OperationOutput>(output: &O) -> Prepared {
        Prepared {
            status: output.status(),
            media_type: output.media_type(),
            headers: output.headers(),
            body: output.body_text().map(Bytes::from).unwrap_or_default(),
        }
    }

    /// The body as text (every documented body is JSON, HTML or XML text).
    pub fn body_text(&self) -> Option<String> {
        self.media_type.map(|_| String::from_utf8_lossy(&self.body).into_owned())
    }

    /// The axum response: the status, the body, and the media type as `Content-Type` (with
    /// `charset=utf-8` for HTML and XML).
    pub fn into_response(self) -> axum::response::Response {
        let Prepared { status, media_type, headers, body } = self;
        let mut response = axum::response::Response::new(Body::from(body));
        *response.status_mut() = status;
        for (name, value) in headers {
            response.headers_mut().insert(name, value);
        }
        if let Some(media_type) = media_type {
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(media_type)));
        }
        response
    }
}

/// The `Content-Type` of a documented media type: the media type itself (a client, and the
/// contract, tell `application/xml` and `text/xml` apart), with `charset=utf-8` for text.
fn content_type(media_type: &'static str) -> &'static str {
    match media_type {
        "application/json" => "application/json",
        "text/html" => "text/html; charset=utf-8",
        "application/xml" => "application/xml; charset=utf-8",
        "text/xml" => "text/xml; charset=utf-8",
        other => other,
    }
}

/// Turn any documented response into an axum response.
pub fn into_response<O: OperationOutput>(output: O) -> axum::response::Response {
    output.render().into_response()
}

/// Read a JSON example body into a typed value.
pub fn example_json<T: DeserializeOwned>(body: &str) -> Result<T, ExampleError> {
    let mut deserializer = serde_json::Deserializer::from_str(body);
    serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|e| ExampleError(format!("at {}: {}", e.path(), e.inner())))
}

/// Read the documented header examples of a response (`{"Retry-After": 60}`) into its typed
/// headers.
pub fn example_headers<T: DeserializeOwned>(json: &str) -> Result<T, ExampleError> {
    serde_json::from_str(json).map_err(|e| ExampleError(format!("header examples: {e}")))
}

/// Write a typed value as the JSON body.
pub fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("generated types always serialise")
}

/// One documented example as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// The response status.
    pub status: u16,
    /// The media type, when the response has a body.
    pub media_type: Option<std::borrow::Cow<'static, str>>,
    /// The body text (JSON, HTML or XML), shared with the source rather than copied per request.
    pub body: std::sync::Arc<str>,
    /// The example's index in the API's `EXAMPLES` and the generation of the files it was read
    /// from: lets [`answer`] reuse the rendered answer while the files are unchanged.
    pub key: Option<AnswerKey>,
}

/// Identifies one example's text: (its index in the API's `EXAMPLES`, generation of the files).
pub type AnswerKey = (usize, u64);

/// Answers already rendered from examples, so mock mode reads and renders each example once
/// rather than on every request. Entries of an older generation are never returned.
#[derive(Default)]
pub struct AnswerCache {
    entries: std::sync::RwLock<Vec<Option<(u64, Prepared)>>>,
}

impl AnswerCache {
    /// Forget every answer (after the examples were reloaded).
    pub fn clear(&self) {
        self.entries.write().expect("the cache lock is never poisoned").clear();
    }

    fn get(&self, key: AnswerKey) -> Option<Prepared> {
        let entries = self.entries.read().expect("the cache lock is never poisoned");
        let (generation, prepared) = entries.get(key.0)?.as_ref()?;
        (*generation == key.1).then(|| prepared.clone())
    }

    fn put(&self, key: AnswerKey, prepared: Prepared) {
        let mut entries = self.entries.write().expect("the cache lock is never poisoned");
        if entries.len() <= key.0 {
            entries.resize(key.0 + 1, None);
        }
        entries[key.0] = Some((key.1, prepared));
    }
}

/// One documented response example of an operation, as the spec lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExampleRef {
    /// The operationId.
    pub operation_id: &'static str,
    /// The example's name: the stem of its file in `mocks/<api>/<operationId>/`.
    pub name: &'static str,
    /// The response status it answers with.
    pub status: u16,
    /// Its media type.
    pub media_type: &'static str,
    /// Whether it is the operation's default (the first example of its lowest 2xx).
    pub is_default: bool,
    /// The documented examples of the response's declared headers, as they go on the wire
    /// (`("retry-after", "60")`): what mock mode sends with the example when it answers without
    /// reading it into the typed response (`--validation warn|off`).
    pub headers: &'static [(&'static str, &'static str)],
}

impl ExampleRef {
    /// The file name of the example under `mocks/<api>/<operationId>/`.
    pub fn file_name(&self) -> String {
        let extension = match self.media_type {
            "application/json" => "json",
            "text/html" => "html",
            m if m.ends_with("/xml") => "xml",
            m if m.ends_with("+json") => "json",
            _ => "txt",
        };
        format!("{}.{extension}", self.name)
    }
}

/// Where the generated `Examples` implementations get their answers (mock mode reads `mocks/`).
pub trait ExampleSource: Send + Sync + 'static {
    /// The example to answer this request with (mock mode honours `Prefer` and `__example`, or
    /// takes the example its middleware picked).
    fn choose<P>(&self, api: &'static str, ctx: &Context<P>) -> Example;
    /// The operation's default example: the first example of its lowest 2xx response.
    fn default_example(&self, api: &'static str, operation_id: &'static str) -> Example;
    /// Where typed answers are kept between requests, if the source keeps them.
    fn answer_cache(&self) -> Option<&AnswerCache> {
        None
    }
}

/// Answer an operation from `source`: the chosen example, or the default one when the chosen
/// example does not read as the operation's response (a hand-edited mock file, say). The answer
/// is rendered from the typed response, once per example when the source keeps a cache.
pub fn answer<O, P>(source: &impl ExampleSource, api: &'static str, ctx: &Context<P>) -> O
where
    O: OperationOutput,
{
    let chosen = source.choose(api, ctx);
    let cache = source.answer_cache().zip(chosen.key);
    if let Some((cache, key)) = cache
        && let Some(prepared) = cache.get(key)
    {
        return O::prepared(prepared);
    }
    let typed = O::from_example(chosen.status, chosen.media_type.as_deref(), &chosen.body).unwrap_or_else(|_| {
        let default = source.default_example(api, ctx.operation_id);
        O::from_example(default.status, default.media_type.as_deref(), &default.body)
            .expect("default examples are round-tripped by the contract tests")
    });
    let prepared = typed.render();
    if let Some((cache, key)) = cache {
        cache.put(key, prepared.clone());
    }
    O::prepared(prepared)
}

/// The schema of a field that is always `null` (`type: "null"`, the `data` of error envelopes).
pub fn null_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Null)
        .build()
}

/// A schema the spec states for a field kept as untyped JSON (several types, say), published
/// as written.
pub fn stated_schema(json: &str) -> utoipa::openapi::schema::Schema {
    serde_json::from_str(json).expect("the generator embeds schemas that utoipa reads")
}

/// What the published document says beyond the `utoipa::path` attributes, filled in by each
/// API's generated `openapi.rs`: the headers responses declare, and every documented example
/// (named, as in the spec) of request bodies, responses and parameters.
pub mod publish {
    use serde_json::Value;
    use utoipa::openapi::example::Example;
    use utoipa::openapi::header::Header;
    use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
    use utoipa::openapi::schema::Schema;
    use utoipa::openapi::{Content, OpenApi, RefOr};

    /// Where documented examples go in an operation.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Place {
        /// The request body's content of this media type.
        Request {
            /// The media type.
            media_type: &'static str,
        },
        /// A response's content.
        Response {
            /// The status, as the document keys it (`"200"`).
            status: &'static str,
            /// The media type.
            media_type: &'static str,
        },
        /// A parameter's `example`.
        Parameter {
            /// Its name.
            name: &'static str,
            /// Where it travels: `path`, `query` or `header`.
            location: &'static str,
        },
    }

    /// Documented examples of one place of one operation: for bodies the spec's `examples` map
    /// (name → `{summary, description, value}`, in the spec's order), for parameters the value.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Documented {
        /// The operation's path template.
        pub path: &'static str,
        /// Its method, lower case.
        pub method: &'static str,
        /// Where in the operation.
        pub place: Place,
        /// The examples (or the parameter's example) as JSON.
        pub json: &'static str,
    }

    fn parse(json: &str) -> Value {
        serde_json::from_str(json).expect("the generator embeds examples as JSON")
    }

    fn content<'a>(map: impl IntoIterator<Item = (&'a String, &'a mut RefOr<Content>)>, media_type: &str) -> &'a mut Content {
        match map.into_iter().find(|(m, _)| *m == media_type) {
            Some((_, RefOr::T(content))) => content,
            _ => unreachable!("the handlers publish every documented media type inline"),
        }
    }

    /// Put every documented example into the document (utoipa keeps an `examples` map sorted
    /// by name; [`in_spec_order`] restores the spec's order in the JSON that is served).
    pub fn examples(openapi: &mut OpenApi, documented: &[Documented]) {
        for entry in documented {
            let operation = self::operation(openapi, entry.path, entry.method);
            let value = parse(entry.json);
            match entry.place {
                Place::Parameter { name, location } => {
                    let location = match location {
                        "path" => ParameterIn::Path,
                        "header" => ParameterIn::Header,
                        _ => ParameterIn::Query,
                    };
                    for parameter in operation.parameters.iter_mut().flatten() {
                        if let RefOr::T(p) = parameter
                            && p.name == name
                            && p.parameter_in == location
                        {
                            *p = ParameterBuilder::from(p.clone()).example(Some(value.clone())).build();
                        }
                    }
                }
                Place::Request { media_type } => {
                    let Some(RefOr::T(body)) = operation.request_body.as_mut() else {
                        unreachable!("the handlers publish every request body inline")
                    };
                    content(body.content.iter_mut(), media_type).examples = named(value);
                }
                Place::Response { status, media_type } => {
                    let Some(RefOr::T(response)) = operation.responses.responses.get_mut(status) else {
                        unreachable!("the handlers publish every documented response")
                    };
                    content(response.content.iter_mut(), media_type).examples = named(value);
                }
            }
        }
    }

    fn named(map: Value) -> std::collections::BTreeMap<String, RefOr<Example>> {
        let Value::Object(map) = map else { unreachable!("examples maps are objects") };
        map.into_iter()
            .map(|(name, example)| (name, RefOr::T(serde_json::from_value(example).expect("examples read as Example objects"))))
            .collect()
    }

    /// The document as served: every `examples` map in the spec's order (Swagger UI shows an
    /// operation's first example first: the documented default, not the alphabetically first).
    pub fn in_spec_order(mut json: Value, documented: &[Documented]) -> Value {
        for entry in documented {
            let escape = |s: &str| s.replace('~', "~0").replace('/', "~1");
            let operation = format!("/paths/{}/{}", escape(entry.path), entry.method);
            let pointer = match entry.place {
                Place::Parameter { .. } => continue,
                Place::Request { media_type } => format!("{operation}/requestBody/content/{}/examples", escape(media_type)),
                Place::Response { status, media_type } => {
                    format!("{operation}/responses/{status}/content/{}/examples", escape(media_type))
                }
            };
            if let Some(examples) = json.pointer_mut(&pointer) {
                *examples = parse(entry.json);
            }
        }
        json
    }

    /// The operation `method path` of the document (generated code names only operations its
    /// own handlers publish).
    pub fn operation<'a>(openapi: &'a mut OpenApi, path: &str, method: &str) -> &'a mut Operation {
        let item = openapi.paths.paths.get_mut(path).expect("the handlers publish every path");
        let operation = match method {
            "get" => &mut item.get,
            "put" => &mut item.put,
            "post" => &mut item.post,
            "delete" => &mut item.delete,
            "options" => &mut item.options,
            "head" => &mut item.head,
            "patch" => &mut item.patch,
            _ => &mut item.trace,
        };
        operation.as_mut().expect("the handlers publish every operation")
    }

    /// Mark the request body optional (`required: false`). The handlers publish the body's own
    /// type: utoipa would publish an optional one as `Option<T>`, a schema that allows `null`,
    /// while an absent body is not a `null` one.
    pub fn optional_body(operation: &mut Operation) {
        if let Some(RefOr::T(body)) = operation.request_body.as_mut() {
            body.required = Some(utoipa::openapi::Required::False);
        }
    }

    /// Declare headers on the `status` response: `(name, description, example as JSON)` each,
    /// with the schema of the field carrying it in the typed headers struct `H` (so the published
    /// schema is the one the code reads and writes).
    pub fn response_headers<H: utoipa::PartialSchema>(operation: &mut Operation, status: &str, headers: &[(&str, &str, Option<&str>)]) {
        let schema = H::schema();
        let RefOr::T(Schema::Object(object)) = &schema else {
            unreachable!("header structs are objects")
        };
        let Some(RefOr::T(response)) = operation.responses.responses.get_mut(status) else {
            unreachable!("the handlers publish every documented response")
        };
        for (name, description, example) in headers {
            let property = object.properties.get(*name).expect("a header struct has a field per header").clone();
            let mut header = Header::new(property);
            header.description = Some((*description).to_owned());
            header.example = example.map(|json| serde_json::from_str(json).expect("header examples are JSON"));
            response.headers.insert((*name).to_owned(), RefOr::T(header));
        }
    }
}
