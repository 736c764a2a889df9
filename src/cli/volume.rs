//! `swarm volume create | ls | inspect | rm | prune`, as `docker volume …`: this node's named
//! volumes.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};

use super::container::{print_table, url_escape};
use crate::api::client::ApiClient;
use crate::types::volume::{Volume, VolumeCreateRequest, VolumeListResponse, VolumePruneResponse};

#[derive(Debug, Args)]
pub struct VolumeArgs {
    #[command(subcommand)]
    command: VolumeCommand,
}

#[derive(Debug, Subcommand)]
enum VolumeCommand {
    /// Create a volume (no name: a random one).
    Create {
        /// Volume driver (only local).
        #[arg(short, long, default_value = "local")]
        driver: String,
        /// KEY=VALUE (repeatable).
        #[arg(long)]
        label: Vec<String>,
        /// Driver option KEY=VALUE (repeatable): type=tmpfs, device=tmpfs, o=size=64m.
        #[arg(short, long)]
        opt: Vec<String>,
        name: Option<String>,
    },
    /// List volumes.
    #[command(alias = "list")]
    Ls {
        /// Only names.
        #[arg(short, long)]
        quiet: bool,
        /// Filter: name=, label=KEY[=VALUE], driver=, dangling=true|false.
        #[arg(short, long)]
        filter: Vec<String>,
    },
    /// Show volumes in detail (JSON).
    Inspect {
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove volumes (refused while a container uses one).
    #[command(alias = "remove")]
    Rm {
        /// No error for a volume that does not exist.
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove the volumes no container uses: anonymous ones, or all with --all.
    Prune {
        /// Named volumes too.
        #[arg(short, long)]
        all: bool,
        /// Filter: label=KEY[=VALUE], label!=KEY[=VALUE].
        #[arg(long)]
        filter: Vec<String>,
        /// Do not ask for confirmation.
        #[arg(short, long)]
        force: bool,
    },
}

pub async fn run(client: &ApiClient, args: VolumeArgs) -> Result<i32> {
    match args.command {
        VolumeCommand::Create {
            driver,
            label,
            opt,
            name,
        } => {
            let request = VolumeCreateRequest {
                name: name.unwrap_or_default(),
                driver,
                driver_opts: key_values(&opt, "--opt")?,
                labels: key_values(&label, "--label")?,
            };
            let volume: Volume = client.post("/volumes/create", &request).await?;
            println!("{}", volume.name);
            Ok(0)
        }
        VolumeCommand::Ls { quiet, filter } => {
            let query = super::service::filters_query(&filter, &[])?;
            let list: VolumeListResponse = client.get(&format!("/volumes?{query}")).await?;
            for w in &list.warnings {
                eprintln!("WARNING: {w}");
            }
            if quiet {
                for v in &list.volumes {
                    println!("{}", v.name);
                }
                return Ok(0);
            }
            let rows: Vec<[String; 2]> = list
                .volumes
                .iter()
                .map(|v| [v.driver.clone(), v.name.clone()])
                .collect();
            print_table(&["DRIVER", "VOLUME NAME"], &rows);
            Ok(0)
        }
        VolumeCommand::Inspect { volumes } => {
            let mut found = Vec::new();
            let mut failed = false;
            for name in &volumes {
                match client
                    .get::<serde_json::Value>(&format!("/volumes/{}", url_escape(name)))
                    .await
                {
                    Ok(v) => found.push(v),
                    Err(e) if e.status() == Some(404) => {
                        eprintln!("Error: No such volume: {name}");
                        failed = true;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            println!("{}", serde_json::to_string_pretty(&found)?);
            Ok(i32::from(failed))
        }
        VolumeCommand::Rm { force, volumes } => {
            let mut failed = false;
            for name in &volumes {
                let path = format!(
                    "/volumes/{}{}",
                    url_escape(name),
                    if force { "?force=1" } else { "" }
                );
                match client.delete(&path).await {
                    Ok(()) => println!("{name}"),
                    Err(e) => {
                        eprintln!("Error response from daemon: {e}");
                        failed = true;
                    }
                }
            }
            Ok(i32::from(failed))
        }
        VolumeCommand::Prune { all, filter, force } => {
            if !force && !confirm(all)? {
                return Ok(0);
            }
            let extra: &[(&str, &str)] = if all { &[("all", "true")] } else { &[] };
            let query = super::service::filters_query(&filter, extra)?;
            let report: VolumePruneResponse = client
                .post(&format!("/volumes/prune?{query}"), &serde_json::json!({}))
                .await?;
            if !report.volumes_deleted.is_empty() {
                println!("Deleted Volumes:");
                for name in &report.volumes_deleted {
                    println!("{name}");
                }
                println!();
            }
            println!(
                "Total reclaimed space: {}",
                super::image::human_size(report.space_reclaimed)
            );
            Ok(0)
        }
    }
}

/// `KEY=VALUE` flags into a map; a flag without '=' is refused.
fn key_values(items: &[String], flag: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for item in items {
        match item.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                out.insert(k.to_owned(), v.to_owned());
            }
            _ => bail!("invalid {flag} {item:?}: expected KEY=VALUE"),
        }
    }
    Ok(out)
}

/// Docker's prune question; anything but y/yes is no.
fn confirm(all: bool) -> Result<bool> {
    let what = if all {
        "all local volumes"
    } else {
        "anonymous local volumes"
    };
    eprint!(
        "WARNING! This will remove {what} not used by at least one container.\nAre you sure you want to continue? [y/N] "
    );
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_key_values() {
        let m = key_values(&["type=tmpfs".into(), "o=size=64m,uid=1".into()], "--opt").unwrap();
        assert_eq!(m["o"], "size=64m,uid=1");
        assert!(key_values(&["novalue".into()], "--opt").is_err());
        assert!(key_values(&["=x".into()], "--label").is_err());
    }
}
