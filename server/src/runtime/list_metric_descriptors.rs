//! `ListMetricDescriptors`: names, help and label keys of the metrics
//! `ListPodSandboxMetrics` reports (see `metrics.rs`).

use crius_proto::{ListMetricDescriptorsRequest, ListMetricDescriptorsResponse};

use super::metrics::descriptors;
use crate::Cri;
use crate::error::Error;

impl Cri {
    pub(crate) async fn list_metric_descriptors(
        &self,
        _req: ListMetricDescriptorsRequest,
    ) -> Result<ListMetricDescriptorsResponse, Error> {
        Ok(ListMetricDescriptorsResponse {
            descriptors: descriptors(),
        })
    }
}
