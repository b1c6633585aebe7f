//! Verification codes sent by SMS: one store for every API, keyed by (API, subject, purpose) —
//! the subject is the phone, or a key the API hands its client (community 002 `key`). Each API
//! states its [`CodePolicy`]: length, lifetime, resend interval, attempts, a daily cap per phone
//! and, where the API's document sets no per-client limit of its own, a cap per client address
//! across phones (against SMS pumping). Codes are single use and stored as keyed digests.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::pii::{Vault, mask_phone};
use crate::providers::SmsProvider;
use crate::ratelimit::{BudgetError, Budgets, Window, client_key};
use crate::storage::identity::NewCode;
use crate::storage::{Db, StorageError};

/// How one API's codes behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodePolicy {
    /// Digits per code.
    pub length: usize,
    /// Never start with 0 (codes a client sends back as a JSON integer).
    pub no_leading_zero: bool,
    /// How long a code is good for.
    pub ttl: Duration,
    /// How long a phone waits between two codes of this API.
    pub resend_interval: Duration,
    /// Wrong guesses a code survives; the next one kills it.
    pub max_attempts: i32,
    /// Codes one phone may be sent by this API in 24 hours.
    pub daily_cap: u64,
    /// Codes one client address may have sent, to any phones, by this API within a window
    /// (`None`: no cap but the API's own limits).
    pub per_client: Option<ClientCap>,
}

/// A cap on the codes sent at one client address's request: without it, an anonymous client
/// could have codes sent to phone after phone (each within its own daily cap), at the SMS
/// account's cost. Counted in the shared budgets ([`Budgets`], scope `<api>.code-sends`), so it
/// holds across instances; a sliding window ([`Window`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientCap {
    /// Codes per window.
    pub codes: u32,
    /// The window.
    pub window: Duration,
}

impl ClientCap {
    /// 30 codes an hour per client address: far more than the people behind one address (a
    /// household, an office, a carrier's NAT) ask for when signing in, and 720 a day at most
    /// where pumping would send as many as it could.
    pub const STANDARD: ClientCap = ClientCap { codes: 30, window: Duration::from_secs(3600) };
}

impl CodePolicy {
    /// Six digits, five minutes, one code a minute per phone, five wrong guesses, ten codes a
    /// day per phone, [`ClientCap::STANDARD`] per client address: what heating's document states
    /// (000 §1.1, §7, and the caps against SMS pumping it is silent on), and the policy of an
    /// API whose document states none (o2o).
    pub const STANDARD: CodePolicy = CodePolicy {
        length: 6,
        no_leading_zero: false,
        ttl: Duration::from_secs(300),
        resend_interval: Duration::from_secs(60),
        max_attempts: 5,
        daily_cap: 10,
        per_client: Some(ClientCap::STANDARD),
    };
}

/// Which code is meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    /// The newest code sent to this phone.
    Phone(&'a str),
    /// The code sent under this key (returned by [`Codes::send`] with `keyed`).
    Key(&'a str),
}

impl Subject<'_> {
    fn as_str(&self) -> &str {
        match self {
            Subject::Phone(s) | Subject::Key(s) => s,
        }
    }
}

/// A code sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The key naming it, when sent with `keyed`.
    pub key: Option<String>,
    /// Its lifetime.
    pub ttl: Duration,
}

/// A code that checked out, not used up yet ([`Codes::consume`] does that).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    id: i64,
    /// When it was sent (ms): the time its send took the phone's slot.
    sent_at: i64,
    /// The phone the code was sent to.
    pub phone: String,
}

