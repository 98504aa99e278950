//! What the store keeps for one key.

use super::clock::Timestamp;
use super::record::Record;

/// The bytes the store charges for an entry beyond its key and value: its slab slot, its share of the
/// hash index (at the index's average load), recency links, the record's header and the allocator's
/// rounding. Measured: a process holding 1,000,000 entries of 100-byte values grows by about
/// `113 + ENTRY_OVERHEAD` bytes per entry (`benchmarks/bench.py`, memory row), so the byte budget
/// (`MAX_BYTES`, which counts `key.len() + value.len() + ENTRY_OVERHEAD` for every entry, exactly)
/// tracks resident memory for small entries too (`benchmarks/memory_budget.py`).
pub const ENTRY_OVERHEAD: usize = 64;

/// The bytes an entry holding `record` is charged.
pub fn entry_bytes(record: &Record) -> usize {
    record.weight() + ENTRY_OVERHEAD
}

/// One live (or not yet reclaimed) entry: 24 bytes, and an `Option<Entry>` too.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) record: Record,
    pub(crate) expires_at: Timestamp,
}

impl Entry {
    pub(crate) fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.has_passed(now)
    }

    pub(crate) fn has_deadline(&self) -> bool {
        self.expires_at != Timestamp::NEVER
    }
}
