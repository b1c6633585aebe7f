//! Per-client-IP request limits (heating 000 §7: 100 requests per IP per 15 minutes), answered
//! in the API's own 429 (with `Retry-After`), counted where every instance sees the same budget.
//!
//! The limit is GCRA keyed by IP: a burst of `requests`, refilled evenly over the window (one
//! request every 9 s for 100 per 15 min), so a client never gets more than the documented number
//! in any window — across all instances: the budgets live in the database
//! ([`RateLimitStore`], one conditional upsert per counted request) or, when `redis_url` is set,
//! in Redis (one script call). Operations called by servers rather than users (WeChat Pay
//! notifies) are exempt: their retries come from a few egress IPs.
//!
//! When the budget store cannot answer, the request goes through (logged): the limit protects
//! the service, and refusing every client while the store is away would be the outage it
//! protects against.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::Response;

use crate::storage::rate_limit::{Admission, RateLimitStore};

/// Where budgets are kept.
#[derive(Clone)]
pub enum Budgets {
    /// The `rate_limit` table of the server's database.
    Database(RateLimitStore),
    /// Redis, one key per limit and client (`mpapi:<namespace>:rl:<scope>:<client>`), expiring
    /// when the budget is whole again.
    Redis {
        /// The connection (reconnects by itself).
        connection: redis::aio::ConnectionManager,
        /// The database's own prefix (kept in the database, so every instance on it agrees):
        /// deployments, or test runs, sharing one Redis never share budgets.
        namespace: String,
    },
}

impl std::fmt::Debug for Budgets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Budgets::Database(_) => "Budgets::Database",
            Budgets::Redis { .. } => "Budgets::Redis",
        })
    }
}

/// GCRA in one Redis script (atomic on the server): KEYS[1] a hash of the client's TAT and the
/// newest request time counted (`seen`, see [`RateLimitStore::admit`]), ARGV now, interval and
/// window (all µs). Answers 0 when admitted (the hash moved, expiring when the TAT passes), else
/// the µs to wait. µs since 1970 stay below 2^53, exact in Lua's numbers.
const REDIS_GCRA: &str = r"
local interval = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local held = redis.call('HMGET', KEYS[1], 'tat', 'seen')
local tat = tonumber(held[1] or '0')
local now = math.max(tonumber(ARGV[1]), tonumber(held[2] or '0'))
if tat < now then tat = now end
local after = tat + interval
if after - window > now then return after - window - now end
redis.call('HSET', KEYS[1], 'tat', string.format('%d', after), 'seen', string.format('%d', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((after - now) / 1000))
return 0
";

impl Budgets {
    /// Count one request of `client` against `scope` at `now_us` (µs since 1970, UTC) with
    /// `interval_us` = window / requests: see [`RateLimitStore::admit`]. Errors are the store's
    /// (database or Redis).
    pub async fn admit(&self, scope: &str, client: &str, now_us: i64, interval_us: i64, window_us: i64) -> anyhow::Result<Admission> {
        match self {
            Budgets::Database(store) => Ok(store.admit(scope, client, now_us, interval_us, window_us).await?),
            Budgets::Redis { connection, namespace } => {
                static SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| redis::Script::new(REDIS_GCRA));
                let wait_us: i64 = SCRIPT
                    .key(format!("mpapi:{namespace}:rl:{scope}:{client}"))
                    .arg(now_us)
                    .arg(interval_us)
                    .arg(window_us)
                    .invoke_async(&mut connection.clone())
                    .await?;
                Ok(if wait_us > 0 { Admission::Refused { wait_us } } else { Admission::Allowed })
            }
        }
    }

    /// Forget budgets that are whole again (the database; Redis keys expire by themselves).
    async fn prune(&self, now_us: i64) -> anyhow::Result<()> {
        if let Budgets::Database(store) = self {
            store.prune(now_us).await?;
        }
        Ok(())
    }
}

/// An IP limit and how its API words a refusal.
#[derive(Clone)]
pub struct IpLimit(Arc<Inner>);

struct Inner {
    /// The limit's name in the budget store: `<api>:ip`.
    scope: String,
    budgets: Budgets,
    /// Window / requests, µs (≥ 1).
    interval_us: i64,
    /// The window, µs.
    window_us: i64,
    /// The API's own 429, given the seconds to wait and now (ms); it carries `Retry-After`.
    refuse: fn(u64, i64) -> Response,
    /// The server's clock (budgets and the answer's timestamp).
    clock: crate::clock::Clock,
    /// Paths that do not count (server-to-server callbacks).
    exempt: Vec<&'static str>,
    /// Whether the client IP is the last `X-Forwarded-For` entry (behind a trusted proxy).
    trust_forwarded_for: bool,
}

/// What [`IpLimit::new`] needs besides the budgets.
#[derive(Debug, Clone)]
pub struct IpLimitRule {
    /// The API id (the limit's scope).
    pub api: &'static str,
    /// Requests per window per IP.
    pub requests: u32,
    /// The window.
    pub window: Duration,
    /// Paths that do not count.
    pub exempt: Vec<&'static str>,
    /// Take the client IP from the last `X-Forwarded-For` entry.
    pub trust_forwarded_for: bool,
}

impl IpLimit {
    /// `rule.requests` per `rule.window` per IP, kept in `budgets`, refused by `refuse`. A
    /// background task prunes the database's budgets that are whole again every minute, until
    /// the limit is dropped.
    pub fn new(rule: IpLimitRule, budgets: Budgets, refuse: fn(u64, i64) -> Response, clock: crate::clock::Clock) -> IpLimit {
        let window_us = i64::try_from(rule.window.as_micros()).unwrap_or(i64::MAX / 4).max(1);
        let interval_us = (window_us / i64::from(rule.requests.max(1))).max(1);
        let inner = Arc::new(Inner {
            scope: format!("{}:ip", rule.api),
            budgets,
            interval_us,
            window_us,
            refuse,
            clock,
            exempt: rule.exempt,
            trust_forwarded_for: rule.trust_forwarded_for,
        });
        let weak = Arc::downgrade(&inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                if let Err(error) = inner.budgets.prune(inner.clock.now().timestamp_micros()).await {
                    tracing::warn!(%error, scope = inner.scope, "pruning the rate-limit budgets failed");
                }
            }
        });
        IpLimit(inner)
    }

    fn client_ip(&self, request: &Request) -> IpAddr {
        let forwarded = self
            .0
            .trust_forwarded_for
            .then(|| request.headers().get("x-forwarded-for")?.to_str().ok()?.rsplit(',').next()?.trim().parse().ok())
            .flatten();
        forwarded
            .or_else(|| request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()))
            .unwrap_or(IpAddr::from([127, 0, 0, 1]))
    }
}

/// The middleware: count the request against its IP, refusing with the API's 429.
pub async fn middleware(limit: IpLimit, request: Request, next: Next) -> Response {
    let inner = &limit.0;
    if !inner.exempt.contains(&request.uri().path()) {
        let ip = limit.client_ip(&request).to_string();
        let now_us = inner.clock.now().timestamp_micros();
        match inner.budgets.admit(&inner.scope, &ip, now_us, inner.interval_us, inner.window_us).await {
            Ok(Admission::Allowed) => {}
            Ok(Admission::Refused { wait_us }) => {
                let wait = u64::try_from(wait_us).unwrap_or(0).div_ceil(1_000_000).max(1);
                return (inner.refuse)(wait, inner.clock.now_ms());
            }
            Err(error) => tracing::error!(%error, scope = inner.scope, "the rate-limit budget store failed; the request is let through"),
        }
    }
    next.run(request).await
}