/// Why a code was not sent or not accepted.
#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    /// The phone had a code less than the resend interval ago; it may ask again after this many
    /// seconds.
    #[error("too soon; retry after {0} s")]
    TooSoon(u64),
    /// The phone reached the daily cap; a slot frees after this many seconds.
    #[error("daily cap reached; retry after {0} s")]
    DailyCap(u64),
    /// The client address reached its [`ClientCap`]; it may have another code sent after this
    /// many seconds.
    #[error("too many codes for this client; retry after {0} s")]
    ClientCap(u64),
    /// No such code, or not this one.
    #[error("wrong code")]
    Wrong,
    /// The code had too many wrong guesses and is dead.
    #[error("too many attempts")]
    Exhausted,
    /// The code expired.
    #[error("code expired")]
    Expired,
    /// The SMS provider failed; nothing was sent (detail logged).
    #[error("SMS not sent")]
    SendFailed,
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// One API's verification codes.
pub struct Codes {
    api: &'static str,
    policy: CodePolicy,
    db: Db,
    vault: Arc<Vault>,
    sms: Arc<dyn SmsProvider>,
    /// Where the [`ClientCap`] is counted.
    budgets: Budgets,
    clock: Clock,
}

impl std::fmt::Debug for Codes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codes").field("api", &self.api).field("policy", &self.policy).finish_non_exhaustive()
    }
}

impl Codes {
    /// API `api`'s codes under `policy`, its client cap counted in `budgets`.
    pub fn new(api: &'static str, policy: CodePolicy, db: Db, vault: Arc<Vault>, sms: Arc<dyn SmsProvider>, budgets: Budgets, clock: Clock) -> Codes {
        Codes { api, policy, db, vault, sms, budgets, clock }
    }

    /// The policy.
    pub fn policy(&self) -> &CodePolicy {
        &self.policy
    }

    fn domain(&self, subject: &str, purpose: &str) -> String {
        format!("code:{}:{subject}:{purpose}", self.api)
    }

    /// Send a new code for `purpose` to `phone` at `client`'s request (the throttle slot is taken
    /// first, so one phone's sends are serialised even across instances; then the phone's daily
    /// cap and the client's [`ClientCap`] are counted). With `keyed`, the code is filed under a
    /// new random key, returned; otherwise under the phone. A send refused by a cap or by the
    /// provider is undone: the phone may retry at once and an earlier code still works (a send
    /// the provider refused stays counted against its client).
    pub async fn send(&self, phone: &str, purpose: &str, keyed: bool, client: IpAddr) -> Result<Sent, CodeError> {
        let now = self.clock.now_ms();
        let codes = self.db.codes();
        let interval = self.policy.resend_interval.as_millis() as i64;
        if !codes.take_slot(self.api, phone, now, interval).await? {
            let wait = codes.slot_taken_at(self.api, phone).await?.map_or(interval, |at| at + interval - now);
            return Err(CodeError::TooSoon((wait.max(1000) as u64).div_ceil(1000)));
        }
        // The slot is ours, so nobody else counts or sends for this phone right now.
        const DAY_MS: i64 = 24 * 3_600_000;
        let (sent, oldest) = codes.sent_since(self.api, phone, now - DAY_MS).await?;
        if sent >= self.policy.daily_cap {
            codes.withdraw(self.api, phone, now).await?;
            let wait = oldest.map_or(DAY_MS, |at| at + DAY_MS - now);
            return Err(CodeError::DailyCap((wait.max(1000) as u64).div_ceil(1000)));
        }
        if let Some(wait_ms) = self.client_capped(client, now).await {
            codes.withdraw(self.api, phone, now).await?;
            return Err(CodeError::ClientCap((wait_ms.max(1000) as u64).div_ceil(1000)));
        }
        let code = if self.policy.no_leading_zero {
            crate::random::digits_no_leading_zero(self.policy.length)
        } else {
            crate::random::digits(self.policy.length)
        };
        let key = keyed.then(|| crate::random::hex(32));
        let subject = key.as_deref().unwrap_or(phone);
        let hash = self.vault.digest(&self.domain(subject, purpose), &code);
        let ttl_ms = self.policy.ttl.as_millis() as i64;
        let stored = codes
            .insert(NewCode { api: self.api, subject, phone, purpose, code_hash: &hash, now, expires_at: now + ttl_ms })
            .await;
        let sent = match stored {
            Ok(()) => self.sms.send_code(self.api, phone, &code, purpose, self.policy.ttl.as_secs() as u32).await.map_err(|error| {
                tracing::warn!(api = self.api, phone = mask_phone(phone), %error, "SMS provider failed");
                CodeError::SendFailed
            }),
            Err(error) => Err(error.into()),
        };
        if let Err(error) = sent {
            codes.withdraw(self.api, phone, now).await?;
            return Err(error);
        }
        Ok(Sent { key, ttl: self.policy.ttl })
    }

