//! `ExecSync`: runs a command in a running container and returns its output
//! (bounded) and exit code; a timeout kills the command and fails the call.

use std::time::Duration;

use crius_proto::{ExecSyncRequest, ExecSyncResponse};

use crate::Cri;
use crate::error::Error;

/// What "no timeout" (0) means in practice: long enough never to matter.
const NO_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

impl Cri {
    pub(crate) async fn exec_sync(&self, req: ExecSyncRequest) -> Result<ExecSyncResponse, Error> {
        let timeout = container::timeout::from_request_secs(req.timeout).unwrap_or(NO_TIMEOUT);
        let output = self
            .containers
            .exec_sync(&req.container_id, &req.cmd, timeout)
            .await?;
        Ok(ExecSyncResponse {
            stdout: output.stdout,
            stderr: output.stderr,
            exit_code: output.exit_code,
        })
    }
}
