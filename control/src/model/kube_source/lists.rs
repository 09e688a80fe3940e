//! Lists streamed into the store: a listed object goes on as an upsert the moment it arrives, and when
//! the list completes the keys the source knew of that kind but the list did not hold go on as
//! deletes. The store ends where one `Replace` would have left it (an identical upsert yields no event,
//! so a relist that finds nothing new costs no sync work), but no list is ever held whole: the source
//! keeps only keys, and a list's objects pass through the bounded queue a page at a time.

use std::collections::{BTreeMap, BTreeSet};

use strait_k8s::{Kind, ObjectKey};

/// The keys the source has handed on, per kind, and those the lists in progress have named.
#[derive(Debug, Default)]
pub(super) struct ListTracker {
    known: BTreeMap<Kind, BTreeSet<ObjectKey>>,
    listing: BTreeMap<Kind, BTreeSet<ObjectKey>>,
}

impl ListTracker {
    /// An object was applied (on the watch).
    pub(super) fn applied(&mut self, key: ObjectKey) {
        self.known.entry(key.kind).or_default().insert(key);
    }

    /// An object was deleted (on the watch).
    pub(super) fn deleted(&mut self, key: &ObjectKey) {
        if let Some(keys) = self.known.get_mut(&key.kind) {
            keys.remove(key);
        }
    }

    /// A list of `kind` starts (again, if an earlier attempt broke off: what it named is forgotten).
    pub(super) fn started(&mut self, kind: Kind) {
        self.listing.insert(kind, BTreeSet::new());
    }

    /// The list of its kind names `key`.
    pub(super) fn listed(&mut self, key: ObjectKey) {
        self.listing
            .entry(key.kind)
            .or_default()
            .insert(key.clone());
        self.applied(key);
    }

    /// The list of `kind` is complete: the keys known before that it did not name, now forgotten.
    pub(super) fn done(&mut self, kind: Kind) -> Vec<ObjectKey> {
        let named = self.listing.remove(&kind).unwrap_or_default();
        let known = self.known.entry(kind).or_default();
        let gone: Vec<ObjectKey> = known.difference(&named).cloned().collect();
        *known = named;
        gone
    }

    /// Keys named by lists in progress.
    pub(super) fn in_progress(&self) -> usize {
        self.listing.values().map(BTreeSet::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kind: Kind, name: &str) -> ObjectKey {
        ObjectKey::namespaced(kind, "default", name)
    }

    #[test]
    fn a_completed_list_deletes_what_it_did_not_name_and_only_of_its_kind() {
        let mut lists = ListTracker::default();
        lists.applied(key(Kind::Service, "a"));
        lists.applied(key(Kind::Service, "b"));
        lists.applied(key(Kind::Pod, "p"));
        lists.started(Kind::Service);
        lists.listed(key(Kind::Service, "a"));
        // A broken-off attempt is forgotten; the new one names b and c.
        lists.started(Kind::Service);
        lists.listed(key(Kind::Service, "b"));
        lists.listed(key(Kind::Service, "c"));
        assert_eq!(lists.in_progress(), 2);
        assert_eq!(lists.done(Kind::Service), [key(Kind::Service, "a")]);
        assert_eq!(lists.in_progress(), 0);
        // The next relist naming nothing removes b and c, and the Pod stays known.
        lists.started(Kind::Service);
        assert_eq!(
            lists.done(Kind::Service),
            [key(Kind::Service, "b"), key(Kind::Service, "c")]
        );
        lists.deleted(&key(Kind::Pod, "p"));
        lists.started(Kind::Pod);
        assert!(lists.done(Kind::Pod).is_empty());
    }
}