    /// Count one send against `client`'s [`ClientCap`] at `now_ms` (the client's key:
    /// [`client_key`]): `Some(ms to wait)` when the cap refuses it. When other counts of the
    /// client kept writing its budget first (many sends at once from one address), the send is
    /// refused for a second: let through, each of a burst would escape the count. When the
    /// budget store cannot answer, the send is let through (logged), as the per-IP limit does:
    /// the phone's interval and daily cap, kept beside the codes, still hold.
    async fn client_capped(&self, client: IpAddr, now_ms: i64) -> Option<i64> {
        let cap = self.policy.per_client?;
        let window = Window::new(cap.codes, cap.window);
        let scope = format!("{}.code-sends", self.api);
        match self.budgets.admit(&scope, &client_key(client), now_ms * 1000, &window, 1).await {
            Ok(admission) if admission.admitted == 0 => Some((admission.wait_us.max(0) + 999) / 1000),
            Ok(_) => None,
            Err(BudgetError::Contended) => {
                tracing::warn!(api = self.api, %client, "a client's code sends stayed contended; this one is refused for a second");
                Some(1000)
            }
            Err(error) => {
                tracing::warn!(api = self.api, %client, %error, "counting a code send against its client failed; the code is sent");
                None
            }
        }
    }

    /// Let the phone's next code go at once instead of after the resend interval that the
    /// send of `ticket`'s code started: for a step that proved the phone with it and whose next
    /// step needs another code (heating's 注册 → 登录, 000 对接注意事项 1). A slot a later send
    /// took is kept, and the day's cap still counts every code sent.
    pub async fn free_resend(&self, ticket: &Ticket) -> Result<(), CodeError> {
        Ok(self.db.codes().free_slot(self.api, &ticket.phone, ticket.sent_at).await?)
    }

    /// Check `code` against the newest unused code of `subject` for `purpose`, without using it
    /// up. Each check is claimed before comparing, so parallel guesses cannot exceed the
    /// attempts; a right guess gives its attempt back.
    pub async fn check(&self, subject: Subject<'_>, purpose: &str, code: &str) -> Result<Ticket, CodeError> {
        let codes = self.db.codes();
        let Some(sent) = codes.latest(self.api, subject.as_str(), purpose).await? else {
            return Err(CodeError::Wrong);
        };
        if self.clock.now_ms() >= sent.expires_at {
            return Err(CodeError::Expired);
        }
        if !codes.take_attempt(sent.id, self.policy.max_attempts).await? {
            return Err(CodeError::Exhausted);
        }
        if !self.vault.digest_matches(&self.domain(subject.as_str(), purpose), code, &sent.code_hash) {
            return Err(CodeError::Wrong);
        }
        codes.return_attempt(sent.id).await?;
        Ok(Ticket { id: sent.id, sent_at: sent.created_at, phone: sent.phone })
    }

    /// Use a checked code up (codes are single use); [`CodeError::Wrong`] when another request
    /// used it meanwhile.
    pub async fn consume(&self, ticket: &Ticket) -> Result<(), CodeError> {
        if self.db.codes().consume(ticket.id, self.clock.now_ms()).await? { Ok(()) } else { Err(CodeError::Wrong) }
    }

    /// [`Codes::check`] then [`Codes::consume`].
    pub async fn redeem(&self, subject: Subject<'_>, purpose: &str, code: &str) -> Result<Ticket, CodeError> {
        let ticket = self.check(subject, purpose, code).await?;
        self.consume(&ticket).await?;
        Ok(ticket)
    }
}
