//! Per-client-IP request limits (heating 000 §7: 100 requests per IP per 15 minutes), answered
//! in the API's own 429 (with `Retry-After`), counted where every instance sees the same budget.
//!
//! The limit is a sliding window kept as counts per slice of it ([`Window`]): a request is
//! admitted while fewer than `requests` were admitted in the slices the last window touches, so
//! no window of that length, wherever it starts, ever holds more than `requests` admissions — a
//! client may spend its whole budget at once, and then waits until those admissions leave the
//! window (at most one slice, 1/30 of it, longer than exactly). GCRA, which this replaced, kept
//! one time per client but let a client spend its burst and then the refill: up to twice the
//! budget within one window (a black-box test counted 106 admitted in 61 s).
//!
//! The budgets live in the database ([`RateLimitStore`]) or, when `redis_url` is set, in Redis:
//! a counting reads the client's admissions, [`Window::admit`] counts, and the write names the
//! version it read, so of two instances counting one client at once one writes and the other
//! counts again. Requests that arrive while a counting is at the store are counted together in
//! the next ([`IpLimit`]'s counting task): every client's budget of the turn read in one
//! statement and written in at most two. Only requests for the API's
//! operations count ([`Limited`]); operations called by servers rather than users (WeChat Pay
//! notifies) are exempt: their retries come from a few egress IPs.
//!
//! When the budget store cannot answer, the request goes through (logged): the limit protects
//! the service, and refusing every client while the store is away would be the outage it
//! protects against.
//!
//! [`Budgets`] also count other limits with a [`Window`] of their own: heating's binding attempts
//! per user (`HeatingService::heat_bind`), which fail closed instead, since a guess at an owner's
//! ID number must never go uncounted; and the SMS codes sent at one client address's request
//! (`identity::codes::ClientCap`, community and o2o), which let a send through when the store
//! fails, as this limit does, but refuse it when other counts kept coming first.
//!
//! A client is its address ([`ClientAddresses`], [`client_key`]): an IPv4 address, or an IPv6
//! address's /64 — what one customer's line is given, so that a client cannot take a new budget
//! with each of its 2^64 addresses.

use std::collections::{HashMap, HashSet};
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
use crate::storage::StorageError;
use crate::storage::rate_limit::{Admission, BudgetRow, BudgetWrite, RateLimitStore};

/// Slices per window: a client is refused at most one slice (1/30 of the window: 30 s of 15
/// minutes) longer than an exact log of its admissions would refuse it, and a row holds at most
/// 32 counts whatever the budget (31 when the window in µs divides by 30).
const SLICES: i64 = 30;

/// How many times (the first included) a client's requests are counted while other instances
/// keep writing its budget first; then the counting gives up: the per-IP limit refuses the
/// request for a second (logged), and a binding attempt ([`BudgetError::Contended`]) is not
/// tried (500).
const MAX_ATTEMPTS: usize = 16;

/// A limit of `requests` per `window_us` per client, as a sliding window over slices of
/// `slice_us` (window / [`SLICES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    requests: i64,
    window_us: i64,
    slice_us: i64,
}

/// A client's admissions within the last window: counts by slice (the time's µs / the slice's
/// length), oldest first, none zero, and the newest request time counted. Stored as text,
/// `slice:count,slice:count` ([`Spent::encode`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spent {
    /// (slice, admissions), oldest first.
    pub slices: Vec<(i64, i64)>,
    /// The newest request time counted (µs since 1970): instances read their clocks before they
    /// wait for the store, so requests reach it out of time order; each is counted at no earlier
    /// time than this, or a burst's last request, stamped a few ms before one already counted,
    /// would be counted in an older slice.
    pub seen_us: i64,
}

impl Spent {
    /// `slice:count,…`, oldest first.
    pub fn encode(&self) -> String {
        use std::fmt::Write as _;
        let mut text = String::with_capacity(self.slices.len() * 16);
        for (slice, count) in &self.slices {
            let comma = if text.is_empty() { "" } else { "," };
            let _ = write!(text, "{comma}{slice}:{count}");
        }
        text
    }

