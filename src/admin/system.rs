//! What the operating system tells about this process and its disk, read at scrape time:
//! device writes (`/proc/self/io`), resident memory (`/proc/self/status`), open file
//! descriptors (`/proc/self/fd`), and free space of the file system holding the data directory.
//!
//! On systems without `/proc` (or where it is not readable) the values are `None` and their
//! series are left out of the scrape, never reported as zero.

use std::path::Path;

/// I/O counters of `/proc/self/io`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcIo {
    /// `write_bytes`: bytes this process caused to be sent to the storage layer (block
    /// devices), including page-cache writeback it dirtied. What wears an SD card.
    pub write_bytes: u64,
}

/// Parses the text of `/proc/PID/io`.
pub fn parse_proc_io(text: &str) -> Option<ProcIo> {
    Some(ProcIo {
        write_bytes: field(text, "write_bytes:")?,
    })
}

/// Parses `VmRSS:` of `/proc/PID/status`, in bytes.
pub fn parse_status_rss(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    // The kernel always reports it in kB (KiB).
    (words.next() == Some("kB")).then(|| value.saturating_mul(1024))
}

/// The value of the line `name value` in `text`.
fn field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
}

/// This process's I/O counters (Linux).
pub fn proc_io() -> Option<ProcIo> {
    parse_proc_io(&std::fs::read_to_string("/proc/self/io").ok()?)
}

/// This process's resident memory in bytes (Linux).
pub fn resident_bytes() -> Option<u64> {
    parse_status_rss(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// Open file descriptors of this process (Linux), sockets included.
pub fn open_fds() -> Option<u64> {
    let dir = std::fs::read_dir("/proc/self/fd").ok()?;
    // The directory handle itself is one of the entries; do not count it.
    Some((dir.count() as u64).saturating_sub(1))
}

/// Free bytes (for unprivileged users) and size of the file system holding `path`.
pub fn disk_space(path: &Path) -> Option<(u64, u64)> {
    crate::log::retention::disk_space(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_io_fields_are_read() {
        let text = "rchar: 4292\nwchar: 1234\nsyscr: 14\nsyscw: 3\nread_bytes: 0\n\
                    write_bytes: 40960\ncancelled_write_bytes: 0\n";
        assert_eq!(parse_proc_io(text), Some(ProcIo { write_bytes: 40960 }));
        assert_eq!(parse_proc_io("rchar: 1\n"), None);
        assert_eq!(parse_proc_io("write_bytes: x\n"), None);
    }

    #[test]
    fn status_rss_is_in_bytes() {
        let text = "Name:\touttpost\nVmHWM:\t    9000 kB\nVmRSS:\t    5120 kB\nThreads:\t3\n";
        assert_eq!(parse_status_rss(text), Some(5 << 20));
        assert_eq!(parse_status_rss("VmRSS: 12 MB\n"), None);
        assert_eq!(parse_status_rss("Name: x\n"), None);
    }

    #[test]
    fn this_process_is_readable_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(resident_bytes().is_some_and(|b| b > 0));
            assert!(open_fds().is_some_and(|n| n >= 3));
            assert!(disk_space(Path::new(".")).is_some());
        }
    }
}
