//! `swarm image load | save | import | ls | inspect | rm | tag | prune`, through the daemon.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use hyper::Method;

use crate::api::client::ApiClient;

#[derive(Debug, Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(Debug, Subcommand)]
enum ImageCommand {
    /// Load images from a `docker save` or OCI archive (gzip/zstd or plain).
    Load {
        /// The archive (default: stdin).
        #[arg(short, long)]
        input: Option<PathBuf>,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Pull an image from a registry (OCI Distribution v2), with per-layer progress.
    Pull {
        /// Plain HTTP to a registry that is not on loopback.
        #[arg(long)]
        insecure: bool,
        #[arg(short, long)]
        quiet: bool,
        image: String,
    },
    /// Push an image to a registry.
    Push {
        #[arg(long)]
        insecure: bool,
        image: String,
    },
    /// Save images to an archive `docker load` and `swarm image load` accept.
    Save {
        /// Output file (default: stdout).
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Create an image from a root filesystem tarball, like `docker import`.
    Import {
        /// The tarball ("-" for stdin).
        file: PathBuf,
        /// NAME[:TAG] of the new image.
        name: Option<String>,
        /// A Dockerfile instruction to apply: CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL.
        #[arg(short, long)]
        change: Vec<String>,
    },
    /// List images.
    #[command(alias = "list")]
    Ls {
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show images in detail (JSON).
    Inspect {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Remove images.
    #[command(alias = "remove")]
    Rm {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Give an image another name.
    Tag { source: String, target: String },
    /// Remove unused data: dangling images, orphan layers.
    Prune,
}

fn escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn read_input(path: Option<&PathBuf>) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut data = Vec::new();
    match path.filter(|p| p.as_os_str() != "-") {
        Some(path) => {
            std::fs::File::open(path)
                .with_context(|| format!("open {}", path.display()))?
                .read_to_end(&mut data)
                .with_context(|| format!("read {}", path.display()))?;
        }
        None => {
            std::io::stdin()
                .read_to_end(&mut data)
                .context("read stdin")?;
        }
    }
    Ok(data)
}

/// Print the `stream`/`status` lines of a JSON-lines answer.
fn print_messages(body: &[u8], quiet: bool) {
    for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        if quiet {
            continue;
        }
        if let Some(s) = value.get("stream").and_then(|s| s.as_str()) {
            print!("{s}");
        } else if let Some(s) = value.get("status").and_then(|s| s.as_str()) {
            println!("{s}");
        }
    }
}

pub async fn run(client: &ApiClient, args: ImageArgs) -> Result<i32> {
    match args.command {
        ImageCommand::Load { input, quiet } => {
            let data = read_input(input.as_ref())?;
            let (_, body) = client
                .request(Method::POST, "/images/load", Some(data))
                .await?;
            print_messages(&body, quiet);
        }
        ImageCommand::Pull {
            insecure,
            quiet,
            image,
        } => {
            let (repo, tag) = split_tag(&image);
            let mut path = format!("/images/create?fromImage={}", escape(repo));
            if let Some(tag) = tag {
                path.push_str(&format!("&tag={}", escape(tag)));
            }
            if insecure {
                path.push_str("&insecure=1");
            }
            let auth = stored_registry_auth(&image)?;
            return follow_progress(client, Method::POST, &path, &auth, quiet).await;
        }
        ImageCommand::Push { insecure, image } => {
            let (repo, tag) = split_tag(&image);
            let mut path = format!("/images/{repo}/push?insecure={}", u8::from(insecure));
            if let Some(tag) = tag {
                path.push_str(&format!("&tag={}", escape(tag)));
            }
            let auth = stored_registry_auth(&image)?;
            return follow_progress(client, Method::POST, &path, &auth, false).await;
        }
        ImageCommand::Save { output, images } => {
            let query: Vec<String> = images
                .iter()
                .map(|n| format!("names={}", escape(n)))
                .collect();
            let mut out: Box<dyn Write> = match &output {
                Some(path) => Box::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("create {}", path.display()))?,
                ),
                None => Box::new(std::io::stdout()),
            };
            let mut failed = None;
            client
                .stream(
                    Method::GET,
                    &format!("/images/get?{}", query.join("&")),
                    |chunk| {
                        if failed.is_none()
                            && let Err(e) = out.write_all(chunk)
                        {
                            failed = Some(e);
                        }
                    },
                )
                .await?;
            if let Some(e) = failed {
                return Err(e).context("write the archive");
            }
            out.flush()?;
        }
        ImageCommand::Import { file, name, change } => {
            let data = read_input(Some(&file))?;
            let mut query = String::from("fromSrc=-");
            if let Some(name) = &name {
                let (repo, tag) = split_tag(name);
                query.push_str(&format!("&repo={}", escape(repo)));
                if let Some(tag) = tag {
                    query.push_str(&format!("&tag={}", escape(tag)));
                }
            }
            for c in &change {
                query.push_str(&format!("&changes={}", escape(c)));
            }
            let (_, body) = client
                .request(Method::POST, &format!("/images/create?{query}"), Some(data))
                .await?;
            print_messages(&body, false);
        }
        ImageCommand::Ls { quiet } => {
            let list: Vec<serde_json::Value> = client.get("/images/json").await?;
            let short = |id: &str| {
                id.trim_start_matches("sha256:")
                    .chars()
                    .take(12)
                    .collect::<String>()
            };
            if quiet {
                for image in &list {
                    println!("{}", short(image["Id"].as_str().unwrap_or("")));
                }
                return Ok(0);
            }
            let mut rows: Vec<[String; 4]> = Vec::new();
            for image in &list {
                let id = short(image["Id"].as_str().unwrap_or(""));
                let size = image["Size"].as_u64().unwrap_or(0);
                let tags: Vec<&str> = image["RepoTags"]
                    .as_array()
                    .map(|t| t.iter().filter_map(|v| v.as_str()).collect())
                    .unwrap_or_default();
                if tags.is_empty() {
                    rows.push([
                        "<none>".into(),
                        "<none>".into(),
                        id.clone(),
                        human_size(size),
                    ]);
                }
                for tag in tags {
                    let (repo, t) = split_tag(tag);
                    rows.push([
                        repo.into(),
                        t.unwrap_or("latest").into(),
                        id.clone(),
                        human_size(size),
                    ]);
                }
            }
            super::container::print_table(&["REPOSITORY", "TAG", "IMAGE ID", "SIZE"], &rows);
        }
        ImageCommand::Inspect { images } => {
            let mut out = Vec::new();
            let mut failed = false;
            for image in &images {
                match client
                    .get::<serde_json::Value>(&format!("/images/{image}/json"))
                    .await
                {
                    Ok(v) => out.push(v),
                    Err(e) => {
                        eprintln!("Error: {e}");
                        failed = true;
                    }
                }
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
            return Ok(i32::from(failed));
        }
        ImageCommand::Rm { force, images } => {
            let mut failed = false;
            for image in &images {
                let path = format!("/images/{image}{}", if force { "?force=1" } else { "" });
                match client.request(Method::DELETE, &path, None).await {
                    Ok((_, body)) => {
                        let actions: Vec<serde_json::Value> =
                            serde_json::from_slice(&body).unwrap_or_default();
                        for a in actions {
                            if let Some(t) = a["Untagged"].as_str() {
                                println!("Untagged: {t}");
                            }
                            if let Some(d) = a["Deleted"].as_str() {
                                println!("Deleted: {d}");
                            }
                        }
                    }
                    Err(e) => {
                        eprintln!("Error response from daemon: {e}");
                        failed = true;
                    }
                }
            }
            return Ok(i32::from(failed));
        }
        ImageCommand::Tag { source, target } => {
            let (repo, tag) = split_tag(&target);
            let mut path = format!("/images/{source}/tag?repo={}", escape(repo));
            if let Some(tag) = tag {
                path.push_str(&format!("&tag={}", escape(tag)));
            }
            client.request(Method::POST, &path, None).await?;
        }
        ImageCommand::Prune => {
            let report: serde_json::Value =
                client.post("/images/prune", &serde_json::json!({})).await?;
            for d in report["ImagesDeleted"].as_array().into_iter().flatten() {
                if let Some(id) = d["Deleted"].as_str() {
                    println!("Deleted: {id}");
                }
            }
            println!(
                "Total reclaimed space: {}",
                human_size(report["SpaceReclaimed"].as_u64().unwrap_or(0))
            );
        }
    }
    Ok(0)
}

/// Show a pull/push progress stream (JSON lines): a bar per layer, status lines, and the
/// stream's `error` as the command's failure.
async fn follow_progress(
    client: &ApiClient,
    method: Method,
    path: &str,
    headers: &[(&str, String)],
    quiet: bool,
) -> Result<i32> {
    use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
    let bars = MultiProgress::with_draw_target(if quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    });
    let style =
        ProgressStyle::with_template("{prefix}: {msg:<18} [{bar:30}] {bytes}/{total_bytes}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    let mut layers: std::collections::HashMap<String, ProgressBar> = Default::default();
    let mut pending = Vec::new();
    let mut error: Option<String> = None;
    let mut handle = |line: &[u8]| {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else {
            return;
        };
        if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
            error = Some(e.to_string());
            return;
        }
        let status = v.get("status").and_then(|s| s.as_str()).unwrap_or("");
        match (
            v.get("id").and_then(|i| i.as_str()),
            v.get("progressDetail"),
        ) {
            (Some(id), Some(detail)) if detail.get("total").is_some() => {
                let bar = layers.entry(id.to_string()).or_insert_with(|| {
                    let bar = bars.add(ProgressBar::new(0));
                    bar.set_style(style.clone());
                    bar.set_prefix(id.to_string());
                    bar
                });
                bar.set_length(detail["total"].as_u64().unwrap_or(0));
                bar.set_position(detail["current"].as_u64().unwrap_or(0));
                bar.set_message(status.to_string());
            }
            _ if !status.is_empty() => {
                if quiet {
                    return;
                }
                // suspend, not println: on a non-terminal indicatif draws nothing at all.
                bars.suspend(|| println!("{status}"));
            }
            _ => {}
        }
    };
    client
        .stream_with_headers(method, path, headers, |chunk| {
            pending.extend_from_slice(chunk);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                handle(&line);
            }
        })
        .await?;
    if !pending.is_empty() {
        handle(&pending);
    }
    for bar in layers.values() {
        bar.finish();
    }
    match error {
        Some(e) => {
            eprintln!("Error response from daemon: {e}");
            Ok(1)
        }
        None => Ok(0),
    }
}

