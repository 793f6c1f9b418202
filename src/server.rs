//! `outpost serve`: opens the log, binds the listener, serves until SIGINT/SIGTERM.
//!
//! Shutdown order: stop accepting (and receiving datagrams); let each connection, and the UDP
//! socket's acknowledged appends, finish their in-flight requests (bounded wait) so their acks
//! go out; then drain the log writer, which commits durably and stops.
//! A connection limit refuses extra connections with a `BUSY` error frame. SIGHUP reloads
//! what [`crate::reload`] lists: the password file, the ACL and the TLS certificates.
//!
//! The metrics listener (`[metrics]`) is bound first and stopped last: `/readyz` answers 503
//! while the log is recovered and throughout the drain, 200 only in between.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use tokio::sync::watch;

use crate::admin::counters::ConnectionStats;
use crate::admin::{AdminServer, Health, Readiness};
use crate::auth::Security;
use crate::config::{Config, TlsListenerConfig};
use crate::log::{Log, OpenError};
use crate::logging::RepeatGate;
use crate::mqtt::broker::Broker;
use crate::mqtt::connection::{self as mqtt_connection, ConnConfig as MqttConnConfig};
use crate::mqtt::session::SessionConfig;
use crate::shutdown::Shutdown;
use crate::tls::ServerTls;
use crate::transport::{Peer, Transport};
use crate::wire::connection::{self, ConnConfig};

