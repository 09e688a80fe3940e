//! The keys' byte order, the plans and their order, and (as root) a sync into real kernel maps made as
//! the object declares them: written, read back unchanged, changed, emptied.

use std::os::fd::{FromRawFd as _, OwnedFd};

use aya::maps::MapData;
use strait_abi::policy::{POLICY_CIDR_KEY_FIXED_BITS, POLICY_KEY_FIXED_BITS};

use super::keys::RawKey as _;
use super::*;

fn subject(flags: u32, identity: u32) -> PolicySubject {
    PolicySubject { flags, identity }
}

#[test]
fn keys_carry_addresses_identities_and_ports_in_network_order_with_host_bits_cleared() {
    let raw = allow_raw(&AllowKey {
        subject: Ipv4Addr::new(10, 244, 1, 5),
        direction: POLICY_INGRESS,
        protocol: 6,
        peer: 0x0102_0304,
        port: 8080,
        port_prefix: 12,
    });
    let key = PolicyKey::key(&raw);
    assert_eq!(key.prefix_len(), POLICY_KEY_FIXED_BITS + 12);
    let data = key.data();
    assert_eq!(data.subject.to_ne_bytes(), [10, 244, 1, 5]);
    assert_eq!(data.peer, [1, 2, 3, 4]);
    assert_eq!((data.direction, data.protocol), (POLICY_INGRESS, 6));
    assert_eq!(data.port, (0x1f90u16 & 0xfff0).to_be_bytes());
    assert_eq!(PolicyKey::raw(&key), raw, "read back as written");

    let cidr = |prefix_len| {
        PolicyCidrKey::key(&cidr_raw(&CidrKey {
            subject: Ipv4Addr::new(10, 244, 1, 5),
            direction: POLICY_EGRESS,
            protocol: 17,
            prefix: Ipv4Addr::new(192, 168, 7, 9),
            prefix_len,
        }))
    };
    assert_eq!(cidr(16).prefix_len(), POLICY_CIDR_KEY_FIXED_BITS + 16);
    assert_eq!(cidr(16).data().addr.to_ne_bytes(), [192, 168, 0, 0]);
    assert_eq!(cidr(32).data().addr.to_ne_bytes(), [192, 168, 7, 9]);
    assert_eq!(cidr(0).data().addr, 0);
    assert_eq!(
        PolicyCidrKey::raw(&cidr(16)),
        cidr_raw(&CidrKey {
            subject: Ipv4Addr::new(10, 244, 1, 5),
            direction: POLICY_EGRESS,
            protocol: 17,
            prefix: Ipv4Addr::new(192, 168, 0, 0),
            prefix_len: 16,
        })
    );
}

#[test]
fn a_plan_writes_what_differs_and_removes_what_is_not_wanted() {
    let wanted = BTreeMap::from([(1u32, 10u32), (2, 20), (3, 30)]);
    let present = BTreeMap::from([(2u32, 20u32), (3, 31), (4, 40)]);
    let plan = Plan::new(&wanted, &present);
    assert_eq!(plan.upserts, [(1, 10), (3, 30)]);
    assert_eq!(plan.removals, [4]);
}

#[test]
fn isolation_is_lifted_before_the_allow_entries_change_and_added_after() {
    let (ingress, egress) = (SUBJECT_F_INGRESS_ISOLATED, SUBJECT_F_EGRESS_ISOLATED);
    let present = BTreeMap::from([
        (1, subject(ingress, 256)),          // loses ingress, gains egress
        (2, subject(ingress | egress, 257)), // no longer a subject
        (3, subject(ingress, 258)),          // unchanged
        (4, subject(ingress, 259)),          // relabelled: only the identity changes
    ]);
    let wanted = BTreeMap::from([
        (1, subject(egress, 256)),
        (3, subject(ingress, 258)),
        (4, subject(ingress, 300)),
        (5, subject(ingress | SUBJECT_F_AUDIT, 301)), // new
    ]);
    let steps = subject_steps(&wanted, &present);
    assert_eq!(steps.relax.upserts, [(1, subject(0, 256))]);
    assert_eq!(steps.relax.removals, [2]);
    assert_eq!(
        steps.tighten,
        [
            (1, subject(egress, 256)),
            (4, subject(ingress, 300)),
            (5, subject(ingress | SUBJECT_F_AUDIT, 301)),
        ]
    );
    // Audit mode turned on goes in with the relaxing step; turned off, with the tightening one.
    let audited = BTreeMap::from([(1, subject(ingress | SUBJECT_F_AUDIT, 256))]);
    let plain = BTreeMap::from([(1, subject(ingress, 256))]);
    let on = subject_steps(&audited, &plain);
    assert_eq!(
        on.relax.upserts,
        [(1, subject(ingress | SUBJECT_F_AUDIT, 256))]
    );
    assert!(on.tighten.is_empty());
    let off = subject_steps(&plain, &audited);
    assert!(off.relax.upserts.is_empty());
    assert_eq!(off.tighten, [(1, subject(ingress, 256))]);
}

