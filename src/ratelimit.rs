//! Per-client-IP request limits (heating 000 §7: 100 requests per IP per 15 minutes), refused
//! with the API's own 429 and a `Retry-After` header. (The application's own 429s carry their
//! `Retry-After` in the operation's typed output, as the contract declares it.)
//!
//! The limiter is governor's GCRA keyed by IP: a burst of `requests`, refilled evenly over the
//! window (one request every 9 s for 100 per 15 min), so a client never gets more than the
//! documented number in any window. Operations called by servers rather than users (WeChat Pay
//! notifies) are exempt: their retries come from a few egress IPs.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// An IP limiter and how its API words a refusal.
#[derive(Clone)]
pub struct IpLimit {
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    /// The API's own 429 body, given the seconds to wait.
    refuse: fn(u64) -> Response,
    /// Paths that do not count (server-to-server callbacks).
    exempt: Arc<[&'static str]>,
    /// Whether the client IP is the last `X-Forwarded-For` entry (behind a trusted proxy).
    trust_forwarded_for: bool,
}

impl IpLimit {
    /// `requests` per `window` per IP. A background task forgets IPs whose budget is full again,
    /// so the table does not grow with every client ever seen.
    pub fn new(
        requests: u32,
        window: Duration,
        refuse: fn(u64) -> Response,
        exempt: Vec<&'static str>,
        trust_forwarded_for: bool,
    ) -> IpLimit {
        let burst = NonZeroU32::new(requests.max(1)).expect("max(1) is non-zero");
        let period = (window / burst.get()).max(Duration::from_nanos(1));
        let quota = Quota::with_period(period).expect("a non-zero period").allow_burst(burst);
        let limiter = Arc::new(RateLimiter::keyed(quota));
        let weak = Arc::downgrade(&limiter);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                let Some(limiter) = weak.upgrade() else { break };
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        });
        IpLimit { limiter, refuse, exempt: exempt.into(), trust_forwarded_for }
    }

    fn client_ip(&self, request: &Request) -> IpAddr {
        let forwarded = self
            .trust_forwarded_for
            .then(|| request.headers().get("x-forwarded-for")?.to_str().ok()?.rsplit(',').next()?.trim().parse().ok())
            .flatten();
        forwarded
            .or_else(|| request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()))
            .unwrap_or(IpAddr::from([127, 0, 0, 1]))
    }
}

/// The middleware: count the request against its IP, refusing with the API's 429 and
/// `Retry-After` (set here too, whatever the API's refusal carries: the header is the limit's
/// promise to the client).
pub async fn middleware(limit: IpLimit, request: Request, next: Next) -> Response {
    if !limit.exempt.contains(&request.uri().path()) {
        let ip = limit.client_ip(&request);
        if let Err(not_until) = limit.limiter.check_key(&ip) {
            let wait = not_until.wait_time_from(DefaultClock::default().now()).as_secs() + 1;
            let mut response = (limit.refuse)(wait);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait));
            return response;
        }
    }
    next.run(request).await
}
