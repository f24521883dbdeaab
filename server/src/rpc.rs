//! The one wrapper every RPC goes through: a span named after the method,
//! the request at debug, the outcome with its status code and latency, in
//! the log and in the daemon's metrics.

use std::fmt::Debug;
use std::future::Future;
use std::time::Instant;

use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::error::Error;
use crate::metrics::Metrics;

pub(crate) async fn serve<Req, Resp, Fut>(
    metrics: &Metrics,
    method: &'static str,
    request: Request<Req>,
    handler: impl FnOnce(Req) -> Fut,
) -> Result<Response<Resp>, Status>
where
    Req: Debug,
    Fut: Future<Output = Result<Resp, Error>>,
{
    let span = tracing::info_span!("rpc", method);
    async move {
        let request = request.into_inner();
        tracing::debug!(?request, "request");
        let started = Instant::now();
        let result = handler(request).await;
        let elapsed = started.elapsed();
        let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
        match result {
            Ok(response) => {
                metrics.record_rpc(method, tonic::Code::Ok, elapsed);
                tracing::debug!(elapsed_ms, "done");
                Ok(Response::new(response))
            }
            Err(err) => {
                let status = Status::from(err);
                metrics.record_rpc(method, status.code(), elapsed);
                tracing::warn!(code = ?status.code(), message = status.message(), elapsed_ms, "failed");
                Err(status)
            }
        }
    }
    .instrument(span)
    .await
}

/// Implements a CRI service trait as one-line forwards to `Cri` methods of
/// the same name, each through [`serve`]; `unimplemented` RPCs answer
/// `Unimplemented` naming the RPC.
macro_rules! forward_rpcs {
    (
        impl $service:ident { $($assoc:item)* }
        implemented { $($method:ident($req:ty) -> $resp:ty = $name:literal;)* }
        unimplemented { $($umethod:ident($ureq:ty) -> $uresp:ty = $uname:literal;)* }
    ) => {
        // The attribute must see the expanded methods, so the macro emits
        // the whole impl block.
        #[tonic::async_trait]
        impl $service for Cri {
        $($assoc)*
        $(
            async fn $method(
                &self,
                request: tonic::Request<$req>,
            ) -> Result<tonic::Response<$resp>, tonic::Status> {
                $crate::rpc::serve(&self.metrics, $name, request, |r| Cri::$method(self, r)).await
            }
        )*
        $(
            async fn $umethod(
                &self,
                request: tonic::Request<$ureq>,
            ) -> Result<tonic::Response<$uresp>, tonic::Status> {
                $crate::rpc::serve(&self.metrics, $uname, request, |_| async {
                    Err($crate::error::Error::Unimplemented { rpc: $uname })
                })
                .await
            }
        )*
        }
    };
}
pub(crate) use forward_rpcs;
