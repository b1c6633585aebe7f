//! Per-client-IP request limits (heating 000 §7: 100 requests per IP per 15 minutes), answered
//! in the API's own 429 (with `Retry-After`), counted where every instance sees the same budget.
//!
//! The limit is GCRA keyed by IP: a burst of `requests`, refilled evenly over the window (one
//! request every 9 s for 100 per 15 min), the same budget across all instances: the budgets live
//! in the database
//! ([`RateLimitStore`], one conditional upsert per counting) or, when `redis_url` is set, in
//! Redis (one script call). A client's requests that arrive while its last counting is at the
//! store are counted together in the next ([`IpLimit`]'s counting task). Only requests for the
//! API's operations count ([`Limited`]); operations called by servers rather than users (WeChat
//! Pay notifies) are exempt: their retries come from a few egress IPs.
//!
//! GCRA keeps one number per client, but it is not the document's window: a client that spends
//! its burst and then one request per interval gets up to twice `requests` within one window
//! (a black-box test counted 106 admitted in 61 s). Holding it to `requests` in every window
//! needs the admissions' times (a sliding log, or per-minute counts of the last window), which
//! the stores do not keep yet.
//!
//! When the budget store cannot answer, the request goes through (logged): the limit protects
//! the service, and refusing every client while the store is away would be the outage it
//! protects against.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use futures_util::future::{BoxFuture, Either};

use crate::apis::{Api, OperationTable};
use crate::coalesce::Coalescer;
use crate::server::Routed;
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
/// newest request time counted (`seen`, see [`RateLimitStore::admit`]), ARGV now, interval,
/// window (all µs) and the requests counted. Answers {admitted, µs until the next admission}; the
/// hash moves when any is admitted, expiring when the TAT passes. µs since 1970 stay below 2^53,
/// exact in Lua's numbers.
const REDIS_GCRA: &str = r"
local interval = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local count = tonumber(ARGV[4])
local held = redis.call('HMGET', KEYS[1], 'tat', 'seen')
local tat = tonumber(held[1] or '0')
local now = math.max(tonumber(ARGV[1]), tonumber(held[2] or '0'))
if tat < now then tat = now end
local admitted = math.min(count, math.floor((now + window - tat) / interval))
if admitted > 0 then
  tat = tat + admitted * interval
  redis.call('HSET', KEYS[1], 'tat', string.format('%d', tat), 'seen', string.format('%d', now))
  redis.call('PEXPIRE', KEYS[1], math.ceil((tat - now) / 1000))
else
  admitted = 0
end
return {admitted, math.max(0, tat + interval - window - now)}
";

