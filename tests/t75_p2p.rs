//! t75: the p2p transport between real nodes on 127.0.0.1 (TCP, Noise, Yamux).
//!
//! Each test starts a few nodes in this process, each on its own port, each with a small
//! "upper layer" task that answers Raft and RPC requests with an echo and hands everything
//! else (join requests, gossip, connection events) to the test. Every wait is bounded.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use swarm::p2p::{Client, Inbound, Multiaddr, NodeKey, P2p, P2pConfig, P2pError, PeerId, Topic};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Ceiling for any one test.
const TEST_LIMIT: Duration = Duration::from_secs(40);
/// Ceiling for "eventually" conditions inside a test.
const SETTLE: Duration = Duration::from_secs(10);

/// A request asking the echo responder for a 2 MiB reply.
const BIG_REPLY: &[u8] = b"please reply with 2 MiB";

fn fast_config() -> P2pConfig {
    let mut config = P2pConfig::new(swarm::p2p::parse_addr("127.0.0.1:0").unwrap());
    config.request_timeout = Duration::from_secs(8);
    config.dial_timeout = Duration::from_secs(2);
    config.redial_interval = Duration::from_millis(200);
    config.guest_timeout = Duration::from_secs(5);
    config.gossip_heartbeat = Duration::from_millis(200);
    config
}

struct Node {
    name: &'static str,
    client: Client,
    peer: PeerId,
    addr: Multiaddr,
    /// Everything but Raft/RPC requests, which the echo responder answers.
    seen: mpsc::UnboundedReceiver<Inbound>,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
}

impl Node {
    async fn start(name: &'static str) -> Node {
        Node::start_with(name, NodeKey::generate(), fast_config()).await
    }

    async fn start_with(name: &'static str, key: NodeKey, config: P2pConfig) -> Node {
        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let (client, mut events) =
            P2p::spawn(config, &key, shutdown.clone(), &mut tasks).expect("start p2p");
        let addr = client.listen_addrs().await.expect("listen addrs")[0].clone();
        let (seen_tx, seen) = mpsc::unbounded_channel();
        tasks.spawn(async move {
            while let Some(item) = events.recv().await {
                match item {
                    Inbound::RaftRequest { bytes, reply, .. } => {
                        let _ = reply.send(echo(b"raft:", &bytes));
                    }
                    Inbound::RpcRequest { bytes, reply, .. } => {
                        let _ = reply.send(echo(b"rpc:", &bytes));
                    }
                    other => {
                        let _ = seen_tx.send(other);
                    }
                }
            }
        });
        eprintln!("    {name} is {} at {addr}", key.peer_id());
        Node {
            name,
            client,
            peer: key.peer_id(),
            addr,
            seen,
            shutdown,
            tasks,
        }
    }

    async fn stop(mut self) {
        self.shutdown.cancel();
        // The echo task ends when the loop drops its event sender.
        while self.tasks.join_next().await.is_some() {}
    }

    /// Makes `other` a member here.
    async fn trust(&self, other: &Node) {
        self.client
            .add_member(other.peer, other.addr.clone())
            .await
            .unwrap();
    }

