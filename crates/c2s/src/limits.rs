//! Node-wide limits on connections that have not authenticated yet.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Counts unauthenticated connections, in total and per address.
#[derive(Debug)]
pub struct ConnectionLimits {
    max_total: usize,
    max_per_ip: usize,
    counts: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// Held while a connection is unauthenticated; dropping it releases the slot.
#[derive(Debug)]
pub struct UnauthSlot {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl ConnectionLimits {
    /// Limits of `max_total` node-wide and `max_per_ip` per address.
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_ip,
            counts: Mutex::new((0, HashMap::new())),
        })
    }

    /// Takes a slot for a new connection from `ip`, or `None` if a limit is reached.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<UnauthSlot> {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let per_ip = c.1.get(&ip).copied().unwrap_or(0);
        if c.0 >= self.max_total || per_ip >= self.max_per_ip {
            return None;
        }
        c.0 += 1;
        c.1.insert(ip, per_ip + 1);
        Some(UnauthSlot {
            limits: self.clone(),
            ip,
        })
    }

    /// Unauthenticated connections now.
    pub fn current(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).0
    }
}

impl Drop for UnauthSlot {
    fn drop(&mut self) {
        let mut c = self.limits.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.0 = c.0.saturating_sub(1);
        if let Some(n) = c.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.1.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_and_total_limits_hold_and_release() {
        let l = ConnectionLimits::new(3, 2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let s1 = l.try_acquire(a).unwrap();
        let _s2 = l.try_acquire(a).unwrap();
        assert!(l.try_acquire(a).is_none(), "per-ip limit");
        let _s3 = l.try_acquire(b).unwrap();
        assert!(l.try_acquire(b).is_none(), "total limit");
        drop(s1);
        assert!(l.try_acquire(a).is_some());
    }
}
