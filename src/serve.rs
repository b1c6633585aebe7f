//! `mpapi serve`: the real server. Connects and migrates the database, loads the keys, refuses a
//! production start with anything only fit for development, and builds each implemented API from
//! [`REAL_APIS`]: its providers (sandbox unless configured), its shared blocks (sessions, codes,
//! WeChat login, payments) under its own configuration section, its seed, the generated router
//! over its implementation, its request limit, its `/_sandbox/*` routes while any of its providers
//! is the sandbox, its documentation routes, and its housekeeping.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use axum::Router;
use secrecy::{ExposeSecret, SecretSlice};

use crate::api_support::PublicUrl;
use crate::apis::Api;
use crate::clock::Clock;
use crate::config::{ApiConfig, Config, Environment, MiniProgram, PayVersion, ProviderKind, WechatLoginConfig, WechatPayConfig};
use crate::identity::{Codes, Passwords, Sessions, Wechat};
use crate::payments::Payments;
use crate::pii::Vault;
use crate::providers::sms::{AliyunSms, SandboxSms};
use crate::providers::wechat_login::{Code2Session, SandboxLogin};
use crate::providers::wechat_pay::WechatPay;
use crate::providers::wechat_pay::sandbox::SandboxPay;
use crate::providers::wechat_pay::v2::WechatPayV2;
use crate::providers::wechat_pay::v3::WechatPayV3;
use crate::providers::{SmsProvider, WechatLogin};
use crate::ratelimit::{Budgets, IpLimit, IpLimitRule, Limited};
use crate::storage::rate_limit::RateLimitStore;
use crate::sandbox::Sandbox;
use crate::start::{Elsewhere, Mode, StartHere};
use crate::storage::Db;

/// The future of [`RealApi::build`].
pub type Building<'a> = Pin<Box<dyn Future<Output = Result<Built>> + Send + 'a>>;

/// What [`RealApi::build`] makes: the API's router and its per-IP limit, if it has one.
pub struct Built {
    /// The generated router over the implementation.
    pub router: Router,
    /// The limit its operations are counted against ([`Limited`] around the port's router).
    pub limit: Option<IpLimit>,
}

impl From<Router> for Built {
    fn from(router: Router) -> Built {
        Built { router, limit: None }
    }
}

/// A port's router in `serve`: the API's routes, its sandbox, documentation and operations routes,
/// behind the API's per-IP limit.
pub type ServeRouter = Limited<Router>;

/// An API with a real implementation: its id and how to build its router.
pub struct RealApi {
    /// The API id.
    pub id: &'static str,
    /// Build the API's router (without docs and sandbox routes) listening on `port`, and its limit.
    pub build: for<'a> fn(&'a Server, &'a ApiParts, u16) -> Building<'a>,
    /// Where a new user begins (demo accounts, first calls), for the banner and the index page;
    /// [`Server::start_here`] adds the sandbox routes and the other ports.
    pub start_here: fn(&ApiParts) -> StartHere,
    /// Whether it sends SMS codes (then its port serves the sandbox outbox while SMS is the
    /// sandbox).
    pub sends_sms: bool,
    /// Whether it asks the 安防平台 (then [`ApiParts::security_platform`] is built from its
    /// section, and the sandbox platform's switch is served while it is the sandbox).
    pub security_platform: bool,
    /// Whether its answers carry URLs of its own (then `public_url` may be set: [`ApiParts::public_url`];
    /// serving an API that answers none with the setting is refused).
    pub answers_links: bool,
}

/// The APIs with a real implementation: `serve` starts these (all five).
pub const REAL_APIS: &[RealApi] = &[
    RealApi { id: "heating", build: |server, parts, port| Box::pin(heating(server, parts, port)), start_here: heating_start_here, sends_sms: true, security_platform: false, answers_links: false },
    RealApi { id: "points", build: |server, parts, port| Box::pin(points(server, parts, port)), start_here: points_start_here, sends_sms: false, security_platform: false, answers_links: false },
    RealApi { id: "community", build: |server, parts, port| Box::pin(community(server, parts, port)), start_here: community_start_here, sends_sms: true, security_platform: true, answers_links: true },
    RealApi { id: "charging", build: |server, parts, port| Box::pin(charging(server, parts, port)), start_here: charging_start_here, sends_sms: false, security_platform: false, answers_links: true },
    RealApi { id: "o2o", build: |server, parts, port| Box::pin(o2o(server, parts, port)), start_here: o2o_start_here, sends_sms: true, security_platform: false, answers_links: false },
];

/// The ids of [`REAL_APIS`].
pub fn implemented() -> Vec<&'static str> {
    REAL_APIS.iter().map(|api| api.id).collect()
}

/// Everything the real APIs share: configuration, storage, keys, the SMS account, the clock.
#[derive(Clone)]
pub struct Server {
    /// The configuration it was built from.
    pub config: Config,
    /// The database (migrated).
    pub db: Db,
    /// Personal-data keys.
    pub vault: Arc<Vault>,
    /// The master key every API's token key is derived from.
    jwt: SecretSlice<u8>,
    /// Password hashing (a bounded pool shared by every API).
    pub passwords: Passwords,
    /// The SMS account.
    pub sms: Arc<dyn SmsProvider>,
    /// The SMS outbox while SMS is the sandbox.
    pub sandbox_sms: Option<Arc<SandboxSms>>,
    /// The clock (tests move it).
    pub clock: Clock,
    /// Secrets generated into the database because none was configured (development only).
    pub generated_secrets: Vec<&'static str>,
    /// Where the per-IP limits, and heating's binding attempts, keep their budgets: Redis when
    /// `redis_url` is set, else the database (shared by every instance either way).
    pub budgets: Budgets,
    /// Each implemented API's providers and sandbox, built once at start.
    apis: Arc<std::collections::BTreeMap<&'static str, Arc<ApiParts>>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("db", &self.db.backend()).finish_non_exhaustive()
    }
}

