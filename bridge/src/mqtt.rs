//! The MQTT upstream, on rumqttc (3.1.1 and 5).
//!
//! rumqttc's traps (FIELD-NOTES.md) shape this module:
//! - `publish()` returns no packet id: we correlate by order. Each `Outgoing::Publish(pkid)`
//!   event is the next request taken from the channel, so a FIFO of the ids we queued maps
//!   it to a [`MsgId`]; `PubAck { pkid }` then acknowledges that id.
//! - After a CONNACK without a session its event loop drops its pending queue silently, and
//!   after an error it keeps state that can livelock on packet-id collisions. So an event loop
//!   lives for exactly one connection: the first error ends it, and the next attempt builds a
//!   fresh one. Nothing unacknowledged is trusted to rumqttc across connections: the
//!   forwarder re-sends it from the log.
//! - It never backs off: the forwarder decides when to call [`Upstream::connect`] again.
//! - Publishing into a full channel from the polling task deadlocks: the event loop runs in
//!   its own task, and we publish with `try_publish` into a channel sized for the window.
//!
//! Every message carries its origin: MQTT 5 user properties `outpost-gateway`,
//! `outpost-topic`, `outpost-partition`, `outpost-offset`, `outpost-timestamp` (and the
//! record's own user properties and content type, as the device sent them); for 3.1.1 the
//! optional JSON envelope (see [`crate::config::Envelope`]).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{PubAckReason, PublishProperties};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::{BridgeConfig, Envelope, RouteConfig, UpstreamUrl};
use crate::template::{Fields, Template};
use crate::upstream::{MsgId, OutRecord, SendError, Upstream, UpstreamEvent};

/// Record headers that carry MQTT properties of the original publish (set by MQTT ingest).
const H_TOPIC: &str = "mqtt.topic";
const H_CONTENT_TYPE: &str = "mqtt.content_type";
const H_PAYLOAD_FORMAT: &str = "mqtt.payload_format";
const H_RESPONSE_TOPIC: &str = "mqtt.response_topic";
const H_CORRELATION: &str = "mqtt.correlation_data";

/// Why the MQTT upstream could not be set up (bad TLS files).
#[derive(Debug, thiserror::Error)]
#[error("bridge `{bridge}`: {problem}")]
pub struct SetupError {
    bridge: String,
    problem: String,
}

/// What the event-loop task reports, tagged with nothing: each connection has its own channel.
#[derive(Debug)]
enum Raw {
    /// `max_packet`: the upstream's MQTT 5 Maximum Packet Size, when it sent one.
    ConnAck {
        session_present: bool,
        max_packet: Option<u32>,
    },
    Outgoing {
        pkid: u16,
    },
    /// `refused`: the reason, and whether it is permanent.
    PubAck {
        pkid: u16,
        refused: Option<(String, bool)>,
    },
    Error(String),
}

struct Route {
    template: Template,
    qos: u8,
    retain: bool,
}

