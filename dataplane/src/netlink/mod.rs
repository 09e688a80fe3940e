//! rtnetlink access: a connection bound to one network namespace and the link, address, route and
//! neighbour operations strait needs. A connection's socket belongs to the namespace it was opened in, so
//! one agent can configure its node and its pods without ever moving its own threads.

mod ops;
pub mod pod;
pub mod vxlan;

use std::path::Path;

use rtnetlink::Handle;

use crate::{DataplaneError, netns};

/// A netlink connection bound to one network namespace.
#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// Opens a connection in the calling thread's namespace. Must run inside a tokio runtime.
    pub fn connect() -> Result<Self, DataplaneError> {
        let (connection, handle, _) = rtnetlink::new_connection()
            .map_err(|e| DataplaneError::io("opening a netlink socket", e))?;
        tokio::spawn(connection);
        Ok(Self { handle })
    }

    /// Opens a connection inside the namespace at `ns_path`. Must run inside a tokio runtime.
    pub fn connect_in(ns_path: &Path) -> Result<Self, DataplaneError> {
        let runtime = tokio::runtime::Handle::current();
        let made = netns::run_in(ns_path, move || {
            let _guard = runtime.enter();
            rtnetlink::new_connection()
        })?;
        let (connection, handle, _) =
            made.map_err(|e| DataplaneError::io("opening a netlink socket", e))?;
        tokio::spawn(connection);
        Ok(Self { handle })
    }
}

pub(crate) fn nl_error(
    action: impl Into<String>,
) -> impl FnOnce(rtnetlink::Error) -> DataplaneError {
    let action = action.into();
    move |source| DataplaneError::Netlink { action, source }
}

/// Whether a netlink error carries errno `code`.
pub(crate) fn is_errno(error: &rtnetlink::Error, code: i32) -> bool {
    matches!(error, rtnetlink::Error::NetlinkError(m) if m.code.is_some_and(|c| c.get() == -code))
}
