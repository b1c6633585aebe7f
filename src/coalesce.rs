//! Request coalescing: callers that ask the store while an earlier ask of the same key is out
//! wait, and are asked for together in the next one — one statement for many requests.
//!
//! Nothing is cached: every caller's answer comes from an ask that started after the caller
//! arrived, so a change committed before a request (a logout on another instance) is seen by
//! it. Only the callers in flight are in process memory.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::oneshot;

use crate::storage::{ACQUIRE_TIMEOUT, BUSY_TIMEOUT, StorageError};

/// Callers waiting for their turn, queued by key. A key's first caller spawns its task, which
/// asks for the queued callers turn by turn until none is left: a turn takes every caller
/// queued, in arrival order, in asks of at most `max_turn` callers made at the same time. The
/// task runs detached, so a caller that goes away (its client disconnected) cannot strand the
/// ones queued behind it.
pub struct Coalescer<K, I, A> {
    pending: Mutex<HashMap<K, Vec<Waiting<I, A>>>>,
    max_turn: usize,
    /// What is asked for, for the log line of an ask that ran out of time.
    what: &'static str,
}

/// The longest one ask may take (the wait for a pooled connection, then its statement): past
/// it the ask is dropped, its callers are answered `None`, and the key's next turn goes ahead.
/// Without it, a statement that never returns — a connection whose peer vanished without a
/// reset, which sqlx reads with no timeout — would hold every later caller of the key behind
/// it, on every request of an API (the session check), even once the database is back; a
/// caller not coalesced would have taken a connection of its own. The pools' longest wait for
/// a connection and then for a SQLite lock ([`ACQUIRE_TIMEOUT`] + [`BUSY_TIMEOUT`], 40 s): an
/// ask that waited that long has failed on its own by then, so this bound cuts off only a
/// statement that would never end.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(ACQUIRE_TIMEOUT.as_secs() + BUSY_TIMEOUT.as_secs());

type Waiting<I, A> = (I, oneshot::Sender<A>);

/// The most passes of the scheduler a turn waits for callers still on their way. Waiting while
/// the queue grows, not just once, cut the server's CPU per authenticated read by about a fifth
/// under the read benchmark's 64 connections (by hand, alternating runs: about 50 → 41 µs).
const GATHER_PASSES: usize = 16;

impl<K, I, A> std::fmt::Debug for Coalescer<K, I, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalescer").field("what", &self.what).field("max_turn", &self.max_turn).finish_non_exhaustive()
    }
}