enum Client {
    V4(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

struct Conn {
    client: Client,
    events: mpsc::Receiver<Raw>,
    task: JoinHandle<()>,
    /// Ids queued into rumqttc's channel and not yet seen as `Outgoing::Publish`, in order,
    /// with their QoS.
    queued: VecDeque<(MsgId, u8)>,
    /// Packet id → the record it carries, until its PUBACK.
    inflight: HashMap<u16, MsgId>,
    connected: bool,
    /// The largest packet this connection may send: ours, or the upstream's if smaller.
    max_packet: usize,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An MQTT upstream connection (one per bridge).
pub struct MqttUpstream {
    name: String,
    url: UpstreamUrl,
    v5: bool,
    client_id: String,
    gateway: String,
    credentials: Option<(String, String)>,
    keep_alive: Duration,
    connect_timeout: u64,
    max_packet: usize,
    envelope: Envelope,
    nodelay: bool,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Capacity of rumqttc's request channel and its in-flight limit.
    window: usize,
    routes: Vec<Route>,
    conn: Option<Conn>,
    topic_buf: String,
}

impl MqttUpstream {
    /// Builds the upstream of `config` (reading its TLS files now, so mistakes show at
    /// start). `window` is the most records the forwarder keeps in flight in total.
    pub fn new(config: &BridgeConfig, gateway: &str, window: usize) -> Result<Self, SetupError> {
        let err = |problem: String| SetupError {
            bridge: config.name.clone(),
            problem,
        };
        let url = config.upstream_url().map_err(|e| err(e.to_string()))?;
        let tls = if url.tls {
            Some(Arc::new(tls_config(config).map_err(err)?))
        } else {
            None
        };
        let routes = config
            .routes
            .iter()
            .map(|r: &RouteConfig| {
                Ok(Route {
                    template: Template::parse(config.upstream_topic(r)).map_err(err)?,
                    qos: r.qos,
                    retain: r.retain,
                })
            })
            .collect::<Result<_, SetupError>>()?;
        Ok(Self {
            name: config.name.clone(),
            url,
            v5: config.is_v5(),
            client_id: config.client_id(gateway),
            gateway: gateway.to_owned(),
            credentials: config
                .username
                .clone()
                .map(|u| (u, config.password.clone().unwrap_or_default())),
            keep_alive: Duration::from_secs(u64::from(config.keep_alive_secs)),
            connect_timeout: u64::from(config.connect_timeout_secs),
            max_packet: config.max_packet_bytes as usize,
            envelope: config.envelope,
            nodelay: config.tcp_nodelay,
            tls,
            window: window.clamp(1, 65_535),
            routes,
            conn: None,
            topic_buf: String::new(),
        })
    }

    fn transport(&self) -> rumqttc::Transport {
        match &self.tls {
            Some(c) => {
                rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(c.clone()))
            }
            None => rumqttc::Transport::tcp(),
        }
    }

    fn network(&self) -> rumqttc::NetworkOptions {
        let mut n = rumqttc::NetworkOptions::new();
        n.set_tcp_nodelay(self.nodelay);
        n.set_connection_timeout(self.connect_timeout);
        n
    }

    fn start_v4(&self, tx: mpsc::Sender<Raw>) -> (Client, JoinHandle<()>) {
        let mut o = rumqttc::MqttOptions::new(&self.client_id, &self.url.host, self.url.port);
        o.set_keep_alive(self.keep_alive)
            .set_clean_session(false)
            .set_max_packet_size(self.max_packet.max(64 << 10), self.max_packet)
            .set_inflight(self.window as u16)
            .set_transport(self.transport());
        if let Some((u, p)) = &self.credentials {
            o.set_credentials(u, p);
        }
        let (client, mut el) = rumqttc::AsyncClient::new(o, self.window + 16);
        el.set_network_options(self.network());
        let task = tokio::spawn(async move {
            use rumqttc::{Event, Outgoing, Packet};
            loop {
                let raw = match el.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(c))) => Raw::ConnAck {
                        session_present: c.session_present,
                        max_packet: None,
                    },
                    Ok(Event::Incoming(Packet::PubAck(a))) => Raw::PubAck {
                        pkid: a.pkid,
                        refused: None,
                    },
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => Raw::Outgoing { pkid },
                    Ok(_) => continue,
                    Err(e) => Raw::Error(describe_v4(&e)),
                };
                let last = matches!(raw, Raw::Error(_));
                if tx.send(raw).await.is_err() || last {
                    return;
                }
            }
        });
        (Client::V4(client), task)
    }

    fn start_v5(&self, tx: mpsc::Sender<Raw>) -> (Client, JoinHandle<()>) {
        let mut o = rumqttc::v5::MqttOptions::new(&self.client_id, &self.url.host, self.url.port);
        o.set_keep_alive(self.keep_alive)
            .set_clean_start(false)
            // Keep the session for a day: a gateway may be offline for long.
            .set_session_expiry_interval(Some(86_400))
            .set_max_packet_size(Some((self.max_packet.max(64 << 10)) as u32))
            .set_outgoing_inflight_upper_limit(self.window as u16)
            .set_connection_timeout(self.connect_timeout)
            .set_transport(self.transport());
        if let Some((u, p)) = &self.credentials {
            o.set_credentials(u, p);
        }
        o.set_network_options(self.network());
        let (client, mut el) = rumqttc::v5::AsyncClient::new(o, self.window + 16);
        let task = tokio::spawn(async move {
            use rumqttc::v5::{Event, Incoming};
            use rumqttc::Outgoing;
            loop {
                let raw = match el.poll().await {
                    Ok(Event::Incoming(Incoming::ConnAck(c))) => Raw::ConnAck {
                        session_present: c.session_present,
                        max_packet: c.properties.and_then(|p| p.max_packet_size),
                    },
                    Ok(Event::Incoming(Incoming::PubAck(a))) => Raw::PubAck {
                        pkid: a.pkid,
                        refused: refusal(&a.reason),
                    },
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => Raw::Outgoing { pkid },
                    Ok(_) => continue,
                    Err(e) => Raw::Error(describe_v5(&e)),
                };
                let last = matches!(raw, Raw::Error(_));
                if tx.send(raw).await.is_err() || last {
                    return;
                }
            }
        });
        (Client::V5(client), task)
    }

    /// The v5 properties of a record: origin, then what the device sent.
    fn properties(&self, r: &OutRecord<'_>) -> PublishProperties {
        let rec = r.record;
        let mut p = PublishProperties {
            user_properties: origin_pairs(&self.gateway, r),
            ..PublishProperties::default()
        };
        for &(k, v) in rec.headers {
            let text = || String::from_utf8_lossy(v).into_owned();
            match k {
                H_CONTENT_TYPE => p.content_type = Some(text()),
                H_RESPONSE_TOPIC => p.response_topic = Some(text()),
                H_CORRELATION => p.correlation_data = Some(Bytes::copy_from_slice(v)),
                H_PAYLOAD_FORMAT => {
                    p.payload_format_indicator = v.first().map(|&b| u8::from(b == b'1' || b == 1))
                }
                _ if k.starts_with("mqtt.") || k.starts_with("outpost-") => {}
                _ => p.user_properties.push((k.to_owned(), text())),
            }
        }
        p
    }
}

