//! 小程序码 for o2o's H5 bridge page (004 §订单模块 小程序间跳转h5; domain.md §1.6–1.7): a locally drawn QR PNG (sandbox), or WeChat's `getwxacodeunlimit` with a cached `stable_token`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::ProviderError;
use crate::config::{ProviderKind, WechatLoginConfig};

const SANDBOX: &str = "sandbox-wxacode";
const WXACODE: &str = "wxacode";
const STABLE_TOKEN: &str = "wechat-stable-token";

/// A 小程序码 to make: `getwxacodeunlimit`'s body (domain.md §1.7). The mini-program it opens is the
/// provider's (each o2o operator is its own mini-program, 004 §订单模块 小程序间跳转h5: the H5 page
/// shows the **target** operator's code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WxaCodeRequest {
    /// What the page receives as `query.scene` (URI-encoded; the page decodes it with
    /// `decodeURIComponent`): 1–32 characters of `[0-9A-Za-z!#$&'()*+,/:;=?@-._~]`. o2o puts a
    /// short random scene id there, redeemed by `loginWithSceneId`.
    pub scene: String,
    /// The page to open, e.g. `pages/severs/index/index` (004's default): no leading `/`, no
    /// parameters (they go in `scene`); empty: the mini-program's home page. We allow at most
    /// 128 characters of `[0-9A-Za-z_-./]`.
    pub page: String,
    /// `true`: WeChat refuses a page the released version does not have (`41030`); `false`
    /// lets a code point at an unreleased page (needed for `trial` and `develop`).
    pub check_path: bool,
    /// Which version the code opens: `release`, `trial` or `develop`.
    pub env_version: String,
    /// The code's width in pixels, 280–1280 (WeChat's default is 430).
    pub width: u32,
}

/// Why a [`WxaCodeRequest`] cannot be sent: our own check, made before anything reaches WeChat.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidWxaCode {
    /// The scene is empty, longer than 32 characters or has a character WeChat does not allow.
    #[error("scene must be 1-32 characters of [0-9A-Za-z!#$&'()*+,/:;=?@-._~]")]
    Scene,
    /// The page starts with `/`, carries parameters, is too long, has an odd character or an
    /// empty, `.` or `..` segment.
    #[error("page must be a mini-program path of at most 128 characters of [0-9A-Za-z_-./], without a leading '/' or an empty, '.' or '..' segment")]
    Page,
    /// `env_version` is not `release`, `trial` or `develop`.
    #[error("env_version must be release, trial or develop")]
    EnvVersion,
    /// `width` is outside 280–1280 px.
    #[error("width must be 280-1280 px")]
    Width,
}

/// The characters WeChat allows in a scene besides ASCII letters and digits (domain.md §1.7).
const SCENE_PUNCTUATION: &[u8] = b"!#$&'()*+,/:;=?@-._~";
/// Our limit on a page path (WeChat states none; mini-program paths are short).
const PAGE_MAX: usize = 128;

impl WxaCodeRequest {
    /// The request with WeChat's defaults: the release version, `check_path` on, 430 px.
    pub fn new(scene: impl Into<String>, page: impl Into<String>) -> WxaCodeRequest {
        WxaCodeRequest { scene: scene.into(), page: page.into(), check_path: true, env_version: "release".into(), width: 430 }
    }

    /// Check the request as WeChat would (scene and page rules of domain.md §1.7, width
    /// 280–1280). Callers validate first and answer their own client error; a provider given an
    /// invalid request refuses it (see [`MiniProgramCode::unlimited`]).
    pub fn validate(&self) -> Result<(), InvalidWxaCode> {
        let scene = self.scene.as_bytes();
        if scene.is_empty() || scene.len() > 32 || !scene.iter().all(|c| c.is_ascii_alphanumeric() || SCENE_PUNCTUATION.contains(c)) {
            return Err(InvalidWxaCode::Scene);
        }
        let page = self.page.as_bytes();
        if page.len() > PAGE_MAX
            || page.first() == Some(&b'/')
            || !page.iter().all(|c| c.is_ascii_alphanumeric() || b"_-./".contains(c))
            // A path of pages, not of directories: `pages/../x`, `pages//x` and `x/` name none.
            || (!page.is_empty() && self.page.split('/').any(|segment| segment.is_empty() || segment.bytes().all(|c| c == b'.')))
        {
            return Err(InvalidWxaCode::Page);
        }
        if !matches!(self.env_version.as_str(), "release" | "trial" | "develop") {
            return Err(InvalidWxaCode::EnvVersion);
        }
        if !(280..=1280).contains(&self.width) {
            return Err(InvalidWxaCode::Width);
        }
        Ok(())
    }

