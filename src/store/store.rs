//! The thread-safe store: one [`Table`] behind one `parking_lot` mutex.
//!
//! One lock per LOCATION, not shards: `LocMemCache`'s semantics (a global least-recently-used order,
//! culls counted over the whole cache) need one order, and under the GIL no two threads run Rust
//! code at once anyway, so shards would buy nothing but inexactness. The lock is held only for map
//! and order updates: whatever an operation removed is dropped, and whatever it wants logged is
//! logged, after the lock is released (`with`).

use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use super::sink::Sink;
use super::stats::Snapshot;
use super::table::{Eviction, Table};

/// A cull that removes at least this many entries at once is logged on its own.
const BULK_EVICTION: usize = 16;
/// Smaller evictions (one at a time: the adaptive policy, the byte budget) are logged as a summary once
/// this many have accumulated. Each record costs a call into Python's logging (~6,000 instructions; a
/// write costs ~3,700), so logging every single eviction would more than double the cost of a write.
const EVICTION_REPORT_EVERY: usize = 1024;

#[derive(Debug)]
pub struct Store<A> {
    table: Mutex<Table<A>>,
    /// Evictions not yet reported in a log record.
    unreported_evictions: AtomicUsize,
}

impl<A> Default for Store<A> {
    fn default() -> Self {
        Self::from_table(Table::default())
    }
}

impl<A> Store<A> {
    fn from_table(table: Table<A>) -> Self {
        Self {
            table: Mutex::new(table),
            unreported_evictions: AtomicUsize::new(0),
        }
    }

    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_eviction(eviction: Eviction) -> Self {
        Self::from_table(Table::with_eviction(eviction))
    }

    pub fn eviction(&self) -> Eviction {
        self.table.lock().eviction()
    }

    /// Run `f` on the table under the lock; then, with the lock released, drop what it removed and
    /// log what it did. `f` must not call back into anything that takes this lock, nor into Python.
    pub fn with<R>(&self, f: impl FnOnce(&mut Table<A>) -> R) -> R {
        let (result, sink) = {
            let mut table = self.table.lock();
            let result = f(&mut table);
            (result, std::mem::take(&mut table.sink))
        };
        self.report(&sink);
        drop(sink);
        result
    }

    /// Operator-facing events, logged outside the lock (pyo3-log attaches to Python for each record):
    /// bulk culls at once, single evictions as a periodic summary, refusals always.
    fn report(&self, sink: &Sink<A>) {
        if sink.evicted >= BULK_EVICTION {
            log::debug!(target: "django_rustcache.store", "culled {} entries to make room", sink.evicted);
        } else if sink.evicted > 0 {
            let pending = self.unreported_evictions.fetch_add(sink.evicted, Ordering::Relaxed) + sink.evicted;
            if pending >= EVICTION_REPORT_EVERY {
                let count = self.unreported_evictions.swap(0, Ordering::Relaxed);
                log::debug!(target: "django_rustcache.store", "evicted {count} entries to make room, one at a time");
            }
        }
        if let Some(err) = &sink.refused {
            let old = if sink.refused_removed_old {
                "; the key's old value was removed"
            } else {
                ""
            };
            log::warn!(target: "django_rustcache.store", "value not stored: {err}{old}");
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        self.table.lock().snapshot()
    }
}
