use crius_proto::{PullImageRequest, PullImageResponse};

use crate::Cri;
use crate::error::Error;

impl Cri {
    /// Pulls the image and answers its id, which the kubelet passes back as
    /// the container's image.
    pub(crate) async fn pull_image(
        &self,
        req: PullImageRequest,
    ) -> Result<PullImageResponse, Error> {
        let image = super::requested_image(req.image.as_ref())?;
        let started = std::time::Instant::now();
        let record = self.images.pull(image, req.auth.as_ref()).await?;
        self.metrics.record_pull(started.elapsed());
        Ok(PullImageResponse {
            image_ref: record.id.clone(),
        })
    }
}
