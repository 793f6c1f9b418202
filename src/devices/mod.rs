//! Devices: sensors on the binary protocol, their stored configs and tokens, and what the
//! broker last saw of them.
//!
//! [`Devices`] is the cheap-clone handle the TCP and UDP listeners and the admin requests
//! share. Stored state (config bytes, token hash) lives in the log file's `devices/config`
//! table and in memory; changes go through the log writer and are applied in memory only
//! after their commit. Live state ([`Status`]: last seen, address, transport, reported config
//! version, sleep hint) is kept in memory and written to `devices/status` by a background
//! flush at most once a minute and at shutdown (see [`store`] for both encodings).
//!
//! What this module does not do: speak a protocol, or decide what a device may publish (the
//! ACL's `device = "..."` rules do, for a device whose token was verified).

pub mod store;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use outpost_firmware::config::MAX_DEVICE_ID_LEN;
use outpost_firmware::{AckMode, DeviceConfig};
use serde::Serialize;

use crate::log::tables::StateTable;
use crate::log::{now_ms, Log, StateError, StateOp, StorageError};
use crate::shutdown::Shutdown;
use store::{CorruptRecord, Record};

/// How often changed statuses are written to the log file.
pub const STATUS_FLUSH_INTERVAL: Duration = Duration::from_secs(60);
/// Devices without a stored record whose status is still tracked (they connected over TCP
/// to a broker that lets anonymous devices in); beyond this, new ones are not tracked.
pub const MAX_UNREGISTERED: usize = 1024;

/// How a device reached the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// The binary protocol over TCP (or TLS).
    Tcp,
    /// Datagrams.
    Udp,
}

/// What the broker last saw of a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// When (ms since the epoch).
    pub last_seen_ms: u64,
    /// Over which transport.
    pub transport: Transport,
    /// From which address.
    pub address: Box<str>,
    /// The config version the device said it holds (TCP hello).
    pub reported_version: Option<u32>,
    /// The device said it sleeps until then.
    pub sleep_until_ms: Option<u64>,
    /// A TCP connection of the device is open now (not stored).
    pub connected: bool,
}

/// A device as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The device id.
    pub id: Box<str>,
    /// The stored config, decoded.
    pub config: Option<DeviceConfig>,
    /// The stored config's bytes, sent to devices as they are (only when they decode as
    /// `config`).
    pub config_bytes: Box<[u8]>,
    /// Hash of the device's token.
    pub token_hash: Option<[u8; store::HASH_LEN]>,
    /// When the record last changed.
    pub updated_ms: u64,
}

impl Device {
    /// The stored config's version, if a config is stored.
    pub fn config_version(&self) -> Option<u32> {
        self.config.as_ref().map(|c| c.version)
    }

    /// The config bytes a device holding `held` should receive: the stored ones when newer.
    pub fn config_for(&self, held: Option<u32>) -> Option<&[u8]> {
        let stored = self.config_version()?;
        (held.is_none_or(|h| h < stored)).then_some(&*self.config_bytes)
    }
}

/// The outcome of a device's credentials check.
#[derive(Debug, Clone)]
pub enum TokenCheck {
    /// The device has a token and this is it.
    Verified(Arc<Device>),
    /// The device has no token set (it may be stored, with a config); whether it may connect
    /// depends on whether the broker lets anonymous clients in.
    NoToken(Option<Arc<Device>>),
    /// The device has a token and this is not it (or none was given).
    Wrong,
}

/// Why a device change was refused.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The id is not usable.
    #[error("invalid device id `{0}`: use 1..=32 characters of [a-zA-Z0-9._-]")]
    InvalidId(String),
    /// No such device.
    #[error("unknown device `{0}`")]
    Unknown(String),
    /// The config is not acceptable.
    #[error("invalid device config: {0}")]
    InvalidConfig(String),
    /// The log could not store the change.
    #[error("storing the change failed: {0}")]
    Storage(#[from] StateError),
}

/// Counters of device traffic (for metrics).
#[derive(Debug, Default)]
pub struct DeviceCounters {
    /// Device hellos accepted (TCP).
    pub hellos: AtomicU64,
    /// Configs sent to devices (hello replies and config requests).
    pub configs_sent: AtomicU64,
    /// Wrong tokens over TCP.
    pub token_failures_tcp: AtomicU64,
    /// Wrong tokens over UDP.
    pub token_failures_udp: AtomicU64,
}

