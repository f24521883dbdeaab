//! `runtime.v1.ImageService`: forwards, one file per implemented RPC.

use crius_proto::image_service_server::ImageService;
use crius_proto::*;

use crate::Cri;
use crate::rpc::forward_rpcs;

forward_rpcs! {
impl ImageService {}
    implemented {}
    unimplemented {
        list_images(ListImagesRequest) -> ListImagesResponse = "ListImages";
        image_status(ImageStatusRequest) -> ImageStatusResponse = "ImageStatus";
        pull_image(PullImageRequest) -> PullImageResponse = "PullImage";
        remove_image(RemoveImageRequest) -> RemoveImageResponse = "RemoveImage";
        image_fs_info(ImageFsInfoRequest) -> ImageFsInfoResponse = "ImageFsInfo";
    }
}