/// A PUBACK reason that is not success: its text and whether the upstream would refuse the
/// same message again.
fn refusal(reason: &PubAckReason) -> Option<(String, bool)> {
    let permanent = match reason {
        PubAckReason::Success | PubAckReason::NoMatchingSubscribers => return None,
        PubAckReason::NotAuthorized
        | PubAckReason::TopicNameInvalid
        | PubAckReason::PayloadFormatInvalid => true,
        PubAckReason::UnspecifiedError
        | PubAckReason::ImplementationSpecificError
        | PubAckReason::PacketIdentifierInUse
        | PubAckReason::QuotaExceeded => false,
    };
    Some((
        format!("upstream refused the message: {reason:?}"),
        permanent,
    ))
}

/// The origin stamp as `(name, value)` pairs.
fn origin_pairs(gateway: &str, r: &OutRecord<'_>) -> Vec<(String, String)> {
    vec![
        ("outpost-gateway".to_owned(), gateway.to_owned()),
        ("outpost-topic".to_owned(), r.topic.to_owned()),
        ("outpost-partition".to_owned(), r.partition.to_string()),
        ("outpost-offset".to_owned(), r.record.offset.to_string()),
        (
            "outpost-timestamp".to_owned(),
            r.record.timestamp_ms.to_string(),
        ),
    ]
}

/// The 3.1.1 JSON envelope (documented on [`Envelope::Json`]).
fn json_envelope(gateway: &str, r: &OutRecord<'_>) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let rec = r.record;
    serde_json::json!({
        "gateway": gateway,
        "topic": r.topic,
        "partition": r.partition,
        "offset": rec.offset,
        "timestamp": rec.timestamp_ms,
        "key": rec.key.map(|k| b64.encode(k)),
        "value": b64.encode(rec.value),
    })
    .to_string()
    .into_bytes()
}

impl MqttUpstream {
    /// What a report of the event-loop task means for the forwarder (`None`: nothing yet;
    /// `raw` is `None` when the task ended).
    fn on_raw(&mut self, raw: Option<Raw>) -> Option<UpstreamEvent> {
        let conn = self.conn.as_mut()?;
        let Some(raw) = raw else {
            // The task ended without an error event (aborted): treat as lost.
            self.conn = None;
            return Some(UpstreamEvent::Failed {
                reason: "the connection task ended".to_owned(),
            });
        };
        match raw {
            Raw::ConnAck {
                session_present,
                max_packet,
            } => {
                conn.connected = true;
                if let Some(m) = max_packet {
                    conn.max_packet = conn.max_packet.min(m as usize);
                }
                Some(UpstreamEvent::Connected { session_present })
            }
            Raw::Outgoing { pkid } => {
                let (id, q) = conn.queued.pop_front()?;
                if q == 0 || pkid == 0 {
                    return Some(UpstreamEvent::Acked {
                        slot: id.slot,
                        offsets: id.offset..id.offset + 1,
                        position: None,
                    });
                }
                conn.inflight.insert(pkid, id);
                None
            }
            Raw::PubAck { pkid, refused } => {
                let id = conn.inflight.remove(&pkid)?;
                Some(match refused {
                    None => UpstreamEvent::Acked {
                        slot: id.slot,
                        offsets: id.offset..id.offset + 1,
                        position: None,
                    },
                    Some((reason, permanent)) => UpstreamEvent::Rejected {
                        id,
                        reason,
                        permanent,
                    },
                })
            }
            Raw::Error(reason) => {
                self.conn = None;
                Some(UpstreamEvent::Failed { reason })
            }
        }
    }
}

