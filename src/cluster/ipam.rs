//! Address management of one network (pure, deterministic): its subnet carved into /26
//! blocks handed to owners on demand, addresses handed out within a block round-robin.
//!
//! ```text
//!  198.19.16.0/20 ── 64 blocks of /26 ──┬─ block 0  198.19.16.0/26   owner "vips"
//!                                       ├─ block 1  198.19.16.64/26  owner node n1
//!                                       ├─ block 2  198.19.16.128/26 owner node n2
//!                                       └─ …        unowned until an owner needs one
//!  within a block: .0 unused, .1 the owner's gateway, .2 – .62 addresses, .63 broadcast
//! ```
//!
//! Blocks follow Calico's affinity blocks: a node's task addresses come from its own blocks,
//! so a later data plane routes one /26 per block to its node instead of one /32 per task.
//! An owner is a node ID, or [`VIPS`] for services' virtual IPs.
//!
//! Rules, the same on every replica (only `BTreeMap`s, no randomness):
//! * an owner gets an address from its lowest-numbered block with a free one; within a block,
//!   the next free address after the last one handed out (so a freed address is not at once
//!   given to someone else, whose peers may still have the old owner cached);
//! * an owner with no block with room gets the lowest unowned block; if every block is owned,
//!   the lowest block whose addresses are all free is taken from its owner. Empty blocks are
//!   released only then, when an allocation needs one, so churn does not move blocks (and a
//!   data plane's routes) back and forth;
//! * `claim` applies a choice made elsewhere (the orchestrator's, carried in a command) under
//!   exactly these rules, and refuses one they would not allow; [`Pool::allocate`] is
//!   [`Pool::choose`] followed by `claim`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::types::network::Cidr;

/// The prefix length of a block.
pub const BLOCK_PREFIX: u8 = 26;
/// Addresses in a block.
pub const BLOCK_SIZE: u32 = 1 << (32 - BLOCK_PREFIX);
/// The owner of the blocks services' virtual IPs come from.
pub const VIPS: &str = "vips";
/// Offsets within a block that are handed out: not the block's network address (0), not its
/// gateway (1), not its broadcast address (63).
const FIRST_OFFSET: u32 = 2;
const LAST_OFFSET: u32 = BLOCK_SIZE - 2;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    #[error("no free address in network {network}")]
    Exhausted { network: String },
    #[error("address {addr} is not in network {network}'s subnet {subnet}")]
    OutOfSubnet {
        addr: Ipv4Addr,
        network: String,
        subnet: String,
    },
    #[error("address {addr} is reserved in network {network}")]
    Reserved { addr: Ipv4Addr, network: String },
    #[error("address {addr} is already in use in network {network}")]
    InUse { addr: Ipv4Addr, network: String },
    #[error("address {addr} lies in a block of {owner}, not of {asked}")]
    NotOwner {
        addr: Ipv4Addr,
        owner: String,
        asked: String,
    },
}

/// One /26 of a network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub owner: String,
    /// Offsets in use.
    pub used: BTreeSet<u32>,
    /// Where the next search starts (one past the last offset handed out).
    pub next: u32,
}

/// The address space of one network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// The network's name, for messages.
    pub network: String,
    pub subnet_base: u32,
    pub subnet_prefix: u8,
    /// The network's gateway (`IPAMOptions`), never handed out.
    pub gateway: u32,
    /// By block number (0 = the subnet's first /26). Blocks never owned are absent.
    pub blocks: BTreeMap<u32, Block>,
}

impl Pool {
    /// A pool for `subnet` (a /26 or larger) with `gateway` reserved.
    pub fn new(network: &str, subnet: Cidr, gateway: Ipv4Addr) -> Pool {
        Pool {
            network: network.to_owned(),
            subnet_base: subnet.first(),
            subnet_prefix: subnet.prefix.min(BLOCK_PREFIX),
            gateway: u32::from(gateway),
            blocks: BTreeMap::new(),
        }
    }

    pub fn subnet(&self) -> Cidr {
        Cidr {
            base: Ipv4Addr::from(self.subnet_base),
            prefix: self.subnet_prefix,
        }
    }

    pub fn block_count(&self) -> u32 {
        1 << (BLOCK_PREFIX - self.subnet_prefix)
    }

    /// The block `n` as a CIDR.
    pub fn block_cidr(&self, n: u32) -> Cidr {
        Cidr {
            base: Ipv4Addr::from(self.subnet_base + n * BLOCK_SIZE),
            prefix: BLOCK_PREFIX,
        }
    }