impl<K, I, A> Coalescer<K, I, A>
where
    K: Hash + Eq + Clone + Send + 'static,
    I: Send + 'static,
    A: Send + 'static,
{
    /// Asks for `what` (named in the log) of at most `max_turn` (≥ 1) callers: what one
    /// statement should carry (an `IN` list's length).
    pub fn new(what: &'static str, max_turn: usize) -> Arc<Self> {
        Arc::new(Coalescer { pending: Mutex::new(HashMap::new()), max_turn: max_turn.max(1), what })
    }

    /// Ask for `item` under `key`. When no task of `key` is running, one is spawned with this
    /// caller's `serve`, which then serves every caller of the key until the queue is empty (the
    /// others' `serve` is dropped unused, so it must capture nothing of one caller's): the task
    /// calls `serve(key, items)` once per ask, with the items in arrival order, and hands the
    /// n-th answer to the n-th caller. `None`: the ask gave no answer for this caller (`serve`
    /// answered fewer than it was asked, took longer than [`ASK_TIMEOUT`], or its task ended
    /// abnormally).
    pub async fn ask<F, Fut>(self: &Arc<Self>, key: K, item: I, serve: F) -> Option<A>
    where
        F: FnMut(&K, Vec<I>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<A>> + Send + 'static,
    {
        let (sender, answer) = oneshot::channel();
        let first = {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            match pending.entry(key) {
                Entry::Occupied(mut queued) => {
                    queued.get_mut().push((item, sender));
                    None
                }
                Entry::Vacant(slot) => {
                    let key = slot.key().clone();
                    slot.insert(vec![(item, sender)]);
                    Some(key)
                }
            }
        };
        if let Some(key) = first {
            tokio::spawn(turns(QueueGuard { coalescer: self.clone(), key, removed: false }, serve));
        }
        answer.await.ok()
    }
}

/// The task of one key: takes its queued callers turn by turn until none is left, then removes
/// the queue (under the lock a caller queues under, so none is left behind). Callers that went
/// away before their turn are dropped from it, unasked.
async fn turns<K, I, A, F, Fut>(mut queue: QueueGuard<K, I, A>, mut serve: F)
where
    K: Hash + Eq + Clone,
    F: FnMut(&K, Vec<I>) -> Fut,
    Fut: Future<Output = Vec<A>>,
{
    loop {
        // Let the requests already running reach the queue first: a bigger turn, at the cost of
        // passes of the scheduler's queue, not of a timer. Another pass only while the last one
        // brought callers (under load) and they do not yet fill an ask, at most
        // [`GATHER_PASSES`]; an idle caller waits one.
        let mut waiting = queue.len();
        for _ in 0..GATHER_PASSES {
            tokio::task::yield_now().await;
            let now = queue.len();
            if now == waiting || now >= queue.coalescer.max_turn {
                break;
            }
            waiting = now;
        }
        let turn: Vec<Waiting<I, A>> = {
            let coalescer = &queue.coalescer;
            let mut pending = coalescer.pending.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(queued) = pending.get_mut(&queue.key) else {
                queue.removed = true;
                return;
            };
            queued.retain(|(_, sender)| !sender.is_closed());
            if queued.is_empty() {
                pending.remove(&queue.key);
                queue.removed = true;
                return;
            }
            std::mem::take(queued)
        };
        // More callers than one ask carries: several asks at once (a pool has several
        // connections), rather than one after the other while the rest wait.
        let mut asks = Vec::new();
        let mut rest = turn;
        while !rest.is_empty() {
            let later = rest.split_off(rest.len().min(queue.coalescer.max_turn));
            let (items, senders): (Vec<I>, Vec<oneshot::Sender<A>>) = rest.into_iter().unzip();
            asks.push(answer(serve(&queue.key, items), senders, queue.coalescer.what));
            rest = later;
        }
        futures_util::future::join_all(asks).await;
    }
}

/// One ask's answers, the n-th to the n-th caller; none (the senders dropped, each caller
/// answered `None`) when it takes longer than [`ASK_TIMEOUT`], and then the ask is dropped.
async fn answer<A>(ask: impl Future<Output = Vec<A>>, senders: Vec<oneshot::Sender<A>>, what: &'static str) {
    let Ok(answers) = tokio::time::timeout(ASK_TIMEOUT, ask).await else {
        tracing::error!(what, callers = senders.len(), timeout_s = ASK_TIMEOUT.as_secs(), "a statement shared by the requests waiting for it took too long; they are answered without it");
        return;
    };
    for (sender, answer) in senders.into_iter().zip(answers) {
        // A caller that went away meanwhile no longer listens.
        let _ = sender.send(answer);
    }
}

/// A key's queue while its task runs. Should the task end without emptying it (a panic in
/// `serve`, the runtime shutting down), dropping the guard removes the queue: its callers are
/// answered `None` (their senders dropped), and the key's next caller starts a new task instead
/// of queueing behind one that is gone.
struct QueueGuard<K: Hash + Eq, I, A> {
    coalescer: Arc<Coalescer<K, I, A>>,
    key: K,
    /// The task removed the queue itself.
    removed: bool,
}

impl<K: Hash + Eq, I, A> QueueGuard<K, I, A> {
    /// Callers queued now.
    fn len(&self) -> usize {
        self.coalescer.pending.lock().unwrap_or_else(PoisonError::into_inner).get(&self.key).map_or(0, Vec::len)
    }
}

impl<K: Hash + Eq, I, A> Drop for QueueGuard<K, I, A> {
    fn drop(&mut self) {
        if !self.removed {
            self.coalescer.pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.key);
        }
    }
}