fn header<'a>(rec: &'a crate::SourceRecord<'a>, name: &str) -> Option<&'a [u8]> {
    rec.headers
        .iter()
        .find(|(k, _)| *k == name)
        .map(|&(_, v)| v)
}

fn describe_v4(e: &rumqttc::ConnectionError) -> String {
    match e {
        rumqttc::ConnectionError::ConnectionRefused(code) => {
            format!("upstream refused the connection: {code:?}")
        }
        rumqttc::ConnectionError::NetworkTimeout => "connection attempt timed out".to_owned(),
        other => other.to_string(),
    }
}

fn describe_v5(e: &rumqttc::v5::ConnectionError) -> String {
    match e {
        rumqttc::v5::ConnectionError::ConnectionRefused(code) => {
            format!("upstream refused the connection: {code:?}")
        }
        other => other.to_string(),
    }
}

fn qos(q: u8) -> rumqttc::QoS {
    if q == 0 {
        rumqttc::QoS::AtMostOnce
    } else {
        rumqttc::QoS::AtLeastOnce
    }
}

fn qos5(q: u8) -> rumqttc::v5::mqttbytes::QoS {
    if q == 0 {
        rumqttc::v5::mqttbytes::QoS::AtMostOnce
    } else {
        rumqttc::v5::mqttbytes::QoS::AtLeastOnce
    }
}

