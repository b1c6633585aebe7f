//! Where clients reach an API, for the URLs it answers (community's Laravel page links, 002
//! §4.1.1; charging's pay page, 003 §6.1): the configured `apis.<id>.public_url`, else the
//! request's own `Host`.

use anyhow::{Context as _, Result};
use axum::http::HeaderMap;

/// An API's public address: `https://api.example.com` (`apis.<id>.public_url`), or, unset,
/// `http://` and each request's `Host` header — right with no proxy in front, wrong behind one
/// that ends TLS (the links would say `http://`), so production requires the setting
/// ([`crate::config::Config::production_problems`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublicUrl {
    /// The configured address, without a trailing `/`.
    configured: Option<String>,
}

impl PublicUrl {
    /// `configured` (`setting` names it in the error) must be an absolute `http://` or
    /// `https://` URL with a host and no query or fragment; a path is kept (an API served under
    /// `https://example.com/charging`). Errors: anything else.
    pub fn new(setting: &str, configured: Option<&str>) -> Result<PublicUrl> {
        let Some(text) = configured.map(str::trim).filter(|t| !t.is_empty()) else {
            return Ok(PublicUrl::default());
        };
        let url = reqwest::Url::parse(text).with_context(|| format!("{setting}: {text:?} is not a URL"))?;
        anyhow::ensure!(
            matches!(url.scheme(), "http" | "https") && url.host_str().is_some(),
            "{setting}: {text:?} is not an http(s) URL with a host"
        );
        anyhow::ensure!(url.query().is_none() && url.fragment().is_none(), "{setting}: {text:?} has a query or fragment");
        anyhow::ensure!(url.username().is_empty() && url.password().is_none(), "{setting}: {text:?} names a user");
        Ok(PublicUrl { configured: Some(url.as_str().trim_end_matches('/').to_owned()) })
    }

    /// The configured address, without a trailing `/` (`None`: unset).
    pub fn configured(&self) -> Option<&str> {
        self.configured.as_deref()
    }

    /// Whether the configured address is `https://` (false when none is).
    pub fn is_https(&self) -> bool {
        self.configured.as_deref().is_some_and(|url| url.starts_with("https://"))
    }

    /// The base URLs start with, no trailing `/`: the configured address, else `http://` and the
    /// `Host` of `headers` when it is a plain host name (letters, digits, `-_.:[]`: a name or
    /// address and a port, nothing that could end the URL's authority), else
    /// `http://localhost`.
    pub fn base(&self, headers: &HeaderMap) -> String {
        if let Some(configured) = &self.configured {
            return configured.clone();
        }
        let host = headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:[]".contains(&b)))
            .unwrap_or("localhost");
        format!("http://{host}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(axum::http::header::HOST, value.parse().unwrap());
        headers
    }

    #[test]
    fn the_configured_address_wins_over_the_host() {
        let url = PublicUrl::new("apis.charging.public_url", Some("https://ev.example.com/")).unwrap();
        assert_eq!(url.base(&host("127.0.0.1:8083")), "https://ev.example.com");
        let under = PublicUrl::new("x", Some(" https://example.com/charging/ ")).unwrap();
        assert_eq!(under.base(&HeaderMap::new()), "https://example.com/charging");
        assert!(url.is_https() && PublicUrl::new("x", Some("HTTPS://EV.example.com")).unwrap().is_https());
        assert!(!PublicUrl::new("x", Some("http://ev.example.com")).unwrap().is_https() && !PublicUrl::default().is_https());
    }

    #[test]
    fn unset_it_is_the_requests_plain_host() {
        let url = PublicUrl::new("x", None).unwrap();
        assert_eq!(url, PublicUrl::new("x", Some("  ")).unwrap());
        assert_eq!(url.base(&host("127.0.0.1:8083")), "http://127.0.0.1:8083");
        assert_eq!(url.base(&host("[::1]:80")), "http://[::1]:80");
        assert_eq!(url.base(&host("charging_api:8083")), "http://charging_api:8083");
        assert_eq!(url.base(&host("evil.example/phish?x=")), "http://localhost");
        assert_eq!(url.base(&host("a@b")), "http://localhost");
        assert_eq!(url.base(&HeaderMap::new()), "http://localhost");
    }

    #[test]
    fn only_an_http_url_with_a_host_is_taken() {
        for bad in ["example.com", "ftp://example.com", "https://example.com/?a=1", "https://example.com/#x", "https://u:p@example.com", "mailto:a@b.c"] {
            let error = PublicUrl::new("apis.community.public_url", Some(bad)).unwrap_err().to_string();
            assert!(error.starts_with("apis.community.public_url: "), "{bad}: {error}");
        }
    }
}