/// The `X-Registry-Auth` header for the registry of `image`, from what `swarm login`
/// stored; none when nothing is stored, there is no credential file to look in, or the name
/// does not parse (the daemon says why).
fn stored_registry_auth(image: &str) -> Result<Vec<(&'static str, String)>> {
    let Ok(reference) = crate::image::reference::Reference::parse(image) else {
        return Ok(Vec::new());
    };
    let Ok(file) = super::credentials::CredentialFile::locate() else {
        return Ok(Vec::new());
    };
    Ok(match file.get(&reference.domain)? {
        Some((user, password)) => vec![(
            "X-Registry-Auth",
            super::credentials::registry_auth_header(&reference.domain, &user, &password)?,
        )],
        None => Vec::new(),
    })
}

/// `repo:tag` → (repo, Some(tag)); a ':' in a registry port is not a tag.
fn split_tag(name: &str) -> (&str, Option<&str>) {
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag)),
        _ => (name, None),
    }
}

pub(super) fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.2}GB", b as f64 / 1e9),
        b if b >= 1 << 20 => format!("{:.1}MB", b as f64 / 1e6),
        b if b >= 1 << 10 => format!("{:.1}kB", b as f64 / 1e3),
        b => format!("{b}B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_tags() {
        assert_eq!(split_tag("busybox:test"), ("busybox", Some("test")));
        assert_eq!(
            split_tag("127.0.0.1:5000/app"),
            ("127.0.0.1:5000/app", None)
        );
        assert_eq!(
            split_tag("127.0.0.1:5000/app:1"),
            ("127.0.0.1:5000/app", Some("1"))
        );
    }
}
