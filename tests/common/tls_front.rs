//! A TLS front for a plain-TCP server on 127.0.0.1: it accepts TLS with a [`Pki`]'s server
//! certificate (optionally requiring a client certificate signed by that CA), and relays the
//! decrypted bytes to the server's port.
//!
//! The Kafka bridge tests put it before tansu: tansu 0.6.0 takes `--cert`/`--key` but never
//! uses them (its broker builds a `TlsAcceptor` and serves every connection in plain TCP), so
//! a `kafkas://` upstream needs TLS terminated in front of it. tansu then advertises the
//! front's port, so every connection a Kafka client opens after bootstrap also passes here.
//!
//! The handshake is Outpost's own listener TLS (`outpost::tls::ServerTls`, rustls), the
//! relay a `copy_bidirectional`. Drop stops it and closes every connection.

use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use outpost::config::TlsListenerConfig;
use outpost::tls::ServerTls;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

use super::pki::Pki;
use super::upstream::background_runtime;

/// How long a client may take over its handshake.
const HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// Pause after a failed accept (out of file descriptors, ...) before the next.
const ACCEPT_RETRY: std::time::Duration = std::time::Duration::from_millis(20);

/// A running TLS front; see the module docs.
pub struct TlsFront {
    port: u16,
    shared: Arc<Shared>,
    rt: Option<Runtime>,
}

#[derive(Default)]
struct Shared {
    handshakes: AtomicU64,
    failures: Mutex<Vec<String>>,
}

impl TlsFront {
    /// Starts a front on a free port of 127.0.0.1 for `127.0.0.1:upstream_port`, serving
    /// `pki`'s server certificate; with `require_client_cert`, clients must present a
    /// certificate signed by `pki`'s CA.
    pub fn start(upstream_port: u16, pki: &Pki, require_client_cert: bool) -> TlsFront {
        let std_listener = StdTcpListener::bind("127.0.0.1:0").expect("bind TLS front");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let port = std_listener.local_addr().expect("local addr").port();
        let settings = TlsListenerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            cert_file: pki.server_cert.clone(),
            key_file: pki.server_key.clone(),
            client_ca_file: require_client_cert.then(|| pki.ca.clone()),
            require_client_cert,
            identity_as_username: None,
            handshake_timeout_ms: HANDSHAKE_TIMEOUT_MS,
        };
        let tls = Arc::new(ServerTls::load(&settings, "[test TLS front]").expect("TLS front"));
        let shared = Arc::new(Shared::default());
        let rt = background_runtime("tls-front");
        let listener = {
            let _enter = rt.enter();
            TcpListener::from_std(std_listener).expect("tokio listener")
        };
        let upstream = SocketAddr::from(([127, 0, 0, 1], upstream_port));
        rt.spawn(accept_loop(listener, tls, upstream, shared.clone()));
        TlsFront {
            port,
            shared,
            rt: Some(rt),
        }
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Handshakes completed so far.
    pub fn handshakes(&self) -> u64 {
        self.shared.handshakes.load(Ordering::SeqCst)
    }

    /// Why each failed handshake failed (rustls's words), in order.
    pub fn failures(&self) -> Vec<String> {
        self.shared
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Arc<ServerTls>,
    upstream: SocketAddr,
    shared: Arc<Shared>,
) {
    // Ends when the runtime shuts down (the front's drop).
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(ACCEPT_RETRY).await;
            continue;
        };
        tokio::spawn(relay(tcp, tls.clone(), upstream, shared.clone()));
    }
}

async fn relay(tcp: TcpStream, tls: Arc<ServerTls>, upstream: SocketAddr, shared: Arc<Shared>) {
    let _ = tcp.set_nodelay(true);
    let mut client = match tls.accept(tcp).await {
        Ok((stream, _)) => stream,
        Err(e) => {
            let mut failures = shared.failures.lock().unwrap_or_else(|e| e.into_inner());
            failures.push(e.to_string());
            return;
        }
    };
    shared.handshakes.fetch_add(1, Ordering::SeqCst);
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = server.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}