/// One API's own providers and sandbox, from its configuration section.
pub struct ApiParts {
    /// The API id.
    pub id: &'static str,
    /// Its configuration section.
    pub config: ApiConfig,
    /// WeChat login for its appid.
    pub login: Arc<dyn WechatLogin>,
    /// Its WeChat Pay merchant.
    pub pay: Arc<dyn WechatPay>,
    /// Its mini-programs with their merchants: one (the API's own, `login` and `pay` above), or
    /// one per configured operator (o2o), in configuration order; `login` and `pay` are the
    /// first's.
    pub operators: Vec<OperatorParts>,
    /// Its 安防平台, when it asks one (community).
    pub security_platform: Option<Arc<dyn crate::providers::security_platform::SecurityPlatform>>,
    /// Its sandbox (routes only while one of its providers is the sandbox).
    pub sandbox: Sandbox,
    /// Whether the demo data is seeded (unset: while its WeChat Pay is the sandbox).
    pub demo: bool,
    /// Where the URLs it answers start (`public_url`, checked at start; community's file URLs
    /// too, unless `files.public_base_url` says otherwise).
    pub public_url: PublicUrl,
}

/// One mini-program of an API and its WeChat Pay merchant (an o2o operator, or the API itself).
pub struct OperatorParts {
    /// The operator id (0 for an API without operators).
    pub id: i64,
    /// The mini-program's appid.
    pub appid: String,
    /// WeChat login for that appid.
    pub login: Arc<dyn WechatLogin>,
    /// The login settings (the real 小程序码 provider needs the same secret).
    pub login_config: WechatLoginConfig,
    /// The merchant.
    pub pay: Arc<dyn WechatPay>,
    /// The merchant's settings (its notify base URL).
    pub pay_config: WechatPayConfig,
    /// The sandbox payment platform, when `pay` is the sandbox.
    pub sandbox_pay: Option<Arc<SandboxPay>>,
}

impl std::fmt::Debug for OperatorParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorParts").field("id", &self.id).field("appid", &self.appid).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ApiParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiParts").field("id", &self.id).field("demo", &self.demo).finish_non_exhaustive()
    }
}

/// A configured secret (hex), else one generated on first start and kept in the database.
async fn secret(db: &Db, configured: Option<&secrecy::SecretString>, name: &'static str, generated: &mut Vec<&'static str>) -> Result<Vec<u8>> {
    let hex_value = match configured {
        Some(value) => value.expose_secret().to_owned(),
        None => {
            generated.push(name);
            db.secret(name, || crate::random::hex(64)).await?
        }
    };
    hex::decode(hex_value.trim()).with_context(|| format!("secret {name} must be hex"))
}

impl Server {
    /// Connect, migrate, load keys, build the shared providers. In production
    /// ([`Environment::Production`]) refuse anything only fit for development, for the APIs
    /// `serving`.
    pub async fn new(config: Config) -> Result<Server> {
        if config.env == Environment::Production {
            let problems = config.production_problems(&implemented());
            anyhow::ensure!(
                problems.is_empty(),
                "refusing to start in production:\n  - {}\n(set env = \"development\" for a development server)",
                problems.join("\n  - ")
            );
        }
        let db = Db::connect(&config.database_url)
            .await
            .with_context(|| format!("opening the database ({})", redact_url(&config.database_url)))?;
        if config.env == Environment::Production {
            let demo = db.demo_seeds().await?;
            anyhow::ensure!(
                demo.is_empty(),
                "refusing to start in production: the database holds demo data ({}) whose owners' ID numbers are public; use a database that never ran with demo data",
                demo.join(", ")
            );
        }
        let mut generated_secrets = Vec::new();
        let jwt = secret(&db, config.secrets.jwt.as_ref(), "jwt", &mut generated_secrets).await?;
        let pii_key = secret(&db, config.secrets.pii_key.as_ref(), "pii_key", &mut generated_secrets).await?;
        let pepper = secret(&db, config.secrets.pepper.as_ref(), "pepper", &mut generated_secrets).await?;
        if !generated_secrets.is_empty() {
            tracing::warn!(secrets = generated_secrets.join(", "), "not configured: using keys generated and kept in the database (development only)");
        }
        anyhow::ensure!(jwt.len() >= 32, "secrets.jwt must be at least 32 bytes");
        let vault = Arc::new(Vault::new(&pii_key, &pepper).context("secrets.pii_key / secrets.pepper")?);
        let (sms, sandbox_sms): (Arc<dyn SmsProvider>, _) = match config.sms.provider {
            ProviderKind::Sandbox => {
                let outbox = Arc::new(SandboxSms::new(db.clone()));
                (outbox.clone(), Some(outbox))
            }
            ProviderKind::Real => (Arc::new(AliyunSms::new(&config.sms).context("sms")?), None),
        };
        let budgets = match &config.redis_url {
            Some(url) => {
                let client = redis::Client::open(url.expose_secret()).context("redis_url")?;
                let connection = tokio::time::timeout(Duration::from_secs(10), redis::aio::ConnectionManager::new(client))
                    .await
                    .context("connecting to Redis (redis_url): no answer within 10 s")?
                    .context("connecting to Redis (redis_url)")?;
                let namespace = db.secret("redis_namespace", || crate::random::hex(8)).await?;
                Budgets::Redis { connection, namespace }
            }
            None => Budgets::Database(RateLimitStore::new(db.clone())),
        };
        spawn_wal_checkpoints(db.clone());
        let mut server = Server {
            config,
            db,
            vault,
            jwt: SecretSlice::from(jwt),
            passwords: Passwords::default(),
            sms,
            sandbox_sms,
            clock: Clock::default(),
            generated_secrets,
            budgets,
            apis: Arc::default(),
        };
        let apis = REAL_APIS.iter().map(|api| Ok((api.id, Arc::new(server.build_parts(api)?)))).collect::<Result<_>>()?;
        server.apis = Arc::new(apis);
        Ok(server)
    }

    /// API `id`'s providers and sandbox (built at start), `None` for an API without a real
    /// implementation.
    pub fn parts(&self, id: &str) -> Option<Arc<ApiParts>> {
        self.apis.get(id).cloned()
    }

