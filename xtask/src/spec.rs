//! Loading the five OpenAPI contracts and walking their operations, schemas and examples.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

/// One of the five APIs mpapi serves (see `DESIGN.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Api {
    /// The API id: the spec's file stem and the folder name under `mocks/`.
    pub id: &'static str,
    /// The seed document in `../shared/seeds/` the spec is transcribed from.
    pub seed: &'static str,
    /// The development port the API listens on.
    pub port: u16,
}

/// The five APIs, in port order.
pub const APIS: [Api; 5] = [
    Api { id: "heating", seed: "000_45aeeb9384245282.txt", port: 3000 },
    Api { id: "points", seed: "001_944ad17cd934edff.txt", port: 3001 },
    Api { id: "community", seed: "002_c9068d1359e06fa9.txt", port: 3002 },
    Api { id: "charging", seed: "003_8552d988eab764d2.txt", port: 3003 },
    Api { id: "o2o", seed: "004_1e4197f3bfe6ca74.txt", port: 3004 },
];

impl fmt::Display for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id)
    }
}

/// The workspace root (the folder holding `openapi/`, `mocks/`, `generated/`).
pub fn workspace_root() -> PathBuf {
    // xtask lives one level below the root; CARGO_MANIFEST_DIR is fixed at build time.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits inside the workspace")
        .to_path_buf()
}

/// A parsed contract: the API it belongs to and the document as JSON.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Which API this is.
    pub api: Api,
    /// The whole OpenAPI document, YAML read into JSON values.
    pub doc: Value,
}

/// HTTP methods an OpenAPI path item can hold, in the order they are reported.
pub const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// One operation of a spec: a method on a path.
#[derive(Debug, Clone, Copy)]
pub struct Operation<'a> {
    /// The path template as written in the spec (`/api/payment/status/{order_id}`).
    pub path: &'a str,
    /// Lower-case HTTP method.
    pub method: &'static str,
    /// The Operation Object.
    pub op: &'a Value,
}

impl Operation<'_> {
    /// The operationId, or `""` when it is missing (lint reports that).
    pub fn id(&self) -> &str {
        self.op.get("operationId").and_then(Value::as_str).unwrap_or("")
    }

    /// JSON pointer to this operation inside the document.
    pub fn pointer(&self) -> String {
        format!("/paths/{}/{}", escape_pointer(self.path), self.method)
    }
}

impl fmt::Display for Operation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ({})", self.method.to_uppercase(), self.path, self.id())
    }
}

/// One named example of a response (these become `mocks/<api>/<operationId>/<name>.<ext>`).
#[derive(Debug, Clone)]
pub struct ResponseExample<'a> {
    /// The operation the example answers.
    pub operation: Operation<'a>,
    /// The response status key as written (`"200"`, `"4XX"`, `"default"`).
    pub status: &'a str,
    /// The media type (`application/json`, `text/html`, `application/xml`).
    pub media_type: &'a str,
    /// The example's name: unique within the operation, the mock file's stem.
    pub name: &'a str,
    /// The example's value (`None` when the Example Object has no `value`; lint reports that).
    pub value: Option<&'a Value>,
    /// JSON pointer to the Media Type Object's schema, when it has one.
    pub schema_pointer: Option<String>,
}

impl ResponseExample<'_> {
    /// File extension of the mock file for this media type.
    pub fn extension(&self) -> &'static str {
        media_extension(self.media_type)
    }

    /// Whether the example is JSON (and so validated against its schema).
    pub fn is_json(&self) -> bool {
        is_json_media(self.media_type)
    }
}

/// Whether a media type carries JSON.
pub fn is_json_media(media_type: &str) -> bool {
    media_type == "application/json" || media_type.ends_with("+json")
}

/// The mock file extension for a media type: `json`, `html`, `xml`, else `txt`.
pub fn media_extension(media_type: &str) -> &'static str {
    if is_json_media(media_type) {
        "json"
    } else if media_type == "text/html" {
        "html"
    } else if media_type.ends_with("/xml") {
        "xml"
    } else {
        "txt"
    }
}

