//! `swarm version` and `swarm info`.

use anyhow::Result;

use crate::api::client::ApiClient;
use crate::types::system::{Info, Version};

pub async fn version(client: &ApiClient) -> Result<i32> {
    println!(
        "Client:\n Version:      {}\n API version:  {}",
        env!("CARGO_PKG_VERSION"),
        crate::api::API_VERSION
    );
    let server: Version = client.get("/version").await?;
    println!(
        "\nServer: {}\n Version:      {}\n API version:  {} (minimum version {})\n OS/Arch:      {}/{}\n Kernel:       {}",
        server.platform.name,
        server.version,
        server.api_version,
        server.min_api_version,
        server.os,
        server.arch,
        server.kernel_version
    );
    Ok(0)
}

pub async fn info(client: &ApiClient) -> Result<i32> {
    let info: Info = client.get("/info").await?;
    println!("Server:");
    println!(" Containers: {}", info.containers);
    println!("  Running: {}", info.containers_running);
    println!("  Stopped: {}", info.containers_stopped);
    println!(" Images: {}", info.images);
    println!(" Server Version: {}", info.server_version);
    println!(" Storage Driver: {}", info.driver);
    println!(" Cgroup Driver: {}", info.cgroup_driver);
    println!(" Cgroup Version: {}", info.cgroup_version);
    println!(" Swarm: {}", info.swarm.local_node_state);
    if !info.swarm.node_id.is_empty() {
        println!("  NodeID: {}", info.swarm.node_id);
        println!("  Is Manager: {}", info.swarm.control_available);
        println!("  Node Address: {}", info.swarm.node_addr);
    }
    println!(" Kernel Version: {}", info.kernel_version);
    println!(" Operating System: {}", info.operating_system);
    println!(" OSType: {}", info.os_type);
    println!(" Architecture: {}", info.architecture);
    println!(" CPUs: {}", info.ncpu);
    println!(
        " Total Memory: {:.2}GiB",
        info.mem_total as f64 / f64::from(1u32 << 30)
    );
    println!(" Name: {}", info.name);
    println!(" Data Root Dir: {}", info.docker_root_dir);
    Ok(0)
}
