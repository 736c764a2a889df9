//! Container logs: the helper turns the container's stdout and stderr into JSON lines in
//! Docker's `json-file` shape (`{"log":"…\n","stream":"stdout","time":"…"}`), rotated by size,
//! so the log of a chatty container stays bounded (`max_size × max_files`).
//!
//! Lines longer than `MAX_LINE` are split like Docker splits them (16 KiB), so a container
//! that never prints a newline cannot make the helper buffer without bound.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{Context, Result};
use super::state::now_rfc3339;

/// Longest line kept in one record; longer output is split (Docker's limit).
pub const MAX_LINE: usize = 16 * 1024;

/// Rotation policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogConfig {
    /// Rotate when the current file reaches this many bytes.
    pub max_size: u64,
    /// Files kept in all, the current one included.
    pub max_files: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        // Docker's `local` driver default: 5 × 20 MB; we keep 3 × 10 MiB per container.
        LogConfig {
            max_size: 10 << 20,
            max_files: 3,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One record of a container log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub log: String,
    pub stream: Stream,
    pub time: String,
}

/// Appends a container's output to its log, one JSON line per output line.
pub struct LogWriter {
    path: PathBuf,
    config: LogConfig,
    file: File,
    size: u64,
    /// Output of each stream not yet ended by a newline.
    pending: [Vec<u8>; 2],
}

impl LogWriter {
    pub fn open(path: &Path, config: LogConfig) -> Result<LogWriter> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .context(|| format!("open log {}", path.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(LogWriter {
            path: path.to_path_buf(),
            config,
            file,
            size,
            pending: [Vec::new(), Vec::new()],
        })
    }

    /// Record `bytes` the container wrote to `stream`: complete lines now, a trailing partial
    /// line when it is completed (or grows past `MAX_LINE`, or at `flush`).
    pub fn write(&mut self, stream: Stream, bytes: &[u8]) -> Result<()> {
        let index = stream as usize;
        let mut rest = bytes;
        while !rest.is_empty() {
            let room = MAX_LINE - self.pending[index].len();
            let take = match rest.iter().position(|&b| b == b'\n') {
                Some(nl) if nl < room => nl + 1,
                _ => rest.len().min(room),
            };
            self.pending[index].extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            let complete =
                self.pending[index].last() == Some(&b'\n') || self.pending[index].len() >= MAX_LINE;
            if complete {
                let line = std::mem::take(&mut self.pending[index]);
                self.append(stream, &line)?;
            }
        }
        Ok(())
    }

    /// Write out partial lines (the container exited mid-line).
    pub fn flush(&mut self) -> Result<()> {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let line = std::mem::take(&mut self.pending[stream as usize]);
            if !line.is_empty() {
                self.append(stream, &line)?;
            }
        }
        Ok(())
    }

    fn append(&mut self, stream: Stream, line: &[u8]) -> Result<()> {
        let entry = LogEntry {
            log: String::from_utf8_lossy(line).into_owned(),
            stream,
            time: now_rfc3339(),
        };
        let mut record = serde_json::to_vec(&entry).unwrap_or_default();
        record.push(b'\n');
        if self.size > 0 && self.size + record.len() as u64 > self.config.max_size {
            self.rotate()?;
        }
        self.file
            .write_all(&record)
            .context(|| format!("write log {}", self.path.display()))?;
        self.size += record.len() as u64;
        Ok(())
    }

    /// container.log → container.log.1 → … ; the oldest beyond `max_files` is dropped.
    fn rotate(&mut self) -> Result<()> {
        let keep = self.config.max_files.max(1);
        if keep == 1 {
            self.file
                .set_len(0)
                .context(|| format!("truncate log {}", self.path.display()))?;
        } else {
            for n in (1..keep).rev() {
                let from = rotated_path(&self.path, n - 1);
                let to = rotated_path(&self.path, n);
                match fs::rename(&from, &to) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(super::error::RuntimeError::io("rotate log", e)),
                }
            }
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .context(|| format!("reopen log {}", self.path.display()))?;
        }
        self.size = 0;
        Ok(())
    }
}

/// `container.log` for 0, `container.log.N` for older files.
fn rotated_path(path: &Path, n: u32) -> PathBuf {
    if n == 0 {
        path.to_path_buf()
    } else {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }
}

/// Every record of a container's log, oldest first, across rotated files. Lines that do not
/// parse (a torn last line after a crash) are skipped.
pub fn read_all(path: &Path, max_files: u32) -> Result<Vec<LogEntry>> {
    let mut entries = Vec::new();
    for n in (0..max_files.max(1)).rev() {
        let file = match File::open(rotated_path(path, n)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(super::error::RuntimeError::io("open log", e)),
        };
        for line in BufReader::new(file).lines() {
            let line = line.context(|| format!("read log {}", path.display()))?;
            if let Ok(entry) = serde_json::from_str::<LogEntry>(&line) {
                entries.push(entry);
            }
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(entries: &[LogEntry]) -> Vec<(Stream, String)> {
        entries.iter().map(|e| (e.stream, e.log.clone())).collect()
    }

    #[test]
    fn t10_lines_are_split_per_stream_and_partial_lines_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut w = LogWriter::open(&path, LogConfig::default()).unwrap();
        w.write(Stream::Stdout, b"hello\nwor").unwrap();
        w.write(Stream::Stderr, b"oops\n").unwrap();
        w.write(Stream::Stdout, b"ld\n").unwrap();
        w.write(Stream::Stdout, b"tail").unwrap();
        w.flush().unwrap();
        let got = read_all(&path, 3).unwrap();
        assert_eq!(
            texts(&got),
            vec![
                (Stream::Stdout, "hello\n".into()),
                (Stream::Stderr, "oops\n".into()),
                (Stream::Stdout, "world\n".into()),
                (Stream::Stdout, "tail".into()),
            ]
        );
        assert!(got[0].time.ends_with('Z'));
    }

    #[test]
    fn t10_a_line_without_newline_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut w = LogWriter::open(&path, LogConfig::default()).unwrap();
        w.write(Stream::Stdout, &vec![b'x'; MAX_LINE * 2 + 10])
            .unwrap();
        w.flush().unwrap();
        let lens: Vec<usize> = read_all(&path, 3)
            .unwrap()
            .iter()
            .map(|e| e.log.len())
            .collect();
        assert_eq!(lens, vec![MAX_LINE, MAX_LINE, 10]);
    }

    #[test]
    fn t10_rotation_keeps_total_bounded_and_newest_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let config = LogConfig {
            max_size: 4096,
            max_files: 3,
        };
        let mut w = LogWriter::open(&path, config).unwrap();
        for i in 0..2000 {
            w.write(Stream::Stdout, format!("line {i}\n").as_bytes())
                .unwrap();
        }
        let total: u64 = (0..4)
            .filter_map(|n| fs::metadata(rotated_path(&path, n)).ok())
            .map(|m| m.len())
            .sum();
        assert!(total <= 3 * 4096, "log uses {total} bytes");
        assert!(!rotated_path(&path, 3).exists());
        let got = read_all(&path, 3).unwrap();
        assert_eq!(got.last().unwrap().log, "line 1999\n");
        // Records are contiguous and in order across files.
        let first: usize = got[0].log["line ".len()..].trim().parse().unwrap();
        for (k, e) in got.iter().enumerate() {
            assert_eq!(e.log, format!("line {}\n", first + k));
        }
    }
}
