//! Identifiers.

use std::fmt;

use rand::RngCore;

/// A node of the cluster (0 on a single node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u64);

/// A client session, unique across the cluster and across restarts (see [`SessionId::random`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl SessionId {
    /// A fresh id: 64 random bits from the OS-seeded CSPRNG, never 0 (0 means "no session" in
    /// router.proto).
    ///
    /// Ids must not repeat between nodes, not only within one: a route names its node, but
    /// modules compare the sessions of routes from any node with their own (the sender's
    /// other resources, who already took a stanza). Ids counted up from each node's start
    /// time were the same on two nodes started in the same millisecond, and a resource of an
    /// account then passed for another resource of it on another node. Random ids need no
    /// clock and no coordination: among a million live sessions, the chance that any two
    /// share an id is about 3 in 10^8.
    pub fn random() -> SessionId {
        loop {
            let id = rand::thread_rng().next_u64();
            if id != 0 {
                return SessionId(id);
            }
        }
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0)
    }
}

/// An unguessable identifier: `bytes` random bytes from the OS-seeded CSPRNG, base64url without
/// padding. Used for stream ids (RFC 6120 §4.7.3 requires them unique and unpredictable) and
/// server-generated resources.
pub fn random_id(bytes: usize) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut raw = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut raw);
    let mut out = String::with_capacity(bytes * 4 / 3 + 2);
    for chunk in raw.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_never_zero_and_do_not_repeat() {
        let ids: std::collections::HashSet<SessionId> =
            (0..100_000).map(|_| SessionId::random()).collect();
        assert_eq!(ids.len(), 100_000);
        assert!(!ids.contains(&SessionId(0)));
    }

    #[test]
    fn random_ids_are_distinct_and_url_safe() {
        let a = random_id(16);
        let b = random_id(16);
        assert_ne!(a, b);
        assert_eq!(a.len(), 22);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }
}
