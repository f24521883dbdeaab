//! Single-use, expiring tokens that stand for a validated CRI request.
//!
//! The Exec/Attach/PortForward RPCs validate the request and park it here;
//! the URL they return carries the token. The first HTTP request with the
//! token takes the parked request out; a second one, or one after the TTL,
//! finds nothing and gets 404.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;

/// A parked CRI request.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Exec(crius_proto::ExecRequest),
    Attach(crius_proto::AttachRequest),
    PortForward(crius_proto::PortForwardRequest),
}

/// Most tokens outstanding at once; a flood of RPCs cannot grow memory
/// without bound.
pub const MAX_TOKENS: usize = 10_000;

/// The token cache.
#[derive(Debug)]
pub struct TokenCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Request, Instant)>>,
}

/// The cache is full of unexpired tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheFull;

impl TokenCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Request, Instant)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Parks `req` and returns its token: 32 random bytes, base64url.
    pub fn insert(&self, req: Request) -> Result<String, CacheFull> {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).expect("the OS random source works");
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.len() >= MAX_TOKENS {
            entries.retain(|_, (_, deadline)| *deadline > now);
            if entries.len() >= MAX_TOKENS {
                return Err(CacheFull);
            }
        }
        // A configured ttl of u64::MAX seconds must not panic the insert.
        let deadline = now
            .checked_add(self.ttl)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600));
        entries.insert(token.clone(), (req, deadline));
        Ok(token)
    }

    /// Takes the request out; `None` if unknown, used or expired.
    pub fn consume(&self, token: &str) -> Option<Request> {
        let (req, deadline) = self.lock().remove(token)?;
        (Instant::now() < deadline).then_some(req)
    }

    /// Number of parked requests, expired ones included.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec() -> Request {
        Request::Exec(crius_proto::ExecRequest {
            container_id: "c1".into(),
            cmd: vec!["true".into()],
            ..Default::default()
        })
    }

    #[test]
    fn token_is_single_use() {
        let cache = TokenCache::new(Duration::from_secs(60));
        let t = cache.insert(exec()).unwrap();
        assert_eq!(cache.consume(&t), Some(exec()));
        assert_eq!(cache.consume(&t), None);
    }

    #[test]
    fn a_huge_ttl_does_not_panic() {
        let cache = TokenCache::new(Duration::from_secs(u64::MAX));
        let t = cache.insert(exec()).unwrap();
        assert_eq!(cache.consume(&t), Some(exec()));
    }

    #[test]
    fn token_expires() {
        let cache = TokenCache::new(Duration::from_millis(20));
        let t = cache.insert(exec()).unwrap();
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(cache.consume(&t), None);
        assert!(cache.is_empty());
    }

    #[test]
    fn tokens_are_unguessable_and_url_safe() {
        let cache = TokenCache::new(Duration::from_secs(60));
        let a = cache.insert(exec()).unwrap();
        let b = cache.insert(exec()).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43, "32 bytes in unpadded base64");
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(cache.consume("nope"), None);
    }

    #[test]
    fn full_cache_refuses_then_recovers_after_expiry() {
        let cache = TokenCache::new(Duration::from_millis(700));
        for _ in 0..MAX_TOKENS {
            cache.insert(exec()).unwrap();
        }
        assert_eq!(cache.insert(exec()), Err(CacheFull));
        std::thread::sleep(Duration::from_millis(800));
        assert!(cache.insert(exec()).is_ok());
        assert_eq!(cache.len(), 1);
    }
}
