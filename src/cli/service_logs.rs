//! `swarm service logs SERVICE|TASK`, as `docker service logs`: asks for the lines with
//! their details and prints each as `name.slot.task@node    | line`.
//!
//! The daemon sends one frame per line, `[timestamp ]details text`; the details name the
//! node, service and task, which are looked up once each (names, slots, hostnames) and
//! cached. `--raw` prints the lines as they come.

use std::collections::HashMap;
use std::io::Write;

use anyhow::{Result, bail};
use clap::Args;
use serde_json::Value;
use tokio::sync::mpsc;

use super::container::url_escape;
use super::service::parse_duration;
use crate::api::client::ApiClient;

#[derive(Debug, Args)]
pub struct ServiceLogsArgs {
    /// Keep the stream open and print new lines as they come.
    #[arg(short, long)]
    follow: bool,
    /// Lines from the end of each task's log ("all" for every line).
    #[arg(short = 'n', long)]
    tail: Option<String>,
    /// Show the time of each line.
    #[arg(short, long)]
    timestamps: bool,
    /// Only lines since this time: a duration ago (10m, 1h30m) or a Unix time.
    #[arg(long)]
    since: Option<String>,
    /// Leave the task IDs out of the names.
    #[arg(long)]
    no_task_ids: bool,
    /// Full task IDs.
    #[arg(long)]
    no_trunc: bool,
    /// The lines as they come, without names.
    #[arg(long)]
    raw: bool,
    /// A service (name or ID) or a task ID.
    target: String,
}

/// Docker's frames, which may arrive split across reads: `[stream, 0, 0, 0, len BE] + bytes`.
pub fn split_frames(pending: &mut Vec<u8>) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while pending.len() >= 8 {
        let len = u32::from_be_bytes([pending[4], pending[5], pending[6], pending[7]]) as usize;
        if pending.len() < 8 + len {
            break;
        }
        out.push((pending[0], pending[8..8 + len].to_vec()));
        pending.drain(..8 + len);
    }
    out
}

fn query_unescape(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A line as the daemon sent it: (timestamp, details, text).
pub fn parse_line(
    line: &str,
    timestamps: bool,
) -> Option<(Option<&str>, HashMap<String, String>, &str)> {
    let (time, rest) = if timestamps {
        let (t, rest) = line.split_once(' ')?;
        (Some(t), rest)
    } else {
        (None, line)
    };
    let (details, text) = rest.split_once(' ').unwrap_or((rest, ""));
    let mut map = HashMap::new();
    for pair in details.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=')?;
        map.insert(query_unescape(k), query_unescape(v));
    }
    Some((time, map, text))
}

/// `name.slot.task@node` plus the padding that lines up the `|` of slots of different width.
pub fn task_label(
    service: &str,
    slot: u64,
    node_of_global: &str,
    task_id: &str,
    node: &str,
    width: usize,
    ids: (bool, bool),
) -> String {
    let (no_task_ids, no_trunc) = ids;
    let mut name = if slot > 0 {
        format!("{service}.{slot}")
    } else {
        format!("{service}.{node_of_global}")
    };
    if !no_task_ids {
        let id = if no_trunc {
            task_id
        } else {
            &task_id[..task_id.len().min(12)]
        };
        name = format!("{name}.{id}");
    }
    let digits = slot.to_string().len();
    let padding = if slot > 0 {
        " ".repeat(width.saturating_sub(digits))
    } else {
        String::new()
    };
    format!("{name}@{node}{padding}")
}

/// Looks up and caches what the labels need.
struct Names<'c> {
    client: &'c ApiClient,
    services: HashMap<String, String>,
    tasks: HashMap<String, (u64, String)>,
    nodes: HashMap<String, String>,
}

impl Names<'_> {
    async fn service(&mut self, id: &str) -> String {
        if let Some(n) = self.services.get(id) {
            return n.clone();
        }
        let v: Value = self
            .client
            .get(&format!("/services/{}", url_escape(id)))
            .await
            .unwrap_or(Value::Null);
        let name = v["Spec"]["Name"].as_str().unwrap_or(id).to_owned();
        self.services.insert(id.to_owned(), name.clone());
        name
    }

    async fn task(&mut self, id: &str) -> (u64, String) {
        if let Some(t) = self.tasks.get(id) {
            return t.clone();
        }
        let v: Value = self
            .client
            .get(&format!("/tasks/{}", url_escape(id)))
            .await
            .unwrap_or(Value::Null);
        let t = (
            v["Slot"].as_u64().unwrap_or(0),
            v["NodeID"].as_str().unwrap_or_default().to_owned(),
        );
        self.tasks.insert(id.to_owned(), t.clone());
        t
    }

    async fn node(&mut self, id: &str) -> String {
        if let Some(n) = self.nodes.get(id) {
            return n.clone();
        }
        let v: Value = self
            .client
            .get(&format!("/nodes/{}", url_escape(id)))
            .await
            .unwrap_or(Value::Null);
        let name = v["Description"]["Hostname"]
            .as_str()
            .filter(|h| !h.is_empty())
            .unwrap_or(id)
            .to_owned();
        self.nodes.insert(id.to_owned(), name.clone());
        name
    }
}

/// Unix seconds for `--since`: a duration ago, or a time given as Unix seconds.
fn since_value(text: &str) -> Result<String> {
    let t = text.trim();
    if t.bytes().all(|b| b.is_ascii_digit() || b == b'.') && !t.is_empty() {
        return Ok(t.to_owned());
    }
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(t) {
        return Ok(format!(
            "{}.{:09}",
            time.timestamp(),
            time.timestamp_subsec_nanos()
        ));
    }
    let ago = parse_duration(t)?;
    let now = chrono::Utc::now();
    let then = now - chrono::Duration::nanoseconds(ago);
    Ok(format!(
        "{}.{:09}",
        then.timestamp(),
        then.timestamp_subsec_nanos()
    ))
}