    fn build_parts(&self, api: &RealApi) -> Result<ApiParts> {
        let id = api.id;
        let config = self.config.api(id);
        // An API with operators (o2o) has one mini-program and merchant per operator; the
        // others have their own.
        let mut operators: Vec<OperatorParts> = Vec::new();
        for program in config.mini_programs(id) {
            anyhow::ensure!(
                !operators.iter().any(|o| o.id == program.operator || o.appid == program.appid),
                "{}: operator {} or appid {} appears twice",
                program.section,
                program.operator,
                program.appid
            );
            operators.push(self.operator(&program)?);
        }
        let first = operators.first().context("an API has at least one mini-program")?;
        let (login, pay) = (first.login.clone(), first.pay.clone());
        let (security_platform, sandbox_security) = if api.security_platform {
            let (platform, sandbox) = crate::providers::security_platform::from_config(&config.security_platform, self.db.clone(), self.vault.clone())
                .with_context(|| format!("apis.{id}.security_platform"))?;
            (Some(platform), sandbox)
        } else {
            (None, None)
        };
        let sandbox = Sandbox {
            api: id,
            sms: self.sandbox_sms.clone().filter(|_| api.sends_sms),
            login_appid: operators.iter().find(|o| o.login_config.provider == ProviderKind::Sandbox).map(|o| o.appid.clone()),
            pays: operators.iter().filter_map(|o| o.sandbox_pay.clone()).collect(),
            security: sandbox_security,
            clock: self.clock.clone(),
        };
        let demo = self.config.demo_data.unwrap_or(operators.iter().all(|o| o.sandbox_pay.is_some()));
        let public_url = PublicUrl::new(&format!("apis.{id}.public_url"), config.public_url.as_deref())?;
        Ok(ApiParts { id, config, login, pay, operators, security_platform, sandbox, demo, public_url })
    }

    /// One mini-program and its merchant, as configured: WeChat login and WeChat Pay, each the
    /// sandbox or the real provider.
    fn operator(&self, program: &MiniProgram<'_>) -> Result<OperatorParts> {
        let MiniProgram { section, operator, appid, login, pay: pay_config } = program;
        let login_provider: Arc<dyn WechatLogin> = match login.provider {
            ProviderKind::Sandbox => Arc::new(SandboxLogin),
            ProviderKind::Real => Arc::new(Code2Session::new(appid, login).with_context(|| format!("{section}.wechat_login"))?),
        };
        let in_section = || format!("{section}.wechat_pay");
        let (pay, sandbox_pay): (Arc<dyn WechatPay>, _) = match (pay_config.provider, pay_config.version) {
            (ProviderKind::Sandbox, version) => {
                let new = match version {
                    PayVersion::V3 => SandboxPay::new,
                    PayVersion::V2 => SandboxPay::new_v2,
                };
                // No key is generated here: the platform reads (or makes) its keys in the
                // database on first use, so every instance signs and verifies alike.
                let pay = Arc::new(new(self.db.clone(), appid.to_string(), pay_config.mchid.clone(), self.clock.clone()).context("sandbox WeChat Pay")?);
                (pay.clone(), Some(pay))
            }
            (ProviderKind::Real, PayVersion::V3) => (Arc::new(WechatPayV3::new(appid, pay_config).with_context(in_section)?), None),
            (ProviderKind::Real, PayVersion::V2) => (Arc::new(WechatPayV2::new(appid, pay_config).with_context(in_section)?), None),
        };
        Ok(OperatorParts {
            id: *operator,
            appid: appid.to_string(),
            login: login_provider,
            login_config: (*login).clone(),
            pay,
            pay_config: (*pay_config).clone(),
            sandbox_pay,
        })
    }

    /// API `api`'s verification codes under `policy`.
    pub fn codes(&self, api: &'static str, policy: crate::identity::codes::CodePolicy) -> Codes {
        Codes::new(api, policy, self.db.clone(), self.vault.clone(), self.sms.clone(), self.budgets.clone(), self.clock.clone())
    }

    /// How requests' client addresses are found (`trust_forwarded_for`).
    pub fn client_addresses(&self) -> crate::ratelimit::ClientAddresses {
        crate::ratelimit::ClientAddresses { trust_forwarded_for: self.config.trust_forwarded_for }
    }

    /// API `id`'s sessions under its token policy.
    pub fn sessions(&self, parts: &ApiParts) -> Result<Arc<Sessions>> {
        Sessions::new(parts.id, self.jwt.expose_secret(), parts.config.tokens, self.db.clone(), self.clock.clone())
    }

    /// API `id`'s payments with its merchant; notifies go to `notify_path` under the configured
    /// public base URL (default: this port on 127.0.0.1, right for the sandbox only).
    pub fn payments(&self, parts: &ApiParts, port: u16, notify_path: &str, settle: Arc<dyn crate::storage::payments::Settle>) -> Arc<Payments> {
        let base = parts.config.wechat_pay.notify_base_url.clone().unwrap_or_else(|| format!("http://127.0.0.1:{port}"));
        let notify_url = format!("{}{notify_path}", base.trim_end_matches('/'));
        Arc::new(Payments::new(parts.id, parts.pay.clone(), settle, notify_url, self.db.clone(), self.clock.clone()))
    }

    /// The per-IP limit of an API, when its section has one, answered by `refuse`; `exempt`
    /// paths (server-to-server callbacks) do not count.
    pub fn ip_limit(&self, parts: &ApiParts, refuse: fn(u64, i64) -> axum::response::Response, exempt: Vec<&'static str>) -> Option<IpLimit> {
        parts.config.rate_limit.map(|limit| {
            let rule = IpLimitRule {
                api: parts.id,
                requests: limit.requests,
                window: Duration::from_secs(limit.window_seconds),
                exempt,
                trust_forwarded_for: self.config.trust_forwarded_for,
            };
            IpLimit::new(rule, self.budgets.clone(), refuse, self.clock.clone())
        })
    }

    /// The router of `api` listening on `port`, the only API of its process: see
    /// [`Server::router_among`].
    pub async fn router(&self, api: Api, port: u16) -> Result<Option<ServeRouter>> {
        self.router_among(api, port, &[(api, port)]).await
    }

    /// Refuse what the APIs `served` cannot take, before any of them seeds or starts a task: a
    /// `public_url` on one whose answers carry no URLs of its own ([`RealApi::answers_links`]).
    pub fn check_served(&self, served: &[Api]) -> Result<()> {
        for real in served.iter().filter_map(|api| REAL_APIS.iter().find(|r| r.id == api.id)) {
            let parts = self.parts(real.id).context("implemented APIs have parts")?;
            anyhow::ensure!(
                real.answers_links || parts.config.public_url.is_none(),
                "apis.{id}.public_url: {id}'s answers carry no URLs of their own; remove the setting",
                id = real.id
            );
        }
        Ok(())
    }

