//! A tiny synchronous MQTT client over a raw socket for the conformance tests.
//!
//! Packets are written with the broker's own encoder (`outpost::mqtt::codec::encode`) so a
//! test controls every field, and read with `frame_len` + `decode`. The broker's PUBLISH
//! packets are parsed here instead: the codec reads what *clients* send and refuses a PUBLISH
//! carrying Subscription Identifiers ([MQTT-3.3.4-6]), which a server's PUBLISH may hold; an
//! independent parser also keeps an encoder bug from being hidden by the matching decoder.
//!
//! Every read is bounded by a deadline; nothing here sleeps.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use outpost::mqtt::codec::{self, encode_subscribe_filters, encode_unsubscribe_filters};
use outpost::mqtt::packet::{
    Connect, Disconnect, Packet, Properties, Protocol, PubResponse, Publish, QoS, Subscribe,
    SubscribeFilters, SubscriptionOptions, Unsubscribe, UnsubscribeFilters,
};

/// How long a test waits for a packet it expects.
pub const WAIT: Duration = Duration::from_secs(5);

/// A packet received from the broker, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum In {
    /// CONNACK.
    ConnAck(ConnAckIn),
    /// PUBLISH.
    Publish(Msg),
    /// PUBACK (packet id, reason).
    PubAck(u16, u8),
    /// PUBREC (packet id, reason).
    PubRec(u16, u8),
    /// PUBREL (packet id, reason).
    PubRel(u16, u8),
    /// PUBCOMP (packet id, reason).
    PubComp(u16, u8),
    /// SUBACK (packet id, reason codes).
    SubAck(u16, Vec<u8>),
    /// UNSUBACK (packet id, reason codes; empty before v5).
    UnsubAck(u16, Vec<u8>),
    /// PINGRESP.
    PingResp,
    /// DISCONNECT (reason).
    Disconnect(u8),
    /// A packet a server does not send (shown with Debug).
    Other(String),
}

/// The CONNACK fields the tests look at.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnAckIn {
    /// Session Present.
    pub session_present: bool,
    /// v5 reason code or v3 return code.
    pub code: u8,
    /// v5 Assigned Client Identifier.
    pub assigned_client_id: Option<String>,
    /// v5 Receive Maximum.
    pub receive_maximum: Option<u16>,
    /// v5 Topic Alias Maximum.
    pub topic_alias_maximum: Option<u16>,
    /// v5 Maximum Packet Size.
    pub maximum_packet_size: Option<u32>,
}

/// A PUBLISH from the broker.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Msg {
    /// Topic name as sent (empty when a topic alias stands for it).
    pub topic: String,
    /// Payload.
    pub payload: Vec<u8>,
    /// QoS (0..=2).
    pub qos: u8,
    /// RETAIN flag.
    pub retain: bool,
    /// DUP flag.
    pub dup: bool,
    /// Packet identifier (0 at QoS 0).
    pub packet_id: u16,
    /// v5 Subscription Identifiers, in order.
    pub sub_ids: Vec<u32>,
    /// v5 Topic Alias.
    pub topic_alias: Option<u16>,
    /// v5 Message Expiry Interval.
    pub expiry: Option<u32>,
    /// v5 Content Type.
    pub content_type: Option<String>,
    /// v5 Payload Format Indicator.
    pub payload_format: Option<u8>,
    /// v5 Response Topic.
    pub response_topic: Option<String>,
    /// v5 Correlation Data.
    pub correlation_data: Option<Vec<u8>>,
    /// v5 User Properties, in order.
    pub user_properties: Vec<(String, String)>,
}

impl Msg {
    /// The payload as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

/// Why [`Raw::try_recv`] returned no packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecvError {
    /// Nothing arrived before the deadline.
    Timeout,
    /// The broker closed the connection (EOF or reset).
    Closed,
    /// The bytes received are not a valid packet.
    Malformed(String),
}

/// A CONNECT with the tests' defaults: keep-alive 60 s, no properties, will or credentials.
pub fn connect(protocol: Protocol, client_id: &str, clean_start: bool) -> Connect<'_> {
    Connect {
        protocol,
        clean_start,
        keep_alive: 60,
        properties: Properties::default(),
        client_id,
        will: None,
        username: None,
        password: None,
    }
}

