//! `ReopenContainerLog`: conmon reopens the log file after the kubelet
//! rotated it, so new lines go to the new file.

use crius_proto::{ReopenContainerLogRequest, ReopenContainerLogResponse};

use crate::Cri;
use crate::error::Error;

impl Cri {
    pub(crate) async fn reopen_container_log(
        &self,
        req: ReopenContainerLogRequest,
    ) -> Result<ReopenContainerLogResponse, Error> {
        self.containers.reopen_log(&req.container_id).await?;
        Ok(ReopenContainerLogResponse {})
    }
}