    /// The router of `api` listening on `port` in a process serving `served` (every API with its
    /// port): its API routes, `/_sandbox/*` while any of its providers is the sandbox, the
    /// documentation routes and the index page, the operations routes (ready while the database
    /// answers: [`crate::ops`]); `None` when it has no real implementation.
    pub async fn router_among(&self, api: Api, port: u16, served: &[(Api, u16)]) -> Result<Option<ServeRouter>> {
        let (Some(real), Some(start)) = (REAL_APIS.iter().find(|r| r.id == api.id), self.start_here(api, port, served)) else {
            return Ok(None);
        };
        self.check_served(&[api])?;
        let parts = self.parts(real.id).context("implemented APIs have parts")?;
        let Built { router, limit } = (real.build)(self, &parts, port).await?;
        let router = if parts.sandbox.is_active() { router.merge(parts.sandbox.routes()) } else { router };
        let router = crate::server::with_docs(router, api, start).merge(crate::ops::routes(Some(self.db.clone())));
        Ok(Some(Limited::new(router, api, limit)))
    }

    /// Where a new user begins with `api` on `port`, in a process serving `served`: the API's own
    /// start (demo data, first calls), its active sandbox routes, the other ports, and the APIs
    /// without a real implementation (mock mode serves them on the ports beside). `None` when
    /// `api` has no real implementation.
    pub fn start_here(&self, api: Api, port: u16, served: &[(Api, u16)]) -> Option<StartHere> {
        let real = REAL_APIS.iter().find(|r| r.id == api.id)?;
        let parts = self.parts(real.id)?;
        let mut start = (real.start_here)(&parts);
        start.sandbox = parts.sandbox.active_routes();
        start.neighbours = served.iter().filter(|(other, _)| other.id != api.id).map(|(other, port)| (other.id, *port)).collect();
        let base = crate::start::port_base(api, port);
        let mock_only = crate::start::ports_of(base, |a| !implemented().contains(&a.id));
        if !mock_only.is_empty() {
            let ids: Vec<&str> = mock_only.iter().map(|(id, _)| *id).collect();
            let command = crate::start::mock_command(&ids, base);
            start.elsewhere = Some(Elsewhere { why: "no real implementation yet", apis: mock_only, command });
        }
        Some(start)
    }
}

/// An API's own housekeeping step beside its payments' sweep (points: expiring the balances
/// whose year is over); answers how many rows it changed.
pub type Chore = for<'a> fn(&'a Db, i64) -> Pin<Box<dyn Future<Output = Result<u64, crate::storage::StorageError>> + Send + 'a>>;

/// Run `housekeeping` every minute (first after a minute): closing expired orders, refunds,
/// pruning, the API's `chores`. Every step is a conditional write, so all instances may run it
/// at once.
fn spawn_housekeeping(api: &'static str, payments: Arc<Payments>, db: Db, clock: Clock, chores: &'static [Chore]) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + Duration::from_secs(60), Duration::from_secs(60));
        loop {
            tick.tick().await;
            if let Err(error) = housekeeping(api, &payments, &db, &clock).await {
                tracing::warn!(api, %error, "housekeeping failed; trying again in a minute");
            }
            for chore in chores {
                match chore(&db, clock.now_ms()).await {
                    Ok(0) => {}
                    Ok(changed) => tracing::info!(api, changed, "housekeeping"),
                    Err(error) => tracing::warn!(api, %error, "housekeeping failed; trying again in a minute"),
                }
            }
        }
    });
}

/// Every second, [`Db::checkpoint_wal`]: a SQLite file's write-ahead log kept short under
/// reads that never pause (nothing to do on PostgreSQL: the task ends at once; on SQLite it ends
/// when the database is closed).
fn spawn_wal_checkpoints(db: Db) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match db.checkpoint_wal().await {
                Ok(None) => break,
                Ok(Some(_)) => {}
                Err(error) => tracing::warn!(%error, "checkpointing the SQLite log failed; trying again in a second"),
            }
        }
    });
}

/// One round of housekeeping for `api`: its payments' sweep, and pruning what can no longer
/// matter — sessions over or revoked more than a day ago, codes older than two days (the daily
/// cap looks back 24 hours), notification records older than 30 days (WeChat retries for 24
/// hours), the sandbox payment platform's later placings' prepay ids, code_urls and `pr` tokens
/// older than two days (WeChat's live two hours) and its orders older than 400 days with their
/// refunds and first prepay_ids (WeChat refunds a payment for a year), and the budgets in the
/// database all of whose admissions have left their window (per-IP limits, binding attempts,
/// code sends per client; Redis's expire by themselves). Answers what the sweep did and the
/// rows pruned.
pub async fn housekeeping(api: &'static str, payments: &Arc<Payments>, db: &Db, clock: &Clock) -> Result<(crate::payments::Swept, u64)> {
    let swept = payments.sweep().await?;
    if swept != crate::payments::Swept::default() {
        tracing::info!(api, ?swept, "payments swept");
    }
    let now = clock.now_ms();
    const DAY: i64 = 86_400_000;
    let pruned = db.sessions().prune(now - DAY).await?
        + db.codes().prune(now - 2 * DAY).await?
        + db.payments().prune_notifications(now - 30 * DAY).await?
        + db.prune_sandbox_pay(now - 400 * DAY, now - 2 * DAY).await?
        + RateLimitStore::new(db.clone()).prune(now * 1000).await?;
    Ok((swept, pruned))
}