    /// What [`Spent::encode`] wrote, with `seen_us`; `None` for text it did not write.
    pub fn decode(text: &str, seen_us: i64) -> Option<Spent> {
        let mut slices = Vec::new();
        for pair in text.split(',').filter(|pair| !pair.is_empty()) {
            let (slice, count) = pair.split_once(':')?;
            slices.push((slice.parse().ok()?, count.parse().ok()?));
        }
        Some(Spent { slices, seen_us })
    }
}

impl Window {
    /// `requests` per `window` (both at least 1).
    pub fn new(requests: u32, window: Duration) -> Window {
        let window_us = i64::try_from(window.as_micros()).unwrap_or(i64::MAX / 4).max(1);
        Window { requests: i64::from(requests.max(1)), window_us, slice_us: (window_us / SLICES).max(1) }
    }

    fn slice(&self, at_us: i64) -> i64 {
        at_us.div_euclid(self.slice_us)
    }

    /// Count `count` (≥ 1) requests at `now_us` against what the client `spent`: the first
    /// `admitted` go on. A request is admitted while fewer than `requests` admissions lie in the
    /// slices from the one holding `at − window` to the one holding `at` (`at`: `now_us`, or the
    /// newest time counted if later). Those slices cover the window ending at `at`, so every
    /// window holds at most `requests`: the last admission of any window saw all the earlier
    /// ones of that window counted. Answers what to store (`None` when nothing was admitted:
    /// nothing changes) and the admission, whose wait is from `now_us` until the oldest
    /// admissions that must go have left the window (0 while one more would be admitted).
    pub fn admit(&self, spent: &Spent, now_us: i64, count: u32) -> (Option<Spent>, Admission) {
        let at = now_us.max(spent.seen_us);
        let oldest = self.slice(at - self.window_us);
        let mut slices: Vec<(i64, i64)> = spent.slices.iter().copied().filter(|(slice, _)| *slice >= oldest).collect();
        let used: i64 = slices.iter().map(|(_, n)| n).sum();
        let admitted = i64::from(count.max(1)).min(self.requests - used).max(0);
        if admitted > 0 {
            let newest = self.slice(at);
            match slices.last_mut() {
                Some((slice, n)) if *slice == newest => *n += admitted,
                _ => slices.push((newest, admitted)),
            }
        }
        // The next request fits once enough of the oldest admissions have left: slice `s` leaves
        // when `at − window` reaches the slice after it.
        let mut left = used + admitted;
        let mut wait_us = 0;
        for (slice, n) in &slices {
            if left < self.requests {
                break;
            }
            left -= n;
            wait_us = ((slice + 1) * self.slice_us + self.window_us - now_us).max(0);
        }
        let updated = (admitted > 0).then_some(Spent { slices, seen_us: at });
        (updated, Admission { admitted: u32::try_from(admitted).unwrap_or(u32::MAX), wait_us })
    }

    /// When every admission in `spent` has left the window (µs): the row may go after it.
    pub fn expires_us(&self, spent: &Spent) -> i64 {
        spent.slices.last().map_or(spent.seen_us, |(slice, _)| (slice + 1) * self.slice_us + self.window_us)
    }
}

/// Where budgets are kept.
#[derive(Clone)]
pub enum Budgets {
    /// The `rate_window` table of the server's database.
    Database(RateLimitStore),
    /// Redis, one hash per limit and client (`mpapi:<namespace>:rw:<scope>:<client>`: `spent`,
    /// `seen`, `version`), expiring when all of it has left the window. (`rl:` keys were the
    /// GCRA budgets of earlier versions: instances of both, during a rolling upgrade, each keep
    /// their own.)
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

/// Write a budget's hash if its version is still the one read (atomic on the server): `KEYS[1]`
/// the hash, `ARGV` the version read ('' for none), the version to write, spent, seen (µs) and the
/// ms until it expires. Answers 1 when written, 0 when another writer came first.
const REDIS_SAVE: &str = r"
if (redis.call('HGET', KEYS[1], 'version') or '') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'spent', ARGV[3], 'seen', ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.max(1, tonumber(ARGV[5])))
return 1
";

