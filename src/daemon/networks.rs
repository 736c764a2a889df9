//! `/networks`: the swarm's networks as the API sees them. Requests are checked here (so a
//! bad one gets a 400 that names the option), then go into the Raft log; reads come from a
//! manager's state. Also: service specs' network names resolved to IDs before they are stored.
//!
//! Outside a swarm (or on a worker) there are no networks to show: local containers run
//! with network mode `none`, so `GET /networks` answers `[]` and everything else Docker's 503
//! "not a swarm manager".

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::services::new_id;
use super::swarm::{SwarmPlane, propose};
use crate::api::ApiError;
use crate::cluster::addressing::NewNetwork;
use crate::cluster::{Command, State};
use crate::types::network::{
    DEFAULT_IPAM_DRIVER, Network, NetworkCreateRequest, NetworkResource, OVERLAY_DRIVER, PeerInfo,
};

impl SwarmPlane {
    pub async fn network_create(&self, request: NetworkCreateRequest) -> Result<Value, ApiError> {
        let cluster = self.manager()?;
        let network = check_create(&request)?;
        if cluster.state().network_named(&network.name).is_some() {
            return Err(ApiError::conflict(format!(
                "network with name {} already exists",
                network.name
            )));
        }
        let id = new_id()?;
        propose(
            &cluster,
            Command::CreateNetwork {
                id: id.clone(),
                network,
            },
        )
        .await?;
        Ok(json!({"Id": id, "Warning": ""}))
    }

    pub async fn networks(
        &self,
        filters: &BTreeMap<String, Vec<String>>,
    ) -> Result<Vec<NetworkResource>, ApiError> {
        if let Some(k) = filters.keys().find(|k| {
            !["name", "id", "driver", "scope", "type", "label", "dangling"].contains(&k.as_str())
        }) {
            return Err(ApiError::bad_request(format!("invalid filter '{k}'")));
        }
        // Not a manager (outside a swarm, or a worker): no swarm networks to show.
        if self.manager().is_err() {
            return Ok(Vec::new());
        }
        let (_, state) = self.read(false).await?;
        Ok(state
            .networks
            .values()
            .filter(|n| network_matches(&state, n, filters))
            .map(|n| resource(&state, n))
            .collect())
    }

    pub async fn network(&self, reference: &str) -> Result<NetworkResource, ApiError> {
        let (_, state) = self.read(false).await?;
        let network = resolve_network(&state, reference)?;
        Ok(resource(&state, network))
    }

    pub async fn network_remove(&self, reference: &str) -> Result<(), ApiError> {
        let cluster = self.manager()?;
        let id = resolve_network(&cluster.state(), reference)?.id.clone();
        propose(&cluster, Command::RemoveNetwork { id }).await
    }

