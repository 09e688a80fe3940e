//! Attaching programs to interfaces with tcx and XDP links. When pinning, each link is pinned under
//! `<pin_dir>/links/`, and a restarted agent swaps the program inside the existing link atomically
//! (`bpf_link_update`), so traffic never sees a moment without a program.

use std::{io, path::PathBuf};

use aya::programs::{
    LinkOrder, ProgramError, SchedClassifier, TcAttachType, Xdp, XdpMode,
    links::{FdLink, LinkError, PinnedLink},
    tc::{SchedClassifierLink, SchedClassifierLinkId, TcAttachOptions},
    xdp::XdpLink,
};

use std::path::Path;

use aya::programs::CgroupAttachMode;

use crate::{
    Dataplane, DataplaneError,
    loader::{
        DNS_FAST, FROM_OVERLAY, FROM_POD, FROM_UPLINK, SOCK_LB_PROGRAMS, TO_OVERLAY, XDP_UPLINK,
        program_mut, sock_program_mut, typed_program_mut,
    },
};

impl Dataplane {
    /// Attaches from-pod to tcx ingress of `ifname` (in the calling thread's namespace), and the DNS
    /// fast path ahead of it, adopting the pinned links for that interface where they exist.
    pub fn attach_from_pod(&mut self, ifname: &str) -> Result<(), DataplaneError> {
        let pin = self.link_pin_path(FROM_POD, ifname);
        let program = self.from_pod_program()?;
        attach_tcx_ingress(program, FROM_POD, ifname, pin)?;
        let pin = self.link_pin_path(DNS_FAST, ifname);
        let program = program_mut(&mut self.ebpf, DNS_FAST)?;
        let mut tcx = Tcx {
            program,
            name: DNS_FAST,
            attach_type: TcAttachType::Ingress,
            first: true,
        };
        match pin {
            Some(pin) => adopt_or_attach(&mut tcx, ifname, &pin),
            None => tcx.attach(ifname).map(drop),
        }
    }

    /// Attaches the uplink programs to `ifname` (the node's interface towards the rest of the network):
    /// `from_uplink` on tcx ingress and, unless `xdp_mode` is `None`, `xdp_uplink` as XDP, adopting
    /// pinned links like `attach_from_pod`. Without XDP, a link pinned by an earlier run with XDP is
    /// unpinned (and so detached once no one else holds it): tc makes every check XDP makes.
    pub fn attach_uplink(
        &mut self,
        ifname: &str,
        xdp_mode: Option<XdpMode>,
    ) -> Result<(), DataplaneError> {
        let pin = self.link_pin_path(FROM_UPLINK, ifname);
        let program = program_mut(&mut self.ebpf, FROM_UPLINK)?;
        attach_tcx_ingress(program, FROM_UPLINK, ifname, pin)?;
        let pin = self.link_pin_path(XDP_UPLINK, ifname);
        let Some(xdp_mode) = xdp_mode else {
            if let Some(pin) = pin {
                match std::fs::remove_file(&pin) {
                    Ok(()) => {
                        tracing::info!(pin = %pin.display(), "XDP off: unpinned the uplink's XDP link");
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(DataplaneError::io(
                            format!("unpinning {}", pin.display()),
                            e,
                        ));
                    }
                }
            }
            return Ok(());
        };
        let program = typed_program_mut::<Xdp>(&mut self.ebpf, XDP_UPLINK)?;
        attach_xdp(program, ifname, xdp_mode, pin)
    }

    /// Attaches the overlay programs to the VXLAN device `ifname`: `from_overlay` on tcx ingress,
    /// `to_overlay` on tcx egress, adopting pinned links like `attach_from_pod`.
    pub fn attach_overlay(&mut self, ifname: &str) -> Result<(), DataplaneError> {
        for (name, attach_type) in [
            (FROM_OVERLAY, TcAttachType::Ingress),
            (TO_OVERLAY, TcAttachType::Egress),
        ] {
            let pin = self.link_pin_path(name, ifname);
            let program = program_mut(&mut self.ebpf, name)?;
            let mut tcx = Tcx {
                program,
                name,
                attach_type,
                first: false,
            };
            match pin {
                Some(pin) => adopt_or_attach(&mut tcx, ifname, &pin)?,
                None => {
                    tcx.attach(ifname)?;
                }
            }
        }
        Ok(())
    }