/// Why a counting has no answer.
#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    /// The store failed (database or Redis).
    #[error(transparent)]
    Store(#[from] anyhow::Error),
    /// Other instances wrote the client's budget first [`MAX_ATTEMPTS`] times in a row: the
    /// client is sending many requests to several instances at once.
    #[error("other instances wrote the budget first {MAX_ATTEMPTS} times")]
    Contended,
}

impl Budgets {
    /// Count `count` (≥ 1) requests of `client` against `scope`'s `window` at `now_us` (µs
    /// since 1970, UTC), admitting as many as the budget holds: [`Budgets::admit_many`] for one
    /// client.
    pub async fn admit(&self, scope: &str, client: &str, now_us: i64, window: &Window, count: u32) -> Result<Admission, BudgetError> {
        self.admit_many(scope, &[(client, count)], now_us, window).await.pop().unwrap_or(Err(BudgetError::Contended))
    }

    /// Count the requests of several clients (distinct; `count` ≥ 1 each) against `scope`'s
    /// `window` at `now_us` (µs since 1970, UTC), admitting as many of each as its budget holds
    /// ([`Window::admit`]); answers in the order of `clients`. Tries
    /// ([`Budgets::try_admit_many`]) until every budget is written or nothing was admitted,
    /// the clients another writer came first for again after a short random pause, at most
    /// [`MAX_ATTEMPTS`] times ([`BudgetError::Contended`]). Counting n requests of a client at
    /// once admits exactly what counting them one after another at `now_us` would.
    pub async fn admit_many(&self, scope: &str, clients: &[(&str, u32)], now_us: i64, window: &Window) -> Vec<Result<Admission, BudgetError>> {
        let mut answers: Vec<Option<Result<Admission, BudgetError>>> = clients.iter().map(|_| None).collect();
        let mut open: Vec<usize> = (0..clients.len()).collect();
        for attempt in 0..MAX_ATTEMPTS {
            if open.is_empty() {
                break;
            }
            if attempt > 0 {
                contention_pause().await;
            }
            let trying: Vec<(&str, u32)> = open.iter().map(|&n| clients[n]).collect();
            let tried = self.try_admit_many(scope, &trying, now_us, window).await;
            open = open
                .into_iter()
                .zip(tried)
                .filter_map(|(n, tried)| match tried {
                    Ok(None) => Some(n),
                    Ok(Some(admission)) => {
                        answers[n] = Some(Ok(admission));
                        None
                    }
                    Err(error) => {
                        answers[n] = Some(Err(error));
                        None
                    }
                })
                .collect();
        }
        answers.into_iter().map(|answer| answer.unwrap_or(Err(BudgetError::Contended))).collect()
    }

    /// One try of [`Budgets::admit_many`]: each budget read, counted, and written only if no
    /// other writer came between — in the database one read and at most two writes for up to
    /// [`CLIENTS_PER_STATEMENT`] clients, so requests of many clients arriving together cost the
    /// store about what one client's do; in Redis a read and a script call per client. `None`
    /// for a client another writer came first for (nothing counted: try again).
    ///
    /// A write names the version it read; a new budget's first version is its time (µs), never
    /// a version of the budget it replaces (pruned, or expired in Redis, after all its
    /// admissions left the window), which a counting that read the old one could otherwise
    /// overwrite. A stored budget this code cannot read is logged and counted from empty.
    pub async fn try_admit_many(&self, scope: &str, clients: &[(&str, u32)], now_us: i64, window: &Window) -> Vec<Result<Option<Admission>, BudgetError>> {
        match self {
            Budgets::Database(store) => {
                let chunks = clients.chunks(CLIENTS_PER_STATEMENT).map(|chunk| try_in_database(store, scope, chunk, now_us, window));
                futures_util::future::join_all(chunks).await.into_iter().flatten().collect()
            }
            Budgets::Redis { connection, namespace } => {
                let each = clients.iter().map(|(client, count)| Self::try_in_redis(connection, namespace, scope, client, now_us, window, *count));
                futures_util::future::join_all(each).await
            }
        }
    }

