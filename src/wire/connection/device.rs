//! The device side of a connection: `DeviceHello` against the device registry, topic aliases
//! (`RegisterAlias`, `ProduceAlias`, `Reading`, for every session), `ConfigRequest` and
//! `Sleep`, and the device's last-seen time.
//!
//! A `DeviceHello`'s token is checked with [`Devices::check_token`]; what that means for the
//! session is [`Session::device_checked`](super::Session::device_checked)'s decision. A wrong
//! token is counted twice — as a device token failure of the TCP transport and as a failed
//! login — and logged once per device id; a device without a token refused where a login is
//! required counts as a failed login. A device let in is reported to the registry
//! ([`Devices::seen`], [`Devices::disconnected`] when the connection ends, and
//! [`Devices::touch`] at most once per [`TOUCH_INTERVAL`] while it sends), starts with the
//! aliases of its stored config, and gets that config in its `DeviceHelloAck` when it holds
//! an older version or none.
//!
//! [`Devices::check_token`]: crate::devices::Devices::check_token
//! [`Devices::seen`]: crate::devices::Devices::seen
//! [`Devices::disconnected`]: crate::devices::Devices::disconnected
//! [`Devices::touch`]: crate::devices::Devices::touch
//!
//! Access: a device whose token was verified is the ACL's `device = "ID"` (and its client id
//! is its device id); a device without a token is an anonymous client, or the user its TLS
//! certificate names. `RegisterAlias` needs `publish` on the topic (checked with the other
//! requests, before it is served); `ProduceAlias` and `Reading` need it on their alias's
//! topic at every use, since the rules may have been reloaded since the alias was defined.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use outpost_firmware::{ErrorCode, Frame, Records};

use super::super::aliases::{AliasTable, AliasTarget};
use super::super::session::{DeviceToken, Gate};
use super::{handlers, produce, send, send_error, Conn, ProduceReq, Reply};
use crate::auth::{Action, Identity};
use crate::devices::{Device, TokenCheck, Transport};
use crate::log::{Target, TopicError};

/// Shortest time between two last-seen updates of a device's connection.
pub const TOUCH_INTERVAL: Duration = Duration::from_secs(1);

/// What a device session keeps of its device.
#[derive(Debug)]
pub(super) struct DeviceConn {
    /// The device id.
    pub(super) id: Box<str>,
    /// The token hash the session was admitted with (`None`: admitted without a token).
    token_hash: Option<[u8; crate::devices::store::HASH_LEN]>,
    /// The registry's credentials generation when that was last checked.
    generation: u64,
    /// When the registry's last-seen time was last moved.
    last_touch: Instant,
}

/// Why a refused `DeviceHello` is counted as a failed login (for the log line).
fn refusal_reason(token: DeviceToken) -> &'static str {
    match token {
        DeviceToken::Wrong => "wrong device token",
        _ => "device without a token where a login is required; set one with `outpost devices token ID`",
    }
}

/// What the registry said, for the session, with the stored device when there is one.
fn token_verdict(check: TokenCheck) -> (DeviceToken, Option<std::sync::Arc<Device>>) {
    match check {
        TokenCheck::Verified(d) => (DeviceToken::Verified, Some(d)),
        TokenCheck::NoToken(d) => (DeviceToken::Missing, d),
        TokenCheck::Wrong => (DeviceToken::Wrong, None),
    }
}

