//! The sign-in limiter: how many recent failed sign-ins an address and a name have, in bounded
//! memory. Pure: the caller gives the time and does any waiting.
//!
//! - An address with [`MAX_FAILURES`] failures within [`FAILURE_WINDOW_MS`] is held off (HTTP
//!   429) until the oldest of them leaves the window, whatever name it sends. Failures from one
//!   address never hold off another. IPv6 addresses count by their /64 (one subscriber's
//!   network); a caller whose address is unknown (in-process tests) shares one key.
//! - A name with that many failures, from any addresses, is slowed, never refused: each further
//!   attempt waits [`FIRST_DELAY_MS`], doubling per failure up to [`MAX_DELAY_MS`]. So no one
//!   can lock a person out by failing with their name, and guessing one name stays slow.
//! - An attempt counts as a failure from the moment it is let through until it succeeds, so
//!   concurrent attempts from one address cannot slip past the count.
//! - At most [`MAX_ENTRIES`] entries in all (half addresses, half names), each keeping at most
//!   [`KEEP`] times: entries whose failures are all older than the window are dropped, and when
//!   a table is still full the entry that failed longest ago makes room.
//!
//! Names longer than a user name can be never reach the limiter (see `sign_in.rs`).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

/// Failed sign-ins within [`FAILURE_WINDOW_MS`] before an address is held off and a name slowed.
pub(crate) const MAX_FAILURES: usize = 5;
pub(crate) const FAILURE_WINDOW_MS: i64 = 5 * 60_000;
/// Entries in both tables together.
pub(crate) const MAX_ENTRIES: usize = 10_000;
/// Failure times kept per entry: enough to reach the longest delay.
const KEEP: usize = 16;
/// The first delay on a name that failed [`MAX_FAILURES`] times, and the longest.
const FIRST_DELAY_MS: u64 = 250;
const MAX_DELAY_MS: u64 = 4_000;
/// Expired entries are swept at most this often (and whenever a table is full).
const SWEEP_EVERY_MS: i64 = 30_000;

/// Where an attempt comes from, as the limiter counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Origin {
    Unknown,
    V4(u32),
    /// The first 64 bits of an IPv6 address.
    V6(u64),
}