    fn checked(&self, provider: &'static str) -> Result<(), ProviderError> {
        self.validate().map_err(|e| ProviderError::Config { provider, detail: format!("invalid request: {e}") })
    }
}

/// A 小程序码 image as WeChat (or the sandbox) drew it.
#[derive(Clone, PartialEq, Eq)]
pub struct WxaCodeImage {
    /// `image/png` or `image/jpeg` (WeChat answers either; the sandbox always PNG).
    pub content_type: &'static str,
    /// The image file's bytes, to serve as they are or inline as a `data:` URL.
    pub bytes: Vec<u8>,
}

impl fmt::Debug for WxaCodeImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WxaCodeImage").field("content_type", &self.content_type).field("bytes", &self.bytes.len()).finish()
    }
}

/// Makes 小程序码 of one mini-program (004 §订单模块 小程序间跳转h5: the H5 bridge page shows the
/// target operator's code; the user scans it and that mini-program opens `page` with `scene`).
#[async_trait]
pub trait MiniProgramCode: Send + Sync + 'static {
    /// A code for `request` (`getwxacodeunlimit`, domain.md §1.7: unlimited in number, the scene
    /// at most 32 characters). The image is a square of about `request.width` pixels (280–1280)
    /// that opens `request.page` of `request.env_version` with `request.scene`.
    ///
    /// Errors: a request failing [`WxaCodeRequest::validate`] is [`ProviderError::Config`]
    /// (detail `invalid request: …`; nothing is sent); WeChat's own refusals keep its errcode in
    /// [`ProviderError::Vendor`] (`41030` page not found, `45009` over 5000 calls a minute,
    /// `40169` bad scene, `40125` bad AppSecret from `stable_token`, `40001` when a fresh token
    /// was refused too); an unreachable, slow or unreadable WeChat is
    /// [`ProviderError::Transport`].
    async fn unlimited(&self, request: &WxaCodeRequest) -> Result<WxaCodeImage, ProviderError>;
}

/// The provider for mini-program `appid` chosen by `config` (`wechat_login`, which holds that
/// mini-program's AppSecret): [`SandboxWxaCode`] for `sandbox`, [`WxaCodeHttp`] for `real`.
pub fn from_config(appid: &str, config: &WechatLoginConfig) -> anyhow::Result<Arc<dyn MiniProgramCode>> {
    Ok(match config.provider {
        ProviderKind::Sandbox => Arc::new(SandboxWxaCode::new(appid)),
        ProviderKind::Real => Arc::new(WxaCodeHttp::new(appid, config)?),
    })
}

// ---------------------------------------------------------------- sandbox

/// The sandbox 小程序码: a real QR code (error correction M, a quiet zone of at least 4 modules,
/// black on white, 8-bit greyscale PNG of exactly `width` × `width` pixels) whose text is
/// [`SandboxWxaCode::text_for`]: `mpapi-sandbox://{appid}/{page}?scene={scene, URI-encoded}`.
/// Everything after `?` is what WeChat DevTools takes as 启动参数 in a 编译模式 with 进入场景
/// 1047 (扫描小程序码) and 启动页面 `{page}`, so a developer can start the page as a scan would.
/// The same request always gives the same bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxWxaCode {
    /// The mini-program the code stands for (only written into the text).
    pub appid: String,
}

impl SandboxWxaCode {
    /// The sandbox code of mini-program `appid`.
    pub fn new(appid: impl Into<String>) -> SandboxWxaCode {
        SandboxWxaCode { appid: appid.into() }
    }

    /// The text the sandbox QR code carries for `request`:
    /// `mpapi-sandbox://{appid}/{page}?scene={scene}`, the scene URI-encoded (form encoding, so
    /// `decodeURIComponent` gives it back, as the page does with WeChat's `query.scene`).
    pub fn text_for(&self, request: &WxaCodeRequest) -> String {
        let scene: String = form_urlencoded::byte_serialize(request.scene.as_bytes()).collect();
        format!("mpapi-sandbox://{}/{}?scene={scene}", self.appid, request.page)
    }
}

