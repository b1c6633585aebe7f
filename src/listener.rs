//! The listeners of [`crate::server::run`]: on a stop, the connections the kernel has already
//! accepted are taken and answered before the listener closes, and the open connections are
//! counted, so the stop can wait for them a moment before it closes the idle ones.
//!
//! Why: closing a listening socket resets every connection still in its accept queue, though its
//! client has connected and may have sent its request; and hyper closes an idle keep-alive
//! connection at once on a graceful shutdown, though its client's next request may already be on
//! the wire. Both are requests lost to a stop under load.
//!
//! Each accepted connection also ends once nothing has moved on it for [`IDLE_TIMEOUT`] while
//! the server waits on it ([`Tracked`]): hyper as `axum::serve` runs it times out no read, so a
//! client that sends part of a request's head or body and then nothing (a slow-loris) held its
//! connection, and the memory behind it, for ever, and so did every idle keep-alive connection.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How long a stop waits, once the listener is closed, for the open connections to end by
/// themselves before the idle ones are closed: long enough for a request already sent on a
/// keep-alive connection to arrive and be answered (with `Connection: close`), short enough not
/// to hold up a stop (a container runtime kills after 10 s).
pub const LINGER: Duration = Duration::from_secs(1);

/// How often a stop looks whether the open connections have all ended while it lingers.
const LINGER_POLL: Duration = Duration::from_millis(10);

/// How long a connection may go with no byte read from it or written to it, while the server
/// waits to read or write, before it is closed (a read or write then fails with
/// `io::ErrorKind::TimedOut`, and hyper drops the connection): an idle keep-alive connection, a
/// request's head or body that stops arriving, an answer its client stops reading. nginx's
/// `client_header_timeout` and `client_body_timeout` default to the same minute. No handler runs
/// that long: the outside services' clients give up within seconds.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A TCP listener that, once `stopping` turns true, accepts what the kernel has queued until
/// the queue is empty (never waiting for more), then closes, and says so through
/// [`Draining::drained`]. A connection whose handshake completes between the last accept and
/// the close is still reset: the kernel gives no way to close a listener and keep its queue.
pub struct Draining {
    state: State,
    stopping: watch::Receiver<bool>,
    drained: watch::Sender<bool>,
    /// Connections accepted and not yet dropped.
    open: Arc<AtomicUsize>,
}

enum State {
    /// Accepting as usual.
    Listening(TcpListener),
    /// Stopping: the same socket, taken out of the reactor, accepted from until it has nothing.
    Emptying(std::net::TcpListener),
    /// Closed: accepts nothing more, ever.
    Closed,
}

impl Draining {
    /// `listener`, draining once `stopping` is true. A sender gone without saying so is no stop:
    /// the listener goes on accepting (as the server goes on serving).
    pub fn new(listener: TcpListener, stopping: watch::Receiver<bool>) -> Draining {
        Draining { state: State::Listening(listener), stopping, drained: watch::Sender::new(false), open: Arc::new(AtomicUsize::new(0)) }
    }

    /// Resolves once the stop has taken every queued connection and closed the listener.
    pub fn drained(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut drained = self.drained.subscribe();
        async move {
            // The sender goes with the listener; gone means nothing more can be accepted.
            let _ = drained.wait_for(|done| *done).await;
        }
    }

    /// Resolves when every connection this listener accepted has closed, or after `linger`.
    pub fn settled(&self, linger: Duration) -> impl Future<Output = ()> + Send + 'static {
        let open = self.open.clone();
        async move {
            let settled = async {
                while open.load(Ordering::Acquire) > 0 {
                    tokio::time::sleep(LINGER_POLL).await;
                }
            };
            let _ = tokio::time::timeout(linger, settled).await;
        }
    }

    fn track(&self, stream: TcpStream) -> Tracked {
        self.open.fetch_add(1, Ordering::AcqRel);
        Tracked { stream, open: self.open.clone(), idle: Idle::new(IDLE_TIMEOUT) }
    }
}

