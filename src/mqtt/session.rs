//! One MQTT connection's protocol state, with no I/O and no clock of its own.
//!
//! The connection task feeds it decoded packets ([`Session::handle_packet`]) and the current
//! time, hands it deliveries ([`Session::deliver`]) and the broker's answers (`connected`,
//! `published`, `subscribed`, `unsubscribed`), writes out [`Session::transmit`], performs
//! the [`Action`]s it asks for, and calls [`Session::handle_timeout`] at
//! [`Session::poll_timeout`]. Every protocol rule of a single connection lives here: CONNECT
//! validation, packet identifiers, the QoS 1 and QoS 2 flows in both directions, receive
//! maximum, topic aliases, keep-alive, and which errors close the connection with which
//! reason code.
//!
//! A [`Close`] result means: send what is in `transmit` (a v5 DISCONNECT or a CONNACK
//! refusal may be there), then close the socket.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use super::codec::{self, DecodeError};
use super::message::{Message, SharedMessage};
use super::packet::{
    connack_v3, reason, ConnAck, Connect, Disconnect, Packet, Properties, Protocol, PubResponse,
    Publish, QoS, SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe,
};
use super::subscriptions::SessionId;
use super::topic;

/// How long a new connection may take to send CONNECT.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Limits and settings a session enforces (from `[mqtt]`).
#[derive(Debug, Clone, Copy)]
pub struct SessionConfig {
    /// Largest packet accepted (also announced as v5 Maximum Packet Size).
    pub max_packet_bytes: u32,
    /// Inbound QoS 1/2 publishes in flight (v5 Receive Maximum announced).
    pub receive_maximum: u16,
    /// Outbound QoS 1/2 messages in flight, at most.
    pub max_inflight: u16,
    /// v5 Topic Alias Maximum announced (inbound aliases).
    pub topic_alias_maximum: u16,
    /// Most topic levels.
    pub max_topic_levels: usize,
    /// Keep-alive imposed when a client asks for more or none (0: accept the client's).
    pub max_keep_alive_secs: u16,
    /// Upper bound of a session's expiry interval.
    pub max_session_expiry_secs: u32,
}

/// A message on its way to this session's client.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The message.
    pub msg: SharedMessage,
    /// QoS it is delivered with (the publish QoS capped by the subscription's).
    pub qos: QoS,
    /// RETAIN flag to send.
    pub retain: bool,
    /// v5 subscription identifiers of the matching subscriptions.
    pub sub_ids: Vec<u32>,
    /// Its row in the persistent queue, if the session is persistent and QoS > 0.
    pub seq: Option<u64>,
    /// Packet id when it was already sent (restored in-flight message), else 0.
    pub packet_id: u16,
    /// QoS 2: PUBREC received, PUBCOMP awaited.
    pub released: bool,
}

/// What the client asked for in CONNECT, for the broker.
#[derive(Debug, Clone)]
pub struct ConnectInfo {
    /// Client identifier (assigned by the broker when the client sent an empty one).
    pub client_id: String,
    /// Whether the broker assigned `client_id`.
    pub assigned: bool,
    /// Clean Start / Clean Session.
    pub clean_start: bool,
    /// Session expiry interval in seconds (v3: 0 for a clean session, `u32::MAX` otherwise),
    /// already capped by the configuration.
    pub session_expiry_secs: u32,
    /// Protocol level.
    pub protocol: Protocol,
    /// User name, if any.
    pub username: Option<String>,
    /// Password, if any (checked by [`crate::auth`], never logged).
    pub password: Option<crate::auth::Secret>,
}

/// The will of a connection.
#[derive(Debug, Clone)]
pub struct WillMessage {
    /// The message to publish.
    pub msg: Message,
    /// v5 Will Delay Interval, seconds.
    pub delay_secs: u32,
}

/// Session state that outlives a connection (parked in the broker while the client is away).
#[derive(Debug, Clone, Default)]
pub struct SessionState {
    /// Outbound QoS 1/2 messages sent and not yet completely acknowledged, in send order.
    pub inflight: Vec<Delivery>,
    /// Inbound QoS 2 packet ids whose PUBREC was sent and whose PUBREL has not arrived.
    pub qos2_received: Vec<u16>,
    /// Next outbound packet id to try.
    pub next_packet_id: u16,
}

/// A request of the session to the broker, performed by the connection task.
#[derive(Debug)]
pub enum Action {
    /// Attach to (or create) the session of this client id; answer with
    /// [`Session::connected`] or [`Session::refuse`].
    Connect(ConnectInfo),
    /// Store and route an accepted message; answer with [`Session::published`] (QoS 1/2).
    Publish {
        /// The message.
        msg: Message,
        /// Packet id (0 at QoS 0).
        packet_id: u16,
    },
    /// Add subscriptions; answer with [`Session::subscribed`].
    Subscribe {
        /// Packet id.
        packet_id: u16,
        /// Requested subscriptions; `Err(reason)` marks one the session already refused.
        entries: Vec<Result<SubscribeEntry, u8>>,
    },
    /// Remove subscriptions; answer with [`Session::unsubscribed`].
    Unsubscribe {
        /// Packet id.
        packet_id: u16,
        /// Filters, exactly as sent (including any `$share/` prefix).
        filters: Vec<String>,
    },
    /// An outbound message is done (PUBACK or PUBCOMP, or dropped): forget its queue row.
    Done(Delivery),
    /// A queued (persistent) message is being sent with this packet id: persist that before
    /// the PUBLISH goes out, so a restart re-sends it with the same id and DUP
    /// ([MQTT-4.4.0-1]).
    Sent(Delivery),
    /// QoS 2 outbound: PUBREC arrived; persist that only PUBCOMP is awaited before PUBREL goes
    /// out (a restart then re-sends PUBREL, never the PUBLISH the client has completed).
    Released(Delivery),
    /// QoS 2 inbound: PUBREL arrived for this packet id; the message's exactly-once record
    /// can go.
    InboundDone(u16),
}

/// One entry of a SUBSCRIBE, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeEntry {
    /// The filter exactly as sent (may start with `$share/`).
    pub filter: String,
    /// Options.
    pub options: SubscriptionOptions,
    /// v5 subscription identifier.
    pub id: Option<u32>,
}

/// The connection must close (after `transmit` is written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close {
    /// Why (a v5 reason code; 0 for a normal client DISCONNECT).
    pub reason: u8,
    /// Whether the will message (if any) is to be published.
    pub publish_will: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitConnect,
    Connecting,
    Connected,
    Closed,
}

