//! The log file's storage backend: redb's own [`FileBackend`], with every write and fsync
//! counted into [`Stats`] (what `outpost_log_file_written_bytes_total` and
//! `outpost_log_fsyncs_total` report).
//!
//! Every call is forwarded unchanged, locks included (they are what makes a second broker on
//! the same file fail with "in use"); counting adds two relaxed atomic adds per page write and
//! one per fsync. This module does not decide when redb writes or syncs.

use std::fs::File;
use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

use super::Stats;

/// redb's file backend with counters.
#[derive(Debug)]
pub(crate) struct CountingBackend {
    inner: FileBackend,
    stats: Arc<Stats>,
}

impl CountingBackend {
    /// Wraps `file` (opened read-write) and counts into `stats`.
    pub(crate) fn new(file: File, stats: Arc<Stats>) -> Result<Self, redb::DatabaseError> {
        Ok(Self {
            inner: FileBackend::new(file)?,
            stats,
        })
    }
}

impl StorageBackend for CountingBackend {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        let result = self.inner.sync_data();
        self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        result
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        self.inner.write(offset, data)?;
        self.stats
            .file_bytes_written
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn close(&self) -> Result<(), std::io::Error> {
        self.inner.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}
