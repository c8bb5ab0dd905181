//! Accounting of what each pair sent and received: lost, duplicated and bounced messages, and,
//! when an edge was killed during the run, in which phase each lost message was sent.

use serde_json::{json, Map, Value};

/// The phase of a run in which a message was sent, relative to the kill of an edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Sent before the kill (or in a run without one).
    BeforeKill,
    /// Sent after the kill and before the pair's receiver was logged in again.
    DuringOutage,
    /// Sent once the pair's receiver was logged in again.
    AfterRelogin,
}

impl Phase {
    /// The phase of a message sent at `sent_us` (µs since the run's start), for a kill at
    /// `kill_us` and the receiver's new login at `relogin_us` (`None`: never logged in again,
    /// so the outage lasted to the end).
    pub fn of(sent_us: u64, kill_us: Option<u64>, relogin_us: Option<u64>) -> Phase {
        match kill_us {
            Some(k) if sent_us >= k => match relogin_us {
                Some(r) if sent_us >= r => Phase::AfterRelogin,
                _ => Phase::DuringOutage,
            },
            _ => Phase::BeforeKill,
        }
    }
}

/// What happened to one pair's messages, collected by its sender and its receiver.
#[derive(Debug, Default, Clone)]
pub struct PairRecord {
    /// Messages sent (sequence numbers `0..sent`).
    pub sent: u64,
    /// The send time of each sequence number (µs since the run's start); recorded only when an
    /// edge is killed, since only the phases need it.
    pub sent_us: Vec<u64>,
    /// How many times each sequence number arrived (index = sequence number).
    pub arrivals: Vec<u32>,
    /// Arrivals of sequence numbers too large to record (see [`Arrivals::record`]).
    pub out_of_range: u64,
    /// Sequence numbers the server bounced back to the sender as errors.
    pub bounced: Vec<u64>,
    /// When the receiver was logged in again after the kill (µs since the run's start).
    pub relogin_us: Option<u64>,
}

/// Counts per phase.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ByPhase {
    /// Sent before the kill.
    pub before_kill: u64,
    /// Sent during the receiver's outage.
    pub during_outage: u64,
    /// Sent after the receiver's new login.
    pub after_relogin: u64,
}

impl ByPhase {
    fn add(&mut self, phase: Phase) {
        match phase {
            Phase::BeforeKill => self.before_kill += 1,
            Phase::DuringOutage => self.during_outage += 1,
            Phase::AfterRelogin => self.after_relogin += 1,
        }
    }

    /// As a JSON object.
    pub fn to_json(self) -> Value {
        json!({
            "before_kill": self.before_kill,
            "during_outage": self.during_outage,
            "after_relogin": self.after_relogin,
        })
    }
}

/// The totals over every pair.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Messages sent.
    pub sent: u64,
    /// Distinct messages received.
    pub received: u64,
    /// Messages sent and never received.
    pub lost: u64,
    /// Arrivals of a message beyond its first.
    pub duplicates: u64,
    /// Messages the server bounced to their sender.
    pub bounced: u64,
    /// Arrivals of sequence numbers never sent (a server inventing or corrupting messages).
    pub unexpected: u64,
    /// Lost messages by the phase they were sent in.
    pub lost_by_phase: ByPhase,
    /// Bounced messages by the phase they were sent in.
    pub bounced_by_phase: ByPhase,
}

impl Tally {
    /// Adds up `pairs` for a run whose edge was killed at `kill_us` (`None`: no kill; every
    /// message is then in [`Phase::BeforeKill`]).
    pub fn of(pairs: &[PairRecord], kill_us: Option<u64>) -> Tally {
        let mut t = Tally::default();
        for p in pairs {
            t.sent += p.sent;
            t.unexpected += p.out_of_range;
            let phase = |seq: u64| {
                let sent_us = usize::try_from(seq)
                    .ok()
                    .and_then(|i| p.sent_us.get(i))
                    .copied()
                    .unwrap_or(0);
                Phase::of(sent_us, kill_us, p.relogin_us)
            };
            for (seq, &n) in p.arrivals.iter().enumerate() {
                if n == 0 {
                    continue;
                }
                if seq as u64 >= p.sent {
                    t.unexpected += u64::from(n);
                    continue;
                }
                t.received += 1;
                t.duplicates += u64::from(n - 1);
            }
            for seq in 0..p.sent {
                let arrived = usize::try_from(seq)
                    .ok()
                    .and_then(|i| p.arrivals.get(i))
                    .is_some_and(|&n| n > 0);
                if !arrived {
                    t.lost += 1;
                    t.lost_by_phase.add(phase(seq));
                }
            }
            for &seq in &p.bounced {
                t.bounced += 1;
                t.bounced_by_phase.add(phase(seq));
            }
        }
        t
    }

    /// Writes the counts into a result line; the phases only for a run with a kill.
    pub fn write(&self, with_phases: bool, out: &mut Map<String, Value>) {
        out.insert("sent".into(), json!(self.sent));
        out.insert("received".into(), json!(self.received));
        out.insert("lost".into(), json!(self.lost));
        out.insert("duplicates".into(), json!(self.duplicates));
        out.insert("bounced".into(), json!(self.bounced));
        out.insert("unexpected".into(), json!(self.unexpected));
        if with_phases {
            out.insert("lost_by_phase".into(), self.lost_by_phase.to_json());
            out.insert("bounced_by_phase".into(), self.bounced_by_phase.to_json());
        }
    }
}

