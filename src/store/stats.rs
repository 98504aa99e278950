//! Counters kept under the store lock (the lock is held anyway, so they cost an add each).

/// What happened in one LOCATION since it was created or last cleared of counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub hits: u64,
    pub misses: u64,
    pub sets: u64,
    pub deletes: u64,
    /// Live entries removed to make room (culls, the byte budget).
    pub evictions: u64,
    /// Expired entries removed, whether met by a read or reclaimed by housekeeping.
    pub expirations: u64,
    /// Values not stored because they alone exceed the byte budget (a refused `set` also removes the
    /// key's old value).
    pub refused: u64,
}

/// Add one to `counter`. The `uncounted` feature compiles it out: it exists only so that
/// `benchmarks/counters_cost.py` can measure what counting costs a `get`.
#[inline]
pub(crate) fn count(counter: &mut u64) {
    if cfg!(not(feature = "uncounted")) {
        *counter += 1;
    }
}

/// Counters plus the state of the store at the moment it was read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub counters: Counters,
    /// Entries held, including expired ones not yet reclaimed.
    pub entries: usize,
    /// Bytes charged for them (`entry::entry_bytes`).
    pub bytes: usize,
}