/// `text` as a QR code in an 8-bit greyscale PNG of `width` × `width` pixels: the largest whole
/// number of pixels per module that leaves a 4-module quiet zone, the code centred.
fn qr_png(text: &str, width: u32) -> Result<Vec<u8>, ProviderError> {
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| ProviderError::Config { provider: SANDBOX, detail: format!("QR code: {e}") })?;
    let modules = code.width();
    let colors = code.to_colors();
    let size = width as usize;
    let scale = (size / (modules + 8)).max(1);
    let size = size.max((modules + 8) * scale);
    let offset = (size - modules * scale) / 2;
    let mut pixels = vec![255u8; size * size];
    for (i, color) in colors.iter().enumerate() {
        if *color != qrcode::Color::Dark {
            continue;
        }
        let (mx, my) = (i % modules, i / modules);
        for y in offset + my * scale..offset + (my + 1) * scale {
            pixels[y * size + offset + mx * scale..y * size + offset + (mx + 1) * scale].fill(0);
        }
    }
    let png_error = |e: png::EncodingError| ProviderError::Config { provider: SANDBOX, detail: format!("PNG: {e}") };
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, size as u32, size as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(png_error)?;
    writer.write_image_data(&pixels).map_err(png_error)?;
    writer.finish().map_err(png_error)?;
    Ok(out)
}

#[async_trait]
impl MiniProgramCode for SandboxWxaCode {
    async fn unlimited(&self, request: &WxaCodeRequest) -> Result<WxaCodeImage, ProviderError> {
        request.checked(SANDBOX)?;
        let bytes = qr_png(&self.text_for(request), request.width)?;
        Ok(WxaCodeImage { content_type: "image/png", bytes })
    }
}

// ---------------------------------------------------------------- real

/// The real 小程序码 of one mini-program: an access token from `POST {base_url}/cgi-bin/stable_token`
/// (domain.md §1.6), kept until 5 minutes before it expires, then
/// `POST {base_url}/wxa/getwxacodeunlimit?access_token=…` (domain.md §1.7). A `40001`/`42001`
/// (token invalid or expired) drops the token, fetches one again and retries the call once.
///
/// The cache lives in this process. That is enough with several instances because
/// `stable_token` in normal mode (`force_refresh: false`) hands every caller the same token until
/// WeChat renews it, unlike the old `/cgi-bin/token`, where each call invalidated the previous
/// token. We never ask for `force_refresh: true` (20 a day): a token refused twice is an error.
/// Neither the secret nor the token appears in `Debug`, logs or errors.
pub struct WxaCodeHttp {
    base_url: String,
    appid: String,
    secret: SecretString,
    http: reqwest::Client,
    /// The token and when to stop using it (5 minutes before WeChat's expiry). Held across the
    /// fetch, so concurrent calls fetch once.
    token: Mutex<Option<CachedToken>>,
}

struct CachedToken {
    token: SecretString,
    use_until: Instant,
}

impl fmt::Debug for WxaCodeHttp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WxaCodeHttp").field("base_url", &self.base_url).field("appid", &self.appid).finish_non_exhaustive()
    }
}

/// `stable_token`'s answer: a token, or an errcode.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    expires_in: Option<u64>,
    errcode: Option<i64>,
    errmsg: Option<String>,
}

/// `getwxacodeunlimit`'s failure answer.
#[derive(Deserialize)]
struct ErrorAnswer {
    errcode: Option<i64>,
    errmsg: Option<String>,
}

#[derive(Serialize)]
struct UnlimitedBody<'a> {
    scene: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    page: &'a str,
    check_path: bool,
    env_version: &'a str,
    width: u32,
}

/// What one `getwxacodeunlimit` call gave.
enum Attempt {
    Image(WxaCodeImage),
    /// `40001`/`42001`: the token is no good.
    StaleToken(ProviderError),
}

fn transport(provider: &'static str, detail: impl Into<String>) -> ProviderError {
    ProviderError::Transport { provider, detail: detail.into() }
}

/// The image type by its magic bytes.
fn image_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(b"\xff\xd8\xff") {
        Some("image/jpeg")
    } else {
        None
    }
}

impl WxaCodeHttp {
    /// Per-request timeout.
    pub const TIMEOUT: Duration = Duration::from_secs(10);
    /// How long before WeChat's expiry a token stops being used (domain.md §1.6: `stable_token`
    /// renews 5 minutes before).
    pub const EARLY_REFRESH: Duration = Duration::from_secs(300);

