//! Loading the eBPF object: map capacities from configuration, maps pinned under the node's pin directory
//! (so a restarted agent adopts them), programs loaded into the kernel. With no pin directory nothing is
//! pinned: the testing mode used by packet-fixture tests and dry runs.

use std::{
    fs,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    programs::{CgroupSockAddr, ProgramError, SchedClassifier, Xdp},
};
use strait_abi::maps::{
    ALL_MAPS, CT_MAP, CT_MAP_DEFAULT_CAPACITY, ENDPOINT_MAP, ENDPOINT_MAP_DEFAULT_CAPACITY,
    SVC_MAP, SVC_MAP_DEFAULT_CAPACITY, SVC_SLOT_MAP, SVC_SLOT_MAP_DEFAULT_CAPACITY,
};

use crate::{DataplaneError, EBPF_OBJECT};

/// Name of the from-pod program in the object.
pub const FROM_POD: &str = "from_pod";
/// The kernel DNS fast path: tcx ingress on a pod's veth, ahead of `from_pod`.
pub const DNS_FAST: &str = "dns_fast";
/// The uplink's tcx ingress program.
pub const FROM_UPLINK: &str = "from_uplink";
/// The VXLAN device's tcx ingress program (packets from other nodes).
pub const FROM_OVERLAY: &str = "from_overlay";
/// The VXLAN device's tcx egress program (the node's own packets into the overlay).
pub const TO_OVERLAY: &str = "to_overlay";
/// The uplink's XDP program.
pub const XDP_UPLINK: &str = "xdp_uplink";
/// The constant in the object that switches `xdp_uplink`'s fast path (see [`LoadOptions::xdp_fast_path`]).
const XDP_FAST_PATH: &str = "XDP_FAST_PATH";
/// The constant in the object that switches masquerading (see [`LoadOptions::masquerade`]).
const MASQUERADE: &str = "MASQUERADE";
/// The constants holding the cluster's pod range (network byte order), never masqueraded.
const CLUSTER_NET: &str = "CLUSTER_NET";
const CLUSTER_MASK: &str = "CLUSTER_MASK";
/// The socket-level load-balancing programs, attached to the node's cgroup.
pub const SOCK_LB_PROGRAMS: [&str; 4] = [
    "sock_connect4",
    "sock_sendmsg4",
    "sock_recvmsg4",
    "sock_getpeername4",
];

/// How to load the dataplane.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Where maps and links are pinned (e.g. `/sys/fs/bpf/strait/<node>`); `None` pins nothing.
    pub pin_dir: Option<PathBuf>,
    /// Capacity of the ENDPOINT map.
    pub endpoint_capacity: u32,
    /// Capacity of the SVC map (service frontends: one per service port and address).
    pub service_capacity: u32,
    /// Capacity of the SVC_SLOT map (backends summed over all frontends).
    pub backend_capacity: u32,
    /// Capacity of the CT map (tracked flow directions; LRU).
    pub conntrack_capacity: u32,
    /// Whether `xdp_uplink` translates and redirects tracked flows to local pods itself (the XDP fast
    /// path). Worth it where XDP runs in the driver; in generic (skb) mode the redirect to a veth costs
    /// more than leaving the packet to tc, so the agent turns it off there.
    pub xdp_fast_path: bool,
    /// Whether pods' traffic to addresses outside the cluster leaves the node from the node's address
    /// (tracked, so replies return to the pod); off, it is handed to the node's stack unchanged.
    pub masquerade: bool,
    /// The cluster's pod range (address, prefix length): what is inside is never masqueraded. With the
    /// default, 0.0.0.0/0, nothing is.
    pub cluster_cidr: (std::net::Ipv4Addr, u8),
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            pin_dir: None,
            endpoint_capacity: ENDPOINT_MAP_DEFAULT_CAPACITY,
            service_capacity: SVC_MAP_DEFAULT_CAPACITY,
            backend_capacity: SVC_SLOT_MAP_DEFAULT_CAPACITY,
            conntrack_capacity: CT_MAP_DEFAULT_CAPACITY,
            xdp_fast_path: true,
            masquerade: false,
            cluster_cidr: (std::net::Ipv4Addr::UNSPECIFIED, 0),
        }
    }
}

