use crius_proto::{ListImagesRequest, ListImagesResponse};

use crate::Cri;
use crate::error::Error;

impl Cri {
    /// With a filter, only the image it names (by tag, digest or id).
    pub(crate) async fn list_images(
        &self,
        req: ListImagesRequest,
    ) -> Result<ListImagesResponse, Error> {
        let filter = req
            .filter
            .and_then(|f| f.image)
            .map(|spec| spec.image)
            .filter(|image| !image.is_empty());
        let records = match filter {
            Some(name) => self.images.resolve(&name).into_iter().collect(),
            None => self.images.list(),
        };
        Ok(ListImagesResponse {
            images: records
                .iter()
                .map(|r| super::to_cri(&self.images, r))
                .collect(),
        })
    }
}
