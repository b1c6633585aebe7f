//! The listeners of [`crate::server::run`]: on a stop, the connections the kernel has already
//! accepted are taken and answered before the listener closes, and the open connections are
//! counted, so the stop can wait for them a moment before it closes the idle ones.
//!
//! Why: closing a listening socket resets every connection still in its accept queue, though its
//! client has connected and may have sent its request; and hyper closes an idle keep-alive
//! connection at once on a graceful shutdown, though its client's next request may already be on
//! the wire. Both are requests lost to a stop under load.
//!
//! Each accepted connection also has a deadline while the server waits on its client
//! ([`Tracked`], [`IDLE_TIMEOUT`]): hyper as `axum::serve` runs it times out no read, so a client
//! that sent part of a request's head and then nothing, or a byte now and then (a slow-loris),
//! held its connection, and the memory behind it, for ever, and so did every idle keep-alive
//! connection. A request's body is the generated runtime's to time (`runtime::read_body`).

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

/// How long an HTTP/1 connection may wait for its client: for a request's whole head, from the
/// connection's start or the server's last write (so an idle keep-alive connection too, and a
/// head sent a byte at a time), and for a client to take more of an answer it has stopped
/// reading. Then the read or write fails with `io::ErrorKind::TimedOut` and hyper drops the
/// connection. Not while a request is being handled: from a head's end to the answer's first
/// byte nothing is timed here, however long the handler takes (hyper reads meanwhile, to notice
/// a client that goes away), except for a request pipelined behind another on the connection,
/// timed from the answer before it. HTTP/2 is timed by inactivity: nothing either way for the
/// limit. nginx's `client_header_timeout` is the same minute.
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

/// An accepted connection, counted open until hyper drops it, its waits for its client timed
/// ([`IDLE_TIMEOUT`]).
pub struct Tracked {
    stream: TcpStream,
    open: Arc<AtomicUsize>,
    idle: Idle,
}

/// The deadline of a connection's waits for its client ([`IDLE_TIMEOUT`]), and what it needs to
/// know of the bytes going by: whether the request's head has arrived whole since the server
/// last wrote (a handler is at work: reads are not timed), and whether the connection speaks
/// HTTP/2 (whose frames carry no head this can see: timed by inactivity instead, every byte
/// read or written starting a new wait).
///
/// The timer stays armed and polled whenever the connection waits, also while a handler works
/// (re-armed each time it fires then), because hyper, once it has written an answer, reads again
/// only when woken: the timer's wake-up is what brings it to the wait for the next head. It is
/// not moved as answers go out (that would cost every request a trip through tokio's timer
/// wheel): when it fires it looks at when the wait began, and either ends the connection or sets
/// itself that long after it.
struct Idle {
    limit: Duration,
    /// When the current wait began: the connection's start, the server's last write (HTTP/2:
    /// its last byte either way).
    since: tokio::time::Instant,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The request's head has ended (an empty line) since the server last wrote.
    head_done: bool,
    /// A byte other than CR and LF has come since the server last wrote (httparse skips empty
    /// lines before a request line: they end no head).
    text: bool,
    /// The last byte of the head so far ended a line (a `\r` before a `\n` is passed over).
    line_start: bool,
    /// Nothing has been read yet.
    fresh: bool,
    /// The connection began with HTTP/2's preface.
    http2: bool,
}

impl Idle {
    fn new(limit: Duration) -> Idle {
        let since = tokio::time::Instant::now();
        Idle { limit, since, timer: None, head_done: false, text: false, line_start: false, fresh: true, http2: false }
    }

    /// `bytes` were read: the head is done at its first empty line after some text.
    fn read(&mut self, bytes: &[u8]) {
        if std::mem::take(&mut self.fresh) && bytes.starts_with(b"PRI * HTTP/2.0") {
            self.http2 = true;
        }
        if self.http2 {
            self.since = tokio::time::Instant::now();
            return;
        }
        if self.head_done {
            return;
        }
        for &byte in bytes {
            match byte {
                b'\n' if self.line_start => {
                    self.head_done = true;
                    return;
                }
                b'\n' => self.line_start = self.text,
                b'\r' => {}
                _ => {
                    self.text = true;
                    self.line_start = false;
                }
            }
        }
    }

    /// The server wrote `bytes`: a new wait for the client begins, for the rest of the answer
    /// or for the next request's head. An interim answer (`HTTP/1.1 100 Continue`, which hyper
    /// writes when a handler first reads a body the client held back) is part of the request's
    /// handling, and ends no wait.
    fn wrote(&mut self, bytes: &[u8]) {
        if self.head_done && bytes.starts_with(b"HTTP/1.1 1") {
            return;
        }
        self.head_done = false;
        self.text = false;
        self.line_start = false;
        self.since = tokio::time::Instant::now();
    }