/// A pod range as the object's constants hold it: network and mask, in network byte order (as the
/// packets carry addresses, read as native-endian words).
fn cluster_net_mask((addr, prefix): (std::net::Ipv4Addr, u8)) -> (u32, u32) {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0);
    let mask = mask.to_be();
    (u32::from_ne_bytes(addr.octets()) & mask, mask)
}

/// The loaded eBPF object with its maps and programs.
pub struct Dataplane {
    pub(crate) ebpf: Ebpf,
    pub(crate) pin_dir: Option<PathBuf>,
    pub(crate) endpoint_capacity: u32,
    pub(crate) service_capacity: u32,
    pub(crate) backend_capacity: u32,
    pub(crate) conntrack_capacity: u32,
}

impl Dataplane {
    /// Loads the object, reusing pinned maps when they exist.
    pub fn load(options: &LoadOptions) -> Result<Self, DataplaneError> {
        if EBPF_OBJECT.is_empty() {
            return Err(DataplaneError::ObjectMissing);
        }
        let fast_path = u8::from(options.xdp_fast_path);
        let mut loader = EbpfLoader::new();
        loader.map_max_entries(ENDPOINT_MAP, options.endpoint_capacity);
        loader.map_max_entries(SVC_MAP, options.service_capacity);
        loader.map_max_entries(SVC_SLOT_MAP, options.backend_capacity);
        loader.map_max_entries(CT_MAP, options.conntrack_capacity);
        loader.override_global(XDP_FAST_PATH, &fast_path, true);
        let masquerade = u8::from(options.masquerade);
        loader.override_global(MASQUERADE, &masquerade, true);
        let (net, mask) = cluster_net_mask(options.cluster_cidr);
        loader.override_global(CLUSTER_NET, &net, true);
        loader.override_global(CLUSTER_MASK, &mask, true);
        let map_dir = options.pin_dir.as_ref().map(|dir| dir.join("maps"));
        let map_paths: Vec<(&'static str, PathBuf)> = match &map_dir {
            Some(dir) => {
                fs::create_dir_all(dir).map_err(|e| {
                    DataplaneError::io(format!("creating pin directory {}", dir.display()), e)
                })?;
                ALL_MAPS
                    .iter()
                    .map(|name| (*name, dir.join(name)))
                    .collect()
            }
            None => Vec::new(),
        };
        for (name, path) in &map_paths {
            if path.exists() {
                tracing::info!(map = name, path = %path.display(), "adopting pinned map");
            }
            loader.map_pin_path(name, path.as_path());
        }
        let mut ebpf = loader.load(EBPF_OBJECT)?;
        for name in [FROM_POD, DNS_FAST, FROM_UPLINK, FROM_OVERLAY, TO_OVERLAY] {
            program_mut(&mut ebpf, name)?
                .load()
                .map_err(|source| DataplaneError::Program { name, source })?;
        }
        typed_program_mut::<Xdp>(&mut ebpf, XDP_UPLINK)?
            .load()
            .map_err(|source| DataplaneError::Program {
                name: XDP_UPLINK,
                source,
            })?;
        for name in SOCK_LB_PROGRAMS {
            sock_program_mut(&mut ebpf, name)?
                .load()
                .map_err(|source| DataplaneError::Program { name, source })?;
        }
        Ok(Self {
            ebpf,
            pin_dir: options.pin_dir.clone(),
            endpoint_capacity: options.endpoint_capacity,
            service_capacity: options.service_capacity,
            backend_capacity: options.backend_capacity,
            conntrack_capacity: options.conntrack_capacity,
        })
    }