/// The registry; clones share it.
#[derive(Clone)]
pub struct Devices {
    inner: Arc<Inner>,
}

struct Inner {
    log: Log,
    devices: RwLock<HashMap<Box<str>, Arc<Device>>>,
    status: Mutex<StatusMap>,
    /// Serializes changes so a version computed from the stored one stays right.
    changes: tokio::sync::Mutex<()>,
    /// Grows with every token change and deletion: open TCP sessions compare it to notice
    /// that the credentials they were admitted with may be gone.
    credentials: AtomicU64,
    counters: DeviceCounters,
}

#[derive(Default)]
struct StatusMap {
    map: HashMap<Box<str>, Status>,
    /// Ids whose status changed since the last flush.
    dirty: std::collections::HashSet<Box<str>>,
    /// Open TCP connections per tracked device: a device that reconnects before its old
    /// connection timed out has two for a while, and stays connected when the old one
    /// closes. Bounded by the listener's connection limit.
    open: HashMap<Box<str>, u32>,
}

/// Checks a device id: 1..=32 bytes of `[a-zA-Z0-9._-]`.
pub fn validate_id(id: &str) -> Result<(), DeviceError> {
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if !id.is_empty() && id.len() <= MAX_DEVICE_ID_LEN && id.chars().all(legal) {
        Ok(())
    } else {
        Err(DeviceError::InvalidId(id.into()))
    }
}

/// Why the stored devices could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The log file.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A record.
    #[error("device `{id}`: {source}")]
    Corrupt {
        /// The device.
        id: String,
        /// Why.
        source: CorruptRecord,
    },
}

impl Devices {
    /// Reads the stored devices and statuses from `log`.
    pub fn load(log: &Log) -> Result<Self, LoadError> {
        let mut devices = HashMap::new();
        for (key, value) in log.read_state(StateTable::Devices)? {
            let id = String::from_utf8_lossy(&key).into_owned();
            let record = Record::decode(&value).map_err(|source| LoadError::Corrupt {
                id: id.clone(),
                source,
            })?;
            let device = device_from_record(&id, record);
            devices.insert(id.into_boxed_str(), Arc::new(device));
        }
        let mut status = StatusMap::default();
        for (key, value) in log.read_state(StateTable::DeviceStatus)? {
            let id = String::from_utf8_lossy(&key).into_owned();
            // A status is a convenience: one that does not decode is dropped, not fatal.
            match store::decode_status(&value) {
                // A row whose device is gone (it cannot be written any more, see
                // `flush_status`; older files) is left out.
                Ok(s) if devices.contains_key(id.as_str()) => {
                    status.map.insert(id.into_boxed_str(), s);
                }
                Ok(_) => {}
                Err(_) => {
                    tracing::warn!(device = %id, "stored device status is unreadable; dropped")
                }
            }
        }
        Ok(Self {
            inner: Arc::new(Inner {
                log: log.clone(),
                devices: RwLock::new(devices),
                status: Mutex::new(status),
                changes: tokio::sync::Mutex::new(()),
                credentials: AtomicU64::new(0),
                counters: DeviceCounters::default(),
            }),
        })
    }

    /// The stored device `id`.
    pub fn get(&self, id: &str) -> Option<Arc<Device>> {
        self.read().get(id).cloned()
    }