    /// Removes every network no service or task uses (never `ingress`, as Docker).
    pub async fn network_prune(
        &self,
        filters: &BTreeMap<String, Vec<String>>,
    ) -> Result<Value, ApiError> {
        if let Some(k) = filters.keys().find(|k| k.as_str() != "label") {
            return Err(ApiError::bad_request(format!(
                "invalid filter '{k}' (network prune takes label filters)"
            )));
        }
        let (cluster, state) = self.read(false).await?;
        let mut deleted = Vec::new();
        for network in state.networks.values() {
            if network.spec.ingress
                || !network_matches(&state, network, filters)
                || crate::cluster::addressing::network_in_use(&state, &network.id).is_err()
            {
                continue;
            }
            let id = network.id.clone();
            match propose(&cluster, Command::RemoveNetwork { id }).await {
                Ok(()) => deleted.push(network.spec.name.clone()),
                // Taken into use meanwhile: it stays.
                Err(e) if e.status.as_u16() == 409 || e.status.as_u16() == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(json!({"NetworksDeleted": deleted}))
    }
}

/// The request as a network to create; Docker's options swarm does not have are refused
/// with the option's name.
fn check_create(r: &NetworkCreateRequest) -> Result<NewNetwork, ApiError> {
    let bad = |m: String| Err(ApiError::bad_request(m));
    if r.name.trim().is_empty() {
        return bad("a network needs a name".into());
    }
    if !crate::types::network::valid_name(&r.name) {
        return bad(format!(
            "invalid network name {:?}: only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed",
            r.name
        ));
    }
    match r.driver.as_str() {
        "" | OVERLAY_DRIVER => {}
        other => {
            return bad(format!(
                "driver {other} not supported: swarm networks use the overlay driver"
            ));
        }
    }
    match r.scope.as_str() {
        "" | "swarm" => {}
        other => {
            return bad(format!(
                "scope {other} not supported: networks are swarm-scoped"
            ));
        }
    }
    if r.enable_ipv6 == Some(true) {
        return bad("IPv6 networks are not supported".into());
    }
    if r.internal {
        return bad("internal networks are not supported".into());
    }
    if r.config_only || r.config_from.as_ref().is_some_and(|c| !c.is_null()) {
        return bad("config-only networks (--config-only, --config-from) are not supported".into());
    }
    if let Some(option) = r.options.keys().next() {
        return bad(format!("driver option {option} is not supported"));
    }
    let (mut subnet, mut gateway) = (String::new(), String::new());
    if let Some(ipam) = &r.ipam {
        match ipam.driver.as_str() {
            "" | DEFAULT_IPAM_DRIVER => {}
            other => return bad(format!("IPAM driver {other} not supported")),
        }
        if !ipam.options.is_empty() {
            return bad("IPAM options (--ipam-opt) are not supported".into());
        }
        if ipam.config.len() > 1 {
            return bad("a network has one subnet: give --subnet at most once".into());
        }
        if let Some(c) = ipam.config.first() {
            if !c.ip_range.is_empty() {
                return bad("--ip-range is not supported: addresses come from per-node blocks of the subnet".into());
            }
            if !c.auxiliary_addresses.is_empty() {
                return bad("--aux-address is not supported".into());
            }
            if c.subnet.contains(':') || c.gateway.contains(':') {
                return bad("IPv6 subnets are not supported".into());
            }
            if c.subnet.is_empty() && !c.gateway.is_empty() {
                return bad("--gateway needs --subnet".into());
            }
            if !c.subnet.is_empty() {
                crate::cluster::addressing::parse_subnet(&c.subnet)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
            }
            subnet = c.subnet.clone();
            gateway = c.gateway.clone();
        }
    }
    Ok(NewNetwork {
        name: r.name.clone(),
        labels: r.labels.clone(),
        attachable: r.attachable,
        ingress: r.ingress,
        subnet,
        gateway,
    })
}

/// A network by full ID, by name, or by a unique ID prefix (Docker's order).
pub fn resolve_network<'a>(state: &'a State, reference: &str) -> Result<&'a Network, ApiError> {
    let not_found = || ApiError::not_found(format!("network {reference} not found"));
    if reference.is_empty() {
        return Err(not_found());
    }
    if let Some(n) = state.networks.get(reference) {
        return Ok(n);
    }
    if let Some(n) = state.network_named(reference) {
        return Ok(n);
    }
    let found: Vec<&Network> = state
        .networks
        .values()
        .filter(|n| n.id.starts_with(reference))
        .collect();
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err(not_found()),
        many => Err(ApiError::bad_request(format!(
            "network {reference} is ambiguous ({} matches found)",
            many.len()
        ))),
    }
}

/// The nodes that hold addresses in the network (`Peers`).
fn resource(state: &State, network: &Network) -> NetworkResource {
    let mut peers = Vec::new();
    if let Some(pool) = state.pools.get(&network.id) {
        let owners: std::collections::BTreeSet<&str> = pool
            .blocks
            .values()
            .filter(|b| !b.used.is_empty())
            .map(|b| b.owner.as_str())
            .collect();
        for owner in owners {
            if let Some(node) = state.nodes.get(owner) {
                peers.push(PeerInfo {
                    name: node.description.hostname.clone(),
                    ip: node.status.addr.clone(),
                });
            }
        }
    }
    NetworkResource::of(network, peers)
}