/// rustls with `ring`, the CA file (or none: then the connection cannot be verified and is
/// refused) and the optional client certificate.
fn tls_config(config: &BridgeConfig) -> Result<rustls::ClientConfig, String> {
    let ca = config
        .ca_file
        .as_deref()
        .ok_or("an mqtts:// upstream needs `ca_file` (the CA that signed its certificate)")?;
    let client_cert = match (&config.client_cert_file, &config.client_key_file) {
        (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
        _ => None,
    };
    crate::tls::client_config(ca, client_cert)
}

impl Upstream for MqttUpstream {
    fn connect(&mut self) {
        self.conn = None;
        // Each message yields at most two events; the task waits when the forwarder lags.
        let (tx, rx) = mpsc::channel(2 * self.window + 16);
        let (client, task) = if self.v5 {
            self.start_v5(tx)
        } else {
            self.start_v4(tx)
        };
        tracing::debug!(bridge = self.name, upstream = %format!("{}:{}", self.url.host, self.url.port), "connecting");
        self.conn = Some(Conn {
            client,
            events: rx,
            task,
            queued: VecDeque::new(),
            inflight: HashMap::new(),
            connected: false,
            max_packet: self.max_packet,
        });
    }

    fn send(&mut self, id: MsgId, r: &OutRecord<'_>) -> Result<usize, SendError> {
        if !self.conn.as_ref().is_some_and(|c| c.connected) {
            return Err(SendError::NotReady("not connected".to_owned()));
        }
        let (q, retain) = (self.routes[r.route].qos, self.routes[r.route].retain);
        let rec = r.record;
        self.routes[r.route].template.render(
            &Fields {
                gateway: &self.gateway,
                topic: r.topic,
                partition: r.partition,
                key: rec.key,
                mqtt_topic: header(rec, H_TOPIC),
            },
            &mut self.topic_buf,
        );
        let topic = self.topic_buf.clone();
        // Sizes: fixed header ≤ 5, topic, packet id, (v5) properties, payload.
        let (size, v5_props, v4_payload) = if self.v5 {
            let props = self.properties(r);
            let props_len: usize = props
                .user_properties
                .iter()
                .map(|(k, v)| 5 + k.len() + v.len())
                .sum::<usize>()
                + props.content_type.as_ref().map_or(0, |s| 3 + s.len())
                + props.response_topic.as_ref().map_or(0, |s| 3 + s.len())
                + props.correlation_data.as_ref().map_or(0, |s| 3 + s.len())
                + 2;
            (
                5 + 2 + topic.len() + 2 + props_len + 4 + rec.value.len(),
                Some(props),
                Vec::new(),
            )
        } else {
            let payload = match self.envelope {
                Envelope::None => rec.value.to_vec(),
                Envelope::Json => json_envelope(&self.gateway, r),
            };
            (5 + 2 + topic.len() + 2 + payload.len(), None, payload)
        };
        let Some(conn) = self.conn.as_mut() else {
            return Err(SendError::NotReady("not connected".to_owned()));
        };
        if size > conn.max_packet {
            return Err(SendError::TooLarge(format!(
                "{size} bytes > the largest packet the upstream takes ({})",
                conn.max_packet
            )));
        }
        // MQTT strings and binary fields carry a 16-bit length (rumqttc would truncate it).
        let long = |len: usize| len > usize::from(u16::MAX);
        let too_long = long(topic.len())
            || v5_props.as_ref().is_some_and(|p| {
                p.user_properties
                    .iter()
                    .any(|(k, v)| long(k.len()) || long(v.len()))
                    || p.content_type.as_ref().is_some_and(|c| long(c.len()))
                    || p.response_topic.as_ref().is_some_and(|c| long(c.len()))
                    || p.correlation_data.as_ref().is_some_and(|c| long(c.len()))
            });
        if too_long {
            return Err(SendError::TooLarge(
                "its topic or a header is longer than 65,535 bytes, the MQTT maximum".to_owned(),
            ));
        }
        let queued = match (&conn.client, v5_props) {
            (Client::V5(c), Some(props)) => c
                .try_publish_with_properties(
                    topic,
                    qos5(q),
                    retain,
                    Bytes::copy_from_slice(rec.value),
                    props,
                )
                .map_err(|e| e.to_string()),
            (Client::V4(c), _) => c
                .try_publish(topic, qos(q), retain, v4_payload)
                .map_err(|e| e.to_string()),
            (Client::V5(_), None) => Err("protocol mismatch".to_owned()),
        };
        queued.map_err(SendError::NotReady)?;
        conn.queued.push_back((id, q));
        Ok(size)
    }

    async fn next_event(&mut self) -> UpstreamEvent {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return std::future::pending().await;
            };
            let raw = conn.events.recv().await;
            if let Some(ev) = self.on_raw(raw) {
                return ev;
            }
        }
    }

    fn try_next_event(&mut self) -> Option<UpstreamEvent> {
        loop {
            let raw = match self.conn.as_mut()?.events.try_recv() {
                Ok(raw) => Some(raw),
                Err(mpsc::error::TryRecvError::Empty) => return None,
                Err(mpsc::error::TryRecvError::Disconnected) => None,
            };
            if let Some(ev) = self.on_raw(raw) {
                return Some(ev);
            }
        }
    }

    fn disconnect(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Queues a DISCONNECT; the task is aborted on drop, so it goes out only if the
            // event loop gets to it first. The upstream copes either way (keep-alive).
            match &conn.client {
                Client::V4(c) => {
                    let _ = c.try_disconnect();
                }
                Client::V5(c) => {
                    let _ = c.try_disconnect();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SourceRecord;

    #[test]
    fn origin_and_envelope() {
        let headers = [("mqtt.topic", &b"a/b"[..]), ("unit", &b"C"[..])];
        let rec = SourceRecord {
            offset: 42,
            timestamp_ms: 1_700_000_000_000,
            key: Some(b"k"),
            value: b"21.5",
            headers: &headers,
        };
        let r = OutRecord {
            route: 0,
            topic: "sensors",
            partition: 2,
            record: &rec,
        };
        let pairs = origin_pairs("gw1", &r);
        assert_eq!(pairs[3], ("outpost-offset".to_owned(), "42".to_owned()));
        let env: serde_json::Value = serde_json::from_slice(&json_envelope("gw1", &r)).unwrap();
        assert_eq!(env["offset"], 42);
        assert_eq!(env["partition"], 2);
        assert_eq!(env["value"], "MjEuNQ==");
        assert_eq!(env["key"], "aw==");
        assert_eq!(header(&rec, "mqtt.topic"), Some(&b"a/b"[..]));
    }
}