    /// Every stored device, by id.
    pub fn list(&self) -> Vec<Arc<Device>> {
        let mut all: Vec<_> = self.read().values().cloned().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// Grows with every token change and device deletion (see [`Devices::token_hash_of`]).
    pub fn credentials_generation(&self) -> u64 {
        self.inner.credentials.load(Ordering::Acquire)
    }

    /// The token hash `id` is stored with now (`None`: no token, or no such device). A
    /// session admitted with another one must end: its token was changed or removed, or the
    /// device deleted.
    pub fn token_hash_of(&self, id: &str) -> Option<[u8; store::HASH_LEN]> {
        self.get(id).and_then(|d| d.token_hash)
    }

    /// The traffic counters.
    pub fn counters(&self) -> &DeviceCounters {
        &self.inner.counters
    }

    /// Checks the token a device presents (empty: none).
    pub fn check_token(&self, id: &str, token: &[u8]) -> TokenCheck {
        let device = self.get(id);
        match device.as_ref().and_then(|d| d.token_hash) {
            Some(hash) if !token.is_empty() && store::token_matches(id, token, &hash) => {
                TokenCheck::Verified(device.expect("a hash comes with a device"))
            }
            Some(_) => TokenCheck::Wrong,
            // A token given to a device without one is ignored: it proves nothing.
            None => TokenCheck::NoToken(device),
        }
    }

    /// Counts a wrong token.
    pub fn count_token_failure(&self, transport: Transport) {
        let c = &self.inner.counters;
        match transport {
            Transport::Tcp => &c.token_failures_tcp,
            Transport::Udp => &c.token_failures_udp,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    /// Stores a config for `id` (creating the device). `config.version` 0 takes the stored
    /// version plus one (1 for a new device); an explicit version must be above the stored
    /// one unless the config is unchanged (then nothing is written). Returns the device.
    pub async fn set_config(&self, id: &str, bytes: &[u8]) -> Result<Arc<Device>, DeviceError> {
        validate_id(id)?;
        let mut config =
            DeviceConfig::decode(bytes).map_err(|e| DeviceError::InvalidConfig(e.to_string()))?;
        check_config(id, &config)?;
        let _serial = self.inner.changes.lock().await;
        let old = self.get(id);
        let stored = old.as_ref().and_then(|d| d.config.clone());
        let stored_version = stored.as_ref().map_or(0, |c| c.version);
        if config.version == 0 {
            if let Some(s) = &stored {
                let mut same = config.clone();
                same.version = s.version;
                if &same == s {
                    return Ok(old.expect("stored config comes with a device"));
                }
            }
            config.version = stored_version
                .checked_add(1)
                .ok_or_else(|| DeviceError::InvalidConfig("version overflows u32".into()))?;
        } else if stored.as_ref() == Some(&config) {
            return Ok(old.expect("stored config comes with a device"));
        } else if config.version <= stored_version {
            return Err(DeviceError::InvalidConfig(format!(
                "version {} is not above the stored version {stored_version}; omit `version` to take the next one",
                config.version
            )));
        }
        let mut buf = [0u8; outpost_firmware::MAX_ENCODED_LEN];
        let encoded = config
            .encode(&mut buf)
            .map_err(|e| DeviceError::InvalidConfig(e.to_string()))?
            .to_vec();
        let record = Record {
            updated_ms: now_ms(),
            token_hash: old.as_ref().and_then(|d| d.token_hash),
            config: encoded,
        };
        self.store(id, record).await
    }

    /// Sets (or with `None` removes) the token of `id`, creating the device if needed.
    pub async fn set_token(&self, id: &str, token: Option<&[u8]>) -> Result<(), DeviceError> {
        validate_id(id)?;
        if token.is_some_and(<[u8]>::is_empty) {
            return Err(DeviceError::InvalidConfig("empty token".into()));
        }
        let _serial = self.inner.changes.lock().await;
        let old = self.get(id);
        if old.is_none() && token.is_none() {
            return Err(DeviceError::Unknown(id.into()));
        }
        let record = Record {
            updated_ms: now_ms(),
            token_hash: token.map(|t| store::token_hash(id, t)),
            config: old.map(|d| d.config_bytes.to_vec()).unwrap_or_default(),
        };
        self.store(id, record).await?;
        self.inner.credentials.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Forgets `id`: its record and its status.
    pub async fn delete(&self, id: &str) -> Result<(), DeviceError> {
        let _serial = self.inner.changes.lock().await;
        if self.get(id).is_none() {
            // Seen but never stored (an anonymous TCP device): forgotten from memory.
            let mut status = self.status();
            status.dirty.remove(id);
            return match status.map.remove(id) {
                Some(_) => Ok(()),
                None => Err(DeviceError::Unknown(id.into())),
            };
        }
        let key = id.as_bytes().to_vec();
        let ops = vec![
            StateOp::Delete {
                table: StateTable::Devices,
                key: key.clone(),
            },
            StateOp::Delete {
                table: StateTable::DeviceStatus,
                key,
            },
        ];
        self.inner.log.enqueue_state(ops).await?.wait().await?;
        self.write().remove(id);
        self.inner.credentials.fetch_add(1, Ordering::AcqRel);
        let mut status = self.status();
        status.map.remove(id);
        status.dirty.remove(id);
        Ok(())
    }

    async fn store(&self, id: &str, record: Record) -> Result<Arc<Device>, DeviceError> {
        let op = StateOp::Put {
            table: StateTable::Devices,
            key: id.as_bytes().to_vec(),
            value: record.encode(),
        };
        self.inner.log.enqueue_state(vec![op]).await?.wait().await?;
        let device = Arc::new(device_from_record(id, record));
        self.write().insert(id.into(), device.clone());
        Ok(device)
    }

    /// A device said hello (TCP) or sent a datagram (UDP) from `address`.
    pub fn seen(&self, id: &str, transport: Transport, address: SocketAddr, reported: Option<u32>) {
        let devices = self.read();
        let known = devices.contains_key(id);
        let mut guard = self.status();
        let status = &mut *guard;
        if !known && !status.map.contains_key(id) {
            // Only when a new unregistered id comes: a scan of at most the tracked ones.
            let unregistered = status.map.keys().filter(|k| !devices.contains_key(*k));
            if unregistered.count() >= MAX_UNREGISTERED {
                return;
            }
        }
        drop(devices);
        let entry = status.map.entry(id.into()).or_insert_with(|| Status {
            last_seen_ms: 0,
            transport,
            address: "".into(),
            reported_version: None,
            sleep_until_ms: None,
            connected: false,
        });
        entry.last_seen_ms = now_ms();
        entry.transport = transport;
        entry.address = address.to_string().into();
        entry.sleep_until_ms = None;
        if transport == Transport::Tcp {
            entry.reported_version = reported;
            entry.connected = true;
            *status.open.entry(id.into()).or_insert(0) += 1;
        }
        if known {
            status.dirty.insert(id.into());
        }
    }

    /// A device's TCP connection sent something (its last-seen time moves; not written until
    /// the next flush).
    pub fn touch(&self, id: &str) {
        let known = self.read().contains_key(id);
        let mut status = self.status();
        if let Some(s) = status.map.get_mut(id) {
            s.last_seen_ms = now_ms();
            if known {
                status.dirty.insert(id.into());
            }
        }
    }

    /// A device's TCP connection closed (one [`Devices::seen`] over TCP each). The device
    /// stays connected while another of its connections is open.
    pub fn disconnected(&self, id: &str) {
        let known = self.read().contains_key(id);
        let mut status = self.status();
        let still_open = match status.open.get_mut(id) {
            Some(n) if *n > 1 => {
                *n -= 1;
                true
            }
            Some(_) => {
                status.open.remove(id);
                false
            }
            None => false,
        };
        if let Some(s) = status.map.get_mut(id) {
            s.connected = still_open;
            s.last_seen_ms = now_ms();
            if known {
                status.dirty.insert(id.into());
            }
        }
    }

    /// How many devices are stored.
    pub fn count(&self) -> usize {
        self.read().len()
    }

    /// How many tracked devices have a TCP connection open.
    pub fn connected(&self) -> usize {
        self.status().open.len()
    }

    /// A device said it sleeps for `duration_ms`.
    pub fn sleeping(&self, id: &str, duration_ms: u32) {
        let known = self.read().contains_key(id);
        let mut status = self.status();
        if let Some(s) = status.map.get_mut(id) {
            s.sleep_until_ms = Some(now_ms().saturating_add(u64::from(duration_ms)));
            if known {
                status.dirty.insert(id.into());
            }
        }
    }

    /// What the broker last saw of `id`.
    pub fn status_of(&self, id: &str) -> Option<Status> {
        self.status().map.get(id).cloned()
    }

    /// Writes the statuses changed since the last flush (stored devices only).
    pub async fn flush_status(&self) {
        // Under the change lock: a `delete` between collecting and committing would
        // otherwise see its status row written back.
        let _serial = self.inner.changes.lock().await;
        let ops: Vec<StateOp> = {
            let devices = self.read();
            let mut status = self.status();
            let dirty = std::mem::take(&mut status.dirty);
            dirty
                .iter()
                .filter(|id| devices.contains_key(*id))
                .filter_map(|id| status.map.get(id).map(|s| (id, s)))
                .map(|(id, s)| StateOp::Put {
                    table: StateTable::DeviceStatus,
                    key: id.as_bytes().to_vec(),
                    value: store::encode_status(s),
                })
                .collect()
        };
        if ops.is_empty() {
            return;
        }
        let result = match self.inner.log.enqueue_state(ops).await {
            Ok(pending) => pending.wait().await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "device status not written; it is kept in memory");
        }
    }

    /// Flushes statuses every [`STATUS_FLUSH_INTERVAL`] until shutdown, then once more.
    pub fn spawn_flusher(&self, shutdown: &Shutdown) -> tokio::task::JoinHandle<()> {
        let devices = self.clone();
        let mut stop = shutdown.subscribe();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(STATUS_FLUSH_INTERVAL);
            tick.tick().await;
            loop {
                let stopping = tokio::select! {
                    _ = tick.tick() => false,
                    _ = stop.wait_for(|&s| s) => true,
                };
                if stopping {
                    break;
                }
                devices.flush_status().await;
            }
            devices.flush_status().await;
        })
    }

    /// Devices (stored ones, and unregistered ones seen over TCP) as JSON objects; one device
    /// when `id` is given (`None` when it is neither stored nor seen).
    pub fn json(&self, id: Option<&str>) -> Option<String> {
        let status = self.status().map.clone();
        let devices = self.read().clone();
        fn view<'a>(
            id: &'a str,
            devices: &'a HashMap<Box<str>, Arc<Device>>,
            status: &'a HashMap<Box<str>, Status>,
        ) -> DeviceView<'a> {
            DeviceView::new(id, devices.get(id).map(|d| &**d), status.get(id))
        }
        let view = |id| view(id, &devices, &status);
        let views: Vec<DeviceView<'_>> = match id {
            Some(id) if devices.contains_key(id) || status.contains_key(id) => vec![view(id)],
            Some(_) => return None,
            None => {
                let mut ids: Vec<&str> = devices.keys().map(|k| &**k).collect();
                ids.extend(
                    status
                        .keys()
                        .map(|k| &**k)
                        .filter(|k| !devices.contains_key(*k)),
                );
                ids.sort_unstable();
                ids.into_iter().map(view).collect()
            }
        };
        Some(serde_json::to_string(&views).expect("device views serialize"))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Box<str>, Arc<Device>>> {
        self.inner.devices.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Box<str>, Arc<Device>>> {
        self.inner
            .devices
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn status(&self) -> std::sync::MutexGuard<'_, StatusMap> {
        self.inner.status.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn device_from_record(id: &str, record: Record) -> Device {
    let config = if record.config.is_empty() {
        None
    } else {
        match DeviceConfig::decode(&record.config) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(device = %id, error = %e, "stored device config is unreadable; serving none");
                None
            }
        }
    };
    Device {
        id: id.into(),
        // Kept even when they do not decode (a newer format): a token change writes them
        // back as they are; `config_for` serves only a decoded config.
        config_bytes: record.config.into_boxed_slice(),
        config,
        token_hash: record.token_hash,
        updated_ms: record.updated_ms,
    }
}

