//! Task logs for `service logs`: a task's container log read in batches behind a cursor (on
//! the task's node), and the pure rules of the merged stream (on the node serving the API):
//! order, Docker's details prefix, timestamps.
//!
//! ```text
//!  task's node: read_batch(log, cursor) ── complete JSON lines after the cursor, at most
//!               max_bytes, across rotated files (container.log.2 → .1 → container.log)
//!  API node:    merge(per-task batches) by time ─▶ render(line) ─▶ Docker frame
//! ```
//!
//! A cursor is the inode of a log file and an offset in it: rotation renames files (the
//! inode stays), so a cursor still finds its place after `container.log` became
//! `container.log.1`. A cursor whose file was rotated away entirely resumes at the oldest
//! file kept (those lines are gone for every reader).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::runtime::logs::{LogEntry, Stream};

/// Where a reader of a log stopped: after `offset` bytes of the file with `inode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogCursor {
    pub inode: u64,
    pub offset: u64,
}

/// One line of a task's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub stderr: bool,
    /// RFC 3339 with nanoseconds, UTC (fixed width: sorts as text).
    pub time: String,
    /// The line, with its newline.
    pub text: String,
}

/// Which lines a reader wants.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogFilter {
    pub stdout: bool,
    pub stderr: bool,
    /// Only lines at or after this time (RFC 3339 nanoseconds, UTC).
    pub since: Option<String>,
    /// Only lines at or before this time.
    pub until: Option<String>,
}

impl LogFilter {
    fn keeps(&self, entry: &LogEntry) -> bool {
        let stream = match entry.stream {
            Stream::Stdout => self.stdout,
            Stream::Stderr => self.stderr,
        };
        stream
            && self.since.as_ref().is_none_or(|s| entry.time >= *s)
            && self.until.as_ref().is_none_or(|u| entry.time <= *u)
    }
}

/// What one read of a log found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub lines: Vec<LogLine>,
    /// Where the next read starts.
    pub cursor: LogCursor,
    /// Stopped at `max_bytes`: more is there already.
    pub more: bool,
}

/// `container.log` for 0, `container.log.N` for older files.
fn rotated(path: &Path, n: u32) -> PathBuf {
    if n == 0 {
        path.to_path_buf()
    } else {
        PathBuf::from(format!("{}.{n}", path.display()))
    }
}

/// The log's files that exist, oldest first, with their inodes.
fn open_files(path: &Path, max_files: u32) -> Vec<(File, u64)> {
    (0..max_files.max(1))
        .rev()
        .filter_map(|n| {
            let file = File::open(rotated(path, n)).ok()?;
            let inode = file.metadata().ok()?.ino();
            Some((file, inode))
        })
        .collect()
}

/// Calls `each(file index, offset after the line, entry)` for every complete line of
/// `files[from.0..]` starting at byte `from.1` of the first; stops when `each` says so.
/// A torn line (no newline yet, or a crash) ends that file's lines.
fn scan(
    files: &mut [(File, u64)],
    from: (usize, u64),
    mut each: impl FnMut(usize, u64, LogEntry) -> bool,
) {
    for (i, (file, _)) in files.iter_mut().enumerate().skip(from.0) {
        let mut offset = if i == from.0 { from.1 } else { 0 };
        if file.seek(SeekFrom::Start(offset)).is_err() {
            continue;
        }
        let mut reader = BufReader::new(&*file);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(n) if n > 0 && line.ends_with('\n') => {
                    offset += n as u64;
                    if let Ok(entry) = serde_json::from_str::<LogEntry>(&line)
                        && !each(i, offset, entry)
                    {
                        return;
                    }
                }
                _ => break,
            }
        }
    }
}

