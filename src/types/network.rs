//! Networks in Docker's shapes: the swarm `Network` object the cluster state holds (moby
//! `api/types/swarm/network.go`, also embedded in a task's `NetworksAttachments`), the
//! `NetworkResource` that `GET /networks` answers with (`api/types/network/network.go`), the
//! body of `POST /networks/create`, and the endpoint parts of services (`EndpointSpec`,
//! `Endpoint.Ports`, `Endpoint.VirtualIPs`).
//!
//! Only the control plane exists so far: these objects record which subnet a network has and
//! which addresses tasks and virtual IPs were given; nothing here configures an interface.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::Version;
use super::serde_util::null_as_default;
use super::swarm::Driver;
use super::time::Timestamp;

/// The only driver swarm networks have.
pub const OVERLAY_DRIVER: &str = "overlay";
/// Docker's IPAM driver name.
pub const DEFAULT_IPAM_DRIVER: &str = "default";
/// The name of the network that carries ingress-published ports.
pub const INGRESS_NAME: &str = "ingress";
/// Subnet sizes a network may have: from /16 (1024 blocks) down to /24 (four blocks).
pub const MIN_PREFIX: u8 = 16;
pub const MAX_PREFIX: u8 = 24;

/// Network names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 255 characters.
pub fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 255
        && bytes[0].is_ascii_alphanumeric()
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A swarm network (`swarm.Network`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Network {
    #[serde(rename = "ID")]
    pub id: String,
    pub version: Version,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub spec: NetworkSpec,
    pub driver_state: Driver,
    #[serde(rename = "IPAMOptions")]
    pub ipam_options: IpamOptions,
}

/// `swarm.NetworkSpec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkSpec {
    pub name: String,
    #[serde(deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    pub driver_configuration: Driver,
    #[serde(rename = "IPv6Enabled")]
    pub ipv6_enabled: bool,
    pub internal: bool,
    pub attachable: bool,
    pub ingress: bool,
    #[serde(rename = "IPAMOptions")]
    pub ipam_options: IpamOptions,
    pub scope: String,
}

/// `swarm.IPAMOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamOptions {
    pub driver: Driver,
    #[serde(deserialize_with = "null_as_default")]
    pub configs: Vec<IpamConfig>,
}

/// `swarm.IPAMConfig`: a network's subnet and gateway.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamConfig {
    pub subnet: String,
    pub range: String,
    pub gateway: String,
}

impl Network {
    pub fn subnet(&self) -> &str {
        self.ipam_options
            .configs
            .first()
            .map_or("", |c| c.subnet.as_str())
    }

    pub fn gateway(&self) -> &str {
        self.ipam_options
            .configs
            .first()
            .map_or("", |c| c.gateway.as_str())
    }
}

/// One of a task's networks and the addresses it was given there (`NetworksAttachments`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkAttachment {
    /// The network as it was when the task was attached.
    pub network: Network,
    /// `ADDR/26`: the address and the prefix of its node-local block.
    #[serde(deserialize_with = "null_as_default")]
    pub addresses: Vec<String>,
}

// ---- services' endpoints --------------------------------------------------------------------

/// `swarm.PortConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortConfig {
    pub name: String,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    pub target_port: u32,
    /// 0 in a spec: one is assigned from 30000-32767 (ingress mode).
    pub published_port: u32,
    /// `ingress` (the routing mesh) or `host`.
    pub publish_mode: String,
}

impl PortConfig {
    pub fn is_ingress(&self) -> bool {
        self.publish_mode == "ingress"
    }
}

/// `swarm.EndpointSpec`, as given, with defaults filled in (`Mode` vip, `Protocol` tcp,
/// `PublishMode` ingress).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointSpec {
    /// `vip` or `dnsrr`.
    pub mode: String,
    #[serde(deserialize_with = "null_as_default")]
    pub ports: Vec<PortConfig>,
}

/// `swarm.EndpointVirtualIP`: a service's VIP on one network, with the network's prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct VirtualIp {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    pub addr: String,
}

/// `swarm.Endpoint` of a service: its endpoint spec, its ports with published ports assigned,
/// and one virtual IP per network (none in `dnsrr` mode).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Endpoint {
    pub spec: EndpointSpec,
    #[serde(deserialize_with = "null_as_default")]
    pub ports: Vec<PortConfig>,
    #[serde(rename = "VirtualIPs", deserialize_with = "null_as_default")]
    pub virtual_ips: Vec<VirtualIp>,
}

/// Ingress ports are auto-assigned from this range, as Docker does.
pub const DYNAMIC_PORTS: std::ops::RangeInclusive<u32> = 30000..=32767;

