//! The in-memory index of a node's containers: every `record.json` under
//! `<data>/containers`, read once when the daemon starts, plus the creates in flight. Lookups
//! (by full id, name, unique id prefix), lists and "who uses this volume / image" answer from
//! here instead of reading every record on disk, so each costs O(1) (a prefix O(log n)) and
//! a create no longer scans the others.
//!
//! ```text
//!  by_id:   id ─▶ Entry { name, image_id, volumes, record: None      }  a create in flight
//!                 Entry { name, image_id, volumes, record: Some(rec) }  a container
//!  by_name: name ─▶ id (both kinds: a name being created is taken)
//! ```
//!
//! The records on disk stay the source of truth: `agent::containers` writes a record before
//! it enters the index and drops it from the index only once the record is gone from disk, and
//! a restart reads them again. Only this daemon writes `<data>/containers` (the `swarm runtime`
//! CLI keeps its own state under the runtime's root and makes no records), so the index never
//! misses a container another process made.
//!
//! A reservation (`record: None`) takes its name, and counts as a user of its image and
//! volumes, from the moment `agent::containers` takes it (under its reserve lock) until the
//! create commits or is released: a volume or image is never removed from under a create in
//! flight. Lookups and lists do not see reservations: they are not containers yet.
//!
//! Pure data, no I/O but [`Index::load`]; `agent::containers` keeps it behind a mutex.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use super::containers::{ContainerError, ContainerRecord};
use super::spec::volume_mounts;
use super::volumes::VolumeUsers;

#[derive(Debug, Default)]
pub struct Index {
    by_id: BTreeMap<String, Entry>,
    by_name: HashMap<String, String>,
}

#[derive(Debug)]
struct Entry {
    name: String,
    image_id: String,
    /// The volume names it mounts (anonymous ones already named).
    volumes: Vec<String>,
    /// `None` while its create is in flight.
    record: Option<Arc<ContainerRecord>>,
}

