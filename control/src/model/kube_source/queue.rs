//! The bounded queue between the watcher tasks (async, on the tokio runtime) and the source's
//! consumer (the sync loop, on a blocking thread): a std channel whose room is a tokio semaphore. A
//! sender waits for a permit without blocking its runtime thread, so when the consumer falls behind,
//! the watchers stop reading their responses (and the API server's stream backs up) instead of the
//! queue growing; the consumer gives each permit back as it takes a message. The semaphore is fair:
//! waiting watchers get room in the order they asked, so a large list does not starve the others.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use tokio::sync::Semaphore;

/// A queue of at most `capacity` values (at least one).
pub(super) fn bounded<T>(capacity: usize) -> (QueueSender<T>, QueueReceiver<T>) {
    let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
    let (sender, receiver) = mpsc::channel();
    let room = Arc::new(Semaphore::new(capacity));
    (
        QueueSender {
            sender,
            room: Arc::clone(&room),
        },
        QueueReceiver {
            receiver,
            room,
            capacity,
        },
    )
}

/// The consumer has gone.
#[derive(Debug)]
pub(super) struct Closed;

/// The watchers' end; cloned for each.
#[derive(Debug)]
pub(super) struct QueueSender<T> {
    sender: mpsc::Sender<T>,
    room: Arc<Semaphore>,
}

impl<T> Clone for QueueSender<T> {
    fn clone(&self) -> Self {
        Self {
            sender: self.sender.clone(),
            room: Arc::clone(&self.room),
        }
    }
}

impl<T> QueueSender<T> {
    /// Queues `value`, first waiting (asynchronously) for room.
    pub(super) async fn send(&self, value: T) -> Result<(), Closed> {
        let permit = self.room.acquire().await.map_err(|_| Closed)?;
        // The consumer hands the permit back when it takes the value.
        permit.forget();
        self.sender.send(value).map_err(|_| Closed)
    }
}

/// The consumer's end. Dropping it wakes and fails every waiting sender.
#[derive(Debug)]
pub(super) struct QueueReceiver<T> {
    receiver: mpsc::Receiver<T>,
    room: Arc<Semaphore>,
    capacity: usize,
}

impl<T> QueueReceiver<T> {
    /// The next value, waiting (blocking this thread) up to `timeout`.
    pub(super) fn recv_timeout(&self, timeout: Duration) -> Option<T> {
        match self.receiver.recv_timeout(timeout) {
            Ok(value) => Some(self.taken(value)),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    /// The next value if one is queued.
    pub(super) fn try_recv(&self) -> Option<T> {
        self.receiver.try_recv().ok().map(|value| self.taken(value))
    }

    /// The most values the queue holds.
    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Values queued now (or about to be: a sender between its permit and its send counts).
    pub(super) fn len(&self) -> usize {
        self.capacity.saturating_sub(self.room.available_permits())
    }

    fn taken(&self, value: T) -> T {
        self.room.add_permits(1);
        value
    }
}

impl<T> Drop for QueueReceiver<T> {
    fn drop(&mut self) {
        self.room.close();
    }
}
