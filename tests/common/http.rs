//! A minimal HTTP/1.1 client over std sockets for the metrics and health endpoints: sends
//! raw bytes, reads the whole answer (the server closes after one request). Every wait is
//! bounded in time and every read in size.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How long one exchange may take.
const TIMEOUT: Duration = Duration::from_secs(20);
/// Largest answer read.
const MAX_ANSWER: u64 = 64 << 20;

/// A parsed answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Body as text.
    pub body: String,
}

impl Answer {
    /// The first header named `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `bytes` and returns everything the server answers before it closes.
pub fn exchange(addr: &str, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.set_write_timeout(Some(TIMEOUT))?;
    // The server may answer and close before taking all of an oversized request.
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    match s.take(MAX_ANSWER).read_to_end(&mut out) {
        Ok(_) => Ok(out),
        // A reset after a complete answer (unread request bytes) still leaves the answer.
        Err(_) if !out.is_empty() => Ok(out),
        Err(e) => Err(e),
    }
}

/// Parses a complete HTTP/1.x answer.
pub fn parse(raw: &[u8]) -> Option<Answer> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Some(Answer {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// `METHOD path` with a Host header; panics if there is no parseable answer.
pub fn request(addr: &str, method: &str, path: &str) -> Answer {
    let req =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: outpost-test\r\n\r\n");
    let raw = exchange(addr, req.as_bytes())
        .unwrap_or_else(|e| panic!("{method} http://{addr}{path}: {e}"));
    parse(&raw).unwrap_or_else(|| {
        panic!(
            "{method} http://{addr}{path}: no HTTP answer in {:?}",
            String::from_utf8_lossy(&raw)
        )
    })
}

/// `GET path`.
pub fn get(addr: &str, path: &str) -> Answer {
    request(addr, "GET", path)
}
