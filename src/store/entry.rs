//! What the store keeps for one key.

use std::sync::Arc;

use super::clock::Timestamp;

/// The bytes the store charges for an entry beyond its key and value: its slab slot, hash-table
/// slot (at the table's average load), recency links, the key's reference-counted header and the
/// allocator's rounding. Measured: a process holding 1,000,000 entries of 100-byte values grows by
/// about 285 bytes per entry, 174 beyond key and value (`benchmarks/bench.py`, memory row), so the
/// byte budget (`MAX_BYTES`, which counts `key.len() + value.weight() + ENTRY_OVERHEAD` for every
/// entry, exactly) tracks resident memory for small entries too (`benchmarks/memory_budget.py`).
pub const ENTRY_OVERHEAD: usize = 176;

/// A payload the store can weigh, in bytes, for its byte budget.
pub trait Weigh {
    fn weight(&self) -> usize;
}

impl Weigh for Vec<u8> {
    fn weight(&self) -> usize {
        self.len()
    }
}

impl Weigh for &'static str {
    fn weight(&self) -> usize {
        self.len()
    }
}

/// A stored value: a native integer (so `incr` is one atomic step and `get` needs no decoding), or
/// whatever the binding stores otherwise (pickled bytes, an immutable object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<P> {
    Int(i64),
    Data(P),
}

/// The size charged for a native integer.
const INT_WEIGHT: usize = 8;

impl<P: Weigh> Value<P> {
    pub fn weight(&self) -> usize {
        match self {
            Self::Int(_) => INT_WEIGHT,
            Self::Data(payload) => payload.weight(),
        }
    }
}

/// The bytes an entry with this key and value is charged.
pub fn entry_bytes<P: Weigh>(key: &[u8], value: &Value<P>) -> usize {
    key.len() + value.weight() + ENTRY_OVERHEAD
}

/// One live (or not yet reclaimed) entry.
#[derive(Debug)]
pub(crate) struct Entry<P> {
    /// Shared with the hash map's key, so eviction by slot can find the map entry.
    pub(crate) key: Arc<[u8]>,
    pub(crate) value: Value<P>,
    pub(crate) expires_at: Timestamp,
    /// Bumped on every change of the value, for compare-and-swap updates.
    pub(crate) cas: u64,
    /// What this entry is charged against the byte budget, cached so removal needs no re-weighing.
    pub(crate) bytes: usize,
}

impl<P> Entry<P> {
    pub(crate) fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.has_passed(now)
    }

    pub(crate) fn has_deadline(&self) -> bool {
        self.expires_at != Timestamp::NEVER
    }
}