    /// The real provider for mini-program `appid`, with `config.base_url` and `config.secret`
    /// (that mini-program's AppSecret); a missing appid or secret is an error naming the setting.
    pub fn new(appid: &str, config: &WechatLoginConfig) -> anyhow::Result<WxaCodeHttp> {
        if appid.trim().is_empty() {
            anyhow::bail!("{WXACODE}: the mini-program's appid is not set");
        }
        let secret = config
            .secret
            .clone()
            .filter(|s| !s.expose_secret().is_empty())
            .ok_or_else(|| anyhow::anyhow!("{WXACODE}: wechat_login.secret is not set"))?;
        Ok(WxaCodeHttp {
            base_url: config.base_url.trim_end_matches('/').to_string(),
            appid: appid.to_owned(),
            secret,
            http: super::http_client(WXACODE, WxaCodeHttp::TIMEOUT)?,
            token: Mutex::new(None),
        })
    }

    /// The same provider with another per-request timeout (tests).
    pub fn with_timeout(mut self, timeout: Duration) -> anyhow::Result<WxaCodeHttp> {
        self.http = super::http_client(WXACODE, timeout)?;
        Ok(self)
    }

    /// `text` with the secret and `token` blanked out (WeChat's errmsg is echoed into errors).
    fn redact(&self, text: &str, token: Option<&SecretString>) -> String {
        let mut text = text.replace(self.secret.expose_secret(), "***");
        if let Some(token) = token.map(|t| t.expose_secret()).filter(|t| !t.is_empty()) {
            text = text.replace(token, "***");
        }
        text
    }

    /// The cached token, or a new one from `stable_token`. The lock is held while fetching.
    async fn access_token(&self) -> Result<SecretString, ProviderError> {
        let mut cached = self.token.lock().await;
        if let Some(c) = cached.as_ref().filter(|c| Instant::now() < c.use_until) {
            return Ok(c.token.clone());
        }
        let (token, expires_in) = self.fetch_token().await?;
        let keep = Duration::from_secs(expires_in).saturating_sub(WxaCodeHttp::EARLY_REFRESH);
        *cached = (!keep.is_zero()).then(|| CachedToken { token: token.clone(), use_until: Instant::now() + keep });
        Ok(token)
    }

    /// Forget `token` if it is still the cached one (a concurrent call may have replaced it).
    async fn drop_token(&self, token: &SecretString) {
        let mut cached = self.token.lock().await;
        if cached.as_ref().is_some_and(|c| c.token.expose_secret() == token.expose_secret()) {
            *cached = None;
        }
    }

    /// `POST /cgi-bin/stable_token` (normal mode): the token and its `expires_in`, seconds.
    async fn fetch_token(&self) -> Result<(SecretString, u64), ProviderError> {
        let request = self.http.post(format!("{}/cgi-bin/stable_token", self.base_url)).json(&serde_json::json!({
            "grant_type": "client_credential",
            "appid": self.appid,
            "secret": self.secret.expose_secret(),
            "force_refresh": false,
        }));
        let response = super::send(STABLE_TOKEN, request)
            .await
            .map_err(|e| transport(STABLE_TOKEN, e.without_url().to_string()))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| transport(STABLE_TOKEN, e.without_url().to_string()))?;
        if !status.is_success() {
            return Err(transport(STABLE_TOKEN, format!("HTTP {status}")));
        }
        let answer: TokenAnswer =
            serde_json::from_str(&text).map_err(|e| transport(STABLE_TOKEN, format!("unreadable answer: {e}")))?;
        match answer.errcode {
            Some(errcode) if errcode != 0 => Err(ProviderError::Vendor {
                provider: STABLE_TOKEN,
                code: errcode.to_string(),
                message: self.redact(&answer.errmsg.unwrap_or_default(), None),
            }),
            _ => match (answer.access_token.filter(|t| !t.is_empty()), answer.expires_in) {
                (Some(token), Some(expires_in)) => Ok((SecretString::from(token), expires_in)),
                _ => Err(transport(STABLE_TOKEN, "answer without access_token or expires_in")),
            },
        }
    }

    /// One `getwxacodeunlimit` call with `token`.
    async fn attempt(&self, token: &SecretString, request: &WxaCodeRequest) -> Result<Attempt, ProviderError> {
        let body = UnlimitedBody {
            scene: &request.scene,
            page: &request.page,
            check_path: request.check_path,
            env_version: &request.env_version,
            width: request.width,
        };
        let call = self
            .http
            .post(format!("{}/wxa/getwxacodeunlimit", self.base_url))
            .query(&[("access_token", token.expose_secret())])
            .json(&body);
        let response = super::send(WXACODE, call)
            .await
            // without_url: the query carries the access token.
            .map_err(|e| transport(WXACODE, e.without_url().to_string()))?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let bytes = response.bytes().await.map_err(|e| transport(WXACODE, e.without_url().to_string()))?;
        if !status.is_success() {
            return Err(transport(WXACODE, format!("HTTP {status}")));
        }
        let json = content_type.contains("json") || bytes.trim_ascii_start().starts_with(b"{");
        if !json {
            return match image_type(&bytes) {
                Some(content_type) => Ok(Attempt::Image(WxaCodeImage { content_type, bytes: bytes.to_vec() })),
                None => Err(transport(
                    WXACODE,
                    format!("answer is neither an image nor JSON ({} bytes, content type {content_type:?})", bytes.len()),
                )),
            };
        }
        let answer: ErrorAnswer =
            serde_json::from_slice(&bytes).map_err(|e| transport(WXACODE, format!("unreadable answer: {e}")))?;
        let errcode = answer.errcode.unwrap_or_default();
        if errcode == 0 {
            return Err(transport(WXACODE, "JSON answer without an errcode"));
        }
        let error = ProviderError::Vendor {
            provider: WXACODE,
            code: errcode.to_string(),
            message: self.redact(&answer.errmsg.unwrap_or_default(), Some(token)),
        };
        Ok(match errcode {
            40001 | 42001 => Attempt::StaleToken(error),
            _ => return Err(error),
        })
    }
}

