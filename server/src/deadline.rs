//! Client deadlines answered as `DeadlineExceeded`.
//!
//! gRPC says a call whose deadline (the `grpc-timeout` header) passes ends
//! with DEADLINE_EXCEEDED, and critest's "public image should timeout if
//! requested" asserts exactly that for a PullImage with a 1ms deadline.
//! tonic's server enforces the header too, but answers `Cancelled` ("Timeout
//! expired"). This layer sits inside tonic's and starts its own timer first,
//! and tonic polls the inner future before its timer, so when the deadline
//! passes this layer answers, with the right code. Dropping the handler
//! future at the deadline is what tonic did already: handlers that must not
//! be abandoned (RunPodSandbox) finish their work on a task of their own.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::body::Body;
use tower::{Layer, Service};

/// Wraps the gRPC routes in [`Deadline`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct DeadlineLayer;

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline { inner }
    }
}

/// Ends a call with `DeadlineExceeded` when its `grpc-timeout` passes.
#[derive(Clone, Debug)]
pub(crate) struct Deadline<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> Service<http::Request<B>> for Deadline<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let timeout = req
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout);
        let call = self.inner.call(req);
        let Some(timeout) = timeout else {
            return Box::pin(call);
        };
        // Created here, before tonic's own timer, so it never fires later.
        let sleep = tokio::time::sleep(timeout);
        Box::pin(async move {
            tokio::select! {
                biased;
                res = call => res,
                () = sleep => {
                    tracing::debug!(?timeout, "client deadline exceeded");
                    Ok(tonic::Status::deadline_exceeded(format!(
                        "deadline of {timeout:?} exceeded"
                    ))
                    .into_http())
                }
            }
        })
    }
}

/// Parses a `grpc-timeout` value: at most 8 digits and a unit, `H` `M` `S`
/// `m` `u` `n` (hours down to nanoseconds).
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;

    #[test]
    fn grpc_timeout_units() {
        assert_eq!(parse_grpc_timeout("1m"), Some(Duration::from_millis(1)));
        assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_grpc_timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse_grpc_timeout("4S"), Some(Duration::from_secs(4)));
        assert_eq!(parse_grpc_timeout("5u"), Some(Duration::from_micros(5)));
        assert_eq!(
            parse_grpc_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in ["", "m", "123456789S", "1x", "-1S", "1.5S", "S1"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }

    /// A handler that never answers.
    #[derive(Clone)]
    struct Never;

    impl Service<http::Request<()>> for Never {
        type Response = http::Response<Body>;
        type Error = Infallible;
        type Future = BoxFuture<Result<Self::Response, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            Box::pin(std::future::pending())
        }
    }

    fn grpc_status(res: &http::Response<Body>) -> Option<&str> {
        res.headers().get("grpc-status")?.to_str().ok()
    }

    #[tokio::test]
    async fn a_passed_deadline_is_deadline_exceeded() {
        let req = http::Request::builder()
            .header("grpc-timeout", "1m")
            .body(())
            .unwrap();
        let res = DeadlineLayer.layer(Never).call(req).await.unwrap();
        let code = (tonic::Code::DeadlineExceeded as i32).to_string();
        assert_eq!(grpc_status(&res), Some(code.as_str()));
    }

    #[tokio::test]
    async fn without_a_deadline_the_handler_answers() {
        #[derive(Clone)]
        struct Ok200;
        impl Service<http::Request<()>> for Ok200 {
            type Response = http::Response<Body>;
            type Error = Infallible;
            type Future = std::future::Ready<Result<Self::Response, Infallible>>;
            fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
                Poll::Ready(Ok(()))
            }
            fn call(&mut self, _: http::Request<()>) -> Self::Future {
                std::future::ready(Ok(http::Response::new(Body::default())))
            }
        }
        let res = DeadlineLayer
            .layer(Ok200)
            .call(http::Request::new(()))
            .await
            .unwrap();
        assert_eq!(grpc_status(&res), None);
        let slow = DeadlineLayer.layer(Ok200).call(
            http::Request::builder()
                .header("grpc-timeout", "10S")
                .body(())
                .unwrap(),
        );
        assert_eq!(grpc_status(&slow.await.unwrap()), None);
    }
}