/// Sequence numbers from this one on are not recorded one by one: no run sends that many
/// messages per pair, and a corrupted number must not make the record grow without bound.
const MAX_SEQ: u64 = 1 << 26;

/// Records arrivals of sequence numbers for one receiver.
#[derive(Debug, Default)]
pub struct Arrivals {
    counts: Vec<u32>,
    distinct: u64,
    out_of_range: u64,
}

impl Arrivals {
    /// Room for `n` sequence numbers.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            counts: Vec::with_capacity(n),
            ..Self::default()
        }
    }

    /// Records one arrival of `seq`; whether it is the first. A number of 2^26 or more is
    /// only counted (as unexpected: never sent).
    pub fn record(&mut self, seq: u64) -> bool {
        let Some(i) = usize::try_from(seq).ok().filter(|_| seq < MAX_SEQ) else {
            self.out_of_range += 1;
            return false;
        };
        if i >= self.counts.len() {
            self.counts.resize(i + 1, 0);
        }
        let first = self.counts[i] == 0;
        self.counts[i] = self.counts[i].saturating_add(1);
        if first {
            self.distinct += 1;
        }
        first
    }

    /// Distinct sequence numbers seen.
    pub fn distinct(&self) -> u64 {
        self.distinct
    }

    /// Moves the counts into `record` (`arrivals` and `out_of_range`).
    pub fn into_record(self, record: &mut PairRecord) {
        record.arrivals = self.counts;
        record.out_of_range = self.out_of_range;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn phases_split_at_the_kill_and_at_the_receivers_new_login() {
        assert_eq!(Phase::of(5, None, None), Phase::BeforeKill);
        assert_eq!(Phase::of(99, Some(100), Some(200)), Phase::BeforeKill);
        assert_eq!(Phase::of(100, Some(100), Some(200)), Phase::DuringOutage);
        assert_eq!(Phase::of(199, Some(100), Some(200)), Phase::DuringOutage);
        assert_eq!(Phase::of(200, Some(100), Some(200)), Phase::AfterRelogin);
        // A receiver that never came back: the outage lasts to the end.
        assert_eq!(Phase::of(10_000, Some(100), None), Phase::DuringOutage);
    }

    #[test]
    fn a_clean_run_has_nothing_lost_duplicated_or_unexpected() {
        let mut arrivals = Arrivals::default();
        for seq in [0, 2, 1, 3] {
            assert!(arrivals.record(seq));
        }
        let mut pair = PairRecord {
            sent: 4,
            ..PairRecord::default()
        };
        arrivals.into_record(&mut pair);
        let t = Tally::of(&[pair.clone(), pair], None);
        assert_eq!(
            t,
            Tally {
                sent: 8,
                received: 8,
                ..Tally::default()
            }
        );
    }

    #[test]
    fn lost_duplicated_and_bounced_messages_are_counted_by_the_phase_they_were_sent_in() {
        // Sent every 10 µs; the kill at 25 µs, the receiver back at 55 µs.
        let mut arrivals = Arrivals::default();
        // 0 and 1 arrived (1 twice), 2 lost in flight at the kill; 3 and 4 bounced during the
        // outage, 5 stored offline and delivered at the new login, 6 lost after it, 7 arrived.
        for seq in [0, 1, 1, 5, 7] {
            arrivals.record(seq);
        }
        assert_eq!(arrivals.distinct(), 4);
        let mut pair = PairRecord {
            sent: 8,
            sent_us: (0..8).map(|s| s * 10).collect(),
            bounced: vec![3, 4],
            relogin_us: Some(55),
            ..PairRecord::default()
        };
        arrivals.into_record(&mut pair);
        let t = Tally::of(&[pair], Some(25));
        assert_eq!(t.sent, 8);
        assert_eq!(t.received, 4);
        assert_eq!(t.duplicates, 1);
        assert_eq!(t.lost, 4);
        assert_eq!(
            t.lost_by_phase,
            ByPhase {
                before_kill: 1,
                during_outage: 2,
                after_relogin: 1
            },
            "2 (sent at 20 µs) before the kill at 25 µs; 3 and 4 during the outage; 6 after"
        );
        assert_eq!(
            t.bounced_by_phase,
            ByPhase {
                before_kill: 0,
                during_outage: 2,
                after_relogin: 0
            }
        );
        assert_eq!(t.bounced, 2);
    }

    #[test]
    fn arrivals_of_numbers_never_sent_are_unexpected_not_received() {
        let mut arrivals = Arrivals::default();
        arrivals.record(0);
        arrivals.record(9);
        // Too large to record one by one, counted all the same.
        assert!(!arrivals.record(u64::MAX));
        let mut pair = PairRecord {
            sent: 1,
            ..PairRecord::default()
        };
        arrivals.into_record(&mut pair);
        assert!(pair.arrivals.len() <= 10);
        let t = Tally::of(&[pair], None);
        assert_eq!((t.received, t.unexpected, t.lost), (1, 2, 0));
        let mut out = Map::new();
        t.write(false, &mut out);
        assert_eq!(out["unexpected"], 2);
        assert!(!out.contains_key("lost_by_phase"));
    }
}
