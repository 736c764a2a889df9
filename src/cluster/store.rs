//! Durable Raft storage in one redb file: the log side (`LogStore`: `RaftLogStorage` +
//! `RaftLogReader`) and the state-machine side (`StateMachineStore`: `RaftStateMachine` +
//! `RaftSnapshotBuilder`).
//!
//! ```text
//!  raft.redb
//!   meta            "format_version" → [STORE_FORMAT_VERSION]       checked at open
//!   raft_log        index: u64 → codec(Entry)                       the log, no holes
//!   raft_log_state  "vote" → codec(Vote)
//!                   "committed" → codec(Option<LogId>)
//!                   "last_purged" → codec(Option<LogId>)
//!   state_machine   "applied" → codec(Applied { last_applied, last_membership, state })
//!                   "snapshot_meta" → codec(StoredSnapshotMeta { seq, meta })
//!                   "snapshot_data" → codec(State)                   what followers receive
//! ```
//!
//! Every value goes through `crate::codec`, so it starts with the codec's version byte; the
//! `format_version` key versions the table layout above. A file with another layout is
//! refused at open rather than misread.
//!
//! Durability. Everything lives in one redb file, so commits are totally ordered and a
//! commit with `Durability::Immediate` (fsync before `commit` returns) makes every earlier
//! commit durable too: after a crash the file holds a prefix of the commits, up to the last
//! fsynced one.
//!
//! * fsynced: log appends, truncation, purges, the vote, snapshots (built or installed).
//!   `append` reports the entries flushed only after its fsync: openraft counts an entry
//!   towards a quorum on the strength of that report, and acknowledges a write only once a
//!   quorum has flushed it. The vote is on disk before openraft acts on it.
//! * not fsynced (`Durability::None`): the applied state (rewritten after every applied
//!   batch) and the commit point. `save_committed` only records the commit point in memory;
//!   the next append or apply writes it in its own transaction. Both reach the disk with the
//!   next fsynced commit, which on a busy node is the next append.
//!
//! Why that is safe: a crash can only set the applied state and the commit point back to an
//! earlier, consistent point. The commit point saved is never ahead of this node's flushed
//! log, and an applied state on disk never ahead of the log on disk (prefix order), so at
//! restart openraft re-applies from the log what the lost applied state had (up to the
//! stored commit point, the rest once a leader commits again) — `apply` is deterministic.
//! The log is purged only behind a stored snapshot (purges come after the snapshot's fsynced
//! commit; see also `LogStore::purge`), and at open the state machine starts from that
//! snapshot when it is newer than the stored applied state (`recovered_applied`), so
//! nothing openraft re-applies is ever purged. One consequence outside the store: a leader
//! openraft 0.9 restores at startup begins with its commit index at the applied state found
//! here, which may be older than writes it acknowledged before the crash, so linearizable
//! reads also wait for the leader's last log entry (`Cluster::read_index`). Acknowledged
//! writes sit in the fsynced log of a quorum, which is what Raft needs; the state machine
//! is a cache of the log and the snapshot. This takes two of three fsyncs per write off the
//! leader's path (and off the followers', where they delayed the next append). Write IO is
//! serialized (openraft awaits each call; redb has one writer at a time). Commits run on
//! tokio's blocking pool so an fsync never stalls a runtime worker.
//!
//! A purge past the stored snapshot waits for the snapshot install in flight (openraft 0.9
//! issues a follower's install and the purge behind it at once, unordered; see
//! `LogStore::purge`): on disk, a snapshot always covers everything purged.
//!
//! Crash points (`crate::failpoints`, feature `failpoints`) sit before and after each durable
//! step: `store::before-append`, `before-append-commit`, `after-append-commit`,
//! `before-vote-save`, `after-vote-save`, `before-apply-commit`, `after-apply-commit`,
//! `after-snapshot-build`, `before-snapshot-install`, `after-snapshot-install`,
//! `before-purge`, `after-purge`, `after-waited-purge` (`tests/t85_crash_recovery.rs` crashes
//! at each).
//!
//! The state machine's applied state is also kept in memory (the source for reads and
//! snapshots) and rewritten whole after each applied batch. That is O(state) per batch,
//! fine for the hundreds of objects a swarm holds; per-object tables are the way on if it
//! ever is not.