impl EndpointSpec {
    /// Fills defaults and checks every field; the error says what is wrong.
    pub fn normalized(&self) -> Result<EndpointSpec, String> {
        let mode = match self.mode.as_str() {
            "" | "vip" => "vip",
            "dnsrr" => "dnsrr",
            other => {
                return Err(format!(
                    "invalid endpoint mode {other:?}: expected vip or dnsrr"
                ));
            }
        };
        let mut ports = Vec::with_capacity(self.ports.len());
        for p in &self.ports {
            let protocol = match p.protocol.as_str() {
                "" | "tcp" => "tcp",
                "udp" => "udp",
                "sctp" => "sctp",
                other => {
                    return Err(format!(
                        "invalid protocol {other:?}: expected tcp, udp or sctp"
                    ));
                }
            };
            let publish_mode = match p.publish_mode.as_str() {
                "" | "ingress" => "ingress",
                "host" => "host",
                other => {
                    return Err(format!(
                        "invalid publish mode {other:?}: expected ingress or host"
                    ));
                }
            };
            if !(1..=65535).contains(&p.target_port) {
                return Err(format!(
                    "invalid target port {}: expected 1 to 65535",
                    p.target_port
                ));
            }
            if p.published_port > 65535 {
                return Err(format!(
                    "invalid published port {}: expected 0 to 65535",
                    p.published_port
                ));
            }
            if publish_mode == "ingress" && mode == "dnsrr" {
                return Err(
                    "port published with ingress mode can't be used with dnsrr mode".into(),
                );
            }
            let port = PortConfig {
                name: p.name.clone(),
                protocol: protocol.into(),
                target_port: p.target_port,
                published_port: p.published_port,
                publish_mode: publish_mode.into(),
            };
            if port.published_port != 0
                && ports.iter().any(|q: &PortConfig| {
                    q.published_port == port.published_port && q.protocol == port.protocol
                })
            {
                return Err(format!(
                    "port '{}' is published more than once",
                    port.published_port
                ));
            }
            ports.push(port);
        }
        Ok(EndpointSpec {
            mode: mode.into(),
            ports,
        })
    }
}

// ---- the API: POST /networks/create and GET /networks ---------------------------------------

/// The body of `POST /networks/create` (the fields the docker CLI sends).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkCreateRequest {
    pub name: String,
    pub driver: String,
    pub scope: String,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: Option<bool>,
    #[serde(rename = "IPAM")]
    pub ipam: Option<IpamRequest>,
    pub internal: bool,
    pub attachable: bool,
    pub ingress: bool,
    pub config_only: bool,
    pub config_from: Option<serde_json::Value>,
    #[serde(deserialize_with = "null_as_default")]
    pub options: BTreeMap<String, String>,
    #[serde(deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    pub check_duplicate: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamRequest {
    pub driver: String,
    #[serde(deserialize_with = "null_as_default")]
    pub config: Vec<IpamConfigRequest>,
    #[serde(deserialize_with = "null_as_default")]
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamConfigRequest {
    pub subnet: String,
    #[serde(rename = "IPRange")]
    pub ip_range: String,
    pub gateway: String,
    #[serde(deserialize_with = "null_as_default")]
    pub auxiliary_addresses: BTreeMap<String, String>,
}

