//! The connections every handle of one [`crate::RedisStore`] shares: a few reconnecting
//! multiplexed connections, a deadline on every operation, the mapping of Redis errors to
//! [`StoreError`], and one log line per outage.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use corvid_storage::{StoreError, StoreResult};
use redis::aio::ConnectionManager;
use redis::{ErrorKind, RedisError};

use crate::keys::Keys;

/// Shared state of one store.
pub(crate) struct Shared {
    /// The connections, used in turn.
    managers: Vec<ConnectionManager>,
    /// Which connection the next operation takes.
    next: AtomicUsize,
    /// Deadline of one operation (all of its round trips).
    command_timeout: Duration,
    /// Set while Redis is failing, so an outage is logged once, not per command.
    down: AtomicBool,
    /// The URL without its password, for logs.
    url: String,
    /// Key names.
    pub(crate) keys: Keys,
}

impl Shared {
    /// State over `managers` (at least one).
    pub(crate) fn new(
        managers: Vec<ConnectionManager>,
        command_timeout: Duration,
        url: String,
        keys: Keys,
    ) -> Self {
        Self {
            managers,
            next: AtomicUsize::new(0),
            command_timeout,
            down: AtomicBool::new(false),
            url,
            keys,
        }
    }

    /// Runs `op` on one of the connections within the command timeout. A Redis error or the
    /// deadline becomes [`StoreError::Unavailable`] (noting an outage); anything else the
    /// operation returns, including `Corrupt` and definite answers, means Redis answered.
    pub(crate) async fn run<T, F, Fut>(&self, what: &'static str, op: F) -> StoreResult<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, OpError>>,
    {
        let conn = self.connection();
        let result = match tokio::time::timeout(self.command_timeout, op(conn)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(OpError::Store(e))) => Err(e),
            Ok(Err(OpError::Redis(e))) => Err(classify(what, &e)),
            Err(_) => Err(StoreError::Unavailable(format!(
                "redis {what}: no answer within {} ms",
                self.command_timeout.as_millis()
            ))),
        };
        match &result {
            Err(StoreError::Unavailable(why)) => self.note_failure(why),
            _ => self.note_success(),
        }
        result
    }

    /// The deadline of one operation.
    pub(crate) fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    /// The next connection, round robin. Cloning a manager is cheap (it is an `Arc`).
    pub(crate) fn connection(&self) -> ConnectionManager {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.managers.len();
        // `new` is only ever given a non-empty list; index modulo its length is in range.
        self.managers[i].clone()
    }

    fn note_failure(&self, why: &str) {
        if !self.down.swap(true, Ordering::AcqRel) {
            tracing::warn!(what = "redis-unavailable", url = %self.url, error = %why, "Redis cannot be reached; store operations fail until it is back");
        }
    }

    fn note_success(&self) {
        if self.down.swap(false, Ordering::AcqRel) {
            tracing::info!(what = "redis-recovered", url = %self.url, "Redis answers again");
        }
    }
}

/// Why an operation failed, before classification.
pub(crate) enum OpError {
    /// Redis (or the connection to it) failed.
    Redis(RedisError),
    /// A definite answer or a decoding failure.
    Store(StoreError),
}

impl From<RedisError> for OpError {
    fn from(e: RedisError) -> Self {
        Self::Redis(e)
    }
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// A reply of an unexpected shape, or a key holding the wrong type, is data this layout did not
/// write: `Corrupt`. Everything else (I/O, timeouts, refused connections, loading, read-only
/// replicas, out of memory, …) is `Unavailable`: nothing was changed, or at least nothing the
/// caller can see, and trying later may work.
pub(crate) fn classify(what: &str, e: &RedisError) -> StoreError {
    let wrong_type = e.code() == Some("WRONGTYPE");
    match e.kind() {
        ErrorKind::TypeError | ErrorKind::ParseError => {
            StoreError::Corrupt(format!("redis {what}: unexpected reply: {e}"))
        }
        _ if wrong_type => StoreError::Corrupt(format!("redis {what}: {e}")),
        _ => StoreError::Unavailable(format!("redis {what}: {e}")),
    }
}

/// `url` with any password replaced by `***`, for logs and error messages.
pub(crate) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let authority_end = url[scheme_end..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| scheme_end + i);
    let authority = &url[scheme_end..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    let redacted = match userinfo.find(':') {
        Some(colon) => format!("{}:***", &userinfo[..colon]),
        // `redis://password@host` is not how the redis crate reads a password, but never
        // print what could be one.
        None if !userinfo.is_empty() => "***".to_owned(),
        None => String::new(),
    };
    format!(
        "{}{redacted}{}",
        &url[..scheme_end],
        &url[scheme_end + at..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_passwords_only() {
        assert_eq!(
            redact("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(
            redact("rediss://corvid:s3cr@t@redis.example:6380/1"),
            "rediss://corvid:***@redis.example:6380/1"
        );
        assert_eq!(
            redact("redis://:only-pass@h/0"),
            "redis://:***@h/0",
            "password without a user"
        );
        assert_eq!(redact("redis://secret@h"), "redis://***@h");
        assert_eq!(redact("redis://h/0?x=a@b"), "redis://h/0?x=a@b");
        assert_eq!(redact("not a url"), "not a url");
    }

    #[test]
    fn io_errors_are_unavailable_and_type_errors_corrupt() {
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(
            matches!(classify("get", &io), StoreError::Unavailable(m) if m.starts_with("redis get: "))
        );
        let parse = RedisError::from((ErrorKind::TypeError, "not a number"));
        assert!(matches!(classify("get", &parse), StoreError::Corrupt(_)));
        let loading = RedisError::from((ErrorKind::BusyLoadingError, "loading"));
        assert!(matches!(
            classify("get", &loading),
            StoreError::Unavailable(_)
        ));
    }
}
