//! Removing attachments (CNI DEL and GC) as a transaction that is finished, never forgotten: the
//! attachment is first recorded (and saved) as being deleted, then its ENDPOINT entry, program link
//! and veth are removed, and only once the link is gone is the record dropped and the address given
//! back. A step that fails leaves the record, and with it the address, in place; the next DEL, GC,
//! ADD of the same attachment or agent start tries again.

use std::net::Ipv4Addr;

use strait_cni::protocol::{Attachment, AttachmentKey, ErrorKind};
use strait_dataplane::netlink::pod;

use super::{EndpointManager, RequestError};

impl EndpointManager {
    /// CNI DEL: removes everything of the attachment, the address last; returns whether it existed
    /// (in service or being deleted). On failure the attachment stays recorded as being deleted.
    pub async fn delete(&mut self, key: &AttachmentKey) -> Result<bool, RequestError> {
        let result = self.delete_attachment(key).await;
        self.publish_gauges();
        result
    }

    async fn delete_attachment(&mut self, key: &AttachmentKey) -> Result<bool, RequestError> {
        if let Some(attachment) = self.attachments.remove(key) {
            self.mark_deleting(key, attachment)?;
        } else if !self.deleting.contains_key(key) {
            return Ok(false);
        }
        self.finish_removal(key).await?;
        Ok(true)
    }

    /// Records `attachment` as being deleted, saved before anything is removed; if it cannot be
    /// saved, the attachment stays in service and nothing changes.
    fn mark_deleting(
        &mut self,
        key: &AttachmentKey,
        attachment: Attachment,
    ) -> Result<(), RequestError> {
        self.deleting.insert(key.clone(), attachment);
        if let Err(error) = self.persist() {
            if let Some(attachment) = self.deleting.remove(key) {
                self.attachments.insert(key.clone(), attachment);
            }
            return Err(error);
        }
        Ok(())
    }

    /// CNI GC: deletes every attachment not in `valid`, and finishes every removal still pending;
    /// returns the keys removed. One that fails does not stop the others: it stays recorded and the
    /// error names it.
    pub async fn collect(
        &mut self,
        valid: &[AttachmentKey],
    ) -> Result<Vec<AttachmentKey>, RequestError> {
        let doomed: Vec<AttachmentKey> = self
            .attachments
            .keys()
            .filter(|k| !valid.contains(k))
            .chain(self.deleting.keys())
            .cloned()
            .collect();
        let mut removed = Vec::new();
        let mut failed = Vec::new();
        for key in doomed {
            match self.delete(&key).await {
                Ok(_) => removed.push(key),
                Err(error) => failed.push((key, error)),
            }
        }
        if !removed.is_empty() {
            tracing::info!(
                removed = removed.len(),
                "garbage-collected stale attachments"
            );
        }
        match failed.first() {
            None => Ok(removed),
            Some((key, error)) => Err(RequestError::new(
                error.kind,
                format!(
                    "GC removed {} attachments but could not finish {} (first: container {} \
                     interface {}: {}); they stay recorded and are retried",
                    removed.len(),
                    failed.len(),
                    key.container_id,
                    key.ifname,
                    error.message
                ),
            )),
        }
    }

    /// Before an ADD of `key`: finishes a removal of the same attachment still pending (its veth
    /// has the same name), or asks the runtime to try again.
    pub(super) async fn finish_earlier_removal(
        &mut self,
        key: &AttachmentKey,
    ) -> Result<(), RequestError> {
        if !self.deleting.contains_key(key) {
            return Ok(());
        }
        self.finish_removal(key).await.map_err(|error| {
            RequestError::new(
                ErrorKind::TryAgain,
                format!(
                    "the earlier attachment of container {} interface {} is still being removed: {}",
                    key.container_id, key.ifname, error.message
                ),
            )
        })
    }

    /// Takes the removals a previous agent saved as unfinished: their addresses are reserved again
    /// (unless an attachment in service holds one, which then stays its own).
    pub(super) fn resume_removals(&mut self, deleting: Vec<Attachment>) {
        for attachment in deleting {
            if let Err(error) = self.ipam.reserve(attachment.address) {
                tracing::warn!(
                    container = %attachment.key.container_id,
                    address = %attachment.address,
                    %error,
                    "address of an unfinished removal is not reserved again"
                );
            }
            self.deleting.insert(attachment.key.clone(), attachment);
        }
    }

    /// Tries every pending removal once; returns the keys finished and those still pending.
    pub(super) async fn retry_removals(&mut self) -> (Vec<AttachmentKey>, Vec<AttachmentKey>) {
        let keys: Vec<AttachmentKey> = self.deleting.keys().cloned().collect();
        let mut finished = Vec::new();
        let mut pending = Vec::new();
        for key in keys {
            match self.finish_removal(&key).await {
                Ok(()) => finished.push(key),
                Err(_) => pending.push(key),
            }
        }
        (finished, pending)
    }

    /// Removes the kernel state of an attachment recorded as being deleted, then its record, then
    /// (only then) gives its address back.
    async fn finish_removal(&mut self, key: &AttachmentKey) -> Result<(), RequestError> {
        let Some(attachment) = self.deleting.get(key).cloned() else {
            return Ok(());
        };
        if let Err(error) = self.remove_kernel_state(&attachment).await {
            tracing::warn!(
                container = %key.container_id,
                address = %attachment.address,
                veth = %attachment.host_ifname,
                %error,
                "endpoint removal failed; it stays recorded (address kept) and is retried"
            );
            return Err(RequestError::new(
                error.kind,
                format!(
                    "{}; the removal is retried on the next DEL or GC, and {} stays taken until then",
                    error.message, attachment.address
                ),
            ));
        }
        self.deleting.remove(key);
        if let Err(error) = self.persist() {
            // The link is gone but the saved record is not: the address waits for the record.
            self.deleting.insert(key.clone(), attachment);
            return Err(error);
        }
        self.release_address(attachment.address);
        tracing::info!(
            container = %key.container_id,
            address = %attachment.address,
            "endpoint deleted"
        );
        Ok(())
    }

    /// The ENDPOINT entry (unless an attachment in service has the address), the program link and
    /// the veth (its peer in the pod goes with it). Each step is idempotent.
    async fn remove_kernel_state(&mut self, attachment: &Attachment) -> Result<(), RequestError> {
        if !self.address_in_service(attachment.address) {
            self.dataplane.remove_endpoint(attachment.address)?;
        }
        self.dataplane.detach_from_pod(&attachment.host_ifname)?;
        pod::delete(&self.netlink, &attachment.host_ifname).await?;
        Ok(())
    }

    fn release_address(&mut self, address: Ipv4Addr) {
        if !self.address_in_service(address) {
            self.ipam.release(address);
        }
    }
}