    fn addr(&self, block: u32, offset: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.subnet_base + block * BLOCK_SIZE + offset)
    }

    fn usable(&self, block: u32, offset: u32) -> bool {
        (FIRST_OFFSET..=LAST_OFFSET).contains(&offset)
            && u32::from(self.addr(block, offset)) != self.gateway
    }

    /// The next free usable offset of `block` at or after its cursor, wrapping.
    fn free_in(&self, n: u32, block: Option<&Block>) -> Option<u32> {
        let start = block.map_or(FIRST_OFFSET, |b| b.next);
        let span = LAST_OFFSET - FIRST_OFFSET + 1;
        (0..span)
            .map(|i| FIRST_OFFSET + (start.saturating_sub(FIRST_OFFSET) + i) % span)
            .find(|&o| self.usable(n, o) && block.is_none_or(|b| !b.used.contains(&o)))
    }

    /// The address `owner` would get next; changes nothing.
    pub fn choose(&self, owner: &str) -> Result<Ipv4Addr, IpamError> {
        let own = self
            .blocks
            .iter()
            .filter(|(_, b)| b.owner == owner)
            .find_map(|(&n, b)| self.free_in(n, Some(b)).map(|o| (n, o)));
        let unowned = || {
            (0..self.block_count())
                .filter(|n| !self.blocks.contains_key(n))
                .find_map(|n| self.free_in(n, None).map(|o| (n, o)))
        };
        let released = || {
            self.blocks
                .iter()
                .filter(|(_, b)| b.owner != owner && b.used.is_empty())
                .find_map(|(&n, _)| self.free_in(n, None).map(|o| (n, o)))
        };
        own.or_else(unowned)
            .or_else(released)
            .map(|(n, o)| self.addr(n, o))
            .ok_or_else(|| IpamError::Exhausted {
                network: self.network.clone(),
            })
    }

    /// Takes `addr` for `owner`, giving it the address's block if that is unowned or empty.
    pub fn claim(&mut self, owner: &str, addr: Ipv4Addr) -> Result<(), IpamError> {
        let (n, offset) = self.locate(addr)?;
        if !self.usable(n, offset) {
            return Err(IpamError::Reserved {
                addr,
                network: self.network.clone(),
            });
        }
        if let Some(block) = self.blocks.get(&n) {
            if block.used.contains(&offset) {
                return Err(IpamError::InUse {
                    addr,
                    network: self.network.clone(),
                });
            }
            if block.owner != owner && !block.used.is_empty() {
                return Err(IpamError::NotOwner {
                    addr,
                    owner: block.owner.clone(),
                    asked: owner.to_owned(),
                });
            }
        }
        let block = self.blocks.entry(n).or_default();
        if block.owner != owner {
            // Unowned, or empty and released to this owner: a fresh start.
            *block = Block {
                owner: owner.to_owned(),
                ..Default::default()
            };
        }
        block.used.insert(offset);
        block.next = offset + 1;
        Ok(())
    }

    /// Chooses and claims.
    pub fn allocate(&mut self, owner: &str) -> Result<Ipv4Addr, IpamError> {
        let addr = self.choose(owner)?;
        self.claim(owner, addr)?;
        Ok(addr)
    }

    /// Frees `addr`; its block stays with its owner until another allocation needs it.
    /// Freeing an address that is not in use changes nothing.
    pub fn release(&mut self, addr: Ipv4Addr) {
        if let Ok((n, offset)) = self.locate(addr)
            && let Some(block) = self.blocks.get_mut(&n)
        {
            block.used.remove(&offset);
        }
    }

    /// The owner of the block holding `addr`, if any.
    pub fn owner_of(&self, addr: Ipv4Addr) -> Option<&str> {
        let (n, _) = self.locate(addr).ok()?;
        self.blocks.get(&n).map(|b| b.owner.as_str())
    }

    pub fn in_use(&self, addr: Ipv4Addr) -> bool {
        self.locate(addr)
            .ok()
            .and_then(|(n, o)| self.blocks.get(&n).map(|b| b.used.contains(&o)))
            .unwrap_or(false)
    }

    /// Block number and offset of `addr`.
    fn locate(&self, addr: Ipv4Addr) -> Result<(u32, u32), IpamError> {
        if !self.subnet().contains(addr) {
            return Err(IpamError::OutOfSubnet {
                addr,
                network: self.network.clone(),
                subnet: self.subnet().to_string(),
            });
        }
        let rel = u32::from(addr) - self.subnet_base;
        Ok((rel / BLOCK_SIZE, rel % BLOCK_SIZE))
    }
}