use std::fmt::Debug;
use std::io::Cursor;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftLogReader, RaftSnapshotBuilder, StorageIOError};
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::raft_types::{
    Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig, Vote,
};
use super::state::{self, CommandResult, State};
use crate::codec::{self, CodecError};
use crate::failpoints::crash_point;
use crate::types::Version;

/// The table and value layout this build reads and writes. 2: the state gained networks,
/// address pools, service endpoints and task addresses (a store of 1 is refused at open).
pub const STORE_FORMAT_VERSION: u8 = 2;

/// How long a purge past the stored snapshot waits for the install in flight (see
/// `LogStore::purge`); an install of a few MB takes milliseconds, this only bounds a stuck one.
const INSTALL_WAIT: Duration = Duration::from_secs(60);

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
const LOG_STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_log_state");
const MACHINE: TableDefinition<&str, &[u8]> = TableDefinition::new("state_machine");

const KEY_FORMAT_VERSION: &str = "format_version";
const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_LAST_PURGED: &str = "last_purged";
const KEY_APPLIED: &str = "applied";
const KEY_SNAPSHOT_META: &str = "snapshot_meta";
const KEY_SNAPSHOT_DATA: &str = "snapshot_data";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("open {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: redb::DatabaseError,
    },
    #[error("{path}: store format version {found}, this build reads version {expected}")]
    UnsupportedFormat {
        path: PathBuf,
        found: String,
        expected: u8,
    },
    #[error("database: {0}")]
    Db(#[from] redb::Error),
    #[error("{what}: {source}")]
    Codec {
        what: &'static str,
        #[source]
        source: CodecError,
    },
    #[error("storage task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("the stored snapshot's metadata has no data beside it")]
    SnapshotDataMissing,
    #[error(
        "will not purge the log up to {purge}: the snapshot install it waited for did not store a snapshot that covers it"
    )]
    PurgeUncovered { purge: LogId },
}

