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
        // Checked by the image store under its lock, together with the
        // containers being created (which hold the image from before their
        // rootfs is mounted until they are in the container store): the
        // layers under a live overlay are never deleted.
        let containers = self.containers.clone();
        let used_by = std::sync::Arc::new(move |image_id: &str| {
            containers
                .store()
                .list()
                .into_iter()
                .find(|c| c.meta.image_id == image_id)
                .map(|c| format!("container {}", c.meta.id))
        });
        self.images.remove(name, used_by).await?;
        Ok(RemoveImageResponse {})
    }
}