/// The complete lines after `cursor` that `filter` keeps, at most about `max_bytes` of text.
/// Without a cursor: from the oldest line kept, or with `tail` the last `tail` lines the
/// filter keeps.
pub fn read_batch(
    path: &Path,
    max_files: u32,
    cursor: Option<LogCursor>,
    tail: Option<usize>,
    filter: &LogFilter,
    max_bytes: usize,
) -> Batch {
    let mut files = open_files(path, max_files);
    let Some(last) = files.len().checked_sub(1) else {
        return Batch {
            cursor: cursor.unwrap_or_default(),
            ..Batch::default()
        };
    };
    let end_of = |files: &[(File, u64)], i: usize| files[i].0.metadata().map_or(0, |m| m.len());
    let start = match (cursor, tail) {
        (Some(c), _) => match files.iter().position(|(_, inode)| *inode == c.inode) {
            // A file shorter than the cursor was truncated (one-file rotation): start over.
            Some(i) if c.offset <= end_of(&files, i) => (i, c.offset),
            Some(i) => (i, 0),
            None => (0, 0),
        },
        (None, Some(n)) => {
            // Where the n-th kept line from the end starts: remember the last n starts.
            let mut starts: VecDeque<(usize, u64)> = VecDeque::with_capacity(n.min(4096) + 1);
            let mut previous = (0usize, 0u64);
            scan(&mut files, (0, 0), |i, offset, entry| {
                let begin = if previous.0 == i { previous } else { (i, 0) };
                previous = (i, offset);
                if n > 0 && filter.keeps(&entry) {
                    starts.push_back(begin);
                    if starts.len() > n {
                        starts.pop_front();
                    }
                }
                true
            });
            starts.front().copied().unwrap_or(previous)
        }
        (None, None) => (0, 0),
    };
    let mut batch = Batch {
        cursor: LogCursor {
            inode: files[start.0].1,
            offset: start.1,
        },
        ..Batch::default()
    };
    let inodes: Vec<u64> = files.iter().map(|(_, inode)| *inode).collect();
    let mut bytes = 0usize;
    scan(&mut files, start, |i, offset, entry| {
        batch.cursor = LogCursor {
            inode: inodes[i],
            offset,
        };
        if filter.keeps(&entry) {
            bytes += entry.log.len();
            batch.lines.push(LogLine {
                stderr: entry.stream == Stream::Stderr,
                time: entry.time,
                text: entry.log,
            });
        }
        if bytes >= max_bytes {
            batch.more = true;
            return false;
        }
        true
    });
    // Everything was read: older files are done for good (a torn line there never
    // completes), so the next read starts in the newest file, even where its first line is
    // still being written.
    if !batch.more && batch.cursor.inode != inodes[last] {
        batch.cursor = LogCursor {
            inode: inodes[last],
            offset: 0,
        };
    }
    batch
}

// ---- the merged stream ---------------------------------------------------------------------

/// Whose line it is, as Docker's details name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineContext {
    pub node_id: String,
    pub service_id: String,
    pub task_id: String,
}

/// How lines are written out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rendering {
    pub timestamps: bool,
    pub details: bool,
}

/// Docker's `url.QueryEscape` for detail keys and values.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Docker's details of a swarm log line: the attributes sorted by key, `k=v` joined by `,`.
/// The docker CLI's `service logs` reads the task, service and node from them.
pub fn details_prefix(ctx: &LineContext) -> String {
    [
        ("com.docker.swarm.node.id", &ctx.node_id),
        ("com.docker.swarm.service.id", &ctx.service_id),
        ("com.docker.swarm.task.id", &ctx.task_id),
    ]
    .iter()
    .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
    .collect::<Vec<_>>()
    .join(",")
}

/// One line as Docker writes it: `[time ]` `[details ]` text, on stream 1 or 2.
pub fn render(line: &LogLine, ctx: &LineContext, how: Rendering) -> (u8, Vec<u8>) {
    let mut out = String::with_capacity(line.text.len() + 128);
    if how.timestamps {
        out.push_str(&line.time);
        out.push(' ');
    }
    if how.details {
        out.push_str(&details_prefix(ctx));
        out.push(' ');
    }
    out.push_str(&line.text);
    (if line.stderr { 2 } else { 1 }, out.into_bytes())
}

/// Which source's head line goes next in a stream merged by time: the earliest; on equal
/// times the first source. `None` when every source is empty.
pub fn earliest(heads: &[Option<&LogLine>]) -> Option<usize> {
    heads
        .iter()
        .enumerate()
        .filter_map(|(i, head)| head.map(|l| (i, l)))
        .min_by(|(ia, a), (ib, b)| a.time.cmp(&b.time).then(ia.cmp(ib)))
        .map(|(i, _)| i)
}

