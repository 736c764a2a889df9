//! The redb Raft store: openraft's conformance suite, then what the suite does not cover
//! (a restart keeps everything; a corrupt snapshot changes nothing; real commands apply).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, LogId, Membership, RaftLogReader, RaftSnapshotBuilder,
    StorageError, StoredMembership, Vote,
};
use swarm::cluster::state::{JoinTokenHashes, NewNode};
use swarm::cluster::store::{self, LogStore, StateMachineStore};
use swarm::cluster::{Command, NodeId, NodeInfo, Proposal, TypeConfig};
use swarm::types::{CommandError, NodeRole, NodeSpec, SwarmSpec, Timestamp, Version};
use tempfile::TempDir;

/// How many stores `Suite::test_all` builds in openraft 0.9.25: 34 cases with one store each,
/// plus `transfer_snapshot`, which builds a leader's and a follower's. Counting the builds
/// proves the whole suite ran, not just its first cases.
const SUITE_CASES: usize = 35;
const SUITE_BUILDS: usize = SUITE_CASES + 1;

struct Builder {
    builds: Arc<AtomicUsize>,
}

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<NodeId>> {
        self.builds.fetch_add(1, Ordering::SeqCst);
        let dir = tempfile::tempdir().expect("temp dir");
        let (log, sm) = store::open(dir.path().join("raft.redb")).expect("open store");
        Ok((dir, log, sm))
    }
}

#[test]
fn t70_the_store_passes_openraft_suite() {
    let builds = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    Suite::test_all(Builder {
        builds: builds.clone(),
    })
    .expect("suite");
    eprintln!(
        "--- openraft Suite: {SUITE_CASES} cases, {} stores, {:.1?}",
        builds.load(Ordering::SeqCst),
        started.elapsed()
    );
    assert_eq!(builds.load(Ordering::SeqCst), SUITE_BUILDS);
}

fn log_id(term: u64, index: u64) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn entry(term: u64, index: u64, payload: EntryPayload<TypeConfig>) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(term, index),
        payload,
    }
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_nanos(1_700_000_000_000_000_000 + seconds * 1_000_000_000)
}

fn normal(term: u64, index: u64, command: Command) -> Entry<TypeConfig> {
    entry(
        term,
        index,
        EntryPayload::Normal(Proposal::at(at(index as i64), command)),
    )
}

fn init() -> Command {
    Command::InitCluster {
        cluster_id: "c1".into(),
        spec: SwarmSpec::default(),
        default_addr_pool: vec![],
        subnet_size: 0,
        data_path_port: 0,
        join_token_hashes: JoinTokenHashes {
            worker: "hw".into(),
            manager: "hm".into(),
        },
        manager: NewNode {
            id: "m1".into(),
            addr: "198.18.0.11".into(),
            ..Default::default()
        },
        manager_addr: "198.18.0.11:2377".into(),
    }
}

fn add_worker(id: &str) -> Command {
    Command::AddNode {
        node: NewNode {
            id: id.into(),
            spec: NodeSpec {
                role: NodeRole::Worker,
                ..Default::default()
            },
            addr: "198.18.0.12".into(),
            ..Default::default()
        },
    }
}

