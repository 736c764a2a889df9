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

/// The file as a `kill -9` would leave it: a copy taken while the store is open. redb keeps
/// the header of a commit without fsync in memory only, so the copy holds what the last
/// fsynced commit holds, as the disk would after the crash.
fn crash_image(path: &std::path::Path, name: &str) -> std::path::PathBuf {
    let image = path.with_file_name(name);
    std::fs::copy(path, &image).unwrap();
    image
}

/// The raw value of `key` in the store's state-machine table.
fn raw_machine_value(path: &std::path::Path, key: &str) -> Vec<u8> {
    use redb::{ReadableDatabase, TableDefinition};
    const MACHINE: TableDefinition<&str, &[u8]> = TableDefinition::new("state_machine");
    let db = redb::Database::create(path).unwrap();
    let tx = db.begin_read().unwrap();
    let table = tx.open_table(MACHINE).unwrap();
    table.get(key).unwrap().unwrap().value().to_vec()
}

fn set_raw_machine_value(path: &std::path::Path, key: &str, value: &[u8]) {
    use redb::TableDefinition;
    const MACHINE: TableDefinition<&str, &[u8]> = TableDefinition::new("state_machine");
    let db = redb::Database::create(path).unwrap();
    let tx = db.begin_write().unwrap();
    tx.open_table(MACHINE).unwrap().insert(key, value).unwrap();
    tx.commit().unwrap();
}

/// The applied state and the commit point are written without fsync. After a crash the
/// store must come back with every fsynced entry, an applied state that is a true prefix of
/// the log, and a commit point openraft can re-apply up to; and when the (always fsynced)
/// snapshot is newer than the applied state that survived, and the log behind it is purged,
/// it must start from the snapshot: re-applying from the older applied state would need
/// entries that are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t70_after_a_crash_the_store_restarts_from_what_was_fsynced() {
    use openraft::storage::StorageHelper;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raft.redb");
    let entries = [
        entry(1, 0, EntryPayload::Blank),
        entry(1, 1, EntryPayload::Membership(membership())),
        normal(1, 2, init()),
        normal(1, 3, add_worker("w1")),
        normal(1, 4, add_worker("w2")),
        normal(1, 5, add_worker("w3")),
        normal(1, 6, add_worker("w4")),
        entry(1, 7, EntryPayload::Blank),
    ];

    eprintln!("--- log 0..=6 fsynced, committed 6, 0..=4 applied, 7 appended, 5..=6 applied");
    let (mut log, mut sm) = store::open(&path).unwrap();
    log.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
    log.blocking_append(entries[..7].to_vec()).await.unwrap();
    log.save_committed(Some(log_id(1, 6))).await.unwrap();
    sm.apply(entries[..5].to_vec()).await.unwrap();
    // An append is fsynced, and with it everything written before it.
    log.blocking_append(entries[7..].to_vec()).await.unwrap();
    sm.apply(entries[5..7].to_vec()).await.unwrap();
    let state_at_6 = sm.state();
    assert_eq!(state_at_6.nodes.len(), 5);
    let applied_at_4 = crash_image(&path, "applied-at-4.redb");
    // Kept for later: the restart below re-applies 5..=6 and writes over it.
    let applied_4 = raw_machine_value(&applied_at_4, "applied");

    eprintln!(
        "--- restart from the crash image: applied 4, committed 6, openraft re-applies 5..=6"
    );
    {
        let (mut log, mut sm) = store::open(&applied_at_4).unwrap();
        assert_eq!(
            sm.applied_state().await.unwrap().0,
            Some(log_id(1, 4)),
            "the applied state of the last fsynced commit (5..=6 were applied without fsync)"
        );
        assert_eq!(log.read_committed().await.unwrap(), Some(log_id(1, 6)));
        assert_eq!(
            log.get_log_state().await.unwrap().last_log_id,
            Some(log_id(1, 7)),
            "every fsynced entry is there"
        );
        StorageHelper::new(&mut log, &mut sm)
            .get_initial_state()
            .await
            .expect("initial state");
        assert_eq!(sm.last_applied(), Some(log_id(1, 6)));
        assert_eq!(sm.state(), state_at_6, "re-applied to the same state");
    }

    eprintln!("--- a snapshot at 6 (fsynced), the log purged up to 6, the applied state older");
    let snapshot = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, 6)));
    log.purge(log_id(1, 6)).await.unwrap();
    let purged = crash_image(&path, "purged.redb");
    // What the race between an apply's unfsynced write and a snapshot built from memory can
    // leave on disk: the applied state of entry 4 beside the snapshot of entry 6.
    set_raw_machine_value(&purged, "applied", &applied_4);

    let (mut log, mut sm) = store::open(&purged).unwrap();
    let log_state = log.get_log_state().await.unwrap();
    assert_eq!(log_state.last_purged_log_id, Some(log_id(1, 6)));
    assert_eq!(
        sm.applied_state().await.unwrap().0,
        Some(log_id(1, 6)),
        "the snapshot is newer than the stored applied state: start from it"
    );
    assert_eq!(sm.state(), state_at_6);
    StorageHelper::new(&mut log, &mut sm)
        .get_initial_state()
        .await
        .expect("initial state: nothing purged needs re-applying");
    assert_eq!(sm.last_applied(), Some(log_id(1, 6)));
    assert_eq!(sm.state(), state_at_6);
}