/// Rows read by id, the reads in flight together: while one statement is out, the callers
/// arriving meanwhile wait and are read in the next, one `IN (…)` list for all of them. Built
/// once with its statement (`read`: the rows of the given ids, each once, in any order); a
/// caller brings only the id.
pub struct ReadsById<V> {
    /// What is read, for [`StorageError::Unanswered`].
    what: &'static str,
    read: Arc<ReadRows<V>>,
    id_of: fn(&V) -> &str,
    coalescer: Arc<Coalescer<(), String, Result<Option<V>, StorageError>>>,
}

/// A [`ReadsById`]'s statement: the rows of the given ids.
type ReadRows<V> = dyn Fn(Vec<String>) -> BoxFuture<'static, Result<Vec<V>, StorageError>> + Send + Sync;

impl<V> std::fmt::Debug for ReadsById<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadsById").field("what", &self.what).field("coalescer", &self.coalescer).finish_non_exhaustive()
    }
}

impl<V: Clone + Send + 'static> ReadsById<V> {
    /// `what` read by `read` (given at most `per_read` ids, a power of two: [`in_list`] pads
    /// to one), each row's id `id_of`.
    pub fn new<F, Fut>(what: &'static str, per_read: usize, read: F, id_of: fn(&V) -> &str) -> ReadsById<V>
    where
        F: Fn(Vec<String>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<V>, StorageError>> + Send + 'static,
    {
        let read = Arc::new(move |ids: Vec<String>| -> BoxFuture<'static, Result<Vec<V>, StorageError>> { Box::pin(read(ids)) });
        ReadsById { what, read, id_of, coalescer: Coalescer::new(what, per_read) }
    }

    /// The row of `id` as the database has it now (`None`: no such row), read after this call
    /// began, with the other reads waiting meanwhile. Errors: the statement's, to every caller
    /// it carried; [`StorageError::Unanswered`] when its read ran past [`ASK_TIMEOUT`] or its
    /// task ended without answering.
    pub async fn read(&self, id: String) -> Result<Option<V>, StorageError> {
        let (read, id_of) = (self.read.clone(), self.id_of);
        let serve = move |_: &(), ids: Vec<String>| {
            let rows = read(in_list(&ids));
            async move { each(&ids, rows.await, id_of) }
        };
        self.coalescer.ask((), id, serve).await.unwrap_or(Err(StorageError::Unanswered(self.what)))
    }
}

/// One read every caller shares (a single row, such as a status): while it is out, the callers
/// arriving meanwhile wait and are all answered by the next. Built once with its statement.
pub struct SharedRead<V> {
    /// What is read, for [`StorageError::Unanswered`].
    what: &'static str,
    read: Arc<ReadOne<V>>,
    coalescer: Arc<Coalescer<(), (), Result<V, StorageError>>>,
}

/// A [`SharedRead`]'s statement.
type ReadOne<V> = dyn Fn() -> BoxFuture<'static, Result<V, StorageError>> + Send + Sync;

impl<V> std::fmt::Debug for SharedRead<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRead").field("what", &self.what).finish_non_exhaustive()
    }
}