/// Encodes `packet` for `protocol`.
pub fn encode(packet: &Packet<'_>, protocol: Protocol) -> Vec<u8> {
    let mut out = Vec::new();
    codec::encode(packet, protocol, &mut out).expect("test packet encodes");
    out
}

/// Subscription options with only a QoS.
pub fn qos_opts(qos: QoS) -> SubscriptionOptions {
    SubscriptionOptions {
        qos,
        ..SubscriptionOptions::default()
    }
}

/// A raw MQTT connection.
pub struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
    stash: VecDeque<In>,
    /// The protocol packets are encoded and decoded with.
    pub protocol: Protocol,
    next_pid: u16,
}

impl Raw {
    /// Opens a TCP connection (no MQTT yet).
    pub fn open(addr: &str) -> Raw {
        let sock = addr
            .to_socket_addrs()
            .expect("address resolves")
            .next()
            .expect("an address");
        let stream = TcpStream::connect_timeout(&sock, WAIT).expect("TCP connect to broker");
        stream.set_nodelay(true).expect("nodelay");
        stream.set_write_timeout(Some(WAIT)).expect("write timeout");
        Raw {
            stream,
            buf: Vec::new(),
            stash: VecDeque::new(),
            protocol: Protocol::V311,
            next_pid: 1,
        }
    }

    /// Opens a connection, sends `c` and returns the CONNACK (whatever its code).
    pub fn handshake(addr: &str, c: &Connect<'_>) -> (Raw, ConnAckIn) {
        let mut raw = Raw::open(addr);
        raw.protocol = c.protocol;
        raw.send(&Packet::Connect(*c));
        match raw.recv() {
            In::ConnAck(ack) => (raw, ack),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Connects with `c` and asserts the CONNACK accepted it.
    pub fn connect_with(addr: &str, c: &Connect<'_>) -> (Raw, ConnAckIn) {
        let (raw, ack) = Raw::handshake(addr, c);
        assert_eq!(ack.code, 0, "CONNACK refused client {:?}", c.client_id);
        (raw, ack)
    }

    /// A v5 clean-start connection.
    pub fn v5(addr: &str, client_id: &str) -> Raw {
        Raw::connect_with(addr, &connect(Protocol::V5, client_id, true)).0
    }

    /// A v3.1.1 clean-session connection.
    pub fn v311(addr: &str, client_id: &str) -> Raw {
        Raw::connect_with(addr, &connect(Protocol::V311, client_id, true)).0
    }

    /// Sends one packet.
    pub fn send(&mut self, packet: &Packet<'_>) {
        let bytes = encode(packet, self.protocol);
        self.send_bytes(&bytes);
    }

    /// Sends bytes as they are. A broker that already closed may make this fail: ignored,
    /// the test looks at what the broker does next.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// A fresh packet identifier.
    pub fn pid(&mut self) -> u16 {
        let pid = self.next_pid;
        self.next_pid = self.next_pid.checked_add(1).unwrap_or(1);
        pid
    }

    /// The next packet, or why there is none within `timeout`.
    pub fn try_recv(&mut self, timeout: Duration) -> Result<In, RecvError> {
        if let Some(p) = self.stash.pop_front() {
            return Ok(p);
        }
        let deadline = Instant::now() + timeout;
        let mut chunk = [0u8; 4096];
        loop {
            match codec::frame_len(&self.buf, u32::MAX) {
                Ok(Some(len)) => {
                    let bytes: Vec<u8> = self.buf.drain(..len).collect();
                    return parse(&bytes, self.protocol).map_err(RecvError::Malformed);
                }
                Ok(None) => {}
                Err(e) => return Err(RecvError::Malformed(e.to_string())),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RecvError::Timeout);
            }
            self.stream.set_read_timeout(Some(left)).expect("timeout");
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(RecvError::Closed),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(RecvError::Timeout)
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(RecvError::Closed),
            }
        }
    }

    /// The next packet; panics when none arrives within [`WAIT`].
    pub fn recv(&mut self) -> In {
        match self.try_recv(WAIT) {
            Ok(p) => p,
            Err(e) => panic!("expected a packet from the broker, got {e:?}"),
        }
    }

