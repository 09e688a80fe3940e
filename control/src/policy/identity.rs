//! Security identities. Pods with the same namespace and labels are one identity: policies select by
//! namespace and labels only, so they cannot tell such pods apart. Each node numbers identities on its
//! own (every node sees every Pod and Namespace, and numbers never travel on the wire) and never reuses
//! a number while it runs, so a stale number in a map can only ever mean the identity it was given to.
//! [`IpCache`] follows pod addresses: a pod relabelled, or an address passed to another pod, is one
//! entry rewritten, not a rule.

use std::{
    collections::{BTreeMap, btree_map::Entry},
    net::Ipv4Addr,
};

use strait_k8s::Labels;

/// Anything outside the cluster.
pub const IDENTITY_WORLD: u32 = 1;
/// This node itself (always allowed to reach its pods).
pub const IDENTITY_HOST: u32 = 2;
/// The first number given to pods; those below are reserved.
pub const FIRST_POD_IDENTITY: u32 = 256;

/// What an identity stands for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IdentityKey {
    pub namespace: String,
    pub labels: Labels,
}

#[derive(Clone, Debug)]
struct Allocated {
    number: u32,
    users: usize,
}

/// The identities in use and how many pods hold each.
#[derive(Clone, Debug)]
pub struct Identities {
    by_key: BTreeMap<IdentityKey, Allocated>,
    by_number: BTreeMap<u32, IdentityKey>,
    next: u32,
}

impl Default for Identities {
    fn default() -> Self {
        Self {
            by_key: BTreeMap::new(),
            by_number: BTreeMap::new(),
            next: FIRST_POD_IDENTITY,
        }
    }
}

impl Identities {
    /// One more user of `key`'s identity; its number (a new one for a key not in use).
    pub fn acquire(&mut self, key: &IdentityKey) -> u32 {
        if let Some(allocated) = self.by_key.get_mut(key) {
            allocated.users += 1;
            return allocated.number;
        }
        let number = self.next;
        self.next += 1;
        self.by_key
            .insert(key.clone(), Allocated { number, users: 1 });
        self.by_number.insert(number, key.clone());
        number
    }

    /// One user fewer of `key`'s identity; its number when that was the last user (the identity is
    /// gone, its number retired).
    pub fn release(&mut self, key: &IdentityKey) -> Option<u32> {
        let Entry::Occupied(mut entry) = self.by_key.entry(key.clone()) else {
            return None;
        };
        entry.get_mut().users -= 1;
        if entry.get().users > 0 {
            return None;
        }
        let number = entry.remove().number;
        self.by_number.remove(&number);
        Some(number)
    }

    /// The number of `key`, if a pod holds it.
    pub fn number(&self, key: &IdentityKey) -> Option<u32> {
        self.by_key.get(key).map(|a| a.number)
    }

    /// What `number` stands for, if it is in use.
    pub fn key(&self, number: u32) -> Option<&IdentityKey> {
        self.by_number.get(&number)
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

/// A change to the address → identity map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpCacheChange {
    Set(Ipv4Addr, u32),
    Remove(Ipv4Addr),
}

/// Every pod address of the cluster and the identity of the pod holding it.
#[derive(Clone, Debug, Default)]
pub struct IpCache {
    identities: Identities,
    by_ip: BTreeMap<Ipv4Addr, IdentityKey>,
}

impl IpCache {
    /// Records that the pod at `ip` is `key`; the map change, if any.
    pub fn set(&mut self, ip: Ipv4Addr, key: &IdentityKey) -> Option<IpCacheChange> {
        if self.by_ip.get(&ip) == Some(key) {
            return None;
        }
        let number = self.identities.acquire(key);
        if let Some(old) = self.by_ip.insert(ip, key.clone()) {
            self.identities.release(&old);
        }
        Some(IpCacheChange::Set(ip, number))
    }

    /// Records that no pod has `ip` any more; the map change, if any.
    pub fn remove(&mut self, ip: Ipv4Addr) -> Option<IpCacheChange> {
        let old = self.by_ip.remove(&ip)?;
        self.identities.release(&old);
        Some(IpCacheChange::Remove(ip))
    }

    /// The identity of the pod at `ip`; outside the cluster without one.
    pub fn identity(&self, ip: Ipv4Addr) -> u32 {
        self.by_ip
            .get(&ip)
            .and_then(|key| self.identities.number(key))
            .unwrap_or(IDENTITY_WORLD)
    }

    pub fn identities(&self) -> &Identities {
        &self.identities
    }

    /// Every address recorded, in order.
    pub fn addresses(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.by_ip.keys().copied()
    }

    /// Number of addresses recorded.
    pub fn len(&self) -> usize {
        self.by_ip.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(namespace: &str, labels: &[(&str, &str)]) -> IdentityKey {
        IdentityKey {
            namespace: namespace.to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn pods_alike_share_an_identity_and_namespaces_tell_them_apart() {
        let mut ids = Identities::default();
        let web_x = ids.acquire(&key("x", &[("app", "web")]));
        assert_eq!(web_x, FIRST_POD_IDENTITY);
        assert_eq!(ids.acquire(&key("x", &[("app", "web")])), web_x);
        let web_y = ids.acquire(&key("y", &[("app", "web")]));
        assert_ne!(web_y, web_x);
        assert_ne!(
            ids.acquire(&key("x", &[("app", "web"), ("tier", "1")])),
            web_x
        );
        assert_eq!(ids.key(web_y), Some(&key("y", &[("app", "web")])));
        assert_eq!(ids.len(), 3);
    }

    #[test]
    fn an_identity_goes_with_its_last_pod_and_its_number_is_never_reused() {
        let mut ids = Identities::default();
        let web = key("x", &[("app", "web")]);
        let number = ids.acquire(&web);
        ids.acquire(&web);
        assert_eq!(ids.release(&web), None, "one pod still holds it");
        assert_eq!(ids.release(&web), Some(number));
        assert_eq!(ids.key(number), None);
        assert_eq!(ids.release(&web), None, "nothing left to release");
        assert!(ids.acquire(&web) > number, "a new number");
        assert_eq!(ids.len(), 1);
    }

    #[test]
    fn the_ip_cache_follows_relabels_and_addresses_changing_owner() {
        let mut cache = IpCache::default();
        let (a, b) = (Ipv4Addr::new(10, 244, 1, 2), Ipv4Addr::new(10, 244, 2, 2));
        let web = key("x", &[("app", "web")]);
        let db = key("x", &[("app", "db")]);
        let Some(IpCacheChange::Set(_, web_id)) = cache.set(a, &web) else {
            panic!("a new entry")
        };
        assert_eq!(cache.set(a, &web), None, "nothing changed");
        assert_eq!(cache.set(b, &web), Some(IpCacheChange::Set(b, web_id)));
        // Pod a relabelled: its address now carries db's identity; web lives on in pod b.
        let Some(IpCacheChange::Set(_, db_id)) = cache.set(a, &db) else {
            panic!("relabelled")
        };
        assert_ne!(db_id, web_id);
        assert_eq!((cache.identity(a), cache.identity(b)), (db_id, web_id));
        // Pod b goes: web has no pod left, and b's address is outside the cluster again.
        assert_eq!(cache.remove(b), Some(IpCacheChange::Remove(b)));
        assert_eq!(cache.identity(b), IDENTITY_WORLD);
        assert_eq!(cache.identities().number(&web), None);
        assert_eq!(cache.remove(b), None);
    }
}
