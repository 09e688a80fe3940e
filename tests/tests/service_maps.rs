//! The service maps programmed by difference, on real (pinned) kernel maps: a second load adopts what the
//! first wrote and rewrites nothing; changes touch only what differs; a full map is a named error.

use std::{net::Ipv4Addr, path::PathBuf};

use strait_dataplane::{
    Dataplane, LoadOptions,
    services::{Backend, L4Proto, ServiceEntry, ServiceKey},
};
use strait_tests::{require_root, unique};

/// A pin directory on bpffs, removed on drop.
struct Pins(PathBuf);

impl Drop for Pins {
    fn drop(&mut self) {
        let _ = Dataplane::remove_pins(&self.0);
    }
}

fn entry(last: u8, backends: &[u8], affinity: Option<u32>) -> ServiceEntry {
    ServiceEntry {
        key: ServiceKey {
            vip: Ipv4Addr::new(10, 96, 0, last),
            port: 80,
            proto: L4Proto::Tcp,
        },
        backends: backends
            .iter()
            .map(|b| Backend {
                addr: Ipv4Addr::new(10, 244, 0, *b),
                port: 8080,
            })
            .collect(),
        affinity_timeout_s: affinity,
        external: None,
        endpoints_elsewhere: false,
    }
}

#[test]
fn restarted_dataplane_adopts_services_and_syncs_by_difference() {
    require_root();
    strait_dataplane::bpffs::ensure_mounted(std::path::Path::new("/sys/fs/bpf")).unwrap();
    let pins = Pins(PathBuf::from("/sys/fs/bpf").join(unique("strait-test-svc")));
    let options = LoadOptions {
        pin_dir: Some(pins.0.clone()),
        ..LoadOptions::default()
    };
    let desired = vec![
        entry(10, &[1, 2, 3], None),
        entry(11, &[4], Some(30)),
        entry(12, &[], None),
    ];
    {
        let mut first = Dataplane::load(&options).unwrap();
        let mut table = first.read_services().unwrap();
        assert!(table.is_empty());
        let report = first.sync_services(&mut table, &desired).unwrap();
        assert_eq!((report.added, report.updated, report.removed), (3, 0, 0));
    }
    let mut second = Dataplane::load(&options).unwrap();
    let mut table = second.read_services().unwrap();
    assert_eq!(table.len(), 3, "the pinned entries are adopted");
    let report = second.sync_services(&mut table, &desired).unwrap();
    assert_eq!(
        report.unchanged, 3,
        "a restart rewrites nothing: {report:?}"
    );

    let changed = vec![entry(10, &[1, 3], None), entry(11, &[4], Some(60))];
    let report = second.sync_services(&mut table, &changed).unwrap();
    assert_eq!(
        (report.updated, report.removed, report.unchanged),
        (2, 1, 0),
        "{report:?}"
    );
    // What the kernel holds now reads back exactly as desired.
    let mut reread = second.read_services().unwrap();
    let report = second.sync_services(&mut reread, &changed).unwrap();
    assert_eq!(report.unchanged, 2, "{report:?}");
}

/// A full map refuses one frontend, not the sync: the others are written, the refused one is named with
/// the map that is full, nothing it had written stays behind, and its id is used again.
#[test]
fn full_service_map_refuses_one_frontend_and_leaks_nothing() {
    require_root();
    let mut dataplane = Dataplane::load(&LoadOptions {
        service_capacity: 2,
        ..LoadOptions::default()
    })
    .unwrap();
    let mut table = dataplane.read_services().unwrap();
    let desired = [
        entry(1, &[1, 2], None),
        entry(2, &[1], None),
        entry(3, &[1, 2, 3], None),
    ];
    let report = dataplane.sync_services(&mut table, &desired).unwrap();
    assert_eq!((report.added, report.failed.len()), (2, 1), "{report:?}");
    let (key, error) = &report.failed[0];
    assert_eq!(*key, desired[2].key);
    assert!(
        error.to_string().contains("SVC_V1 is full (2 entries)"),
        "{error}"
    );
    assert_eq!(table.len(), 2);
    assert_eq!(
        dataplane.service_slot_count().unwrap(),
        3,
        "the refused frontend's slots were freed"
    );
    // Retried after room was made: it goes in, and the kernel holds exactly what is desired.
    let report = dataplane.sync_services(&mut table, &desired[1..]).unwrap();
    assert_eq!(
        (report.added, report.removed, report.failed.len()),
        (1, 1, 0),
        "{report:?}"
    );
    assert_eq!(dataplane.service_slot_count().unwrap(), 4);
    let reread = dataplane.read_services().unwrap();
    assert_eq!(reread.entries().cloned().collect::<Vec<_>>(), desired[1..]);
}

/// The map census counts what each map really holds, on descriptors of its own: the service maps'
/// frontends and backend slots as written, an empty CT map as empty, arrays as full, every map with the
/// capacity it was loaded with; and it sees changes made after it was taken.
#[test]
fn map_census_counts_entries_and_capacities() {
    require_root();
    let mut dataplane = Dataplane::load(&LoadOptions {
        service_capacity: 64,
        conntrack_capacity: 1024,
        ..LoadOptions::default()
    })
    .unwrap();
    let census = dataplane.census().unwrap();
    let fill = |name: &str| {
        census
            .count()
            .into_iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("{name} missing from the census"))
    };
    assert_eq!((fill("SVC_V1").entries, fill("SVC_V1").capacity), (0, 64));
    let mut table = dataplane.read_services().unwrap();
    let desired = [entry(1, &[1, 2], None), entry(2, &[1, 2, 3], None)];
    dataplane.sync_services(&mut table, &desired).unwrap();
    let svc = fill("SVC_V1");
    assert_eq!(
        (svc.kind.label(), svc.entries, svc.capacity),
        ("hash", 2, 64)
    );
    assert!((svc.ratio() - 2.0 / 64.0).abs() < 1e-9, "{svc:?}");
    assert_eq!(
        u64::try_from(dataplane.service_slot_count().unwrap()).unwrap(),
        fill("SVC_SLOT_V1").entries
    );
    let ct = fill("CT_V1");
    assert_eq!(
        (ct.kind.label(), ct.entries, ct.capacity),
        ("lru_hash", 0, 1024)
    );
    let stats = fill("STATS_V1");
    assert_eq!(stats.kind.label(), "percpu_array");
    assert_eq!(stats.entries, u64::from(stats.capacity), "arrays are full");
    assert_eq!(fill("POLICY_V1").kind.label(), "lpm_trie");
    assert!(
        census.count().iter().all(|f| f.name != "POLICY_EVENTS_V1"),
        "the ring buffer has no entries to count"
    );
    let links = |census: &strait_dataplane::census::Census, program: &str| {
        census
            .program_links()
            .into_iter()
            .find(|p| p.program == program)
            .unwrap_or_else(|| panic!("{program} missing"))
            .links
    };
    assert_eq!(links(&census, "from_pod"), 0, "attached nowhere yet");
}
