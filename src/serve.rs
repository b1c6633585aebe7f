//! `mpapi serve`: the real server. Connects and migrates the database, loads the keys, picks the
//! providers (sandbox unless configured), seeds a fresh database, and builds each implemented
//! API's router: the generated router over the real implementation, the per-IP limit, the
//! `/_sandbox/*` routes while sandbox providers are active, and the documentation routes.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use axum::Router;
use secrecy::ExposeSecret;

use crate::apis::Api;
use crate::auth::Tokens;
use crate::clock::Clock;
use crate::config::{Config, ProviderKind};
use crate::heating::service::{ACCESS_TTL, HeatingService};
use crate::heating::{self, Heating};
use crate::pii::Vault;
use crate::providers::sms::{AliyunSms, SandboxSms};
use crate::providers::wechat_login::{Code2Session, SandboxLogin};
use crate::providers::wechat_pay::WechatPay;
use crate::providers::wechat_pay::sandbox::SandboxPay;
use crate::providers::wechat_pay::v3::WechatPayV3;
use crate::providers::{Providers, SmsProvider, WechatLogin};
use crate::ratelimit::{self, IpLimit};
use crate::sandbox::Sandbox;
use crate::storage::Db;

/// The APIs with a real implementation so far; `serve` starts only these.
pub const IMPLEMENTED: &[&str] = &["heating"];

/// Everything the real APIs share: storage, keys, providers, clock.
#[derive(Clone)]
pub struct Server {
    /// The configuration it was built from.
    pub config: Config,
    /// The database (migrated).
    pub db: Db,
    /// Personal-data keys.
    pub vault: Arc<Vault>,
    /// Access tokens.
    pub tokens: Arc<Tokens>,
    /// SMS, WeChat login, WeChat Pay (and the sandbox when active).
    pub providers: Providers,
    /// The clock (tests move it).
    pub clock: Clock,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("db", &self.db.backend()).finish_non_exhaustive()
    }
}

/// A configured secret, else one generated on first start and kept in the database.
async fn secret(db: &Db, configured: Option<&secrecy::SecretString>, name: &str) -> Result<Vec<u8>> {
    let hex_value = match configured {
        Some(value) => value.expose_secret().to_owned(),
        None => {
            let value = db.secret(name, || crate::random::hex(64)).await?;
            tracing::warn!(secret = name, "not configured: using a key generated and kept in the database (development only)");
            value
        }
    };
    hex::decode(hex_value.trim()).with_context(|| format!("secret {name} must be hex"))
}

impl Server {
    /// Connect, migrate, load keys, build providers.
    pub async fn new(config: Config) -> Result<Server> {
        let db = Db::connect(&config.database_url)
            .await
            .with_context(|| format!("opening the database ({})", redact_url(&config.database_url)))?;
        let jwt = secret(&db, config.secrets.jwt.as_ref(), "jwt").await?;
        let pii_key = secret(&db, config.secrets.pii_key.as_ref(), "pii_key").await?;
        let pepper = secret(&db, config.secrets.pepper.as_ref(), "pepper").await?;
        let vault = Arc::new(Vault::new(&pii_key, &pepper).context("secrets.pii_key / secrets.pepper")?);
        let tokens = Arc::new(Tokens::new(&jwt, ACCESS_TTL).context("secrets.jwt")?);
        // One clock for the APIs and the sandbox providers: tests move both at once.
        let clock = Clock::default();
        let providers = providers(&config, &clock)?;
        Ok(Server { config, db, vault, tokens, providers, clock })
    }

    /// The router of `api` listening on `port`, or `None` when it has no real implementation.
    pub async fn router(&self, api: Api, port: u16) -> Result<Option<Router>> {
        let router = match api.id {
            "heating" => self.heating(port).await?,
            _ => return Ok(None),
        };
        let router = match &self.providers.sandbox {
            Some(sandbox) => router.merge(sandbox.routes(api.id)),
            None => router,
        };
        Ok(Some(crate::server::with_docs(router, api, "serve")))
    }