/// `ADDR/PREFIX` → the address.
pub fn addr_of(text: &str) -> Option<Ipv4Addr> {
    text.split('/').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(subnet: &str) -> Pool {
        let cidr = Cidr::parse(subnet).unwrap();
        Pool::new("front", cidr, Ipv4Addr::from(cidr.first() + 1))
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn t10_owners_get_their_own_blocks_and_skip_reserved_addresses() {
        let mut p = pool("198.19.16.0/20");
        assert_eq!(p.block_count(), 64);
        assert_eq!(p.allocate(VIPS).unwrap(), ip("198.19.16.2"));
        assert_eq!(p.allocate("n1").unwrap(), ip("198.19.16.66"));
        assert_eq!(p.allocate("n2").unwrap(), ip("198.19.16.130"));
        assert_eq!(p.allocate("n1").unwrap(), ip("198.19.16.67"));
        assert_eq!(p.owner_of(ip("198.19.16.70")), Some("n1"));
        assert_eq!(p.block_cidr(1).to_string(), "198.19.16.64/26");
        // 61 per block: .2 – .62; then the owner gets a second block.
        for _ in 0..59 {
            p.allocate("n1").unwrap();
        }
        assert!(p.in_use(ip("198.19.16.126")));
        assert!(!p.in_use(ip("198.19.16.127")), "broadcast");
        assert_eq!(p.allocate("n1").unwrap(), ip("198.19.16.194"));
        for reserved in ["198.19.16.64", "198.19.16.65", "198.19.16.127"] {
            let mut q = pool("198.19.16.0/20");
            assert!(matches!(
                q.claim("n1", ip(reserved)),
                Err(IpamError::Reserved { .. })
            ));
        }
    }

    #[test]
    fn t10_a_custom_gateway_is_never_handed_out() {
        let cidr = Cidr::parse("198.19.40.0/24").unwrap();
        let mut p = Pool::new("g", cidr, ip("198.19.40.3"));
        assert_eq!(p.allocate("n1").unwrap(), ip("198.19.40.2"));
        assert_eq!(p.allocate("n1").unwrap(), ip("198.19.40.4"));
    }

    #[test]
    fn t10_round_robin_does_not_reuse_a_freed_address_at_once() {
        let mut p = pool("198.19.16.0/24");
        let a = p.allocate("n1").unwrap();
        let b = p.allocate("n1").unwrap();
        p.release(a);
        let c = p.allocate("n1").unwrap();
        assert_ne!(c, a);
        assert_eq!(u32::from(c), u32::from(b) + 1);
        // It comes back once the cursor wraps round.
        let mut seen = vec![b, c];
        for _ in 0..58 {
            seen.push(p.allocate("n1").unwrap());
        }
        assert_eq!(p.allocate("n1").unwrap(), a);
        let distinct: BTreeSet<_> = seen.iter().collect();
        assert_eq!(distinct.len(), seen.len(), "no address twice");
    }

    #[test]
    fn t10_exhaustion_is_an_error_and_empty_blocks_are_released_only_on_demand() {
        // A /24: four blocks, 244 addresses.
        let mut p = pool("198.19.16.0/24");
        let mut n1 = Vec::new();
        for _ in 0..61 {
            n1.push(p.allocate("n1").unwrap());
        }
        for owner in ["n2", "n3", "n4"] {
            for _ in 0..61 {
                p.allocate(owner).unwrap();
            }
        }
        let e = p.allocate("n5").unwrap_err();
        assert_eq!(e.to_string(), "no free address in network front");
        assert_eq!(p.allocate("n1").unwrap_err(), e);
        // n1's block empties: it stays n1's until someone needs it.
        for a in &n1 {
            p.release(*a);
        }
        assert_eq!(p.owner_of(n1[0]), Some("n1"));
        let got = p.allocate("n5").unwrap();
        assert_eq!(p.owner_of(got), Some("n5"));
        assert_eq!(p.blocks[&0].used.len(), 1);
        // A claim into someone else's block that is in use is refused.
        assert!(matches!(
            p.claim("n2", ip("198.19.16.10")),
            Err(IpamError::NotOwner { .. })
        ));
        assert!(matches!(p.claim("n5", got), Err(IpamError::InUse { .. })));
        assert!(matches!(
            p.claim("n5", ip("198.19.17.2")),
            Err(IpamError::OutOfSubnet { .. })
        ));
    }

    #[test]
    fn t10_choose_then_claim_is_allocate_and_replicas_agree() {
        let mut a = pool("198.19.16.0/22");
        let mut b = pool("198.19.16.0/22");
        let owners = ["n1", "n2", VIPS, "n1", "n3", "n2", "n1"];
        let mut held = Vec::new();
        for i in 0..400 {
            let owner = owners[i % owners.len()];
            if i % 3 == 2
                && let Some(addr) = held.pop()
            {
                a.release(addr);
                b.release(addr);
                continue;
            }
            let chosen = a.choose(owner);
            let got = a.allocate(owner);
            assert_eq!(chosen, got);
            if let Ok(addr) = got {
                b.claim(owner, addr).unwrap();
                held.insert(0, addr);
            }
            assert_eq!(a, b);
        }
        // Every used address is in exactly one block and no address is held twice.
        let distinct: BTreeSet<_> = held.iter().collect();
        assert_eq!(distinct.len(), held.len());
        let used: usize = a.blocks.values().map(|b| b.used.len()).sum();
        assert_eq!(used, held.len());
    }
}
