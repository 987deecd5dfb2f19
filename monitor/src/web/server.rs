//! The accept loop and each connection's life: the cap on open connections, the TLS
//! handshake with the config of the moment, HTTP/1.1 or (negotiated by ALPN) HTTP/2, and the
//! header and idle timeouts, which hyper's HTTP/1 server does not tell apart.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{body::Body, extract::ConnectInfo, Router};
use http_body_util::BodyExt as _;
use hyper::{body::Incoming, Request};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::graceful::GracefulConnection,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
    sync::{watch, Semaphore},
};
use tower::ServiceExt as _;

use super::{
    activity::{Activity, Tracked},
    metrics::{Timeout, WebMetrics},
    tls::Reloading,
};

/// How a connection is served; from the flags and the web config.
#[derive(Clone)]
pub struct Settings {
    pub max_connections: u32,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_header_bytes: u64,
    pub tls: Option<Arc<Reloading>>,
}

/// How long connections get to finish their requests once the daemon stops.
const DRAIN: Duration = Duration::from_secs(5);

/// Serves `app` on `listener` until `shutdown` completes, then lets open connections finish
/// (for at most `DRAIN`).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: Settings,
    metrics: Arc<WebMetrics>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(settings.max_connections as usize));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors, most likely: wait for some to close rather
                    // than spin on the error.
                    tracing::error!(error = %e, "accepting an HTTP connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            let n = metrics.refused();
            // The first, then one line in a thousand: a flood must not flood the log too.
            if n % 1000 == 1 {
                tracing::warn!(
                    peer = %peer,
                    refused_so_far = n,
                    max_connections = settings.max_connections,
                    "refusing an HTTP connection: --web.max-connections are open"
                );
            }
            drop(tcp);
            continue;
        };
        metrics.opened();
        let (app, settings, metrics, stop) = (
            app.clone(),
            settings.clone(),
            metrics.clone(),
            stop_rx.clone(),
        );
        tokio::spawn(async move {
            connection(tcp, peer, app, &settings, &metrics, stop).await;
            metrics.closed();
            drop(slot);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let all = settings.max_connections;
    if tokio::time::timeout(DRAIN, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("stopping with HTTP connections still open");
    }
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    app: Router,
    s: &Settings,
    metrics: &WebMetrics,
    mut stop: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let Some(tls) = &s.tls else {
        return http(tcp, false, peer, app, s, metrics, stop).await;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
    let handshake = tokio::time::timeout(s.header_timeout, acceptor.accept(tcp));
    let stream = match tokio::select! {
        r = handshake => r,
        // No request yet: nothing to finish when the daemon stops.
        _ = stop.changed() => return,
    } {
        Err(_) => {
            metrics.timed_out(Timeout::TlsHandshake);
            return;
        }
        Ok(Err(e)) => {
            tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
            metrics.handshake_failed();
            return;
        }
        Ok(Ok(stream)) => stream,
    };
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    http(stream, h2, peer, app, s, metrics, stop).await;
}

/// Serves HTTP/1.1, or HTTP/2 when `h2` (negotiated by ALPN: never on plain TCP, as in
/// Go's server). Each request carries the peer's address for the access log, and is marked
/// in progress until its response body is dropped (sent, or the connection gone).
async fn http<I>(
    io: I,
    h2: bool,
    peer: SocketAddr,
    app: Router,
    s: &Settings,
    metrics: &WebMetrics,
    stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Activity::new(!h2);
    let io = TokioIo::new(Tracked {
        io,
        activity: activity.clone(),
    });
    let requests = activity.clone();
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
        let in_flight = requests.request();
        let app = app.clone();
        async move {
            let resp = app.oneshot(req.map(Body::new)).await?;
            Ok::<_, std::convert::Infallible>(resp.map(move |b| {
                Body::new(b.map_frame(move |f| {
                    let _held = &in_flight;
                    f
                }))
            }))
        }
    });
    if h2 {
        let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        b.timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(s.max_header_bytes).unwrap_or(u32::MAX))
            .max_concurrent_streams(100);
        drive(b.serve_connection(io, service), &activity, s, metrics, stop).await;
    } else {
        let mut b = hyper::server::conn::http1::Builder::new();
        // Our own header timeout: hyper's also runs while a kept-alive connection is idle.
        b.header_read_timeout(None)
            .max_buf_size(usize::try_from(s.max_header_bytes).unwrap_or(usize::MAX));
        drive(b.serve_connection(io, service), &activity, s, metrics, stop).await;
    }
}

/// Runs the connection until it ends, a timeout closes it, or the daemon stops (then it
/// finishes what it serves).
async fn drive<C>(
    conn: C,
    activity: &Activity,
    s: &Settings,
    metrics: &WebMetrics,
    mut stop: watch::Receiver<bool>,
) where
    C: GracefulConnection,
    C::Error: std::fmt::Display,
{
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        let (at, _) = activity.deadline(s.header_timeout, s.idle_timeout);
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "HTTP connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(at.into()) => {
                let (at, why) = activity.deadline(s.header_timeout, s.idle_timeout);
                if let Some(why) = why {
                    if Instant::now() >= at {
                        metrics.timed_out(why);
                        return;
                    }
                }
            }
            () = activity.changed() => {}
            _ = stop.changed(), if !stopping => {
                // A connection between requests (or in the middle of a head) is closed;
                // one serving a request finishes it first.
                if !activity.serving() {
                    return;
                }
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Descriptors the daemon holds besides its connections (kernel maps, programs, perf
/// events, procfs files being read), with room to spare.
const RESERVED_FDS: u64 = 256;

/// Raises the soft open-file limit to the hard one, as Go's runtime does for node_exporter,
/// so the connection cap (counted, logged) rather than a failing `accept` is what turns
/// clients away; warns when even the hard limit leaves no room for the cap.
pub fn raise_fd_limit(max_connections: u32) {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the rlimit we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } != 0 {
        return;
    }
    if l.rlim_cur < l.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: l.rlim_max,
            rlim_max: l.rlim_max,
        };
        // SAFETY: setrlimit reads the rlimit we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            l = raised;
        }
    }
    let needed = u64::from(max_connections) + RESERVED_FDS;
    if l.rlim_cur < needed {
        tracing::warn!(
            limit = l.rlim_cur,
            max_connections,
            "the open-file limit (RLIMIT_NOFILE) is below --web.max-connections plus the \
             daemon's own files: connections past it fail to be accepted"
        );
    }
}
