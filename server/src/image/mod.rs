//! `runtime.v1.ImageService`: forwards, one file per implemented RPC.

use crius_proto::image_service_server::ImageService;
use crius_proto::*;
use image_service::ImageRecord;

use crate::Cri;
use crate::error::Error;
use crate::rpc::forward_rpcs;

mod image_fs_info;
mod image_status;
mod list_images;
mod pull_image;
mod remove_image;

forward_rpcs! {
impl ImageService {}
    implemented {
        list_images(ListImagesRequest) -> ListImagesResponse = "ListImages";
        image_status(ImageStatusRequest) -> ImageStatusResponse = "ImageStatus";
        pull_image(PullImageRequest) -> PullImageResponse = "PullImage";
        remove_image(RemoveImageRequest) -> RemoveImageResponse = "RemoveImage";
        image_fs_info(ImageFsInfoRequest) -> ImageFsInfoResponse = "ImageFsInfo";
    }
    unimplemented {}
}

/// The image name of a request, which must be given.
pub(crate) fn requested_image(spec: Option<&ImageSpec>) -> Result<&str, Error> {
    match spec.map(|s| s.image.as_str()) {
        Some(image) if !image.is_empty() => Ok(image),
        _ => Err(Error::InvalidArgument {
            what: "image",
            message: "no image name given".into(),
        }),
    }
}

/// A record as the CRI shows it. A numeric image user becomes `uid` (the
/// kubelet checks runAsNonRoot with it), a name becomes `username`.
fn to_cri(images: &image_service::ImageService, record: &ImageRecord) -> Image {
    let (uid, username) = image_user(&record.config.user);
    Image {
        id: record.id.clone(),
        repo_tags: record.repo_tags.clone(),
        repo_digests: record.repo_digests.clone(),
        size: record.size,
        uid,
        username,
        spec: Some(ImageSpec {
            image: record.id.clone(),
            annotations: record.annotations.clone().into_iter().collect(),
            ..Default::default()
        }),
        pinned: images.is_pinned(record),
    }
}

/// The `uid` and `username` of an image whose config says `USER user`
/// (`uid`, `name`, either with `:group`); the group is not reported.
fn image_user(user: &str) -> (Option<Int64Value>, String) {
    let user = user.split(':').next().unwrap_or_default();
    match user.parse::<i64>() {
        Ok(uid) => (Some(Int64Value { value: uid }), String::new()),
        Err(_) if user.is_empty() => (Some(Int64Value { value: 0 }), String::new()),
        Err(_) => (None, user.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// critest "image status get image fields should not have Uid|Username
    /// empty": UID only, username only, UID:group, username:group.
    #[test]
    fn image_user_as_critest_expects() {
        let uid = |v| Some(Int64Value { value: v });
        assert_eq!(image_user("1002"), (uid(1002), String::new()));
        assert_eq!(image_user("www-data"), (None, "www-data".into()));
        assert_eq!(image_user("1003:group"), (uid(1003), String::new()));
        assert_eq!(image_user("www-data:group"), (None, "www-data".into()));
        assert_eq!(image_user(""), (uid(0), String::new()));
    }
}
