//! `GetContainerEvents`: a server stream of container and sandbox
//! lifecycle events (created, started, stopped, deleted) for the kubelet's
//! evented PLEG, each with the pod's status and its containers' statuses.
//! Events are sent from the moment of the call; the stream ends when the
//! daemon stops.

use crius_proto::GetEventsRequest;

use super::EventStream;
use crate::Cri;
use crate::error::Error;

impl Cri {
    pub(crate) async fn get_container_events(
        &self,
        _req: GetEventsRequest,
    ) -> Result<EventStream, Error> {
        Ok(Box::pin(self.events.subscribe()))
    }
}