/// Heating (000): SMS codes, rotating refresh tokens, bills paid with WeChat Pay.
async fn heating(server: &Server, parts: &ApiParts, port: u16) -> Result<Built> {
    use crate::heating::{self, Heating, service::HeatingService};
    let now = server.clock.now_ms();
    let written = heating::seed::seed(&server.db, &server.vault, now, parts.demo, parts.pay.merchant()).await?;
    if !written.is_empty() {
        tracing::info!(api = "heating", "fresh database: {} written", written.join(" and "));
    }
    let notify_path = generated::heating::Operation::PaymentNotify.path();
    let payments = server.payments(parts, port, notify_path, Arc::new(crate::storage::heating::Settler));
    spawn_housekeeping("heating", payments.clone(), server.db.clone(), server.clock.clone(), &[]);
    let service = HeatingService {
        db: server.db.clone(),
        vault: server.vault.clone(),
        sessions: server.sessions(parts)?,
        codes: server.codes("heating", heating::service::CODE_POLICY),
        passwords: server.passwords.clone(),
        wechat: Wechat::new("heating", parts.config.appid.clone(), parts.login.clone(), server.db.clone(), server.vault.clone(), server.clock.clone()),
        payments,
        clock: server.clock.clone(),
        budgets: server.budgets.clone(),
        clients: server.client_addresses(),
        profiles: HeatingService::profile_reads(server.db.clone()),
    };
    let router = generated::heating::router(Arc::new(Heating(Arc::new(service))));
    Ok(Built { router, limit: server.ip_limit(parts, heating::rate_limited, vec![notify_path]) })
}

/// Heating's start: the demo user and accounts while seeded; with the sandbox SMS, a login
/// code for the demo user (a register code for a new phone without demo data) read back from
/// the outbox; with real SMS, a call that sends nobody a message.
fn heating_start_here(parts: &ApiParts) -> StartHere {
    use crate::heating::seed::{DEMO_PASSWORD, DEMO_PHONE};
    let mut start = StartHere::new(Mode::Serve);
    if parts.demo {
        start.notes.push(format!(
            "demo user {DEMO_PHONE} (password {DEMO_PASSWORD}): registered, no heat account bound on a fresh database, so one login code is enough"
        ));
        start.notes.push(
            "demo heat accounts: H202400001 (户主 张三, ID 610102199001011231, 天山区xx小区xx号楼xx单元xx室; this season's bill unpaid), \
             H202400002 (李四, ID 11010519491231002X)"
                .into(),
        );
    }
    if parts.sandbox.sms.is_some() {
        let (phone, kind) = if parts.demo { (DEMO_PHONE, "login") } else { ("13800000000", "register") };
        start.notes.push(
            "one code per phone per minute (000 §7); log in with POST /api/auth/login {\"phone\",\"code\"} and send data.token as Authorization: Bearer TOKEN".into(),
        );
        start.first_calls.push(format!(
            "curl -s -X POST {{base}}/api/sms/send -H 'Content-Type: application/json' -d '{{\"phone\":\"{phone}\",\"type\":\"{kind}\"}}'"
        ));
        start.first_calls.push(format!("curl -s '{{base}}/_sandbox/sms?phone={phone}'"));
    } else {
        start.first_calls.push("curl -s {base}/api/config/system".into());
    }
    start
}

/// Points (001): WeChat login, the expired token refreshable once, packages paid with WeChat
/// Pay, API keys and metered debits.
async fn points(server: &Server, parts: &ApiParts, port: u16) -> Result<Built> {
    use crate::points::{self, Points, service::PointsService};
    // Points' document states no request limit and its contract has no 429 answer: a limit
    // configured here would be silently ignored, so it is refused.
    anyhow::ensure!(
        parts.config.rate_limit.is_none(),
        "apis.points.rate_limit: points' document states no request limit and its contract no 429 answer; remove the setting"
    );
    let now = server.clock.now_ms();
    let written = points::seed::seed(
        &server.db,
        &server.vault,
        &parts.config.appid,
        parts.pay.merchant(),
        parts.demo,
        now,
    )
    .await?;
    if !written.is_empty() {
        tracing::info!(
            api = "points",
            "fresh database: {} written",
            written.join(" and ")
        );
    }
    let notify_path = generated::points::Operation::PointsPaymentNotify.path();
    let payments = server.payments(
        parts,
        port,
        notify_path,
        Arc::new(crate::storage::points::Settler),
    );
    // Balances whose year is over expire even when nobody reads them.
    const CHORES: &[Chore] = &[|db, now| {
        Box::pin(async move { db.points_users().expire_due(now, 500).await })
    }];
    spawn_housekeeping(
        "points",
        payments.clone(),
        server.db.clone(),
        server.clock.clone(),
        CHORES,
    );
    let (status, packages) = PointsService::shared_reads(&server.db);
    let service = PointsService {
        db: server.db.clone(),
        vault: server.vault.clone(),
        sessions: server.sessions(parts)?,
        wechat: Wechat::new(
            "points",
            parts.config.appid.clone(),
            parts.login.clone(),
            server.db.clone(),
            server.vault.clone(),
            server.clock.clone(),
        ),
        payments,
        clock: server.clock.clone(),
        status,
        packages,
    };
    Ok(generated::points::router(Arc::new(Points(Arc::new(service)))).into())
}

/// Points' start: the demo login code and key while seeded; with the sandbox login, a login
/// call any code works with.
fn points_start_here(parts: &ApiParts) -> StartHere {
    use crate::points::seed::{DEMO_CODE, DEMO_KEY};
    let mut start = StartHere::new(Mode::Serve);
    if parts.demo {
        start.notes.push(format!(
            "demo user: log in with code \"{DEMO_CODE}\" (林晓峰, 5028 points, paid and failed purchases, three API keys); any other code is a new user with 0 points"
        ));
        start.notes.push(format!(
            "the demo user's active API key (for POST /api/v1/points/consume): {DEMO_KEY}"
        ));
    }
    if parts.sandbox.login_appid.is_some() {
        let code = if parts.demo { DEMO_CODE } else { "any-code" };
        start.notes.push("send data.token as Authorization: Bearer TOKEN; pay an order with POST /_sandbox/pay/{orderId}".into());
        start.first_calls.push(format!(
            "curl -s -X POST {{base}}/api/v1/auth/wechat-login -H 'Content-Type: application/json' -d '{{\"code\":\"{code}\"}}'"
        ));
    } else {
        start
            .first_calls
            .push("curl -s {base}/api/v1/system/status".into());
    }
    start
}

