//! The thread-safe store: one [`Table`] behind one `parking_lot` mutex.
//!
//! One lock per LOCATION, not shards: `LocMemCache`'s semantics (a global least-recently-used order,
//! culls counted over the whole cache) need one order, and under the GIL no two threads run Rust
//! code at once anyway, so shards would buy nothing but inexactness. The lock is held only for map
//! and order updates: whatever an operation removed is dropped, and whatever it wants logged is
//! logged, after the lock is released (`with`).

use parking_lot::Mutex;

use super::entry::Weigh;
use super::stats::Snapshot;
use super::table::{Eviction, Sink, Table};

#[derive(Debug)]
pub struct Store<P> {
    table: Mutex<Table<P>>,
}

impl<P> Default for Store<P> {
    fn default() -> Self {
        Self {
            table: Mutex::new(Table::default()),
        }
    }
}

impl<P: Weigh> Store<P> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_eviction(eviction: Eviction) -> Self {
        Self {
            table: Mutex::new(Table::with_eviction(eviction)),
        }
    }

    pub fn eviction(&self) -> Eviction {
        self.table.lock().eviction()
    }

    /// Run `f` on the table under the lock; then, with the lock released, drop what it removed and
    /// log what it did. `f` must not call back into anything that takes this lock, nor into Python.
    pub fn with<R>(&self, f: impl FnOnce(&mut Table<P>) -> R) -> R {
        let (result, sink) = {
            let mut table = self.table.lock();
            let result = f(&mut table);
            (result, std::mem::take(&mut table.sink))
        };
        report(&sink);
        drop(sink);
        result
    }

    pub fn snapshot(&self) -> Snapshot {
        self.table.lock().snapshot()
    }
}

/// Operator-facing events, logged outside the lock (pyo3-log attaches to Python for each record).
fn report<P>(sink: &Sink<P>) {
    if sink.evicted > 0 {
        log::debug!(target: "django_rustcache.store", "evicted {} entries to make room", sink.evicted);
    }
    if let Some(err) = &sink.refused {
        log::warn!(target: "django_rustcache.store", "value not stored: {err}");
    }
}