pub async fn logs(client: &ApiClient, args: ServiceLogsArgs) -> Result<i32> {
    // A service first, else a task (docker's order).
    let target = url_escape(&args.target);
    let (path, width) = match client.get::<Value>(&format!("/services/{target}")).await {
        Ok(service) => {
            let replicas = service["Spec"]["Mode"]["Replicated"]["Replicas"]
                .as_u64()
                .unwrap_or(0);
            let width = if replicas > 0 {
                replicas.to_string().len()
            } else {
                0
            };
            (format!("/services/{target}/logs"), width)
        }
        Err(e) if e.status() == Some(404) => {
            match client.get::<Value>(&format!("/tasks/{target}")).await {
                Ok(_) => (format!("/tasks/{target}/logs"), 0),
                Err(_) => bail!("no such task or service: {}", args.target),
            }
        }
        Err(e) => bail!("Error response from daemon: {e}"),
    };
    let mut query = String::from("stdout=1&stderr=1");
    if !args.raw {
        query.push_str("&details=1");
    }
    if args.follow {
        query.push_str("&follow=1");
    }
    if args.timestamps {
        query.push_str("&timestamps=1");
    }
    if let Some(tail) = &args.tail {
        query.push_str(&format!("&tail={}", url_escape(tail)));
    }
    if let Some(since) = &args.since {
        query.push_str(&format!("&since={}", url_escape(&since_value(since)?)));
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<(u8, Vec<u8>)>();
    let streamed = async move {
        let mut pending = Vec::new();
        let result = client
            .stream(hyper::Method::GET, &format!("{path}?{query}"), |chunk| {
                pending.extend_from_slice(chunk);
                for frame in split_frames(&mut pending) {
                    let _ = tx.send(frame);
                }
            })
            .await;
        drop(tx);
        result
    };
    let printed = async {
        let mut names = Names {
            client,
            services: HashMap::new(),
            tasks: HashMap::new(),
            nodes: HashMap::new(),
        };
        while let Some((stream, bytes)) = rx.recv().await {
            let out = if args.raw {
                bytes
            } else {
                let line = String::from_utf8_lossy(&bytes).into_owned();
                match parse_line(&line, args.timestamps) {
                    Some((time, details, text)) => {
                        let task_id = details
                            .get("com.docker.swarm.task.id")
                            .cloned()
                            .unwrap_or_default();
                        let service_id = details
                            .get("com.docker.swarm.service.id")
                            .cloned()
                            .unwrap_or_default();
                        let node_id = details
                            .get("com.docker.swarm.node.id")
                            .cloned()
                            .unwrap_or_default();
                        let service = names.service(&service_id).await;
                        let (slot, _) = names.task(&task_id).await;
                        let node = names.node(&node_id).await;
                        let label = task_label(
                            &service,
                            slot,
                            &node_id,
                            &task_id,
                            &node,
                            width,
                            (args.no_task_ids, args.no_trunc),
                        );
                        let time = time.map(|t| format!("{t} ")).unwrap_or_default();
                        format!("{time}{label}    | {text}").into_bytes()
                    }
                    None => bytes,
                }
            };
            let _ = if stream == 2 {
                std::io::stderr().write_all(&out)
            } else {
                std::io::stdout()
                    .write_all(&out)
                    .and_then(|()| std::io::stdout().flush())
            };
        }
    };
    let (result, ()) = tokio::join!(streamed, printed);
    match result {
        Ok(()) => Ok(0),
        Err(e) => {
            eprintln!("Error response from daemon: {e}");
            Ok(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_frames_lines_and_labels() {
        let mut pending = vec![1, 0, 0, 0, 0, 0, 0, 3, b'a', b'b', b'\n', 2, 0, 0, 0, 0, 0];
        let frames = split_frames(&mut pending);
        assert_eq!(frames, vec![(1, b"ab\n".to_vec())]);
        assert_eq!(pending.len(), 6, "a partial header waits");
        pending.extend_from_slice(&[0, 1, b'x']);
        assert_eq!(split_frames(&mut pending), vec![(2, b"x".to_vec())]);

        let line = "2026-01-01T00:00:01.000000000Z com.docker.swarm.node.id=n1,com.docker.swarm.service.id=s1,com.docker.swarm.task.id=t%2B1 hello world\n";
        let (time, details, text) = parse_line(line, true).unwrap();
        assert_eq!(time, Some("2026-01-01T00:00:01.000000000Z"));
        assert_eq!(details["com.docker.swarm.task.id"], "t+1");
        assert_eq!(details["com.docker.swarm.node.id"], "n1");
        assert_eq!(text, "hello world\n");
        assert!(parse_line("no-details-here and text", false).is_none());

        let id = "abcdefghijklmnopqrstuvwxy";
        assert_eq!(
            task_label("web", 3, "n", id, "h1", 2, (false, false)),
            "web.3.abcdefghijkl@h1 "
        );
        assert_eq!(
            task_label("web", 10, "n", id, "h1", 2, (false, true)),
            format!("web.10.{id}@h1")
        );
        assert_eq!(
            task_label("web", 1, "n", id, "h1", 1, (true, false)),
            "web.1@h1"
        );
        assert_eq!(
            task_label("g", 0, "node9", id, "h2", 0, (true, false)),
            "g.node9@h2"
        );
        assert_eq!(since_value("1700000000").unwrap(), "1700000000");
        assert!(since_value("10m").unwrap().contains('.'));
        assert!(since_value("soon").is_err());
    }
}
