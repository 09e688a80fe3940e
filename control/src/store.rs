//! Crash-safe persistence of the node's attachments (those in service and those being deleted): the
//! whole set is written to a temporary file, fsynced, renamed over the old file and the directory
//! fsynced, so a crash leaves either the old or the new state, never a torn one.

use std::{
    fs::{self, File},
    io::{self, Write},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use strait_cni::protocol::Attachment;

/// Current state file format.
const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct StateFile {
    version: u32,
    attachments: Vec<Attachment>,
    /// Absent in files written before deletions were recorded (and when none is under way).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    deleting: Vec<Attachment>,
}

/// What the store holds: the attachments in service, and those whose removal began but has not
/// finished (their address stays taken until it has).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SavedState {
    pub attachments: Vec<Attachment>,
    pub deleting: Vec<Attachment>,
}

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("state file {path} is corrupt: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "state file {path} has format version {found}, this agent reads version {FORMAT_VERSION}"
    )]
    Version { path: PathBuf, found: u32 },
}

/// The on-disk attachment store.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    /// A store at `path` (the file need not exist).
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    /// Reads the saved state; a missing file is an empty state.
    pub fn load(&self) -> Result<SavedState, StoreError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(SavedState::default()),
            Err(source) => return Err(self.io("reading", source)),
        };
        let state: StateFile =
            serde_json::from_str(&text).map_err(|source| StoreError::Corrupt {
                path: self.path.clone(),
                source,
            })?;
        if state.version != FORMAT_VERSION {
            return Err(StoreError::Version {
                path: self.path.clone(),
                found: state.version,
            });
        }
        Ok(SavedState {
            attachments: state.attachments,
            deleting: state.deleting,
        })
    }

    /// Replaces the stored state with `attachments` (in service) and `deleting`, atomically.
    pub fn save(
        &self,
        attachments: &[Attachment],
        deleting: &[Attachment],
    ) -> Result<(), StoreError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(|source| self.io("creating the directory of", source))?;
        let state = StateFile {
            version: FORMAT_VERSION,
            attachments: attachments.to_vec(),
            deleting: deleting.to_vec(),
        };
        let text = serde_json::to_vec_pretty(&state)
            .map_err(|e| self.io("encoding", io::Error::other(e)))?;
        let tmp = self.path.with_extension("json.tmp");
        let mut file = File::create(&tmp)
            .map_err(|source| self.io("creating a temporary file for", source))?;
        file.write_all(&text)
            .and_then(|()| file.sync_all())
            .map_err(|source| self.io("writing", source))?;
        fs::rename(&tmp, &self.path).map_err(|source| self.io("replacing", source))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| self.io("syncing the directory of", source))?;
        Ok(())
    }

    fn io(&self, action: &'static str, source: io::Error) -> StoreError {
        StoreError::Io {
            action,
            path: self.path.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use strait_cni::protocol::AttachmentKey;

    use super::*;

    fn attachment(id: &str, last: u8) -> Attachment {
        Attachment {
            key: AttachmentKey {
                container_id: id.into(),
                ifname: "eth0".into(),
            },
            netns: format!("/run/netns/{id}"),
            pod_namespace: Some("default".into()),
            pod_name: Some(id.into()),
            host_ifname: format!("st{id}"),
            host_mac: "aa:bb:cc:dd:ee:ff".into(),
            pod_mac: "aa:bb:cc:dd:ee:00".into(),
            address: Ipv4Addr::new(10, 244, 0, last),
            gateway: Ipv4Addr::new(169, 254, 1, 1),
            mtu: None,
        }
    }

    #[test]
    fn missing_file_is_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Store::new(dir.path().join("none.json")).load().unwrap() == SavedState::default());
    }

    #[test]
    fn saved_state_reads_back_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("state/endpoints.json"));
        let saved = vec![attachment("a", 2), attachment("b", 3)];
        store.save(&saved, &[]).unwrap();
        assert_eq!(store.load().unwrap().attachments, saved);
        store.save(&saved[..1], &saved[1..]).unwrap();
        assert_eq!(
            store.load().unwrap(),
            SavedState {
                attachments: saved[..1].to_vec(),
                deleting: saved[1..].to_vec(),
            }
        );
        let names: Vec<_> = fs::read_dir(dir.path().join("state"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("endpoints.json")]);
    }

    #[test]
    fn a_file_from_before_deletions_were_recorded_reads_as_none_deleting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("endpoints.json");
        let old = serde_json::json!({ "version": 1, "attachments": [attachment("a", 2)] });
        fs::write(&path, old.to_string()).unwrap();
        let state = Store::new(path.clone()).load().unwrap();
        assert_eq!(state.attachments, vec![attachment("a", 2)]);
        assert!(state.deleting.is_empty());
        // With nothing being deleted, the file is written as before.
        Store::new(path.clone())
            .save(&state.attachments, &[])
            .unwrap();
        assert!(!fs::read_to_string(&path).unwrap().contains("deleting"));
    }

    #[test]
    fn corrupt_and_future_files_are_reported_not_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("endpoints.json");
        fs::write(&path, "{ not json").unwrap();
        assert!(matches!(
            Store::new(path.clone()).load(),
            Err(StoreError::Corrupt { .. })
        ));
        fs::write(&path, r#"{"version":9,"attachments":[]}"#).unwrap();
        assert!(matches!(
            Store::new(path).load(),
            Err(StoreError::Version { found: 9, .. })
        ));
    }
}