    /// [`Budgets::try_admit_many`] of one client in Redis: a read and a script call.
    async fn try_in_redis(
        connection: &redis::aio::ConnectionManager,
        namespace: &str,
        scope: &str,
        client: &str,
        now_us: i64,
        window: &Window,
        count: u32,
    ) -> Result<Option<Admission>, BudgetError> {
        let key = Self::redis_key(namespace, scope, client);
        let row = Self::redis_load(connection, &key).await?;
        let (updated, admission) = window.admit(&spent_of(scope, client, row.as_ref()), now_us, count);
        let Some(updated) = updated else { return Ok(Some(admission)) };
        let read = row.map(|r| r.version);
        let next = read.map_or(updated.seen_us, |v| v + 1);
        let written = Self::redis_save(connection, &key, read, next, &updated, (window.expires_us(&updated) - now_us).max(0)).await?;
        Ok(written.then_some(admission))
    }

    fn redis_key(namespace: &str, scope: &str, client: &str) -> String {
        format!("mpapi:{namespace}:rw:{scope}:{client}")
    }

    /// The budget hash at `key`, if there is one.
    async fn redis_load(connection: &redis::aio::ConnectionManager, key: &str) -> anyhow::Result<Option<BudgetRow>> {
        let (spent, seen, version): (Option<String>, Option<i64>, Option<i64>) =
            redis::cmd("HMGET").arg(key).arg(&["spent", "seen", "version"]).query_async(&mut connection.clone()).await?;
        Ok(match (spent, seen, version) {
            (Some(spent), Some(seen_us), Some(version)) => Some(BudgetRow { spent, seen_us, version }),
            _ => None,
        })
    }

    /// Write the budget hash at `key` at version `next` if it is still at `read` ([`REDIS_SAVE`]),
    /// expiring in `expires_in_us` (rounded up to ms); false: another writer came first.
    async fn redis_save(connection: &redis::aio::ConnectionManager, key: &str, read: Option<i64>, next: i64, spent: &Spent, expires_in_us: i64) -> anyhow::Result<bool> {
        static SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| redis::Script::new(REDIS_SAVE));
        let written: i64 = SCRIPT
            .key(key)
            .arg(read.map(|v| v.to_string()).unwrap_or_default())
            .arg(next)
            .arg(spent.encode())
            .arg(spent.seen_us)
            .arg((expires_in_us + 999) / 1000)
            .invoke_async(&mut connection.clone())
            .await?;
        Ok(written == 1)
    }
}

/// Up to this many clients' budgets are read in one statement and written in at most two.
pub const CLIENTS_PER_STATEMENT: usize = 128;

/// Concurrent writers of one budget: spread their next tries over up to 2 ms.
async fn contention_pause() {
    let pause = u64::from(u16::from_le_bytes(crate::random::bytes::<2>())) % 2_000;
    tokio::time::sleep(Duration::from_micros(pause)).await;
}

/// What `client` spent, as its stored row says (`None`: nothing); a row this code cannot read
/// is logged and counted from empty.
fn spent_of(scope: &str, client: &str, row: Option<&BudgetRow>) -> Spent {
    match row {
        Some(row) => Spent::decode(&row.spent, row.seen_us).unwrap_or_else(|| {
            tracing::error!(scope, client, spent = row.spent, "unreadable rate-limit budget: counted from empty");
            Spent::default()
        }),
        None => Spent::default(),
    }
}