/// redb has one error type per operation; all of them convert into `redb::Error`.
macro_rules! from_redb {
    ($($ty:ty),+) => {$(
        impl From<$ty> for StoreError {
            fn from(e: $ty) -> Self {
                StoreError::Db(e.into())
            }
        }
    )+};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// Opens (creating if needed) the store at `path` and returns its two halves, which share
/// the database. Refuses a file written with another table layout.
pub fn open(path: impl AsRef<Path>) -> Result<(LogStore, StateMachineStore), StoreError> {
    let path = path.as_ref();
    let db = Database::create(path).map_err(|source| StoreError::Open {
        path: path.to_owned(),
        source,
    })?;
    let tx = begin_write(&db)?;
    {
        let mut meta = tx.open_table(META)?;
        let found = meta.get(KEY_FORMAT_VERSION)?.map(|v| v.value().to_vec());
        match found.as_deref() {
            None => {
                meta.insert(KEY_FORMAT_VERSION, [STORE_FORMAT_VERSION].as_slice())?;
            }
            Some([STORE_FORMAT_VERSION]) => {}
            Some(other) => {
                return Err(StoreError::UnsupportedFormat {
                    path: path.to_owned(),
                    found: format!("{other:?}"),
                    expected: STORE_FORMAT_VERSION,
                });
            }
        }
        // Create the other tables now, so readers never meet a missing one.
        tx.open_table(LOG)?;
        tx.open_table(LOG_STATE)?;
        tx.open_table(MACHINE)?;
    }
    tx.commit()?;

    let db = Arc::new(db);
    let applied = recovered_applied(&db)?;
    let receiving_snapshot = Arc::new(tokio::sync::watch::Sender::new(false));
    let committed = Arc::new(Mutex::new(Committed::default()));
    Ok((
        LogStore {
            db: db.clone(),
            receiving_snapshot: receiving_snapshot.clone(),
            committed: committed.clone(),
        },
        StateMachineStore {
            db,
            applied: Arc::new(Mutex::new(applied)),
            receiving_snapshot,
            committed,
        },
    ))
}

/// The state machine as it restarts: the stored applied state, or the stored snapshot if
/// that is newer.
///
/// The applied state is written without fsync (see the module doc), so after a crash it may
/// be older than the snapshot, which is always durable: a snapshot built from the in-memory
/// state is committed with fsync while the applied record of the same entries may still be
/// on its way. The log behind that snapshot may already be purged (durably), so starting
/// from the older applied state would leave openraft to re-apply entries that are gone. The
/// snapshot holds the same state as applying the log up to it, so it is the state to start
/// from.
fn recovered_applied(db: &Database) -> Result<Applied, StoreError> {
    let applied: Applied =
        read_value(db, MACHINE, KEY_APPLIED, "applied state")?.unwrap_or_default();
    let Some(stored) =
        read_value::<StoredSnapshotMeta>(db, MACHINE, KEY_SNAPSHOT_META, "snapshot meta")?
    else {
        return Ok(applied);
    };
    if stored.meta.last_log_id <= applied.last_applied {
        return Ok(applied);
    }
    let state: State = read_value(db, MACHINE, KEY_SNAPSHOT_DATA, "snapshot data")?
        .ok_or(StoreError::SnapshotDataMissing)?;
    tracing::info!(
        applied = ?applied.last_applied,
        snapshot = ?stored.meta.last_log_id,
        "the stored snapshot is newer than the stored applied state: starting from the snapshot"
    );
    Ok(Applied {
        last_applied: stored.meta.last_log_id,
        last_membership: stored.meta.last_membership,
        state,
    })
}

/// The Raft log, its vote and its commit point. Cheap to clone: openraft clones it as the
/// reader of each replication stream.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    /// Shared with the state machine: see [`StateMachineStore::receiving_snapshot`].
    receiving_snapshot: Arc<tokio::sync::watch::Sender<bool>>,
    /// Shared with the state machine: see [`Committed`].
    committed: Arc<Mutex<Committed>>,
}

/// The commit point openraft last saved. `save_committed` only records it here; the next
/// append or apply writes it in its own transaction (see the module doc), so saving it costs
/// openraft's core no disk write.
#[derive(Debug, Default)]
struct Committed {
    /// The last saved value; `None` before the first save of this process.
    last: Option<Option<LogId>>,
    /// Encoded, not yet in a transaction.
    unwritten: Option<Vec<u8>>,
}

/// Takes the commit point not yet written, to write in the caller's transaction.
fn take_unwritten(committed: &Mutex<Committed>) -> Option<Vec<u8>> {
    committed
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .unwritten
        .take()
}

/// The state machine: the applied `State`, what it has applied, and the current snapshot.
/// Cheap to clone; clones share everything, so the daemon keeps one to read the state while
/// Raft owns another.
#[derive(Clone)]
pub struct StateMachineStore {
    db: Arc<Database>,
    applied: Arc<Mutex<Applied>>,
    /// A snapshot from the leader is on its way in: set when receiving begins, cleared when
    /// its install is over, installed or not. A purge past the stored snapshot waits for it
    /// (see `LogStore::purge`).
    receiving_snapshot: Arc<tokio::sync::watch::Sender<bool>>,
    /// Shared with the log: the commit point is written with the applied state.
    committed: Arc<Mutex<Committed>>,
}

/// The state machine's durable record, rewritten after every applied batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Applied {
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    state: State,
}

/// The current snapshot's metadata; its data is stored beside it, as sent to followers.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshotMeta {
    /// Counts snapshots built or installed here, to give each a distinct ID.
    seq: u64,
    meta: SnapshotMeta,
}

impl StateMachineStore {
    /// A copy of the current applied state.
    pub fn state(&self) -> State {
        self.lock().state.clone()
    }