/// What the broker requires of a config beyond its encoding.
fn check_config(id: &str, config: &DeviceConfig) -> Result<(), DeviceError> {
    let bad = |m: String| Err(DeviceError::InvalidConfig(m));
    if config.device_id != id {
        return bad(format!(
            "its device_id `{}` is not `{id}`",
            config.device_id
        ));
    }
    if config.batch_size == 0 {
        return bad("batch_size must be at least 1".into());
    }
    for (i, a) in config.aliases.iter().enumerate() {
        if let Err(e) = crate::log::validate_topic_name(&a.topic) {
            return bad(format!("alias {}: {e}", a.alias));
        }
        if config.aliases[..i].iter().any(|b| b.alias == a.alias) {
            return bad(format!("alias {} is defined twice", a.alias));
        }
    }
    Ok(())
}

/// One device in `outpost devices get/list` (the JSON of `DevicesReply`).
#[derive(Debug, Serialize)]
pub struct DeviceView<'a> {
    /// Device id.
    pub id: &'a str,
    /// Whether a record is stored (false: seen over TCP only).
    pub registered: bool,
    /// Whether a token is set.
    pub token: bool,
    /// The stored config.
    pub config: Option<ConfigView<'a>>,
    /// When the record last changed.
    pub updated_ms: Option<u64>,
    /// When the device was last seen.
    pub last_seen_ms: Option<u64>,
    /// Over which transport.
    pub transport: Option<Transport>,
    /// From which address.
    pub address: Option<&'a str>,
    /// Whether a TCP connection of it is open.
    pub connected: bool,
    /// The config version the device reported.
    pub reported_config_version: Option<u32>,
    /// The device said it sleeps until then.
    pub sleep_until_ms: Option<u64>,
}

