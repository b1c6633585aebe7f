//! The listeners of [`crate::server::run`]: on a stop, the connections the kernel has already
//! accepted are taken and answered before the listener closes, and the open connections are
//! counted, so the stop can wait for them a moment before it closes the idle ones.
//!
//! Why: closing a listening socket resets every connection still in its accept queue, though its
//! client has connected and may have sent its request; and hyper closes an idle keep-alive
//! connection at once on a graceful shutdown, though its client's next request may already be on
//! the wire. Both are requests lost to a stop under load.

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
        Tracked { stream, open: self.open.clone() }
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

/// An accepted connection, counted open until hyper drops it.
pub struct Tracked {
    stream: TcpStream,
    open: Arc<AtomicUsize>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
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
}
