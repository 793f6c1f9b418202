//! The admin HTTP listener: `/metrics`, `/healthz`, `/readyz` on hyper's HTTP/1 server.
//!
//! Hygiene: GET and HEAD only (405 otherwise), 404 for other paths; a request head of at most
//! [`MAX_REQUEST_HEAD_BYTES`] with at most [`MAX_HEADERS`] headers (431 beyond, 400 for bytes
//! that are not HTTP); the head must arrive within [`HEADER_READ_TIMEOUT`] and the whole
//! exchange end within [`CONNECTION_TIMEOUT`]; one request per connection; at most
//! [`MAX_CONNECTIONS`] at once (extra ones get a 503 and are closed). Request bodies are never
//! read. A connection's failure closes only it.
//!
//! The listener is bound before the log is opened, so `/healthz` answers and `/readyz` says
//! "starting" during recovery; `/metrics` answers 503 until the server hands over the
//! registry ([`AdminServer::set_registry`]), once everything it reads exists. It stops last,
//! after the log writer has drained, so `/readyz` reports "stopping" throughout a shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::health::{Answer, Health};
use super::metrics;
use crate::shutdown::Shutdown;

/// Connections served at once; scrapers and probes are few.
pub const MAX_CONNECTIONS: usize = 8;
/// Largest request head (request line and headers). hyper's smallest allowed buffer.
pub const MAX_REQUEST_HEAD_BYTES: usize = 8192;
/// Most request headers.
pub const MAX_HEADERS: usize = 32;
/// Time a client has to send its request head.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Time one connection may take from accept to the end of the response.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(15);
/// How long shutdown waits for connections in progress.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause after a failed accept (EMFILE and friends) instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// What a connection over [`MAX_CONNECTIONS`] gets before it is closed.
const BUSY_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\
content-length: 5\r\nconnection: close\r\n\r\nbusy\n";
/// `Content-Type` of the plain-text answers.
const TEXT: &str = "text/plain; charset=utf-8";

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/metrics`.
    Metrics,
    /// `/healthz`.
    Healthz,
    /// `/readyz`.
    Readyz,
    /// Any other path.
    NotFound,
    /// A method other than GET or HEAD.
    MethodNotAllowed,
}

/// Routes a request by method and path (the query string is ignored).
pub fn route(method: &Method, path: &str) -> Route {
    if method != Method::GET && method != Method::HEAD {
        return Route::MethodNotAllowed;
    }
    match path {
        "/metrics" => Route::Metrics,
        "/healthz" => Route::Healthz,
        "/readyz" => Route::Readyz,
        _ => Route::NotFound,
    }
}

/// State the requests read.
struct Shared {
    health: Health,
    registry: OnceLock<Registry>,
}

/// The running listener; dropping it stops accepting.
pub struct AdminServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Shutdown,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl AdminServer {
    /// Binds `addr` and serves at once; `/readyz` follows `health`.
    pub async fn bind(addr: SocketAddr, health: Health) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            health,
            registry: OnceLock::new(),
        });
        let stop = Shutdown::new();
        let task = tokio::spawn(accept_loop(listener, shared.clone(), stop.clone()));
        Ok(Self {
            addr,
            shared,
            stop,
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts serving `/metrics` from `registry`. Only the first call has an effect.
    pub fn set_registry(&self, registry: Registry) {
        let _ = self.shared.registry.set(registry);
    }

    /// Stops accepting and waits (bounded) for connections in progress.
    pub async fn stop(mut self) {
        self.stop.trigger();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.stop.trigger();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, shutdown: Shutdown) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    let mut stop = shutdown.subscribe();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|&s| s) => break,
        };
        while conns.try_join_next().is_some() {}
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "metrics listener: accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            // Best effort, never waiting: the socket is closed either way.
            let _ = stream.try_write(BUSY_RESPONSE);
            continue;
        };
        let shared = shared.clone();
        conns.spawn(async move {
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, serve(stream, shared)).await;
            drop(permit);
        });
    }
    drop(listener);
    crate::shutdown::drain(&mut conns, DRAIN_TIMEOUT).await;
}

/// Serves one request on `stream`.
async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let service = hyper::service::service_fn(move |req| handle(req, shared.clone()));
    let result = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_REQUEST_HEAD_BYTES)
        .max_headers(MAX_HEADERS)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(e) = result {
        tracing::debug!(error = %e, "metrics listener: connection failed");
    }
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(match route(req.method(), req.uri().path()) {
        Route::Healthz => answer(shared.health.liveness()),
        Route::Readyz => answer(shared.health.readiness()),
        Route::Metrics => scrape(shared).await,
        Route::NotFound => text(
            StatusCode::NOT_FOUND,
            "not found: the paths are /metrics, /healthz and /readyz\n".into(),
        ),
        Route::MethodNotAllowed => {
            let mut r = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed: use GET or HEAD\n".into(),
            );
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            r
        }
    })
}

/// Encodes the registry on the blocking pool (a scrape reads redb and `/proc`).
async fn scrape(shared: Arc<Shared>) -> Response<Full<Bytes>> {
    if shared.registry.get().is_none() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: metrics are served once the log is open\n".into(),
        );
    }
    let encoded =
        tokio::task::spawn_blocking(move || shared.registry.get().map(metrics::encode)).await;
    match encoded {
        Ok(Some(Ok(body))) => {
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(metrics::CONTENT_TYPE),
            );
            r
        }
        Ok(Some(Err(e))) => {
            tracing::error!(error = %e, "metrics encoding failed");
            text(StatusCode::INTERNAL_SERVER_ERROR, metrics::failure_text(e))
        }
        // The registry was checked above; a join error means the runtime is shutting down.
        Ok(None) | Err(_) => text(StatusCode::SERVICE_UNAVAILABLE, "stopping\n".into()),
    }
}

fn answer(a: Answer) -> Response<Full<Bytes>> {
    // Health answers carry valid status codes (200, 503).
    let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    text(status, a.body.into())
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_method_and_path() {
        assert_eq!(route(&Method::GET, "/metrics"), Route::Metrics);
        assert_eq!(route(&Method::HEAD, "/metrics"), Route::Metrics);
        assert_eq!(route(&Method::GET, "/healthz"), Route::Healthz);
        assert_eq!(route(&Method::GET, "/readyz"), Route::Readyz);
        assert_eq!(route(&Method::GET, "/"), Route::NotFound);
        assert_eq!(route(&Method::GET, "/metrics/"), Route::NotFound);
        assert_eq!(route(&Method::POST, "/metrics"), Route::MethodNotAllowed);
        assert_eq!(route(&Method::PUT, "/nowhere"), Route::MethodNotAllowed);
        assert_eq!(route(&Method::OPTIONS, "/healthz"), Route::MethodNotAllowed);
    }

    #[test]
    fn the_busy_response_is_complete() {
        let text = std::str::from_utf8(BUSY_RESPONSE).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains(&format!("content-length: {}", body.len())));
    }
}
