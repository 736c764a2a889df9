//! Container logs as Docker's multiplexed stream: read the JSON-lines log the helper writes
//! (runtime::logs), and with `follow` keep reading as it grows (and rotates) until the
//! container stops and the log is drained, or the client goes away.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use axum::body::Bytes;
use tokio::sync::mpsc::Sender;

use crate::api::containers::{LogsQuery, frame};
use crate::runtime::logs::{LogEntry, Stream, read_all};

/// How often a followed log is checked for growth.
const FOLLOW_POLL: Duration = Duration::from_millis(50);

fn to_frame(entry: &LogEntry, query: &LogsQuery) -> Option<Bytes> {
    let wanted = match entry.stream {
        Stream::Stdout => query.stdout,
        Stream::Stderr => query.stderr,
    };
    if !wanted {
        return None;
    }
    let text = if query.timestamps {
        format!("{} {}", entry.time, entry.log)
    } else {
        entry.log.clone()
    };
    let kind = match entry.stream {
        Stream::Stdout => 1,
        Stream::Stderr => 2,
    };
    Some(frame(kind, text.as_bytes()))
}

/// Send the log of a container to `tx`. `running` says whether more can still come.
pub fn stream(path: &Path, query: &LogsQuery, tx: &Sender<Bytes>, running: impl Fn() -> bool) {
    let entries =
        read_all(path, crate::runtime::LogConfig::default().max_files).unwrap_or_default();
    let skip = query
        .tail
        .map(|n| entries.len().saturating_sub(n))
        .unwrap_or(0);
    for entry in &entries[skip..] {
        if let Some(bytes) = to_frame(entry, query)
            && tx.blocking_send(bytes).is_err()
        {
            return;
        }
    }
    if !query.follow {
        return;
    }
    // Follow from the end of the current file; a rotation shows as a new inode.
    let Ok(mut file) = File::open(path) else {
        return;
    };
    let mut inode = file.metadata().map(|m| m.ino()).unwrap_or(0);
    let _ = file.seek(SeekFrom::End(0));
    let mut reader = BufReader::new(file);
    let mut line = String::new();
    let mut last_pass = false;
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(n) if n > 0 && line.ends_with('\n') => {
                if let Ok(entry) = serde_json::from_str::<LogEntry>(&line)
                    && let Some(bytes) = to_frame(&entry, query)
                    && tx.blocking_send(bytes).is_err()
                {
                    return;
                }
                continue;
            }
            Ok(n) if n > 0 => {
                // A partial line: rewind and wait for the rest.
                let _ = reader.seek_relative(-(n as i64));
            }
            _ => {}
        }
        if tx.is_closed() {
            return;
        }
        let alive = running();
        let rotated = std::fs::metadata(path).map(|m| m.ino()).unwrap_or(inode) != inode;
        if rotated && let Ok(f) = File::open(path) {
            inode = f.metadata().map(|m| m.ino()).unwrap_or(0);
            reader = BufReader::new(f);
            continue;
        }
        if last_pass {
            return;
        }
        if !alive {
            // The helper flushes the log before it records the exit: one more pass reads
            // whatever came between our last read and now.
            last_pass = true;
            continue;
        }
        std::thread::sleep(FOLLOW_POLL);
    }
}