impl Index {
    /// Every readable record under `dir` (one directory per container). A directory without
    /// a readable record (a create that crashed half way) is left out, as it always was.
    pub fn load(dir: &Path) -> Index {
        let mut index = Index::default();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return index;
        };
        for entry in entries.flatten() {
            let path = entry.path().join("record.json");
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            match serde_json::from_slice::<ContainerRecord>(&bytes) {
                Ok(record) => {
                    let (id, name) = (record.id.clone(), record.name.clone());
                    if let Err(e) = index.insert(record) {
                        tracing::warn!(%id, %name, "container record left out: {e}");
                    }
                }
                Err(e) => tracing::warn!("unreadable container record {}: {e}", path.display()),
            }
        }
        index
    }

    /// Add a container whose record is on disk (loading).
    fn insert(&mut self, record: ContainerRecord) -> Result<(), ContainerError> {
        let id = record.id.clone();
        self.take(&id, &record.name)?;
        let entry = Entry {
            name: record.name.clone(),
            image_id: record.image_id.clone(),
            volumes: volumes_of(&record),
            record: Some(Arc::new(record)),
        };
        self.by_id.insert(id, entry);
        Ok(())
    }

    /// Take id `id` and name `name` for a create in flight that will use `image_id` and
    /// `volumes`. Docker's conflict error if the name is taken (by a container or another
    /// create in flight).
    pub fn reserve(
        &mut self,
        id: &str,
        name: &str,
        image_id: &str,
        volumes: Vec<String>,
    ) -> Result<(), ContainerError> {
        self.take(id, name)?;
        self.by_id.insert(
            id.to_owned(),
            Entry {
                name: name.to_owned(),
                image_id: image_id.to_owned(),
                volumes,
                record: None,
            },
        );
        Ok(())
    }

    fn take(&mut self, id: &str, name: &str) -> Result<(), ContainerError> {
        if self.by_name.contains_key(name) {
            return Err(ContainerError::NameInUse(name.to_owned()));
        }
        if self.by_id.contains_key(id) {
            return Err(ContainerError::IdInUse(id.to_owned()));
        }
        self.by_name.insert(name.to_owned(), id.to_owned());
        Ok(())
    }

    /// The create of `record` (reserved under its id and name) is done: it is a container
    /// now. Its record is on disk already.
    pub fn commit(&mut self, record: Arc<ContainerRecord>) {
        match self.by_id.get_mut(&record.id) {
            Some(entry) => {
                entry.volumes = volumes_of(&record);
                entry.record = Some(record);
            }
            // Not reserved (never happens: creates reserve first); indexed all the same.
            None => {
                if let Err(e) = self.insert((*record).clone()) {
                    tracing::warn!(id = %record.id, "container left out of the index: {e}");
                }
            }
        }
    }

    /// Forget container (or reservation) `id`: removed, or its create failed.
    pub fn remove(&mut self, id: &str) {
        if let Some(entry) = self.by_id.remove(id)
            && self
                .by_name
                .get(&entry.name)
                .is_some_and(|owner| owner == id)
        {
            self.by_name.remove(&entry.name);
        }
    }

    /// Whether container `id` (a full id) exists, its create done.
    pub fn contains(&self, id: &str) -> bool {
        self.by_id.get(id).is_some_and(|e| e.record.is_some())
    }

    /// A container by full id, name (with or without the leading '/') or unique id prefix;
    /// creates in flight are not containers yet.
    pub fn find(&self, reference: &str) -> Result<Arc<ContainerRecord>, ContainerError> {
        if let Some(record) = self.by_id.get(reference).and_then(|e| e.record.as_ref()) {
            return Ok(record.clone());
        }
        let name = reference.trim_start_matches('/');
        if let Some(record) = self
            .by_name
            .get(name)
            .and_then(|id| self.by_id.get(id))
            .and_then(|e| e.record.as_ref())
        {
            return Ok(record.clone());
        }
        // Ids sort together with their prefixes: the matches are the run from `reference`.
        let mut matches = self
            .by_id
            .range::<str, _>((
                std::ops::Bound::Included(reference),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(id, _)| id.starts_with(reference))
            .filter_map(|(_, e)| e.record.as_ref());
        match (matches.next(), matches.next()) {
            (Some(one), None) if !reference.is_empty() => Ok(one.clone()),
            (None, _) | (Some(_), None) => Err(ContainerError::NotFound(reference.to_owned())),
            (Some(_), Some(_)) => Err(ContainerError::Ambiguous(reference.to_owned())),
        }
    }

    /// Every container, newest first.
    pub fn records(&self) -> Vec<Arc<ContainerRecord>> {
        let mut out: Vec<Arc<ContainerRecord>> = self
            .by_id
            .values()
            .filter_map(|e| e.record.clone())
            .collect();
        out.sort_by(|a, b| b.created.cmp(&a.created));
        out
    }

    /// The containers using each volume, creates in flight included.
    pub fn volume_users(&self) -> VolumeUsers {
        let mut users = VolumeUsers::new();
        for (id, entry) in &self.by_id {
            for name in &entry.volumes {
                let ids = users.entry(name.clone()).or_default();
                if !ids.contains(id) {
                    ids.push(id.clone());
                }
            }
        }
        users
    }

    /// The image ids containers use, creates in flight included.
    pub fn image_ids(&self) -> HashSet<String> {
        self.by_id.values().map(|e| e.image_id.clone()).collect()
    }
}

