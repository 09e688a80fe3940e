//! The endpoint manager: the one owner of the node's pods as the data path knows them. It turns CNI
//! requests into IPAM allocations, veth plumbing, program attachment, ENDPOINT map entries and persisted
//! state, undoing every step already taken when a later one fails, and restores all of it after a restart
//! without touching what is still correct. Removal (DEL, GC) lives in [`removal`]; the counts it
//! publishes after each change are in [`EndpointGauges`].

mod removal;

use std::{
    collections::BTreeMap,
    net::Ipv4Addr,
    path::{Component, Path},
};

use strait_cni::protocol::{
    Attachment, AttachmentKey, AttachmentList, AttachmentRequest, ErrorKind, format_mac,
};
use strait_dataplane::{
    Dataplane, DataplaneError,
    endpoints::Endpoint,
    netlink::{Netlink, pod},
};

use crate::{
    config::AgentConfig,
    gauges::{EndpointCounts, EndpointGauges},
    ipam::Ipam,
    naming::host_ifname,
    store::Store,
};

/// A refused request: the kind tells the plugin which CNI code to use.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    pub kind: ErrorKind,
    pub message: String,
}

impl RequestError {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl From<DataplaneError> for RequestError {
    fn from(error: DataplaneError) -> Self {
        let kind = match error {
            DataplaneError::MapFull { .. } => ErrorKind::Exhausted,
            _ => ErrorKind::Internal,
        };
        Self::new(kind, error.to_string())
    }
}

/// What a restore found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RestoreReport {
    pub adopted: usize,
    pub dropped: usize,
    pub stale_map_entries: usize,
    /// Removals left unfinished by the previous agent and finished now.
    pub deletions_finished: usize,
    /// Removals that still fail: recorded, their addresses kept, retried on the next DEL or GC.
    pub deletions_pending: usize,
}

/// Owner of the node's endpoints.
pub struct EndpointManager {
    dataplane: Dataplane,
    netlink: Netlink,
    ipam: Ipam,
    store: Store,
    gateway: Ipv4Addr,
    attachments: BTreeMap<AttachmentKey, Attachment>,
    /// Attachments whose removal began but has not finished: their addresses stay taken.
    deleting: BTreeMap<AttachmentKey, Attachment>,
    gauges: EndpointGauges,
    /// MTU of new pods' interfaces (`None`: the kernel's default).
    pod_mtu: Option<u32>,
}

impl EndpointManager {
    /// A manager with no endpoints yet; call [`EndpointManager::restore`] next.
    pub fn new(
        config: &AgentConfig,
        dataplane: Dataplane,
        netlink: Netlink,
    ) -> Result<Self, RequestError> {
        let ipam = Ipam::new(config.pod_cidr)
            .map_err(|e| RequestError::new(ErrorKind::Internal, e.to_string()))?;
        Ok(Self {
            dataplane,
            netlink,
            ipam,
            store: Store::new(config.state_file()),
            gateway: config.gateway,
            attachments: BTreeMap::new(),
            deleting: BTreeMap::new(),
            gauges: EndpointGauges::default(),
            pod_mtu: None,
        })
    }

    /// Gives new pods' interfaces `mtu` (the overlay's: the underlay's minus its encapsulation).
    pub fn set_pod_mtu(&mut self, mtu: Option<u32>) {
        self.pod_mtu = mtu;
    }

    /// The counts this manager publishes after each change; read them without locking the manager.
    pub fn gauges(&self) -> EndpointGauges {
        self.gauges.clone()
    }

    fn publish_gauges(&self) {
        self.gauges.publish(EndpointCounts {
            endpoints: self.attachments.len(),
            deleting: self.deleting.len(),
            ipam_used: self.ipam.used(),
            ipam_capacity: self.ipam.capacity(),
        });
    }

    /// Reloads persisted attachments and reconciles the kernel with them by difference: pods whose veth
    /// still exists are adopted (program link swapped in place, map entry rewritten only if it differs);
    /// attachments whose veth is gone are dropped; map entries nobody owns are removed.
    ///
    /// Removals the previous agent left unfinished keep their addresses and are retried at once.
    pub async fn restore(&mut self) -> Result<RestoreReport, RequestError> {
        let result = self.restore_saved().await;
        self.publish_gauges();
        result
    }