    /// The from-pod classifier (loaded).
    pub fn from_pod_program(&mut self) -> Result<&mut SchedClassifier, DataplaneError> {
        program_mut(&mut self.ebpf, FROM_POD)
    }

    /// The kernel DNS fast path's classifier (loaded).
    pub fn dns_fast_program(&mut self) -> Result<&mut SchedClassifier, DataplaneError> {
        program_mut(&mut self.ebpf, DNS_FAST)
    }

    /// The uplink's tcx classifier (loaded).
    pub fn from_uplink_program(&mut self) -> Result<&mut SchedClassifier, DataplaneError> {
        program_mut(&mut self.ebpf, FROM_UPLINK)
    }

    /// The VXLAN device's ingress classifier (loaded).
    pub fn from_overlay_program(&mut self) -> Result<&mut SchedClassifier, DataplaneError> {
        program_mut(&mut self.ebpf, FROM_OVERLAY)
    }

    /// The uplink's XDP program (loaded).
    pub fn xdp_uplink_program(&mut self) -> Result<&mut Xdp, DataplaneError> {
        typed_program_mut(&mut self.ebpf, XDP_UPLINK)
    }

    /// The map `name` as its typed aya view (`HashMap<_, K, V>`, `Array<_, V>`, ...).
    pub(crate) fn typed_map<'a, T>(&'a mut self, name: &'static str) -> Result<T, DataplaneError>
    where
        T: TryFrom<&'a mut aya::maps::Map, Error = aya::maps::MapError>,
    {
        let map = self
            .ebpf
            .map_mut(name)
            .ok_or(DataplaneError::MapMissing { name })?;
        T::try_from(map).map_err(|source| DataplaneError::Map { name, source })
    }

    /// The pin directory, when pinning.
    pub fn pin_dir(&self) -> Option<&Path> {
        self.pin_dir.as_deref()
    }

    /// Removes every pin under `pin_dir` (maps and links). Used by `lab down` and uninstall, never on restart.
    pub fn remove_pins(pin_dir: &Path) -> Result<(), DataplaneError> {
        match fs::remove_dir_all(pin_dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(DataplaneError::io(
                format!("removing pins under {}", pin_dir.display()),
                e,
            )),
        }
    }
}

/// The program `name` as its concrete type (`SchedClassifier`, `CgroupSockAddr`, ...).
pub(crate) fn typed_program_mut<'a, P>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut P, DataplaneError>
where
    &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    let program = ebpf
        .program_mut(name)
        .ok_or(DataplaneError::ProgramMissing { name })?;
    program
        .try_into()
        .map_err(|source: ProgramError| DataplaneError::Program { name, source })
}

/// A socket load-balancing program.
pub(crate) fn sock_program_mut<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut CgroupSockAddr, DataplaneError> {
    typed_program_mut(ebpf, name)
}

pub(crate) fn program_mut<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut SchedClassifier, DataplaneError> {
    typed_program_mut(ebpf, name)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::cluster_net_mask;

    #[test]
    fn a_pod_range_becomes_network_and_mask_as_packets_carry_them() {
        let wire = |a: [u8; 4]| u32::from_ne_bytes(a);
        let (net, mask) = cluster_net_mask((Ipv4Addr::new(10, 244, 7, 9), 16));
        assert_eq!((net, mask), (wire([10, 244, 0, 0]), wire([255, 255, 0, 0])));
        assert_eq!(wire([10, 244, 200, 9]) & mask, net, "inside");
        assert_ne!(wire([10, 245, 0, 1]) & mask, net, "outside");
        assert_eq!(cluster_net_mask((Ipv4Addr::new(1, 2, 3, 4), 0)), (0, 0));
        assert_eq!(
            cluster_net_mask((Ipv4Addr::new(1, 2, 3, 4), 32)),
            (wire([1, 2, 3, 4]), u32::MAX)
        );
    }
}