    /// Receives until `want` picks a packet; packets passed over are kept for later reads.
    /// Panics when none is picked within [`WAIT`].
    pub fn recv_until<T>(&mut self, what: &str, want: impl FnMut(&In) -> Option<T>) -> T {
        match self.try_recv_until(want) {
            Ok(t) => t,
            Err((e, passed)) => panic!("waiting for {what}: {e:?}; received meanwhile: {passed:?}"),
        }
    }

    /// Like [`Raw::recv_until`], returning the error and the packets passed over instead of
    /// panicking.
    pub fn try_recv_until<T>(
        &mut self,
        mut want: impl FnMut(&In) -> Option<T>,
    ) -> Result<T, (RecvError, Vec<In>)> {
        let deadline = Instant::now() + WAIT;
        let mut passed = VecDeque::new();
        // Packets stashed earlier are looked at first, in order.
        let mut earlier: VecDeque<In> = std::mem::take(&mut self.stash);
        let found = loop {
            let next = match earlier.pop_front() {
                Some(p) => Ok(p),
                None => self.try_recv(deadline.saturating_duration_since(Instant::now())),
            };
            match next {
                Ok(p) => match want(&p) {
                    Some(t) => break Ok(t),
                    None => passed.push_back(p),
                },
                Err(e) => break Err(e),
            }
        };
        passed.extend(earlier);
        passed.extend(std::mem::take(&mut self.stash));
        match found {
            Ok(t) => {
                self.stash = passed;
                Ok(t)
            }
            Err(e) => Err((e, passed.into())),
        }
    }

    /// Waits for the connection to close; returns the packets received before that.
    pub fn closed(&mut self, within: Duration) -> Vec<In> {
        let deadline = Instant::now() + within;
        let mut got: Vec<In> = self.stash.drain(..).collect();
        loop {
            match self.try_recv(deadline.saturating_duration_since(Instant::now())) {
                Ok(p) => got.push(p),
                Err(RecvError::Closed) => return got,
                Err(RecvError::Timeout) => {
                    panic!("the broker did not close the connection within {within:?}; received {got:?}")
                }
                // A half-written packet at the close: the connection is closed all the same.
                Err(RecvError::Malformed(e)) => panic!("malformed packet from the broker: {e}"),
            }
        }
    }

