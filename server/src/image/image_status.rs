use crius_proto::{ImageStatusRequest, ImageStatusResponse};

use crate::Cri;
use crate::error::Error;

impl Cri {
    /// An unknown image is an empty response, not an error: the CRI says
    /// "if the image isn't present, returns a response with ImageStatusResponse.Image set to nil".
    pub(crate) async fn image_status(
        &self,
        req: ImageStatusRequest,
    ) -> Result<ImageStatusResponse, Error> {
        let name = super::requested_image(req.image.as_ref())?;
        let Some(record) = self.images.resolve(name) else {
            return Ok(ImageStatusResponse::default());
        };
        let info = if req.verbose {
            self.images.inspect(&record).into_iter().collect()
        } else {
            Default::default()
        };
        Ok(ImageStatusResponse {
            image: Some(super::to_cri(&self.images, &record)),
            info,
        })
    }
}