/// The volume names a container mounts, as its record says.
pub fn volumes_of(record: &ContainerRecord) -> Vec<String> {
    let mut names: Vec<String> = volume_mounts(&record.request)
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.name)
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::container::{ContainerCreateRequest, Mount};

    fn record(id: &str, name: &str, created: &str, volumes: &[&str]) -> ContainerRecord {
        let mut request = ContainerCreateRequest {
            image: "busybox".into(),
            ..Default::default()
        };
        request.host_config.mounts = Some(
            volumes
                .iter()
                .map(|v| Mount {
                    kind: "volume".into(),
                    source: (*v).into(),
                    target: format!("/{v}"),
                    ..Default::default()
                })
                .collect(),
        );
        ContainerRecord {
            id: id.into(),
            name: name.into(),
            image: "busybox".into(),
            image_id: format!("sha256:image-of-{name}"),
            created: created.into(),
            request,
            args: vec!["sh".into()],
        }
    }

    fn committed(index: &mut Index, r: ContainerRecord) {
        index
            .reserve(&r.id, &r.name, &r.image_id, volumes_of(&r))
            .unwrap();
        index.commit(Arc::new(r));
    }

    #[test]
    fn t10_finds_by_id_name_and_unique_prefix() {
        let mut index = Index::default();
        committed(
            &mut index,
            record("abc123", "web", "2026-01-01T00:00:01Z", &[]),
        );
        committed(
            &mut index,
            record("abd456", "db", "2026-01-01T00:00:02Z", &[]),
        );
        assert_eq!(index.find("abc123").unwrap().name, "web");
        assert_eq!(index.find("web").unwrap().id, "abc123");
        assert_eq!(index.find("/db").unwrap().id, "abd456");
        assert_eq!(index.find("abc").unwrap().id, "abc123");
        assert!(matches!(
            index.find("ab"),
            Err(ContainerError::Ambiguous(_))
        ));
        assert!(matches!(
            index.find("abe"),
            Err(ContainerError::NotFound(_))
        ));
        assert!(matches!(
            index.find("zzz"),
            Err(ContainerError::NotFound(_))
        ));
        // An empty reference names nothing, and is ambiguous among several (as before).
        assert!(matches!(index.find(""), Err(ContainerError::Ambiguous(_))));
        let names: Vec<String> = index.records().iter().map(|r| r.name.clone()).collect();
        assert_eq!(names, ["db", "web"], "newest first");
    }

    #[test]
    fn t20_a_reservation_takes_its_name_but_is_no_container_yet() {
        let mut index = Index::default();
        index
            .reserve("abc123", "web", "sha256:i", vec!["data".into()])
            .unwrap();
        let taken = index.reserve("def456", "web", "sha256:i", vec![]);
        assert!(
            matches!(&taken, Err(ContainerError::NameInUse(n)) if n == "web"),
            "{taken:?}"
        );
        assert_eq!(
            taken.unwrap_err().to_string(),
            "Conflict. The container name \"/web\" is already in use"
        );
        assert!(matches!(
            index.find("web"),
            Err(ContainerError::NotFound(_))
        ));
        assert!(matches!(
            index.find("abc"),
            Err(ContainerError::NotFound(_))
        ));
        assert!(!index.contains("abc123"));
        assert!(index.records().is_empty());
        // ... but its volume and image are in use.
        assert_eq!(index.volume_users()["data"], ["abc123"]);
        assert!(index.image_ids().contains("sha256:i"));

        // Released: everything is free again.
        index.remove("abc123");
        assert!(index.volume_users().is_empty());
        assert!(index.image_ids().is_empty());
        index.reserve("def456", "web", "sha256:i", vec![]).unwrap();
    }

    #[test]
    fn t30_commit_and_remove() {
        let mut index = Index::default();
        committed(
            &mut index,
            record("abc123", "web", "2026-01-01T00:00:01Z", &["v1", "v2"]),
        );
        committed(
            &mut index,
            record("abd456", "db", "2026-01-01T00:00:02Z", &["v1"]),
        );
        assert!(index.contains("abc123"));
        let users = index.volume_users();
        assert_eq!(users["v1"], ["abc123", "abd456"]);
        assert_eq!(users["v2"], ["abc123"]);
        index.remove("abc123");
        assert!(!index.contains("abc123"));
        assert!(matches!(
            index.find("web"),
            Err(ContainerError::NotFound(_))
        ));
        // The prefix is unique now.
        assert_eq!(index.find("ab").unwrap().name, "db");
        assert!(!index.volume_users().contains_key("v2"));
        // The name is free again.
        index.reserve("fff000", "web", "sha256:i", vec![]).unwrap();
        // A second id clash is refused, not overwritten.
        assert!(
            index
                .reserve("abd456", "other", "sha256:i", vec![])
                .is_err()
        );
        assert_eq!(index.find("db").unwrap().id, "abd456");
    }

    #[test]
    fn t40_load_reads_the_records_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        for r in [
            record("abc123", "web", "2026-01-01T00:00:01Z", &["data"]),
            record("abd456", "db", "2026-01-01T00:00:02Z", &[]),
        ] {
            let d = dir.path().join(&r.id);
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("record.json"), serde_json::to_vec(&r).unwrap()).unwrap();
        }
        // A create that crashed before its record, and a record that cannot be read.
        std::fs::create_dir(dir.path().join("half")).unwrap();
        std::fs::create_dir(dir.path().join("bad")).unwrap();
        std::fs::write(dir.path().join("bad/record.json"), b"{not json").unwrap();
        let index = Index::load(dir.path());
        assert_eq!(index.records().len(), 2);
        assert_eq!(index.find("web").unwrap().id, "abc123");
        assert_eq!(index.find("abd").unwrap().name, "db");
        assert_eq!(index.volume_users()["data"], ["abc123"]);
        assert!(
            Index::load(&dir.path().join("missing"))
                .records()
                .is_empty()
        );
    }
}