impl axum::serve::Listener for Draining {
    type Io = Tracked;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Tracked, SocketAddr) {
        loop {
            match &mut self.state {
                State::Listening(listener) => {
                    tokio::select! {
                        biased;
                        () = stop_asked(&mut self.stopping) => {
                            // `into_std` leaves the socket non-blocking: its `accept` answers
                            // WouldBlock once the queue is empty, rather than waiting.
                            let State::Listening(listener) = std::mem::replace(&mut self.state, State::Closed) else { unreachable!() };
                            match listener.into_std() {
                                Ok(listener) => self.state = State::Emptying(listener),
                                Err(error) => {
                                    tracing::warn!(%error, "a listener could not be emptied before it closed");
                                    self.drained.send_replace(true);
                                }
                            }
                        }
                        accepted = TcpListener::accept(listener) => match accepted {
                            Ok((stream, peer)) => return (self.track(stream), peer),
                            Err(error) => refused(error).await,
                        },
                    }
                }
                State::Emptying(listener) => match listener.accept() {
                    Ok((stream, peer)) => match stream.set_nonblocking(true).and_then(|()| TcpStream::from_std(stream)) {
                        Ok(stream) => return (self.track(stream), peer),
                        Err(error) => tracing::warn!(%error, "a connection accepted while stopping could not be served"),
                    },
                    Err(error) if is_per_connection(&error) => {}
                    Err(error) => {
                        if error.kind() != io::ErrorKind::WouldBlock {
                            tracing::warn!(%error, "a listener stopped emptying its queue");
                        }
                        self.state = State::Closed;
                        self.drained.send_replace(true);
                    }
                },
                State::Closed => std::future::pending::<()>().await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.state {
            State::Listening(listener) => listener.local_addr(),
            State::Emptying(listener) => listener.local_addr(),
            State::Closed => Err(io::Error::new(io::ErrorKind::NotConnected, "the listener is closed")),
        }
    }
}

/// Resolves once `stopping` is true; never when its sender is gone without saying so.
async fn stop_asked(stopping: &mut watch::Receiver<bool>) {
    if stopping.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// An accept that failed for the one connection (it went away before it was taken) rather than
/// for the listener.
fn is_per_connection(error: &io::Error) -> bool {
    matches!(error.kind(), io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset)
}

/// After a failed accept: at once when only that connection failed; otherwise (out of file
/// descriptors, say) logged, and retried after a second, as axum's own listener does.
async fn refused(error: io::Error) {
    if !is_per_connection(&error) {
        tracing::error!(%error, "accepting a connection failed; trying again in a second");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// An accepted connection, counted open until hyper drops it, and ended once it has been idle
/// for [`IDLE_TIMEOUT`].
pub struct Tracked {
    stream: TcpStream,
    open: Arc<AtomicUsize>,
    idle: Idle,
}

/// When a connection last moved a byte, and the timer that ends it once it has not for `limit`.
///
/// The timer is armed the first time the connection waits and is not moved as bytes come and
/// go (re-arming a timer on every read would cost every request a trip through tokio's timer
/// wheel): when it fires it looks at the last byte's time, and either ends the connection or
/// sets itself that long after it.
struct Idle {
    limit: Duration,
    last: tokio::time::Instant,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Idle {
    fn new(limit: Duration) -> Idle {
        Idle { limit, last: tokio::time::Instant::now(), timer: None }
    }

    /// A read or write moved bytes (or ended).
    fn moved(&mut self) {
        self.last = tokio::time::Instant::now();
    }

    /// A read or write has to wait: pending while the connection has been idle for less than
    /// the limit (`cx` woken when it has), the error to end it with once it has.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            let due = self.last + self.limit;
            let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if tokio::time::Instant::now() >= due {
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("nothing read or written for {} s", self.limit.as_secs()),
                ));
            }
            // Bytes moved since the timer was set: wait the rest of the limit from the last one.
            timer.as_mut().reset(due);
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Pending => this.idle.poll_expired(cx).map(Err),
            read => {
                this.idle.moved();
                read
            }
        }
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.stream).poll_write(cx, buf) {
            Poll::Pending => this.idle.poll_expired(cx).map(Err),
            written => {
                this.idle.moved();
                written
            }
        }
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.stream).poll_write_vectored(cx, bufs) {
            Poll::Pending => this.idle.poll_expired(cx).map(Err),
            written => {
                this.idle.moved();
                written
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use axum::serve::Listener as _;

    use super::*;

    /// A draining listener on a port of its own, its address, and the stop it drains on.
    async fn bound() -> (Draining, SocketAddr, watch::Sender<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopping) = watch::channel(false);
        (Draining::new(listener, stopping), address, stop)
    }

    /// Connections the kernel queued before the stop are still accepted after it, and then the
    /// listener closes: a new connection is refused.
    #[tokio::test]
    async fn a_stop_takes_the_queued_connections_then_closes() {
        let (mut draining, address, stop) = bound().await;
        let drained = draining.drained();
        // Connected (the kernel completed the handshake) and sent, but never accepted yet.
        let mut clients: Vec<std::net::TcpStream> = (0..5)
            .map(|n| {
                let mut client = std::net::TcpStream::connect(address).unwrap();
                client.write_all(&[b'0' + n]).unwrap();
                client
            })
            .collect();
        stop.send(true).unwrap();
        let mut taken = Vec::new();
        for _ in 0..5 {
            let (mut stream, _) = tokio::time::timeout(Duration::from_secs(5), draining.accept()).await.expect("a queued connection");
            let mut byte = [0u8];
            tokio::io::AsyncReadExt::read_exact(&mut stream, &mut byte).await.unwrap();
            taken.push(byte[0]);
            tokio::io::AsyncWriteExt::write_all(&mut stream, b"ok").await.unwrap();
        }
        taken.sort_unstable();
        assert_eq!(taken, b"01234");
        // The queue is empty: the next accept closes the listener and waits for ever.
        assert!(tokio::time::timeout(Duration::from_millis(200), draining.accept()).await.is_err());
        tokio::time::timeout(Duration::from_secs(1), drained).await.expect("drained");
        assert!(draining.local_addr().is_err());
        assert!(std::net::TcpStream::connect(address).is_err(), "the listener is closed");
        for client in &mut clients {
            let mut answer = [0u8; 2];
            client.read_exact(&mut answer).unwrap();
            assert_eq!(&answer, b"ok");
        }
    }

    /// `settled` ends as soon as every accepted connection has closed, and after the linger at
    /// the latest.
    #[tokio::test]
    async fn settling_waits_for_the_open_connections_at_most_the_linger() {
        let (mut draining, address, _stop) = bound().await;
        let _client = std::net::TcpStream::connect(address).unwrap();
        let (stream, _) = draining.accept().await;

        let started = std::time::Instant::now();
        draining.settled(Duration::from_millis(300)).await;
        assert!(started.elapsed() >= Duration::from_millis(300), "an open connection holds it for the linger");

        let settled = tokio::spawn(draining.settled(Duration::from_secs(10)));
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(stream);
        let started = std::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(2), settled).await.expect("settled once the connection closed").unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    /// A connection that sends part of a request and then nothing is ended once it has been
    /// idle for [`IDLE_TIMEOUT`], its bytes so far read; one that keeps sending, however
    /// slowly, stays open past it.
    #[tokio::test(start_paused = true)]
    async fn a_connection_idle_for_the_timeout_ends_and_a_slow_one_does_not() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut draining, address, _stop) = bound().await;
        let mut client = tokio::net::TcpStream::connect(address).await.unwrap();
        let (mut stream, _) = draining.accept().await;
        let mut buf = [0u8; 64];

        // Slow: a byte every half the timeout, for twice the timeout.
        let started = tokio::time::Instant::now();
        for byte in b"GET " {
            tokio::time::sleep(IDLE_TIMEOUT / 2).await;
            client.write_all(&[*byte]).await.unwrap();
            assert_eq!(stream.read(&mut buf).await.unwrap(), 1, "read after {:?}", started.elapsed());
            assert_eq!(buf[0], *byte);
        }
        assert!(started.elapsed() >= IDLE_TIMEOUT * 2);

        // Then nothing: the read waits the whole timeout from the last byte, and fails.
        let stalled = tokio::time::Instant::now();
        let read = tokio::time::timeout(IDLE_TIMEOUT * 3, stream.read(&mut buf)).await.expect("the read ends");
        let error = read.expect_err("an idle connection ends");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        let waited = stalled.elapsed();
        assert!(waited >= IDLE_TIMEOUT && waited < IDLE_TIMEOUT + Duration::from_secs(1), "waited {waited:?}");
    }

    /// An answer its client does not read ends the connection once the socket's buffers are
    /// full and nothing has moved for [`IDLE_TIMEOUT`].
    #[tokio::test(start_paused = true)]
    async fn an_answer_nobody_reads_ends_the_connection_after_the_timeout() {
        use tokio::io::AsyncWriteExt;
        let (mut draining, address, _stop) = bound().await;
        let _client = tokio::net::TcpStream::connect(address).await.unwrap();
        let (mut stream, _) = draining.accept().await;
        // More than loopback's send and receive buffers hold together.
        let answer = vec![b'x'; 64 << 20];
        let started = tokio::time::Instant::now();
        let written = tokio::time::timeout(IDLE_TIMEOUT * 3, stream.write_all(&answer)).await.expect("the write ends");
        let error = written.expect_err("a write nobody reads ends");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= IDLE_TIMEOUT);
    }

    /// Through hyper as `axum::serve` runs it: a request's head that stops arriving (a
    /// slow-loris) is dropped once idle for [`IDLE_TIMEOUT`], while a whole request on another
    /// connection is answered meanwhile.
    #[tokio::test(start_paused = true)]
    async fn hyper_drops_a_request_head_that_stops_arriving() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (draining, address, _stop) = bound().await;
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        tokio::spawn(async move { axum::serve(draining, app).await });

        let mut loris = tokio::net::TcpStream::connect(address).await.unwrap();
        loris.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        let started = tokio::time::Instant::now();

        let mut client = tokio::net::TcpStream::connect(address).await.unwrap();
        client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok"), "{answer}");

        let mut rest = Vec::new();
        // Closed (EOF) or reset: either way the connection ended, with no answer.
        let _ = tokio::time::timeout(IDLE_TIMEOUT * 3, loris.read_to_end(&mut rest)).await.expect("the connection ends");
        assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
        let waited = started.elapsed();
        assert!(waited >= IDLE_TIMEOUT && waited < IDLE_TIMEOUT + Duration::from_secs(1), "waited {waited:?}");
    }
}
