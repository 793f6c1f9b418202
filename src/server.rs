//! `outpost serve`: opens the log, binds the listener, serves until SIGINT/SIGTERM.
//!
//! Shutdown order: stop accepting; let each connection finish its in-flight requests (bounded
//! wait) so their acks go out; then drain the log writer, which commits durably and stops.
//! A connection limit refuses extra connections with a `BUSY` error frame.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use tokio::sync::watch;

use crate::config::Config;
use crate::log::{Log, OpenError};
use crate::logging::RepeatGate;
use crate::mqtt::broker::Broker;
use crate::mqtt::connection::{self as mqtt_connection, ConnConfig as MqttConnConfig};
use crate::mqtt::session::SessionConfig;
use crate::shutdown::Shutdown;
use crate::wire::connection::{self, ConnConfig};

/// How long shutdown waits for connections to finish.
const CONNECTION_DRAIN: Duration = Duration::from_secs(15);
/// Refusals over a connection limit: a reconnecting fleet can cause one per attempt, so they
/// are logged at most once per interval, with a count.
static WIRE_LIMIT_LOG: RepeatGate = RepeatGate::new();
/// Likewise for the MQTT listener.
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
    /// The listener could not be bound.
    #[error(
        "cannot listen on {addr}: {source} (is another broker using the port? set {key} in the config)"
    )]
    Bind {
        /// The config key of the listener (`[wire] listen` or `[mqtt] listen`).
        key: &'static str,
        /// Address.
        addr: SocketAddr,
        /// I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// A running server: its bound address and the handle to stop it.
pub struct Server {
    /// The address the binary-protocol listener is bound to.
    pub wire_addr: SocketAddr,
    /// The address the MQTT listener is bound to (`None` when MQTT is disabled).
    pub mqtt_addr: Option<SocketAddr>,
    /// The log it serves.
    pub log: Log,
    /// Every bridge's status, as `BridgeStatus` requests report it. Bridges started for this
    /// server must register on this same board.
    pub bridges: outpost_bridge::StatusBoard,
    bridge_tasks: Vec<tokio::task::JoinHandle<()>>,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<()>,
    mqtt_task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Opens the log and binds the listener; serving starts at once in the background.
    pub async fn start(config: Config) -> Result<Self, ServeError> {
        let log = Log::open(&config)?;
        // One board for the whole server: the wire connections read it, the bridges'
        // forwarders write it.
        let bridges = outpost_bridge::StatusBoard::new();
        let addr = config.wire.listen;
        let bind = |source| ServeError::Bind {
            key: "[wire] listen",
            addr,
            source,
        };
        let listener = TcpListener::bind(addr).await.map_err(bind)?;
        let wire_addr = listener.local_addr().map_err(bind)?;
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
        let (mqtt_addr, mqtt_task) = if config.mqtt.enabled {
            let (addr, task) = start_mqtt(&config, &log, &shutdown).await?;
            (Some(addr), Some(task))
        } else {
            (None, None)
        };
        let (wire_log, wire_bridges, wire_stop) = (log.clone(), bridges.clone(), shutdown.clone());
        let task = tokio::spawn(accept_loop(
            listener,
            shutdown.clone(),
            "binary protocol",
            move |stream, peer, _| {
                let permit = limit.clone().try_acquire_owned().ok();
                let (log, bridges) = (wire_log.clone(), wire_bridges.clone());
                let shutdown = wire_stop.clone();
                Some(async move {
                    match permit {
                        Some(permit) => {
                            connection::serve(stream, log, bridges, conn, shutdown).await;
                            drop(permit);
                        }
                        None => {
                            if let Some(similar_not_logged) = WIRE_LIMIT_LOG.pass() {
                                tracing::warn!(%peer, similar_not_logged, "connection limit reached; refusing");
                            }
                            refuse_busy(stream).await;
                        }
                    }
                })
            },
        ));
        Ok(Self {
            wire_addr,
            mqtt_addr,
            log,
            bridges,
            bridge_tasks,
            shutdown,
            task,
            mqtt_task,
        })
    }

    /// Stops accepting, lets connections finish, drains the writer. Nothing acknowledged is
    /// lost; requests still queued get `SHUTTING_DOWN`.
    pub async fn stop(self) {
        self.shutdown.trigger();
        let _ = self.task.await;
        if let Some(t) = self.mqtt_task {
            let _ = t.await;
        }
        // Bridges commit their last checkpoints through the writer: before it drains.
        for t in self.bridge_tasks {
            let _ = t.await;
        }
        self.log.shutdown().await;
    }
}

/// Restores the MQTT state, binds the MQTT listener and starts its accept loop and the
/// housekeeping task (session expiry, delayed wills, `$SYS/`).
async fn start_mqtt(
    config: &Config,
    log: &Log,
    shutdown: &Shutdown,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), ServeError> {
    let m = &config.mqtt;
    let broker = Broker::open(log.clone(), m, config.log.batch_max_bytes as usize)
        .map_err(ServeError::Mqtt)?;
    let addr = m.listen;
    let bind = |source| ServeError::Bind {
        key: "[mqtt] listen",
        addr,
        source,
    };
    let listener = TcpListener::bind(addr).await.map_err(bind)?;
    let bound = listener.local_addr().map_err(bind)?;
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
        shutdown.subscribe(),
    ));
    let max = m.max_connections as usize;
    let stop = shutdown.clone();
    let task = tokio::spawn(accept_loop(
        listener,
        shutdown.clone(),
        "MQTT",
        move |stream, peer, live| {
            // Over the limit, CONNECT is answered "server busy"; far over it, the socket is
            // closed at once so refusals cannot pile up.
            if live >= max.saturating_mul(2) {
                if let Some(similar_not_logged) = MQTT_LIMIT_LOG.pass() {
                    tracing::warn!(%peer, similar_not_logged, "MQTT connection limit far exceeded; closing");
                }
                return None;
            }
            Some(mqtt_connection::serve(
                stream,
                broker.clone(),
                conn,
                stop.clone(),
                live >= max,
            ))
        },
    ));
    Ok((bound, task))
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