/// [`Budgets::try_admit_many`] in the database for at most [`CLIENTS_PER_STATEMENT`] clients:
/// their budgets read in one statement, those that admitted any written in at most two (the
/// rows read updated, the new ones inserted). A client that admitted none is answered whatever
/// the writes do; one whose write failed is answered the store's failure.
async fn try_in_database(store: &RateLimitStore, scope: &str, clients: &[(&str, u32)], now_us: i64, window: &Window) -> Vec<Result<Option<Admission>, BudgetError>> {
    let names: Vec<&str> = clients.iter().map(|(client, _)| *client).collect();
    let rows = match store.load_many(scope, &names).await {
        Ok(rows) => rows,
        Err(error) => return clients.iter().map(|_| Err(store_failed(&error))).collect(),
    };
    let mut counted = Vec::with_capacity(clients.len());
    let (mut updates, mut inserts) = (Vec::new(), Vec::new());
    for &(client, count) in clients {
        let row = rows.get(client);
        let (updated, admission) = window.admit(&spent_of(scope, client, row), now_us, count);
        let Some(updated) = updated else {
            counted.push((client, admission, None));
            continue;
        };
        let read = row.map(|r| r.version);
        let write = BudgetWrite {
            client,
            read,
            next: read.map_or(updated.seen_us, |v| v + 1),
            spent: updated.encode(),
            seen_us: updated.seen_us,
            expires_us: window.expires_us(&updated),
        };
        counted.push((client, admission, Some(read.is_some())));
        if read.is_some() { updates.push(write) } else { inserts.push(write) }
    }
    let updated = store.update_many(scope, &updates).await;
    // A store that just failed is not asked again (each ask may wait for a connection): the
    // inserts are answered its failure.
    let inserted = match &updated {
        Ok(_) => Some(store.insert_many(scope, &inserts).await),
        Err(_) => None,
    };
    let answer = |written: &Result<HashSet<String>, StorageError>, client: &str, admission: Admission| match written {
        Ok(written) => Ok(written.contains(client).then_some(admission)),
        Err(error) => Err(store_failed(error)),
    };
    counted
        .into_iter()
        .map(|(client, admission, write)| match (write, &inserted) {
            (None, _) => Ok(Some(admission)),
            (Some(true), _) | (Some(false), None) => answer(&updated, client, admission),
            (Some(false), Some(inserted)) => answer(inserted, client, admission),
        })
        .collect()
}

/// A budget store's failure, for each client it leaves unanswered.
fn store_failed(error: &StorageError) -> BudgetError {
    BudgetError::Store(anyhow::anyhow!("{error}"))
}

/// An IP limit and how its API words a refusal.
#[derive(Clone)]
pub struct IpLimit(Arc<Inner>);

struct Inner {
    /// The limit's name in the budget store: `<api>:ip`.
    scope: String,
    budgets: Budgets,
    /// The limit.
    window: Window,
    /// The API's own 429, given the seconds to wait and now (ms); it carries `Retry-After`.
    refuse: fn(u64, i64) -> Response,
    /// The server's clock (budgets and the answer's timestamp).
    clock: crate::clock::Clock,
    /// Paths that do not count (server-to-server callbacks).
    exempt: Vec<&'static str>,
    /// Whether the client IP is the last `X-Forwarded-For` entry (behind a trusted proxy).
    trust_forwarded_for: bool,
    /// The requests waiting to be counted (each its client): while one counting is at the budget
    /// store, the requests arriving meanwhile queue here and are counted together in the next
    /// one (see [`IpLimit::count`]). Only requests in flight: the budgets themselves are the
    /// store's.
    pending: Arc<Coalescer<(), String, Verdict>>,
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
    /// Another instance wrote the client's budget first: nothing counted, count again.
    Again,
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
    /// `rule.requests` per `rule.window` per IP, kept in `budgets`, refused by `refuse`. The
    /// database's budgets that are whole again are pruned by every API's housekeeping
    /// (`serve::housekeeping`); Redis's expire by themselves.
    pub fn new(rule: IpLimitRule, budgets: Budgets, refuse: fn(u64, i64) -> Response, clock: crate::clock::Clock) -> IpLimit {
        let inner = Arc::new(Inner {
            scope: format!("{}:ip", rule.api),
            budgets,
            window: Window::new(rule.requests, rule.window),
            refuse,
            clock,
            exempt: rule.exempt,
            trust_forwarded_for: rule.trust_forwarded_for,
            pending: Coalescer::new("rate-limit counting", usize::MAX),
        });
        IpLimit(inner)
    }

