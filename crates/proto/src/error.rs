//! The errors a cluster call can end with, and the ONE place they become [`tonic::Status`] and
//! come back from it. Servers return `Err(ClusterError::….into())`; clients match on
//! `ClusterError::from(status)`.
//!
//! | variant | gRPC code | retry? |
//! |---|---|---|
//! | `AlreadyExists` | `ALREADY_EXISTS` | no |
//! | `Draining` | `UNAVAILABLE` + `corvid-error: draining` | yes, on another node |
//! | `Internal` | `INTERNAL` (and codes Corvid never sends) | no |
//! | `Invalid` | `INVALID_ARGUMENT` | no: the caller sent a bad request |
//! | `NotFound` | `NOT_FOUND` | no |
//! | `NotLeader` | `FAILED_PRECONDITION` + `corvid-leader: host:port` | yes, at the leader |
//! | `Overloaded` | `RESOURCE_EXHAUSTED` | yes, later |
//! | `Timeout` | `DEADLINE_EXCEEDED` | yes |
//! | `Unavailable` | `UNAVAILABLE`, `CANCELLED` | yes |

use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

use crate::Malformed;

/// Metadata key that tells apart errors sharing a gRPC code.
const ERROR_KEY: &str = "corvid-error";
/// Metadata key carrying the Raft leader's address with [`ClusterError::NotLeader`].
const LEADER_KEY: &str = "corvid-leader";
/// The [`ERROR_KEY`] value of [`ClusterError::Draining`].
const DRAINING: &str = "draining";

/// What went wrong in a call between cluster nodes, classified by what the caller should do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// The thing to create exists already (a registry node id in use).
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The node is draining and takes no new work; go to another node.
    #[error("node is draining")]
    Draining,
    /// A bug or a local failure on the answering node (or a status Corvid never sends).
    #[error("internal error: {0}")]
    Internal(String),
    /// The caller sent a request the answering node refuses (see [`Malformed`]).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The thing named does not exist (an unknown node id).
    #[error("not found: {0}")]
    NotFound(String),
    /// Only the Raft leader can do this; `leader` is its address when the node knows it.
    #[error("not the leader (leader: {})", leader.as_deref().unwrap_or("unknown"))]
    NotLeader {
        /// The leader's `host:port`, when known.
        leader: Option<String>,
    },
    /// The answering node has no room for more work right now.
    #[error("overloaded")]
    Overloaded,
    /// The call did not finish in time.
    #[error("timed out")]
    Timeout,
    /// The peer could not be reached, went away, or cancelled the call.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl ClusterError {
    /// Whether trying again (later, at another node, or at the leader) can succeed. The others
    /// are the caller's fault or a bug: repeating the same call fails the same way.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Draining
            | Self::NotLeader { .. }
            | Self::Overloaded
            | Self::Timeout
            | Self::Unavailable(_) => true,
            Self::AlreadyExists(_) | Self::Internal(_) | Self::Invalid(_) | Self::NotFound(_) => {
                false
            }
        }
    }
}

impl From<Malformed> for ClusterError {
    fn from(m: Malformed) -> Self {
        Self::Invalid(m.to_string())
    }
}

impl From<ClusterError> for Status {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::AlreadyExists(what) => Status::already_exists(what),
            ClusterError::Draining => {
                let mut status = Status::unavailable("node is draining");
                status
                    .metadata_mut()
                    .insert(ERROR_KEY, MetadataValue::from_static(DRAINING));
                status
            }
            ClusterError::Internal(what) => Status::internal(what),
            ClusterError::Invalid(what) => Status::invalid_argument(what),
            ClusterError::NotFound(what) => Status::not_found(what),
            ClusterError::NotLeader { leader } => {
                let mut status = Status::failed_precondition("not the leader");
                // An address that is not valid metadata (not visible ASCII) is left out rather
                // than failing the answer: the caller can still look the leader up.
                if let Some(value) = leader.and_then(|l| MetadataValue::try_from(l).ok()) {
                    status.metadata_mut().insert(LEADER_KEY, value);
                }
                status
            }
            ClusterError::Overloaded => Status::resource_exhausted("overloaded"),
            ClusterError::Timeout => Status::deadline_exceeded("timed out"),
            ClusterError::Unavailable(what) => Status::unavailable(what),
        }
    }
}