/// Community (002): WeChat login with the session_key kept server side, key-based SMS codes,
/// the 安防平台, face photos and ID-card OCR, reviews, and fee orders paid with WeChat Pay v2.
async fn community(server: &Server, parts: &ApiParts, port: u16) -> Result<Built> {
    use crate::community::{self, Community, service::CommunityService};
    anyhow::ensure!(
        parts.config.rate_limit.is_none(),
        "apis.community.rate_limit: community's document states no request limit and its contract no 429 answer; remove the setting"
    );
    let now = server.clock.now_ms();
    let written = community::seed::seed(&server.db, &server.vault, parts.pay.merchant(), parts.demo, now).await?;
    if !written.is_empty() {
        tracing::info!(api = "community", "fresh database: {} written", written.join(" and "));
    }
    if parts.sandbox.security.is_some() && parts.demo && crate::providers::security_platform::seed(&server.db, &server.vault).await? {
        tracing::info!(api = "community", "fresh database: the sandbox 安防平台's residents written");
    }
    let notify_path = generated::community::Operation::PaymentNotify.path();
    let payments = server.payments(parts, port, notify_path, Arc::new(crate::storage::community::Settler));
    spawn_housekeeping("community", payments.clone(), server.db.clone(), server.clock.clone(), &[]);
    let mut files = parts.config.files.clone();
    files.public_base_url = files.public_base_url.or_else(|| parts.public_url.configured().map(str::to_owned));
    let files = crate::providers::files::FileStore::from_config(&files, server.jwt.expose_secret(), port, server.clock.clone())
        .context("apis.community.files")?;
    let files = Arc::new(files);
    let service = Arc::new(CommunityService {
        db: server.db.clone(),
        vault: server.vault.clone(),
        sessions: server.sessions(parts)?,
        codes: server.codes("community", community::service::CODE_POLICY),
        owner_codes: server.codes("community", community::service::OWNER_CODE_POLICY),
        wechat: Wechat::new("community", parts.config.appid.clone(), parts.login.clone(), server.db.clone(), server.vault.clone(), server.clock.clone()),
        payments,
        files: files.clone(),
        ocr: crate::providers::ocr::from_config(&parts.config.ocr).context("apis.community.ocr")?,
        platform: parts.security_platform.clone().context("community asks the 安防平台")?,
        clients: server.client_addresses(),
        clock: server.clock.clone(),
    });
    let router = generated::community::router(Arc::new(Community { service: service.clone(), public_url: parts.public_url.clone() })).merge(files.routes());
    Ok(if parts.sandbox.is_active() { router.merge(community::sandbox::routes(service)) } else { router }.into())
}

/// Community's start: the demo owner's login code while seeded; the sandbox login's first call.
fn community_start_here(parts: &ApiParts) -> StartHere {
    use crate::community::seed::{DEMO_CODE, DEMO_PHONE, PLATFORM_PHONE};
    let mut start = StartHere::new(Mode::Serve);
    if parts.demo {
        start.notes.push(format!(
            "demo owner 王建国 ({DEMO_PHONE}): POST /api/v1/weapp/authorizations {{\"code\":\"{DEMO_CODE}\"}}; 晨曦家园1栋1单元1楼101号 with his family, a pending and a refused review, unpaid and paid fees"
        ));
        start.notes.push(format!(
            "the sandbox 安防平台 knows {PLATFORM_PHONE} (李秀英): a verify code for it auto-binds 晨曦家园1栋1单元2楼201号; house 102 has no owner"
        ));
    }
    if parts.sandbox.login_appid.is_some() {
        let code = if parts.demo { DEMO_CODE } else { "any-code" };
        start.notes.push("send access_token as Authorization: Bearer TOKEN; review with POST /_sandbox/shenhe/{id}; pay a bill with POST /_sandbox/pay/{prepay_id} (from data.package)".into());
        start.first_calls.push(format!(
            "curl -s -X POST {{base}}/api/v1/weapp/authorizations -H 'Content-Type: application/json' -d '{{\"code\":\"{code}\"}}'"
        ));
    } else {
        start.first_calls.push("curl -s -X POST {base}/api/v1/communities".into());
    }
    if parts.sandbox.is_active() {
        for (route, what) in crate::community::sandbox::ROUTES {
            start.notes.push(format!("{route}: {what}"));
        }
    }
    start
}

/// Charging (003): WeChat and username logins, stations near a GCJ-02 position, chargers behind
/// the driver (simulated by default), orders billed by time-of-use tariffs, and payments by
/// balance or WeChat Pay v2 (NATIVE). A watchdog syncs every live order each second
/// and the devices' connections every ten.
async fn charging(server: &Server, parts: &ApiParts, port: u16) -> Result<Built> {
    use crate::charging::{self, Charging, service::ChargingService};
    anyhow::ensure!(
        parts.config.rate_limit.is_none(),
        "apis.charging.rate_limit: charging's document states no request limit and its contract no 429 answer; remove the setting"
    );
    let now = server.clock.now_ms();
    let written = charging::seed::seed(&server.db, parts.demo, now).await?;
    if !written.is_empty() {
        tracing::info!(api = "charging", "fresh database: {} written", written.join(" and "));
    }
    let (driver, simulated) = crate::providers::charger::from_config(&parts.config.charger, server.db.clone(), server.clock.clone())
        .context("apis.charging.charger")?;
    if let Some(simulated) = &simulated {
        charging::seed::simulate(&server.db, simulated).await?;
    }
    let notify_path = generated::charging::Operation::PaymentWechatNotify.path();
    let payments = server.payments(parts, port, notify_path, Arc::new(crate::storage::charging::Settler));
    spawn_housekeeping("charging", payments.clone(), server.db.clone(), server.clock.clone(), &[]);
    let service = Arc::new(ChargingService {
        db: server.db.clone(),
        sessions: server.sessions(parts)?,
        wechat: Wechat::new("charging", parts.config.appid.clone(), parts.login.clone(), server.db.clone(), server.vault.clone(), server.clock.clone()),
        passwords: server.passwords.clone(),
        payments,
        driver,
        clock: server.clock.clone(),
        positions: charging::positions::StationPositions::new(),
        budgets: server.budgets.clone(),
        clients: server.client_addresses(),
    });
    charging::spawn_watchdog(service.clone());
    let api = Charging { service, sandbox_pay: !parts.sandbox.pays.is_empty(), public_url: parts.public_url.clone() };
    let router = generated::charging::router(Arc::new(api));
    Ok(match simulated {
        Some(simulated) => router.merge(crate::providers::charger::simulated::routes(simulated)),
        None => router,
    }
    .into())
}

