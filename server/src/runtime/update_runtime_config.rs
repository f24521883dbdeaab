//! `UpdateRuntimeConfig`: the kubelet hands down the node's pod CIDR(s).
//! As with CRI-O, the pod network itself comes from the CNI config files,
//! so nothing is re-rendered; crius validates and keeps the CIDRs, logs a
//! change and reports them in verbose `Status` (`podCIDRs`). A malformed
//! CIDR is rejected and the previous value kept.

use std::net::IpAddr;

use crius_proto::{UpdateRuntimeConfigRequest, UpdateRuntimeConfigResponse};

use crate::Cri;
use crate::error::Error;

impl Cri {
    pub(crate) async fn update_runtime_config(
        &self,
        req: UpdateRuntimeConfigRequest,
    ) -> Result<UpdateRuntimeConfigResponse, Error> {
        let cidr = req
            .runtime_config
            .and_then(|c| c.network_config)
            .map(|n| n.pod_cidr)
            .unwrap_or_default();
        if cidr.is_empty() {
            return Ok(UpdateRuntimeConfigResponse {});
        }
        let cidrs = parse_cidrs(&cidr)?;
        let mut current = self.pod_cidrs.write().unwrap_or_else(|e| e.into_inner());
        if *current != cidrs {
            tracing::info!(?cidrs, "pod CIDR updated by the kubelet");
            *current = cidrs;
        }
        Ok(UpdateRuntimeConfigResponse {})
    }
}

/// `10.88.0.0/16` or a dual-stack `10.88.0.0/16,fd00::/64`.
fn parse_cidrs(value: &str) -> Result<Vec<String>, Error> {
    let invalid = |why: &str| Error::InvalidArgument {
        what: "pod CIDR",
        message: format!("{value:?} {why}"),
    };
    value
        .split(',')
        .map(|part| {
            let part = part.trim();
            let (addr, prefix) = part
                .split_once('/')
                .ok_or_else(|| invalid("is not in address/prefix form"))?;
            let addr: IpAddr = addr
                .parse()
                .map_err(|_| invalid("has an invalid address"))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            match prefix.parse::<u8>() {
                Ok(p) if p <= max => Ok(part.to_string()),
                _ => Err(invalid("has an invalid prefix length")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_single_and_dual_stack_parse_and_garbage_is_refused() {
        assert_eq!(parse_cidrs("10.88.0.0/16").unwrap(), ["10.88.0.0/16"]);
        assert_eq!(
            parse_cidrs("10.88.0.0/16, fd00::/64").unwrap(),
            ["10.88.0.0/16", "fd00::/64"]
        );
        for bad in [
            "10.88.0.0",
            "10.88.0/16",
            "10.88.0.0/33",
            "fd00::/129",
            "x/8",
            "10.0.0.0/16,",
        ] {
            let err = parse_cidrs(bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidArgument {
                        what: "pod CIDR",
                        ..
                    }
                ),
                "{bad}: {err:?}"
            );
        }
    }
}
