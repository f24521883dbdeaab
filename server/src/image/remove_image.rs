use crius_proto::{RemoveImageRequest, RemoveImageResponse};

use crate::Cri;
use crate::error::Error;

impl Cri {
    /// By tag removes that tag (the image goes with its last tag); by id or
    /// digest removes the image. The CRI says removing a missing image must
    /// succeed.
    pub(crate) async fn remove_image(
        &self,
        req: RemoveImageRequest,
    ) -> Result<RemoveImageResponse, Error> {
        let name = super::requested_image(req.image.as_ref())?;
        self.images.remove(name).await?;
        Ok(RemoveImageResponse {})
    }
}
