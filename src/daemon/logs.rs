//! Container logs as Docker's multiplexed stream: read the JSON-lines log the helper writes
//! (runtime::logs), and with `follow` keep reading as it grows (and rotates) until the
//! container stops and the log is drained, or the client goes away.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use axum::body::Bytes;
use tokio::sync::mpsc::Sender;

use crate::api::containers::{LogsQuery, frame};
use crate::runtime::logs::{LogEntry, Stream};

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

/// Parse complete JSON lines from `reader` until EOF; a trailing partial line is left unread
/// (the reader is rewound to its start) so following can pick it up once it is complete.
fn read_complete_lines(reader: &mut BufReader<File>, out: &mut Vec<LogEntry>) {
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(n) if n > 0 && line.ends_with('\n') => {
                if let Ok(entry) = serde_json::from_str::<LogEntry>(&line) {
                    out.push(entry);
                }
            }
            Ok(n) if n > 0 => {
                let _ = reader.seek_relative(-(n as i64));
                return;
            }
            _ => return,
        }
    }
}

/// Send the log of a container to `tx`. `running` says whether more can still come.
///
/// The current file is read once, from its start, by the same reader that then follows it:
/// a line written between "read what is there" and "follow" can be neither lost nor sent
/// twice.
pub fn stream(path: &Path, query: &LogsQuery, tx: &Sender<Bytes>, running: impl Fn() -> bool) {
    let max_files = crate::runtime::LogConfig::default().max_files;
    // Rotated files first (oldest first), then the current one.
    let mut entries = Vec::new();
    for n in (1..max_files).rev() {
        let rotated = std::path::PathBuf::from(format!("{}.{n}", path.display()));
        if let Ok(f) = File::open(&rotated) {
            read_complete_lines(&mut BufReader::new(f), &mut entries);
        }
    }
    let mut current = File::open(path).ok().map(|f| {
        let inode = f.metadata().map(|m| m.ino()).unwrap_or(0);
        (BufReader::new(f), inode)
    });
    if let Some((reader, _)) = &mut current {
        read_complete_lines(reader, &mut entries);
    }
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
    let mut last_pass = false;
    loop {
        if current.is_none() {
            current = File::open(path).ok().map(|f| {
                let inode = f.metadata().map(|m| m.ino()).unwrap_or(0);
                (BufReader::new(f), inode)
            });
        }
        if let Some((reader, inode)) = &mut current {
            let mut fresh = Vec::new();
            read_complete_lines(reader, &mut fresh);
            for entry in &fresh {
                if let Some(bytes) = to_frame(entry, query)
                    && tx.blocking_send(bytes).is_err()
                {
                    return;
                }
            }
            // Rotated away: what is left of the old file was just read; go on with the new.
            let now = std::fs::metadata(path).map(|m| m.ino()).unwrap_or(*inode);
            if now != *inode {
                current = None;
                continue;
            }
        }
        if tx.is_closed() || last_pass {
            return;
        }
        if !running() {
            // The helper flushes the log before it records the exit: one more pass reads
            // whatever came between our last read and now.
            last_pass = true;
            continue;
        }
        std::thread::sleep(FOLLOW_POLL);
    }
}
