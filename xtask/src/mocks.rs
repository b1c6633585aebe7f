//! `mocks/`: the file-per-example projection of the examples embedded in `openapi/`.
//!
//! The spec is the one source of truth; `cargo xtask mocks` writes
//! `mocks/<api>/<operationId>/<name>.<ext>` from it and the contract tests fail when the two
//! differ. JSON examples are written pretty-printed with a trailing newline; HTML and XML
//! examples are written byte for byte as the spec's string.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::spec::{Api, Spec};

/// One mock file as the spec says it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockFile {
    /// The file's text.
    pub contents: String,
    /// JSON pointer to the schema the example answers with, if any.
    pub schema_pointer: Option<String>,
    /// Whether the file is JSON (and so validated against the schema).
    pub is_json: bool,
}

/// The folder holding one API's mocks.
pub fn api_dir(root: &Path, api: Api) -> PathBuf {
    root.join("mocks").join(api.id)
}

/// Every mock file the spec implies, keyed by `<operationId>/<name>.<ext>`.
///
/// Examples without a value, or whose operation has no operationId, are left out: lint reports
/// them on the spec itself.
pub fn project(spec: &Spec) -> BTreeMap<String, MockFile> {
    let mut out = BTreeMap::new();
    for example in spec.response_examples() {
        let (Some(value), id) = (example.value, example.operation.id()) else { continue };
        if id.is_empty() {
            continue;
        }
        let contents = if example.is_json() {
            let mut text = serde_json::to_string_pretty(value).expect("a JSON value serialises");
            text.push('\n');
            text
        } else {
            value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string())
        };
        out.insert(
            format!("{id}/{}.{}", example.name, example.extension()),
            MockFile { contents, schema_pointer: example.schema_pointer.clone(), is_json: example.is_json() },
        );
    }
    out
}

/// The files under `mocks/<api>/`, keyed by their path relative to that folder (`/`-separated).
pub fn read_dir(root: &Path, api: Api) -> Result<BTreeMap<String, String>> {
    let dir = api_dir(root, api);
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return Ok(out);
    }
    read_into(&dir, &dir, &mut out)?;
    Ok(out)
}

fn read_into(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            read_into(base, &path, out)?;
        } else {
            let relative = path
                .strip_prefix(base)
                .expect("walked below base")
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            out.insert(relative, text);
        }
    }
    Ok(())
}

/// Make `mocks/<api>/` exactly the projection of the spec: write what differs, delete what
/// belongs to no example. Returns the relative paths written or removed.
pub fn write(root: &Path, spec: &Spec) -> Result<Vec<String>> {
    let dir = api_dir(root, spec.api);
    let expected = project(spec);
    let on_disk = read_dir(root, spec.api)?;
    let mut changed = Vec::new();
    for (relative, file) in &expected {
        if on_disk.get(relative) != Some(&file.contents) {
            let path = dir.join(relative);
            std::fs::create_dir_all(path.parent().expect("has a parent"))?;
            std::fs::write(&path, &file.contents)
                .with_context(|| format!("writing {}", path.display()))?;
            changed.push(relative.clone());
        }
    }
    for relative in on_disk.keys().filter(|r| !expected.contains_key(*r)) {
        let path = dir.join(relative);
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        changed.push(relative.clone());
    }
    remove_empty_dirs(&dir)?;
    Ok(changed)
}

fn remove_empty_dirs(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            remove_empty_dirs(&path)?;
            if std::fs::read_dir(&path)?.next().is_none() {
                std::fs::remove_dir(&path)?;
            }
        }
    }
    Ok(())
}