/// Charging's start: the demo accounts while seeded, the QR code of the demo pile, the sandbox
/// chargers' controls.
fn charging_start_here(parts: &ApiParts) -> StartHere {
    use crate::charging::seed::{DEMO_DEVICE, DEMO_PASSWORD, DEMO_USERNAME, OPERATOR_PASSWORD, OPERATOR_USERNAME};
    let mut start = StartHere::new(Mode::Serve);
    if parts.demo {
        start.notes.push(format!(
            "demo driver: POST /api/user/login {{\"username\":\"{DEMO_USERNAME}\",\"password\":\"{DEMO_PASSWORD}\"}} (balance 86.50, two past sessions); operator (may configure piles): {OPERATOR_USERNAME} / {OPERATOR_PASSWORD}"
        ));
        start.notes.push(format!(
            "stations near 22.5285,113.9447 (Shenzhen), 23.1291,113.2644 (Guangzhou), Beijing and Shanghai; scan code CDZ{DEMO_DEVICE} is the demo DC pile (device {DEMO_DEVICE})"
        ));
        start.first_calls.push(format!(
            "curl -s -X POST {{base}}/api/user/login -H 'Content-Type: application/json' -d '{{\"username\":\"{DEMO_USERNAME}\",\"password\":\"{DEMO_PASSWORD}\"}}'"
        ));
    }
    if parts.sandbox.login_appid.is_some() {
        start.notes.push("any wx.login code logs a new WeChat user in: POST /api/user/wechat/login {\"code\":\"any-code\"}; send data.token as Authorization: Bearer TOKEN".into());
    }
    if parts.config.charger.provider == crate::config::ProviderKind::Sandbox {
        for (route, what) in crate::providers::charger::simulated::ROUTES {
            start.notes.push(format!("{route}: {what}"));
        }
    }
    if !parts.sandbox.pays.is_empty() {
        start.notes.push("pay a WeChat payment or recharge with POST /_sandbox/pay/{paymentId} (PAY… or RC…)".into());
    }
    start
}

/// o2o (004): one mini-program and merchant per operator (payments scoped `o2o:{id}`, notifies
/// at [`crate::o2o::NOTIFY_PATH`]), SMS codes, reverse geocoding, 小程序码 for the bridge page.
async fn o2o(server: &Server, parts: &ApiParts, port: u16) -> Result<Built> {
    use crate::o2o::{self, O2o, service::{O2oService, Operator}};
    anyhow::ensure!(
        parts.config.rate_limit.is_none(),
        "apis.o2o.rate_limit: o2o's document states no request limit and its contract no 429 answer; remove the setting"
    );
    let mut operators = Vec::new();
    for operator in &parts.operators {
        let base = operator.pay_config.notify_base_url.clone().unwrap_or_else(|| format!("http://127.0.0.1:{port}"));
        let notify_url = format!("{}{}", base.trim_end_matches('/'), o2o::NOTIFY_PATH.replace("{oper_id}", &operator.id.to_string()));
        let scope = format!("o2o:{}", operator.id);
        let payments = Arc::new(Payments::new(scope, operator.pay.clone(), Arc::new(crate::storage::o2o::orders::Settler), notify_url, server.db.clone(), server.clock.clone()));
        spawn_housekeeping("o2o", payments.clone(), server.db.clone(), server.clock.clone(), &[|db, now| Box::pin(async move { db.o2o().close_lapsed(now).await })]);
        operators.push(Operator {
            id: operator.id,
            wechat: Wechat::new("o2o", operator.appid.clone(), operator.login.clone(), server.db.clone(), server.vault.clone(), server.clock.clone()),
            payments,
            wxacode: crate::providers::wxacode::from_config(&operator.appid, &operator.login_config).with_context(|| format!("apis.o2o operator {}", operator.id))?,
            sandbox_login: operator.login_config.provider == ProviderKind::Sandbox,
        });
    }
    let service = Arc::new(O2oService {
        db: server.db.clone(),
        sessions: server.sessions(parts)?,
        codes: server.codes("o2o", o2o::service::CODE_POLICY),
        sandbox_sms: server.sandbox_sms.clone(),
        operators,
        geocoder: crate::providers::geocoder::from_config(&parts.config.geocoder).context("apis.o2o.geocoder")?,
        clients: server.client_addresses(),
        clock: server.clock.clone(),
    });
    let written = o2o::seed::seed(&service, parts.demo).await?;
    if !written.is_empty() {
        tracing::info!(api = "o2o", "fresh database: {} written", written.join(" and "));
    }
    // The demo's paid orders were seeded straight into the database, never through the sandbox
    // merchant: it adopts them (insert-or-nothing), so they can be queried and refunded.
    for operator in parts.operators.iter().filter_map(|o| o.sandbox_pay.as_ref().map(|pay| (o.id, pay))) {
        let (id, pay) = operator;
        for paid in server.db.payments().paid_of(&format!("o2o:{id}")).await? {
            let paid_at = chrono::DateTime::from_timestamp_millis(paid.paid_at.unwrap_or(paid.created_at)).unwrap_or_default();
            pay.adopt_paid(&paid.out_trade_no, paid.amount_fen, paid.transaction_id.as_deref().unwrap_or_default(), paid_at).await?;
        }
    }
    let router = generated::o2o::router(Arc::new(O2o(service.clone())));
    Ok(router.merge(o2o::extra_routes(service, parts.sandbox.is_active())).into())
}