/// Tables with an entry of each kind, keyed around one local pod.
fn sample() -> PolicyTables {
    let pod = Ipv4Addr::new(10, 244, 1, 2);
    let mut cidr = PolicyCidrAllow {
        rule: PolicyRule { policy: 1, rule: 0 },
        count: 1,
        ..PolicyCidrAllow::default()
    };
    cidr.ranges[0] = PortRange {
        first: 80,
        last: 81,
    };
    let allow = |peer, port, port_prefix| {
        (
            AllowKey {
                subject: pod,
                direction: POLICY_INGRESS,
                protocol: 6,
                peer,
                port,
                port_prefix,
            },
            PolicyRule { policy: 1, rule: 1 },
        )
    };
    PolicyTables {
        ipcache: BTreeMap::from([(pod, 256), (Ipv4Addr::new(10, 244, 2, 9), 257)]),
        subjects: BTreeMap::from([(pod, subject(SUBJECT_F_INGRESS_ISOLATED, 256))]),
        allow: BTreeMap::from([allow(257, 80, 16), allow(IDENTITY_ANY, 1024, 6)]),
        cidr: BTreeMap::from([(
            CidrKey {
                subject: pod,
                direction: POLICY_INGRESS,
                protocol: 6,
                prefix: Ipv4Addr::new(192, 168, 0, 0),
                prefix_len: 16,
            },
            cidr,
        )]),
    }
}

/// A kernel map of 1,024 entries made with BPF_MAP_CREATE, as the object's would be.
fn kernel_map(map_type: u32, key_size: usize, value_size: usize, flags: u32) -> MapData {
    let size = |n: usize| u32::try_from(n).unwrap();
    let mut attr = [0u32; 32];
    attr[..5].copy_from_slice(&[map_type, size(key_size), size(value_size), 1024, flags]);
    // SAFETY: BPF_MAP_CREATE reads a `union bpf_attr` of the size passed: map type, key size,
    // value size, max entries and flags first, every other field zero.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            0, // BPF_MAP_CREATE
            attr.as_ptr(),
            size_of_val(&attr),
        )
    };
    assert!(
        fd >= 0,
        "BPF_MAP_CREATE: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: the syscall returned a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(i32::try_from(fd).unwrap()) };
    MapData::from_fd(fd).unwrap()
}

/// The four maps as the object declares them.
fn kernel_maps() -> [Map; 4] {
    const HASH: u32 = 1;
    const LPM_TRIE: u32 = 11;
    const NO_PREALLOC: u32 = 1;
    let lpm_key = |data| 4 + data;
    [
        Map::HashMap(kernel_map(HASH, 4, size_of::<IdentityValue>(), 0)),
        Map::HashMap(kernel_map(HASH, 4, size_of::<PolicySubject>(), 0)),
        Map::LpmTrie(kernel_map(
            LPM_TRIE,
            lpm_key(size_of::<PolicyKey>()),
            size_of::<PolicyRule>(),
            NO_PREALLOC,
        )),
        Map::LpmTrie(kernel_map(
            LPM_TRIE,
            lpm_key(size_of::<PolicyCidrKey>()),
            size_of::<PolicyCidrAllow>(),
            NO_PREALLOC,
        )),
    ]
}

fn sync_into(maps: &mut [Map; 4], tables: &PolicyTables) -> PolicySyncReport {
    let [ipcache, subjects, allow, cidr] = maps;
    sync(
        PolicyMaps {
            ipcache,
            subjects,
            allow,
            cidr,
        },
        tables,
    )
    .unwrap()
}

#[test]
#[ignore = "needs root: creates kernel maps"]
fn the_maps_come_to_hold_exactly_the_tables_and_an_unchanged_sync_writes_nothing() {
    let mut maps = kernel_maps();
    let mut tables = sample();
    let first = sync_into(&mut maps, &tables);
    let counts = |r: &PolicySyncReport, f: fn(&MapSync) -> usize| {
        [r.ipcache, r.subjects, r.allow, r.cidr].map(|m| f(&m))
    };
    assert_eq!(counts(&first, |m| m.written), [2, 1, 2, 1]);
    assert!(
        !sync_into(&mut maps, &tables).changed(),
        "the kernel's keys read back as written"
    );

    // One allow entry and the subject's isolation go, an address changes identity, a prefix
    // changes its ports.
    let first_allow = *tables.allow.keys().next().unwrap();
    tables.allow.remove(&first_allow);
    tables
        .subjects
        .values_mut()
        .for_each(|s| s.flags = SUBJECT_F_AUDIT);
    tables.ipcache.insert(Ipv4Addr::new(10, 244, 2, 9), 300);
    tables.cidr.values_mut().for_each(|c| c.ranges[0].last = 90);
    let second = sync_into(&mut maps, &tables);
    assert_eq!(counts(&second, |m| m.written), [1, 1, 0, 1]);
    assert_eq!(counts(&second, |m| m.removed), [0, 0, 1, 0]);
    let allow = read_trie::<PolicyKey, PolicyRule>(&mut maps[2], POLICY_MAP).unwrap();
    let want: Vec<RawAllow> = tables.allow.keys().map(allow_raw).collect();
    assert_eq!(allow.keys().copied().collect::<Vec<_>>(), want);
    let cidr = read_trie::<PolicyCidrKey, PolicyCidrAllow>(&mut maps[3], POLICY_CIDR_MAP).unwrap();
    assert_eq!(cidr.values().next().unwrap().ranges[0].last, 90);
    let subjects: BTreeMap<u32, PolicySubject> =
        read_hash(&mut maps[1], POLICY_SUBJECT_MAP).unwrap();
    assert_eq!(subjects.values().next().unwrap().flags, SUBJECT_F_AUDIT);
    let ipcache: BTreeMap<u32, IdentityValue> = read_hash(&mut maps[0], IPCACHE_MAP).unwrap();
    assert_eq!(
        ipcache[&addr_word(Ipv4Addr::new(10, 244, 2, 9))].identity,
        300
    );

    let emptied = sync_into(&mut maps, &PolicyTables::default());
    assert_eq!(counts(&emptied, |m| m.removed), [2, 1, 1, 1]);
    assert!(!sync_into(&mut maps, &PolicyTables::default()).changed());
}
