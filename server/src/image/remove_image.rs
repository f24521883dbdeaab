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
        self.refuse_if_in_use(name)?;
        self.images.remove(name).await?;
        Ok(RemoveImageResponse {})
    }

    /// An image whose layers are mounted by a container cannot go: removing
    /// it would pull the lower dirs from under a rootfs. Removing one tag
    /// of several leaves the image, so that stays allowed.
    fn refuse_if_in_use(&self, name: &str) -> Result<(), Error> {
        let Some(image) = self.images.resolve(name) else {
            return Ok(());
        };
        let removes_image = image.id.starts_with(name)
            || image.id.trim_start_matches("sha256:").starts_with(name)
            || image.repo_digests.iter().any(|d| d == name)
            || image.repo_tags.len() <= 1;
        if !removes_image {
            return Ok(());
        }
        match self
            .containers
            .store()
            .list()
            .into_iter()
            .find(|c| c.meta.image_id == image.id)
        {
            Some(user) => Err(Error::ImageInUse {
                image: name.to_string(),
                container: user.meta.id.clone(),
            }),
            None => Ok(()),
        }
    }
}