impl Origin {
    pub(crate) fn of(address: Option<IpAddr>) -> Origin {
        match address.map(|a| a.to_canonical()) {
            None => Origin::Unknown,
            Some(IpAddr::V4(v4)) => Origin::V4(u32::from(v4)),
            Some(IpAddr::V6(v6)) => Origin::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

/// Failure times, oldest first, all within the window as of the last look.
#[derive(Debug, Default)]
struct Failures(VecDeque<i64>);

impl Failures {
    fn forget_before(&mut self, now: i64) {
        while self.0.front().is_some_and(|t| now - t >= FAILURE_WINDOW_MS) {
            self.0.pop_front();
        }
    }

    fn push(&mut self, now: i64) {
        if self.0.len() == KEEP {
            self.0.pop_front();
        }
        self.0.push_back(now);
    }

    fn newest(&self) -> i64 {
        self.0.back().copied().unwrap_or(i64::MIN)
    }
}

#[derive(Debug, Default)]
struct Tables {
    by_origin: HashMap<Origin, Failures>,
    by_name: HashMap<String, Failures>,
    swept_at_ms: i64,
}

/// What the limiter says about an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Go ahead after this delay (zero unless the name has failed often lately); the attempt
    /// counts as a failure until [`Limiter::succeeded`] is called.
    Proceed { delay: Duration, at_ms: i64 },
    /// The address is held off for this many seconds more.
    HeldOff { seconds: u64 },
}

#[derive(Debug, Default)]
pub(crate) struct Limiter {
    tables: Mutex<Tables>,
}

/// Room for one more key in `table`, which holds at most `cap` entries: expired entries go
/// first, then the one whose newest failure is oldest.
fn make_room<K: Clone + Eq + std::hash::Hash>(
    table: &mut HashMap<K, Failures>,
    cap: usize,
    now: i64,
) {
    if table.len() < cap {
        return;
    }
    table.retain(|_, f| {
        f.forget_before(now);
        !f.0.is_empty()
    });
    while table.len() >= cap {
        let Some(oldest) = table
            .iter()
            .min_by_key(|(_, f)| f.newest())
            .map(|(k, _)| k.clone())
        else {
            return;
        };
        table.remove(&oldest);
    }
}

impl Limiter {
    /// Checks an attempt from `origin` for `name` at `now` and, unless the address is held off,
    /// counts it as a failure until it succeeds.
    pub(crate) fn attempt(&self, origin: Origin, name: &str, now: i64) -> Verdict {
        let mut guard = self.lock();
        let tables = &mut *guard;
        if now - tables.swept_at_ms >= SWEEP_EVERY_MS || now < tables.swept_at_ms {
            for f in tables.by_origin.values_mut() {
                f.forget_before(now);
            }
            tables.by_origin.retain(|_, f| !f.0.is_empty());
            for f in tables.by_name.values_mut() {
                f.forget_before(now);
            }
            tables.by_name.retain(|_, f| !f.0.is_empty());
            tables.swept_at_ms = now;
        }
        if let Some(failures) = tables.by_origin.get_mut(&origin) {
            failures.forget_before(now);
            if failures.0.len() >= MAX_FAILURES {
                let oldest = failures.0[failures.0.len() - MAX_FAILURES];
                let left_ms = FAILURE_WINDOW_MS - (now - oldest);
                return Verdict::HeldOff {
                    seconds: (left_ms.max(0) as u64).div_ceil(1000).max(1),
                };
            }
        }
        if !tables.by_origin.contains_key(&origin) {
            make_room(&mut tables.by_origin, MAX_ENTRIES / 2, now);
        }
        tables.by_origin.entry(origin).or_default().push(now);
        if !tables.by_name.contains_key(name) {
            make_room(&mut tables.by_name, MAX_ENTRIES / 2, now);
        }
        let by_name = tables.by_name.entry(name.to_owned()).or_default();
        by_name.forget_before(now);
        // Earlier failures on this name, not counting this attempt.
        let earlier = by_name.0.len();
        by_name.push(now);
        let delay = match earlier.checked_sub(MAX_FAILURES) {
            None => Duration::ZERO,
            Some(extra) => Duration::from_millis(
                FIRST_DELAY_MS
                    .saturating_mul(1 << extra.min(16))
                    .min(MAX_DELAY_MS),
            ),
        };
        Verdict::Proceed { delay, at_ms: now }
    }

    /// The attempt let through at `at_ms` succeeded: it is no failure of its address, and the
    /// name's count starts again.
    pub(crate) fn succeeded(&self, origin: Origin, name: &str, at_ms: i64) {
        let mut tables = self.lock();
        if let Some(failures) = tables.by_origin.get_mut(&origin) {
            if let Some(i) = failures.0.iter().rposition(|t| *t == at_ms) {
                failures.0.remove(i);
            }
            if failures.0.is_empty() {
                tables.by_origin.remove(&origin);
            }
        }
        tables.by_name.remove(name);
    }

    /// Entries held, addresses and names together (at most [`MAX_ENTRIES`]).
    pub(crate) fn entries(&self) -> usize {
        let tables = self.lock();
        tables.by_origin.len() + tables.by_name.len()
    }

    /// The tables; a panic elsewhere while they were held leaves them consistent enough to
    /// go on counting (every change is a push, a pop or a removal).
    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const NOW: i64 = 1_780_243_200_000;

    fn ip(i: u32) -> Origin {
        Origin::of(Some(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))))
    }

    fn delay(v: Verdict) -> Duration {
        match v {
            Verdict::Proceed { delay, .. } => delay,
            Verdict::HeldOff { seconds } => panic!("held off for {seconds} s"),
        }
    }