impl Budgets {
    /// Count `count` (≥ 1) requests of `client` against `scope` at `now_us` (µs since 1970, UTC)
    /// with `interval_us` = window / requests, admitting as many as the budget holds: see
    /// [`RateLimitStore::admit`]. Errors are the store's (database or Redis).
    pub async fn admit(&self, scope: &str, client: &str, now_us: i64, interval_us: i64, window_us: i64, count: u32) -> anyhow::Result<Admission> {
        match self {
            Budgets::Database(store) => Ok(store.admit(scope, client, now_us, interval_us, window_us, count).await?),
            Budgets::Redis { connection, namespace } => {
                static SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| redis::Script::new(REDIS_GCRA));
                let (admitted, wait_us): (i64, i64) = SCRIPT
                    .key(format!("mpapi:{namespace}:rl:{scope}:{client}"))
                    .arg(now_us)
                    .arg(interval_us)
                    .arg(window_us)
                    .arg(count.max(1))
                    .invoke_async(&mut connection.clone())
                    .await?;
                Ok(Admission { admitted: u32::try_from(admitted).unwrap_or(0), wait_us })
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
    /// The requests waiting to be counted, by client: while one counting of a client is at the
    /// budget store, that client's requests arriving meanwhile queue here and are counted
    /// together in the next one (see [`IpLimit::count`]). Only requests in flight: the budget
    /// itself is the store's.
    pending: Arc<Coalescer<String, (), Verdict>>,
}

/// What a request is told by its counting.
#[derive(Debug, Clone, Copy)]
enum Verdict {
    /// Counted and within the budget.
    Admitted,
    /// Over the budget: the next request is admitted in this many µs.
    Refused { wait_us: i64 },
    /// The budget store failed (logged once per counting): the request goes through.
    Unknown,
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
            pending: Coalescer::new("rate-limit counting", usize::MAX),
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

/// A port's routed service behind its API's per-IP limit, if the API has one: a request for one
/// of the API's operations (its exempt paths aside) is counted against its client's budget before
/// it reaches `inner`, and refused over the budget with the API's 429. The rest — documentation,
/// `/_sandbox/*`, the operations routes, paths of no operation — goes straight through, never
/// reaching the budget store.
///
/// Around the port's router and told the operation by [`crate::server::RequestLog`] (which finds
/// it for the log anyway), rather than a `Router::layer` of `axum::middleware::from_fn`: axum
/// boxes a layered route again and clones it for every request, and `from_fn` builds a boxed
/// `Next` and boxes its future besides.
#[derive(Clone)]
pub struct Limited<S> {
    limit: Option<IpLimit>,
    /// The API's operations, for a request that comes without its operation found.
    table: &'static OperationTable,
    inner: S,
}

impl<S> Limited<S> {
    /// `inner` (the port's router of `api`) behind `limit`; `None`: no limit, every request goes
    /// straight through.
    pub fn new(inner: S, api: Api, limit: Option<IpLimit>) -> Limited<S> {
        Limited { limit, table: api.table(), inner }
    }
}

impl<S> tower::Service<Request> for Limited<S>
where
    S: Routed<Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let operation = self.limit.as_ref().and_then(|_| self.table.find(request.method(), request.uri().path()));
        self.call_operation(request, operation)
    }
}

impl<S> Routed for Limited<S>
where
    S: Routed<Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    fn call_operation(&mut self, request: Request, operation: Option<usize>) -> Self::Future {
        let counted = self.limit.as_ref().filter(|limit| operation.is_some() && !limit.0.exempt.contains(&request.uri().path()));
        let Some(limit) = counted.cloned() else {
            return Either::Left(self.inner.call_operation(request, operation));
        };
        // The service `poll_ready` prepared goes with the request; a clone stays for the next call.
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        Either::Right(Box::pin(async move {
            let ip = limit.client_ip(&request).to_string();
            if let Verdict::Refused { wait_us } = limit.count(ip).await {
                let wait = u64::try_from(wait_us).unwrap_or(0).div_ceil(1_000_000).max(1);
                return Ok((limit.0.refuse)(wait, limit.0.clock.now_ms()));
            }
            ready.call_operation(request, operation).await
        }))
    }
}

impl IpLimit {
    /// Count one request of `client`. The requests of one client are counted in turns
    /// ([`Coalescer`]): the first starts a counting task; those that arrive while a counting is
    /// at the store wait and are counted together in the task's next turn, one statement (or
    /// script call) for all of them, admitted in arrival order as far as the budget holds —
    /// exactly what counting them one by one would admit. A busy client (many requests behind
    /// one NAT address, or a load test) then costs the store one write per round trip instead
    /// of one per request, and its requests no longer queue on the budget row's lock. Requests
    /// whose client went away before their turn are not counted, as they would not have been
    /// had they never reached the store.
    async fn count(&self, client: String) -> Verdict {
        let inner = self.0.clone();
        let serve = move |client: &String, turn: Vec<()>| {
            let inner = inner.clone();
            let client = client.clone();
            async move { inner.counting(&client, turn.len()).await }
        };
        // A counting task that died (a panic) or ran out of time (`coalesce::ASK_TIMEOUT`) lets
        // its requests through, as a failed store does.
        self.0.pending.ask(client, (), serve).await.unwrap_or(Verdict::Unknown)
    }
}

impl Inner {
    /// One turn of `client`'s counting: `count` requests, the verdict of each in arrival order.
    async fn counting(&self, client: &str, count: usize) -> Vec<Verdict> {
        let requests = u32::try_from(count).unwrap_or(u32::MAX);
        let now_us = self.clock.now().timestamp_micros();
        let (admitted, refused) = match self.budgets.admit(&self.scope, client, now_us, self.interval_us, self.window_us, requests).await {
            Ok(admission) => (usize::try_from(admission.admitted).unwrap_or(usize::MAX), Verdict::Refused { wait_us: admission.wait_us }),
            Err(error) => {
                tracing::error!(%error, scope = self.scope, requests, "the rate-limit budget store failed; the requests are let through");
                (0, Verdict::Unknown)
            }
        };
        // A request whose client went away meanwhile no longer listens; its admission is spent.
        (0..count).map(|n| if n < admitted { Verdict::Admitted } else { refused }).collect()
    }
}
