//! `Exec`: checks that the container is running and returns a single-use
//! URL on the streaming server, where the client then runs the command
//! (`runc exec`, see `streaming_backend`).

use crius_proto::{ExecRequest, ExecResponse};

use crate::Cri;
use crate::error::Error;

impl Cri {
    pub(crate) async fn exec(&self, mut req: ExecRequest) -> Result<ExecResponse, Error> {
        req.container_id = self
            .containers
            .running_id(&req.container_id, "exec in it")?;
        let url = self.streaming()?.register_exec(req)?;
        Ok(ExecResponse { url })
    }
}
