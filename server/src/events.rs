//! The event hub behind `GetContainerEvents`: container transitions come
//! from the container manager (including exits seen by its exit watcher),
//! sandbox transitions from the sandbox RPCs. Each event goes out with the
//! pod's status and the statuses of all its containers, as the kubelet's
//! evented PLEG expects, built when the event happens and only when
//! somebody is listening.

use std::sync::Arc;

use crius_proto::{ContainerEventResponse, ContainerEventType, ContainerStatus, PodSandboxStatus};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use crate::runtime::sandbox_status;

/// Built events kept for a slow subscriber.
const CAPACITY: usize = 1024;
/// Events buffered per subscriber between the hub and its gRPC stream.
const STREAM_BUFFER: usize = 64;

#[derive(Clone)]
pub(crate) struct EventHub {
    tx: broadcast::Sender<ContainerEventResponse>,
    closed: watch::Sender<bool>,
}

impl Default for EventHub {
    fn default() -> Self {
        EventHub {
            tx: broadcast::channel(CAPACITY).0,
            closed: watch::channel(false).0,
        }
    }
}

impl EventHub {
    fn listening(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    fn send(&self, event: ContainerEventResponse) {
        // A subscriber may have left since `listening`; nothing to do then.
        let _ = self.tx.send(event);
    }

    /// Ends every stream: the daemon is shutting down and a kubelet never
    /// hangs up by itself.
    pub(crate) fn close(&self) {
        self.closed.send_replace(true);
    }

    /// A stream of events from now on; it ends when the daemon shuts down.
    /// A subscriber that falls more than [`CAPACITY`] events behind loses
    /// the oldest (logged); the kubelet's periodic relist covers the gap.
    pub(crate) fn subscribe(
        &self,
    ) -> ReceiverStream<Result<ContainerEventResponse, tonic::Status>> {
        let mut rx = self.tx.subscribe();
        let mut closed = self.closed.subscribe();
        let (out, stream) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(async move {
            if *closed.borrow_and_update() {
                return;
            }
            loop {
                tokio::select! {
                    event = rx.recv() => match event {
                        Ok(event) => {
                            if out.send(Ok(event)).await.is_err() {
                                return;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            tracing::warn!(missed, "container event subscriber fell behind");
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    () = out.closed() => return,
                    // Only ever set to true.
                    _ = closed.changed() => return,
                }
            }
        });
        ReceiverStream::new(stream)
    }

    /// A sandbox transition; `status` is the pod's status at that moment
    /// (for a removed pod, the last one known).
    pub(crate) fn sandbox_event(&self, status: PodSandboxStatus, kind: ContainerEventType) {
        if !self.listening() {
            return;
        }
        self.send(ContainerEventResponse {
            container_id: status.id.clone(),
            container_event_type: kind as i32,
            created_at: container::manager::now_nanos(),
            pod_sandbox_status: Some(status),
            containers_statuses: Vec::new(),
        });
    }

    /// Forwards the container manager's events, with statuses, until the
    /// manager goes away.
    pub(crate) fn forward_container_events(
        &self,
        sandboxes: Arc<pod_sandbox::Sandboxes>,
        containers: Arc<container::ContainerManager>,
    ) {
        let mut rx = containers.subscribe_events();
        let hub = self.clone();
        tokio::spawn(async move {
            loop {
                let event = match rx.recv().await {
                    Ok(event) => event,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "container events dropped before forwarding");
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if !hub.listening() {
                    continue;
                }
                let pod = sandboxes.get(&event.sandbox_id).ok();
                hub.send(ContainerEventResponse {
                    container_id: event.container_id,
                    container_event_type: event.kind.to_cri() as i32,
                    created_at: event.at,
                    pod_sandbox_status: pod.as_deref().map(sandbox_status),
                    containers_statuses: pod_containers(&containers, &event.sandbox_id),
                });
            }
        });
    }
}

/// The current statuses of a pod's containers (a container removed in the
/// meantime is left out).
pub(crate) fn pod_containers(
    containers: &container::ContainerManager,
    sandbox_id: &str,
) -> Vec<ContainerStatus> {
    containers
        .containers_of_sandbox(sandbox_id)
        .iter()
        .filter_map(|id| containers.status(id, false).ok().map(|(s, _)| s))
        .collect()
}