/// `GET /networks` and `GET /networks/{id}` (`network.Inspect`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkResource {
    pub name: String,
    #[serde(rename = "Id")]
    pub id: String,
    pub created: Timestamp,
    pub scope: String,
    pub driver: String,
    #[serde(rename = "EnableIPv4")]
    pub enable_ipv4: bool,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    pub ipam: IpamResource,
    pub internal: bool,
    pub attachable: bool,
    pub ingress: bool,
    pub config_from: ConfigReference,
    pub config_only: bool,
    pub containers: BTreeMap<String, serde_json::Value>,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub peers: Vec<PeerInfo>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamResource {
    pub driver: String,
    pub options: BTreeMap<String, String>,
    pub config: Vec<IpamConfigResource>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamConfigResource {
    pub subnet: String,
    pub gateway: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ConfigReference {
    pub network: String,
}

/// A node that has the network (`Peers`): its hostname and address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PeerInfo {
    pub name: String,
    #[serde(rename = "IP")]
    pub ip: String,
}

impl NetworkResource {
    /// The API's view of a swarm network; `peers`: the nodes holding addresses in it.
    pub fn of(network: &Network, peers: Vec<PeerInfo>) -> NetworkResource {
        NetworkResource {
            name: network.spec.name.clone(),
            id: network.id.clone(),
            created: network.created_at,
            scope: "swarm".into(),
            driver: network.driver_state.name.clone(),
            enable_ipv4: true,
            enable_ipv6: false,
            ipam: IpamResource {
                driver: DEFAULT_IPAM_DRIVER.into(),
                options: BTreeMap::new(),
                config: network
                    .ipam_options
                    .configs
                    .iter()
                    .map(|c| IpamConfigResource {
                        subnet: c.subnet.clone(),
                        gateway: c.gateway.clone(),
                    })
                    .collect(),
            },
            internal: network.spec.internal,
            attachable: network.spec.attachable,
            ingress: network.spec.ingress,
            config_from: ConfigReference::default(),
            config_only: false,
            containers: BTreeMap::new(),
            options: network.driver_state.options.clone(),
            labels: network.spec.labels.clone(),
            peers,
        }
    }
}

// ---- CIDRs ----------------------------------------------------------------------------------

/// An IPv4 subnet whose host bits are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    /// `198.19.16.0/20`; `None` for anything else (IPv6, host bits set, a bad prefix).
    pub fn parse(text: &str) -> Option<Cidr> {
        let (ip, len) = text.trim().split_once('/')?;
        let base: Ipv4Addr = ip.parse().ok()?;
        let prefix: u8 = len.parse().ok().filter(|l| *l <= 32)?;
        let cidr = Cidr { base, prefix };
        (u32::from(base) & !cidr.mask() == 0).then_some(cidr)
    }

    pub fn mask(self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        }
    }

    pub fn first(self) -> u32 {
        u32::from(self.base)
    }

    /// The last address (broadcast).
    pub fn last(self) -> u32 {
        self.first() | !self.mask()
    }

    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == self.first()
    }

    pub fn overlaps(self, other: Cidr) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::codec;

    #[test]
    fn t10_cidrs_parse_strictly_and_overlap() {
        let a = Cidr::parse("198.19.16.0/20").unwrap();
        assert_eq!(a.to_string(), "198.19.16.0/20");
        assert!(a.contains("198.19.31.255".parse().unwrap()));
        assert!(!a.contains("198.19.32.0".parse().unwrap()));
        assert!(Cidr::parse("198.19.16.1/20").is_none(), "host bits set");
        assert!(Cidr::parse("fd00::/64").is_none());
        assert!(Cidr::parse("198.19.16.0").is_none());
        assert!(Cidr::parse("198.19.16.0/33").is_none());
        let b = Cidr::parse("198.19.24.0/24").unwrap();
        let c = Cidr::parse("198.19.32.0/24").unwrap();
        assert!(a.overlaps(b) && b.overlaps(a));
        assert!(!a.overlaps(c));
    }

    #[test]
    fn t10_endpoint_specs_get_defaults_and_bad_ones_say_why() {
        let spec: EndpointSpec = serde_json::from_value(json!({
            "Ports": [{"TargetPort": 80, "PublishedPort": 8080}, {"TargetPort": 53, "Protocol": "udp", "PublishMode": "host"}]
        }))
        .unwrap();
        let n = spec.normalized().unwrap();
        assert_eq!(n.mode, "vip");
        assert_eq!(
            (
                n.ports[0].protocol.as_str(),
                n.ports[0].publish_mode.as_str()
            ),
            ("tcp", "ingress")
        );
        assert_eq!(n.ports[1].publish_mode, "host");
        let bad = |v: serde_json::Value, want: &str| {
            let spec: EndpointSpec = serde_json::from_value(v).unwrap();
            let e = spec.normalized().unwrap_err();
            assert!(e.contains(want), "{e}");
        };
        bad(json!({"Mode": "lb"}), "invalid endpoint mode");
        bad(json!({"Ports": [{"TargetPort": 0}]}), "invalid target port");
        bad(
            json!({"Ports": [{"TargetPort": 1, "Protocol": "icmp"}]}),
            "invalid protocol",
        );
        bad(
            json!({"Mode": "dnsrr", "Ports": [{"TargetPort": 80}]}),
            "can't be used with dnsrr",
        );
        bad(
            json!({"Ports": [{"TargetPort": 80, "PublishedPort": 81}, {"TargetPort": 90, "PublishedPort": 81}]}),
            "more than once",
        );
    }

    #[test]
    fn t10_networks_survive_both_encodings() {
        let n = Network {
            id: "n1".into(),
            spec: NetworkSpec {
                name: "front".into(),
                labels: [("a".to_string(), "b".to_string())].into(),
                ..Default::default()
            },
            ipam_options: IpamOptions {
                configs: vec![IpamConfig {
                    subnet: "198.19.16.0/20".into(),
                    gateway: "198.19.16.1".into(),
                    ..Default::default()
                }],
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(
            codec::decode::<Network>(&codec::encode(&n).unwrap()).unwrap(),
            n
        );
        let v = serde_json::to_value(&n).unwrap();
        assert_eq!(v["IPAMOptions"]["Configs"][0]["Subnet"], "198.19.16.0/20");
        let r = serde_json::to_value(NetworkResource::of(&n, vec![])).unwrap();
        assert_eq!(r["Id"], "n1");
        assert_eq!(r["IPAM"]["Config"][0]["Gateway"], "198.19.16.1");
        assert_eq!(r["Scope"], "swarm");
    }
}
