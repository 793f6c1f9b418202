//! One route partition's window: what was sent, what is acknowledged, what is committed.
//! Pure bookkeeping (no I/O), driven by the forwarder; see `forwarder` for the rules.

use std::collections::VecDeque;
use std::time::Instant;

use crate::config::Overflow;
use crate::source::Checkpoint;

/// The state of one offset between `acked` and `next_send`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    Pending(i64),
    Acked,
    Skipped,
}

/// One route partition: its offsets, its in-flight ring, its counters.
pub(crate) struct Slot {
    pub(crate) route: usize,
    pub(crate) topic: String,
    pub(crate) partition: u32,
    pub(crate) durable: u64,
    pub(crate) acked: u64,
    pub(crate) next_send: u64,
    /// One entry per offset in `acked..next_send`.
    pub(crate) ring: VecDeque<Entry>,
    pub(crate) forwarded: u64,
    pub(crate) dropped: u64,
    pub(crate) last_loss: Option<(u64, u64)>,
    /// Changed since the last commit started.
    pub(crate) dirty: bool,
    pub(crate) log_start: u64,
    pub(crate) log_end: u64,
    /// Batches read and not yet fully sent.
    pub(crate) buf: Option<Vec<u8>>,
    /// A wait-for-data task is outstanding.
    pub(crate) waiting: bool,
    /// Linger: do not send before this.
    pub(crate) ready_at: Option<Instant>,
    /// Timestamp of the record at `acked`, when known (lag while nothing is in flight).
    pub(crate) lag_ts: Option<(u64, i64)>,
    pub(crate) last_error: Option<String>,
    /// Its stored records do not decode: not forwarded until a restart.
    pub(crate) broken: bool,
    /// Its topic was deleted; when it comes back the slot starts again at 0.
    pub(crate) gone: bool,
    /// Where its last acknowledged record landed upstream (Kafka).
    pub(crate) upstream_position: Option<crate::upstream::UpstreamPosition>,
}

impl Slot {
    pub(crate) fn new(route: usize, topic: String, partition: u32, cp: Checkpoint) -> Self {
        Slot {
            route,
            topic,
            partition,
            durable: cp.offset,
            acked: cp.offset,
            next_send: cp.offset,
            ring: VecDeque::new(),
            forwarded: cp.forwarded,
            dropped: cp.dropped,
            last_loss: None,
            dirty: false,
            log_start: 0,
            log_end: cp.offset,
            buf: None,
            waiting: false,
            ready_at: None,
            lag_ts: None,
            last_error: None,
            broken: false,
            gone: false,
            upstream_position: None,
        }
    }

    pub(crate) fn inflight(&self) -> u64 {
        self.next_send - self.acked
    }

    pub(crate) fn mark(&mut self, offset: u64, e: Entry) {
        if offset < self.acked {
            return;
        }
        // Checked: a u64 distance can exceed a 32-bit usize (armv7); such an offset is not in
        // the ring (at most max_inflight long) anyway.
        let at = usize::try_from(offset - self.acked).ok();
        if let Some(slot) = at.and_then(|i| self.ring.get_mut(i)) {
            *slot = e;
        }
        while let Some(front) = self.ring.front() {
            match front {
                Entry::Pending(_) => break,
                Entry::Acked => self.forwarded += 1,
                Entry::Skipped => {
                    self.dropped += 1;
                    self.last_loss = match self.last_loss {
                        Some((a, b)) if b == self.acked => Some((a, b + 1)),
                        _ => Some((self.acked, self.acked + 1)),
                    };
                }
            }
            self.ring.pop_front();
            self.acked += 1;
            self.dirty = true;
        }
    }

    pub(crate) fn reset_inflight(&mut self) {
        self.ring.clear();
        self.next_send = self.acked;
        self.buf = None;
    }

    /// Skips `acked..to` as lost to retention.
    pub(crate) fn lose(&mut self, to: u64, bridge: &str, route: &str, overflow: Overflow) {
        let from = self.acked;
        let n = to - from;
        if overflow == Overflow::Refuse {
            tracing::error!(bridge, route, topic = self.topic, partition = self.partition, from, to,
                "records deleted by retention before they were forwarded, although the route holds retention (overflow = refuse)");
        } else {
            tracing::warn!(bridge, route, topic = self.topic, partition = self.partition, from, to, lost = n,
                "bridge fell behind retention: offsets [from, to) were deleted before they were forwarded (overflow = drop_oldest)");
        }
        self.dropped += n;
        self.last_loss = Some((from, to));
        self.acked = to;
        self.next_send = to;
        self.ring.clear();
        self.buf = None;
        self.dirty = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(at: u64) -> Slot {
        Slot::new(
            0,
            "t".into(),
            0,
            Checkpoint {
                offset: at,
                ..Checkpoint::default()
            },
        )
    }

    fn send(s: &mut Slot, n: u64) {
        for _ in 0..n {
            s.ring.push_back(Entry::Pending(0));
            s.next_send += 1;
        }
    }

    #[test]
    fn acked_advances_over_the_contiguous_prefix_only() {
        let mut s = slot(10);
        send(&mut s, 5); // 10..15
        s.mark(12, Entry::Acked);
        s.mark(11, Entry::Acked);
        assert_eq!((s.acked, s.forwarded), (10, 0), "10 is still missing");
        s.mark(10, Entry::Acked);
        assert_eq!((s.acked, s.forwarded, s.inflight()), (13, 3, 2));
        assert!(s.dirty);
        // Stale and unknown acknowledgements change nothing.
        s.mark(3, Entry::Acked);
        s.mark(99, Entry::Acked);
        assert_eq!(s.acked, 13);
        s.mark(14, Entry::Acked);
        s.mark(13, Entry::Skipped);
        assert_eq!((s.acked, s.forwarded, s.inflight()), (15, 4, 0));
        assert_eq!(
            (s.dropped, s.last_loss),
            (1, Some((13, 14))),
            "a skip counts once"
        );
    }

    #[test]
    fn a_failure_resends_from_the_acknowledged_prefix() {
        let mut s = slot(0);
        send(&mut s, 4);
        s.mark(0, Entry::Acked);
        s.mark(2, Entry::Acked);
        s.buf = Some(vec![1]);
        s.reset_inflight();
        assert_eq!((s.acked, s.next_send, s.inflight()), (1, 1, 0));
        assert!(s.buf.is_none(), "re-read from the log");
    }

    #[test]
    fn a_loss_skips_exactly_the_deleted_range() {
        let mut s = slot(5);
        s.lose(40, "b", "r", Overflow::DropOldest);
        assert_eq!((s.acked, s.next_send, s.dropped), (40, 40, 35));
        assert_eq!(s.last_loss, Some((5, 40)));
        assert!(s.dirty);
        s.lose(41, "b", "r", Overflow::DropOldest);
        assert_eq!((s.dropped, s.last_loss), (36, Some((40, 41))));
    }
}
