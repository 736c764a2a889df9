//! The network rules of the state machine (pure): creating and removing networks, a
//! service's endpoint (published ports, virtual IPs), and task addresses. `state::apply` calls
//! these; the orchestrator calls [`attach`] to choose a placed task's addresses, which the
//! `CreateTasks` / `UpdateTasks` command then carries and `apply` claims with [`claim_task`].
//!
//! ```text
//!  swarm init ──▶ ingress network (first free subnet of the pool)
//!  network create ──▶ Network + ipam::Pool (subnet given, or the pool's first free one)
//!  service create/update ──▶ Endpoint { Spec, Ports (30000-32767 assigned), VirtualIPs }
//!                              VIPs from the "vips" blocks of each network
//!  orchestrator places a task ──▶ attach(): an address per network from the node's blocks
//!  RemoveTasks ──▶ addresses back to their pools (never while a container may still run)
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use sha2::{Digest, Sha256};

use super::ipam::{self, BLOCK_PREFIX, Pool, VIPS};
use super::state::State;
use crate::types::network::{
    Cidr, DEFAULT_IPAM_DRIVER, DYNAMIC_PORTS, Endpoint, INGRESS_NAME, IpamConfig, IpamOptions,
    MAX_PREFIX, MIN_PREFIX, Network, NetworkAttachment, NetworkSpec, OVERLAY_DRIVER, PortConfig,
    VirtualIp,
};
use crate::types::service::{Service, ServiceSpec};
use crate::types::swarm::Driver;
use crate::types::{CommandError, Timestamp, Version};

/// Docker's option naming a network's VXLAN ID (shown by `network inspect`); IDs from 4097.
const VXLAN_OPTION: &str = "com.docker.network.driver.overlay.vxlanid_list";
const FIRST_VXLAN_ID: u32 = 4097;

/// The ID of the ingress network `swarm init` makes: derived from the cluster's ID, so the
/// init command needs no extra field and every replica derives the same one.
pub fn ingress_id(cluster_id: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"swarm ingress network\0")
        .chain_update(cluster_id.as_bytes())
        .finalize();
    crate::cluster::tokens::base36(&digest, 25)
}

/// A network to create, as the API hands it over (the subnet may be empty: pick one).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NewNetwork {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub attachable: bool,
    pub ingress: bool,
    /// Empty: the first free block of the cluster's pool, of its `SubnetSize`.
    pub subnet: String,
    /// Empty: the subnet's first address.
    pub gateway: String,
}

/// Checks `new` against the state and builds the network and its pool.
pub fn create_network(
    state: &State,
    id: &str,
    new: &NewNetwork,
    version: Version,
    now: Timestamp,
) -> Result<(Network, Pool), CommandError> {
    let cluster = state.cluster.as_ref().ok_or(CommandError::NotInitialized)?;
    if id.is_empty() {
        return Err(CommandError::InvalidArgument("network ID is empty".into()));
    }
    if state.networks.contains_key(id) {
        return Err(CommandError::InvalidArgument(format!(
            "network ID {id} is taken"
        )));
    }
    if !crate::types::network::valid_name(&new.name) {
        return Err(CommandError::InvalidArgument(format!(
            "invalid network name {:?}: only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed",
            new.name
        )));
    }
    if state.network_named(&new.name).is_some() {
        return Err(CommandError::NetworkExists {
            name: new.name.clone(),
        });
    }
    if new.ingress
        && let Some(other) = state.networks.values().find(|n| n.spec.ingress)
    {
        return Err(CommandError::InvalidArgument(format!(
            "an ingress network ({}) is already present",
            other.spec.name
        )));
    }
    let subnet = if new.subnet.is_empty() {
        let size = u8::try_from(cluster.info.subnet_size)
            .unwrap_or(MAX_PREFIX)
            .clamp(MIN_PREFIX, MAX_PREFIX);
        free_subnet(state, &cluster.info.default_addr_pool, size).ok_or_else(|| {
            CommandError::InvalidArgument(format!(
                "no free /{size} subnet left in the default address pool {}",
                cluster.info.default_addr_pool.join(", ")
            ))
        })?
    } else {
        let subnet = parse_subnet(&new.subnet)?;
        if let Some(other) = state
            .networks
            .values()
            .find(|n| Cidr::parse(n.subnet()).is_some_and(|c| c.overlaps(subnet)))
        {
            return Err(CommandError::InvalidArgument(format!(
                "subnet {subnet} overlaps network {}'s subnet {}",
                other.spec.name,
                other.subnet()
            )));
        }
        subnet
    };
    let gateway = if new.gateway.is_empty() {
        Ipv4Addr::from(subnet.first() + 1)
    } else {
        let gw: Ipv4Addr = new.gateway.parse().map_err(|_| {
            CommandError::InvalidArgument(format!(
                "invalid gateway {:?}: expected an IPv4 address (IPv6 is not supported)",
                new.gateway
            ))
        })?;
        let g = u32::from(gw);
        if !subnet.contains(gw) || g == subnet.first() || g == subnet.last() {
            return Err(CommandError::InvalidArgument(format!(
                "gateway {gw} is not a host address of subnet {subnet}"
            )));
        }
        gw
    };
    let used: BTreeSet<u32> = state
        .networks
        .values()
        .filter_map(|n| n.driver_state.options.get(VXLAN_OPTION)?.parse().ok())
        .collect();
    let vxlan = (FIRST_VXLAN_ID..)
        .find(|v| !used.contains(v))
        .unwrap_or(FIRST_VXLAN_ID);
    let overlay = Driver {
        name: OVERLAY_DRIVER.into(),
        options: BTreeMap::new(),
    };
    let ipam_options = IpamOptions {
        driver: Driver {
            name: DEFAULT_IPAM_DRIVER.into(),
            options: BTreeMap::new(),
        },
        configs: vec![IpamConfig {
            subnet: subnet.to_string(),
            range: String::new(),
            gateway: gateway.to_string(),
        }],
    };
    let network = Network {
        id: id.to_owned(),
        version,
        created_at: now,
        updated_at: now,
        spec: NetworkSpec {
            name: new.name.clone(),
            labels: new.labels.clone(),
            driver_configuration: overlay.clone(),
            ipv6_enabled: false,
            internal: false,
            attachable: new.attachable,
            ingress: new.ingress,
            ipam_options: ipam_options.clone(),
            scope: "swarm".into(),
        },
        driver_state: Driver {
            name: OVERLAY_DRIVER.into(),
            options: [(VXLAN_OPTION.to_owned(), vxlan.to_string())].into(),
        },
        ipam_options,
    };
    let pool = Pool::new(&new.name, subnet, gateway);
    Ok((network, pool))
}

