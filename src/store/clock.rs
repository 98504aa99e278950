//! Time as the store sees it: seconds since the Unix epoch as a float, exactly as Python's
//! `time.time()` gives them, so deadlines are computed and compared as `LocMemCache` computes and
//! compares them (`time.time() + timeout`, `exp <= time.time()`) whatever the clock says: before
//! 1970 (negative), NaN (a deadline that no comparison finds passed: it never expires), or far
//! beyond any integer count of nanoseconds.
//!
//! The store never reads a clock behind the caller's back: every operation is handed a [`Now`],
//! which either holds a time fixed by the caller (tests, or a clock read from Python before the lock
//! is taken) or reads the system clock at most once, and only if an entry with a deadline is met.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

/// An instant, in seconds since the Unix epoch. [`Timestamp::NEVER`] is the deadline of an entry
/// that never expires, whatever the clock reads.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Timestamp(f64);

impl Timestamp {
    /// The deadline of an entry that never expires.
    pub const NEVER: Self = Self(f64::INFINITY);

    /// Seconds since the epoch, as `time.time()` gives them (any float: negative and NaN too).
    pub const fn from_secs_f64(secs: f64) -> Self {
        Self(secs)
    }

    pub const fn as_secs_f64(self) -> f64 {
        self.0
    }

    /// Whether an entry with this deadline is expired at `now`. Like `LocMemCache`, a deadline equal
    /// to the current time counts as expired (`exp <= time.time()`); a NaN deadline or clock never
    /// does, and `NEVER` never does.
    pub fn has_passed(self, now: Self) -> bool {
        self != Self::NEVER && self.0 <= now.0
    }

    /// The earlier of two deadlines (a NaN one, which never passes, counts as the later).
    #[must_use]
    pub fn min(self, other: Self) -> Self {
        Self(self.0.min(other.0))
    }
}

/// The current time for one operation, read at most once.
#[derive(Debug)]
pub struct Now {
    fixed: Cell<Option<Timestamp>>,
}

impl Now {
    /// A time chosen by the caller.
    pub fn at(ts: Timestamp) -> Self {
        Self {
            fixed: Cell::new(Some(ts)),
        }
    }

    /// A time given as float seconds since the epoch (Python's `time.time()`), kept as given.
    pub fn at_secs(secs: f64) -> Self {
        Self::at(Timestamp::from_secs_f64(secs))
    }

    /// The system clock, read on first use. Reading it costs 20-60 ns, which most `get`s of entries
    /// without a deadline never pay.
    pub fn system() -> Self {
        Self { fixed: Cell::new(None) }
    }

    pub fn get(&self) -> Timestamp {
        if let Some(ts) = self.fixed.get() {
            return ts;
        }
        let ts = system_time();
        self.fixed.set(Some(ts));
        ts
    }

    pub fn secs(&self) -> f64 {
        self.get().as_secs_f64()
    }
}

/// The system's wall clock (negative before 1970).
pub fn system_time() -> Timestamp {
    let secs = match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    };
    Timestamp(secs)
}

/// How long an entry should live, as Django's `timeout` says it once `DEFAULT_TIMEOUT` is resolved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ttl {
    /// `timeout=None`: never expires.
    Forever,
    /// A number of seconds. Zero or less means the entry is expired as soon as it is written, as with
    /// `LocMemCache` (Django turns `timeout=0` into `-1`, ticket 21147).
    Seconds(f64),
    /// An absolute deadline, in seconds since the epoch: what a backend's own
    /// `get_backend_timeout` returns (`time.time() + timeout`, capped or jittered).
    At(f64),
}

impl Ttl {
    /// The deadline of an entry written at `now`, or `None` if it is dead on arrival.
    pub fn deadline(self, now: &Now) -> Option<Timestamp> {
        let deadline = match self {
            Self::Forever => return Some(Timestamp::NEVER),
            Self::Seconds(secs) if secs <= 0.0 => return None,
            // `time.time() + timeout` in floats, as LocMemCache computes it.
            Self::Seconds(secs) => Timestamp(now.secs() + secs),
            Self::At(secs) => Timestamp(secs),
        };
        // A deadline that has already passed (a timeout so small that it rounds to no time at all,
        // or a hook's deadline in the past) is dead on arrival, as `exp <= time.time()` would find it.
        (!deadline.has_passed(now.get())).then_some(deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_follow_float_arithmetic_whatever_the_epoch() {
        let now = Now::at_secs(1_000.0);
        assert_eq!(
            Ttl::Seconds(f64::NAN)
                .deadline(&now)
                .map(Timestamp::as_secs_f64)
                .map(f64::is_nan),
            Some(true)
        );
        assert_eq!(Ttl::Seconds(f64::INFINITY).deadline(&now), Some(Timestamp::NEVER));
        assert_eq!(
            Ttl::Seconds(1e300).deadline(&now),
            Some(Timestamp::from_secs_f64(1e300))
        );
        // 1965: a negative clock still gives a deadline `timeout` seconds later.
        let sixties = Now::at_secs(-157_766_400.0);
        assert_eq!(
            Ttl::Seconds(300.0).deadline(&sixties),
            Some(Timestamp::from_secs_f64(-157_766_100.0))
        );
        assert!(!Timestamp::from_secs_f64(-157_766_100.0).has_passed(sixties.get()));
        // A NaN clock: LocMemCache stores `nan + timeout`, which never expires.
        let nan = Now::at_secs(f64::NAN);
        let deadline = Ttl::Seconds(60.0).deadline(&nan).expect("stored");
        assert!(!deadline.has_passed(Timestamp::from_secs_f64(1e18)));
        // Far past any nanosecond count (the year 9999).
        let far = Now::at_secs(253_402_300_799.0);
        let deadline = Ttl::Seconds(1.0).deadline(&far).expect("stored");
        assert!(!deadline.has_passed(far.get()));
        assert!(deadline.has_passed(Timestamp::from_secs_f64(253_402_300_800.0)));
    }

    #[test]
    fn expiry_is_inclusive_like_locmem() {
        let t = Timestamp::from_secs_f64(10.0);
        assert!(t.has_passed(Timestamp::from_secs_f64(10.0)));
        assert!(!t.has_passed(Timestamp::from_secs_f64(9.5)));
        assert!(!Timestamp::NEVER.has_passed(Timestamp::from_secs_f64(f64::INFINITY)));
        assert!(!Timestamp::from_secs_f64(f64::NAN).has_passed(Timestamp::from_secs_f64(1e18)));
    }

    #[test]
    fn ttl_deadlines() {
        let now = Now::at_secs(5.0);
        assert_eq!(Ttl::Forever.deadline(&now), Some(Timestamp::NEVER));
        assert_eq!(Ttl::Seconds(0.0).deadline(&now), None);
        assert_eq!(Ttl::Seconds(-1.0).deadline(&now), None);
        assert_eq!(Ttl::Seconds(1.5).deadline(&now), Some(Timestamp::from_secs_f64(6.5)));
        assert_eq!(Ttl::At(7.0).deadline(&now), Some(Timestamp::from_secs_f64(7.0)));
        assert_eq!(Ttl::At(5.0).deadline(&now), None, "a hook's deadline already passed");
        assert_eq!(Ttl::At(-1.0).deadline(&now), None);
    }

    #[test]
    fn system_now_is_read_once() {
        let now = Now::system();
        let first = now.get();
        assert_eq!(first, now.get());
        assert!(first.as_secs_f64() > 1.5e9);
    }
}