    /// Issue 20: every failed sign-in added an entry keyed by the name and nothing removed it,
    /// so a flood of distinct names (each request up to the body limit) grew memory without end.
    #[test]
    fn a_flood_of_distinct_names_and_addresses_stays_under_the_cap() {
        let limiter = Limiter::default();
        for i in 0..25_000u32 {
            let name = format!("{i:0>64}");
            let _ = limiter.attempt(ip(i), &name, NOW + i64::from(i));
            assert!(limiter.entries() <= MAX_ENTRIES);
        }
        let entries = limiter.entries();
        assert!(
            entries <= MAX_ENTRIES,
            "{entries} entries after 25000 failures"
        );
        // The newest survive the eviction: the last address still counts its failure.
        let tables = limiter.tables.lock().unwrap();
        assert!(tables.by_origin.contains_key(&ip(24_999)));
        assert!(!tables.by_origin.contains_key(&ip(0)));
    }

    #[test]
    fn old_failures_expire_and_their_entries_go() {
        let limiter = Limiter::default();
        for i in 0..100 {
            let _ = limiter.attempt(ip(i), &format!("user-{i}"), NOW);
        }
        assert_eq!(limiter.entries(), 200);
        let _ = limiter.attempt(ip(1_000), "late", NOW + FAILURE_WINDOW_MS + SWEEP_EVERY_MS);
        assert_eq!(limiter.entries(), 2);
    }

    #[test]
    fn an_address_is_held_off_until_its_oldest_failure_leaves_the_window() {
        let limiter = Limiter::default();
        for i in 0..5 {
            assert_eq!(
                delay(limiter.attempt(ip(1), &format!("n{i}"), NOW + i64::from(i) * 1000)),
                Duration::ZERO
            );
        }
        assert_eq!(
            limiter.attempt(ip(1), "other", NOW + 10_000),
            Verdict::HeldOff { seconds: 290 }
        );
        // Held-off attempts do not count: the address is free once the window has passed.
        assert!(matches!(
            limiter.attempt(ip(1), "other", NOW + FAILURE_WINDOW_MS + 4_000),
            Verdict::Proceed { .. }
        ));
        assert!(matches!(
            limiter.attempt(ip(2), "n0", NOW + 10_000),
            Verdict::Proceed { .. }
        ));
    }

    #[test]
    fn a_name_that_fails_often_is_slowed_more_each_time_never_refused() {
        let limiter = Limiter::default();
        let delays: Vec<u128> = (0..14)
            .map(|i| delay(limiter.attempt(ip(i), "alice", NOW + i64::from(i))).as_millis())
            .collect();
        assert_eq!(
            delays,
            [
                0, 0, 0, 0, 0, 250, 500, 1000, 2000, 4000, 4000, 4000, 4000, 4000
            ]
        );
        // A success starts the name's count again and is no failure of its address.
        limiter.succeeded(ip(20), "alice", NOW + 20);
        let at = match limiter.attempt(ip(20), "alice", NOW + 21) {
            Verdict::Proceed { delay, at_ms } => {
                assert_eq!(delay, Duration::ZERO);
                at_ms
            }
            held => panic!("{held:?}"),
        };
        limiter.succeeded(ip(20), "alice", at);
        assert!(
            !limiter
                .tables
                .lock()
                .unwrap()
                .by_origin
                .contains_key(&ip(20))
        );
    }

    #[test]
    fn concurrent_attempts_from_one_address_count_before_they_finish() {
        let limiter = Limiter::default();
        let verdicts: Vec<Verdict> = (0..8).map(|_| limiter.attempt(ip(3), "bob", NOW)).collect();
        let let_through = verdicts
            .iter()
            .filter(|v| matches!(v, Verdict::Proceed { .. }))
            .count();
        assert_eq!(let_through, MAX_FAILURES);
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_bit_network() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Origin::of(Some(a)), Origin::of(Some(b)));
        assert_ne!(Origin::of(Some(a)), Origin::of(Some(c)));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(Origin::of(Some(mapped)), ip(1));
        assert_eq!(Origin::of(None), Origin::Unknown);
    }
}