    /// Reads the applied state in place, without copying it. `f` runs under a lock the
    /// state machine needs to apply entries: keep it short.
    pub fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.lock().state)
    }

    /// The log ID of the last entry applied.
    pub fn last_applied(&self) -> Option<LogId> {
        self.lock().last_applied
    }

    // A std mutex, not a tokio one: nothing awaits while it is held. Poisoning can only come
    // from a panic in `apply`, which is a bug; the data is still the last consistent state.
    fn lock(&self) -> MutexGuard<'_, Applied> {
        self.applied.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

// --- log side -------------------------------------------------------------------------------

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        self.read_entries(range).map_err(|e| read_logs(&e))
    }
}

impl LogStore {
    fn read_entries(&self, range: impl RangeBounds<u64>) -> Result<Vec<Entry>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(LOG)?;
        let mut entries = Vec::new();
        for item in table.range::<u64>(range)? {
            let (_, value) = item?;
            entries.push(decode(value.value(), "log entry")?);
        }
        Ok(entries)
    }

    fn read_log_state(&self) -> Result<LogState<TypeConfig>, StoreError> {
        let last_purged: Option<LogId> =
            read_value(&self.db, LOG_STATE, KEY_LAST_PURGED, "last purged log id")?.flatten();
        let tx = self.db.begin_read()?;
        let table = tx.open_table(LOG)?;
        let last = match table.last()? {
            Some((_, value)) => Some(decode::<Entry>(value.value(), "log entry")?.log_id),
            None => None,
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last.or(last_purged),
        })
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        self.read_log_state().map_err(|e| read_logs(&e))
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let bytes = encode(vote, "vote").map_err(|e| StorageIOError::write_vote(&e))?;
        crash_point!("store::before-vote-save");
        write_value(&self.db, LOG_STATE, KEY_VOTE, bytes)
            .await
            .map_err(|e| StorageIOError::write_vote(&e))?;
        // On disk, not yet acted on: the vote must survive the crash (no second vote in
        // this term after the restart).
        crash_point!("store::after-vote-save");
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        read_value(&self.db, LOG_STATE, KEY_VOTE, "vote")
            .map_err(|e| StorageIOError::read_vote(&e).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let bytes = encode(&committed, "committed log id").map_err(|e| write_err(&e))?;
        // Written by the next append or apply: see the module doc.
        let mut c = self
            .committed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        c.last = Some(committed);
        c.unwritten = Some(bytes);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        if let Some(last) = self
            .committed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last
        {
            return Ok(last);
        }
        Ok(
            read_value::<Option<LogId>>(&self.db, LOG_STATE, KEY_COMMITTED, "committed log id")
                .map_err(|e| read_err(&e))?
                .flatten(),
        )
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut rows = Vec::new();
        for entry in entries {
            rows.push((
                entry.log_id.index,
                encode(&entry, "log entry").map_err(|e| write_logs(&e))?,
            ));
        }
        let db = self.db.clone();
        let committed = take_unwritten(&self.committed);
        blocking(move || {
            crash_point!("store::before-append");
            let tx = begin_write(&db)?;
            {
                let mut table = tx.open_table(LOG)?;
                for (index, bytes) in &rows {
                    table.insert(*index, bytes.as_slice())?;
                }
            }
            if let Some(committed) = &committed {
                tx.open_table(LOG_STATE)?
                    .insert(KEY_COMMITTED, committed.as_slice())?;
            }
            // Written into the transaction, not yet committed (nor fsynced).
            crash_point!("store::before-append-commit");
            tx.commit()?;
            // Durable, but openraft has not been told: nobody counted these entries yet.
            crash_point!("store::after-append-commit");
            Ok(())
        })
        .await
        .map_err(|e| write_logs(&e))?;
        // Durable now: only from here may openraft count these entries.
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let db = self.db.clone();
        blocking(move || {
            let tx = begin_write(&db)?;
            tx.open_table(LOG)?
                .retain_in(log_id.index.., |_, _| false)?;
            tx.commit()?;
            Ok(())
        })
        .await
        .map_err(|e| write_logs(&e))
    }

    /// Removes the log up to `log_id`; past the stored snapshot, only once the snapshot
    /// being installed is stored.
    ///
    /// Why: on a follower sent a snapshot, openraft 0.9 hands the install to the state
    /// machine's task and the purge of the log it covers to this one at the same moment,
    /// unordered (`following_handler::install_full_snapshot`), and appends the entries that
    /// follow the snapshot right after the purge. Had the purge reached the disk before the
    /// install and the process died in between, the entries up to the snapshot would be in
    /// neither the log nor the state machine: gone from this node, behind a log that claims
    /// them, and with the entries appended since beyond a hole. Waiting here holds openraft's
    /// core (which runs this purge and, after it, those appends) until the install is on
    /// disk: install, then purge, then append, in that order on disk too. Purges behind a
    /// snapshot this node built or already installed are covered and do not wait.
    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut receiving = self.receiving_snapshot.subscribe();
        let waits = *receiving.borrow_and_update()
            && !covered_by_snapshot(&self.db, log_id).map_err(|e| write_logs(&e))?;
        if waits {
            tracing::info!(purge = %log_id, "a snapshot is being installed: the purge waits for it");
            let installed = tokio::time::timeout(INSTALL_WAIT, receiving.wait_for(|r| !*r)).await;
            if installed.is_err()
                || !covered_by_snapshot(&self.db, log_id).map_err(|e| write_logs(&e))?
            {
                return Err(write_logs(&StoreError::PurgeUncovered { purge: log_id }));
            }
        }
        let last_purged =
            encode(&Some(log_id), "last purged log id").map_err(|e| write_logs(&e))?;
        let db = self.db.clone();
        blocking(move || {
            crash_point!("store::before-purge");
            let tx = begin_write(&db)?;
            tx.open_table(LOG_STATE)?
                .insert(KEY_LAST_PURGED, last_purged.as_slice())?;
            tx.open_table(LOG)?
                .retain_in(..=log_id.index, |_, _| false)?;
            tx.commit()?;
            crash_point!("store::after-purge");
            // The purge that waited for a snapshot install, and only that one.
            crash_point!("store::after-waited-purge", if waits);
            Ok(())
        })
        .await
        .map_err(|e| write_logs(&e))
    }
}