/// An inbound QoS 2 packet id: its commit is pending (`false`) or done and PUBREC sent.
type Qos2Committed = bool;

/// Counters a session reports (the broker sums them into `$SYS`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionCounters {
    /// Outbound messages dropped (expired, or larger than the client's Maximum Packet Size).
    pub dropped: u64,
}

/// The per-connection protocol state machine.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    phase: Phase,
    protocol: Protocol,
    /// Session expiry agreed at CONNECT.
    session_expiry: u32,
    keep_alive: Option<Duration>,
    deadline: Option<Instant>,
    id: Option<SessionId>,
    will: Option<WillMessage>,
    // Limits the client announced (v5).
    client_receive_max: u16,
    client_max_packet: u32,
    client_alias_max: u16,
    // Inbound.
    inbound_aliases: HashMap<u16, Box<str>>,
    inbound_inflight: usize,
    qos2_received: HashMap<u16, Qos2Committed>,
    // Outbound.
    inflight: BTreeMap<u16, Delivery>,
    order: Vec<u16>,
    next_packet_id: u16,
    outbound_aliases: HashMap<Box<str>, u16>,
    transmit: Vec<u8>,
    actions: std::collections::VecDeque<Action>,
    counters: SessionCounters,
    pending_connack: Option<PendingConnAck>,
}

/// What the CONNACK must tell a v5 client, decided at CONNECT.
#[derive(Debug, Clone, Default)]
struct PendingConnAck {
    assigned: Option<String>,
    server_keep_alive: Option<u16>,
    expiry_changed: Option<u32>,
}

impl Session {
    /// A session for a connection accepted at `now`.
    pub fn new(config: SessionConfig, now: Instant) -> Self {
        Self {
            config,
            phase: Phase::AwaitConnect,
            protocol: Protocol::V311,
            session_expiry: 0,
            keep_alive: None,
            deadline: Some(now + CONNECT_TIMEOUT),
            id: None,
            will: None,
            client_receive_max: u16::MAX,
            client_max_packet: u32::MAX,
            client_alias_max: 0,
            inbound_aliases: HashMap::new(),
            inbound_inflight: 0,
            qos2_received: HashMap::new(),
            inflight: BTreeMap::new(),
            order: Vec::new(),
            next_packet_id: 1,
            outbound_aliases: HashMap::new(),
            transmit: Vec::new(),
            actions: std::collections::VecDeque::new(),
            counters: SessionCounters::default(),
            pending_connack: None,
        }
    }

    /// The protocol level (V311 until CONNECT arrives).
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// True once CONNACK accepted the connection.
    pub fn is_connected(&self) -> bool {
        self.phase == Phase::Connected
    }

    /// The session expiry agreed (or set by DISCONNECT).
    pub fn session_expiry(&self) -> u32 {
        self.session_expiry
    }

    /// Counters since the connection started.
    pub fn counters(&self) -> SessionCounters {
        self.counters
    }

    /// Bytes to send to the client; the caller writes and clears them.
    pub fn transmit(&mut self) -> &mut Vec<u8> {
        &mut self.transmit
    }

    /// The next request for the broker.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Session::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// The topic of the will given at CONNECT, if any (checked against the ACL).
    pub fn will_topic(&self) -> Option<&str> {
        self.will.as_ref().map(|w| &*w.msg.topic)
    }

    /// The will, taken (the connection publishes it when the close says so).
    pub fn take_will(&mut self) -> Option<WillMessage> {
        self.will.take()
    }

