//! `Attach`: checks that the container is running and returns a
//! single-use URL on the streaming server, where the client is connected
//! to the container's main process through conmon's attach socket.

use crius_proto::{AttachRequest, AttachResponse};

use crate::Cri;
use crate::error::Error;

impl Cri {
    pub(crate) async fn attach(&self, mut req: AttachRequest) -> Result<AttachResponse, Error> {
        req.container_id = self
            .containers
            .running_id(&req.container_id, "attach to it")?;
        let url = self.streaming()?.register_attach(req)?;
        Ok(AttachResponse { url })
    }
}
