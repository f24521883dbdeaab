//! `ListPodSandbox`: filters by id prefix, state and label selector.

use crius_proto::{ListPodSandboxRequest, ListPodSandboxResponse, PodSandbox, PodSandboxFilter};
use pod_sandbox::Sandbox;

use super::pod_sandbox_status::{cri_state, metadata};
use crate::Cri;
use crate::error::Error;

impl Cri {
    pub(crate) async fn list_pod_sandbox(
        &self,
        req: ListPodSandboxRequest,
    ) -> Result<ListPodSandboxResponse, Error> {
        let filter = req.filter.unwrap_or_default();
        let mut items: Vec<PodSandbox> = self
            .sandboxes
            .list()
            .iter()
            .map(|sandbox| to_cri(sandbox))
            .filter(|item| matches(item, &filter))
            .collect();
        items.sort_by_key(|item| std::cmp::Reverse(item.created_at));
        Ok(ListPodSandboxResponse { items })
    }
}

fn to_cri(sandbox: &Sandbox) -> PodSandbox {
    let spec = sandbox.spec();
    PodSandbox {
        id: sandbox.id().to_string(),
        metadata: Some(metadata(sandbox)),
        state: cri_state(sandbox.status().state),
        created_at: spec.created_at,
        labels: spec.labels.clone(),
        annotations: spec.annotations.clone(),
        runtime_handler: spec.runtime_handler.clone(),
    }
}

fn matches(item: &PodSandbox, filter: &PodSandboxFilter) -> bool {
    item.id.starts_with(&filter.id)
        && filter.state.as_ref().is_none_or(|s| s.state == item.state)
        && filter
            .label_selector
            .iter()
            .all(|(k, v)| item.labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crius_proto::{PodSandboxState, PodSandboxStateValue};

    #[test]
    fn filters_combine() {
        let item = PodSandbox {
            id: "abcdef".into(),
            state: PodSandboxState::SandboxReady as i32,
            labels: [("app".to_string(), "web".to_string())].into(),
            ..Default::default()
        };
        let mut filter = PodSandboxFilter::default();
        assert!(matches(&item, &filter));
        filter.id = "abc".into();
        assert!(matches(&item, &filter));
        filter.label_selector.insert("app".into(), "web".into());
        assert!(matches(&item, &filter));
        filter.state = Some(PodSandboxStateValue {
            state: PodSandboxState::SandboxNotready as i32,
        });
        assert!(!matches(&item, &filter));
        filter.state = None;
        filter.label_selector.insert("tier".into(), "db".into());
        assert!(!matches(&item, &filter));
        filter.label_selector.clear();
        filter.id = "abd".into();
        assert!(!matches(&item, &filter));
    }
}