    /// Checks the connect timeout and keep-alive at `now`.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), Close> {
        match self.deadline {
            Some(d) if now >= d => {
                // [MQTT-3.1.2-24]: no packet within 1.5 × keep-alive ends the connection.
                Err(self.close(reason::KEEP_ALIVE_TIMEOUT, true))
            }
            _ => Ok(()),
        }
    }

    fn touch(&mut self, now: Instant) {
        if self.phase == Phase::Connected {
            self.deadline = self.keep_alive.map(|k| now + k + k / 2);
        }
    }

    /// Ends the connection for a decode error: before CONNECT a refused protocol version gets
    /// its CONNACK; on a v5 connection the reason goes out in a DISCONNECT.
    pub fn handle_decode_error(&mut self, e: DecodeError) -> Close {
        if self.phase == Phase::AwaitConnect {
            if let DecodeError::UnsupportedProtocol { .. } = e {
                // [MQTT-3.1.2-2]: answer CONNACK 0x84 (v5) / return code 0x01 (v3) and close;
                // levels above 5 get the v5 form, the others the v3 one.
                let level = match e {
                    DecodeError::UnsupportedProtocol { level, .. } => level,
                    _ => 0,
                };
                let code = if level >= 5 {
                    reason::UNSUPPORTED_PROTOCOL_VERSION
                } else {
                    connack_v3(reason::UNSUPPORTED_PROTOCOL_VERSION)
                };
                let protocol = if level >= 5 {
                    Protocol::V5
                } else {
                    Protocol::V311
                };
                self.push(
                    &Packet::ConnAck(ConnAck {
                        session_present: false,
                        code,
                        properties: Properties::default(),
                    }),
                    protocol,
                );
            }
            // Anything else before CONNECT: close without a CONNACK [MQTT-3.1.4-1].
            self.phase = Phase::Closed;
            return Close {
                reason: e.reason(),
                publish_will: false,
            };
        }
        self.close(e.reason(), true)
    }

    /// Handles one packet from the client.
    pub fn handle_packet(&mut self, packet: Packet<'_>, now: Instant) -> Result<(), Close> {
        match self.phase {
            Phase::AwaitConnect => match packet {
                Packet::Connect(c) => self.on_connect(&c),
                // [MQTT-3.1.0-1]: the first packet must be CONNECT.
                _ => {
                    self.phase = Phase::Closed;
                    Err(Close {
                        reason: reason::PROTOCOL_ERROR,
                        publish_will: false,
                    })
                }
            },
            // The connection performs the Connect action before reading on.
            Phase::Connecting => Err(self.close(reason::PROTOCOL_ERROR, false)),
            Phase::Closed => Err(Close {
                reason: reason::PROTOCOL_ERROR,
                publish_will: false,
            }),
            Phase::Connected => {
                self.touch(now);
                self.on_packet(packet)
            }
        }
    }

    fn on_packet(&mut self, packet: Packet<'_>) -> Result<(), Close> {
        match packet {
            Packet::Publish(p) => self.on_publish(&p),
            Packet::PubAck(r) => {
                self.on_puback(r.packet_id);
                Ok(())
            }
            Packet::PubRec(r) => {
                self.on_pubrec(&r);
                Ok(())
            }
            Packet::PubRel(r) => self.on_pubrel(r.packet_id),
            Packet::PubComp(r) => {
                self.on_pubcomp(r.packet_id);
                Ok(())
            }
            Packet::Subscribe(s) => self.on_subscribe(&s),
            Packet::Unsubscribe(u) => {
                self.on_unsubscribe(&u);
                Ok(())
            }
            Packet::PingReq => {
                self.push(&Packet::PingResp, self.protocol);
                Ok(())
            }
            Packet::Disconnect(d) => Err(self.on_disconnect(&d)),
            // [MQTT-3.1.0-2]: a second CONNECT is a protocol error.
            Packet::Connect(_) => Err(self.close(reason::PROTOCOL_ERROR, true)),
            // Enhanced authentication is not offered: an AUTH is a protocol error (4.12).
            Packet::Auth(_) => Err(self.close(reason::PROTOCOL_ERROR, true)),
            // Server-to-client packets from a client.
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                Err(self.close(reason::PROTOCOL_ERROR, true))
            }
        }
    }

    fn on_connect(&mut self, c: &Connect<'_>) -> Result<(), Close> {
        self.protocol = c.protocol;
        let v5 = c.protocol.is_v5();
        if v5 && c.properties.authentication_method.is_some() {
            // 4.12: an authentication method we do not support is refused with 0x8C.
            return Err(self.refuse(reason::BAD_AUTHENTICATION_METHOD));
        }
        let mut client_id = c.client_id.to_owned();
        let mut assigned = false;
        if client_id.is_empty() {
            // [MQTT-3.1.3-8] (v3.1.1): an empty id needs a clean session. v3.1 has no empty ids.
            if c.protocol == Protocol::V31 || (c.protocol == Protocol::V311 && !c.clean_start) {
                return Err(self.refuse(reason::CLIENT_IDENTIFIER_NOT_VALID));
            }
            // [MQTT-3.1.3-6]: the server assigns a unique id.
            client_id = format!("outpost-{:016x}", rand::random::<u64>());
            assigned = true;
        }
        if let Some(w) = &c.will {
            if topic::validate_name(w.topic, self.config.max_topic_levels).is_err() {
                return Err(self.refuse(reason::TOPIC_NAME_INVALID));
            }
        }
        let requested_expiry = if v5 {
            c.properties.session_expiry_interval.unwrap_or(0)
        } else if c.clean_start {
            0
        } else {
            u32::MAX
        };
        self.session_expiry = requested_expiry.min(self.config.max_session_expiry_secs);
        let max_ka = self.config.max_keep_alive_secs;
        let keep_alive = if max_ka > 0 && (c.keep_alive == 0 || c.keep_alive > max_ka) {
            max_ka
        } else {
            c.keep_alive
        };
        self.keep_alive = (keep_alive > 0).then(|| Duration::from_secs(u64::from(keep_alive)));
        if v5 {
            self.client_receive_max = c.properties.receive_maximum.unwrap_or(u16::MAX);
            self.client_max_packet = c.properties.maximum_packet_size.unwrap_or(u32::MAX);
            self.client_alias_max = c.properties.topic_alias_maximum.unwrap_or(0);
        }
        if let Some(w) = &c.will {
            let now_ms = crate::log::now_ms();
            let publish = Publish {
                dup: false,
                qos: w.qos,
                retain: w.retain,
                topic: w.topic,
                packet_id: 0,
                properties: w.properties,
                subscription_ids: &[],
                payload: w.payload,
            };
            let msg = Message::from_publish(&publish, w.topic, now_ms, None)
                .map_err(|_| self.refuse(reason::MALFORMED_PACKET))?;
            self.will = Some(WillMessage {
                msg,
                delay_secs: w.properties.will_delay_interval.unwrap_or(0),
            });
        }
        self.phase = Phase::Connecting;
        self.pending_connack = Some(PendingConnAck {
            assigned: assigned.then(|| client_id.clone()),
            server_keep_alive: (v5 && keep_alive != c.keep_alive).then_some(keep_alive),
            expiry_changed: (v5 && self.session_expiry != requested_expiry)
                .then_some(self.session_expiry),
        });
        self.actions.push_back(Action::Connect(ConnectInfo {
            client_id,
            assigned,
            clean_start: c.clean_start,
            session_expiry_secs: self.session_expiry,
            protocol: c.protocol,
            username: c.username.map(str::to_owned),
            password: c.password.map(crate::auth::Secret::new),
        }));
        Ok(())
    }

    /// The broker attached this connection to session `id`: sends CONNACK, then re-sends
    /// the restored in-flight messages ([MQTT-4.4.0-1]: PUBLISH with DUP, or PUBREL).
    pub fn connected(
        &mut self,
        id: SessionId,
        session_present: bool,
        restored: SessionState,
        now: Instant,
    ) {
        self.id = Some(id);
        self.phase = Phase::Connected;
        // The CONNECT action grew the queue to four `Action`s (~400 bytes); an idle
        // connection should not keep them. A client that publishes grows it again, once.
        if self.actions.is_empty() {
            self.actions = std::collections::VecDeque::new();
        }
        let pending = self.pending_connack.take().unwrap_or_default();
        let mut properties = Properties::default();
        if self.protocol.is_v5() {
            properties.receive_maximum = Some(self.config.receive_maximum);
            properties.maximum_packet_size = Some(self.config.max_packet_bytes);
            properties.topic_alias_maximum = Some(self.config.topic_alias_maximum);
            properties.assigned_client_identifier = pending.assigned.as_deref();
            properties.server_keep_alive = pending.server_keep_alive;
            properties.session_expiry_interval = pending.expiry_changed;
        }
        self.push(
            &Packet::ConnAck(ConnAck {
                session_present,
                code: 0,
                properties,
            }),
            self.protocol,
        );
        self.touch(now);
        self.next_packet_id = restored.next_packet_id.max(1);
        for pid in restored.qos2_received {
            self.qos2_received.insert(pid, true);
        }
        let now_ms = crate::log::now_ms();
        for d in restored.inflight {
            if d.packet_id == 0 || self.inflight.contains_key(&d.packet_id) {
                continue;
            }
            let pid = d.packet_id;
            if d.released {
                self.push_pub_response(Response::Rel, pid, 0);
            } else {
                self.encode_publish(&d, pid, true, now_ms);
            }
            self.order.push(pid);
            self.inflight.insert(pid, d);
        }
    }

    /// The broker refused the connection: CONNACK with `code` (a v5 reason code), then close.
    pub fn refuse(&mut self, code: u8) -> Close {
        let code = if self.protocol.is_v5() {
            code
        } else {
            connack_v3(code)
        };
        self.push(
            &Packet::ConnAck(ConnAck {
                session_present: false,
                code,
                properties: Properties::default(),
            }),
            self.protocol,
        );
        self.phase = Phase::Closed;
        self.will = None;
        Close {
            reason: code,
            publish_will: false,
        }
    }

    /// Ends the connection from the server side (takeover, shutdown, a violation): a v5 client
    /// gets DISCONNECT with `reason` ([MQTT-4.13.2-1]); a v3 one just sees the close.
    pub fn close(&mut self, reason: u8, publish_will: bool) -> Close {
        if self.phase == Phase::Connected && self.protocol.is_v5() {
            self.push(
                &Packet::Disconnect(Disconnect {
                    reason,
                    properties: Properties::default(),
                }),
                Protocol::V5,
            );
        }
        self.phase = Phase::Closed;
        Close {
            reason,
            publish_will,
        }
    }

    fn on_disconnect(&mut self, d: &Disconnect<'_>) -> Close {
        if let Some(expiry) = d.properties.session_expiry_interval {
            // [MQTT-3.14.2-2]: a session that had expiry 0 cannot be given one at DISCONNECT.
            if self.session_expiry == 0 && expiry != 0 {
                return self.close(reason::PROTOCOL_ERROR, true);
            }
            self.session_expiry = expiry.min(self.config.max_session_expiry_secs);
        }
        self.phase = Phase::Closed;
        // [MQTT-3.14.4-3]: a normal DISCONNECT discards the will; 0x04 asks for it.
        Close {
            reason: d.reason,
            publish_will: d.reason == reason::DISCONNECT_WITH_WILL,
        }
    }

    fn on_publish(&mut self, p: &Publish<'_>) -> Result<(), Close> {
        let v5 = self.protocol.is_v5();
        // Resolve a v5 topic alias ([MQTT-3.3.2-8]..[MQTT-3.3.2-12]).
        let topic: Box<str> = match p.properties.topic_alias {
            Some(_) if !v5 => return Err(self.close(reason::PROTOCOL_ERROR, true)),
            Some(alias) => {
                if alias == 0 || alias > self.config.topic_alias_maximum {
                    return Err(self.close(reason::TOPIC_ALIAS_INVALID, true));
                }
                if p.topic.is_empty() {
                    match self.inbound_aliases.get(&alias) {
                        Some(t) => t.clone(),
                        None => return Err(self.close(reason::PROTOCOL_ERROR, true)),
                    }
                } else {
                    self.inbound_aliases.insert(alias, p.topic.into());
                    p.topic.into()
                }
            }
            None => p.topic.into(),
        };
        // [MQTT-3.3.2-2]: no wildcards in a topic name; [MQTT-4.7.3-1]: not empty.
        if topic::validate_name(&topic, self.config.max_topic_levels).is_err() {
            return Err(self.close(
                if topic.is_empty() {
                    reason::PROTOCOL_ERROR
                } else {
                    reason::TOPIC_NAME_INVALID
                },
                true,
            ));
        }
        if p.qos != QoS::AtMostOnce {
            // [MQTT-3.3.4-7]..: more unacknowledged QoS 1/2 publishes than Receive Maximum.
            if self.inbound_inflight >= usize::from(self.config.receive_maximum)
                && !self.qos2_received.contains_key(&p.packet_id)
            {
                return Err(self.close(reason::RECEIVE_MAXIMUM_EXCEEDED, true));
            }
        }
        if p.qos == QoS::ExactlyOnce {
            if let Some(&committed) = self.qos2_received.get(&p.packet_id) {
                // [MQTT-4.3.3-9]: a re-sent PUBLISH of a packet id awaiting PUBREL is not a
                // new message. Repeat PUBREC once the first copy is stored.
                if committed {
                    self.push_pub_response(Response::Rec, p.packet_id, 0);
                }
                return Ok(());
            }
            self.qos2_received.insert(p.packet_id, false);
        }
        if p.qos != QoS::AtMostOnce {
            self.inbound_inflight += 1;
        }
        let msg = match Message::from_publish(p, &topic, crate::log::now_ms(), self.id) {
            Ok(m) => m,
            Err(_) => return Err(self.close(reason::PACKET_TOO_LARGE, true)),
        };
        self.actions.push_back(Action::Publish {
            msg,
            packet_id: p.packet_id,
        });
        Ok(())
    }

    /// The broker stored (or refused) an inbound QoS 1/2 publish: PUBACK or PUBREC with
    /// `reason` ([MQTT-4.3.2-2], [MQTT-4.3.3-2]: only now, after the commit).
    pub fn published(&mut self, packet_id: u16, qos: QoS, reason: u8) {
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                self.inbound_inflight = self.inbound_inflight.saturating_sub(1);
                self.push_pub_response(Response::Ack, packet_id, reason);
            }
            QoS::ExactlyOnce => {
                if reason >= 0x80 {
                    // A refused QoS 2 message is finished with PUBREC (>= 0x80).
                    self.qos2_received.remove(&packet_id);
                    self.inbound_inflight = self.inbound_inflight.saturating_sub(1);
                } else {
                    self.qos2_received.insert(packet_id, true);
                }
                self.push_pub_response(Response::Rec, packet_id, reason);
            }
        }
    }

    fn on_pubrel(&mut self, packet_id: u16) -> Result<(), Close> {
        match self.qos2_received.get(&packet_id) {
            Some(true) => {
                self.qos2_received.remove(&packet_id);
                self.actions.push_back(Action::InboundDone(packet_id));
                self.inbound_inflight = self.inbound_inflight.saturating_sub(1);
                self.push_pub_response(Response::Comp, packet_id, 0);
                Ok(())
            }
            // PUBREL before our PUBREC: the client did not wait for it.
            Some(false) => Err(self.close(reason::PROTOCOL_ERROR, true)),
            None => {
                // [MQTT-4.3.3-11] style: an unknown id is answered, not fatal.
                self.push_pub_response(
                    Response::Comp,
                    packet_id,
                    reason::PACKET_IDENTIFIER_NOT_FOUND,
                );
                Ok(())
            }
        }
    }

    fn on_puback(&mut self, packet_id: u16) {
        if matches!(self.inflight.get(&packet_id), Some(d) if d.qos == QoS::AtLeastOnce) {
            self.finish(packet_id);
        }
    }

    fn on_pubrec(&mut self, r: &PubResponse<'_>) {
        let pid = r.packet_id;
        let Some(d) = self.inflight.get_mut(&pid) else {
            self.push_pub_response(Response::Rel, pid, reason::PACKET_IDENTIFIER_NOT_FOUND);
            return;
        };
        if d.qos != QoS::ExactlyOnce {
            return;
        }
        if r.reason >= 0x80 {
            // The client refused the message: the flow ends here.
            self.finish(pid);
            return;
        }
        if !d.released {
            d.released = true;
            let d = d.clone();
            if d.seq.is_some() {
                self.actions.push_back(Action::Released(d));
            }
        }
        self.push_pub_response(Response::Rel, pid, 0);
    }

    fn on_pubcomp(&mut self, packet_id: u16) {
        if matches!(self.inflight.get(&packet_id), Some(d) if d.released) {
            self.finish(packet_id);
        }
    }

    /// An outbound message is completely acknowledged.
    fn finish(&mut self, packet_id: u16) {
        if let Some(d) = self.inflight.remove(&packet_id) {
            self.order.retain(|&p| p != packet_id);
            self.actions.push_back(Action::Done(d));
        }
    }

    fn on_subscribe(&mut self, s: &Subscribe<'_>) -> Result<(), Close> {
        let v5 = self.protocol.is_v5();
        let mut entries = Vec::with_capacity(s.filters.len());
        for (filter, options) in s.filters.iter() {
            let entry = match topic::parse_filter(filter, self.config.max_topic_levels) {
                Ok(f) => {
                    // [MQTT-3.8.3-4]: No Local on a shared subscription is a protocol error.
                    if f.share_group.is_some() && options.no_local {
                        return Err(self.close(reason::PROTOCOL_ERROR, true));
                    }
                    Ok(SubscribeEntry {
                        filter: filter.to_owned(),
                        options,
                        id: s.properties.subscription_identifier,
                    })
                }
                // v5: Topic Filter invalid; v3: failure (0x80).
                Err(_) if v5 => Err(reason::TOPIC_FILTER_INVALID),
                Err(_) => Err(reason::UNSPECIFIED_ERROR),
            };
            entries.push(entry);
        }
        self.actions.push_back(Action::Subscribe {
            packet_id: s.packet_id,
            entries,
        });
        Ok(())
    }

    /// The broker's answer to a SUBSCRIBE: SUBACK with one reason code per filter.
    pub fn subscribed(&mut self, packet_id: u16, reasons: &[u8]) {
        let v5 = self.protocol.is_v5();
        // v3 SUBACK return codes are 0, 1, 2 and 0x80 only.
        let v3: Vec<u8>;
        let reasons = if v5 {
            reasons
        } else {
            v3 = reasons
                .iter()
                .map(|&r| if r <= 2 { r } else { 0x80 })
                .collect();
            &v3
        };
        self.push(
            &Packet::SubAck(SubAck {
                packet_id,
                properties: Properties::default(),
                reasons,
            }),
            self.protocol,
        );
    }

    fn on_unsubscribe(&mut self, u: &Unsubscribe<'_>) {
        let filters = u.filters.iter().map(str::to_owned).collect();
        self.actions.push_back(Action::Unsubscribe {
            packet_id: u.packet_id,
            filters,
        });
    }

    /// The broker's answer to an UNSUBSCRIBE.
    pub fn unsubscribed(&mut self, packet_id: u16, reasons: &[u8]) {
        self.push(
            &Packet::UnsubAck(UnsubAck {
                packet_id,
                properties: Properties::default(),
                reasons,
            }),
            self.protocol,
        );
    }

    /// QoS 1/2 deliveries the client can take now (its Receive Maximum and ours).
    pub fn send_quota(&self) -> usize {
        let window = usize::from(self.client_receive_max.min(self.config.max_inflight));
        window.saturating_sub(self.inflight.len())
    }

    /// Sends a message to the client (QoS > 0 needs [`Session::send_quota`] > 0). An expired
    /// message, or one larger than the client's Maximum Packet Size ([MQTT-3.1.2-25]), is
    /// dropped and counted.
    pub fn deliver(&mut self, mut d: Delivery, now_ms: u64) {
        let Some(_) = d.msg.remaining_expiry(now_ms) else {
            self.drop_delivery(d);
            return;
        };
        if d.qos == QoS::AtMostOnce {
            self.encode_publish(&d, 0, false, now_ms);
            return;
        }
        let Some(pid) = self.free_packet_id() else {
            // 65,535 in flight cannot happen: the window is at most u16::MAX - 1 below.
            self.drop_delivery(d);
            return;
        };
        d.packet_id = pid;
        if !self.encode_publish(&d, pid, false, now_ms) {
            self.drop_delivery(d);
            return;
        }
        if d.seq.is_some() {
            self.actions.push_back(Action::Sent(d.clone()));
        }
        self.order.push(pid);
        self.inflight.insert(pid, d);
    }

    fn drop_delivery(&mut self, d: Delivery) {
        self.counters.dropped += 1;
        if d.qos != QoS::AtMostOnce {
            self.actions.push_back(Action::Done(d));
        }
    }

    fn free_packet_id(&mut self) -> Option<u16> {
        for _ in 0..u16::MAX {
            let pid = self.next_packet_id;
            self.next_packet_id = self.next_packet_id.checked_add(1).unwrap_or(1);
            if !self.inflight.contains_key(&pid) {
                return Some(pid);
            }
        }
        None
    }

    /// Encodes a PUBLISH of `d`; false when it exceeds the client's Maximum Packet Size.
    fn encode_publish(&mut self, d: &Delivery, pid: u16, dup: bool, now_ms: u64) -> bool {
        let msg = &d.msg;
        let mut properties = Properties::default();
        let v5 = self.protocol.is_v5();
        let mut topic: &str = &msg.topic;
        if v5 {
            if let Some(p) = &msg.props {
                properties.payload_format_indicator = p.payload_format;
                properties.content_type = p.content_type.as_deref();
                properties.response_topic = p.response_topic.as_deref();
                properties.correlation_data = p.correlation_data.as_deref();
                properties.user_properties = p.user_properties();
            }
            // [MQTT-3.3.2-6]: the expiry sent is what is left of it.
            properties.message_expiry_interval = msg.remaining_expiry(now_ms).flatten();
            if self.client_alias_max > 0 {
                if let Some(&alias) = self.outbound_aliases.get(&msg.topic) {
                    properties.topic_alias = Some(alias);
                    topic = "";
                } else if self.outbound_aliases.len() < usize::from(self.client_alias_max) {
                    // Aliases are handed out first come; once all are used, new topics go
                    // out in full (no eviction: an alias never changes meaning mid-stream).
                    let alias = self.outbound_aliases.len() as u16 + 1;
                    self.outbound_aliases.insert(msg.topic.clone(), alias);
                    properties.topic_alias = Some(alias);
                }
            }
        }
        let sub_ids: &[u32] = if v5 { &d.sub_ids } else { &[] };
        let packet = Packet::Publish(Publish {
            dup,
            qos: d.qos,
            retain: d.retain,
            topic,
            packet_id: pid,
            properties,
            subscription_ids: sub_ids,
            payload: &msg.payload,
        });
        if v5 {
            match codec::encoded_len(&packet, self.protocol) {
                Ok(len) if len as u64 <= u64::from(self.client_max_packet) => {}
                _ => return false,
            }
        }
        self.push(&packet, self.protocol);
        true
    }

    fn push_pub_response(&mut self, kind: Response, packet_id: u16, reason: u8) {
        let r = PubResponse {
            packet_id,
            reason,
            properties: Properties::default(),
        };
        let packet = match kind {
            Response::Ack => Packet::PubAck(r),
            Response::Rec => Packet::PubRec(r),
            Response::Rel => Packet::PubRel(r),
            Response::Comp => Packet::PubComp(r),
        };
        self.push(&packet, self.protocol);
    }

    fn push(&mut self, packet: &Packet<'_>, protocol: Protocol) {
        // Only a packet over 256 MiB fails to encode; ours are bounded far below that (a
        // PUBLISH carries at most a payload we accepted under max_packet_bytes).
        if let Err(e) = codec::encode(packet, protocol, &mut self.transmit) {
            tracing::error!(error = %e, "outgoing MQTT packet did not encode");
        }
    }

    /// The state to park in the broker when the connection ends.
    pub fn into_state(self) -> SessionState {
        let mut inflight = self.inflight;
        let ordered = self
            .order
            .iter()
            .filter_map(|pid| inflight.remove(pid))
            .collect();
        let mut qos2: Vec<u16> = self
            .qos2_received
            .into_iter()
            .filter(|&(_, committed)| committed)
            .map(|(pid, _)| pid)
            .collect();
        qos2.sort_unstable();
        SessionState {
            inflight: ordered,
            qos2_received: qos2,
            next_packet_id: self.next_packet_id,
        }
    }

    /// Packet ids of inbound QoS 2 messages awaiting PUBREL (for tests and diagnostics).
    pub fn qos2_pending(&self) -> HashSet<u16> {
        self.qos2_received.keys().copied().collect()
    }
}