/// How long shutdown waits for connections to finish.
const CONNECTION_DRAIN: Duration = Duration::from_secs(15);
/// Refusals over a connection limit: a reconnecting fleet can cause one per attempt, so they
/// are logged at most once per interval, with a count.
static WIRE_LIMIT_LOG: RepeatGate = RepeatGate::new();
/// Likewise for the MQTT listeners.
static MQTT_LIMIT_LOG: RepeatGate = RepeatGate::new();
/// Failed accepts (out of file descriptors): up to 20 a second while it lasts.
static ACCEPT_FAILED_LOG: RepeatGate = RepeatGate::new();

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The log could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The MQTT state could not be restored, or the ingest rules are invalid.
    #[error("MQTT: {0}")]
    Mqtt(String),
    /// A bridge could not start (TLS files, stored checkpoints).
    #[error("{0}")]
    Bridge(String),
    /// The password file or the ACL cannot be used.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    /// The stored devices could not be read.
    #[error("devices: {0}")]
    Devices(#[from] crate::devices::LoadError),
    /// SIGHUP could not be taken over.
    #[error("cannot install the SIGHUP handler: {0}")]
    Signal(#[source] std::io::Error),
    /// A TLS listener's certificate, key or CA file could not be used.
    #[error(transparent)]
    Tls(crate::tls::TlsError),
    /// The listener could not be bound.
    #[error(
        "cannot listen on {addr}: {source} (is another broker using the port? set {key} in the config)"
    )]
    Bind {
        /// The config key of the listener (`[wire] listen`, `[mqtt.tls]`, `[metrics] listen`, ...).
        key: &'static str,
        /// Address.
        addr: SocketAddr,
        /// I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// A running server: its bound addresses and the handle to stop it.
pub struct Server {
    /// The address the binary-protocol plain-TCP listener is bound to (`None` when
    /// `[wire] plain = false`).
    pub wire_addr: Option<SocketAddr>,
    /// The address the binary-protocol TLS listener is bound to (`[wire.tls]`).
    pub wire_tls_addr: Option<SocketAddr>,
    /// The address the UDP socket of the binary protocol is bound to (`None` when `[udp]` is
    /// disabled).
    pub udp_addr: Option<SocketAddr>,
    /// The address the MQTT plain-TCP listener is bound to (`None` when MQTT or its plain
    /// listener is disabled).
    pub mqtt_addr: Option<SocketAddr>,
    /// The address the MQTT TLS listener is bound to (`[mqtt.tls]`).
    pub mqtt_tls_addr: Option<SocketAddr>,
    /// The address the metrics listener is bound to (`None` when metrics are disabled).
    pub metrics_addr: Option<SocketAddr>,
    /// The log it serves.
    pub log: Log,
    /// Every bridge's status, as `BridgeStatus` requests report it. Bridges started for this
    /// server must register on this same board.
    pub bridges: outpost_bridge::StatusBoard,
    /// Authentication and ACL state of both listeners (its counters too).
    pub security: Security,
    /// Tasks that write through the log writer (bridges, the device status flush): joined
    /// before it drains.
    bridge_tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The device registry.
    pub devices: crate::devices::Devices,
    shutdown: Shutdown,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    health: Health,
    admin: Option<AdminServer>,
}

/// A bound listener and, for a TLS one, its configuration.
struct Bound {
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
    addr: SocketAddr,
    /// Its connections and traffic, exported as metrics.
    stats: Arc<ConnectionStats>,
}

impl Bound {
    /// Binds `addr`; `key` names the config key in the error.
    async fn bind(
        addr: SocketAddr,
        key: &'static str,
        tls: Option<Arc<ServerTls>>,
    ) -> Result<Self, ServeError> {
        let bind = |source| ServeError::Bind { key, addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind)?;
        let addr = listener.local_addr().map_err(bind)?;
        Ok(Self {
            listener,
            tls,
            addr,
            stats: Arc::default(),
        })
    }

    /// Binds the plain listener (when `plain`) and the TLS listener (when configured) of a
    /// protocol.
    async fn both(
        plain: Option<(SocketAddr, &'static str)>,
        tls: Option<(&TlsListenerConfig, &'static str)>,
    ) -> Result<(Option<Self>, Option<Self>), ServeError> {
        let plain = match plain {
            Some((addr, key)) => Some(Self::bind(addr, key, None).await?),
            None => None,
        };
        let tls = match tls {
            Some((settings, section)) => {
                let config = ServerTls::load(settings, section).map_err(ServeError::Tls)?;
                Some(Self::bind(settings.listen, section, Some(Arc::new(config))).await?)
            }
            None => None,
        };
        Ok((plain, tls))
    }
}

/// An accepted socket, before its TLS handshake (if any).
struct Incoming {
    tcp: TcpStream,
    addr: SocketAddr,
    tls: Option<Arc<ServerTls>>,
    /// The listener's counters.
    stats: Arc<ConnectionStats>,
}

impl Incoming {
    /// Runs the TLS handshake of a TLS listener's connection. `None` when it fails: the
    /// failure is logged (debug: a port scan or a plain client must not flood the log) and
    /// counted, and the socket is closed.
    async fn establish(self) -> Option<(Transport, Peer)> {
        let Some(tls) = self.tls else {
            let peer = Peer {
                addr: Some(self.addr),
                cert_identity: None,
            };
            return Some((Transport::Tcp(self.tcp), peer));
        };
        // Boxed: rustls's handshake state is large, and inline it would size every
        // connection's task for its whole life (plain ones too), not just the handshake.
        match Box::pin(tls.accept(self.tcp)).await {
            Ok((stream, cert_identity)) => Some((
                Transport::Tls(Box::new(stream.into())),
                Peer {
                    addr: Some(self.addr),
                    cert_identity,
                },
            )),
            Err(e) => {
                self.stats.handshake_failed();
                tracing::debug!(peer = %self.addr, listener = tls.listener(), error = %e, "TLS handshake failed");
                None
            }
        }
    }
}

impl Server {
    /// Opens the log and binds the listeners; serving starts at once in the background.
    pub async fn start(config: Config) -> Result<Self, ServeError> {
        let health = Health::new();
        let admin = start_admin(&config, &health).await?;
        let security = Security::open(&config.auth)?;
        // Before anything is announced: a SIGHUP right after start reloads, never kills.
        let hup = crate::reload::listen().map_err(ServeError::Signal)?;
        let log = Log::open(&config)?;
        let devices = crate::devices::Devices::load(&log)?;
        // One board for the whole server: the wire connections read it, the bridges'
        // forwarders write it.
        let bridges = outpost_bridge::StatusBoard::new();
        let w = &config.wire;
        let (wire_plain, wire_tls) = Bound::both(
            w.plain.then_some((w.listen, "[wire] listen")),
            w.tls.as_ref().map(|t| (t, "[wire.tls]")),
        )
        .await?;
        let udp = bind_udp(&config).await?;
        let shutdown = Shutdown::new();
        // Bridges first: they place their retention holds before retention's first pass.
        let mut bridge_tasks = Vec::new();
        for b in &config.bridges {
            let task = outpost_bridge::start(
                log.clone(),
                b.clone(),
                bridges.clone(),
                shutdown.subscribe(),
            )
            .await
            .map_err(|e| ServeError::Bridge(e.to_string()))?;
            bridge_tasks.push(task);
        }
        tokio::spawn(crate::log::retention::run(
            log.clone(),
            config.retention.clone(),
            config.data_dir.clone(),
            shutdown.subscribe(),
        ));
        let (mqtt_plain, mqtt_tls) = if config.mqtt.enabled {
            let m = &config.mqtt;
            Bound::both(
                m.plain.then_some((m.listen, "[mqtt] listen")),
                m.tls.as_ref().map(|t| (t, "[mqtt.tls]")),
            )
            .await?
        } else {
            (None, None)
        };
        warn_open_listeners(
            &security,
            [
                ("wire", &wire_plain, &config.wire.tls),
                ("wire-tls", &wire_tls, &config.wire.tls),
                ("mqtt", &mqtt_plain, &config.mqtt.tls),
                ("mqtt-tls", &mqtt_tls, &config.mqtt.tls),
            ],
        );
        let addr = |b: &Option<Bound>| b.as_ref().map(|b| b.addr);
        let listener_stats: Vec<_> = [
            ("wire", &wire_plain),
            ("wire-tls", &wire_tls),
            ("mqtt", &mqtt_plain),
            ("mqtt-tls", &mqtt_tls),
        ]
        .into_iter()
        .filter_map(|(name, b)| b.as_ref().map(|b| (name, b.stats.clone())))
        .collect();
        // Everything SIGHUP re-reads: the password file and ACL, the TLS certificates.
        let mut reloadable: Vec<Arc<dyn crate::reload::Reload>> = vec![Arc::new(security.clone())];
        for b in [&wire_tls, &mqtt_tls].into_iter().flatten() {
            if let Some(tls) = &b.tls {
                reloadable.push(tls.clone());
            }
        }
        tokio::spawn(crate::reload::run(hup, reloadable, shutdown.subscribe()));
        // Statuses are written through the writer: joined before it drains (see `stop`).
        bridge_tasks.push(devices.spawn_flusher(&shutdown));
        let mut server = Self {
            devices,
            wire_addr: addr(&wire_plain),
            wire_tls_addr: addr(&wire_tls),
            udp_addr: udp.as_ref().map(crate::udp::Listener::local_addr),
            mqtt_addr: addr(&mqtt_plain),
            mqtt_tls_addr: addr(&mqtt_tls),
            security,
            log,
            bridges,
            bridge_tasks,
            shutdown,
            tasks: Vec::new(),
            metrics_addr: admin.as_ref().map(AdminServer::local_addr),
            health,
            admin,
        };
        server.serve_wire(&config, [wire_plain, wire_tls]);
        let udp_stats = udp.map(|u| server.serve_udp(&config, u));
        let broker = if config.mqtt.enabled {
            Some(server.serve_mqtt(&config, [mqtt_plain, mqtt_tls])?)
        } else {
            None
        };
        if let Some(admin) = &server.admin {
            admin.set_registry(crate::admin::metrics::registry(
                crate::admin::metrics::Sources {
                    log: server.log.clone(),
                    log_path: config.log_path(),
                    data_dir: config.data_dir.clone(),
                    mqtt: broker,
                    bridges: server.bridges.clone(),
                    listeners: listener_stats,
                    security: server.security.clone(),
                    devices: server.devices.clone(),
                    udp: udp_stats,
                },
            ));
        }
        server.health.set(Readiness::Ready);
        Ok(server)
    }

    /// Starts the binary protocol's accept loops. Both listeners share one connection limit.
    fn serve_wire(&mut self, config: &Config, listeners: [Option<Bound>; 2]) {
        let conn = ConnConfig {
            max_frame_bytes: config.wire.max_frame_bytes,
            // tokio's permit limit is below u32::MAX on 32-bit targets (armv7), and a
            // connection's reply queue holds 8 more; a window that large never fills anyway.
            max_inflight: config
                .wire
                .max_inflight
                .min(u32::try_from(Semaphore::MAX_PERMITS - 8).unwrap_or(u32::MAX)),
            batch_max_bytes: config.log.batch_max_bytes as usize,
            idle_timeout: Duration::from_millis(config.wire.idle_timeout_ms),
        };
        // On 32-bit targets (armv7) tokio's permit limit is below u32::MAX: a larger configured
        // limit means "no limit" there, where it could never be reached anyway.
        let permits = (config.wire.max_connections as usize).min(Semaphore::MAX_PERMITS);
        let limit = Arc::new(Semaphore::new(permits));
        for bound in listeners.into_iter().flatten() {
            let (log, bridges, stop) = (
                self.log.clone(),
                self.bridges.clone(),
                self.shutdown.clone(),
            );
            let (limit, security) = (limit.clone(), self.security.clone());
            let devices = self.devices.clone();
            self.tasks.push(tokio::spawn(accept_loop(
                bound,
                self.shutdown.clone(),
                "binary protocol",
                move |incoming| {
                    let permit = limit.clone().try_acquire_owned().ok();
                    let served = connection::Served {
                        log: log.clone(),
                        bridges: bridges.clone(),
                        security: security.clone(),
                        devices: devices.clone(),
                        stats: incoming.stats.clone(),
                    };
                    let shutdown = stop.clone();
                    Some(async move {
                        let addr = incoming.addr;
                        let Some((stream, peer)) = incoming.establish().await else {
                            return;
                        };
                        match permit {
                            Some(permit) => {
                                // Boxed for the same reason as MQTT's (see serve_mqtt).
                                Box::pin(connection::serve(stream, peer, served, conn, shutdown))
                                    .await;
                                drop(permit);
                            }
                            None => {
                                served.stats.refused();
                                if let Some(similar_not_logged) = WIRE_LIMIT_LOG.pass() {
                                    tracing::warn!(peer = %addr, similar_not_logged, "connection limit reached; refusing");
                                }
                                refuse_busy(stream).await;
                            }
                        }
                    })
                },
            )));
        }
    }

    /// Starts the UDP receive loop; returns its counters. Its task is joined with the
    /// listeners', before the writer drains: its acknowledged appends are answered or dropped
    /// unacknowledged by then.
    fn serve_udp(
        &mut self,
        config: &Config,
        listener: crate::udp::Listener,
    ) -> Arc<crate::udp::UdpStats> {
        let addr = listener.local_addr();
        if !self.security.requires_login() && !addr.ip().is_loopback() {
            tracing::warn!(
                listener = "udp",
                %addr,
                "accepts datagrams from devices without a token from the network; set [auth] \
                 password_file to require device tokens"
            );
        }
        let stats = listener.stats();
        let shared = crate::udp::Shared {
            log: self.log.clone(),
            devices: self.devices.clone(),
            security: self.security.clone(),
        };
        let settings = crate::udp::UdpSettings {
            max_datagram_bytes: config.udp.max_datagram_bytes as usize,
            max_inflight: config.udp.max_inflight as usize,
            batch_max_bytes: config.log.batch_max_bytes as usize,
        };
        self.tasks
            .push(listener.spawn(shared, settings, &self.shutdown));
        stats
    }

    /// Restores the MQTT state and starts the MQTT accept loops (both listeners share one
    /// connection limit) and the housekeeping task (session expiry, delayed wills, `$SYS/`).
    fn serve_mqtt(
        &mut self,
        config: &Config,
        listeners: [Option<Bound>; 2],
    ) -> Result<Broker, ServeError> {
        let m = &config.mqtt;
        let broker = Broker::open(self.log.clone(), m, config.log.batch_max_bytes as usize)
            .map_err(ServeError::Mqtt)?;
        let counters = self.security.clone();
        broker.set_sys_source(Box::new(move || {
            crate::auth::sys_topics(&counters.denials())
        }));
        let conn = MqttConnConfig {
            session: SessionConfig {
                max_packet_bytes: m.max_packet_bytes,
                receive_maximum: m.receive_maximum,
                max_inflight: m.max_inflight,
                topic_alias_maximum: m.topic_alias_maximum,
                max_topic_levels: m.max_topic_levels as usize,
                max_keep_alive_secs: m.max_keep_alive_secs,
                max_session_expiry_secs: m.max_session_expiry_secs,
            },
            batch_max_bytes: config.log.batch_max_bytes as usize,
        };
        tokio::spawn(housekeeping(
            broker.clone(),
            Duration::from_secs(u64::from(m.sys_interval_secs)),
            self.shutdown.subscribe(),
        ));
        let max = m.max_connections as usize;
        // Every connection task holds a clone: the count of clones is the live connections
        // of both listeners.
        let live = Arc::new(());
        for bound in listeners.into_iter().flatten() {
            let (broker, stop, live) = (broker.clone(), self.shutdown.clone(), live.clone());
            let security = self.security.clone();
            self.tasks.push(tokio::spawn(accept_loop(
                bound,
                self.shutdown.clone(),
                "MQTT",
                move |incoming| {
                    let now = Arc::strong_count(&live) - 1;
                    let stats = incoming.stats.clone();
                    if now >= max {
                        stats.refused();
                    }
                    // Over the limit, CONNECT is answered "server busy"; far over it, the
                    // socket is closed at once so refusals cannot pile up.
                    if now >= max.saturating_mul(2) {
                        if let Some(similar_not_logged) = MQTT_LIMIT_LOG.pass() {
                            tracing::warn!(peer = %incoming.addr, similar_not_logged, "MQTT connection limit far exceeded; closing");
                        }
                        return None;
                    }
                    let shared = mqtt_connection::Shared {
                        broker: broker.clone(),
                        security: security.clone(),
                        io: stats.clone(),
                    };
                    let (stop, token) = (stop.clone(), live.clone());
                    Some(async move {
                        let Some((stream, peer)) = incoming.establish().await else {
                            return;
                        };
                        // Boxed: awaited inline, the connection's (large) future would be laid
                        // out twice in this one (rustc keeps the moved-from temporary), which
                        // doubled the memory of every idle connection.
                        let over = now >= max;
                        Box::pin(mqtt_connection::serve(stream, peer, shared, conn, stop, over))
                            .await;
                        drop(token);
                    })
                },
            )));
        }
        Ok(broker)
    }

    /// Stops accepting, lets connections finish, drains the writer. Nothing acknowledged is
    /// lost; requests still queued get `SHUTTING_DOWN`.
    /// The metrics listener stops last.
    pub async fn stop(self) {
        self.health.set(Readiness::Stopping);
        self.shutdown.trigger();
        for t in self.tasks {
            let _ = t.await;
        }
        // Bridges commit their last checkpoints through the writer: before it drains.
        for t in self.bridge_tasks {
            let _ = t.await;
        }
        // The connections have ended by now: what they last saw of their devices too.
        self.devices.flush_status().await;
        self.log.shutdown().await;
        if let Some(admin) = self.admin {
            admin.stop().await;
        }
    }
}

/// Warns, once at start, about each listener that anyone on the network can use without
/// credentials: bound beyond loopback while anonymous access is on, and (for a TLS listener)
/// no client certificate required. A gateway often starts like this during setup; the line
/// says what closes it.
fn warn_open_listeners(
    security: &Security,
    listeners: [(&str, &Option<Bound>, &Option<TlsListenerConfig>); 4],
) {
    for (name, bound, tls) in listeners {
        let Some(b) = bound else { continue };
        let tls = tls.as_ref().filter(|_| b.tls.is_some());
        if open_to_anyone(b.addr, tls, security.requires_login()) {
            tracing::warn!(
                listener = name,
                addr = %b.addr,
                "accepts anonymous clients from the network; set [auth] password_file (or \
                 require client certificates) to close it"
            );
        }
    }
}

/// Whether a listener on `addr` (with `tls` when it is a TLS listener) lets anyone on the
/// network in without credentials.
fn open_to_anyone(addr: SocketAddr, tls: Option<&TlsListenerConfig>, login: bool) -> bool {
    let certificate_required =
        tls.is_some_and(|t| t.client_ca_file.is_some() && t.require_client_cert);
    !login && !certificate_required && !addr.ip().is_loopback()
}

/// Binds the UDP socket if `[udp]` enables it.
async fn bind_udp(config: &Config) -> Result<Option<crate::udp::Listener>, ServeError> {
    if !config.udp.enabled {
        return Ok(None);
    }
    let addr = config.udp.listen_addr(&config.wire);
    let listener = crate::udp::Listener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind {
            key: "[udp] listen",
            addr,
            source,
        })?;
    Ok(Some(listener))
}

/// Binds the metrics listener if `[metrics]` enables it.
async fn start_admin(config: &Config, health: &Health) -> Result<Option<AdminServer>, ServeError> {
    if !config.metrics.enabled {
        return Ok(None);
    }
    let addr = config.metrics.listen;
    let admin = AdminServer::bind(addr, health.clone())
        .await
        .map_err(|source| ServeError::Bind {
            key: "[metrics] listen",
            addr,
            source,
        })?;
    Ok(Some(admin))
}

async fn housekeeping(broker: Broker, sys_every: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sys: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|&s| s) => return,
        }
        broker.expire(std::time::Instant::now()).await;
        if !sys_every.is_zero() && last_sys.is_none_or(|t| t.elapsed() >= sys_every) {
            broker.publish_sys();
            last_sys = Some(std::time::Instant::now());
        }
    }
}