/// Several tasks' lines (each in its own order) as one stream ordered by [`earliest`].
pub fn merge(mut per_task: Vec<VecDeque<LogLine>>) -> Vec<(usize, LogLine)> {
    let mut out = Vec::new();
    loop {
        let heads: Vec<Option<&LogLine>> = per_task.iter().map(|q| q.front()).collect();
        let Some(i) = earliest(&heads) else {
            return out;
        };
        if let Some(line) = per_task[i].pop_front() {
            out.push((i, line));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn line(time: &str, text: &str) -> LogLine {
        LogLine {
            stderr: false,
            time: time.into(),
            text: text.into(),
        }
    }

    fn entry(stream: Stream, n: usize) -> String {
        let e = LogEntry {
            log: format!("line {n}\n"),
            stream,
            time: format!("2026-01-01T00:00:{n:02}.000000000Z"),
        };
        format!("{}\n", serde_json::to_string(&e).unwrap())
    }

    fn texts(batch: &Batch) -> Vec<String> {
        batch
            .lines
            .iter()
            .map(|l| l.text.trim().to_owned())
            .collect()
    }

    fn all() -> LogFilter {
        LogFilter {
            stdout: true,
            stderr: true,
            ..LogFilter::default()
        }
    }

    #[test]
    fn t10_merge_orders_by_time_and_keeps_ties_in_task_order() {
        let a = VecDeque::from([
            line("2026-01-01T00:00:01.000000000Z", "a1"),
            line("2026-01-01T00:00:03.000000000Z", "a3"),
            // Out of order within a task (clock step): a task's own order is kept.
            line("2026-01-01T00:00:00.000000000Z", "a0"),
        ]);
        let b = VecDeque::from([
            line("2026-01-01T00:00:02.000000000Z", "b2"),
            line("2026-01-01T00:00:03.000000000Z", "b3"),
        ]);
        let merged: Vec<(usize, String)> = merge(vec![b, a])
            .into_iter()
            .map(|(i, l)| (i, l.text))
            .collect();
        let expected = [(1, "a1"), (0, "b2"), (0, "b3"), (1, "a3"), (1, "a0")];
        assert_eq!(merged, expected.map(|(i, t)| (i, t.to_owned())).to_vec());
        assert_eq!(earliest(&[None, None]), None);
    }

    #[test]
    fn t10_details_prefix_and_rendering_are_dockers() {
        let ctx = LineContext {
            node_id: "n1".into(),
            service_id: "s1".into(),
            task_id: "t1".into(),
        };
        assert_eq!(
            details_prefix(&ctx),
            "com.docker.swarm.node.id=n1,com.docker.swarm.service.id=s1,com.docker.swarm.task.id=t1"
        );
        let l = LogLine {
            stderr: true,
            time: "2026-01-01T00:00:01.000000000Z".into(),
            text: "hi\n".into(),
        };
        let both = Rendering {
            timestamps: true,
            details: true,
        };
        let (stream, bytes) = render(&l, &ctx, both);
        assert_eq!(stream, 2);
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "2026-01-01T00:00:01.000000000Z com.docker.swarm.node.id=n1,com.docker.swarm.service.id=s1,com.docker.swarm.task.id=t1 hi\n"
        );
        let (_, bytes) = render(&l, &ctx, Rendering::default());
        assert_eq!(bytes, b"hi\n");
        assert_eq!(query_escape("a b=c,d"), "a+b%3Dc%2Cd");
    }

    #[test]
    fn t20_batches_follow_a_log_across_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        let mut f = File::create(&path).unwrap();
        for n in 0..4 {
            f.write_all(entry(Stream::Stdout, n).as_bytes()).unwrap();
        }
        f.write_all(entry(Stream::Stderr, 4).as_bytes()).unwrap();
        // A torn last line is not read yet.
        f.write_all(b"{\"log\":\"par").unwrap();
        drop(f);

        let first = read_batch(&path, 3, None, None, &all(), 1 << 20);
        assert_eq!(
            texts(&first),
            ["line 0", "line 1", "line 2", "line 3", "line 4"]
        );
        assert!(first.lines[4].stderr && !first.more);

        // Small batches: `more`, and the next read goes on where this one stopped.
        let small = read_batch(&path, 3, None, None, &all(), 14);
        assert_eq!(texts(&small), ["line 0", "line 1"]);
        assert!(small.more);
        let rest = read_batch(&path, 3, Some(small.cursor), None, &all(), 1 << 20);
        assert_eq!(texts(&rest), ["line 2", "line 3", "line 4"]);

        // Tail, and tail with a filter (the last two stdout lines).
        let tail = read_batch(&path, 3, None, Some(2), &all(), 1 << 20);
        assert_eq!(texts(&tail), ["line 3", "line 4"]);
        let stdout = LogFilter {
            stdout: true,
            ..LogFilter::default()
        };
        let tail = read_batch(&path, 3, None, Some(2), &stdout, 1 << 20);
        assert_eq!(texts(&tail), ["line 2", "line 3"]);
        assert!(
            read_batch(&path, 3, None, Some(0), &all(), 1 << 20)
                .lines
                .is_empty()
        );
        let since = LogFilter {
            since: Some("2026-01-01T00:00:03.000000000Z".into()),
            ..all()
        };
        assert_eq!(
            texts(&read_batch(&path, 3, None, None, &since, 1 << 20)),
            ["line 3", "line 4"]
        );

        // Rotation: the file becomes .1 (its inode stays), a new file starts.
        std::fs::rename(&path, dir.path().join("container.log.1")).unwrap();
        let mut f = File::create(&path).unwrap();
        f.write_all(entry(Stream::Stdout, 5).as_bytes()).unwrap();
        drop(f);
        let after = read_batch(&path, 3, Some(first.cursor), None, &all(), 1 << 20);
        assert_eq!(texts(&after), ["line 5"], "the torn line of .1 is skipped");
        let again = read_batch(&path, 3, Some(after.cursor), None, &all(), 1 << 20);
        assert!(again.lines.is_empty());
        assert_eq!(again.cursor, after.cursor);
        let tail = read_batch(&path, 3, None, Some(3), &all(), 1 << 20);
        assert_eq!(texts(&tail), ["line 3", "line 4", "line 5"]);

        // Nothing there yet: an empty batch that keeps the cursor.
        let none = read_batch(&dir.path().join("nothing.log"), 3, None, None, &all(), 10);
        assert_eq!(none, Batch::default());
    }
}