    fn client_ip(&self, request: &Request) -> IpAddr {
        ClientAddresses { trust_forwarded_for: self.0.trust_forwarded_for }.of(request.headers(), request.extensions())
    }
}

/// How a request's client address is found, for the limits kept per client: the peer's address
/// (`ConnectInfo`, which the real server attaches to every request), or, behind a trusted proxy
/// (`trust_forwarded_for`), the last entry of the last `X-Forwarded-For` header — the one that
/// proxy appended, the only one a client cannot forge (a client's own header comes first, before
/// the proxy's line or entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddresses {
    /// Take the last `X-Forwarded-For` entry.
    pub trust_forwarded_for: bool,
}

impl ClientAddresses {
    /// The client address of a request with these `headers` and `extensions`, IPv4-mapped IPv6
    /// addresses as IPv4 (127.0.0.1 when neither names one: a request served without its peer's
    /// address, as in tests). A trusted entry that is no address (`1.2.3.4:5678` and
    /// `[2001:db8::1]:443` are read as theirs) is logged, and the peer's taken.
    pub fn of(&self, headers: &axum::http::HeaderMap, extensions: &axum::http::Extensions) -> IpAddr {
        let forwarded = if self.trust_forwarded_for { Self::forwarded(headers) } else { None };
        forwarded
            .or_else(|| extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()))
            .unwrap_or(IpAddr::from([127, 0, 0, 1]))
            .to_canonical()
    }

    /// The last entry of the last `X-Forwarded-For` header, when it is an address.
    fn forwarded(headers: &axum::http::HeaderMap) -> Option<IpAddr> {
        let line = headers.get_all("x-forwarded-for").iter().next_back()?;
        let entry = line.to_str().ok().and_then(|line| line.rsplit(',').next()).map(str::trim).unwrap_or_default();
        let parsed = entry.parse::<IpAddr>().ok().or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()));
        if parsed.is_none() {
            tracing::warn!(entry, "the trusted X-Forwarded-For's last entry is no address; the peer's address is taken");
        }
        parsed
    }
}

/// The key a client's budgets are kept under: an IPv4 address as written (`203.0.113.7`), an
/// IPv6 address as its /64 (`2001:db8:1:2::/64`).
pub fn client_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            format!("{}/64", std::net::Ipv6Addr::from(prefix))
        }
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
            let ip = client_key(limit.client_ip(&request));
            if let Verdict::Refused { wait_us } = limit.count(ip).await {
                let wait = u64::try_from(wait_us).unwrap_or(0).div_ceil(1_000_000).max(1);
                return Ok((limit.0.refuse)(wait, limit.0.clock.now_ms()));
            }
            ready.call_operation(request, operation).await
        }))
    }
}

impl IpLimit {
    /// Count one request of `client`. Requests are counted in turns ([`Coalescer`], one queue
    /// for every client): the first starts a counting task; those that arrive while a counting
    /// is at the store wait and are counted together in the task's next turn — every client's
    /// requests in one read and at most two writes ([`Budgets::try_admit_many`]), each client's
    /// admitted in arrival order as far as its budget holds, exactly what counting them one by
    /// one would admit. Many clients, or one busy client (many requests behind one NAT address,
    /// or a load test), then cost the store a few statements per turn instead of two per
    /// request, and a client's requests no longer race each other for its budget's version.
    /// Requests whose client another instance wrote first during the turn queue again, after a
    /// short random pause, for at most [`MAX_ATTEMPTS`] turns (counted then after requests that
    /// arrived meanwhile): a turn is one try, so a client whose budget another instance keeps
    /// writing first is not tried again and again while the other clients wait. Requests
    /// whose client went away before their turn are not counted, as they would not have been
    /// had they never reached the store.
    async fn count(&self, client: String) -> Verdict {
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                contention_pause().await;
            }
            let inner = self.0.clone();
            let serve = move |_: &(), turn: Vec<String>| {
                let inner = inner.clone();
                async move { inner.counting(&turn).await }
            };
            // A counting task that died (a panic) or ran out of time (`coalesce::ASK_TIMEOUT`)
            // lets its requests through, as a failed store does.
            match self.0.pending.ask((), client.clone(), serve).await.unwrap_or(Verdict::Unknown) {
                Verdict::Again => continue,
                verdict => return verdict,
            }
        }
        // Not the store's failure: this client is sending to several instances faster than its
        // budget can be written. Letting it through uncounted would lift its limit.
        tracing::warn!(scope = self.0.scope, client, "the budget stayed contended; the request is refused for a second");
        Verdict::Refused { wait_us: 1_000_000 }
    }
}

