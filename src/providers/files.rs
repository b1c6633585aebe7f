//! Private file storage (002 §2.3.1 face photos): a local directory or an S3-compatible bucket,
//! whose files are served only through `GET /files/{key}` with a signed, expiring URL.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use aws_lc_rs::hmac;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::{
    Attribute, Attributes, ClientOptions, ObjectStore, ObjectStoreExt as _, PutOptions, PutPayload,
    RetryConfig,
};
use secrecy::ExposeSecret as _;
use serde_json::json;

use super::ProviderError;
use crate::clock::Clock;
use crate::config::{FilesConfig, FilesProvider};

const PROVIDER: &str = "files";

/// The longest key accepted, bytes.
pub const MAX_KEY_LEN: usize = 512;

/// Why a file operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The key is not one [`valid_key`] accepts (a caller's bug: keys are made by the server).
    #[error("invalid file key")]
    InvalidKey,
    /// The file is larger than the configured `max_bytes`.
    #[error("file of {size} bytes is larger than {max} bytes")]
    TooLarge {
        /// Its size, bytes.
        size: usize,
        /// The limit, bytes.
        max: usize,
    },
    /// The store failed (the directory or the bucket): 002 §2.3.1 example 5, "图片上传失败".
    #[error(transparent)]
    Store(#[from] ProviderError),
}

/// Whether `key` may name a file: 1 to [`MAX_KEY_LEN`] bytes of `A-Za-z0-9-_./`, segments
/// between `/` non-empty and not starting with `.` (so no `..`, no leading or doubled `/`, no
/// hidden files).
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
        && key
            .split('/')
            .all(|segment| !segment.is_empty() && !segment.starts_with('.'))
}

/// The image type of `bytes` by its magic bytes: `image/jpeg` or `image/png`, else `None`
/// (002 §2.3.1 accepts face photos as JPEG or PNG; the declared content type is not trusted).
pub fn sniff_image(bytes: &[u8]) -> Option<&'static str> {
    if infer::image::is_jpeg(bytes) {
        Some("image/jpeg")
    } else if infer::image::is_png(bytes) {
        Some("image/png")
    } else {
        None
    }
}

/// The file extension for an image type [`sniff_image`] answers (`jpg`, `png`).
pub fn image_extension(content_type: &str) -> Option<&'static str> {
    match content_type {
        "image/jpeg" => Some("jpg"),
        "image/png" => Some("png"),
        _ => None,
    }
}

/// The content type of a file stored without one (a local file): by the key's extension, else
/// by the bytes, else `application/octet-stream`.
fn guess_content_type(key: &str, bytes: &[u8]) -> &'static str {
    match key
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .as_deref()
    {
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        _ => sniff_image(bytes).unwrap_or("application/octet-stream"),
    }
}

/// Private files and their signed URLs. Cheap to clone (the store is shared).
///
/// A URL is `{public_base}/files/{key}?expires={unix seconds}&signature={hex}`, the signature
/// being HMAC-SHA256 over `"{key}\n{expires}"` with a key derived from the secret given at
/// construction. Nothing else serves the files: local files stay in their directory, and S3
/// objects are written without any ACL (the bucket must be private).
#[derive(Clone)]
pub struct FileStore {
    store: Arc<dyn ObjectStore>,
    local: bool,
    public_base: String,
    key: hmac::Key,
    ttl_seconds: u64,
    max_bytes: usize,
    clock: Clock,
}

impl fmt::Debug for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStore")
            .field("store", &self.store.to_string())
            .field("public_base", &self.public_base)
            .field("ttl_seconds", &self.ttl_seconds)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

/// Timeouts and retries of S3 requests: an upload is on a user's request path.
fn s3_client_options() -> (ClientOptions, RetryConfig) {
    let options = ClientOptions::new()
        .with_timeout(Duration::from_secs(10))
        .with_connect_timeout(Duration::from_secs(5));
    let retry = RetryConfig {
        max_retries: 2,
        retry_timeout: Duration::from_secs(15),
        ..RetryConfig::default()
    };
    (options, retry)
}

