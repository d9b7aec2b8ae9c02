//! Counting what each client IP holds at once (open connections, refusals
//! being answered), so that one address cannot take the slots a whole port
//! shares.
//!
//! An address is kept only while it holds something: the count is removed
//! when its last [`IpPermit`] is dropped, so the map never holds more
//! entries than there are open connections, whatever a flood of addresses
//! does.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;

/// Holdings per client IP, each at most `limit` (0: no limit).
#[derive(Debug)]
pub struct PerIp {
    limit: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// One thing held by one IP; freed when dropped.
#[derive(Debug)]
pub struct IpPermit {
    owner: Option<(Arc<PerIp>, IpAddr)>,
}

impl PerIp {
    /// At most `limit` per IP (0: any number, and nothing is counted).
    pub fn new(limit: usize) -> Arc<PerIp> {
        Arc::new(PerIp { limit, counts: Mutex::new(HashMap::new()) })
    }

    /// The limit per IP (0: none).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// A permit for `ip`, or `None` when it holds `limit` already.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<IpPermit> {
        if self.limit == 0 {
            return Some(IpPermit { owner: None });
        }
        let mut counts = self.counts.lock();
        let held = counts.entry(ip).or_insert(0);
        if *held >= self.limit {
            return None;
        }
        *held += 1;
        Some(IpPermit { owner: Some((self.clone(), ip)) })
    }

    /// What `ip` holds now.
    pub fn held(&self, ip: IpAddr) -> usize {
        self.counts.lock().get(&ip).copied().unwrap_or(0)
    }

    /// How many addresses hold something now.
    pub fn addresses(&self) -> usize {
        self.counts.lock().len()
    }

    fn release(&self, ip: IpAddr) {
        let mut counts = self.counts.lock();
        if let Some(held) = counts.get_mut(&ip) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                counts.remove(&ip);
            }
        }
    }
}

impl Drop for IpPermit {
    fn drop(&mut self) {
        if let Some((owner, ip)) = self.owner.take() {
            owner.release(ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn each_address_gets_its_limit_and_is_forgotten_when_it_holds_nothing() {
        let per_ip = PerIp::new(2);
        let a1 = per_ip.acquire(ip(1)).expect("first");
        let a2 = per_ip.acquire(ip(1)).expect("second");
        assert!(per_ip.acquire(ip(1)).is_none(), "a third from the same address is refused");
        let b = per_ip.acquire(ip(2)).expect("another address has its own share");
        assert_eq!((per_ip.held(ip(1)), per_ip.held(ip(2)), per_ip.addresses()), (2, 1, 2));
        drop(a1);
        let a3 = per_ip.acquire(ip(1)).expect("a freed place is given again");
        drop((a2, a3, b));
        assert_eq!(per_ip.addresses(), 0, "addresses holding nothing are not kept");
    }

    #[test]
    fn zero_is_no_limit_and_counts_nothing() {
        let per_ip = PerIp::new(0);
        let permits: Vec<IpPermit> = (0..100).map(|_| per_ip.acquire(ip(1)).expect("unlimited")).collect();
        assert_eq!(per_ip.addresses(), 0);
        drop(permits);
    }
}
