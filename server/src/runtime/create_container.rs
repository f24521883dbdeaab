//! `CreateContainer`: resolves the pod and the image, then has the container
//! library mount the rootfs, write the OCI spec and run `runc create` under
//! conmon.

use std::path::PathBuf;

use crius_proto::{CreateContainerRequest, CreateContainerResponse, NamespaceMode};

use crate::Cri;
use crate::cri::detached;
use crate::error::Error;

/// Tells apart the holders of concurrent creates with the same name.
static CREATE_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Cri {
    pub(crate) async fn create_container(
        &self,
        req: CreateContainerRequest,
    ) -> Result<CreateContainerResponse, Error> {
        let config = req.config.ok_or(Error::InvalidArgument {
            what: "CreateContainerRequest",
            message: "config is missing".into(),
        })?;
        // Held until the container is in the store: a concurrent
        // RemovePodSandbox either finds it there or refuses it here.
        let (sandbox, held) = self.sandboxes.hold(&req.pod_sandbox_id).await?;
        if sandbox.status().state != pod_sandbox::State::Ready {
            return Err(Error::SandboxNotReady {
                id: sandbox.id().to_string(),
                op: "create containers in it",
            });
        }
        let image_name = crate::image::requested_image(config.image.as_ref())?.to_string();
        // Held from here until the container is in the container store
        // (where RemoveImage finds it) or the create failed: RemoveImage
        // cannot delete the layers this create mounts.
        let holder = format!(
            "container {:?} being created (#{})",
            config.metadata.as_ref().map_or("", |m| m.name.as_str()),
            CREATE_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let image = self.image_info(&image_name, &holder)?;
        let sandbox_info = sandbox_info(&sandbox);
        let containers = self.containers.clone();
        let images = self.images.clone();
        // Detached: a create dropped half-way by a client deadline would
        // skip its own rollback (and the release of the image and of the
        // pod).
        let id = detached(async move {
            let created = containers.create(&sandbox_info, &image, &config).await;
            images.release(&image.id, &holder);
            drop(held);
            Ok(created?)
        })
        .await?;
        tracing::info!(%id, sandbox = sandbox.id(), image = %image_name, "container created");
        Ok(CreateContainerResponse { container_id: id })
    }

    /// What the container library needs to know of a pulled image, which
    /// `holder` now holds (see [`image_service::ImageService::hold`]).
    fn image_info(&self, name: &str, holder: &str) -> Result<container::ImageInfo, Error> {
        let not_found = || Error::ImageNotFound {
            image: name.to_string(),
        };
        let (record, rootfs) = self.images.hold(name, holder).ok_or_else(not_found)?;
        let config = rootfs.config;
        Ok(container::ImageInfo {
            reference: record
                .repo_digests
                .first()
                .cloned()
                .unwrap_or_else(|| record.id.clone()),
            id: rootfs.id,
            layers: rootfs.layer_dirs,
            config: container::ImageConfig {
                env: config.env,
                entrypoint: config.entrypoint,
                cmd: config.cmd,
                user: config.user,
                working_dir: config.working_dir,
                stop_signal: config.stop_signal,
            },
        })
    }
}

/// What the container library needs to know of a pod.
pub(crate) fn sandbox_info(sandbox: &pod_sandbox::Sandbox) -> container::SandboxInfo {
    let spec = sandbox.spec();
    let files = &spec.files;
    container::SandboxInfo {
        id: sandbox.id().to_string(),
        name: spec.metadata.name.clone(),
        namespace: spec.metadata.namespace.clone(),
        uid: spec.metadata.uid.clone(),
        netns_path: spec.netns.clone(),
        ipcns_path: spec.ipcns.clone(),
        utsns_path: spec.utsns.clone(),
        pidns_path: sandbox.pidns(),
        host_pid: spec.namespaces.pid.to_cri() == NamespaceMode::Node as i32,
        hostname: spec.hostname.clone(),
        hostname_file: Some(files.hostname.clone()),
        hosts_file: Some(files.hosts.clone()),
        resolv_conf_file: Some(files.resolv_conf.clone()),
        shm_path: files.shm.clone(),
        cgroup_parent: spec.cgroup_parent.clone(),
        log_directory: (!spec.log_directory.is_empty()).then(|| PathBuf::from(&spec.log_directory)),
        annotations: spec.annotations.clone(),
    }
}