impl Conn {
    /// Settles a `DeviceHello` whose version and id the session accepted: answers
    /// `DeviceHelloAck`, or refuses (counted) and closes.
    pub(super) async fn device_hello(&mut self, frame: &Frame<'_>) -> Result<(), &'static str> {
        let Frame::DeviceHello {
            device_id,
            token,
            config_version,
            ..
        } = *frame
        else {
            return Ok(());
        };
        let (verdict, device) = token_verdict(self.devices.check_token(device_id, token));
        if let Gate::Refuse { code, message, .. } = self.session.device_checked(verdict) {
            if verdict == DeviceToken::Wrong {
                self.devices.count_token_failure(Transport::Tcp);
            }
            let why = refusal_reason(verdict);
            self.security.count_auth_refusal(device_id, None, why);
            send_error(&self.replies, 0, code, message).await;
            return Err(message);
        }
        let token_hash = device.as_ref().and_then(|d| d.token_hash);
        let verified = verdict == DeviceToken::Verified;
        self.admit_device(device_id, verified, config_version, token_hash);
        let counters = self.devices.counters();
        if let Some(config) = device.as_ref().and_then(|d| d.config.as_ref()) {
            self.aliases = AliasTable::from_config(config);
        }
        let config = device.as_ref().and_then(|d| d.config_for(config_version));
        if config.is_some() {
            counters.configs_sent.fetch_add(1, Ordering::Relaxed);
        }
        let ack = Frame::DeviceHelloAck {
            version: outpost_firmware::PROTOCOL_VERSION,
            broker_time_ms: crate::log::now_ms(),
            max_frame_len: self.config.max_frame_bytes,
            config,
        };
        send(&self.replies, &ack).await;
        Ok(())
    }

    /// A device let in: its access rules (the ACL's device when `verified`), the registry's
    /// status, the hello counter.
    fn admit_device(
        &mut self,
        id: &str,
        verified: bool,
        held: Option<u32>,
        token_hash: Option<[u8; crate::devices::store::HASH_LEN]>,
    ) {
        // Read before the check below could miss a change made while admitting.
        let generation = self.devices.credentials_generation();
        let identity = Identity {
            user: self.cert_identity.as_deref().map(Into::into),
            device: verified.then(|| id.into()),
            password_hash: None,
        };
        self.permissions = Some(self.security.permissions(&identity, id));
        let addr = self
            .peer_addr
            .unwrap_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
        self.devices.seen(id, Transport::Tcp, addr, held);
        self.device = Some(DeviceConn {
            id: id.into(),
            token_hash: token_hash.filter(|_| verified),
            generation,
            last_touch: Instant::now(),
        });
        let hellos = &self.devices.counters().hellos;
        hellos.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the credentials this device session was admitted with still hold: after
    /// `outpost devices token` (changed or cleared) or `outpost devices delete`, a session
    /// admitted with the old token ends, and one admitted without a token ends when the
    /// device gets one. One atomic load per frame while nothing changed.
    pub(super) fn device_credentials_hold(&mut self) -> bool {
        let Some(d) = self.device.as_mut() else {
            return true;
        };
        let now = self.devices.credentials_generation();
        if now == d.generation {
            return true;
        }
        d.generation = now;
        self.devices.token_hash_of(&d.id) == d.token_hash
    }

    /// Moves the device's last-seen time, at most once per [`TOUCH_INTERVAL`].
    pub(super) fn touch_device(&mut self) {
        let Some(d) = self.device.as_mut() else {
            return;
        };
        let now = Instant::now();
        if now.duration_since(d.last_touch) >= TOUCH_INTERVAL {
            d.last_touch = now;
            self.devices.touch(&d.id);
        }
    }

    /// Serves the alias and device requests; false when `frame` is none of them.
    pub(super) async fn serve_device_frame(&mut self, frame: &Frame<'_>) -> bool {
        match *frame {
            Frame::RegisterAlias {
                request_id,
                alias,
                topic,
                partition,
            } => {
                self.register_alias(request_id, alias, topic, partition)
                    .await
            }
            Frame::ProduceAlias {
                request_id,
                alias,
                ack,
                ref records,
            } => {
                self.produce_alias(request_id, alias, Reply::of_ack(ack), records)
                    .await
            }
            Frame::Reading {
                request_id,
                alias,
                value,
            } => self.reading(request_id, alias, value).await,
            Frame::ConfigRequest { request_id } => self.config_request(request_id).await,
            Frame::Sleep {
                request_id,
                duration_ms,
            } => self.sleep(request_id, duration_ms).await,
            _ => return false,
        }
        true
    }

    /// `RegisterAlias` (its `publish` right was checked): the topic must be valid and exist
    /// (or be one a produce would create), the partition exist; answered `Done`.
    async fn register_alias(&mut self, id: u32, alias: u16, topic: &str, partition: Option<u32>) {
        if let Err((code, msg)) = check_alias_target(&self.log, topic, partition) {
            return send_error(&self.replies, id, code, &msg).await;
        }
        match self.aliases.register(alias, topic, partition) {
            Ok(()) => send(&self.replies, &Frame::Done { request_id: id }).await,
            Err(e) => {
                let msg = e.to_string();
                send_error(&self.replies, id, ErrorCode::INVALID_REQUEST, &msg).await
            }
        }
    }

    /// The target of `alias`, after the client's `publish` right on its topic; answers
    /// `UNKNOWN_ALIAS` (whatever the ack mode or request id) or `NOT_AUTHORIZED` otherwise.
    async fn alias_target(&mut self, id: u32, alias: u16) -> Option<AliasTarget> {
        let Some(target) = self.aliases.get(alias).cloned() else {
            // Short: a device's receive buffer is small (see the firmware's REPLY_ROOM).
            let msg = format!("unknown alias {alias}");
            send_error(&self.replies, id, ErrorCode::UNKNOWN_ALIAS, &msg).await;
            return None;
        };
        self.check(id, Action::Publish, &target.topic)
            .await
            .then_some(target)
    }

    /// `ProduceAlias`: a `Produce` on the alias's topic and partition.
    async fn produce_alias(&mut self, id: u32, alias: u16, reply: Reply, records: &Records<'_>) {
        let Some(target) = self.alias_target(id, alias).await else {
            return;
        };
        let req = ProduceReq {
            request_id: id,
            topic: &target.topic,
            partition: target.partition,
            reply,
        };
        self.produce(req, records).await;
    }

    /// `Reading`: one value on the alias's topic, stamped with the broker's clock; `Done`
    /// after the commit unless the request id is 0 (errors are always answered).
    async fn reading(&mut self, id: u32, alias: u16, value: &[u8]) {
        let Some(target) = self.alias_target(id, alias).await else {
            return;
        };
        let pending = match produce::encode_value(&mut self.builder, value) {
            Ok(p) => p,
            Err((code, msg)) => return send_error(&self.replies, id, code, msg).await,
        };
        let req = ProduceReq {
            request_id: id,
            topic: &target.topic,
            partition: target.partition,
            reply: if id == 0 { Reply::Quiet } else { Reply::Done },
        };
        let to = target.partition.map_or(Target::Any, Target::Partition);
        self.gather_append(req, to, pending).await;
    }

    /// `ConfigRequest` (device sessions only): the stored config, or `None`.
    async fn config_request(&mut self, id: u32) {
        let device = self.device.as_ref().and_then(|d| self.devices.get(&d.id));
        let config = device
            .as_ref()
            .filter(|d| d.config.is_some())
            .map(|d| &*d.config_bytes);
        if config.is_some() {
            let sent = &self.devices.counters().configs_sent;
            sent.fetch_add(1, Ordering::Relaxed);
        }
        let reply = Frame::ConfigReply {
            request_id: id,
            config,
        };
        send(&self.replies, &reply).await;
    }

    /// `Sleep` (device sessions only): recorded in the registry; `Done` unless the id is 0.
    async fn sleep(&mut self, id: u32, duration_ms: u32) {
        if let Some(d) = &self.device {
            self.devices.sleeping(&d.id, duration_ms);
        }
        if id != 0 {
            send(&self.replies, &Frame::Done { request_id: id }).await;
        }
    }
}

/// Whether an alias may stand for `topic` (and `partition`): a valid name; an existing topic
/// with that partition, or a topic the first produce will create (auto-creation on: the
/// partition is then checked by that produce).
fn check_alias_target(
    log: &crate::log::Log,
    topic: &str,
    partition: Option<u32>,
) -> Result<(), (ErrorCode, String)> {
    match log.describe_topic(topic) {
        Ok(d) => match partition {
            Some(p) if p >= d.config.partitions => Err((
                ErrorCode::UNKNOWN_PARTITION,
                format!(
                    "topic `{topic}` has {} partition(s); partition {p} does not exist",
                    d.config.partitions
                ),
            )),
            _ => Ok(()),
        },
        Err(TopicError::Unknown(_)) => {
            crate::log::validate_topic_name(topic)
                .map_err(|e| (ErrorCode::INVALID_TOPIC_NAME, e.to_string()))?;
            // With auto-creation off this is `UnknownTopic`; no round-robin state moves.
            log.resolve_partition(topic, Target::Partition(0))
                .map(drop)
                .map_err(|e| handlers::append_code(&e))
        }
        Err(e) => Err(handlers::topic_code(&e)),
    }
}