impl From<Status> for ClusterError {
    fn from(status: Status) -> Self {
        let meta = |key| {
            status
                .metadata()
                .get(key)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let message = status.message().to_owned();
        match status.code() {
            Code::AlreadyExists => Self::AlreadyExists(message),
            Code::Cancelled | Code::Unavailable => {
                if meta(ERROR_KEY).as_deref() == Some(DRAINING) {
                    Self::Draining
                } else {
                    Self::Unavailable(message)
                }
            }
            Code::DeadlineExceeded => Self::Timeout,
            Code::FailedPrecondition => Self::NotLeader {
                leader: meta(LEADER_KEY),
            },
            Code::InvalidArgument => Self::Invalid(message),
            Code::NotFound => Self::NotFound(message),
            Code::ResourceExhausted => Self::Overloaded,
            Code::Internal => Self::Internal(message),
            // Codes Corvid never sends: a bug, a version mismatch (UNIMPLEMENTED) or a proxy.
            // Keep the code in the text so the log says what happened.
            code => Self::Internal(format!("{code:?}: {message}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_variant() -> Vec<ClusterError> {
        vec![
            ClusterError::AlreadyExists("node 3".into()),
            ClusterError::Draining,
            ClusterError::Internal("disk on fire".into()),
            ClusterError::Invalid("`to` is not UTF-8".into()),
            ClusterError::NotFound("node 9".into()),
            ClusterError::NotLeader {
                leader: Some("10.0.0.2:7000".into()),
            },
            ClusterError::NotLeader { leader: None },
            ClusterError::Overloaded,
            ClusterError::Timeout,
            ClusterError::Unavailable("connection reset".into()),
        ]
    }

    #[test]
    fn every_error_survives_the_trip_through_a_status() {
        for e in every_variant() {
            let back = ClusterError::from(Status::from(e.clone()));
            assert_eq!(back, e);
        }
    }

    #[test]
    fn errors_map_to_the_documented_codes() {
        let codes: Vec<Code> = every_variant()
            .into_iter()
            .map(|e| Status::from(e).code())
            .collect();
        assert_eq!(
            codes,
            [
                Code::AlreadyExists,
                Code::Unavailable,
                Code::Internal,
                Code::InvalidArgument,
                Code::NotFound,
                Code::FailedPrecondition,
                Code::FailedPrecondition,
                Code::ResourceExhausted,
                Code::DeadlineExceeded,
                Code::Unavailable,
            ]
        );
    }

    #[test]
    fn a_leader_address_that_is_not_metadata_is_dropped_not_a_panic() {
        let status = Status::from(ClusterError::NotLeader {
            leader: Some("bad\nhost:1".into()),
        });
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(
            ClusterError::from(status),
            ClusterError::NotLeader { leader: None }
        );
    }

    #[test]
    fn malformed_input_is_an_invalid_argument_with_its_reason() {
        let status = Status::from(ClusterError::from(Malformed::NotUtf8 { field: "to" }));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "`to` is not UTF-8");
    }

    #[test]
    fn codes_corvid_never_sends_become_internal_errors_naming_the_code() {
        assert_eq!(
            ClusterError::from(Status::unimplemented("no such method")),
            ClusterError::Internal("Unimplemented: no such method".into())
        );
        assert_eq!(
            ClusterError::from(Status::cancelled("gone")),
            ClusterError::Unavailable("gone".into())
        );
    }

    #[test]
    fn only_errors_that_can_go_away_are_retryable() {
        let retryable: Vec<bool> = every_variant()
            .iter()
            .map(ClusterError::is_retryable)
            .collect();
        assert_eq!(
            retryable,
            [false, true, false, false, false, true, true, true, true, true]
        );
    }
}
