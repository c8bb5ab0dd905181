//! Identifiers.

use std::fmt;

use rand::RngCore;

/// A node of the cluster (0 on a single node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u64);

/// A client session, unique within its node across restarts (see [`SessionId::first_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl SessionId {
    /// Low bits of a session id counted within one incarnation of a node: a node may hand out
    /// 2^20 (about a million) sessions per millisecond of its lifetime before its ids could
    /// reach those of a later start.
    pub const INCARNATION_SHIFT: u32 = 20;

    /// The first session id of a node started at `start_ms` (milliseconds since the Unix epoch):
    /// the start time in the high bits, a counter from 1 in the low bits. A restarted node
    /// therefore never reuses an id of its previous run (whose routes may still be in the
    /// cluster's table until its lease runs out), as long as its clock moved forward between
    /// the two starts and the previous run created fewer than 2^20 sessions per millisecond it
    /// lived. Times past 2^44 ms (year 2527) wrap into the low bits' range, still never 0.
    pub fn first_at(start_ms: u64) -> SessionId {
        let incarnation = start_ms & ((1 << (64 - Self::INCARNATION_SHIFT)) - 1);
        SessionId((incarnation << Self::INCARNATION_SHIFT) | 1)
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
    fn a_restarted_node_starts_above_every_id_of_its_previous_run() {
        let first_start = 1_750_000_000_000; // ms since the epoch, in 2025
        let first = SessionId::first_at(first_start);
        assert_ne!(first.0, 0, "0 means \"no session\" in router.proto");
        // The previous run lived 1 ms and handed out 2^20 - 1 more sessions: the most it may.
        let last_of_previous = first.0 + (1 << SessionId::INCARNATION_SHIFT) - 2;
        let restarted = SessionId::first_at(first_start + 1);
        assert!(restarted.0 > last_of_previous);
        // A node restarted a minute later starts far above.
        assert!(SessionId::first_at(first_start + 60_000).0 > first.0 + (60_000 << 20) - 1);
        // Start times are kept exactly: two starts a millisecond apart never share an id range.
        assert_eq!(restarted.0 - first.0, 1 << SessionId::INCARNATION_SHIFT);
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