impl<V: Clone + Send + 'static> SharedRead<V> {
    /// `what`, read by `read`.
    pub fn new<F, Fut>(what: &'static str, read: F) -> SharedRead<V>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<V, StorageError>> + Send + 'static,
    {
        let read = Arc::new(move || -> BoxFuture<'static, Result<V, StorageError>> { Box::pin(read()) });
        SharedRead { what, read, coalescer: Coalescer::new(what, usize::MAX) }
    }

    /// The value as the database has it now, read after this call began, with the other callers
    /// waiting meanwhile. Errors: the statement's, to every caller it answered;
    /// [`StorageError::Unanswered`] when its read ran past [`ASK_TIMEOUT`] or its task ended
    /// without answering.
    pub async fn read(&self) -> Result<V, StorageError> {
        let read = self.read.clone();
        let serve = move |_: &(), turn: Vec<()>| {
            let value = read();
            async move {
                let value = value.await;
                turn.iter().map(|()| value.clone()).collect::<Vec<_>>()
            }
        };
        self.coalescer.ask((), (), serve).await.unwrap_or(Err(StorageError::Unanswered(self.what)))
    }
}

/// The ids to read for a turn's callers, in one `IN (…)` list: each distinct id once (a load
/// test, or one user's several requests, asks for the same row many times), the list then
/// padded with its last id to a power of two, so that a key's reads are a handful of
/// statements (1, 2, 4 … ids) in each connection's prepared-statement cache, not one per count.
fn in_list(ids: &[String]) -> Vec<String> {
    let mut list: Vec<String> = ids.to_vec();
    list.sort_unstable();
    list.dedup();
    if let Some(last) = list.last().cloned() {
        list.resize(list.len().next_power_of_two(), last);
    }
    list
}

/// Each caller's row out of one read of several: the row whose id (`id_of`) is the caller's,
/// or `None`; the read's error to every caller.
fn each<V: Clone, E: Clone>(ids: &[String], rows: Result<Vec<V>, E>, id_of: fn(&V) -> &str) -> Vec<Result<Option<V>, E>> {
    match rows {
        Ok(rows) => {
            let by_id: HashMap<&str, &V> = rows.iter().map(|row| (id_of(row), row)).collect();
            ids.iter().map(|id| Ok(by_id.get(id.as_str()).map(|row| (*row).clone()))).collect()
        }
        Err(error) => ids.iter().map(|_| Err(error.clone())).collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// Callers that arrive while a turn is out go together in the next one, in arrival order,
    /// in asks of at most `max_turn`; each gets its own answer. (The test runtime has one
    /// thread: each caller has queued before the next is spawned.)
    #[tokio::test]
    async fn callers_arriving_during_a_turn_go_together_in_the_next() {
        let coalescer: Arc<Coalescer<&str, u32, u32>> = Coalescer::new("test", 3);
        let turns = Arc::new(Mutex::new(Vec::<Vec<u32>>::new()));
        let (release, gate) = tokio::sync::watch::channel(false);
        let mut callers = Vec::new();
        for n in 0..6u32 {
            let coalescer = coalescer.clone();
            let turns = turns.clone();
            let gate = gate.clone();
            callers.push(tokio::spawn(async move {
                coalescer
                    .ask("k", n, move |_, items: Vec<u32>| {
                        let turns = turns.clone();
                        let mut gate = gate.clone();
                        async move {
                            // The first turn waits for the test, so the others queue meanwhile.
                            let _ = gate.wait_for(|open| *open).await;
                            turns.lock().unwrap().push(items.clone());
                            items.iter().map(|i| i * 10).collect()
                        }
                    })
                    .await
            }));
            // Let each caller queue before the next, so arrival order is n's.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        release.send(true).unwrap();
        for (n, caller) in callers.into_iter().enumerate() {
            assert_eq!(caller.await.unwrap(), Some(n as u32 * 10));
        }
        assert_eq!(*turns.lock().unwrap(), vec![vec![0], vec![1, 2, 3], vec![4, 5]]);
        // The task removes the queue on its next pass, after the last answers.
        for _ in 0..10 {
            if coalescer.pending.lock().unwrap().is_empty() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(coalescer.pending.lock().unwrap().is_empty(), "the queue is removed once empty");
    }

    /// A turn of more callers than one ask carries makes its asks at the same time.
    #[tokio::test]
    async fn a_long_queue_is_asked_for_in_asks_at_the_same_time() {
        let coalescer: Arc<Coalescer<(), u32, u32>> = Coalescer::new("test", 2);
        let (release, gate) = tokio::sync::watch::channel(false);
        let (in_flight, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let serve = {
            let (in_flight, most) = (in_flight.clone(), most.clone());
            move |_: &(), items: Vec<u32>| {
                let (in_flight, most, mut gate) = (in_flight.clone(), most.clone(), gate.clone());
                async move {
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    let _ = gate.wait_for(|open| *open).await;
                    // Out until the other asks of the turn have started too.
                    tokio::task::yield_now().await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    items
                }
            }
        };
        let mut callers = Vec::new();
        for n in 0..6u32 {
            let (coalescer, serve) = (coalescer.clone(), serve.clone());
            callers.push(tokio::spawn(async move { coalescer.ask((), n, serve).await }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The first ask ([0]) holds the turn; [1, 2], [3, 4] and [5] are the next turn's asks.
        release.send(true).unwrap();
        for (n, caller) in callers.into_iter().enumerate() {
            assert_eq!(caller.await.unwrap(), Some(n as u32));
        }
        assert_eq!(most.load(Ordering::SeqCst), 3, "the second turn's three asks were out together");
    }

    /// Keys have turns of their own; a turn that answers fewer than asked answers the rest None.
    #[tokio::test]
    async fn keys_are_apart_and_a_short_answer_is_none() {
        let coalescer: Arc<Coalescer<u8, u32, u32>> = Coalescer::new("test", 8);
        let asked = Arc::new(AtomicUsize::new(0));
        let serve = |asked: Arc<AtomicUsize>| {
            move |key: &u8, items: Vec<u32>| {
                asked.fetch_add(1, Ordering::SeqCst);
                let key = *key;
                async move { if key == 1 { items } else { Vec::new() } }
            }
        };
        let one = coalescer.ask(1, 7, serve(asked.clone())).await;
        let two = coalescer.ask(2, 7, serve(asked.clone())).await;
        assert_eq!((one, two), (Some(7), None));
        assert_eq!(asked.load(Ordering::SeqCst), 2);
    }

    /// A turn whose task panics answers its callers None, and the key's next caller is served.
    #[tokio::test]
    async fn a_panicking_turn_strands_nobody() {
        let coalescer: Arc<Coalescer<(), u32, u32>> = Coalescer::new("test", 8);
        let failed = coalescer
            .ask((), 1, |_, items: Vec<u32>| async move {
                if items == [1] {
                    panic!("the store's client panicked");
                }
                items
            })
            .await;
        assert_eq!(failed, None);
        let served = coalescer.ask((), 2, |_, items: Vec<u32>| async move { items }).await;
        assert_eq!(served, Some(2));
    }

    /// An ask that never returns (a statement on a connection whose peer vanished) answers its
    /// callers `None` after [`ASK_TIMEOUT`], and so do the callers queued behind it once their
    /// own turn runs out; the key's next caller is then asked for afresh. (Time is paused:
    /// the runtime moves the clock on whenever every task waits.)
    #[tokio::test(start_paused = true)]
    async fn an_ask_that_never_returns_holds_its_key_for_the_timeout_at_most() {
        let coalescer: Arc<Coalescer<(), u32, u32>> = Coalescer::new("test", 8);
        let asked = Arc::new(AtomicUsize::new(0));
        // Asks never return until the database is back; then they answer at once.
        let back = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let serve = {
            let (asked, back) = (asked.clone(), back.clone());
            move |_: &(), items: Vec<u32>| {
                asked.fetch_add(1, Ordering::SeqCst);
                let back = back.load(Ordering::SeqCst);
                async move {
                    if !back {
                        std::future::pending::<()>().await;
                    }
                    items
                }
            }
        };
        let started = tokio::time::Instant::now();
        let outcome = tokio::time::timeout(ASK_TIMEOUT * 4, async {
            let first = tokio::spawn({
                let (coalescer, serve) = (coalescer.clone(), serve.clone());
                async move { coalescer.ask((), 1, serve).await }
            });
            tokio::time::sleep(Duration::from_millis(5)).await;
            let behind = tokio::spawn({
                let (coalescer, serve) = (coalescer.clone(), serve.clone());
                async move { coalescer.ask((), 2, serve).await }
            });
            let first = first.await.unwrap();
            let first_at = started.elapsed();
            let behind = behind.await.unwrap();
            back.store(true, Ordering::SeqCst);
            let later = coalescer.ask((), 3, serve.clone()).await;
            (first, first_at, behind, later)
        })
        .await;
        let (first, first_at, behind, later) = outcome.expect("a never-returning ask held its key's callers for good");
        assert_eq!((first, behind), (None, None), "both hung asks answer their callers None");
        assert!(first_at >= ASK_TIMEOUT && first_at < ASK_TIMEOUT + Duration::from_secs(1), "after the timeout: {first_at:?}");
        assert_eq!(later, Some(3), "the key's next caller is asked for afresh");
        assert_eq!(asked.load(Ordering::SeqCst), 3);
    }

    /// Callers arriving while a shared read is out are all answered by the next one: each read
    /// began after its callers arrived, and an error reaches every caller of its read.
    #[tokio::test]
    async fn a_shared_read_answers_everyone_waiting_with_one_statement() {
        let reads = Arc::new(AtomicUsize::new(0));
        let (release, gate) = tokio::sync::watch::channel(false);
        let shared = {
            let reads = reads.clone();
            Arc::new(SharedRead::new("status", move || {
                let n = reads.fetch_add(1, Ordering::SeqCst);
                let mut gate = gate.clone();
                async move {
                    // The first read waits for the test, so the others queue meanwhile.
                    let _ = gate.wait_for(|open| *open).await;
                    if n == 2 { Err(StorageError::Corrupt("down".into())) } else { Ok(n) }
                }
            }))
        };
        let mut callers = Vec::new();
        for _ in 0..5 {
            let shared = shared.clone();
            callers.push(tokio::spawn(async move { shared.read().await }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        release.send(true).unwrap();
        let mut answers = Vec::new();
        for caller in callers {
            answers.push(caller.await.unwrap().map_err(|error| error.to_string()));
        }
        assert_eq!(answers[0], Ok(0), "the first caller's own read");
        assert!(answers[1..].iter().all(|a| *a == Ok(1)), "the four behind it share the next: {answers:?}");
        assert_eq!(reads.load(Ordering::SeqCst), 2);
        let failed = shared.read().await;
        assert!(matches!(failed, Err(StorageError::Corrupt(_))), "{failed:?}");
        assert_eq!(shared.read().await.unwrap(), 3, "a later caller reads again");
    }

    #[test]
    fn each_caller_gets_its_own_row() {
        let ids = vec!["b".to_owned(), "a".to_owned(), "b".to_owned(), "z".to_owned()];
        assert_eq!(in_list(&ids), ["a", "b", "z", "z"]);
        assert_eq!(in_list(&ids[..2]), ["a", "b"]);
        assert_eq!(in_list(&ids[..1]), ["b"]);
        assert!(in_list(&[]).is_empty());
        let rows: Result<Vec<(String, u8)>, String> = Ok(vec![("a".into(), 1), ("b".into(), 2)]);
        let answers = each(&ids, rows, |row| row.0.as_str());
        let values: Vec<Option<u8>> = answers.into_iter().map(|a| a.unwrap().map(|row| row.1)).collect();
        assert_eq!(values, vec![Some(2), Some(1), Some(2), None]);
        let failed = each::<(String, u8), _>(&ids, Err("down".to_owned()), |row| row.0.as_str());
        assert!(failed.iter().all(|a| a.as_ref().unwrap_err() == "down"));
    }
}