fn store_error(error: object_store::Error) -> FileError {
    FileError::Store(ProviderError::Transport {
        provider: PROVIDER,
        detail: error.to_string(),
    })
}

impl FileStore {
    /// The store `config` describes (`files` of an API's section), its URLs signed with a key
    /// derived from `signing_key` (HMAC-SHA256(signing_key, `"mpapi file url key\0"`)), under
    /// `public_base_url` or `http://127.0.0.1:{port}`; `clock` decides expiry when serving.
    ///
    /// `local`: the directory is created if missing. `s3`: bucket, region, access key id and
    /// secret are required; an `http://` endpoint is allowed (MinIO, tests). Errors name the
    /// missing or unusable setting.
    pub fn from_config(
        config: &FilesConfig,
        signing_key: &[u8],
        port: u16,
        clock: Clock,
    ) -> anyhow::Result<FileStore> {
        anyhow::ensure!(
            signing_key.len() >= 32,
            "the file URL signing key must be ≥ 32 bytes"
        );
        anyhow::ensure!(
            config.url_ttl_seconds > 0,
            "files.url_ttl_seconds must be positive"
        );
        anyhow::ensure!(config.max_bytes > 0, "files.max_bytes must be positive");
        let (store, local): (Arc<dyn ObjectStore>, bool) = match config.provider {
            FilesProvider::Local => {
                let dir = &config.local_dir;
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("files.local_dir {}", dir.display()))?;
                let store = LocalFileSystem::new_with_prefix(dir)
                    .with_context(|| format!("files.local_dir {}", dir.display()))?;
                (Arc::new(store), true)
            }
            FilesProvider::S3 => {
                for (name, value) in [
                    ("bucket", &config.bucket),
                    ("region", &config.region),
                    ("access_key_id", &config.access_key_id),
                ] {
                    anyhow::ensure!(!value.trim().is_empty(), "files.{name} is not set");
                }
                let secret = config
                    .secret_access_key
                    .as_ref()
                    .map(|s| s.expose_secret())
                    .filter(|s| !s.is_empty())
                    .context("files.secret_access_key is not set")?;
                let (options, retry) = s3_client_options();
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(&config.bucket)
                    .with_region(&config.region)
                    .with_access_key_id(&config.access_key_id)
                    .with_secret_access_key(secret)
                    .with_virtual_hosted_style_request(config.virtual_hosted_style)
                    .with_client_options(
                        options.with_allow_http(config.endpoint.starts_with("http://")),
                    )
                    .with_retry(retry);
                if !config.endpoint.trim().is_empty() {
                    builder = builder.with_endpoint(config.endpoint.trim_end_matches('/'));
                }
                (Arc::new(builder.build().context("files (s3)")?), false)
            }
        };
        let base = config
            .public_base_url
            .clone()
            .unwrap_or_else(|| format!("http://127.0.0.1:{port}"));
        let mut derive = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, signing_key));
        derive.update(b"mpapi file url key\0");
        Ok(FileStore {
            store,
            local,
            public_base: base.trim_end_matches('/').to_owned(),
            key: hmac::Key::new(hmac::HMAC_SHA256, derive.sign().as_ref()),
            ttl_seconds: config.url_ttl_seconds,
            max_bytes: config.max_bytes,
            clock,
        })
    }

    /// The largest file [`FileStore::put`] accepts, bytes (`files.max_bytes`).
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    fn path(key: &str) -> Result<object_store::path::Path, FileError> {
        if !valid_key(key) {
            return Err(FileError::InvalidKey);
        }
        object_store::path::Path::parse(key).map_err(|_| FileError::InvalidKey)
    }

    /// Store `bytes` under `key` (replacing what was there) as `content_type`. An S3 object
    /// keeps its content type; a local file's is read back from the key's extension.
    pub async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> Result<(), FileError> {
        let path = FileStore::path(key)?;
        if bytes.len() > self.max_bytes {
            return Err(FileError::TooLarge {
                size: bytes.len(),
                max: self.max_bytes,
            });
        }
        let mut options = PutOptions::default();
        if !self.local {
            // (LocalFileSystem refuses attributes.)
            let value = content_type.to_owned();
            options.attributes = Attributes::from_iter([(Attribute::ContentType, value)]);
        }
        self.store
            .put_opts(&path, PutPayload::from(bytes), options)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// The file under `key` and its content type, `None` when there is none.
    pub async fn get(&self, key: &str) -> Result<Option<(Bytes, String)>, FileError> {
        let path = FileStore::path(key)?;
        let result = match self.store.get(&path).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(store_error(error)),
        };
        let stored = result
            .attributes
            .get(&Attribute::ContentType)
            .map(|v| v.to_string());
        let bytes = result.bytes().await.map_err(store_error)?;
        let content_type = stored.unwrap_or_else(|| guess_content_type(key, &bytes).to_owned());
        Ok(Some((bytes, content_type)))
    }

    /// Delete the file under `key`; deleting a file that does not exist is no error.
    pub async fn delete(&self, key: &str) -> Result<(), FileError> {
        let path = FileStore::path(key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(store_error(error)),
        }
    }

    fn signature(&self, key: &str, expires: i64) -> hmac::Tag {
        hmac::sign(&self.key, format!("{key}\n{expires}").as_bytes())
    }

    fn verify(&self, key: &str, expires: i64, signature_hex: &str) -> bool {
        let Ok(signature) = hex::decode(signature_hex) else {
            return false;
        };
        hmac::verify(
            &self.key,
            format!("{key}\n{expires}").as_bytes(),
            &signature,
        )
        .is_ok()
    }

    /// The URL that loads `key` until `url_ttl_seconds` after `now_ms` (ms since the epoch):
    /// `{public_base}/files/{key}?expires={unix s}&signature={64 hex}` (the key's characters
    /// need no escaping).
    pub fn signed_url(&self, key: &str, now_ms: i64) -> String {
        let expires = now_ms.div_euclid(1000) + self.ttl_seconds as i64;
        let signature = hex::encode(self.signature(key, expires).as_ref());
        format!(
            "{}/files/{key}?expires={expires}&signature={signature}",
            self.public_base
        )
    }

    /// The key of a URL [`FileStore::signed_url`] made — under this public base, validly signed,
    /// expired or not — else `None`. The API takes back a photo URL its user uploaded this way
    /// (002 §2.4.1 `photo`).
    pub fn key_of_url(&self, url: &str) -> Option<String> {
        let rest = url
            .strip_prefix(&self.public_base)?
            .strip_prefix("/files/")?;
        let (key, query) = rest.split_once('?')?;
        let query: HashMap<String, String> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let expires: i64 = query.get("expires")?.parse().ok()?;
        let signature = query.get("signature")?;
        (valid_key(key) && self.verify(key, expires, signature)).then(|| key.to_owned())
    }

    /// `GET /files/{*key}?expires=&signature=`: the file's bytes with its `Content-Type`,
    /// `Cache-Control: private, max-age={seconds left}` and `X-Content-Type-Options: nosniff`,
    /// only while the signature is valid and `expires` (unix s) is not past. Invalid key → 400,
    /// bad or missing signature, or expired → 403, no such file → 404, store failure → 502; all
    /// as `{"error": "…"}`.
    pub fn routes(&self) -> Router {
        Router::new()
            .route("/files/{*key}", get(serve_file))
            .with_state(self.clone())
    }
}