fn membership() -> Membership<NodeId, NodeInfo> {
    let nodes = BTreeMap::from([(
        1,
        NodeInfo {
            peer_id: "peer1".into(),
            addr: "/ip4/198.18.0.11/tcp/2377".into(),
        },
    )]);
    Membership::new(vec![BTreeSet::from([1])], nodes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t70_commands_apply_and_everything_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raft.redb");

    eprintln!("--- a first life: vote, log, apply, snapshot, purge");
    let (state_before, snapshot_meta) = {
        let (mut log, mut sm) = store::open(&path).unwrap();
        log.save_vote(&Vote::new_committed(2, 1)).await.unwrap();
        let entries = vec![
            entry(1, 1, EntryPayload::Blank),
            entry(1, 2, EntryPayload::Membership(membership())),
            normal(2, 3, init()),
            normal(2, 4, add_worker("w1")),
            normal(2, 5, add_worker("w1")),
            normal(2, 6, add_worker("w2")),
        ];
        log.blocking_append(entries.clone()).await.unwrap();
        log.save_committed(Some(log_id(2, 6))).await.unwrap();

        let results = sm.apply(entries).await.unwrap();
        assert_eq!(
            results,
            vec![
                Ok(Version { index: 0 }),
                Ok(Version { index: 0 }),
                Ok(Version { index: 1 }),
                Ok(Version { index: 2 }),
                Err(CommandError::NodeExists { id: "w1".into() }),
                Ok(Version { index: 3 }),
            ],
            "one result per entry, blank and membership included"
        );
        let state = sm.state();
        assert_eq!(state.nodes.len(), 3);
        assert_eq!(
            state.node("w1").unwrap().created_at,
            at(4),
            "time from the entry"
        );

        let snapshot = sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        assert_eq!(snapshot.meta.last_log_id, Some(log_id(2, 6)));
        log.purge(log_id(2, 4)).await.unwrap();
        (state, snapshot.meta)
    };

    eprintln!("--- a second life: the same file, everything is back");
    let (mut log, mut sm) = store::open(&path).unwrap();
    assert_eq!(
        log.read_vote().await.unwrap(),
        Some(Vote::new_committed(2, 1))
    );
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(2, 6)));
    let log_state = log.get_log_state().await.unwrap();
    assert_eq!(log_state.last_purged_log_id, Some(log_id(2, 4)));
    assert_eq!(log_state.last_log_id, Some(log_id(2, 6)));
    let kept: Vec<u64> = log
        .try_get_log_entries(0..100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.log_id.index)
        .collect();
    assert_eq!(kept, [5, 6]);

    let (last_applied, last_membership) = sm.applied_state().await.unwrap();
    assert_eq!(last_applied, Some(log_id(2, 6)));
    assert_eq!(
        last_membership,
        StoredMembership::new(Some(log_id(1, 2)), membership())
    );
    assert_eq!(sm.state(), state_before);
    assert_eq!(sm.last_applied(), Some(log_id(2, 6)));

    let current = sm
        .get_current_snapshot()
        .await
        .unwrap()
        .expect("snapshot kept on disk");
    assert_eq!(current.meta, snapshot_meta);

    eprintln!("--- truncate drops the tail, and only the tail");
    log.truncate(log_id(2, 6)).await.unwrap();
    let log_state = log.get_log_state().await.unwrap();
    assert_eq!(log_state.last_log_id, Some(log_id(2, 5)));

    eprintln!("--- purging everything leaves the purge point as the last log id");
    log.purge(log_id(2, 5)).await.unwrap();
    let log_state = log.get_log_state().await.unwrap();
    assert_eq!(log_state.last_log_id, Some(log_id(2, 5)));
    assert_eq!(log_state.last_purged_log_id, Some(log_id(2, 5)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t70_a_snapshot_installs_whole_and_a_corrupt_one_changes_nothing() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let (_, mut leader) = store::open(leader_dir.path().join("raft.redb")).unwrap();
    let (_, mut follower) = store::open(follower_dir.path().join("raft.redb")).unwrap();

    leader
        .apply(vec![
            entry(1, 1, EntryPayload::Membership(membership())),
            normal(1, 2, init()),
            normal(1, 3, add_worker("w1")),
        ])
        .await
        .unwrap();
    follower.apply(vec![normal(1, 1, init())]).await.unwrap();
    let follower_before = follower.state();

    eprintln!("--- a corrupt snapshot is refused before anything is written");
    let snapshot = leader
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    let mut corrupt = snapshot.snapshot.clone().into_inner();
    corrupt.truncate(corrupt.len() / 2);
    let err = follower
        .install_snapshot(&snapshot.meta, Box::new(std::io::Cursor::new(corrupt)))
        .await;
    assert!(err.is_err());
    assert_eq!(follower.state(), follower_before);
    assert!(follower.get_current_snapshot().await.unwrap().is_none());

    eprintln!("--- the real one replaces the whole state machine");
    follower
        .install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .unwrap();
    assert_eq!(follower.state(), leader.state());
    assert_eq!(
        follower.applied_state().await.unwrap(),
        leader.applied_state().await.unwrap()
    );
    let installed = follower.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(installed.meta, snapshot.meta);
}

/// Found by crashing a follower at the start of a snapshot install (t85): openraft 0.9 purges a
/// follower's log up to a snapshot it is installing at the same moment it hands the install
/// to the state machine, unordered, then appends what follows the snapshot. A purge that
/// reached the disk first, followed by a crash, left entries in neither the log nor the state
/// machine (and a hole before the entries appended since). A purge past the stored snapshot
/// now waits for the install in flight, and fails if the install does not store one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t70_a_purge_past_the_snapshot_waits_for_the_install_in_flight() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let (_, mut leader) = store::open(leader_dir.path().join("raft.redb")).unwrap();
    let entries = vec![
        entry(1, 1, EntryPayload::Membership(membership())),
        normal(1, 2, init()),
        normal(1, 3, add_worker("w1")),
        normal(1, 4, add_worker("w2")),
    ];
    leader.apply(entries.clone()).await.unwrap();
    let snapshot = leader
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, 4)));

    eprintln!("--- a follower with entries 1..=2, 1 applied, is sent the snapshot up to 4");
    let (mut log, mut sm) = store::open(follower_dir.path().join("raft.redb")).unwrap();
    log.blocking_append(entries[..2].to_vec()).await.unwrap();
    sm.apply(entries[..1].to_vec()).await.unwrap();
    let purge_behind_snapshot = |log: &LogStore| {
        let mut log = log.clone();
        tokio::spawn(async move { log.purge(log_id(1, 4)).await })
    };

    eprintln!("--- the install fails: the purge that waited for it fails too, the log stays");
    sm.begin_receiving_snapshot().await.unwrap();
    let purge = purge_behind_snapshot(&log);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!purge.is_finished(), "the purge waits for the install");
    let mut corrupt = snapshot.snapshot.get_ref().clone();
    corrupt.truncate(corrupt.len() / 2);
    let refused = sm
        .install_snapshot(&snapshot.meta, Box::new(std::io::Cursor::new(corrupt)))
        .await;
    assert!(refused.is_err());
    assert!(purge.await.unwrap().is_err(), "nothing covers the purge");
    let log_state = log.get_log_state().await.unwrap();
    assert_eq!(log_state.last_purged_log_id, None);
    assert_eq!(log_state.last_log_id, Some(log_id(1, 2)));

    eprintln!("--- the install succeeds: the purge goes through after it, not before");
    sm.begin_receiving_snapshot().await.unwrap();
    let purge = purge_behind_snapshot(&log);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!purge.is_finished(), "the purge waits for the install");
    // What a crash now would leave: the whole log, the old state machine.
    assert_eq!(log.get_log_state().await.unwrap().last_purged_log_id, None);
    assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(1, 1)));
    sm.install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .unwrap();
    purge.await.unwrap().unwrap();
    let log_state = log.get_log_state().await.unwrap();
    assert_eq!(log_state.last_purged_log_id, Some(log_id(1, 4)));
    assert_eq!(sm.state(), leader.state());

    eprintln!("--- a purge the stored snapshot covers does not wait");
    sm.begin_receiving_snapshot().await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), log.purge(log_id(1, 4)))
        .await
        .expect("no wait")
        .unwrap();
}
