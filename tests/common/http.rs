//! A small blocking HTTP/1.1 + JSON client over a daemon's Unix socket, for tests.
//!
//! Blocking on purpose: a fault test is a story of steps, and each request carries its own
//! deadline, so "this write returns within N s" is a plain `Instant` comparison and a hung
//! daemon shows up as an `Err(TimedOut)`, never as a hung test. One connection per request
//! (`Connection: close`), read to EOF; chunked bodies are decoded.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Default bound on one request.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// An answer: the status and the raw body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON (`Null` when it is empty or not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// Docker's `{"message": ...}`, else the raw body.
    pub fn message(&self) -> String {
        match self.json().get("message").and_then(Value::as_str) {
            Some(m) => m.to_string(),
            None => String::from_utf8_lossy(&self.body).into_owned(),
        }
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, String::from_utf8_lossy(&self.body))
    }
}

/// A client for one daemon's socket.
#[derive(Debug, Clone)]
pub struct Api {
    pub socket: PathBuf,
}

impl Api {
    pub fn new(socket: impl Into<PathBuf>) -> Api {
        Api {
            socket: socket.into(),
        }
    }

    /// One request with a deadline; transport failures (no daemon, timeout) are `Err`.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> io::Result<Reply> {
        request(&self.socket, method, path, body, timeout)
    }

    pub fn get(&self, path: &str) -> io::Result<Reply> {
        self.request("GET", path, None, TIMEOUT)
    }

    pub fn post(&self, path: &str, body: &Value) -> io::Result<Reply> {
        let body = serde_json::to_vec(body).expect("JSON body");
        self.request("POST", path, Some(&body), TIMEOUT)
    }

    pub fn delete(&self, path: &str) -> io::Result<Reply> {
        self.request("DELETE", path, None, TIMEOUT)
    }

    /// GET that must succeed; the body as JSON.
    pub fn get_ok(&self, path: &str) -> Value {
        let reply = self
            .get(path)
            .unwrap_or_else(|e| panic!("GET {path} on {}: {e}", self.socket.display()));
        assert!(reply.ok(), "GET {path}: {reply}");
        reply.json()
    }

    /// POST that must succeed; the body as JSON.
    pub fn post_ok(&self, path: &str, body: &Value) -> Value {
        let reply = self
            .post(path, body)
            .unwrap_or_else(|e| panic!("POST {path} on {}: {e}", self.socket.display()));
        assert!(reply.ok(), "POST {path} {body}: {reply}");
        reply.json()
    }

    /// Does the daemon answer `/_ping` right now (within `timeout`)?
    pub fn ping(&self, timeout: Duration) -> bool {
        matches!(self.request("GET", "/_ping", None, timeout), Ok(r) if r.ok())
    }
}

/// Send one request over `socket` and read the whole answer, all within `timeout`.
pub fn request(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    timeout: Duration,
) -> io::Result<Reply> {
    let deadline = Instant::now() + timeout;
    let mut stream = UnixStream::connect(socket)?;
    stream.set_write_timeout(Some(timeout))?;
    let body = body.unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: swarm\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let raw = read_until_eof(&mut stream, deadline)?;
    parse(&raw)
}

/// Send raw bytes over `socket` (a malformed request) and read whatever comes back.
pub fn raw_exchange(socket: &Path, bytes: &[u8], timeout: Duration) -> io::Result<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut stream = UnixStream::connect(socket)?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(bytes)?;
    read_until_eof(&mut stream, deadline)
}

fn read_until_eof(stream: &mut UnixStream, deadline: Instant) -> io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no full answer in time",
            ));
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf) {
            Ok(0) => return Ok(raw),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no full answer in time",
                ));
            }
            Err(e) => return Err(e),
        }
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

fn parse(raw: &[u8]) -> io::Result<Reply> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| bad("headers not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let rest = &raw[split + 4..];
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Ok(Reply { status, body })
}

fn dechunk(mut rest: &[u8]) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| bad("truncated chunk size"))?;
        let size = std::str::from_utf8(&rest[..line_end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
            .ok_or_else(|| bad("bad chunk size"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size {
            return Err(bad("truncated chunk"));
        }
        body.extend_from_slice(&rest[..size]);
        rest = rest.get(size + 2..).unwrap_or_default();
    }
}