fn refusal(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

async fn serve_file(
    State(files): State<FileStore>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if !valid_key(&key) {
        return refusal(StatusCode::BAD_REQUEST, "invalid file key");
    }
    let expires = query.get("expires").and_then(|e| e.parse::<i64>().ok());
    let signature = query.get("signature");
    let (Some(expires), Some(signature)) = (expires, signature) else {
        return refusal(StatusCode::FORBIDDEN, "the link is not signed");
    };
    if !files.verify(&key, expires, signature) {
        return refusal(StatusCode::FORBIDDEN, "the link's signature is invalid");
    }
    let left = expires - files.clock.now().timestamp();
    if left < 0 {
        return refusal(StatusCode::FORBIDDEN, "the link has expired");
    }
    match files.get(&key).await {
        Ok(Some((bytes, content_type))) => (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, format!("private, max-age={left}")),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            ],
            bytes,
        )
            .into_response(),
        Ok(None) => refusal(StatusCode::NOT_FOUND, "no such file"),
        Err(error) => {
            tracing::warn!(%error, "serving a file failed");
            refusal(StatusCode::BAD_GATEWAY, "the file store failed")
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const JPEG: &[u8] = b"\xff\xd8\xff\xe0\0\x10JFIF\0";

    fn local(dir: &std::path::Path, clock: Clock) -> FileStore {
        let config = FilesConfig {
            local_dir: dir.join("files"),
            ..FilesConfig::default()
        };
        FileStore::from_config(&config, &[3; 32], 3002, clock).expect("a local store")
    }

    async fn fetch(router: &Router, uri: &str) -> (StatusCode, axum::http::HeaderMap, Bytes) {
        let request = Request::builder()
            .uri(uri)
            .body(Body::empty())
            .expect("request");
        let response = router.clone().oneshot(request).await.expect("infallible");
        let (parts, body) = response.into_parts();
        (
            parts.status,
            parts.headers,
            body.collect().await.expect("body").to_bytes(),
        )
    }

    #[test]
    fn images_are_sniffed_by_their_magic_bytes() {
        assert_eq!(sniff_image(PNG), Some("image/png"));
        assert_eq!(sniff_image(JPEG), Some("image/jpeg"));
        assert_eq!(sniff_image(b"GIF89a......"), None);
        assert_eq!(sniff_image(b"<svg xmlns="), None);
        assert_eq!(sniff_image(b""), None);
        assert_eq!(image_extension("image/png"), Some("png"));
        assert_eq!(image_extension("image/gif"), None);
    }

    #[test]
    fn keys_cannot_leave_the_store() {
        for good in [
            "face-photo/1/2/3/4/401/202611/21/abc.png",
            "a",
            "a.b/c_d-e.jpg",
        ] {
            assert!(valid_key(good), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a/./b",
            "a//b",
            "a/",
            ".env",
            "a\\b",
            "a b",
            "ä",
            "a?b",
        ] {
            assert!(!valid_key(bad), "{bad}");
        }
        assert!(!valid_key(&"a".repeat(MAX_KEY_LEN + 1)));
    }

    #[tokio::test]
    async fn files_round_trip_in_a_local_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = local(dir.path(), Clock::default());
        assert!(
            dir.path().join("files").is_dir(),
            "the directory is created"
        );
        assert_eq!(files.get("p/a.png").await.expect("read"), None);
        files
            .put("p/a.png", Bytes::from_static(PNG), "image/png")
            .await
            .expect("stored");
        let (bytes, content_type) = files.get("p/a.png").await.expect("read").expect("there");
        assert_eq!((bytes.as_ref(), content_type.as_str()), (PNG, "image/png"));
        files
            .put("p/b", Bytes::from_static(JPEG), "image/jpeg")
            .await
            .expect("stored");
        assert_eq!(
            files.get("p/b").await.expect("read").expect("there").1,
            "image/jpeg"
        );
        files.delete("p/a.png").await.expect("deleted");
        files
            .delete("p/a.png")
            .await
            .expect("deleting twice is fine");
        assert_eq!(files.get("p/a.png").await.expect("read"), None);
        assert!(matches!(
            files
                .put("../a.png", Bytes::from_static(PNG), "image/png")
                .await,
            Err(FileError::InvalidKey)
        ));
        assert!(matches!(
            files.get("/a.png").await,
            Err(FileError::InvalidKey)
        ));
        let big = Bytes::from(vec![0u8; files.max_bytes() + 1]);
        assert!(matches!(
            files.put("p/big.png", big, "image/png").await,
            Err(FileError::TooLarge { .. })
        ));
    }

    #[tokio::test]
    async fn signed_urls_load_until_they_expire() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = Clock::default();
        let files = local(dir.path(), clock.clone());
        files
            .put("face/1.png", Bytes::from_static(PNG), "image/png")
            .await
            .expect("stored");
        let url = files.signed_url("face/1.png", clock.now_ms());
        let expires = clock.now().timestamp() + 3600;
        assert!(
            url.starts_with(&format!(
                "http://127.0.0.1:3002/files/face/1.png?expires={expires}&signature="
            )),
            "{url}"
        );
        assert_eq!(files.key_of_url(&url).as_deref(), Some("face/1.png"));
        let uri = url.strip_prefix("http://127.0.0.1:3002").expect("our base");
        let router = files.routes();
        let (status, headers, body) = fetch(&router, uri).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body.as_ref(), PNG);
        assert_eq!(headers[header::CONTENT_TYPE], "image/png");
        let cache = headers[header::CACHE_CONTROL].to_str().expect("ascii");
        assert!(
            cache.starts_with("private, max-age=") && cache != "private, max-age=0",
            "{cache}"
        );

        let missing = files.signed_url("face/2.png", clock.now_ms());
        assert_eq!(
            fetch(
                &router,
                missing.strip_prefix("http://127.0.0.1:3002").unwrap()
            )
            .await
            .0,
            StatusCode::NOT_FOUND
        );

        clock.advance(Duration::from_secs(3601));
        let (status, _, body) = fetch(&router, uri).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(String::from_utf8_lossy(&body).contains("expired"));
        assert_eq!(
            files.key_of_url(&url).as_deref(),
            Some("face/1.png"),
            "expiry is ignored there"
        );
    }

    #[tokio::test]
    async fn forged_and_foreign_urls_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = local(dir.path(), Clock::default());
        files
            .put("face/1.png", Bytes::from_static(PNG), "image/png")
            .await
            .expect("stored");
        files
            .put("face/2.png", Bytes::from_static(PNG), "image/png")
            .await
            .expect("stored");
        let url = files.signed_url("face/1.png", Clock::default().now_ms());
        let uri = url
            .strip_prefix("http://127.0.0.1:3002")
            .unwrap()
            .to_owned();
        let (_, query) = uri.split_once('?').unwrap();
        let other_key = format!("/files/face/2.png?{query}");
        let later = uri.replace("expires=", "expires=9");
        let no_signature = uri.split("&signature").next().unwrap().to_owned();
        let router = files.routes();
        for forged in [
            other_key.as_str(),
            later.as_str(),
            no_signature.as_str(),
            "/files/face/1.png",
        ] {
            let (status, _, body) = fetch(&router, forged).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{forged}");
            let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
            assert!(body["error"].is_string());
        }
        // Another server's key signs differently; another base is not ours.
        let other = FileStore::from_config(
            &FilesConfig {
                local_dir: dir.path().join("files"),
                ..FilesConfig::default()
            },
            &[4; 32],
            3002,
            Clock::default(),
        )
        .unwrap();
        assert_eq!(other.key_of_url(&url), None);
        assert_eq!(fetch(&other.routes(), &uri).await.0, StatusCode::FORBIDDEN);
        assert_eq!(
            files.key_of_url(&url.replace("127.0.0.1:3002", "evil.example")),
            None
        );
        assert_eq!(
            files.key_of_url(&format!("http://127.0.0.1:3002/files/face/2.png?{query}")),
            None
        );
        assert_eq!(
            files.key_of_url("http://127.0.0.1:3002/files/face/1.png"),
            None
        );
    }

    #[tokio::test]
    async fn path_traversal_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("secret.txt"), b"secret").unwrap();
        let files = local(dir.path(), Clock::default());
        let router = files.routes();
        let now = Clock::default().now_ms();
        for key in [
            "../secret.txt",
            "a/../../secret.txt",
            "%2e%2e/secret.txt",
            "a/%2E%2E/%2e%2e/secret.txt",
            ".hidden",
        ] {
            // Even a URL signed for the traversing key (as a buggy caller might make) is refused.
            let url = files.signed_url(key, now);
            let (status, _, body) =
                fetch(&router, url.strip_prefix("http://127.0.0.1:3002").unwrap()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{key}");
            assert_ne!(body.as_ref(), b"secret", "{key}");
            assert_eq!(files.key_of_url(&url), None, "{key}");
        }
        // A doubled slash: the route's key starts with `/`.
        let (status, _, _) = fetch(&router, "/files//etc/passwd?expires=1&signature=00").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}
