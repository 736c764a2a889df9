//! `swarm network create | ls | inspect | rm | prune`, as `docker network …`: the swarm's
//! overlay networks (addresses only so far; see docs/architecture.md, "Networks and
//! addresses").

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::container::{print_table, url_escape};
use crate::api::client::ApiClient;
use crate::types::network::NetworkResource;

#[derive(Debug, Args)]
pub struct NetworkArgs {
    #[command(subcommand)]
    command: NetworkCommand,
}

#[derive(Debug, Subcommand)]
enum NetworkCommand {
    /// Create a network.
    Create {
        /// Only overlay.
        #[arg(short, long, default_value = "overlay")]
        driver: String,
        /// IPv4 CIDR, /16 to /24 (default: the next free block of the swarm's address pool).
        #[arg(long)]
        subnet: Option<String>,
        /// The gateway address, inside the subnet (default: its first address).
        #[arg(long)]
        gateway: Option<String>,
        /// Let standalone containers attach (recorded; containers do not join networks yet).
        #[arg(long)]
        attachable: bool,
        /// KEY=VALUE (repeatable).
        #[arg(long)]
        label: Vec<String>,
        name: String,
    },
    /// List networks.
    #[command(alias = "list")]
    Ls {
        /// Only IDs.
        #[arg(short, long)]
        quiet: bool,
        #[arg(long)]
        no_trunc: bool,
        /// name=, id=, driver=, scope=, type=, label=KEY[=VALUE], dangling=true|false.
        #[arg(short, long)]
        filter: Vec<String>,
    },
    /// Show networks in detail (JSON, or a --format template).
    Inspect {
        /// `{{json .}}`, `{{.Name}}`, `{{json .IPAM.Config}}`, ... (fields joined by text).
        #[arg(short, long)]
        format: Option<String>,
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove networks (refused while a service uses one).
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove every network no service uses (never ingress).
    Prune {
        /// Do not ask for confirmation.
        #[arg(short, long)]
        force: bool,
    },
}

pub async fn run(client: &ApiClient, args: NetworkArgs) -> Result<i32> {
    match args.command {
        NetworkCommand::Create {
            driver,
            subnet,
            gateway,
            attachable,
            label,
            name,
        } => {
            let mut labels = BTreeMap::new();
            for l in &label {
                let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
                if k.is_empty() {
                    bail!("invalid --label {l:?}: expected KEY=VALUE");
                }
                labels.insert(k.to_owned(), v.to_owned());
            }
            if gateway.is_some() && subnet.is_none() {
                bail!("--gateway needs --subnet");
            }
            let ipam = subnet.map(|s| {
                json!({"Driver": "default", "Config": [{"Subnet": s, "Gateway": gateway.unwrap_or_default()}]})
            });
            let body = json!({
                "Name": name, "Driver": driver, "Scope": "swarm", "Attachable": attachable,
                "IPAM": ipam, "Labels": labels,
            });
            let created: Value = client.post("/networks/create", &body).await?;
            println!("{}", created["Id"].as_str().unwrap_or_default());
            Ok(0)
        }
        NetworkCommand::Ls {
            quiet,
            no_trunc,
            filter,
        } => {
            let query = super::service::filters_query(&filter, &[])?;
            let mut list: Vec<NetworkResource> = client.get(&format!("/networks?{query}")).await?;
            list.sort_by(|a, b| a.name.cmp(&b.name));
            let id = |n: &NetworkResource| {
                if no_trunc {
                    n.id.clone()
                } else {
                    n.id.chars().take(12).collect()
                }
            };
            if quiet {
                for n in &list {
                    println!("{}", id(n));
                }
                return Ok(0);
            }
            let rows: Vec<[String; 4]> = list
                .iter()
                .map(|n| [id(n), n.name.clone(), n.driver.clone(), n.scope.clone()])
                .collect();
            print_table(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"], &rows);
            Ok(0)
        }
        NetworkCommand::Inspect { format, networks } => {
            let mut found = Vec::new();
            let mut failed = false;
            for name in &networks {
                match client
                    .get::<Value>(&format!("/networks/{}", url_escape(name)))
                    .await
                {
                    Ok(v) => found.push(v),
                    Err(e) if e.status() == Some(404) => {
                        eprintln!("Error: No such network: {name}");
                        failed = true;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            match format {
                None => println!("{}", serde_json::to_string_pretty(&found)?),
                Some(template) => {
                    for v in &found {
                        println!("{}", render(&template, v)?);
                    }
                }
            }
            Ok(i32::from(failed))
        }
        NetworkCommand::Rm { networks } => {
            let mut failed = false;
            for name in &networks {
                match client
                    .delete(&format!("/networks/{}", url_escape(name)))
                    .await
                {
                    Ok(()) => println!("{name}"),
                    Err(e) => {
                        eprintln!("Error response from daemon: {e}");
                        failed = true;
                    }
                }
            }
            Ok(i32::from(failed))
        }
        NetworkCommand::Prune { force } => {
            if !force {
                eprint!(
                    "WARNING! This will remove all custom networks not used by at least one service.\nAre you sure you want to continue? [y/N] "
                );
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
                    return Ok(0);
                }
            }
            let report: Value = client.post("/networks/prune", &json!({})).await?;
            let deleted = report["NetworksDeleted"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if !deleted.is_empty() {
                println!("Deleted Networks:");
                for n in deleted {
                    println!("{}", n.as_str().unwrap_or_default());
                }
            }
            Ok(0)
        }
    }
}

/// A small part of Go's templates, enough for `inspect --format`: text with `{{.A.B}}`
/// (a field path; strings bare, anything else as JSON) and `{{json .A.B}}` actions.
pub fn render(template: &str, value: &Value) -> Result<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            bail!("invalid --format {template:?}: unclosed {{{{");
        };
        let action = after[..end].trim();
        let (json_mode, path) = match action.strip_prefix("json ") {
            Some(p) => (true, p.trim()),
            None => (false, action),
        };
        let Some(path) = path.strip_prefix('.') else {
            bail!(
                "invalid --format action {{{{{action}}}}}: only {{{{.Field}}}} and {{{{json .Field}}}} are supported"
            );
        };
        let mut v = value;
        for part in path.split('.').filter(|p| !p.is_empty()) {
            v = v.get(part).unwrap_or(&Value::Null);
        }
        match v {
            Value::String(s) if !json_mode => out.push_str(s),
            Value::Null if !json_mode => out.push_str("<no value>"),
            other => out.push_str(&serde_json::to_string(other)?),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_format_templates() {
        let v = json!({"Name": "front", "IPAM": {"Config": [{"Subnet": "198.19.16.0/20"}]}, "Ingress": false});
        assert_eq!(render("{{.Name}}", &v).unwrap(), "front");
        assert_eq!(
            render("{{.Name}} {{json .IPAM.Config}}", &v).unwrap(),
            "front [{\"Subnet\":\"198.19.16.0/20\"}]"
        );
        assert_eq!(render("{{.Ingress}}", &v).unwrap(), "false");
        assert_eq!(render("{{.Nope}}", &v).unwrap(), "<no value>");
        assert!(render("{{range .X}}", &v).is_err());
        assert!(render("{{.Name", &v).is_err());
    }
}