/// Accepts connections until shutdown. `serve(incoming)` makes the task of one connection
/// (which runs the TLS handshake, if any, itself: a slow handshake never holds up
/// accepting), or `None` to close the socket at once. At shutdown, waits (bounded) for the
/// connections to finish.
async fn accept_loop<F, Fut>(bound: Bound, shutdown: Shutdown, what: &str, mut serve: F)
where
    F: FnMut(Incoming) -> Option<Fut>,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut conns = JoinSet::new();
    let mut stop = shutdown.subscribe();
    let Bound {
        listener,
        tls,
        stats,
        ..
    } = bound;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|&s| s) => break,
        };
        // Reap finished connections so the set stays bounded by live ones.
        while conns.try_join_next().is_some() {}
        let (tcp, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                if let Some(similar_not_logged) = ACCEPT_FAILED_LOG.pass() {
                    tracing::warn!(error = %e, what, similar_not_logged, "accept failed");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let open = stats.opened();
        let (tls, stats) = (tls.clone(), stats.clone());
        if let Some(task) = serve(Incoming {
            tcp,
            addr,
            tls,
            stats,
        }) {
            // Boxed: awaited inline, the task would be laid out twice in this wrapper (the
            // moved-from capture stays), which costs every connection ~400 bytes.
            let task = Box::pin(task);
            conns.spawn(async move {
                task.await;
                drop(open);
            });
        }
    }
    drop(listener);
    if !crate::shutdown::drain(&mut conns, CONNECTION_DRAIN).await {
        tracing::warn!(what, "connections did not finish in time; closing them");
    }
}