    /// After a write: a timer that was never armed is armed now, for the wait that began (hyper
    /// may not read again until woken).
    fn arm(&mut self, cx: &mut Context<'_>) {
        if self.timer.is_none() {
            let mut timer = Box::pin(tokio::time::sleep_until(self.since + self.limit));
            let _ = timer.as_mut().poll(cx);
            self.timer = Some(timer);
        }
    }

    /// A read has to wait: timed unless a request is being handled (its head done, on HTTP/1),
    /// when the timer is only kept armed, for the wake-up after the answer.
    fn poll_read_expired(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        if !self.head_done {
            return self.poll_expired(cx);
        }
        let limit = self.limit;
        let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        while timer.as_mut().poll(cx).is_ready() {
            timer.as_mut().reset(tokio::time::Instant::now() + limit);
        }
        Poll::Pending
    }

    /// A read or write has to wait: pending while the wait is younger than the limit (`cx`
    /// woken when it is not), the error to end the connection with once it is.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            let due = self.since + self.limit;
            let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if tokio::time::Instant::now() >= due {
                return Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, format!("waited {} s for the client", self.limit.as_secs())));
            }
            // A new wait began since the timer was set: wait the limit from its start.
            timer.as_mut().reset(due);
        }
    }

    /// What a write of `first` (the bytes it was handed, or the first non-empty slice of them)
    /// came to: bytes written start the wait for the client ([`Idle::wrote`], [`Idle::arm`]); a
    /// write that has to wait is timed ([`Idle::poll_expired`]).
    fn after_write(&mut self, cx: &mut Context<'_>, written: Poll<io::Result<usize>>, first: &[u8]) -> Poll<io::Result<usize>> {
        match written {
            Poll::Pending => self.poll_expired(cx).map(Err),
            written => {
                if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
                    self.wrote(first);
                    self.arm(cx);
                }
                written
            }
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
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Pending => this.idle.poll_read_expired(cx).map(Err),
            read => {
                this.idle.read(&buf.filled()[before..]);
                read
            }
        }
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.idle.after_write(cx, written, buf)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.idle.after_write(cx, written, bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| &b[..]))
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

    /// Reads `stream` until it fails or ends, into what was read; the time and error of the end.
    async fn read_all(mut stream: impl tokio::io::AsyncRead + Unpin) -> (tokio::time::Instant, Vec<u8>, Option<io::ErrorKind>) {
        use tokio::io::AsyncReadExt;
        let mut read = Vec::new();
        let mut buf = [0u8; 256];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => return (tokio::time::Instant::now(), read, None),
                Ok(n) => read.extend_from_slice(&buf[..n]),
                Err(error) => return (tokio::time::Instant::now(), read, Some(error.kind())),
            }
        }
    }

    /// A head sent a byte now and then (a slow-loris) ends [`IDLE_TIMEOUT`] after the
    /// connection began, however recent its last byte.
    #[tokio::test(start_paused = true)]
    async fn a_head_sent_a_byte_at_a_time_ends_a_timeout_after_it_began() {
        use tokio::io::AsyncWriteExt;
        let (mut draining, address, _stop) = bound().await;
        let mut client = tokio::net::TcpStream::connect(address).await.unwrap();
        let (stream, _) = draining.accept().await;
        let began = tokio::time::Instant::now();
        let reader = tokio::spawn(read_all(stream));
        // Empty lines first (httparse skips them: they end no head), then a byte every 7 s.
        client.write_all(b"\r\n\r\n").await.unwrap();
        for byte in b"GET / HTTP/1.1\r\nHost" {
            tokio::time::sleep(Duration::from_secs(7)).await;
            if client.write_all(&[*byte]).await.is_err() {
                break;
            }
        }
        let (ended, read, error) = tokio::time::timeout(IDLE_TIMEOUT * 3, reader).await.expect("the read ends").unwrap();
        assert_eq!(error, Some(io::ErrorKind::TimedOut));
        assert_eq!(read, b"\r\n\r\nGET / HT", "the bytes of the first 60 s (7 s, 14 s, … 56 s)");
        assert_eq!(ended - began, IDLE_TIMEOUT);
    }

    /// A head asking `Expect: 100-continue` is answered `100 Continue` when the handler reads
    /// its body: still the request's handling, untimed.
    #[tokio::test(start_paused = true)]
    async fn a_100_continue_does_not_time_the_request() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut draining, address, _stop) = bound().await;
        let mut client = tokio::net::TcpStream::connect(address).await.unwrap();
        let (mut stream, _) = draining.accept().await;
        let mut buf = [0u8; 128];
        let head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n";
        client.write_all(head).await.unwrap();
        assert_eq!(stream.read(&mut buf).await.unwrap(), head.len());
        stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.unwrap();
        assert!(tokio::time::timeout(IDLE_TIMEOUT * 3, stream.read(&mut buf)).await.is_err(), "the body and the handler are not timed here");
    }

    /// From a head's end to the answer nothing is timed, however long the handler takes; then
    /// the wait for the next head is, from the answer on (the timer, armed while the first head
    /// arrived, set again for it).
    #[tokio::test(start_paused = true)]
    async fn a_request_being_handled_is_not_timed_and_the_next_head_is() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut draining, address, _stop) = bound().await;
        let mut client = tokio::net::TcpStream::connect(address).await.unwrap();
        let (mut stream, _) = draining.accept().await;
        let mut buf = [0u8; 64];
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        assert_eq!(stream.read(&mut buf).await.unwrap(), 16);
        // Half the head's time waited for the rest (the timer armed).
        assert!(tokio::time::timeout(IDLE_TIMEOUT / 2, stream.read(&mut buf)).await.is_err(), "still waiting");
        client.write_all(b"Host: x\r\n\r\n").await.unwrap();
        assert_eq!(stream.read(&mut buf).await.unwrap(), 11);
        // The handler takes three timeouts: the connection waits, untimed (as hyper reads it
        // meanwhile, to notice a client going away).
        assert!(tokio::time::timeout(IDLE_TIMEOUT * 3, stream.read(&mut buf)).await.is_err(), "a request being handled is not timed");
        stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await.unwrap();
        let answered = tokio::time::Instant::now();
        let read = tokio::time::timeout(IDLE_TIMEOUT * 3, stream.read(&mut buf)).await.expect("the read ends");
        assert_eq!(read.expect_err("no next head").kind(), io::ErrorKind::TimedOut);
        assert_eq!(answered.elapsed(), IDLE_TIMEOUT);
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

    /// Through hyper as `axum::serve` runs it: a handler taking twice the timeout is answered; a
    /// head that stops arriving is dropped, unanswered, a timeout after its connection began.
    #[tokio::test(start_paused = true)]
    async fn hyper_answers_a_slow_handler_and_drops_a_head_that_stops_arriving() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (draining, address, _stop) = bound().await;
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(|| async {
                tokio::time::sleep(IDLE_TIMEOUT * 2).await;
                "ok"
            }),
        );
        tokio::spawn(async move { axum::serve(draining, app).await });

        let mut loris = tokio::net::TcpStream::connect(address).await.unwrap();
        loris.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        let began = tokio::time::Instant::now();
        let dropped = tokio::spawn(async move {
            let mut rest = Vec::new();
            // Closed (EOF) or reset: either way the connection ended.
            let _ = loris.read_to_end(&mut rest).await;
            (tokio::time::Instant::now(), rest)
        });

        let mut client = tokio::net::TcpStream::connect(address).await.unwrap();
        client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut answer = String::new();
        tokio::time::timeout(IDLE_TIMEOUT * 3, client.read_to_string(&mut answer)).await.expect("answered").unwrap();
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok"), "{answer}");

        let (ended, rest) = tokio::time::timeout(IDLE_TIMEOUT * 3, dropped).await.expect("the connection ends").unwrap();
        assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
        assert_eq!(ended - began, IDLE_TIMEOUT);
    }

    /// Through hyper: a keep-alive connection idle after its answers (hyper reads again only
    /// when woken) is closed a timeout after the last, whether its handler answered at once or
    /// after a while.
    #[tokio::test(start_paused = true)]
    async fn hyper_closes_a_keep_alive_connection_idle_after_its_answer() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (draining, address, _stop) = bound().await;
        let app = axum::Router::new().route("/now", axum::routing::get(|| async { "ok" })).route(
            "/later",
            axum::routing::get(|| async {
                tokio::time::sleep(IDLE_TIMEOUT * 2).await;
                "ok"
            }),
        );
        tokio::spawn(async move { axum::serve(draining, app).await });
        for path in ["/now", "/later"] {
            let mut client = tokio::net::TcpStream::connect(address).await.unwrap();
            client.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
            let mut answer = Vec::new();
            let mut buf = [0u8; 512];
            while !answer.ends_with(b"ok") {
                let n = tokio::time::timeout(IDLE_TIMEOUT * 3, client.read(&mut buf)).await.expect("answered").unwrap();
                assert!(n > 0, "{path}: closed before its answer");
                answer.extend_from_slice(&buf[..n]);
            }
            let answered = tokio::time::Instant::now();
            let closed = tokio::time::timeout(IDLE_TIMEOUT * 3, client.read(&mut buf)).await.expect("the idle connection ends");
            assert!(matches!(closed, Ok(0) | Err(_)), "{path}: {closed:?}");
            assert_eq!(answered.elapsed(), IDLE_TIMEOUT, "{path}");
        }
    }
}
