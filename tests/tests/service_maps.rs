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
