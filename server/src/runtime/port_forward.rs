//! `PortForward`: checks that the sandbox exists and is ready and returns
//! a single-use URL on the streaming server, where each forwarded
//! connection is opened inside the pod's network namespace.

use crius_proto::{PortForwardRequest, PortForwardResponse};

use crate::Cri;
use crate::error::Error;

impl Cri {
    pub(crate) async fn port_forward(
        &self,
        mut req: PortForwardRequest,
    ) -> Result<PortForwardResponse, Error> {
        let sandbox = self.sandboxes.get(&req.pod_sandbox_id)?;
        if sandbox.status().state != pod_sandbox::State::Ready {
            return Err(Error::SandboxNotReady {
                id: sandbox.id().to_owned(),
                op: "port-forward to it",
            });
        }
        req.pod_sandbox_id = sandbox.id().to_owned();
        let url = self.streaming()?.register_port_forward(req)?;
        Ok(PortForwardResponse { url })
    }
}