/// A stored config in JSON.
#[derive(Debug, Serialize)]
pub struct ConfigView<'a> {
    /// Version.
    pub version: u32,
    /// Gateway address.
    pub gateway: &'a str,
    /// Sample interval.
    pub sample_interval_ms: u32,
    /// Batch size.
    pub batch_size: u16,
    /// `"commit"` or `"none"`.
    pub ack: &'static str,
    /// Aliases.
    pub aliases: Vec<AliasView<'a>>,
}

/// One alias in JSON.
#[derive(Debug, Serialize)]
pub struct AliasView<'a> {
    /// The alias.
    pub alias: u16,
    /// Its topic.
    pub topic: &'a str,
    /// Its partition.
    pub partition: Option<u32>,
}

impl<'a> DeviceView<'a> {
    fn new(id: &'a str, device: Option<&'a Device>, status: Option<&'a Status>) -> Self {
        let config = device.and_then(|d| d.config.as_ref()).map(|c| ConfigView {
            version: c.version,
            gateway: &c.gateway,
            sample_interval_ms: c.sample_interval_ms,
            batch_size: c.batch_size,
            ack: match c.ack {
                AckMode::Commit => "commit",
                AckMode::None => "none",
            },
            aliases: c
                .aliases
                .iter()
                .map(|a| AliasView {
                    alias: a.alias,
                    topic: &a.topic,
                    partition: a.partition,
                })
                .collect(),
        });
        DeviceView {
            id,
            registered: device.is_some(),
            token: device.is_some_and(|d| d.token_hash.is_some()),
            config,
            updated_ms: device.map(|d| d.updated_ms),
            last_seen_ms: status.map(|s| s.last_seen_ms),
            transport: status.map(|s| s.transport),
            address: status.map(|s| &*s.address),
            connected: status.is_some_and(|s| s.connected),
            reported_config_version: status.and_then(|s| s.reported_version),
            sleep_until_ms: status.and_then(|s| s.sleep_until_ms),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::Config;
    use outpost_firmware::heapless;
    use outpost_firmware::AliasEntry;

    fn log_config(dir: &std::path::Path) -> Config {
        Config {
            data_dir: dir.to_path_buf(),
            ..Config::default()
        }
    }

    /// The encoded config of device `id` at `version` with alias 1 on `topic` (also used by
    /// the UDP tests).
    pub(crate) fn config(id: &str, version: u32, topic: &str) -> Vec<u8> {
        let mut aliases = heapless::Vec::new();
        let entry = AliasEntry {
            alias: 1,
            topic: heapless::String::try_from(topic).unwrap(),
            partition: None,
        };
        aliases.push(entry).unwrap();
        let c = DeviceConfig {
            version,
            device_id: heapless::String::try_from(id).unwrap(),
            gateway: heapless::String::try_from("127.0.0.1:7883").unwrap(),
            sample_interval_ms: 1000,
            batch_size: 1,
            ack: AckMode::Commit,
            aliases,
        };
        let mut buf = [0u8; outpost_firmware::MAX_ENCODED_LEN];
        c.encode(&mut buf).unwrap().to_vec()
    }

    #[tokio::test]
    async fn configs_versions_tokens_and_statuses_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        {
            let log = Log::open(&log_config(dir.path())).unwrap();
            let devices = Devices::load(&log).unwrap();
            // Version 0: the next one.
            let d = devices
                .set_config("d1", &config("d1", 0, "t"))
                .await
                .unwrap();
            assert_eq!(d.config_version(), Some(1));
            // Unchanged: no new version.
            let d = devices
                .set_config("d1", &config("d1", 0, "t"))
                .await
                .unwrap();
            assert_eq!(d.config_version(), Some(1));
            let d = devices
                .set_config("d1", &config("d1", 0, "u"))
                .await
                .unwrap();
            assert_eq!(d.config_version(), Some(2));
            let stale = devices.set_config("d1", &config("d1", 2, "v")).await;
            assert!(
                matches!(stale, Err(DeviceError::InvalidConfig(_))),
                "{stale:?}"
            );
            let d = devices
                .set_config("d1", &config("d1", 7, "v"))
                .await
                .unwrap();
            assert_eq!(d.config_version(), Some(7));
            assert_eq!(d.config_for(Some(6)), Some(&*d.config_bytes));
            assert_eq!(d.config_for(None), Some(&*d.config_bytes));
            assert_eq!(d.config_for(Some(7)), None);
            // Config checks.
            let other = devices.set_config("d1", &config("d2", 0, "t")).await;
            assert!(matches!(other, Err(DeviceError::InvalidConfig(_))));
            let bad_topic = devices.set_config("d1", &config("d1", 0, "a/b")).await;
            assert!(matches!(bad_topic, Err(DeviceError::InvalidConfig(_))));
            assert!(matches!(
                devices.set_config("d 1", &config("d 1", 0, "t")).await,
                Err(DeviceError::InvalidId(_))
            ));
            // Tokens.
            assert!(matches!(
                devices.check_token("d1", b""),
                TokenCheck::NoToken(Some(_))
            ));
            devices.set_token("d1", Some(b"s3cret")).await.unwrap();
            assert!(matches!(
                devices.check_token("d1", b"s3cret"),
                TokenCheck::Verified(_)
            ));
            assert!(matches!(
                devices.check_token("d1", b"wrong"),
                TokenCheck::Wrong
            ));
            assert!(matches!(devices.check_token("d1", b""), TokenCheck::Wrong));
            assert!(matches!(
                devices.check_token("nobody", b"x"),
                TokenCheck::NoToken(None)
            ));
            // A token alone creates a device; removing it from an unknown one is an error.
            devices.set_token("d2", Some(b"t2")).await.unwrap();
            assert!(matches!(
                devices.set_token("d3", None).await,
                Err(DeviceError::Unknown(_))
            ));
            devices.seen("d1", Transport::Tcp, addr, Some(7));
            devices.sleeping("d1", 60_000);
            devices.seen("stranger", Transport::Tcp, addr, None);
            devices.flush_status().await;
            let json = devices.json(None).unwrap();
            let v: serde_json::Value = serde_json::from_str(&json).unwrap();
            let ids: Vec<&str> = v
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["id"].as_str().unwrap())
                .collect();
            assert_eq!(ids, ["d1", "d2", "stranger"]);
            assert_eq!(v[0]["config"]["aliases"][0]["topic"], "v");
            assert_eq!(v[0]["reported_config_version"], 7);
            assert_eq!(v[2]["registered"], false);
            log.shutdown().await;
        }
        let log = Log::open(&log_config(dir.path())).unwrap();
        let devices = Devices::load(&log).unwrap();
        let d = devices.get("d1").unwrap();
        assert_eq!(d.config_version(), Some(7));
        assert!(matches!(
            devices.check_token("d1", b"s3cret"),
            TokenCheck::Verified(_)
        ));
        let status = devices.status_of("d1").unwrap();
        assert_eq!(
            (status.reported_version, status.connected),
            (Some(7), false)
        );
        assert!(status.sleep_until_ms.is_some());
        // Unregistered devices are not stored.
        assert!(devices.status_of("stranger").is_none());
        devices.delete("d1").await.unwrap();
        assert!(matches!(
            devices.delete("d1").await,
            Err(DeviceError::Unknown(_))
        ));
        assert!(devices.json(Some("d1")).is_none());
        log.shutdown().await;
    }

    #[tokio::test]
    async fn a_device_stays_connected_while_one_of_its_connections_is_open() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(&log_config(dir.path())).unwrap();
        let devices = Devices::load(&log).unwrap();
        let addr: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        devices.set_token("d1", Some(b"t")).await.unwrap();
        assert_eq!((devices.count(), devices.connected()), (1, 0));
        // A reconnect before the old connection timed out.
        devices.seen("d1", Transport::Tcp, addr, None);
        devices.seen("d1", Transport::Tcp, addr, None);
        devices.seen("d1", Transport::Udp, addr, None);
        devices.disconnected("d1");
        assert!(devices.status_of("d1").unwrap().connected);
        assert_eq!(devices.connected(), 1);
        devices.disconnected("d1");
        assert!(!devices.status_of("d1").unwrap().connected);
        assert_eq!(devices.connected(), 0);
        // More closes than opens change nothing.
        devices.disconnected("d1");
        assert_eq!(devices.connected(), 0);
        log.shutdown().await;
    }
}