    async fn restore_saved(&mut self) -> Result<RestoreReport, RequestError> {
        let saved = self
            .store
            .load()
            .map_err(|e| RequestError::new(ErrorKind::Internal, e.to_string()))?;
        let mut report = RestoreReport::default();
        for attachment in saved.attachments {
            match self.adopt(&attachment).await {
                Ok(()) => {
                    report.adopted += 1;
                    self.attachments.insert(attachment.key.clone(), attachment);
                }
                Err(error) => {
                    tracing::warn!(
                        container = %attachment.key.container_id,
                        ifname = %attachment.key.ifname,
                        %error,
                        "dropping a saved endpoint that no longer exists"
                    );
                    let _ = self.dataplane.remove_endpoint(attachment.address);
                    let _ = self.dataplane.detach_from_pod(&attachment.host_ifname);
                    report.dropped += 1;
                }
            }
        }
        self.resume_removals(saved.deleting);
        for endpoint in self.dataplane.endpoints()? {
            if !self.address_in_service(endpoint.addr) {
                self.dataplane.remove_endpoint(endpoint.addr)?;
                report.stale_map_entries += 1;
            }
        }
        if report.dropped > 0 {
            self.persist()?;
        }
        let (finished, pending) = self.retry_removals().await;
        report.deletions_finished = finished.len();
        report.deletions_pending = pending.len();
        Ok(report)
    }

    /// Whether an attachment in service has `address`.
    fn address_in_service(&self, address: Ipv4Addr) -> bool {
        self.attachments.values().any(|a| a.address == address)
    }

    async fn adopt(&mut self, attachment: &Attachment) -> Result<(), RequestError> {
        let host_ifindex = self
            .netlink
            .link_index(&attachment.host_ifname)
            .await?
            .ok_or_else(|| {
                RequestError::new(
                    ErrorKind::NotFound,
                    format!("veth {} is gone", attachment.host_ifname),
                )
            })?;
        self.ipam
            .reserve(attachment.address)
            .map_err(|e| RequestError::new(ErrorKind::Internal, e.to_string()))?;
        let endpoint = Endpoint {
            addr: attachment.address,
            host_ifindex,
            pod_mac: parse_mac(&attachment.pod_mac)?,
            host_mac: parse_mac(&attachment.host_mac)?,
        };
        let adopted = self
            .dataplane
            .attach_from_pod(&attachment.host_ifname)
            .map_err(RequestError::from)
            .and_then(|()| {
                self.dataplane
                    .upsert_endpoint(&endpoint)
                    .map_err(RequestError::from)
            });
        if let Err(error) = adopted {
            self.ipam.release(attachment.address);
            return Err(error);
        }
        Ok(())
    }

    /// CNI ADD: plumbs the pod and registers it. Repeating an ADD returns the existing attachment; an
    /// ADD of an attachment still being removed finishes that removal first (or asks to try again).
    pub async fn add(&mut self, request: &AttachmentRequest) -> Result<Attachment, RequestError> {
        let result = self.add_attachment(request).await;
        self.publish_gauges();
        result
    }

    async fn add_attachment(
        &mut self,
        request: &AttachmentRequest,
    ) -> Result<Attachment, RequestError> {
        validate(request)?;
        if let Some(existing) = self.attachments.get(&request.key) {
            return Ok(existing.clone());
        }
        self.finish_earlier_removal(&request.key).await?;
        let address = self
            .ipam
            .allocate()
            .map_err(|e| RequestError::new(ErrorKind::Exhausted, e.to_string()))?;
        let spec = pod::PodLinkSpec {
            host_ifname: host_ifname(&request.key),
            pod_ifname: request.key.ifname.clone(),
            netns: request.netns.clone().into(),
            addr: address,
            gateway: self.gateway,
            mtu: self.pod_mtu,
        };
        match self.plumb(request, &spec).await {
            Ok(attachment) => {
                tracing::info!(
                    pod = %pod_label(request),
                    address = %attachment.address,
                    veth = %attachment.host_ifname,
                    "endpoint added"
                );
                Ok(attachment)
            }
            Err(error) => {
                self.ipam.release(address);
                tracing::warn!(pod = %pod_label(request), %error, "endpoint add failed and was undone");
                Err(error)
            }
        }
    }

    async fn plumb(
        &mut self,
        request: &AttachmentRequest,
        spec: &pod::PodLinkSpec,
    ) -> Result<Attachment, RequestError> {
        let link = pod::create(&self.netlink, spec).await?;
        let attachment = Attachment {
            key: request.key.clone(),
            netns: request.netns.clone(),
            pod_namespace: request.pod_namespace.clone(),
            pod_name: request.pod_name.clone(),
            host_ifname: spec.host_ifname.clone(),
            host_mac: format_mac(link.host_mac),
            pod_mac: format_mac(link.pod_mac),
            address: spec.addr,
            gateway: spec.gateway,
            mtu: spec.mtu,
        };
        let endpoint = Endpoint {
            addr: spec.addr,
            host_ifindex: link.host_ifindex,
            pod_mac: link.pod_mac,
            host_mac: link.host_mac,
        };
        let registered = self
            .dataplane
            .attach_from_pod(&spec.host_ifname)
            .and_then(|()| self.dataplane.upsert_endpoint(&endpoint).map(|_| ()));
        if let Err(error) = registered {
            self.undo_kernel(&attachment).await;
            return Err(error.into());
        }
        self.attachments
            .insert(request.key.clone(), attachment.clone());
        if let Err(error) = self.persist() {
            self.attachments.remove(&request.key);
            self.undo_kernel(&attachment).await;
            return Err(error);
        }
        Ok(attachment)
    }