// --- state-machine side ---------------------------------------------------------------------

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = StateMachineStore;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let applied = self.lock();
        Ok((applied.last_applied, applied.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let (record, results) = {
            let mut applied = self.lock();
            let mut results = Vec::new();
            for entry in entries {
                applied.last_applied = Some(entry.log_id);
                let result = match entry.payload {
                    EntryPayload::Normal(proposal) => {
                        state::apply(&mut applied.state, &proposal.command, proposal.at)
                    }
                    EntryPayload::Membership(membership) => {
                        applied.last_membership =
                            StoredMembership::new(Some(entry.log_id), membership);
                        Ok(Version {
                            index: applied.state.index,
                        })
                    }
                    EntryPayload::Blank => Ok(Version {
                        index: applied.state.index,
                    }),
                };
                results.push(result);
            }
            let record = encode(&*applied, "applied state").map_err(|e| write_sm(&e))?;
            (record, results)
        };
        // Applied in memory only: a crash here must be made good by re-applying the log.
        crash_point!("store::before-apply-commit");
        let committed = take_unwritten(&self.committed);
        let db = self.db.clone();
        // Without fsync: see the module doc.
        blocking(move || {
            let mut tx = db.begin_write()?;
            tx.set_durability(Durability::None)?;
            tx.open_table(MACHINE)?
                .insert(KEY_APPLIED, record.as_slice())?;
            if let Some(committed) = &committed {
                tx.open_table(LOG_STATE)?
                    .insert(KEY_COMMITTED, committed.as_slice())?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
        .map_err(|e| write_sm(&e))?;
        crash_point!("store::after-apply-commit");
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        self.receiving_snapshot.send_replace(true);
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let installed = self.install(meta, snapshot).await;
        // Over, installed or not: a purge waiting for it goes on (see `LogStore::purge`).
        self.receiving_snapshot.send_replace(false);
        installed
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        self.read_current_snapshot()
            .map_err(|e| StorageIOError::read_snapshot(None, &e).into())
    }
}

impl StateMachineStore {
    /// Stores a snapshot from the leader as the state machine and the current snapshot, in
    /// one transaction: a crash leaves the old ones or the new ones, never a mix.
    async fn install(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let snapshot_err =
            |e: &StoreError| StorageIOError::read_snapshot(Some(meta.signature()), e);
        // Decode before touching anything: a bad snapshot must leave the old state in place.
        let state: State = decode(&data, "snapshot data").map_err(|e| snapshot_err(&e))?;
        let record = Applied {
            last_applied: meta.last_log_id,
            last_membership: meta.last_membership.clone(),
            state,
        };
        let applied_bytes = encode(&record, "applied state").map_err(|e| snapshot_err(&e))?;
        let meta_owned = meta.clone();
        let db = self.db.clone();
        crash_point!("store::before-snapshot-install");
        blocking(move || {
            let tx = begin_write(&db)?;
            {
                let mut table = tx.open_table(MACHINE)?;
                let seq = stored_snapshot_seq(&table)? + 1;
                let stored = StoredSnapshotMeta {
                    seq,
                    meta: meta_owned,
                };
                let stored = encode(&stored, "snapshot meta")?;
                table.insert(KEY_APPLIED, applied_bytes.as_slice())?;
                table.insert(KEY_SNAPSHOT_META, stored.as_slice())?;
                table.insert(KEY_SNAPSHOT_DATA, data.as_slice())?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
        .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        // Installed on disk; the log behind it is not purged yet, the memory not updated.
        crash_point!("store::after-snapshot-install");
        *self.lock() = record;
        Ok(())
    }

    fn read_current_snapshot(&self) -> Result<Option<Snapshot>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(MACHINE)?;
        let (Some(meta), Some(data)) =
            (table.get(KEY_SNAPSHOT_META)?, table.get(KEY_SNAPSHOT_DATA)?)
        else {
            return Ok(None);
        };
        let stored: StoredSnapshotMeta = decode(meta.value(), "snapshot meta")?;
        Ok(Some(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(data.value().to_vec())),
        }))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        // One consistent cut of (state, last applied, membership), taken under the lock.
        let (data, last_log_id, last_membership) = {
            let applied = self.lock();
            let data = encode(&applied.state, "snapshot data")
                .map_err(|e| StorageIOError::write_snapshot(None, &e))?;
            (data, applied.last_applied, applied.last_membership.clone())
        };
        let db = self.db.clone();
        let stored_data = data.clone();
        let meta = blocking(move || {
            let tx = begin_write(&db)?;
            let meta;
            {
                let mut table = tx.open_table(MACHINE)?;
                let previous: Option<StoredSnapshotMeta> = match table.get(KEY_SNAPSHOT_META)? {
                    Some(v) => Some(decode(v.value(), "snapshot meta")?),
                    None => None,
                };
                let seq = previous.as_ref().map_or(0, |p| p.seq) + 1;
                meta = SnapshotMeta {
                    snapshot_id: snapshot_id(last_log_id, seq),
                    last_log_id,
                    last_membership,
                };
                // A snapshot installed from the leader while this one was being built may be
                // newer: never replace it with an older cut.
                if previous.is_none_or(|p| p.meta.last_log_id <= last_log_id) {
                    let stored = encode(
                        &StoredSnapshotMeta {
                            seq,
                            meta: meta.clone(),
                        },
                        "snapshot meta",
                    )?;
                    table.insert(KEY_SNAPSHOT_META, stored.as_slice())?;
                    table.insert(KEY_SNAPSHOT_DATA, stored_data.as_slice())?;
                }
            }
            tx.commit()?;
            // Stored, but openraft does not know of it yet (nor purged the log behind it).
            crash_point!("store::after-snapshot-build");
            Ok(meta)
        })
        .await
        .map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

fn snapshot_id(last_log_id: Option<LogId>, seq: u64) -> String {
    match last_log_id {
        Some(id) => format!("{}-{}-{seq}", id.leader_id, id.index),
        None => format!("none-{seq}"),
    }
}

fn stored_snapshot_seq(table: &redb::Table<&str, &[u8]>) -> Result<u64, StoreError> {
    Ok(match table.get(KEY_SNAPSHOT_META)? {
        Some(v) => decode::<StoredSnapshotMeta>(v.value(), "snapshot meta")?.seq,
        None => 0,
    })
}

/// Whether the stored snapshot covers the log up to `log_id`.
fn covered_by_snapshot(db: &Database, log_id: LogId) -> Result<bool, StoreError> {
    let stored: Option<StoredSnapshotMeta> =
        read_value(db, MACHINE, KEY_SNAPSHOT_META, "snapshot meta")?;
    Ok(stored.is_some_and(|s| s.meta.last_log_id >= Some(log_id)))
}

// --- helpers --------------------------------------------------------------------------------

fn encode<T: Serialize>(value: &T, what: &'static str) -> Result<Vec<u8>, StoreError> {
    codec::encode(value).map_err(|source| StoreError::Codec { what, source })
}

fn decode<T: DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T, StoreError> {
    codec::decode(bytes).map_err(|source| StoreError::Codec { what, source })
}

/// A write transaction that is durable on commit. `Immediate` is redb's default; it is set
/// here anyway because `append`'s contract with openraft rests on it.
fn begin_write(db: &Database) -> Result<WriteTransaction, StoreError> {
    let mut tx = db.begin_write()?;
    tx.set_durability(Durability::Immediate)?;
    Ok(tx)
}

fn read_value<T: DeserializeOwned>(
    db: &Database,
    table: TableDefinition<&str, &[u8]>,
    key: &str,
    what: &'static str,
) -> Result<Option<T>, StoreError> {
    let tx = db.begin_read()?;
    let table = tx.open_table(table)?;
    match table.get(key)? {
        Some(v) => Ok(Some(decode(v.value(), what)?)),
        None => Ok(None),
    }
}

async fn write_value(
    db: &Arc<Database>,
    table: TableDefinition<'static, &'static str, &'static [u8]>,
    key: &'static str,
    bytes: Vec<u8>,
) -> Result<(), StoreError> {
    write_value_with(db, table, key, bytes, Durability::Immediate).await
}

async fn write_value_with(
    db: &Arc<Database>,
    table: TableDefinition<'static, &'static str, &'static [u8]>,
    key: &'static str,
    bytes: Vec<u8>,
    durability: Durability,
) -> Result<(), StoreError> {
    let db = db.clone();
    blocking(move || {
        let mut tx = db.begin_write()?;
        tx.set_durability(durability)?;
        tx.open_table(table)?.insert(key, bytes.as_slice())?;
        tx.commit()?;
        Ok(())
    })
    .await
}

/// Runs a redb transaction (which may fsync) on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await?
}

fn read_logs(e: &StoreError) -> StorageError {
    StorageIOError::read_logs(e).into()
}

fn write_logs(e: &StoreError) -> StorageError {
    StorageIOError::write_logs(e).into()
}

fn read_err(e: &StoreError) -> StorageError {
    StorageIOError::read(e).into()
}

fn write_err(e: &StoreError) -> StorageError {
    StorageIOError::write(e).into()
}

fn write_sm(e: &StoreError) -> StorageError {
    StorageIOError::write_state_machine(e).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_with_another_layout_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.redb");
        drop(open(&path).unwrap());

        let db = Database::create(&path).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(META)
            .unwrap()
            .insert(KEY_FORMAT_VERSION, [STORE_FORMAT_VERSION + 1].as_slice())
            .unwrap();
        tx.commit().unwrap();
        drop(db);

        let err = open(&path).err().expect("must refuse");
        assert!(
            matches!(
                err,
                StoreError::UnsupportedFormat {
                    expected: STORE_FORMAT_VERSION,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_fresh_store_is_stamped_with_the_layout_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.redb");
        drop(open(&path).unwrap());
        let db = Database::create(&path).unwrap();
        let tx = db.begin_read().unwrap();
        let meta = tx.open_table(META).unwrap();
        let version = meta.get(KEY_FORMAT_VERSION).unwrap().unwrap();
        assert_eq!(version.value(), [STORE_FORMAT_VERSION]);
    }
}