    async fn heating(&self, port: u16) -> Result<Router> {
        let demo = self.config.demo_data.unwrap_or(self.config.wechat_pay.provider == ProviderKind::Sandbox);
        if heating::seed::seed(&self.db, &self.vault, self.clock.now_ms(), demo).await? {
            let what = if demo { "seasons, agreements, configuration and demo accounts (H202400001)" } else { "seasons, agreements, configuration" };
            tracing::info!(api = "heating", "fresh database: {what} written");
        }
        let notify_path = generated::heating::Operation::PaymentNotify.path();
        let base = self.config.wechat_pay.notify_base_url.clone().unwrap_or_else(|| format!("http://127.0.0.1:{port}"));
        let service = HeatingService {
            db: self.db.clone(),
            vault: self.vault.clone(),
            tokens: self.tokens.clone(),
            sms: self.providers.sms.clone(),
            pay: self.providers.wechat_pay.clone(),
            notify_url: format!("{}{notify_path}", base.trim_end_matches('/')),
            clock: self.clock.clone(),
        };
        let limit = self.config.rate_limit.clone();
        let limit = IpLimit::new(
            limit.requests,
            Duration::from_secs(limit.window_seconds),
            heating::rate_limited,
            vec![notify_path],
            limit.trust_forwarded_for,
        );
        Ok(generated::heating::router(Arc::new(Heating(Arc::new(service))))
            .layer(axum::middleware::from_fn(move |request, next| ratelimit::middleware(limit.clone(), request, next))))
    }
}

fn providers(config: &Config, clock: &Clock) -> Result<Providers> {
    let sandbox_sms = Arc::new(SandboxSms::new());
    let sms: Arc<dyn SmsProvider> = match config.sms.provider {
        ProviderKind::Sandbox => sandbox_sms.clone(),
        ProviderKind::Real => Arc::new(AliyunSms::new(&config.sms).context("sms")?),
    };
    let wechat_login: Arc<dyn WechatLogin> = match config.wechat_login.provider {
        ProviderKind::Sandbox => Arc::new(SandboxLogin),
        ProviderKind::Real => Arc::new(Code2Session::new(&config.wechat_login).context("wechat_login")?),
    };
    let (wechat_pay, sandbox_pay): (Arc<dyn WechatPay>, _) = match config.wechat_pay.provider {
        ProviderKind::Sandbox => {
            let pay = Arc::new(
                SandboxPay::new(config.wechat_pay.appid.clone(), config.wechat_pay.mchid.clone(), clock.clone())
                    .context("sandbox WeChat Pay")?,
            );
            (pay.clone(), Some(pay))
        }
        ProviderKind::Real => (Arc::new(WechatPayV3::new(&config.wechat_pay).context("wechat_pay")?), None),
    };
    let any_sandbox = config.sms.provider == ProviderKind::Sandbox
        || config.wechat_login.provider == ProviderKind::Sandbox
        || sandbox_pay.is_some();
    let sandbox = any_sandbox.then(|| Sandbox::new(sandbox_sms, sandbox_pay));
    Ok(Providers { sms, wechat_login, wechat_pay, sandbox })
}

/// A database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or("");
            format!("{}://{user}:***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// Run `mpapi serve`: every selected API that has a real implementation, each on its port.
pub async fn run(config: Config, listen: crate::cli::Listen) -> Result<()> {
    let selected = listen.selected()?;
    let server = Server::new(config).await?;
    println!("mpapi serve — database {} ({})", redact_url(&server.config.database_url), server.db.backend());
    if server.providers.sandbox.is_some() {
        println!("sandbox providers active: SMS codes at /_sandbox/sms?phone=…, payments at POST /_sandbox/pay/{{order_id}}");
    }
    let mut apps = Vec::new();
    for (api, listener) in crate::server::bind_all(&selected, listen.bind, listen.port_base).await? {
        let port = listener.local_addr()?.port();
        match server.router(api, port).await? {
            Some(router) => apps.push((api, listener, router)),
            None => println!("{:<10} not started: no real implementation yet (`mpapi mock --api {}` serves its examples)", api.id, api.id),
        }
    }
    anyhow::ensure!(!apps.is_empty(), "none of the selected APIs has a real implementation yet (implemented: {})", IMPLEMENTED.join(", "));
    crate::server::run(apps, listen.bind, crate::server::PeerAddresses::Attach).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_passwords_are_redacted() {
        assert_eq!(super::redact_url("postgres://me:secret@127.0.0.1:5432/test"), "postgres://me:***@127.0.0.1:5432/test");
        assert_eq!(super::redact_url("sqlite://mpapi.db?mode=rwc"), "sqlite://mpapi.db?mode=rwc");
    }
}