/// Escape one JSON-pointer reference token (RFC 6901).
pub fn escape_pointer(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

impl Spec {
    /// Path of an API's spec file under `root`.
    pub fn path(root: &Path, api: Api) -> PathBuf {
        root.join("openapi").join(format!("{}.yaml", api.id))
    }

    /// Read and parse `openapi/<api>.yaml` under `root`.
    pub fn load(root: &Path, api: Api) -> Result<Spec> {
        let path = Spec::path(root, api);
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        Spec::parse(api, &text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Parse a spec from YAML text.
    pub fn parse(api: Api, yaml: &str) -> Result<Spec> {
        let doc: Value = serde_norway::from_str(yaml)?;
        if !doc.is_object() {
            bail!("the document is not a mapping");
        }
        Ok(Spec { api, doc })
    }

    /// Load all five specs.
    pub fn load_all(root: &Path) -> Result<Vec<Spec>> {
        APIS.iter().map(|&api| Spec::load(root, api)).collect()
    }

    /// Every operation, in path order as written, then method order.
    pub fn operations(&self) -> Vec<Operation<'_>> {
        let Some(paths) = self.doc.get("paths").and_then(Value::as_object) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (path, item) in paths {
            for method in METHODS {
                if let Some(op) = item.get(method) {
                    out.push(Operation { path, method, op });
                }
            }
        }
        out
    }

    /// Follow `$ref`s (internal `#/...` pointers only) until a non-reference node.
    pub fn resolve<'a>(&'a self, mut node: &'a Value) -> Result<&'a Value> {
        // A chain longer than this is a cycle.
        for _ in 0..32 {
            let Some(reference) = node.get("$ref").and_then(Value::as_str) else {
                return Ok(node);
            };
            node = self.pointer(reference)?;
        }
        Err(anyhow!("$ref chain too long (cycle?)"))
    }

    /// The node a `#/...` reference points to.
    pub fn pointer(&self, reference: &str) -> Result<&Value> {
        let pointer = reference
            .strip_prefix('#')
            .ok_or_else(|| anyhow!("only internal references are used: {reference}"))?;
        self.doc
            .pointer(pointer)
            .ok_or_else(|| anyhow!("$ref does not resolve: {reference}"))
    }

    /// Every named response example of every operation, following `$ref`d responses.
    ///
    /// A response or example that does not resolve is skipped here; lint reports it.
    pub fn response_examples(&self) -> Vec<ResponseExample<'_>> {
        let mut out = Vec::new();
        for operation in self.operations() {
            let Some(responses) = operation.op.get("responses").and_then(Value::as_object) else {
                continue;
            };
            for (status, response) in responses {
                let (response, response_pointer) = match response.get("$ref").and_then(Value::as_str)
                {
                    Some(r) => match self.resolve(response) {
                        Ok(v) => (v, r.trim_start_matches('#').to_owned()),
                        Err(_) => continue,
                    },
                    None => (
                        response,
                        format!("{}/responses/{}", operation.pointer(), escape_pointer(status)),
                    ),
                };
                let Some(content) = response.get("content").and_then(Value::as_object) else {
                    continue;
                };
                for (media_type, media) in content {
                    let media_pointer =
                        format!("{response_pointer}/content/{}", escape_pointer(media_type));
                    let schema_pointer = media.get("schema").map(|_| format!("{media_pointer}/schema"));
                    let Some(examples) = media.get("examples").and_then(Value::as_object) else {
                        continue;
                    };
                    for (name, example) in examples {
                        let Ok(example) = self.resolve(example) else { continue };
                        out.push(ResponseExample {
                            operation,
                            status,
                            media_type,
                            name,
                            value: example.get("value"),
                            schema_pointer: schema_pointer.clone(),
                        });
                    }
                }
            }
        }
        out
    }
}

/// The ordering rule for a response status key: numeric codes first, ascending; ranges and
/// `default` after.
pub fn status_rank(status: &str) -> u32 {
    status.parse::<u32>().unwrap_or(1000)
}

/// The default example of an operation: the first example of its lowest 2xx response.
pub fn default_example<'a, 'b>(
    examples: &'b [ResponseExample<'a>],
    operation_id: &str,
) -> Option<&'b ResponseExample<'a>> {
    examples
        .iter()
        .filter(|e| e.operation.id() == operation_id && (200..300).contains(&status_rank(e.status)))
        .min_by_key(|e| status_rank(e.status))
}