async fn refuse_busy(mut stream: Transport) {
    use tokio::io::AsyncWriteExt;
    let frame = outpost_firmware::Frame::Error {
        request_id: 0,
        code: outpost_firmware::ErrorCode::BUSY,
        message: "connection limit reached; try again later",
    };
    let mut bytes = Vec::new();
    if outpost_firmware::codec::encode_frame_vec(&frame, &mut bytes).is_ok() {
        let _ = stream.write_all(&bytes).await;
        let _ = stream.flush().await;
    }
    let _ = stream.shutdown().await;
}

/// Runs the broker until SIGINT/SIGTERM (SIGHUP reloads: see [`crate::reload`]). Prints the
/// bound addresses on stdout (tests and scripts read them when the configured port is 0).
pub async fn run(config: Config) -> Result<(), ServeError> {
    let data_dir = config.data_dir.clone();
    // Before the addresses are printed: whoever reads them may send SIGTERM at once.
    let signal = crate::shutdown::os_signal();
    let server = Server::start(config).await?;
    for (what, addr) in [
        ("metrics", server.metrics_addr),
        ("wire", server.wire_addr),
        ("wire-tls", server.wire_tls_addr),
        ("udp", server.udp_addr),
        ("mqtt", server.mqtt_addr),
        ("mqtt-tls", server.mqtt_tls_addr),
    ] {
        if let Some(addr) = addr {
            println!("outpost: {what} listening on {addr}");
        }
    }
    // Scripts and tests wait for this line: every listener above is bound and serving.
    println!("outpost: ready");
    tracing::info!(data_dir = %data_dir.display(), gateway_id = server.log.gateway_id(), "serving");
    signal.await;
    tracing::info!("shutting down: draining connections and the log writer");
    let log = server.log.clone();
    server.stop().await;
    tracing::info!(stats = log.stats_summary(), "stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The handshake is boxed, so establishing a connection adds little to its task.
    #[tokio::test]
    async fn establishing_a_connection_is_a_small_future() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let incoming = Incoming {
            addr: tcp.local_addr().unwrap(),
            tcp,
            tls: None,
            stats: Arc::default(),
        };
        let f = incoming.establish();
        let size = std::mem::size_of_val(&f);
        drop(f);
        assert!(size <= 256, "establish() is {size} bytes");
    }

    #[test]
    fn only_network_listeners_without_any_credential_are_open_to_anyone() {
        let any: SocketAddr = "0.0.0.0:1883".parse().unwrap();
        let lo: SocketAddr = "127.0.0.1:1883".parse().unwrap();
        let v6: SocketAddr = "[::]:8883".parse().unwrap();
        let mut tls = TlsListenerConfig {
            listen: v6,
            cert_file: "c".into(),
            key_file: "k".into(),
            client_ca_file: Some("ca".into()),
            require_client_cert: true,
            identity_as_username: None,
            handshake_timeout_ms: 1,
        };
        assert!(open_to_anyone(any, None, false));
        assert!(
            !open_to_anyone(any, None, true),
            "a password file closes it"
        );
        assert!(!open_to_anyone(lo, None, false), "loopback is local");
        assert!(!open_to_anyone(v6, Some(&tls), false), "mTLS closes it");
        tls.require_client_cert = false;
        assert!(
            open_to_anyone(v6, Some(&tls), false),
            "an optional certificate does not"
        );
        tls.client_ca_file = None;
        assert!(open_to_anyone(v6, Some(&tls), false));
    }
}
