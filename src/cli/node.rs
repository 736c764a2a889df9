//! `swarm node ls | inspect | update | promote | demote | rm`, as `docker node …`.

use anyhow::{Result, bail};
use clap::{Args, Subcommand};

use super::container::{capitalise, print_table, url_escape};
use crate::api::client::ApiClient;
use crate::types::system::Info;
use crate::types::{Node, NodeAvailability, NodeRole, NodeSpec};

#[derive(Debug, Args)]
pub struct NodeArgs {
    #[command(subcommand)]
    command: NodeCommand,
}

#[derive(Debug, Subcommand)]
enum NodeCommand {
    /// List the nodes of the swarm.
    #[command(alias = "list")]
    Ls {
        /// Only IDs.
        #[arg(short, long)]
        quiet: bool,
        /// Filter: id=, name=, role=manager|worker, node.label=KEY[=VALUE].
        #[arg(short, long)]
        filter: Vec<String>,
    },
    /// Show nodes in detail (`self` is this node).
    Inspect {
        /// Human-readable instead of JSON.
        #[arg(long)]
        pretty: bool,
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Change a node's availability or labels.
    Update {
        /// active, pause or drain.
        #[arg(long)]
        availability: Option<String>,
        /// KEY=VALUE (repeatable).
        #[arg(long = "label-add")]
        label_add: Vec<String>,
        /// KEY (repeatable).
        #[arg(long = "label-rm")]
        label_rm: Vec<String>,
        /// manager or worker.
        #[arg(long)]
        role: Option<String>,
        node: String,
    },
    /// Make workers managers.
    Promote {
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Make managers workers.
    Demote {
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Remove nodes from the swarm.
    #[command(alias = "remove")]
    Rm {
        /// Remove even a node that is not down.
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        nodes: Vec<String>,
    },
}

pub async fn run(client: &ApiClient, args: NodeArgs) -> Result<i32> {
    match args.command {
        NodeCommand::Ls { quiet, filter } => ls(client, quiet, &filter).await,
        NodeCommand::Inspect { pretty, nodes } => inspect(client, pretty, &nodes).await,
        NodeCommand::Update {
            availability,
            label_add,
            label_rm,
            role,
            node,
        } => {
            let availability = availability
                .map(|a| parse_word::<NodeAvailability>(&a, "availability"))
                .transpose()?;
            let role = role
                .map(|r| parse_word::<NodeRole>(&r, "role"))
                .transpose()?;
            let mut adds = Vec::new();
            for label in &label_add {
                let (k, v) = label.split_once('=').unwrap_or((label.as_str(), ""));
                if k.is_empty() {
                    bail!("invalid label {label:?}: expected KEY=VALUE");
                }
                adds.push((k.to_owned(), v.to_owned()));
            }
            update(client, &node, |spec| {
                if let Some(a) = availability {
                    spec.availability = a;
                }
                if let Some(r) = role {
                    spec.role = r;
                }
                for (k, v) in &adds {
                    spec.labels.insert(k.clone(), v.clone());
                }
                for k in &label_rm {
                    spec.labels.remove(k);
                }
            })
            .await?;
            println!("{node}");
            Ok(0)
        }
        NodeCommand::Promote { nodes } => {
            for node in &nodes {
                update(client, node, |s| s.role = NodeRole::Manager).await?;
                println!("Node {node} promoted to a manager in the swarm.");
            }
            Ok(0)
        }
        NodeCommand::Demote { nodes } => {
            for node in &nodes {
                update(client, node, |s| s.role = NodeRole::Worker).await?;
                println!("Manager {node} demoted in the swarm.");
            }
            Ok(0)
        }
        NodeCommand::Rm { force, nodes } => {
            let mut failed = false;
            for node in &nodes {
                let path = format!(
                    "/nodes/{}{}",
                    url_escape(node),
                    if force { "?force=1" } else { "" }
                );
                match client.delete(&path).await {
                    Ok(()) => println!("{node}"),
                    Err(e) => {
                        eprintln!("Error response from daemon: {e}");
                        failed = true;
                    }
                }
            }
            Ok(i32::from(failed))
        }
    }
}

fn parse_word<T: serde::de::DeserializeOwned>(word: &str, what: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(word.to_owned()))
        .map_err(|_| anyhow::anyhow!("invalid {what} {word:?}"))
}

/// Read-modify-write of the whole spec at the version read (the daemon refuses a stale one).
async fn update(client: &ApiClient, node: &str, change: impl FnOnce(&mut NodeSpec)) -> Result<()> {
    let current: Node = client.get(&format!("/nodes/{}", url_escape(node))).await?;
    let mut spec = current.spec.clone();
    change(&mut spec);
    let path = format!(
        "/nodes/{}/update?version={}",
        current.id, current.version.index
    );
    let _: serde_json::Value = client.post(&path, &spec).await?;
    Ok(())
}

async fn ls(client: &ApiClient, quiet: bool, filter: &[String]) -> Result<i32> {
    let path = format!("/nodes?{}", super::service::filters_query(filter, &[])?);
    let mut nodes: Vec<Node> = client.get(&path).await?;
    nodes.sort_by(|a, b| (&a.description.hostname, &a.id).cmp(&(&b.description.hostname, &b.id)));
    if quiet {
        for n in &nodes {
            println!("{}", n.id);
        }
        return Ok(0);
    }
    let info: Info = client.get("/info").await?;
    let rows: Vec<[String; 6]> = nodes
        .iter()
        .map(|n| {
            let me = if n.id == info.swarm.node_id { " *" } else { "" };
            [
                format!("{}{me}", n.id),
                n.description.hostname.clone(),
                capitalise(n.status.state.as_str()),
                capitalise(n.spec.availability.as_str()),
                n.manager_status
                    .as_ref()
                    .map(|m| {
                        if m.leader {
                            "Leader".to_owned()
                        } else {
                            capitalise(m.reachability.as_str())
                        }
                    })
                    .unwrap_or_default(),
                n.description.engine.engine_version.clone(),
            ]
        })
        .collect();
    print_table(
        &[
            "ID",
            "HOSTNAME",
            "STATUS",
            "AVAILABILITY",
            "MANAGER STATUS",
            "ENGINE VERSION",
        ],
        &rows,
    );
    Ok(0)
}

async fn inspect(client: &ApiClient, pretty: bool, refs: &[String]) -> Result<i32> {
    let mut nodes = Vec::new();
    for r in refs {
        let id = if r == "self" {
            let info: Info = client.get("/info").await?;
            info.swarm.node_id
        } else {
            r.clone()
        };
        let node: serde_json::Value = client.get(&format!("/nodes/{}", url_escape(&id))).await?;
        nodes.push(node);
    }
    if !pretty {
        println!("{}", serde_json::to_string_pretty(&nodes)?);
        return Ok(0);
    }
    for (i, value) in nodes.into_iter().enumerate() {
        if i > 0 {
            println!();
        }
        let n: Node = serde_json::from_value(value)?;
        println!("ID:\t\t\t{}", n.id);
        if !n.spec.name.is_empty() {
            println!("Name:\t\t\t{}", n.spec.name);
        }
        if !n.spec.labels.is_empty() {
            println!("Labels:");
            for (k, v) in &n.spec.labels {
                println!(" - {k}={v}");
            }
        }
        println!("Hostname:\t\t{}", n.description.hostname);
        println!("Joined at:\t\t{}", n.created_at);
        println!("Status:");
        println!(" State:\t\t\t{}", capitalise(n.status.state.as_str()));
        println!(
            " Availability:\t\t{}",
            capitalise(n.spec.availability.as_str())
        );
        println!(" Address:\t\t{}", n.status.addr);
        if let Some(m) = &n.manager_status {
            println!("Manager Status:");
            println!(" Address:\t\t{}", m.addr);
            println!(" Raft Status:\t\t{}", capitalise(m.reachability.as_str()));
            println!(" Leader:\t\t{}", if m.leader { "Yes" } else { "No" });
        }
        println!("Platform:");
        println!(" Operating System:\t{}", n.description.platform.os);
        println!(" Architecture:\t\t{}", n.description.platform.architecture);
        println!("Resources:");
        println!(
            " CPUs:\t\t\t{}",
            n.description.resources.nano_cpus / 1_000_000_000
        );
        println!(
            " Memory:\t\t{:.3}GiB",
            n.description.resources.memory_bytes as f64 / f64::from(1u32 << 30)
        );
        println!("Engine Version:\t\t{}", n.description.engine.engine_version);
    }
    Ok(0)
}
