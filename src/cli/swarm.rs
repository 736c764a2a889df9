//! `swarm init | join | join-token | leave | update`: this node's membership, as Docker's
//! `docker swarm …` commands, through the daemon's `/swarm` endpoints.

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};

use crate::api::client::ApiClient;
use crate::types::system::Info;
use crate::types::{InitRequest, JoinRequest, Node, Swarm};

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Address other nodes reach this one at: IP[:PORT].
    #[arg(long)]
    advertise_addr: Option<String>,
    /// Address for cluster traffic: IP:PORT (default: the daemon's --listen-addr).
    #[arg(long)]
    listen_addr: Option<String>,
    /// CIDR the container subnets come from (repeatable; default 198.19.0.0/17).
    #[arg(long = "default-addr-pool")]
    default_addr_pool: Vec<String>,
    /// Prefix length of each node's subnet (default 24).
    #[arg(long = "default-addr-pool-mask-length", default_value_t = 0)]
    subnet_size: u32,
    /// Port of the container overlay's VXLAN traffic (default 4789).
    #[arg(long, default_value_t = 0)]
    data_path_port: u32,
    /// Availability of this node: active, pause or drain.
    #[arg(long, default_value = "active")]
    availability: String,
}

#[derive(Debug, Args)]
pub struct JoinArgs {
    /// The worker or manager join token (`swarm join-token worker|manager` on a manager).
    #[arg(long)]
    token: String,
    #[arg(long)]
    advertise_addr: Option<String>,
    #[arg(long)]
    listen_addr: Option<String>,
    #[arg(long, default_value = "active")]
    availability: String,
    /// A manager's address, IP:PORT.
    remote: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Role {
    Worker,
    Manager,
}

#[derive(Debug, Args)]
pub struct JoinTokenArgs {
    /// Print only the token.
    #[arg(short, long)]
    quiet: bool,
    /// Replace the token: the old one stops working.
    #[arg(long)]
    rotate: bool,
    role: Role,
}

#[derive(Debug, Args)]
pub struct LeaveArgs {
    /// Leave even if this breaks the managers' quorum (or is the last manager).
    #[arg(short, long)]
    force: bool,
}

pub async fn init(client: &ApiClient, args: InitArgs) -> Result<i32> {
    let request = InitRequest {
        listen_addr: args.listen_addr.unwrap_or_default(),
        advertise_addr: args.advertise_addr.unwrap_or_default(),
        default_addr_pool: args.default_addr_pool,
        subnet_size: args.subnet_size,
        data_path_port: args.data_path_port,
        availability: args.availability,
        ..Default::default()
    };
    let id: String = client.post("/swarm/init", &request).await?;
    println!("Swarm initialized: current node ({id}) is now a manager.\n");
    let swarm: Swarm = client.get("/swarm").await?;
    let node: Node = client.get(&format!("/nodes/{id}")).await?;
    let addr = node
        .manager_status
        .map(|m| m.addr)
        .unwrap_or_else(|| node.status.addr.clone());
    println!("To add a worker to this swarm, run the following command:\n");
    println!(
        "    swarm join --token {} {addr}\n",
        swarm.join_tokens.worker
    );
    println!("To add a manager to this swarm, run the following command:\n");
    println!(
        "    swarm join --token {} {addr}\n",
        swarm.join_tokens.manager
    );
    Ok(0)
}

pub async fn join(client: &ApiClient, args: JoinArgs) -> Result<i32> {
    let request = JoinRequest {
        listen_addr: args.listen_addr.unwrap_or_default(),
        advertise_addr: args.advertise_addr.unwrap_or_default(),
        remote_addrs: vec![args.remote],
        join_token: args.token,
        availability: args.availability,
        ..Default::default()
    };
    let _: serde_json::Value = client.post("/swarm/join", &request).await?;
    let info: Info = client.get("/info").await?;
    if info.swarm.control_available {
        println!("This node joined a swarm as a manager.");
    } else {
        println!("This node joined a swarm as a worker.");
    }
    Ok(0)
}

pub async fn join_token(client: &ApiClient, args: JoinTokenArgs) -> Result<i32> {
    let (flag, role) = match args.role {
        Role::Worker => ("rotateWorkerToken", "worker"),
        Role::Manager => ("rotateManagerToken", "manager"),
    };
    if args.rotate {
        let swarm: Swarm = client.get("/swarm").await?;
        let path = format!(
            "/swarm/update?{flag}=true&version={}",
            swarm.cluster.version.index
        );
        let _: serde_json::Value = client.post(&path, &swarm.cluster.spec).await?;
        if !args.quiet {
            println!("Successfully rotated {role} join token.\n");
        }
    }
    let swarm: Swarm = client.get("/swarm").await?;
    let token = match args.role {
        Role::Worker => swarm.join_tokens.worker,
        Role::Manager => swarm.join_tokens.manager,
    };
    if args.quiet {
        println!("{token}");
        return Ok(0);
    }
    let info: Info = client.get("/info").await?;
    if info.swarm.node_id.is_empty() {
        bail!("this node has no ID; is it in a swarm?");
    }
    let node: Node = client
        .get(&format!("/nodes/{}", info.swarm.node_id))
        .await?;
    let addr = node.manager_status.map(|m| m.addr).unwrap_or_default();
    println!("To add a {role} to this swarm, run the following command:\n");
    println!("    swarm join --token {token} {addr}\n");
    Ok(0)
}

pub async fn leave(client: &ApiClient, args: LeaveArgs) -> Result<i32> {
    let path = if args.force {
        "/swarm/leave?force=1"
    } else {
        "/swarm/leave"
    };
    client.post_empty(path).await?;
    println!("Node left the swarm.");
    Ok(0)
}
