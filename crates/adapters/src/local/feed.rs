use tagged_routing::{Change, ChangeSink};
use tokio::sync::broadcast;

/// The in-process change feed of the local server: every change the store commits is sent
/// to every subscriber, in commit order (which is revision order per owner, because the
/// store publishes while it still holds its write lock).
///
/// A subscriber that falls more than `capacity` changes behind gets
/// `RecvError::Lagged` and must resynchronise from the store's change log: the feed never
/// buffers without bound.
#[derive(Clone)]
pub struct InProcessFeed {
    sender: broadcast::Sender<Change>,
}

impl InProcessFeed {
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        InProcessFeed { sender }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.sender.subscribe()
    }
}

impl ChangeSink for InProcessFeed {
    fn publish(&self, change: &Change) {
        // No subscriber is not an error: the change is in the store's log either way.
        let _ = self.sender.send(change.clone());
    }
}
