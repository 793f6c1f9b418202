//! The small values the clients take and return: who the device is ([`Device`]), what the
//! broker said in its hello reply ([`Welcome`]), a registered [`Alias`], a committed batch
//! ([`Produced`]), the broker's clock ([`TimeSync`]) and request ids ([`RequestIds`]).
//! Plain data; nothing here does I/O or decoding.

/// Who the device is, as `outpost devices` knows it. Borrowed for the client's life, since
/// every hello (and every datagram) sends it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Device<'a> {
    /// The device id.
    pub id: &'a str,
    /// The device's token; empty when it has none.
    pub token: &'a [u8],
}

/// The broker's answer to the hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Welcome<'r> {
    /// The protocol version the broker speaks.
    pub version: u16,
    /// The broker's clock when it answered, milliseconds since the Unix epoch.
    pub broker_time_ms: u64,
    /// The largest frame body the broker accepts; larger requests fail before being sent.
    pub max_frame_len: u32,
    /// The device's [`DeviceConfig`](crate::DeviceConfig) bytes, when the broker holds a newer
    /// one than the version the hello announced: write them to flash as they are, and
    /// decode them with [`DeviceConfig::decode`](crate::DeviceConfig::decode) when needed.
    /// Borrowed from the receive buffer, so valid until the client's next call.
    pub config: Option<&'r [u8]>,
}

/// A topic alias the client registered, kept so that a reconnect registers it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alias<'a> {
    /// The alias.
    pub alias: u16,
    /// The log topic it stands for.
    pub topic: &'a str,
    /// The partition; `None` lets the broker choose per produce.
    pub partition: Option<u32>,
}

/// Where an acknowledged batch went: record `i` has offset `base_offset + i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Produced {
    /// The partition.
    pub partition: u32,
    /// The offset of the first record.
    pub base_offset: u64,
    /// How many records were appended.
    pub count: u32,
}

/// The broker's clock, for a device without a real-time clock: the broker's time at the
/// hello reply, and the device's own (monotonic) clock when it asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeSync {
    broker_ms: u64,
    local_ms: u64,
}

impl TimeSync {
    /// The broker said `broker_ms` when the local clock read `local_ms`.
    pub const fn new(broker_ms: u64, local_ms: u64) -> Self {
        TimeSync {
            broker_ms,
            local_ms,
        }
    }

    /// The broker's time now, milliseconds since the Unix epoch, from the local clock now.
    /// Off by at most the hello's round trip (plus the local clock's drift). A local clock
    /// reading earlier than the sync point gives the sync point's time, never an earlier one.
    pub const fn broker_time_ms(&self, local_now_ms: u64) -> u64 {
        self.broker_ms
            .saturating_add(local_now_ms.saturating_sub(self.local_ms))
    }
}

/// Hands out request ids: 1, 2, ... wrapping from `u32::MAX` back to 1, never 0 (0 asks
/// the broker for no reply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestIds {
    next: u32,
}

impl RequestIds {
    /// Ids from 1.
    pub const fn new() -> Self {
        RequestIds { next: 1 }
    }

    /// Ids from `first` (0 is taken as 1).
    pub const fn starting_at(first: u32) -> Self {
        RequestIds {
            next: if first == 0 { 1 } else { first },
        }
    }

    /// The next id; never 0.
    pub fn allocate(&mut self) -> u32 {
        let id = self.next;
        self.next = match id.wrapping_add(1) {
            0 => 1,
            n => n,
        };
        id
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        RequestIds::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_skip_zero_when_wrapping() {
        let mut ids = RequestIds::starting_at(u32::MAX - 1);
        let got = [ids.allocate(), ids.allocate(), ids.allocate()];
        assert_eq!(got, [u32::MAX - 1, u32::MAX, 1]);
        assert_eq!(RequestIds::starting_at(0).allocate(), 1);
        assert_eq!(RequestIds::default().allocate(), 1);
    }

    #[test]
    fn time_sync_adds_local_elapsed_time() {
        let sync = TimeSync::new(1_700_000_000_000, 5_000);
        assert_eq!(sync.broker_time_ms(5_000), 1_700_000_000_000);
        assert_eq!(sync.broker_time_ms(6_250), 1_700_000_001_250);
        // A local clock that went backwards (or wrapped) does not go back in time.
        assert_eq!(sync.broker_time_ms(10), 1_700_000_000_000);
        assert_eq!(TimeSync::new(u64::MAX, 0).broker_time_ms(9), u64::MAX);
    }
}
