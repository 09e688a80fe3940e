//! Memory readings netbench reports: the kernel's own allocations (what rules and maps cost, read from
//! `/proc/meminfo`), a process's resident set, and the memory locked by the BPF maps a process holds
//! (from `/proc/<pid>/fdinfo`).

use std::fs;

use crate::svcscale::status_kib;

/// Kernel memory that rules and maps live in, KiB: unreclaimable slab + vmalloc + per-CPU. Machine-wide,
/// so differences are only meaningful when they are large next to the machine's background churn.
pub fn kernel_kib() -> Option<u64> {
    let meminfo = fs::read_to_string("/proc/meminfo").ok()?;
    Some(
        ["SUnreclaim", "VmallocUsed", "Percpu"]
            .iter()
            .filter_map(|field| status_kib(&meminfo, field))
            .sum(),
    )
}

/// Resident set of `pid`, KiB.
pub fn rss_kib(pid: i32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_kib(&status, "VmRSS")
}

/// Memory locked by the BPF maps whose file descriptors `pid` holds, KiB (each map counted once, by id).
pub fn bpf_map_kib(pid: i32) -> Option<u64> {
    let entries = fs::read_dir(format!("/proc/{pid}/fdinfo")).ok()?;
    let mut seen = std::collections::BTreeSet::new();
    let mut bytes = 0u64;
    for entry in entries.flatten() {
        let Ok(info) = fs::read_to_string(entry.path()) else {
            continue;
        };
        if let Some((id, memlock)) = map_memlock(&info)
            && seen.insert(id)
        {
            bytes += memlock;
        }
    }
    Some(bytes / 1024)
}

/// (map id, memlock bytes) from one fdinfo file, when it describes a BPF map.
fn map_memlock(fdinfo: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        fdinfo.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            rest.trim().parse::<u64>().ok()
        })
    };
    field("map_type")?;
    Some((field("map_id")?, field("memlock")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_map_fdinfo_counts() {
        let map = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\nmap_type:\t1\nkey_size:\t4\n\
                   value_size:\t8\nmax_entries:\t1024\nmap_flags:\t0x0\nmap_extra:\t0x0\n\
                   memlock:\t90112\nmap_id:\t42\nfrozen:\t0\n";
        assert_eq!(map_memlock(map), Some((42, 90_112)));
        let prog = "pos:\t0\nflags:\t02000002\nprog_type:\t3\nmemlock:\t4096\nprog_id:\t7\n";
        assert_eq!(map_memlock(prog), None);
        assert_eq!(map_memlock("pos:\t0\nflags:\t02\n"), None);
    }

    #[test]
    fn this_process_has_a_resident_set_and_the_kernel_some_memory() {
        let pid = i32::try_from(std::process::id()).unwrap();
        assert!(rss_kib(pid).is_some_and(|kib| kib > 0));
        assert!(kernel_kib().is_some_and(|kib| kib > 0));
    }
}