/// Docker's network filters: `name` and `id` match substrings, `driver` and `scope`
/// exactly, `type` custom|builtin (swarm networks are all custom), `label` `KEY` or
/// `KEY=VALUE`, `dangling` whether nothing uses it.
fn network_matches(state: &State, n: &Network, filters: &BTreeMap<String, Vec<String>>) -> bool {
    filters.iter().all(|(key, values)| {
        values.is_empty()
            || values.iter().any(|v| match key.as_str() {
                "name" => n.spec.name.contains(v.as_str()),
                "id" => n.id.contains(v.as_str()),
                "driver" => n.driver_state.name == *v,
                "scope" => v == "swarm",
                "type" => v == "custom",
                "label" => match v.split_once('=') {
                    Some((k, val)) => n.spec.labels.get(k).is_some_and(|x| x == val),
                    None => n.spec.labels.contains_key(v),
                },
                "dangling" => {
                    let unused = crate::cluster::addressing::network_in_use(state, &n.id).is_ok();
                    matches!(v.as_str(), "1" | "true") == unused
                }
                _ => false,
            })
    })
}

/// Rewrites a service spec's network references to IDs, as Docker stores them: the
/// deprecated top-level `Networks` moves into `TaskTemplate.Networks`, names and ID prefixes
/// become full IDs. Unknown and repeated networks are a 400 naming them.
pub fn resolve_service_networks(state: &State, spec: &mut Value) -> Result<(), ApiError> {
    let Some(object) = spec.as_object_mut() else {
        return Ok(());
    };
    let top = object.remove("Networks").filter(|v| !v.is_null());
    let template = object
        .entry("TaskTemplate")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| {
            ApiError::bad_request("invalid service spec: TaskTemplate is not an object")
        })?;
    let inner = template.get("Networks").filter(|v| !v.is_null()).cloned();
    let list = match (inner, top) {
        (Some(inner), Some(top))
            if inner.as_array().is_some_and(|a| !a.is_empty())
                && top.as_array().is_some_and(|a| !a.is_empty()) =>
        {
            return Err(ApiError::bad_request(
                "give a service's networks in TaskTemplate.Networks or in the deprecated Networks, not both",
            ));
        }
        (Some(inner), _) if inner.as_array().is_some_and(|a| !a.is_empty()) => inner,
        (_, Some(top)) => top,
        (inner, None) => inner.unwrap_or(Value::Null),
    };
    let Some(entries) = list.as_array() else {
        if !list.is_null() {
            return Err(ApiError::bad_request(
                "invalid service spec: Networks is not a list",
            ));
        }
        return Ok(());
    };
    let mut resolved = Vec::with_capacity(entries.len());
    let mut seen = Vec::new();
    for entry in entries {
        let mut entry = entry.clone();
        let target = entry
            .get("Target")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let network = resolve_network(state, &target)
            .map_err(|_| ApiError::bad_request(format!("network {target} not found")))?;
        if seen.contains(&network.id) {
            return Err(ApiError::bad_request(format!(
                "network {} is attached more than once",
                network.spec.name
            )));
        }
        seen.push(network.id.clone());
        entry["Target"] = json!(network.id);
        resolved.push(entry);
    }
    if resolved.is_empty() {
        template.remove("Networks");
    } else {
        template.insert("Networks".into(), Value::Array(resolved));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::network::{IpamConfigRequest, IpamRequest, NetworkSpec};

    fn state_with(networks: &[(&str, &str)]) -> State {
        let mut state = State::default();
        for (id, name) in networks {
            state.networks.insert(
                id.to_string(),
                Network {
                    id: id.to_string(),
                    spec: NetworkSpec {
                        name: name.to_string(),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            );
        }
        state
    }

    #[test]
    fn t10_service_networks_resolve_to_ids_and_the_old_field_folds_in() {
        let state = state_with(&[("aaaa1111", "front"), ("bbbb2222", "back")]);
        let mut spec = json!({"Name": "web", "TaskTemplate": {"ContainerSpec": {"Image": "x"},
            "Networks": [{"Target": "front", "Aliases": ["w"]}, {"Target": "bbbb"}]}});
        resolve_service_networks(&state, &mut spec).unwrap();
        assert_eq!(
            spec["TaskTemplate"]["Networks"],
            json!([{"Target": "aaaa1111", "Aliases": ["w"]}, {"Target": "bbbb2222"}])
        );
        let mut old = json!({"Name": "web", "Networks": [{"Target": "back"}],
            "TaskTemplate": {"ContainerSpec": {"Image": "x"}}});
        resolve_service_networks(&state, &mut old).unwrap();
        assert!(old.get("Networks").is_none());
        assert_eq!(
            old["TaskTemplate"]["Networks"],
            json!([{"Target": "bbbb2222"}])
        );
        let mut none = json!({"Name": "web", "TaskTemplate": {"ContainerSpec": {"Image": "x"}}});
        resolve_service_networks(&state, &mut none).unwrap();
        assert!(none["TaskTemplate"].get("Networks").is_none());
    }

    #[test]
    fn t10_unknown_repeated_or_doubly_given_networks_are_a_400_naming_them() {
        let state = state_with(&[("aaaa1111", "front")]);
        let cases = [
            (
                json!({"TaskTemplate": {"Networks": [{"Target": "nope"}]}}),
                "network nope not found",
            ),
            (
                json!({"TaskTemplate": {"Networks": [{"Target": "front"}, {"Target": "aaaa1111"}]}}),
                "network front is attached more than once",
            ),
            (
                json!({"Networks": [{"Target": "front"}],
                       "TaskTemplate": {"Networks": [{"Target": "front"}]}}),
                "not both",
            ),
            (
                json!({"TaskTemplate": {"Networks": {"Target": "front"}}}),
                "not a list",
            ),
        ];
        for (mut spec, want) in cases {
            let e = resolve_service_networks(&state, &mut spec).unwrap_err();
            assert_eq!(e.status.as_u16(), 400);
            assert!(e.message.contains(want), "{}: {}", spec, e.message);
        }
    }

    #[test]
    fn t10_create_requests_refuse_what_swarm_networks_lack() {
        let ok = |r: NetworkCreateRequest| check_create(&r).unwrap();
        let n = ok(NetworkCreateRequest {
            name: "front".into(),
            driver: "overlay".into(),
            attachable: true,
            ipam: Some(IpamRequest {
                driver: "default".into(),
                config: vec![IpamConfigRequest {
                    subnet: "198.19.64.0/24".into(),
                    gateway: "198.19.64.254".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(
            (n.subnet.as_str(), n.gateway.as_str(), n.attachable),
            ("198.19.64.0/24", "198.19.64.254", true)
        );
        let base = || NetworkCreateRequest {
            name: "n".into(),
            ..Default::default()
        };
        let with_config = |c: IpamConfigRequest| NetworkCreateRequest {
            ipam: Some(IpamRequest {
                config: vec![c],
                ..Default::default()
            }),
            ..base()
        };
        let cases = [
            (
                NetworkCreateRequest {
                    driver: "bridge".into(),
                    ..base()
                },
                "driver bridge not supported",
            ),
            (
                NetworkCreateRequest {
                    name: String::new(),
                    ..base()
                },
                "needs a name",
            ),
            (
                NetworkCreateRequest {
                    scope: "local".into(),
                    ..base()
                },
                "scope local not supported",
            ),
            (
                NetworkCreateRequest {
                    enable_ipv6: Some(true),
                    ..base()
                },
                "IPv6",
            ),
            (
                NetworkCreateRequest {
                    internal: true,
                    ..base()
                },
                "internal",
            ),
            (
                NetworkCreateRequest {
                    options: [("encrypted".to_string(), String::new())].into(),
                    ..base()
                },
                "driver option encrypted",
            ),
            (
                with_config(IpamConfigRequest {
                    subnet: "198.19.64.0/24".into(),
                    ip_range: "198.19.64.0/25".into(),
                    ..Default::default()
                }),
                "--ip-range is not supported",
            ),
            (
                with_config(IpamConfigRequest {
                    subnet: "fd00::/64".into(),
                    ..Default::default()
                }),
                "IPv6",
            ),
            (
                with_config(IpamConfigRequest {
                    gateway: "198.19.64.1".into(),
                    ..Default::default()
                }),
                "--gateway needs --subnet",
            ),
            (
                with_config(IpamConfigRequest {
                    subnet: "198.19.64.0/26".into(),
                    ..Default::default()
                }),
                "/16 to /24",
            ),
        ];
        for (request, want) in cases {
            let e = check_create(&request).unwrap_err();
            assert_eq!(e.status.as_u16(), 400);
            assert!(e.message.contains(want), "{request:?}: {}", e.message);
        }
    }
}