/// `CIDR` as a network subnet: IPv4, /16 to /24, host bits zero.
pub fn parse_subnet(text: &str) -> Result<Cidr, CommandError> {
    if text.contains(':') {
        return Err(CommandError::InvalidArgument(format!(
            "invalid subnet {text}: IPv6 is not supported"
        )));
    }
    let cidr = Cidr::parse(text).ok_or_else(|| {
        CommandError::InvalidArgument(format!(
            "invalid subnet {text:?}: expected an IPv4 CIDR such as 198.19.16.0/20 (host bits zero)"
        ))
    })?;
    if !(MIN_PREFIX..=MAX_PREFIX).contains(&cidr.prefix) {
        return Err(CommandError::InvalidArgument(format!(
            "invalid subnet {text}: a network's subnet must be /{MIN_PREFIX} to /{MAX_PREFIX} (smaller than /{MAX_PREFIX} leaves too few /{BLOCK_PREFIX} blocks)"
        )));
    }
    Ok(cidr)
}

/// The first `/size` of the pools that overlaps no network.
fn free_subnet(state: &State, pools: &[String], size: u8) -> Option<Cidr> {
    let taken: Vec<Cidr> = state
        .networks
        .values()
        .filter_map(|n| Cidr::parse(n.subnet()))
        .collect();
    let step = 1u64 << (32 - size);
    for pool in pools.iter().filter_map(|p| Cidr::parse(p)) {
        if pool.prefix > size {
            continue;
        }
        let mut base = u64::from(pool.first());
        while base + step - 1 <= u64::from(pool.last()) {
            let candidate = Cidr {
                base: Ipv4Addr::from(base as u32),
                prefix: size,
            };
            if !taken.iter().any(|t| t.overlaps(candidate)) {
                return Some(candidate);
            }
            base += step;
        }
    }
    None
}

/// The ingress network `swarm init` creates, if the pool has room for it.
pub fn ingress_network(
    state: &State,
    cluster_id: &str,
    version: Version,
    now: Timestamp,
) -> Option<(Network, Pool)> {
    let new = NewNetwork {
        name: INGRESS_NAME.into(),
        ingress: true,
        ..Default::default()
    };
    create_network(state, &ingress_id(cluster_id), &new, version, now).ok()
}

