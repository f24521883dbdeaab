//! Container lifecycle events for the CRI `GetContainerEvents` stream.
//!
//! The manager emits an event at each transition it makes (created,
//! started, stopped, deleted). A container that exits on its own is seen by
//! [`ContainerManager::watch_exits`]: conmon drops an exit file named after
//! the container into the exits dir, an inotify watch on that dir folds it
//! into the record, and the transition to EXITED emits `Stopped`.
//!
//! Events are broadcast: a subscriber that falls behind by more than
//! [`CAPACITY`] events loses the oldest ones (the kubelet relists then).

use tokio::sync::broadcast;

use crate::manager::{ContainerManager, now_nanos};

/// Events kept for a slow subscriber.
pub const CAPACITY: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Created,
    Started,
    Stopped,
    Deleted,
}

impl EventKind {
    pub fn to_cri(self) -> crius_proto::ContainerEventType {
        use crius_proto::ContainerEventType as T;
        match self {
            EventKind::Created => T::ContainerCreatedEvent,
            EventKind::Started => T::ContainerStartedEvent,
            EventKind::Stopped => T::ContainerStoppedEvent,
            EventKind::Deleted => T::ContainerDeletedEvent,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    pub container_id: String,
    pub sandbox_id: String,
    pub kind: EventKind,
    /// When the transition happened, in nanoseconds since the epoch.
    pub at: i64,
}

/// The sending side, shared by the manager's clones.
#[derive(Clone)]
pub struct Events(broadcast::Sender<ContainerEvent>);

impl Default for Events {
    fn default() -> Self {
        Events(broadcast::channel(CAPACITY).0)
    }
}

impl Events {
    pub fn subscribe(&self) -> broadcast::Receiver<ContainerEvent> {
        self.0.subscribe()
    }

    pub fn emit(&self, container_id: &str, sandbox_id: &str, kind: EventKind) {
        // Without subscribers there is nobody to tell; that is not an error.
        let _ = self.0.send(ContainerEvent {
            container_id: container_id.to_string(),
            sandbox_id: sandbox_id.to_string(),
            kind,
            at: now_nanos(),
        });
    }
}

impl ContainerManager {
    /// Lifecycle events of every container, from now on.
    pub fn subscribe_events(&self) -> broadcast::Receiver<ContainerEvent> {
        self.events().subscribe()
    }

    /// Follows conmon's exit dir for the life of the process, so that a
    /// container exiting on its own is recorded (and its `Stopped` event
    /// sent) when it happens rather than at the next status call. Shares
    /// the one exit dir watch that stop waits on. Call once, after
    /// [`recover`](Self::recover), inside the tokio runtime.
    pub fn watch_exits(&self) -> crate::Result<()> {
        let dir = self.config().exits_dir();
        let mut names = self
            .exit_notifier()
            .ok_or_else(|| {
                crate::Error::io(
                    "failed to watch",
                    &dir,
                    std::io::Error::other("inotify is not available"),
                )
            })?
            .names();
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                match names.recv().await {
                    Ok(name) => this.exit_observed(&name),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "exit watcher fell behind; status calls catch up");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(())
    }

    /// Folds an exit file into its container's record (which emits
    /// `Stopped` on the transition). Unknown names (temp files, exits of
    /// containers already removed) are ignored.
    fn exit_observed(&self, id: &str) {
        let Ok(ctr) = self.store().get(id) else {
            return;
        };
        if let Err(e) = self.refresh(&ctr) {
            tracing::warn!(%id, %e, "failed to record container exit");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_the_cri_event_types() {
        use crius_proto::ContainerEventType as T;
        assert_eq!(EventKind::Created.to_cri(), T::ContainerCreatedEvent);
        assert_eq!(EventKind::Started.to_cri(), T::ContainerStartedEvent);
        assert_eq!(EventKind::Stopped.to_cri(), T::ContainerStoppedEvent);
        assert_eq!(EventKind::Deleted.to_cri(), T::ContainerDeletedEvent);
    }

    #[tokio::test]
    async fn subscribers_get_events_in_order_and_late_ones_none_of_the_past() {
        let events = Events::default();
        events.emit("early", "pod", EventKind::Created);
        let mut rx = events.subscribe();
        events.emit("c1", "pod", EventKind::Created);
        events.emit("c1", "pod", EventKind::Started);
        let first = rx.recv().await.unwrap();
        let second = rx.recv().await.unwrap();
        assert_eq!(
            (first.container_id.as_str(), first.kind),
            ("c1", EventKind::Created)
        );
        assert_eq!(
            (second.container_id.as_str(), second.kind),
            ("c1", EventKind::Started)
        );
        assert!(second.at >= first.at);
        assert!(rx.try_recv().is_err());
    }
}
