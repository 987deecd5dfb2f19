//! What a connection is doing, for its timeouts: waiting for a request head (since when),
//! serving requests, or idle between them (since when). The connection's reads and its
//! requests' lifetimes feed it; the connection's task reads the deadline from it.

use std::{
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::Notify,
};

use super::metrics::Timeout;

struct State {
    in_flight: u32,
    /// When the current request head began (its first byte, or the connection's start).
    head_since: Option<Instant>,
    idle_since: Instant,
}

pub struct Activity {
    state: Mutex<State>,
    /// Wakes the connection's task to move its deadline when the phase changes.
    changed: Notify,
    /// HTTP/2 frames between requests (pings, settings) start no request head.
    track_heads: bool,
}

impl Activity {
    /// A new connection owes a request head from now, as in Go's server: the first request
    /// has the header timeout, not the idle one.
    pub fn new(track_heads: bool) -> Arc<Self> {
        let now = Instant::now();
        Arc::new(Self {
            state: Mutex::new(State {
                in_flight: 0,
                head_since: track_heads.then_some(now),
                idle_since: now,
            }),
            changed: Notify::new(),
            track_heads,
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn read(&self) {
        if self.track_heads {
            self.with(|s| {
                if s.in_flight == 0 && s.head_since.is_none() {
                    s.head_since = Some(Instant::now());
                    self.changed.notify_one();
                }
            });
        }
    }

    /// Marks a request in progress until the guard (held by its response body) drops.
    pub fn request(self: &Arc<Self>) -> InFlight {
        self.with(|s| {
            s.in_flight += 1;
            s.head_since = None;
        });
        self.changed.notify_one();
        InFlight(self.clone())
    }

    /// Completes when the phase has changed since the last call (a permit is kept, so no
    /// change is missed between a `deadline` and this).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Whether a request is being served.
    pub fn serving(&self) -> bool {
        self.with(|s| s.in_flight > 0)
    }

    /// When the connection expires if nothing happens before, and why; `None` while a
    /// request is served (look again later).
    pub fn deadline(&self, header: Duration, idle: Duration) -> (Instant, Option<Timeout>) {
        self.with(|s| {
            if s.in_flight > 0 {
                (Instant::now() + idle, None)
            } else if let Some(t) = s.head_since {
                (t + header, Some(Timeout::Header))
            } else {
                (s.idle_since + idle, Some(Timeout::Idle))
            }
        })
    }
}

pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.with(|s| {
            s.in_flight -= 1;
            s.idle_since = Instant::now();
        });
        self.0.changed.notify_one();
    }
}

/// A connection's stream, reporting its reads to its `Activity`.
pub struct Tracked<I> {
    pub io: I,
    pub activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Tracked<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        r
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Tracked<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases() {
        let h = Duration::from_secs(10);
        let i = Duration::from_secs(100);
        let a = Activity::new(true);
        let (at, why) = a.deadline(h, i);
        assert!(matches!(why, Some(Timeout::Header)));
        assert!(at <= Instant::now() + h);
        let req = a.request();
        assert!(a.deadline(h, i).1.is_none());
        // Bytes read while a request is served start no head.
        a.read();
        drop(req);
        let (at, why) = a.deadline(h, i);
        assert!(matches!(why, Some(Timeout::Idle)));
        assert!(at > Instant::now() + h);
        a.read();
        assert!(matches!(a.deadline(h, i).1, Some(Timeout::Header)));
        // HTTP/2: only the idle timeout.
        let a = Activity::new(false);
        assert!(matches!(a.deadline(h, i).1, Some(Timeout::Idle)));
        a.read();
        assert!(matches!(a.deadline(h, i).1, Some(Timeout::Idle)));
    }
}