/// Why `id` cannot be removed now: a service or task uses it.
pub fn network_in_use(state: &State, id: &str) -> Result<(), CommandError> {
    let network = state
        .networks
        .get(id)
        .ok_or_else(|| CommandError::NetworkNotFound { id: id.to_owned() })?;
    let name = network.spec.name.clone();
    for service in state.services.values() {
        let Ok(spec) = ServiceSpec::from_raw(&service.spec) else {
            continue;
        };
        let publishes =
            network.spec.ingress && service.endpoint.ports.iter().any(|p| p.is_ingress());
        if publishes || spec.network_targets().contains(&id) {
            return Err(CommandError::NetworkInUse {
                name,
                by: format!("service {}", spec.name),
            });
        }
    }
    if let Some(task) = state
        .tasks
        .values()
        .find(|t| t.networks_attachments.iter().any(|a| a.network.id == id))
    {
        return Err(CommandError::NetworkInUse {
            name,
            by: format!(
                "task {}",
                if task.name.is_empty() {
                    &task.id
                } else {
                    &task.name
                }
            ),
        });
    }
    Ok(())
}

/// The networks a service's tasks join, by ID: `ingress` first when it publishes ingress
/// ports (as Docker attaches them), then its own.
pub fn service_networks(state: &State, spec: &ServiceSpec, endpoint: &Endpoint) -> Vec<String> {
    let mut ids = Vec::new();
    if endpoint.ports.iter().any(|p| p.is_ingress())
        && let Some(ingress) = state.networks.values().find(|n| n.spec.ingress)
    {
        ids.push(ingress.id.clone());
    }
    ids.extend(spec.network_targets().iter().map(|t| t.to_string()));
    ids
}

/// A service's endpoint after create or update, and the VIPs to take and to free.
pub struct EndpointChange {
    pub endpoint: Endpoint,
    pub pools: BTreeMap<String, Pool>,
}

/// Works out `service_id`'s endpoint for `spec` (its ports, published ports assigned, and a
/// VIP per network in vip mode), keeping what `previous` had where it still applies. The
/// returned pools replace the state's (VIPs taken and freed).
pub fn service_endpoint(
    state: &State,
    service_id: &str,
    spec: &ServiceSpec,
    previous: Option<&Endpoint>,
) -> Result<EndpointChange, CommandError> {
    let invalid = CommandError::InvalidSpec;
    let endpoint_spec = spec.endpoint().map_err(invalid)?;
    for target in spec.network_targets() {
        let network = state
            .networks
            .get(target)
            .ok_or_else(|| CommandError::InvalidSpec(format!("network {target} not found")))?;
        if network.spec.ingress {
            return Err(CommandError::InvalidSpec(
                "service cannot be explicitly attached to the ingress network".into(),
            ));
        }
    }

    // Published ports: taken by other services (ingress mode), by protocol.
    let mut taken: BTreeMap<(u32, &str), &Service> = BTreeMap::new();
    for other in state.services.values().filter(|s| s.id != service_id) {
        for p in other.endpoint.ports.iter().filter(|p| p.is_ingress()) {
            taken.insert((p.published_port, p.protocol.as_str()), other);
        }
    }
    let mut ports: Vec<PortConfig> = Vec::new();
    for p in &endpoint_spec.ports {
        if p.is_ingress()
            && p.published_port != 0
            && let Some(other) = taken.get(&(p.published_port, p.protocol.as_str()))
        {
            let name = ServiceSpec::from_raw(&other.spec)
                .map(|s| s.name)
                .unwrap_or_default();
            return Err(CommandError::InvalidSpec(format!(
                "port '{}' is already in use by service '{name}' ({}) as an ingress port",
                p.published_port, other.id
            )));
        }
    }
    let explicit: BTreeSet<(u32, &str)> = endpoint_spec
        .ports
        .iter()
        .filter(|p| p.published_port != 0)
        .map(|p| (p.published_port, p.protocol.as_str()))
        .collect();
    let mut assigned: BTreeSet<(u32, String)> = BTreeSet::new();
    for p in &endpoint_spec.ports {
        let mut port = p.clone();
        if port.is_ingress() && port.published_port == 0 {
            let free = |n: u32| {
                !taken.contains_key(&(n, port.protocol.as_str()))
                    && !explicit.contains(&(n, port.protocol.as_str()))
                    && !assigned.contains(&(n, port.protocol.clone()))
            };
            // The port it had before, if it still may.
            let kept = previous.and_then(|e| {
                e.ports
                    .iter()
                    .find(|q| {
                        q.is_ingress()
                            && q.target_port == port.target_port
                            && q.protocol == port.protocol
                            && DYNAMIC_PORTS.contains(&q.published_port)
                    })
                    .map(|q| q.published_port)
                    .filter(|&n| free(n))
            });
            let n = kept
                .or_else(|| DYNAMIC_PORTS.clone().find(|&n| free(n)))
                .ok_or_else(|| {
                    CommandError::InvalidSpec("no free port left in 30000-32767".into())
                })?;
            port.published_port = n;
            assigned.insert((n, port.protocol.clone()));
        }
        ports.push(port);
    }

    let mut endpoint = Endpoint {
        spec: endpoint_spec,
        ports,
        virtual_ips: Vec::new(),
    };
    let wanted: Vec<String> = if endpoint.spec.mode == "vip" {
        let ids = service_networks(state, spec, &endpoint);
        if endpoint.ports.iter().any(|p| p.is_ingress())
            && !state.networks.values().any(|n| n.spec.ingress)
        {
            return Err(CommandError::InvalidSpec(
                "the service publishes ports in ingress mode but the swarm has no ingress network"
                    .into(),
            ));
        }
        ids
    } else {
        Vec::new()
    };
    let mut pools = state.pools.clone();
    let old: &[VirtualIp] = previous.map_or(&[], |e| e.virtual_ips.as_slice());
    for vip in old {
        if !wanted.contains(&vip.network_id)
            && let (Some(pool), Some(addr)) =
                (pools.get_mut(&vip.network_id), ipam::addr_of(&vip.addr))
        {
            pool.release(addr);
        }
    }
    for network_id in &wanted {
        if let Some(kept) = old.iter().find(|v| &v.network_id == network_id) {
            endpoint.virtual_ips.push(kept.clone());
            continue;
        }
        let pool = pools
            .get_mut(network_id)
            .ok_or_else(|| CommandError::InvalidSpec(format!("network {network_id} not found")))?;
        let addr = pool
            .allocate(VIPS)
            .map_err(|e| CommandError::InvalidSpec(e.to_string()))?;
        endpoint.virtual_ips.push(VirtualIp {
            network_id: network_id.clone(),
            addr: format!("{addr}/{}", pool.subnet_prefix),
        });
    }
    Ok(EndpointChange { endpoint, pools })
}