/// Accepts connections until shutdown. `serve(stream, peer, live)` makes the task of one
/// connection (`live`: connections open now), or `None` to close the socket at once. At
/// shutdown, waits (bounded) for the connections to finish.
async fn accept_loop<F, Fut>(listener: TcpListener, shutdown: Shutdown, what: &str, mut serve: F)
where
    F: FnMut(TcpStream, SocketAddr, usize) -> Option<Fut>,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut conns = JoinSet::new();
    let mut stop = shutdown.subscribe();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|&s| s) => break,
        };
        // Reap finished connections so the set stays bounded by live ones.
        while conns.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
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
        if let Some(task) = serve(stream, peer, conns.len()) {
            conns.spawn(task);
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(CONNECTION_DRAIN, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(what, "connections did not finish in time; closing them");
        conns.abort_all();
    }
}

async fn refuse_busy(mut stream: TcpStream) {
    use tokio::io::AsyncWriteExt;
    let frame = outpost_firmware::Frame::Error {
        request_id: 0,
        code: outpost_firmware::ErrorCode::BUSY,
        message: "connection limit reached; try again later",
    };
    let mut bytes = Vec::new();
    if outpost_firmware::codec::encode_frame_vec(&frame, &mut bytes).is_ok() {
        let _ = stream.write_all(&bytes).await;
    }
    let _ = stream.shutdown().await;
}

/// Runs the broker until SIGINT/SIGTERM. Prints the bound address on stdout (tests and
/// scripts read it when the configured port is 0).
pub async fn run(config: Config) -> Result<(), ServeError> {
    let data_dir = config.data_dir.clone();
    // Before the addresses are printed: whoever reads them may send SIGTERM at once.
    let signal = crate::shutdown::os_signal();
    let server = Server::start(config).await?;
    println!("outpost: wire listening on {}", server.wire_addr);
    if let Some(addr) = server.mqtt_addr {
        println!("outpost: mqtt listening on {addr}");
    }
    tracing::info!(addr = %server.wire_addr, data_dir = %data_dir.display(), gateway_id = server.log.gateway_id(), "serving");
    signal.await;
    tracing::info!("shutting down: draining connections and the log writer");
    let log = server.log.clone();
    server.stop().await;
    tracing::info!(stats = log.stats_summary(), "stopped");
    Ok(())
}