#[async_trait]
impl MiniProgramCode for WxaCodeHttp {
    async fn unlimited(&self, request: &WxaCodeRequest) -> Result<WxaCodeImage, ProviderError> {
        request.checked(WXACODE)?;
        let token = self.access_token().await?;
        match self.attempt(&token, request).await? {
            Attempt::Image(image) => return Ok(image),
            Attempt::StaleToken(error) => {
                tracing::warn!(appid = %self.appid, %error, "access token refused; fetching it again");
                self.drop_token(&token).await;
            }
        }
        let token = self.access_token().await?;
        match self.attempt(&token, request).await? {
            Attempt::Image(image) => Ok(image),
            Attempt::StaleToken(error) => {
                // A token refused twice is not ours to fix (force_refresh is limited to 20 a day).
                self.drop_token(&token).await;
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> WxaCodeRequest {
        WxaCodeRequest::new("s=Ab3_x.9~", "pages/severs/index/index")
    }

    /// The PNG's width, height and greyscale pixels.
    fn decode_png(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().expect("PNG header");
        let mut pixels = vec![0; reader.output_buffer_size().expect("size")];
        let info = reader.next_frame(&mut pixels).expect("PNG data");
        assert_eq!(info.color_type, png::ColorType::Grayscale);
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        pixels.truncate(info.buffer_size());
        (info.width, info.height, pixels)
    }

    #[tokio::test]
    async fn sandbox_draws_a_readable_deterministic_png() {
        let sandbox = SandboxWxaCode::new("wx0123456789abcdef");
        for width in [280, 430, 1280] {
            let request = WxaCodeRequest { width, ..request() };
            let image = sandbox.unlimited(&request).await.expect("drawn");
            assert_eq!(image.content_type, "image/png");
            assert_eq!(image_type(&image.bytes), Some("image/png"));
            let (w, h, pixels) = decode_png(&image.bytes);
            assert_eq!((w, h), (width, width));
            assert!(pixels.iter().all(|&p| p == 0 || p == 255));
            // Read the QR code back.
            let mut prepared =
                rqrr::PreparedImage::prepare_from_greyscale(w as usize, h as usize, |x, y| pixels[y * w as usize + x]);
            let grids = prepared.detect_grids();
            assert_eq!(grids.len(), 1, "width {width}");
            let (_, text) = grids[0].decode().expect("decodes");
            assert_eq!(text, "mpapi-sandbox://wx0123456789abcdef/pages/severs/index/index?scene=s%3DAb3_x.9%7E");
            assert_eq!(text, sandbox.text_for(&request));
            let again = sandbox.unlimited(&request).await.expect("drawn");
            assert_eq!(again, image);
        }
        let other = sandbox.unlimited(&WxaCodeRequest::new("other", "pages/severs/index/index")).await.expect("drawn");
        assert_ne!(other.bytes, sandbox.unlimited(&request()).await.expect("drawn").bytes);
    }

    #[test]
    fn the_sandbox_text_gives_the_scene_back() {
        let request = WxaCodeRequest::new("a&b=c?d/e#f!'()*+,:;@$~", "");
        let text = SandboxWxaCode::new("wx1").text_for(&request);
        let query = text.strip_prefix("mpapi-sandbox://wx1/?").expect("prefix");
        let scene: Vec<_> = form_urlencoded::parse(query.as_bytes()).collect();
        assert_eq!(scene, [("scene".into(), request.scene.as_str().into())]);
    }

    #[tokio::test]
    async fn requests_are_checked_as_wechat_checks_them() {
        let ok = [
            request(),
            WxaCodeRequest::new("1", ""),
            WxaCodeRequest::new("x".repeat(32), "pages/a-b/c_d.e"),
            WxaCodeRequest::new("!#$&'()*+,/:;=?@-._~", "a".repeat(128)),
            WxaCodeRequest { env_version: "trial".into(), width: 280, ..request() },
            WxaCodeRequest { env_version: "develop".into(), width: 1280, check_path: false, ..request() },
        ];
        for r in &ok {
            assert_eq!(r.validate(), Ok(()), "{r:?}");
        }
        let bad = [
            (WxaCodeRequest::new("", "p"), InvalidWxaCode::Scene),
            (WxaCodeRequest::new("x".repeat(33), "p"), InvalidWxaCode::Scene),
            (WxaCodeRequest::new("a b", "p"), InvalidWxaCode::Scene),
            (WxaCodeRequest::new("a%20", "p"), InvalidWxaCode::Scene),
            (WxaCodeRequest::new("场景", "p"), InvalidWxaCode::Scene),
            (WxaCodeRequest::new("a\"", "p"), InvalidWxaCode::Scene),
            (WxaCodeRequest::new("s", "/pages/index/index"), InvalidWxaCode::Page),
            (WxaCodeRequest::new("s", "pages/index/index?x=1"), InvalidWxaCode::Page),
            (WxaCodeRequest::new("s", "a".repeat(129)), InvalidWxaCode::Page),
            (WxaCodeRequest::new("s", "pages/首页"), InvalidWxaCode::Page),
            (WxaCodeRequest::new("s", "../../x"), InvalidWxaCode::Page),
            (WxaCodeRequest::new("s", "pages/./index"), InvalidWxaCode::Page),
            (WxaCodeRequest::new("s", "pages//index"), InvalidWxaCode::Page),
            (WxaCodeRequest::new("s", "pages/index/"), InvalidWxaCode::Page),
            (WxaCodeRequest { env_version: "prod".into(), ..request() }, InvalidWxaCode::EnvVersion),
            (WxaCodeRequest { width: 279, ..request() }, InvalidWxaCode::Width),
            (WxaCodeRequest { width: 1281, ..request() }, InvalidWxaCode::Width),
        ];
        for (r, why) in &bad {
            assert_eq!(r.validate().as_ref(), Err(why), "{r:?}");
            match SandboxWxaCode::new("wx1").unlimited(r).await {
                Err(ProviderError::Config { detail, .. }) => assert!(detail.starts_with("invalid request: "), "{detail}"),
                other => panic!("expected a refusal, got {other:?}"),
            }
        }
    }

    #[test]
    fn the_real_provider_needs_appid_and_secret_and_hides_it() {
        let ok = WechatLoginConfig { provider: ProviderKind::Real, secret: Some("app-secret-xyz".into()), ..Default::default() };
        let provider = WxaCodeHttp::new("wx1", &ok).expect("configured");
        assert!(!format!("{provider:?}").contains("app-secret-xyz"));
        let no_secret = WechatLoginConfig { secret: None, ..ok.clone() };
        let error = WxaCodeHttp::new("wx1", &no_secret).expect_err("no secret");
        assert!(error.to_string().contains("wechat_login.secret"), "{error}");
        let empty = WechatLoginConfig { secret: Some("".into()), ..ok.clone() };
        assert!(WxaCodeHttp::new("wx1", &empty).is_err());
        assert!(WxaCodeHttp::new(" ", &ok).is_err());
        assert!(from_config("wx1", &ok).is_ok());
        assert!(from_config("wx1", &WechatLoginConfig::default()).is_ok());
        assert!(from_config("wx1", &no_secret).is_err());
    }
}
