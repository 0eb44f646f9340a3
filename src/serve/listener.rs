//! The listening socket of `ddc serve` and what bounds a connection: a
//! connection is accepted only with one of `max` permits (sized by
//! [`raise_nofile`] to the descriptors the process may open), held until it
//! closes; at most [`PER_IP`] are open at once from one peer IP (past it, a
//! new one is closed at once, and logged at most once a minute per IP); and
//! a connection that moves no byte either way for [`IDLE`] fails with a
//! time-out, so clients that open connections and never finish (or never
//! close) them cannot hold the service's descriptors or memory.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

/// Connections open at once at most, if the descriptor limit allows.
pub(crate) const MAX_CONNECTIONS: usize = 8192;
/// Descriptors kept for everything but connections (database, files served, logs).
const RESERVED_FDS: u64 = 128;
/// Connections open at once from one peer IP at most.
pub(crate) const PER_IP: usize = 64;
/// A connection that moves no byte for this long is closed.
pub(crate) const IDLE: Duration = Duration::from_secs(30);
/// How often a peer over [`PER_IP`] is logged at most.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Raises the soft limit of open descriptors to the hard limit, and returns
/// how many connections fit under it: [`MAX_CONNECTIONS`] at most.
pub(crate) fn raise_nofile() -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    // No hard limit: the kernel still caps it (fs.nr_open, 2^20 by default).
    let want = lim.maximum.unwrap_or(1 << 20);
    let mut soft = lim.current.unwrap_or(want);
    if soft < want {
        let raised = Rlimit {
            current: Some(want),
            maximum: lim.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => soft = want,
            Err(e) => tracing::warn!("cannot raise the open-file limit from {soft}: {e}"),
        }
    }
    let fit = soft.saturating_sub(RESERVED_FDS).max(16);
    usize::try_from(fit).map_or(MAX_CONNECTIONS, |f| f.min(MAX_CONNECTIONS))
}

/// Open connections by peer IP, and when each over-cap peer was last logged.
#[derive(Default)]
struct PerIp {
    open: HashMap<IpAddr, usize>,
    logged: HashMap<IpAddr, Instant>,
}

/// A TCP listener that holds a permit per open connection and caps them per peer IP.
pub(crate) struct Capped {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    per_ip: Arc<Mutex<PerIp>>,
}

impl Capped {
    pub(crate) fn new(inner: TcpListener, max: usize) -> Capped {
        Capped {
            inner,
            permits: Arc::new(Semaphore::new(max)),
            per_ip: Arc::default(),
        }
    }

    /// The next connection within the caps; others are closed at once.
    pub(crate) async fn accept(&mut self) -> (Conn, SocketAddr) {
        loop {
            let permit = self
                .permits
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let (io, addr) = match self.inner.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors or memory: wait rather than spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Some(slot) = self.slot(addr.ip()) else {
                continue;
            };
            let _ = io.set_nodelay(true);
            let conn = Conn {
                io,
                last: Instant::now(),
                idle: Box::pin(tokio::time::sleep(IDLE)),
                _permit: permit,
                _slot: slot,
            };
            return (conn, addr);
        }
    }

    /// A place for one more connection from `ip`, or None (logged) if it has [`PER_IP`].
    fn slot(&self, ip: IpAddr) -> Option<Slot> {
        let mut m = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.open.entry(ip).or_insert(0);
        if *n < PER_IP {
            *n += 1;
            return Some(Slot {
                ip,
                per_ip: self.per_ip.clone(),
            });
        }
        let now = Instant::now();
        if m.logged.len() > 4096 {
            m.logged.retain(|_, t| now.duration_since(*t) < LOG_EVERY);
        }
        let due = m
            .logged
            .get(&ip)
            .is_none_or(|t| now.duration_since(*t) >= LOG_EVERY);
        if due {
            m.logged.insert(ip, now);
            tracing::warn!(peer = %ip, "refused: {PER_IP} connections from this IP are open already (logged once a minute)");
        }
        None
    }
}

/// One open connection counted for its peer IP, until dropped.
struct Slot {
    ip: IpAddr,
    per_ip: Arc<Mutex<PerIp>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut m = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.open.remove(&self.ip);
            }
        }
    }
}

/// An accepted connection, its permit and its slot; fails with
/// `TimedOut` once no byte moved either way for [`IDLE`].
pub(crate) struct Conn {
    io: TcpStream,
    /// When a byte last moved.
    last: Instant,
    /// Fires at `last + IDLE` or earlier (then is moved on).
    idle: Pin<Box<Sleep>>,
    _permit: OwnedSemaphorePermit,
    _slot: Slot,
}

impl Conn {
    /// What a pending read or write returns: pending, or the time-out.
    fn pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        loop {
            if self.idle.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let due = self.last + IDLE;
            if Instant::now() >= due {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no byte moved for {} s", IDLE.as_secs()),
                )));
            }
            self.idle.as_mut().reset(due.into());
        }
    }

    fn moved<T>(&mut self, r: Poll<io::Result<T>>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match r {
            Poll::Ready(r) => {
                self.last = Instant::now();
                Poll::Ready(r)
            }
            Poll::Pending => self.pending(cx),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        this.moved(r, cx)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        this.moved(r, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.moved(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_flush(cx);
        this.moved(r, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