    async fn undo_kernel(&mut self, attachment: &Attachment) {
        let _ = self.dataplane.remove_endpoint(attachment.address);
        let _ = self.dataplane.detach_from_pod(&attachment.host_ifname);
        let _ = pod::delete(&self.netlink, &attachment.host_ifname).await;
    }

    /// CNI CHECK: the attachment exists and its veth, MACs and map entry are as recorded.
    pub async fn check(&mut self, request: &AttachmentRequest) -> Result<Attachment, RequestError> {
        let attachment = self.attachments.get(&request.key).cloned().ok_or_else(|| {
            RequestError::new(
                ErrorKind::NotFound,
                format!(
                    "no attachment for container {} interface {}",
                    request.key.container_id, request.key.ifname
                ),
            )
        })?;
        let spec = pod::PodLinkSpec {
            host_ifname: attachment.host_ifname.clone(),
            pod_ifname: attachment.key.ifname.clone(),
            netns: attachment.netns.clone().into(),
            addr: attachment.address,
            gateway: attachment.gateway,
            mtu: self.pod_mtu,
        };
        let link = pod::inspect(&self.netlink, &spec).await?;
        if format_mac(link.pod_mac) != attachment.pod_mac {
            return Err(RequestError::new(
                ErrorKind::Internal,
                format!(
                    "pod interface MAC changed: recorded {}, found {}",
                    attachment.pod_mac,
                    format_mac(link.pod_mac)
                ),
            ));
        }
        let in_map = self
            .dataplane
            .endpoints()?
            .into_iter()
            .find(|e| e.addr == attachment.address);
        match in_map {
            Some(e) if e.host_ifindex == link.host_ifindex && e.pod_mac == link.pod_mac => {
                Ok(attachment)
            }
            Some(_) => Err(RequestError::new(
                ErrorKind::Internal,
                "ENDPOINT map entry does not match the pod's interfaces",
            )),
            None => Err(RequestError::new(
                ErrorKind::Internal,
                format!("{} is missing from the ENDPOINT map", attachment.address),
            )),
        }
    }

    /// Every attachment, ordered by key: those in service and those being deleted.
    pub fn attachment_list(&self) -> AttachmentList {
        AttachmentList {
            attachments: self.attachments.values().cloned().collect(),
            deleting: self.deleting.values().cloned().collect(),
        }
    }

    /// The dataplane, for telemetry.
    pub fn dataplane(&self) -> &Dataplane {
        &self.dataplane
    }

    /// The dataplane, for the service sync (which shares it with the endpoints).
    pub fn dataplane_mut(&mut self) -> &mut Dataplane {
        &mut self.dataplane
    }

    fn persist(&self) -> Result<(), RequestError> {
        let list = self.attachment_list();
        self.store
            .save(&list.attachments, &list.deleting)
            .map_err(|e| RequestError::new(ErrorKind::Internal, e.to_string()))
    }
}

fn validate(request: &AttachmentRequest) -> Result<(), RequestError> {
    let ifname = &request.key.ifname;
    if ifname.is_empty()
        || ifname.len() > 15
        || ifname.contains(['/', ' ', ':'])
        || ifname == "."
        || ifname == ".."
    {
        return Err(RequestError::new(
            ErrorKind::InvalidRequest,
            format!(
                "interface name {ifname:?} is not a valid Linux interface name (1-15 bytes, no '/', ':' or spaces)"
            ),
        ));
    }
    if request.key.container_id.is_empty() {
        return Err(RequestError::new(
            ErrorKind::InvalidRequest,
            "container id is empty",
        ));
    }
    if let Some(problem) = netns_problem(&request.netns) {
        return Err(RequestError::new(ErrorKind::InvalidRequest, problem));
    }
    Ok(())
}

/// The directories whose entries may be a pod's network namespace: where containerd and CRI-O (and
/// `ip netns`) bind-mount them. A path elsewhere (`/proc/1/ns/net`, the node's own namespace) would
/// have the agent plumb a "pod" into a namespace no runtime made for it.
pub const NETNS_DIRS: [&str; 2] = ["/run/netns", "/var/run/netns"];