    /// Removes the pinned from-pod link of `ifname` (the link goes away with its last reference; deleting the
    /// interface detaches it too).
    pub fn detach_from_pod(&mut self, ifname: &str) -> Result<(), DataplaneError> {
        for program in [FROM_POD, DNS_FAST] {
            let Some(pin) = self.link_pin_path(program, ifname) else {
                continue;
            };
            match std::fs::remove_file(&pin) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(DataplaneError::io(
                        format!("removing link pin {}", pin.display()),
                        e,
                    ));
                }
            }
        }
        Ok(())
    }

    /// Attaches the socket load-balancing programs to the cgroup at `cgroup` (every process below it is
    /// served). Make-before-break: the new link is attached before a pinned old one is released; while both
    /// run, the second sees an address that is no service any more and leaves it alone.
    pub fn attach_socket_lb(&mut self, cgroup: &Path) -> Result<(), DataplaneError> {
        for name in SOCK_LB_PROGRAMS {
            let pin = self.link_pin_path(name, "cgroup");
            let dir = std::fs::File::open(cgroup).map_err(|e| {
                DataplaneError::io(format!("opening cgroup {}", cgroup.display()), e)
            })?;
            let program = sock_program_mut(&mut self.ebpf, name)?;
            let id = program
                // bpf_link_create takes no attach flags: cgroup links always coexist with other links.
                .attach(&dir, CgroupAttachMode::Single)
                .map_err(|source| DataplaneError::Program { name, source })?;
            let Some(pin) = pin else {
                continue;
            };
            let link = program
                .take_link(id)
                .map_err(|source| DataplaneError::Program { name, source })?;
            let fd_link = FdLink::try_from(link).map_err(|e| DataplaneError::LinkPin {
                path: pin.clone(),
                message: e.to_string(),
            })?;
            match std::fs::remove_file(&pin) {
                Ok(()) => tracing::debug!(program = name, "replaced the pinned cgroup link"),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(DataplaneError::io(format!("removing {}", pin.display()), e)),
            }
            if let Some(parent) = pin.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| DataplaneError::io(format!("creating {}", parent.display()), e))?;
            }
            fd_link.pin(&pin).map_err(|e| DataplaneError::LinkPin {
                path: pin.clone(),
                message: e.to_string(),
            })?;
        }
        Ok(())
    }

    /// Where the link of `program` on `ifname` is pinned. bpffs refuses names with a dot, which
    /// interface names may have (`strait.1`): dots become underscores.
    fn link_pin_path(&self, program: &str, ifname: &str) -> Option<PathBuf> {
        let ifname = ifname.replace('.', "_");
        self.pin_dir
            .as_ref()
            .map(|dir| dir.join("links").join(format!("{program}-{ifname}")))
    }
}

/// A program that can be attached to an interface through a pinnable link.
trait LinkedProgram {
    /// Swaps this program into an existing link; `Ok(false)` when the link is stale.
    fn adopt(&mut self, link: FdLink, pin: &Path) -> Result<bool, DataplaneError>;
    /// Attaches anew, returning the link to pin at `pin`.
    fn attach_new(&mut self, ifname: &str, pin: &Path) -> Result<FdLink, DataplaneError>;
}

struct Tcx<'a> {
    program: &'a mut SchedClassifier,
    name: &'static str,
    attach_type: TcAttachType,
    /// A new link goes ahead of the interface's other tcx programs (else after them).
    first: bool,
}

impl Tcx<'_> {
    fn error(&self) -> impl Fn(ProgramError) -> DataplaneError + use<> {
        let name = self.name;
        move |source| DataplaneError::Program { name, source }
    }

    fn attach(&mut self, ifname: &str) -> Result<SchedClassifierLinkId, DataplaneError> {
        self.program
            .attach_with_options(
                ifname,
                self.attach_type,
                TcAttachOptions::TcxOrder(if self.first {
                    LinkOrder::first()
                } else {
                    LinkOrder::default()
                }),
            )
            .map_err(self.error())
    }
}

impl LinkedProgram for Tcx<'_> {
    fn adopt(&mut self, link: FdLink, pin: &Path) -> Result<bool, DataplaneError> {
        let link = SchedClassifierLink::try_from(link).map_err(program_error_from_link(pin))?;
        adopted(self.program.attach_to_link(link), |id| {
            self.program.take_link(id).map(drop).map_err(self.error())
        })
    }

    fn attach_new(&mut self, ifname: &str, pin: &Path) -> Result<FdLink, DataplaneError> {
        let id = self.attach(ifname)?;
        let link = self.program.take_link(id).map_err(self.error())?;
        FdLink::try_from(link).map_err(|e| DataplaneError::LinkPin {
            path: pin.to_path_buf(),
            message: e.to_string(),
        })
    }
}