/// Frees a removed service's VIPs.
pub fn release_vips(pools: &mut BTreeMap<String, Pool>, endpoint: &Endpoint) {
    for vip in &endpoint.virtual_ips {
        if let (Some(pool), Some(addr)) = (pools.get_mut(&vip.network_id), ipam::addr_of(&vip.addr))
        {
            pool.release(addr);
        }
    }
}

/// Chooses and takes (in `pools`, the caller's working copy) an address on each of
/// `networks` for a task placed on `node`. All or nothing: on error `pools` is unchanged and
/// the message says which network is full.
pub fn attach(
    state: &State,
    pools: &mut BTreeMap<String, Pool>,
    node: &str,
    networks: &[String],
) -> Result<Vec<NetworkAttachment>, String> {
    let mut chosen = Vec::with_capacity(networks.len());
    for id in networks {
        let network = state
            .networks
            .get(id)
            .ok_or_else(|| format!("network {id} not found"))?;
        let pool = pools
            .get(id)
            .ok_or_else(|| format!("network {id} not found"))?;
        let addr = pool.choose(node).map_err(|e| e.to_string())?;
        chosen.push((network, addr));
    }
    let mut attachments = Vec::with_capacity(chosen.len());
    for (network, addr) in chosen {
        if let Some(pool) = pools.get_mut(&network.id) {
            pool.claim(node, addr).map_err(|e| e.to_string())?;
        }
        attachments.push(NetworkAttachment {
            network: network.clone(),
            addresses: vec![format!("{addr}/{BLOCK_PREFIX}")],
        });
    }
    Ok(attachments)
}

/// Takes, in `pools`, the addresses a command gives a task on `node`.
pub fn claim_task(
    pools: &mut BTreeMap<String, Pool>,
    node: &str,
    attachments: &[NetworkAttachment],
) -> Result<(), CommandError> {
    if attachments.is_empty() {
        return Ok(());
    }
    if node.is_empty() {
        return Err(CommandError::InvalidArgument(
            "a task gets network addresses only together with its node".into(),
        ));
    }
    for a in attachments {
        let pool = pools
            .get_mut(&a.network.id)
            .ok_or_else(|| CommandError::NetworkNotFound {
                id: a.network.id.clone(),
            })?;
        for text in &a.addresses {
            let addr = ipam::addr_of(text).ok_or_else(|| {
                CommandError::InvalidArgument(format!("invalid task address {text:?}"))
            })?;
            pool.claim(node, addr)
                .map_err(|e| CommandError::InvalidArgument(e.to_string()))?;
        }
    }
    Ok(())
}

/// Frees a task's addresses.
pub fn release_task(pools: &mut BTreeMap<String, Pool>, attachments: &[NetworkAttachment]) {
    for a in attachments {
        if let Some(pool) = pools.get_mut(&a.network.id) {
            for addr in a.addresses.iter().filter_map(|t| ipam::addr_of(t)) {
                pool.release(addr);
            }
        }
    }
}