impl Inner {
    /// One turn of counting: the requests of `turn` (each its client, in arrival order), the
    /// verdict of each.
    async fn counting(&self, turn: &[String]) -> Vec<Verdict> {
        // Each client once, in the order of its first request, with its number of requests.
        let mut clients: Vec<(&str, u32)> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for client in turn {
            let n = *index.entry(client.as_str()).or_insert_with(|| {
                clients.push((client.as_str(), 0));
                clients.len() - 1
            });
            clients[n].1 += 1;
        }
        let now_us = self.clock.now().timestamp_micros();
        let tried = self.budgets.try_admit_many(&self.scope, &clients, now_us, &self.window).await;
        let mut failure_logged = false;
        let outcomes: Vec<(usize, Verdict)> = tried
            .into_iter()
            .map(|tried| match tried {
                Ok(Some(admission)) => (usize::try_from(admission.admitted).unwrap_or(usize::MAX), Verdict::Refused { wait_us: admission.wait_us }),
                Ok(None) => (0, Verdict::Again),
                Err(error) => {
                    if !std::mem::replace(&mut failure_logged, true) {
                        tracing::error!(%error, scope = self.scope, requests = turn.len(), "the rate-limit budget store failed; the requests are let through");
                    }
                    (0, Verdict::Unknown)
                }
            })
            .collect();
        // A request whose client went away meanwhile no longer listens; its admission is spent.
        let mut seen = vec![0usize; clients.len()];
        turn.iter()
            .map(|client| {
                let n = index[client.as_str()];
                let (admitted, otherwise) = outcomes[n];
                seen[n] += 1;
                if seen[n] <= admitted { Verdict::Admitted } else { otherwise }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::{Admission, SLICES, Spent, Window};
    use std::time::Duration;

    const S: i64 = 1_000_000;
    const T0: i64 = 1_800_000_000 * S;

    /// `requests` per 15 minutes (a slice is 30 s).
    fn limit(requests: u32) -> Window {
        Window::new(requests, Duration::from_secs(900))
    }

    /// Count one counting, keeping what the window answers to store.
    fn count(window: &Window, spent: &mut Spent, at: i64, requests: u32) -> Admission {
        let (updated, admission) = window.admit(spent, at, requests);
        if let Some(updated) = updated {
            *spent = updated;
        }
        admission
    }

    #[test]
    fn the_whole_budget_at_once_then_nothing_until_it_has_left_the_window() {
        let window = limit(100);
        let mut spent = Spent::default();
        // 100 at once (the document's 100 per 15 minutes), then none: not one more request in
        // the 15 minutes, where GCRA gave one every 9 s.
        assert_eq!(count(&window, &mut spent, T0, 100).admitted, 100);
        let refused = count(&window, &mut spent, T0 + 61 * S, 6);
        assert_eq!(refused.admitted, 0);
        // The burst leaves once its slice is wholly older than the window: 900 s after the end
        // of the 30 s slice holding T0 (T0 starts a slice here).
        assert_eq!(refused.wait_us, T0 + 30 * S + 900 * S - (T0 + 61 * S));
        assert_eq!(count(&window, &mut spent, T0 + 929 * S, 1).admitted, 0);
        let back = T0 + 930 * S;
        assert_eq!(count(&window, &mut spent, back, 150), Admission { admitted: 100, wait_us: 930 * S });
        assert_eq!(Spent::decode(&spent.encode(), spent.seen_us), Some(spent.clone()));
    }

    /// Whatever arrives, no window of 15 minutes ever holds more than the budget; and never
    /// fewer than an exact log of admissions would have admitted in the window minus a slice.
    #[test]
    fn no_window_anywhere_holds_more_than_the_budget() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |bound: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % bound
        };
        for requests in [1_u32, 5, 100] {
            let window = limit(requests);
            let mut spent = Spent::default();
            let mut admitted_at = Vec::new();
            let mut at = T0 + i64::try_from(next(30 * S as u64)).unwrap();
            for _ in 0..3_000 {
                let gap = if next(4) == 0 { 120 * S as u64 } else { 3 * S as u64 };
                at += i64::try_from(next(gap)).unwrap();
                let batch = u32::try_from(1 + next(8)).unwrap();
                let admission = count(&window, &mut spent, at, batch);
                admitted_at.extend(std::iter::repeat_n(at, admission.admitted as usize));
                // Refused only when an exact log (the last window plus one slice) is full.
                if admission.admitted < batch {
                    let recent = admitted_at.iter().filter(|t| **t > at - 930 * S).count();
                    assert!(recent >= requests as usize, "refused with {recent} admissions in 930 s");
                }
            }
            for (n, start) in admitted_at.iter().enumerate() {
                let within = admitted_at[n..].iter().take_while(|t| **t < start + 900 * S).count();
                assert!(within <= requests as usize, "{within} admissions in the 15 minutes from {start} (budget {requests})");
            }
            assert!(admitted_at.len() > 3 * requests as usize, "the budget came back: {}", admitted_at.len());
        }
    }

    #[test]
    fn a_steady_client_within_the_budget_is_never_refused() {
        let window = limit(100);
        let mut spent = Spent::default();
        // One request every (15 min + a slice) / 99: 96 per 15 minutes.
        let period = (900 * S + 900 * S / SLICES) / 99 + 1;
        for n in 0..400 {
            assert_eq!(count(&window, &mut spent, T0 + n * period, 1).admitted, 1, "request {n}");
        }
        assert!(spent.slices.len() <= SLICES as usize + 1, "{spent:?}");
    }

    #[test]
    fn requests_counted_together_take_what_counting_them_one_by_one_would() {
        let window = limit(100);
        let (mut together, mut one_by_one) = (Spent::default(), Spent::default());
        for (at, batch) in [(T0, 60), (T0 + S, 70), (T0 + 400 * S, 5), (T0 + 940 * S, 30), (T0 + 960 * S, 90)] {
            let admitted = count(&window, &mut together, at, batch).admitted;
            let singly = (0..batch).filter(|_| count(&window, &mut one_by_one, at, 1).admitted == 1).count();
            assert_eq!(admitted as usize, singly, "at {at}");
        }
        assert_eq!(together, one_by_one);
    }

    /// Instances stamp requests before they reach the store: one stamped before the newest
    /// counted is counted at the newest, so it neither lands in an older slice (leaving the
    /// window early) nor is refused while the budget holds.
    #[test]
    fn a_request_stamped_before_the_newest_counted_is_counted_at_the_newest() {
        let window = limit(3);
        let mut spent = Spent::default();
        // The slice boundary T0 + 30 s lies between the stamps.
        for at in [T0 + 30 * S + 5_000, T0 + 29 * S, T0 + 30 * S + 2_000] {
            assert_eq!(count(&window, &mut spent, at, 1).admitted, 1, "stamped {at}");
        }
        assert_eq!(spent.slices, vec![(window.slice(T0 + 30 * S), 3)]);
        // Its wait counts from its own stamp.
        let refused = count(&window, &mut spent, T0, 1);
        assert_eq!(refused, Admission { admitted: 0, wait_us: 960 * S });
    }
}