    /// Waits for the close and returns the reason of the v5 DISCONNECT sent before it.
    pub fn disconnected_with(&mut self) -> u8 {
        let got = self.closed(WAIT);
        got.iter()
            .find_map(|p| match p {
                In::Disconnect(r) => Some(*r),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no DISCONNECT before the close; received {got:?}"))
    }

    /// Asserts the connection is still open: a PINGREQ gets its PINGRESP.
    pub fn ping(&mut self) {
        self.send(&Packet::PingReq);
        self.recv_until("PINGRESP", |p| matches!(p, In::PingResp).then_some(()));
    }

    /// Subscribes to `entries` with an optional v5 subscription identifier; returns the
    /// SUBACK reason codes.
    pub fn subscribe_with(
        &mut self,
        entries: &[(&str, SubscriptionOptions)],
        sub_id: Option<u32>,
    ) -> Vec<u8> {
        let mut payload = Vec::new();
        encode_subscribe_filters(entries.iter().copied(), &mut payload).expect("filters");
        let pid = self.pid();
        self.send(&Packet::Subscribe(Subscribe {
            packet_id: pid,
            properties: Properties {
                subscription_identifier: sub_id,
                ..Properties::default()
            },
            filters: SubscribeFilters { payload: &payload },
        }));
        self.recv_until("SUBACK", |p| match p {
            In::SubAck(id, reasons) if *id == pid => Some(reasons.clone()),
            _ => None,
        })
    }

    /// Subscribes to one filter at `qos` and asserts it was granted.
    pub fn subscribe(&mut self, filter: &str, qos: QoS) {
        let reasons = self.subscribe_with(&[(filter, qos_opts(qos))], None);
        assert_eq!(reasons, vec![qos as u8], "SUBACK for {filter}");
    }

    /// Unsubscribes; returns the UNSUBACK reason codes (empty before v5).
    pub fn unsubscribe(&mut self, filters: &[&str]) -> Vec<u8> {
        let mut payload = Vec::new();
        encode_unsubscribe_filters(filters.iter().copied(), &mut payload).expect("filters");
        let pid = self.pid();
        self.send(&Packet::Unsubscribe(Unsubscribe {
            packet_id: pid,
            properties: Properties::default(),
            filters: UnsubscribeFilters { payload: &payload },
        }));
        self.recv_until("UNSUBACK", |p| match p {
            In::UnsubAck(id, reasons) if *id == pid => Some(reasons.clone()),
            _ => None,
        })
    }

    /// Publishes and completes the QoS flow: returns the PUBACK / PUBREC reason (0 at QoS 0).
    pub fn publish_with(&mut self, mut p: Publish<'_>) -> u8 {
        if p.qos != QoS::AtMostOnce && p.packet_id == 0 {
            p.packet_id = self.pid();
        }
        let pid = p.packet_id;
        self.send(&Packet::Publish(p));
        match p.qos {
            QoS::AtMostOnce => 0,
            QoS::AtLeastOnce => self.recv_until("PUBACK", |r| match r {
                In::PubAck(id, reason) if *id == pid => Some(*reason),
                _ => None,
            }),
            QoS::ExactlyOnce => {
                let rec = self.recv_until("PUBREC", |r| match r {
                    In::PubRec(id, reason) if *id == pid => Some(*reason),
                    _ => None,
                });
                if rec >= 0x80 {
                    return rec;
                }
                self.send_response(ResponseKind::Rel, pid);
                self.recv_until("PUBCOMP", |r| match r {
                    In::PubComp(id, reason) if *id == pid => Some(*reason),
                    _ => None,
                });
                rec
            }
        }
    }

    /// Publishes `payload` on `topic` and completes the QoS flow; returns the reason code.
    pub fn publish(&mut self, topic: &str, payload: &[u8], qos: QoS, retain: bool) -> u8 {
        self.publish_with(publish(topic, payload, qos, retain))
    }

    /// Sends a PUBACK, PUBREC, PUBREL or PUBCOMP with reason success.
    pub fn send_response(&mut self, kind: ResponseKind, packet_id: u16) {
        let r = PubResponse {
            packet_id,
            reason: 0,
            properties: Properties::default(),
        };
        let packet = match kind {
            ResponseKind::Ack => Packet::PubAck(r),
            ResponseKind::Rec => Packet::PubRec(r),
            ResponseKind::Rel => Packet::PubRel(r),
            ResponseKind::Comp => Packet::PubComp(r),
        };
        self.send(&packet);
    }

    /// The next PUBLISH, not acknowledged.
    pub fn next_msg_noack(&mut self) -> Msg {
        self.recv_until("PUBLISH", |p| match p {
            In::Publish(m) => Some(m.clone()),
            _ => None,
        })
    }

    /// The next PUBLISH, with its QoS 1 / QoS 2 flow completed.
    pub fn next_msg(&mut self) -> Msg {
        let m = self.next_msg_noack();
        self.ack(&m);
        m
    }

    /// Completes the receiving side of `m`'s QoS flow.
    pub fn ack(&mut self, m: &Msg) {
        match m.qos {
            1 => self.send_response(ResponseKind::Ack, m.packet_id),
            2 => {
                self.send_response(ResponseKind::Rec, m.packet_id);
                let pid = m.packet_id;
                self.recv_until("PUBREL", |p| match p {
                    In::PubRel(id, _) if *id == pid => Some(()),
                    _ => None,
                });
                self.send_response(ResponseKind::Comp, pid);
            }
            _ => {}
        }
    }

    /// Sends a normal (v5: reason 0) DISCONNECT and waits for the close.
    pub fn disconnect(mut self) {
        self.disconnect_with(0);
    }

    /// Sends DISCONNECT with a v5 reason code and waits for the broker to close.
    pub fn disconnect_with(&mut self, reason: u8) {
        self.send(&Packet::Disconnect(Disconnect {
            reason,
            properties: Properties::default(),
        }));
        self.closed(WAIT);
    }

    /// Drops the connection without DISCONNECT (as a crashed client would).
    pub fn abort(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// Which acknowledgement [`Raw::send_response`] sends.
#[derive(Debug, Clone, Copy)]
pub enum ResponseKind {
    /// PUBACK.
    Ack,
    /// PUBREC.
    Rec,
    /// PUBREL.
    Rel,
    /// PUBCOMP.
    Comp,
}

/// A PUBLISH with no properties (packet id filled in by [`Raw::publish_with`]).
pub fn publish<'a>(topic: &'a str, payload: &'a [u8], qos: QoS, retain: bool) -> Publish<'a> {
    Publish {
        dup: false,
        qos,
        retain,
        topic,
        packet_id: 0,
        properties: Properties::default(),
        subscription_ids: &[],
        payload,
    }
}

/// Parses one whole packet from the broker.
fn parse(bytes: &[u8], protocol: Protocol) -> Result<In, String> {
    if bytes[0] >> 4 == 3 {
        return parse_publish(bytes, protocol).map(In::Publish);
    }
    let packet = codec::decode(bytes, protocol).map_err(|e| e.to_string())?;
    Ok(match packet {
        Packet::ConnAck(a) => In::ConnAck(ConnAckIn {
            session_present: a.session_present,
            code: a.code,
            assigned_client_id: a.properties.assigned_client_identifier.map(str::to_owned),
            receive_maximum: a.properties.receive_maximum,
            topic_alias_maximum: a.properties.topic_alias_maximum,
            maximum_packet_size: a.properties.maximum_packet_size,
        }),
        Packet::PubAck(r) => In::PubAck(r.packet_id, r.reason),
        Packet::PubRec(r) => In::PubRec(r.packet_id, r.reason),
        Packet::PubRel(r) => In::PubRel(r.packet_id, r.reason),
        Packet::PubComp(r) => In::PubComp(r.packet_id, r.reason),
        Packet::SubAck(s) => In::SubAck(s.packet_id, s.reasons.to_vec()),
        Packet::UnsubAck(u) => In::UnsubAck(u.packet_id, u.reasons.to_vec()),
        Packet::PingResp => In::PingResp,
        Packet::Disconnect(d) => In::Disconnect(d.reason),
        other => In::Other(format!("{other:?}")),
    })
}

/// A cursor over a packet body; every read is checked.
struct Cur<'a> {
    b: &'a [u8],
}

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.b.len() < n {
            return Err("PUBLISH field runs past the end".to_owned());
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn vbi(&mut self) -> Result<u32, String> {
        let mut value = 0u32;
        for i in 0..4 {
            let byte = self.u8()?;
            value |= u32::from(byte & 0x7F) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("variable byte integer over four bytes".to_owned())
    }

    fn binary(&mut self) -> Result<Vec<u8>, String> {
        let len = self.u16()?;
        Ok(self.take(usize::from(len))?.to_vec())
    }

    fn string(&mut self) -> Result<String, String> {
        String::from_utf8(self.binary()?).map_err(|_| "string is not UTF-8".to_owned())
    }
}

/// Parses a PUBLISH from the broker, Subscription Identifiers included.
fn parse_publish(bytes: &[u8], protocol: Protocol) -> Result<Msg, String> {
    let flags = bytes[0] & 0x0F;
    let mut header = Cur { b: &bytes[1..] };
    header.vbi()?;
    let mut r = header;
    let mut m = Msg {
        qos: (flags >> 1) & 0b11,
        retain: flags & 1 != 0,
        dup: flags & 0b1000 != 0,
        topic: r.string()?,
        ..Msg::default()
    };
    if m.qos == 3 {
        return Err("PUBLISH with QoS 3".to_owned());
    }
    if m.qos > 0 {
        m.packet_id = r.u16()?;
    }
    if protocol.is_v5() {
        let len = r.vbi()? as usize;
        let mut props = Cur { b: r.take(len)? };
        while !props.b.is_empty() {
            publish_property(&mut props, &mut m)?;
        }
    }
    m.payload = r.b.to_vec();
    Ok(m)
}

/// Reads one property of a server's PUBLISH into `m`.
fn publish_property(p: &mut Cur<'_>, m: &mut Msg) -> Result<(), String> {
    match p.u8()? {
        0x01 => m.payload_format = Some(p.u8()?),
        0x02 => m.expiry = Some(p.u32()?),
        0x03 => m.content_type = Some(p.string()?),
        0x08 => m.response_topic = Some(p.string()?),
        0x09 => m.correlation_data = Some(p.binary()?),
        0x0B => m.sub_ids.push(p.vbi()?),
        0x23 => m.topic_alias = Some(p.u16()?),
        0x26 => {
            let k = p.string()?;
            let v = p.string()?;
            m.user_properties.push((k, v));
        }
        other => return Err(format!("property 0x{other:02X} is not allowed in PUBLISH")),
    }
    Ok(())
}