/// o2o's start: the test code, the demo user's orders, the sandbox merchant's verification.
fn o2o_start_here(parts: &ApiParts) -> StartHere {
    use crate::storage::o2o::demo::{DEMO_PAID_ORDER, DEMO_UNPAID_ORDER};
    let mut start = StartHere::new(Mode::Serve);
    let operators: Vec<String> = parts.operators.iter().map(|o| format!("{} (appid {})", o.id, o.appid)).collect();
    start.notes.push(format!(
        "operators {}; a request's mini-program is its Referer https://servicewechat.com/{{appid}}/0/page-frame.html (none: the first operator while its login is the sandbox)",
        operators.join(", ")
    ));
    if parts.sandbox.login_appid.is_some() {
        start.notes.push("POST /api/user/wxLogin {\"code\":\"user\"} logs in as the test user 10086 张伟 (any other code: a new WeChat user, who binds a phone with /sms/verify_code then /login); GET operations take ?token=, POST ones {\"token\":…} in the body".into());
        start.first_calls.push("curl -s -X POST {base}/api/user/wxLogin -H 'Content-Type: application/json' -d '{\"code\":\"user\"}'".into());
    }
    if parts.demo {
        start.notes.push(format!(
            "demo: merchants 1024 (operator 3) and 1031 (operator 5) near 113.943223,22.540503 (Shenzhen 南山); 10086's orders {DEMO_PAID_ORDER} (paid, codes 836251904417 unused and 471906385220 used) and {DEMO_UNPAID_ORDER} (unpaid at operator 5: open /miniprogram_bridge/pay?targetOperId=5&orderNo={DEMO_UNPAID_ORDER}&userId=10086&token=TOKEN with 10086's token)"
        ));
    }
    if !parts.sandbox.pays.is_empty() {
        start.notes.push("pay an order with POST /_sandbox/pay/{order_no}; a merchant verifies a code with POST /_sandbox/verify?verify_code=CODE".into());
    }
    start
}

/// A database URL without its password, for messages: the userinfo's password and a `password`
/// query parameter (libpq's and sqlx's spelling) become `***`; a URL that does not parse is
/// shown as its scheme alone, since where its password would be cannot be told.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = reqwest::Url::parse(url) else {
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        return format!("{scheme}:… (unparsable URL, not shown)");
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    if parsed.query_pairs().any(|(key, _)| key.eq_ignore_ascii_case("password")) {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(key, value)| {
                let value = if key.eq_ignore_ascii_case("password") { "***".to_owned() } else { value.into_owned() };
                (key.into_owned(), value)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

/// Run `mpapi serve`: every selected API that has a real implementation, each on its port,
/// until `stop` ([`crate::server::run`]). Only their ports are bound, so `mpapi mock` may serve the
/// others beside it. A stop during the start (migrations, seeding, building the routers) ends it
/// there, before any request is served (the ports are bound before the routers are built, which
/// need their numbers): what was under way is rolled back (the migrations run in one
/// transaction, each seed in its own) and the start counts as done (no error).
pub async fn run(config: Config, listen: crate::cli::Listen, mut stop: crate::server::StopRequested) -> Result<()> {
    let (real, _): (Vec<Api>, Vec<Api>) = listen.selected()?.into_iter().partition(|api| implemented().contains(&api.id));
    anyhow::ensure!(!real.is_empty(), "none of the selected APIs has a real implementation yet (implemented: {})", implemented().join(", "));
    let cors = crate::server::Cors::from_origins(&config.cors_origins)?;
    let start = async {
        let server = Server::new(config).await?;
        server.check_served(&real)?;
        crate::logging::say(&format!("mpapi serve — database {} ({})", redact_url(&server.config.database_url), server.db.backend()));
        let listeners = crate::server::bind_all(&real, listen.bind, listen.port_base).await?;
        let served = listeners.iter().map(|(api, listener)| Ok((*api, listener.local_addr()?.port()))).collect::<Result<Vec<_>>>()?;
        let mut apps = Vec::new();
        for ((api, listener), (_, port)) in listeners.into_iter().zip(&served) {
            let router = server.router_among(api, *port, &served).await?.context("only implemented APIs are bound")?;
            apps.push((api, listener, router));
        }
        crate::logging::say(&banner(&server, &served, listen.bind).join("\n"));
        anyhow::Ok((server, apps))
    };
    // The server (its storage, keys and providers) lives as long as its routers serve.
    let (_server, apps) = tokio::select! {
        started = start => started?,
        signal = &mut stop => {
            tracing::info!(signal, "stop requested during the start: stopped before serving");
            return Ok(());
        }
    };
    crate::server::run(apps, listen.bind, crate::server::PeerAddresses::Attach, &cors, stop).await
}

/// What every start prints (the server then prints each port's URL): per API, where to begin
/// (demo data, first calls with this start's URLs, the active sandbox routes); the APIs served
/// elsewhere; a warning when the sandbox is reachable from the network.
pub fn banner(server: &Server, served: &[(Api, u16)], bind: IpAddr) -> Vec<String> {
    let mut lines = Vec::new();
    let mut any_sandbox = false;
    let mut elsewhere = None;
    for (api, port) in served {
        let Some(start) = server.start_here(*api, *port, served) else { continue };
        // The address a command run on this machine reaches the port at.
        let host = if bind.is_unspecified() { IpAddr::from([127, 0, 0, 1]) } else { bind };
        let url = format!("http://{}", std::net::SocketAddr::new(host, *port));
        lines.push(format!("{} — start at {url}/ (Swagger UI {url}/docs)", api.id));
        lines.extend(start.lines(&url).into_iter().map(|line| format!("  {line}")));
        any_sandbox |= !start.sandbox.is_empty();
        elsewhere = elsewhere.or_else(|| start.elsewhere_line());
    }
    lines.extend(elsewhere);
    if any_sandbox && !bind.is_loopback() {
        let warning = format!(
            "WARNING: sandbox providers are active and mpapi listens on {bind}: anyone on this network can read SMS codes at /_sandbox/sms, log in as any WeChat user and mark orders paid. Use --bind 127.0.0.1, or real providers."
        );
        tracing::warn!("{warning}");
        lines.push(warning);
    }
    lines
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_passwords_are_redacted() {
        assert_eq!(super::redact_url("postgres://me:secret@127.0.0.1:5432/test"), "postgres://me:***@127.0.0.1:5432/test");
        assert_eq!(super::redact_url("postgres://me:p%40ss@db/test?application_name=a@b"), "postgres://me:***@db/test?application_name=a@b");
        assert_eq!(super::redact_url("sqlite://mpapi.db?mode=rwc"), "sqlite://mpapi.db?mode=rwc");
        assert_eq!(super::redact_url("postgres://db/test?user=me&password=secret&sslmode=require"), "postgres://db/test?user=me&password=***&sslmode=require");
        // An unencoded `#` ends the URL's authority early: nothing of it is shown.
        let unparsable = super::redact_url("postgres://me:p#ss@db/test");
        assert!(!unparsable.contains("p#ss") && !unparsable.contains("ss@") && unparsable.starts_with("postgres:"), "{unparsable}");
    }
}
