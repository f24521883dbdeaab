//! Request timeouts (CRI `int64` seconds) turned into waits that can never
//! overflow: `Instant + Duration` panics on overflow, and a client may send
//! `i64::MAX` (`crictl stop --timeout 9223372036854775807`).

use std::time::Duration;

/// The longest wait crius honours for a request timeout; anything longer
/// is as good as forever and is cut to this.
pub const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A CRI timeout in seconds as a wait: `None` for zero or negative values
/// (no grace period, or no timeout, depending on the call), otherwise at
/// most [`MAX_REQUEST_TIMEOUT`].
pub fn from_request_secs(secs: i64) -> Option<Duration> {
    let secs = u64::try_from(secs).ok().filter(|s| *s > 0)?;
    Some(Duration::from_secs(secs).min(MAX_REQUEST_TIMEOUT))
}

/// `start + limit`, saturated: never panics, whatever `limit` is.
pub fn deadline_after(start: tokio::time::Instant, limit: Duration) -> tokio::time::Instant {
    let limit = limit.min(MAX_REQUEST_TIMEOUT);
    start
        .checked_add(limit)
        .or_else(|| start.checked_add(Duration::from_secs(24 * 3600)))
        .unwrap_or(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_seconds_are_bounded() {
        assert_eq!(from_request_secs(0), None);
        assert_eq!(from_request_secs(-1), None);
        assert_eq!(from_request_secs(i64::MIN), None);
        assert_eq!(from_request_secs(30), Some(Duration::from_secs(30)));
        assert_eq!(from_request_secs(i64::MAX), Some(MAX_REQUEST_TIMEOUT));
    }

    #[test]
    fn deadlines_saturate_instead_of_panicking() {
        let now = tokio::time::Instant::now();
        for limit in [
            Duration::MAX,
            Duration::from_secs(i64::MAX as u64),
            Duration::from_secs(u64::MAX),
            from_request_secs(i64::MAX).unwrap(),
        ] {
            let d = deadline_after(now, limit);
            assert!(d > now + Duration::from_secs(365 * 24 * 3600), "{limit:?}");
        }
        assert_eq!(
            deadline_after(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
    }
}
