//! Time as the store sees it: whole nanoseconds since the Unix epoch, as Python's `time.time()`
//! counts them, so deadlines agree with `LocMemCache`'s (which compares `time.time()` floats).
//!
//! The store never reads a clock behind the caller's back: every operation is handed a [`Now`],
//! which either holds a time fixed by the caller (tests, or a clock read from Python before the lock
//! is taken) or reads the system clock at most once, and only if an entry with a deadline is met.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

/// An instant, in nanoseconds since the Unix epoch. [`Timestamp::NEVER`] is later than every clock
/// reading, so an entry whose deadline is `NEVER` never expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

const NANOS_PER_SEC: f64 = 1e9;

impl Timestamp {
    /// The deadline of an entry that never expires.
    pub const NEVER: Self = Self(u64::MAX);

    pub const fn from_nanos(nanos: u64) -> Self {
        Self(nanos)
    }

    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Seconds since the epoch as a float, as `time.time()` gives them. NaN counts as the epoch.
    pub fn from_secs_f64(secs: f64) -> Self {
        // `as` saturates: negative and NaN become 0, +inf becomes u64::MAX.
        Self((secs * NANOS_PER_SEC) as u64)
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / NANOS_PER_SEC
    }

    /// The instant `secs` seconds after this one, saturating at both ends.
    ///
    /// NaN and +inf give [`Timestamp::NEVER`]: `LocMemCache` stores `time.time() + nan`, which no
    /// comparison ever finds expired. A deadline too far away to represent (past the year 2554)
    /// also becomes `NEVER`.
    #[must_use]
    pub fn after_secs(self, secs: f64) -> Self {
        if secs.is_nan() {
            return Self::NEVER;
        }
        let delta = secs * NANOS_PER_SEC;
        if delta >= 0.0 {
            Self(self.0.saturating_add(delta as u64))
        } else {
            Self(self.0.saturating_sub((-delta) as u64))
        }
    }

    /// Whether an entry with this deadline is expired at `now`. Like `LocMemCache`, a deadline equal
    /// to the current time counts as expired (`exp <= time.time()`).
    pub fn has_passed(self, now: Self) -> bool {
        self.0 <= now.0
    }
}

/// The current time for one operation, read at most once.
///
/// A time given as float seconds (Python's `time.time()`) is kept as given, so deadlines are computed
/// as `LocMemCache` computes them (`time.time() + timeout` in floats) and agree with it to the
/// boundary.
#[derive(Debug)]
pub struct Now {
    fixed: Cell<Option<(Timestamp, f64)>>,
}

impl Now {
    /// A time chosen by the caller.
    pub fn at(ts: Timestamp) -> Self {
        Self {
            fixed: Cell::new(Some((ts, ts.as_secs_f64()))),
        }
    }

    /// A time given as float seconds since the epoch.
    pub fn at_secs(secs: f64) -> Self {
        Self {
            fixed: Cell::new(Some((Timestamp::from_secs_f64(secs), secs))),
        }
    }

    /// The system clock, read on first use. Reading it costs 20-60 ns, which most `get`s of entries
    /// without a deadline never pay.
    pub fn system() -> Self {
        Self { fixed: Cell::new(None) }
    }

    fn read(&self) -> (Timestamp, f64) {
        if let Some(both) = self.fixed.get() {
            return both;
        }
        let ts = system_time();
        let both = (ts, ts.as_secs_f64());
        self.fixed.set(Some(both));
        both
    }

    pub fn get(&self) -> Timestamp {
        self.read().0
    }

    pub fn secs(&self) -> f64 {
        self.read().1
    }
}

/// The system's wall clock. A clock set before 1970 reads as the epoch.
pub fn system_time() -> Timestamp {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    Timestamp(u64::try_from(nanos).unwrap_or(u64::MAX - 1))
}

/// How long an entry should live, as Django's `timeout` says it once `DEFAULT_TIMEOUT` is resolved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ttl {
    /// `timeout=None`: never expires.
    Forever,
    /// A number of seconds. Zero or less means the entry is expired as soon as it is written, as with
    /// `LocMemCache` (Django turns `timeout=0` into `-1`, ticket 21147).
    Seconds(f64),
}

impl Ttl {
    /// The deadline of an entry written at `now`, or `None` if it is dead on arrival.
    pub fn deadline(self, now: &Now) -> Option<Timestamp> {
        match self {
            Self::Forever => Some(Timestamp::NEVER),
            Self::Seconds(secs) if secs <= 0.0 => None,
            Self::Seconds(secs) if secs.is_nan() => Some(Timestamp::NEVER),
            Self::Seconds(secs) => {
                let at = now.get();
                // `time.time() + timeout` in floats, as LocMemCache computes it.
                let deadline = Timestamp::from_secs_f64(now.secs() + secs);
                // A timeout so small that it rounds to no time at all is dead on arrival, as
                // `exp <= time.time()` would find it.
                (deadline > at).then_some(deadline)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_saturate_and_nan_never_expires() {
        let t = Timestamp::from_nanos(1_000);
        assert_eq!(t.after_secs(f64::NAN), Timestamp::NEVER);
        assert_eq!(t.after_secs(f64::INFINITY), Timestamp::NEVER);
        assert_eq!(t.after_secs(1e18).as_nanos(), u64::MAX);
        assert_eq!(t.after_secs(-5.0).as_nanos(), 0);
        assert_eq!(t.after_secs(1e-6).as_nanos(), 2_000);
    }

    #[test]
    fn expiry_is_inclusive_like_locmem() {
        let t = Timestamp::from_nanos(10);
        assert!(t.has_passed(Timestamp::from_nanos(10)));
        assert!(!t.has_passed(Timestamp::from_nanos(9)));
        assert!(!Timestamp::NEVER.has_passed(Timestamp::from_nanos(u64::MAX - 1)));
    }

    #[test]
    fn ttl_deadlines() {
        let now = Now::at(Timestamp::from_nanos(5_000_000_000));
        assert_eq!(Ttl::Forever.deadline(&now), Some(Timestamp::NEVER));
        assert_eq!(Ttl::Seconds(0.0).deadline(&now), None);
        assert_eq!(Ttl::Seconds(-1.0).deadline(&now), None);
        assert_eq!(
            Ttl::Seconds(1.5).deadline(&now),
            Some(Timestamp::from_nanos(6_500_000_000))
        );
        assert_eq!(Ttl::Seconds(f64::NAN).deadline(&now), Some(Timestamp::NEVER));
    }

    #[test]
    fn system_now_is_read_once() {
        let now = Now::system();
        let first = now.get();
        assert_eq!(first, now.get());
        assert!(first.as_secs_f64() > 1.5e9);
    }
}