/// What is wrong with `path` as a pod's network namespace: not an entry of [`NETNS_DIRS`] (lexically:
/// no `..`), a symbolic link, absent, or not a namespace (a file that is not a bind mount of nsfs; a
/// FIFO there would block the agent when it opens it). Nothing is opened to find out.
fn netns_problem(path: &str) -> Option<String> {
    let path_ref = Path::new(path);
    let plain = path_ref.is_absolute()
        && path_ref
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    let in_dir = path_ref
        .parent()
        .is_some_and(|dir| NETNS_DIRS.iter().any(|allowed| Path::new(allowed) == dir));
    if !plain || !in_dir {
        return Some(format!(
            "network namespace {path} is not an entry of {}",
            NETNS_DIRS.join(" or ")
        ));
    }
    match std::fs::symlink_metadata(path_ref) {
        Err(_) => Some(format!("network namespace {path} does not exist")),
        Ok(meta) if meta.file_type().is_symlink() => {
            Some(format!("network namespace {path} is a symbolic link"))
        }
        Ok(_) => match nix::sys::statfs::statfs(path_ref) {
            Ok(fs) if fs.filesystem_type() == nix::sys::statfs::NSFS_MAGIC => None,
            Ok(_) => Some(format!(
                "{path} is not a network namespace (not a bind mount of one)"
            )),
            Err(error) => Some(format!("network namespace {path}: {error}")),
        },
    }
}

fn pod_label(request: &AttachmentRequest) -> String {
    match (&request.pod_namespace, &request.pod_name) {
        (Some(ns), Some(name)) => format!("{ns}/{name}"),
        _ => request.key.container_id.clone(),
    }
}

fn parse_mac(text: &str) -> Result<[u8; 6], RequestError> {
    let bad = || {
        RequestError::new(
            ErrorKind::Internal,
            format!("recorded MAC {text:?} is not valid"),
        )
    };
    let parts: Vec<u8> = text
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    parts.try_into().map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trips_through_its_text_form() {
        let mac = [0x02, 0xab, 0, 0x10, 0xff, 0x7];
        assert_eq!(parse_mac(&format_mac(mac)).unwrap(), mac);
        assert!(parse_mac("02:ab:00").is_err());
        assert!(parse_mac("zz:ab:00:10:ff:07").is_err());
    }

    #[test]
    fn invalid_requests_are_refused_with_a_reason() {
        let request = |ifname: &str, netns: &str| AttachmentRequest {
            key: AttachmentKey {
                container_id: "c1".into(),
                ifname: ifname.into(),
            },
            netns: netns.into(),
            pod_namespace: None,
            pod_name: None,
        };
        let long = validate(&request("a-very-long-interface", "/run/netns/x")).unwrap_err();
        assert_eq!(long.kind, ErrorKind::InvalidRequest);
        let missing = validate(&request("eth0", "/run/netns/does-not-exist-strait")).unwrap_err();
        assert!(
            missing.message.contains("does not exist"),
            "{}",
            missing.message
        );
        // Only entries of the runtimes' netns directories: not the node's (or any process's) own.
        for elsewhere in [
            "/proc/1/ns/net",
            "/proc/self/ns/net",
            "/run/netns/../../proc/1/ns/net",
            "run/netns/x",
            "/run/netns/sub/x",
        ] {
            let refused = validate(&request("eth0", elsewhere)).unwrap_err();
            assert!(
                refused.message.contains("is not an entry of"),
                "{elsewhere}: {}",
                refused.message
            );
        }
    }

    #[test]
    fn a_file_in_the_netns_directory_that_is_no_namespace_is_refused_unopened() {
        // A FIFO (which would block whoever opens it) and a plain file, where runtimes bind-mount
        // namespaces.
        struct Cleanup(Vec<std::path::PathBuf>);
        impl Drop for Cleanup {
            fn drop(&mut self) {
                for path in &self.0 {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        std::fs::create_dir_all(NETNS_DIRS[0]).unwrap();
        let name = format!("strait-unit-not-a-netns-{}", std::process::id());
        let fifo = Path::new(NETNS_DIRS[0]).join(&name);
        let plain = Path::new(NETNS_DIRS[0]).join(format!("{name}-plain"));
        let _cleanup = Cleanup(vec![fifo.clone(), plain.clone()]);
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRUSR).unwrap();
        std::fs::write(&plain, b"").unwrap();
        for path in [&fifo, &plain] {
            let problem = netns_problem(path.to_str().unwrap()).expect("refused");
            assert!(problem.contains("is not a network namespace"), "{problem}");
        }
    }
}