struct XdpOn<'a> {
    program: &'a mut Xdp,
    mode: XdpMode,
}

fn xdp_error(source: ProgramError) -> DataplaneError {
    DataplaneError::Program {
        name: XDP_UPLINK,
        source,
    }
}

impl LinkedProgram for XdpOn<'_> {
    fn adopt(&mut self, link: FdLink, pin: &Path) -> Result<bool, DataplaneError> {
        let link = XdpLink::try_from(link).map_err(program_error_from_link(pin))?;
        adopted(self.program.attach_to_link(link), |id| {
            self.program.take_link(id).map(drop).map_err(xdp_error)
        })
    }

    fn attach_new(&mut self, ifname: &str, pin: &Path) -> Result<FdLink, DataplaneError> {
        let id = self.program.attach(ifname, self.mode).map_err(xdp_error)?;
        let link = self.program.take_link(id).map_err(xdp_error)?;
        FdLink::try_from(link).map_err(|e| DataplaneError::LinkPin {
            path: pin.to_path_buf(),
            message: e.to_string(),
        })
    }
}

/// The outcome of swapping a program into a pinned link: on success our handle is dropped (`release`;
/// the pin keeps the link, now running the new program, alive); a failure means the link is stale.
fn adopted<Id>(
    attached: Result<Id, ProgramError>,
    release: impl FnOnce(Id) -> Result<(), DataplaneError>,
) -> Result<bool, DataplaneError> {
    match attached {
        Ok(id) => release(id).map(|()| true),
        Err(e) => {
            tracing::warn!(error = %e, "pinned link is stale, attaching anew");
            Ok(false)
        }
    }
}

/// Attaches `program` to `ifname`: into the link pinned at `pin` when there is a live one (the program
/// is swapped in atomically), else with a new link that is then pinned there.
fn adopt_or_attach(
    program: &mut impl LinkedProgram,
    ifname: &str,
    pin: &Path,
) -> Result<(), DataplaneError> {
    match PinnedLink::from_pin(pin) {
        Ok(pinned) => {
            if program.adopt(FdLink::from(pinned), pin)? {
                tracing::debug!(ifname, pin = %pin.display(), "adopted pinned link");
                return Ok(());
            }
            let _ = std::fs::remove_file(pin);
        }
        Err(LinkError::SyscallError(e)) if e.io_error.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(DataplaneError::LinkPin {
                path: pin.to_path_buf(),
                message: e.to_string(),
            });
        }
    }
    pin_link(program.attach_new(ifname, pin)?, pin)
}

fn attach_tcx_ingress(
    program: &mut SchedClassifier,
    name: &'static str,
    ifname: &str,
    pin: Option<PathBuf>,
) -> Result<(), DataplaneError> {
    let mut tcx = Tcx {
        program,
        name,
        attach_type: TcAttachType::Ingress,
        first: false,
    };
    match pin {
        Some(pin) => adopt_or_attach(&mut tcx, ifname, &pin),
        None => tcx.attach(ifname).map(drop),
    }
}

fn pin_link(link: FdLink, pin: &Path) -> Result<(), DataplaneError> {
    if let Some(dir) = pin.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| DataplaneError::io(format!("creating {}", dir.display()), e))?;
    }
    link.pin(pin)
        .map(drop)
        .map_err(|e| DataplaneError::LinkPin {
            path: pin.to_path_buf(),
            message: e.to_string(),
        })
}

/// Attaches an XDP program in `mode` (`Default` lets the kernel pick native mode where the driver has
/// it), adopting a pinned link the way [`attach_tcx_ingress`] does.
fn attach_xdp(
    program: &mut Xdp,
    ifname: &str,
    mode: XdpMode,
    pin: Option<PathBuf>,
) -> Result<(), DataplaneError> {
    let mut xdp = XdpOn { program, mode };
    match pin {
        Some(pin) => adopt_or_attach(&mut xdp, ifname, &pin),
        None => xdp
            .program
            .attach(ifname, mode)
            .map(drop)
            .map_err(xdp_error),
    }
}

fn program_error_from_link(pin: &std::path::Path) -> impl FnOnce(LinkError) -> DataplaneError + '_ {
    move |e| DataplaneError::LinkPin {
        path: pin.to_path_buf(),
        message: e.to_string(),
    }
}