    /// Waits for the next item other than connection events that `keep` selects.
    async fn next_seen(&mut self, mut keep: impl FnMut(&Inbound) -> bool) -> Inbound {
        let name = self.name;
        tokio::time::timeout(SETTLE, async {
            loop {
                let item = self.seen.recv().await.expect("node stopped");
                if keep(&item) {
                    return item;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{name}: expected item never came"))
    }

    /// Gossip received so far (non-blocking), discarding everything else.
    fn drain_gossip(&mut self) -> Vec<(PeerId, Vec<u8>)> {
        let mut out = Vec::new();
        while let Ok(item) = self.seen.try_recv() {
            if let Inbound::Gossip { source, bytes, .. } = item {
                out.push((source, bytes));
            }
        }
        out
    }
}

fn echo(tag: &[u8], bytes: &[u8]) -> Vec<u8> {
    if bytes == BIG_REPLY {
        return vec![1; 2 << 20];
    }
    let mut out = tag.to_vec();
    out.extend_from_slice(bytes);
    out
}

/// Retries a Raft ping from `from` to `to` until it is answered (the two sides promote each
/// other at slightly different moments; a member connection replaces the first one).
async fn until_connected(from: &Node, to: &Node) {
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        match from.client.request_raft(to.peer, b"ping".to_vec()).await {
            Ok(reply) => {
                assert_eq!(reply, b"raft:ping");
                return;
            }
            Err(e) if tokio::time::Instant::now() < deadline => {
                eprintln!("    {} -> {}: not yet ({e})", from.name, to.name);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{} never reached {}: {e}", from.name, to.name),
        }
    }
}

async fn members_of_each_other(nodes: &[&Node]) {
    for a in nodes {
        for b in nodes {
            if a.peer != b.peer {
                a.trust(b).await;
            }
        }
    }
    for a in nodes {
        for b in nodes {
            if a.peer != b.peer {
                until_connected(a, b).await;
            }
        }
    }
}

/// Publishes from `from` until every node in `to` has received a message from it.
async fn gossip_until_received(from: &Node, topic: Topic, to: &mut [&mut Node]) {
    let deadline = tokio::time::Instant::now() + SETTLE;
    let mut got = vec![false; to.len()];
    let mut round = 0;
    while got.iter().any(|g| !g) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gossip from {} did not reach everyone: {got:?}",
            from.name
        );
        let payload = format!("{} says hello #{round}", from.name).into_bytes();
        if let Err(e) = from.client.publish(topic, payload).await {
            eprintln!("    publish not yet possible: {e}");
        }
        round += 1;
        tokio::time::sleep(Duration::from_millis(150)).await;
        for (i, node) in to.iter_mut().enumerate() {
            for (source, bytes) in node.drain_gossip() {
                assert_eq!(
                    source, from.peer,
                    "{} got gossip from a stranger",
                    node.name
                );
                assert!(bytes.starts_with(from.name.as_bytes()));
                got[i] = true;
            }
        }
    }
}

fn tcp_port(addr: &Multiaddr) -> u16 {
    // "/ip4/127.0.0.1/tcp/PORT"
    let text = addr.to_string();
    text.rsplit('/')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("tcp port")
}

async fn bounded<F: std::future::Future<Output = ()>>(test: F) {
    tokio::time::timeout(TEST_LIMIT, test)
        .await
        .expect("test took too long");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t75_10_members_exchange_raft_and_rpc_both_ways() {
    bounded(async {
        eprintln!("--- two nodes make each other members");
        let a = Node::start("a").await;
        let b = Node::start("b").await;
        members_of_each_other(&[&a, &b]).await;

        eprintln!("--- raft and rpc requests both ways get their replies");
        assert_eq!(
            a.client
                .request_raft(b.peer, b"vote?".to_vec())
                .await
                .unwrap(),
            b"raft:vote?"
        );
        assert_eq!(
            b.client
                .request_raft(a.peer, b"append".to_vec())
                .await
                .unwrap(),
            b"raft:append"
        );
        assert_eq!(
            a.client
                .request_rpc(b.peer, b"write x=1".to_vec())
                .await
                .unwrap(),
            b"rpc:write x=1"
        );
        assert_eq!(
            b.client
                .request_rpc(a.peer, b"fetch blob".to_vec())
                .await
                .unwrap(),
            b"rpc:fetch blob"
        );

        eprintln!("--- a 10 MiB payload goes one way and comes back");
        let big: Vec<u8> = (0..10 << 20).map(|i| (i % 251) as u8).collect();
        let reply = a.client.request_raft(b.peer, big.clone()).await.unwrap();
        assert_eq!(reply.len(), big.len() + 5);
        assert_eq!(&reply[5..], &big[..]);

        eprintln!("--- concurrent requests are all answered");
        let mut calls = JoinSet::new();
        for i in 0..20u8 {
            let client = b.client.clone();
            let to = a.peer;
            calls.spawn(async move { (i, client.request_rpc(to, vec![i]).await) });
        }
        while let Some(done) = calls.join_next().await {
            let (i, reply) = done.unwrap();
            assert_eq!(reply.unwrap(), [b"rpc:".as_slice(), &[i]].concat());
        }

        eprintln!("--- both see each other as connected members");
        let members = a.client.members().await.unwrap();
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].peer, b.peer);
        assert!(members[0].connected);

        a.stop().await;
        b.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t75_20_gossip_reaches_every_member_of_a_three_node_mesh() {
    bounded(async {
        eprintln!("--- three nodes, all members of each other");
        let mut a = Node::start("a").await;
        let mut b = Node::start("b").await;
        let mut c = Node::start("c").await;
        members_of_each_other(&[&a, &b, &c]).await;

        eprintln!("--- a's membership heartbeat reaches b and c");
        gossip_until_received(&a, Topic::Membership, &mut [&mut b, &mut c]).await;

        eprintln!("--- c's endpoint update reaches a and b, on its own topic");
        c.client
            .publish(Topic::Endpoints, b"c: web.1 at 198.19.0.5".to_vec())
            .await
            .unwrap();
        for node in [&mut a, &mut b] {
            let item = node
                .next_seen(|i| matches!(i, Inbound::Gossip { source, .. } if *source == c.peer))
                .await;
            let Inbound::Gossip { topic, bytes, .. } = item else {
                unreachable!()
            };
            assert_eq!(topic, Topic::Endpoints);
            assert_eq!(bytes, b"c: web.1 at 198.19.0.5");
        }

        for n in [a, b, c] {
            n.stop().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t75_30_a_non_member_gets_only_the_join_handshake() {
    bounded(async {
        let mut a = Node::start("a").await;
        let mut b = Node::start("b").await;
        members_of_each_other(&[&a, &b]).await;
        let n = Node::start("newcomer").await;
        // The newcomer believes a is its peer; a has never heard of it.
        n.trust(&a).await;

        eprintln!("--- the newcomer's raft and rpc requests to a are refused");
        for attempt in 0..3 {
            let raft = n.client.request_raft(a.peer, b"vote for me".to_vec()).await;
            assert!(
                matches!(raft, Err(P2pError::Refused { .. })),
                "attempt {attempt}: {raft:?}"
            );
            let rpc = n.client.request_rpc(a.peer, b"write".to_vec()).await;
            assert!(matches!(rpc, Err(P2pError::Refused { .. })), "{rpc:?}");
        }

        eprintln!("--- its gossip does not reach a, directly or relayed by a member");
        // b trusts the newcomer (as if b's view were stale), so b accepts its gossip and
        // forwards it to a; a must reject it because the author is not a member of a.
        b.trust(&n).await;
        n.trust(&b).await;
        until_connected(&n, &b).await;
        gossip_until_received(&n, Topic::Membership, &mut [&mut b]).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            a.drain_gossip().is_empty(),
            "a accepted gossip from a non-member"
        );
        let stats = a.client.stats().await.unwrap();
        assert!(stats.gossip_rejected >= 1, "{stats:?}");
        eprintln!(
            "    a rejected {} relayed message(s)",
            stats.gossip_rejected
        );

        eprintln!("--- a join with a bad token is refused by the upper layer");
        let m = Node::start("impostor").await;
        let a_peer = a.peer;
        let join = tokio::spawn({
            let client = m.client.clone();
            let addr = a.addr.clone();
            async move { client.join(addr, b"SWMTKN-wrong".to_vec()).await }
        });
        let Inbound::JoinRequest {
            peer, bytes, reply, ..
        } = a
            .next_seen(|i| matches!(i, Inbound::JoinRequest { .. }))
            .await
        else {
            unreachable!()
        };
        assert_eq!(peer, m.peer);
        assert_eq!(bytes, b"SWMTKN-wrong");
        reply.send(Err("invalid join token".into())).unwrap();
        let refused = join.await.unwrap();
        assert!(
            matches!(&refused, Err(P2pError::JoinRejected { peer, reason })
                if *peer == a_peer && reason == "invalid join token"),
            "{refused:?}"
        );

        eprintln!("--- the newcomer's join reaches a's upper layer, which accepts it");
        let join = tokio::spawn({
            let client = n.client.clone();
            let addr = a.addr.clone();
            async move { client.join(addr, b"SWMTKN-good".to_vec()).await }
        });
        let Inbound::JoinRequest {
            peer, bytes, reply, ..
        } = a
            .next_seen(|i| matches!(i, Inbound::JoinRequest { .. }))
            .await
        else {
            unreachable!()
        };
        assert_eq!(
            (peer, bytes.as_slice()),
            (n.peer, b"SWMTKN-good".as_slice())
        );
        a.trust(&n).await;
        reply.send(Ok(b"welcome".to_vec())).unwrap();
        let joined = join.await.unwrap().expect("join accepted");
        assert_eq!(joined.peer, a.peer);
        assert_eq!(joined.reply, b"welcome");

        eprintln!("--- now a member, its requests work");
        until_connected(&n, &a).await;
        assert_eq!(
            n.client
                .request_rpc(a.peer, b"write".to_vec())
                .await
                .unwrap(),
            b"rpc:write"
        );
        assert_eq!(
            a.client.request_raft(n.peer, b"hi".to_vec()).await.unwrap(),
            b"raft:hi"
        );

        for node in [a, b, n, m] {
            node.stop().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t75_40_a_removed_member_is_cut_off_at_once() {
    bounded(async {
        let mut a = Node::start("a").await;
        let mut b = Node::start("b").await;
        members_of_each_other(&[&a, &b]).await;
        while b.seen.try_recv().is_ok() {}

        eprintln!("--- a removes b");
        a.client.remove_member(b.peer).await.unwrap();

        eprintln!("--- b sees the connection drop at once");
        let started = tokio::time::Instant::now();
        b.next_seen(|i| matches!(i, Inbound::PeerDisconnected { peer } if *peer == a.peer))
            .await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );

        eprintln!("--- a no longer sends to b; b's requests to a fail, again and again");
        assert!(matches!(
            a.client.request_raft(b.peer, b"x".to_vec()).await,
            Err(P2pError::NotMember(p)) if p == b.peer
        ));
        for _ in 0..5 {
            let result = b
                .client
                .request_raft(a.peer, b"still there?".to_vec())
                .await;
            assert!(result.is_err(), "removed member got an answer: {result:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(a.client.members().await.unwrap().is_empty());

        eprintln!("--- b's gossip is not accepted by a");
        let _ = b
            .client
            .publish(Topic::Membership, b"b lives".to_vec())
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(a.drain_gossip().is_empty());

        a.stop().await;
        b.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t75_50_garbage_on_the_port_does_not_wedge_the_node() {
    bounded(async {
        let a = Node::start("a").await;
        let b = Node::start("b").await;
        members_of_each_other(&[&a, &b]).await;
        let port = tcp_port(&a.addr);

        eprintln!("--- strangers write random bytes to a's port, and one stays silent");
        let silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
        tokio::task::spawn_blocking(move || {
            let mut seed = 0x2545_f491_4f6c_dd1d_u64;
            for round in 0..20 {
                let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
                    continue;
                };
                let len = if round % 5 == 0 {
                    256 << 10
                } else {
                    1 + round * 37
                };
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        seed as u8
                    })
                    .collect();
                // The node may hang up mid-write; that is its right.
                let _ = stream.write_all(&bytes);
            }
        })
        .await
        .unwrap();

        eprintln!("--- a still answers its member");
        assert_eq!(
            b.client
                .request_raft(a.peer, b"ok?".to_vec())
                .await
                .unwrap(),
            b"raft:ok?"
        );
        eprintln!("--- and a new node can still connect and join");
        let c = Node::start("c").await;
        members_of_each_other(&[&a, &c]).await;
        let stats = a.client.stats().await.unwrap();
        eprintln!(
            "    a counted {} failed handshakes",
            stats.handshake_failures
        );
        assert!(stats.handshake_failures >= 1, "{stats:?}");
        drop(silent);

        for n in [a, b, c] {
            n.stop().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t75_55_strangers_are_capped_and_expired() {
    bounded(async {
        let mut config = fast_config();
        config.max_guest_connections = 2;
        config.guest_timeout = Duration::from_secs(1);
        config.redial_interval = Duration::from_millis(100);
        let mut a = Node::start_with("a", NodeKey::generate(), config).await;

        eprintln!("--- three strangers connect; only two get a guest connection");
        let strangers = [
            Node::start("s1").await,
            Node::start("s2").await,
            Node::start("s3").await,
        ];
        for s in &strangers {
            // Whether the dial reports success depends on timing; a's counters tell.
            let _ = s.client.dial(a.addr.clone()).await;
        }
        let deadline = tokio::time::Instant::now() + SETTLE;
        loop {
            let stats = a.client.stats().await.unwrap();
            if stats.guests_refused >= 1 {
                assert!(stats.guest_connections <= 2, "{stats:?}");
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{stats:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        eprintln!("--- after the guest timeout their connections are gone");
        let deadline = tokio::time::Instant::now() + SETTLE;
        while a.client.stats().await.unwrap().guest_connections > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "guests never expired"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        eprintln!("--- a newcomer can join again");
        let newcomer = Node::start("newcomer").await;
        let join = tokio::spawn({
            let client = newcomer.client.clone();
            let addr = a.addr.clone();
            async move { client.join(addr, b"token".to_vec()).await }
        });
        let Inbound::JoinRequest { peer, reply, .. } = a
            .next_seen(|i| matches!(i, Inbound::JoinRequest { .. }))
            .await
        else {
            unreachable!()
        };
        assert_eq!(peer, newcomer.peer);
        reply.send(Ok(b"ok".to_vec())).unwrap();
        assert_eq!(join.await.unwrap().unwrap().reply, b"ok");

        for n in strangers.into_iter().chain([a, newcomer]) {
            n.stop().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t75_60_identity_persists_across_restart() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("p2p/node.key");

        eprintln!("--- first start creates the key");
        let a = Node::start_with(
            "a",
            NodeKey::load_or_create(&key_path).unwrap(),
            fast_config(),
        )
        .await;
        let first_id = a.peer;
        let b = Node::start("b").await;
        members_of_each_other(&[&a, &b]).await;
        a.stop().await;

        eprintln!("--- restart from the same key file: same PeerId, b still trusts it");
        let a = Node::start_with(
            "a",
            NodeKey::load_or_create(&key_path).unwrap(),
            fast_config(),
        )
        .await;
        assert_eq!(a.peer, first_id);
        // a has a new port; b learns it (as Raft membership would tell it).
        b.trust(&a).await;
        a.trust(&b).await;
        until_connected(&b, &a).await;
        until_connected(&a, &b).await;

        a.stop().await;
        b.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t75_70_oversize_messages_get_a_clear_error() {
    bounded(async {
        let a = Node::start("a").await;
        let mut small = fast_config();
        small.max_message_size = 1 << 20;
        let s = Node::start_with("small", NodeKey::generate(), small).await;
        members_of_each_other(&[&a, &s]).await;

        eprintln!("--- a request above the sender's limit fails before it is sent");
        let too_big = vec![0u8; (64 << 20) + 1];
        let err = a.client.request_raft(s.peer, too_big).await.unwrap_err();
        assert!(matches!(err, P2pError::MessageTooLarge { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "message of 67108865 bytes exceeds the limit of 67108864 bytes"
        );

        eprintln!("--- a frame above the receiver's limit is refused by the receiver");
        let err = a
            .client
            .request_rpc(s.peer, vec![0u8; 2 << 20])
            .await
            .unwrap_err();
        eprintln!("    sender sees: {err}");
        assert!(!matches!(err, P2pError::Timeout { .. }), "{err:?}");
        let stats = s.client.stats().await.unwrap();
        assert_eq!(stats.frames_refused, 1, "{stats:?}");

        eprintln!("--- a reply above the responder's limit becomes an error reply");
        let err = a
            .client
            .request_rpc(s.peer, BIG_REPLY.to_vec())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, P2pError::Remote { reason, .. }
                if reason == "reply of 2097152 bytes exceeds the limit of 1048576 bytes"),
            "{err:?}"
        );

        eprintln!("--- the connection still serves normal requests");
        assert_eq!(
            a.client
                .request_rpc(s.peer, b"small".to_vec())
                .await
                .unwrap(),
            b"rpc:small"
        );

        a.stop().await;
        s.stop().await;
    })
    .await;
}