#[derive(Debug, Clone, Copy)]
enum Response {
    Ack,
    Rec,
    Rel,
    Comp,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::packet::{SubscribeFilters, UnsubscribeFilters, UserProperties, Will};

    fn config() -> SessionConfig {
        SessionConfig {
            max_packet_bytes: 1 << 20,
            receive_maximum: 2,
            max_inflight: 2,
            topic_alias_maximum: 4,
            max_topic_levels: 8,
            max_keep_alive_secs: 0,
            max_session_expiry_secs: u32::MAX,
        }
    }

    fn connect(protocol: Protocol, client_id: &str, clean: bool, keep_alive: u16) -> Connect<'_> {
        Connect {
            protocol,
            clean_start: clean,
            keep_alive,
            properties: Properties::default(),
            client_id,
            will: None,
            username: None,
            password: None,
        }
    }

    /// Decodes everything the session queued for the client.
    fn sent(s: &mut Session) -> Vec<String> {
        let bytes = std::mem::take(s.transmit());
        let protocol = s.protocol();
        let mut out = Vec::new();
        let mut rest = &bytes[..];
        while let Some(len) = codec::frame_len(rest, u32::MAX).unwrap() {
            out.push(format!(
                "{:?}",
                codec::decode(&rest[..len], protocol).unwrap()
            ));
            rest = &rest[len..];
        }
        assert!(rest.is_empty());
        out
    }

    /// A session through CONNECT/CONNACK.
    fn connected(protocol: Protocol) -> (Session, Instant) {
        let now = Instant::now();
        let mut s = Session::new(config(), now);
        s.handle_packet(Packet::Connect(connect(protocol, "c1", true, 10)), now)
            .unwrap();
        assert!(matches!(s.poll_action(), Some(Action::Connect(_))));
        s.connected(SessionId(1), false, SessionState::default(), now);
        let acks = sent(&mut s);
        assert!(acks[0].starts_with("ConnAck"), "{acks:?}");
        (s, now)
    }

    fn publish(topic: &str, qos: QoS, pid: u16) -> Packet<'_> {
        Packet::Publish(Publish {
            dup: false,
            qos,
            retain: false,
            topic,
            packet_id: pid,
            properties: Properties::default(),
            subscription_ids: &[],
            payload: b"x",
        })
    }

    fn delivery(topic: &str, qos: QoS) -> Delivery {
        let msg = Message {
            topic: topic.into(),
            payload: bytes::Bytes::from_static(b"m"),
            qos,
            retain: false,
            props: None,
            received_ms: crate::log::now_ms(),
            expiry_secs: None,
            publisher: None,
        };
        Delivery {
            msg: std::sync::Arc::new(msg),
            qos,
            retain: false,
            sub_ids: Vec::new(),
            seq: None,
            packet_id: 0,
            released: false,
        }
    }

    #[test]
    fn first_packet_must_be_connect() {
        // [MQTT-3.1.0-1]
        let now = Instant::now();
        let mut s = Session::new(config(), now);
        let close = s.handle_packet(Packet::PingReq, now).unwrap_err();
        assert!(!close.publish_will);
        assert!(
            sent(&mut s).is_empty(),
            "no CONNACK for a non-CONNECT first packet"
        );
    }

    #[test]
    fn second_connect_is_a_protocol_error() {
        // [MQTT-3.1.0-2]
        let (mut s, now) = connected(Protocol::V5);
        let close = s
            .handle_packet(Packet::Connect(connect(Protocol::V5, "c1", true, 0)), now)
            .unwrap_err();
        assert_eq!(close.reason, reason::PROTOCOL_ERROR);
        assert!(
            sent(&mut s)[0].contains("reason: 130"),
            "v5 gets DISCONNECT 0x82"
        );
    }

    #[test]
    fn empty_client_id_rules() {
        let now = Instant::now();
        // [MQTT-3.1.3-8]: v3.1.1 empty id with a persistent session → identifier rejected (2).
        let mut s = Session::new(config(), now);
        let close = s
            .handle_packet(Packet::Connect(connect(Protocol::V311, "", false, 0)), now)
            .unwrap_err();
        assert_eq!(close.reason, 2);
        assert!(sent(&mut s)[0].contains("code: 2"));
        // [MQTT-3.1.3-6] / [MQTT-3.2.2-16]: v5 gets an assigned id, returned in CONNACK.
        let mut s = Session::new(config(), now);
        s.handle_packet(Packet::Connect(connect(Protocol::V5, "", true, 0)), now)
            .unwrap();
        let Some(Action::Connect(info)) = s.poll_action() else {
            panic!("connect action expected");
        };
        assert!(info.assigned && info.client_id.starts_with("outpost-"));
        s.connected(SessionId(1), false, SessionState::default(), now);
        assert!(sent(&mut s)[0].contains(&info.client_id));
    }

    #[test]
    fn qos1_is_acknowledged_only_when_the_broker_says_stored() {
        // [MQTT-4.3.2-2] with Outpost's rule: PUBACK after the commit.
        let (mut s, now) = connected(Protocol::V311);
        s.handle_packet(publish("a/b", QoS::AtLeastOnce, 7), now)
            .unwrap();
        assert!(matches!(
            s.poll_action(),
            Some(Action::Publish { packet_id: 7, .. })
        ));
        assert!(sent(&mut s).is_empty(), "no PUBACK before the commit");
        s.published(7, QoS::AtLeastOnce, 0);
        assert!(sent(&mut s)[0].starts_with("PubAck"));
    }

    #[test]
    fn qos2_duplicate_is_not_a_new_message() {
        // [MQTT-4.3.3-9]: until PUBREL, a PUBLISH with the same packet id is the same message.
        let (mut s, now) = connected(Protocol::V5);
        s.handle_packet(publish("a", QoS::ExactlyOnce, 9), now)
            .unwrap();
        assert!(matches!(s.poll_action(), Some(Action::Publish { .. })));
        s.published(9, QoS::ExactlyOnce, 0);
        assert!(sent(&mut s)[0].starts_with("PubRec"));
        s.handle_packet(publish("a", QoS::ExactlyOnce, 9), now)
            .unwrap();
        assert!(
            s.poll_action().is_none(),
            "duplicate must not be stored again"
        );
        assert!(sent(&mut s)[0].starts_with("PubRec"), "PUBREC repeated");
        s.handle_packet(
            Packet::PubRel(PubResponse {
                packet_id: 9,
                reason: 0,
                properties: Properties::default(),
            }),
            now,
        )
        .unwrap();
        assert!(sent(&mut s)[0].starts_with("PubComp"));
        assert!(s.qos2_pending().is_empty());
        assert!(matches!(s.poll_action(), Some(Action::InboundDone(9))));
        // After PUBCOMP the id is free: the same id is a new message.
        s.handle_packet(publish("a", QoS::ExactlyOnce, 9), now)
            .unwrap();
        assert!(matches!(s.poll_action(), Some(Action::Publish { .. })));
    }

    #[test]
    fn receive_maximum_exceeded_disconnects() {
        // [MQTT-3.3.4-9]: more unacknowledged QoS 1/2 publishes than Receive Maximum (2 here).
        let (mut s, now) = connected(Protocol::V5);
        s.handle_packet(publish("a", QoS::AtLeastOnce, 1), now)
            .unwrap();
        s.handle_packet(publish("a", QoS::AtLeastOnce, 2), now)
            .unwrap();
        let close = s
            .handle_packet(publish("a", QoS::AtLeastOnce, 3), now)
            .unwrap_err();
        assert_eq!(close.reason, reason::RECEIVE_MAXIMUM_EXCEEDED);
    }

    #[test]
    fn wildcard_topic_name_is_refused() {
        // [MQTT-3.3.2-2]
        let (mut s, now) = connected(Protocol::V5);
        let close = s
            .handle_packet(publish("a/+", QoS::AtMostOnce, 0), now)
            .unwrap_err();
        assert_eq!(close.reason, reason::TOPIC_NAME_INVALID);
    }

    #[test]
    fn inbound_topic_alias_is_resolved_and_checked() {
        // [MQTT-3.3.2-12]: an alias set with a topic stands for it afterwards.
        let (mut s, now) = connected(Protocol::V5);
        let mut p = Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: "long/topic",
            packet_id: 0,
            properties: Properties {
                topic_alias: Some(3),
                ..Properties::default()
            },
            subscription_ids: &[],
            payload: b"1",
        };
        s.handle_packet(Packet::Publish(p), now).unwrap();
        p.topic = "";
        s.handle_packet(Packet::Publish(p), now).unwrap();
        let topics: Vec<String> = std::iter::from_fn(|| s.poll_action())
            .map(|a| match a {
                Action::Publish { msg, .. } => msg.topic.to_string(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(topics, ["long/topic", "long/topic"]);
        // [MQTT-3.3.2-10]: an alias above Topic Alias Maximum (4) is an error.
        p.properties.topic_alias = Some(5);
        let close = s.handle_packet(Packet::Publish(p), now).unwrap_err();
        assert_eq!(close.reason, reason::TOPIC_ALIAS_INVALID);
    }

    #[test]
    fn keep_alive_is_one_and_a_half_times() {
        // [MQTT-3.1.2-24]
        let (mut s, now) = connected(Protocol::V311);
        assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(15)));
        assert!(s.handle_timeout(now + Duration::from_secs(14)).is_ok());
        s.handle_packet(Packet::PingReq, now + Duration::from_secs(14))
            .unwrap();
        assert!(sent(&mut s)[0].starts_with("PingResp"));
        assert!(s.handle_timeout(now + Duration::from_secs(20)).is_ok());
        let close = s.handle_timeout(now + Duration::from_secs(29)).unwrap_err();
        assert_eq!(close.reason, reason::KEEP_ALIVE_TIMEOUT);
        assert!(close.publish_will);
    }

    #[test]
    fn outbound_window_and_qos2_flow() {
        let (mut s, now) = connected(Protocol::V5);
        let _ = now;
        assert_eq!(s.send_quota(), 2);
        s.deliver(delivery("t", QoS::ExactlyOnce), crate::log::now_ms());
        s.deliver(delivery("t", QoS::AtLeastOnce), crate::log::now_ms());
        assert_eq!(s.send_quota(), 0, "window of max_inflight = 2 is full");
        let out = sent(&mut s);
        assert!(
            out[0].contains("packet_id: 1") && out[1].contains("packet_id: 2"),
            "{out:?}"
        );
        let resp = |packet_id| PubResponse {
            packet_id,
            reason: 0,
            properties: Properties::default(),
        };
        s.handle_packet(Packet::PubAck(resp(2)), now).unwrap();
        assert!(matches!(s.poll_action(), Some(Action::Done(_))));
        s.handle_packet(Packet::PubRec(resp(1)), now).unwrap();
        assert!(sent(&mut s)[0].starts_with("PubRel"));
        assert_eq!(s.send_quota(), 1, "QoS 2 holds its slot until PUBCOMP");
        s.handle_packet(Packet::PubComp(resp(1)), now).unwrap();
        assert!(matches!(s.poll_action(), Some(Action::Done(_))));
        assert_eq!(s.send_quota(), 2);
    }

    #[test]
    fn unacknowledged_messages_are_resent_with_dup_on_resume() {
        // [MQTT-4.4.0-1]: on a resumed session, unacknowledged PUBLISH again with DUP, PUBREL
        // again for those already PUBREC'd.
        let (mut s, now) = connected(Protocol::V311);
        s.deliver(delivery("t", QoS::AtLeastOnce), crate::log::now_ms());
        s.deliver(delivery("t", QoS::ExactlyOnce), crate::log::now_ms());
        let _ = sent(&mut s);
        s.handle_packet(
            Packet::PubRec(PubResponse {
                packet_id: 2,
                reason: 0,
                properties: Properties::default(),
            }),
            now,
        )
        .unwrap();
        let state = s.into_state();
        assert_eq!(state.inflight.len(), 2);
        let mut s2 = Session::new(config(), now);
        s2.handle_packet(
            Packet::Connect(connect(Protocol::V311, "c1", false, 0)),
            now,
        )
        .unwrap();
        let _ = s2.poll_action();
        s2.connected(SessionId(1), true, state, now);
        let out = sent(&mut s2);
        assert!(out[0].contains("session_present: true"));
        assert!(
            out[1].starts_with("Publish") && out[1].contains("dup: true"),
            "{out:?}"
        );
        assert!(
            out[2].starts_with("PubRel") && out[2].contains("packet_id: 2"),
            "{out:?}"
        );
    }

    #[test]
    fn outbound_topic_alias_is_used_for_repeats() {
        let now = Instant::now();
        let mut s = Session::new(config(), now);
        let mut c = connect(Protocol::V5, "c1", true, 0);
        c.properties.topic_alias_maximum = Some(1);
        s.handle_packet(Packet::Connect(c), now).unwrap();
        let _ = s.poll_action();
        s.connected(SessionId(1), false, SessionState::default(), now);
        let _ = sent(&mut s);
        let now_ms = crate::log::now_ms();
        for topic in ["x/y", "x/y", "other"] {
            s.deliver(delivery(topic, QoS::AtMostOnce), now_ms);
        }
        let out = sent(&mut s);
        assert!(out[0].contains("topic: \"x/y\"") && out[0].contains("topic_alias: Some(1)"));
        assert!(out[1].contains("topic: \"\"") && out[1].contains("topic_alias: Some(1)"));
        // All aliases used: a new topic goes out in full, without one.
        assert!(out[2].contains("topic: \"other\"") && out[2].contains("topic_alias: None"));
    }

    #[test]
    fn disconnect_decides_the_will() {
        // [MQTT-3.14.4-3]: normal DISCONNECT discards the will; 0x04 publishes it.
        for (code, publish) in [(0u8, false), (reason::DISCONNECT_WITH_WILL, true)] {
            let now = Instant::now();
            let mut s = Session::new(config(), now);
            let mut c = connect(Protocol::V5, "c1", true, 0);
            c.will = Some(Will {
                topic: "w",
                payload: b"gone",
                qos: QoS::AtLeastOnce,
                retain: false,
                properties: Properties::default(),
            });
            s.handle_packet(Packet::Connect(c), now).unwrap();
            let _ = s.poll_action();
            s.connected(SessionId(1), false, SessionState::default(), now);
            let close = s
                .handle_packet(
                    Packet::Disconnect(Disconnect {
                        reason: code,
                        properties: Properties::default(),
                    }),
                    now,
                )
                .unwrap_err();
            assert_eq!(close.publish_will, publish);
            assert_eq!(&s.take_will().unwrap().msg.payload[..], b"gone");
        }
    }

    #[test]
    fn disconnect_cannot_give_expiry_to_a_session_without() {
        // [MQTT-3.14.2-2]
        let (mut s, now) = connected(Protocol::V5);
        let close = s
            .handle_packet(
                Packet::Disconnect(Disconnect {
                    reason: 0,
                    properties: Properties {
                        session_expiry_interval: Some(60),
                        ..Properties::default()
                    },
                }),
                now,
            )
            .unwrap_err();
        assert_eq!(close.reason, reason::PROTOCOL_ERROR);
    }

    #[test]
    fn shared_subscription_with_no_local_is_a_protocol_error() {
        // [MQTT-3.8.3-4]
        let (mut s, now) = connected(Protocol::V5);
        let mut payload = Vec::new();
        payload.extend_from_slice(&[0, 12]);
        payload.extend_from_slice(b"$share/g/a/b");
        payload.push(0b0000_0101); // QoS 1, No Local
        let close = s
            .handle_packet(
                Packet::Subscribe(Subscribe {
                    packet_id: 1,
                    properties: Properties::default(),
                    filters: SubscribeFilters { payload: &payload },
                }),
                now,
            )
            .unwrap_err();
        assert_eq!(close.reason, reason::PROTOCOL_ERROR);
        let _ = (
            UnsubscribeFilters { payload: &[] },
            UserProperties::default(),
        );
    }
}
